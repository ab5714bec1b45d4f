"""DuckDB storage of the cohort index: table schemas, views, value conversion, connections."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._optional import import_optional
from ._schema import (
    ERROR_COLUMNS,
    FRAME_COLUMNS,
    INSTANCE_COLUMNS,
    SERIES_COLUMNS,
    Column,
)

if TYPE_CHECKING:

    pass



COHORT_COLUMNS: tuple[Column, ...] = (
    Column("cohort", "VARCHAR", None, "name of the cohort"),
    Column("series_uid", "VARCHAR", None, ""),
    Column("patient_id", "VARCHAR", None, ""),
    Column("study_uid", "VARCHAR", None, ""),
    Column("saved_at", "TIMESTAMP", None, "when the cohort was saved (local time)"),
)

# ------------------------------------------------------------------------ schema
_ARROW_TYPES = {"VARCHAR": "string", "BIGINT": "int64", "INTEGER": "int32", "DOUBLE": "float64",
                "DATE": "date32", "TIMESTAMP": "timestamp", "BOOLEAN": "bool_",
                "DOUBLE[]": "list_double"}


def _arrow_schema(columns: tuple[Column, ...]) -> Any:
    import pyarrow as pa

    def typ(dtype: str) -> Any:
        kind = _ARROW_TYPES[dtype]
        if kind == "timestamp":
            return pa.timestamp("us")
        if kind == "list_double":
            return pa.list_(pa.float64())
        return getattr(pa, kind)()

    return pa.schema([(c.name, typ(c.dtype)) for c in columns])


def _arrow_table(columns: tuple[Column, ...], rows: list[tuple]) -> Any:
    """Rows (tuples in the order of ``columns``) as an Arrow table of the index schema."""
    import pyarrow as pa

    schema = _arrow_schema(columns)
    if not rows:
        return schema.empty_table()
    cols = list(zip(*rows, strict=True))
    arrays = [pa.array(values, type=field.type) for values, field in zip(cols, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _ddl(table: str, columns: tuple[Column, ...]) -> str:
    cols = ", ".join(f'"{c.name}" {c.dtype}' for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


_INSTANCE_AT = {c.name: i for i, c in enumerate(INSTANCE_COLUMNS)}
#: the instance columns the series checks read (InstanceRecord, after the series UID)
_INSTANCE_INPUT = ("series_uid", "path", "modality", "sop_class_uid", "transfer_syntax",
                   "bits_stored")

_TABLES = {"instances": INSTANCE_COLUMNS, "frames": FRAME_COLUMNS, "errors": ERROR_COLUMNS,
           "series_geometry": SERIES_COLUMNS, "cohorts": COHORT_COLUMNS}

#: series-level descriptive columns of the ``series`` view: (name, SQL aggregate)
_SERIES_DESCRIPTIVE = (
    ("source", "CASE WHEN bool_or(source = 'local') THEN 'local' ELSE min(source) END"),
    ("patient_id", "mode(patient_id ORDER BY patient_id)"),
    ("patient_name", "mode(patient_name ORDER BY patient_name)"),
    ("patient_sex", "mode(patient_sex ORDER BY patient_sex)"),
    ("patient_age", "mode(patient_age ORDER BY patient_age)"),
    ("study_uid", "mode(study_uid ORDER BY study_uid)"),
    ("study_date", "min(study_date)"),
    ("study_description", "mode(study_description ORDER BY study_description)"),
    ("accession_number", "mode(accession_number ORDER BY accession_number)"),
    ("institution", "mode(institution ORDER BY institution)"),
    ("series_number", "mode(series_number ORDER BY series_number)"),
    ("series_description", "mode(series_description ORDER BY series_description)"),
    ("modality", "mode(modality ORDER BY modality)"),
    ("body_part", "mode(body_part ORDER BY body_part)"),
    ("manufacturer", "mode(manufacturer ORDER BY manufacturer)"),
    ("model", "mode(model ORDER BY model)"),
    ("protocol_name", "mode(protocol_name ORDER BY protocol_name)"),
    ("frame_of_reference_uid", "mode(frame_of_reference_uid ORDER BY frame_of_reference_uid)"),
    ("sop_class_uid", "mode(sop_class_uid ORDER BY sop_class_uid)"),
    ("first_acquisition", "min(acquisition_datetime)"),
    ("last_acquisition", "max(acquisition_datetime)"),
    ("rows", "mode(rows ORDER BY rows)"),
    ("columns", "mode(columns ORDER BY columns)"),
    ("pixel_spacing_row_mm", "mode(pixel_spacing_row_mm ORDER BY pixel_spacing_row_mm)"),
    ("pixel_spacing_col_mm", "mode(pixel_spacing_col_mm ORDER BY pixel_spacing_col_mm)"),
    ("imager_pixel_spacing_row_mm", "mode(imager_pixel_spacing_row_mm ORDER BY imager_pixel_spacing_row_mm)"),
    ("imager_pixel_spacing_col_mm", "mode(imager_pixel_spacing_col_mm ORDER BY imager_pixel_spacing_col_mm)"),
    ("magnification_factor", "mode(magnification_factor ORDER BY magnification_factor)"),
    ("pixel_spacing_calibration", "mode(pixel_spacing_calibration ORDER BY pixel_spacing_calibration)"),
    ("slice_thickness_mm", "mode(slice_thickness_mm ORDER BY slice_thickness_mm)"),
    ("spacing_between_slices_mm", "mode(spacing_between_slices_mm ORDER BY spacing_between_slices_mm)"),
    ("image_orientation", "any_value(image_orientation)"),
    ("photometric", "mode(photometric ORDER BY photometric)"),
    ("bits_stored", "mode(bits_stored ORDER BY bits_stored)"),
    ("transfer_syntax", "mode(transfer_syntax ORDER BY transfer_syntax)"),
    ("n_transfer_syntaxes", "CAST(count(DISTINCT transfer_syntax) AS INTEGER)"),
    ("kvp", "mode(kvp ORDER BY kvp)"),
    ("echo_time_s", "mode(echo_time_s ORDER BY echo_time_s)"),
    ("repetition_time_s", "mode(repetition_time_s ORDER BY repetition_time_s)"),
    ("flip_angle_deg", "mode(flip_angle_deg ORDER BY flip_angle_deg)"),
    ("magnetic_field_t", "mode(magnetic_field_t ORDER BY magnetic_field_t)"),
    ("contrast_agent", "mode(contrast_agent ORDER BY contrast_agent)"),
    ("units", "mode(units ORDER BY units)"),
    ("radiopharmaceutical", "mode(radiopharmaceutical ORDER BY radiopharmaceutical)"),
    ("injected_dose_bq", "mode(injected_dose_bq ORDER BY injected_dose_bq)"),
    ("half_life_s", "mode(half_life_s ORDER BY half_life_s)"),
    ("injection_time", "mode(injection_time ORDER BY injection_time)"),
    ("burned_in_annotation", "mode(burned_in_annotation ORDER BY burned_in_annotation)"),
    ("size_bytes", "CAST(sum(file_size) AS BIGINT)"),
)


def _series_view() -> str:
    derived = [c.name for c in SERIES_COLUMNS if c.name not in ("series_uid", "n_instances",
                                                                 "n_frames")]
    agg = ",\n    ".join(f'{sql} AS "{name}"' for name, sql in _SERIES_DESCRIPTIVE)
    return f"""CREATE OR REPLACE VIEW series AS
WITH agg AS (
  SELECT series_uid,
    count(DISTINCT coalesce(sop_uid, path)) AS _n_instances,
    sum(n_frames) AS _n_frames,
    {agg}
  FROM instances WHERE series_uid IS NOT NULL GROUP BY series_uid)
SELECT agg.series_uid,
  CAST(coalesce(g.n_instances, agg._n_instances) AS INTEGER) AS n_instances,
  CAST(coalesce(g.n_frames, agg._n_frames) AS INTEGER) AS n_frames,
  {", ".join(f"g.{c}" for c in derived)},
  agg.* EXCLUDE (series_uid, _n_instances, _n_frames)
FROM agg LEFT JOIN series_geometry g ON g.series_uid = agg.series_uid"""


_STUDIES_VIEW = """CREATE OR REPLACE VIEW studies AS
SELECT study_uid,
  mode(patient_id ORDER BY patient_id) AS patient_id, mode(patient_name ORDER BY patient_name) AS patient_name,
  min(study_date) AS study_date, mode(study_description ORDER BY study_description) AS study_description,
  mode(accession_number ORDER BY accession_number) AS accession_number, mode(institution ORDER BY institution) AS institution,
  string_agg(DISTINCT modality, ',' ORDER BY modality) AS modalities,
  CAST(count(DISTINCT series_uid) AS INTEGER) AS n_series,
  CAST(count(DISTINCT coalesce(sop_uid, path)) AS INTEGER) AS n_instances,
  CAST(sum(file_size) AS BIGINT) AS size_bytes
FROM instances WHERE study_uid IS NOT NULL GROUP BY study_uid"""

_PATIENTS_VIEW = """CREATE OR REPLACE VIEW patients AS
SELECT patient_id,
  mode(patient_name ORDER BY patient_name) AS patient_name, mode(patient_sex ORDER BY patient_sex) AS patient_sex,
  mode(patient_birth_date ORDER BY patient_birth_date) AS patient_birth_date,
  CAST(count(DISTINCT study_uid) AS INTEGER) AS n_studies,
  CAST(count(DISTINCT series_uid) AS INTEGER) AS n_series,
  CAST(count(DISTINCT coalesce(sop_uid, path)) AS INTEGER) AS n_instances,
  string_agg(DISTINCT modality, ',' ORDER BY modality) AS modalities,
  min(study_date) AS first_study_date, max(study_date) AS last_study_date,
  CAST(sum(file_size) AS BIGINT) AS size_bytes
FROM instances WHERE patient_id IS NOT NULL GROUP BY patient_id"""




def _isna(v: Any) -> bool:
    if v is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(v)) if not isinstance(v, (list, tuple)) else False
    except (TypeError, ValueError):
        return False


def _as_date(v: Any) -> dt.date | None:
    if v is None or (isinstance(v, dt.date) and not isinstance(v, dt.datetime)):
        return v
    if isinstance(v, dt.datetime):
        return v.date()
    if hasattr(v, "date"):  # pandas Timestamp
        return v.date()
    from ._scan import parse_date

    return parse_date(str(v))


def _as_datetime(v: Any) -> dt.datetime | None:
    if v is None or isinstance(v, dt.datetime):
        return v
    if hasattr(v, "to_pydatetime"):
        return v.to_pydatetime()
    from ._scan import parse_datetime

    return parse_datetime(str(v))



def _as_paths(paths: Any) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    if isinstance(paths, Iterable):
        out = [os.fspath(p) for p in paths]
        if not out:
            raise ValueError("no paths given; pass a DICOM folder, a file, or a list of them")
        return out
    raise TypeError(f"paths must be a path or a list of paths, got {type(paths).__name__}")


def _connect(db: str | os.PathLike | None, *, read_only: bool = False) -> tuple[Any, Path | None]:
    duckdb = import_optional("duckdb", feature="the cohort index", extra="cohort")
    if db is None:
        return duckdb.connect(":memory:"), None
    path = Path(db).expanduser().resolve()
    if path.is_dir():
        raise IsADirectoryError(
            f"db must be the path of a DuckDB file, got the folder {str(path)!r}; e.g. "
            f"{str(path / 'index.duckdb')!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"the folder of the index file does not exist: {str(path.parent)!r}; create it first")
    try:
        return duckdb.connect(str(path), read_only=read_only), path
    except duckdb.Error as exc:
        raise index_file_error(path, exc) from exc


def index_file_error(path: Path, exc: Exception) -> Exception:
    """The error for an index file DuckDB cannot open or read: locked, or damaged."""
    from ..errors import IndexFileError

    text = str(exc).strip()
    if "lock" in text.lower():
        return IndexFileError(
            f"cannot open the index {str(path)!r}: another process has it open for writing "
            f"({text}). Only one process may write to an index; close it there (index.close(), "
            "or stop that notebook kernel), or open it with "
            "medlab.cohort.open_index(db, read_only=True) in every process that only reads")
    return IndexFileError(
        f"the index file {str(path)!r} is damaged (truncated, overwritten or not a DuckDB "
        f"database: {text}). An index only holds what was read from the scanned folders, so "
        f"nothing is lost: delete or move the file aside and scan again with "
        f"medlab.cohort.scan(folders, db={str(path)!r})")


def _tables(con: Any) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


