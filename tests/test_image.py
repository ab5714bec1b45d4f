"""The image model: geometry, conversions at the edges, resampling.

References are independent of medlab's own maths: SimpleITK's
``TransformIndexToPhysicalPoint``, nibabel's ``apply_affine`` on the RAS
affine it reads back from a file, ITK's own index->point transform.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import synthetic_image

import medlab as ml
from medlab import geometry as geo
from medlab.errors import GeometryError, GeometryMismatchError

DIRECTIONS = geo.axis_aligned_directions()
OBLIQUE = [geo.rotation_matrix(a) for a in ([10, 0, 0], [0, -25, 5], [33, 12, -71])]
ALL = [(f"axis{i:02d}", d) for i, d in enumerate(DIRECTIONS)] + [
    (f"oblique{i}", d) for i, d in enumerate(OBLIQUE)
]
IDS = [name for name, _ in ALL]
CORNERS = np.array([[0, 0, 0], [5, 0, 0], [0, 6, 0], [0, 0, 7], [5, 6, 7], [2, 3, 1]])


def test_48_distinct_orientations():
    codes = {"".join(geo.orientation_codes(geo.compose_affine([1, 1, 1], [0, 0, 0], d)))
             for d in DIRECTIONS}
    assert len(codes) == 48


@pytest.mark.parametrize(("name", "direction"), ALL, ids=IDS)
def test_simpleitk_round_trip(name, direction):
    img = synthetic_image(direction=direction)
    s = img.to_simpleitk()
    # SimpleITK's own index (x, y, z) -> physical point must equal our affine at (k, j, i)
    for k, j, i in CORNERS:
        ref = s.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))
        np.testing.assert_allclose(img.index_to_world([k, j, i]), ref, atol=1e-9)
        assert s.GetPixel(int(i), int(j), int(k)) == img.array[k, j, i]
    back = ml.Image.from_simpleitk(s)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-12)
    np.testing.assert_array_equal(back.array, img.array)


@pytest.mark.parametrize(("name", "direction"), ALL, ids=IDS)
def test_nibabel_round_trip_through_file(name, direction, tmp_path):
    import nibabel as nib

    img = synthetic_image(direction=direction)
    path = ml.save(img, tmp_path / "x.nii.gz")
    nii = nib.load(path)
    data = np.asanyarray(nii.dataobj)  # (i, j, k) order, RAS world
    for k, j, i in CORNERS:
        ras = nib.affines.apply_affine(nii.affine, [i, j, k])
        lps = ras * [-1, -1, 1]
        np.testing.assert_allclose(img.index_to_world([k, j, i]), lps, atol=1e-4)
        assert data[i, j, k] == img.array[k, j, i]
    back = ml.load(path)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-4)
    np.testing.assert_array_equal(back.array, img.array)
    assert back.dtype == img.dtype


@pytest.mark.parametrize(("name", "direction"), ALL[::6] + ALL[-3:], ids=IDS[::6] + IDS[-3:])
@pytest.mark.parametrize("ext", [".nrrd", ".mha"])
def test_itk_file_round_trip(name, direction, ext, tmp_path):
    img = synthetic_image(direction=direction)
    path = ml.save(img, tmp_path / f"x{ext}")
    ref = sitk.ReadImage(str(path))
    for k, j, i in CORNERS:
        np.testing.assert_allclose(
            img.index_to_world([k, j, i]),
            ref.TransformIndexToPhysicalPoint((int(i), int(j), int(k))), atol=1e-5)
    back = ml.load(path)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    np.testing.assert_array_equal(back.array, img.array)


@pytest.mark.parametrize(("name", "direction"), ALL[::5] + ALL[-3:], ids=IDS[::5] + IDS[-3:])
def test_itk_round_trip(name, direction):
    itk = pytest.importorskip("itk", reason="the ITK edge needs medlab[itk]; CI installs it")
    img = synthetic_image(direction=direction, dtype=np.float32)
    i_img = img.to_itk()
    for k, j, i in CORNERS:
        p = i_img.TransformIndexToPhysicalPoint([int(i), int(j), int(k)])
        np.testing.assert_allclose(img.index_to_world([k, j, i]), list(p), atol=1e-5)
    back = ml.Image.from_itk(i_img)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-6)
    np.testing.assert_array_equal(back.array, img.array)
    assert itk is not None


def test_time_series_nifti_keeps_frames(tmp_path):
    arr = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5)
    img = ml.Image(arr, np.diag([2.0, 1.0, 1.0, 1.0]), frame_times_s=np.arange(5) * 2.5)
    back = ml.load(ml.save(img, tmp_path / "t.nii"))
    assert back.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(back.frame_times_s, [0, 2.5, 5, 7.5, 10])
    np.testing.assert_array_equal(back.frame(3).array, arr[..., 3])


def test_geometry_properties():
    d = geo.rotation_matrix([0, 0, 30])
    img = synthetic_image(spacing=(2.0, 0.5, 0.25), origin=(1, 2, 3), direction=d)
    np.testing.assert_allclose(img.spacing, (2.0, 0.5, 0.25))
    np.testing.assert_allclose(img.origin, (1, 2, 3))
    np.testing.assert_allclose(img.direction, d, atol=1e-12)
    assert img.is_oblique
    a = img.affine
    a[0, 0] = 99  # the affine is a copy
    assert img.affine[0, 0] != 99
    pts = np.array([[1.5, 2.0, 3.25], [0, 0, 0]])
    np.testing.assert_allclose(img.world_to_index(img.index_to_world(pts)), pts, atol=1e-12)


def test_bad_affine_and_shape_messages():
    with pytest.raises(GeometryError, match="4x4"):
        ml.Image(np.zeros((2, 2, 2)), np.eye(3))
    with pytest.raises(GeometryError, match="singular"):
        ml.Image(np.zeros((2, 2, 2)), np.diag([1, 0, 1, 1.0]))
    with pytest.raises(GeometryError, match=r"shape \(1, rows, columns\)"):
        ml.Image(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(GeometryError, match="3 frame times"):
        ml.Image(np.zeros((2, 2, 2, 4)), np.eye(4), frame_times_s=[0, 1, 2])


def test_match_geometry_names_the_difference():
    a = synthetic_image()
    b = synthetic_image(spacing=(3.0, 0.8, 0.7))
    with pytest.raises(GeometryMismatchError, match=r"spacing .*resample_to"):
        a.match_geometry(b)
    a.match_geometry(synthetic_image(seed=3))


@pytest.mark.parametrize(("name", "direction"), ALL[::4], ids=IDS[::4])
def test_resample_onto_reoriented_grid_is_exact(name, direction):
    """Resampling onto the same voxels listed in another axis order/orientation
    is a pure permutation: compare with numpy's own transpose/flip."""
    img = synthetic_image(shape=(4, 5, 6))
    # reference grid: the same voxel centres, array axes permuted and flipped
    perm, flips = (2, 0, 1), (True, False, True)
    arr = np.transpose(img.array, perm)
    for ax, f in enumerate(flips):
        if f:
            arr = np.flip(arr, axis=ax)
    a = img.affine
    new = np.eye(4)
    shape_new = arr.shape
    for ax_new, ax_old in enumerate(perm):
        col = a[:3, ax_old]
        new[:3, ax_new] = -col if flips[ax_new] else col
    start = [0, 0, 0]
    for ax_new, ax_old in enumerate(perm):
        start[ax_old] = img.spatial_shape[ax_old] - 1 if flips[ax_new] else 0
    new[:3, 3] = img.index_to_world(start)
    ref = ml.Image(np.zeros(shape_new), new)
    out = img.resample_to(ref, interpolation="nearest")
    np.testing.assert_array_equal(out.array, arr)
    assert out.dtype == img.dtype
    lin = img.resample_to(ref, interpolation="linear")
    np.testing.assert_allclose(lin.array, arr, atol=1e-3)
    assert name  # direction only labels the case


def test_resample_linear_half_voxel_shift_matches_average():
    arr = np.zeros((1, 1, 8), dtype=np.float32)
    arr[0, 0, :] = np.arange(8) ** 2
    img = ml.Image(arr, np.diag([1.0, 1.0, 2.0, 1.0]))
    shifted = np.diag([1.0, 1.0, 2.0, 1.0])
    shifted[2, 3] = 1.0  # half a voxel along the column axis
    out = img.resample_to(((1, 1, 7), shifted), interpolation="linear")
    np.testing.assert_allclose(out.array[0, 0], (arr[0, 0, :-1] + arr[0, 0, 1:]) / 2, rtol=1e-6)


def test_resample_labels_nearest_keeps_values_and_outside_default():
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    labels[1:3, 1:4, 2:5] = 7
    labels[4, 4, 4] = 3
    img = ml.Image(labels, geo.compose_affine([2, 2, 2], [0, 0, 0], np.eye(3)))
    ref = ml.Image(np.zeros((12, 12, 12)), geo.compose_affine([1, 1, 1], [-0.25, -0.25, -0.25],
                                                              np.eye(3)))
    out = img.resample_to(ref, interpolation="nearest")
    assert set(np.unique(out.array)) <= {0, 3, 7}
    assert out.dtype == np.uint8
    # volume of each label is preserved by 2x upsampling (8 sub-voxels per voxel)
    assert (out.array == 7).sum() == 8 * (labels == 7).sum()
    far = ml.Image(np.zeros((2, 2, 2)), geo.compose_affine([1, 1, 1], [100, 100, 100], np.eye(3)))
    assert np.all(img.resample_to(far, interpolation="nearest", default_value=0).array == 0)


def test_resample_time_series_frame_by_frame():
    arr = np.random.default_rng(1).random((3, 4, 5, 2)).astype(np.float32)
    img = ml.Image(arr, np.eye(4), frame_times_s=[0, 1.5])
    out = img.resample_to(img, interpolation="linear")
    np.testing.assert_allclose(out.array, arr, atol=1e-6)
    np.testing.assert_allclose(out.frame_times_s, [0, 1.5])


def test_sheared_grid_refuses_itk_and_resamples_to_orthogonal_grid():
    """A gantry-tilted stack: its affine is sheared. Resampled onto an
    orthogonal grid, each voxel keeps its world position (checked against
    the world coordinates the sheared affine gives)."""
    tilt = np.deg2rad(15)
    a = np.eye(4)
    a[:3, 0] = [0, np.sin(tilt) * 2.0, np.cos(tilt) * 2.0]  # slice step, tilted in y-z
    a[:3, 1] = [0, 1.0, 0]
    a[:3, 2] = [1.0, 0, 0]
    zz, yy, xx = np.meshgrid(np.arange(10), np.arange(12), np.arange(8), indexing="ij")
    img = ml.Image((xx + 10 * yy + 100 * zz).astype(np.float32), a)
    assert not geo.is_orthogonal(img.affine)
    with pytest.raises(GeometryError, match="orthogonal_grid"):
        img.to_simpleitk()
    shape, new = img.orthogonal_grid()
    assert geo.is_orthogonal(new)
    out = img.resample_to((shape, new), interpolation="linear", default_value=-1)
    # value at a world point: sample an interior voxel of the output, map it back
    idx = np.argwhere(out.array > 0)
    rng = np.random.default_rng(0)
    for k, j, i in idx[rng.choice(len(idx), 50)]:
        w = geo.apply_affine(new, [k, j, i])
        src = img.world_to_index(w)
        if np.all(src >= 0) and np.all(src <= np.array(img.spatial_shape) - 1):
            expect = src[2] + 10 * src[1] + 100 * src[0]  # the function is linear
            assert out.array[k, j, i] == pytest.approx(expect, abs=1e-3)


def test_save_refuses_to_overwrite_source(tmp_path):
    img = synthetic_image()
    p = ml.save(img, tmp_path / "a.nii.gz")
    loaded = ml.load(p)
    with pytest.raises(ml.errors.MedlabError, match="never modifies source"):
        ml.save(loaded, p)


@pytest.mark.parametrize(("name", "direction"), ALL, ids=IDS)
@pytest.mark.parametrize("target", ["SPL", "LPS", "RAS", "IAL"])
def test_reorient_keeps_every_voxel_in_place(name, direction, target):
    img = synthetic_image(direction=direction)
    out = img.reorient(target)
    if not img.is_oblique:
        assert out.orientation == target
    # every voxel value sits at the same world position as before (independent check:
    # look each value up in the original by its world position)
    rng = np.random.default_rng(0)
    for idx in rng.integers(0, out.spatial_shape, size=(20, 3)):
        src = np.rint(img.world_to_index(out.index_to_world(idx))).astype(int)
        assert out.array[tuple(idx)] == img.array[tuple(src)]
