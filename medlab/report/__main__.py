"""``python -m medlab.report execute NOTEBOOK_OR_FOLDER...``: run notebooks headless.

Exits non-zero when any notebook fails, printing which cell and why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._runner import run_notebooks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medlab.report")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="execute notebooks headless; non-zero exit on failure")
    ex.add_argument("paths", nargs="+", type=Path)
    ex.add_argument("--timeout", type=float, default=900, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    notebooks = []
    for p in args.paths:
        notebooks += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    if not notebooks:
        print(f"no notebooks found in {[str(p) for p in args.paths]}", file=sys.stderr)
        return 2
    results = run_notebooks(notebooks, timeout_s=args.timeout)
    for name, error in results.items():
        print(f"{'FAIL' if error else 'ok  '} {name}" + (f": {error}" if error else ""))
    failed = sum(e is not None for e in results.values())
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
