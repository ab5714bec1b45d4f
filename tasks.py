#!/usr/bin/env python3
"""medlab's single entry point: set-up, JupyterLab, tests, benchmarks.

Needs only Python >= 3.11 with pip and venv. Usage:

    python3 tasks.py lab              # set up, then JupyterLab on notebooks/
    python3 tasks.py lab --execute    # set up, then run every notebook headless
    python3 tasks.py test             # set up, then the test suite and ruff
    python3 tasks.py bench [--quick]  # set up, then the benchmarks

The environment lives in ``.venv`` (override with MEDLAB_VENV) and is
reinstalled when pyproject.toml changes. Datasets come from MEDLAB_DATA;
when it is unset and ``../shared/data`` exists, that folder is used.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MEDLAB_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _run(*cmd: str | os.PathLike, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


def setup() -> None:
    """Create the virtual environment and install medlab[all] when needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must run on old Pythons to say so
        sys.exit(f"medlab needs Python >= 3.11; this is {sys.version.split()[0]}. "
                 "Run this script with python3.11.")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".medlab-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        _run(PY, "-m", "pip", "install", "--quiet", "-e", ".[all]")
        stamp.write_text(want)
    if "MEDLAB_DATA" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
        os.environ["MEDLAB_DATA"] = str(ROOT.parent / "shared" / "data")


def lab(args: list[str]) -> int:
    setup()
    if "--execute" in args:
        return _run(PY, "-m", "medlab.report", "execute", "notebooks", check=False)
    extra = [a for a in args if a != "--execute"]
    # offline first: no extension-manager queries to a package index from the Lab UI
    options = ["--notebook-dir", "notebooks", "--ip", "127.0.0.1",
               "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.append("--allow-root")  # containers and CI machines run as root
    return _run(BIN / "jupyter", "lab", *options, *extra, check=False)


def test(args: list[str]) -> int:
    setup()
    rc = _run(PY, "-m", "ruff", "check", "medlab", "tests", "benchmarks", "tasks.py",
              check=False)
    n = "2" if (os.cpu_count() or 1) >= 2 else "1"
    rc_tests = _run(PY, "-m", "pytest", "-n", n, "--dist", "loadfile", *args, check=False)
    return rc_tests or rc


def bench(args: list[str]) -> int:
    setup()
    rc = 0
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        rc |= _run(PY, script, *args, check=False)
    return rc


def main() -> int:
    commands = {"lab": lab, "test": test, "bench": bench}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
