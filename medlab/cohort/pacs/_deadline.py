"""A watchdog that ends a network call when its deadline passes.

A per-read timeout does not bound a call: a server that sends one byte every
few seconds never lets a read time out. :class:`Watchdog` runs ``on_expire``
(which closes the call's sockets, or aborts its DICOM association) once
``seconds`` have passed without :meth:`Watchdog.renew`; the blocked read then
fails at once, and the caller turns that into a clear error.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Watchdog", "tracking_adapter"]


class Watchdog:
    """Call ``on_expire`` once if ``seconds`` pass before :meth:`renew` or the end.

    Use as a context manager around the call; :attr:`expired` tells afterwards
    whether the deadline ended it.
    """

    def __init__(self, seconds: float, on_expire: Callable[[], None], *,
                 total: float | None = None) -> None:
        self.seconds = float(seconds)
        self.total = total  # the most the whole call may take, renewals included
        self.expired = False
        self.by_total = False
        self._on_expire = on_expire
        self._cond = threading.Condition()
        self._done = False
        self._expiry = 0.0
        self._end = float("inf")
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watchdog:
        now = time.monotonic()
        self._end = now + self.total if self.total is not None else float("inf")
        self._expiry = min(now + self.seconds, self._end)
        self._thread = threading.Thread(target=self._watch, name="medlab-deadline", daemon=True)
        self._thread.start()
        return self

    def renew(self, seconds: float | None = None) -> None:
        """Start the wait again (after a complete answer), for ``seconds`` or as before."""
        with self._cond:
            self._expiry = min(time.monotonic() + (self.seconds if seconds is None else seconds),
                               self._end)
            self._cond.notify()

    def _watch(self) -> None:
        with self._cond:
            while not self._done:
                left = self._expiry - time.monotonic()
                if left <= 0:
                    self.expired = True
                    self.by_total = self._expiry >= self._end  # the call's overall limit
                    break
                self._cond.wait(None if left == float("inf") else left)
        if self.expired:
            with contextlib.suppress(Exception):
                self._on_expire()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()


def shutdown_all(sockets: Any) -> None:
    """Shut down sockets (a read blocked on one returns at once)."""
    for sock in list(sockets):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def tracking_adapter(requests: Any) -> tuple[Any, weakref.WeakSet]:
    """A requests adapter whose sockets are recorded, so a watchdog can shut them down.

    The sockets themselves are kept (weakly), not the connections: a response
    read until the server closes (no Content-Length) holds the socket after its
    connection has let go of it.
    """
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    live: weakref.WeakSet = weakref.WeakSet()

    class Tracked(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            live.add(self.sock)

    class TrackedS(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            live.add(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Tracked

    class PoolS(HTTPSConnectionPool):
        ConnectionCls = TrackedS

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": PoolS}

    return Adapter(max_retries=0), live
