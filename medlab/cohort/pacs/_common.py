"""Shared parts of the PACS clients: errors, query filters, schema rows, files."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.multival import MultiValue

from medlab.errors import DicomReadError, MedlabError

from .._schema import INSTANCE_COLUMNS, column_names

if TYPE_CHECKING:
    import pandas as pd
    from pydicom import Dataset


class PacsError(MedlabError, ConnectionError):
    """A PACS could not be reached, refused a request, or answered with an error.

    The message names the server (``host:port`` or URL), the operation and,
    where known, what to change (credentials, AE title, URL).
    """


# ---------------------------------------------------------------------------
# schema <-> DICOM attributes

#: query levels -> (DICOMweb resource, DIMSE QueryRetrieveLevel)
_LEVELS = {"study": ("studies", "STUDY"), "series": ("series", "SERIES"),
           "instance": ("instances", "IMAGE")}

_COLUMNS = {c.name: c for c in INSTANCE_COLUMNS}
_NAMES = column_names()

#: columns each query level asks the server for (lower levels add to higher ones)
_STUDY_COLUMNS = ("patient_id", "patient_name", "patient_sex", "patient_birth_date",
                  "patient_age", "patient_weight_kg", "study_uid", "study_date",
                  "study_description", "accession_number")
_SERIES_COLUMNS = (*_STUDY_COLUMNS, "institution", "series_uid", "series_number",
                   "series_description", "modality", "body_part", "manufacturer", "model",
                   "frame_of_reference_uid", "protocol_name")
_LEVEL_COLUMNS = {
    "study": _STUDY_COLUMNS,
    "series": _SERIES_COLUMNS,
    "instance": tuple(c.name for c in INSTANCE_COLUMNS if c.keyword),
}
#: columns filled from the first item of RadiopharmaceuticalInformationSequence
_PET_SEQUENCE = "RadiopharmaceuticalInformationSequence"
_PET_COLUMNS = ("radiopharmaceutical", "injected_dose_bq", "half_life_s", "injection_time")
#: converted from milliseconds to seconds
_MS_COLUMNS = ("trigger_time_s", "echo_time_s", "repetition_time_s")
#: characters left literal in QIDO query values (allowed in a URL query by RFC 3986)
_QUERY_SAFE = "*?,-._~"
_MAX_PAGES = 10_000
#: STOW-RS requests hold their files in memory: keep each to about this size
_BATCH_BYTES = 64 << 20
_UID_COLUMNS = ("study_uid", "series_uid", "sop_uid", "sop_class_uid", "frame_of_reference_uid")
#: columns a query may filter on (their DICOM attribute is a plain value at some level)
FILTER_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in INSTANCE_COLUMNS
    if c.keyword and c.dtype in ("VARCHAR", "DATE", "INTEGER")
    and c.name not in _PET_COLUMNS and c.name != "image_type"
)


def _keywords(level: str) -> list[str]:
    """DICOM keywords to request as return keys / include fields at ``level``."""
    out: list[str] = []
    for name in _LEVEL_COLUMNS[level]:
        kw = _COLUMNS[name].keyword
        if name in _PET_COLUMNS:
            kw = _PET_SEQUENCE
        if kw and kw not in out:
            out.append(kw)
    if level == "instance":
        for kw in ("AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime",
                   "ContentDate", "ContentTime"):
            if kw not in out:
                out.append(kw)
    return out


def _check_level(level: str) -> str:
    if not isinstance(level, str) or level.lower() not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(map(repr, _LEVELS))}; got {level!r}")
    return level.lower()


def _da(value: Any, *, what: str) -> str:
    """A date (date, datetime, ISO or DICOM DA string) as DICOM DA text."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, str):
        text = value.strip().replace("-", "")
        if len(text) == 8 and text.isdigit():
            return text
    raise ValueError(f"{what}: expected a date (datetime.date, 'YYYY-MM-DD' or 'YYYYMMDD'), "
                     f"got {value!r}")


def _date_filter(value: Any, *, what: str) -> str:
    """A date filter: a date, a ``(start, end)`` pair (either may be None) or a DICOM range."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{what}: a date range is a (start, end) pair; got {value!r}")
        return f"{_da(value[0], what=what)}-{_da(value[1], what=what)}"
    if isinstance(value, str) and re.fullmatch(r"\s*(\d{8})?-(\d{8})?\s*", value):
        return value.strip()  # a DICOM range such as '20060101-20061231' or '20060101-'
    return _da(value, what=what)


def _owner_level(name: str) -> str:
    """The highest query level whose answers carry column ``name``."""
    return next(lvl for lvl in _LEVELS if name in _LEVEL_COLUMNS[lvl])


def _filter_values(filters: Mapping[str, Any], *, level: str, uid_sep: str) -> dict[str, str]:
    """Schema-named filters -> {DICOM keyword: matching text} for a query at ``level``.

    Dates take a date, ``'YYYYMMDD'``, a DICOM range string (``'20060101-'``)
    or a ``(start, end)`` tuple (either may be None); UID columns take one UID
    or a list (UID-list matching); other values are used as written, so
    DICOM wildcards (``*``, ``?``) work. At study level ``modality`` matches
    ModalitiesInStudy.
    """
    out: dict[str, str] = {}
    for name, value in filters.items():
        if name not in FILTER_COLUMNS:
            known = ", ".join(FILTER_COLUMNS)
            raise ValueError(f"cannot filter on {name!r}: filters are schema column names, "
                             f"one of: {known}")
        col = _COLUMNS[name]
        keyword = col.keyword
        assert keyword is not None
        if level == "study" and name == "modality":
            keyword = "ModalitiesInStudy"
        elif name not in _LEVEL_COLUMNS[level]:
            owner = _owner_level(name)
            raise ValueError(f"cannot filter on {name!r} at {level} level: it is a {owner}-level "
                             f"attribute; query with level={owner!r} (or lower) instead")
        if value is None:
            continue
        if col.dtype == "DATE":
            text = _date_filter(value, what=name)
            if text == "-":
                continue
        elif name in _UID_COLUMNS and isinstance(value, list | tuple | set | frozenset):
            uids = [str(v) for v in value]
            if not uids:
                raise ValueError(f"{name}: an empty list of UIDs matches nothing")
            text = uid_sep.join(uids)
        elif col.dtype == "INTEGER":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"{name}: expected an integer, got {value!r}")
            text = str(value)
        else:
            if not isinstance(value, str):
                raise ValueError(f"{name}: expected a string, got {type(value).__name__} {value!r}")
            text = value
        out[keyword] = text
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if _is_multi(value):
        parts = [str(v) for v in value]
        return "\\".join(parts) if parts else None
    text = str(value).strip()
    return text or None


def _number(value: Any, cast: Callable[[Any], Any]) -> Any:
    if value is None or value == "":
        return None
    if _is_multi(value):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        out = cast(value)
    except (TypeError, ValueError):
        return None
    if isinstance(out, float) and not math.isfinite(out):
        return None
    return out


def _date(value: Any) -> dt.date | None:
    text = _text(value)
    if not text:
        return None
    text = text.replace("-", "").replace(".", "")[:8]  # old ACR-NEMA dates use dots
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _time(value: Any) -> dt.time | None:
    text = _text(value)
    if not text:
        return None
    text = text.replace(":", "")
    main, _, frac = text.partition(".")
    try:
        hh, mm, ss = int(main[0:2]), int(main[2:4] or 0), int(main[4:6] or 0)
        us = int((frac + "000000")[:6]) if frac else 0
        return dt.time(hh, mm, min(ss, 59), us)
    except ValueError:
        return None


def _datetime(value: Any) -> dt.datetime | None:
    text = _text(value)
    if not text or len(text) < 8:
        return None
    # drop a UTC offset (+hhmm / -hhmm) after the date part
    for sign in "+-":
        head, sep, _ = text[8:].rpartition(sign)
        if sep:
            text = text[:8] + head
    day = _date(text[:8])
    if day is None:
        return None
    tm = _time(text[8:]) if len(text) > 8 else dt.time()
    return dt.datetime.combine(day, tm or dt.time())


def _row(ds: Dataset, level: str) -> dict[str, Any]:
    """One schema row (all columns, None where unknown) from a query answer."""
    row: dict[str, Any] = dict.fromkeys(_NAMES)
    for name in _LEVEL_COLUMNS[level]:
        col = _COLUMNS[name]
        if name in _PET_COLUMNS or col.keyword is None:
            continue
        value = ds.get(col.keyword)
        if value is None:
            continue
        if name.endswith(("pixel_spacing_row_mm", "pixel_spacing_col_mm")):
            pair = list(value) if _is_multi(value) else [value]
            k = 0 if name.endswith("row_mm") else 1
            row[name] = _number(pair[k], float) if len(pair) == 2 else None
        elif col.dtype == "DOUBLE[]":
            vals = [_number(v, float) for v in (value if _is_multi(value) else [value])]
            row[name] = None if not vals or any(v is None for v in vals) else vals
        elif col.dtype == "DATE":
            row[name] = _date(value)
        elif col.dtype in ("INTEGER", "BIGINT"):
            row[name] = _number(value, lambda v: int(float(v)))
        elif col.dtype == "DOUBLE":
            x = _number(value, float)
            row[name] = x / 1000.0 if (x is not None and name in _MS_COLUMNS) else x
        else:
            row[name] = _text(value)
    if level == "instance":
        if row["n_frames"] is None and row["rows"] is not None:
            row["n_frames"] = 1
        when = _datetime(ds.get("AcquisitionDateTime"))
        for day_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"),
                                ("ContentDate", "ContentTime")):
            if when is not None:
                break
            day = _date(ds.get(day_kw))
            if day is not None:
                when = dt.datetime.combine(day, _time(ds.get(time_kw)) or dt.time())
        row["acquisition_datetime"] = when
        seq = ds.get(_PET_SEQUENCE)
        if seq:
            item = seq[0]
            row["radiopharmaceutical"] = _text(item.get("Radiopharmaceutical"))
            row["injected_dose_bq"] = _number(item.get("RadionuclideTotalDose"), float)
            row["half_life_s"] = _number(item.get("RadionuclideHalfLife"), float)
            row["injection_time"] = (_text(item.get("RadiopharmaceuticalStartDateTime"))
                                     or _text(item.get("RadiopharmaceuticalStartTime")))
    return row


def _is_multi(value: Any) -> bool:
    return isinstance(value, list | tuple | MultiValue)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> a DataFrame with every schema column, typed, sorted by study/series/instance."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=_NAMES)
    for c in INSTANCE_COLUMNS:
        if c.dtype in ("INTEGER", "BIGINT"):
            df[c.name] = pd.array(df[c.name].tolist(), dtype="Int64")
        elif c.dtype == "DOUBLE":
            df[c.name] = pd.to_numeric(df[c.name], errors="coerce").astype("float64")
        elif c.dtype in ("DATE", "TIMESTAMP"):
            df[c.name] = pd.to_datetime(df[c.name], errors="coerce").astype("datetime64[ns]")
        else:
            df[c.name] = df[c.name].astype(object).where(df[c.name].notna(), None)
    order = ["patient_id", "study_date", "study_uid", "series_number", "series_uid",
             "instance_number", "sop_uid"]
    if len(df):
        df = df.sort_values(order, na_position="last", kind="stable").reset_index(drop=True)
    return df


# ---------------------------------------------------------------------------
# files


def _dicom_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files to send: a file, a folder (all files below it) or an iterable of these."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder to send: {p}")
    return out


def _read(path: Path, *, pixels: bool = True) -> Dataset:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises many kinds on malformed files
        raise DicomReadError(f"cannot send {path}: not a readable DICOM file ({exc})") from exc
    missing = [kw for kw in ("SOPClassUID", "SOPInstanceUID") if kw not in ds]
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if missing or ts is None:
        missing += [] if ts is not None else ["TransferSyntaxUID (file meta)"]
        raise DicomReadError(f"cannot send {path}: it lacks {', '.join(missing)}; only DICOM "
                             "Part-10 files with SOP class and instance UIDs can be sent")
    return ds


def _safe_name(uid: str) -> str:
    keep = "".join(ch for ch in str(uid) if ch.isalnum() or ch in ".-_")
    return keep or "instance"


def _write_atomic(dest: Path, name: str, data: bytes | Callable[[Path], None]) -> Path:
    """Write ``dest/name`` through a temporary file, so no partial file is left behind."""
    target = dest / name
    tmp = dest / f".medlab-{uuid.uuid4().hex}.part"
    try:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "xb") as f:
                f.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_timeout(timeout_s: float, what: str = "timeout_s") -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not (
            0 < timeout_s < math.inf):
        raise ValueError(f"{what} must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


# ---------------------------------------------------------------------------
# DICOMweb




def resource_path(base: str, row: Mapping[str, Any], level: str) -> str | None:
    """``base/studies/<uid>[/series/<uid>[/instances/<uid>]]`` for a query row, or None
    when the row lacks a UID its level needs (DICOMweb URLs and DIMSE locators alike)."""
    parts = [("studies", row.get("study_uid"))]
    if level in ("series", "instance"):
        parts.append(("series", row.get("series_uid")))
    if level == "instance":
        parts.append(("instances", row.get("sop_uid")))
    if not all(uid for _, uid in parts):
        return None
    return base + "".join(f"/{name}/{uid}" for name, uid in parts)
