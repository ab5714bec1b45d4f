"""medlab's viewers in a real JupyterLab, in headless Chromium, with the network cut off.

What a person would check: each viewer shows a picture, moving a slider or
changing the window changes it, two clicks of the ruler report the right
distance in mm, the 3D view draws, and the viewing notebook runs. Screenshots
are kept in the artefacts folder (``$MEDLAB_ARTIFACTS``, default
``test-artifacts/``).
"""

from __future__ import annotations

import re
import time

import lab
import nbformat
import pytest
from conftest import REPO

PANE = 300  # the viewer's pane size in screen pixels (height=PANE below)

SETUP = f"""
import numpy as np
import medlab as ml

k, j, i = np.meshgrid(np.arange(40), np.arange(96), np.arange(128), indexing="ij")
ball = ((k - 20) * 2.5) ** 2 + ((j - 48) * 0.8) ** 2 + ((i - 64) * 0.8) ** 2 < 25 ** 2
arr = (-800 + 8 * i + 900 * ball + 30 * (k % 7)).astype(np.int16)
# axial slices (axis 0 runs inferior -> superior), 2.5 mm apart, 0.8 mm pixels
affine = np.array([[0, 0, 0.8, -50], [0, 0.8, 0, -40], [2.5, 0, 0, 10], [0, 0, 0, 1.0]])
ct = ml.Image(arr, affine, meta={{"modality": "CT"}})
labels = ct.with_array(ball.astype(np.uint8))
viewer = ml.view.slices(ct, labels=labels, label_names={{1: "ball"}}, height={PANE})
viewer
"""


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _wait_repaint(page, root, count: int) -> int:
    page.wait_for_function("([el, n]) => +el.dataset.repaintCount > n",
                           arg=[root.element_handle(), count], timeout=20_000)
    page.wait_for_timeout(150)  # let the other panes settle
    return int(root.get_attribute("data-repaint-count"))


@pytest.mark.slow
def test_slice_viewer_draws_pages_windows_and_measures(jupyter_lab, lab_page, screenshot):
    from playwright.sync_api import expect

    page = lab_page.page
    nb = lab.open_notebook(page, jupyter_lab, _notebook(SETUP), name="slice_viewer.ipynb")
    out = nb.output(0)
    root = out.locator(".medlab-slices")
    root.wait_for()
    panes = {p: out.locator(f'canvas.medlab-pane[data-plane="{p}"]')
             for p in ("axial", "coronal", "sagittal")}
    _wait_repaint(page, root, 0)
    first = {p: screenshot(c, p) for p, c in panes.items()}
    for p, png in first.items():
        assert not lab.is_blank(png), f"{p} pane is blank"
    assert out.locator(".medlab-legend").inner_text().strip() == "1 ball"

    # paging: five arrow-key presses on the axial slider (JupyterLab's own arrow-key shortcuts
    # must not take them) move five slices
    count = int(root.get_attribute("data-repaint-count"))
    slider = out.locator('input.medlab-slider[data-plane="axial"]')
    start = int(slider.input_value())
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    assert int(slider.input_value()) == start + 5
    count = _wait_repaint(page, root, count)
    page.wait_for_timeout(300)  # the five slices arrive one after the other
    page.wait_for_function("(el) => el.dataset.repaintMs !== undefined", arg=root.element_handle())
    paged = screenshot(panes["axial"], "axial-paged")
    assert lab.differs(first["axial"], paged) > 0.02
    assert float(root.get_attribute("data-repaint-ms")) > 0

    # window/level: the lung preset changes the picture
    out.locator("select.medlab-preset").select_option("lung")
    count = _wait_repaint(page, root, count)
    lung = screenshot(panes["axial"], "axial-lung")
    assert lab.differs(paged, lung) > 0.05
    assert "W 1500 L -600" in out.locator(".medlab-window").inner_text()
    out.locator("select.medlab-preset").select_option("auto")  # the viewer's default window
    count = _wait_repaint(page, root, count)

    # the mouse wheel pages (one slice a notch); ctrl+wheel zooms in (the picture changes,
    # the slice does not); a double-click resets the view
    box = panes["axial"].bounding_box()
    page.mouse.move(box["x"] + PANE / 2, box["y"] + PANE / 2)
    value = int(slider.input_value())
    page.mouse.wheel(0, -100)
    expect(slider).to_have_value(str(value + 1))
    count = _wait_repaint(page, root, count)
    unzoomed = screenshot(panes["axial"], "axial-before-zoom")
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    page.wait_for_timeout(200)
    zoomed = lab.differs(unzoomed, screenshot(panes["axial"], "axial-zoomed"))
    assert zoomed > 0.05
    assert slider.input_value() == str(value + 1)
    panes["axial"].dblclick()  # resets zoom and window/level; the crosshair stays
    page.wait_for_timeout(400)
    assert lab.differs(unzoomed, screenshot(panes["axial"], "axial-reset")) < zoomed / 3

    # the cursor readout: LPS position and value under the mouse
    page.mouse.move(box["x"] + PANE / 2, box["y"] + PANE / 2)
    status = out.locator(".medlab-status").inner_text()
    assert re.search(r"LPS \(-?[\d.]+, -?[\d.]+, -?[\d.]+\) mm .* HU", status), status

    # ruler: two clicks on the axial pane. The 128 x 0.8 mm = 102.4 mm wide image fills the
    # 300 px pane (it is wider than tall), so 200 px are 200 * 102.4 / 300 mm.
    out.locator('button[data-tool="ruler"]').click()
    y = box["y"] + PANE / 2
    page.mouse.click(box["x"] + 50, y)
    page.mouse.click(box["x"] + 250, y)
    line = out.locator('.medlab-measurement[data-kind="ruler"]').first
    expect(line).to_contain_text(" mm", timeout=20_000)  # the kernel's ml.measure result
    got = float(re.search(r"([\d.]+) mm", line.inner_text()).group(1))
    assert got == pytest.approx(200 * 102.4 / PANE, abs=0.15)

    # and a vertical one on the sagittal pane: 40 slices x 2.5 mm = 100 mm fill 300 px
    sbox = panes["sagittal"].bounding_box()
    page.mouse.click(sbox["x"] + PANE / 2, sbox["y"] + 60)
    page.mouse.click(sbox["x"] + PANE / 2, sbox["y"] + 210)
    second = out.locator('.medlab-measurement[data-kind="ruler"]').nth(1)
    expect(second).to_contain_text(" mm", timeout=20_000)
    got = float(re.search(r"([\d.]+) mm", second.inner_text()).group(1))
    assert got == pytest.approx(150 * 100 / PANE, abs=0.15)
    screenshot(root, "measured")
    assert not nb.errors() and not nb.stderr()
    assert not lab.unexpected_external(lab_page)


@pytest.mark.slow
def test_viewing_notebook_in_jupyterlab(jupyter_lab, lab_page, screenshot):
    """notebooks/02_viewing.ipynb runs in Lab and every viewer in it draws."""
    page = lab_page.page
    nb = lab.open_notebook(page, jupyter_lab, REPO / "notebooks" / "02_viewing.ipynb",
                           timeout_s=300)
    assert not nb.errors(), nb.errors()
    panel = nb.panel
    viewers = panel.locator(".medlab-slices")
    assert viewers.count() >= 8
    for n in range(viewers.count()):
        root = viewers.nth(n)
        root.scroll_into_view_if_needed()
        page.wait_for_function("(el) => +el.dataset.repaintCount > 0", arg=root.element_handle())
        canvas = root.locator("canvas.medlab-pane").first
        png = screenshot(canvas, f"viewer-{n}")
        assert not lab.is_blank(png), f"viewer {n} is blank"
    def viewer(title: str):
        return viewers.filter(has=page.locator(".medlab-title", has_text=title)).first

    # the ultrasound cine: the frame slider shows another frame
    cine = viewer("Ultrasound cine")
    cine.scroll_into_view_if_needed()
    frame_before = screenshot(cine.locator("canvas.medlab-pane"), "cine-before")
    count = int(cine.get_attribute("data-repaint-count"))
    cine.locator("input.medlab-frame").evaluate(
        "(e) => { e.value = '5'; e.dispatchEvent(new Event('input', {bubbles: true})); }")
    _wait_repaint(page, cine, count)
    assert "frame 6/" in cine.locator(".medlab-frame-text").inner_text()
    canvas = cine.locator("canvas.medlab-pane")
    frame_6 = screenshot(canvas, "cine-frame-6")
    assert lab.differs(frame_before, frame_6) > 0.01
    play = cine.locator("button.medlab-play")
    play.click()  # plays: the frame advances by itself
    page.wait_for_function("(el) => !/^frame 6\\//.test(el.textContent)",
                           arg=cine.locator(".medlab-frame-text").element_handle(), timeout=20_000)
    play.click()  # and stops
    assert not cine.locator(".medlab-frame-text").inner_text().startswith("frame 6/")
    # the frame text changes at once, the pixels when the kernel sends them (slow on a loaded
    # machine): poll the picture itself. (Compared with frame 6, where playing began: the frame it
    # stops on may be the one the viewer opened on.)
    changed, deadline = 0.0, time.monotonic() + 30
    while changed <= 0.01 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        changed = lab.differs(frame_6, screenshot(canvas, "cine-after"))
    assert changed > 0.01, "the cine still shows frame 6 after playing"

    # the compare view: switching checkerboard -> blend changes the picture
    before = viewer("before registration")
    before.scroll_into_view_if_needed()
    axial = before.locator('canvas.medlab-pane[data-plane="axial"]')
    checker = screenshot(axial, "compare-checkerboard")
    count = int(before.get_attribute("data-repaint-count"))
    before.locator("select.medlab-overlay-mode").select_option("blend")
    _wait_repaint(page, before, count)
    assert lab.differs(checker, screenshot(axial, "compare-blend")) > 0.02

    # the curve explorer: a click with the seed tool adds a curve beside the image
    curves = viewer("S002-Sagittal")
    curves.scroll_into_view_if_needed()
    plot = panel.locator(".widget-image").last
    plot_before = screenshot(plot, "curves-before")
    src = plot.get_attribute("src")
    box = curves.locator("canvas.medlab-pane").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    page.wait_for_function("([el, src]) => el.src !== src", arg=[plot.element_handle(), src],
                           timeout=20_000)
    page.wait_for_timeout(200)
    assert lab.differs(plot_before, screenshot(plot, "curves-after")) > 0.005
    assert curves.locator('.medlab-measurement[data-kind="seed"]').count() == 2

    # the gallery shows the cohort's thumbnails
    tiles = panel.locator(".medlab-gallery img")
    assert tiles.count() >= 6  # the bundled sample: 2 patients x CT, MR, PET
    assert not lab.is_blank(screenshot(tiles.first, "gallery-tile"))
    # NiiVue's 3D view draws (WebGL through SwiftShader)
    gl = panel.locator("canvas").filter(has_not=panel.locator(".medlab-pane"))
    niivue = [c for c in gl.all() if c.evaluate("(e) => !e.classList.contains('medlab-pane')")
              and c.bounding_box() and c.bounding_box()["width"] > 200]
    assert niivue, "no NiiVue canvas"
    assert not lab.is_blank(screenshot(niivue[0], "volume"))
    screenshot(page, "notebook", full_page=True)
    assert not lab.unexpected_external(lab_page)
