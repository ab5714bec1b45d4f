"""Command line of medlab.report (``medlab report ...`` or ``python -m medlab.report ...``).

    run NOTEBOOK [--param k=v ...] --out DIR [--pdf] [--hide-code]   one report
    batch NOTEBOOK --cohort NAME --index DB [--by patient_id] --out DIR   one per group
    verify DIR                                                        rerun and compare
    execute NOTEBOOK_OR_FOLDER... [--out DIR]                         run notebooks headless

Parameter values are Python literals where they parse as one (``n=3``,
``flag=True``, ``ids=['a','b']``), else strings. A key for keyed pseudonyms is
read from ``$MEDLAB_REPORT_KEY`` (never from the command line). Exit status:
0 success, 1 a notebook failed or verify found differences, 2 usage error.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import IdentifierLeakError
from ._runner import NotebookError, run_notebook

KEY_ENV = "MEDLAB_REPORT_KEY"


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--param wants NAME=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name.strip(), value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", "-p", action="append", type=_param, default=[], metavar="K=V",
                   help="a notebook parameter (repeatable)")
    p.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    p.add_argument("--pdf", action="store_true", help="also print the report to PDF (Chromium)")
    p.add_argument("--no-html", action="store_true", help="no HTML report")
    p.add_argument("--hide-code", action="store_true", help="results-only report")
    p.add_argument("--show-phi", action="store_true",
                   help="show patient identifiers (default: pseudonyms)")
    p.add_argument("--mapping", type=Path,
                   help="pseudonym mapping table written by medlab.cohort.export")
    p.add_argument("--timeout", type=float, default=900, help="per-cell timeout in seconds")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medlab report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="execute notebooks headless; non-zero exit on failure")
    ex.add_argument("paths", nargs="+", type=Path)
    ex.add_argument("--timeout", type=float, default=900, help="per-cell timeout in seconds")
    ex.add_argument("--out", "-o", type=Path,
                    help="folder for the executed copies (with outputs); default: none kept")
    r = sub.add_parser("run", help="run a notebook with parameters into a report folder")
    r.add_argument("notebook", type=Path)
    _common(r)
    r.add_argument("--snapshot", type=Path,
                   help="also write a cohort snapshot of the DICOM files read (JSON; outside "
                        "--out, it names files and UIDs)")
    b = sub.add_parser("batch", help="one report run per group of a named cohort")
    b.add_argument("notebook", type=Path)
    b.add_argument("--cohort", required=True, help="name of a cohort saved in the index")
    b.add_argument("--index", type=Path, required=True, help="the cohort index (DuckDB file)")
    b.add_argument("--by", default="patient_id", help="column to group by (default patient_id)")
    b.add_argument("--workers", type=int, default=2, help="local worker processes")
    b.add_argument("--scheduler", help="dask scheduler address (run on that cluster)")
    b.add_argument("--no-progress", action="store_true")
    _common(b)
    v = sub.add_parser("verify", help="rerun a report and compare its recorded results")
    v.add_argument("run_dir", type=Path)
    v.add_argument("--rtol", type=float, default=1e-6)
    v.add_argument("--atol", type=float, default=0.0)
    return parser


def _execute(args: argparse.Namespace) -> int:
    notebooks = []
    for p in args.paths:
        notebooks += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    if not notebooks:
        print(f"no notebooks found in {[str(p) for p in args.paths]}", file=sys.stderr)
        return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for i, path in enumerate(notebooks, 1):
        # one line as each notebook starts and one when it ends: a full run takes minutes
        print(f"[{i}/{len(notebooks)}] {path.name} ...", flush=True)
        start = time.perf_counter()
        try:
            run_notebook(path, timeout_s=args.timeout,
                         output=None if args.out is None else args.out / path.name)
            error = None
        except NotebookError as exc:
            error = str(exc)
            failed += 1
        took = time.perf_counter() - start
        print(f"{'FAIL' if error else 'ok  '} {path.name} ({took:.1f} s)"
              + (f": {error}" if error else ""), flush=True)
    print(f"{len(notebooks) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"parameters": dict(args.param), "out": args.out, "html": not args.no_html,
            "pdf": args.pdf, "hide_code": args.hide_code, "show_phi": args.show_phi,
            "pseudonyms": args.mapping, "key": os.environ.get(KEY_ENV) or None,
            "timeout_s": args.timeout}


def _run(args: argparse.Namespace) -> int:
    from ._run import run

    try:
        res = run(args.notebook, **_options(args), snapshot=args.snapshot)
    except (NotebookError, IdentifierLeakError) as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    print(f"report written to {res.out}")
    for label, path in (("notebook", res.notebook), ("html", res.html), ("pdf", res.pdf)):
        if path is not None:
            print(f"  {label:9s}{path}")
    for name, table in res.results.items():
        print(f"  result   {name}: {len(table)} rows x {table.shape[1]} columns")
    if args.snapshot is not None:
        print(f"  snapshot {args.snapshot}")
    print(f"  run time {res.run_time_s:.1f} s")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from ._batch import batch

    res = batch(args.notebook, cohort=args.cohort, index=args.index, by=args.by,
                workers=args.workers, client=args.scheduler, progress=not args.no_progress,
                **_options(args))
    for row in res.runs.itertuples():
        tail = f": {row.error}" if row.status != "ok" else ""
        print(f"{'ok  ' if row.status == 'ok' else 'FAIL'} {row.group} -> {row.run_dir}{tail}")
    print(f"cohort table: {res.table_csv} ({len(res.table)} rows), {res.table_parquet}")
    n_failed = len(res.failed)
    print(f"{len(res.runs) - n_failed} passed, {n_failed} failed")
    return 1 if n_failed else 0


def _verify(args: argparse.Namespace) -> int:
    from ._verify import verify

    res = verify(args.run_dir, rtol=args.rtol, atol=args.atol,
                 key=os.environ.get(KEY_ENV) or None)
    print(res)
    return 0 if res.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {"execute": _execute, "run": _run, "batch": _batch, "verify": _verify}
    try:
        return commands[args.command](args)
    except IdentifierLeakError as exc:  # a batch's own tables failed the final check
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, NotADirectoryError, ValueError, TypeError, KeyError,
            ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
