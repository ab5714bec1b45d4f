"""Check the course pack: every solution scores 100 % and every blank exercise 0 %.

Usage (from the repository root; needs nbgrader, e.g. ``pip install -e ".[course]"``)::

    python course/check_labs.py [LAB ...] [--work DIR] [--json FILE] [--jobs N]

For each lab (default: all of ``course/source/``) this works in a scratch copy of
the course folder: it regenerates the student version with ``nbgrader
generate_assignment`` and checks that it equals the committed one in
``course/release/``, then autogrades two submissions with ``nbgrader
autograde``: the instructor's notebook (student ``solution``) and the blank
student notebook (student ``blank``).  It prints one line per lab and exits
with 1 if a solution scores below its maximum, a blank exercise scores above
zero, or a committed student version is out of date.  Use it after editing a
lab (then copy ``WORK/release/<lab>`` into ``course/release/``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COURSE = Path(__file__).resolve().parent
STUDENTS = {"solution": "source", "blank": "release"}


def _strip(nb: dict[str, Any]) -> dict[str, Any]:
    """A notebook without the volatile parts (outputs, execution counts)."""
    for cell in nb["cells"]:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
    return nb


def check(labs: list[str], work: Path) -> dict[str, dict[str, Any]]:
    """Regenerate, compare and autograde ``labs`` in ``work``; return per-lab results."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    work.mkdir(parents=True, exist_ok=True)
    shutil.copy2(COURSE / "nbgrader_config.py", work / "nbgrader_config.py")
    shutil.copytree(COURSE / "source", work / "source", dirs_exist_ok=True)
    # nbgrader runs alembic (its database migrations) as a program: it must be on PATH
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")

    config = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE)).load_config()
    config.CourseDirectory.root = str(work)
    config.Autograde.force = True
    api = NbGraderAPI(config=config)
    db = f"sqlite:///{work / 'gradebook.db'}"
    with Gradebook(db) as gb:
        for student in STUDENTS:
            gb.update_or_create_student(student)

    results: dict[str, dict[str, Any]] = {}
    for lab in labs:
        out: dict[str, Any] = {"problems": []}
        generated = api.generate_assignment(lab)
        if not generated["success"]:
            raise RuntimeError(f"{lab}: nbgrader generate_assignment failed:\n{generated['log']}")
        for nb_path in sorted((work / "release" / lab).glob("*.ipynb")):
            committed = COURSE / "release" / lab / nb_path.name
            if not committed.is_file() or _strip(json.loads(committed.read_text())) != _strip(
                json.loads(nb_path.read_text())
            ):
                out["problems"].append(f"course/release/{lab}/{nb_path.name} is out of date")
        for student, folder in STUDENTS.items():
            dest = work / "submitted" / student / lab
            shutil.copytree(work / folder / lab, dest, dirs_exist_ok=True)
            started = time.perf_counter()
            graded = api.autograde(lab, student, create=False)
            out[f"{student}_seconds"] = round(time.perf_counter() - started, 1)
            if not graded["success"]:
                raise RuntimeError(f"{lab}/{student}: nbgrader autograde failed:\n{graded['log']}")
        with Gradebook(db) as gb:
            for student in STUDENTS:
                sub = gb.find_submission(lab, student)
                out[f"{student}_score"], out["max_score"] = float(sub.score), float(sub.max_score)
        if out["solution_score"] != out["max_score"]:
            out["problems"].append(f"the solution scores {out['solution_score']:g}/{out['max_score']:g}")
        if out["blank_score"] != 0:
            out["problems"].append(f"the blank exercise scores {out['blank_score']:g} (want 0)")
        results[lab] = out
    return results


def check_parallel(labs: list[str], work: Path, jobs: int) -> dict[str, dict[str, Any]]:
    """:func:`check` with ``jobs`` labs at a time, each in its own course copy ``work/<lab>``."""
    if jobs <= 1 or len(labs) <= 1:
        return check(labs, work)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {lab: pool.submit(check, [lab], work / lab) for lab in labs}
        return {lab: future.result()[lab] for lab, future in futures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="labs to check (default: all)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--jobs", type=int, default=1, help="labs checked at the same time")
    args = parser.parse_args(argv)
    labs = args.labs or sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory(prefix="medlab-course-") as tmp:
        results = check_parallel(labs, args.work or Path(tmp), args.jobs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    for lab, r in results.items():
        status = "ok" if not r["problems"] else "FAIL: " + "; ".join(r["problems"])
        print(f"{lab:34s} solution {r['solution_score']:g}/{r['max_score']:g} "
              f"({r['solution_seconds']:.0f} s), blank {r['blank_score']:g} "
              f"({r['blank_seconds']:.0f} s)  {status}")
    return 1 if any(r["problems"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
