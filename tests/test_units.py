"""Every number in millimetres is real (issue 13): spacing provenance, unknown spacing,
radiograph magnification, ultrasound regions, 2D images and thin images.

Expectations come from the DICOM tags read with pydicom, from pyradiomics, scipy.ndimage
and hand computations, never from medlab's own output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

import medlab as ml
from medlab.errors import UnknownSpacingError
from medlab.io.dicom._spacing import pixel_spacing

UNCALIBRATED = ["RG3_J2KR.dcm", "US1_UNC.dcm", "XA1_UNC.dcm"]
SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing",
                "SequenceOfUltrasoundRegions")


def _header(path):
    return pydicom.dcmread(path, stop_before_pixels=True)


# ------------------------------------------------------------------ finding 1: unknown spacing
@pytest.mark.parametrize("name", UNCALIBRATED)
def test_uncalibrated_files_have_unknown_spacing_never_mm(name):
    path = ml.data.path("wg04-modalities", name)
    assert not any(kw in _header(path) for kw in SPACING_TAGS)  # the premise, from the tags
    img = ml.load(path)
    assert not img.spacing_known
    assert img.spacing_source == "unknown" and img.spacing_plane == "unknown"
    assert "unknown" in repr(img) and " mm" not in repr(img)
    with pytest.raises(UnknownSpacingError, match=rf"{name}.*calibrate"):
        ml.measure.points_to_world(img, [0, 10, 10])
    row = ml.io.load_all(path).summary().iloc[0]
    assert row["spacing_mm"] is None and row["spacing_source"] == "unknown"


def test_every_mm_measurement_refuses_an_uncalibrated_radiograph():
    rg3 = ml.load(ml.data.path("wg04-modalities", "RG3_J2KR.dcm"))
    mask = ml.segmentation.otsu(rg3)
    assert mask.spacing_source == "unknown"  # the mask inherits the image's calibration
    for call in (lambda: ml.measure.label_stats(rg3, mask),
                 lambda: ml.measure.recist_diameters(mask),
                 lambda: ml.measure.overlap(mask, mask),
                 lambda: ml.segmentation.dilate(mask, radius_mm=1.0),
                 lambda: ml.segmentation.connected_components(mask, min_size_mm3=5.0),
                 lambda: ml.filters.gaussian(rg3, sigma_mm=1.0),
                 lambda: ml.filters.median(rg3, radius_mm=1.0),
                 lambda: ml.registration.rigid(rg3, rg3, progress=False)):
        with pytest.raises(UnknownSpacingError, match=r"RG3_J2KR\.dcm.*with_spacing"):
            call()
    # pixel work that needs no mm keeps working
    assert ml.segmentation.largest_component(mask).array.sum() > 0


def test_calibrate_from_a_line_of_known_length_records_the_user():
    us = ml.load(ml.data.path("wg04-modalities", "US1_UNC.dcm"))
    cal = ml.measure.calibrate(us, (100, 200), (100, 400), known_length_mm=50.0)
    assert cal.spacing_source == "user" and cal.spacing[1:] == pytest.approx((0.25, 0.25))
    assert cal.meta["calibration"]["known_length_mm"] == 50.0
    p, q = ml.measure.points_to_world(cal, [[0, 10, 10], [0, 10, 210]])
    assert ml.measure.distance(p, q) == pytest.approx(50.0)  # 200 px at 0.25 mm
    assert "from user" in repr(cal)
    # with_spacing is the other fix path
    assert us.with_spacing((0.3, 0.2)).spacing[1:] == pytest.approx((0.3, 0.2))
    with pytest.raises(ValueError, match="positive"):
        us.with_spacing((0.0, 1.0))


# ------------------------------------------------------------ finding 2: radiograph calibration
def test_mammogram_is_measured_at_the_patient_with_the_magnification_factor():
    path = ml.data.path("fo-dicom", "OutOfBoundsOverlay.dcm")
    ds = _header(path)
    ips = [float(v) for v in ds.ImagerPixelSpacing]
    ermf = float(ds.EstimatedRadiographicMagnificationFactor)
    assert "PixelSpacing" not in ds
    mg = ml.load(path)
    assert mg.spacing_source == "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor"
    assert mg.spacing_plane == "patient"
    assert mg.meta["magnification_factor"] == pytest.approx(ermf)
    assert mg.spacing[1:] == pytest.approx((ips[0] / ermf, ips[1] / ermf))
    p, q = ml.measure.points_to_world(mg, [[0, 100, 100], [0, 100, 600]])
    at_patient = ml.measure.distance(p, q)
    assert at_patient == pytest.approx(500 * ips[1] / ermf) == pytest.approx(40.74, abs=0.01)
    # the detector plane on request: 42.5 mm, and it says so
    det = mg.with_spacing(mg.meta["imager_pixel_spacing_mm"], source="ImagerPixelSpacing",
                          plane="detector")
    p, q = ml.measure.points_to_world(det, [[0, 100, 100], [0, 100, 600]])
    assert ml.measure.distance(p, q) == pytest.approx(500 * ips[1]) == pytest.approx(42.5)
    assert "(detector)" in repr(det)


def _ds(**tags):
    ds = Dataset()
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("tags, spacing, source, plane", [
    # PS3.3 10.7.1.3: a calibrated Pixel Spacing is at the patient
    (dict(Modality="DX", PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.1, 0.1],
          PixelSpacingCalibrationType="GEOMETRY"), (0.1, 0.1),
     "PixelSpacing (calibrated: GEOMETRY)", "patient"),
    # Pixel Spacing different from Imager Pixel Spacing: corrected by the modality
    (dict(Modality="CR", PixelSpacing=[0.09, 0.09], ImagerPixelSpacing=[0.1, 0.1]),
     (0.09, 0.09), "PixelSpacing", "patient"),
    # Pixel Spacing equal to Imager Pixel Spacing: a copy of the detector spacing
    (dict(Modality="DX", PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.1, 0.1]),
     (0.1, 0.1), "ImagerPixelSpacing", "detector"),
    (dict(Modality="DX", PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.1, 0.1],
          EstimatedRadiographicMagnificationFactor=1.25), (0.08, 0.08),
     "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor", "patient"),
    (dict(Modality="CR", PixelSpacing=[0.2, 0.2]), (0.2, 0.2), "PixelSpacing", "unknown"),
    (dict(Modality="CT", PixelSpacing=[0.5, 0.6]), (0.5, 0.6), "PixelSpacing", "patient"),
    (dict(Modality="OT", NominalScannedPixelSpacing=[0.3, 0.3]), (0.3, 0.3),
     "NominalScannedPixelSpacing", "scanned medium"),
    (dict(Modality="OT"), None, "unknown", "unknown"),
])
def test_pixel_spacing_rules(tags, spacing, source, plane):
    info = pixel_spacing(_ds(**tags))
    assert info.source == source and info.plane == plane
    if spacing is None:
        assert info.spacing is None
    else:
        assert info.spacing == pytest.approx(spacing)


# ---------------------------------------------------------------- ultrasound regions
def test_ultrasound_region_calibration_from_the_region_tags():
    path = ml.data.path("us-cine", "color3d_jpeg_baseline.dcm")
    region = _header(path).SequenceOfUltrasoundRegions[0]
    assert (region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection) == (3, 3)  # cm
    us = ml.load(path)
    assert us.spacing_source == "ultrasound region" and us.spacing_plane == "patient"
    assert us.spacing[1] == pytest.approx(abs(region.PhysicalDeltaY) * 10)
    assert us.spacing[2] == pytest.approx(abs(region.PhysicalDeltaX) * 10)
    p, q = ml.measure.points_to_world(us, [[0, 200, 100], [0, 200, 300]])
    assert ml.measure.distance(p, q) == pytest.approx(200 * abs(region.PhysicalDeltaX) * 10)


def _write_two_region_us(path):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "US", 1, 1
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 40, 60, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.arange(40 * 60, dtype=np.uint8).tobytes()
    regions = []
    for x0, x1, delta in ((0, 29, 0.02), (30, 59, 0.05)):  # two views, two depths
        r = Dataset()
        r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = 1, 1, 0
        r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, 0
        r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1, 39
        r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3
        r.PhysicalDeltaX = r.PhysicalDeltaY = delta
        regions.append(r)
    ds.SequenceOfUltrasoundRegions = regions
    ds.save_as(path, enforce_file_format=True)


def test_ultrasound_regions_with_different_calibrations_are_measured_per_region(tmp_path):
    path = tmp_path / "two_regions.dcm"
    _write_two_region_us(path)
    us = ml.load(path)
    assert not us.spacing_known  # no single spacing holds for the whole image
    with pytest.raises(UnknownSpacingError):
        ml.measure.points_to_world(us, [0, 1, 1])
    left, right = ml.measure.ultrasound_region(us, 0), ml.measure.ultrasound_region(us, 1)
    assert left.shape == (1, 40, 30) and right.shape == (1, 40, 30)
    assert left.spacing[1:] == pytest.approx((0.2, 0.2))  # 0.02 cm
    assert right.spacing[1:] == pytest.approx((0.5, 0.5))  # 0.05 cm
    np.testing.assert_array_equal(right.array, us.array[:, :, 30:])
    # the crop stays where it was: its first pixel is pixel (0, 30) of the image
    np.testing.assert_allclose(right.origin, us.index_to_world([0, 0, 30]))
    assert right.spacing_source == "ultrasound region"
    with pytest.raises(ValueError, match="regions: \\[0, 1\\]"):
        ml.measure.ultrasound_region(us, 5)


# ---------------------------------------------------------------- finding 3: 2D is 2D
def test_2d_mask_reports_area_and_the_ibsi_perimeter():
    import SimpleITK as sitk
    from radiomics import shape2D

    img_path = ml.data.path("ct2d-head", "CT_2D_head_fixed.mha")
    mask_path = ml.data.path("ct2d-head", "CT_2D_head_fixed_mask.mha")
    img, mask = ml.load(img_path), ml.load(mask_path)
    assert img.is_2d and img.spacing_source == "MetaImage header"
    table = ml.measure.label_stats(img, mask)
    assert "volume_mm3" not in table and "volume_ml" not in table
    row = table.iloc[0]
    s_img, s_mask = sitk.ReadImage(str(img_path)), sitk.ReadImage(str(mask_path))
    count = int((sitk.GetArrayFromImage(s_mask) > 0).sum())
    assert row["area_mm2"] == pytest.approx(count * np.prod(s_mask.GetSpacing()))
    features = shape2D.RadiomicsShape2D(s_img, s_mask, force2D=True)
    features.enableAllFeatures()
    assert row["perimeter_mm"] == pytest.approx(float(features.execute()["Perimeter"]), rel=1e-9)
    assert row["spacing_source"] == "MetaImage header"


def test_2d_perimeter_on_an_anisotropic_grid_matches_pyradiomics():
    import SimpleITK as sitk
    from radiomics import shape2D

    yy, xx = np.mgrid[0:80, 0:70]
    disk = ((yy - 40) * 0.4) ** 2 + ((xx - 33) * 0.7) ** 2 <= 12.0**2
    disk[30:34, 30:36] = False  # a hole: its boundary counts too
    img = ml.Image(disk[None].astype(np.float32), np.diag([3.0, 0.4, 0.7, 1.0]))
    row = ml.measure.label_stats(img, img.with_array(disk[None].astype(np.uint8))).iloc[0]
    s = sitk.GetImageFromArray(disk.astype(np.uint8))
    s.SetSpacing((0.7, 0.4))
    features = shape2D.RadiomicsShape2D(sitk.Cast(s, sitk.sitkFloat32), s, force2D=True)
    features.enableAllFeatures()
    assert row["perimeter_mm"] == pytest.approx(float(features.execute()["Perimeter"]), rel=1e-9)
    # hand count for a rectangle: straight runs between pixel centres plus four corner cuts
    rect = np.zeros((1, 9, 9), np.uint8)
    rect[0, 2:5, 1:8] = 1  # 3 rows x 7 columns
    r = ml.measure.label_stats(ml.Image(rect, np.diag([1.0, 0.5, 2.0, 1])), ml.Image(
        rect, np.diag([1.0, 0.5, 2.0, 1]))).iloc[0]
    corner = np.hypot(0.25, 1.0)
    assert r["perimeter_mm"] == pytest.approx(2 * 6 * 2.0 + 2 * 2 * 0.5 + 4 * corner)
    assert r["area_mm2"] == pytest.approx(21 * 1.0)


@pytest.mark.parametrize("folder, name", [("wg04-modalities", "CT1_UNC.dcm"),
                                          ("xa-mr-cine", "MOVEKNEE.dcm")])
def test_single_slice_step_follows_one_rule(folder, name):
    path = ml.data.path(folder, name)
    ds = _header(path)
    thickness = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    if thickness is None:  # enhanced MR: in the shared Pixel Measures
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        thickness = measures.get("SpacingBetweenSlices") or measures.SliceThickness
    img = ml.load(path)
    assert img.is_2d
    assert img.spacing[0] == pytest.approx(float(thickness))
    frame = img.frame(0) if img.n_frames > 1 else img
    mask = frame.with_array((frame.array > np.percentile(frame.array, 80)).astype(np.uint8))
    table = ml.measure.label_stats(frame, mask, shape=False)
    n = int(mask.array.sum())
    assert "volume_mm3" not in table
    assert table["area_mm2"].iloc[0] == pytest.approx(n * img.spacing[1] * img.spacing[2])


# ------------------------------------------------------- finding 8: thin images
def _thin(n_slices):
    rng = np.random.default_rng(n_slices)
    return ml.Image(rng.random((n_slices, 30, 40)).astype(np.float32),
                    np.diag([2.5, 0.5, 0.8, 1.0]))


@pytest.mark.parametrize("n_slices", [1, 2, 3, 5])
def test_gaussian_and_median_on_any_slice_count_match_scipy(n_slices):
    img = _thin(n_slices)
    sigma_vox = [1.5 / s if n > 1 else 0.0 for s, n in zip(img.spacing, img.spatial_shape, strict=True)]
    ref = ndimage.gaussian_filter(img.array.astype(float), sigma_vox, mode="nearest", truncate=6)
    out = ml.filters.gaussian(img, sigma_mm=1.5)
    assert out.spatial_shape == img.spatial_shape
    # ITK's recursive Gaussian approximates the kernel to ~1e-3 of the signal range
    np.testing.assert_allclose(out.array, ref, atol=2e-3)
    radius = [0 if n == 1 else max(1, round(1.0 / s)) for s, n in
              zip(img.spacing, img.spatial_shape, strict=True)]
    med = ndimage.median_filter(img.array, size=[2 * r + 1 for r in radius], mode="nearest")
    np.testing.assert_array_equal(ml.filters.median(img, radius_mm=1.0).array, med)


def test_gaussian_on_a_single_dicom_slice_and_a_2d_mha():
    ct = ml.load(ml.data.path("wg04-modalities", "CT1_UNC.dcm"))
    head = ml.load(ml.data.path("ct2d-head", "CT_2D_head_fixed.mha"))
    for img in (ct, head):
        sigma = [0.0, 1.0 / img.spacing[1], 1.0 / img.spacing[2]]
        ref = ndimage.gaussian_filter(img.array.astype(float), sigma, mode="nearest", truncate=6)
        out = ml.filters.gaussian(img, sigma_mm=1.0).array
        span = float(np.ptp(img.array))
        np.testing.assert_allclose(out, ref, atol=5e-3 * span)  # recursive filter, sigma 1 px


def test_morphology_on_a_2d_mask_is_a_disk_in_mm():
    mask = np.zeros((1, 40, 40), np.uint8)
    mask[0, 15:25, 18:22] = 1
    img = ml.Image(mask, np.diag([4.0, 0.5, 0.25, 1.0]))
    # a 1 mm ball on 0.5 x 0.25 mm pixels: an ellipse of 2 x 4 pixels; the slice axis (4 mm) is
    # one voxel and out of reach
    yy, xx = np.mgrid[-2:3, -4:5]
    ball = (yy * 0.5) ** 2 + (xx * 0.25) ** 2 <= 1.0 + 1e-9
    dilated = ml.segmentation.dilate(img, radius_mm=1.0).array[0].astype(bool)
    np.testing.assert_array_equal(dilated, ndimage.binary_dilation(mask[0], structure=ball))
    eroded = ml.segmentation.erode(img, radius_mm=0.5).array[0].astype(bool)
    small = (np.mgrid[-1:2, -2:3][0] * 0.5) ** 2 + (np.mgrid[-1:2, -2:3][1] * 0.25) ** 2 <= 0.25
    np.testing.assert_array_equal(eroded, ndimage.binary_erosion(mask[0], structure=small,
                                                                 border_value=1))


# ------------------------------------------------------------------ headers of other formats
def test_nifti_spatial_units(tmp_path):
    import nibabel as nib

    data = np.zeros((4, 5, 6), np.float32)
    img = nib.Nifti1Image(data, np.diag([0.002, 0.002, 0.003, 1.0]))
    img.header.set_xyzt_units("meter")
    nib.save(img, tmp_path / "metres.nii")
    loaded = ml.load(tmp_path / "metres.nii")
    assert loaded.spacing == pytest.approx((3.0, 2.0, 2.0))  # in mm
    assert loaded.spacing_source == "NIfTI header"
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "unknown.nii")
    assert nib.load(tmp_path / "unknown.nii").header.get_xyzt_units()[0] == "unknown"
    assert "mm assumed" in ml.load(tmp_path / "unknown.nii").spacing_source


# ------------------------------------------------------------------ the viewer's numbers
def test_viewer_measures_nothing_without_a_spacing_and_names_the_plane():
    xa = ml.load(ml.data.path("wg04-modalities", "XA1_UNC.dcm"))
    viewer = ml.view.slices(xa)
    viewer.add("ruler", xa.index_to_world([[0, 10, 10], [0, 10, 110]]))
    assert list(viewer._results.values()) == ["spacing unknown: calibrate (ml.measure.calibrate)"]
    with pytest.raises(UnknownSpacingError, match="XA1_UNC"):
        viewer.measurements()
    assert viewer._pane_axial["calibrated"] is False
    det = xa.with_spacing((0.2, 0.2), source="ImagerPixelSpacing", plane="detector")
    viewer = ml.view.slices(det)
    viewer.add("ruler", det.index_to_world([[0, 10, 10], [0, 10, 110]]))
    table = viewer.measurements()
    assert table["length_mm"].iloc[0] == pytest.approx(20.0)
    assert table["spacing_plane"].iloc[0] == "detector"
    assert list(viewer._results.values()) == ["20.0 mm (at the detector)"]


def test_sr_of_a_2d_image_reports_area_in_mm2(tmp_path):
    path = ml.data.path("wg04-modalities", "CT1_UNC.dcm")
    ds = _header(path)
    ct = ml.load(path)
    mask = ml.segmentation.threshold(ct, lower=200)
    mask = ml.segmentation.largest_component(mask)
    stats = ml.measure.label_stats(ct, mask, shape=False)
    seg = ml.segmentation.write_seg(mask, path, tmp_path / "seg.dcm")
    table = ml.measure.read_sr(ml.measure.write_sr(stats, seg, path, tmp_path / "sr.dcm"))
    area = table.loc[table["statistic"] == "area_mm2"]
    n = int(mask.array.sum())
    assert area["unit"].tolist() == ["mm2"]
    assert area["value"].iloc[0] == pytest.approx(n * float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]))
    assert "volume_mm3" not in set(table["statistic"])


def test_cohort_spacing_table_states_where_each_series_spacing_holds():
    mg_path = ml.data.path("fo-dicom", "OutOfBoundsOverlay.dcm")
    files = [mg_path, ml.data.path("wg04-modalities", "RG3_J2KR.dcm"),
             ml.data.path("wg04-modalities", "CT1_UNC.dcm")]
    index = ml.cohort.scan(files, progress=False)
    table = ml.cohort.spacing_table(index).set_index("modality")
    ds = _header(mg_path)
    expected = float(ds.ImagerPixelSpacing[1]) / float(ds.EstimatedRadiographicMagnificationFactor)
    assert table.loc["MG", "spacing_col_mm"] == pytest.approx(expected)
    assert table.loc["MG", "spacing_plane"] == "patient"
    assert table.loc["MG", "spacing_source"].startswith("ImagerPixelSpacing /")
    assert pd.isna(table.loc["CR", "spacing_row_mm"]) and table.loc["CR", "spacing_source"] == "unknown"
    ct = _header(files[2])
    assert table.loc["CT", "spacing_row_mm"] == pytest.approx(float(ct.PixelSpacing[0]))
    assert table.loc["CT", "spacing_source"] == "PixelSpacing"
    summary = dict(ml.cohort.summary(index).itertuples(index=False))
    assert summary["series without a known pixel spacing"] == 1  # the CR


@pytest.mark.parametrize("suffix", ["mha", "nrrd", "nii.gz"])
def test_unknown_spacing_survives_a_file_round_trip(tmp_path, suffix):
    import nibabel as nib
    import SimpleITK as sitk

    xa = ml.load(ml.data.path("wg04-modalities", "XA1_UNC.dcm"))
    path = ml.save(xa, tmp_path / f"xa.{suffix}")
    back = ml.load(path)
    assert not back.spacing_known
    np.testing.assert_array_equal(back.array, xa.array)
    if suffix == "nii.gz":  # read independently: the file says its unit is unknown
        assert nib.load(path).header.get_xyzt_units()[0] == "unknown"
    else:
        assert sitk.ReadImage(str(path)).GetMetaData("medlab_spacing_source") == "unknown"
    known = xa.with_spacing((0.2, 0.2))
    assert ml.load(ml.save(known, tmp_path / f"known.{suffix}")).spacing[1:] == pytest.approx(
        (0.2, 0.2))


def test_time_intensity_curves_need_no_spacing():
    us = ml.load(ml.data.path("wg04-modalities", "US1_UNC.dcm"))
    grey = us.with_array(us.array.mean(axis=-1, dtype=np.float32)[..., None].repeat(2, axis=-1),
                         channels=False, frame_times_s=[0.0, 1.0])
    assert not grey.spacing_known
    roi = grey.frame(0).with_array(np.zeros(grey.spatial_shape, np.uint8))
    roi.array[0, 100:120, 200:240] = 1
    table = ml.timeseries.curves(grey, roi)
    expected = grey.array[0, 100:120, 200:240, 0].mean()
    assert table["mean"].tolist() == pytest.approx([expected, expected])
