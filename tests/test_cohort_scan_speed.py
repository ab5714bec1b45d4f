"""The shortcuts of the header index's scan (memoised value conversions, Arrow tables
built in the workers, cached geometry keys) give exactly what the plain path gives."""

from __future__ import annotations

import numpy as np
import pytest

import medlab as ml
from medlab.cohort import _scan
from medlab.cohort._read import _walk
from medlab.cohort._schema import FRAME_COLUMNS, INSTANCE_COLUMNS
from medlab.cohort._store import _INSTANCE_AT, _INSTANCE_INPUT, _arrow_table
from medlab.geometry import ORIENTATION_DECIMALS, orientation_key

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def items():
    """(path, size, mtime) of every file of three datasets: CT/PET/MR series whose files
    repeat most values, odd transfer syntaxes and character sets, and non-DICOM files."""
    out = []
    for name in ("sts-cohort", "pydicom-testfiles", "dcm-qa-ts"):
        out += _walk(str(ml.data.fetch(name, progress=False)), frozenset(), [])
    return sorted(out)


def _shown(chunk: dict) -> dict:
    # repr: 1 == 1.0 == True would hide a value of the wrong type
    return {key: [repr(row) for row in rows] for key, rows in chunk.items()}


def test_memoised_conversions_give_the_values_of_a_fresh_read(items, monkeypatch):
    _scan._MEMO.clear()
    cold = _shown(_scan.read_chunk(items))
    warm = _shown(_scan.read_chunk(items))  # every value now from the memo where it can be
    assert len(cold["instances"]) > 500 and cold["frames"] and cold["errors"]
    assert warm == cold
    # a memo emptied again and again while the files are read
    monkeypatch.setattr(_scan, "_MEMO_MAX", 7)
    _scan._MEMO.clear()
    assert _shown(_scan.read_chunk(items)) == cold
    assert len(_scan._MEMO) <= 7


def test_memoised_dataset_reads_like_the_fast_dataset(items):
    from medlab.io.dicom import FastDataset, read_fast_header

    keywords = ("Rows", "ImageType", "PixelSpacing", "ImagePositionPatient", "SeriesNumber",
                "RescaleSlope", "PatientName", "AcquisitionTime", "NotAKeyword", (0x0021, 0x105E))
    n = 0
    for path, _, _ in items:
        fh = read_fast_header(path, _scan._TOP_TAGS, items=_scan._ITEM_TAGS)
        if fh is None:
            continue
        n += 1
        plain, memo = FastDataset(fh), _scan._MemoDataset(fh)
        for _ in range(2):  # the second time from the memo
            for kw in keywords:
                assert repr(memo.get(kw, "absent")) == repr(plain.get(kw, "absent")), (path, kw)
            assert ("Rows" in memo) == ("Rows" in plain)
    assert n > 500


def test_arrow_batches_from_the_workers_hold_the_rows(items):
    part = items[:300]
    rows = _scan.read_chunk(part)
    batch = _scan.read_batch(part)
    assert batch["instances"].equals(_arrow_table(INSTANCE_COLUMNS, rows["instances"]))
    assert batch["instances"].num_rows == len(rows["instances"]) > 100
    at = [_INSTANCE_AT[c] for c in _INSTANCE_INPUT]
    assert batch["inputs"] == [tuple(r[i] for i in at) for r in rows["instances"]]
    assert batch["frames"].equals(_arrow_table(FRAME_COLUMNS, rows["frames"]))
    assert batch["frames"].num_rows == len(rows["frames"]) > 100
    # the frame rows but for the stored record (the last column): what the series checks read
    assert FRAME_COLUMNS[-1].name == "frame_record"
    assert batch["geometry"] == [f[:-1] for f in rows["frames"]]
    assert batch["errors"] == rows["errors"]
    empty = _scan.read_batch([])
    assert empty["instances"].num_rows == empty["frames"].num_rows == 0


@pytest.mark.parametrize("iop", [
    [1, 0, 0, 0, 0.99999999, 1e-8],
    (0.7071068, 0.7071068, 0.0, -0.0001, 0.0, -1.0),
    np.array([1.0, 0.0, 0.0, 0.0, 0.0, -1.0]),
])
def test_cached_orientation_key_is_the_rounded_orientation(iop):
    expected = tuple(float(v) + 0.0 for v in np.round(np.asarray(iop, float), ORIENTATION_DECIMALS))
    for _ in range(2):
        key = orientation_key(iop)
        assert key == expected and all(type(v) is float for v in key)
    assert orientation_key(None) is None


def test_scan_with_two_workers_equals_scan_in_process(items):
    roots = sorted({str(ml.data.fetch(n, progress=False)) for n in ("sts-cohort", "dcm-qa-ts")})
    one = ml.cohort.scan(roots, progress=False, workers=1)
    two = ml.cohort.scan(roots, progress=False, workers=2)
    try:
        for table in ("instances", "frames", "errors"):
            a = getattr(one, table).sort_values("path", kind="stable").reset_index(drop=True)
            b = getattr(two, table).sort_values("path", kind="stable").reset_index(drop=True)
            assert a.equals(b), table
        assert len(one.instances) > 400  # above the in-process threshold: workers ran
    finally:
        one.close()
        two.close()


class _WalkEveryFile:
    """A header reader that walks every file (read_fast_header), as before HeaderReader."""

    def read(self, path):
        from medlab.io.dicom import read_fast_header

        return read_fast_header(path, _scan._TOP_TAGS, items=_scan._ITEM_TAGS)


def test_rows_and_frames_read_like_the_previous_file_equal_full_reads(items, monkeypatch):
    """Headers read by comparison with the previous file's, rows and frames patched in the
    values that differ: every row equals the one the full reads give (CT, MR and PET series
    whose positions, times and PET slopes change from file to file; odd files between)."""
    from medlab.io.dicom.frames import fast_frames

    _scan._MEMO.clear()
    fast = _shown(_scan.read_chunk(items))
    monkeypatch.setattr(_scan, "_HEADERS", _WalkEveryFile())
    monkeypatch.setattr(_scan, "_FRAMES", lambda fh, path, size, dataset_type: fast_frames(
        fh, path, size=size, dataset_type=dataset_type))
    _scan._MEMO.clear()
    assert _shown(_scan.read_chunk(items)) == fast
    # and the same files read one at a time, in reverse: no file is read like its neighbour
    _scan._MEMO.clear()
    single = [_scan.read_chunk([item]) for item in reversed(items)]
    assert [repr(tuple(r)) for c in reversed(single) for r in c["instances"]] == fast["instances"]


def test_header_reader_reuses_most_headers_of_a_series(items):
    """The CT, MR and PET series of a patient: every file but the first of each series is
    read by comparison with the one before (their headers share one layout)."""
    from medlab.io.dicom.header import HeaderReader

    reader = HeaderReader(_scan._TOP_TAGS, items=_scan._ITEM_TAGS)
    for series in ("/STS_002/PET/image/", "/STS_002/CT/image/", "/STS_002/MR_T1/image/"):
        paths = [p for p, _, _ in items if series in p]
        headers = [reader.read(p) for p in paths]
        assert len(paths) > 30
        assert [fh.base is not None for fh in headers] == [False] + [True] * (len(paths) - 1)


def test_threads_sharing_the_readers_read_what_one_thread_reads(items):
    """A dask worker may run read_batch in several threads of one process: they share the
    header reader and the reference frame and row, and each file still gets its own rows."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    part = [it for it in items if "/STS_00" in it[0]][:600]
    expected = _shown(_scan.read_chunk(part))
    chunks = [part[i : i + 7] for i in range(0, len(part), 7)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(_scan.read_chunk, chunks))
    finally:
        sys.setswitchinterval(old)
    got = {key: [row for r in results for row in _shown(r)[key]] for key in expected}
    assert got == expected and len(expected["instances"]) > 200


def test_duckdb_failing_while_the_workers_read_stops_the_scan(monkeypatch):
    """A new in-memory index sets DuckDB up while a worker reads: if that fails, the
    error comes out (the worker's chunks are cancelled) and nothing hangs."""
    from medlab.cohort import _index

    def broken(db, **kwargs):
        raise RuntimeError("DuckDB cannot start here")

    monkeypatch.setattr(_index, "_connect", broken)
    root = ml.data.fetch("sts-cohort", progress=False)
    with pytest.raises(RuntimeError, match="DuckDB cannot start here"):
        ml.cohort.scan(root, progress=False, workers=2)


def test_series_sharing_a_layout_read_like_full_reads(tmp_path, monkeypatch):
    """Series cloned from one CT header (one layout: a scanner's series) that differ in
    series values (UID, number, thickness, description) and per-file ones (SOP UID,
    position, instance number, acquisition time), read A, B, C, then A again: each row
    and frame is patched from the previous file of its layout, and equals a full read."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    src = sorted((ml.data.fetch("sts-cohort", progress=False) / "dicom" / "STS_002" / "CT"
                  / "image").iterdir())[0]
    template = pydicom.dcmread(src)
    template.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    paths = []
    for n, (series, k) in enumerate([(s, k) for s in (1, 2, 3) for k in range(4)]
                                    + [(1, k) for k in range(4, 7)]):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.99.{series}"
        ds.SeriesNumber = series
        ds.SeriesDescription = f"series {series}"
        ds.SliceThickness = f"{series}.25"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.99.{series}.{k + 10}"
        ds.InstanceNumber = k + 10
        ds.ImagePositionPatient = ["-250.0", "-250.0", f"{-100.0 - 2.5 * k:.2f}"]
        ds.AcquisitionDate, ds.AcquisitionTime = "20190820", f"1200{k + 10:02d}"
        path = tmp_path / f"{n:02d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append((str(path), path.stat().st_size, path.stat().st_mtime_ns))
    _scan._MEMO.clear()
    raw = _scan.read_chunk(paths)
    fast = _shown(raw)
    # one layout: every file but the first is read by comparison (its row and frame patched)
    from medlab.io.dicom.frames import fast_frames
    from medlab.io.dicom.header import HeaderReader

    reader = HeaderReader(_scan._TOP_TAGS, items=_scan._ITEM_TAGS)
    assert [reader.read(p).base is None for p, _, _ in paths] == [True] + [False] * 14
    monkeypatch.setattr(_scan, "_HEADERS", _WalkEveryFile())

    monkeypatch.setattr(_scan, "_FRAMES", lambda fh, path, size, dataset_type: fast_frames(
        fh, path, size=size, dataset_type=dataset_type))
    _scan._MEMO.clear()
    assert _shown(_scan.read_chunk(paths)) == fast
    assert len(fast["instances"]) == len(paths) and len(fast["frames"]) == len(paths)
    uid = _scan._COL["series_uid"]
    assert [r[uid][-1] for r in raw["instances"]] == list("111122223333111")
    when = _scan._COL["acquisition_datetime"]
    assert len({r[when] for r in raw["instances"]}) == 7
