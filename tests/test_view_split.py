"""ml.view's split (issue 14): the static plots need matplotlib only, the widgets load on first
use and, without ipywidgets/anywidget, say which extra to install when used.

Each case runs in a fresh interpreter where the missing packages are made unimportable
(``sys.modules[name] = None``); tests/minimal/ checks the same with a real minimal install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

WIDGETS = ("slices", "compare", "curves", "landmarks", "gallery", "volume", "SliceViewer",
           "CurveExplorer", "LandmarkPairs", "Gallery", "VolumeView")


def _fresh(code: str, *, block: tuple[str, ...] = ()) -> dict:
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in block)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_widget_packages_static_plots_work_and_widgets_name_the_extra() -> None:
    res = _fresh(
        "import json, numpy as np, medlab as ml\n"
        "from medlab.errors import MissingDependencyError\n"
        "from medlab.view import slices, SliceViewer\n"  # names resolve; nothing raised yet
        "img = ml.Image(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6), np.eye(4))\n"
        "fig = ml.view.plot_slices(img)\n"
        "errors = {}\n"
        f"for name in {WIDGETS!r}:\n"
        "    try:\n"
        "        getattr(ml.view, name)(img)\n"
        "    except MissingDependencyError as exc:\n"
        "        errors[name] = str(exc)\n"
        "print(json.dumps({'fig': type(fig).__name__, 'axes': len(fig.axes), 'errors': errors,\n"
        "    'isinstance': isinstance(img, SliceViewer), 'same': slices is not None,\n"
        "    'mods': sorted(m for m in sys.modules if m.startswith('medlab.view.'))}))\n",
        block=("anywidget", "ipywidgets", "ipyniivue"))
    assert res["fig"] == "Figure" and res["axes"] >= 3
    assert set(res["errors"]) == set(WIDGETS)  # every widget raised, when used
    for name, msg in res["errors"].items():
        assert f"ml.view.{name}" in msg and 'pip install "medlab[view]"' in msg, msg
    assert res["isinstance"] is False
    # no widget module was imported
    assert not {"medlab.view._slices_widget", "medlab.view._gallery", "medlab.view._volume",
                "medlab.view._curves_widget", "medlab.view._landmarks_widget"} & set(res["mods"])


def test_without_matplotlib_plots_name_the_plot_extra() -> None:
    res = _fresh(
        "import json, numpy as np, medlab as ml\n"
        "from medlab.errors import MissingDependencyError\n"
        "img = ml.Image(np.zeros((4, 5, 6), np.float32), np.eye(4))\n"
        "out = {}\n"
        "for name, args in (('plot_slices', (img,)), ('plot_map', (img, img)),\n"
        "                    ('plot_registration', (img, img))):\n"
        "    try:\n"
        "        getattr(ml.view, name)(*args)\n"
        "    except MissingDependencyError as exc:\n"
        "        out[name] = str(exc)\n"
        "print(json.dumps(out))\n",
        block=("matplotlib", "matplotlib.pyplot", "matplotlib.figure"))
    assert set(res) == {"plot_slices", "plot_map", "plot_registration"}
    for name, msg in res.items():
        assert f"ml.view.{name}" in msg and "'matplotlib'" in msg
        assert 'pip install "medlab[plot]"' in msg


def test_widgets_load_on_first_use_and_are_the_real_ones() -> None:
    res = _fresh(
        "import json, medlab.view as v\n"
        "before = 'anywidget' in sys.modules or 'medlab.view._slices_widget' in sys.modules\n"
        "from medlab.view._slices_widget import SliceViewer, slices\n"
        "from medlab.view._gallery import Gallery\n"
        "print(json.dumps({'before': before, 'slices': v.slices is slices,\n"
        "    'viewer': v.SliceViewer is SliceViewer, 'gallery': v.Gallery is Gallery,\n"
        "    'dir': sorted(set(v.__all__) - set(dir(v)))}))\n")
    assert res["before"] is False  # import medlab.view imports no widget package
    assert res["slices"] and res["viewer"] and res["gallery"]
    assert res["dir"] == []  # every public name is listed for tab completion
