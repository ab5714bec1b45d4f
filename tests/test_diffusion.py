"""The fourth axis says what it is; diffusion gradients and the ADC (issue 13, finding 4).

References: the FSL files themselves (read with numpy), nibabel's NIfTI header
and ``nicom`` CSA reader for the Siemens DWI headers, dcm2niix's ``.bvec``
output for DICOM built with known LPS gradients, and numpy fits for the ADC.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import write_dwi_series

import medlab as ml
from medlab.errors import GeometryError
from medlab.timeseries import TimeSeriesError

DCM2NIIX = shutil.which("dcm2niix") or "/usr/bin/dcm2niix"


@pytest.fixture(scope="module")
def dipy_dwi(data_root: Path) -> Path:
    return data_root / "dipy-dwi"


def _fsl_table(folder: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    bvals = np.loadtxt(folder / f"{stem}.bval").ravel()
    bvecs = np.loadtxt(folder / f"{stem}.bvec")
    bvecs = bvecs.T if bvecs.shape[0] == 3 and bvecs.shape[1] != 3 else bvecs
    return bvals, np.nan_to_num(bvecs)


# ------------------------------------------------------------------- the fourth axis
def test_nifti_with_unknown_time_unit_gets_no_invented_times(dipy_dwi, tmp_path):
    # finding 4: small_64D.nii's header says the time unit is unknown; without its
    # .bval/.bvec the fourth axis is unknown, not 0, 1, 2 ... seconds
    src = dipy_dwi / "small_64D.nii"
    assert nib.load(src).header.get_xyzt_units()[1] == "unknown"
    shutil.copy(src, tmp_path / "alone.nii")
    img = ml.load(tmp_path / "alone.nii")
    assert img.frame_axis == "unknown"
    assert img.frame_times_s is None and img.b_values is None
    assert img.n_frames == 65 and "unknown" in repr(img)
    with pytest.raises(TimeSeriesError, match="fourth axis is unknown, not time"):
        ml.timeseries.curves(img, voxel=(1, 1, 1))


def test_nifti_with_seconds_is_time(tmp_path):
    nii = nib.Nifti1Image(np.zeros((4, 4, 3, 5), np.int16), np.eye(4))
    nii.header.set_xyzt_units("mm", "msec")
    nii.header.set_zooms((1, 1, 1, 2500.0))
    nib.save(nii, tmp_path / "fmri.nii")
    img = ml.load(tmp_path / "fmri.nii")
    assert img.frame_axis == "time"
    np.testing.assert_allclose(img.frame_times_s, np.arange(5) * 2.5)


def test_fourth_axis_kinds_and_errors():
    arr = np.zeros((2, 3, 4, 3))
    echo = ml.Image(arr, np.eye(4), echo_times_s=[0.01, 0.02, 0.03])
    assert echo.frame_axis == "echo" and echo.frame(1).meta["echo_time_s"] == 0.02
    assert echo.frame_times_s is None
    with pytest.raises(GeometryError, match="one thing only"):
        ml.Image(arr, np.eye(4), frame_times_s=[0, 1, 2], b_values=[0, 1, 2])
    with pytest.raises(GeometryError, match="3 finite LPS directions"):
        ml.Image(arr, np.eye(4), b_values=[0, 1000, 1000], b_vectors=[[1, 0, 0]])
    # with_array replaces the fourth axis as a whole, and keeps it otherwise
    dwi = ml.Image(arr, np.eye(4), b_values=[0, 1000, 1000],
                   b_vectors=[[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert dwi.with_array(arr + 1).frame_axis == "diffusion"
    assert dwi.with_array(arr[..., 0], frame_times_s=None).frame_axis is None
    assert dwi.reorient("LPS").b_values.tolist() == [0, 1000, 1000]


# ------------------------------------------------------------------- FSL .bval/.bvec
@pytest.mark.parametrize("stem, suffix", [("small_64D", ".nii"), ("small_101D", ".nii.gz")])
def test_fsl_gradients_match_dipy_files(dipy_dwi, stem, suffix):
    img = ml.load(dipy_dwi / f"{stem}{suffix}")
    bvals, bvecs = _fsl_table(dipy_dwi, stem)
    assert img.frame_axis == "diffusion"
    np.testing.assert_allclose(img.b_values, bvals)
    # back to FSL's frame for the same NIfTI affine gives the file's numbers
    affine = nib.load(dipy_dwi / f"{stem}{suffix}").affine
    np.testing.assert_allclose(ml.diffusion.lps_to_fsl(img.b_vectors, affine), bvecs,
                               atol=1e-6)
    # image-frame directions are unit vectors (b=0 rows stay zero)
    norms = np.linalg.norm(img.b_vectors_image, axis=1)
    np.testing.assert_allclose(norms[bvals > 0], 1.0, atol=1e-3)


def test_fsl_x_flip_rule_is_invariant_to_the_storage_handedness(dipy_dwi, tmp_path):
    # FSL's radiological convention: the same .bvec file is right for an image stored
    # with its first voxel axis reversed (the determinant changes sign), so both must
    # give the same directions in LPS
    src = nib.load(dipy_dwi / "small_64D.nii")
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = src.shape[0] - 1
    flipped = nib.Nifti1Image(np.asanyarray(src.dataobj)[::-1], src.affine @ flip)
    assert np.sign(np.linalg.det(flipped.affine)) != np.sign(np.linalg.det(src.affine))
    nib.save(flipped, tmp_path / "flipped.nii")
    for ext in (".bval", ".bvec"):
        shutil.copy(dipy_dwi / f"small_64D{ext}", tmp_path / f"flipped{ext}")
    a, b = ml.load(dipy_dwi / "small_64D.nii"), ml.load(tmp_path / "flipped.nii")
    np.testing.assert_allclose(a.b_vectors, b.b_vectors, atol=1e-12)
    np.testing.assert_array_equal(a.reorient("SPL").array, b.reorient("SPL").array)


def test_save_writes_bval_bvec_that_load_back(dipy_dwi, tmp_path):
    img = ml.load(dipy_dwi / "small_101D.nii.gz")
    ml.save(img, tmp_path / "dwi.nii.gz")
    assert (tmp_path / "dwi.bval").is_file() and (tmp_path / "dwi.bvec").is_file()
    back = ml.load(tmp_path / "dwi.nii.gz")
    np.testing.assert_allclose(back.b_values, img.b_values)
    np.testing.assert_allclose(back.b_vectors, img.b_vectors, atol=1e-7)
    assert nib.load(tmp_path / "dwi.nii.gz").header.get_xyzt_units()[1] == "unknown"


def test_mismatched_bval_is_named_and_ignored(dipy_dwi, tmp_path):
    shutil.copy(dipy_dwi / "small_64D.nii", tmp_path / "x.nii")
    (tmp_path / "x.bval").write_text("0 1000 1000\n")
    with pytest.warns(UserWarning, match="x.bval has 3 b-values for 65 volumes"):
        img = ml.load(tmp_path / "x.nii")
    assert img.frame_axis == "unknown"


# ------------------------------------------------------------------------------ DICOM
def test_siemens_csa_dwi_matches_nibabel_nicom(data_root, tmp_path):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel's "experimental DICOM readers" note
        from nibabel.nicom import csareader, dicomwrappers
    src = data_root / "nibabel-header-only"
    expected = []
    for name in ("siemens_dwi_0", "siemens_dwi_1000"):
        with gzip.open(src / f"{name}.dcm.gz") as f, open(tmp_path / f"{name}.dcm", "wb") as g:
            shutil.copyfileobj(f, g)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(tmp_path / f"{name}.dcm")
            csa = csareader.get_csa_header(ds)
            g_vec = csareader.get_g_vector(csa)
            wrapper = dicomwrappers.wrapper_from_data(ds)
        expected.append((csareader.get_b_value(csa), np.zeros(3) if g_vec is None else g_vec,
                         np.asarray(wrapper.b_vector, dtype=float)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = ml.load(tmp_path)
    assert img.frame_axis == "diffusion" and img.n_frames == 2
    np.testing.assert_allclose(img.b_values, [e[0] for e in expected])
    np.testing.assert_allclose(img.b_vectors, [e[1] for e in expected], atol=1e-8)
    # nibabel's voxel frame is (row index, column index, slice); medlab's (slice, row, column)
    # (nibabel derives its vector from the B-matrix, hence the 1e-3)
    np.testing.assert_allclose(img.b_vectors_image[:, [1, 2, 0]], [e[2] for e in expected],
                               atol=1e-3)


@pytest.mark.parametrize("iop", [
    (1.0, 0.0, 0.0, 0.0, np.cos(0.3), -np.sin(0.3)),  # oblique axial
    (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),  # sagittal
])
def test_dicom_gradients_agree_with_dcm2niix_bvec(tmp_path, iop):
    b = [0.0, 1000.0, 1000.0, 1000.0]
    g = [[0, 0, 0], [1, 0, 0], [0, 0.6, 0.8], [0.48, -0.6, 0.64]]
    write_dwi_series(tmp_path / "in", iop=iop, b_values=b, b_vectors=g)
    (tmp_path / "out").mkdir()
    subprocess.run([DCM2NIIX, "-z", "n", "-f", "x", "-o", str(tmp_path / "out"),
                    str(tmp_path / "in")], check=True, capture_output=True)
    ours = ml.load(tmp_path / "in")
    assert ours.frame_axis == "diffusion"
    np.testing.assert_allclose(ours.b_values, b)
    np.testing.assert_allclose(ours.b_vectors, g, atol=1e-12)
    # dcm2niix's FSL .bvec (image frame, x-flip rule), read back into LPS
    theirs = ml.load(tmp_path / "out" / "x.nii")
    np.testing.assert_allclose(theirs.b_values, b)
    np.testing.assert_allclose(theirs.b_vectors, g, atol=1e-5)
    # medlab's own conversion writes FSL files beside its NIfTI, as dcm2niix does
    [nii] = ml.io.dicom_to_nifti(tmp_path / "in", tmp_path / "ours", progress=False)
    np.testing.assert_allclose(np.loadtxt(nii.with_name(nii.name.replace(".nii.gz", ".bval"))),
                               np.loadtxt(tmp_path / "out" / "x.bval"))
    np.testing.assert_allclose(ml.load(nii).b_vectors, g, atol=1e-6)


def test_enhanced_mr_diffusion_functional_group(tmp_path):
    b = [0.0, 500.0, 1000.0]
    g = [[0, 0, 0], [0, 0, 1], [0.6, 0.8, 0]]
    write_dwi_series(tmp_path, iop=(1, 0, 0, 0, 1, 0), b_values=b, b_vectors=g, enhanced=True)
    img = ml.load(tmp_path)
    assert img.frame_axis == "diffusion"
    np.testing.assert_allclose(img.b_values, b)
    np.testing.assert_allclose(img.b_vectors, g)


# -------------------------------------------------------------------------------- ADC
def test_adc_recovers_known_values():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.2e-3, 3e-3, (4, 5, 6))
    b = np.array([0, 50, 400, 800, 800, 1000.0])
    s0 = rng.uniform(500, 2000, (4, 5, 6))
    sig = s0[..., None] * np.exp(-truth[..., None] * b)
    img = ml.Image(sig, np.diag([2.0, 1.0, 1.0, 1.0]), b_values=b, meta={"modality": "MR"})
    adc = ml.diffusion.adc(img)
    assert adc.meta["units"] == "mm2/s" and adc.shape == (4, 5, 6)
    np.testing.assert_allclose(adc.array, truth, rtol=1e-5)
    # b_max leaves out the high b-values; no b-values -> a clear error
    assert ml.diffusion.adc(img, b_max=400).meta["b_values_used"] == [0, 50, 400]
    with pytest.raises(GeometryError, match="pass the b-value of each volume"):
        ml.diffusion.adc(img.with_array(sig, frame_axis="unknown"))
    with pytest.raises(GeometryError, match="two different b-values"):
        ml.diffusion.adc(img, b_max=10)
    # a zero signal cannot be fitted: NaN, not a number from log(0)
    sig[0, 0, 0, 3] = 0
    assert np.isnan(ml.diffusion.adc(img.with_array(sig)).array[0, 0, 0])


def test_adc_on_real_dwi_matches_a_numpy_fit(dipy_dwi):
    img = ml.load(dipy_dwi / "small_64D.nii")
    adc = ml.diffusion.adc(img)
    data = np.asanyarray(nib.load(dipy_dwi / "small_64D.nii").dataobj).astype(float)
    bvals, _ = _fsl_table(dipy_dwi, "small_64D")
    i, j, k = 4, 5, 6  # nibabel voxel (i, j, k) is medlab's [k, j, i]
    slope, _ = np.polyfit(bvals, np.log(data[i, j, k]), 1)
    assert adc.array[k, j, i] == pytest.approx(-slope, rel=1e-5)
    # brain tissue: 0.3 to 3.5 um2/ms
    assert 0.3e-3 < np.nanmedian(adc.array) < 3.5e-3


def test_label_stats_rows_per_diffusion_volume():
    b = np.array([0.0, 1000.0])
    sig = np.stack([np.full((2, 3, 3), 100.0), np.full((2, 3, 3), 40.0)], axis=3)
    img = ml.Image(sig, np.eye(4), b_values=b)
    labels = ml.Image(np.ones((2, 3, 3), np.uint8), np.eye(4))
    table = ml.measure.label_stats(img, labels)
    assert table["b_value_s_per_mm2"].tolist() == [0.0, 1000.0]
    assert table["mean"].tolist() == [100.0, 40.0]


def test_4d_itk_file_gets_no_invented_times(tmp_path):
    import SimpleITK as sitk

    img = sitk.JoinSeries([sitk.Image(4, 3, 2, sitk.sitkInt16)] * 3, 0.0, 2.5)
    sitk.WriteImage(img, str(tmp_path / "x.nrrd"))
    loaded = ml.load(tmp_path / "x.nrrd")
    assert loaded.frame_axis == "unknown" and loaded.frame_times_s is None
    assert loaded.meta["itk_spacing4"] == 2.5


def test_slice_viewer_labels_frames_by_what_the_axis_is():
    dwi = ml.Image(np.zeros((3, 8, 8, 3)), np.eye(4), b_values=[0, 500, 1000])
    viewer = ml.view.slices(dwi, frame=2)
    assert viewer.frame_label == "b=1000 s/mm²"
    viewer.frame = 1
    assert viewer.frame_label == "b=500 s/mm²"
    series = ml.Image(np.zeros((3, 8, 8, 2)), np.eye(4), frame_times_s=[0, 2.5])
    assert ml.view.slices(series, frame=1).frame_label == "2.50 s"
