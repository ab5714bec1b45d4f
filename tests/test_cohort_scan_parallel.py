"""The scan's parallel reading and its chunk-wise writes (issue 15).

Worker processes and the scanning process claim spans of the file list; the
scanning process inserts each span's rows in the order of the files, in
batches, while the others are read, and computes a series' geometry once its
rows are in. Whatever the batches and whoever read which file, the index must
be the one a one-process scan writes; a worker that fails or is killed stops
the scan with an error naming it, and nothing of that scan is written.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

import medlab as ml
from medlab.cohort import _index, _read

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

_TABLES = ("instances", "frames", "errors", "series", "studies", "patients")
#: the views and the column each is ordered by
_VIEW_KEYS = {"series": "series_uid", "studies": "study_uid", "patients": "patient_id"}


def _roots() -> list[str]:
    # dcm-qa-ts holds files of a series that dcm-qa-orientation holds too: a series whose
    # files come back after other series' (in the order of the paths)
    return sorted(str(ml.data.fetch(n, progress=False))
                  for n in ("sts-cohort", "dcm-qa-ts", "dcm-qa-orientation", "pydicom-testfiles"))


def _tables(index) -> dict[str, pd.DataFrame]:
    out = {t: getattr(index, t) for t in ("instances", "frames", "errors")}
    for view, key in _VIEW_KEYS.items():
        out[view] = index.sql(f"SELECT * FROM {view} ORDER BY {key}")
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, pd.DataFrame]:
    """The index of a one-process scan, inserted in one batch."""
    mp_ = pytest.MonkeyPatch()
    mp_.setattr(_index, "_FLUSH_ROWS", 10**9)
    try:
        with ml.cohort.scan(_roots(), progress=False, workers=1) as idx:
            return _tables(idx)
    finally:
        mp_.undo()


def _assert_same(tables: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> None:
    for name in _TABLES:
        pd.testing.assert_frame_equal(tables[name], reference[name], obj=name)


@pytest.mark.parametrize("workers, flush_rows", [(1, 37), (2, 37), (2, 2048), (3, 101)])
def test_chunk_wise_inserts_give_the_rows_of_a_one_process_scan(reference, monkeypatch,
                                                                workers, flush_rows):
    """Small batches split series between inserts (their geometry is computed before all
    their files are in, and again after); spans shrink to a few files at the end."""
    monkeypatch.setattr(_index, "_FLUSH_ROWS", flush_rows)
    monkeypatch.setattr(_read, "_CHUNK_MAX", 64)
    monkeypatch.setattr(_read, "_CHUNK_MIN", 5)
    with ml.cohort.scan(_roots(), progress=False, workers=workers) as idx:
        assert len(idx.instances) > _read._PARALLEL_MIN_FILES  # the workers ran
        _assert_same(_tables(idx), reference)


def test_both_processes_read_and_the_rows_stay_in_file_order(monkeypatch, tmp_path):
    """The worker and the scanning process each read part of the files; the rows are
    inserted in the order of the files all the same, as a one-process scan inserts them."""
    log = tmp_path / "pids"
    read_batch = _read.read_batch

    def logged(items):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {len(items)}\n")
        return read_batch(items)

    monkeypatch.setattr(_read, "read_batch", logged)
    monkeypatch.setattr(_read, "_CHUNK_MAX", 32)
    roots = _roots()
    with ml.cohort.scan(roots, progress=False, workers=2) as idx:
        stored = idx.sql("SELECT path FROM instances")["path"].tolist()  # insertion order
        n = len(stored)
    by_pid: dict[int, int] = {}
    for line in log.read_text().split("\n")[:-1]:
        pid, k = map(int, line.split())
        by_pid[pid] = by_pid.get(pid, 0) + k
    assert set(by_pid) >= {os.getpid()} and len(by_pid) == 2, by_pid
    assert min(by_pid.values()) > 0.1 * sum(by_pid.values())  # both did a fair share
    assert stored == sorted(stored) and n > 400


def _series_copy(tmp_path: Path) -> Path:
    """Two CT series and a PET series of the cohort, copied."""
    src = ml.data.fetch("sts-cohort", progress=False) / "dicom"
    root = tmp_path / "cohort"
    for part in ("STS_002/CT", "STS_002/PET", "STS_008/CT"):
        shutil.copytree(src / part, root / part)
    return root


def test_rescan_of_changed_series_in_small_batches_equals_a_fresh_scan(tmp_path, monkeypatch):
    """Files removed from a series, added back, and another series shortened: the rescan's
    batches look up the series' rows already in the index before inserting their new
    rows, and the geometry comes out as a fresh scan's."""
    root = _series_copy(tmp_path)
    ct = sorted((root / "STS_002" / "CT").rglob("*.dcm"))
    aside = tmp_path / "aside"
    aside.mkdir()
    for p in ct[::3]:  # a third of the slices away: the series is not regular
        shutil.move(p, aside / p.name)
    db = tmp_path / "index.duckdb"
    with ml.cohort.scan(root, db=db, progress=False, workers=2) as idx:
        n_before = idx.series["n_instances"].sum()
    for p in aside.iterdir():
        shutil.move(p, next(q for q in ct if q.name == p.name))
    removed = sorted((root / "STS_008" / "CT").rglob("*.dcm"))[-5:]
    for p in removed:
        p.unlink()
    monkeypatch.setattr(_index, "_FLUSH_ROWS", 9)
    monkeypatch.setattr(_read, "_CHUNK_MAX", 16)
    monkeypatch.setattr(_read, "_PARALLEL_MIN_FILES", 10)
    with ml.cohort.open_index(db) as idx:
        report = idx.rescan(progress=False)
        assert report.n_new == len(ct[::3]) and report.n_removed == 5
        got = _tables(idx)
    assert n_before == len(list(root.rglob("*.dcm"))) - len(ct[::3]) + 5
    with ml.cohort.scan(root, progress=False, workers=1) as fresh:
        expected = _tables(fresh)
    _assert_same(got, expected)
    assert got["series"]["n_instances"].sum() == len(list(root.rglob("*.dcm")))


def _fail_in_worker(how: str):
    """A read_batch that fails in a forked worker (not in the scanning process), on its
    second span; the scanning process reads slowly, so that the worker surely gets two."""
    parent = os.getpid()
    read_batch = _read.read_batch
    calls = [0]

    def failing(items):
        if os.getpid() != parent:
            calls[0] += 1
            if calls[0] == 2:
                if how == "raise":
                    raise MemoryError("no memory left for the headers")
                os.kill(os.getpid(), signal.SIGKILL)
        else:
            time.sleep(0.05)
        return read_batch(items)

    return failing


@pytest.mark.parametrize("how, message", [
    ("raise", r"worker process failed \(MemoryError: no memory left for the headers\)"),
    ("kill", r"worker process \(pid \d+\) stopped before it finished \(killed by SIGKILL"),
])
def test_a_worker_failing_midway_stops_the_scan_and_writes_nothing(tmp_path, monkeypatch,
                                                                   how, message):
    root = _series_copy(tmp_path)
    db = tmp_path / "index.duckdb"
    ml.cohort.scan(root / "STS_008", db=db, progress=False, workers=1).close()
    with ml.cohort.open_index(db) as idx:
        before = _tables(idx)
    monkeypatch.setattr(_read, "read_batch", _fail_in_worker(how))
    monkeypatch.setattr(_read, "_CHUNK_MAX", 16)
    monkeypatch.setattr(_read, "_PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(_index, "_FLUSH_ROWS", 8)  # rows inserted before the failure
    with pytest.raises(_read.WorkerError, match=message) as info:
        ml.cohort.scan(root, db=db, progress=False, workers=2)
    assert "nothing was written to the index" in str(info.value)
    if how == "raise":  # the worker's traceback comes with it
        assert "MemoryError" in str(info.value) and "in failing" in str(info.value)
    assert not mp.active_children()
    monkeypatch.undo()
    with ml.cohort.open_index(db) as idx:  # the transaction was rolled back
        _assert_same(_tables(idx), before)
        assert idx.rescan(progress=False).n_new > 50  # and a rescan reads the rest


def test_a_scan_interrupted_while_the_workers_read_stops_them(tmp_path, monkeypatch):
    """ctrl-C in the scanning process while the workers read (KeyboardInterrupt as it takes
    in their second span): the workers are stopped, nothing is written, the exception
    comes out."""
    root = _series_copy(tmp_path)
    add = _index._ScanWriter.add
    calls = [0]

    def interrupted(self, batch):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        add(self, batch)

    monkeypatch.setattr(_index._ScanWriter, "add", interrupted)
    monkeypatch.setattr(_read, "_CHUNK_MAX", 16)
    monkeypatch.setattr(_read, "_PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(_index, "_FLUSH_ROWS", 8)  # the first span's rows are inserted
    db = tmp_path / "index.duckdb"
    with pytest.raises(KeyboardInterrupt):
        ml.cohort.scan(root, db=db, progress=False, workers=3)
    assert calls[0] == 2 and not mp.active_children()
    monkeypatch.undo()
    with ml.cohort.open_index(db) as idx:
        assert len(idx.instances) == 0 and idx.rescan(progress=False).n_new > 50


@pytest.mark.slow
def test_spawned_pool_where_processes_cannot_fork(monkeypatch):
    """macOS and Windows read with a pool of spawned processes: the same index (run here
    with Linux's spawn context; a spawned worker imports medlab, which takes seconds)."""
    roots = [str(ml.data.fetch("sts-cohort", progress=False) / "dicom" / "STS_002")]
    with ml.cohort.scan(roots, progress=False, workers=1) as one:
        expected = _tables(one)
    monkeypatch.setattr(_read, "_PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(_read, "_FORK", False)
    with ml.cohort.scan(roots, progress=False, workers=2) as two:
        _assert_same(_tables(two), expected)


def test_a_lock_left_held_by_a_killed_worker_stops_the_scan_not_hangs(monkeypatch):
    """A worker killed while it held the lock of the file list (held for microseconds):
    the scanning process gives up after _LOCK_TIMEOUT_S with an error instead of waiting
    for ever."""
    import multiprocessing

    claims = _read._Claims(multiprocessing.get_context("fork"), 100, 2)
    assert claims.next() == (0, 25) and claims.left() == 75
    monkeypatch.setattr(_read, "_LOCK_TIMEOUT_S", 0.2)
    claims.lock.acquire()  # as a worker killed in next() leaves it
    t0 = time.perf_counter()
    with pytest.raises(_read.WorkerError, match=r"lock was not released in 0.2 s"):
        claims.next()
    assert time.perf_counter() - t0 < 5
