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
        "PatientID": "mode(nullif(i.patient_id, '') ORDER BY i.patient_id)",
        "SeriesInstanceUID": "i.series_uid",
        "StudyInstanceUID": "mode(i.study_uid ORDER BY i.study_uid)",
        "source_DOI": "CAST(NULL AS VARCHAR)",
        "PatientAge": "mode(nullif(i.patient_age, '') ORDER BY i.patient_age)",
        "PatientSex": "mode(nullif(i.patient_sex, '') ORDER BY i.patient_sex)",
        "StudyDate": "CAST(min(i.study_date) AS VARCHAR)",
        "StudyDescription": "mode(nullif(i.study_description, '') ORDER BY i.study_description)",
        "BodyPartExamined": "mode(nullif(i.body_part, '') ORDER BY i.body_part)",
        "Modality": "mode(nullif(i.modality, '') ORDER BY i.modality)",
        "SOPClassUID": "mode(i.sop_class_uid ORDER BY i.sop_class_uid)",
        "sop_class_name": "mode(sc.name ORDER BY sc.name)",
        "TransferSyntaxUID": "mode(i.transfer_syntax ORDER BY i.transfer_syntax)",
        "transfer_syntax_name": "mode(ts.name ORDER BY ts.name)",
        "PhotometricInterpretation":
            "string_agg(DISTINCT i.photometric, ',' ORDER BY i.photometric)",
        # not in medlab's instance schema: unknown stays unknown
        "PixelRepresentation": "CAST(NULL AS VARCHAR)",
        "Manufacturer": "mode(nullif(i.manufacturer, '') ORDER BY i.manufacturer)",
        "ManufacturerModelName": "mode(nullif(i.model, '') ORDER BY i.model)",
        "SeriesDate": "CAST(NULL AS VARCHAR)",
        "SeriesDescription": "mode(nullif(i.series_description, '') ORDER BY i.series_description)",
        "SeriesNumber": "CAST(mode(i.series_number ORDER BY i.series_number) AS VARCHAR)",
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


#: IDC's volume_geometry_index, ported to DuckDB over medlab's ``instances`` (the same
#: checks, tolerances and SOP classes as idc-index-data's volume_geometry_index.sql)
_VOLUME_GEOMETRY_SQL = """
WITH raw AS (
  SELECT series_uid AS SeriesInstanceUID, coalesce(sop_uid, path) AS sop,
    image_position_mm[1] AS ippX, image_position_mm[2] AS ippY, image_position_mm[3] AS ippZ,
    image_orientation AS iop,
    image_orientation[1] AS x0, image_orientation[2] AS x1, image_orientation[3] AS x2,
    image_orientation[4] AS y0, image_orientation[5] AS y1, image_orientation[6] AS y2,
    [pixel_spacing_row_mm, pixel_spacing_col_mm] AS pixelSpacing,
    "rows" AS pixelRows, "columns" AS pixelColumns
  FROM instances
  WHERE sop_class_uid IN ('1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.4',
                          '1.2.840.10008.5.1.4.1.1.128')
    AND series_uid NOT IN (SELECT series_uid FROM instances
                           WHERE series_uid IS NOT NULL AND (
                             list_contains(string_split(image_type, '\\'), 'LOCALIZER')
                             OR image_type LIKE '%MIP%'))),
cp AS (
  SELECT *, x1 * y2 - x2 * y1 AS cx, x2 * y0 - x0 * y2 AS cy, x0 * y1 - x1 * y0 AS cz FROM raw),
proj AS (
  SELECT *, sqrt(cx * cx + cy * cy + cz * cz) AS mag,
    ippX * cx + ippY * cy + ippZ * cz AS slicePosition,
    ippX * x0 + ippY * x1 + ippZ * x2 AS inPlaneRow,
    ippX * y0 + ippY * y1 + ippZ * y2 AS inPlaneCol
  FROM cp),
proj2 AS (
  SELECT *,
    lead(slicePosition) OVER (PARTITION BY SeriesInstanceUID ORDER BY slicePosition)
      - slicePosition AS slice_interval,
    (max(slicePosition) OVER (PARTITION BY SeriesInstanceUID)
      - min(slicePosition) OVER (PARTITION BY SeriesInstanceUID))
      / nullif(count(*) OVER (PARTITION BY SeriesInstanceUID) - 1, 0) AS expected_spacing
  FROM proj),
checks AS (
  SELECT SeriesInstanceUID,
    count(DISTINCT iop) = 1 AS single_orientation,
    min(mag) BETWEEN 0.99 AND 1.01 AND max(mag) BETWEEN 0.99 AND 1.01 AS orthogonal_orientation,
    count(DISTINCT sop) = count(DISTINCT slicePosition) AS unique_slice_positions,
    max(inPlaneRow) - min(inPlaneRow) < 0.1 AS consistent_in_plane_row,
    max(inPlaneCol) - min(inPlaneCol) < 0.1 AS consistent_in_plane_col,
    count(DISTINCT pixelSpacing) = 1 AS consistent_pixel_spacing,
    count(DISTINCT pixelRows) = 1 AND count(DISTINCT pixelColumns) = 1
      AS consistent_image_dimensions,
    max(abs(slice_interval - expected_spacing)) < 0.01 * abs(any_value(expected_spacing))
      AS uniform_slice_spacing,
    CAST(round(degrees(acos(least(1.0, greatest(abs(any_value(cx)), abs(any_value(cy)),
      abs(any_value(cz))) / any_value(mag)))), 2) AS FLOAT) AS obliquity_degrees,
    arg_min([ippX, ippY, ippZ], slicePosition) AS _origin,
    arg_min(iop, slicePosition) AS _iop,
    any_value(expected_spacing) AS _spacing
  FROM proj2 GROUP BY SeriesInstanceUID)
SELECT SeriesInstanceUID, single_orientation, orthogonal_orientation, unique_slice_positions,
  consistent_in_plane_row, consistent_in_plane_col, consistent_pixel_spacing,
  consistent_image_dimensions, uniform_slice_spacing, obliquity_degrees,
  coalesce(single_orientation AND orthogonal_orientation AND unique_slice_positions
    AND consistent_in_plane_row AND consistent_in_plane_col AND consistent_pixel_spacing
    AND consistent_image_dimensions AND uniform_slice_spacing, false)
    AS regularly_spaced_3d_volume,
  CASE WHEN regularly_spaced_3d_volume THEN CAST(_origin AS FLOAT[]) END AS origin_patient,
  CASE WHEN regularly_spaced_3d_volume THEN CAST(_iop AS FLOAT[]) END
    AS ImageOrientationPatient,
  CASE WHEN regularly_spaced_3d_volume THEN CAST(_spacing AS FLOAT) END AS slice_spacing_mm
FROM checks
"""


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
    con.execute("CREATE OR REPLACE TEMP VIEW volume_geometry_index AS " + _VOLUME_GEOMETRY_SQL)
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
    ``index=`` also ``local_index`` (the local series, IDC-shaped) and
    ``volume_geometry_index`` (IDC's geometry checks of CT, MR and PET series
    -- ``regularly_spaced_3d_volume``, ``uniform_slice_spacing``, ... --
    computed from the local headers as IDC computes them; idc-index-data does
    not bundle IDC's own), so that
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
