"""The slice viewer's Python side (medlab.view.slices / compare) against independent references.

Every test image holds values that encode the source voxel index, so a
displayed pixel can be traced back to its voxel without the viewer's help.
References are built here from the affines the tests write themselves
(``direction * spacing`` plus origin), numpy and skimage: the LPS position
of each pane pixel as the browser computes it (``affine @ M @ [row, col, 1]``,
see ``_static/slices.js``), orientation letters and pixel sizes from the
screen directions, ROI masks drawn with numpy/skimage on the source slice,
resampled layers by nearest lookup. Real data: the STS_002 CT with its GTV.
"""

from __future__ import annotations

import base64
import io
import itertools
import json

import numpy as np
import pytest

import medlab as ml

PLANES = ("axial", "coronal", "sagittal")
LPS_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # the LPS axis normal to each plane
RADIOLOGICAL = {
    # (screen-left, screen-right, top, bottom), screen-right and screen-down unit vectors in LPS
    "axial": (("R", "L", "A", "P"), (1, 0, 0), (0, 1, 0)),
    "coronal": (("R", "L", "S", "I"), (1, 0, 0), (0, 0, -1)),
    "sagittal": (("A", "P", "S", "I"), (0, 1, 0), (0, 0, -1)),
}
NEUROLOGICAL = {
    "axial": (("L", "R", "A", "P"), (-1, 0, 0), (0, 1, 0)),
    "coronal": (("L", "R", "S", "I"), (-1, 0, 0), (0, 0, -1)),
    "sagittal": RADIOLOGICAL["sagittal"],
}
SPACING = (2.5, 0.7, 1.2)
ORIGIN = (12.5, -30.25, 41.0)


# --------------------------------------------------------------------------- helpers
def closest_letter(v) -> str:
    a = int(np.argmax(np.abs(v)))
    return ("L", "P", "S")[a] if v[a] > 0 else ("R", "A", "I")[a]


def code(direction) -> str:
    return "".join(closest_letter(direction[:, k]) for k in range(3))


def rotation(axis, degrees) -> np.ndarray:
    """Rodrigues rotation about ``axis``."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(degrees)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


def make_affine(direction, spacing=SPACING, origin=ORIGIN) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = np.asarray(direction, float) * np.asarray(spacing, float)[None, :]
    a[:3, 3] = origin
    return a


def indexed_image(direction, shape=(4, 5, 6), spacing=SPACING, origin=ORIGIN, **kw):
    """An image whose value is the linear index of its voxel, and its affine."""
    affine = make_affine(direction, spacing, origin)
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    return ml.Image(arr, affine, **kw), affine


def world(affine, index) -> np.ndarray:
    index = np.asarray(index, float)
    return index @ affine[:3, :3].T + affine[:3, 3]


def pane_array(pane, key="data", dtype_key="dtype", dtype=None) -> np.ndarray:
    h, w = pane["shape"]
    dt = np.dtype(dtype or pane[dtype_key]).newbyteorder("<")
    a = np.frombuffer(pane[key], dtype=dt)
    return a.reshape(h, w, -1) if a.size != h * w else a.reshape(h, w)


def pane_index(pane) -> np.ndarray:
    """Canonical (continuous) voxel index of every pane pixel: M @ [row, col, 1], shape (h, w, 3)."""
    h, w = pane["shape"]
    r, c = np.mgrid[0:h, 0:w]
    rc1 = np.stack([r, c, np.ones_like(r)], axis=-1).astype(float)
    return rc1 @ np.asarray(pane["M"], float).T


def pane_lps(viewer, pane) -> np.ndarray:
    """LPS of every pane pixel the way slices.js computes it (canonical affine trait @ M)."""
    return world(np.asarray(viewer.affine).reshape(4, 4), pane_index(pane))


def source_lps(image, affine, values) -> np.ndarray:
    """LPS of the source voxels a pane shows, decoded from their values (linear indices)."""
    idx = np.stack(np.unravel_index(np.asarray(values, np.int64), image.spatial_shape), axis=-1)
    return world(affine, idx)


def pane(viewer, name):
    return getattr(viewer, f"_pane_{name}")


def check_pane_values(viewer, name, image, affine) -> tuple[np.ndarray, np.ndarray]:
    """Each displayed pixel holds the source voxel at affine_canon @ M @ [row, col, 1].

    Returns the (down, right) neighbour steps in LPS mm, checked to be uniform.
    """
    p = pane(viewer, name)
    px = pane_array(p)
    h, w = p["shape"]
    lps = pane_lps(viewer, p)
    # through the source image: LPS -> source index (integral) -> value
    src = world(np.linalg.inv(affine), lps)
    np.testing.assert_allclose(src, np.rint(src), atol=1e-9)
    src = np.rint(src).astype(int)
    assert np.all((src >= 0) & (src < np.asarray(image.spatial_shape)))
    np.testing.assert_array_equal(image.array[src[..., 0], src[..., 1], src[..., 2]], px)
    assert len(np.unique(px)) == h * w  # every voxel of the plane once
    # the decoded voxels' own positions (independent of M): uniform steps
    pos = source_lps(image, affine, px)
    np.testing.assert_allclose(pos, lps, atol=1e-9)
    right = pos[:, 1:] - pos[:, :-1]
    down = pos[1:] - pos[:-1]
    np.testing.assert_allclose(right, np.broadcast_to(right[0, 0], right.shape), atol=1e-9)
    np.testing.assert_allclose(down, np.broadcast_to(down[0, 0], down.shape), atol=1e-9)
    return down[0, 0], right[0, 0]


# --------------------------------------------------------------------------- geometry
DIRECTIONS = ml.geometry.axis_aligned_directions()


def test_there_are_48_distinct_orientations():
    assert len({code(d) for d in DIRECTIONS}) == 48


@pytest.mark.parametrize("direction", DIRECTIONS, ids=[code(d) for d in DIRECTIONS])
def test_panes_show_the_right_voxels_letters_and_pixel_size_in_every_orientation(direction):
    image, affine = indexed_image(direction)
    voxel = np.array([1, 3, 2])
    point = world(affine, voxel + np.array([0.3, -0.2, 0.4]))  # inside that voxel, off its centre
    for neurological, convention in ((False, RADIOLOGICAL), (True, NEUROLOGICAL)):
        viewer = ml.view.slices(image, point=point, neurological=neurological)
        assert viewer.planes == list(PLANES)
        a_canon = np.asarray(viewer.affine).reshape(4, 4)
        # the cursor is the voxel containing the point
        np.testing.assert_allclose(world(a_canon, viewer.cursor), world(affine, voxel), atol=1e-9)
        for name in PLANES:
            p = pane(viewer, name)
            down, right = check_pane_values(viewer, name, image, affine)
            letters, right_unit, down_unit = convention[name]
            # the picture itself is oriented as the letters say
            assert p["letters"] == list(letters)
            np.testing.assert_allclose(right / np.linalg.norm(right), right_unit, atol=1e-12)
            np.testing.assert_allclose(down / np.linalg.norm(down), down_unit, atol=1e-12)
            # pixel size: the source spacing of the axis along that direction, = neighbour distance
            along = [int(np.argmax(np.abs(direction.T @ u))) for u in (down_unit, right_unit)]
            expected_mm = [SPACING[a] for a in along]
            assert p["pixel_mm"] == pytest.approx(expected_mm, abs=1e-12)
            assert p["pixel_mm"] == pytest.approx([np.linalg.norm(down), np.linalg.norm(right)])
            assert p["shape"] == [image.spatial_shape[a] for a in along]
            # the plane passes through the voxel, which is at the crosshair
            px = pane_array(p)
            (r,), (c,) = np.nonzero(px == image.array[tuple(voxel)])
            np.testing.assert_allclose(pane_index(p)[r, c], viewer.cursor, atol=1e-12)
            assert p["slice"] == viewer.cursor[PLANES.index(name)]


OBLIQUE = [
    rotation((0, 0, 1), 20) @ DIRECTIONS[0],
    rotation((1, 0, 0), -20) @ DIRECTIONS[13],
    rotation((1, 1, 1), 20) @ DIRECTIONS[44],
]


@pytest.mark.parametrize("direction", OBLIQUE, ids=["z20", "x-20", "xyz20"])
def test_oblique_images_show_their_closest_planes(direction):
    image, affine = indexed_image(direction, shape=(5, 6, 7))
    assert image.is_oblique
    viewer = ml.view.slices(image)
    for name in PLANES:
        p = pane(viewer, name)
        down, right = check_pane_values(viewer, name, image, affine)
        letters, _, _ = RADIOLOGICAL[name]
        measured = [closest_letter(-right), closest_letter(right),
                    closest_letter(-down), closest_letter(down)]
        assert p["letters"] == measured == list(letters)
        assert p["pixel_mm"] == pytest.approx([np.linalg.norm(down), np.linalg.norm(right)])


# --------------------------------------------------------------------------- cursor
def test_cursor_changes_resend_only_the_panes_whose_slice_changed(monkeypatch):
    image, affine = indexed_image(DIRECTIONS[21], shape=(5, 6, 7))
    viewer = ml.view.slices(image)
    sent, computed = [], []
    viewer.observe(lambda ch: sent.append(ch["name"].removeprefix("_pane_")),
                   names=["_pane_axial", "_pane_coronal", "_pane_sagittal"])
    # traitlets drops equal values, so also count the panes computed (the kernel's work)
    compute = viewer._pane
    monkeypatch.setattr(viewer, "_pane", lambda name: computed.append(name) or compute(name))
    k, j, i = viewer.cursor
    steps = [([k + 1, j, i], ["axial"]), ([k + 1, j - 1, i], ["coronal"]),
             ([k + 1, j - 1, i + 1], ["sagittal"]), ([k, j, i], ["axial", "coronal", "sagittal"]),
             ([k, j, i], [])]
    for cursor, expected in steps:
        sent.clear()
        computed.clear()
        viewer.cursor = cursor
        assert sorted(sent) == sorted(computed) == sorted(expected)
        a_canon = np.asarray(viewer.affine).reshape(4, 4)
        here = world(a_canon, cursor)
        for name in PLANES:
            # each pane's voxels lie in the plane through the new cursor position
            p = pane(viewer, name)
            pos = source_lps(image, affine, pane_array(p))
            np.testing.assert_allclose(pos[..., LPS_AXIS[name]], here[LPS_AXIS[name]], atol=1e-9)


def test_start_point_outside_the_image_is_clamped():
    image, affine = indexed_image(DIRECTIONS[5])
    viewer = ml.view.slices(image, point=world(affine, [-40, 2, 90]))
    assert all(0 <= c < n for c, n in zip(viewer.cursor, viewer.shape, strict=True))


def test_neurological_toggle_mirrors_axial_and_coronal_only():
    image, _ = indexed_image(DIRECTIONS[30])
    viewer = ml.view.slices(image)
    before = {name: pane_array(pane(viewer, name)) for name in PLANES}
    viewer.neurological = True
    for name in PLANES:
        after = pane_array(pane(viewer, name))
        expected = before[name][:, ::-1] if name != "sagittal" else before[name]
        np.testing.assert_array_equal(after, expected)


# --------------------------------------------------------------------------- measurements
MEASURE_DIRECTIONS = {
    "SPL": DIRECTIONS[[code(d) for d in DIRECTIONS].index("SPL")],
    "IAR": DIRECTIONS[[code(d) for d in DIRECTIONS].index("IAR")],
    "PSR": DIRECTIONS[[code(d) for d in DIRECTIONS].index("PSR")],
    "oblique": rotation((1, 2, 0.5), 25) @ DIRECTIONS[7],
}


@pytest.mark.parametrize("name", list(MEASURE_DIRECTIONS))
def test_ruler_and_angle_match_hand_computations(name):
    image, affine = indexed_image(MEASURE_DIRECTIONS[name], shape=(7, 8, 9))
    viewer = ml.view.slices(image)
    # voxel centres and arbitrary points, in and across planes
    p, q = world(affine, [1, 2, 3]), world(affine, [5, 6, 1])
    s, t = np.array([20.3, -21.7, 45.1]), np.array([14.9, -25.2, 49.6])
    r1 = viewer.add("ruler", [p, q])
    r2 = viewer.add("ruler", [s, t], plane="coronal")
    vertex = world(affine, [3, 4, 4])
    u = p - vertex
    axis = np.cross(u, [0.3, 0.4, 0.5])
    b = vertex + 1.7 * rotation(axis, 35) @ u
    a1 = viewer.add("angle", [p, vertex, b], plane="sagittal")
    table = viewer.measurements().set_index("id")
    assert table.loc[r1, "length_mm"] == pytest.approx(np.linalg.norm(q - p), rel=1e-12)
    assert table.loc[r2, "length_mm"] == pytest.approx(np.linalg.norm(t - s), rel=1e-12)
    v1, v2 = p - vertex, b - vertex
    by_hand = np.degrees(np.arccos(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2)))
    assert table.loc[a1, "angle_deg"] == pytest.approx(by_hand, abs=1e-9)
    assert table.loc[a1, "angle_deg"] == pytest.approx(35.0, abs=1e-9)
    assert list(table["kind"]) == ["ruler", "ruler", "angle"]
    assert list(table["plane"]) == ["axial", "coronal", "sagittal"]
    # points come back in LPS
    pts = viewer.points()
    got = pts[["x_mm", "y_mm", "z_mm"]].to_numpy()
    np.testing.assert_allclose(got, np.vstack([p, q, s, t, p, vertex, b]), atol=1e-6)
    assert list(pts["point"]) == [0, 1, 0, 1, 0, 1, 2]
    # the texts shown beside the drawings
    assert viewer._results[str(r1)] == f"{np.linalg.norm(q - p):.1f} mm"
    assert viewer._results[str(a1)] == "35.0\u00b0"


# ROI vertices as continuous (a, b) indices of the two in-plane source axes (sorted)
RECT = [(1.3, 1.6), (5.4, 6.2)]
POLYGON = [(1.2, 1.4), (5.7, 1.3), (3.3, 3.6), (5.6, 6.4), (1.1, 6.2)]  # concave


def roi_reference(kind, image, affine, plane, s, vertices):
    """Independent ROI: the voxels of source slice ``s`` inside it, their values, and LPS points."""
    direction = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(direction[LPS_AXIS[plane]])))  # source axis normal to the plane
    a, b = (x for x in range(3) if x != axis)
    shape2 = (image.spatial_shape[a], image.spatial_shape[b])
    va, vb = np.asarray(vertices, float).T
    if kind == "rect":
        # in LPS: voxel centres within the corners' bounds along both in-plane LPS axes
        index = np.zeros((2, 3))
        index[:, axis], index[:, a], index[:, b] = s, va, vb
        lo, hi = np.sort(world(affine, index), axis=0)
        ga, gb = np.mgrid[0:shape2[0], 0:shape2[1]]
        grid = np.zeros((*shape2, 3))
        grid[..., axis], grid[..., a], grid[..., b] = s, ga, gb
        pos = world(affine, grid)
        inplane = [x for x in range(3) if x != LPS_AXIS[plane]]
        mask = np.all((pos[..., inplane] >= lo[inplane]) & (pos[..., inplane] <= hi[inplane]),
                      axis=-1)
    else:
        from skimage.draw import ellipse, polygon

        mask = np.zeros(shape2, dtype=bool)
        if kind == "ellipse":
            rr, cc = ellipse(va.mean(), vb.mean(), abs(va[1] - va[0]) / 2, abs(vb[1] - vb[0]) / 2,
                             shape=shape2)
        else:
            rr, cc = polygon(va, vb, shape=shape2)
        mask[rr, cc] = True
    values = np.take(image.array, s, axis=axis)[mask]
    ga, gb = np.nonzero(mask)
    vox = np.zeros((len(ga), 3))
    vox[:, axis], vox[:, a], vox[:, b] = s, ga, gb
    pixel_area = np.prod([np.linalg.norm(affine[:3, x]) for x in (a, b)])
    lps = np.zeros((len(vertices), 3))
    lps[:, axis], lps[:, a], lps[:, b] = s, va, vb
    return values, world(affine, vox), pixel_area, world(affine, lps), affine[:3, axis]


def sorted_rows(a):
    a = np.round(np.asarray(a, float), 6)
    return a[np.lexsort(a.T[::-1])]


@pytest.mark.parametrize("kind", ["rect", "ellipse", "polygon"])
@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize("orientation", ["IAR", "PSR"])
def test_roi_statistics_match_an_independent_mask(kind, plane, orientation):
    image, affine = indexed_image(MEASURE_DIRECTIONS[orientation], shape=(7, 8, 9),
                                  spacing=(2.0, 0.8, 1.1))
    viewer = ml.view.slices(image)
    s = 4
    vertices = RECT if kind != "polygon" else POLYGON
    values, voxels_lps, pixel_area, lps, normal_step = roi_reference(
        kind, image, affine, plane, s, vertices)
    assert 4 < len(values) < 40  # a real ROI, not the whole slice
    # later points given off the plane are projected onto the first point's plane
    given = lps + np.outer([0.0] + [0.3] * (len(lps) - 1), normal_step)
    roi = viewer.add(kind, given, plane=plane)
    row = viewer.measurements().set_index("id").loc[roi]
    assert row["voxel_count"] == len(values)
    assert row["area_mm2"] == pytest.approx(len(values) * pixel_area, rel=1e-9)
    assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert row["std"] == pytest.approx(values.std(), rel=1e-9)
    assert (row["min"], row["max"]) == (values.min(), values.max())
    got = viewer.points()[["x_mm", "y_mm", "z_mm"]].to_numpy()
    np.testing.assert_allclose(got, lps, atol=1e-6)
    # the mask on the canonical grid covers exactly those voxels
    mask = viewer.roi_mask(roi)
    assert mask.spatial_shape == tuple(viewer.shape)
    assert int(mask.array.sum()) == len(values)
    on = np.argwhere(mask.array > 0)
    np.testing.assert_allclose(sorted_rows(world(mask.affine, on)), sorted_rows(voxels_lps),
                               atol=1e-6)


def test_annotation_drawn_in_the_browser_is_measured_from_pane_pixels():
    # as slices.js commit(): points = M @ [row, col, 1] of the clicked pane pixels
    image, affine = indexed_image(MEASURE_DIRECTIONS["PSR"], shape=(7, 8, 9))
    viewer = ml.view.slices(image, tool="ruler")
    p = pane(viewer, "coronal")
    px, m = pane_array(p), np.asarray(p["M"], float)
    (r0, c0), (r1, c1) = (1, 2), (5, 7)
    points = [(m @ [r, c, 1]).tolist() for r, c in ((r0, c0), (r1, c1))]
    ends = source_lps(image, affine, [px[r0, c0], px[r1, c1]])
    expected = float(np.linalg.norm(ends[1] - ends[0]))
    ruler = {"id": 1, "kind": "ruler", "plane": "coronal", "slice": p["slice"], "frame": 0,
             "points": points, "group": ""}
    # a rectangle dragged over pane pixels (c0..c1) x (r0..r1) on the sagittal pane
    q = pane(viewer, "sagittal")
    qx, mq = pane_array(q), np.asarray(q["M"], float)
    rect = {"id": 2, "kind": "rect", "plane": "sagittal", "slice": q["slice"], "frame": 0,
            "points": [(mq @ [r, c, 1]).tolist() for r, c in ((r1, c1), (r0, c0))], "group": ""}
    viewer.annotations = [ruler, rect]
    table = viewer.measurements().set_index("id")
    assert table.loc[1, "length_mm"] == pytest.approx(expected, rel=1e-12)
    assert viewer._results["1"] == f"{expected:.1f} mm"
    block = qx[r0:r1 + 1, c0:c1 + 1]
    assert table.loc[2, "voxel_count"] == block.size
    assert table.loc[2, "mean"] == pytest.approx(block.mean())
    assert table.loc[2, "area_mm2"] == pytest.approx(block.size * np.prod(q["pixel_mm"]))


@pytest.mark.parametrize("other", ["reoriented", "resampled"])
def test_saved_annotations_reload_onto_another_grid(tmp_path, other):
    image, affine = indexed_image(MEASURE_DIRECTIONS["IAR"], shape=(7, 8, 9))
    viewer = ml.view.slices(image)
    p, q = world(affine, [1.2, 2.5, 3.1]), world(affine, [5.4, 6.0, 1.7])
    vertex = world(affine, [3, 4, 4])
    viewer.add("ruler", [p, q])
    viewer.add("angle", [p, vertex, q], plane="coronal")
    viewer.add("seed", [vertex])
    viewer.add("landmark", [q], group="fixed")
    viewer.add("rect", world(affine, [[3, 1.3, 1.6], [3, 5.4, 6.2]]), plane="sagittal")
    path = viewer.save(tmp_path / "notes.json")
    doc = json.loads(path.read_text())
    assert doc["medlab_annotations"] == 1 and doc["coordinates"] == "LPS mm"
    np.testing.assert_allclose(doc["items"][0]["points_lps"], [p, q], atol=1e-9)

    if other == "reoriented":
        target = image.reorient("LAI")
    else:  # a finer grid over the same region, another orientation
        grid = make_affine(MEASURE_DIRECTIONS["PSR"], (0.45, 0.6, 0.9), world(affine, [0, 0, 0]))
        target = image.resample_to(((30, 30, 30), grid), interpolation="nearest")
    again = ml.view.slices(target)
    again.load(path)
    before, after = viewer.measurements(), again.measurements()
    assert list(after["kind"]) == ["ruler", "angle", "seed", "landmark", "rect"]
    assert list(after["plane"]) == ["axial", "coronal", "axial", "axial", "sagittal"]
    assert list(after["group"]) == ["", "", "", "fixed", ""]
    assert after.loc[0, "length_mm"] == pytest.approx(np.linalg.norm(q - p), rel=1e-9)
    assert after.loc[1, "angle_deg"] == pytest.approx(before.loc[1, "angle_deg"], abs=1e-9)
    pts_before = viewer.points()[["x_mm", "y_mm", "z_mm"]].to_numpy()
    pts_after = again.points()[["x_mm", "y_mm", "z_mm"]].to_numpy()
    if other == "reoriented":  # same voxels: every number and point is the same
        np.testing.assert_allclose(pts_after, pts_before, atol=1e-6)
        for col in ("voxel_count", "mean", "area_mm2"):
            assert after.loc[4, col] == pytest.approx(before.loc[4, col])
    else:  # ROIs are re-projected onto the new grid's slices; the other points stay put
        np.testing.assert_allclose(pts_after[:7], pts_before[:7], atol=1e-6)


def test_bad_annotations_raise_clear_errors(tmp_path):
    image, affine = indexed_image(MEASURE_DIRECTIONS["SPL"])
    viewer = ml.view.slices(image, planes=["axial", "sagittal"])
    p = world(affine, [1, 1, 1])
    with pytest.raises(ValueError, match="a ruler needs 2 points, got 1"):
        viewer.add("ruler", [p])
    with pytest.raises(ValueError, match=r"an? angle needs 3 points, got 2"):
        viewer.add("angle", [p, p + 1])
    with pytest.raises(ValueError, match="a polygon needs at least 3 points, got 2"):
        viewer.add("polygon", [p, p + 1])
    with pytest.raises(ValueError, match=r"kind must be one of .*got 'circle'"):
        viewer.add("circle", [p, p + 1])
    with pytest.raises(ValueError, match=r"kind must be one of .*got 'navigate'"):
        viewer.add("navigate", [p])
    with pytest.raises(ValueError, match="plane 'coronal' is not shown"):
        viewer.add("ruler", [p, p + 1], plane="coronal")
    ruler = viewer.add("ruler", [p, p + 1])
    with pytest.raises(ValueError, match="is a ruler, not an ROI"):
        viewer.roi_mask(ruler)
    with pytest.raises(KeyError, match="no annotation 99"):
        viewer.roi_mask(99)
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"items": []}))
    with pytest.raises(ValueError, match="not a medlab annotation file"):
        viewer.load(bad)
    with pytest.raises(ValueError, match="planes must be among"):
        ml.view.slices(image, planes=["axial", "oblique"])
    with pytest.raises(ValueError, match="tool must be one of"):
        ml.view.slices(image, tool="lasso")
    with pytest.raises(TypeError, match=r"shows a medlab\.Image"):
        ml.view.slices(image.array)
    assert viewer.measurements()["length_mm"].tolist() == [pytest.approx(np.sqrt(3))]


def test_polygon_on_voxel_centres_counts_like_the_rect_with_the_same_corners():
    image, affine = indexed_image(MEASURE_DIRECTIONS["SPL"], shape=(4, 10, 12))
    corners = world(affine, [[2, 2, 3], [2, 2, 7], [2, 6, 7], [2, 6, 3]])  # voxel centres
    counts = []
    for neurological in (False, True):
        viewer = ml.view.slices(image, neurological=neurological)
        viewer.add("rect", corners[[0, 2]])
        viewer.add("polygon", corners)
        viewer.add("polygon", corners[::-1])
        counts.append(viewer.measurements()["voxel_count"].tolist())
    assert counts == [[25, 25, 25]] * 2


def test_roi_outside_the_volume_is_refused():
    image, affine = indexed_image(MEASURE_DIRECTIONS["SPL"], shape=(5, 6, 7))
    viewer = ml.view.slices(image)
    far_above = world(affine, [[20, 1, 1], [20, 3, 4]])  # 50 mm above the top slice
    with pytest.raises(ValueError):  # instead of 12 voxels of slice 4
        viewer.add("rect", far_above)


def test_loading_an_roi_of_a_hidden_plane_is_refused(tmp_path):
    image, affine = indexed_image(MEASURE_DIRECTIONS["SPL"], shape=(5, 6, 7))
    viewer = ml.view.slices(image)
    viewer.add("rect", world(affine, [[1, 1, 3], [4, 5, 3]]), plane="sagittal")  # 20 voxels
    path = viewer.save(tmp_path / "sagittal.json")
    axial_only = ml.view.slices(image, planes=["axial"])
    with pytest.raises(ValueError, match="sagittal"):  # instead of a 5-voxel axial rect
        axial_only.load(path)


# --------------------------------------------------------------------------- layers
def test_labels_on_the_same_grid_are_shown_exactly_with_names_from_meta():
    image, affine = indexed_image(MEASURE_DIRECTIONS["IAR"], shape=(5, 6, 7))
    lab = ((image.array // 5) % 4).astype(np.uint8)
    labels = ml.Image(lab, affine, meta={"label_names": {1: "liver", 3: "spleen"}})
    viewer = ml.view.slices(image, labels=labels)
    for name in PLANES:
        p = pane(viewer, name)
        assert p["labels_dtype"] == "uint8"
        shown = pane_array(p, "labels", "labels_dtype")
        idx = np.unravel_index(pane_array(p), image.spatial_shape)
        np.testing.assert_array_equal(shown, lab[idx])
    import matplotlib

    tab10 = ["#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in rgb))
             for rgb in matplotlib.colormaps["tab10"].colors]
    assert viewer.legend == [{"value": 1, "name": "liver", "color": tab10[0]},
                             {"value": 2, "name": "label 2", "color": tab10[1]},
                             {"value": 3, "name": "spleen", "color": tab10[2]}]
    named = ml.view.slices(image, labels=labels, label_names=["a", "b", "c"])
    assert [e["name"] for e in named.legend] == ["a", "b", "c"]
    named = ml.view.slices(image, labels=labels, label_names={2: "kidney"})
    assert [e["name"] for e in named.legend] == ["label 1", "kidney", "label 3"]


def test_labels_on_another_grid_are_resampled_nearest_for_display_only():
    image, affine = indexed_image(MEASURE_DIRECTIONS["PSR"], shape=(6, 7, 8))
    # a finer label grid in another orientation, offset so no image voxel centre is a tie
    corners = world(affine, list(itertools.product((0, 5), (0, 6), (0, 7))))
    lab_affine = make_affine(MEASURE_DIRECTIONS["SPL"], (0.5, 0.9, 0.8),
                             corners.min(axis=0) - [1.03, 1.1, 0.57])
    shape = (13, 17, 14)  # (S, P, L): covers the image with a margin
    lab = np.zeros(shape, dtype=np.uint16)
    lab[2:11, 3:14, 2:12] = 2
    lab[5:8, 7:10, 6:9] = 300  # above 255: sent as uint16
    labels = ml.Image(lab, lab_affine, meta={"labels": {2: "tumour", 300: "core"}})
    original = lab.copy()
    viewer = ml.view.slices(image, labels=labels, planes=["axial", "sagittal"],
                            point=world(lab_affine, [6, 8, 7]))  # through the core
    np.testing.assert_array_equal(labels.array, original)
    np.testing.assert_array_equal(labels.affine, lab_affine)
    seen = set()
    for name in viewer.planes:
        p = pane(viewer, name)
        shown = pane_array(p, "labels", "labels_dtype")
        pos = source_lps(image, affine, pane_array(p))
        li = world(np.linalg.inv(lab_affine), pos)
        frac = np.abs(li - np.floor(li) - 0.5)
        assert frac.min() > 1e-3  # the test's precondition: nearest is unambiguous
        li = np.rint(li).astype(int)
        inside = np.all((li >= 0) & (li < shape), axis=-1)
        expected = np.zeros(inside.shape, dtype=lab.dtype)
        expected[inside] = lab[tuple(li[inside].T)]
        np.testing.assert_array_equal(shown, expected)
        seen |= set(np.unique(shown).tolist())
    assert {2, 300} <= seen
    assert p["labels_dtype"] == "uint16"
    assert [(e["value"], e["name"]) for e in viewer.legend] == [(2, "tumour"), (300, "core")]


def test_overlay_on_a_coarser_grid_is_resampled_to_the_image_grid():
    image, affine = indexed_image(MEASURE_DIRECTIONS["IAR"], shape=(6, 7, 8))
    pet_affine = make_affine(MEASURE_DIRECTIONS["SPL"], (4.0, 4.0, 4.0),
                             world(affine, [0, 0, 0]) + np.array([-9.0, -7.5, -15.2]))
    zz, yy, xx = np.mgrid[0:6, 0:6, 0:6]
    pet = ml.Image((100 + 10 * zz + 3 * yy + xx).astype(np.float32) ** 1.5, pet_affine,
                   meta={"modality": "PT"})
    before = pet.array.copy()
    viewer = ml.view.slices(image, overlay=pet, overlay_window=(500, 1000))
    assert viewer.has_overlay and viewer.overlay_window == [500.0, 1000.0]
    reference = pet.resample_to(image).array
    for name in PLANES:
        p = pane(viewer, name)
        shown = pane_array(p, "overlay", dtype="float32")
        idx = np.unravel_index(pane_array(p), image.spatial_shape)
        np.testing.assert_allclose(shown, reference[idx], rtol=1e-6)
    assert np.count_nonzero(reference) > reference.size // 2
    np.testing.assert_array_equal(pet.array, before)


def test_compare_checks_its_mode():
    image, _ = indexed_image(MEASURE_DIRECTIONS["IAR"])
    moving = image.reorient("RAS")
    with pytest.raises(ValueError, match=r"mode must be one of .*got 'overlay'"):
        ml.view.compare(image, moving, mode="overlay")
    viewer = ml.view.compare(image, moving, mode="difference", window=(40, 20), tiles=4)
    assert viewer.has_overlay and viewer.overlay_mode == "difference" and viewer.tiles == 4
    assert viewer.window == viewer.overlay_window == [40.0, 20.0]
    # the same voxels on another grid: the overlay equals the image everywhere
    for name in PLANES:
        p = pane(viewer, name)
        np.testing.assert_array_equal(pane_array(p, "overlay", dtype="float32"), pane_array(p))


def test_layers_must_be_scalar_images():
    image, affine = indexed_image(MEASURE_DIRECTIONS["IAR"])
    with pytest.raises(TypeError, match=r"labels must be a medlab\.Image"):
        ml.view.slices(image, labels=np.zeros(image.shape))
    rgb = ml.Image(np.zeros((*image.shape, 3), np.uint8), affine, channels=True)
    with pytest.raises(ValueError, match="overlay must be a scalar image"):
        ml.view.slices(image, overlay=rgb)


# --------------------------------------------------------------------------- 2D, RGB, time
def snapshot_pixels(viewer) -> list[np.ndarray]:
    """The RGB arrays the static snapshot draws, one per pane."""
    fig = viewer.snapshot()
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


def test_single_slice_image_is_shown_as_acquired_in_one_pane():
    direction = MEASURE_DIRECTIONS["PSR"]
    image, affine = indexed_image(direction, shape=(1, 5, 7), spacing=(1.0, 0.3, 0.2))
    viewer = ml.view.slices(image)
    assert viewer.planes == ["axial"]
    assert viewer._pane_coronal == {} and viewer._pane_sagittal == {}
    p = pane(viewer, "axial")
    np.testing.assert_array_equal(pane_array(p), image.array[0])
    assert p["pixel_mm"] == pytest.approx([0.3, 0.2])
    down, right = affine[:3, 1], affine[:3, 2]
    assert p["letters"] == [closest_letter(-right), closest_letter(right),
                            closest_letter(-down), closest_letter(down)] == ["L", "R", "I", "S"]
    # ROI on the one slice
    roi = viewer.add("rect", world(affine, [[0, 1, 2], [0, 3, 5]]))
    row = viewer.measurements().iloc[0]
    assert row["voxel_count"] == 12 and row["mean"] == image.array[0, 1:4, 2:6].mean()
    assert row["area_mm2"] == pytest.approx(12 * 0.3 * 0.2)
    assert viewer.roi_mask(roi).array.sum() == 12


def test_monochrome1_is_displayed_inverted():
    image, affine = indexed_image(MEASURE_DIRECTIONS["SPL"], shape=(1, 6, 8))
    inverted = ml.Image(image.array, affine, meta={"invert_display": True})
    normal_view, inverted_view = ml.view.slices(image), ml.view.slices(inverted)
    assert inverted_view.invert and not normal_view.invert
    brightest = np.unravel_index(np.argmax(image.array[0]), image.array[0].shape)
    darkest = np.unravel_index(np.argmin(image.array[0]), image.array[0].shape)
    (normal,), (inv,) = snapshot_pixels(normal_view), snapshot_pixels(inverted_view)
    assert normal[brightest].max() > 0.9 and normal[darkest].max() < 0.1
    assert inv[brightest].max() < 0.1 and inv[darkest].min() > 0.9


def test_rgb_image_sends_uint8_colour_pixels():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(1, 6, 9, 3), dtype=np.uint8)
    image = ml.Image(rgb, make_affine(MEASURE_DIRECTIONS["SPL"], (1, 0.5, 0.5)), channels=True)
    viewer = ml.view.slices(image)
    assert viewer.rgb and viewer.presets == {} and viewer.window == [255.0, 127.5]
    p = pane(viewer, "axial")
    assert p["dtype"] == "uint8" and p["shape"] == [6, 9] and len(p["data"]) == 6 * 9 * 3
    np.testing.assert_array_equal(pane_array(p), rgb[0])
    (shown,) = snapshot_pixels(viewer)
    np.testing.assert_allclose(shown, rgb[0] / 255.0, atol=1e-6)
    viewer.add("rect", image.index_to_world([[0, 1, 2], [0, 2, 4]]))
    assert viewer.measurements().iloc[0]["mean"] == pytest.approx(rgb[0, 1:3, 2:5].mean())


def time_series():
    image, affine = indexed_image(MEASURE_DIRECTIONS["IAR"], shape=(5, 6, 7))
    arr = np.stack([image.array + 1000 * t for t in range(3)], axis=-1)
    return ml.Image(arr, affine, frame_times_s=[0.0, 1.5, 4.25]), affine


def test_time_series_frames():
    image, _ = time_series()
    viewer = ml.view.slices(image)
    assert viewer.n_frames == 3 and viewer.frame_label == "0.00 s"
    sent = []
    viewer.observe(lambda ch: sent.append(ch["name"]), names=["_pane_axial", "_pane_coronal",
                                                             "_pane_sagittal"])
    viewer.frame = 2
    assert viewer.frame_label == "4.25 s" and len(sent) == 3
    spatial = image.spatial_shape
    for name in PLANES:
        values = pane_array(pane(viewer, name))
        assert np.all(values // 1000 == 2)  # every pixel from frame 2
        idx = np.unravel_index(values % 1000, spatial)
        np.testing.assert_array_equal(values, image.array[(*idx, 2)])
    with pytest.raises(IndexError, match=r"frame 3 is outside 0\.\.2"):
        ml.view.slices(image, frame=3)


def test_roi_in_a_time_series_is_measured_on_its_own_frame():
    image, affine = time_series()
    viewer = ml.view.slices(image)
    viewer.add("rect", world(affine, [[2, 1, 1], [2, 3, 4]]))
    first = viewer.measurements().iloc[0]
    viewer.frame = 2
    again = viewer.measurements().iloc[0]
    assert again["frame"] == 0
    assert again["mean"] == first["mean"]


def test_load_keeps_the_frame_of_each_annotation(tmp_path):
    image, affine = time_series()
    viewer = ml.view.slices(image, frame=2)
    viewer.add("ruler", world(affine, [[2, 1, 1], [2, 3, 4]]))
    path = viewer.save(tmp_path / "frames.json")
    again = ml.view.slices(image)
    again.load(path)
    assert again.annotations[0]["frame"] == 2


# --------------------------------------------------------------------------- static picture
def png_pixels(viewer) -> np.ndarray:
    from PIL import Image as PILImage

    out = viewer._repr_mimebundle_()
    assert isinstance(out, tuple)  # anywidget: (bundle, metadata)
    bundle, _ = out
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "no snapshot" not in bundle.get("text/plain", "")
    png = base64.b64decode(bundle["image/png"])
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB")).astype(int)


def has_colour(pixels, rgb, tol=2) -> int:
    return int(np.count_nonzero(np.all(np.abs(pixels - np.asarray(rgb)) <= tol, axis=-1)))


def test_widget_output_carries_a_png_showing_the_label_colour():
    image, affine = indexed_image(MEASURE_DIRECTIONS["IAR"], shape=(8, 9, 10))
    lab = np.zeros(image.shape, np.uint8)
    lab[2:6, 2:7, 3:8] = 1
    plain = png_pixels(ml.view.slices(image))
    assert plain.shape[0] > 100 and plain.std() > 10
    labelled = png_pixels(ml.view.slices(image, labels=ml.Image(lab, affine), label_opacity=1.0))
    import matplotlib

    blue = [round(255 * c) for c in matplotlib.colormaps["tab10"].colors[0]]
    assert has_colour(plain, blue) == 0
    assert has_colour(labelled, blue) > 100


def test_window_presets_change_the_snapshot():
    rng = np.random.default_rng(5)
    hu = rng.integers(-1000, 1500, size=(5, 6, 7)).astype(np.int16)
    ct = ml.Image(hu, make_affine(MEASURE_DIRECTIONS["SPL"]), meta={"modality": "CT"})
    viewer = ml.view.slices(ct, planes=["axial"])
    assert viewer.units == "HU" and viewer.window == [400.0, 40.0]
    assert {"auto", "lung", "bone", "soft_tissue", "brain"} <= set(viewer.presets)
    shown = {}
    for preset in ("lung", "bone"):
        width, level = viewer.presets[preset]
        viewer.window = [width, level]
        (rgb,) = snapshot_pixels(viewer)
        # DICOM linear window (PS3.3 C.11.2.1.2), by hand, through the grey colour map
        x = pane_array(pane(viewer, "axial")).astype(float)
        lo, hi = level - 0.5 - (width - 1) / 2, level - 0.5 + (width - 1) / 2
        y = np.where(x <= lo, 0.0, np.where(x > hi, 1.0, (x - (level - 0.5)) / (width - 1) + 0.5))
        np.testing.assert_allclose(rgb[..., 0], y, atol=1.5 / 255)
        shown[preset] = png_pixels(viewer)
    assert viewer.presets["lung"] == [1500.0, -600.0] and viewer.presets["bone"] == [1800.0, 400.0]
    assert shown["lung"].shape == shown["bone"].shape
    assert np.abs(shown["lung"] - shown["bone"]).max() > 100


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_snapshot_of_an_image_with_nan_voxels():
    a = np.linspace(0, 1, 5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    a[2, 3, 3] = np.nan
    image = ml.Image(a, make_affine(MEASURE_DIRECTIONS["SPL"]))
    viewer = ml.view.slices(image, point=image.index_to_world([2, 3, 3]))
    assert png_pixels(viewer).std() > 10


def test_roi_text_of_an_image_without_units():
    image, affine = indexed_image(MEASURE_DIRECTIONS["SPL"], shape=(5, 6, 7))
    viewer = ml.view.slices(image)
    roi = viewer.add("rect", world(affine, [[2, 1, 1], [2, 3, 4]]))
    row = viewer.measurements().iloc[0]
    assert viewer._results[str(roi)] == (f"area {row['area_mm2']:.1f} mm\u00b2, "
                                         f"mean {row['mean']:.1f} \u00b1 {row['std']:.1f}")


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def sts_ct_gtv():
    seg = pytest.importorskip("medlab.segmentation")
    ct = ml.load(ml.data.path("sts-cohort", "dicom/STS_002/CT/image"))
    labels = seg.rtstruct_to_labels(ml.data.path("sts-cohort", "dicom/STS_002/CT/mask/RS.dcm"),
                                    ct)
    return ct, labels


def test_real_ct_with_its_gtv_at_the_gtv_centroid(sts_ct_gtv):
    ct, gtv = sts_ct_gtv
    row = ml.measure.label_stats(ct, gtv).iloc[0]
    centroid = row[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float)
    viewer = ml.view.slices(ct, labels=gtv, point=centroid, window="soft_tissue")
    assert [(e["value"], e["name"]) for e in viewer.legend] == [(1, "GTV_Mass_CT")]
    assert viewer.units == "HU" and viewer.window == [400.0, 40.0]
    # the cursor is the CT voxel containing the centroid (CT is axial: slice, row, column)
    voxel = np.rint(world(np.linalg.inv(ct.affine), centroid)).astype(int)
    np.testing.assert_allclose(world(np.asarray(viewer.affine).reshape(4, 4), viewer.cursor),
                               world(ct.affine, voxel), atol=1e-6)
    axial = pane(viewer, "axial")
    shown = pane_array(axial, "labels", "labels_dtype")
    assert shown.sum() == gtv.array[voxel[0]].sum() > 100  # this slice's GTV, nothing else
    assert axial["pixel_mm"] == pytest.approx(ct.spacing[1:])
    for name in ("coronal", "sagittal"):
        assert pane_array(pane(viewer, name), "labels", "labels_dtype").sum() > 100
    # HU values shown are the CT's
    ct_slice = np.asarray(ct.array[voxel[0]])
    np.testing.assert_array_equal(np.sort(pane_array(axial).ravel()), np.sort(ct_slice.ravel()))


def test_real_ct_ruler_between_voxel_centres(sts_ct_gtv):
    ct, gtv = sts_ct_gtv
    viewer = ml.view.slices(ct, labels=gtv)
    k, j, i = np.argwhere(gtv.array > 0)[[0, -1]].T
    a, b = world(ct.affine, [k[0], j[0], i[0]]), world(ct.affine, [k[1], j[1], i[1]])
    viewer.add("ruler", [a, b], plane="coronal")
    length = viewer.measurements()["length_mm"].iloc[0]
    assert length == pytest.approx(np.linalg.norm(b - a), rel=1e-12) and length > 40
    np.testing.assert_allclose(viewer.points()[["x_mm", "y_mm", "z_mm"]].to_numpy(), [a, b],
                               atol=1e-6)
