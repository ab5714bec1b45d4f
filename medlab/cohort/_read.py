"""Walking folders and reading headers in parallel (local processes or dask) for the index."""

from __future__ import annotations

import gc
import itertools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ._scan import read_batch


# ------------------------------------------------------------------------ walking
def _norm_root(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(root: str, skip: frozenset[str], dir_errors: list[tuple]) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every regular file under ``root``.

    Hidden files and folders (starting with '.') are skipped, as the loader
    does; folder symlinks are not followed. Folders that cannot be listed,
    special files (FIFOs, sockets, devices: never opened), broken links and
    symbolic-link loops go to ``dir_errors`` (recomputed on every scan).
    """
    from ..io.dicom import file_problem

    if os.path.isfile(root):
        st = os.stat(root)
        yield root, st.st_size, st.st_mtime_ns
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            dir_errors.append((folder, None, None,
                               f"{os.path.basename(folder)}: folder cannot be listed "
                               f"({exc.strerror or exc}); check its permissions"))
            continue
        with it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        continue
                    if entry.path in skip:
                        continue
                    if entry.is_file():
                        st = entry.stat()
                        yield entry.path, st.st_size, st.st_mtime_ns
                        continue
                except OSError:
                    pass
                # not a regular file: a special file, a link to a folder, a loop, or gone
                if entry.is_symlink() and os.path.isdir(entry.path):
                    continue  # folder symlinks are not followed
                problem = file_problem(entry.path)
                if problem is not None and "was removed while" not in problem:
                    dir_errors.append((entry.path, None, None, problem))


# ------------------------------------------------------------------------ reading
#: files read per task at most (the first tasks of a scan); small enough for a smooth
#: progress bar, large enough to amortise the cost of sending a task
_CHUNK_MAX = 256
#: the least a task reads: the last tasks of a local scan shrink to this, so that the
#: processes finish within a few milliseconds of each other
_CHUNK_MIN = 24
#: below this many files to read, worker processes cost more than they save
_PARALLEL_MIN_FILES = 400
#: seconds a process waits for the lock of the file list (held for microseconds)
_LOCK_TIMEOUT_S = 10.0
#: local worker processes are forked (Linux); elsewhere spawned (a pool, _run_pool)
_FORK = sys.platform.startswith("linux")
#: bytes a worker's result pipe holds (Linux; the most an unprivileged process may ask):
#: a worker goes on reading while its last results wait for the scanning process
_PIPE_BYTES = 1 << 20


def _chunks(items: list, n_workers: int) -> list[list]:
    size = max(16, min(_CHUNK_MAX, math.ceil(len(items) / max(1, 8 * n_workers))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _spans(chunks: list[list]) -> list[tuple[int, int]]:
    """(lo, hi) of each of the consecutive ``chunks`` in the list they were cut from."""
    ends = list(itertools.accumulate(len(c) for c in chunks))
    return list(zip([0, *ends], ends, strict=False))  # starts: 0, then each end but the last


class _InOrder:
    """Hands the chunks' results to ``add`` in the order of the files, whatever order
    they arrive in: the index's rows are stored in the order a one-process scan stores
    them, and a series' rows are complete when the next series' come."""

    def __init__(self, add: Callable[[dict[str, Any]], None], bar: Any) -> None:
        self.add, self.bar = add, bar
        self.next = 0
        self.waiting: dict[int, tuple[int, dict[str, Any]]] = {}

    def put(self, lo: int, hi: int, batch: dict[str, Any]) -> None:
        self.bar.update(hi - lo)
        self.waiting[lo] = (hi, batch)
        while self.next in self.waiting:
            hi, batch = self.waiting.pop(self.next)
            self.next = hi
            self.add(batch)


def _read_files(
    items: list[tuple[str, int, int]],
    *,
    workers: int,
    client: Any,
    progress: bool,
    start: Callable[[], None] = lambda: None,
    add: Callable[[dict[str, Any]], None],
    idle: Callable[[], None] = lambda: None,
) -> None:
    """Run :func:`read_batch` over ``items`` here, in worker processes or on a dask cluster.

    ``add`` gets the result of each chunk of files (:func:`read_batch`), in the
    order of ``items``, in this process, while the other chunks are read;
    ``start`` runs in this process once, as soon as the workers read (before
    the first ``add``); ``idle`` when this process waits for the workers, or
    when few files are left to read (it may call it more than once).
    """
    from tqdm.auto import tqdm

    if not items:
        start()
        return
    bar = tqdm(total=len(items), desc="indexing DICOM headers", unit="file",
               disable=not progress or len(items) < 200)
    order = _InOrder(add, bar)
    try:
        if client is not None:
            _run_on_dask(client, _chunks(items, _dask_workers(client)), order, start)
        elif workers > 1 and len(items) >= _PARALLEL_MIN_FILES:
            _run_forked(items, workers, order, start, idle)
        else:
            start()
            for c in _chunks(items, 1):
                order.put(order.next, order.next + len(c), read_batch(c))
    finally:
        bar.close()


# ------------------------------------------------------------------ local processes
class _Claims:
    """The next files to read, shared by the processes of a scan (forked with it): each
    claims the next span of the list, shorter as fewer files are left (guided
    self-scheduling), so that all processes stay busy to the end and finish together."""

    def __init__(self, ctx: Any, n: int, n_procs: int) -> None:
        self.n, self.n_procs = n, n_procs
        self.pos = ctx.RawValue("q", 0)
        self.lock = ctx.Lock()

    def next(self) -> tuple[int, int] | None:
        # the lock is held for microseconds: a process killed while it held it (the
        # out-of-memory killer) must not leave the others waiting for ever
        if not self.lock.acquire(timeout=_LOCK_TIMEOUT_S):
            raise WorkerError(
                f"the processes of the scan could not share out the files: their lock was "
                f"not released in {_LOCK_TIMEOUT_S} s (a worker process killed while it held "
                "it); nothing was written to the index. Scan again")
        try:
            lo = self.pos.value
            left = self.n - lo
            if left <= 0:
                return None
            size = min(left, max(_CHUNK_MIN, min(_CHUNK_MAX, left // (2 * self.n_procs))))
            self.pos.value = lo + size
        finally:
            self.lock.release()
        return lo, lo + size

    def left(self) -> int:
        """Files not claimed yet (read without the lock: an estimate)."""
        return self.n - self.pos.value


def _worker(items: list[tuple[str, int, int]], claims: _Claims, conn: Any) -> None:
    """A forked worker: reads the spans it claims and sends each result, pickled, with its
    span; ``("done",)`` at the end, or ``("error", exception, traceback)``."""
    import pickle
    import traceback

    try:
        while (span := claims.next()) is not None:
            lo, hi = span
            batch = read_batch(items[lo:hi])
            for key in _ARROW_KEYS:  # (Arrow's IPC format: 5x cheaper than pickling a table)
                batch[key] = _to_ipc(batch[key])
            conn.send_bytes(pickle.dumps(("rows", lo, hi, batch), protocol=pickle.HIGHEST_PROTOCOL))
        conn.send_bytes(pickle.dumps(("done",)))
        conn.close()
    except BaseException as exc:  # sent to the scanning process, which raises it
        text = traceback.format_exc()
        try:
            try:
                blob = pickle.dumps(("error", exc, text))
            except Exception:  # an exception that cannot be pickled
                blob = pickle.dumps(("error", RuntimeError(repr(exc)), text))
            conn.send_bytes(blob)
        finally:
            os._exit(1)
    # at once (multiprocessing's exit would run the finalisers of the parent's objects)
    os._exit(0)


#: the Arrow tables of a batch (read_batch)
_ARROW_KEYS = ("instances", "frames")


def _to_ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all()


class WorkerError(RuntimeError):
    """A worker process of a scan failed (the message holds its traceback)."""


def _grow_pipe(conn: Any) -> None:
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except (ImportError, OSError):  # not Linux, or a lower limit: the worker waits more
        pass


def _run_forked(items: list[tuple[str, int, int]], workers: int, order: _InOrder,
                start: Callable[[], None], idle: Callable[[], None]) -> None:
    """``workers - 1`` forked processes and this one read ``items``, claiming spans from
    the front of the list (:class:`_Claims`); this one also sets DuckDB up (``start``) and
    takes in the workers' results between its own spans."""
    import multiprocessing as mp
    import pickle
    from multiprocessing.connection import wait

    if not _FORK:  # macOS / Windows
        _run_pool(items, workers, order, start, mp.get_context("spawn"))
        return
    ctx = mp.get_context("fork")
    claims = _Claims(ctx, len(items), workers)
    procs: dict[Any, Any] = {}  # result connection -> process
    # forked workers must never collect the parent's garbage: finalising an object that
    # holds native state of the parent (an unclosed DuckDB connection and its threads)
    # crashed a worker. Frozen objects are left alone by the children's GC.
    gc.freeze()
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns on fork() next to threads (DuckDB's); the workers only
            # read headers (no DuckDB, no threads) and leave with os._exit
            warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork",
                                    category=DeprecationWarning)
            for _ in range(min(workers - 1, math.ceil(len(items) / _CHUNK_MIN) - 1)):
                receive, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker, args=(items, claims, send), daemon=True,
                                   name="medlab-scan-worker")
                proc.start()
                send.close()
                _grow_pipe(receive)
                procs[receive] = proc
    finally:
        gc.unfreeze()
    live = dict(procs)

    def take(ready: list) -> None:
        for conn in ready:
            try:
                message = pickle.loads(conn.recv_bytes())
            except EOFError:  # the process ended without a word: killed
                proc = live.pop(conn)
                proc.join(5)
                raise WorkerError(
                    f"a header-reading worker process (pid {proc.pid}) stopped before it "
                    f"finished ({_exit_text(proc.exitcode)}); nothing was written to the "
                    "index. Scan again (with workers=1 to read in this process only)"
                ) from None
            if message[0] == "rows":
                _, lo, hi, batch = message
                for key in _ARROW_KEYS:
                    batch[key] = _from_ipc(batch[key])
                order.put(lo, hi, batch)
            elif message[0] == "done":
                live.pop(conn)
            else:
                _, exc, text = message
                live.pop(conn)
                raise WorkerError(
                    f"a header-reading worker process failed ({type(exc).__name__}: {exc}); "
                    f"nothing was written to the index. Its traceback:\n{text}") from exc

    try:
        start()
        tail = False
        while True:
            take(wait(list(live), timeout=0) if live else [])
            if not tail and claims.left() <= _CHUNK_MAX * workers:
                # the last files: what this process still has to do after the reading
                # (insert the rows so far) is done now, while the workers read them
                tail = True
                idle()
            if (span := claims.next()) is None:
                break
            lo, hi = span
            order.put(lo, hi, read_batch(items[lo:hi]))
        while live:
            ready = wait(list(live), timeout=0)
            if not ready:
                idle()
                ready = wait(list(live))
            take(ready)
    finally:
        for conn, proc in procs.items():
            if proc.is_alive() and conn in live:  # stopped early (an error, ctrl-C)
                proc.terminate()
            proc.join()
            conn.close()


def _run_pool(items: list[tuple[str, int, int]], workers: int, order: _InOrder,
              start: Callable[[], None], ctx: Any) -> None:
    """Where processes cannot be forked (macOS, Windows): ``workers`` spawned processes of a
    pool read the chunks; this one sets DuckDB up and takes in their results."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        chunks = _chunks(items, workers)
        futures = {pool.submit(read_batch, c): span
                   for c, span in zip(chunks, _spans(chunks), strict=True)}
        try:
            start()
            for fut in as_completed(futures):
                order.put(*futures[fut], fut.result())
        except BaseException:  # (DuckDB failed, ctrl-C): no more chunks to read
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", e.g. by the out-of-memory killer" if name == "SIGKILL"
                                      else "")
    return f"exit code {code}"


def _dask_client(client: Any) -> tuple[Any, bool]:
    """A distributed Client for ``client`` (a Client, or a scheduler address to connect to)."""
    if isinstance(client, str):
        try:
            from dask.distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a cohort dependency
            raise ImportError(
                "scanning on a dask cluster needs dask.distributed: pip install 'dask[distributed]'"
            ) from exc
        try:
            return Client(client, timeout="10s"), True
        except OSError as exc:
            raise ConnectionError(
                f"cannot reach the dask scheduler at {client!r} ({exc}); start it (dask "
                "scheduler) or pass client=None to scan with local processes"
            ) from exc
    if not hasattr(client, "map") or not hasattr(client, "gather"):
        raise TypeError(
            f"client must be a dask.distributed Client or a scheduler address such as "
            f"'tcp://127.0.0.1:8786', got {type(client).__name__}"
        )
    return client, False


def _dask_workers(client: Any) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # pragma: no cover - an unusual client
        return 4


def _run_on_dask(client: Any, chunks: list[list], order: _InOrder,
                 start: Callable[[], None]) -> None:
    from dask.distributed import as_completed

    futures = client.map(read_batch, chunks, pure=False)
    start()
    spans = {f.key: span for f, span in zip(futures, _spans(chunks), strict=True)}
    for fut in as_completed(futures):
        order.put(*spans[fut.key], fut.result())
