"""NCI Imaging Data Commons (IDC): its bundled index, offline, next to medlab's.

The ``idc-index-data`` package ships IDC's series index (about a million
series) as Parquet files; :func:`idc_sql` queries them with DuckDB, without
network. The same function gives medlab's index an IDC-shaped view -- IDC's
column names and meanings (``collection_id``, ``PatientID``,
``StudyInstanceUID``, ``SeriesInstanceUID``, ``Modality``,
``BodyPartExamined``, ``SeriesDescription``, ``instanceCount``,
``series_size_MB``, ...) computed from the local instance rows -- so that a
query written for ``idc-index`` (``SELECT ... FROM index``) runs unchanged on
local data, and the two can be joined (``local_index`` and ``idc_index``).

Columns IDC fills from its own curation (``source_DOI``,
``license_short_name``, ``aws_bucket``, ``crdc_series_uuid``,
``series_aws_url``, ``series_init_idc_version``, ...) are null in the local
view unless the series is in IDC: then they are IDC's values (joined on
``SeriesInstanceUID``), since the same series is the same object.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    import pandas as pd

    from ._index import Index

__all__ = ["idc_index_tables", "idc_series_version", "idc_sql", "idc_version"]

#: IDC's series columns, in IDC's order, as read from idc-index-data 25's idc_index.parquet
#: (tests check this list against the installed Parquet)
IDC_COLUMNS = (
    "collection_id", "analysis_result_id", "PatientID", "SeriesInstanceUID", "StudyInstanceUID",
    "source_DOI", "PatientAge", "PatientSex", "StudyDate", "StudyDescription",
    "BodyPartExamined", "Modality", "SOPClassUID", "sop_class_name", "TransferSyntaxUID",
    "transfer_syntax_name", "PhotometricInterpretation", "PixelRepresentation", "Manufacturer",
    "ManufacturerModelName", "SeriesDate", "SeriesDescription", "SeriesNumber",
    "instanceCount", "license_short_name", "series_init_idc_version",
    "series_revised_idc_version", "aws_bucket", "crdc_series_uuid", "series_aws_url",
    "series_size_MB",
)

#: IDC's curated columns: taken from IDC's row for a local series that IDC holds too
_FROM_IDC = ("collection_id", "analysis_result_id", "source_DOI", "license_short_name",
             "series_init_idc_version", "series_revised_idc_version", "aws_bucket",
             "crdc_series_uuid", "series_aws_url")

_INSTALL = "pip install 'medlab[cohort]' (or pip install idc-index-data)"

_lock = threading.Lock()
_idc_con: Any = None


def idc_index_tables() -> dict[str, Path]:
    """The Parquet tables bundled by the installed ``idc-index-data``.

    Returns
    -------
    dict
        Table name (``idc_index``, ``prior_versions_index``,
        ``collections_index``, ...) -> Parquet file.

    Raises
    ------
    medlab.errors.MissingDependencyError
        ``idc-index-data`` is not installed.
    """
    try:
        import idc_index_data
    except ImportError as exc:
        raise MissingDependencyError(
            f"IDC's offline index comes from the idc-index-data package; {_INSTALL}") from exc
    out = {}
    for name, meta in idc_index_data.INDEX_METADATA.items():
        p = meta.get("parquet_filepath")
        if p is not None:
            out[name] = Path(p)
    return out


def idc_version() -> int:
    """IDC data release of the installed offline index (e.g. 25)."""
    con = _con()
    with _lock:
        rows = con.execute("SELECT max(idc_version) FROM version_metadata_index").fetchall()
    return int(rows[0][0])


def idc_series_version(series_uids: list[str]) -> int | None:
    """The IDC release of the installed index if any of these series are in it, else None.

    None too when ``idc-index-data`` is not installed (nothing is known).
    """
    try:
        con = _con()
    except MissingDependencyError:
        return None
    import pyarrow as pa

    with _lock:
        con.register("_uids", pa.table({"uid": pa.array([str(u) for u in series_uids],
                                                           pa.string())}))
        try:
            (n,) = con.execute('SELECT count(*) FROM idc_index WHERE "SeriesInstanceUID" IN '
                               "(SELECT uid FROM _uids)").fetchall()[0]
        finally:
            con.unregister("_uids")
    return idc_version() if n else None


def _idc_views(con: Any) -> None:
    for name, path in idc_index_tables().items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM "
                    f"read_parquet('{_sql_str(path)}')")


def _sql_str(v: Any) -> str:
    return str(v).replace("'", "''")


def _con() -> Any:
    """A shared in-memory DuckDB connection with IDC's tables as views."""
    global _idc_con
    with _lock:
        if _idc_con is None:
            tables = idc_index_tables()  # raises when not installed
            import duckdb

            con = duckdb.connect()
            _idc_views(con)
            con.execute('CREATE OR REPLACE TEMP VIEW "index" AS SELECT * FROM idc_index')
            assert "idc_index" in tables
            _idc_con = con
        return _idc_con


def _uid_names(kind: str) -> list[tuple[str, str]]:
    from pydicom.uid import UID_dictionary

    return [(uid, v[0]) for uid, v in UID_dictionary.items() if v[1] == kind]


def _local_view_sql(*, collection_id: str, with_idc: bool) -> str:
    """SQL of the IDC-shaped series view over medlab's ``instances``."""
    local = {
        "collection_id": f"'{_sql_str(collection_id)}'",
        "analysis_result_id": "CAST(NULL AS VARCHAR)",
        "PatientID": "mode(nullif(i.patient_id, ''))",
        "SeriesInstanceUID": "i.series_uid",
        "StudyInstanceUID": "mode(i.study_uid)",
        "source_DOI": "CAST(NULL AS VARCHAR)",
        "PatientAge": "mode(nullif(i.patient_age, ''))",
        "PatientSex": "mode(nullif(i.patient_sex, ''))",
        "StudyDate": "CAST(min(i.study_date) AS VARCHAR)",
        "StudyDescription": "mode(nullif(i.study_description, ''))",
        "BodyPartExamined": "mode(nullif(i.body_part, ''))",
        "Modality": "mode(nullif(i.modality, ''))",
        "SOPClassUID": "mode(i.sop_class_uid)",
        "sop_class_name": "mode(sc.name)",
        "TransferSyntaxUID": "mode(i.transfer_syntax)",
        "transfer_syntax_name": "mode(ts.name)",
        "PhotometricInterpretation":
            "string_agg(DISTINCT i.photometric, ',' ORDER BY i.photometric)",
        # not in medlab's instance schema: unknown stays unknown
        "PixelRepresentation": "CAST(NULL AS VARCHAR)",
        "Manufacturer": "mode(nullif(i.manufacturer, ''))",
        "ManufacturerModelName": "mode(nullif(i.model, ''))",
        "SeriesDate": "CAST(NULL AS VARCHAR)",
        "SeriesDescription": "mode(nullif(i.series_description, ''))",
        "SeriesNumber": "CAST(mode(i.series_number) AS VARCHAR)",
        "instanceCount": "CAST(count(DISTINCT coalesce(i.sop_uid, i.path)) AS BIGINT)",
        "license_short_name": "CAST(NULL AS VARCHAR)",
        "series_init_idc_version": "CAST(NULL AS BIGINT)",
        "series_revised_idc_version": "CAST(NULL AS BIGINT)",
        "aws_bucket": "CAST(NULL AS VARCHAR)",
        "crdc_series_uuid": "CAST(NULL AS VARCHAR)",
        "series_aws_url": "CAST(NULL AS VARCHAR)",
        "series_size_MB": "sum(i.file_size) / 1000000.",
    }
    agg = ",\n  ".join(f'{sql} AS "{name}"' for name, sql in local.items())
    base = (f"SELECT {agg}\nFROM instances i "
            "LEFT JOIN _medlab_sop_classes sc ON sc.uid = i.sop_class_uid "
            "LEFT JOIN _medlab_transfer_syntaxes ts ON ts.uid = i.transfer_syntax "
            "WHERE i.series_uid IS NOT NULL GROUP BY i.series_uid")
    if not with_idc:
        return base
    cols = ", ".join(
        f'coalesce(g."{c}", l."{c}") AS "{c}"' if c in _FROM_IDC else f'l."{c}"'
        for c in IDC_COLUMNS)
    return (f"SELECT {cols} FROM ({base}) l LEFT JOIN idc_index g "
            'ON g."SeriesInstanceUID" = l."SeriesInstanceUID"')


def _prepare_local(index: Index, *, collection_id: str) -> Any:
    import pyarrow as pa

    index._check_open()
    # a cursor of its own: the temporary views and tables stay out of the index's connection
    con = index._con.cursor()
    for table, kind in (("_medlab_sop_classes", "SOP Class"),
                        ("_medlab_transfer_syntaxes", "Transfer Syntax")):
        pairs = _uid_names(kind)
        con.register(table, pa.table({"uid": [u for u, _ in pairs],
                                      "name": [n for _, n in pairs]}))
    try:
        _idc_views(con)
        with_idc = True
    except MissingDependencyError:
        with_idc = False
    con.execute("CREATE OR REPLACE TEMP VIEW local_index AS "
                + _local_view_sql(collection_id=collection_id, with_idc=with_idc))
    con.execute('CREATE OR REPLACE TEMP VIEW "index" AS SELECT * FROM local_index')
    return con


def idc_sql(query: str, *, index: Index | None = None,
            collection_id: str = "local") -> pd.DataFrame:
    """Run a query written for ``idc-index`` on IDC's offline index or on a local index.

    Parameters
    ----------
    query : str
        DuckDB SQL as in ``idc_index.IDCClient.sql_query``: the table
        ``index`` holds one row per series with IDC's columns.
    index : medlab.cohort.Index, optional
        None: ``index`` is IDC's bundled index (idc-index-data, offline).
        A medlab index: ``index`` is its IDC-shaped view, so the same query
        runs on local data.
    collection_id : str
        The ``collection_id`` of local series that IDC does not hold.

    Returns
    -------
    pandas.DataFrame

    Notes
    -----
    Tables available in every query: ``idc_index`` (IDC's series),
    ``prior_versions_index``, ``collections_index``,
    ``version_metadata_index``, ``analysis_results_index`` (as bundled); with
    ``index=`` also ``local_index`` (the local series, IDC-shaped), so that
    e.g. ``SELECT * FROM local_index JOIN idc_index USING
    ("SeriesInstanceUID")`` lists the local series IDC holds too.

    Examples
    --------
    >>> ml.cohort.idc_sql("SELECT Modality, count(*) AS n FROM index GROUP BY Modality")  # doctest: +SKIP
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a SQL string, got {type(query).__name__}")
    if not isinstance(collection_id, str):
        raise TypeError(f"collection_id must be a string, got {type(collection_id).__name__}")
    if index is None:
        con = _con()
        with _lock:
            return _run(con, query, "index (IDC's series), idc_index, prior_versions_index, "
                        "collections_index, version_metadata_index")
    con = _prepare_local(index, collection_id=collection_id)
    try:
        with index._damage_named():
            return _run(con, query, "index (the local series, IDC-shaped), local_index, "
                        "idc_index, prior_versions_index, collections_index")
    finally:
        con.close()


def _run(con: Any, query: str, tables: str) -> pd.DataFrame:
    import duckdb

    try:
        return con.execute(query).df()
    except duckdb.Error as exc:
        raise ValueError(f"the IDC-style query failed: {exc}. Tables: {tables}") from exc
