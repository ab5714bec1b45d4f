"""ml.view.volume: NiiVue data in memory with sacred geometry, display-only downsampling,
label checks, the MIP snapshot, and an itkwidgets backend that never blocks the kernel."""

from __future__ import annotations

import importlib.util
import io
import sys
import time

import lab
import numpy as np
import pytest
from helpers import synthetic_image

import medlab as ml
from medlab import geometry as geo
from medlab.errors import GeometryMismatchError, MissingDependencyError
from medlab.view import _volume_itk as vitk
from medlab.view._volume import VolumeView, display_grid, volume
from medlab.view._window import apply_window, resolve_window

pytest.importorskip("ipyniivue")


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _corners(shape):
    return np.array([[k, j, i] for k in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                     for i in (0, shape[2] - 1)], dtype=float)


def _decode(data: bytes):
    import nibabel as nib

    return nib.Nifti1Image.from_bytes(data)


def _oblique_image(shape=(9, 11, 13), dtype=np.int16):
    """Rotated axes, anisotropic spacing, off-centre origin: every geometry term matters."""
    direction = geo.rotation_matrix([20.0, -10.0, 35.0])
    return synthetic_image(shape, spacing=(2.5, 0.9, 0.7), origin=(-31.0, 12.5, 40.0),
                           direction=direction, dtype=dtype)


# -------------------------------------------------------------- NIfTI to NiiVue
def test_niivue_gets_nifti_bytes_with_the_image_data_and_ras_geometry():
    img = _oblique_image()
    view = volume(img, window=(300.0, 500.0))
    assert isinstance(view, VolumeView)
    vol = view.niivue.volumes[0]
    assert vol.name.endswith(".nii") and vol.url is None and vol.path is None
    nii = _decode(vol.data)
    data = np.asanyarray(nii.dataobj)
    # NIfTI array is (i, j, k) = (column, row, slice)
    np.testing.assert_array_equal(data, img.array.transpose(2, 1, 0))
    # world coordinates of the corner voxels: NIfTI affine (RAS) vs the Image's (LPS)
    idx = _corners(img.spatial_shape)
    lps = img.index_to_world(idx)
    ras_expected = lps @ LPS_TO_RAS.T
    ras_nifti = geo.apply_affine(nii.affine, idx[:, ::-1])
    np.testing.assert_allclose(ras_nifti, ras_expected, atol=1e-4)
    assert int(nii.header["sform_code"]) == 1 and int(nii.header["qform_code"]) == 1
    # window -> calibrated range
    assert (vol.cal_min, vol.cal_max) == pytest.approx((350.0, 650.0))
    assert vol.colormap == "gray"


def test_niivue_layout_window_preset_and_colormap():
    from ipyniivue import ShowRender, SliceType

    img = synthetic_image((8, 9, 10))
    img.meta["modality"] = "CT"
    view = volume(img, window="ct_bone", colormap="hot", neurological=True)
    width, level = resolve_window(img, "ct_bone")
    vol = view.niivue.volumes[0]
    assert (vol.cal_min, vol.cal_max) == pytest.approx((level - width / 2, level + width / 2))
    assert vol.colormap == "hot" and view.colormap == "hot"
    assert view.niivue.opts.slice_type == SliceType.MULTIPLANAR
    assert view.niivue.opts.multiplanar_show_render == ShowRender.ALWAYS
    assert view.niivue.opts.is_radiological_convention is False
    assert volume(img).niivue.opts.is_radiological_convention is True
    with pytest.raises(ValueError, match=r"unknown colormap 'nope'.*viridis"):
        volume(img, colormap="nope")


def test_labels_overlay_bytes_lut_and_opacity():
    img = _oblique_image()
    lab_arr = np.zeros(img.spatial_shape, np.uint8)
    lab_arr[2:5, 3:7, 4:9] = 3
    lab_arr[6:8, 1:4, 1:3] = 7
    labels = img.with_array(lab_arr)
    view = volume(img, labels=labels, label_opacity=0.3, label_names={3: "tumour"})
    assert len(view.niivue.volumes) == 2
    lab = view.niivue.volumes[1]
    assert lab.opacity == pytest.approx(0.3)
    nii = _decode(lab.data)
    np.testing.assert_array_equal(np.asanyarray(nii.dataobj), lab_arr.transpose(2, 1, 0))
    np.testing.assert_allclose(nii.affine, _decode(view.niivue.volumes[0].data).affine)
    lut = lab.colormap_label
    assert (lut.min, lut.max) == (0, 7)
    rgba = np.asarray(lut.lut).reshape(-1, 4)
    assert rgba[0, 3] == 0 and rgba[3, 3] == 255 and rgba[7, 3] == 255  # background clear
    assert rgba[5, 3] == 0  # absent value: transparent
    assert not np.array_equal(rgba[3, :3], rgba[7, :3])  # discrete colours
    assert "tumour" in lut.labels


def test_labels_on_another_grid_raise_naming_the_difference():
    img = synthetic_image((6, 7, 8))
    other_shape = synthetic_image((6, 7, 9))
    with pytest.raises(GeometryMismatchError, match=r"labels .*shape \(6, 7, 8\) vs \(6, 7, 9\)"):
        volume(img, labels=other_shape)
    moved = ml.Image(np.zeros(img.spatial_shape, np.uint8), img.affine + np.array(
        [[0, 0, 0, 5.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(GeometryMismatchError, match=r"labels .*origin"):
        volume(img, labels=moved)
    finer = ml.Image(np.zeros(img.spatial_shape, np.uint8), img.affine @ np.diag([0.5, 1, 1, 1]))
    with pytest.raises(GeometryMismatchError, match=r"spacing"):
        volume(img, labels=finer)


# ------------------------------------------------------------------ downsampling
def test_large_image_is_downsampled_for_display_only():
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 2000, size=(300, 512, 512), dtype=np.int16)
    affine = geo.compose_affine((1.25, 0.7, 0.7), (-180.0, -150.0, -90.0), np.eye(3))
    img = ml.Image(arr, affine, meta={"modality": "CT", "id": "big"})
    source_copy = arr.copy()
    max_voxels = 128**3
    view = volume(img, max_voxels=max_voxels)
    # the source is untouched
    assert img.array is arr
    np.testing.assert_array_equal(arr, source_copy)
    np.testing.assert_array_equal(img.affine, affine)
    # what is shown fits and says so
    shape = view.display_shape
    assert int(np.prod(shape)) <= max_voxels
    assert int(np.prod(shape)) > max_voxels * 0.8  # not needlessly coarse
    assert view.downsampled
    factors = np.asarray(view.display_factor)
    assert np.all(factors > 1.0)
    np.testing.assert_allclose(np.asarray(view.display_spacing),
                               np.asarray(img.spacing) * factors, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(shape) * view.display_spacing,
                               np.asarray(img.spatial_shape) * img.spacing)  # same field of view
    # same voxel-edge corners in the world: the display grid covers exactly the image
    edge_src = img.index_to_world(_corners(np.asarray(img.spatial_shape) + 1) - 0.5)
    edge_disp = view.display_image.index_to_world(_corners(np.asarray(shape) + 1) - 0.5)
    np.testing.assert_allclose(edge_disp, edge_src, atol=1e-6)
    text = repr(view)
    assert "downsampled" in text and "x".join(map(str, shape)) in text
    assert f"{factors[2]:.3g}" in text
    assert "downsampled" in view._caption.value
    assert "downsampled" in view._repr_mimebundle_()["text/plain"]
    # the NIfTI bytes are the display grid, in the source dtype
    nii = _decode(view.nifti_bytes)
    assert nii.shape == shape[::-1]
    assert nii.get_data_dtype() == np.int16


def test_downsampling_is_antialiased_and_labels_stay_labels():
    # stripes one voxel wide: decimation without smoothing would alias them
    arr = np.zeros((40, 40, 40), np.float32)
    arr[:, :, ::2] = 1000.0
    img = ml.Image(arr, np.diag([1.0, 1.0, 1.0, 1.0]))
    labels = img.with_array((np.arange(40)[:, None, None] // 10 + np.zeros((1, 40, 40))).astype(np.uint8))
    view = volume(img, labels=labels, max_voxels=20**3)
    assert view.display_shape == (20, 20, 20)
    shown = view.display_image.array
    inner = shown[2:-2, 2:-2, 2:-2]
    assert abs(float(inner.mean()) - 500.0) < 25.0
    assert float(inner.std()) < 100.0  # stripes averaged out, not aliased to 0/1000
    lab = view.display_labels.array
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, 1, 2, 3}  # nearest: no blends
    assert view.display_labels.geometry_equal(view.display_image)


def test_small_image_is_not_downsampled():
    img = _oblique_image()
    view = volume(img)
    assert not view.downsampled
    assert view.display_factor == (1.0, 1.0, 1.0)
    assert view.display_image.array is img.array
    assert "downsampled" not in repr(view)
    shape, affine, factors = display_grid(img, max_voxels=int(np.prod(img.spatial_shape)))
    assert shape == img.spatial_shape and factors == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(affine, img.affine)


def test_display_grid_coarsens_the_finest_axes_first():
    img = ml.Image(np.zeros((50, 400, 400), np.int16), np.diag([5.0, 0.5, 0.5, 1.0]))
    shape, _, factors = display_grid(img, max_voxels=50 * 200 * 200)
    assert shape == (50, 200, 200)
    assert factors == pytest.approx((1.0, 2.0, 2.0))


# --------------------------------------------------------------------- snapshot
def test_snapshot_draws_the_maximum_intensity_projections():
    # array axes -> L, P, S (not the canonical S, P, L): the MIPs must be taken in patient space
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 1000, size=(12, 10, 8)).astype(np.int16)
    spacing = (0.8, 1.5, 3.0)
    affine = geo.compose_affine(spacing, (0.0, 0.0, 0.0), np.eye(3))
    img = ml.Image(arr, affine)
    assert img.orientation == "LPS"
    view = volume(img, window=(1000.0, 500.0))
    fig = view.snapshot()
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in axes] == ["axial MIP", "coronal MIP", "sagittal MIP"]
    w, lev = view.window
    # axial: along S (array axis 2); rows anterior->posterior (axis 1), columns right->left (axis 0)
    axial = arr.max(axis=2).T
    # coronal: along P (axis 1); rows superior at the top (axis 2 reversed), columns R->L (axis 0)
    coronal = arr.max(axis=1).T[::-1]
    # sagittal: along L (axis 0); rows superior at the top, columns anterior->posterior (axis 1)
    sagittal = arr.max(axis=0).T[::-1]
    for ax, expected in zip(axes, (axial, coronal, sagittal), strict=True):
        drawn = np.asarray(ax.images[0].get_array())
        np.testing.assert_allclose(drawn, apply_window(expected, w, lev))
    # physical aspect: extents in mm
    assert axes[0].images[0].get_extent() == pytest.approx([0, 12 * 0.8, 10 * 1.5, 0])
    assert axes[1].images[0].get_extent() == pytest.approx([0, 12 * 0.8, 0, 8 * 3.0])
    letters = {t.get_text() for t in axes[0].texts}
    assert letters == {"R", "L", "A", "P"}
    # the PNG is a picture, not a blank
    from matplotlib.image import imread

    png = view.to_png()
    pixels = imread(io.BytesIO(png))
    assert pixels.std() > 0.05
    bundle = view._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" in bundle


def test_snapshot_overlays_labels_and_neurological_flips():
    img = synthetic_image((6, 7, 8))
    lab = np.zeros(img.spatial_shape, np.uint8)
    lab[1:3, 2:4, 0:2] = 4
    view = volume(img, labels=img.with_array(lab))
    fig = view.snapshot()
    axes = [ax for ax in fig.axes if ax.images]
    assert all(len(ax.images) == 2 for ax in axes)
    overlay = np.ma.getdata(axes[0].images[1].get_array())
    assert overlay.max() == 1  # label 4 is the first (only) colour
    neuro = volume(img, neurological=True).mip_planes()
    radio = view.mip_planes()
    np.testing.assert_array_equal(neuro["axial"][0], radio["axial"][0][:, ::-1])
    assert neuro["axial"][3][:2] == ("L", "R")


def test_time_series_shows_one_frame_and_sheared_grids_are_resampled():
    arr = np.stack([np.full((4, 5, 6), t, np.int16) for t in range(3)], axis=3)
    img4 = ml.Image(arr, np.eye(4), frame_times_s=[0, 1, 2])
    view = volume(img4, frame=2)
    assert np.all(view.display_image.array == 2)
    assert any("frame 2 of 3" in n for n in view.notes)
    sheared = np.eye(4)
    sheared[1, 0] = 0.3  # gantry tilt: slice axis not perpendicular to the rows
    tilted = ml.Image(np.ones((5, 6, 7), np.float32), sheared)
    view = volume(tilted)
    assert any("sheared" in n for n in view.notes)
    assert geo.is_orthogonal(view.display_image.affine)
    _decode(view.nifti_bytes)


# --------------------------------------------------------------------- itkwidgets
def test_itkwidgets_wrong_or_missing_version_names_the_pin(monkeypatch):
    versions = {"itkwidgets": "0.32.6", "ngff-zarr": "0.32.2"}
    monkeypatch.setattr(vitk, "_installed_version", lambda dist: versions.get(dist))
    img = synthetic_image((4, 5, 6))
    with pytest.raises(MissingDependencyError, match=r"itkwidgets 0\.32\.6 is installed") as info:
        volume(img, backend="itkwidgets")
    assert "itkwidgets[lab]==1.0a55" in str(info.value) and "ngff-zarr<0.33" in str(info.value)
    assert "ipywidgets<8" in str(info.value)
    versions["itkwidgets"] = None
    with pytest.raises(MissingDependencyError, match=r"not installed.*itkwidgets\[lab\]==1\.0a55"):
        volume(img, backend="itkwidgets")
    versions.update({"itkwidgets": "1.0a55", "ngff-zarr": "0.34.1"})
    with pytest.raises(MissingDependencyError, match=r"ngff-zarr 0\.34\.1"):
        volume(img, backend="itkwidgets")
    assert isinstance(info.value, ImportError)


def _pretend_pinned(monkeypatch):
    versions = {"itkwidgets": "1.0a55", "ngff-zarr": "0.32.2"}
    monkeypatch.setattr(vitk, "_installed_version", lambda dist: versions.get(dist))


def test_itkwidgets_unreachable_assets_raise_fast_before_importing(monkeypatch):
    _pretend_pinned(monkeypatch)
    closed = _closed_port()
    monkeypatch.setattr(vitk, "asset_hosts", lambda: [("127.0.0.1", closed)])
    had_itkwidgets = "itkwidgets.viewer" in sys.modules
    t0 = time.perf_counter()
    with pytest.raises(vitk.ViewerUnavailableError) as info:
        volume(synthetic_image((4, 5, 6)), backend="itkwidgets")
    assert time.perf_counter() - t0 < 3.0
    message = str(info.value)
    assert f"127.0.0.1:{closed}" in message
    assert "IPFS" in message and "ml.view.volume(image)" in message and "network" in message
    assert ("itkwidgets.viewer" in sys.modules) == had_itkwidgets  # not imported by the check


def test_unreachable_hosts_is_bounded_by_the_timeout(monkeypatch):
    def hang(host, port, timeout_s):  # e.g. name resolution that never answers
        time.sleep(30)
        return True

    monkeypatch.setattr(vitk, "_reachable", hang)
    t0 = time.perf_counter()
    down = vitk.unreachable_hosts([("a.example", 443), ("b.example", 443)], timeout_s=0.5)
    assert time.perf_counter() - t0 < 2.0
    assert down == ["a.example:443", "b.example:443"]


def test_itkwidgets_with_the_real_hosts_never_blocks(monkeypatch):
    """Whatever this machine's network: an error within seconds (offline: the hosts; online:
    there is no kernel in pytest)."""
    _pretend_pinned(monkeypatch)
    hosts = vitk.asset_hosts()
    assert ("cdn.jsdelivr.net", 443) in hosts
    t0 = time.perf_counter()
    with pytest.raises(vitk.ViewerUnavailableError, match=r"ml\.view\.volume\(image\)"):
        volume(synthetic_image((4, 5, 6)), backend="itkwidgets", asset_timeout_s=1.0)
    assert time.perf_counter() - t0 < 5.0


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


KERNEL_SETUP = """\
import sys, time
sys.path.insert(0, {stubs!r})
import numpy as np
import medlab as ml
from medlab.view import _volume_itk as vitk
from medlab.view._volume import volume
img = ml.Image(np.arange(8 * 9 * 10, dtype=np.int16).reshape(8, 9, 10), np.diag([2.0, 1, 1, 1]))
kernel = get_ipython().kernel
original_handler = kernel.shell_handlers["execute_request"]
"""

KERNEL_OFFLINE = """\
vitk.asset_hosts = lambda: [("127.0.0.1", {closed})]  # the asset hosts, unreachable
t0 = time.perf_counter()
try:
    volume(img, backend="itkwidgets")
    outcome = "no error"
except vitk.ViewerUnavailableError as exc:
    outcome = str(exc)
print("OFFLINE", round(time.perf_counter() - t0, 2), "itkwidgets.viewer" in sys.modules, outcome)
"""

KERNEL_ONLINE = """\
vitk.unreachable_hosts = lambda hosts, timeout_s=2.0: []  # pretend the hosts answer
import itkwidgets.viewer as ivw  # what itkwidgets does on import: it takes over execute_request
hijacked = kernel.shell_handlers["execute_request"] == ivw._cell_watcher.capture_event_async
view = volume(img, backend="itkwidgets", labels=img.with_array((img.array > 300).astype("uint8")))
restored = kernel.shell_handlers["execute_request"] == original_handler
print("ONLINE", hijacked, restored, type(view.viewer).__name__, view.backend)
"""


@pytest.mark.slow
def test_itkwidgets_in_a_real_kernel_does_not_hold_up_later_cells(tmp_path):
    """nbclient: offline -> the clear error; 'online' without a browser (the viewer never
    reports ready, as under papermill) -> later cells still run, well before the timeout."""
    if importlib.util.find_spec("itkwidgets") is None:
        pytest.skip(f"itkwidgets is not installed: pip install {vitk.ITKWIDGETS_PIN}")
    import nbformat
    from nbclient import NotebookClient

    # itkwidgets refuses to import in a kernel without the Python packages of its JupyterLab
    # extension ([lab] extra); they are only imported there, so empty stand-ins will do.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for module in ("imjoy_jupyterlab_extension", "imjoy_elfinder"):
        if importlib.util.find_spec(module) is None:
            (stubs / f"{module}.py").write_text("")
    cells = [KERNEL_SETUP.format(stubs=str(stubs)), KERNEL_OFFLINE.format(closed=_closed_port()),
             "print('AFTER OFFLINE')", KERNEL_ONLINE, "print('AFTER ONLINE')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    # a cell held up by itkwidgets' cell watcher would never finish: the per-cell timeout
    # (CellTimeoutError) is what fails this test then, not a wall-clock budget
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False)
    client.execute()

    def text(i):
        return "".join(o.get("text", "") for o in nb.cells[i].outputs if o.output_type == "stream")

    offline = text(1)
    assert offline.startswith("OFFLINE"), offline
    seconds, imported = float(offline.split()[1]), offline.split()[2]
    assert seconds < 10.0 and imported == "False"  # bounded by the 2 s connect timeout
    assert "cannot load" in offline and "ml.view.volume(image)" in offline
    assert "AFTER OFFLINE" in text(2)
    assert text(3).split() == ["ONLINE", "True", "True", "Viewer", "itkwidgets"], text(3)
    assert "AFTER ONLINE" in text(4)


# ---------------------------------------------------------------------- browser
LAB_VOLUME = """\
import numpy as np
import medlab as ml
from medlab.view._volume import volume

zz, yy, xx = np.mgrid[:48, :64, :56]
blob = 1000 * np.exp(-((zz - 24) ** 2 / 150 + (yy - 28) ** 2 / 300 + (xx - 30) ** 2 / 200))
img = ml.Image(blob.astype(np.int16), np.diag([2.0, 1.5, 1.5, 1.0]), meta={"id": "blob"})
labels = img.with_array((blob > 600).astype(np.uint8))
view = volume(img, labels=labels, window=(1000.0, 500.0), height=480)
view
"""


@pytest.mark.slow
def test_niivue_volume_draws_in_jupyterlab_offline(jupyter_lab, lab_page, screenshot):
    nb = lab.open_notebook(lab_page.page, jupyter_lab, _lab_notebook(LAB_VOLUME),
                           name="volume.ipynb")
    out = nb.output(0)
    canvas = out.locator("canvas")
    canvas.wait_for()
    assert "blob" in out.inner_text() and "NiiVue" in out.inner_text()
    deadline = time.monotonic() + 40
    while True:  # data arrive and are drawn asynchronously; WebGL: element screenshots
        png = screenshot(canvas, "canvas")
        quads = _quadrant_content(png)
        if min(quads) > 0.03 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not lab.is_blank(png)
    assert min(quads) > 0.03, quads  # three planes and the 3D render all show the volume
    assert _bluish_fraction(png) > 0.01  # label 1 is tab20's blue, drawn over the grey
    assert not nb.errors()
    assert not lab.unexpected_external(lab_page), lab_page.external
    assert all(lab.lab_own(u) for u in lab_page.blocked)


def _lab_notebook(*sources: str):
    import nbformat

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def _quadrant_content(png: bytes) -> list[float]:
    """Share of non-black pixels in each quadrant of a 2x2 canvas."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        px = np.asarray(im.convert("RGB"), dtype=np.int16)
    h, w = px.shape[0] // 2, px.shape[1] // 2
    lit = px.max(axis=-1) > 40
    return [float(lit[r:r + h, c:c + w].mean()) for r in (0, h) for c in (0, w)]


def _bluish_fraction(png: bytes) -> float:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        px = np.asarray(im.convert("RGB"), dtype=np.int16)
    return float(((px[..., 2] - px[..., 0]) > 40).mean())


def test_itkwidgets_gets_an_itkwasm_image_with_the_same_world_positions():
    pytest.importorskip("itkwasm", reason=f"itkwidgets is not installed: {vitk.ITKWIDGETS_PIN}")
    img = synthetic_image((5, 6, 7), spacing=(2.0, 0.8, 0.6), origin=(10.0, -20.0, 30.0),
                          direction=np.diag([1.0, -1.0, -1.0])[[2, 0, 1]])
    assert img.orientation != "SPL"
    wasm = vitk._itkwasm_image(img)
    data = np.asarray(wasm.data)  # (z, y, x)
    spacing, origin = np.asarray(wasm.spacing), np.asarray(wasm.origin)
    direction = np.asarray(wasm.direction).reshape(3, 3)
    np.testing.assert_allclose(direction, np.eye(3), atol=1e-9)  # nothing left for NGFF to drop
    for index in _corners(img.spatial_shape).astype(int):
        value = img.array[tuple(index)]
        zyx = np.argwhere(data == value)[0]  # values are distinct per voxel
        world = origin + direction @ (spacing * zyx[::-1])
        np.testing.assert_allclose(world, img.index_to_world(index), atol=1e-6)


def test_missing_ipyniivue_names_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipyniivue", None)  # import ipyniivue -> ImportError
    with pytest.raises(MissingDependencyError, match=r"medlab\[view\]"):
        volume(synthetic_image((4, 5, 6)))
