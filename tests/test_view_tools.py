"""Curve explorer and landmark pairs: numbers from medlab.timeseries / medlab.registration."""

from __future__ import annotations

import numpy as np
import pytest

import medlab as ml


def _series(shape=(6, 20, 24), n=5, seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.normal(100, 5, (*shape, n)).astype(np.float32)
    arr[2:4, 5:10, 6:12] += np.arange(n, dtype=np.float32) * 20  # an enhancing box
    affine = np.array([[0, 0, -0.8, 40], [0, 0.9, 0, -3], [2.5, 0, 0, 7], [0, 0, 0, 1.0]])
    times = np.array([0.0, 10.0, 25.0, 60.0, 130.0])[:n]
    return ml.Image(arr, affine, frame_times_s=times, meta={"modality": "MR"})


def test_seed_curve_is_the_timeseries_curve_of_that_voxel():
    s = _series()
    ce = ml.view.curves(s)
    voxel = (3, 7, 8)
    ce.viewer.add("seed", s.index_to_world(voxel))
    got = ce.curves()
    ref = ml.timeseries.curves(s, voxel=voxel)
    np.testing.assert_allclose(got["mean"], ref["mean"])
    np.testing.assert_allclose(got["time_s"], [0, 10, 25, 60, 130])
    # independent: the raw voxel values over time
    np.testing.assert_allclose(got["mean"], s.array[voxel])


def test_region_curve_matches_the_mask_mean():
    s = _series()
    ce = ml.view.curves(s, tool="rect")
    plane = ce.viewer.planes[0]
    assert plane == "axial"  # slices are the first axis: the acquisition plane
    a, b = s.index_to_world((3, 5, 6)), s.index_to_world((3, 9, 11))
    ce.viewer.add("rect", [a, b])
    got = ce.curves()
    want = s.array[3, 5:10, 6:12].reshape(-1, s.n_frames).mean(axis=0)
    np.testing.assert_allclose(got["mean"], want, rtol=1e-5)
    assert set(got["n"]) == {30}


def test_roi_curves_shown_from_the_start_and_png():
    s = _series()
    roi = s.frame(0).with_array((np.arange(6)[:, None, None] == 2) & np.ones((6, 20, 24), bool))
    roi = roi.with_array(roi.array.astype(np.uint8))
    ce = ml.view.curves(s, roi=roi, label_names={1: "slab"})
    table = ce.curves()
    assert list(table["kind"].unique()) == ["roi"]
    np.testing.assert_allclose(table["mean"], s.array[2].reshape(-1, 5).mean(axis=0), rtol=1e-5)
    bundle = ce._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "image/png" in data


def test_curves_needs_a_time_series():
    with pytest.raises(ValueError, match="needs a time series"):
        ml.view.curves(_series().frame(0))


def test_landmark_pairs_recover_a_known_rigid_transform(tmp_path):
    rng = np.random.default_rng(3)
    img = ml.Image(rng.normal(size=(20, 30, 30)).astype(np.float32), np.diag([2.0, 1.0, 1.0, 1]))
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    shift = np.array([4.0, -3.0, 2.0])
    lp = ml.view.landmarks(img, img)
    fixed = img.index_to_world(rng.uniform(3, 17, (5, 3)))
    for p in fixed:
        lp.add(p, rot @ p + shift)
    assert lp.unpaired() == {"fixed": 0, "moving": 0}
    f, m = lp.arrays()
    np.testing.assert_allclose(f, fixed, atol=1e-9)
    result = lp.register()
    probe = np.array([[10.0, 12.0, 9.0]])
    np.testing.assert_allclose(result.transform_points(probe), probe @ rot.T + shift, atol=1e-6)
    # an unpaired landmark is reported, not paired
    lp.fixed_view.add("landmark", fixed[0])
    assert lp.unpaired() == {"fixed": 1, "moving": 0} and len(lp.pairs()) == 5
    # save / load keeps the pairs in LPS
    path = lp.save(tmp_path / "pairs.json")
    other = ml.view.landmarks(img, img)
    other.load(path)
    np.testing.assert_allclose(other.arrays()[1], m, atol=1e-9)


def test_projection_radiograph_letters_come_from_patient_orientation():
    import pydicom

    path = ml.data.path("wg04-modalities", "RG3_J2KR.dcm")
    row_dir, col_dir = pydicom.dcmread(path, stop_before_pixels=True).PatientOrientation
    cr = ml.load(path)
    assert cr.meta["patient_geometry"] is False and cr.meta["invert_display"]
    viewer = ml.view.slices(cr)
    left, right, top, bottom = viewer._pane_axial["letters"]
    assert (right, bottom) == (row_dir, col_dir) == ("R", "F")
    assert (left, top) == ("L", "H")
    assert viewer.invert and viewer.planes == ["axial"]


def test_cursor_outside_the_image_is_refused():
    spl = np.array([[0, 0, 1.0, 0], [0, 1, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1]])  # axial order
    viewer = ml.view.slices(ml.Image(np.zeros((4, 5, 6), np.float32), spl))
    assert viewer.shape == [4, 5, 6]
    viewer.cursor = [3, 4, 5]
    assert viewer._pane_axial["slice"] == 3
    with pytest.raises(ValueError, match=r"cursor must be a voxel index .* got \[-1, 0, 0\]"):
        viewer.cursor = [-1, 0, 0]
    assert viewer.cursor == [3, 4, 5]


def test_a_label_has_one_colour_in_every_view():
    """Label k is matplotlib's tab10[k-1] in the slice viewer, its snapshot, plot_slices and NiiVue."""
    import matplotlib

    spl = np.array([[0, 0, 1.0, 0], [0, 1, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1]])
    img = ml.Image(np.zeros((4, 6, 9), np.float32), spl)
    lab_arr = np.zeros((4, 6, 9), np.uint8)
    lab_arr[:, :, 0:3], lab_arr[:, :, 3:6], lab_arr[:, :, 6:9] = 1, 2, 3
    labels = img.with_array(lab_arr)
    tab10 = np.rint(np.asarray(matplotlib.colormaps["tab10"].colors[:3]) * 255).astype(int)

    viewer = ml.view.slices(img, labels=labels)
    legend = [[int(e["color"][i:i + 2], 16) for i in (1, 3, 5)] for e in viewer.legend]
    np.testing.assert_array_equal(legend, tab10)
    lut = np.frombuffer(viewer._label_lut, np.uint8).reshape(256, 3)
    np.testing.assert_array_equal(lut[1:4], tab10)

    niivue_lut = ml.view.volume(img, labels=labels).niivue.volumes[1].colormap_label
    rgba = np.asarray(niivue_lut.lut).reshape(-1, 4)
    np.testing.assert_array_equal(rgba[1:4, :3], tab10)
