"""The samples bundled in data/ against the public datasets they come from.

A cropped DICOM series must be the original's sub-array on the original's
grid: its affine is the original's composed with the crop offset (found here
from the DICOM tags by hand, with pydicom), its voxels equal the original's
sub-array, and its structure sets rasterise to the sub-array of the original
masks.  Multi-frame samples keep the first frames bit for bit; copied files
are byte-identical.  Regenerating the samples gives the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import REPO

import medlab as ml

BUNDLED = REPO / "data"


def _shared() -> Path | None:
    for part in os.environ.get("MEDLAB_DATA", "").split(os.pathsep):
        if part and (Path(part) / "sts-cohort").is_dir():
            return Path(part)
    return None


SHARED = _shared()
pytestmark = pytest.mark.skipif(SHARED is None, reason="needs MEDLAB_DATA with the public datasets")


def _header(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def _crop_offset(sample_dir: Path, orig_dir: Path) -> tuple[int, int, int]:
    """(slice, row, column) offset of a crop, from ImagePositionPatient by hand."""
    name = sorted(p.name for p in sample_dir.iterdir())[0]
    s, o = _header(sample_dir / name), _header(orig_dir / name)
    iop = np.asarray(o.ImageOrientationPatient, float)
    row_mm, col_mm = (float(v) for v in o.PixelSpacing)
    d = np.asarray(s.ImagePositionPatient, float) - np.asarray(o.ImagePositionPatient, float)
    c0, r0 = d @ iop[:3] / col_mm, d @ iop[3:] / row_mm
    assert np.allclose([c0, r0], np.round([c0, r0]), atol=1e-3), (c0, r0)
    assert np.allclose(d, round(c0) * col_mm * iop[:3] + round(r0) * row_mm * iop[3:], atol=1e-3)
    normal = np.cross(iop[:3], iop[3:])
    # the first slice of the crop along the slice normal, counted in the original
    height = lambda p: float(np.asarray(_header(p).ImagePositionPatient, float) @ normal)  # noqa: E731
    first = min(sample_dir.iterdir(), key=height)
    k0 = sorted(height(p) for p in orig_dir.iterdir()).index(height(orig_dir / first.name))
    return k0, round(r0), round(c0)


def _check_crop(sample_dir: Path, orig_dir: Path) -> tuple[ml.Image, ml.Image, tuple]:
    k0, r0, c0 = _crop_offset(sample_dir, orig_dir)
    sample, orig = ml.load(sample_dir), ml.load(orig_dir)
    shift = np.eye(4)
    shift[:3, 3] = (k0, r0, c0)
    np.testing.assert_allclose(sample.affine, orig.affine @ shift, atol=1e-4)
    k, r, c = sample.spatial_shape
    assert np.array_equal(sample.array, orig.array[k0:k0 + k, r0:r0 + r, c0:c0 + c])
    # and file by file with pydicom: stored values are the original's sub-array
    for f in sorted(sample_dir.iterdir())[:3]:
        a, b = pydicom.dcmread(f), pydicom.dcmread(orig_dir / f.name)
        assert np.array_equal(a.pixel_array, b.pixel_array[r0:r0 + a.Rows, c0:c0 + a.Columns])
        assert a.SeriesInstanceUID != b.SeriesInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
        assert a.FrameOfReferenceUID == b.FrameOfReferenceUID and a.ImageType[0] == "DERIVED"
        assert "cropped" in a.DerivationDescription
    return sample, orig, (k0, r0, c0)


@pytest.mark.parametrize("patient", ["STS_002", "STS_008"])
@pytest.mark.parametrize("modality", ["CT", "MR_T1", "PET"])
def test_sts_crop_keeps_geometry_voxels_and_contours(patient: str, modality: str) -> None:
    sample_root = BUNDLED / "sts-cohort-sample" / "dicom" / patient / modality
    orig_root = SHARED / "sts-cohort" / "dicom" / patient / modality
    sample, orig, (k0, r0, c0) = _check_crop(sample_root / "image", orig_root / "image")
    rs_sample, rs_orig = sample_root / "mask" / "RS.dcm", orig_root / "mask" / "RS.dcm"
    m_sample = next(iter(ml.segmentation.rtstruct_to_masks(rs_sample, sample).values())).array
    m_orig = next(iter(ml.segmentation.rtstruct_to_masks(rs_orig, orig).values())).array
    k, r, c = sample.spatial_shape
    assert m_sample.any() and np.array_equal(m_sample, m_orig[k0:k0 + k, r0:r0 + r, c0:c0 + c])
    assert m_orig.sum() == m_sample.sum(), "the whole tumour lies inside the crop"
    # the structure set references exactly the cropped images, by their new UIDs
    rs = pydicom.dcmread(rs_sample)
    uids = {str(_header(p).SOPInstanceUID) for p in (sample_root / "image").iterdir()}
    series = {str(_header(p).SeriesInstanceUID) for p in (sample_root / "image").iterdir()}
    refs = {str(item.ReferencedSOPInstanceUID)
            for frame in rs.ReferencedFrameOfReferenceSequence
            for study in frame.RTReferencedStudySequence
            for s in study.RTReferencedSeriesSequence
            for item in s.ContourImageSequence}
    contour_refs = {str(item.ReferencedSOPInstanceUID)
                    for roi in rs.ROIContourSequence for cont in roi.ContourSequence
                    for item in cont.get("ContourImageSequence", [])}
    assert refs == uids and contour_refs <= uids
    assert {str(s.SeriesInstanceUID) for frame in rs.ReferencedFrameOfReferenceSequence
            for study in frame.RTReferencedStudySequence
            for s in study.RTReferencedSeriesSequence} == series


def test_breast_dce_crop_keeps_geometry_voxels_and_timing() -> None:
    sample, orig, _ = _check_crop(BUNDLED / "breast-dce-sample" / "dce_3dfgre_3phases",
                                  SHARED / "breast-dce" / "dce_3dfgre_3phases")
    assert sample.n_frames == orig.n_frames == 3
    np.testing.assert_allclose(sample.frame_times_s, orig.frame_times_s)


@pytest.mark.parametrize(("name", "origin", "rel", "n"), [
    ("us-cine-sample", "us-cine", "color3d_jpeg_baseline.dcm", 16),
    ("xa-mr-cine-sample", "xa-mr-cine", "MOVEKNEE.dcm", 10),
])
def test_multiframe_samples_keep_the_first_frames(name: str, origin: str, rel: str, n: int) -> None:
    a, b = pydicom.dcmread(BUNDLED / name / rel), pydicom.dcmread(SHARED / origin / rel)
    assert int(a.NumberOfFrames) == n < int(b.NumberOfFrames)
    assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
    assert np.array_equal(a.pixel_array, b.pixel_array[:n])
    if "PerFrameFunctionalGroupsSequence" in b:
        assert len(a.PerFrameFunctionalGroupsSequence) == n
    sample, orig = ml.load(BUNDLED / name / rel), ml.load(SHARED / origin / rel)
    np.testing.assert_allclose(sample.frame_times_s, orig.frame_times_s[:n])
    np.testing.assert_allclose(sample.affine, orig.affine)


@pytest.mark.parametrize(("name", "origin"), [
    ("wg04-modalities-sample", "wg04-modalities"), ("ct2d-head-sample", "ct2d-head"),
    ("dcm-qa-orientation-sample", "dcm-qa-orientation"), ("fo-dicom-sample", "fo-dicom"),
])
def test_copied_samples_are_byte_identical(name: str, origin: str) -> None:
    files = [p for p in (BUNDLED / name).rglob("*") if p.is_file() and p.name != "SOURCE.txt"]
    assert files
    for p in files:
        rel = p.relative_to(BUNDLED / name)
        assert p.read_bytes() == (SHARED / origin / rel).read_bytes(), rel


def test_every_sample_names_origin_licence_and_derivation() -> None:
    table = ml.data.datasets().set_index("name")
    for folder in (p for p in BUNDLED.iterdir() if p.is_dir()):
        note = (folder / "SOURCE.txt").read_text()
        origin = note.split("medlab dataset '", 1)[1].split("'", 1)[0]
        assert origin in table.index and not table.loc[origin, "bundled"]
        assert f"License: {table.loc[origin, 'licence']}" in note
        assert "make_samples.py" in note and "What:" in note


@pytest.mark.slow
def test_make_samples_is_deterministic(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BUNDLED / "make_samples.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr

    def digest(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file() and p.parent != root}

    assert digest(tmp_path) == digest(BUNDLED)
