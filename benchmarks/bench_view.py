"""Slice repaint in JupyterLab: medlab's slice viewer against the classic notebook recipes.

Opens one notebook in a real JupyterLab (tests/lab.py: a local server and
headless Chromium with the network cut off) holding a CT-like int16 volume
(body ellipse of soft tissue with noise, a spine and a lesion that changes
with the slice), shown by

- ``classic``: what a user writes without medlab: ``ipywidgets.interactive``
  around a function that draws ``vol[z]`` with matplotlib ``imshow`` (inline
  backend) on every slider change;
- ``classic-png``: an ``ipywidgets.IntSlider`` observed to re-encode
  ``vol[z]`` (windowed to 8 bits) as a PNG into an ``ipywidgets.Image``;
- ``medlab``: ``ml.view.slices(image)`` (an anywidget; axial slider);
- ``floor``: a slider whose value the kernel echoes into a Label, nothing
  drawn: the round trip every kernel-driven viewer pays.

Each slider is stepped with the keyboard (the arrow key on the focused
slider), one step at a time, 2 warm-up steps then ``--steps`` measured ones;
medlab's range input is stepped by script (its value, then an ``input``
event) when JupyterLab's notebook shortcuts take the arrow keys (said in
the output).
Per step, the time in the page from the key event to the repainted picture:
for the classic recipes until the new ``<img>`` has been decoded (a
MutationObserver on the output); for medlab the viewer's own
``data-repaint-ms`` (slider ``input`` event to the end of the paint that
showed the slice, ``performance.now()`` in the page), with the key event to
that moment observed from outside as a cross-check. A screenshot of each
viewer is saved to ``$MEDLAB_ARTIFACTS`` (default ``test-artifacts/``).

    python benchmarks/bench_view.py            # 300 x 512 x 512, 30 steps
    python benchmarks/bench_view.py --quick    # CI: 40 x 128 x 128, 30 steps

The ``floor`` row is mostly Nagle's algorithm: jupyter_server does not set
TCP_NODELAY on kernel websockets, so on Linux a widget round trip waits about
40 ms for a delayed ACK; ``--nodelay`` sets it (a server config, not stock
Lab) to show the viewers' own costs.

Target (viewer issue): medlab's repaint under 100 ms at 512 x 512 x 300.
Prints the median and 90th percentile per viewer and the ratios; never fails
on a ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the Lab harness (benchmarks only)
os.environ.setdefault("MEDLAB_DATA", str(REPO.parent / "shared" / "data"))

import lab  # noqa: E402

WARMUP = 2
WINDOW = (400.0, 40.0)  # width, level (soft tissue) for every viewer

VOLUME_CELL = """\
import numpy as np

N_SLICES, SIZE = {n_slices}, {size}
rng = np.random.default_rng(0)
yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE - 0.5
body = (yy / 0.40) ** 2 + (xx / 0.46) ** 2 < 1
spine = ((yy - 0.25) / 0.05) ** 2 + (xx / 0.05) ** 2 < 1
vol = np.empty((N_SLICES, SIZE, SIZE), dtype=np.int16)
for z in range(N_SLICES):
    r = 0.02 + 0.06 * np.sin(np.pi * z / N_SLICES)  # a lesion growing and shrinking
    lesion = ((yy + 0.1) ** 2 + (xx - 0.12) ** 2) < r**2
    hu = np.where(body, 40 + rng.normal(0, 15, (SIZE, SIZE)), -1000)
    hu[spine] = 700
    hu[lesion & body] += 80
    vol[z] = hu
print(vol.shape, vol.dtype, f"{{vol.nbytes / 2**20:.0f}} MB")
"""

CLASSIC_CELL = """\
%matplotlib inline
import ipywidgets as W
import matplotlib.pyplot as plt


def show(z):
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(vol[z], cmap="gray", vmin={vmin}, vmax={vmax})
    ax.set_title(f"slice {{z}}")
    ax.axis("off")
    plt.show()


classic = W.interactive(show, z=W.IntSlider(value=N_SLICES // 2, min=0, max=N_SLICES - 1))
classic.add_class("bench-classic")
classic
"""

PNG_CELL = """\
import io

from PIL import Image as PILImage


def png(z):
    px = np.clip((vol[z] - {vmin}) * (255 / ({vmax} - {vmin})), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(px).save(buf, format="PNG")
    return buf.getvalue()


png_slider = W.IntSlider(value=N_SLICES // 2, min=0, max=N_SLICES - 1, description="z")
png_image = W.Image(value=png(N_SLICES // 2), format="png", width=500, height=500)
png_slider.observe(lambda change: setattr(png_image, "value", png(change["new"])), names="value")
png_box = W.VBox([png_slider, png_image])
png_box.add_class("bench-png")
png_box
"""

ECHO_CELL = """\
# the floor: one widget round trip through the kernel, nothing drawn
echo_slider = W.IntSlider(value=N_SLICES // 2, min=0, max=N_SLICES - 1, description="z")
echo_label = W.Label(str(echo_slider.value))
echo_slider.observe(lambda change: setattr(echo_label, "value", str(change["new"])),
                    names="value")
echo_box = W.VBox([echo_slider, echo_label])
echo_box.add_class("bench-echo")
echo_box
"""

MEDLAB_CELL = """\
import medlab as ml
from medlab import geometry as geo

# array axes (slice, row, column) -> superior, posterior, left (LPS mm)
affine = geo.compose_affine((1.0, 0.7, 0.7), (0.0, 0.0, 0.0),
                            [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
image = ml.Image(vol, affine)
image.meta["modality"] = "CT"
viewer = ml.view.slices(image, window={window})
viewer
"""

# arm a measurement for the next key press; the promise resolves with times
_ARM_IMG_JS = """
([selector, timeoutMs]) => {
  const root = document.querySelector(selector);
  const seen = new Set(Array.from(root.querySelectorAll('img')).map((i) => i.src));
  window.__benchT0 = null;
  if (window.__benchKey) { window.removeEventListener('keydown', window.__benchKey, true); }
  window.__benchKey = () => { window.__benchT0 = performance.now(); };
  window.addEventListener('keydown', window.__benchKey, {capture: true, once: true});
  window.__benchStep = new Promise((resolve, reject) => {
    let done = false;
    const obs = new MutationObserver(() => {
      if (done) { return; }
      const img = Array.from(root.querySelectorAll('img')).find((i) => i.src && !seen.has(i.src));
      if (!img) { return; }
      done = true;
      obs.disconnect();
      clearTimeout(timer);
      const finish = () => resolve({t0: window.__benchT0, t1: performance.now()});
      img.decode().then(finish, () => img.complete ? finish() :
                        img.addEventListener('load', finish, {once: true}));
    });
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('no new picture')); },
                             timeoutMs);
    obs.observe(root, {subtree: true, childList: true, attributes: true,
                       attributeFilter: ['src']});
  });
}
"""

# step a range input by script: its value, then an `input` event (the time of which is t0)
_STEP_RANGE_JS = """
([selector, key]) => {
  const slider = document.querySelector(selector);
  if (key === 'ArrowRight') { slider.stepUp(); } else { slider.stepDown(); }
  window.__benchT0 = performance.now();
  slider.dispatchEvent(new Event('input', {bubbles: true}));
  slider.dispatchEvent(new Event('change', {bubbles: true}));
}
"""

_ARM_TEXT_JS = """
([selector, timeoutMs]) => {
  const label = document.querySelector(selector + ' > .widget-label');
  const old = label.textContent;
  window.__benchT0 = null;
  if (window.__benchKey) { window.removeEventListener('keydown', window.__benchKey, true); }
  window.__benchKey = () => { window.__benchT0 = performance.now(); };
  window.addEventListener('keydown', window.__benchKey, {capture: true, once: true});
  window.__benchStep = new Promise((resolve, reject) => {
    const obs = new MutationObserver(() => {
      if (label.textContent === old) { return; }
      obs.disconnect();
      clearTimeout(timer);
      resolve({t0: window.__benchT0, t1: performance.now()});
    });
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('no echo')); },
                             timeoutMs);
    obs.observe(label, {subtree: true, childList: true, characterData: true});
  });
}
"""

_ARM_MEDLAB_JS = """
([selector, timeoutMs]) => {
  const root = document.querySelector(selector);
  delete root.dataset.repaintMs;  // the viewer sets it again after the paint for this input
  window.__benchT0 = null;
  if (window.__benchKey) { window.removeEventListener('keydown', window.__benchKey, true); }
  window.__benchKey = () => { window.__benchT0 = performance.now(); };
  window.addEventListener('keydown', window.__benchKey, {capture: true, once: true});
  window.__benchStep = new Promise((resolve, reject) => {
    const check = () => {
      if (root.dataset.repaintMs === undefined) { return false; }
      obs.disconnect();
      clearTimeout(timer);
      resolve({t0: window.__benchT0, t1: performance.now(), own: +root.dataset.repaintMs});
      return true;
    };
    const obs = new MutationObserver(check);
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('no repaint')); },
                             timeoutMs);
    obs.observe(root, {attributes: true, attributeFilter: ['data-repaint-ms']});
  });
}
"""


def medlab_viewer_available() -> bool:
    """True when ``medlab.view.slices`` exists (the viewer under measurement)."""
    import medlab.view

    return hasattr(medlab.view, "slices")


def bounce_keys(start: int, lo: int, hi: int, count: int) -> list[str]:
    """Arrow keys stepping a slider ``count`` times, turning back at its ends."""
    keys, pos, step = [], start, 1
    for _ in range(count):
        if not lo <= pos + step <= hi:
            step = -step
        pos += step
        keys.append("ArrowRight" if step > 0 else "ArrowLeft")
    return keys


def measure(page: Any, *, arm_js: str, selector: str, step: Callable[[str], Any],
            keys: list[str], timeout_s: float) -> list[dict[str, float]]:
    """Make each slider step (``step(key)``), wait for the repaint; the page's timings per step."""
    results = []
    for key in keys:
        page.evaluate(arm_js, [selector, timeout_s * 1000])
        step(key)
        results.append(page.evaluate("() => window.__benchStep"))
    return results


def keyboard_moves(page: Any, slider: Any) -> bool:
    """Whether an arrow key on the focused range input moves it (Lab's shortcuts may take it).

    The key press moves the slider a step forth (or back at its end) when it works;
    the repaint it triggers is waited for.
    """
    before = int(slider.input_value())
    key = "ArrowLeft" if before >= int(slider.get_attribute("max") or 0) else "ArrowRight"
    slider.press(key)
    page.wait_for_timeout(300)
    if int(slider.input_value()) == before:
        return False
    page.wait_for_timeout(1000)
    return True


def summary(ms: list[float]) -> tuple[float, float]:
    """Median and 90th percentile."""
    a = np.asarray(ms, dtype=float)
    return float(np.median(a)), float(np.percentile(a, 90))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small volume (CI)")
    parser.add_argument("--slices", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--steps", type=int, default=30, help="measured slider steps per viewer")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per step at most")
    parser.add_argument("--nodelay", action="store_true",
                        help="TCP_NODELAY on the server's kernel websockets (not stock Lab)")
    args = parser.parse_args()
    n_slices = args.slices or (40 if args.quick else 300)
    size = args.size or (128 if args.quick else 512)
    vmin, vmax = WINDOW[1] - WINDOW[0] / 2, WINDOW[1] + WINDOW[0] / 2
    with_medlab = medlab_viewer_available()

    import nbformat

    cells = [VOLUME_CELL.format(n_slices=n_slices, size=size),
             CLASSIC_CELL.format(vmin=vmin, vmax=vmax), PNG_CELL.format(vmin=vmin, vmax=vmax),
             ECHO_CELL]
    if with_medlab:
        cells.append(MEDLAB_CELL.format(window=WINDOW))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    print(f"volume {n_slices} x {size} x {size} int16 ({n_slices * size * size * 2 / 2**20:.0f} MB), "
          f"{args.steps} slider steps per viewer after {WARMUP} warm-up steps"
          + (", kernel websockets with TCP_NODELAY" if args.nodelay else ""))

    rows: dict[str, tuple[float, float, int]] = {}
    notes: list[str] = []
    shots = lab.artifacts_dir()
    t_start = time.perf_counter()
    config = lab.KERNEL_WS_NODELAY if args.nodelay else None
    with lab.LabServer(server_config=config) as server, lab.chromium() as chromium, \
            lab.offline_page_in(chromium) as record:
        page = record.page
        page.set_default_timeout(args.timeout * 1000)
        nb = lab.open_notebook(page, server, notebook, name="bench_view.ipynb",
                               timeout_s=max(180.0, args.timeout))
        print(f"JupyterLab up and notebook run in {time.perf_counter() - t_start:.1f} s")
        n_keys = WARMUP + args.steps
        start = n_slices // 2

        # (a) interact + matplotlib
        page.locator(".bench-classic img").first.wait_for()
        handle = page.locator(".bench-classic .noUi-handle")
        steps = measure(page, arm_js=_ARM_IMG_JS, selector=".bench-classic", step=handle.press,
                        keys=bounce_keys(start, 0, n_slices - 1, n_keys), timeout_s=args.timeout)
        ms = [s["t1"] - s["t0"] for s in steps[WARMUP:]]
        rows["classic (interact + matplotlib)"] = (*summary(ms), len(ms))
        lab.save_screenshot(page.locator(".bench-classic"), "bench_view__classic")

        # (a') IntSlider + Image widget, a PNG per change
        page.locator(".bench-png img").first.wait_for()
        handle = page.locator(".bench-png .noUi-handle")
        steps = measure(page, arm_js=_ARM_IMG_JS, selector=".bench-png", step=handle.press,
                        keys=bounce_keys(start, 0, n_slices - 1, n_keys), timeout_s=args.timeout)
        ms = [s["t1"] - s["t0"] for s in steps[WARMUP:]]
        rows["classic-png (Image widget + PNG)"] = (*summary(ms), len(ms))
        lab.save_screenshot(page.locator(".bench-png"), "bench_view__classic_png")

        # the floor: slider -> kernel -> Label, nothing drawn
        handle = page.locator(".bench-echo .noUi-handle")
        steps = measure(page, arm_js=_ARM_TEXT_JS, selector=".bench-echo", step=handle.press,
                        keys=bounce_keys(start, 0, n_slices - 1, n_keys), timeout_s=args.timeout)
        ms = [s["t1"] - s["t0"] for s in steps[WARMUP:]]
        rows["floor: kernel round trip (echo)"] = (*summary(ms), len(ms))

        # (b) medlab
        if with_medlab:
            root = page.locator("div.medlab-slices").first
            root.wait_for()
            page.wait_for_function("() => +document.querySelector('div.medlab-slices')"
                                   ".dataset.repaintCount > 0")
            slider_sel = 'div.medlab-slices input[type=range].medlab-slider[data-plane="axial"]'
            slider = page.locator(slider_sel).first
            if keyboard_moves(page, slider):
                step: Callable[[str], Any] = slider.press
            else:
                notes.append("arrow keys on medlab's slider did nothing in JupyterLab (the "
                              "notebook's ArrowRight/ArrowLeft shortcuts take them); the "
                              "slider was stepped by script (value, then an input event)")

                def step(key: str) -> None:
                    page.evaluate(_STEP_RANGE_JS, [slider_sel, key])

            pos = int(slider.input_value())
            hi = int(slider.get_attribute("max") or n_slices - 1)
            steps = measure(page, arm_js=_ARM_MEDLAB_JS, selector="div.medlab-slices",
                            step=step, keys=bounce_keys(pos, 0, hi, n_keys),
                            timeout_s=args.timeout)
            own = [s["own"] for s in steps[WARMUP:]]
            seen = [s["t1"] - s["t0"] for s in steps[WARMUP:]]
            rows["medlab (ml.view.slices)"] = (*summary(own), len(own))
            rows["medlab, input to repaint seen"] = (*summary(seen), len(seen))
            lab.save_screenshot(root, "bench_view__medlab")
        errors = nb.errors()
        blocked = lab.unexpected_external(record)

    print(f"\n{'viewer':<36} {'median ms':>10} {'p90 ms':>8} {'steps':>6}")
    for name, (med, p90, n) in rows.items():
        print(f"{name:<36} {med:>10.1f} {p90:>8.1f} {n:>6}")
    for note in notes:
        print(f"note: {note}")
    if errors:
        print("\nerrors in the notebook:\n" + "\n".join(errors))
    if blocked:
        print(f"\nrequests that tried to leave the machine (aborted): {blocked}")
    print(f"screenshots in {shots}")

    classic = rows["classic (interact + matplotlib)"][0]
    png = rows["classic-png (Image widget + PNG)"][0]
    print(f"\nratio classic-png/classic (median): {png / classic:.2f}")
    if with_medlab:
        med = rows["medlab (ml.view.slices)"][0]
        print(f"ratio medlab/classic (median): {med / classic:.2f} "
              f"(target: medlab repaint < 100 ms at 512x512x300; here {med:.1f} ms "
              f"at {size}x{size}x{n_slices})")
        print(f"ratio medlab/classic-png (median): {med / png:.2f}")
    else:
        print("ratio medlab/classic: n/a: medlab viewer not available "
              "(medlab.view.slices is missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
