"""ml.measure segmentation metrics against independent implementations.

References: SimpleITK (HausdorffDistanceImageFilter, LabelOverlapMeasuresImageFilter),
medpy.metric.binary (hd, hd95 = percentile of the pooled distances, assd, asd, dc,
jc; same surface definition: 6-connected border, voxel spacing), hand-computed
cases, and brute-force distances with scipy on sheared grids. Every grid is
anisotropic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.distance import cdist

import medlab as ml
import medlab.measure as mm
from medlab import geometry as geo
from medlab.errors import GeometryMismatchError

SPACING = (2.5, 0.7, 0.9)


def _medpy():
    return pytest.importorskip("medpy.metric.binary", reason="medpy is the independent reference")


def _world(shape, affine):
    idx = np.stack(np.indices(shape), axis=-1).astype(float)
    return idx @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def _sitk(array, affine) -> sitk.Image:
    arr = np.ascontiguousarray(array)
    img = sitk.GetImageFromArray(arr.astype(np.uint8) if arr.dtype == bool else arr)
    a = np.asarray(affine)[:3, :3][:, ::-1]
    spacing = np.linalg.norm(a, axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((a / spacing).ravel().tolist())
    img.SetOrigin(np.asarray(affine)[:3, 3].tolist())
    return img


@pytest.fixture(scope="module")
def spheres():
    """Reference ball and a shifted, smaller test ball plus a satellite, on an oblique grid."""
    shape = (40, 60, 70)
    affine = geo.compose_affine(SPACING, (10, -20, 30), geo.rotation_matrix([20, -10, 35]))
    w = _world(shape, affine)
    c = w.reshape(-1, 3).mean(axis=0)
    ref = np.linalg.norm(w - c, axis=-1) < 15
    tst = (np.linalg.norm(w - c - [3, -2, 4], axis=-1) < 13) | (
        np.linalg.norm(w - c - [0, 0, -22], axis=-1) < 3)
    return ref, tst, affine


def test_metrics_match_medpy_and_simpleitk_on_oblique_grid(spheres):
    binary = _medpy()
    ref, tst, affine = spheres
    df = mm.segmentation_metrics(ml.Image(ref.astype(np.uint8), affine),
                                 ml.Image(tst, affine))  # bool test mask
    assert len(df) == 1
    row = df.iloc[0]
    # distances are rotation invariant, so medpy's spacing-only grid is equivalent
    assert row["hausdorff_mm"] == pytest.approx(binary.hd(tst, ref, voxelspacing=SPACING), rel=1e-9)
    assert row["hd95_union_mm"] == pytest.approx(binary.hd95(tst, ref, voxelspacing=SPACING),
                                                 rel=1e-9)
    assert row["assd_mm"] == pytest.approx(binary.assd(tst, ref, voxelspacing=SPACING), rel=1e-9)
    assert row["mean_reference_to_test_mm"] == pytest.approx(
        binary.asd(ref, tst, voxelspacing=SPACING), rel=1e-9)
    assert row["mean_test_to_reference_mm"] == pytest.approx(
        binary.asd(tst, ref, voxelspacing=SPACING), rel=1e-9)
    assert row["dice"] == pytest.approx(binary.dc(tst, ref), rel=1e-12)
    assert row["jaccard"] == pytest.approx(binary.jc(tst, ref), rel=1e-12)
    # HD95 = the larger of the directed 95th percentiles of medpy's directed distance sets
    directed = getattr(binary, "__surface_distances")
    d_rt = directed(ref, tst, voxelspacing=SPACING)
    d_tr = directed(tst, ref, voxelspacing=SPACING)
    assert row["hd95_reference_to_test_mm"] == pytest.approx(np.percentile(d_rt, 95))
    assert row["hd95_test_to_reference_mm"] == pytest.approx(np.percentile(d_tr, 95))
    assert row["hd95_mm"] == pytest.approx(max(np.percentile(d_rt, 95), np.percentile(d_tr, 95)))
    assert row["hd95_union_mm"] <= row["hd95_mm"] + 1e-12
    # SimpleITK: max Hausdorff over all voxels (equal to the surface one for these shapes),
    # Dice, Jaccard and volume similarity 2 (R - T) / (R + T) (ITK: source minus target), using
    # the full direction matrix
    hd = sitk.HausdorffDistanceImageFilter()
    hd.Execute(_sitk(ref, affine), _sitk(tst, affine))
    assert row["hausdorff_mm"] == pytest.approx(hd.GetHausdorffDistance(), rel=1e-9)
    lo = sitk.LabelOverlapMeasuresImageFilter()
    lo.Execute(_sitk(ref, affine), _sitk(tst, affine))
    assert row["dice"] == pytest.approx(lo.GetDiceCoefficient(), rel=1e-12)
    assert row["jaccard"] == pytest.approx(lo.GetJaccardCoefficient(), rel=1e-12)
    vr, vt = row["volume_reference_mm3"], row["volume_test_mm3"]
    assert 2 * (vr - vt) / (vt + vr) == pytest.approx(lo.GetVolumeSimilarity(), rel=1e-9)
    vox = np.prod(SPACING)
    assert vr == pytest.approx(ref.sum() * vox) and vt == pytest.approx(tst.sum() * vox)
    assert row["volume_difference_mm3"] == pytest.approx(vt - vr)
    assert row["relative_volume_difference"] == pytest.approx((vt - vr) / vr)
    assert pd.isna(row["note"])


def test_hd95_definition_on_a_hand_computed_case():
    """A plate, and the same plate plus a detached row 4 slices (8 mm) away.

    Every voxel is a surface voxel. d(R -> T): 100 zeros. d(T -> R): 100 zeros
    and 10 x 8 mm. So P95 directed = 0 and 8 -> hd95 = 8; pooled (medpy) the
    210 distances have 10 non-zeros (< 5 %), so hd95_union = 0; ASSD = 80 / 210.
    """
    spacing = (2.0, 0.5, 0.7)
    ref = np.zeros((6, 12, 12), np.uint8)
    ref[0, :10, :10] = 1
    tst = ref.copy()
    tst[4, 0, :10] = 1
    affine = geo.compose_affine(spacing, (0, 0, 0), np.eye(3))
    row = mm.segmentation_metrics(ml.Image(ref, affine), ml.Image(tst, affine)).iloc[0]
    assert row["hausdorff_mm"] == pytest.approx(8.0)
    assert row["hd_reference_to_test_mm"] == 0.0
    assert row["hd95_reference_to_test_mm"] == 0.0
    assert row["hd95_test_to_reference_mm"] == pytest.approx(8.0)
    assert row["hd95_mm"] == pytest.approx(8.0)
    assert row["hd95_union_mm"] == 0.0
    assert row["assd_mm"] == pytest.approx(80 / 210)
    assert row["mean_test_to_reference_mm"] == pytest.approx(80 / 110)
    assert row["dice"] == pytest.approx(200 / 210)
    assert row["jaccard"] == pytest.approx(100 / 110)
    binary = _medpy()
    assert binary.hd95(tst, ref, voxelspacing=spacing) == 0.0  # medpy pools: the other definition


@pytest.mark.parametrize(("axis", "expected_mm"), [(0, 6.0), (1, 1.4), (2, 1.8)])
def test_shifted_box_hausdorff_follows_the_spacing_of_the_shift_axis(axis, expected_mm):
    ref = np.zeros((12, 14, 16), np.uint8)
    ref[3:8, 4:10, 5:11] = 1
    tst = np.roll(ref, 2, axis=axis)
    affine = geo.compose_affine((3.0, 0.7, 0.9), (5, 5, 5), geo.rotation_matrix([0, 30, 0]))
    row = mm.segmentation_metrics(ml.Image(ref, affine), ml.Image(tst, affine)).iloc[0]
    assert row["hausdorff_mm"] == pytest.approx(expected_mm)
    assert row["hd_reference_to_test_mm"] == pytest.approx(expected_mm)


def _brute_force_surface_distances(ref, tst, affine):
    """The definition, spelled out with scipy: 6-connected borders, all pairs."""
    six = ndimage.generate_binary_structure(3, 1)
    border = [m & ~ndimage.binary_erosion(m, structure=six, border_value=0) for m in (ref, tst)]
    pts = [np.argwhere(b) @ affine[:3, :3].T + affine[:3, 3] for b in border]
    d = cdist(pts[0], pts[1])
    return d.min(axis=1), d.min(axis=0)


def test_sheared_grid_against_brute_force():
    affine = np.array([[0.0, 0.0, 0.9, -40.0],
                       [0.6, 0.7, 0.0, 12.0],
                       [2.5, 0.0, 0.0, 100.0],
                       [0.0, 0.0, 0.0, 1.0]])
    shape = (14, 24, 22)
    w = _world(shape, affine)
    c = w.reshape(-1, 3).mean(axis=0)
    ref = np.linalg.norm(w - c, axis=-1) < 9
    tst = np.linalg.norm((w - c - [1.5, 2.0, -3.0]) / [1.0, 1.3, 1.0], axis=-1) < 8
    d_rt, d_tr = _brute_force_surface_distances(ref, tst, affine)
    row = mm.segmentation_metrics(ml.Image(ref, affine), ml.Image(tst, affine)).iloc[0]
    assert row["hausdorff_mm"] == pytest.approx(max(d_rt.max(), d_tr.max()))
    assert row["hd95_mm"] == pytest.approx(max(np.percentile(d_rt, 95), np.percentile(d_tr, 95)))
    assert row["assd_mm"] == pytest.approx(np.r_[d_rt, d_tr].mean())
    assert row["volume_reference_mm3"] == pytest.approx(ref.sum() * abs(np.linalg.det(affine[:3, :3])))
    table = mm.surface_distances(ml.Image(ref, affine), ml.Image(tst, affine))
    rt = table[table["direction"] == "reference_to_test"]
    assert len(rt) == len(d_rt) and len(table) == len(d_rt) + len(d_tr)
    np.testing.assert_allclose(np.sort(rt["distance_mm"]), np.sort(d_rt))
    # each row's coordinates are its voxel centre
    idx = rt[["k", "j", "i"]].to_numpy(float)
    np.testing.assert_allclose(rt[["x_mm", "y_mm", "z_mm"]].to_numpy(),
                               idx @ affine[:3, :3].T + affine[:3, 3])


def test_multilabel_overlap_matches_simpleitk_and_handles_empty_labels():
    rng = np.random.default_rng(3)
    shape = (20, 30, 25)
    ref = np.zeros(shape, np.int16)
    ref[2:10, 5:20, 3:15] = 1
    ref[12:18, 10:25, 10:22] = 2
    ref[1:3, 1:3, 20:24] = 5  # missing from the test
    tst = ref.copy()
    tst[ref == 5] = 0
    noise = rng.random(shape) < 0.08
    tst[noise & (ref == 1)] = 2
    tst[noise & (ref == 0)] = 1
    tst[0, 0, 0] = 9  # missing from the reference
    affine = geo.compose_affine((3.0, 0.6, 0.8), (0, 0, 0), geo.rotation_matrix([5, 10, 15]))
    R, T = ml.Image(ref, affine), ml.Image(tst, affine)
    df = mm.overlap(R, T).set_index("label")
    assert df.index.tolist() == [1, 2, 5, 9]
    lo = sitk.LabelOverlapMeasuresImageFilter()
    lo.Execute(sitk.Cast(_sitk(ref, affine), sitk.sitkUInt16),
               sitk.Cast(_sitk(tst, affine), sitk.sitkUInt16))
    for v in (1, 2):
        assert df.loc[v, "dice"] == pytest.approx(lo.GetDiceCoefficient(v), rel=1e-12)
        assert df.loc[v, "jaccard"] == pytest.approx(lo.GetJaccardCoefficient(v), rel=1e-12)
        assert pd.isna(df.loc[v, "note"])
    assert df.loc[5, "dice"] == 0.0 and df.loc[5, "note"] == "label 5 is empty in the test"
    assert df.loc[9, "note"] == "label 9 is empty in the reference"
    assert np.isnan(df.loc[9, "relative_volume_difference"])
    full = mm.segmentation_metrics(R, T, labels=[1, 5, 7]).set_index("label")
    assert np.isnan(full.loc[5, "hausdorff_mm"]) and np.isnan(full.loc[5, "assd_mm"])
    assert full.loc[5, "volume_reference_mm3"] == pytest.approx(16 * 3.0 * 0.6 * 0.8)
    assert np.isnan(full.loc[7, "dice"]) and "empty in both" in full.loc[7, "note"]
    assert np.isfinite(full.loc[1, "hd95_mm"])
    with pytest.raises(ValueError, match="label 5 is empty in the test"):
        mm.surface_distances(R, T, label=5)
    with pytest.raises(ValueError, match=r"must be > 0.*\[0\]"):
        mm.overlap(R, T, labels=[0, 1])


def test_identical_masks_are_perfect():
    ref = np.zeros((8, 9, 10), np.uint8)
    ref[2:6, 3:7, 1:9] = 3
    affine = geo.compose_affine((2.0, 1.0, 0.5), (0, 0, 0), np.eye(3))
    row = mm.segmentation_metrics(ml.Image(ref, affine), ml.Image(ref.copy(), affine)).iloc[0]
    assert row["label"] == 3 and row["dice"] == 1.0 and row["jaccard"] == 1.0
    for col in ("hausdorff_mm", "hd95_mm", "assd_mm", "volume_difference_mm3"):
        assert row[col] == 0.0


def test_grid_mismatch_and_bad_inputs_raise_clear_errors():
    a = ml.Image(np.ones((4, 5, 6), np.uint8), np.diag([2.0, 1.0, 1.0, 1.0]))
    b = ml.Image(np.ones((4, 5, 6), np.uint8), np.diag([2.5, 1.0, 1.0, 1.0]))
    with pytest.raises(GeometryMismatchError, match=r"spacing \[2.0, 1.0, 1.0\] vs \[2.5.*nearest"):
        mm.overlap(a, b)
    with pytest.raises(TypeError, match=r"test must be a medlab\.Image"):
        mm.segmentation_metrics(a, np.ones((4, 5, 6)))
    with pytest.raises(ValueError, match="integer label values"):
        mm.overlap(a, a.with_array(np.full((4, 5, 6), 0.7)))
