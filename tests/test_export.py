"""Export: DICOM SEG and RTSTRUCT (ml.segmentation), TID 1500 SR and tables (ml.measure).

Independent references: the source series read with plain pydicom (SOP
instance UID of each slice position), pydicom traversal of the written
and of dcmqi's objects, highdicom's own SEG reader
(``get_pixels_by_source_instance``) as a second opinion, and pandas
reading the CSV/Parquet files.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy import ndimage

import medlab as ml
from medlab.errors import GeometryMismatchError
from medlab.measure import SRError, label_stats, read_sr, to_suv, to_table, write_sr
from medlab.segmentation import (
    SegmentationError,
    read_rtstruct,
    read_seg,
    rtstruct_to_masks,
    write_rtstruct,
    write_seg,
)

hd = pytest.importorskip("highdicom")
pytest.importorskip("skimage")

STS_CT = "dicom/STS_002/CT/image"
STS_RS = "dicom/STS_002/CT/mask"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
SR3D_SOP = "1.2.840.10008.5.1.4.1.1.88.34"


@pytest.fixture(scope="module")
def sts():
    ct = ml.load(ml.data.path("sts-cohort", STS_CT))
    gtv = rtstruct_to_masks(ml.data.path("sts-cohort", STS_RS), ct)["GTV_Mass_CT"]
    return ct, gtv


@pytest.fixture(scope="module")
def ct3():
    return ml.load(ml.data.path("dcmqi", "segmentations/ct-3slice"))


def sop_by_z(image: ml.Image) -> dict[float, str]:
    """z (mm, rounded) -> SOP Instance UID of the source files, read with pydicom."""
    out = {}
    for f in image.meta["files"]:
        ds = _quiet_read(f)
        out[round(float(ds.ImagePositionPatient[2]), 2)] = str(ds.SOPInstanceUID)
    return out


def _quiet_read(path):
    """pydicom.dcmread without the warnings about the sources' over-long SH values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


# --------------------------------------------------------------------- SEG
def test_seg_of_the_sts_gtv_round_trips_and_references_each_ct_slice(sts, tmp_path):
    ct, gtv = sts
    labels = gtv.with_array(gtv.array.astype(np.uint8), meta={"labels": {1: "GTV"}})
    path = write_seg(labels, ct, tmp_path / "gtv_seg.dcm")

    back = read_seg(path, reference=ct)
    assert back.segments["label"].tolist() == ["GTV"]
    np.testing.assert_array_equal(back.masks()[1].array, gtv.array)
    np.testing.assert_array_equal(back.labels().array, labels.array)

    ds = _quiet_read(path)
    src = _quiet_read(ct.meta["files"][0])
    assert (str(ds.SOPClassUID), ds.Modality, ds.SegmentationType) == (SEG_SOP, "SEG", "BINARY")
    for kw in ("StudyInstanceUID", "PatientID", "FrameOfReferenceUID"):
        assert str(ds[kw].value) == str(src[kw].value), kw
    assert str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID) == ct.meta["series_uid"]
    assert int(ds.NumberOfFrames) == int(np.count_nonzero(gtv.array.any(axis=(1, 2))))
    by_z = sop_by_z(ct)
    for frame in ds.PerFrameFunctionalGroupsSequence:
        z = round(float(frame.PlanePositionSequence[0].ImagePositionPatient[2]), 2)
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert str(ref) == by_z[z]
    # second opinion: highdicom's reader, slice by slice through the source instances
    seg = hd.seg.segread(path)
    order = np.argsort([z for z in by_z])
    uids = [list(by_z.values())[i] for i in order]
    z_sorted = np.sort(list(by_z))
    k_of_z = np.rint((z_sorted - ct.origin[2]) / ct.spacing[0]).astype(int)
    pix = seg.get_pixels_by_source_instance(uids, segment_numbers=[1], ignore_spatial_locations=True)
    np.testing.assert_array_equal(pix[..., 0].astype(bool), gtv.array[k_of_z])


def test_seg_overlapping_segments_and_fractions_on_dcmqi_ct(ct3, tmp_path):
    original = read_seg(ml.data.path("dcmqi", "segmentations/partial_overlaps.dcm"), reference=ct3)
    masks = {m.meta["label"]: m for m in original.masks().values()}
    assert len(masks) == 5
    path = write_seg(masks, ct3, tmp_path / "overlaps.dcm", algorithm_type="AUTOMATIC")
    back = read_seg(path, reference=ct3)
    assert back.segments["label"].tolist() == list(masks)
    for mask in back.masks().values():
        np.testing.assert_array_equal(mask.array, masks[mask.meta["label"]].array)
    ds = _quiet_read(path)
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert ds.SegmentSequence[0].SegmentAlgorithmName == "medlab"

    liver = read_seg(ml.data.path("dcmqi", "segmentations/liver.dcm"), reference=ct3).masks()[1]
    smooth = ndimage.gaussian_filter(liver.array.astype(np.float32), sigma=(0, 3, 3)).clip(0, 1)
    frac = liver.with_array(smooth.astype(np.float32))
    path = write_seg({"liver fraction": frac}, ct3, tmp_path / "frac.dcm", segmentation_type="FRACTIONAL")
    got = read_seg(path, reference=ct3).masks()[1].array
    assert _quiet_read(path).SegmentationType == "FRACTIONAL"
    np.testing.assert_allclose(got, np.round(smooth * 255) / 255, atol=1e-6)


def test_seg_and_rtstruct_on_a_multi_frame_source(tmp_path):
    """Siemens XA10 enhanced MR: one file, 6 frames with per-frame pixel measures."""
    mr = ml.load(ml.data.path("dcm-qa-enhanced", "In/Siemens/XA10/6_1.dcm"))
    bright = mr.with_array(mr.array > np.percentile(mr.array, 70))
    back = read_seg(write_seg({"bright": bright}, mr, tmp_path / "mf_seg.dcm"), reference=mr)
    np.testing.assert_array_equal(back.masks()[1].array, bright.array)
    ds = _quiet_read(tmp_path / "mf_seg.dcm")
    src = _quiet_read(mr.meta["files"][0])
    positions = {int(i + 1): round(float(f.PlanePositionSequence[0].ImagePositionPatient[2]), 3)
                 for i, f in enumerate(src.PerFrameFunctionalGroupsSequence)}
    for frame in ds.PerFrameFunctionalGroupsSequence:  # each frame points at the source frame
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert str(ref.ReferencedSOPInstanceUID) == str(src.SOPInstanceUID)
        z = round(float(frame.PlanePositionSequence[0].ImagePositionPatient[2]), 3)
        assert positions[int(ref.ReferencedFrameNumber)] == z
    # the mask touches the grid's edges: contours along the border must still read back
    rt = write_rtstruct({"bright": bright}, mr, tmp_path / "mf_rt.dcm")
    np.testing.assert_array_equal(rtstruct_to_masks(rt, mr)["bright"].array, bright.array)


def test_seg_writer_errors(sts, ct3, tmp_path):
    ct, gtv = sts
    with pytest.raises(GeometryMismatchError, match=r"resample_to\(source_image"):
        write_seg({"GTV": gtv}, ct3, tmp_path / "x.dcm")
    with pytest.raises(GeometryMismatchError, match="slices"):  # one row fewer than the CT
        write_seg({"GTV": ml.Image(gtv.array[:, 1:], gtv.affine)}, ct, tmp_path / "x.dcm")
    with pytest.raises(SegmentationError, match="empty"):
        write_seg({"GTV": gtv.with_array(np.zeros_like(gtv.array))}, ct, tmp_path / "x.dcm")
    with pytest.raises(SegmentationError, match="FRACTIONAL"):
        write_seg({"GTV": gtv.with_array(gtv.array * 0.5)}, ct, tmp_path / "x.dcm")
    with pytest.raises(SegmentationError, match=r"meta\['files'\]"):
        write_seg({"GTV": gtv}, ml.Image(np.zeros(ct.shape), ct.affine), tmp_path / "x.dcm")


# ---------------------------------------------------------------- RTSTRUCT
def test_rtstruct_of_the_sts_gtv_round_trips(sts, tmp_path):
    ct, gtv = sts
    path = write_rtstruct({"GTV": gtv}, ct, tmp_path / "rt.dcm", interpreted_types="GTV")
    back = rtstruct_to_masks(path, ct)["GTV"].array
    a = gtv.array
    dice = 2 * np.count_nonzero(a & back) / (np.count_nonzero(a) + np.count_nonzero(back))
    assert dice > 0.98

    ds = pydicom.dcmread(path)
    src = _quiet_read(ct.meta["files"][0])
    assert (str(ds.SOPClassUID), ds.Modality) == (RTSTRUCT_SOP, "RTSTRUCT")
    for kw in ("StructureSetLabel", "StructureSetDate", "StructureSetROISequence", "ROIContourSequence",
               "RTROIObservationsSequence", "ReferencedFrameOfReferenceSequence", "SeriesInstanceUID"):
        assert kw in ds, kw
    for kw in ("StudyInstanceUID", "PatientID", "FrameOfReferenceUID"):
        assert str(ds[kw].value) == str(src[kw].value), kw
    fr = ds.ReferencedFrameOfReferenceSequence[0]
    series = fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert str(series.SeriesInstanceUID) == ct.meta["series_uid"]
    assert len(series.ContourImageSequence) == ct.spatial_shape[0]
    assert ds.RTROIObservationsSequence[0].RTROIInterpretedType == "GTV"
    # each contour lies in the plane of the CT slice it references (pydicom's own reading)
    by_z = sop_by_z(ct)
    contours = ds.ROIContourSequence[0].ContourSequence
    assert len(contours) >= np.count_nonzero(a.any(axis=(1, 2)))
    for c in contours:
        pts = np.asarray(c.ContourData, float).reshape(-1, 3)
        z = round(float(pts[0, 2]), 2)
        assert np.ptp(pts[:, 2]) < 1e-3 and c.ContourGeometricType == "CLOSED_PLANAR"
        assert str(c.ContourImageSequence[0].ReferencedSOPInstanceUID) == by_z[z]
    table = read_rtstruct(path)
    assert table.loc[0, "name"] == "GTV" and table.loc[0, "referenced_series_uid"] == ct.meta["series_uid"]


def test_rtstruct_holes_and_islands_on_the_dcmqi_ct(ct3, tmp_path):
    rr, cc = np.mgrid[:512, :512]
    ring = ((rr - 250) ** 2 + (cc - 250) ** 2 <= 60**2) & ((rr - 250) ** 2 + (cc - 250) ** 2 > 25**2)
    island = (np.abs(rr - 100) < 8) & (np.abs(cc - 400) < 12)
    arr = np.zeros(ct3.spatial_shape, bool)
    arr[1] = ring | island
    arr[2, 300:320, 50:90] = True
    labels = ct3.with_array(arr.astype(np.uint8) * 2, meta={"labels": {2: "ring"}})
    path = write_rtstruct(labels, ct3, tmp_path / "ring.dcm")
    back = rtstruct_to_masks(path, ct3)["ring"].array
    dice = 2 * np.count_nonzero(arr & back) / (np.count_nonzero(arr) + np.count_nonzero(back))
    assert dice > 0.98
    assert not back[1, 250, 250] and back[1, 250, 250 + 40]  # the hole stays a hole
    assert len(pydicom.dcmread(path).ROIContourSequence[0].ContourSequence) == 4  # 2 ring + island + box


# ---------------------------------------------------------------------- SR
def _num_items(ds):
    """(tracking id, concept meaning, derivation meaning, value, unit) of NUM items, by pydicom."""
    out = []

    def walk(items, tracking=None):
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
            if item.ValueType == "CONTAINER" and name == "Measurement Group":
                tid = next((str(i.TextValue) for i in item.ContentSequence
                            if i.ConceptNameCodeSequence[0].CodeMeaning == "Tracking Identifier"), None)
                walk(item.ContentSequence, tid)
            elif item.ValueType == "NUM" and tracking is not None:
                mv = item.MeasuredValueSequence[0]
                value = float(mv.FloatingPointValue) if "FloatingPointValue" in mv else float(mv.NumericValue)
                deriv = next((str(m.ConceptCodeSequence[0].CodeMeaning) for m in item.get("ContentSequence", [])
                              if m.ConceptNameCodeSequence[0].CodeMeaning == "Derivation"), None)
                out.append((tracking, str(name), deriv, value,
                            str(mv.MeasurementUnitsCodeSequence[0].CodeValue)))
            elif "ContentSequence" in item:
                walk(item.ContentSequence, tracking)

    walk(ds.ContentSequence)
    return out


def test_sr_round_trips_ct_statistics_exactly(sts, tmp_path):
    ct, gtv = sts
    core = ndimage.binary_erosion(gtv.array, iterations=2)
    arr = gtv.array.astype(np.uint8)
    arr[core] = 2
    labels = gtv.with_array(arr, meta={"labels": {1: "GTV rim", 2: "GTV core"}})
    stats = label_stats(ct, labels, shape=False)
    seg_path = write_seg(labels, ct, tmp_path / "seg.dcm")
    sr_path = write_sr(stats, seg_path, ct, tmp_path / "sr.dcm")

    table = read_sr(sr_path)
    assert len(table) == 2 * 6 and set(table["tracking_id"]) == {"GTV rim", "GTV core"}
    for _, row in table.iterrows():
        expected = stats.loc[stats["name"] == row["tracking_id"], row["statistic"]].item()
        assert row["value"] == expected, (row["tracking_id"], row["statistic"])  # exact
    assert set(table.loc[table["statistic"] == "mean", "unit"]) == {"[hnsf'U]"}
    assert set(table.loc[table["statistic"] == "volume_mm3", "unit"]) == {"mm3"}
    # as people read them (reports show this column, never the UCUM code)
    assert set(table.loc[table["statistic"] == "mean", "units"]) == {"HU"}
    assert set(table.loc[table["statistic"] == "volume_mm3", "units"]) == {"mm³"}
    seg_ds = _quiet_read(seg_path)
    assert set(table["seg_sop_instance_uid"]) == {str(seg_ds.SOPInstanceUID)}
    assert set(table["source_series_uid"]) == {ct.meta["series_uid"]}
    numbers = dict(zip(table["tracking_id"], table["segment_number"], strict=False))
    labels_by_number = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg_ds.SegmentSequence}
    assert all(labels_by_number[n] == name for name, n in numbers.items())

    ds = _quiet_read(sr_path)  # validity, read independently
    assert (str(ds.SOPClassUID), ds.Modality) == (SR3D_SOP, "SR")
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"
    assert str(ds.StudyInstanceUID) == str(seg_ds.StudyInstanceUID)
    evidence = {str(s.ReferencedSOPInstanceUID)
                for e in ds.CurrentRequestedProcedureEvidenceSequence
                for series in e.ReferencedSeriesSequence for s in series.ReferencedSOPSequence}
    assert str(seg_ds.SOPInstanceUID) in evidence and set(sop_by_z(ct).values()) <= evidence
    by_pydicom = _num_items(ds)
    assert len(by_pydicom) == len(table)
    for tracking, name, deriv, value, _ in by_pydicom:
        column = {"Mean": "mean", "Standard Deviation": "std", "Minimum": "min",
                  "Maximum": "max", "Median": "median", None: "volume_mm3"}[deriv]
        assert value == stats.loc[stats["name"] == tracking, column].item()
        assert name == ("Volume" if column == "volume_mm3" else "Attenuation Coefficient")


def test_sr_of_pet_suv_statistics(tmp_path):
    pet = to_suv(ml.load(ml.data.path("sts-cohort", "dicom/STS_002/PET/image")))
    gtv = rtstruct_to_masks(ml.data.path("sts-cohort", "dicom/STS_002/PET/mask"), pet)
    stats = label_stats(pet, next(iter(gtv.values())).with_array(
        next(iter(gtv.values())).array.astype(np.uint8), meta={"labels": {1: "GTV"}}), shape=False)
    assert stats.loc[0, "units"] == "SUVbw"
    seg_path = write_seg(gtv, pet, tmp_path / "pet_seg.dcm")
    stats["name"] = list(gtv)  # name the row like the segment
    table = read_sr(write_sr(stats, seg_path, pet, tmp_path / "pet_sr.dcm"))
    means = table[table["statistic"] == "mean"]
    assert means["unit"].item() == "g/ml{SUVbw}" and means["quantity"].item() == "SUVbw"
    assert means["units"].item() == "SUVbw"
    assert means["value"].item() == stats.loc[0, "mean"]


def test_read_sr_of_dcmqi_agrees_with_pydicom():
    path = ml.data.path("dcmqi", "sr-example/sr.dcm")
    table = read_sr(path)
    ds = _quiet_read(path)
    by_pydicom = _num_items(ds)
    assert len(table) == len(by_pydicom) == 22
    for (_, row), (tracking, name, deriv, value, unit) in zip(table.iterrows(), by_pydicom, strict=True):
        assert (row["tracking_id"], row["quantity"], row["value"], row["unit"]) == (tracking, name, value, unit)
        assert row["derivation"] == deriv or (deriv is None and pd.isna(row["derivation"]))
    mean = table.loc[table["statistic"] == "mean", "value"].item()
    volume = table.loc[table["statistic"] == "volume_ml", "value"].item()
    tlg = table.loc[table["quantity"] == "Total Lesion Glycolysis", "value"].item()
    assert (mean, volume) == (6.01529, 33.5824)
    assert mean * volume == pytest.approx(tlg, abs=1e-3)  # TLG = SUVmean x volume
    seg = pydicom.dcmread(ml.data.path("dcmqi", "sr-example/seg.dcm"), stop_before_pixels=True)
    assert set(table["seg_sop_instance_uid"]) == {str(seg.SOPInstanceUID)}
    assert set(table["segment_number"]) == {1}
    assert set(table["finding_site"]) == {"pharyngeal tonsil (adenoid)"}


def test_sr_writer_errors(sts, tmp_path):
    ct, gtv = sts
    labels = gtv.with_array(gtv.array.astype(np.uint8), meta={"labels": {1: "GTV"}})
    stats = label_stats(ct, labels, shape=False)
    seg_path = write_seg(labels, ct, tmp_path / "seg.dcm")
    wrong = stats.assign(name="tumour")
    with pytest.raises(SRError, match=r"'tumour'.*segments 1: 'GTV'"):
        write_sr(wrong, seg_path, ct, tmp_path / "sr.dcm")
    with pytest.raises(SRError, match="intensity_concept="):
        write_sr(stats.assign(units="furlongs"), seg_path, ct, tmp_path / "sr.dcm")
    with pytest.raises(SRError, match="choose among"):
        write_sr(stats, seg_path, ct, tmp_path / "sr.dcm", measurements=["p95"])
    with pytest.raises(SRError, match=r"not a TID 1500|cannot be read"):
        read_sr(seg_path)


# ------------------------------------------------------------------ tables
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_carry_source_uids_and_version(sts, tmp_path, suffix):
    ct, gtv = sts
    stats = label_stats(ct, gtv.with_array(gtv.array.astype(np.uint8)))
    written = to_table(stats, tmp_path / f"stats{suffix}", source=ct)
    back = (pd.read_csv(tmp_path / f"stats{suffix}") if suffix == ".csv"
            else pd.read_parquet(tmp_path / f"stats{suffix}"))
    assert back.loc[0, "study_instance_uid"] == ct.meta["study_uid"]
    assert back.loc[0, "series_instance_uid"] == ct.meta["series_uid"]
    assert back.loc[0, "frame_of_reference_uid"] == ct.meta["frame_of_reference_uid"]
    assert back.loc[0, "medlab_version"] == ml.__version__
    for column in ("volume_mm3", "mean", "std", "longest_diameter_mm"):
        assert back.loc[0, column] == stats.loc[0, column]
    assert list(back.columns) == list(written.columns)
    with pytest.raises(ValueError, match="suffix"):
        to_table(stats, tmp_path / "stats.xlsx")
