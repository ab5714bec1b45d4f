"""medlab's one resampler, :meth:`medlab.Image.resample_to`, against independent references.

- a ``(shape, affine)`` grid: nibabel.processing.resample_from_to (scipy's
  map_coordinates) on a real NIfTI, with the LPS <-> RAS flip and the index
  order reversal done here at the edge;
- a known translation (SimpleITK transform or 4x4 LPS matrix, reference ->
  moving points): a shifted numpy array, computed by hand, in 3D and 2D;
- a deformable (B-spline) transform on an oblique grid: SimpleITK's own
  physical-space resampling of the same images;
- a 4D image and an RGB image: each frame / channel resampled alone;
- a real label map with nearest neighbour: stays integer with the same labels.
"""

from __future__ import annotations

import numpy as np
import pytest

import medlab as ml
from medlab import geometry as geo
from medlab.errors import GeometryError


def _oblique(spacing, origin, seed=0) -> np.ndarray:
    """A 4x4 index -> LPS affine with a random rotation (no voxel ties with axis grids)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    a = np.eye(4)
    a[:3, :3] = q * np.asarray(spacing, dtype=float)
    a[:3, 3] = origin
    return a


@pytest.fixture(scope="module")
def anatomical():
    return ml.data.path("nibabel-testdata", "anatomical.nii")


def _inside(image: ml.Image, shape, affine, margin=0.0) -> np.ndarray:
    """Output voxels whose source position lies in [margin, n - 1 - margin] on every axis."""
    idx = np.indices(shape).reshape(3, -1).T.astype(float)
    src = image.world_to_index(geo.apply_affine(affine, idx))
    ok = np.all((src >= margin) & (src <= np.asarray(image.spatial_shape) - 1 - margin), axis=1)
    return ok.reshape(shape)


@pytest.mark.parametrize(("interpolation", "order"), [("linear", 1), ("nearest", 0)])
def test_grid_matches_nibabel_resample_from_to(anatomical, interpolation, order):
    import nibabel as nib
    from nibabel.processing import resample_from_to

    image = ml.load(anatomical)
    # an oblique grid through the head, 1.7 x 2.3 x 1.9 mm voxels
    centre = image.index_to_world((np.asarray(image.spatial_shape) - 1) / 2)
    shape = (30, 26, 28)
    affine = _oblique((1.7, 2.3, 1.9), centre, seed=3)
    affine[:3, 3] -= affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    out = image.resample_to((shape, affine), interpolation=interpolation, default_value=0)
    assert out.shape == shape and np.allclose(out.affine, affine)

    # the same grid at nibabel's edge: (i, j, k) index order and RAS
    affine_ras = geo.LPS_TO_RAS @ geo.swap_xyz_index(affine)
    source = nib.load(anatomical)
    source = nib.Nifti1Image(source.get_fdata(), source.affine)  # int16 -> float: no rounding
    expected = resample_from_to(source, (shape[::-1], affine_ras), order=order,
                                mode="constant", cval=0.0)
    expected = np.asarray(expected.dataobj).transpose(2, 1, 0)
    # inside the source's voxel centres both interpolate the same neighbours
    # (at the very edge scipy returns cval where ITK still reads the last half voxel)
    inside = _inside(image, shape, affine)
    assert inside.mean() > 0.3
    if interpolation == "nearest":
        np.testing.assert_array_equal(out.array[inside], expected[inside])
        assert out.dtype == np.int16 and image.dtype == np.dtype(">i2")  # native byte order
    else:
        scale = float(np.abs(image.array).max())
        np.testing.assert_allclose(out.array[inside], expected[inside], atol=1e-6 * scale)
        assert out.dtype == np.float32
    # outside the field of view: the default value
    far = ~_inside(image, shape, affine, margin=-1.0)
    assert far.any() and np.all(out.array[far] == 0)


@pytest.mark.parametrize("as_matrix", [False, True])
@pytest.mark.parametrize("interpolation", ["nearest", "linear", "bspline"])
def test_known_translation_is_a_shifted_array(interpolation, as_matrix):
    """A reference point p reads the moving image at p + t; with t a whole
    number of voxels (along the oblique axes) that is a shifted array."""
    import SimpleITK as sitk

    rng = np.random.default_rng(7)
    arr = rng.integers(1, 1000, size=(9, 10, 11)).astype(np.int16)
    affine = _oblique((2.0, 1.5, 0.8), (10.0, -20.0, 30.0), seed=1)
    image = ml.Image(arr, affine)
    shift = np.array([2, -3, 4])  # voxels along (slice, row, column)
    t = affine[:3, :3] @ shift  # the same shift in LPS mm
    if as_matrix:
        transform = np.eye(4)
        transform[:3, 3] = t
    else:
        transform = sitk.TranslationTransform(3, t.tolist())
    out = image.resample_to(image, transform=transform, interpolation=interpolation,
                            default_value=-7)
    expected = np.full(arr.shape, -7, dtype=np.int16)
    expected[:-2, 3:, :-4] = arr[2:, :-3, 4:]  # out[k, j, i] = arr[k + 2, j - 3, i + 4]
    if interpolation == "nearest":
        assert out.dtype == np.int16
        np.testing.assert_array_equal(out.array, expected)
    else:  # interpolating exactly at voxel centres gives the voxel values
        assert out.dtype == np.float32
        block = (slice(None, -2), slice(3, None), slice(None, -4))
        np.testing.assert_allclose(out.array[block], expected[block], atol=1e-3)
        assert np.all(out.array[:, :3] == -7) and np.all(out.array[-1] == -7)


def test_2d_translation_on_a_single_slice():
    """A 2D SimpleITK transform acts on a single slice's LPS x, y (2D registration)."""
    import SimpleITK as sitk

    arr = np.arange(1, 1 + 12 * 15, dtype=np.float32).reshape(1, 12, 15)
    c, s = np.cos(0.3), np.sin(0.3)  # rows and columns rotated in the axial plane
    affine = np.array([[0, -0.7 * s, 0.5 * c, 5.0], [0, 0.7 * c, 0.5 * s, 7.0],
                       [2.0, 0, 0, -3.0], [0, 0, 0, 1]])
    image = ml.Image(arr, affine)
    col, row = affine[:3, 2], affine[:3, 1]
    t = 3 * col + 2 * row  # 3 columns and 2 rows on, in the x-y plane
    assert t[2] == 0
    out = image.resample_to(image, transform=sitk.TranslationTransform(2, t[:2].tolist()),
                            interpolation="nearest")
    expected = np.zeros_like(arr)
    expected[0, :-2, :-3] = arr[0, 2:, 3:]
    np.testing.assert_array_equal(out.array, expected)
    volume = ml.Image(np.zeros((3, 12, 15)), affine)
    with pytest.raises(GeometryError, match="single-slice"):
        volume.resample_to(volume, transform=sitk.TranslationTransform(2))


def test_deformable_transform_matches_simpleitk_physical_resampling():
    """Index-space resampling through a B-spline transform equals SimpleITK
    resampling the same images in physical space."""
    import SimpleITK as sitk

    rng = np.random.default_rng(2)
    image = ml.Image(rng.random((12, 14, 16)).astype(np.float32),
                     _oblique((2.0, 1.5, 1.2), (3.0, -4.0, 5.0), seed=4))
    ref_affine = _oblique((1.8, 1.6, 1.3), (4.0, -3.0, 6.0), seed=5)
    ref = ml.Image(np.zeros((10, 11, 13), np.float32), ref_affine)
    ref_s = ref.to_simpleitk()
    bspline = sitk.BSplineTransformInitializer(ref_s, [3, 3, 3])
    bspline.SetParameters((rng.normal(size=len(bspline.GetParameters())) * 1.5).tolist())
    rigid = sitk.Euler3DTransform([1.0, 2.0, 3.0], 0.1, -0.2, 0.15, [1.5, -2.0, 0.5])
    for transform in (bspline, sitk.CompositeTransform([rigid, bspline])):
        for interpolation, itk in (("linear", sitk.sitkLinear), ("nearest", sitk.sitkNearestNeighbor)):
            expected = sitk.GetArrayFromImage(
                sitk.Resample(image.to_simpleitk(), ref_s, transform, itk, -5.0))
            out = image.resample_to(ref, transform=transform, interpolation=interpolation,
                                    default_value=-5)
            assert (expected != -5).mean() > 0.3  # a good part lies inside
            np.testing.assert_allclose(out.array, expected, atol=1e-5)


def test_each_frame_and_channel_resampled_as_alone():
    import SimpleITK as sitk

    series = ml.load(ml.data.path("nibabel-testdata", "functional.nii"))
    assert series.n_frames == 20
    grid = ((5, 16, 14), _oblique((6.0, 5.0, 4.5), series.index_to_world([1, 10, 8]), seed=6))
    transform = sitk.Euler3DTransform([0.0, 0.0, 0.0], 0.05, 0.02, -0.1, [1.0, -2.0, 0.5])
    out = series.resample_to(grid, transform=transform, interpolation="linear")
    assert out.shape == (5, 16, 14, 20) and out.frame_axis == "time"
    np.testing.assert_allclose(out.frame_times_s, series.frame_times_s)
    assert out.dtype == np.float64  # float64 stays
    for t in (0, 7, 19):
        alone = series.frame(t).resample_to(grid, transform=transform, interpolation="linear")
        np.testing.assert_array_equal(out.array[..., t], alone.array)

    rgb = np.random.default_rng(3).integers(0, 256, size=(4, 6, 7, 3)).astype(np.uint8)
    image = ml.Image(rgb, _oblique((1.0, 1.0, 1.0), (0, 0, 0), seed=8), channels=True)
    ref = ((5, 5, 5), _oblique((0.9, 1.1, 1.0), (0.5, 0.5, 0.5), seed=9))
    for interpolation in ("nearest", "linear"):
        both = image.resample_to(ref, interpolation=interpolation)
        assert both.channels and both.shape == (5, 5, 5, 3)
        for c in range(3):
            alone = image.with_array(rgb[..., c], channels=False).resample_to(
                ref, interpolation=interpolation)
            np.testing.assert_allclose(both.array[..., c], alone.array, atol=1e-4)


def test_label_map_nearest_stays_integer_with_the_same_labels(anatomical):
    image = ml.load(anatomical)  # big-endian int16 on disk
    values = np.asarray(image.array)
    lo, hi = np.quantile(values[values > 0], [0.4, 0.8])
    labels = np.select([values > hi, values > lo, values > 0], [7, 2, 1], 0).astype(np.int16)
    label_image = image.with_array(labels)
    # a finer oblique grid (1 mm voxels, 2 mm in the source) centred on the head
    shape = (60, 90, 70)
    affine = _oblique((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), seed=10)
    centre = label_image.index_to_world((np.asarray(label_image.spatial_shape) - 1) / 2)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    grid = (shape, affine)
    for interpolation in ("nearest", "label"):
        out = label_image.resample_to(grid, interpolation=interpolation)
        assert out.dtype == np.int16
        assert set(np.unique(out.array).tolist()) == {0, 1, 2, 7}
    # nearest: each output voxel holds the label of the closest source voxel centre
    out = label_image.resample_to(grid, interpolation="nearest")
    idx = np.argwhere(_inside(label_image, grid[0], grid[1]))[::97]
    src = np.rint(label_image.world_to_index(geo.apply_affine(grid[1], idx))).astype(int)
    np.testing.assert_array_equal(out.array[tuple(idx.T)], labels[tuple(src.T)])
    mask = label_image.with_array(labels == 7)
    assert mask.resample_to(grid, interpolation="nearest").dtype == np.bool_


def test_bad_arguments_get_clear_errors():
    image = ml.Image(np.zeros((3, 4, 5)), np.eye(4))
    with pytest.raises(ValueError, match=r"interpolation must be one of.*'cubic'"):
        image.resample_to(image, interpolation="cubic")
    with pytest.raises(TypeError, match=r"\(shape, affine\) grid, got ndarray"):
        image.resample_to(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"3 spatial sizes"):
        image.resample_to(((3, 4), np.eye(4)))
    with pytest.raises(ValueError, match=r"4x4 matrix.*\(3, 3\)"):
        image.resample_to(image, transform=np.eye(3))
