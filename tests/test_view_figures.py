"""Viewers and figures as a user reads them: widgets open with their whole state, compare views
with per-image windows, plots in patient coordinates (LPS mm), units as people read them."""

from __future__ import annotations

import shutil
import uuid

import numpy as np
import pandas as pd
import pytest

import medlab as ml
from medlab.view import plot_curves, plot_map, plot_registration, plot_slices

pytest.importorskip("anywidget")


# ------------------------------------------------------------------ widgets open with full state
class _Comm:
    """Records what a widget sends: the comm_open arguments and every later message."""

    def __init__(self, **kwargs):
        self.comm_id = uuid.uuid4().hex
        self.open_data = kwargs.get("data", {})
        self.open_buffers = kwargs.get("buffers", [])
        self.sent: list[dict] = []
        self.kernel = object()

    def on_msg(self, callback):
        pass

    def on_close(self, callback):
        pass

    def send(self, data=None, metadata=None, buffers=None):
        self.sent.append(data)

    def close(self, *args, **kwargs):
        pass


@pytest.fixture
def comms(monkeypatch):
    import ipywidgets.widgets.widget as widget_module

    made: list[_Comm] = []

    def create_comm(**kwargs):
        made.append(_Comm(**kwargs))
        return made[-1]

    monkeypatch.setattr(widget_module.comm, "create_comm", create_comm)
    return made


def _ct(shape=(12, 20, 24), seed=0):
    rng = np.random.default_rng(seed)
    arr = (rng.normal(40, 20, shape)).astype(np.int16)
    affine = np.array([[0, 0, 0.8, -10], [0, 0.9, 0, 20], [2.5, 0, 0, -30], [0, 0, 0, 1.0]])
    return ml.Image(arr, affine, meta={"modality": "CT", "id": "ct"})


def _opened(comm):
    return comm.open_data["state"]


def test_slice_viewer_opens_with_its_whole_state_and_sends_no_update(comms):
    ct = _ct()
    viewer = ml.view.slices(ct, window="soft_tissue", title="phantom")
    (comm,) = [c for c in comms if _opened(c).get("_model_name") == "AnyModel"]
    state = _opened(comm)
    # what the front end gets with the widget's creation is the real state, not the defaults
    assert state["title"] == "phantom" and state["window"] == [400.0, 40.0]
    assert state["default_window"] == [400.0, 40.0]
    assert state["shape"] == [12, 20, 24] and state["planes"] == ["axial", "coronal", "sagittal"]
    assert state["units"] == "HU"
    assert "_pane_axial" in state and state["_pane_axial"]["shape"] == [20, 24]
    # the pane's pixels travel as binary buffers of the creation message
    nbytes = sum(memoryview(b).nbytes for b in comm.open_buffers)
    assert nbytes >= 2 * (20 * 24 + 12 * 24 + 12 * 20)  # int16 axial, coronal, sagittal
    assert comm.sent == []  # no update waits for the front end to load
    # the front end's "send me your state" gets everything again
    viewer._on_sync_request(viewer, {"type": "medlab-sync"}, [])
    (update,) = comm.sent
    assert update["method"] == "update" and {"_pane_axial", "window", "cursor"} <= set(update["state"])


def test_every_medlab_widget_opens_with_its_state(comms, tmp_path):
    ct = _ct()
    series = ml.Image(np.random.default_rng(1).normal(100, 5, (4, 16, 16, 5)).astype(np.float32),
                      np.eye(4), frame_times_s=np.arange(5) * 10.0)
    widgets = {
        "compare": ml.view.compare(ct, _ct(seed=2), mode="difference"),
        "curves": ml.view.curves(series),
        "landmarks": ml.view.landmarks(ct, ct),
    }
    src = ml.data.fetch("wg04-modalities", progress=False) / "CT1_UNC.dcm"
    shutil.copy(src, tmp_path / "ct.dcm")
    widgets["gallery"] = ml.view.gallery(ml.cohort.scan(tmp_path, progress=False, workers=1),
                                         progress=False)
    assert all(c.sent == [] for c in comms), "a widget sent an update before the front end loaded"
    by_id = {c.comm_id: _opened(c) for c in comms}
    # containers name their children, which opened (with their state) before them
    curves_state = by_id[widgets["curves"].model_id]
    plot_state = by_id[widgets["curves"].plot.model_id]
    assert curves_state["children"] == [f"IPY_MODEL_{widgets['curves'].viewer.model_id}",
                                        f"IPY_MODEL_{widgets['curves'].plot.model_id}"]
    assert plot_state["format"] == "png"  # the curve plot's picture came with it (a buffer)
    assert "pair(s)" in by_id[widgets["landmarks"].table.model_id]["value"]
    grid = by_id[widgets["gallery"]._grid.model_id]
    assert len(grid["tiles"]) == 1 and grid["tiles"][0]["src"].startswith("data:image/png")
    assert len(by_id[widgets["gallery"].model_id]["children"]) == 3
    compare = by_id[widgets["compare"].model_id]
    assert compare["overlay_mode"] == "difference" and compare["has_overlay"]


# ------------------------------------------------------------------ compare: per-image windows
def _pair():
    """Fixed and moving with the same anatomy at different intensity scales (x1.6 + 30)."""
    yy, xx = np.mgrid[:40, :48]
    base = 100 + 80 * np.exp(-((yy - 20) ** 2 + (xx - 24) ** 2) / 80.0) + 20 * (xx % 6 > 2)
    fixed = ml.Image(base[None].astype(np.float32), np.eye(4))
    moving = fixed.with_array((1.6 * base + 30)[None].astype(np.float32))
    return fixed, moving


def test_compare_gives_each_image_its_own_window():
    fixed, moving = _pair()
    view = ml.view.compare(fixed, moving)
    assert view.window == pytest.approx(list(ml.view.auto_window(fixed)))
    assert view.overlay_window == pytest.approx(list(ml.view.auto_window(moving)))
    assert view.overlay_window[0] == pytest.approx(1.6 * view.window[0], rel=1e-3)
    # an explicit window (e.g. a CT preset for two CTs) applies to both unless told otherwise
    both = ml.view.compare(fixed, moving, window=(100, 150))
    assert both.window == both.overlay_window == [100.0, 150.0]
    own = ml.view.compare(fixed, moving, window=(100, 150), moving_window=(160, 270))
    assert own.overlay_window == [160.0, 270.0]


def test_difference_of_window_scaled_images_is_flat_for_a_rescaled_copy():
    fixed, moving = _pair()
    view = ml.view.compare(fixed, moving, mode="difference")
    rgb, _ = view._compose("axial")
    # each image scaled by its own window: a linear rescale cancels (mid-grey everywhere)
    assert np.abs(rgb - 0.5).max() < 0.02
    # a raw subtraction in one window would show the whole anatomy
    raw = np.abs(moving.array[0] - fixed.array[0]) / view.window[0]
    assert raw.mean() > 0.3
    # a real misalignment shows up
    shifted = moving.with_array(np.roll(moving.array, 5, axis=2))
    rgb2, _ = ml.view.compare(fixed, shifted, mode="difference")._compose("axial")
    assert np.abs(rgb2 - 0.5).max() > 0.2
    # checkerboard: odd tiles show the moving image in its own window (same grey as fixed)
    board, _ = ml.view.compare(fixed, moving, mode="checkerboard", tiles=4)._compose("axial")
    alone, _ = ml.view.slices(fixed, planes=["axial"])._compose("axial")
    assert np.abs(board - alone).max() < 0.02


def test_registration_figure_difference_and_checkerboard():
    fixed, moving = _pair()
    fig = plot_registration(fixed, moving, mode=["checkerboard", "difference"], tiles=4)
    board, diff = fig.axes[0].images[0], fig.axes[1].images[0]
    assert np.abs(np.asarray(diff.get_array())).max() < 0.02
    f = ml.view.apply_window(fixed.array[0], *ml.view.auto_window(fixed))
    assert np.abs(np.asarray(board.get_array()) - f).max() < 0.01
    assert "own window" in fig.axes[-1].get_ylabel()  # the colour bar says what it shows
    fused = plot_registration(fixed, moving.with_array(moving.array, meta={"units": "SUVbw"}),
                              mode="fusion")
    assert any("SUVbw" in ax.get_ylabel() for ax in fused.axes)
    with pytest.raises(ValueError, match="mode must be among"):
        plot_registration(fixed, moving, mode="overlay")


# ------------------------------------------------------------------ plots in LPS mm
def _oblique_free_image():
    """A 3D image stored in an unusual orientation (RAS-like axes), with one bright voxel."""
    arr = np.zeros((10, 14, 18), np.float32)
    arr[3, 9, 5] = 1000.0
    # axis 0 -> -x (towards R), axis 1 -> -y (towards A), axis 2 -> +z, spacings 1.5, 0.7, 2.0
    affine = np.array([[-1.5, 0, 0, 40.0], [0, -0.7, 0, -12.0], [0, 0, 2.0, -80.0], [0, 0, 0, 1]])
    return ml.Image(arr, affine), (3, 9, 5)


def _pixel_centre(axes_image, row, col):
    left, right, bottom, top = axes_image.get_extent()
    h, w = np.asarray(axes_image.get_array()).shape[:2]
    return left + (col + 0.5) * (right - left) / w, top + (row + 0.5) * (bottom - top) / h


@pytest.mark.parametrize("neurological", [False, True])
def test_plot_slices_axes_are_lps_mm(neurological):
    image, voxel = _oblique_free_image()
    x, y, z = image.index_to_world(voxel)  # independent: the affine applied to the index
    fig = plot_slices(image, point=(x, y, z), window=(1000, 500), neurological=neurological)
    expected = {"axial": (x, y), "coronal": (x, z), "sagittal": (y, z)}
    for ax in fig.axes[:3]:
        im = ax.images[0]
        arr = np.asarray(im.get_array())
        row, col = np.unravel_index(np.argmax(arr), arr.shape)
        assert _pixel_centre(im, row, col) == pytest.approx(expected[ax.get_title()], abs=1e-6)
        assert "LPS mm" in ax.get_xlabel() and "LPS mm" in ax.get_ylabel()
    # and the letters agree with the coordinates: x grows towards L, y towards P, z towards S
    axial = fig.axes[0].images[0].get_extent()
    assert (axial[1] > axial[0]) != neurological  # radiological: patient's left on the right
    assert axial[2] > axial[3]  # y (posterior) grows downwards, anterior at the top
    coronal = fig.axes[1].images[0].get_extent()
    assert coronal[3] > coronal[2]  # superior at the top


def test_plot_slices_shows_rgb_images():
    rgb = np.zeros((1, 30, 40, 3), np.uint8)
    rgb[0, 5:10, 5:20] = (255, 0, 0)
    us = ml.Image(rgb, np.diag([1.0, 0.5, 0.5, 1.0]), channels=True,
                  meta={"modality": "US", "patient_geometry": False})
    fig = plot_slices(us, title="ultrasound")
    (ax,) = fig.axes
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), rgb[0])
    assert ax.images[0].get_extent() == pytest.approx([0, 40 * 0.5, 30 * 0.5, 0])
    assert ax.get_xlabel() == "column (mm)"  # no position in the patient: not LPS
    cine = ml.Image(np.repeat(rgb[..., None, :], 4, axis=3), np.eye(4), channels=True,
                    frame_times_s=np.arange(4) * 0.03,
                    meta={"patient_geometry": False, "spacing_source": "unknown"})
    assert plot_slices(cine, frame=2).axes[0].get_xlabel() == "column (pixels)"


def test_parametric_map_over_anatomy_has_a_colour_bar_with_its_unit():
    image, voxel = _oblique_free_image()
    values = image.with_array(np.linspace(0, 2, image.array.size).reshape(image.shape),
                              meta={"units": "g/ml{SUVbw}", "quantity": "SUV"})
    fig = plot_map(image, values, plane="axial", point=image.index_to_world(voxel),
                   threshold=0.5, vmin=0, vmax=2)
    ax, bar = fig.axes
    assert bar.get_ylabel() == "SUV (SUVbw)"  # the UCUM code is shown as people read it
    over = ax.images[1]
    arr = over.get_array()
    assert arr.mask.any() and (np.asarray(arr)[~arr.mask] >= 0.5).all()  # below threshold: clear
    # same LPS extent as the anatomy underneath
    assert over.get_extent() == pytest.approx(ax.images[0].get_extent())


def test_curves_figure_from_a_timeseries_table():
    t = np.array([0.0, 60, 120, 240])
    table = pd.concat([pd.DataFrame({"name": name, "time_s": t, "mean": m, "std": 2.0,
                                     "units": "[hnsf'U]"})
                       for name, m in [("lesion", [40, 90, 120, 110]), ("muscle", [50, 55, 60, 58])]])
    fig = plot_curves(table)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "mean (HU)" and ax.get_xlabel() == "time (s)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lesion", "muscle"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), t)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [40, 90, 120, 110])
    with pytest.raises(ValueError, match="time_s"):
        plot_curves(table.drop(columns="time_s"))


# ------------------------------------------------------------------ names, units, legends
def test_pane_titles_of_2d_images_are_neutral():
    from medlab.view._slices_widget import pane_title

    cr = ml.Image(np.zeros((1, 8, 8), np.uint16), np.eye(4),
                  meta={"modality": "CR", "patient_geometry": False})
    us = ml.Image(np.zeros((1, 8, 8, 3), np.uint8), np.eye(4), channels=True,
                  meta={"modality": "US", "patient_geometry": False})
    assert pane_title(cr, "axial") == "projection" and pane_title(us, "axial") == "2D"
    sagittal_slice = ml.Image(np.zeros((1, 8, 8)), np.array(
        [[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]))
    assert pane_title(sagittal_slice, "axial") == "sagittal"
    assert pane_title(_ct(), "coronal") == "coronal"
    view = ml.view.slices(cr)
    assert view._pane_axial["title"] == "projection"


def test_display_units_covers_every_code_medlab_writes():
    from medlab.measure import _sr, _suv
    from medlab.timeseries import _maps

    codes = [u for _, (u, _) in _sr._INTENSITY.values()] + [u for u, _ in _sr._SUVLBM_UNITS.values()]
    codes += list(_suv.SUV_UCUM.values()) + [u for u, _, _ in _maps._UNIT_CODES.values()]
    for code in codes:
        shown = ml.measure.display_units(code)
        assert not any(ch in shown for ch in "[]{}'"), (code, shown)
    assert ml.measure.display_units("[hnsf'U]") == "HU"
    assert ml.measure.display_units("BQML") == "Bq/ml"
    assert ml.measure.display_units("HU") == "HU" and ml.measure.display_units(None) == ""


def test_seed_measurement_shows_its_position():
    ct = _ct()
    viewer = ml.view.slices(ct)
    point = ct.index_to_world([4, 7, 9])
    viewer.add("seed", point)
    text = viewer._results["1"]
    assert text.startswith("LPS (") and text.endswith(") mm")
    shown = [float(v) for v in text[5:-4].split(",")]
    assert shown == pytest.approx(point, abs=0.051)
    row = viewer.measurements().iloc[0]
    assert [row["x_mm"], row["y_mm"], row["z_mm"]] == pytest.approx(point)


def test_overlay_units_and_colour_bar_in_the_snapshot():
    ct = _ct()
    pet = ct.with_array(np.abs(ct.array).astype(np.float32) / 20, meta={"modality": "PT",
                                                                         "units": "GML"})
    viewer = ml.view.slices(ct, overlay=pet)
    assert viewer.overlay_units == "SUV"
    fig = viewer.snapshot()
    assert any("SUV" in ax.get_xlabel() for ax in fig.axes)  # the horizontal colour bar


def test_volume_view_has_a_label_legend_and_readable_niivue_letters():
    pytest.importorskip("ipyniivue")
    ct = _ct()
    labels = ct.with_array((ct.array > 60).astype(np.uint8) + (ct.array > 80))
    view = ml.view.volume(ct, labels=labels, label_names={1: "rim", 2: "core"})
    caption = view._caption.value
    assert "medlab-volume-legend" in caption and "1 rim" in caption and "2 core" in caption
    colours = ["#{:02x}{:02x}{:02x}".format(*np.rint(c * 255).astype(int))
               for c in ml.view._slices.label_colors([1, 2])]
    assert all(c in caption for c in colours)
    texts = [t.get_text() for t in view.snapshot().legends[0].get_texts()]
    assert texts == ["1 rim", "2 core"]
    opts = view.niivue.opts
    assert opts.sagittal_nose_left is True  # anterior on the left, as in the slice viewer
    assert tuple(opts.font_color) == (1.0, 1.0, 1.0, 1.0) and opts.font_min_px >= 16
