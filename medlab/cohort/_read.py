"""Walking folders and reading headers in parallel (local processes or dask) for the index."""

from __future__ import annotations

import gc
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._scan import read_batch

if TYPE_CHECKING:

    pass



#: files read per task; small enough for a smooth progress bar, large enough to amortise
#: the cost of sending a task
_CHUNK_MAX = 256
#: below this many files to read, worker processes cost more than they save
_PARALLEL_MIN_FILES = 400

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
def _chunks(items: list, n_workers: int) -> list[list]:
    size = max(16, min(_CHUNK_MAX, math.ceil(len(items) / max(1, 8 * n_workers))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _process_pool(workers: int) -> Any:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # fork starts workers in milliseconds with medlab already imported; the children only
    # run the header reader (no DuckDB, no threads) and leave with os._exit
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("fork")
    else:  # pragma: no cover - macOS / Windows
        ctx = mp.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def _read_files(
    items: list[tuple[str, int, int]],
    *,
    workers: int,
    client: Any,
    progress: bool,
    meanwhile: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run :func:`read_batch` over ``items`` here, in worker processes or on a dask cluster.

    Returns the rows of all chunks in the order of ``items``: ``instances`` (one
    Arrow table), ``inputs``, ``frames`` and ``errors`` (lists of tuples).
    ``meanwhile`` runs in this process once the workers have their chunks (before
    reading here).
    """
    from tqdm.auto import tqdm

    out: dict[str, Any] = {"instances": [], "inputs": [], "frames": [], "errors": []}
    if not items:
        meanwhile()
        return out
    bar = tqdm(total=len(items), desc="indexing DICOM headers", unit="file",
               disable=not progress or len(items) < 200)
    results: dict[int, dict[str, Any]] = {}
    try:
        if client is not None:
            chunks = _chunks(items, _dask_workers(client))
            results = _run_on_dask(client, chunks, bar, meanwhile)
        elif workers > 1 and len(items) >= _PARALLEL_MIN_FILES:
            from concurrent.futures import as_completed

            chunks = _chunks(items, workers)
            # forked workers must never collect the parent's garbage: finalising an object
            # that holds native state of the parent (an unclosed DuckDB connection and its
            # threads) crashed a worker. Frozen objects are left alone by the children's GC.
            gc.freeze()
            try:
                # workers - 1 processes, and this one: it reads the chunks no worker has
                # started, from the last one on (so as many processes read as there are
                # workers, and none waits idle)
                with _process_pool(min(workers - 1, len(chunks))) as pool:
                    with warnings.catch_warnings():
                        # Python >= 3.12 warns on fork() next to threads (DuckDB's); the
                        # workers only read headers
                        warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork",
                                                category=DeprecationWarning)
                        futures = {pool.submit(read_batch, c): i for i, c in enumerate(chunks)}
                    try:
                        meanwhile()
                        for fut, i in reversed(futures.items()):
                            if not fut.cancel():  # a worker has it, and every chunk before it
                                break
                            results[i] = read_batch(chunks[i])
                            bar.update(len(chunks[i]))
                        for fut in as_completed([f for f in futures if not f.cancelled()]):
                            i = futures[fut]
                            results[i] = fut.result()
                            bar.update(len(chunks[i]))
                    except BaseException:  # (DuckDB failed, ctrl-C): no more chunks to read
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
            finally:
                gc.unfreeze()
        else:
            meanwhile()
            chunks = _chunks(items, 1)
            for i, c in enumerate(chunks):
                results[i] = read_batch(c)
                bar.update(len(c))
    finally:
        bar.close()
    tables = []
    for i in range(len(results)):
        tables.append(results[i]["instances"])
        for key in ("inputs", "frames", "errors"):
            out[key].extend(results[i][key])
    if tables:
        import pyarrow as pa

        out["instances"] = pa.concat_tables(tables).combine_chunks()
    return out


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


def _run_on_dask(client: Any, chunks: list[list], bar: Any,
                 meanwhile: Callable[[], None]) -> dict[int, dict[str, Any]]:
    from dask.distributed import as_completed

    futures = client.map(read_batch, chunks, pure=False)
    meanwhile()
    index_of = {f.key: i for i, f in enumerate(futures)}
    results: dict[int, dict[str, Any]] = {}
    for fut in as_completed(futures):
        i = index_of[fut.key]
        results[i] = fut.result()
        bar.update(len(chunks[i]))
    return results


