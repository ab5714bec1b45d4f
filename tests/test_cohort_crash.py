"""A crash-safe cohort index (issue 12, finding 6).

A scan is killed with SIGKILL at many points -- before each DuckDB statement
it sends (the file's creation, the schema, the roots, the rows, the commit),
before the file's atomic rename, and after a few wall-clock delays -- and the
next ``rescan()`` (or ``scan`` when no index file was left) must give the
index a clean scan gives. Damaged index files (truncated, garbage, empty)
give an error naming the file and the fix; a second writer gets a clear error
and read-only readers can share the file.

All DuckDB work runs in forked children (:mod:`isolate`), so the kills never
touch the test process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import write_dicom_series
from isolate import in_child

import medlab as ml
import medlab.cohort._index as index_module
from medlab.errors import IndexFileError


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "dicom"
    rng = np.random.default_rng(0)
    write_dicom_series(root / "a", rng.integers(0, 100, (12, 8, 8)).astype(np.int16),
                       patient_id="P1")
    write_dicom_series(root / "b", rng.integers(0, 100, (10, 8, 8)).astype(np.int16),
                       patient_id="P2", modality="MR")
    (root / "notes.txt").write_text("not DICOM")
    (root / "empty.dcm").write_bytes(b"")
    return root


def _summary(idx) -> dict:
    return {
        "instances": sorted(idx.instances["path"]),
        "errors": sorted(idx.errors["path"]),
        "series": sorted(zip(idx.series["series_uid"], idx.series["n_instances"],
                             idx.series["is_volume"].astype(bool), strict=True)),
        "roots": idx.roots,
    }


def _clean_scan(folder: str) -> dict:
    with ml.cohort.scan(folder, progress=False, workers=1) as idx:
        return _summary(idx)


class _Killer:
    """A DuckDB connection that SIGKILLs its process before its n-th statement."""

    count = 0
    at = -1

    def __init__(self, con):
        self._con = con

    def execute(self, *args, **kwargs):
        _Killer.count += 1
        if _Killer.count == _Killer.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return self._con.execute(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def _scan_killed_before(folder: str, db: str, at: int, rename_at: bool = False) -> int:
    """Scan into ``db`` and kill this process before statement ``at`` (or before the rename
    of a new index file); return the number of statements of an uninterrupted scan."""
    connect = index_module._connect

    def killing_connect(*args, **kwargs):
        con, path = connect(*args, **kwargs)
        return _Killer(con), path

    index_module._connect = killing_connect
    _Killer.at = at
    if rename_at:
        replace = os.replace

        def killing_replace(*args):
            os.kill(os.getpid(), signal.SIGKILL)
            replace(*args)

        index_module.os.replace = killing_replace
    ml.cohort.scan(folder, db=db, progress=False, workers=1).close()
    return _Killer.count


def _recover(folder: str, db: str) -> dict:
    """What a user does after a crash: rescan the index if there is one, else scan again."""
    if os.path.exists(db):
        with ml.cohort.open_index(db) as idx:
            first = idx.rescan(progress=False)
            again = idx.rescan(progress=False)
            out = _summary(idx)
    else:
        with ml.cohort.scan(folder, db=db, progress=False, workers=1) as idx:
            first = idx.last_report
            again = idx.rescan(progress=False)
            out = _summary(idx)
    out["first"] = (first.n_new, first.n_files_seen)
    out["again"] = (again.n_new, again.n_changed, again.n_removed)
    out["existed"] = True
    return out


def _fresh(db: Path) -> None:
    for p in db.parent.glob(db.name + "*"):
        p.unlink()


@pytest.mark.slow
def test_scan_killed_anywhere_is_completed_by_the_next_rescan(folder, tmp_path):
    reference = in_child(_clean_scan, str(folder), timeout_s=180)
    assert reference.ok, reference.value
    ref = reference.value
    assert len(ref["instances"]) == 22 and len(ref["errors"]) == 2 and len(ref["series"]) == 2
    db = tmp_path / "index.duckdb"

    full = in_child(_scan_killed_before, str(folder), str(db), 10**9, timeout_s=180)
    assert full.ok, full.value
    n_statements = full.value
    assert n_statements > 10
    # every statement of the file's creation and of the first commit, then a spread
    points = sorted({*range(1, 7), *np.linspace(7, n_statements, 6).astype(int).tolist()})
    kills = [(f"statement {k}/{n_statements}", (k, False)) for k in points]
    kills.append(("rename of the new index file", (10**9, True)))
    survived = []
    for label, (at, rename) in kills:
        _fresh(db)
        res = in_child(_scan_killed_before, str(folder), str(db), at, rename, timeout_s=180)
        assert res.exitcode == -signal.SIGKILL, (label, res)
        if db.exists():
            survived.append(label)
        # finding 6: an index file left behind knows its folders, so rescan() fills it
        after = in_child(_recover, str(folder), str(db), timeout_s=180)
        assert after.ok, (label, after.value)
        got = after.value
        assert {k: got[k] for k in ref} == ref, label
        assert got["again"] == (0, 0, 0), label
    assert survived and len(survived) < len(kills)  # both outcomes were exercised


def _scan_then_sleep(folder: str, db: str) -> None:
    ml.cohort.scan(folder, db=db, progress=False, workers=1).close()


def test_scan_killed_after_a_delay_is_completed(folder, tmp_path):
    ref = in_child(_clean_scan, str(folder), timeout_s=180).value
    db = tmp_path / "index.duckdb"
    ctx = mp.get_context("fork")
    for delay_ms in (0, 5, 20, 50, 100, 200, 400):
        _fresh(db)
        proc = ctx.Process(target=_scan_then_sleep, args=(str(folder), str(db)))
        proc.start()
        time.sleep(delay_ms / 1000)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        after = in_child(_recover, str(folder), str(db), timeout_s=180)
        assert after.ok, (delay_ms, after.value)
        assert {k: after.value[k] for k in ref} == ref, delay_ms


def test_update_killed_midway_is_completed_by_rescan(folder, tmp_path):
    """A later scan of more files, killed before its commit, loses nothing."""
    base = tmp_path / "grow"
    shutil.copytree(folder, base)
    db = tmp_path / "grow.duckdb"
    assert in_child(_scan_killed_before, str(base), str(db), 10**9, timeout_s=180).ok
    write_dicom_series(base / "c", np.ones((5, 8, 8), np.int16), patient_id="P3")
    # the scan of the grown folder: kill just before its COMMIT (its last statements)
    n = in_child(_count_update_statements, str(base), str(db), timeout_s=180).value
    res = in_child(_update_killed_before, str(base), str(db), n, timeout_s=180)
    assert res.exitcode == -signal.SIGKILL
    after = in_child(_recover, str(base), str(db), timeout_s=180)
    ref = in_child(_clean_scan, str(base), timeout_s=180).value
    assert after.ok and {k: after.value[k] for k in ref} == ref
    assert after.value["first"][0] == 5  # the five new files were read by the rescan


def _count_update_statements(folder: str, db: str) -> int:
    tmp = db + ".copy"
    shutil.copy(db, tmp)
    return _update_killed_before(folder, tmp, 10**9)


def _update_killed_before(folder: str, db: str, at: int) -> int:
    with ml.cohort.open_index(db) as idx:
        idx._con = _Killer(idx._con)
        _Killer.at = at
        idx.update(folder, progress=False)
    return _Killer.count


# ------------------------------------------------------------------ damaged files
def _make_index(folder: str, db: str) -> None:
    ml.cohort.scan(folder, db=db, progress=False, workers=1).close()


def _use(idx, rescan: bool = False) -> int:
    """What a user does with an index: rescan it, read every table, query it."""
    try:
        if rescan:
            idx.rescan(progress=False)
        for table in ("instances", "series", "studies", "patients", "errors", "frames"):
            getattr(idx, table)
        return int(idx.sql("SELECT count(*) AS n FROM instances")["n"].iloc[0])
    finally:
        idx.close()


def _open_and_scan(folder: str, db: str) -> list[str]:
    out = []
    for attempt in (lambda: _use(ml.cohort.open_index(db)),
                    lambda: _use(ml.cohort.open_index(db, read_only=True)),
                    lambda: _use(ml.cohort.open_index(db), rescan=True),
                    lambda: _use(ml.cohort.scan(folder, db=db, progress=False, workers=1))):
        try:
            out.append(f"opened {attempt()}")
        except IndexFileError as exc:
            out.append(f"IndexFileError: {exc}")
        except Exception as exc:
            out.append(f"other {type(exc).__module__}.{type(exc).__name__}: {exc}")
    return out


def test_damaged_index_files_name_the_file_and_the_fix(folder, tmp_path):
    good = tmp_path / "good.duckdb"
    assert in_child(_make_index, str(folder), str(good), timeout_s=180).ok
    raw = good.read_bytes()
    cases = {"truncated": raw[: len(raw) // 2], "truncated_late": raw[: len(raw) * 9 // 10],
             "truncated_early": raw[:100],
             "garbage": np.random.default_rng(1).bytes(8192), "empty": b""}
    for name, data in cases.items():
        db = tmp_path / f"{name}.duckdb"
        db.write_bytes(data)
        res = in_child(_open_and_scan, str(folder), str(db), timeout_s=180)
        assert res.ok, res.value
        for message in res.value:
            if name == "truncated_late" and message == "opened 22":
                continue  # the cut-off blocks were free space: nothing was lost
            assert message.startswith("IndexFileError"), (name, message)
            assert str(db) in message and "damaged" in message, message
            assert "delete or move the file aside and scan again" in message
            assert "another process" not in message


def _hold_open(db: str, ready, release) -> None:
    idx = ml.cohort.open_index(db)
    ready.set()
    release.wait(60)
    idx.close()


def _two_readers(db: str) -> int:
    a = ml.cohort.open_index(db, read_only=True)
    n = len(a.instances)
    a.close()
    return n


def test_a_second_writer_gets_a_clear_error_and_readers_share(folder, tmp_path):
    db = tmp_path / "shared.duckdb"
    assert in_child(_make_index, str(folder), str(db), timeout_s=180).ok
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_open, args=(str(db), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        res = in_child(_open_and_scan, str(folder), str(db), timeout_s=180)
        assert res.ok
        for message in res.value:
            assert message.startswith("IndexFileError") and "another process" in message
            assert "read_only=True" in message
    finally:
        release.set()
        holder.join(30)
    # no writer: any number of read-only readers at once
    a = ml.cohort.open_index(db, read_only=True)
    try:
        results = [in_child(_two_readers, str(db), timeout_s=120) for _ in range(2)]
        assert all(r.ok and r.value == 22 for r in results), results
    finally:
        a.close()
