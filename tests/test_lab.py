"""The real-browser JupyterLab harness (tests/lab.py): widgets render and react
in Lab in headless Chromium, with nothing fetched from outside the machine."""

from __future__ import annotations

import io
import time

import lab
import numpy as np
import pytest

SLIDER_IMAGE = """\
import io

import ipywidgets as W
import numpy as np
from PIL import Image as PILImage

yy, xx = np.mgrid[:160, :160]


def render(k):
    # a bright disc on a dark ground that moves with k
    cy, cx = 40 + 4 * k, 50 + 3 * k
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 30**2
    buf = io.BytesIO()
    PILImage.fromarray(np.where(disc, 230, 20).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


slider = W.IntSlider(value=0, min=0, max=20, description="k")
picture = W.Image(value=render(0), format="png", width=160, height=160)
slider.observe(lambda change: setattr(picture, "value", render(change["new"])), names="value")
W.VBox([slider, picture])
"""

NIIVUE = """\
from ipyniivue import NiiVue

nv = NiiVue(height=360)
nv.load_volumes([{"path": "blob.nii.gz"}])
nv
"""


def _notebook(*sources: str):
    import nbformat

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _bright_gray_fraction(png: bytes) -> float:
    """Share of pixels that are light grey (volume voxels), not black, red or text."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        px = np.asarray(im.convert("RGB"), dtype=np.int16)
    gray = (np.ptp(px, axis=-1) < 12) & (px.mean(axis=-1) > 60)
    return float(gray.mean())


# ------------------------------------------------------------- image helpers
def test_is_blank_and_differs():
    flat = _png(np.full((20, 30), 128))
    noise = _png(np.random.default_rng(0).integers(0, 255, (20, 30)))
    assert lab.is_blank(flat)
    assert not lab.is_blank(noise)
    half = np.full((20, 30), 128)
    half[:, :15] = 0
    assert lab.differs(flat, flat) == 0.0
    assert lab.differs(flat, _png(half)) == pytest.approx(0.5)
    assert lab.differs(flat, _png(np.full((10, 30), 128))) == 1.0  # other size


def test_artifact_names_come_from_the_test_id():
    name = lab.artifact_name("tests/test_lab.py::test_x[a/b c]", "canvas 1")
    assert name == "test_lab__test_x-a-b-c__canvas-1"


# -------------------------------------------------------------- in the browser
@pytest.mark.slow
def test_image_widget_follows_slider(jupyter_lab, lab_page, screenshot):
    nb = lab.open_notebook(lab_page.page, jupyter_lab, _notebook(SLIDER_IMAGE),
                           name="slider_image.ipynb")
    out = nb.output(0)
    img = out.locator(".widget-image")
    img.wait_for()
    before = screenshot(img, "before")
    assert not lab.is_blank(before)
    src = img.get_attribute("src")

    handle = out.locator(".noUi-handle")
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    lab_page.page.wait_for_function("([el, src]) => el.src !== src && el.complete",
                                    arg=[img.element_handle(), src])
    assert out.locator(".widget-readout").inner_text().strip() == "5"
    # the kernel may send several pictures (one per step): wait for the last one
    lab_page.page.wait_for_timeout(300)
    after = screenshot(img, "after")
    assert not lab.is_blank(after)
    assert lab.differs(before, after) > 0.05
    assert not nb.errors() and not nb.stderr()
    assert not lab.unexpected_external(lab_page)


@pytest.mark.slow
def test_niivue_draws_a_local_volume_offline(jupyter_lab, lab_page, screenshot):
    import nibabel as nib

    zz, yy, xx = np.mgrid[:32, :32, :32]
    blob = 1000 * np.exp(-((zz - 16) ** 2 + (yy - 14) ** 2 + (xx - 18) ** 2) / 60.0)
    nib.save(nib.Nifti1Image(blob.astype(np.int16), np.diag([2.0, 2.0, 2.0, 1.0])),
             jupyter_lab.root_dir / "blob.nii.gz")
    nb = lab.open_notebook(lab_page.page, jupyter_lab, _notebook(NIIVUE), name="niivue.ipynb")
    canvas = nb.output(0).locator("canvas")
    canvas.wait_for()
    # the volume arrives and is drawn asynchronously: poll the canvas's pixels
    # (a screenshot, since WebGL may clear its buffer after compositing)
    deadline = time.monotonic() + 30
    while True:
        png = screenshot(canvas, "canvas")
        if _bright_gray_fraction(png) > 0.05 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not lab.is_blank(png)
    # the blob's grey, not only the red crosshair on black
    assert _bright_gray_fraction(png) > 0.05
    assert not nb.errors()
    assert not lab.unexpected_external(lab_page), lab_page.external
    assert all(lab.lab_own(u) for u in lab_page.blocked)


@pytest.mark.slow
def test_run_all_reports_the_failing_cell(jupyter_lab, lab_page):
    nb = _notebook("x = 1", "raise ValueError('boom 42')", "y = 2")
    with pytest.raises(lab.LabError, match=r"(?s)a cell raised.*cell 1: ValueError: boom 42"):
        lab.open_notebook(lab_page.page, jupyter_lab, nb, name="failing.ipynb")
    opened = lab.LabNotebook(lab_page.page, jupyter_lab, "failing.ipynb")
    assert any("boom 42" in text for text in opened.stderr())
    state = opened.progress()
    assert (state["code"], state["done"]) == (3, 2)  # the cell after the error never ran
