"""DICOM -> NIfTI + BIDS sidecar, checked against dcm2niix's conversion."""

from __future__ import annotations

import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

import medlab as ml

pytestmark = pytest.mark.skipif(
    shutil.which("dcm2niix") is None, reason="needs Debian's dcm2niix (CI installs it)"
)

SERIES = [
    "dcm-qa-nih/In/20180918Si/mr_0003",  # PE AP (COL, positive)
    "dcm-qa-nih/In/20180918Si/mr_0004",  # PE PA
    "dcm-qa-nih/In/20180918Si/mr_0005",  # PE RL (ROW)
    "dcm-qa-nih/In/20180918Si/mr_0006",  # PE LR
    "dcm-qa-nih/In/20180918GE/mr_0004",  # GE classic 4D
    "dcm-qa-orientation/In/sag/sagint36",  # sagittal, interleaved
]


def _dataset_path(rel: str):
    name, _, sub = rel.partition("/")
    return ml.data.fetch(name) / sub


def _pe_world_vector(direction: str, affine_lps_xyz: np.ndarray) -> np.ndarray:
    """World (LPS) unit vector of a BIDS phase-encoding direction, given the
    NIfTI's (i, j, k) affine converted to LPS."""
    axis = "ijk".index(direction[0])
    v = affine_lps_xyz[:3, axis]
    v = v / np.linalg.norm(v)
    return -v if direction.endswith("-") else v


@pytest.mark.parametrize("rel", SERIES, ids=[s.split("/", 1)[1] for s in SERIES])
def test_sidecar_agrees_with_dcm2niix(rel, tmp_path):
    src = _dataset_path(rel)
    ours = ml.io.dicom_to_nifti(src, tmp_path / "ours", progress=False)
    assert len(ours) == 1
    (tmp_path / "ref").mkdir()
    subprocess.run(["dcm2niix", "-b", "y", "-ba", "n", "-z", "n", "-f", "ref", "-o",
                    str(tmp_path / "ref"), str(src)], check=True, capture_output=True)
    ref_json = json.loads((tmp_path / "ref" / "ref.json").read_text())
    our_json = json.loads(ours[0].with_name(ours[0].name.replace(".nii.gz", ".json")).read_text())

    for key in ("RepetitionTime", "EchoTime", "FlipAngle", "SliceThickness"):
        assert our_json[key] == pytest.approx(ref_json[key], rel=1e-4), key

    our_nii, ref_nii = nib.load(ours[0]), nib.load(tmp_path / "ref" / "ref.nii")
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    # phase encoding: same direction in the patient, whatever each tool's axis order
    if "PhaseEncodingDirection" in ref_json:
        if "PhaseEncodingDirection" in our_json:
            ours_v = _pe_world_vector(our_json["PhaseEncodingDirection"], flip @ our_nii.affine)
            ref_v = _pe_world_vector(ref_json["PhaseEncodingDirection"], flip @ ref_nii.affine)
            np.testing.assert_allclose(ours_v, ref_v, atol=1e-3)
        else:  # polarity not in the headers we read (GE): the axis must still agree
            ours_v = _pe_world_vector(our_json["PhaseEncodingAxis"], flip @ our_nii.affine)
            ref_v = _pe_world_vector(ref_json["PhaseEncodingDirection"], flip @ ref_nii.affine)
            assert abs(ours_v @ ref_v) == pytest.approx(1, abs=1e-3)

    # slice timing: the time of the slice at the same world position must agree
    if "SliceTiming" in our_json:
        ref_times = np.asarray(ref_json["SliceTiming"])
        our_times = np.asarray(our_json["SliceTiming"])
        assert len(our_times) == len(ref_times)
        k_world_ours = (flip @ our_nii.affine)[:3, 3][None] + np.outer(
            np.arange(len(our_times)), (flip @ our_nii.affine)[:3, 2])
        k_world_ref = (flip @ ref_nii.affine)[:3, 3][None] + np.outer(
            np.arange(len(ref_times)), (flip @ ref_nii.affine)[:3, 2])
        for k, w in enumerate(k_world_ours):
            match = np.argmin(np.linalg.norm(k_world_ref - w, axis=1))
            assert our_times[k] == pytest.approx(ref_times[match], abs=2e-3)

    # voxels and world positions agree (both files written from the same data)
    ours_img = ml.Image.from_nibabel(our_nii)
    ref_img = ml.Image.from_nibabel(ref_nii)
    for t in (0, ours_img.n_frames - 1):
        a = ours_img.frame(t) if ours_img.n_frames > 1 else ours_img
        b = ref_img.frame(t) if ref_img.n_frames > 1 else ref_img
        mapped = b.resample_to(a, interpolation="nearest")
        np.testing.assert_allclose(mapped.array, a.array, atol=1e-3)


def test_never_writes_into_source(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(_dataset_path("dcm-qa-nih/In/20180918Si/mr_0003"), src)
    with pytest.raises(ValueError, match="inside the source folder"):
        ml.io.dicom_to_nifti(src, src / "out")
