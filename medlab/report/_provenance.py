"""The provenance record of a report run: code, environment, inputs, machine, time.

:func:`collect` builds it as a JSON-ready dict; :func:`to_markdown` renders
the block appended to the executed notebook. :func:`hash_inputs` turns the
files a run read (and the paths among its parameters) into the ``inputs``
section: per dataset (a ``MEDLAB_DATA`` or cache folder) or folder, the file
count and the SHA-256 over its files' relative paths and SHA-256 sums.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import importlib.metadata as md
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import _hashing
from .._version import __version__
from ._track import INPUTS_FILE, WRITTEN_PREFIX

__all__ = ["KEY_PACKAGES", "collect", "hash_inputs", "sha256_file", "to_markdown"]

#: packages listed first in the block (the full list follows)
KEY_PACKAGES = ("numpy", "scipy", "pandas", "pydicom", "SimpleITK", "nibabel", "matplotlib",
                "duckdb", "pyarrow", "dask", "scikit-image", "highdicom", "ipykernel",
                "nbclient", "nbconvert")
_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file (memoised per path, size and modification time)."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_MEMO:
        _HASH_MEMO[key] = _hashing.sha256_file(path)
    return _HASH_MEMO[key]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(folder: str | os.PathLike) -> dict[str, Any] | None:
    """Commit and whether tracked files differ from it, for a folder in a git checkout."""
    folder = Path(folder)
    if not any((p / ".git").exists() for p in (folder, *folder.parents)):
        return None
    commit = _git(["rev-parse", "HEAD"], folder)
    if commit is None:
        return None
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], folder)
    return {"commit": commit, "modified": bool(dirty)}


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def packages() -> dict[str, str]:
    """Every installed distribution and its version (what ``pip list`` shows)."""
    found: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def _data_roots() -> list[tuple[Path, str]]:
    """(folder, label) of the places datasets live: MEDLAB_DATA roots and the cache."""
    roots = [(Path(p), "MEDLAB_DATA") for p in os.environ.get("MEDLAB_DATA", "").split(os.pathsep)
             if p]
    try:
        from ..data import cache_root

        roots.append((cache_root(), "cache"))
    except Exception:  # pragma: no cover - the cache location is optional information
        pass
    return [(r.resolve(), label) for r, label in roots if r.is_dir()]


def _hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.parts[1:-1])


def read_tracked(run_dir: str | os.PathLike) -> list[Path]:
    """Files the kernel opened for reading and never wrote (from the run folder's list)."""
    listing = Path(run_dir) / INPUTS_FILE
    if not listing.is_file():
        return []
    read, written = [], set()
    for line in listing.read_text("utf-8", "surrogateescape").splitlines():
        if line.startswith(WRITTEN_PREFIX):
            written.add(line[len(WRITTEN_PREFIX):])
        elif line:
            read.append(line)
    return [Path(p) for p in dict.fromkeys(read) if p not in written]


def hash_inputs(files: Iterable[str | os.PathLike], *, extra: Iterable[str | os.PathLike] = ()
                ) -> list[dict[str, Any]]:
    """Group and hash input files: one entry per dataset, parameter folder, or the rest.

    Parameters
    ----------
    files : paths
        Files the run read (those in hidden folders such as ``~/.cache`` are
        dropped unless inside a data root).
    extra : paths
        Files or folders named by the parameters; a folder counts with all
        its files.

    Returns
    -------
    list of dict
        ``name`` (dataset name, folder, or ``files``), ``kind`` (``dataset``,
        ``folder`` or ``files``), ``root``, ``n_files``, ``sha256`` (of the
        sorted ``relative path  sha256`` lines) and ``files`` (relative path
        -> sha256).
    """
    roots = _data_roots()
    groups: dict[tuple[str, str], tuple[Path, dict[str, str]]] = {}
    loose: set[Path] = set()
    folders = []

    def in_dataset(path: Path) -> bool:
        for root, _label in roots:
            if path.is_relative_to(root) and len(path.relative_to(root).parts) >= 2:
                name = path.relative_to(root).parts[0]
                _, entries = groups.setdefault(("dataset", name), (root / name, {}))
                entries[path.relative_to(root / name).as_posix()] = sha256_file(path)
                return True
        return False

    for e in extra:
        p = Path(e).expanduser().resolve()
        if p.is_dir():
            inside = [q for q in sorted(p.rglob("*"))
                      if q.is_file() and not _hidden(q.relative_to(p.parent))]
            if any(p.is_relative_to(r) and p != r for r, _ in roots):
                for q in inside:
                    in_dataset(q)
            else:
                folders.append(p)
                groups[("folder", p.as_posix())] = (
                    p, {q.relative_to(p).as_posix(): sha256_file(q) for q in inside})
        elif p.is_file() and not in_dataset(p):
            loose.add(p)
    for f in files:
        p = Path(f).resolve()
        if not p.is_file() or in_dataset(p) or any(p.is_relative_to(d) for d in folders):
            continue
        if not _hidden(p):
            loose.add(p)
    if loose:
        common = Path(os.path.commonpath([str(p.parent) for p in loose]))
        groups[("files", common.as_posix())] = (
            common, {p.relative_to(common).as_posix(): sha256_file(p) for p in loose})
    out = []
    for (kind, name), (root, entries) in sorted(groups.items()):
        listing = "".join(f"{rel}  {h}\n" for rel, h in sorted(entries.items()))
        out.append({"name": name, "kind": kind, "root": str(root), "n_files": len(entries),
                    "sha256": hashlib.sha256(listing.encode()).hexdigest(),
                    "files": dict(sorted(entries.items()))})
    return out


def collect(
    *,
    notebook: Path,
    parameters: Mapping[str, Any],
    inputs: list[dict[str, Any]],
    started: dt.datetime,
    finished: dt.datetime,
    kernel_name: str,
    phi: str,
) -> dict[str, Any]:
    """The provenance record of one run (JSON-ready).

    ``parameters`` and ``inputs`` are recorded as given: pass them already
    de-identified.
    """
    pkgs = packages()
    lower = {k.lower(): v for k, v in pkgs.items()}
    return {
        "format": "medlab-report-provenance/1",
        "notebook": {"name": notebook.name, "sha256": sha256_file(notebook),
                     "git": git_state(notebook.parent)},
        "parameters": dict(parameters),
        "medlab": {"version": __version__,
                   "git": git_state(Path(__file__).resolve().parents[2])},
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "key_packages": {k: lower[k.lower()] for k in KEY_PACKAGES if k.lower() in lower},
        "packages": pkgs,
        "inputs": inputs,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "run_time_s": round((finished - started).total_seconds(), 2),
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count(),
                    "ram_gb": round(r / 2**30, 1) if (r := _ram_bytes()) else None},
        "kernel": kernel_name,
        "identifiers": phi,
    }


def _esc(value: Any) -> str:
    return html.escape(str(value))


def to_markdown(prov: Mapping[str, Any]) -> str:
    """The provenance block (markdown with HTML tables) for the end of a report."""
    m, py = prov["medlab"], prov["python"]
    git = m.get("git") or {}
    commit = (git.get("commit", "")[:12] + (" (modified)" if git.get("modified") else "")
              if git else "not a git checkout")
    rows = [
        ("notebook", f"{prov['notebook']['name']} (sha256 {prov['notebook']['sha256'][:16]}…)"),
        ("medlab", f"{m['version']}, git {commit}"),
        ("Python", f"{py['version']} ({py['implementation']})"),
        ("key packages", ", ".join(f"{k} {v}" for k, v in prov["key_packages"].items())),
        ("date", f"{prov['started']} → {prov['finished']}"),
        ("run time", f"{prov['run_time_s']:.1f} s"),
        ("machine", f"{prov['machine']['platform']}, {prov['machine']['cpu_count']} CPUs, "
                    f"{prov['machine']['ram_gb']} GB RAM"),
        ("identifiers", prov["identifiers"]),
    ]
    snap = prov.get("cohort_snapshot")
    if snap is not None:
        rows.append(("cohort snapshot", snap.get("note") or (
            f"{snap['n_series']} series, {snap['n_files']} files; manifest sha256 "
            f"{snap['sha256'][:16]}… (kept with the data; medlab.cohort.restore fetches and "
            "checks them again)")))
    params = "".join(f"<tr><td><code>{_esc(k)}</code></td><td><code>{_esc(repr(v))}</code></td>"
                     "</tr>" for k, v in prov["parameters"].items()) or \
        "<tr><td colspan='2'>(none: the notebook's defaults)</td></tr>"
    inputs = "".join(
        f"<tr><td>{_esc(i['kind'])}</td><td>{_esc(i['name'])}</td><td>{i['n_files']}</td>"
        f"<td><code>{i['sha256']}</code></td></tr>" for i in prov["inputs"]) or \
        "<tr><td colspan='4'>(no input files recorded)</td></tr>"
    pkgs = ", ".join(f"{_esc(k)}=={_esc(v)}" for k, v in prov["packages"].items())
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return (
        "## Provenance\n\n"
        "<div class=\"medlab-provenance\">\n"
        f"<table>{table}</table>\n"
        "<p><b>Parameters</b></p>\n"
        f"<table><tr><th>name</th><th>value</th></tr>{params}</table>\n"
        "<p><b>Input data</b> (SHA-256 over the sorted <code>relative path  sha256</code> "
        "lines of each dataset's or folder's files)</p>\n"
        "<table><tr><th>kind</th><th>name</th><th>files</th><th>sha256</th></tr>"
        f"{inputs}</table>\n"
        f"<p><b>Installed packages</b> ({len(prov['packages'])})</p>\n"
        f"<p class=\"medlab-packages\">{pkgs}</p>\n"
        "<p><i>Written by medlab.report; the same record is in provenance.json beside this "
        "report.</i></p>\n"
        "</div>\n"
    )
