"""Command line of medlab.data (``medlab data ...`` or ``python -m medlab.data ...``).

    list                      every registered dataset: size, files, where it is, licence
    fetch NAME... | --all     download what is missing, check every SHA-256, print the folder
    path NAME [RELPATH]       print the local path of a dataset (or of one of its files)

Datasets are looked for in ``$MEDLAB_DATA`` (local copies, only read), among the
samples bundled with medlab, and in the download cache ``$MEDLAB_CACHE``.
Exit status: 0 success, 1 a dataset could not be fetched, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from medlab.errors import DatasetError

from . import _fetch


def _where(ds: _fetch.Dataset) -> tuple[str, Path | None]:
    """Where ``ds`` is now, without hashing or downloading: (label, folder)."""
    for root in _fetch._data_roots():
        if (root / ds.name).is_dir():
            return _fetch.ENV_DATA, root / ds.name
    if ds.bundled:
        for root in _fetch._bundled_roots():
            if (root / ds.name).is_dir():
                return "bundled", root / ds.name
        return "missing", None
    folder = _fetch._cache_root() / ds.name
    present = 0
    for entry in ds.data_files:
        p = folder / entry.path
        present += p.is_file() and p.stat().st_size == entry.size
    if present == len(ds.data_files):
        return "cache", folder
    if present:
        return f"cache {present}/{len(ds.data_files)}", folder
    return "-", None


def _list(out: object) -> int:
    reg = _fetch.get_registry()
    rows = []
    for name in reg:
        ds = reg[name]
        where, _folder = _where(ds)
        licence = ds.licence if len(ds.licence) <= 40 else ds.licence[:39] + "…"
        rows.append((name, _fetch._human_size(ds.size), str(len(ds.data_files)), where, licence))
    header = ("name", "size", "files", "where", "licence")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}  {r[4]}"
        for r in [header, *rows]
    ]
    total = sum(reg[n].size for n in reg)
    lines.append(
        f"\n{len(rows)} datasets, {_fetch._human_size(total)} in all. where: {_fetch.ENV_DATA} "
        f"(a local copy), bundled (ships with medlab), cache ({_fetch.ENV_CACHE}="
        f"{_fetch._cache_root()}), - (not here: `medlab data fetch NAME`)."
    )
    print("\n".join(lines), file=out)  # type: ignore[call-overload]
    return 0


def _fetch_many(names: list[str], *, verify: bool, progress: bool) -> int:
    reg = _fetch.get_registry()
    try:
        datasets = [reg[n] for n in names]
    except DatasetError as exc:
        print(f"medlab data fetch: {exc}", file=sys.stderr)
        return 2
    failed = []
    for ds in datasets:
        check = "sha256 checked" if verify else "sizes checked"
        try:
            folder = _fetch._fetch_dataset(ds, verify=verify, progress=progress)
        except DatasetError as exc:
            failed.append(ds.name)
            print(f"{ds.name}: FAILED. {exc}", file=sys.stderr)
            continue
        n = len(ds.data_files)
        print(f"{ds.name}: {n} file{'s' if n != 1 else ''}, {_fetch._human_size(ds.size)}, "
              f"{check}: {folder}")
    if failed:
        print(f"{len(failed)} of {len(datasets)} dataset(s) not fetched: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medlab data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered datasets with sizes and where they are")
    f = sub.add_parser("fetch", help="download datasets (checked by SHA-256) and print folders")
    f.add_argument("names", nargs="*", metavar="NAME")
    f.add_argument("--all", action="store_true", help="every registered dataset")
    f.add_argument("--no-verify", action="store_true",
                   help="check sizes only for files already present (faster)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("path", help="print the local folder of a dataset (fetching it if needed)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("relpath", nargs="?", metavar="RELPATH", help="a file or folder inside it")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``medlab data``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(sys.stdout)
    if args.command == "fetch":
        if bool(args.names) == bool(args.all):
            print("medlab data fetch: give dataset names or --all (see `medlab data list`)",
                  file=sys.stderr)
            return 2
        names = list(_fetch.get_registry()) if args.all else args.names
        return _fetch_many(names, verify=not args.no_verify, progress=not args.no_progress)
    from . import path as data_path

    try:
        if args.relpath:
            out = data_path(args.name, args.relpath)
        else:
            out = _fetch._fetch_dataset(_fetch.get_registry()[args.name])
    except DatasetError as exc:
        print(f"medlab data path: {exc}", file=sys.stderr)
        return 1
    print(os.fspath(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
