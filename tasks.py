#!/usr/bin/env python3
"""medlab's single entry point: set-up, JupyterLab, tests, benchmarks.

Needs only Python >= 3.11 with pip and venv. Usage:

    python3 tasks.py lab              # set up medlab[all], then JupyterLab on notebooks/
    python3 tasks.py lab --execute    # set up, then run every notebook headless
    python3 tasks.py test             # set up medlab[all,test], then the test suite, ruff, mypy
    python3 tasks.py docs             # set up medlab[all,docs], then the site in build/docs/html
    python3 tasks.py bench [--quick]  # set up, then the benchmarks
    python3 tasks.py minimal          # the minimal install (no extras, then [plot]) and its test

The environment lives in ``.venv`` (override with MEDLAB_VENV) and is
reinstalled when pyproject.toml changes or a command needs extras it lacks.
Datasets come from MEDLAB_DATA; when it is unset and ``../shared/data``
exists, that folder is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MEDLAB_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
DOCS_OUT = ROOT / "build" / "docs"
EXECUTED = ROOT / "build" / "executed-notebooks"
"""Executed copies of the curated notebooks (written by tests/test_notebooks.py, read by docs)."""

# JupyterLab settings defaults for the environment medlab sets up (Lab reads
# <prefix>/share/jupyter/lab/settings/overrides.d/*.json): no "Jupyter news?" pop-up and no
# update check, the two things that would reach the internet from the Lab page
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                   "checkForUpdates": False},
}


def _run(*cmd: str | os.PathLike, check: bool = True, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check, env=env).returncode


def write_lab_settings(prefix: Path) -> Path:
    """Write medlab's JupyterLab defaults (:data:`LAB_OVERRIDES`) into an environment.

    A file of its own in ``overrides.d``, so a user's ``overrides.json`` stays theirs; a
    user's own settings still win over these defaults.
    """
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "medlab.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LAB_OVERRIDES, indent=2) + "\n")
    return path


def _installed(stamp: Path, pyproject_sha: str) -> set[str]:
    """Extras installed for this pyproject.toml according to the stamp (empty when stale)."""
    try:
        record = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(record, dict) or record.get("pyproject") != pyproject_sha:
        return set()
    return set(record.get("extras", []))


def setup(extras: tuple[str, ...] = ("all",)) -> None:
    """Create the virtual environment and install medlab with ``extras`` when needed.

    Reinstalls when pyproject.toml changed or an extra is missing; extras that an earlier
    command installed for the same pyproject.toml are kept (``lab`` after ``test`` does not
    reinstall).
    """
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must run on old Pythons to say so
        sys.exit(f"medlab needs Python >= 3.11; this is {sys.version.split()[0]}. "
                 "Run this script with python3.11.")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".medlab-installed"
    sha = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    have = _installed(stamp, sha)
    if not set(extras) <= have:
        want = sorted(have | set(extras))
        _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        _run(PY, "-m", "pip", "install", "--quiet", "-e", f".[{','.join(want)}]")
        stamp.write_text(json.dumps({"pyproject": sha, "extras": want}))
    write_lab_settings(VENV)
    if "MEDLAB_DATA" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
        os.environ["MEDLAB_DATA"] = str(ROOT.parent / "shared" / "data")


def lab(args: list[str]) -> int:
    setup()
    if "--execute" in args:
        # the executed copies are kept for the docs site (python3 tasks.py docs)
        return _run(PY, "-m", "medlab.report", "execute", "notebooks", "--out", EXECUTED,
                    check=False)
    extra = [a for a in args if a != "--execute"]
    # offline first: no extension-manager queries to a package index, no news feed and no
    # update check from the Lab UI (the settings written by setup() keep the pop-up away)
    options = ["--notebook-dir", "notebooks", "--ip", "127.0.0.1",
               "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.append("--allow-root")  # containers and CI machines run as root
    return _run(BIN / "jupyter", "lab", *options, *extra, check=False)


def test(args: list[str]) -> int:
    setup(("all", "test"))
    rc = _run(PY, "-m", "ruff", "check", "medlab", "tests", "benchmarks", "docs", "tasks.py",
              check=False)
    # the type check of the public API (the files listed in pyproject.toml's [tool.mypy])
    rc |= _run(PY, "-m", "mypy", check=False)
    n = "2" if (os.cpu_count() or 1) >= 2 else "1"
    rc_tests = _run(PY, "-m", "pytest", "-n", n, "--dist", "loadfile", *args, check=False)
    return rc_tests or rc


def docs(args: list[str]) -> int:
    """Build the documentation site into build/docs/html, warnings as errors, offline.

    The notebook pages reuse the executed copies the test suite leaves in
    build/executed-notebooks/ and execute a notebook only when its copy is missing or stale.
    """
    setup(("all", "docs"))
    return _run(PY, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d",
                DOCS_OUT / "doctrees", "docs", DOCS_OUT / "html", *args, check=False)


def bench(args: list[str]) -> int:
    setup(("all", "test"))
    rc = 0
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        rc |= _run(PY, script, *args, check=False)
    return rc


MINIMAL_VENV = Path(os.environ.get("MEDLAB_MINIMAL_VENV", ROOT / "build" / "minimal-venv"))
"""The throw-away environment of :func:`minimal` (made anew on every run)."""


def minimal(args: list[str]) -> int:
    """Test the minimal install: the wheel without extras, then with ``[plot]`` (no widgets).

    A fresh virtual environment (:data:`MINIMAL_VENV`) gets ``pip install .`` (a wheel, as
    users get it, with the bundled samples) and pytest, and runs tests/minimal/ once; then
    ``pip install ".[plot]"`` and runs it again. No conftest and no MEDLAB_DATA: the samples
    come from the wheel. Keeps the extras honest: a module that imports an extra's package
    without saying which extra to install fails here.
    """
    if MINIMAL_VENV.exists():
        shutil.rmtree(MINIMAL_VENV)
    venv.EnvBuilder(with_pip=True).create(MINIMAL_VENV)
    py = MINIMAL_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("MEDLAB_DATA", "PYTHONPATH")}
    env["MPLBACKEND"] = "Agg"
    rc = 0
    for extras in ("", "plot"):
        # --no-compile: no .pyc for SciPy, pandas, ... up front (a minute of the install)
        target = f".[{extras}]" if extras else "."
        _run(py, "-m", "pip", "install", "--quiet", "--no-compile", target,
             *([] if extras else ["pytest"]), env=env)
        # -P: import the installed wheel, not the checkout in the working directory
        rc |= _run(py, "-P", "-m", "pytest", "--noconftest", "-p", "no:cacheprovider", "-q",
                   "tests/minimal", *args, env={**env, "MEDLAB_MINIMAL_EXTRAS": extras},
                   check=False)
    return rc


def main() -> int:
    commands = {"lab": lab, "test": test, "docs": docs, "bench": bench, "minimal": minimal}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
