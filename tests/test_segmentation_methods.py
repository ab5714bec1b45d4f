"""Segmentation methods: thresholds, region growing, watershed, morphology, components,
label editing and the sliding-window hook.

Independent references: SimpleITK and scikit-image called directly here on
the same arrays (``BinaryThreshold``, ``OtsuThreshold``,
``threshold_multiotsu``, ``ConnectedThreshold``, ``ConfidenceConnected``,
``MorphologicalWatershed*``, ``BinaryFillhole``, ``ConnectedComponent``,
``measure.label``), scipy morphology with an explicit ellipsoid
structuring element, analytic phantoms (ellipsoids, boxes, oblique grids
built here with scipy rotations), and the real STS_002 CT with its GTV.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.signal.windows import gaussian as gaussian_window
from scipy.spatial.transform import Rotation

import medlab as ml
from medlab import segmentation as mlseg
from medlab.errors import GeometryError, GeometryMismatchError

skimage_filters = pytest.importorskip("skimage.filters")
skimage_measure = pytest.importorskip("skimage.measure")
skimage_segmentation = pytest.importorskip("skimage.segmentation")

SPACING = (3.0, 0.8, 1.25)  # anisotropic (slice, row, column) mm


# ---------------------------------------------------------------- helpers
#: axial DICOM order: slices go superior, rows posterior, columns left
AXIAL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def grid(shape, spacing=SPACING, origin=(-20.0, 35.0, 110.0), rotation=None, direction=None) -> np.ndarray:
    """An affine built here: columns = rotated unit axes times spacing (array order)."""
    a = np.eye(4)
    if direction is None:
        direction = np.eye(3) if rotation is None else Rotation.from_euler("xyz", rotation, degrees=True).as_matrix()
    a[:3, :3] = direction * np.asarray(spacing, dtype=float)
    a[:3, 3] = origin
    return a


def image(arr, spacing=SPACING, rotation=None, direction=None, **meta) -> ml.Image:
    return ml.Image(arr, grid(np.shape(arr), spacing, rotation=rotation, direction=direction), meta=meta)


def sitk_image(arr, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    out.SetSpacing([float(s) for s in spacing[::-1]])
    return out


def same_grid(result: ml.Image, source: ml.Image) -> None:
    assert result.spatial_shape == source.spatial_shape
    np.testing.assert_array_equal(result.affine, source.affine)


def blobs(shape=(14, 40, 36), seed=1, sigma=2.0, level=0.6) -> np.ndarray:
    """A random blobby mask (smoothed noise above a quantile)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field > np.quantile(field, level)


def ellipsoid_structure(spacing, radius_mm) -> np.ndarray:
    """Offsets whose centres lie within radius_mm (the mm ball on the voxel grid)."""
    spacing = np.asarray(spacing, dtype=float)
    ext = np.floor(radius_mm / spacing).astype(int)
    zz, yy, xx = np.meshgrid(*[np.arange(-e, e + 1) for e in ext], indexing="ij")
    return (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= radius_mm**2 + 1e-9


def partition_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label arrays split the voxels the same way (up to label values)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1]


# ------------------------------------------------------------- thresholds
def test_threshold_matches_sitk_binary_threshold():
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 2000, size=(6, 20, 18)).astype(np.int16)
    img = image(arr, rotation=(10, -20, 30), modality="CT")
    for lower, upper in [(-100, 300), (300, 3000), (-1000, -1000)]:
        got = mlseg.threshold(img, lower=lower, upper=upper)
        ref = sitk.GetArrayFromImage(sitk.BinaryThreshold(sitk_image(arr), lower, upper, 1, 0))
        np.testing.assert_array_equal(got.array, ref)
        same_grid(got, img)
        assert got.dtype == np.uint8 and got.meta["labels"] == {1: "threshold"}
    low_only = mlseg.threshold(img, lower=500).array
    np.testing.assert_array_equal(low_only, sitk.GetArrayFromImage(
        sitk.BinaryThreshold(sitk_image(arr), 500, 32767, 1, 0)))
    with pytest.raises(ValueError, match=r"lower=\.\.\., upper="):
        mlseg.threshold(img)
    with pytest.raises(ValueError, match="above upper"):
        mlseg.threshold(img, lower=5, upper=1)
    with pytest.raises(TypeError, match=r"medlab\.Image"):
        mlseg.threshold(arr, lower=0)


def test_otsu_matches_sitk_and_separates_two_classes():
    rng = np.random.default_rng(1)
    truth = blobs()
    arr = np.where(truth, rng.normal(200, 15, truth.shape), rng.normal(20, 15, truth.shape)).astype(np.float32)
    img = image(arr, rotation=(0, 0, 25))
    got = mlseg.otsu(img)
    f = sitk.OtsuThresholdImageFilter()
    ref = sitk.GetArrayFromImage(sitk.OtsuThreshold(sitk_image(arr), 0, 1, 128))
    f.SetInsideValue(0), f.SetOutsideValue(1), f.Execute(sitk_image(arr))
    np.testing.assert_array_equal(got.array, ref)
    assert got.meta["threshold"] == pytest.approx(f.GetThreshold())
    # scikit-image's own Otsu (256 bins) agrees within a couple of bin widths
    width = (arr.max() - arr.min()) / 128
    assert abs(got.meta["threshold"] - skimage_filters.threshold_otsu(arr)) < 2 * width
    assert 60 < got.meta["threshold"] < 160 and np.array_equal(got.array.astype(bool), truth)
    same_grid(got, img)

    mask = np.zeros(arr.shape, dtype=np.uint8)
    mask[:, :20] = 1
    masked = mlseg.otsu(img, mask=img.with_array(mask))
    ref = sitk.GetArrayFromImage(sitk.OtsuThreshold(sitk_image(arr), sitk_image(mask), 0, 1, 128, True, 1))
    np.testing.assert_array_equal(masked.array, ref)
    assert not masked.array[:, 20:].any()
    with pytest.raises(GeometryMismatchError):
        mlseg.otsu(img, mask=image(mask, spacing=(1, 1, 1)))
    with pytest.raises(GeometryError, match="shape"):
        mlseg.otsu(img, mask=mask[:, :10])


def test_multi_otsu_matches_skimage_and_recovers_three_levels():
    rng = np.random.default_rng(2)
    level = np.zeros((8, 30, 30), dtype=int)
    level[:, 10:20] = 1
    level[:, 20:] = 2
    arr = (np.array([-50.0, 100.0, 400.0])[level] + rng.normal(0, 5, level.shape)).astype(np.float32)
    img = image(arr)
    got = mlseg.multi_otsu(img, classes=3)
    thresholds = skimage_filters.threshold_multiotsu(arr, classes=3)
    np.testing.assert_allclose(got.meta["thresholds"], thresholds)
    np.testing.assert_array_equal(got.array, np.digitize(arr, bins=thresholds) + 1)
    # the phantom's classes, darkest = 1; thresholds in the gaps (up to one histogram bin)
    bin_width = np.ptp(arr) / 256
    for c, t in enumerate(got.meta["thresholds"]):
        assert arr[level == c].max() - bin_width <= t <= arr[level == c + 1].min()
    assert np.mean(got.array == level + 1) > 0.999
    assert got.meta["labels"] == {1: "class 1", 2: "class 2", 3: "class 3"}
    same_grid(got, img)

    inside = level > 0
    masked = mlseg.multi_otsu(img, classes=2, mask=inside)
    t = skimage_filters.threshold_multiotsu(arr[inside], classes=2)
    np.testing.assert_array_equal(masked.array, np.where(inside, np.digitize(arr, t) + 1, 0))
    with pytest.raises(mlseg.SegmentationError, match="fewer classes"):
        mlseg.multi_otsu(img.with_array(level.astype(np.float32)), classes=5)


def ct_phantom() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An axial CT phantom in HU: air, a water cylinder with two lungs, a fat ring,
    a bone rod, and a separate table slab."""
    shape = (10, 64, 64)
    _, yy, xx = np.indices(shape)
    r = np.hypot(yy - 30, xx - 32)
    body = r <= 24
    fat = body & (r > 20)
    lungs = (np.hypot(yy - 28, xx - 22) <= 6) | (np.hypot(yy - 28, xx - 42) <= 6)
    bone = np.hypot(yy - 40, xx - 32) <= 3
    table = (yy >= 58) & (yy <= 60)
    arr = np.full(shape, -1000.0)
    arr[body] = 40.0
    arr[fat] = -100.0
    arr[lungs] = -850.0
    arr[bone] = 700.0
    arr[table] = 100.0
    rng = np.random.default_rng(3)
    arr = (arr + rng.normal(0, 5, shape)).round().astype(np.int16)
    return arr, {"body": body, "lung": lungs, "bone": bone, "fat": fat, "table": table}


def test_hu_presets_on_a_ct_phantom():
    arr, truth = ct_phantom()
    ct = image(arr, spacing=(2.5, 0.7, 0.7), direction=AXIAL, modality="CT")
    assert ct.orientation == "SPL"
    body = mlseg.hu_preset(ct, "body")
    np.testing.assert_array_equal(body.array.astype(bool), truth["body"])  # lungs filled, table dropped
    np.testing.assert_array_equal(mlseg.hu_preset(ct, "lung").array.astype(bool), truth["lung"])
    np.testing.assert_array_equal(mlseg.hu_preset(ct, "bone").array.astype(bool), truth["bone"])
    np.testing.assert_array_equal(mlseg.hu_preset(ct, "fat").array.astype(bool), truth["fat"])
    for preset, (lo, hi) in [("bone", (300, 3000)), ("fat", (-190, -30)), ("soft_tissue", (-29, 150))]:
        got = mlseg.hu_preset(ct, preset)
        ref = sitk.GetArrayFromImage(sitk.BinaryThreshold(sitk_image(arr), lo, hi, 1, 0))
        np.testing.assert_array_equal(got.array, ref)
        assert got.meta["labels"] == {1: preset} and got.meta["hu_range"] == (lo, hi)
        same_grid(got, ct)
    # the table (100 HU) is soft tissue by value but not body
    assert mlseg.hu_preset(ct, "soft_tissue").array[truth["table"]].all()
    assert not body.array[truth["table"]].any()


def test_hu_preset_refuses_non_hu_data():
    arr, _ = ct_phantom()
    pet = image(np.abs(arr).astype(np.float32) / 100, modality="PT", units="GML")
    with pytest.raises(mlseg.SegmentationError, match="units are 'GML'"):
        mlseg.hu_preset(pet, "bone")
    with pytest.raises(mlseg.SegmentationError, match="modality is 'MR'"):
        mlseg.hu_preset(image(arr, modality="MR"), "bone")
    with pytest.raises(mlseg.SegmentationError, match=r"modality is 'unknown'.*meta\['units'\] = 'HU'"):
        mlseg.hu_preset(image(arr), "bone")
    raw = (arr.astype(np.int32) + 1024).astype(np.uint16)  # stored values, no rescale
    with pytest.raises(mlseg.SegmentationError, match="RescaleSlope/Intercept"):
        mlseg.hu_preset(image(raw, modality="CT"), "bone")
    normalised = image((arr - arr.min()) / np.ptp(arr), modality="CT")
    with pytest.raises(mlseg.SegmentationError, match="normalised"):
        mlseg.hu_preset(normalised, "body")
    # a CT loaded from NIfTI has no modality: stating HU units is enough
    assert mlseg.hu_preset(image(arr, units="HU"), "bone").array.any()
    with pytest.raises(ValueError, match="preset must be one of"):
        mlseg.hu_preset(image(arr, modality="CT"), "brain")


# ---------------------------------------------------------- region growing
def smooth_volume(shape=(12, 40, 40), seed=4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (ndimage.gaussian_filter(rng.normal(size=shape), 2.0) * 1000).astype(np.float32)


def test_connected_threshold_matches_sitk_for_every_seed_form():
    arr = smooth_volume()
    img = image(arr, rotation=(15, 5, -40))
    seed_idx = (6, 20, 21)
    lo, hi = float(arr[seed_idx] - 40), float(arr[seed_idx] + 60)
    world = img.affine[:3, :3] @ np.array(seed_idx, dtype=float) + img.affine[:3, 3]
    for conn, sitk_conn in [(6, sitk.ConnectedThresholdImageFilter.FaceConnectivity),
                            (26, sitk.ConnectedThresholdImageFilter.FullConnectivity)]:
        ref = sitk.GetArrayFromImage(sitk.ConnectedThreshold(
            sitk_image(arr), seedList=[seed_idx[::-1]], lower=lo, upper=hi, replaceValue=1,
            connectivity=sitk_conn))
        results = [
            mlseg.connected_threshold(img, [tuple(world)], lower=lo, upper=hi, connectivity=conn),
            mlseg.connected_threshold(img, world, lower=lo, upper=hi, connectivity=conn),
            mlseg.connected_threshold(img, pd.DataFrame({"x_mm": [world[0]], "y_mm": [world[1]],
                                                         "z_mm": [world[2]], "note": ["click"]}),
                                      lower=lo, upper=hi, connectivity=conn),
            mlseg.connected_threshold(img, [seed_idx], lower=lo, upper=hi, seeds_are_indices=True,
                                      connectivity=conn),
            mlseg.connected_threshold(img, pd.DataFrame({"k": [6], "j": [20], "i": [21]}), lower=lo,
                                      upper=hi, seeds_are_indices=True, connectivity=conn),
        ]
        for got in results:
            np.testing.assert_array_equal(got.array, ref)
            same_grid(got, img)
        assert 50 < ref.sum() < ref.size / 2
    # integer image with fractional bounds: values inside [lower, upper] exactly
    iarr = np.round(arr).astype(np.int16)
    got = mlseg.connected_threshold(image(iarr), [seed_idx], lower=lo + 0.5, upper=hi - 0.5,
                                    seeds_are_indices=True)
    ref = sitk.GetArrayFromImage(sitk.ConnectedThreshold(
        sitk_image(iarr), seedList=[seed_idx[::-1]], lower=int(np.ceil(lo + 0.5)),
        upper=int(np.floor(hi - 0.5))))
    np.testing.assert_array_equal(got.array, ref)


def test_seeds_in_lps_mm_land_on_the_right_voxel_of_an_oblique_grid():
    shape = (7, 11, 13)
    arr = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # every value unique
    spacing, rotation = (2.7, 0.9, 1.3), (25.0, -35.0, 60.0)
    img = image(arr, spacing=spacing, rotation=rotation)
    assert img.is_oblique
    direction = Rotation.from_euler("xyz", rotation, degrees=True).as_matrix()
    rng = np.random.default_rng(5)
    for k, j, i in rng.integers(0, shape, size=(12, 3)):
        # the voxel centre in LPS mm, computed here, moved by under half a voxel along each axis
        jitter = rng.uniform(-0.45, 0.45, 3) * np.asarray(spacing)
        point = np.asarray(img.origin) + direction @ (np.array([k, j, i]) * np.asarray(spacing) + jitter)
        v = arr[k, j, i]
        got = mlseg.connected_threshold(img, [point], lower=v, upper=v)
        assert np.argwhere(got.array).tolist() == [[k, j, i]]
        assert got.meta["seeds_index"] == [[k, j, i]]


def test_seed_errors_name_the_seed_and_the_image():
    arr = smooth_volume()
    img = image(arr)
    outside = img.index_to_world([[6, 20, 21], [6, 20, 45]])
    with pytest.raises(mlseg.SegmentationError, match=r"seed 1 at LPS point .*outside the image.*LPS"):
        mlseg.connected_threshold(img, outside, lower=-1e9, upper=1e9)
    with pytest.raises(mlseg.SegmentationError, match=r"seed 0 at voxel index .*\[12\.0, 0\.0, 0\.0\]"):
        mlseg.confidence_connected(img, [(12, 0, 0)], seeds_are_indices=True)
    with pytest.raises(ValueError, match="not a whole voxel index"):
        mlseg.connected_threshold(img, [(1.5, 2, 3)], lower=0, upper=1, seeds_are_indices=True)
    with pytest.raises(ValueError, match="x_mm"):
        mlseg.connected_threshold(img, pd.DataFrame({"x": [0.0]}), lower=0, upper=1)
    with pytest.raises(ValueError, match="shape"):
        mlseg.connected_threshold(img, [(1, 2)], lower=0, upper=1)
    v = float(arr[6, 20, 21])
    with pytest.raises(mlseg.SegmentationError, match="no seed has a value"):
        mlseg.connected_threshold(img, [(6, 20, 21)], lower=v + 1, upper=v + 2, seeds_are_indices=True)
    with pytest.warns(UserWarning, match="1 seed"):
        mlseg.connected_threshold(img, [(6, 20, 21), (0, 0, 0)], lower=v - 1, upper=v + 1,
                                  seeds_are_indices=True)


def test_confidence_connected_matches_sitk():
    arr = smooth_volume(shape=(16, 36, 36), seed=6)
    spacing = (1.5, 1.5, 1.5)
    img = image(arr, spacing=spacing)
    seeds = [(8, 18, 18), (5, 10, 25)]
    for radius_vox, multiplier, iterations in [(1, 2.5, 4), (2, 1.5, 2), (1, 3.0, 0)]:
        ref = sitk.GetArrayFromImage(sitk.ConfidenceConnected(
            sitk_image(arr, spacing), seedList=[s[::-1] for s in seeds], numberOfIterations=iterations,
            multiplier=multiplier, initialNeighborhoodRadius=radius_vox, replaceValue=1))
        got = mlseg.confidence_connected(img, seeds, seeds_are_indices=True, multiplier=multiplier,
                                         iterations=iterations, radius_mm=radius_vox * 1.5)
        np.testing.assert_array_equal(got.array, ref)
        assert got.meta["radius_voxels"] == [radius_vox] * 3 and 20 < ref.sum() < ref.size
        same_grid(got, img)
    default = mlseg.confidence_connected(img, seeds[:1], seeds_are_indices=True)
    np.testing.assert_array_equal(default.array, sitk.GetArrayFromImage(sitk.ConfidenceConnected(
        sitk_image(arr, spacing), seedList=[seeds[0][::-1]], multiplier=2.5)))  # SimpleITK's is 4.5
    # anisotropic grid: the box radius is taken per axis from mm
    aniso = mlseg.confidence_connected(image(arr), seeds, seeds_are_indices=True, radius_mm=2.5)
    assert aniso.meta["radius_voxels"] == [1, 3, 2]  # 2.5 mm / (3.0, 0.8, 1.25) mm


# ---------------------------------------------------------------- watershed
def two_balls(shape=(30, 40, 56)):
    zz, yy, xx = np.indices(shape)
    a = (zz - 15) ** 2 + (yy - 20) ** 2 + (xx - 18) ** 2 <= 11**2
    b = (zz - 15) ** 2 + (yy - 20) ** 2 + (xx - 37) ** 2 <= 11**2
    return a | b


def test_watershed_from_markers_splits_touching_balls():
    union = two_balls()
    dist = ndimage.distance_transform_edt(union).astype(np.float32)
    img = image(-dist, spacing=(1.0, 1.0, 1.0))
    markers = np.zeros(union.shape, dtype=np.uint8)
    markers[15, 20, 18], markers[15, 20, 37] = 1, 2
    marker_img = img.with_array(markers, meta={"labels": {1: "left", 2: "right"}})
    got = mlseg.watershed(img, markers=marker_img, gradient=False, mask=img.with_array(union))
    ref = sitk.GetArrayFromImage(sitk.MorphologicalWatershedFromMarkers(
        sitk_image(-dist), sitk_image(markers.astype(np.uint32)), markWatershedLine=False,
        fullyConnected=False))
    np.testing.assert_array_equal(got.array, np.where(union, ref, 0))
    sk = skimage_segmentation.watershed(-dist, markers, mask=union)
    assert np.mean(got.array[union] == sk[union]) > 0.99
    # analytic: the split is the mid-plane x = 27.5 (voxels off it by >= 1 voxel)
    xx = np.indices(union.shape)[2]
    np.testing.assert_array_equal(got.array[union & (xx <= 26)], 1)
    np.testing.assert_array_equal(got.array[union & (xx >= 29)], 2)
    assert got.meta["labels"] == {1: "left", 2: "right"}
    same_grid(got, img)


def test_watershed_without_markers_matches_sitk_on_the_gradient():
    rng = np.random.default_rng(7)
    truth = blobs(shape=(10, 32, 32), seed=7, level=0.7)
    arr = (truth * 100 + rng.normal(0, 5, truth.shape)).astype(np.float32)
    img = image(arr)  # anisotropic: the gradient must use the voxel sizes
    got = mlseg.watershed(img, level=10.0, sigma_mm=1.5)
    relief = sitk.GradientMagnitudeRecursiveGaussian(img.to_simpleitk(), sigma=1.5)
    ref = sitk.GetArrayFromImage(sitk.MorphologicalWatershed(relief, level=10.0,
                                                             markWatershedLine=False, fullyConnected=False))
    np.testing.assert_array_equal(got.array, ref)
    assert ref.max() > 1
    same_grid(got, img)


# --------------------------------------------------------------- morphology
def test_dilating_one_voxel_gives_the_analytic_ellipsoid():
    shape = (15, 31, 25)
    centre = (7, 15, 12)
    arr = np.zeros(shape, dtype=np.uint8)
    arr[centre] = 1
    img = image(arr, rotation=(0, 30, 0))
    for radius in (2.0, 4.0, 6.5):
        got = mlseg.dilate(img, radius_mm=radius).array.astype(bool)
        zz, yy, xx = np.indices(shape) - np.array(centre)[:, None, None, None]
        d2 = (zz * SPACING[0]) ** 2 + (yy * SPACING[1]) ** 2 + (xx * SPACING[2]) ** 2
        np.testing.assert_array_equal(got, d2 <= radius**2 + 1e-9)
    assert mlseg.dilate(img, radius_mm=0).array.sum() == 1


def test_eroding_a_box_shrinks_each_axis_by_the_radius_in_voxels():
    shape = (20, 60, 50)
    arr = np.zeros(shape, dtype=bool)
    arr[4:16, 10:50, 8:40] = True
    img = image(arr)
    for radius in (2.0, 3.1, 6.0):
        got = mlseg.erode(img, radius_mm=radius)
        # a box voxel survives when its nearest outside voxel along each axis is > radius away
        m = np.floor(radius / np.asarray(SPACING) + 1e-9).astype(int)
        expected = np.zeros(shape, dtype=bool)
        expected[4 + m[0]:16 - m[0], 10 + m[1]:50 - m[1], 8 + m[2]:40 - m[2]] = True
        np.testing.assert_array_equal(got.array.astype(bool), expected)
        assert got.dtype == np.uint8
        same_grid(got, img)
    # the image edge does not erode (outside counts as foreground, as in ITK)
    edge = np.zeros(shape, dtype=bool)
    edge[:, :, :20] = True
    got = mlseg.erode(image(edge), radius_mm=2.0).array.astype(bool)
    assert got[:, 3:-3, 0].all() and not got[:, :, 19].any()


@pytest.mark.parametrize("radius", [1.0, 2.6, 4.0])
def test_morphology_matches_scipy_with_an_explicit_ellipsoid(radius):
    mask = np.pad(blobs(), 6)  # away from the border: no edge conventions involved
    img = image(mask.astype(np.uint8), rotation=(5, 5, 5))
    ball = ellipsoid_structure(SPACING, radius)
    refs = {
        "dilate": ndimage.binary_dilation(mask, ball),
        "erode": ndimage.binary_erosion(mask, ball),
        "opening": ndimage.binary_opening(mask, ball),
        "closing": ndimage.binary_closing(mask, ball),
    }
    for name, ref in refs.items():
        got = getattr(mlseg, name)(img, radius_mm=radius)
        np.testing.assert_array_equal(got.array.astype(bool), ref, err_msg=name)
        same_grid(got, img)


def test_morphology_at_the_image_edge_and_at_exact_lattice_distances():
    """r = 5 mm with spacing (1.5, 0.8, 0.8): offset (2, 3, 4) voxels is exactly 5 mm away.
    A mask touching the image edge: erosion treats outside as foreground (scipy
    border_value=1), closing pads with background (scipy closing on a padded array)."""
    spacing, r = (1.5, 0.8, 0.8), 5.0
    mask = np.pad(blobs(shape=(12, 40, 40), seed=13, level=0.4), ((0, 0), (3, 3), (3, 3)))
    mask[:, 20:26, 20:26] = True  # reaches the first and last slices
    img = image(mask.astype(np.uint8), spacing=spacing)
    ball = ellipsoid_structure(spacing, r)
    assert ball[3 + 2, 6 + 3, 6 + 4]  # the offset (2, 3, 4) from the centre (3, 6, 6): exactly 5 mm
    eroded = ndimage.binary_erosion(mask, ball, border_value=1)
    pad = 12
    closed = ndimage.binary_closing(np.pad(mask, pad), ball)[pad:-pad, pad:-pad, pad:-pad]
    expected = {
        "dilate": ndimage.binary_dilation(mask, ball),
        "erode": eroded,
        "opening": ndimage.binary_dilation(eroded, ball),
        "closing": closed,
    }
    for name, ref in expected.items():
        got = getattr(mlseg, name)(img, radius_mm=r).array.astype(bool)
        np.testing.assert_array_equal(got, ref, err_msg=name)
    assert np.all(expected["closing"] >= mask) and np.all(expected["opening"] <= mask)


def test_morphology_on_label_images_keeps_labels_apart():
    arr = np.zeros((3, 20, 30), dtype=np.uint8)
    arr[:, 5:15, 2:10] = 1
    arr[:, 5:15, 12:20] = 2
    img = image(arr, spacing=(1.0, 1.0, 1.0), labels={1: "a", 2: "b"})
    got = mlseg.dilate(img, radius_mm=1.5)
    ref1 = ndimage.binary_dilation(arr == 1, ellipsoid_structure((1, 1, 1), 1.5))
    ref2 = ndimage.binary_dilation(arr == 2, ellipsoid_structure((1, 1, 1), 1.5))
    # the two-voxel gap (columns 10, 11) is reached by both: label 1 (lower) wins it
    np.testing.assert_array_equal(got.array == 1, ref1)
    np.testing.assert_array_equal(got.array == 2, ref2 & ~ref1)
    assert got.meta["labels"] == {1: "a", 2: "b"}
    only2 = mlseg.erode(img, radius_mm=1.0, label=2).array
    np.testing.assert_array_equal(only2 == 1, arr == 1)
    assert (only2 == 2).sum() == 3 * 8 * 6  # in-plane only: beyond the image is foreground
    with pytest.raises(ValueError, match="radius_mm"):
        mlseg.dilate(img, radius_mm=-1)
    with pytest.raises(ValueError, match="label 3"):
        mlseg.dilate(img, radius_mm=1, label=3)


def test_fill_holes_matches_sitk():
    shell = blobs(seed=8, level=0.3)
    shell[5:9, 15:25, 12:22] = False  # a cavity
    shell[:, 0, :] = shell[:, -1, :] = True
    img = image(shell.astype(np.uint8))
    got = mlseg.fill_holes(img)
    ref = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk_image(shell.astype(np.uint8)), fullyConnected=False))
    np.testing.assert_array_equal(got.array, ref)
    assert got.array.sum() > shell.sum()
    # slice mode: a tube open at both ends is filled in each plane, not in 3D
    tube = np.zeros((6, 20, 20), dtype=np.uint8)
    _, yy, xx = np.indices(tube.shape)
    r = np.hypot(yy - 10, xx - 10)
    tube[(r >= 4) & (r <= 6)] = 1
    tube_img = image(tube)
    np.testing.assert_array_equal(mlseg.fill_holes(tube_img).array, tube)
    per_slice = np.stack([sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(s)))
                          for s in tube])
    np.testing.assert_array_equal(mlseg.fill_holes(tube_img, mode="slice").array, per_slice)
    # another label inside a hole is kept
    labels = tube.copy()
    labels[:, 9:12, 9:12] = 2
    filled = mlseg.fill_holes(image(labels), label=1, mode="slice").array
    assert (filled == 2).sum() == 6 * 9 and (filled[:, 10, 8] == 1).all()


# -------------------------------------------------- components and editing
@pytest.mark.parametrize(("conn", "sk_conn"), [(6, 1), (18, 2), (26, 3)])
def test_connected_components_match_skimage(conn, sk_conn):
    mask = blobs(seed=9, sigma=1.0, level=0.75)
    img = image(mask)
    got = mlseg.connected_components(img, connectivity=conn)
    ref = skimage_measure.label(mask, connectivity=sk_conn)
    assert partition_equal(got.array, ref)
    sizes = np.bincount(got.array.ravel())[1:]
    assert np.all(np.diff(sizes) <= 0)  # 1 = largest
    assert got.meta["n_components"] == ref.max() > 5
    same_grid(got, img)
    if conn in (6, 26):
        sitk_cc = sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(
            sitk_image(mask.astype(np.uint8)), conn == 26), sortByObjectSize=True))
        assert partition_equal(got.array, sitk_cc)
        np.testing.assert_array_equal(sizes, np.bincount(sitk_cc.ravel())[1:])


def test_component_size_filter_in_mm3_and_largest_component():
    mask = blobs(seed=10, sigma=1.0, level=0.8)
    img = image(mask)
    ref = skimage_measure.label(mask, connectivity=1)
    volumes = np.bincount(ref.ravel())[1:] * np.prod(SPACING)
    limit = float(np.median(volumes))
    got = mlseg.connected_components(img, min_size_mm3=limit)
    keep = np.isin(ref, np.flatnonzero(volumes >= limit) + 1)
    np.testing.assert_array_equal(got.array > 0, keep)
    assert got.meta["n_components"] == (volumes >= limit).sum()
    assert got.meta["n_removed"] == (volumes < limit).sum() > 0
    largest = mlseg.largest_component(img)
    np.testing.assert_array_equal(largest.array.astype(bool), ref == np.argmax(volumes) + 1)
    with pytest.raises(mlseg.SegmentationError, match="empty"):
        mlseg.largest_component(img.with_array(np.zeros_like(mask)))
    with pytest.raises(ValueError, match="connectivity"):
        mlseg.connected_components(img, connectivity=8)


def test_label_editing():
    arr = np.zeros((1, 4, 10), dtype=np.uint8)
    arr[0, :, 0:1] = 3  # 4 voxels
    arr[0, :, 1:4] = 5  # 12
    arr[0, :, 4:6] = 7  # 8
    img = image(arr, labels={3: "vein", 5: "liver", 7: "artery"}, source="seg.nii")
    merged = mlseg.merge_labels(img, {3: 9, 7: 9})
    np.testing.assert_array_equal(np.unique(merged.array), [0, 5, 9])
    assert (merged.array == 9).sum() == 12 and merged.meta["labels"] == {5: "liver", 9: "vein+artery"}
    assert merged.meta["source"] == "seg.nii"
    into = mlseg.merge_labels(img, {7: 5})
    assert (into.array == 5).sum() == 20 and into.meta["labels"] == {3: "vein", 5: "liver"}
    removed = mlseg.remove_labels(img, [3, 7])
    np.testing.assert_array_equal(removed.array, np.where(arr == 5, 5, 0))
    assert removed.meta["labels"] == {5: "liver"}
    relabelled = mlseg.relabel(img)
    np.testing.assert_array_equal(relabelled.array, np.select([arr == 5, arr == 7, arr == 3], [1, 2, 3], 0))
    assert relabelled.meta["labels"] == {1: "liver", 2: "artery", 3: "vein"}
    assert relabelled.meta["relabel_map"] == {5: 1, 7: 2, 3: 3}
    for result in (merged, removed, relabelled):
        same_grid(result, img)
    with pytest.raises(mlseg.SegmentationError, match=r"\[4\] are not in the label image"):
        mlseg.remove_labels(img, 4)
    with pytest.raises(TypeError, match="mapping"):
        mlseg.merge_labels(img, [3, 9])
    big = mlseg.merge_labels(img, {5: 300})
    assert big.dtype == np.uint16 and (big.array == 300).sum() == 12


# --------------------------------------------------------- sliding window
def test_sliding_window_with_a_thresholding_model():
    rng = np.random.default_rng(11)
    arr = rng.normal(0, 1, (11, 23, 17)).astype(np.float32)
    img = image(arr, rotation=(0, 0, 40))
    seen = []

    def model(batch):
        seen.append(batch.shape)
        assert batch.dtype == np.float32
        fg = (batch[:, 0] > 0.3).astype(np.float32)
        return np.stack([1 - fg, fg], axis=1)

    got = mlseg.sliding_window(img, model, patch_size=(4, 8, 8), overlap=0.5, batch_size=3,
                               progress=False, class_names=["background", "bright"])
    np.testing.assert_array_equal(got.array, (arr > 0.3).astype(np.uint8))
    assert got.meta["labels"] == {1: "bright"} and got.dtype == np.uint8
    assert {s[1:] for s in seen} == {(1, 4, 8, 8)} and max(s[0] for s in seen) == 3
    same_grid(got, img)
    probs = mlseg.sliding_window(img, model, patch_size=8, output="probabilities", progress=False)
    assert probs.channels and probs.shape == (*arr.shape, 2)
    np.testing.assert_allclose(probs.array[..., 1], arr > 0.3, atol=1e-6)
    same_grid(probs, img)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_sliding_window_places_and_blends_patches_exactly(blend):
    shape = (10, 9, 7)
    k, j, i = np.indices(shape)
    arr = (k * 100 + j * 10 + i).astype(np.float32)  # a voxel's value encodes its index
    img = image(arr)
    patch = (4, 4, 4)

    def model(batch):
        # score: the patch's start voxel value, plus a position-dependent term inside the patch
        start = batch[:, :, :1, :1, :1]
        local = np.indices(patch).sum(axis=0)[None, None]
        return (start + 0.5 * local).astype(np.float32)

    got = mlseg.sliding_window(img, model, patch_size=patch, overlap=0.5, blend=blend,
                               output="probabilities", progress=False)
    # windows derived by hand: step int(4 * 0.5) = 2, the last one ending at the edge
    starts = [[0, 2, 4, 6], [0, 2, 4, 5], [0, 2, 3]]
    w1 = gaussian_window(4, 0.125 * 4) if blend == "gaussian" else np.ones(4)
    weight = w1[:, None, None] * w1[None, :, None] * w1[None, None, :]
    num, den = np.zeros(shape), np.zeros(shape)
    local = np.indices(patch).sum(axis=0)
    for s0 in starts[0]:
        for s1 in starts[1]:
            for s2 in starts[2]:
                box = np.s_[s0:s0 + 4, s1:s1 + 4, s2:s2 + 4]
                num[box] += weight * (arr[s0, s1, s2] + 0.5 * local)
                den[box] += weight
    np.testing.assert_allclose(got.array[..., 0], num / den, rtol=1e-5)
    assert got.meta["parameters"]["n_windows"] == 4 * 4 * 3


def test_sliding_window_pads_small_images_and_passes_channels_in_order():
    arr = np.random.default_rng(12).normal(size=(3, 10, 9, 2)).astype(np.float32)
    img = ml.Image(arr, grid(arr.shape[:3]), channels=True)

    def model(batch):
        assert batch.shape[1:] == (2, 4, 6, 6)
        return np.stack([batch[:, 0], batch[:, 1], batch[:, 0] - batch[:, 1]], axis=1)

    got = mlseg.sliding_window(img, model, patch_size=(4, 6, 6), output="probabilities",
                               n_classes=3, progress=False)
    np.testing.assert_allclose(got.array[..., 0], arr[..., 0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.array[..., 1], arr[..., 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.array[..., 2], arr[..., 0] - arr[..., 1], rtol=1e-5, atol=1e-5)
    same_grid(got, img)
    labels = mlseg.sliding_window(img, model, patch_size=(4, 6, 6), progress=False)
    np.testing.assert_array_equal(labels.array, np.argmax(
        np.stack([arr[..., 0], arr[..., 1], arr[..., 0] - arr[..., 1]]), axis=0))


def test_sliding_window_errors_name_what_the_model_returned():
    img = image(np.zeros((6, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(1, 4, 4, 4\).*expected \(1, 'n_classes', 4, 4, 4\)"):
        mlseg.sliding_window(img, lambda b: b[:, 0], patch_size=4, progress=False)
    with pytest.raises(ValueError, match=r"expected \(1, 3, 4, 4, 4\)"):
        mlseg.sliding_window(img, lambda b: np.concatenate([b, b], 1), patch_size=4, n_classes=3,
                             progress=False)
    with pytest.raises(ValueError, match="patch_size"):
        mlseg.sliding_window(img, lambda b: b, patch_size=(4, 4), progress=False)
    with pytest.raises(ValueError, match="overlap"):
        mlseg.sliding_window(img, lambda b: b, patch_size=4, overlap=1.0, progress=False)
    with pytest.raises(TypeError, match="callable"):
        mlseg.sliding_window(img, "unet", patch_size=4, progress=False)
    single = mlseg.sliding_window(img.with_array(np.full((6, 8, 8), 0.7, np.float32)), lambda b: b,
                                  patch_size=4, progress=False)
    assert single.array.all()  # one output channel: score > 0.5


# ---------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def sts002():
    ct = ml.load(ml.data.path("sts-cohort", "dicom/STS_002/CT/image"))
    rs = ml.data.path("sts-cohort", "dicom/STS_002/CT/mask/RS.dcm")
    gtv = mlseg.rtstruct_to_masks(rs, ct)["GTV_Mass_CT"]
    return ct, gtv


def test_sts002_hu_presets_against_sitk(sts002):
    ct, _ = sts002
    bone = mlseg.hu_preset(ct, "bone")
    ref = sitk.GetArrayFromImage(sitk.BinaryThreshold(ct.to_simpleitk(), 300, 3000, 1, 0))
    np.testing.assert_array_equal(bone.array, ref)
    assert ref.sum() > 1000  # the femur / pelvis in the field of view
    same_grid(bone, ct)
    assert bone.meta["frame_of_reference_uid"] == ct.meta["frame_of_reference_uid"]
    soft = mlseg.hu_preset(ct, "soft_tissue")
    np.testing.assert_array_equal(soft.array, sitk.GetArrayFromImage(
        sitk.BinaryThreshold(ct.to_simpleitk(), -29, 150, 1, 0)))
    # the body: everything above the skin line; the couch/cushion below it (>= 300 HU in
    # places, rows >= 98) is not body
    body = mlseg.hu_preset(ct, "body").array.astype(bool)
    rows = np.indices(body.shape)[1]
    bone_mask = bone.array.astype(bool)
    assert body[bone_mask & (rows < 95)].all() and not body[rows >= 110].any()
    assert (bone_mask & ~body).sum() > 1000 and 0.5 < body.mean() < 0.8


def test_sts002_region_growing_from_a_seed_in_the_gtv(sts002):
    """Semi-automatic tumour segmentation: a seed at the GTV's deepest point, region
    growing on the CT smoothed with a 2 mm Gaussian (done here with scipy).

    Measured Dice against the GTV: connected threshold [40, 100] HU 0.883, after a 3 mm
    opening and keeping the seed's component 0.884; confidence connected (multiplier 2,
    3 iterations, 5 mm box) 0.835. The sarcoma is nearly isodense with muscle, so the
    bounds are modest."""
    ct, gtv = sts002
    depth = ndimage.distance_transform_edt(gtv.array, sampling=ct.spacing)
    seed_index = np.unravel_index(np.argmax(depth), depth.shape)
    seed = pd.DataFrame([ct.index_to_world(np.array(seed_index))], columns=["x_mm", "y_mm", "z_mm"])
    smooth = ct.with_array(ndimage.gaussian_filter(ct.array.astype(np.float32),
                                                   sigma=2.0 / np.asarray(ct.spacing)))
    reference = gtv.with_array(gtv.array.astype(np.uint8))

    grown = mlseg.connected_threshold(smooth, seed, lower=40, upper=100)
    assert grown.meta["seeds_index"] == [list(map(int, seed_index))]
    ref = sitk.GetArrayFromImage(sitk.ConnectedThreshold(
        sitk_image(smooth.array), seedList=[tuple(int(v) for v in seed_index[::-1])], lower=40, upper=100))
    np.testing.assert_array_equal(grown.array, ref)
    dice = ml.measure.overlap(reference, grown)["dice"][0]
    assert dice > 0.8, dice

    cleaned = mlseg.connected_components(mlseg.opening(grown, radius_mm=3.0))
    seed_component = cleaned.array[seed_index]
    kept = mlseg.remove_labels(cleaned, [v for v in cleaned.meta["labels"] if v != seed_component])
    assert ml.measure.overlap(reference, kept.with_array(kept.array > 0))["dice"][0] > 0.8

    confident = mlseg.confidence_connected(smooth, seed, multiplier=2.0, iterations=3, radius_mm=5.0)
    assert confident.meta["radius_voxels"] == [2, 5, 5]
    dice_cc = ml.measure.overlap(reference, confident)["dice"][0]
    assert dice_cc > 0.7, dice_cc
    same_grid(confident, ct)
