"""Registry of public sample datasets and the fetcher behind :mod:`medlab.data`.

Where a dataset is looked for, in order:

1. ``$MEDLAB_DATA/<name>`` -- ``MEDLAB_DATA`` may list several roots separated
   by :data:`os.pathsep`; the first root holding ``<name>/`` is used.  Such a
   folder is only read, never written to (it may be read-only); when it lacks
   files or a file does not match its registered SHA-256 a
   :class:`~medlab.errors.DatasetError` says which.
2. For a sample bundled with medlab (every file a ``bundled`` recipe): the
   repository's ``data/<name>`` beside the package (a source checkout or an
   editable install), else ``medlab/data/samples/<name>`` inside an installed
   wheel.  Read only, like a ``MEDLAB_DATA`` copy; never downloaded.
3. The download cache: ``$MEDLAB_CACHE/<name>``, by default
   ``pooch.os_cache("medlab")/<name>``.  Files missing there, or not matching
   their SHA-256, are (re-)downloaded from the dataset's public origin.

Downloads are pooch's: a :class:`pooch.Pooch` per dataset folder whose registry
holds the files to get now, pooch's HTTP downloader, its retries (an interrupted
transfer, a server error or a wrong checksum is tried again, with waits of 1 s,
2 s, ...) and its check that puts a file in place only once its SHA-256 is
right, so an interrupted download never leaves a file that looks complete.
Archives are unpacked by pooch's ``Unzip``/``Untar`` processors.  What this
module adds: the registry, the search order above, a memo of verified hashes
(per ``(path, size, mtime_ns)``, in memory and in a small JSON file in the
cache folder, so checking an unchanged folder again is cheap, where pooch would
hash every file on every call), one progress bar per dataset, zstandard
decompression, members of wheels (downloaded with ``pip download``), fast
failure when there is no network, and messages that name the dataset and the fix.

Setting ``MEDLAB_OFFLINE=1`` forbids downloads (the error then says how to
point ``MEDLAB_DATA`` at a local copy).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.parse
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from medlab._hashing import sha256_file as _sha256_file
from medlab._hashing import sha256_stream
from medlab._optional import import_optional
from medlab.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Dataset",
    "FileEntry",
    "Registry",
    "datasets",
    "fetch",
    "files",
    "get_registry",
    "path",
]

#: Environment variable listing local dataset roots (``os.pathsep``-separated).
ENV_DATA = "MEDLAB_DATA"
#: Environment variable naming the download cache folder.
ENV_CACHE = "MEDLAB_CACHE"
#: Environment variable that, when set to a true value, forbids downloads.
ENV_OFFLINE = "MEDLAB_OFFLINE"

RECIPE_KINDS = ("url", "wheel", "archive", "manual", "local-note", "bundled")

_REGISTRY_PATH = Path(__file__).with_name("_registry.json")
_MEMO_NAME = "verified-hashes.json"
_GITHUB_RAW = "https://raw.githubusercontent.com"
_CHUNK = 1 << 20
_TIMEOUT = 60.0
_TMP_PREFIX = ".medlab-"
_TMP_SUFFIX = ".part"
#: Further attempts after an interrupted transfer, a server error or a wrong checksum
#: (pooch's ``retry_if_failed``; pooch waits 1 s, 2 s, ... between attempts).
_RETRIES = 2
#: HTTP statuses worth another attempt; any other error status fails at once.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

#: Signature of the function that downloads a wheel: ``(package, version,
#: dest_dir) -> path of the .whl`` (tests replace it to avoid the network).
WheelDownloader = Callable[[str, str, Path], Path]


# ---------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class FileEntry:
    """One registered file of a dataset.

    Attributes
    ----------
    path : str
        Path relative to the dataset folder, ``/``-separated.
    size : int
        Size in bytes.
    sha256 : str
        Hex SHA-256 of the file as stored locally (after any decompression).
    recipe : Mapping
        How to get the file: ``{"kind": "url", "url": ..., ["decompress": "zst"]}``,
        ``{"kind": "wheel", "package": ..., "version": ..., "member": ...}``,
        ``{"kind": "archive", "url": ..., "member": ..., ["archive_sha256": ...]}``
        (a member of a zip or tar archive),
        ``{"kind": "manual", "note": ...}``, ``{"kind": "local-note"}`` or
        ``{"kind": "bundled", "path": ...}`` (a sample shipped with medlab);
        ``"rename"`` (``{"from": upstream_name, "to": local_name}``) is present
        where the local file name differs from the upstream one.
    """

    path: str
    size: int
    sha256: str
    recipe: Mapping[str, Any]

    @property
    def kind(self) -> str:
        """The recipe kind (one of :data:`RECIPE_KINDS`)."""
        return str(self.recipe["kind"])

    @property
    def is_note(self) -> bool:
        """True for provenance notes that exist only in local copies."""
        return self.kind == "local-note"


@dataclass(frozen=True)
class Dataset:
    """A registered dataset.

    Attributes
    ----------
    name : str
        Folder name, e.g. ``"ibsi1-phantom"``.
    description : str
        One-line description.
    use : str
        What the dataset is good for (one line).
    licence : str
        Licence statement.
    origin : str
        Human-readable upstream origin.
    files : Mapping[str, FileEntry]
        All registered files by relative path, notes included.
    """

    name: str
    description: str
    use: str
    licence: str
    origin: str
    files: Mapping[str, FileEntry]

    @property
    def data_files(self) -> list[FileEntry]:
        """The files a complete copy must contain (notes excluded), sorted."""
        return [f for f in self.files.values() if not f.is_note]

    @property
    def size(self) -> int:
        """Total size in bytes of :attr:`data_files`."""
        return sum(f.size for f in self.data_files)

    @property
    def bundled(self) -> bool:
        """True for a sample shipped with medlab (its files are never downloaded)."""
        return bool(self.data_files) and all(f.kind == "bundled" for f in self.data_files)

    def hint(self) -> str:
        """Sentence naming origin and licence and how to use a local copy."""
        return (
            f"Dataset '{self.name}' comes from {self.origin} (licence: {self.licence}). "
            f"If you have a copy, set {ENV_DATA} to a folder containing '{self.name}/' "
            f"(several folders may be separated by {os.pathsep!r})."
        )


class Registry(Mapping[str, Dataset]):
    """Read-only mapping of dataset name to :class:`Dataset`.

    Parameters
    ----------
    datasets : Iterable[Dataset]
        The datasets.

    Notes
    -----
    Looking up an unknown name raises :class:`~medlab.errors.DatasetError`
    (a ``FileNotFoundError``, not a ``KeyError``) listing the known names,
    closest match first; :meth:`get` returns the default instead.
    """

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self._datasets = {d.name: d for d in datasets}

    def __getitem__(self, name: str) -> Dataset:
        try:
            return self._datasets[name]
        except (KeyError, TypeError):
            pass
        known = sorted(
            self._datasets,
            key=lambda n: (-difflib.SequenceMatcher(None, str(name), n).ratio(), n),
        )
        raise DatasetError(
            f"Unknown dataset {name!r}. Known datasets (closest first): {', '.join(known)}."
        )

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """Return the dataset called ``name``, or ``default`` if unknown."""
        return self._datasets.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._datasets))

    def __len__(self) -> int:
        return len(self._datasets)

    def __contains__(self, name: object) -> bool:
        return name in self._datasets

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Registry:
        """Build a registry from the (compact) JSON structure.

        Parameters
        ----------
        data : Mapping
            ``{"datasets": {name: {"description", "use", "licence", "origin",
            "sources", "files": [[path, size, sha256, recipe], ...]}}}``.  A
            recipe is ``"note"``, a source key (upstream path = source base +
            local path), a dict with ``"src"`` (and optional ``"path"``,
            ``"decompress"``, ``"note"``, ``"inferred"``), or an already
            expanded recipe dict with a ``"kind"``.

        Returns
        -------
        Registry
        """
        out = []
        for name, ds in data["datasets"].items():
            sources = ds.get("sources", {})
            entries = {}
            for rel, size, sha, spec in ds["files"]:
                rel = str(PurePosixPath(rel))
                entries[rel] = FileEntry(
                    rel, int(size), str(sha).lower(), _expand(spec, sources, rel)
                )
            out.append(
                Dataset(
                    name=name,
                    description=ds.get("description", ""),
                    use=ds.get("use", ""),
                    licence=ds.get("licence", "unknown"),
                    origin=ds.get("origin", "unknown"),
                    files=entries,
                )
            )
        return cls(out)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Registry:
        """Load a registry JSON file (default: the one shipped with medlab)."""
        with open(_REGISTRY_PATH if path is None else path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


def _expand(spec: Any, sources: Mapping[str, Any], rel: str) -> dict[str, Any]:
    """Turn a compact recipe into a full recipe dict."""
    if spec == "note":
        return {"kind": "local-note"}
    if isinstance(spec, str):
        spec = {"src": spec}
    spec = dict(spec)
    if "kind" in spec:
        if spec["kind"] not in RECIPE_KINDS:
            raise ValueError(f"{rel}: unknown recipe kind {spec['kind']!r}")
        return spec
    src = sources[spec.pop("src")]
    upstream = src.get("base", "") + spec.pop("path", rel)
    if src["kind"] == "github":
        url = f"{_GITHUB_RAW}/{src['repo']}/{src['commit']}/{urllib.parse.quote(upstream)}"
        recipe = {"kind": "url", "url": url, "repo": src["repo"], "commit": src["commit"]}
    elif src["kind"] == "url":
        # base is a URL prefix (a mirror, or a local test server)
        recipe = {"kind": "url", "url": urllib.parse.quote(upstream, safe=":/?&=%")}
    elif src["kind"] == "bundled":
        return {"kind": "bundled", "path": rel}
    elif src["kind"] == "wheel":
        recipe = {
            "kind": "wheel",
            "package": src["package"],
            "version": src["version"],
            "member": upstream,
        }
    elif src["kind"] == "archive":
        # a zip or tar archive at a URL; base is the members' folder inside it
        recipe = {"kind": "archive", "url": src["url"], "member": upstream}
        if src.get("sha256"):
            recipe["archive_sha256"] = str(src["sha256"]).lower()
    else:
        raise ValueError(f"{rel}: unknown source kind {src['kind']!r}")
    recipe["path"] = upstream
    recipe.update(spec)
    up_name = PurePosixPath(upstream).name
    if recipe.get("decompress") and up_name.endswith("." + recipe["decompress"]):
        up_name = up_name[: -len(recipe["decompress"]) - 1]
    if up_name != PurePosixPath(rel).name:
        recipe["rename"] = {"from": up_name, "to": PurePosixPath(rel).name}
    return recipe


_REGISTRY: Registry | None = None
_REGISTRY_LOCK = threading.Lock()


def get_registry() -> Registry:
    """Return the registry shipped with medlab (loaded once)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = Registry.load()
        return _REGISTRY


# ---------------------------------------------------------------------------
# locations


def _data_roots() -> list[Path]:
    roots = []
    for part in os.environ.get(ENV_DATA, "").split(os.pathsep):
        if not part.strip():
            continue
        root = Path(part.strip()).expanduser()
        if not root.is_dir():
            warnings.warn(f"{ENV_DATA} entry {str(root)!r} is not a folder; ignored", stacklevel=4)
            continue
        roots.append(root)
    return roots


def _cache_root() -> Path:
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    import pooch

    return Path(pooch.os_cache("medlab")).absolute()


def _bundled_roots() -> list[Path]:
    """Folders that may hold the bundled samples, in the order they are tried."""
    package = Path(__file__).resolve().parent  # medlab/data
    checkout = package.parents[1]
    roots = []
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        roots.append(checkout / "data")  # a source checkout or an editable install
    if (package / "samples").is_dir():
        roots.append(package / "samples")  # an installed wheel
    return roots


def _human_size(n: int) -> str:
    """A byte count for people: ``'16.7 MB'`` (10**6 bytes), ``'812 kB'``."""
    if n >= 10**6:
        return f"{n / 1e6:.1f} MB"
    return f"{max(n, 1) / 1e3:.0f} kB"


def _unavailable(ds: Dataset, why: str, missing: list[FileEntry] | None = None) -> DatasetError:
    """The short error for a dataset that is neither local nor downloadable now."""
    entries = ds.data_files if missing is None else missing
    part = "" if missing is None or len(missing) == len(ds.data_files) else (
        f", {len(missing)} of its files missing")
    return DatasetError(
        f"Dataset '{ds.name}' ({_human_size(ds.size)}{part}) is not on this computer and cannot "
        f"be downloaded now ({why}). Fetch it once with a network: `medlab data fetch {ds.name}` "
        f"({_human_size(sum(e.size for e in entries))} into {ENV_CACHE}={_cache_root()}), or set "
        f"{ENV_DATA} to a folder that contains '{ds.name}/'."
    )


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


# ---------------------------------------------------------------------------
# hashing with a memo (pooch hashes every file on every call; a dataset of 700 files
# must be cheap to check again)


class _HashMemo:
    """Remember ``path -> (size, mtime_ns, sha256)``, in memory and on disk.

    The on-disk copy lives in the cache root (never in a data folder).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[Path, dict[str, list[Any]]] = {}
        self._dirty: set[Path] = set()

    def _table(self, memo_file: Path) -> dict[str, list[Any]]:
        table = self._tables.get(memo_file)
        if table is None:
            table = {}
            with contextlib.suppress(OSError, ValueError):
                raw = json.loads(memo_file.read_text(encoding="utf-8"))
                if isinstance(raw, dict):
                    table = {k: v for k, v in raw.items() if isinstance(v, list) and len(v) == 3}
            self._tables[memo_file] = table
        return table

    def sha256(self, path: Path, memo_file: Path) -> str:
        """Return the SHA-256 of ``path``, hashing only if it changed."""
        key = os.path.abspath(path)
        st = os.stat(path)
        with self._lock:
            hit = self._table(memo_file).get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        sha = _sha256_file(path)
        self.record(path, sha, memo_file, stat=st)
        return sha

    def record(
        self, path: Path, sha: str, memo_file: Path, *, stat: os.stat_result | None = None
    ) -> None:
        """Remember that ``path`` (as it is now) has hash ``sha``."""
        st = os.stat(path) if stat is None else stat
        with self._lock:
            self._table(memo_file)[os.path.abspath(path)] = [st.st_size, st.st_mtime_ns, sha]
            self._dirty.add(memo_file)

    def save(self, memo_file: Path) -> None:
        """Write the table for ``memo_file`` if it changed (atomically)."""
        with self._lock:
            if memo_file not in self._dirty:
                return
            table = {k: v for k, v in self._table(memo_file).items() if os.path.exists(k)}
            self._tables[memo_file] = table
            self._dirty.discard(memo_file)
            text = json.dumps(table, separators=(",", ":"), sort_keys=True)
        try:
            memo_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=memo_file.parent, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, memo_file)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
            warnings.warn(
                f"cannot save the hash memo {memo_file} ({exc}); later checks will re-hash",
                RuntimeWarning,
                stacklevel=3,
            )


_MEMO = _HashMemo()


# ---------------------------------------------------------------------------
# public API


def fetch(name: str, *, verify: bool = True, progress: bool = True) -> Path:
    """Return the local folder of dataset ``name``, downloading it if needed.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"ibsi1-phantom"``; see :func:`datasets`.
    verify : bool, default True
        Check the SHA-256 of every file (memoised per path, size and mtime,
        so repeated checks of an unchanged folder are cheap).  With False only
        presence and sizes are checked.
    progress : bool, default True
        Show a tqdm progress bar while downloading.

    Returns
    -------
    pathlib.Path
        ``$MEDLAB_DATA/<name>`` if a root of ``MEDLAB_DATA`` holds the
        dataset, else the cache folder ``$MEDLAB_CACHE/<name>`` (default
        ``pooch.os_cache("medlab")/<name>``).

    Raises
    ------
    medlab.errors.DatasetError
        Unknown name (the message lists the known names, closest first); a
        ``MEDLAB_DATA`` copy lacks files or has a file whose hash differs
        (names file, expected and actual hash; the copy is never modified);
        a download failed, was interrupted or gave the wrong bytes (nothing
        partial is kept); or the network is unreachable (the message names
        the origin and licence and says how to set ``MEDLAB_DATA``).
    medlab.errors.MissingDependencyError
        A file must be decompressed with the missing ``zstandard`` package.

    Examples
    --------
    >>> import medlab.data as mldata
    >>> folder = mldata.fetch("ibsi1-phantom")  # doctest: +SKIP
    >>> sorted(p.name for p in folder.rglob("*.nii.gz"))  # doctest: +SKIP
    ['mask.nii.gz', 'phantom.nii.gz']
    """
    return _fetch_dataset(get_registry()[name], verify=verify, progress=progress)


def files(name: str) -> list[str]:
    """Return the relative paths of the files of dataset ``name``.

    Parameters
    ----------
    name : str
        Dataset name.

    Returns
    -------
    list of str
        Sorted ``/``-separated paths relative to :func:`fetch`'s folder.
        Provenance notes (``SOURCE.txt``) that exist only in local copies are
        not listed.

    Raises
    ------
    medlab.errors.DatasetError
        Unknown dataset name.
    """
    return sorted(f.path for f in get_registry()[name].data_files)


def path(
    name: str, relpath: str | os.PathLike[str], *, verify: bool = True, progress: bool = True
) -> Path:
    """Return the local path of one file (or sub-folder) of a dataset.

    Equivalent to ``fetch(name) / relpath`` after checking that ``relpath``
    is registered.

    Parameters
    ----------
    name : str
        Dataset name.
    relpath : str or os.PathLike
        A path from :func:`files`, or a folder containing such paths
        (e.g. ``"dicom/STS_002/CT/image"``).
    verify, progress : bool
        Passed to :func:`fetch`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    medlab.errors.DatasetError
        Unknown dataset, ``relpath`` not in the registry (the message
        suggests close matches), or any :func:`fetch` error.
    """
    ds = get_registry()[name]
    rel = _normalise_relpath(relpath)
    entry = ds.files.get(rel)
    is_folder = entry is None and any(p.startswith(rel + "/") for p in ds.files)
    if entry is None and not is_folder:
        close = difflib.get_close_matches(rel, list(ds.files), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise DatasetError(
            f"{str(relpath)!r} is not a file of dataset '{name}'.{hint} "
            f"See medlab.data.files({name!r}) for the {len(ds.data_files)} registered files."
        )
    folder = _fetch_dataset(ds, verify=verify, progress=progress)
    out = folder / rel
    if entry is not None and entry.is_note and not out.exists():
        raise DatasetError(
            f"'{rel}' of dataset '{name}' is a provenance note that exists only in local "
            f"copies (set {ENV_DATA}); it is not downloadable. {ds.hint()}"
        )
    return out


def datasets() -> pd.DataFrame:
    """Return a table of the registered datasets.

    Returns
    -------
    pandas.DataFrame
        One row per dataset, columns ``name``, ``description``, ``licence``,
        ``origin``, ``n_files`` (files a complete copy holds, notes excluded),
        ``size_mb`` (their total size in MB, 10**6 bytes) and ``bundled``
        (True for the small samples shipped with medlab, which need no
        download).
    """
    import pandas as pd

    reg = get_registry()
    rows = [
        {
            "name": ds.name,
            "description": ds.description,
            "licence": ds.licence,
            "origin": ds.origin,
            "n_files": len(ds.data_files),
            "size_mb": round(ds.size / 1e6, 3),
            "bundled": ds.bundled,
        }
        for ds in (reg[n] for n in reg)
    ]
    columns = ["name", "description", "licence", "origin", "n_files", "size_mb", "bundled"]
    return pd.DataFrame(rows, columns=columns)


def _normalise_relpath(relpath: str | os.PathLike[str]) -> str:
    text = os.fspath(relpath).replace("\\", "/")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if not parts or parts[0] == "/" or ".." in parts:
        raise DatasetError(f"{text!r} is not a relative path inside a dataset")
    return "/".join(parts)


# ---------------------------------------------------------------------------
# fetching


def _fetch_dataset(
    ds: Dataset,
    *,
    verify: bool = True,
    progress: bool = True,
    data_roots: list[Path] | None = None,
    cache_root: Path | None = None,
    wheel_downloader: WheelDownloader | None = None,
) -> Path:
    """Implementation of :func:`fetch` with injectable locations."""
    roots = _data_roots() if data_roots is None else data_roots
    cache = _cache_root() if cache_root is None else Path(cache_root)
    memo_file = cache / _MEMO_NAME
    try:
        for root in roots:
            folder = Path(root) / ds.name
            if folder.is_dir():
                _check_local_copy(ds, folder, verify=verify, memo_file=memo_file)
                return folder
        if ds.bundled:
            for root in _bundled_roots():
                folder = root / ds.name
                if folder.is_dir():
                    _check_local_copy(ds, folder, verify=verify, memo_file=memo_file,
                                      bundled=True)
                    return folder
            raise DatasetError(
                f"Dataset '{ds.name}' is a sample bundled with medlab (data/{ds.name}/ in the "
                f"source repository, medlab/data/samples/{ds.name}/ in the wheel), but neither "
                f"folder exists here. Reinstall medlab, or set {ENV_DATA} to a folder that "
                f"contains '{ds.name}/' (such as a clone's data/)."
            )
        folder = cache / ds.name
        missing = _stale_cache_files(ds, folder, verify=verify, memo_file=memo_file)
        if missing:
            _download(
                ds,
                missing,
                folder,
                memo_file=memo_file,
                progress=progress,
                wheel_downloader=wheel_downloader,
            )
        return folder
    finally:
        _MEMO.save(memo_file)


def _check_local_copy(
    ds: Dataset, folder: Path, *, verify: bool, memo_file: Path, bundled: bool = False
) -> None:
    """Raise if a MEDLAB_DATA (or bundled) copy is incomplete or differs (never writes to it)."""
    problems = []
    for entry in ds.data_files:
        p = folder / entry.path
        try:
            size = p.stat().st_size
        except OSError:
            problems.append(f"  missing: {entry.path}")
            continue
        if verify:
            try:
                actual = _MEMO.sha256(p, memo_file)
            except OSError as exc:
                problems.append(f"  unreadable: {entry.path} ({exc})")
                continue
            if actual != entry.sha256:
                problems.append(f"  {entry.path}: expected sha256 {entry.sha256}, got {actual}")
        elif size != entry.size:
            problems.append(f"  {entry.path}: expected {entry.size} bytes, got {size}")
    if problems:
        shown = problems[:20] + (
            [f"  ... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        if bundled:
            where, fix = "bundled with medlab", (
                f"restore it (`git checkout -- data/{ds.name}` in a clone, or reinstall medlab); "
                f"after changing data/make_samples.py, re-register with "
                f"`python -m medlab.data._make_registry`."
            )
        else:
            where, fix = f"found through {ENV_DATA}", (
                f"medlab does not modify {ENV_DATA} folders: restore the files from "
                f"{ds.origin}, or remove '{ds.name}/' from that root so the download cache is used."
            )
        raise DatasetError(
            f"The copy of dataset '{ds.name}' at {folder} ({where}) does not "
            f"match the registry ({len(problems)} problem(s)):\n"
            + "\n".join(shown)
            + f"\n{fix}"
        )


def _stale_cache_files(
    ds: Dataset, folder: Path, *, verify: bool, memo_file: Path
) -> list[FileEntry]:
    """Return the data files the cache lacks; delete cached files that are wrong."""
    stale = []
    for entry in ds.data_files:
        p = folder / entry.path
        try:
            size = p.stat().st_size
        except OSError:
            stale.append(entry)
            continue
        try:
            ok = size == entry.size and (not verify or _MEMO.sha256(p, memo_file) == entry.sha256)
        except OSError:
            ok = False
        if not ok:
            with contextlib.suppress(OSError):
                p.unlink()
            stale.append(entry)
    return stale


def _download(
    ds: Dataset,
    entries: list[FileEntry],
    folder: Path,
    *,
    memo_file: Path,
    progress: bool,
    wheel_downloader: WheelDownloader | None,
) -> None:
    """Get ``entries`` into ``folder``: url recipes with pooch, archive members unpacked."""
    manual = [e for e in entries if e.kind == "manual"]
    if manual:
        lines = "\n".join(f"  {e.path}: {e.recipe.get('note', '')}" for e in manual)
        raise DatasetError(
            f"Dataset '{ds.name}' has files that cannot be downloaded automatically:\n{lines}\n"
            f"Put them at {folder}/<path>, or use a complete copy. {ds.hint()}"
        )
    if _offline():
        raise _unavailable(ds, f"downloads are disabled: {ENV_OFFLINE} is set", entries)
    if any(e.recipe.get("decompress") for e in entries):
        _require_zstandard(ds)
    archives: dict[tuple[str, ...], list[FileEntry]] = {}
    for entry in entries:
        if entry.kind in ("wheel", "archive"):
            key = (str(entry.recipe.get("package")), str(entry.recipe.get("version")),
                   str(entry.recipe.get("url")))
            archives.setdefault(key, []).append(entry)
        elif entry.kind != "url":
            raise DatasetError(f"{ds.name}/{entry.path}: cannot fetch recipe {entry.recipe}")

    new_folder = not folder.exists()
    bar = _LazyBar(total=sum(e.size for e in entries), unit="B", unit_scale=True,
                   unit_divisor=1024, desc=f"medlab {ds.name}", disable=not progress, leave=False)
    try:
        with _quiet_pooch(), bar:
            folder.mkdir(parents=True, exist_ok=True)
            _download_urls(ds, [e for e in entries if e.kind == "url"], folder,
                           memo_file=memo_file, bar=bar)
            for group in archives.values():
                _fetch_members(ds, group, folder, memo_file=memo_file, bar=bar,
                               wheel_downloader=wheel_downloader)
    except BaseException:
        # remove the empty sub-folders a failed download left (never files)
        for dirpath, _dirs, _files in os.walk(folder, topdown=False):
            if new_folder or Path(dirpath) != folder:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
        raise


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's per-file "Downloading ..." log lines (the tqdm bar says it once)."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class _LazyBar:
    """A tqdm bar that appears with the first bytes (no empty bar when offline)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._bar: Any = None

    def update(self, n: int) -> None:
        if n and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(**self._options)
        if n:
            self._bar.update(n)

    def __enter__(self) -> _LazyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


class _FileProgress:
    """The progress object pooch's HTTPDownloader drives for one file, fed to the dataset's bar.

    pooch sets ``total`` (Content-Length), calls ``update(chunk_size)`` per chunk, then
    ``reset()``, ``update(total)`` and ``close()``; the bar gets the file's bytes once
    (capped at ``total``), and :meth:`undo` takes a failed attempt back before a retry.
    """

    def __init__(self, bar: _LazyBar | None) -> None:
        self.bar, self.total, self.n = bar, None, 0

    def update(self, k: int) -> None:
        new = min(self.n + k, self.total) if self.total else self.n + k
        if self.bar is not None:
            self.bar.update(new - self.n)
        self.n = new

    def reset(self) -> None:
        pass

    close = reset

    def undo(self) -> None:
        self.update(-self.n)
        self.total = None


class _Downloader:
    """pooch's HTTPDownloader for one file, failing at once where retrying cannot help.

    A host that does not answer gives the offline error, and an HTTP status other than
    :data:`_RETRY_STATUS` (404, 403, ...) its own error, both without pooch's retries
    (which still cover server errors, interrupted transfers and wrong checksums).
    """

    def __init__(self, ds: Dataset, what: str, bar: _LazyBar | None) -> None:
        self.ds, self.what, self.progress = ds, what, _FileProgress(bar)
        self.received, self.expected = 0, None

    def __call__(self, url: str, output_file: str, store: Any) -> None:
        import pooch
        import requests

        self.progress.undo()
        http = pooch.HTTPDownloader(
            progressbar=self.progress, chunk_size=_CHUNK, timeout=_TIMEOUT,
            headers={"User-Agent": f"medlab-data pooch/{pooch.__version__}"},
        )
        try:
            http(url, output_file, store)
        except requests.exceptions.HTTPError as exc:
            r = exc.response
            if r is None or r.status_code in _RETRY_STATUS:
                raise
            raise DatasetError(f"Cannot download {self.what} from {url}: HTTP {r.status_code} "
                               f"{r.reason}. {self.ds.hint()}") from exc
        except requests.exceptions.ConnectionError as exc:
            if self.progress.total is None:  # no answer at all
                raise _unavailable(self.ds, f"no network: {_reason(exc)}") from exc
            raise
        finally:
            self.expected = self.progress.total
            with contextlib.suppress(OSError):
                self.received = os.path.getsize(output_file)


def _reason(exc: BaseException) -> str:
    """The root cause of a requests error, short: ``'Connection refused'``."""
    seen: list[BaseException] = []
    cur: Any = exc
    while isinstance(cur, BaseException) and cur not in seen:
        seen.append(cur)
        reason = getattr(cur, "reason", None)  # urllib3's MaxRetryError
        cur = reason if isinstance(reason, BaseException) else cur.__cause__ or cur.__context__
    root = seen[-1]
    text = root.strerror if isinstance(root, OSError) and root.strerror else str(root)
    return " ".join(str(text).split())[:160]


def _pooch_fetch(
    ds: Dataset,
    folder: Path,
    key: str,
    url: str,
    downloader: _Downloader,
    *,
    sha256: str | None,
    size: int | None = None,
    processor: Callable[[str, str, Any], Any] | None = None,
) -> None:
    """Download ``url`` to ``folder/key`` with pooch, its errors turned into DatasetErrors."""
    import pooch
    import requests

    store = pooch.create(path=folder, base_url="", registry={key: sha256 and f"sha256:{sha256}"},
                         urls={key: url}, retry_if_failed=_RETRIES)
    what = downloader.what
    try:
        store.fetch(key, processor=processor, downloader=downloader)
    except DatasetError:
        raise
    except ValueError as exc:  # pooch's checksum check, after its retries
        found = re.search(r"got ([0-9a-fA-F]{64})", str(exc))
        actual = found.group(1).lower() if found else "another hash"
        raise _mismatch(ds, what, url, sha256, size, actual, downloader.received) from exc
    except requests.exceptions.HTTPError as exc:
        status = "" if exc.response is None else (
            f"{exc.response.status_code} {exc.response.reason} ")
        raise DatasetError(
            f"Cannot download {what} from {url}: HTTP {status}({1 + _RETRIES} attempts). "
            f"{ds.hint()}"
        ) from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        of = f" of {downloader.expected}" if downloader.expected else ""
        raise DatasetError(
            f"Download of {what} from {url} was interrupted ({1 + _RETRIES} attempts): "
            f"received {downloader.received}{of} bytes. Nothing was kept; call fetch again "
            f"to retry. {ds.hint()}"
        ) from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise DatasetError(
            f"Download of {what} from {url} failed: {type(exc).__name__}: {exc}. "
            f"Nothing was kept; call fetch again to retry. {ds.hint()}"
        ) from exc


def _mismatch(ds: Dataset, what: str, source: str, sha256: str | None, size: int | None,
              actual: str, actual_size: int, inferred: bool = False) -> DatasetError:
    of = f" ({size} bytes)" if size is not None else ""
    note = " (this recipe was inferred, not spelled out by the dataset's notes)" * inferred
    return DatasetError(
        f"Checksum mismatch for {what} from {source}: expected sha256 {sha256}{of}, "
        f"got {actual} ({actual_size} bytes){note}. The download was discarded. {ds.hint()}"
    )


def _download_urls(
    ds: Dataset, entries: list[FileEntry], folder: Path, *, memo_file: Path, bar: _LazyBar
) -> None:
    for entry in entries:
        what, url = f"'{entry.path}' of dataset '{ds.name}'", str(entry.recipe["url"])
        if not entry.recipe.get("decompress"):
            _pooch_fetch(ds, folder, entry.path, url, _Downloader(ds, what, bar),
                         sha256=entry.sha256, size=entry.size)
            _MEMO.record(folder / entry.path, entry.sha256, memo_file)
            continue
        # a compressed upstream is checked after decompression (the registry holds the
        # SHA-256 of the file as stored); it waits under a temporary name
        up = PurePosixPath(str(entry.recipe["path"])).name
        key = str(PurePosixPath(entry.path).parent / f"{_TMP_PREFIX}{up}{_TMP_SUFFIX}")
        with contextlib.suppress(FileNotFoundError):
            (folder / key).unlink()  # a stale one from an interrupted run
        _pooch_fetch(ds, folder, key, url, _Downloader(ds, what, None), sha256=None,
                     processor=functools.partial(_unzstd, ds, entry, memo_file, bar))


def _unzstd(ds: Dataset, entry: FileEntry, memo_file: Path, bar: _LazyBar,
            fname: str, action: str, store: Any) -> str:
    """pooch processor: decompress a zstandard download, check it and put it in place."""
    zstandard = _require_zstandard(ds)
    out = Path(fname + ".out")
    try:
        with open(fname, "rb") as fin:
            reader = zstandard.ZstdDecompressor().stream_reader(fin)
            sha = sha256_stream(iter(lambda: reader.read(_CHUNK), b""), copy_to=out)
        dest = Path(store.abspath) / entry.path
        bar.update(_finish(ds, entry, out, dest, str(entry.recipe["url"]), memo_file, sha))
        return str(dest)
    except zstandard.ZstdError as exc:
        raise DatasetError(
            f"{ds.name}: downloaded data is not valid zstandard ({exc}); discarded. {ds.hint()}"
        ) from exc
    finally:
        for p in (fname, out):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def _finish(ds: Dataset, entry: FileEntry, tmp: Path, dest: Path, source: str, memo_file: Path,
            actual: str | None = None) -> int:
    """Check the SHA-256 (``actual``, else hashed here) of a finished temporary file, then
    move it into place; return its size."""
    actual, size = actual or _sha256_file(tmp), tmp.stat().st_size
    if actual != entry.sha256 or size != entry.size:
        raise _mismatch(ds, f"'{entry.path}' of dataset '{ds.name}'", source, entry.sha256,
                        entry.size, actual, size, bool(entry.recipe.get("inferred")))
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    _MEMO.record(dest, actual, memo_file)
    return size


def _require_zstandard(ds: Dataset) -> Any:
    return import_optional(
        "zstandard", feature=f"Dataset '{ds.name}' has zstandard-compressed upstream files: it",
        extra=None, hint=f"; or set {ENV_DATA} to a folder containing '{ds.name}/'.")


# ---------------------------------------------------------------------------
# members of archives: wheels (found by pip) and zip/tar archives (downloaded by pooch)


def _fetch_members(
    ds: Dataset,
    entries: list[FileEntry],
    folder: Path,
    *,
    memo_file: Path,
    bar: _LazyBar,
    wheel_downloader: WheelDownloader | None,
) -> None:
    """Get one archive, unpack the members ``entries`` need with pooch, check and place them."""
    import pooch

    recipe = entries[0].recipe
    members = [str(e.recipe["member"]) for e in entries]
    with tempfile.TemporaryDirectory(dir=folder, prefix=_TMP_PREFIX + "archive-") as tmpdir:
        work = Path(tmpdir)
        if recipe["kind"] == "wheel":
            source = f"wheel {recipe['package']}=={recipe['version']}"
            archive = _get_wheel(ds, str(recipe["package"]), str(recipe["version"]), work,
                                 wheel_downloader or _download_wheel)
        else:
            source, known = str(recipe["url"]), recipe.get("archive_sha256")
            archive = work / "archive"
            # the dataset's bar counts the members as they are unpacked, not the archive
            _pooch_fetch(ds, work, archive.name, source,
                         _Downloader(ds, f"the archive of dataset '{ds.name}'", None),
                         sha256=known)
        try:
            if tarfile.is_tarfile(archive):
                _check_tar(ds, archive, members, source)
                unpack: Any = pooch.Untar(members=members, extract_dir=str(work / "members"))
            else:
                unpack = pooch.Unzip(members=members, extract_dir=str(work / "members"))
            unpack(str(archive), "download", None)
        except (zipfile.BadZipFile, tarfile.TarError) as exc:
            raise DatasetError(f"cannot read {source} ({exc}); it is not a zip or tar archive. "
                               f"{ds.hint()}") from exc
        for entry, member in zip(entries, members, strict=True):
            got = work / "members" / member
            if not got.is_file():
                raise DatasetError(
                    f"{source} has no member {member!r} (needed for '{entry.path}' of "
                    f"dataset '{ds.name}'). {ds.hint()}"
                )
            bar.update(_finish(ds, entry, got, folder / entry.path, source, memo_file))


def _check_tar(ds: Dataset, archive: Path, members: list[str], source: str) -> None:
    """Refuse links and special files among the wanted members of a tar archive.

    Python 3.11's tarfile extracts them as they are (pooch passes ``filter="data"`` only
    from Python 3.12 on), and a link could make a later member land outside the folder.
    """
    wanted = [os.path.normpath(m) for m in members]
    with tarfile.open(archive) as tar:
        odd = [m.name for m in tar.getmembers() if not (m.isfile() or m.isdir())
               and os.path.normpath(m.name).startswith(tuple(wanted))]
    if odd:
        raise DatasetError(
            f"{source} holds links or special files where data were expected "
            f"({', '.join(odd[:3])}); nothing was unpacked. {ds.hint()}"
        )


def _get_wheel(
    ds: Dataset, package: str, version: str, work: Path, downloader: WheelDownloader
) -> Path:
    try:
        return Path(downloader(package, version, work))
    except DatasetError as exc:
        # pip's own retries are done: most often there is no network
        lines = str(exc).strip().splitlines() or [""]
        errors = [line for line in lines[1:] if line.startswith("ERROR:")]
        why = " ".join(f"{lines[0]} {errors[-1] if errors else ''}".split())[:240]
        raise _unavailable(ds, why) from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise DatasetError(
            f"cannot download the wheel {package}=={version}: {exc}. {ds.hint()}"
        ) from exc


def _pip_download_command(package: str, version: str, dest: Path) -> list[str]:
    """The pip command that downloads one wheel (uses the user's pip configuration)."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", f"{package}=={version}", "-d", str(dest)]


def _download_wheel(package: str, version: str, dest: Path) -> Path:
    """Download the wheel of ``package==version`` into ``dest`` with pip (pooch cannot)."""
    cmd = _pip_download_command(package, version, dest)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DatasetError(f"cannot run pip to download {package}=={version}: {exc}") from exc
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise DatasetError(
            f"pip could not download the wheel {package}=={version} "
            f"(exit status {proc.returncode}):\n{tail}"
        )
    return wheels[0]
