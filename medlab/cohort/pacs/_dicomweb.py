"""DICOMweb client (QIDO-RS, WADO-RS, STOW-RS) through dicomweb-client."""

from __future__ import annotations

import contextlib
import os
import urllib.parse
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
from ..._optional import import_optional
from ._common import (
    _BATCH_BYTES,
    _LEVELS,
    _MAX_PAGES,
    _QUERY_SAFE,
    PacsError,
    _check_level,
    _check_timeout,
    _dicom_files,
    _filter_values,
    _frame,
    _is_loopback,
    _keywords,
    _read,
    _row,
    _safe_name,
    _write_atomic,
    resource_path,
)
from ._deadline import Watchdog, shutdown_all, tracking_adapter


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
        Seconds to wait for a connection, and the most one answer may take in
        all: a search result (each page), each instance of a retrieve, the
        reply to a store (plus one second per MB sent). A server that keeps
        sending slowly (a byte every few seconds) is cut off then, not only
        one that goes silent; every call therefore ends within ``timeout_s``
        of its last complete answer. Requests are not retried.
    deadline_s : float, optional
        The most seconds one call (a search with all its pages, a whole
        retrieve, a whole store) may take in all, however steadily the server
        answers; default no limit beyond ``timeout_s`` per answer.
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
                 timeout_s: float = 10.0, deadline_s: float | None = None,
                 name: str | None = None) -> None:
        requests = import_optional("requests", feature="PACS access", extra="pacs")
        dwc = import_optional("dicomweb_client.api", feature="PACS access", extra="pacs",
                              package="dicomweb-client")
        parts = urllib.parse.urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL of a DICOMweb service "
                             f"(e.g. 'http://127.0.0.1:8042/dicom-web'), got {url!r}")
        if parts.username or parts.password:
            raise ValueError("put credentials in username= and password=, not in the URL")
        if password is not None and username is None:
            raise ValueError("password= given without username=")
        self.timeout_s = _check_timeout(timeout_s)
        self.deadline_s = None if deadline_s is None else _check_timeout(deadline_s, "deadline_s")
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
        # the sockets of this client, so that a call past its deadline can be cut off
        adapter, self._sockets = tracking_adapter(requests)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
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
    def _errors(self, action: str, *, deadline_s: float | None = None) -> Iterator[Watchdog]:
        """Turn requests' exceptions into PacsError naming the server and the action.

        The call is cut off (its connections shut down) when ``deadline_s``
        (default ``timeout_s``) pass without the watchdog it yields being renewed.
        """
        deadline = self.timeout_s if deadline_s is None else deadline_s
        # a quarter second of grace: a server that is silent meets the read timeout first
        # (its own, clearer message); one that trickles meets the watchdog
        watchdog = Watchdog(deadline + 0.25, lambda: shutdown_all(self._sockets),
                            total=self.deadline_s)
        try:
            with watchdog, self._mapped(action):
                yield watchdog
        except Exception as exc:
            if not watchdog.expired or isinstance(exc.__cause__, self._requests.exceptions.Timeout):
                raise
            if watchdog.by_total:
                what = f"the call's deadline (deadline_s={watchdog.total:g})"
            else:
                what = (f"{deadline:g} s for one answer (timeout_s={self.timeout_s:g} bounds each "
                        "answer in all, not only each read)")
            raise PacsError(
                f"DICOMweb server {self.host}:{self.port} did not finish answering {action} "
                f"within {what}: it sends too slowly or has stalled mid-answer, so the call was "
                f"cut off. Is {self.url} overloaded? Raise timeout_s (or deadline_s) for very "
                "large transfers") from exc

    @contextlib.contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
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
        pydicom = import_optional("pydicom", feature="PACS access", extra="pacs")
        with self._errors(f"while searching for {level} (QIDO-RS)") as watchdog:
            answers = self._search(_LEVELS[level][0], search, _keywords(level),
                                   watchdog=watchdog)
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

    def _search(self, resource: str, search: Mapping[str, str], fields: Iterable[str], *,
                watchdog: Watchdog | None = None) -> list[dict[str, Any]]:
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
            if watchdog is not None:
                watchdog.renew()  # each page has its own deadline
            # a server that truncates the answer says so in a Warning header (PS3.18 8.3.4.4)
            if not page or "Warning" not in resp.headers:
                break
        return out

    def _url(self, row: Mapping[str, Any], level: str) -> str | None:
        return resource_path(self.url, row, level)

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
        with self._errors(action) as watchdog:
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
                watchdog.renew()  # each instance has its own deadline
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
            nbytes = sum(f.stat().st_size for f in chunk)
            with self._errors(f"while storing {len(chunk)} instance(s) (STOW-RS)",
                              deadline_s=self.timeout_s + nbytes / 1e6):
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
