"""Every PACS call honours a deadline, not only a per-read timeout (issue 12, finding 7).

Servers on 127.0.0.1 that trickle one byte every 2 s -- in the HTTP status
line, in a search answer's body, in a multipart WADO-RS answer, after a STOW-RS
upload, in a DICOM association answer -- never let a per-read timeout fire.
A call with ``timeout_s=5`` must end within ``timeout_s`` + 2 s with a clear
error. A DIMSE server that answers C-FIND steadily but forever is stopped by
``deadline_s``.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import medlab as ml
from medlab.cohort.pacs import PacsError

pytest.importorskip("dicomweb_client")
pytest.importorskip("pynetdicom")

TIMEOUT_S = 5.0
SLACK_S = 2.0
TRICKLE_S = 2.0


class _Trickler(socketserver.BaseRequestHandler):
    """Read the request, then send ``server.head`` and trickle ``server.body`` byte by byte."""

    def handle(self) -> None:
        srv = self.server
        sock = self.request
        if srv.http:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                rest += chunk
        try:
            sock.sendall(srv.head)
            for i in range(len(srv.body)):
                if srv.stopping.is_set():
                    return
                sock.sendall(srv.body[i : i + 1])
                srv.stopping.wait(TRICKLE_S)
        except OSError:  # the client gave up: that is the point
            return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def trickling(head: bytes, body: bytes, *, http: bool = True) -> Iterator[int]:
    srv = _Server(("127.0.0.1", 0), _Trickler)
    srv.head, srv.body, srv.http = head, body, http
    srv.stopping = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.stopping.set()
        srv.shutdown()
        srv.server_close()
        thread.join(10)


def _timed(call) -> tuple[float, Exception | None]:
    t0 = time.monotonic()
    try:
        call()
    except Exception as exc:
        return time.monotonic() - t0, exc
    return time.monotonic() - t0, None


JSON_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
             b"Content-Length: 200\r\n\r\n")
MULTIPART_HEAD = (b'HTTP/1.1 200 OK\r\nContent-Type: multipart/related; '
                  b'type="application/dicom"; boundary=xyz\r\n\r\n')

CASES = {
    "status line of a search": (b"", b"HTTP/1.1 200 OK\r\n" + b" " * 100,
                                lambda web, tmp: web.query("study")),
    "body of a search": (JSON_HEAD, b"[" + b" " * 199, lambda web, tmp: web.query("series")),
    "multipart retrieve": (MULTIPART_HEAD, b"--xyz\r\nContent-Type: application/dicom\r\n\r\n"
                           + b"\x00" * 500,
                           lambda web, tmp: web.retrieve(study_uid="1.2.3", dest=tmp / "out")),
    "reply to a store": (b"", b"HTTP/1.1 200 OK\r\n" + b" " * 100,
                         lambda web, tmp: web.store(_one_file(tmp))),
}


def _one_file(tmp):
    import numpy as np
    from helpers import write_dicom_series

    paths, _ = write_dicom_series(tmp / "up", np.zeros((1, 4, 4), np.int16))
    return paths


@pytest.mark.parametrize("case", list(CASES))
def test_dicomweb_call_ends_at_its_deadline(case, tmp_path):
    head, body, call = CASES[case]
    with trickling(head, body) as port:
        web = ml.cohort.DicomWeb(f"http://127.0.0.1:{port}/dicom-web", timeout_s=TIMEOUT_S)
        took, exc = _timed(lambda: call(web, tmp_path))
        web.close()
    assert isinstance(exc, PacsError), (took, exc)
    assert took < TIMEOUT_S + SLACK_S, f"{case}: {took:.1f} s"
    assert took > TIMEOUT_S - 0.5  # the deadline, not some earlier failure
    message = str(exc)
    assert f"127.0.0.1:{port}" in message and "did not finish answering" in message
    assert "timeout_s=5" in message


def test_dicomweb_deadline_s_bounds_a_whole_call(tmp_path):
    # each answer within timeout_s, but the call as a whole within deadline_s
    with trickling(JSON_HEAD, b"[" + b" " * 199) as port:
        web = ml.cohort.DicomWeb(f"http://127.0.0.1:{port}/dicom-web", timeout_s=30,
                                 deadline_s=3)
        took, exc = _timed(lambda: web.query("study"))
        web.close()
    assert isinstance(exc, PacsError) and "deadline_s=3" in str(exc), exc
    assert 2.5 < took < 3 + SLACK_S


def test_dimse_association_answer_trickled(tmp_path):
    # an A-ASSOCIATE-AC PDU header announcing 1000 bytes, then a byte every 2 s
    body = b"\x02\x00\x00\x00\x03\xe8" + b"\x00" * 1000
    with trickling(b"", body, http=False) as port:
        dimse = ml.cohort.Dimse("127.0.0.1", port, called_aet="SLOW", timeout_s=TIMEOUT_S)
        took, exc = _timed(dimse.echo)
    assert isinstance(exc, PacsError), (took, exc)
    assert took < TIMEOUT_S + SLACK_S, took
    assert f"SLOW at 127.0.0.1:{port}" in str(exc) and "sends too slowly" in str(exc), exc


@pytest.fixture
def steady_find_server() -> Iterator[int]:
    """A DIMSE server that answers C-FIND with a new result every second, 60 times."""
    from pydicom import Dataset
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    stop = threading.Event()

    def on_find(event):
        for i in range(60):
            if stop.wait(1.0) or event.is_cancelled:
                return
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = f"1.2.3.{i}"
            yield 0xFF00, ds

    ae = AE(ae_title="STEADY")
    ae.add_supported_context(FIND)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_FIND, on_find)])
    try:
        yield port
    finally:
        stop.set()
        server.shutdown()


def test_dimse_deadline_s_stops_a_steady_stream(steady_find_server):
    dimse = ml.cohort.Dimse("127.0.0.1", steady_find_server, called_aet="STEADY",
                            timeout_s=TIMEOUT_S, deadline_s=4)
    took, exc = _timed(lambda: dimse.find("study"))
    assert isinstance(exc, PacsError) and "deadline_s=4" in str(exc), exc
    assert 3.5 < took < 4 + SLACK_S, took


def test_deadline_s_is_checked():
    with pytest.raises(ValueError, match="deadline_s"):
        ml.cohort.DicomWeb("http://127.0.0.1:1/dicom-web", deadline_s=0)
    with pytest.raises(ValueError, match="deadline_s"):
        ml.cohort.Dimse("127.0.0.1", 104, called_aet="X", deadline_s=-1)
