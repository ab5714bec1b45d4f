"""Cohort snapshots: a manifest of the files of a cohort, and its restore.

A snapshot records what a cohort *is* -- the query that selected it, the
series and instance UIDs, each file's path relative to the folder it was
indexed under and its SHA-256, the source, the IDC version where the series
come from IDC, medlab's version and the time -- in one JSON file.
:func:`restore` fetches the files again from the source into a clean folder,
checks every hash, scans the restored folder into a new index, checks that
its rows are those the snapshot recorded, and names every file that changed
or disappeared. Sources are local folders, S3-compatible buckets and PACS
(series known from query results are retrieved to hash them, and retrieved
again to restore them; credentials are never written to the manifest).

The manifest is not de-identified: it holds UIDs and the paths of the
researcher's own store. Share a snapshot of a de-identified export
(:func:`medlab.cohort.export`), not of the source.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._hashing import sha256_file, sha256_stream
from ..errors import MedlabError

if TYPE_CHECKING:
    import pandas as pd

    from ._index import Index

__all__ = ["RestoreReport", "SnapshotMismatchError", "restore", "snapshot"]

MANIFEST_FORMAT = "medlab-cohort-snapshot/1"

#: instance columns that depend on where and when a file lies, not on what it holds
_PLACE_COLUMNS = ("path", "source", "mtime_ns")


class SnapshotMismatchError(MedlabError, ValueError):
    """A restored cohort differs from its snapshot (files changed or gone)."""


def _row_digest(row: dict[str, Any]) -> str:
    """A digest of an index row's content (not of where the file lies)."""
    import math

    def norm(v: Any) -> Any:
        if v is None:
            return None
        if hasattr(v, "tolist"):
            v = v.tolist()
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, float) and math.isnan(v):
            return None
        try:
            import pandas as pd

            if not isinstance(v, (list, str)) and pd.isna(v):
                return None
        except (TypeError, ValueError):
            pass
        if isinstance(v, float):
            return repr(v)
        return str(v) if not isinstance(v, (int, bool, str)) else v

    content = {k: norm(v) for k, v in sorted(row.items()) if k not in _PLACE_COLUMNS}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _select_series(index: Index, query: str | None) -> list[str]:
    if query is None:
        df = index.sql("SELECT series_uid FROM series ORDER BY series_uid")
    else:
        if not isinstance(query, str):
            raise TypeError(
                f"query must be a SQL condition on the series view (a string), got "
                f"{type(query).__name__}; e.g. \"modality = 'CT'\"")
        try:
            df = index.sql(f"SELECT series_uid FROM series WHERE {query} ORDER BY series_uid")
        except ValueError as exc:
            raise ValueError(
                f"the snapshot query {query!r} is not a valid SQL condition on the series view "
                f"({exc}); e.g. \"modality = 'CT' AND is_volume\"") from exc
    return [str(u) for u in df["series_uid"]]


def _root_of(path: str, roots: list[str]) -> str:
    """The indexed root a file lies under (the deepest one)."""
    best = None
    for r in roots:
        rp = Path(r)
        root = str(rp.parent if rp.is_file() or Path(path) == rp else rp)
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            if best is None or len(root) > len(best):
                best = root
    if best is None:  # pragma: no cover - every indexed file lies under a root
        best = str(Path(path).parent)
    return best


def snapshot(
    index: Index,
    path: str | os.PathLike | None = None,
    *,
    query: str | None = None,
    root: str | os.PathLike | None = None,
    pacs: Any = None,
    progress: bool = True,
    endpoint: str | None = None,
    anonymous: bool | None = None,
) -> dict[str, Any]:
    """Write a manifest of a cohort: UIDs, files, SHA-256, source and versions.

    Parameters
    ----------
    index : medlab.cohort.Index
        The index the cohort comes from.
    path : path, optional
        Where to write the manifest (JSON). None only returns it.
    query : str, optional
        A SQL condition on the ``series`` view that selects the cohort
        (e.g. ``"modality = 'CT' AND is_volume"``); None takes every series
        with local files (and, with ``pacs``, those of its servers).
    root : path, optional
        Record local files relative to this folder (one source), e.g. the
        dataset folder above several indexed ones; default: the indexed
        folder each file lies under.
    pacs : DicomWeb, Dimse or list of them, optional
        The servers of series the index knows only from PACS query results
        (``index.add_remote``): each such series is retrieved into a
        temporary folder, indexed and hashed. The manifest names the server
        (URL, or AE title, host and port), never its credentials.
    progress : bool
        Show a progress bar while hashing the files.
    endpoint, anonymous
        For series indexed from a bucket (:func:`medlab.cohort.scan_bucket`):
        the S3 endpoint (recorded in the manifest; default AWS) and whether
        requests are unsigned (see :func:`medlab.cohort.bucket_store`). Their
        objects are read once to hash them.

    Returns
    -------
    dict
        The manifest: ``format``, ``created``, ``medlab_version``, ``query``,
        ``sources`` (``kind`` ``'local'`` with the indexed ``root``, ``'s3'``
        with ``bucket`` and ``endpoint``, or ``'pacs'`` with ``server``,
        ``protocol`` and its address), ``idc_version``
        (None unless series of the cohort are in the installed IDC index),
        ``series`` (``series_uid``, ``study_uid``, ``n_instances``) and
        ``files`` (``series_uid``, ``sop_uid``, ``source``, ``relpath``,
        ``size``, ``sha256``, ``row_sha256``: a digest of the file's index row).

    Raises
    ------
    ValueError
        The query selects no series with files, or selects series known only
        from PACS query results and ``pacs`` does not name their server.

    Notes
    -----
    A PACS series is recorded as retrieved (``<series UID>/<SOP UID>.dcm``);
    its hashes are those of the retrieved files, which :func:`restore`
    retrieves again. A server that re-encodes what it sends on each request
    would show every file as changed.

    Examples
    --------
    >>> manifest = index.snapshot("cohort.json", query="modality = 'CT'")  # doctest: +SKIP
    >>> report = ml.cohort.restore("cohort.json", root="restored")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from .._version import __version__

    uids = _select_series(index, query)
    rows = index.sql("SELECT * FROM instances WHERE source = 'local' OR "
                     "(source LIKE 'remote:s3://%' AND path LIKE 's3://%') ORDER BY path")
    rows = rows[rows["series_uid"].isin(set(uids))]
    remote = _pacs_series(index, uids, covered=set(rows["series_uid"]))
    clients = _pacs_clients(pacs)
    if not remote.empty:
        unserved = sorted(set(remote["source"]) - set(clients))
        if unserved and (query is not None or pacs is not None):
            n = int(remote["source"].isin(unserved).sum())
            raise ValueError(
                f"{n} series of the cohort are known only from PACS query results of "
                f"{', '.join(repr(u) for u in unserved)} (no local files); pass the server to "
                "retrieve and hash them, e.g. pacs=ml.cohort.DicomWeb(url, username=..., "
                "password=...) (its name= must give that source), or retrieve them into a folder "
                "and index.update(folder)")
        remote = remote[remote["source"].isin(set(clients))]
    if rows.empty and remote.empty:
        raise ValueError(
            f"the query {query!r} selects no series with local files in this index "
            f"({len(uids)} series matched); check index.series")
    roots = [str(Path(root).expanduser().resolve())] if root is not None else index.roots
    sources: list[dict[str, Any]] = []
    files = []

    def add(rec: dict[str, Any], src: dict[str, Any], relpath: str, sha: str | None) -> None:
        if src not in sources:
            sources.append(src)
        files.append({
            "series_uid": rec["series_uid"],
            "sop_uid": rec["sop_uid"],
            "source": sources.index(src),
            "relpath": relpath,
            "size": int(rec["file_size"]),
            "sha256": sha,
            "row_sha256": _row_digest(rec),
        })

    for rec in tqdm(rows.to_dict("records"), desc="hashing", unit="file", disable=not progress):
        p = str(rec["path"])
        if p.startswith("s3://"):
            bucket, _, relpath = p[5:].partition("/")
            src: dict[str, Any] = {"kind": "s3", "bucket": bucket, "endpoint": endpoint}
            sha = _sha256_object(_store(src, anonymous), relpath)
        else:
            top = _root_of(p, roots)
            if root is not None and top != roots[0]:
                raise ValueError(f"the file {p!r} of the cohort does not lie under root="
                                 f"{roots[0]!r}; choose a folder above every indexed file")
            src = {"kind": "local", "root": top}
            relpath = Path(os.path.relpath(p, top)).as_posix()
            sha = sha256_file(p)
        add(rec, src, relpath, sha)
    retrieved = []
    if not remote.empty:
        import tempfile

        from ._index import scan

        with tempfile.TemporaryDirectory(prefix="medlab-snapshot-") as tmp:
            for r in tqdm(list(remote.itertuples()), desc="retrieving", unit="series",
                          disable=not progress):
                _retrieve(clients[r.source], r.study_uid, r.series_uid, Path(tmp) / r.series_uid)
            got = scan(tmp, progress=False, workers=1)
            server_of = dict(zip(remote["series_uid"], remote["source"], strict=True))
            try:
                for rec in got.sql("SELECT * FROM instances ORDER BY path").to_dict("records"):
                    relpath = Path(os.path.relpath(str(rec["path"]), tmp)).as_posix()
                    series_uid = relpath.split("/", 1)[0]
                    add(rec, _pacs_source(clients[server_of[series_uid]]), relpath,
                        sha256_file(rec["path"]))
                    retrieved.append(rec)
            finally:
                got.close()
        missing = set(remote["series_uid"]) - {r["series_uid"] for r in retrieved}
        if missing:
            raise ValueError(
                f"{len(missing)} series known from PACS query results came back with no DICOM "
                f"file when retrieved (e.g. {sorted(missing)[0]!r}); query the server again "
                "(index.add_remote) and check that it still holds them")
    if retrieved:
        import pandas as pd

        rows = pd.concat([rows, pd.DataFrame(retrieved)], ignore_index=True)
    series = (rows.groupby("series_uid", sort=True)
              .agg(study_uid=("study_uid", "first"), n_instances=("path", "size"))
              .reset_index())
    manifest = {
        "format": MANIFEST_FORMAT,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "medlab_version": __version__,
        "query": query,
        "sources": sources,
        "idc_version": _idc_version_of(list(series["series_uid"])),
        "series": [{"series_uid": r.series_uid, "study_uid": r.study_uid,
                    "n_instances": int(r.n_instances)} for r in series.itertuples()],
        "files": files,
    }
    if path is not None:
        out = Path(path).expanduser()
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, out)
    return manifest


_stores: dict[tuple, Any] = {}


def _store(src: dict[str, Any], anonymous: bool | None) -> Any:
    from ._s3 import bucket_store

    key = (src["bucket"], src.get("endpoint"), anonymous)
    if key not in _stores:
        _stores[key] = bucket_store(src["bucket"], endpoint=src.get("endpoint"),
                                    anonymous=anonymous)
    return _stores[key]


def _sha256_object(store: Any, key: str, *, copy_to: Path | None = None) -> str | None:
    """SHA-256 of an object (None when it is gone), optionally writing a copy."""
    import obstore

    try:
        return sha256_stream(obstore.get(store, key), copy_to=copy_to)
    except FileNotFoundError:
        return None


def _pacs_series(index: Index, uids: list[str], *, covered: set[str]) -> pd.DataFrame:
    """Series of the cohort known only from PACS query results: series_uid, study_uid, source."""
    df = index.sql(
        "SELECT series_uid, min(study_uid) AS study_uid, min(source) AS source FROM instances "
        "WHERE source LIKE 'remote:%' AND source NOT LIKE 'remote:s3://%' AND series_uid IS NOT "
        "NULL GROUP BY series_uid ORDER BY series_uid")
    keep = df["series_uid"].isin(set(uids)) & ~df["series_uid"].isin(covered)
    return df[keep].reset_index(drop=True)


def _pacs_clients(pacs: Any) -> dict[str, Any]:
    """``source`` -> client, for the PACS clients given."""
    if pacs is None:
        return {}
    items = pacs if isinstance(pacs, (list, tuple)) else [pacs]
    out = {}
    for c in items:
        if not (hasattr(c, "source") and (hasattr(c, "retrieve") or hasattr(c, "get"))):
            raise TypeError(
                "pacs must be a medlab.cohort.DicomWeb or Dimse client (or a list of them), got "
                f"{type(c).__name__}")
        out[c.source] = c
    return out


def _pacs_source(client: Any) -> dict[str, Any]:
    """How the manifest names a PACS: its source name and address, no credentials."""
    if hasattr(client, "url"):
        return {"kind": "pacs", "server": client.source, "protocol": "dicomweb",
                "url": client.url}
    return {"kind": "pacs", "server": client.source, "protocol": "dimse",
            "called_aet": client.called_aet, "host": client.host, "port": client.port}


def _retrieve(client: Any, study_uid: str, series_uid: str, dest: Path) -> list[Path]:
    """One series from a PACS into ``dest`` (WADO-RS or C-GET), as the server stored it."""
    if hasattr(client, "retrieve"):
        return client.retrieve(study_uid=study_uid, series_uid=series_uid, dest=dest)
    return client.get(study_uid=study_uid, series_uid=series_uid, dest=dest)


def _idc_version_of(series_uids: list[str]) -> int | None:
    """IDC's version of the installed IDC index when any of these series are in it."""
    try:
        from ._idc import idc_series_version
    except ImportError:  # pragma: no cover
        return None
    return idc_series_version(series_uids)


@dataclass
class RestoreReport:
    """What :func:`restore` found.

    Attributes
    ----------
    files : pandas.DataFrame
        One row per file of the snapshot: ``series_uid``, ``sop_uid``,
        ``relpath``, ``status`` (``'ok'``, ``'changed'``, ``'missing'``,
        ``'row_differs'``), ``expected_sha256``, ``found_sha256``, ``source_path``.
    index : medlab.cohort.Index
        The index of the restored folder (only the files that passed).
    root : pathlib.Path
        Where the files were restored.
    """

    files: pd.DataFrame
    index: Index
    root: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def ok(self) -> bool:
        """Every file came back with its hash and its index row."""
        return bool((self.files["status"] == "ok").all())

    @property
    def problems(self) -> pd.DataFrame:
        """The files that changed, disappeared or index differently."""
        return self.files[self.files["status"] != "ok"].reset_index(drop=True)

    def __str__(self) -> str:
        counts = self.files["status"].value_counts()
        text = (f"restored {int(counts.get('ok', 0))} of {len(self.files)} files into "
                f"{self.root}: {int(counts.get('changed', 0))} changed, "
                f"{int(counts.get('missing', 0))} missing, "
                f"{int(counts.get('row_differs', 0))} index differently")
        for r in self.problems.itertuples():
            text += f"\n  {r.status}: {r.relpath} (series {r.series_uid})"
        return text


def restore(
    manifest: str | os.PathLike | dict[str, Any],
    *,
    root: str | os.PathLike,
    source: str | os.PathLike | None = None,
    strict: bool = False,
    db: str | os.PathLike | None = None,
    progress: bool = True,
    endpoint: str | None = None,
    anonymous: bool | None = None,
    workers: int | None = None,
    pacs: Any = None,
) -> RestoreReport:
    """Fetch a snapshot's files again, check every hash, and rebuild its index.

    Parameters
    ----------
    manifest : path or dict
        A manifest written by :func:`snapshot` (or the dict it returned).
    root : path
        A new or empty folder to restore into; files keep their relative
        paths. The sources are only read.
    source : path, optional
        Where the snapshot's local source lies now, when it moved (a copy on
        another machine); default: the root recorded in the manifest.
        Applies to a manifest with one source.
    strict : bool
        Raise :class:`SnapshotMismatchError` when any file changed,
        disappeared or indexes differently (the report is attached as
        ``exc.report``). By default the report names them.
    db : path, optional
        DuckDB file for the restored index (default: in memory).
    progress : bool
        Show progress bars.
    endpoint, anonymous
        For bucket sources: another S3 endpoint than the recorded one (a
        mirror), and whether requests are unsigned (see
        :func:`medlab.cohort.bucket_store`).
    workers : int, optional
        Worker processes of the scan of the restored folder (see
        :func:`medlab.cohort.scan`).
    pacs : DicomWeb, Dimse or list of them, optional
        Clients for the manifest's PACS sources (matched by their ``source``
        name; the manifest holds no credentials). Each series is retrieved
        again; a series the server no longer has comes back ``'missing'``.

    Returns
    -------
    RestoreReport
        The files with their status and the restored index. A changed file
        is not copied: the restored cohort holds only what the snapshot
        recorded.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ._index import scan

    if not isinstance(manifest, dict):
        mpath = Path(manifest).expanduser()
        if not mpath.is_file():
            raise FileNotFoundError(f"no snapshot manifest at {str(mpath)!r}")
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(mpath)!r} is not a JSON snapshot manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(
            f"not a medlab cohort snapshot (format {got!r}, expected {MANIFEST_FORMAT!r}); "
            "write one with index.snapshot(path)")
    dest = Path(root).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(
            f"restore needs a new or empty folder, and {str(dest)!r} is not empty; choose "
            "another root=")
    sources = [dict(s) for s in manifest["sources"]]
    for s in sources:
        if s.get("kind") == "s3" and endpoint is not None:
            s["endpoint"] = endpoint
    if source is not None:
        if len(sources) != 1:
            raise ValueError(
                f"source= relocates a manifest with one source; this one has {len(sources)} "
                f"({[s.get('root', s.get('bucket')) for s in sources]})")
        sources[0]["root"] = str(Path(source).expanduser().resolve())
    clients = _pacs_clients(pacs)
    for s in sources:
        if s.get("kind") not in ("local", "s3", "pacs"):
            raise ValueError(
                f"unknown snapshot source {s!r}: expected kind 'local', 's3' or 'pacs'")
        if s["kind"] == "pacs" and s.get("server") not in clients:
            where = s.get("url") or f"{s.get('called_aet')}@{s.get('host')}:{s.get('port')}"
            raise ValueError(
                f"the snapshot's files come from the PACS {s.get('server')!r} ({where}); pass "
                "its client, e.g. restore(..., pacs=ml.cohort.DicomWeb(url, username=..., "
                "password=...)), with a name= that gives this source")
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    import tempfile

    with tempfile.TemporaryDirectory(prefix="medlab-restore-") as tmp:
        fetched: dict[str, Path] = {}  # series retrieved from a PACS -> its folder

        def from_pacs(s: dict[str, Any], f: dict[str, Any]) -> Path:
            series = f["series_uid"]
            if series not in fetched:
                study = next((x["study_uid"] for x in manifest["series"]
                              if x["series_uid"] == series), None)
                folder = Path(tmp) / series
                client = clients[s["server"]]
                find = client.query if hasattr(client, "query") else client.find
                # a server that is down raises (PacsError); one that lost the series finds none
                if len(find("series", study_uid=study, series_uid=series)):
                    _retrieve(client, study, series, folder)
                fetched[series] = folder
            return fetched[series] / Path(f["relpath"]).name

        for f in tqdm(manifest["files"], desc="restoring", unit="file", disable=not progress):
            s = sources[f["source"]]
            target = dest / f["relpath"]
            found = None
            if s["kind"] == "s3":
                src: Any = f"s3://{s['bucket']}/{f['relpath']}"
                found = _sha256_object(_store(s, anonymous), f["relpath"], copy_to=target)
            else:
                src = (from_pacs(s, f) if s["kind"] == "pacs"
                       else Path(s["root"]) / f["relpath"])
                if src.is_file():
                    found = sha256_file(src, copy_to=target)
                if s["kind"] == "pacs":
                    src = f"{s['server']}: series {f['series_uid']}, {Path(f['relpath']).name}"
            if found is None:
                status = "missing"
            else:
                status = "ok" if found == f["sha256"] else "changed"
                if status == "changed":
                    target.unlink()
            rows.append({"series_uid": f["series_uid"], "sop_uid": f["sop_uid"],
                         "relpath": f["relpath"], "status": status,
                         "expected_sha256": f["sha256"], "found_sha256": found,
                         "source_path": str(src)})
    report_files = pd.DataFrame(rows, columns=["series_uid", "sop_uid", "relpath", "status",
                                               "expected_sha256", "found_sha256", "source_path"])
    index = scan(dest, db=db, progress=progress, workers=workers)
    # the restored rows must be the snapshot's rows (same content, other place)
    restored = index.sql("SELECT * FROM instances ORDER BY path")
    digest = {Path(os.path.relpath(str(r["path"]), dest)).as_posix(): _row_digest(r)
              for r in restored.to_dict("records")}
    expected = {f["relpath"]: f["row_sha256"] for f in manifest["files"]}
    ok = report_files["status"] == "ok"
    differs = ok & report_files["relpath"].map(lambda p: digest.get(p) != expected[p])
    report_files.loc[differs, "status"] = "row_differs"
    report = RestoreReport(files=report_files, index=index, root=dest, manifest=manifest)
    if strict and not report.ok:
        exc = SnapshotMismatchError(
            f"{len(report.problems)} of {len(report_files)} files of the snapshot did not come "
            f"back as recorded:\n{report}\nrestore(..., strict=False) returns the report "
            "instead")
        exc.report = report  # type: ignore[attr-defined]
        raise exc
    return report
