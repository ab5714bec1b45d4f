"""The cohort index: DICOM headers of folders (and PACS query results) in DuckDB.

Storage (one DuckDB database: a file the user chooses, or in memory):

- ``instances`` — one row per DICOM instance, columns of
  :data:`~medlab.cohort._schema.INSTANCE_COLUMNS` (local files and, marked
  ``source='remote:<server>'``, PACS query results);
- ``frames`` — one row per 2D frame as the loader assembles it (position,
  orientation, time keys, the loader's grouping key), the input of the
  series geometry;
- ``series_geometry`` — the per-series derived columns of
  :data:`~medlab.cohort._schema.SERIES_COLUMNS`, recomputed for the series a
  scan touches;
- ``errors`` — files that are not in the index, with the reason;
- ``cohorts`` — named selections of series;
- views ``series``, ``studies``, ``patients`` over these.

A scan walks the folders, compares each file's size and mtime with the
index, and reads the headers of new and changed files only — in local worker
processes, or on a ``dask.distributed`` cluster — with
:func:`medlab.cohort._scan.read_batch`. The scanned folders are only read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import privacy
from ._schema import (
    ERROR_COLUMNS,
    FRAME_COLUMNS,
    INSTANCE_COLUMNS,
    SERIES_COLUMNS,
    Column,
    column_names,
)
from ._series import FrameRecord, InstanceRecord, series_rows

if TYPE_CHECKING:
    import pandas as pd

    from ..image import Image

from ._read import _dask_client, _norm_root, _read_files, _under, _walk
from ._store import (
    _INSTANCE_INPUT,
    _PATIENTS_VIEW,
    _STUDIES_VIEW,
    _TABLES,
    _arrow_schema,
    _arrow_table,
    _as_date,
    _as_datetime,
    _as_paths,
    _connect,
    _ddl,
    _isna,
    _series_view,
    _tables,
    index_file_error,
)

__all__ = ["Index", "ScanReport", "open_index", "scan"]

SCHEMA_VERSION = "1"
#: the frames columns the series geometry reads (path ... problem; not the stored frame)
_N_GEOMETRY = 14


@dataclass(frozen=True)
class ScanReport:
    """What a scan did.

    Attributes
    ----------
    n_files_seen : int
        Files found under the scanned folders.
    n_new, n_changed : int
        Files read because they were not in the index, or their size or
        modification time changed.
    n_removed : int
        Files in the index that are gone (their rows were dropped).
    n_unchanged : int
        Files not read again.
    n_errors : int
        Files read in this scan that went to the ``errors`` table.
    seconds : float
        Wall time of the scan.
    """

    n_files_seen: int
    n_new: int
    n_changed: int
    n_removed: int
    n_unchanged: int
    n_errors: int
    seconds: float

    def __str__(self) -> str:
        return (f"{self.n_files_seen} files: {self.n_new} new, {self.n_changed} changed, "
                f"{self.n_removed} removed, {self.n_unchanged} unchanged; {self.n_errors} not "
                f"indexed (see index.errors); {self.seconds:.2f} s")


# --------------------------------------------------------------------------- Index
class Index:
    """A queryable index of DICOM instances, series, studies and patients.

    Create one with :func:`scan` (or reopen a saved one with
    :func:`open_index`). Tables come back as pandas DataFrames; :meth:`sql`
    runs any DuckDB query over the tables and views ``instances``,
    ``series``, ``studies``, ``patients``, ``errors``, ``cohorts`` and
    ``frames``.

    Attributes
    ----------
    db_path : pathlib.Path or None
        The DuckDB file, or None for an in-memory index.
    roots : list of str
        The scanned folders and files (absolute paths).
    last_report : ScanReport or None
        What the last scan, rescan or update did.
    """

    #: a new in-memory index whose database is set up during its first scan (_in_memory)
    _pending = False

    def __init__(self, con: Any, db_path: Path | None) -> None:
        self._con = con
        self.db_path = db_path
        self.last_report: ScanReport | None = None
        self._create_schema()
        privacy.watch_index(self)  # titles and reports know this index's patients

    @classmethod
    def _in_memory(cls) -> Index:
        """A new index in memory, its database not set up yet: it knows no files, so its
        first scan starts reading headers first and sets DuckDB up meanwhile (``_setup``)."""
        index = cls.__new__(cls)
        index._con, index.db_path, index.last_report = None, None, None
        index._pending = True
        return index

    def _setup(self) -> None:
        """Connect and create the tables of an index made by ``_in_memory`` (once)."""
        if self._pending:
            self._con, _ = _connect(None)
            self._pending = False
            self._create_schema(new=True)
            privacy.watch_index(self)

    # ------------------------------------------------------------------ set-up
    def _create_schema(self, *, new: bool = False) -> None:
        # one transaction: a process killed meanwhile leaves the file as it was
        self._con.execute("BEGIN TRANSACTION")
        try:
            self._create_tables(new=new)
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def _create_tables(self, *, new: bool = False) -> None:
        """Create what is missing; ``new``: the database is empty (nothing to upgrade)."""
        con = self._con
        con.execute("CREATE TABLE IF NOT EXISTS medlab_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for table, columns in _TABLES.items():
            con.execute(_ddl(table, columns))
        # columns added to the schema since this file was written (one catalog query: it
        # costs tens of milliseconds, paid by every scan of an existing index)
        have: dict[str, set[str]] = {}
        if not new:
            for table, column in con.execute(
                    "SELECT table_name, column_name FROM information_schema.columns").fetchall():
                have.setdefault(table, set()).add(column)
        for table, columns in _TABLES.items():
            for c in columns:
                if not new and c.name not in have.get(table, ()):
                    con.execute(f'ALTER TABLE {table} ADD COLUMN "{c.name}" {c.dtype}')
        con.execute(_series_view())
        con.execute(_STUDIES_VIEW)
        con.execute(_PATIENTS_VIEW)
        con.execute("INSERT OR REPLACE INTO medlab_meta VALUES ('schema_version', ?)",
                    [SCHEMA_VERSION])
        if self._meta("roots") is None:
            self._set_meta("roots", "[]")

    def _meta(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM medlab_meta WHERE key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str) -> None:
        self._con.execute("INSERT OR REPLACE INTO medlab_meta VALUES (?, ?)", [key, value])

    @property
    def roots(self) -> list[str]:
        """The scanned folders and files (absolute paths)."""
        return list(json.loads(self._meta("roots") or "[]"))

    # ------------------------------------------------------------------ tables
    def _df(self, query: str, params: list | None = None) -> pd.DataFrame:
        self._check_open()
        with self._damage_named():
            return self._con.execute(query, params or []).df()

    @contextlib.contextmanager
    def _damage_named(self) -> Iterator[None]:
        """Turn DuckDB's errors on a damaged file (a block cut off, a bad checksum)
        into an error naming the file and the fix."""
        try:
            yield
        except Exception as exc:
            if self.db_path is not None and _is_damage(exc):
                raise index_file_error(self.db_path, exc) from exc
            raise

    @property
    def instances(self) -> pd.DataFrame:
        """One row per DICOM instance (local files and PACS query results)."""
        return self._df("SELECT * FROM instances ORDER BY path")

    @property
    def series(self) -> pd.DataFrame:
        """One row per series: the derived geometry columns, then descriptive ones."""
        return self._df("SELECT * FROM series ORDER BY patient_id, study_date, study_uid, "
                        "series_number, series_uid")

    @property
    def studies(self) -> pd.DataFrame:
        """One row per study, with counts of series and instances."""
        return self._df("SELECT * FROM studies ORDER BY patient_id, study_date, study_uid")

    @property
    def patients(self) -> pd.DataFrame:
        """One row per patient, with counts of studies, series and instances."""
        return self._df("SELECT * FROM patients ORDER BY patient_id")

    @property
    def errors(self) -> pd.DataFrame:
        """Files that are not in the index, and why."""
        return self._df("SELECT * FROM errors ORDER BY path")

    @property
    def frames(self) -> pd.DataFrame:
        """One row per 2D frame as the loader assembles it (the series geometry's input).

        The stored frames themselves (column ``frame_record``, what
        :meth:`load_series` plans from) are left out; :meth:`sql` reaches them.
        """
        return self._df("SELECT * EXCLUDE (frame_record) FROM frames ORDER BY path, "
                        "frame_index, tile")

    def sql(self, query: str) -> pd.DataFrame:
        """Run a DuckDB SQL query on the index and return the result as a DataFrame.

        Parameters
        ----------
        query : str
            Any DuckDB query over ``instances``, ``series``, ``studies``,
            ``patients``, ``errors``, ``cohorts`` and ``frames``.

        Examples
        --------
        >>> index.sql("SELECT modality, count(*) AS n FROM series GROUP BY modality")  # doctest: +SKIP
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a SQL string, got {type(query).__name__}")
        self._check_open()
        try:
            with self._damage_named():
                return self._con.execute(query).df()
        except Exception as exc:
            import duckdb

            if isinstance(exc, duckdb.Error):
                raise ValueError(
                    f"the query failed: {exc}. Tables and views: instances, series, studies, "
                    "patients, errors, cohorts, frames (see index.sql('DESCRIBE series'))"
                ) from exc
            raise

    # ------------------------------------------------------------------ scanning
    def rescan(self, *, progress: bool = True) -> ScanReport:
        """Bring the index up to date with the scanned folders.

        Reads only files that are new or whose size or modification time
        changed, and drops the rows of files that are gone.

        Parameters
        ----------
        progress : bool
            Show a progress bar while reading many headers.

        Returns
        -------
        ScanReport
        """
        return self._scan(self.roots, progress=progress, workers=None, client=None,
                          missing_ok=True)

    def update(self, paths: str | os.PathLike | Iterable[str | os.PathLike], *,
               progress: bool = True) -> ScanReport:
        """Add folders or files to the index (e.g. where a PACS retrieve put files).

        Folders already indexed are rescanned incrementally.

        Parameters
        ----------
        paths : path or list of paths
        progress : bool
            Show a progress bar while reading many headers.

        Returns
        -------
        ScanReport
        """
        return self._scan(_as_paths(paths), progress=progress, workers=None, client=None)

    def _scan(self, paths: list[str], *, progress: bool, workers: int | None, client: Any,
              missing_ok: bool = False) -> ScanReport:
        with self._damage_named():
            return self._scan_now(paths, progress=progress, workers=workers, client=client,
                                  missing_ok=missing_ok)

    def _scan_now(self, paths: list[str], *, progress: bool, workers: int | None, client: Any,
                  missing_ok: bool = False) -> ScanReport:
        pending = self._pending  # a new in-memory index: nothing indexed, no database yet
        if not pending:
            self._check_open()
        t0 = time.perf_counter()
        roots = [_norm_root(p) for p in paths]
        live = []
        for root in roots:
            if os.path.exists(root):
                live.append(root)
            elif missing_ok:
                warnings.warn(f"{root} no longer exists: its files are dropped from the index",
                              stacklevel=3)
            else:
                raise FileNotFoundError(
                    f"no such file or folder: {root!r}; pass existing DICOM folders or files")
        stored_roots = [] if pending else self.roots
        new_roots = stored_roots + [r for r in roots if r not in stored_roots]
        if new_roots != stored_roots and not pending:
            # recorded before anything is read, so that a scan killed midway leaves an index
            # whose rescan() reads the rest (the rows of a scan are written in one transaction)
            self._set_meta("roots", json.dumps(new_roots))
        skip = frozenset()
        if self.db_path is not None:
            db = str(self.db_path)
            skip = frozenset({db, db + ".wal", db + ".tmp"})
        dir_errors: list[tuple] = []
        current: dict[str, tuple[int, int]] = {}
        for root in live:
            for path, size, mtime in _walk(root, skip, dir_errors):
                current[path] = (size, mtime)
        known = {} if pending else self._known_files(roots)
        new, changed, removed = [], [], []
        for path, stamp in current.items():
            old = known.get(path)
            if old is None:
                new.append(path)
            elif old != stamp:
                changed.append(path)
        removed = [p for p in known if p not in current]
        to_read = sorted(new + changed)
        n_workers = workers or os.cpu_count() or 1
        dask_client, own_client = (None, False)
        if client is not None:
            dask_client, own_client = _dask_client(client)
        # the rows are inserted (in one transaction) while the headers are read: each chunk's
        # as it comes, in the order of the files, in batches of _FLUSH_ROWS files
        writer = _ScanWriter(self, drop=changed + removed, roots=roots, dir_errors=dir_errors,
                             new_roots=new_roots)

        def start() -> None:  # while the workers read
            self._setup()
            if (to_read or removed or dir_errors or new_roots != stored_roots
                    or self._has_dir_errors(roots)):
                writer.begin()

        try:
            try:
                _read_files([(p, *current[p]) for p in to_read], workers=n_workers,
                            client=dask_client, progress=progress, start=start, add=writer.add,
                            idle=writer.flush)
            finally:
                if own_client:
                    dask_client.close()
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        report = ScanReport(
            n_files_seen=len(current), n_new=len(new), n_changed=len(changed),
            n_removed=len(removed), n_unchanged=len(current) - len(new) - len(changed),
            n_errors=writer.n_errors, seconds=time.perf_counter() - t0,
        )
        self.last_report = report
        return report

    def _known_files(self, roots: list[str]) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of the indexed local files under ``roots``."""
        rows = self._con.execute(
            "SELECT path, file_size, mtime_ns FROM instances WHERE source = 'local' "
            "UNION ALL SELECT path, file_size, mtime_ns FROM errors WHERE file_size IS NOT NULL"
        ).fetchall()
        prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)
        exact = set(roots)
        return {p: (s, m) for p, s, m in rows if p in exact or p.startswith(prefixes)}

    def _holds_local_rows(self) -> bool:
        """Whether the index holds any row of a local file (False for a new index)."""
        if self._pending:
            return False
        return self._con.execute(
            "SELECT EXISTS (SELECT 1 FROM instances WHERE source = 'local') OR "
            "EXISTS (SELECT 1 FROM frames)").fetchone()[0]

    def _has_dir_errors(self, roots: list[str]) -> bool:
        rows = self._con.execute("SELECT path FROM errors WHERE file_size IS NULL").fetchall()
        return any(_under(p, r) for (p,) in rows for r in roots)

    def _insert(self, table: str, columns: tuple[Column, ...], rows: list[tuple] | Any) -> None:
        """Insert ``rows``: tuples in the order of ``columns``, or an Arrow table of them."""
        if isinstance(rows, list):
            if not rows:
                return
            data = _arrow_table(columns, rows)
        else:  # built by the scan's workers (read_batch)
            if rows.num_rows == 0:
                return
            data = rows
        self._con.register("_new_rows", data)
        try:
            self._con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _new_rows")
        finally:
            self._con.unregister("_new_rows")

    def _series_inputs(self, uids: set[str]) -> tuple[list[tuple], list[tuple]]:
        """(instance, frame) rows already in the index for the series ``uids``."""
        if not uids:
            return [], []
        import pyarrow as pa

        con = self._con
        con.register("_uids", pa.table({"series_uid": pa.array(sorted(uids), pa.string())}))
        try:
            inst = con.execute(
                f"SELECT {', '.join(_INSTANCE_INPUT)} FROM instances WHERE source = 'local' AND "
                "series_uid IN (SELECT series_uid FROM _uids)").fetchall()
            frames = con.execute(  # the columns of the geometry, not the stored frames
                f"SELECT {', '.join(c.name for c in FRAME_COLUMNS[:_N_GEOMETRY])} FROM frames "
                "WHERE series_uid "
                "IN (SELECT series_uid FROM _uids)").fetchall()
        finally:
            con.unregister("_uids")
        return inst, frames

    def _replace_series_geometry(self, uids: set[str], rows: list[tuple], *,
                                 new: bool = False) -> None:
        """Replace the derived columns of the series ``uids`` with ``rows``
        (:func:`~medlab.cohort._series.series_rows`); ``new``: the index has none of them."""
        if not uids:
            return
        if new:
            self._insert("series_geometry", SERIES_COLUMNS, rows)
            return
        import pyarrow as pa

        con = self._con
        con.register("_uids", pa.table({"series_uid": pa.array(sorted(uids), pa.string())}))
        try:
            con.execute("DELETE FROM series_geometry WHERE series_uid IN (SELECT series_uid FROM _uids)")
        finally:
            con.unregister("_uids")
        self._insert("series_geometry", SERIES_COLUMNS, rows)

    # ------------------------------------------------------------------ images
    def files(self, series_uid: str) -> list[str]:
        """The local files of a series, sorted.

        Parameters
        ----------
        series_uid : str
            Series Instance UID (see ``index.series['series_uid']``).
        """
        self._check_open()
        if not isinstance(series_uid, str):
            raise TypeError(f"series_uid must be a string, got {type(series_uid).__name__}")
        rows = self._con.execute(
            "SELECT path, source FROM instances WHERE series_uid = ? ORDER BY path",
            [series_uid]).fetchall()
        if not rows:
            n = self._con.execute("SELECT count(DISTINCT series_uid) FROM instances").fetchone()[0]
            raise KeyError(
                f"no series {series_uid!r} in the index ({n} series); pick a series_uid from "
                "index.series"
            )
        return [p for p, source in rows if source == "local"]

    def load_series(self, series_uid: str, **kwargs: Any) -> Image:
        """Load a series as one :class:`medlab.Image`, from the frames its scan stored.

        The index keeps every frame the loader's header and frame stages read
        (``frames.frame_record``), so the series is planned from those
        (:mod:`medlab.io.dicom.plans`) and only its pixels are read: the same
        Image as ``medlab.load`` of the series' files, without parsing every
        header again. Files changed on disk since they were indexed (size or
        modification time) are read again from disk instead, with a warning to
        run :meth:`rescan`.

        Parameters
        ----------
        series_uid : str
            Series Instance UID (see ``index.series['series_uid']``).
        **kwargs
            Options of the loader (:func:`medlab.io.dicom.read_dicom`):
            ``irregular='stack'``, ``scaling='display'``, ``progress=True``.

        Raises
        ------
        MultipleImagesError
            The series holds several images (e.g. echoes or orientations);
            the message names them. Found from the plan, before any pixel is read.
        SeriesAssemblyError, DicomReadError
            The series cannot be loaded, with the reason.
        FileNotFoundError
            Files of the series are gone (run :meth:`rescan`), or the series
            is only known from a PACS query.
        """
        from ..io.dicom import read_dicom, read_plans, several_images_error
        from ..io.dicom.header import quiet_pydicom
        from ..io.dicom.plans import loadable, plan_volumes

        files = self.files(series_uid)
        if not files:
            sources = {s for (s,) in self._con.execute(
                "SELECT DISTINCT source FROM instances WHERE series_uid = ?",
                [series_uid]).fetchall()}
            raise FileNotFoundError(
                f"series {series_uid!r} is only known from a PACS query ({', '.join(sorted(sources))}); "
                "retrieve it first and index the folder it lands in with index.update(folder)"
            )
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(files)} files of series {series_uid!r} are gone "
                f"(e.g. {missing[0]!r}); run index.rescan() to bring the index up to date"
            )
        options = {"irregular": "error", "scaling": "quantitative", "progress": False, **kwargs}
        frames = self._stored_frames(series_uid)
        if frames is None:  # changed files, or frames the index could not store: read them
            images = read_dicom(files, **options)
        else:
            with quiet_pydicom():
                plans, problems = plan_volumes(frames)
            several = loadable(plans, options["irregular"])
            if len(several) > 1:
                images = None
                ids = [p.id for p in several]
            else:
                images = read_plans(plans, problems, **options)
        if images is not None and len(images) == 1:
            return next(iter(images.values()))
        if images is None or len(images) > 1:
            raise several_images_error(
                ids if images is None else list(images), f"series {series_uid!r}",
                "Get all of them keyed by these ids with medlab.io.dicom.read_dicom("
                "index.files(uid)) (as medlab.io.load_all does for a folder)")
        raise images.error(f"series {series_uid!r} cannot be loaded")

    def _stored_frames(self, series_uid: str) -> list[Any] | None:
        """The loader's frames of a series as its scan stored them, in the loader's order.

        None when they cannot stand for the files: a file changed on disk since it
        was indexed (then a warning says so), a file without stored frames (an index
        written before frames were stored, an object that is not an image) or
        with a problem the loader would report.
        """
        from ..io.dicom.frames import frame_from_record

        rows = self._con.execute(
            "SELECT i.path, i.file_size, i.mtime_ns, f.frame_record, f.problem FROM instances i "
            "LEFT JOIN frames f ON f.path = i.path WHERE i.series_uid = ? AND i.source = 'local' "
            "ORDER BY i.path, f.frame_index NULLS FIRST, f.tile NULLS FIRST",
            [series_uid]).fetchall()
        changed = []
        for path, stamp in {r[0]: (r[1], r[2]) for r in rows}.items():
            try:
                st = os.stat(path)
            except OSError:
                return None  # the loader explains it
            if (st.st_size, st.st_mtime_ns) != stamp:
                changed.append(path)
        if changed:
            warnings.warn(
                f"{len(changed)} file(s) of series {series_uid!r} changed since they were "
                f"indexed (e.g. {os.path.basename(changed[0])!r}); the series is read from the "
                "files. Run index.rescan() to bring the index up to date", stacklevel=3)
            return None
        if any(record is None or problem is not None for *_, record, problem in rows):
            return None
        try:
            return [frame_from_record(path, record) for path, _, _, record, _ in rows]
        except (ValueError, TypeError, KeyError):  # a record this version cannot read
            return None

    # ------------------------------------------------------------------ remote rows
    def add_remote(self, rows: pd.DataFrame, *, source: str) -> int:
        """Add PACS query results (rows in the instance schema), marked as remote.

        Rows from the same source with the same study, series and SOP
        instance UIDs replace the ones already there, so repeating a query
        does not duplicate them. Local-file columns (``file_size``,
        ``mtime_ns``) are left null.

        Parameters
        ----------
        rows : pandas.DataFrame
            Columns named as in :data:`INSTANCE_COLUMNS` (missing ones are
            null; ``path`` may hold a retrieve URL).
        source : str
            The server, e.g. ``'orthanc'``; stored as ``'remote:orthanc'``.

        Returns
        -------
        int
            Number of rows added.
        """
        import pandas as pd
        import pyarrow as pa

        self._check_open()
        if not isinstance(rows, pd.DataFrame):
            raise TypeError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"source must name the server, e.g. 'orthanc', got {source!r}")
        names = column_names(INSTANCE_COLUMNS)
        unknown = [c for c in rows.columns if c not in names]
        if unknown:
            raise ValueError(
                f"unknown column(s) {unknown} for the instance schema; use the names of "
                "medlab.cohort.INSTANCE_COLUMNS (e.g. study_uid, series_uid, sop_uid, modality)"
            )
        tag = source if source.startswith("remote:") else f"remote:{source}"
        df = rows.copy()
        df["source"] = tag
        for c in ("file_size", "mtime_ns"):
            df[c] = None
        df = df.reindex(columns=names)
        schema = _arrow_schema(INSTANCE_COLUMNS)
        arrays = []
        for c, field in zip(names, schema, strict=True):
            values = [None if _isna(v) else v for v in df[c].tolist()]
            if field.type == pa.date32():
                values = [_as_date(v) for v in values]
            elif field.type == pa.timestamp("us"):
                values = [_as_datetime(v) for v in values]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"column {c!r} does not convert to {field.type} ({exc}); first values: "
                    f"{values[:3]}"
                ) from exc
        table = pa.Table.from_arrays(arrays, schema=schema)
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_remote", table)
            con.execute(
                "DELETE FROM instances i WHERE i.source = ? AND EXISTS (SELECT 1 FROM _remote r "
                "WHERE r.study_uid IS NOT DISTINCT FROM i.study_uid AND r.series_uid IS NOT "
                "DISTINCT FROM i.series_uid AND r.sop_uid IS NOT DISTINCT FROM i.sop_uid)", [tag])
            con.execute("INSERT INTO instances BY NAME SELECT * FROM _remote")
            con.unregister("_remote")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return len(table)

    # ------------------------------------------------------------------ cohorts
    def save_cohort(self, name: str, selection: Any) -> pd.DataFrame:
        """Save a named cohort: a table of series UIDs with their patient and study.

        Parameters
        ----------
        name : str
            Name of the cohort; saving again under the same name replaces it.
        selection : DataFrame, str or list of str
            A DataFrame with a ``series_uid`` column (e.g. a filtered
            ``index.series``), a SQL condition on the ``series`` view (e.g.
            ``"modality = 'CT' AND is_volume"``), or series UIDs.

        Returns
        -------
        pandas.DataFrame
            The cohort: ``cohort``, ``series_uid``, ``patient_id``,
            ``study_uid``, ``saved_at``.
        """
        import pandas as pd
        import pyarrow as pa

        self._check_open()
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a cohort needs a non-empty name, got {name!r}")
        if isinstance(selection, str):
            try:
                uids = [u for (u,) in self._con.execute(
                    f"SELECT series_uid FROM series WHERE {selection}").fetchall()]
            except Exception as exc:
                raise ValueError(
                    f"the selection {selection!r} is not a valid SQL condition on the series "
                    f"view ({exc}); e.g. \"modality = 'CT' AND is_volume\""
                ) from exc
        elif isinstance(selection, pd.DataFrame):
            if "series_uid" not in selection.columns:
                raise ValueError(
                    "the selection DataFrame has no 'series_uid' column (columns: "
                    f"{list(selection.columns)[:8]}); select rows of index.series"
                )
            uids = [str(u) for u in selection["series_uid"].dropna()]
        elif isinstance(selection, Iterable):
            uids = [str(u) for u in selection]
        else:
            raise TypeError(
                "selection must be a DataFrame with a series_uid column, a SQL condition on "
                f"the series view, or a list of series UIDs; got {type(selection).__name__}"
            )
        uids = list(dict.fromkeys(uids))
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_sel", pa.table({"series_uid": pa.array(uids, pa.string())}))
            unknown = [u for (u,) in con.execute(
                "SELECT series_uid FROM _sel WHERE series_uid NOT IN "
                "(SELECT series_uid FROM instances WHERE series_uid IS NOT NULL)").fetchall()]
            if unknown:
                raise ValueError(
                    f"{len(unknown)} series of the selection are not in the index (e.g. "
                    f"{unknown[0]!r}); select from index.series"
                )
            con.execute("DELETE FROM cohorts WHERE cohort = ?", [name])
            con.execute(
                "INSERT INTO cohorts SELECT ?, s.series_uid, a.patient_id, a.study_uid, ? FROM _sel s "
                "JOIN (SELECT series_uid, mode(patient_id) AS patient_id, mode(study_uid) AS "
                "study_uid FROM instances GROUP BY series_uid) a USING (series_uid)",
                [name, dt.datetime.now().replace(microsecond=0)])
            con.unregister("_sel")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return self.cohort(name)

    def cohort(self, name: str) -> pd.DataFrame:
        """The series of a saved cohort (``cohort``, ``series_uid``, ``patient_id``, ``study_uid``, ``saved_at``)."""
        df = self._df("SELECT * FROM cohorts WHERE cohort = ? ORDER BY patient_id, study_uid, "
                      "series_uid", [name])
        if df.empty:
            raise KeyError(f"no cohort {name!r}; saved cohorts: {self.cohorts() or 'none'}")
        return df

    def cohorts(self) -> list[str]:
        """Names of the saved cohorts."""
        self._check_open()
        return [n for (n,) in self._con.execute(
            "SELECT DISTINCT cohort FROM cohorts ORDER BY cohort").fetchall()]

    def snapshot(self, path: str | os.PathLike | None = None, *, query: str | None = None,
                 root: str | os.PathLike | None = None, pacs: Any = None,
                 progress: bool = True, endpoint: str | None = None,
                 anonymous: bool | None = None) -> dict[str, Any]:
        """Write a manifest of a cohort of this index (see :func:`medlab.cohort.snapshot`).

        Parameters
        ----------
        path : path, optional
            Where to write the manifest (JSON); None only returns it.
        query : str, optional
            A SQL condition on the ``series`` view; None takes every series
            with local files (and, with ``pacs``, those of its servers).
        root : path, optional
            Record local files relative to this folder (default: the indexed
            folder each lies under).
        pacs : DicomWeb, Dimse or list of them, optional
            Servers of series known only from PACS query results: they are
            retrieved to hash them.
        progress : bool
            Show a progress bar while hashing the files.
        endpoint, anonymous
            For series indexed from a bucket: the S3 endpoint and whether
            requests are unsigned.

        Returns
        -------
        dict
            The manifest; :func:`medlab.cohort.restore` fetches it again.
        """
        from ._snapshot import snapshot

        return snapshot(self, path, query=query, root=root, pacs=pacs, progress=progress,
                        endpoint=endpoint, anonymous=anonymous)

    # ------------------------------------------------------------------ life cycle
    def _check_open(self) -> None:
        if self._con is None:
            raise RuntimeError("this index is closed; reopen it with medlab.cohort.open_index(db)")

    def close(self) -> None:
        """Close the database (a file-backed index stays on disk)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.db_path) if self.db_path is not None else "in memory"
        if self._con is None:
            return f"<medlab Index ({where}), closed>"
        n_inst, n_series = self._con.execute(
            "SELECT count(*), count(DISTINCT series_uid) FROM instances").fetchone()
        n_err = self._con.execute("SELECT count(*) FROM errors").fetchone()[0]
        return (f"<medlab Index ({where}): {n_inst} instances, {n_series} series, "
                f"{n_err} files not indexed; roots {self.roots}>")



#: files whose rows a scan inserts at once (each INSERT of the 60 instance columns costs
#: milliseconds whatever its size: batches amortise it, and keep the memory of a scan bounded)
_FLUSH_ROWS = 2048


class _ScanWriter:
    """The writes of one scan, in one transaction: the rows of the files read, inserted in
    batches while the other files are read (in the order of the files), and the series
    geometry of the series the scan touched, computed for each series once its rows are in.

    ``begin`` (after DuckDB is set up) drops the rows of changed and removed files;
    ``add`` takes the result of a chunk (:func:`~medlab.cohort._scan.read_batch`);
    ``flush`` inserts what was added; ``finish`` commits; ``abort`` rolls back.
    """

    def __init__(self, index: Index, *, drop: list[str], roots: list[str],
                 dir_errors: list[tuple], new_roots: list[str]) -> None:
        self.index, self.drop, self.roots = index, drop, roots
        self.dir_errors, self.new_roots = dir_errors, new_roots
        self.active = False
        self.fresh = False
        self.n_errors = 0
        self.pending: list[dict[str, Any]] = []
        self.n_pending = 0
        #: the series the scan touches, and those whose rows before the scan were read
        self.affected: set[str] = set()
        self.looked_up: set[str] = set()
        #: series UID -> its instance inputs (InstanceRecord fields) and frame geometry:
        #: the rows the index held before the scan, then the scan's
        self.instances: dict[str, list[tuple]] = {}
        self.frames: dict[str, list[tuple]] = {}
        #: series UID -> its SERIES_COLUMNS row, and the series whose row is out of date
        self.geometry: dict[str, tuple] = {}
        self.dirty: set[str] = set()

    def begin(self) -> None:
        import pyarrow as pa

        index = self.index
        con = index._con
        self.fresh = not index._holds_local_rows()
        con.execute("BEGIN TRANSACTION")
        self.active = True
        if self.drop:
            con.register("_drop", pa.table({"path": pa.array(self.drop, pa.string())}))
            self.affected |= {u for (u,) in con.execute(
                "SELECT DISTINCT series_uid FROM instances WHERE source = 'local' AND "
                "series_uid IS NOT NULL AND path IN (SELECT path FROM _drop)").fetchall()}
            for table in ("instances", "frames", "errors"):
                extra = " AND source = 'local'" if table == "instances" else ""
                con.execute(f"DELETE FROM {table} WHERE path IN (SELECT path FROM _drop){extra}")
            con.unregister("_drop")
        # folder errors are recomputed on every scan of their root
        old_dir_errors = [p for (p,) in con.execute(
            "SELECT path FROM errors WHERE file_size IS NULL").fetchall()
            if any(_under(p, r) for r in self.roots)]
        for p in old_dir_errors:
            con.execute("DELETE FROM errors WHERE path = ? AND file_size IS NULL", [p])
        self._look_up(set(self.affected))
        self.dirty |= self.affected

    def _look_up(self, uids: set[str]) -> None:
        """Keep the rows the index holds of the series ``uids`` (none of them inserted by
        this scan yet): their geometry is computed from these and the new rows."""
        uids = uids - self.looked_up  # (not in place: the caller's set is kept)
        if not uids:
            return
        self.looked_up |= uids
        if self.fresh:  # an index without local files: nothing to look up
            return
        inst, frames = self.index._series_inputs(uids)
        for r in inst:
            self.instances.setdefault(r[0], []).append(r)
        for f in frames:
            self.frames.setdefault(f[1], []).append(f)

    def add(self, batch: dict[str, Any]) -> None:
        self.pending.append(batch)
        self.n_pending += batch["instances"].num_rows + len(batch["errors"])
        self.n_errors += len(batch["errors"])
        if self.n_pending >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Insert the rows added since the last flush; compute the geometry of the series
        whose rows are all in (all but the one of the last file, which the next files may
        continue; a series whose files come back later is computed again)."""
        if not self.pending or not self.active:
            return
        import pyarrow as pa

        batches, self.pending, self.n_pending = self.pending, [], 0
        inputs = [r for b in batches for r in b["inputs"]]
        uids = {r[0] for r in inputs if r[0] is not None}
        # the rows before this scan of the series seen first here (before these are inserted)
        self._look_up(uids)
        self.affected |= uids
        self.dirty |= uids
        for r in inputs:
            if r[0] is not None:
                self.instances.setdefault(r[0], []).append(r)
        for b in batches:
            for f in b["geometry"]:
                self.frames.setdefault(f[1], []).append(f)
        index = self.index
        # (one chunk per column: DuckDB scans an Arrow table of many chunks much slower)
        for table, columns in (("instances", INSTANCE_COLUMNS), ("frames", FRAME_COLUMNS)):
            index._insert(table, columns,
                          pa.concat_tables([b[table] for b in batches]).combine_chunks())
        index._insert("errors", ERROR_COLUMNS, [e for b in batches for e in b["errors"]])
        self._compute(self.dirty - {inputs[-1][0]} if inputs else set(self.dirty))

    def _compute(self, uids: set[str]) -> None:
        if not uids:
            return
        self.dirty -= uids
        rows = series_rows(
            ((u, InstanceRecord(*r[1:])) for u in uids for r in self.instances.get(u, ())),
            # FRAME_COLUMNS order: path, series_uid, then the FrameRecord fields
            ((u, FrameRecord(f[0], *f[2:12], f[12] or 0, f[13]))
             for u in uids for f in self.frames.get(u, ())))
        for uid in uids:  # a series whose files were all dropped has no row any more
            self.geometry.pop(uid, None)
        self.geometry.update((r[0], r) for r in rows)

    def finish(self) -> None:
        if not self.active:
            return
        self.flush()
        self._compute(set(self.dirty))
        index = self.index
        index._insert("errors", ERROR_COLUMNS, self.dir_errors)
        index._replace_series_geometry(
            self.affected, [self.geometry[u] for u in self.geometry if u in self.affected],
            new=self.fresh)
        index._set_meta("roots", json.dumps(self.new_roots))
        index._con.execute("COMMIT")
        self.active = False

    def abort(self) -> None:
        if self.active:
            self.active = False
            self.index._con.execute("ROLLBACK")


def scan(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    db: str | os.PathLike | None = None,
    progress: bool = True,
    client: Any = None,
    workers: int | None = None,
) -> Index:
    """Index the DICOM headers of folders and files (never the pixel data).

    Parameters
    ----------
    paths : path or list of paths
        Folders (searched recursively; files recognised by content, hidden
        ones skipped) and/or files.
    db : path, optional
        The DuckDB file to keep the index in. If it holds an index already,
        that index is updated incrementally with ``paths``. None keeps the
        index in memory.
    progress : bool
        Show a progress bar while reading many headers.
    client : dask.distributed.Client or str, optional
        Read the headers on this dask cluster (a Client, or a scheduler
        address such as ``'tcp://10.0.0.5:8786'``); the files must be
        readable at the same paths on the workers.
    workers : int, optional
        Local worker processes (default: ``os.cpu_count()``); 1 reads in
        this process.

    Returns
    -------
    Index
        With ``last_report`` (a :class:`ScanReport`) describing the scan.

    Examples
    --------
    >>> import medlab as ml
    >>> index = ml.cohort.scan(ml.data.fetch("sts-cohort"), progress=False)  # doctest: +SKIP
    >>> index.series[["modality", "n_instances", "is_volume"]]  # doctest: +SKIP
    """
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    roots = _as_paths(paths)
    for p in roots:
        if not os.path.exists(p):
            raise FileNotFoundError(
                f"no such file or folder: {p!r}; pass existing DICOM folders or files")
    if db is None:
        index = Index._in_memory()  # a new index: the headers are read while DuckDB starts
    else:
        _create_index_file(db, roots)
        con, db_path = _connect(db)
        try:
            tables = _tables(con)
            if tables and "medlab_meta" not in tables:
                raise ValueError(
                    f"{str(db_path)!r} is a DuckDB database but not a medlab index (it holds "
                    f"{', '.join(sorted(tables)[:5])}); choose another file for db=")
            index = Index(con, db_path)
        except BaseException as exc:
            con.close()
            if _is_duckdb_error(exc):
                raise index_file_error(db_path, exc) from exc
            raise
    try:
        index._scan(roots, progress=progress, workers=workers, client=client)
    except BaseException:
        index.close()
        raise
    return index


def open_index(db: str | os.PathLike, *, read_only: bool = False) -> Index:
    """Reopen an index saved in a DuckDB file by :func:`scan`.

    Parameters
    ----------
    db : path
        The DuckDB file.
    read_only : bool
        Open without the right to change it; rescans and cohorts need
        read_only=False.

    Raises
    ------
    FileNotFoundError
        No file at ``db``.
    medlab.errors.IndexFileError
        The file is damaged (truncated, overwritten: delete it and scan
        again), or another process has it open for writing.
    ValueError
        The file is a DuckDB database but not a medlab index.

    Notes
    -----
    Concurrency follows DuckDB's: one process may open an index for writing
    (a scan, or ``open_index(db)``), *or* any number of processes may open
    it with ``read_only=True`` at once -- never both. A second reader (a
    second notebook, a report run) therefore opens it with
    ``read_only=True`` while no process writes to it; to read while a scan
    runs, copy the file (after the scan's last commit) and open the copy.
    A process that tries to write while another holds the file gets an
    :class:`~medlab.errors.IndexFileError` that says so. A scan killed at
    any moment leaves an index that the next ``scan`` or ``rescan()``
    completes: the file is created with its roots atomically, and each
    scan writes its rows in one transaction.
    """
    path = Path(db).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"no index file at {str(path)!r}; create one with medlab.cohort.scan(folder, db=...)")
    con, db_path = _connect(path, read_only=read_only)
    try:
        tables = _tables(con)
        if not tables:
            raise ValueError(
                f"{str(path)!r} is an empty DuckDB file: the scan that created it stopped before "
                "it recorded anything. Run medlab.cohort.scan(folders, db=...) with this file "
                "again")
        if "medlab_meta" not in tables or "instances" not in tables:
            raise ValueError(
                f"{str(path)!r} is a DuckDB file but not a medlab index (no medlab_meta/instances "
                "tables); create one with medlab.cohort.scan(folder, db=...)")
        if read_only:
            index = Index.__new__(Index)
            index._con, index.db_path, index.last_report = con, db_path, None
            index.roots  # noqa: B018 - reads the file: a damaged one fails here
            return index
        return Index(con, db_path)
    except BaseException as exc:
        con.close()
        if _is_duckdb_error(exc):
            raise index_file_error(db_path, exc) from exc
        raise


def _is_damage(exc: BaseException) -> bool:
    """Whether a DuckDB error means a damaged file (not a bad query or a lock)."""
    try:
        import duckdb
    except ImportError:  # pragma: no cover
        return False
    damage = (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException,
              duckdb.FatalException)
    return isinstance(exc, damage) and "lock" not in str(exc).lower()


def _is_duckdb_error(exc: BaseException) -> bool:
    try:
        import duckdb
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, duckdb.Error)


def _create_index_file(db: str | os.PathLike, roots: list[str]) -> None:
    """Create a new index file with its tables and roots, atomically.

    The file is written as ``<db>.tmp`` and renamed, so a process killed at any
    moment leaves either no index file or one that knows its roots (its
    :meth:`Index.rescan` then reads whatever the scan did not). Nothing is done
    when ``db`` exists.
    """
    path = Path(db).expanduser().resolve()
    if path.exists() or not path.parent.is_dir():
        return  # reopened as it is; _connect explains a missing folder
    tmp = path.with_name(path.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)  # left by a scan killed while creating its file
    con, _ = _connect(tmp)
    try:
        index = Index(con, tmp)
        index._set_meta("roots", json.dumps([_norm_root(p) for p in roots]))
    finally:
        con.close()
    wal = tmp.with_name(tmp.name + ".wal")
    if wal.exists():  # pragma: no cover - DuckDB checkpoints on close
        con, _ = _connect(tmp)
        con.execute("CHECKPOINT")
        con.close()
    os.replace(tmp, path)
