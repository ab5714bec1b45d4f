"""ml.measure: label statistics, RECIST axes and point measurements.

References are independent of medlab: SimpleITK's label filters (on the
same arrays and geometry, and on a DICOM series read by SimpleITK itself),
analytic values for boxes, spheres and ellipsoids on anisotropic, oblique
and sheared grids, and numpy on the raw arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import synthetic_image
from scipy import ndimage

import medlab as ml
import medlab.measure as mm
from medlab import geometry as geo
from medlab.errors import GeometryError, GeometryMismatchError

SPACING = (2.5, 0.7, 0.9)  # anisotropic everywhere (slice, row, column)


def _affine(spacing=SPACING, origin=(10.0, -20.0, 30.0), angles=(20.0, -10.0, 35.0)):
    return geo.compose_affine(spacing, origin, geo.rotation_matrix(angles))


def _world(shape, affine):
    """LPS mm of every voxel centre, plain numpy (shape + (3,))."""
    idx = np.stack(np.indices(shape), axis=-1).astype(float)
    return idx @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def _itk_geometry(img: sitk.Image, affine) -> sitk.Image:
    """Set the geometry on a SimpleITK image from a (k, j, i) affine, plain numpy."""
    a = np.asarray(affine)[:3, :3][:, ::-1]  # ITK index order x, y, z = i, j, k
    spacing = np.linalg.norm(a, axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((a / spacing).ravel().tolist())
    img.SetOrigin(np.asarray(affine)[:3, 3].tolist())
    return img


def _sitk(array, affine) -> sitk.Image:
    return _itk_geometry(sitk.GetImageFromArray(np.ascontiguousarray(array)), affine)


@pytest.fixture(scope="module")
def oblique_case():
    shape = (30, 40, 50)
    affine = _affine()
    w = _world(shape, affine)
    r = np.linalg.norm(w - w.reshape(-1, 3).mean(axis=0), axis=-1)
    lab = np.zeros(shape, np.uint8)
    lab[r < 12] = 1
    lab[(r >= 12) & (r < 14)] = 2
    lab[:3, :4, :5] = 7  # non-consecutive value, in a corner
    rng = np.random.default_rng(0)
    arr = rng.normal(100, 20, shape).astype(np.float32)
    img = ml.Image(arr, affine, meta={"modality": "CT"})
    return img, img.with_array(lab), arr, lab


def test_label_stats_matches_simpleitk_on_oblique_anisotropic_grid(oblique_case):
    img, labels, arr, lab = oblique_case
    df = mm.label_stats(img, labels)
    assert df["label"].tolist() == [1, 2, 7]
    shape_f = sitk.LabelShapeStatisticsImageFilter()
    shape_f.ComputeFeretDiameterOn()
    sitk_lab = _sitk(lab, img.affine)
    shape_f.Execute(sitk_lab)
    stat_f = sitk.LabelStatisticsImageFilter()
    stat_f.Execute(_sitk(arr, img.affine), sitk_lab)
    for row in df.itertuples():
        v = row.label
        n = shape_f.GetNumberOfPixels(v)
        assert row.voxel_count == n
        assert row.volume_mm3 == pytest.approx(shape_f.GetPhysicalSize(v), rel=1e-9)
        assert row.volume_ml == pytest.approx(shape_f.GetPhysicalSize(v) / 1000, rel=1e-9)
        np.testing.assert_allclose(
            [row.centroid_x_mm, row.centroid_y_mm, row.centroid_z_mm], shape_f.GetCentroid(v),
            atol=1e-6)
        # ITK principal moments = covariance eigenvalues of the physical voxel centres
        expected_axes = 2 * np.sqrt(5 * np.sort(shape_f.GetPrincipalMoments(v))[::-1])
        np.testing.assert_allclose(
            [row.principal_axis_1_mm, row.principal_axis_2_mm, row.principal_axis_3_mm],
            expected_axes, rtol=1e-6)
        assert row.longest_diameter_mm == pytest.approx(shape_f.GetFeretDiameter(v), rel=1e-9)
        x0, y0, z0, nx, ny, nz = shape_f.GetBoundingBox(v)  # ITK order: i, j, k
        assert (row.bbox_k0, row.bbox_k1, row.bbox_j0, row.bbox_j1, row.bbox_i0, row.bbox_i1) == (
            z0, z0 + nz, y0, y0 + ny, x0, x0 + nx)
        np.testing.assert_allclose(
            [row.extent_k_mm, row.extent_j_mm, row.extent_i_mm],
            [nz * SPACING[0], ny * SPACING[1], nx * SPACING[2]])
        assert row.mean == pytest.approx(stat_f.GetMean(v), rel=1e-6)
        # SimpleITK's sigma is the sample std (n - 1); medlab reports the population std
        assert row.std == pytest.approx(stat_f.GetSigma(v) * np.sqrt((n - 1) / n), rel=1e-6)
        assert row.min == stat_f.GetMinimum(v)
        assert row.max == stat_f.GetMaximum(v)
        values = arr[lab == v].astype(float)
        for q in (5, 25, 50, 75, 95):
            assert getattr(row, f"p{q}") == pytest.approx(np.percentile(values, q))
        assert row.median == pytest.approx(np.median(values))
        assert row.units == "HU"
    # the nested sphere and shell share the analytic centre of the grid
    centre = _world(img.spatial_shape, img.affine).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(df.loc[0, ["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]]
                               .to_numpy(float), centre, atol=1e-6)


def test_box_on_sheared_grid_is_exact():
    # a sheared affine (gantry tilt): SimpleITK cannot hold it, so the reference is analytic
    affine = np.array([[0.0, 0.0, 0.6, -40.0],
                       [0.5, 0.8, 0.0, 12.0],
                       [2.8, 0.0, 0.0, 100.0],
                       [0.0, 0.0, 0.0, 1.0]])
    n = np.array([5, 9, 12])
    lab = np.zeros((12, 20, 25), np.int16)
    lab[3:8, 4:13, 6:18] = 4
    img = ml.Image(np.full(lab.shape, 40.0), affine)
    row = mm.label_stats(img, img.with_array(lab), label_names={4: "box"}).iloc[0]
    a3 = affine[:3, :3]
    assert row["name"] == "box"
    assert row["voxel_count"] == n.prod()
    assert row["volume_mm3"] == pytest.approx(n.prod() * abs(np.linalg.det(a3)))
    centre_index = np.array([3, 4, 6]) + (n - 1) / 2
    np.testing.assert_allclose(row[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]]
                               .to_numpy(float), a3 @ centre_index + affine[:3, 3], atol=1e-9)
    # longest diagonal between corner voxel centres
    diagonals = [a3 @ ((n - 1) * np.array([1, sj, si])) for sj in (1, -1) for si in (1, -1)]
    assert row["longest_diameter_mm"] == pytest.approx(max(np.linalg.norm(d) for d in diagonals))
    # covariance of a box lattice: A diag((n^2 - 1) / 12) A^T
    cov = a3 @ np.diag((n**2 - 1) / 12.0) @ a3.T
    lam = np.sort(np.linalg.eigvalsh(cov))[::-1]
    np.testing.assert_allclose(row[["principal_axis_1_mm", "principal_axis_2_mm",
                                    "principal_axis_3_mm"]].to_numpy(float),
                               2 * np.sqrt(5 * lam), rtol=1e-9)
    # in-plane: the rectangle diagonal; the short axis is the longest perpendicular chord
    in_plane = a3[:, 1:] @ [n[1] - 1, n[2] - 1]
    assert row["longest_axial_diameter_mm"] == pytest.approx(np.linalg.norm(in_plane))
    assert 3 <= row["recist_slice"] < 8
    spacing = np.linalg.norm(a3, axis=0)
    np.testing.assert_allclose(row[["extent_k_mm", "extent_j_mm", "extent_i_mm"]].to_numpy(float),
                               n * spacing)
    assert row["mean"] == 40.0 and row["std"] == 0.0 and pd.isna(row["units"])


def _ellipsoid(shape, affine, semi_axes, rotation):
    w = _world(shape, affine)
    centre = w.reshape(-1, 3).mean(axis=0)
    local = (w - centre) @ rotation  # coordinates along the ellipsoid's axes
    return ((local / np.asarray(semi_axes)) ** 2).sum(axis=-1) <= 1.0


def test_sphere_volume_and_diameters_analytic():
    radius = 15.0
    affine = _affine(spacing=(1.5, 0.7, 0.9))
    shape = (30, 50, 45)
    mask = _ellipsoid(shape, affine, (radius,) * 3, np.eye(3))
    img = ml.Image(np.zeros(shape, np.float32), affine)
    row = mm.label_stats(img, img.with_array(mask)).iloc[0]
    assert row["volume_mm3"] == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.02)
    axes = row[["principal_axis_1_mm", "principal_axis_2_mm", "principal_axis_3_mm"]]
    np.testing.assert_allclose(axes.to_numpy(float), 2 * radius, rtol=0.02)
    # voxel centres lie inside the sphere: at most one voxel diagonal short of 2R
    diag = np.linalg.norm((1.5, 0.7, 0.9))
    for col in ("longest_diameter_mm", "longest_axial_diameter_mm", "short_axis_mm"):
        assert 2 * radius - diag <= row[col] <= 2 * radius, col


def test_recist_axes_of_rotated_ellipsoid():
    # axial grid, in-plane ellipse rotated by 30 degrees; a=20, b=9 in-plane, c=8 through slices
    affine = geo.compose_affine((3.0, 0.7, 0.9), (-50, -60, 100), np.eye(3)[::-1].T)
    shape = (11, 80, 70)
    theta = np.radians(30)
    # world axes: array axis 0 -> z, 1 -> y, 2 -> x
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                    [0, 0, 1]])
    mask = _ellipsoid(shape, affine, (20.0, 9.0, 8.0), rot)
    labels = ml.Image(mask, affine)
    row = mm.label_stats(ml.Image(np.ones(shape), affine), labels).iloc[0]
    pixel_diag = np.hypot(0.7, 0.9)
    assert row["recist_slice"] == 5  # the central slice holds the largest section
    assert 40 - 2 * pixel_diag <= row["longest_axial_diameter_mm"] <= 40
    # the measured long axis may deviate by a few degrees from the major axis, so the
    # perpendicular chord may slightly exceed the minor axis 2b
    assert row["short_axis_mm"] == pytest.approx(18, abs=2 * pixel_diag)
    ends = mm.recist_diameters(labels, label=1).set_index("axis")
    p = ends[["x1_mm", "y1_mm", "z1_mm"]].to_numpy(float)
    q = ends[["x2_mm", "y2_mm", "z2_mm"]].to_numpy(float)
    np.testing.assert_allclose(np.linalg.norm(q - p, axis=1), ends["length_mm"], atol=1e-9)
    assert ends.loc["long", "length_mm"] == row["longest_axial_diameter_mm"]
    long_dir, short_dir = (q - p) / np.linalg.norm(q - p, axis=1)[:, None]
    major = rot[:, 0]
    assert np.degrees(np.arccos(abs(long_dir @ major))) < 4
    assert abs(long_dir @ short_dir) < 1e-9  # drawn exactly perpendicular
    # both segments lie in the slice plane z = 100 + 5 * 3
    np.testing.assert_allclose(np.r_[p[:, 2], q[:, 2]], 115.0)
    with pytest.raises(ValueError, match=r"label 3 is not in the label image.*\[1\]"):
        mm.recist_diameters(labels, label=3)


def test_single_slice_region_has_flat_shape():
    affine = geo.compose_affine((5.0, 0.5, 0.8), (0, 0, 0), np.eye(3))
    w = _world((1, 90, 60), affine)
    disk = np.linalg.norm(w - [0, 22.5, 24.0], axis=-1) <= 15.0
    img = ml.Image(np.zeros(disk.shape), affine)
    table = mm.label_stats(img, img.with_array(disk))
    row = table.iloc[0]
    # one slice is a 2D image: area and perimeter, no volume and no third axis
    assert "volume_mm3" not in table and "principal_axis_3_mm" not in table
    assert row["longest_diameter_mm"] == pytest.approx(row["longest_axial_diameter_mm"])
    assert 30 - np.hypot(0.5, 0.8) <= row["longest_diameter_mm"] <= 30
    assert row["area_mm2"] == pytest.approx(np.pi * 15**2, rel=0.02)
    # marching squares (the IBSI / pyradiomics 2D perimeter) runs a few % over a digital circle;
    # tests/test_units.py compares it with pyradiomics exactly
    assert 2 * np.pi * 15 * 0.98 <= row["perimeter_mm"] <= 2 * np.pi * 15 * 1.1


def test_time_series_gives_one_row_per_label_and_frame(oblique_case):
    img, labels, arr, lab = oblique_case
    times = [0.0, 2.5, 7.0]
    series = ml.Image(np.stack([arr * (t + 1) for t in range(3)], axis=-1), img.affine,
                      frame_times_s=times, meta={"units": "Bq/ml"})
    df = mm.label_stats(series, labels, shape=False)
    assert len(df) == 3 * 3
    assert df[["label", "frame"]].to_numpy().tolist() == [
        [v, t] for v in (1, 2, 7) for t in range(3)]
    stat_f = sitk.LabelStatisticsImageFilter()
    for t in range(3):
        stat_f.Execute(_sitk(arr * (t + 1), img.affine), _sitk(lab, img.affine))
        sub = df[df["frame"] == t].set_index("label")
        assert (sub["time_s"] == times[t]).all()
        for v in (1, 2, 7):
            assert sub.loc[v, "mean"] == pytest.approx(stat_f.GetMean(v), rel=1e-6)
            assert sub.loc[v, "max"] == pytest.approx(stat_f.GetMaximum(v), rel=1e-6)
    assert (df["units"] == "Bq/ml").all()
    assert "longest_diameter_mm" not in df.columns
    # geometry does not change with the frame
    assert df.groupby("label")["centroid_x_mm"].nunique().eq(1).all()


def test_labels_on_another_grid_need_resample():
    img = synthetic_image((10, 12, 14), spacing=(3.0, 0.8, 0.6))
    # the same voxels, on a grid that starts 2 slices and 3 rows later (shape differs too)
    lab_full = np.zeros(img.spatial_shape, np.uint8)
    lab_full[3:7, 4:9, 2:11] = 1
    lab_full[6:9, 8:11, 10:13] = 2
    sub_affine = img.affine
    sub_affine[:3, 3] = img.index_to_world([2, 3, 0])
    other = ml.Image(lab_full[2:, 3:, :].copy(), sub_affine)
    with pytest.raises(GeometryMismatchError, match=r"shape .*origin.*resample='labels'"):
        mm.label_stats(img, other)
    via_resample = mm.label_stats(img, other, resample="labels")
    direct = mm.label_stats(img, img.with_array(lab_full))
    pd.testing.assert_frame_equal(via_resample, direct)
    with pytest.raises(ValueError, match="resample must be"):
        mm.label_stats(img, other, resample="both")


def test_resample_image_onto_labels_grid_is_linear_exact():
    # intensity = x (mm): linear interpolation is exact, so each label's mean is its centroid x
    src_affine = _affine(spacing=(2.0, 1.1, 1.3), origin=(-30, -30, -30), angles=(0, 0, 0))
    w = _world((40, 60, 60), src_affine)
    img = ml.Image(w[..., 0].astype(np.float64), src_affine)
    lab_affine = _affine(spacing=(1.7, 0.9, 1.2), origin=(-10, -5, 0), angles=(15, 5, -20))
    lab = np.zeros((12, 20, 18), np.uint8)
    lab[2:6, 3:15, 4:10] = 1
    lab[7:11, 5:9, 2:16] = 2
    df = mm.label_stats(img, ml.Image(lab, lab_affine), resample="image", shape=False)
    np.testing.assert_allclose(df["mean"], df["centroid_x_mm"], atol=1e-6)
    np.testing.assert_allclose(df["voxel_count"], [(lab == v).sum() for v in (1, 2)])


def test_names_units_and_percentile_columns():
    img = synthetic_image((4, 5, 6))
    lab = np.zeros(img.spatial_shape, np.uint8)
    lab[0] = 1
    lab[2] = 2
    labels = img.with_array(lab, meta={"label_names": {1: "liver", 2: "spleen"}})
    df = mm.label_stats(img, labels, percentiles=(2.5, 97.5))
    assert df["name"].tolist() == ["liver", "spleen"]
    assert {"p2_5", "p97_5"} <= set(df.columns) and "p5" not in df.columns
    assert df["units"].isna().all()  # no modality, no units
    values = img.array[lab == 1].astype(float)
    assert df.loc[0, "p2_5"] == pytest.approx(np.percentile(values, 2.5))
    df = mm.label_stats(img, labels, label_names=["a", "b"])
    assert df["name"].tolist() == ["a", "b"]
    pet = img.with_array(img.array.astype(np.float32), meta={"modality": "PT", "units": "GML"})
    assert mm.label_stats(pet, labels, shape=False)["units"].tolist() == ["GML", "GML"]
    empty = mm.label_stats(img, img.with_array(np.zeros(img.spatial_shape, np.uint8)))
    assert len(empty) == 0 and "volume_mm3" in empty.columns


def test_clear_errors():
    img = synthetic_image((4, 5, 6))
    with pytest.raises(TypeError, match=r"labels must be a medlab.Image.*ndarray"):
        mm.label_stats(img, np.zeros((4, 5, 6)))
    with pytest.raises(ValueError, match=r"integer label values.*0.25"):
        mm.label_stats(img, img.with_array(np.full((4, 5, 6), 0.25)))
    rgb = ml.Image(np.zeros((1, 5, 6, 3)), np.eye(4), channels=True)
    with pytest.raises(GeometryError, match="channels"):
        mm.label_stats(rgb, ml.Image(np.ones((1, 5, 6), np.uint8), np.eye(4)))
    with pytest.raises(ValueError, match=r"percentiles must lie in \[0, 100\], got \[150.0\]"):
        mm.label_stats(img, img.with_array(np.ones((4, 5, 6), np.uint8)), percentiles=[50, 150])


def test_real_ct_thresholded_bone_matches_simpleitk_reading_dicom_itself():
    """STS_002 CT: SimpleITK reads the DICOM series and labels bone on its own.

    Labels: the three largest 6-connected components of HU >= 300 (bone).
    """
    folder = ml.data.path("sts-cohort", "dicom/STS_002/CT/image")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    ct_sitk = reader.Execute()
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.BinaryThreshold(ct_sitk, 300, 5000)),
                               sortByObjectSize=True)
    lab_sitk = sitk.Cast(sitk.Threshold(cc, 1, 3, 0), sitk.sitkUInt8)
    shape_f = sitk.LabelShapeStatisticsImageFilter()
    shape_f.ComputeFeretDiameterOn()
    shape_f.Execute(lab_sitk)
    stat_f = sitk.LabelStatisticsImageFilter()
    stat_f.Execute(ct_sitk, lab_sitk)

    ct = ml.load(folder)
    comp, _ = ndimage.label(ct.array >= 300)
    sizes = np.bincount(comp.ravel())[1:]
    order = np.argsort(sizes)[::-1][:3] + 1  # component ids, largest first
    lab = np.zeros(comp.shape, np.uint8)
    for new, old in enumerate(order, start=1):
        lab[comp == old] = new
    df = mm.label_stats(ct, ct.with_array(lab), label_names=["bone 1", "bone 2", "bone 3"])
    assert len(df) == 3 and (df["units"] == "HU").all()
    for row in df.itertuples():
        v = row.label
        n_vox = shape_f.GetNumberOfPixels(v)
        assert row.voxel_count == n_vox
        assert row.volume_ml == pytest.approx(shape_f.GetPhysicalSize(v) / 1000, rel=1e-6)
        np.testing.assert_allclose([row.centroid_x_mm, row.centroid_y_mm, row.centroid_z_mm],
                                   shape_f.GetCentroid(v), atol=1e-3)
        assert row.longest_diameter_mm == pytest.approx(shape_f.GetFeretDiameter(v), rel=1e-6)
        assert row.mean == pytest.approx(stat_f.GetMean(v), rel=1e-9)
        assert row.std == pytest.approx(stat_f.GetSigma(v) * np.sqrt((n_vox - 1) / n_vox), rel=1e-9)
        assert (row.min, row.max) == (stat_f.GetMinimum(v), stat_f.GetMaximum(v))
        assert row.min >= 300
    # bone is a few to a few tens of mL; the largest first
    assert df["volume_ml"].is_monotonic_decreasing
    assert 1 < df["volume_ml"].iloc[0] < 100


# ---------------------------------------------------------------- points
def test_distance_and_polyline_length_analytic():
    assert mm.distance([1, 2, 3], [4, 6, 15]) == pytest.approx(13.0)
    assert mm.distance((-1.5, 0, 0), (-1.5, 0, 0)) == 0.0
    assert mm.polyline_length([[0, 0, 0], [3, 4, 0], [3, 4, 12]]) == pytest.approx(17.0)
    assert mm.polyline_length([[1, 1, 1]]) == 0.0
    # a regular N-gon inscribed in a circle of radius R: perimeter 2 N R sin(pi / N)
    radius, n = 25.0, 12
    phi = 2 * np.pi * np.arange(n) / n
    ring = np.c_[radius * np.cos(phi), radius * np.sin(phi), np.full(n, -40.0)]
    perimeter = 2 * n * radius * np.sin(np.pi / n)
    assert mm.polyline_length(ring, closed=True) == pytest.approx(perimeter)
    assert mm.polyline_length(ring) == pytest.approx(perimeter * (n - 1) / n)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [([1, 0, 0], [0, 5, 0], 90.0),
     ([1, 0, 0], [1, 1, 0], 45.0),
     ([1, 0, 0], [-3, 0, 0], 180.0),
     ([2, 0, 0], [7, 0, 0], 0.0),
     ([1, 0, 0], [0.5, np.sqrt(3) / 2, 0], 60.0),
     ([1, 0, 0], [1, 1e-7, 0], np.degrees(1e-7))],
)
def test_angle_analytic(a, b, expected):
    vertex = np.array([10.0, -3.0, 2.0])
    got = mm.angle(vertex + a, vertex, vertex + np.asarray(b))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_point_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"q must be one point .* got shape \(2,\)"):
        mm.distance([0, 0, 0], [1, 2])
    with pytest.raises(ValueError, match="coincides with the vertex"):
        mm.angle([0, 0, 0], [0, 0, 0], [1, 0, 0])
    with pytest.raises(ValueError, match=r"shape \(N, 3\).*\(3, 2\)"):
        mm.polyline_length(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        mm.distance([0, np.nan, 0], [0, 0, 0])


def test_points_to_world_uses_the_affine_and_checks_bounds():
    affine = _affine()
    img = ml.Image(np.zeros((4, 5, 6)), affine)
    idx = np.array([[0, 0, 0], [3, 4, 5], [1.5, 2.0, 0.25]])
    np.testing.assert_allclose(mm.points_to_world(img, idx), idx @ affine[:3, :3].T + affine[:3, 3])
    np.testing.assert_allclose(mm.points_to_world(img, [3, 4, 5]), affine[:3, :3] @ [3, 4, 5]
                               + affine[:3, 3])
    with pytest.raises(ValueError, match=r"index \[0.0, 6.0, 1.0\] lies outside .* \(4, 5, 6\)"):
        mm.points_to_world(img, [[0, 0, 0], [0, 6, 1]])
    assert mm.points_to_world(img, [0, 6, 1], check_bounds=False).shape == (3,)
    # distances between clicked voxels are in mm
    p, q = mm.points_to_world(img, [[0, 0, 0], [2, 0, 0]])
    assert mm.distance(p, q) == pytest.approx(2 * SPACING[0])


def test_large_and_negative_label_values():
    lab = np.zeros((5, 6, 7), np.int64)
    lab[1:3, 1:3, 1:4] = 10**9  # beyond the one-pass bounding-box search
    lab[3, 4, 5] = -4  # negative values are not labels
    lab[4, 5, 6] = 3
    img = ml.Image(np.arange(lab.size, dtype=float).reshape(lab.shape), np.diag([2.0, 1, 1, 1]))
    df = mm.label_stats(img, img.with_array(lab))
    assert df["label"].tolist() == [3, 10**9]
    assert df["voxel_count"].tolist() == [1, 12]
    assert df.loc[0, ["longest_diameter_mm", "principal_axis_1_mm", "short_axis_mm"]].tolist() == [
        0.0, 0.0, 0.0]
    assert df.loc[1, "longest_diameter_mm"] == pytest.approx(np.sqrt(2.0**2 + 1 + 2**2))
    assert df.loc[1, "mean"] == pytest.approx(img.array[lab == 10**9].mean())
