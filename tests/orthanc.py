"""A real Orthanc DICOM server for the tests, started as a plain subprocess.

:func:`start_orthanc` writes an Orthanc JSON configuration into a folder of
its own (storage and index in that folder), picks free ports on 127.0.0.1,
starts ``Orthanc`` with the DICOMweb plugin and waits until its REST API
answers. The server is locked down as a research PACS would be:

- HTTP (REST and DICOMweb) needs basic authentication with one registered
  user (``medlab`` and a random password); remote HTTP access is off.
- DIMSE accepts only registered AE titles, from their registered host
  (``DicomCheckCalledAet``, ``DicomCheckModalityHost``; echo and store from
  unknown AEs are refused too).

Orthanc 1.10 cannot bind its ports to 127.0.0.1 only; the AE-title and host
checks are the DIMSE protection. ``TCP_NODELAY=1`` in its environment avoids
a ~40 ms stall per DIMSE message. It starts in well under a second and takes
~3 s to stop on SIGTERM, hence one server per test session.

:meth:`OrthancServer.rest` talks to the REST API with the standard library
only, so the tests have a reference that shares no code with
``medlab.cohort.pacs``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORTHANC = "Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
HOST = "127.0.0.1"

__all__ = ["OrthancServer", "missing", "running_orthanc", "start_orthanc"]


def missing() -> str | None:
    """Why no Orthanc can be started here (None when it can)."""
    if shutil.which(ORTHANC) is None:
        return ("'Orthanc' is not on PATH: apt-get install orthanc orthanc-dicomweb "
                "(.ci/run does)")
    if not DICOMWEB_PLUGIN.is_file():
        return f"the DICOMweb plugin {DICOMWEB_PLUGIN} is missing: apt-get install orthanc-dicomweb"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class OrthancServer:
    """A running Orthanc: where it listens and how to log in."""

    workdir: Path
    http_port: int
    dicom_port: int
    username: str
    password: str
    aet: str = "ORTHANC"
    #: the AE titles Orthanc knows: name -> (AE title, host, port)
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    start_s: float = 0.0
    stop_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def log(self) -> str:
        p = self.workdir / "orthanc.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def rest(self, path: str, *, method: str = "GET", body: bytes | dict | None = None,
             timeout_s: float = 10.0) -> Any:
        """Call Orthanc's REST API (standard library only) and decode its JSON answer."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.url + path, data=data, method=method)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """SIGTERM, wait (Orthanc needs ~3 s), SIGKILL if it does not stop."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        self.stop_s = time.perf_counter() - t0


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies (Linux), so no Orthanc is orphaned."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _config(server: OrthancServer) -> dict[str, Any]:
    return {
        "Name": "medlab-test",
        "StorageDirectory": str(server.workdir / "storage"),
        "IndexDirectory": str(server.workdir / "index"),
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False,
                     "Host": f"{HOST}:{server.http_port}", "Ssl": False},
        # HTTP: only this machine, only the registered user
        "HttpServerEnabled": True,
        "HttpPort": server.http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {server.username: server.password},
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "HttpTimeout": 10,
        "HttpRequestTimeout": 10,
        # DIMSE: only registered AE titles from their registered host
        "DicomServerEnabled": True,
        "DicomAet": server.aet,
        "DicomPort": server.dicom_port,
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomModalities": {k: list(v) for k, v in server.modalities.items()},
        "DicomScpTimeout": 10,
        "DicomScuTimeout": 10,
        "UnknownSopClassAccepted": False,
        # quick and self-contained
        "SyncStorageArea": False,
        "SaveJobs": False,
        "StorageCompression": False,
        "OverwriteInstances": False,
        "StorageAccessOnFind": "Always",
        "MetricsEnabled": False,
        "ConcurrentJobs": 2,
    }


def start_orthanc(workdir: str | os.PathLike[str], *,
                  modalities: dict[str, tuple[str, str, int]] | None = None,
                  timeout_s: float = 20.0) -> OrthancServer:
    """Start Orthanc in ``workdir`` and wait until its REST API answers.

    ``modalities`` are the AE titles Orthanc accepts (default: ``MEDLAB`` on
    127.0.0.1). Raises RuntimeError with the end of Orthanc's log when it
    exits or does not answer within ``timeout_s``.
    """
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    server = OrthancServer(
        workdir=workdir, http_port=free_port(), dicom_port=free_port(),
        username="medlab", password=secrets.token_urlsafe(16),
        modalities=dict(modalities or {"medlab": ("MEDLAB", HOST, free_port())}),
    )
    config = workdir / "orthanc.json"
    config.write_text(json.dumps(_config(server), indent=2))
    env = {**os.environ, "TCP_NODELAY": "1"}
    t0 = time.perf_counter()
    with open(workdir / "orthanc.log", "wb") as log:
        server.process = subprocess.Popen(
            [ORTHANC, "--no-jobs", str(config)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=workdir, env=env, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    deadline = t0 + timeout_s
    last: Exception | None = None
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {server.process.returncode} at start; "
                               f"its log:\n{server.log[-3000:]}")
        try:
            server.rest("/system", timeout_s=2.0)
            plugins = server.rest("/plugins", timeout_s=2.0)
            if "dicom-web" not in plugins:
                raise RuntimeError(f"Orthanc started without its DICOMweb plugin "
                                   f"(plugins: {plugins}); log:\n{server.log[-3000:]}")
            server.start_s = time.perf_counter() - t0
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer on {server.url} within {timeout_s:g} s "
                       f"({last}); its log:\n{server.log[-3000:]}")


@contextlib.contextmanager
def running_orthanc(workdir: str | os.PathLike[str], **kwargs: Any) -> Iterator[OrthancServer]:
    """:func:`start_orthanc` as a context manager that always stops the server."""
    server = start_orthanc(workdir, **kwargs)
    try:
        yield server
    finally:
        server.stop()
