"""Deep-learning models (medlab.segmentation.models): tiny models in each format, built here with
weights set by hand so the right answer is known, must put their labels on the right voxels for
inputs in all 48 axis orientations and oblique ones; the shipped deepbet model on the MNI152 T1."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import medlab as ml
from medlab import geometry as geo

pytest.importorskip("torch", reason="the deep-learning extra is not installed (pip install 'medlab[dl]')")
models = ml.segmentation.models

#: Every axis orientation as Image.orientation letters (all 48 signed permutations).
ORIENTATIONS = ["".join(geo.orientation_codes(geo.compose_affine([1, 1, 1], [0, 0, 0], d)))
                for d in geo.axis_aligned_directions()]
SPACING = (1.0, 1.5, 2.0)  # base image axes point L, P, S


def phantom(shape=(20, 14, 12), spacing=SPACING, direction=None) -> ml.Image:
    """Background 10, an asymmetric bright object 100 (a box with a bump on one corner)."""
    arr = np.full(shape, 10.0, dtype=np.float32)
    arr[5:12, 4:9, 3:8] = 100.0
    arr[5:7, 9:11, 3:5] = 100.0  # breaks every mirror symmetry of the box
    direction = np.eye(3) if direction is None else direction
    return ml.Image(arr, geo.compose_affine(spacing, (3.0, -4.0, 5.0), direction))


def shifted(obj: np.ndarray, axis: int, step: int) -> np.ndarray:
    """Labels of ``obj`` moved ``step`` voxels along ``axis`` (zeros enter at the edge)."""
    out = np.zeros(obj.shape, dtype=np.uint8)
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    if step > 0:
        dst[axis], src[axis] = slice(step, None), slice(None, -step)
    else:
        dst[axis], src[axis] = slice(None, step), slice(-step, None)
    out[tuple(dst)] = obj[tuple(src)]
    return out


def world_centroid(image: ml.Image, mask: np.ndarray) -> np.ndarray:
    return image.index_to_world(np.argwhere(mask)).mean(axis=0)


def rotated(image: ml.Image, angles) -> ml.Image:
    """The same array on a grid rotated about the image centre (an oblique acquisition)."""
    r = np.eye(4)
    r[:3, :3] = geo.rotation_matrix(angles)
    c = image.center
    t1, t2 = np.eye(4), np.eye(4)
    t1[:3, 3], t2[:3, 3] = -c, c
    return ml.Image(image.array, t2 @ r @ t1 @ image.affine)


@pytest.fixture(scope="module")
def nnunet(tmp_path_factory):
    # nnU-Net array order = medlab's; trained "on NIfTI in RAS+" (SAR): axis 0 points S
    folder = models.example_nnunet(tmp_path_factory.mktemp("nnunet"), spacing=SPACING[::-1])
    return models.load(folder, orientation="SAR")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = models.example_monai_bundle(tmp_path_factory.mktemp("monai"),
                                         pixdim=SPACING, intensity_range=(0, 100))
    return models.load(folder)


def test_48_orientations_listed():
    assert len(set(ORIENTATIONS)) == 48


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_nnunet_labels_on_the_right_voxels(nnunet, orientation):
    base = phantom()
    # by hand: the label is the object moved one model voxel (2 mm) towards S = base axis 2
    expected = shifted(base.array > 50, axis=2, step=1)
    image = base.reorient(orientation)
    labels = nnunet(image, device="cpu", progress=False)
    assert labels.shape == image.shape and np.array_equal(labels.affine, image.affine)
    assert labels.meta["labels"] == {1: "shifted"}
    back = labels.resample_to(base, interpolation="nearest")  # SimpleITK, by world position
    np.testing.assert_array_equal(back.array, expected)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_monai_bundle_labels_on_the_right_voxels(bundle, orientation):
    base = phantom()
    # by hand: MONAI's x axis points R, the label is the object moved one voxel towards R
    # (-L = base axis 0 backwards)
    expected = shifted(base.array > 50, axis=0, step=-1)
    image = base.reorient(orientation)
    labels = bundle(image, device="cpu", progress=False)
    assert labels.shape == image.shape and np.array_equal(labels.affine, image.affine)
    back = labels.resample_to(base, interpolation="nearest")
    np.testing.assert_array_equal(back.array, expected)


@pytest.mark.parametrize("angles", [(8.0, -12.0, 15.0), (-20.0, 5.0, 30.0)])
def test_oblique_inputs(nnunet, bundle, angles):
    image = rotated(phantom(shape=(24, 18, 16)), angles)
    assert image.is_oblique
    obj = image.array > 50
    # the nnU-Net model thresholds at the image mean (~12, so the partial-volume voxels of the
    # linear resampling onto its axis-aligned grid count as object), the bundle at 55
    cases = ((nnunet, [0.0, 0.0, SPACING[2]], (1.0, 2.0)),
             (bundle, [-SPACING[0], 0.0, 0.0], (0.8, 1.2)))
    for model, shift_mm, (low, high) in cases:
        labels = model(image, device="cpu", progress=False)
        assert labels.shape == image.shape and np.array_equal(labels.affine, image.affine)
        lab = labels.array == 1
        # the object moved one model voxel along a world axis (resampled there and back)
        np.testing.assert_allclose(world_centroid(image, lab) - world_centroid(image, obj),
                                   shift_mm, atol=0.6)
        assert low < lab.sum() / obj.sum() < high


def test_nnunet_resamples_to_its_spacing(nnunet):
    # an isotropic 1 mm input: nnU-Net resamples to (2, 1.5, 1) mm along (S, A, R) and back, so
    # the label moves by its 2 mm voxel towards S, not by one input voxel
    arr = np.full((24, 24, 24), 10.0, dtype=np.float32)
    arr[6:16, 6:14, 4:10] = 100.0  # along S an even box on 2 mm cell boundaries: no rounding
    base = ml.Image(arr, geo.compose_affine((1.0, 1.0, 1.0), (3.0, -4.0, 5.0), np.eye(3)))
    labels = nnunet(base.reorient("RAI"), device="cpu", progress=False).resample_to(
        base, interpolation="nearest")
    shift = world_centroid(base, labels.array == 1) - world_centroid(base, base.array > 50)
    np.testing.assert_allclose(shift, [0.0, 0.0, 2.0], atol=0.5)


def test_provenance_and_seg_export(nnunet, tmp_path):
    import highdicom as hd
    import pydicom
    from helpers import write_dicom_series

    arr = np.full((12, 14, 20), 10, dtype=np.int16)
    arr[4:9, 4:9, 5:12] = 100
    paths, _ = write_dicom_series(tmp_path / "mr", arr, spacing=(1.5, 1.0),
                                  slice_step=(0.0, 0.0, 2.0), intercept=0.0, modality="MR")
    for p in paths:  # highdicom wants these type-2 attributes present
        ds = pydicom.dcmread(p)
        for kw in ("StudyDate", "StudyTime", "PatientBirthDate", "PatientSex", "AccessionNumber",
                   "StudyID", "ReferringPhysicianName"):
            setattr(ds, kw, getattr(ds, kw, ""))
        ds.save_as(p)
    image = ml.load(tmp_path / "mr")
    labels = nnunet(image, device="cpu", progress=False)
    files = sorted((nnunet.folder / "fold_0").glob("checkpoint_final.pth"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    assert labels.meta["algorithm"] == {
        "type": "AUTOMATIC", "name": "Dataset999_MedlabShift", "version": "1.0",
        "family": "Artificial Intelligence", "weights_sha256": digest,
        "source": f"nnU-Net v2 results folder {nnunet.folder}"}
    path = ml.segmentation.write_seg(labels, image, tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    item = seg.SegmentSequence[0]
    assert item.SegmentLabel == "shifted" and item.SegmentAlgorithmType == "AUTOMATIC"
    algo = item.SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmName == "Dataset999_MedlabShift" and algo.AlgorithmVersion == "1.0"
    assert algo.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    assert digest in str(algo.AlgorithmParameters)
    back = ml.segmentation.read_seg(path).labels(image)
    np.testing.assert_array_equal(back.array > 0, labels.array > 0)


def test_clear_errors(tmp_path, nnunet, monkeypatch):
    folder = nnunet.folder
    with pytest.raises(models.ModelError, match="orientation="):
        models.load(folder)  # SimpleITKIO: nnU-Net does not record the orientation
    with pytest.raises(models.ModelError, match="neither an nnU-Net"):
        models.load(tmp_path)
    with pytest.raises(models.ModelError, match="no model named 'nope'"):
        models.load("nope")
    with pytest.raises(models.ModelError, match="checkpoint"):
        models.NnUNetModel(folder, folds=(3,), orientation="SAR")
    with pytest.raises(models.ModelError, match="1 input channel"):
        nnunet(ml.Image(np.zeros((4, 4, 4, 2)), np.eye(4), channels=True))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' asks for a CUDA GPU"):
            nnunet(phantom(), device="cuda")
    else:  # a GPU machine: the same labels as on the CPU
        np.testing.assert_array_equal(nnunet(phantom(), device="cuda").array,
                                      nnunet(phantom(), device="cpu").array)


def test_nnunet_orientation_from_a_reorienting_reader(tmp_path):
    import json

    folder = models.example_nnunet(tmp_path)
    plans = json.loads((folder / "plans.json").read_text())
    plans["image_reader_writer"] = "NibabelIOWithReorient"  # nnU-Net makes every image RAS+
    (folder / "plans.json").write_text(json.dumps(plans))
    assert models.load(folder).orientation == "SAR"
    assert models.load(folder, orientation="spl").orientation == "SPL"


def test_totalsegmentator_without_weights_says_what_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("totalsegmentator")
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "weights"))
    with pytest.raises(models.ModelError) as info:
        models.load("totalsegmentator", task="total", fast=True)
    message = str(info.value)
    assert "Dataset297_TotalSegmentator_total_3mm_1559subj" in message
    assert "totalseg_download_weights -t total" in message and "TOTALSEG_WEIGHTS_PATH" in message
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").rglob("*.pth"))


def test_available_lists_the_shipped_model():
    table = models.available()
    row = table.set_index("name").loc["deepbet"]
    assert bool(row["installed"]) and "offline" in row["weights"]


@pytest.mark.slow
def test_deepbet_on_mni152_any_orientation():
    """The shipped model, offline on the CPU, on the MNI152 T1 given in an unusual orientation
    (axes permuted and flipped): Dice against the template's own brain mask, derived from its
    tissue probability maps as GM + WM > 0.5 with enclosed holes (ventricles) filled."""
    from scipy import ndimage

    folder = ml.data.fetch("mni152")
    t1 = ml.load(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = ml.load(folder / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    wm = ml.load(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    reference = ndimage.binary_fill_holes((gm.array.astype(float) + wm.array) / 255.0 > 0.5)
    model = models.load("deepbet")
    image = t1.reorient("PIR")  # rows and columns swapped from what deepbet reads, two flips
    labels = model(image, device="cpu", progress=False)
    assert labels.shape == image.shape and np.array_equal(labels.affine, image.affine)
    brain = labels.resample_to(t1, interpolation="nearest").array == 1
    dice = 2 * (brain & reference).sum() / (brain.sum() + reference.sum())
    assert dice > 0.9, dice
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(
        model.weight_files(), key=str))).hexdigest()
    assert labels.meta["algorithm"]["weights_sha256"] == digest
    assert labels.meta["algorithm"]["name"] == "deepbet" and labels.meta["labels"] == {1: "Brain"}


def test_sliding_window_runs_a_torch_module_on_a_device():
    import torch

    net = torch.nn.Conv3d(1, 2, kernel_size=1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[1, 0] = 1.0
        net.bias[1] = -50.0  # class 1 where the voxel is above 50
    image = phantom().reorient("IRA")
    labels = ml.segmentation.sliding_window(image, net, patch_size=(8, 8, 8), batch_size=3,
                                            device="cpu", progress=False)
    np.testing.assert_array_equal(labels.array, image.array > 50)
    assert np.array_equal(labels.affine, image.affine)


@pytest.mark.slow
def test_totalsegmentator_with_weights_on_disk(tmp_path, monkeypatch):
    """TotalSegmentator's own pipeline (RAS+, its resampling, nnU-Net, back) on weights laid out
    as it downloads them: a tiny hand-set model in the folder of its 'breasts' task."""
    pytest.importorskip("totalsegmentator")
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    models.example_nnunet(tmp_path / "weights", spacing=(1.5, 1.5, 1.5),
                          name="Dataset527_breasts_1559subj",
                          trainer="nnUNetTrainer_DASegOrd0_NoMirroring",
                          labels={"background": 0, "breast": 1})
    model = models.load("totalsegmentator", task="breasts", weights_dir=tmp_path / "weights")
    base = phantom(spacing=(1.5, 1.5, 1.5))
    image = base.reorient("RAI")
    labels = model(image, device="cpu", progress=False)
    assert labels.shape == image.shape and np.array_equal(labels.affine, image.affine)
    assert labels.meta["labels"] == {1: "breast"}
    assert labels.meta["algorithm"]["name"] == "TotalSegmentator breasts"
    # TotalSegmentator's network input is the RAS+ image in (z, y, x) order: axis 0 points S
    expected = shifted(base.array > 50, axis=2, step=1)
    back = labels.resample_to(base, interpolation="nearest")
    np.testing.assert_array_equal(back.array, expected)
