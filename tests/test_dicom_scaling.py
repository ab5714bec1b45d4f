"""Quantitative value scaling as the reference tools do it (issue 13, finding 5).

References: hand computations from the DICOM tags with pydicom (Philips'
private scale slope, Real World Value Mapping), pydicom's
``apply_modality_lut``, and dcm2niix's NIfTI for the Philips file.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pydicom.pixels
import pytest

import medlab as ml
import medlab.io

DCM2NIIX = shutil.which("dcm2niix") or "/usr/bin/dcm2niix"


@pytest.fixture(scope="module")
def philips(data_root: Path) -> Path:
    return data_root / "dcm-qa-enhanced" / "In" / "Philips" / "IM_0027_fMAP.dcm"


def _load_all(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(medlab.io.load_all(path, progress=False, **kwargs))


def _frame_slices(images: dict, ds) -> list[tuple[np.ndarray, np.ndarray]]:
    """(our slice, pydicom frame index) pairs, matched by frame type and position."""
    out = []
    for i, per in enumerate(ds.PerFrameFunctionalGroupsSequence):
        field_map = "FIELD_MAP" in per.MRImageFrameTypeSequence[0].FrameType
        img = next(v for k, v in images.items() if ("FIELD_MAP" in k) == field_map)
        ipp = [float(v) for v in per.PlanePositionSequence[0].ImagePositionPatient]
        idx = img.world_to_index(ipp)
        assert np.allclose(idx[1:], 0, atol=1e-3)
        out.append((img.array[int(np.rint(idx[0]))], i))
    return out


def test_philips_floating_point_values_by_default(philips):
    # finding 5: dcm2niix's default, FP = (SV * RS + RI) / (RS * SS) with the private
    # scale slope SS (2005,100E) of each frame; hand-computed from the tags here
    ds = pydicom.dcmread(philips)
    stored = ds.pixel_array.astype(np.float64)
    images = _load_all(philips)
    assert len(images) == 2
    assert all(v.meta["scaling"] == "philips-float" for v in images.values())
    assert "scaling='philips-float'" in repr(next(iter(images.values())))
    for ours, i in _frame_slices(images, ds):
        per = ds.PerFrameFunctionalGroupsSequence[i]
        rs = float(per.PixelValueTransformationSequence[0].RescaleSlope)
        ri = float(per.PixelValueTransformationSequence[0].RescaleIntercept)
        ss = float(per[0x2005, 0x140F][0][0x2005, 0x100E].value)
        expected = (stored[i] * rs + ri) / (rs * ss)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-4)
    # the display values on request: Rescale Slope/Intercept only
    display = _load_all(philips, scaling="display")
    assert all(v.meta["scaling"] == "rescale" for v in display.values())
    for ours, i in _frame_slices(display, ds):
        pvt = ds.PerFrameFunctionalGroupsSequence[i].PixelValueTransformationSequence[0]
        expected = stored[i] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-4)


def test_philips_values_agree_with_dcm2niix(philips, tmp_path):
    subprocess.run([DCM2NIIX, "-z", "n", "-f", "x", "-o", str(tmp_path), str(philips)],
                   check=True, capture_output=True)
    images = _load_all(philips)
    for nii in sorted(tmp_path.glob("x*.nii")):
        ref = ml.load(nii).reorient("SPL")
        ours = next(v for k, v in images.items()
                    if ("FIELD_MAP" in k) == ("fieldmap" in nii.name)).reorient("SPL")
        np.testing.assert_allclose(ours.affine, ref.affine, atol=0.01)
        # dcm2niix stores int16 with a float32 scl_slope: it rounds the slope, so the
        # largest value may differ by that slope's error times the largest stored value
        slope = float(nib.load(nii).dataobj.slope)
        raw_max = float(np.abs(np.asanyarray(nib.load(nii).dataobj.get_unscaled())).max())
        tol = 1e-5 * abs(slope) * raw_max + 1e-6 * float(np.abs(ref.array).max())
        assert np.abs(ours.array - ref.array).max() <= tol


def test_modality_lut_sequence_matches_pydicom(data_root):
    path = data_root / "fo-dicom" / "CR-ModalitySequenceLUT.dcm"
    ds = pydicom.dcmread(path)
    expected = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
    assert not np.array_equal(expected, ds.pixel_array)  # the table is not the identity
    img = ml.load(path)
    assert img.meta["scaling"] == "modality-lut"
    np.testing.assert_array_equal(img.array[0], expected)


def test_real_world_value_mapping_of_a_parametric_map(data_root, tmp_path):
    import highdicom as hd

    src = pydicom.dcmread(data_root / "dcmqi" / "paramaps" / "pm-example-slice.dcm")
    stored = src.pixel_array.astype(np.uint16)
    rwvm = hd.pm.RealWorldValueMapping(
        lut_label="ADC", lut_explanation="ADC", unit=hd.sr.CodedConcept("mm2/s", "UCUM", "mm2/s"),
        value_range=(0, int(stored.max())), slope=1e-6, intercept=-1e-5)
    pm = hd.pm.ParametricMap([src], stored[None], hd.UID(), 99, hd.UID(), 1, "medlab", "test",
                             "0", "0", False, [rwvm], voi_lut_transformations=[
        hd.VOILUTTransformation(window_center=1000, window_width=2000)])
    pm.save_as(tmp_path / "pm.dcm")
    ds = pydicom.dcmread(tmp_path / "pm.dcm")
    item = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    expected = stored * float(item.RealWorldValueSlope) + float(item.RealWorldValueIntercept)
    img = ml.load(tmp_path / "pm.dcm")
    assert img.meta["scaling"] == "real-world-value-mapping" and img.meta["units"] == "mm2/s"
    np.testing.assert_allclose(img.array[0], expected, rtol=1e-6, atol=1e-12)
    # display: the stored values (the identity Pixel Value Transformation)
    np.testing.assert_array_equal(ml.load(tmp_path / "pm.dcm", scaling="display").array[0],
                                  stored)


def test_scaling_option_is_checked(philips):
    with pytest.raises(ValueError, match="scaling must be 'quantitative' or 'display'"):
        ml.load(philips, scaling="float")


@pytest.mark.parametrize(("top", "dtype"), [(30000, np.int16), (65000, np.int32)])
def test_integer_rescale_per_slice_intercepts_matches_pydicom(tmp_path, top, dtype):
    """Unsigned 16-bit stored values with a different integer intercept per slice: the
    result type comes from the actual values (int16 when they fit, else int32) and every
    voxel equals pydicom's stored value plus its file's intercept."""
    from helpers import write_dicom_series

    stored = np.random.default_rng(3).integers(0, 3000, (6, 5, 7)).astype(np.uint16)
    stored[3, 2, 2] = top
    paths, _ = write_dicom_series(tmp_path, stored, signed=False, intercept=-1024.0)
    for k, path in enumerate(paths):  # the intercepts -1024, -1000, ... differ by slice
        ds = pydicom.dcmread(path)
        ds.RescaleIntercept = -1024 + 24 * k
        ds.save_as(path)
    expected = np.stack([pydicom.dcmread(p).pixel_array.astype(np.int64)
                         + int(pydicom.dcmread(p).RescaleIntercept) for p in paths])
    img = ml.load(tmp_path, progress=False)
    assert img.dtype == dtype
    np.testing.assert_array_equal(img.array.astype(np.int64), expected)
