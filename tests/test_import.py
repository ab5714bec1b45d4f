"""``import medlab`` stays light: heavy dependencies and subpackages load on first use
(issue 15). The import time itself is printed by benchmarks/bench_import.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

HEAVY = ("SimpleITK", "pydicom", "pandas", "scipy", "nibabel", "matplotlib", "duckdb",
         "highdicom", "PIL", "skimage", "tqdm", "IPython", "ipywidgets", "numba", "llvmlite")
SUBPACKAGES = ("cohort", "data", "diffusion", "filters", "io", "measure", "privacy",
               "registration", "report", "segmentation", "timeseries", "view")


def _fresh(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_medlab_loads_no_heavy_dependency():
    res = _fresh(
        "import json, sys; import medlab as ml; "
        "print(json.dumps({'mods': sorted(sys.modules), 'dir': dir(ml), 'file': ml.__file__}))"
    )
    assert res["file"].startswith(str(REPO))  # this checkout's medlab was imported
    loaded = {m.split(".")[0] for m in res["mods"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert not [m for m in res["mods"] if m.startswith(tuple(f"medlab.{s}" for s in SUBPACKAGES))]
    # the lazy subpackages and functions are still listed (tab completion, dir())
    for name in (*SUBPACKAGES, "Image", "load", "save", "geometry", "errors"):
        assert name in res["dir"], name


def test_lazy_names_resolve_on_first_use():
    res = _fresh(
        "import json, sys; import medlab as ml; from medlab import load; "
        "ok = load is ml.io.load and ml.save is ml.io.save and ml.timeseries.fit_kinetics; "
        "print(json.dumps({'ok': bool(ok), 'pydicom': 'pydicom' in sys.modules}))"
    )
    assert res["ok"]
    assert res["pydicom"]  # the DICOM reader came with the first use of medlab.io


def test_unknown_attribute_names_itself():
    import pytest

    import medlab as ml

    with pytest.raises(AttributeError, match="no_such_thing"):
        ml.no_such_thing  # noqa: B018
