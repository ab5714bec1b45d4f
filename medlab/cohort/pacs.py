"""Query, retrieve and send DICOM to a PACS: DICOMweb and DIMSE.

:class:`DicomWeb` speaks DICOMweb through ``dicomweb-client`` (QIDO-RS
search, WADO-RS retrieve, STOW-RS store); :class:`Dimse` speaks the DICOM
network protocol through ``pynetdicom`` (C-ECHO, C-FIND, C-GET, C-STORE).
Both return query results as DataFrames with the columns of the cohort index
(:data:`medlab.cohort.INSTANCE_COLUMNS`): what the server answered is
filled in, everything else is null; ``source`` is ``'remote:<server>'`` and
``path`` the retrieve URL (DICOMweb) or a ``dimse://AET@host:port/...``
locator. Retrieval writes DICOM Part-10 files into a local folder that can
then be indexed with :func:`medlab.cohort.scan`.

Every network operation has a timeout and raises :class:`PacsError` with
the server, what was attempted and what to check -- refused credentials,
a server that is down, an AE title the server does not know -- instead of
hanging or returning silently. ``dicomweb-client``'s retries (which keep
trying a dead server for ~30 s) are turned off.

Examples
--------
>>> import medlab as ml
>>> web = ml.cohort.DicomWeb("http://127.0.0.1:8042/dicom-web",
...                          username="medlab", password="...")  # doctest: +SKIP
>>> series = web.query("series", modality="CT", study_date=("2006-01-01", None))  # doctest: +SKIP
>>> files = web.retrieve(study_uid=series.study_uid[0], series_uid=series.series_uid[0],
...                      dest="downloads")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import math
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.multival import MultiValue

from medlab.errors import DicomReadError, MedlabError, MissingDependencyError

from ._schema import INSTANCE_COLUMNS, column_names

if TYPE_CHECKING:
    import pandas as pd
    from pydicom import Dataset

__all__ = ["DicomWeb", "Dimse", "PacsError"]


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
        if name in ("pixel_spacing_row_mm", "pixel_spacing_col_mm"):
            pair = list(value) if _is_multi(value) else [value]
            k = 0 if name == "pixel_spacing_row_mm" else 1
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


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{package} is needed for PACS access: pip install 'medlab[pacs]' ({exc})"
        ) from exc


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_timeout(timeout_s: float) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not (
            0 < timeout_s < math.inf):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


# ---------------------------------------------------------------------------
# DICOMweb


class DicomWeb:
    """A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS).

    Parameters
    ----------
    url : str
        Base URL of the DICOMweb service, e.g.
        ``"http://127.0.0.1:8042/dicom-web"`` (Orthanc) -- the part before
        ``/studies``.
    username, password : str, optional
        HTTP basic authentication.
    timeout_s : float, default 10.0
        Seconds to wait for a connection and for each read from the server.
        Requests are not retried.
    name : str, optional
        Name of the server in the ``source`` column (``'remote:<name>'``);
        default ``host:port/path`` of ``url``.

    Raises
    ------
    ValueError
        ``url`` is not an ``http://`` or ``https://`` URL, or a bad timeout.
    medlab.errors.MissingDependencyError
        ``dicomweb-client`` or ``requests`` is not installed.
    """

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 timeout_s: float = 10.0, name: str | None = None) -> None:
        requests = _require("requests", "requests")
        dwc = _require("dicomweb_client.api", "dicomweb-client")
        parts = urllib.parse.urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL of a DICOMweb service "
                             f"(e.g. 'http://127.0.0.1:8042/dicom-web'), got {url!r}")
        if parts.username or parts.password:
            raise ValueError("put credentials in username= and password=, not in the URL")
        if password is not None and username is None:
            raise ValueError("password= given without username=")
        self.timeout_s = _check_timeout(timeout_s)
        self.url = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.username = username
        self.name = name or f"{parts.netloc}{parts.path.rstrip('/')}"
        session = requests.Session()
        if username is not None:
            session.auth = (username, password or "")
        if _is_loopback(self.host):
            # never send loopback traffic through a proxy from the environment
            session.trust_env = False
        self._requests = requests
        self._session = session
        self._client = dwc.DICOMwebClient(self.url, session=session,
                                          timeout=(self.timeout_s, self.timeout_s))
        self._client.set_http_retry_params(retry=False)

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return f"DicomWeb({self.url!r}{user}, timeout_s={self.timeout_s:g})"

    def close(self) -> None:
        """Close the HTTP connections kept open for later requests."""
        self._session.close()

    def __enter__(self) -> DicomWeb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def source(self) -> str:
        """The value of the ``source`` column of query results."""
        return f"remote:{self.name}"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn requests' exceptions into PacsError naming the server and the action."""
        rq = self._requests
        where = f"{self.host}:{self.port}"
        try:
            yield
        except rq.exceptions.HTTPError as exc:
            resp = exc.response
            code = resp.status_code if resp is not None else None
            if code == 401:
                if self.username is None:
                    msg = (f"DICOMweb server {self.url} requires credentials (HTTP 401 "
                           f"Unauthorized) {action}: pass username= and password=")
                else:
                    msg = (f"DICOMweb server {self.url} refused the credentials of user "
                           f"{self.username!r} (HTTP 401 Unauthorized) {action}: check "
                           "username= and password=")
            elif code == 403:
                msg = (f"DICOMweb server {self.url} forbids {action.removeprefix('while ')} "
                       f"for user {self.username!r} (HTTP 403 Forbidden)")
            elif code == 406:
                msg = (f"DICOMweb server {self.url} cannot send what was asked (HTTP 406 Not "
                       f"Acceptable) {action}: ask for another transfer syntax, e.g. "
                       "transfer_syntax='1.2.840.10008.1.2.1' (explicit VR little endian)")
            elif code == 404:
                msg = (f"DICOMweb server {self.url} found nothing (HTTP 404 Not Found) {action}: "
                       "check the UIDs, and that the URL is the DICOMweb root (the part "
                       "before /studies)")
            else:
                body = ""
                if resp is not None:
                    with contextlib.suppress(Exception):
                        body = resp.text[:300].strip()
                reason = resp.reason if resp is not None else ""
                msg = (f"DICOMweb server {self.url} answered HTTP {code} {reason} {action}"
                       + (f": {body}" if body else ""))
            raise PacsError(msg) from exc
        except rq.exceptions.Timeout as exc:
            raise PacsError(f"DICOMweb server {where} did not answer within {self.timeout_s:g} s "
                            f"{action} (timeout_s={self.timeout_s:g}); is it overloaded, or "
                            f"is {self.url} the right URL?") from exc
        except rq.exceptions.ConnectionError as exc:
            raise PacsError(f"cannot connect to DICOMweb server {where} ({self.url}) {action}: "
                            f"is the server running and the URL right? ({_short(exc)})") from exc
        except rq.exceptions.RequestException as exc:
            raise PacsError(f"DICOMweb request to {self.url} failed {action}: {exc}") from exc

    def query(self, level: str = "series", **filters: Any) -> pd.DataFrame:
        """Search the server (QIDO-RS) at one level.

        Parameters
        ----------
        level : {'series', 'study', 'instance'}
            One row per study, series or instance.
        **filters
            Matching keys named as schema columns (see :data:`FILTER_COLUMNS`),
            e.g. ``patient_id="STS_002"``, ``modality="CT"``,
            ``study_uid=[uid1, uid2]``, ``series_description="*T1*"``,
            ``study_date=("2006-01-01", None)``. None means no filter.

        Returns
        -------
        pandas.DataFrame
            All columns of :data:`~medlab.cohort.INSTANCE_COLUMNS`, in that
            order; those the server answered are filled, the others null.
            ``source`` is ``'remote:<name>'``, ``path`` the WADO-RS URL of the
            study, series or instance.

        Raises
        ------
        PacsError
            The server cannot be reached, refused the credentials or
            answered with an error.
        ValueError
            Unknown level or filter name, or a value of the wrong kind.
        """
        level = _check_level(level)
        search = _filter_values(filters, level=level, uid_sep=",")
        pydicom = _require("pydicom", "pydicom")
        with self._errors(f"while searching for {level} (QIDO-RS)"):
            answers = self._search(_LEVELS[level][0], search, _keywords(level))
        rows = []
        for item in answers:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # over-long values etc. from the server
                    ds = pydicom.Dataset.from_json(item)
                    row = _row(ds, level)
            except Exception as exc:
                raise PacsError(f"DICOMweb server {self.url} sent a search result that is not "
                                f"valid DICOM JSON ({exc}): {str(item)[:200]}") from exc
            row["source"] = self.source
            row["path"] = self._url(row, level)
            rows.append(row)
        return _frame(rows)

    def _search(self, resource: str, search: Mapping[str, str],
                fields: Iterable[str]) -> list[dict[str, Any]]:
        """QIDO-RS GET of ``resource`` with match keys and include fields; all pages.

        The query string keeps the characters RFC 3986 allows in a query
        (``*``, ``?``, ``,``) literal: servers that do not percent-decode match
        values (Orthanc 1.10 with its DICOMweb plugin 1.7) then still see
        wildcards and UID lists, as ``dicomweb-client``'s fully encoded
        search would not let them.
        """
        params = [*search.items(), *(("includefield", f) for f in fields)]
        out: list[dict[str, Any]] = []
        for _page in range(_MAX_PAGES):
            query = "&".join(
                f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe=_QUERY_SAFE)}"
                for k, v in [*params, *([("offset", str(len(out)))] if out else [])])
            resp = self._session.get(f"{self.url}/{resource}?{query}",
                                     headers={"Accept": "application/dicom+json"},
                                     timeout=(self.timeout_s, self.timeout_s))
            resp.raise_for_status()
            page = resp.json() if resp.content else []
            if isinstance(page, dict):  # some servers send a lone data set
                page = [page]
            if not isinstance(page, list):
                raise PacsError(f"DICOMweb server {self.url} answered a search with "
                                f"{type(page).__name__}, not a list of DICOM JSON data sets")
            out.extend(page)
            # a server that truncates the answer says so in a Warning header (PS3.18 8.3.4.4)
            if not page or "Warning" not in resp.headers:
                break
        return out

    def _url(self, row: Mapping[str, Any], level: str) -> str | None:
        st, se, sop = row.get("study_uid"), row.get("series_uid"), row.get("sop_uid")
        if not st:
            return None
        url = f"{self.url}/studies/{st}"
        if level in ("series", "instance"):
            if not se:
                return None
            url += f"/series/{se}"
        if level == "instance":
            if not sop:
                return None
            url += f"/instances/{sop}"
        return url

    def retrieve(self, *, study_uid: str, series_uid: str | None = None,
                 dest: str | os.PathLike[str], transfer_syntax: str = "*") -> list[Path]:
        """Download a study or one series (WADO-RS) as DICOM Part-10 files.

        Parameters
        ----------
        study_uid : str
            StudyInstanceUID.
        series_uid : str, optional
            SeriesInstanceUID; default the whole study.
        dest : str or os.PathLike
            Folder for the files (created); each is named ``<SOPInstanceUID>.dcm``
            and written through a temporary file, so none is left half-written.
        transfer_syntax : str, default '*'
            Transfer syntax to ask for: ``'*'`` is the one the server stored
            (pixel data exactly as sent to it, no transcoding); a UID such as
            ``'1.2.840.10008.1.2.1'`` asks the server to transcode.

        Returns
        -------
        list of pathlib.Path
            The files written, in the order received.

        Raises
        ------
        PacsError
            Unreachable server, refused credentials, unknown UIDs (HTTP 404) or
            any other error answer.
        """
        if not study_uid or not isinstance(study_uid, str):
            raise ValueError(f"study_uid must be a StudyInstanceUID string, got {study_uid!r}")
        if series_uid is not None and (not series_uid or not isinstance(series_uid, str)):
            raise ValueError(f"series_uid must be a SeriesInstanceUID string, got {series_uid!r}")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        media = (("application/dicom", transfer_syntax),)
        what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
        out: list[Path] = []
        action = f"while retrieving {what} (WADO-RS)"
        with self._errors(action):
            if series_uid is None:
                parts = self._client.iter_study(study_uid, media_types=media)
            else:
                parts = self._client.iter_series(study_uid, series_uid, media_types=media)
            while True:
                try:
                    ds = next(parts)
                except StopIteration:
                    break
                except (ValueError, EOFError) as exc:  # a part that is not a DICOM file
                    raise PacsError(f"DICOMweb server {self.url} sent something that is not a "
                                    f"DICOM file {action} ({exc}); {len(out)} file(s) written "
                                    f"to {dest}") from exc
                name = _safe_name(ds.get("SOPInstanceUID", f"instance{len(out):05d}")) + ".dcm"
                out.append(_write_atomic(
                    dest, name, lambda p, ds=ds: ds.save_as(p, enforce_file_format=True)))
        return out

    def store(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
              batch_size: int = 50) -> int:
        """Upload DICOM files (STOW-RS).

        Parameters
        ----------
        paths : path or iterable of paths
            Part-10 files, or folders whose files are all sent.
        batch_size : int, default 50
            Instances per STOW-RS request.

        Returns
        -------
        int
            Number of instances the server acknowledged as stored.

        Raises
        ------
        PacsError
            Unreachable server, refused credentials, or the server refused
            some instances (the message lists them and the failure reasons;
            the others are stored).
        medlab.errors.DicomReadError
            A file is not a DICOM Part-10 file with SOP class and instance UIDs.
        FileNotFoundError
            A path does not exist.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        files = _dicom_files(paths)
        stored = 0
        failed: list[str] = []
        for chunk in _batches(files, batch_size):
            datasets = [_read(f) for f in chunk]
            with self._errors(f"while storing {len(chunk)} instance(s) (STOW-RS)"):
                answer = self._client.store_instances(datasets)
            ok = answer.get("ReferencedSOPSequence") or []
            bad = answer.get("FailedSOPSequence") or []
            stored += len(ok)
            for item in bad:
                reason = item.get("FailureReason")
                reason = f"0x{reason:04X}" if isinstance(reason, int) else reason
                failed.append(f"{item.get('ReferencedSOPInstanceUID', '?')} (failure reason "
                              f"{reason})")
            if not ok and not bad:
                stored += len(chunk)  # a bare 200 without a response body
        if failed:
            raise PacsError(f"DICOMweb server {self.url} refused {len(failed)} of {len(files)} "
                            f"instance(s) ({stored} stored): {'; '.join(failed[:10])}"
                            + (" ..." if len(failed) > 10 else ""))
        return stored


def _batches(files: list[Path], size: int) -> Iterator[list[Path]]:
    """At most ``size`` files and about _BATCH_BYTES per batch (at least one file)."""
    batch: list[Path] = []
    nbytes = 0
    for f in files:
        n = f.stat().st_size
        if batch and (len(batch) >= size or nbytes + n > _BATCH_BYTES):
            yield batch
            batch, nbytes = [], 0
        batch.append(f)
        nbytes += n
    if batch:
        yield batch


def _short(exc: BaseException) -> str:
    text = str(exc)
    # requests nests urllib3's long retry message; keep the root cause
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "Connection reset"):
        if marker in text:
            return marker
    return text[:200]


# ---------------------------------------------------------------------------
# DIMSE

#: transfer syntaxes proposed for every storage SOP class in C-GET, each in its
#: own presentation context so the server can send files as it stored them
_GET_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",     # RLE lossless
    "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
)
_UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")
_MAX_CONTEXTS = 127  # odd presentation context ids 1..255

#: storage SOP classes offered to C-GET when the server's C-FIND does not say which
_COMMON_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",      # CT, enhanced CT
    "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1",      # MR, enhanced MR
    "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.130",    # PET, enhanced PET
    "1.2.840.10008.5.1.4.1.1.20",                                    # NM
    "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1",      # CR, DX
    "1.2.840.10008.5.1.4.1.1.1.2",                                   # MG
    "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1",    # US, US multi-frame
    "1.2.840.10008.5.1.4.1.1.12.1",                                  # XA
    "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.2",      # SC, MF SC grayscale byte
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4",    # MF SC word, true colour
    "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.30",    # SEG, parametric map
    "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.481.2",  # RTSTRUCT, RTDOSE
    "1.2.840.10008.5.1.4.1.1.481.5",                                 # RT plan
    "1.2.840.10008.5.1.4.1.1.66.1", "1.2.840.10008.5.1.4.1.1.66.3",  # registration, deformable
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22",  # basic, enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.59",  # comprehensive SR, KOS
    "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.66",   # encapsulated PDF, raw
)


def _storage_contexts(classes: list[str], *, room: int) -> list[tuple[str, list[str]]]:
    """Presentation contexts to receive ``classes`` in C-GET, within ``room`` contexts.

    Best: one context per compressed transfer syntax, so the server sends every
    file as stored; else one context offering all compressed syntaxes (the
    server picks one, and transcodes files stored in others); else uncompressed
    only.
    """
    out: list[tuple[str, list[str]]] = []
    if len(classes) * (1 + len(_GET_TRANSFER_SYNTAXES)) <= room:
        for uid in classes:
            out.append((uid, list(_UNCOMPRESSED)))
            out.extend((uid, [ts]) for ts in _GET_TRANSFER_SYNTAXES)
    elif 2 * len(classes) <= room:
        for uid in classes:
            out += [(uid, list(_UNCOMPRESSED)), (uid, list(_GET_TRANSFER_SYNTAXES))]
    else:
        out = [(uid, list(_UNCOMPRESSED)) for uid in classes]
    return out


#: A-ASSOCIATE-RJ reasons (source, reason) -> what to check
_REJECT_HINTS = {
    (1, 3): "the server does not know the calling AE title {calling!r}: register it "
            "(AE title, this host and a port) in the server's modality list, or pass "
            "the calling_aet= it knows",
    (1, 7): "the server's AE title is not {called!r}: pass the called_aet= it is configured with",
    (1, 2): "the server supports no proposed application context",
    (2, 2): "the server does not support the DICOM protocol version proposed",
    (3, 1): "the server is temporarily congested; try again later",
    (3, 2): "the server has reached its limit of associations; try again later",
}


def _nodelay(event: Any) -> None:
    """EVT_CONN_OPEN: disable Nagle's algorithm (else each DIMSE message may stall ~40 ms)."""
    with contextlib.suppress(AttributeError, OSError):
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _status_text(code: int) -> str:
    try:
        from pynetdicom.status import code_to_category

        return f"0x{code:04X} ({code_to_category(code)})"
    except Exception:
        return f"0x{code:04X}"


class Dimse:
    """A DICOM server over the DICOM network protocol (DIMSE).

    Parameters
    ----------
    host : str
        Host name or address of the server.
    port : int
        Its DICOM port.
    called_aet : str
        The server's AE title.
    calling_aet : str, default 'MEDLAB'
        This client's AE title, as registered on the server (servers accept
        only the AE titles they know, often only from a registered host).
    timeout_s : float, default 10.0
        Seconds for connecting, for association negotiation and for each
        DIMSE message; nothing waits longer.
    name : str, optional
        Name of the server in the ``source`` column; default
        ``CALLED_AET@host:port``.

    Raises
    ------
    ValueError
        Empty or over-long AE titles (max 16 characters), a bad port or timeout.
    medlab.errors.MissingDependencyError
        ``pynetdicom`` is not installed.
    """

    def __init__(self, host: str, port: int, *, called_aet: str, calling_aet: str = "MEDLAB",
                 timeout_s: float = 10.0, name: str | None = None) -> None:
        _require("pynetdicom", "pynetdicom")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a host name or address, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
        for what, aet in (("called_aet", called_aet), ("calling_aet", calling_aet)):
            if (not isinstance(aet, str) or not aet.strip() or len(aet) > 16 or "\\" in aet
                    or not aet.isascii()):
                raise ValueError(f"{what} must be 1 to 16 ASCII characters without '\\', "
                                 f"got {aet!r}")
        self.host = host
        self.port = port
        self.called_aet = called_aet
        self.calling_aet = calling_aet
        self.timeout_s = _check_timeout(timeout_s)
        self.name = name or f"{called_aet}@{host}:{port}"

    def __repr__(self) -> str:
        return (f"Dimse({self.host!r}, {self.port}, called_aet={self.called_aet!r}, "
                f"calling_aet={self.calling_aet!r}, timeout_s={self.timeout_s:g})")

    @property
    def source(self) -> str:
        """The value of the ``source`` column of query results."""
        return f"remote:{self.name}"

    @property
    def _where(self) -> str:
        return f"{self.called_aet} at {self.host}:{self.port}"

    @contextlib.contextmanager
    def _association(self, contexts: list[tuple[str, list[str]]], *, action: str,
                     roles: Iterable[str] = (),
                     handlers: list[tuple[Any, Callable]] | None = None) -> Iterator[Any]:
        """An established association, released (or aborted) on exit; PacsError otherwise."""
        from pynetdicom import AE, build_role, evt

        ae = AE(ae_title=self.calling_aet)
        for attr in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
            setattr(ae, attr, self.timeout_s)
        for abstract, syntaxes in contexts:
            ae.add_requested_context(abstract, syntaxes)
        ext_neg = [build_role(uid, scp_role=True) for uid in dict.fromkeys(roles)]
        connected = threading.Event()
        received: list[Any] = []  # ACSE primitives from the server (answer, abort)

        def on_open(event: Any) -> None:
            connected.set()
            _nodelay(event)

        def on_acse(event: Any) -> None:
            received.append(event.primitive)

        evt_handlers = [(evt.EVT_CONN_OPEN, on_open), (evt.EVT_ACSE_RECV, on_acse),
                        *(handlers or [])]
        t0 = time.monotonic()
        try:
            assoc = ae.associate(self.host, self.port, ae_title=self.called_aet,
                                 ext_neg=ext_neg or None, evt_handlers=evt_handlers)
        except OSError as exc:  # e.g. a host name that does not resolve
            raise PacsError(f"cannot connect to DICOM server {self.host}:{self.port} {action}: "
                            f"{exc}; are host and port right?") from exc
        if not assoc.is_established:
            # pynetdicom may give up before reading an answer that came with the server
            # closing the connection (a fast rejection): it is then still in the DUL queue
            with contextlib.suppress(Exception):
                received += [p for p in list(assoc.dul.to_user_queue.queue) if p not in received]
            waited = time.monotonic() - t0
            raise PacsError(self._why_not(assoc, connected.is_set(), received, action, waited))
        try:
            yield assoc
        finally:
            if assoc.is_established:
                try:
                    assoc.release()
                except Exception:
                    assoc.abort()
            elif assoc.is_alive():
                assoc.abort()

    def _why_not(self, assoc: Any, connected: bool, received: list[Any], action: str,
                 waited: float) -> str:
        """Why the association is not established, and what to check."""
        if not connected:
            return (f"cannot connect to DICOM server {self.host}:{self.port} {action} (connection "
                    f"refused, or no answer within timeout_s={self.timeout_s:g}): is the server "
                    "running, and are host and port right?")
        answer = next((p for p in received if type(p).__name__ == "A_ASSOCIATE"), None)
        kinds = {type(p).__name__ for p in received}
        if answer is None and "A_ABORT" in kinds:
            return (f"DICOM server {self._where} aborted the association request {action}: "
                    f"check that it knows AE title {self.calling_aet!r} from this host and "
                    f"that its AE title is {self.called_aet!r}, and its log")
        if answer is None and (received or waited < 0.9 * self.timeout_s):
            return (f"DICOM server {self._where} closed the connection without answering the "
                    f"association request {action}: is it a DICOM port? Check that the server "
                    f"knows AE title {self.calling_aet!r} from this host and that its AE title "
                    f"is {self.called_aet!r}, and its log")
        if answer is None:
            return (f"DICOM server {self._where} did not accept the association within "
                    f"timeout_s={self.timeout_s:g} {action}: the port answers TCP but not "
                    "the DICOM protocol (is it the DICOM port, or is the server hung?)")
        if getattr(answer, "result", None) in (0x01, 0x02):
            key = (getattr(answer, "result_source", None), getattr(answer, "diagnostic", None))
            hint = _REJECT_HINTS.get(key, "").format(calling=self.calling_aet,
                                                     called=self.called_aet)
            detail = ", ".join(str(x) for x in (getattr(answer, "result_str", None),
                                                getattr(answer, "reason_str", None)) if x)
            return (f"DICOM server {self._where} refused the association from AE title "
                    f"{self.calling_aet!r} {action} ({detail or 'rejected'})"
                    + (f": {hint}" if hint else
                       f": check that it knows AE title {self.calling_aet!r} from this host "
                       f"and that its AE title is {self.called_aet!r}"))
        if assoc.rejected_contexts and not assoc.accepted_contexts:
            n = len({cx.abstract_syntax for cx in assoc.rejected_contexts})
            return (f"DICOM server {self._where} accepted none of the proposed presentation "
                    f"contexts {action} ({n} SOP class(es)): it does not offer this service, "
                    "or not in these transfer syntaxes")
        return (f"DICOM server {self._where} aborted the association {action}; check that it "
                f"knows AE title {self.calling_aet!r} from this host, and its log")

    # -- services ------------------------------------------------------------

    def echo(self) -> bool:
        """Check the connection with a C-ECHO.

        Returns
        -------
        bool
            True when the server answered with Success, False when it
            answered the C-ECHO with another status or not at all.

        Raises
        ------
        PacsError
            The server cannot be reached or refused the association (wrong or
            unregistered AE title).
        """
        from pynetdicom.sop_class import Verification

        with self._association([(Verification, list(_UNCOMPRESSED[:2]))],
                               action="for C-ECHO") as assoc:
            status = assoc.send_c_echo()
        return bool(status) and getattr(status, "Status", None) == 0x0000

    def find(self, level: str = "series", **filters: Any) -> pd.DataFrame:
        """Search the server (C-FIND, Study Root) at one level.

        Parameters
        ----------
        level : {'series', 'study', 'instance'}
            One row per study, series or instance.
        **filters
            Matching keys named as schema columns, as in :meth:`DicomWeb.query`.

        Returns
        -------
        pandas.DataFrame
            The columns of :data:`~medlab.cohort.INSTANCE_COLUMNS`; ``source``
            is ``'remote:<name>'`` and ``path`` a
            ``dimse://AET@host:port/studies/<uid>[/series/<uid>[/instances/<uid>]]``
            locator.

        Raises
        ------
        PacsError
            Unreachable server, refused association, a failure status or no
            answer within ``timeout_s``.
        ValueError
            Unknown level or filter name, or a value of the wrong kind.
        """
        level = _check_level(level)
        identifier = self._identifier(level, _filter_values(filters, level=level, uid_sep="\\"))
        rows = []
        for ds in self._c_find(identifier, action=f"for C-FIND at {level} level"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # over-long values etc. from the server
                row = _row(ds, level)
            row["source"] = self.source
            row["path"] = self._locator(row, level)
            rows.append(row)
        return _frame(rows)

    def _identifier(self, level: str, search: Mapping[str, str]) -> Dataset:
        from pydicom import Dataset
        from pydicom.sequence import Sequence

        ds = Dataset()
        ds.QueryRetrieveLevel = _LEVELS[level][1]
        for kw in _keywords(level):
            if kw == _PET_SEQUENCE:
                item = Dataset()
                for sub in ("Radiopharmaceutical", "RadionuclideTotalDose",
                            "RadionuclideHalfLife", "RadiopharmaceuticalStartTime",
                            "RadiopharmaceuticalStartDateTime"):
                    setattr(item, sub, None)
                ds.RadiopharmaceuticalInformationSequence = Sequence([item])
            else:
                setattr(ds, kw, None)
        for kw, text in search.items():
            setattr(ds, kw, text)
        return ds

    def _c_find(self, identifier: Dataset, *, action: str) -> list[Dataset]:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

        out: list[Dataset] = []
        with self._association([(FIND, list(_UNCOMPRESSED[:2]))], action=action) as assoc:
            for status, answer in assoc.send_c_find(identifier, FIND):
                code = getattr(status, "Status", None)
                if code is None:
                    raise PacsError(f"DICOM server {self._where} sent no C-FIND answer within "
                                    f"timeout_s={self.timeout_s:g} {action} (or aborted)")
                if code in (0xFF00, 0xFF01):
                    if answer is not None:
                        out.append(answer)
                elif code == 0x0000:
                    break
                else:
                    comment = getattr(status, "ErrorComment", None)
                    raise PacsError(f"DICOM server {self._where} answered C-FIND {action} with "
                                    f"status {_status_text(code)}"
                                    + (f": {comment}" if comment else ""))
        return out

    def _locator(self, row: Mapping[str, Any], level: str) -> str | None:
        st, se, sop = row.get("study_uid"), row.get("series_uid"), row.get("sop_uid")
        if not st:
            return None
        loc = f"dimse://{self.called_aet}@{self.host}:{self.port}/studies/{st}"
        if level in ("series", "instance"):
            if not se:
                return None
            loc += f"/series/{se}"
        if level == "instance":
            if not sop:
                return None
            loc += f"/instances/{sop}"
        return loc

    def get(self, *, study_uid: str, series_uid: str | None = None,
            dest: str | os.PathLike[str]) -> list[Path]:
        """Download a study or one series with C-GET, as DICOM Part-10 files.

        The SOP classes to accept are found first with a C-FIND at instance
        level; each is offered uncompressed and in every common compressed
        transfer syntax, so the server can send files as it stored them.

        Parameters
        ----------
        study_uid : str
            StudyInstanceUID.
        series_uid : str, optional
            SeriesInstanceUID; default the whole study.
        dest : str or os.PathLike
            Folder for the files (created); each is named ``<SOPInstanceUID>.dcm``
            and written through a temporary file.

        Returns
        -------
        list of pathlib.Path
            The files written, in the order received.

        Raises
        ------
        PacsError
            Unreachable server, refused association, nothing found for the
            UIDs, sub-operations that failed (the message says how many) or no
            answer within ``timeout_s``.
        """
        from pydicom import Dataset
        from pynetdicom import evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

        if not study_uid or not isinstance(study_uid, str):
            raise ValueError(f"study_uid must be a StudyInstanceUID string, got {study_uid!r}")
        if series_uid is not None and (not series_uid or not isinstance(series_uid, str)):
            raise ValueError(f"series_uid must be a SeriesInstanceUID string, got {series_uid!r}")
        what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
        # which SOP classes will come (C-GET needs a storage context for each)
        probe = Dataset()
        probe.QueryRetrieveLevel = "IMAGE"
        probe.StudyInstanceUID = study_uid
        probe.SeriesInstanceUID = series_uid or None
        probe.SOPInstanceUID = None
        probe.SOPClassUID = None
        found = self._c_find(probe, action=f"for C-FIND of the instances of {what}")
        if not found:
            raise PacsError(f"DICOM server {self._where} has no instances of {what}")
        # servers that do not return SOPClassUID get offered the common storage classes
        classes = sorted({str(ds.SOPClassUID) for ds in found if ds.get("SOPClassUID")}
                         or _COMMON_STORAGE)
        if len(classes) > _MAX_CONTEXTS - 1:
            raise PacsError(f"{what} holds {len(classes)} SOP classes, more than one association "
                            "can negotiate; retrieve it series by series")
        contexts: list[tuple[str, list[str]]] = [(GET, list(_UNCOMPRESSED[:2]))]
        contexts += _storage_contexts(classes, room=_MAX_CONTEXTS - 1)

        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        problems: list[str] = []

        def on_store(event: Any) -> int:
            try:
                sop = event.request.AffectedSOPInstanceUID
                written.append(_write_atomic(dest, _safe_name(sop) + ".dcm",
                                             event.encoded_dataset()))
            except Exception as exc:  # answer the server, report after the transfer
                problems.append(f"{type(exc).__name__}: {exc}")
                return 0xA700
            return 0x0000

        identifier = Dataset()
        identifier.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        identifier.StudyInstanceUID = study_uid
        if series_uid:
            identifier.SeriesInstanceUID = series_uid
        action = f"for C-GET of {what}"
        final: Dataset | None = None
        final_answer: Dataset | None = None
        with self._association(contexts, action=action, roles=classes,
                               handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
            for status, answer in assoc.send_c_get(identifier, GET):
                code = getattr(status, "Status", None)
                if code is None:
                    raise PacsError(f"DICOM server {self._where} stopped answering {action} "
                                    f"(no message within timeout_s={self.timeout_s:g}, or it "
                                    f"aborted); {len(written)} file(s) received in {dest}")
                if code in (0xFF00, 0xFF01):
                    continue
                final = status
                final_answer = answer
                break
        if problems:
            raise PacsError(f"could not write {len(problems)} file(s) received {action} into "
                            f"{dest}: {problems[0]}")
        code = getattr(final, "Status", None)
        failed = int(getattr(final, "NumberOfFailedSuboperations", 0) or 0)
        if code not in (0x0000, 0xB000) or failed:
            uids = getattr(final_answer, "FailedSOPInstanceUIDList", None)
            raise PacsError(
                f"DICOM server {self._where} answered {action} with status "
                f"{_status_text(code) if code is not None else 'none'}; "
                f"{failed} sub-operation(s) failed, {len(written)} file(s) received"
                + (f"; failed instances: {uids}" if uids else ""))
        return written

    def store(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> int:
        """Send DICOM files with C-STORE.

        Each file is sent in its own transfer syntax (one presentation
        context per SOP class and transfer syntax found in the files).

        Parameters
        ----------
        paths : path or iterable of paths
            Part-10 files, or folders whose files are all sent.

        Returns
        -------
        int
            Number of instances the server stored (Success or Warning status).

        Raises
        ------
        PacsError
            Unreachable server, refused association, or instances the server
            refused (all others are sent first; the message lists the refused
            files with their status).
        medlab.errors.DicomReadError
            A file is not a DICOM Part-10 file with SOP class and instance UIDs.
        FileNotFoundError
            A path does not exist.
        """
        files = _dicom_files(paths)
        headers = [(f, _read(f, pixels=False)) for f in files]
        pairs = list(dict.fromkeys((str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                                   for _, ds in headers))
        stored = 0
        failed: list[str] = []
        for start in range(0, len(pairs), _MAX_CONTEXTS):
            group = pairs[start:start + _MAX_CONTEXTS]
            wanted = set(group)
            todo = [(f, ds) for f, ds in headers
                    if (str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) in wanted]
            with self._association([(c, [t]) for c, t in group],
                                   action=f"for C-STORE of {len(todo)} file(s)") as assoc:
                accepted = {(cx.abstract_syntax, cx.transfer_syntax[0])
                            for cx in assoc.accepted_contexts}
                for path, header in todo:
                    key = (str(header.SOPClassUID), str(header.file_meta.TransferSyntaxUID))
                    if key not in accepted:
                        failed.append(f"{path.name}: the server accepts no SOP class {key[0]} "
                                      f"in transfer syntax {key[1]}")
                        continue
                    status = assoc.send_c_store(_read(path))
                    code = getattr(status, "Status", None)
                    if code is None:
                        raise PacsError(
                            f"DICOM server {self._where} stopped answering C-STORE at "
                            f"{path} (no answer within timeout_s={self.timeout_s:g}, or it "
                            f"aborted); {stored} file(s) stored before")
                    if code == 0x0000 or 0xB000 <= code <= 0xBFFF:
                        stored += 1
                    else:
                        comment = getattr(status, "ErrorComment", None)
                        failed.append(f"{path.name}: status {_status_text(code)}"
                                      + (f" {comment}" if comment else ""))
        if failed:
            raise PacsError(f"DICOM server {self._where} did not store {len(failed)} of "
                            f"{len(files)} file(s) ({stored} stored): {'; '.join(failed[:10])}"
                            + (" ..." if len(failed) > 10 else ""))
        return stored
