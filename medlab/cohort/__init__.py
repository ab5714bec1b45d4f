"""Cohorts: an index of DICOM folders and PACS query results, exploration, export.

- :func:`scan` reads headers (never pixels) into an :class:`Index` stored in
  DuckDB, one row per instance (schema: :mod:`medlab.cohort._schema`), with
  per-series geometry checks; rescans read only new or changed files.
- :class:`DicomWeb` and :class:`Dimse` query and retrieve from a PACS; their
  query results use the same schema, marked as remote.
- :func:`export` writes a de-identified copy (DICOM PS3.15 Annex E).
- :func:`snapshot` writes a manifest of a cohort (UIDs, SHA-256 per file,
  source, versions); :func:`restore` fetches it again, checks every hash and
  rebuilds its index.
- :func:`idc_sql` queries NCI Imaging Data Commons' bundled index offline,
  or an IDC-shaped view of a local index, with the same SQL.
- :func:`summary` and friends return the tables a researcher wants on day
  one; ``medlab.view`` draws them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._schema import ERROR_COLUMNS, INSTANCE_COLUMNS, PHI_COLUMNS, SERIES_COLUMNS

#: public name -> submodule that defines it (imported on first use: DuckDB, dask,
#: pynetdicom are only loaded when needed)
_LAZY = {
    "Index": "._index",
    "scan": "._index",
    "open_index": "._index",
    "ScanReport": "._index",
    "DicomWeb": ".pacs",
    "Dimse": ".pacs",
    "PacsError": ".pacs",
    "export": ".deidentify",
    "ExportReport": ".deidentify",
    "summary": "._explore",
    "studies_per_patient": "._explore",
    "series_counts": "._explore",
    "spacing_table": "._explore",
    "dates_table": "._explore",
    "volume_usability": "._explore",
    "snapshot": "._snapshot",
    "restore": "._snapshot",
    "RestoreReport": "._snapshot",
    "SnapshotMismatchError": "._snapshot",
    "idc_sql": "._idc",
    "idc_version": "._idc",
    "idc_index_tables": "._idc",
    "scan_bucket": "._s3",
    "fetch_bucket_series": "._s3",
    "download_idc_series": "._s3",
    "bucket_store": "._s3",
}

__all__ = ["ERROR_COLUMNS", "INSTANCE_COLUMNS", "PHI_COLUMNS", "SERIES_COLUMNS", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'medlab.cohort' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
