"""medlab's viewers used as a researcher uses them, in JupyterLab in headless Chromium.

Run All with the page kept busy while each widget opens (a 2.5 s JavaScript loop, as a
software 3D rendering does) must still draw every widget; right-drag sets window/level without
JupyterLab's context menu; letters and scale bar stay readable on bright images; measurement
labels stay inside the canvas; legends, colour bars, units and slider labels are there;
double-click resets the view but not the crosshair. Screenshots are kept as artefacts.
"""

from __future__ import annotations

import json
import re

import lab
import nbformat
import numpy as np
import pytest

PANE = 300

BUSY_SETUP = """
import shutil
import tempfile
from pathlib import Path

import numpy as np

import medlab as ml

k, j, i = np.meshgrid(np.arange(24), np.arange(48), np.arange(64), indexing="ij")
ball = ((k - 12) * 2) ** 2 + (j - 24) ** 2 + (i - 32) ** 2 < 16 ** 2
ct = ml.Image((-500 + 8 * i + 600 * ball).astype(np.int16), np.diag([2.5, 0.8, 0.8, 1.0]),
              meta={"modality": "CT"})
moved = ct.with_array((np.roll(ct.array, 4, axis=2) * 1.5 + 200).astype(np.int16))
series = ml.Image(np.stack([ct.array * (1 + 0.2 * t) for t in range(5)], axis=-1).astype(np.float32),
                  ct.affine, frame_times_s=np.arange(5) * 10.0)
folder = Path(tempfile.mkdtemp())
shutil.copy(ml.data.path("wg04-modalities", "CT1_UNC.dcm"), folder / "ct.dcm")
index = ml.cohort.scan(folder, progress=False, workers=1)
"""

BUSY_WIDGETS = {
    "slices": 'w = ml.view.slices(ct, title="busy slices", height=200)',
    "compare": 'w = ml.view.compare(ct, moved, mode="checkerboard", title="busy compare", height=200)',
    "curves": 'w = ml.view.curves(series, title="busy curves", height=200)',
    "landmarks": 'w = ml.view.landmarks(ct, moved, height=200)',
    "gallery": "w = ml.view.gallery(index, progress=False)",
}


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _busy_notebook() -> nbformat.NotebookNode:
    return _notebook(BUSY_SETUP, *(f"{src}\nw" for src in BUSY_WIDGETS.values()))


# Keeps the page busy for 2.5 s whenever an anywidget model starts to initialise: anywidget
# (0.11) starts a 2 s timer (AbortSignal.timeout(2000)) for loading the widget's module, then
# loads it. A page held by other work (NiiVue's software 3D rendering held it for 1-2.6 s)
# lets the timer expire first; updates waiting for the module are then dropped.
BUSY_ON_WIDGET_OPEN = """
(() => {
  const timeout = AbortSignal.timeout.bind(AbortSignal);
  window.medlabBusyRuns = 0;
  AbortSignal.timeout = (ms) => {
    const signal = timeout(ms);
    if (ms === 2000) {
      window.medlabBusyRuns += 1;
      const t0 = performance.now();
      while (performance.now() - t0 < 2500) { /* busy */ }
    }
    return signal;
  };
})();
"""


def _check_viewer(root, label: str, screenshot) -> None:
    root.page.wait_for_function("(el) => +el.dataset.repaintCount > 0", arg=root.element_handle(),
                                timeout=30_000)
    window = root.locator(".medlab-window").inner_text()
    assert re.fullmatch(r"W -?[\d.]+ L -?[\d.]+", window), (label, window)  # not "W undefined"
    for n in range(root.locator("canvas.medlab-pane").count()):
        png = screenshot(root.locator("canvas.medlab-pane").nth(n), f"{label}-{n}")
        assert not lab.is_blank(png), f"{label}: pane {n} is blank"


@pytest.mark.slow
def test_run_all_with_a_busy_page_draws_every_widget(jupyter_lab, lab_page, screenshot):
    """Three Run Alls, each with a fresh kernel and page; every widget opens while the page is
    busy for 2.5 s (longer than anywidget waits for its module) and must still draw its state."""
    from playwright.sync_api import expect

    page = lab_page.page
    page.add_init_script(BUSY_ON_WIDGET_OPEN)
    for run in range(3):
        jupyter_lab.shutdown_kernels()
        nb = lab.open_notebook(page, jupyter_lab, _busy_notebook(), name=f"busy_{run}.ipynb",
                               timeout_s=240)
        assert not nb.errors(), nb.errors()
        # the page really was kept busy as each anywidget model (6 of them) initialised
        page.wait_for_function("window.medlabBusyRuns >= 6", timeout=30_000)
        for cell, name in enumerate(BUSY_WIDGETS, start=1):
            out = nb.output(cell)
            if name == "gallery":
                tile = out.locator(".medlab-gallery figure.medlab-tile img")
                expect(tile).to_have_count(1, timeout=30_000)
                assert not lab.is_blank(screenshot(tile, f"run{run}-gallery"))
                continue
            viewers = out.locator(".medlab-slices")
            expect(viewers.first).to_be_visible(timeout=30_000)
            if name in ("slices", "compare", "curves"):
                expect(viewers.first.locator(".medlab-title")).to_have_text(f"busy {name}")
            for v in range(viewers.count()):
                _check_viewer(viewers.nth(v), f"run{run}-{name}-{v}", screenshot)
            if name == "curves":
                plot = out.locator(".widget-image")
                assert (plot.get_attribute("src") or "").startswith("blob:") or \
                    (plot.get_attribute("src") or "").startswith("data:")
                assert not lab.is_blank(screenshot(plot, f"run{run}-curve-plot"))
            if name == "landmarks":
                expect(out.locator(".widget-html")).to_contain_text("0 pair(s)")
        screenshot(page, f"run{run}-notebook", full_page=True)
    assert not lab.unexpected_external(lab_page)


UI_SETUP = f"""
import numpy as np

import medlab as ml

# a bright MR-like volume: letters and scale bar lie on near-white pixels
k, j, i = np.meshgrid(np.arange(30), np.arange(80), np.arange(100), indexing="ij")
body = ((j - 40) / 38.0) ** 2 + ((i - 50) / 48.0) ** 2 < 1.2
mr = ml.Image((900 + 80 * body + 5 * (i % 9)).astype(np.float32), np.diag([3.0, 1.0, 1.0, 1.0]),
              meta={{"modality": "MR"}})
bright = ml.view.slices(mr, window=(120, 930), height={PANE}, title="bright")
bright.add("seed", mr.index_to_world([15, 40, 50]))
bright
"""

UI_CELLS = [
    # PET (its meta says SUV) fused on a CT
    """ct = ml.Image((np.where(body, 40, -1000) + 0 * k).astype(np.int16), mr.affine, meta={"modality": "CT"})
pet = ml.Image(np.where(body, 1.0, 0.0) + 6.0 * (((j - 40) ** 2 + (i - 50) ** 2) < 60), mr.affine,
               meta={"modality": "PT", "units": "GML"})
ml.view.slices(ct, overlay=pet, planes=["axial"], height=240, title="fusion")""",
    # two images at different intensity scales
    """ml.view.compare(mr, mr.with_array(mr.array * 1.7 + 50), mode="difference", planes=["axial"],
                height=240, title="compare")""",
    # a radiograph: no position in the patient
    """cr = ml.Image(np.tile(np.linspace(0, 4000, 120), (1, 90, 1)).astype(np.uint16), np.eye(4),
              meta={"modality": "CR", "patient_geometry": False, "patient_orientation": ["L", "F"]})
ml.view.slices(cr, height=240, title="radiograph")""",
    # the 3D view with a label legend
    """ml.view.volume(mr, labels=mr.with_array(body.astype(np.uint8)), label_names={1: "tumour"},
               height=300)""",
]


def _luminance(px: np.ndarray) -> np.ndarray:
    c = px[..., :3].astype(float) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def _contrast(png: bytes, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    """(WCAG contrast ratio of the darkest outline pixels against the image under the box,
    share of dark pixels, share of bright image pixels) in ``box`` = (x0, y0, x1, y1)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        px = np.asarray(im.convert("RGB"))
    x0, y0, x1, y1 = box
    lum = _luminance(px[y0:y1, x0:x1])
    under = float(np.percentile(lum, 90))  # the image's own (bright) pixels
    dark = float(np.percentile(lum, 5))  # the outline
    return (under + 0.05) / (dark + 0.05), float((lum < 0.1).mean()), float((lum > 0.6).mean())


@pytest.mark.slow
def test_viewer_controls_as_a_user_meets_them(jupyter_lab, lab_page, screenshot):
    from playwright.sync_api import expect

    page = lab_page.page
    nb = lab.open_notebook(page, jupyter_lab, _notebook(UI_SETUP, *UI_CELLS),
                           name="viewer_ui.ipynb", timeout_s=240)
    assert not nb.errors(), nb.errors()
    root = nb.output(0).locator(".medlab-slices")
    root.wait_for()
    page.wait_for_function("(el) => +el.dataset.repaintCount > 0", arg=root.element_handle())
    axial = root.locator('canvas.medlab-pane[data-plane="axial"]')
    axial.scroll_into_view_if_needed()
    page.wait_for_timeout(300)

    # letters and scale bar readable on bright pixels: a dark outline against the image
    png = screenshot(axial, "bright-axial")
    for where, box in {"left letter": (0, PANE // 2 - 14, 26, PANE // 2 + 14),
                       "top letter": (PANE // 2 - 14, 0, PANE // 2 + 14, 26),
                       "scale bar": (PANE - 90, PANE - 44, PANE - 4, PANE - 14)}.items():
        ratio, dark, bright_share = _contrast(png, box)
        assert bright_share > 0.3, f"{where}: the image under it is not bright ({bright_share:.2f})"
        assert ratio > 7 and dark > 0.03, f"{where}: contrast {ratio:.1f}, dark share {dark:.2f}"

    # the seed list says where the seed is
    seed = root.locator('.medlab-measurement[data-kind="seed"]')
    expect(seed).to_contain_text(re.compile(r"LPS \(-?[\d.]+, -?[\d.]+, -?[\d.]+\) mm"))

    # right-drag: window/level changes, JupyterLab's context menu stays closed (a right-click
    # elsewhere in the notebook does open it: the check below could fail)
    nb.cell(0).locator(".jp-InputArea-editor").click(button="right")
    expect(page.locator(".lm-Menu:visible").first).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(".lm-Menu:visible")).to_have_count(0)
    window_text = root.locator(".medlab-window")
    before = window_text.inner_text()
    box = axial.bounding_box()
    cx, cy = box["x"] + PANE / 2, box["y"] + PANE / 2
    sliders = root.locator("input.medlab-slider")
    cursor_before = [sliders.nth(n).input_value() for n in range(3)]
    page.mouse.move(cx, cy)
    page.mouse.down(button="right")
    for step in range(1, 7):
        page.mouse.move(cx + 10 * step, cy - 6 * step)
    page.mouse.up(button="right")
    expect(window_text).not_to_have_text(before)
    page.wait_for_timeout(300)
    menus = page.locator(".lm-Menu:visible")
    assert menus.count() == 0, "JupyterLab's context menu opened over the viewer"
    dragged = window_text.inner_text()
    screenshot(root, "after-right-drag")
    page.mouse.move(cx + 80, cy + 40)  # plain moves afterwards leave the window alone
    page.mouse.move(cx - 30, cy + 60)
    page.wait_for_timeout(200)
    assert window_text.inner_text() == dragged

    # double-click resets window/level (and zoom) but leaves the crosshair where it was
    page.mouse.dblclick(cx + 70, cy - 50)
    expect(window_text).to_have_text(before)
    page.wait_for_timeout(500)
    assert [sliders.nth(n).input_value() for n in range(3)] == cursor_before

    # a ruler ending at the right edge: its label stays inside the canvas
    root.locator('button[data-tool="ruler"]').click()
    page.mouse.click(box["x"] + 180, cy + 30)
    page.mouse.click(box["x"] + PANE - 4, cy + 30)
    expect(root.locator('.medlab-measurement[data-kind="ruler"]')).to_contain_text(" mm",
                                                                                   timeout=20_000)
    page.wait_for_timeout(300)
    boxes = json.loads(axial.get_attribute("data-label-boxes"))
    assert boxes, "no measurement label drawn"
    for x, y, w, h in boxes:
        assert 0 <= x and x + w <= PANE and 0 <= y and y + h <= PANE, (x, y, w, h)
    png = screenshot(axial, "ruler-at-edge")
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    x, y, w, h = max(boxes, key=lambda b: b[0])
    text = px[y:y + h, x:x + w]
    green = (text[..., 1] > 180) & (text[..., 0] < 100) & (text[..., 2] < 100)
    assert green.sum() > 20, "the label's text is not where its box says"

    # PET fused on CT: a colour bar with the overlay's unit; only the sliders that act are shown
    fusion = nb.output(1).locator(".medlab-slices")
    fusion.scroll_into_view_if_needed()
    colorbar = fusion.locator(".medlab-colorbar")
    expect(colorbar).to_be_visible()
    expect(colorbar).to_contain_text("SUV")
    expect(fusion.locator(".medlab-alpha-label")).to_be_visible()
    expect(fusion.locator(".medlab-alpha-label")).to_contain_text("opacity")
    expect(fusion.locator(".medlab-tiles-label")).to_be_hidden()
    screenshot(fusion, "fusion")
    fusion.locator("select.medlab-overlay-mode").select_option("checkerboard")
    expect(fusion.locator(".medlab-tiles-label")).to_be_visible()
    expect(fusion.locator(".medlab-tiles-label")).to_contain_text("tiles")
    expect(fusion.locator(".medlab-alpha-label")).to_be_hidden()
    expect(colorbar).to_be_hidden()

    # the difference view says what it shows
    compare = nb.output(2).locator(".medlab-slices")
    expect(compare.locator(".medlab-caption")).to_contain_text("own window")
    screenshot(compare, "compare-difference")

    # a radiograph's pane is not called axial
    radiograph = nb.output(3).locator(".medlab-slices")
    expect(radiograph.locator(".medlab-pane-label")).to_have_text("projection")
    screenshot(radiograph, "radiograph")

    # the 3D view's labels have a legend
    legend = nb.output(4).locator(".medlab-volume-legend")
    expect(legend).to_contain_text("1 tumour")
    screenshot(nb.output(4), "volume")
    assert not nb.stderr(), nb.stderr()
    assert not lab.unexpected_external(lab_page)
