"""DIMSE client (C-ECHO, C-FIND, C-GET, C-STORE) through pynetdicom."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pydicom import Dataset
from ..._optional import import_optional
from ._common import (
    _LEVELS,
    _PET_SEQUENCE,
    PacsError,
    _check_level,
    _check_timeout,
    _dicom_files,
    _filter_values,
    _frame,
    _keywords,
    _read,
    _row,
    _safe_name,
    _write_atomic,
    resource_path,
)
from ._deadline import Watchdog, shutdown_all

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
        DIMSE message to arrive in full (pynetdicom waits for a complete
        message, so a server that trickles bytes is cut off too); nothing
        waits longer.
    deadline_s : float, optional
        The most seconds one call (an echo, a whole search, a whole C-GET or
        C-STORE) may take in all, however steadily the server answers: the
        association is then aborted. Default: no limit beyond ``timeout_s``
        per message.
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
                 timeout_s: float = 10.0, deadline_s: float | None = None,
                 name: str | None = None) -> None:
        import_optional("pynetdicom", feature="PACS access", extra="pacs")
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
        self.deadline_s = None if deadline_s is None else _check_timeout(deadline_s, "deadline_s")
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

        sockets: list[Any] = []  # to cut the connection off when a deadline passes

        def on_open(event: Any) -> None:
            connected.set()
            with contextlib.suppress(AttributeError):
                sockets.append(event.assoc.dul.socket.socket)
            _nodelay(event)

        def on_acse(event: Any) -> None:
            received.append(event.primitive)

        evt_handlers = [(evt.EVT_CONN_OPEN, on_open), (evt.EVT_ACSE_RECV, on_acse),
                        *(handlers or [])]
        def cut() -> None:
            # pynetdicom reads each PDU in full with blocking reads, and waits for that
            # reader when it gives up: a server trickling a PDU would hold it forever
            shutdown_all(sockets)

        # pynetdicom's own limits end the negotiation after timeout_s; the watchdogs (a
        # second later) unblock its reader if the server is trickling bytes
        grace = self.timeout_s + 1.0
        t0 = time.monotonic()
        try:
            with Watchdog(grace, cut) as negotiation:
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
            if negotiation.expired:
                raise PacsError(
                    f"DICOM server {self._where} did not complete its answer to the association "
                    f"request within timeout_s={self.timeout_s:g} {action}: the port answers "
                    "TCP but sends too slowly, or not the DICOM protocol (is it the DICOM port, "
                    "or is the server hung?); the connection was cut off")
            raise PacsError(self._why_not(assoc, connected.is_set(), received, action, waited))
        watchdog = Watchdog(math.inf if self.deadline_s is None else
                            max(self.deadline_s - (time.monotonic() - t0), 0.0), cut)
        try:
            with watchdog:
                yield assoc
                if watchdog.expired:
                    raise PacsError("deadline")  # replaced below
        except Exception as exc:
            if not watchdog.expired:
                raise
            raise PacsError(
                f"DICOM server {self._where} did not finish {action} within the call's deadline "
                f"(deadline_s={self.deadline_s:g}); the association was aborted. Raise "
                "deadline_s for large transfers, or check the server's load") from exc
        finally:
            with Watchdog(grace, cut):
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
        return resource_path(f"dimse://{self.called_aet}@{self.host}:{self.port}", row, level)

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
