"""One bad file is one skipped entry (issue 12, findings 3-5).

Each test reproduces a finding first: a file with an undecodable element
beside a good series, broken NIfTI files, a file the user cannot read, FIFOs,
sockets, devices and symbolic-link loops in a folder, and headers that claim
gigabytes of pixel data. ``load`` raises only medlab's documented errors;
``load_all`` and ``cohort.scan`` list the file with the true reason and go on.

Root ignores permission bits, so the unreadable-file test drops to the
``nobody`` user in a forked child (:mod:`isolate`); steps that could hang or
allocate gigabytes also run in a forked child, with a deadline and a capped
address space.
"""

from __future__ import annotations

import gzip
import os
import pwd
import re
import shutil
import socket
import stat
import struct
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from helpers import write_dicom_series
from isolate import deadline, in_child

import medlab as ml
from medlab.errors import (
    DicomReadError,
    ImageReadError,
    ImageTooLargeError,
    MedlabError,
    UnreadableFileError,
)
from medlab.io.dicom import looks_like_dicom
from medlab.io.dicom import scan as scan_headers

DATA = Path(os.environ.get("MEDLAB_DATA", "").split(os.pathsep)[0])
CT_SMALL = DATA / "pydicom-testfiles" / "CT_small.dcm"


@pytest.fixture
def good_series(tmp_path):
    arr = np.arange(4 * 8 * 9, dtype=np.int16).reshape(4, 8, 9)
    write_dicom_series(tmp_path / "ct", arr, intercept=0.0, shuffle=False)
    return tmp_path / "ct", arr


def _with_bad_vr(dest: Path) -> Path:
    """CT_small.dcm with the VR of PatientPosition (0018,5100) changed from 'CS' to 'Cs'."""
    raw = bytearray(CT_SMALL.read_bytes())
    at = raw.find(b"\x18\x00\x00\x51CS")
    assert at > 0, "PatientPosition with an explicit CS VR not found in CT_small.dcm"
    raw[at + 4 : at + 6] = b"Cs"
    dest.write_bytes(bytes(raw))
    return dest


# ------------------------------------------------------------------ finding 3: corrupt byte
def test_undecodable_element_is_one_skipped_file(good_series):
    folder, arr = good_series
    bad = _with_bad_vr(folder / "bad.dcm")
    with pytest.raises(NotImplementedError):  # the corruption is real: pydicom refuses it
        pydicom.dcmread(bad).PatientPosition  # noqa: B018

    images = ml.io.load_all(folder, progress=False)
    assert len(images) == 1
    (img,) = images.values()
    # the good series, voxel for voxel (files written in slice order, z ascending)
    np.testing.assert_array_equal(img.array, arr)
    rows = images.skipped[images.skipped["path"] == str(bad)]
    assert len(rows) == 1
    reason = rows["reason"].iloc[0]
    assert "(0018,5100)" in reason and "PatientPosition" in reason and "'Cs'" in reason

    with pytest.raises(DicomReadError, match="PatientPosition"):
        ml.load(bad)

    with ml.cohort.scan(folder, progress=False, workers=1) as index:
        series = index.series.set_index("n_instances")
    assert bool(series.loc[4, "decodable"]) is True
    assert bool(series.loc[1, "decodable"]) is False
    assert "'Cs'" in series.loc[1, "decode_problem"]


# ------------------------------------------------------------------ finding 3: broken NIfTI
def _nifti_cases(folder: Path) -> dict[str, tuple[Path, type]]:
    img = nib.Nifti1Image(np.arange(10 * 11 * 12, dtype=np.int16).reshape(10, 11, 12), np.eye(4))
    nib.save(img, folder / "good.nii")
    nib.save(img, folder / "good.nii.gz")
    raw = (folder / "good.nii").read_bytes()
    gz = (folder / "good.nii.gz").read_bytes()
    cases = {}

    def put(name: str, data: bytes, err: type) -> None:
        (folder / name).write_bytes(data)
        cases[name] = (folder / name, err)

    bad = bytearray(raw)
    struct.pack_into("<h", bad, 70, 9999)  # datatype code 9999: nibabel's HeaderDataError
    put("bad_header.nii", bytes(bad), ImageReadError)
    put("truncated.nii.gz", gz[: len(gz) // 2], ImageReadError)  # nibabel: EOFError
    put("header_only.nii", raw[:352], ImageReadError)  # nibabel: OSError
    neg = bytearray(raw)
    struct.pack_into("<h", neg, 42, -5)  # a negative dimension: numpy's OverflowError
    put("negative_dim.nii", bytes(neg), ImageReadError)
    huge = bytearray(raw)
    struct.pack_into("<4h", huge, 40, 3, 30000, 30000, 30000)  # 54 TB claimed, gzipped
    put("huge.nii.gz", gzip.compress(bytes(huge)), ImageTooLargeError)
    return cases


def test_broken_nifti_gives_medlab_errors(tmp_path):
    cases = _nifti_cases(tmp_path)
    for name, (path, err) in cases.items():
        with pytest.raises(err) as info:
            ml.load(path)
        assert isinstance(info.value, MedlabError)
        assert str(info.value).startswith(name), info.value
    images = ml.io.load_all(tmp_path, progress=False)
    assert sorted(images) == ["good.nii", "good.nii.gz"]
    listed = dict(zip(images.skipped["path"], images.skipped["reason"], strict=True))
    for name in cases:
        assert listed[str(tmp_path / name)].startswith(name)
    assert "54 TB" in listed[str(tmp_path / "huge.nii.gz")]


# ------------------------------------------------------------------ finding 3: no permission
def _load_and_scan_as_user(folder: str) -> dict:
    images = ml.io.load_all(folder, progress=False)
    with ml.cohort.scan(folder, progress=False, workers=1) as index:
        errors, n_series = index.errors[["path", "reason"]].values.tolist(), len(index.series)
    try:
        ml.load(os.path.join(folder, "secret.dcm"))
        single = "loaded"
    except Exception as exc:
        single = f"{type(exc).__name__}|{isinstance(exc, MedlabError)}|{exc}"
    return {"images": sorted(images), "skipped": images.skipped.values.tolist(),
            "errors": errors, "n_series": n_series, "single": single}


def test_unreadable_file_is_reported_with_the_true_reason(tmp_path):
    # root reads any file whatever its mode: run as 'nobody' in a forked child
    nobody = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="medlab-perm-"))  # /tmp, not pytest's 0700 folder
    try:
        os.chmod(folder, 0o755)
        write_dicom_series(folder, np.zeros((3, 6, 6), np.int16))
        secret = folder / "secret.dcm"
        shutil.copy(CT_SMALL, secret)
        secret.chmod(0)
        for p in folder.iterdir():
            if p != secret:
                p.chmod(0o644)
        res = in_child(_load_and_scan_as_user, str(folder), as_user=nobody, timeout_s=120)
        assert res.ok, res.value
        out = res.value
        assert len(out["images"]) == 1
        assert [p for p, _ in out["skipped"]] == [str(secret)]
        for _, reason in out["skipped"] + out["errors"]:
            assert "permission denied" in reason and "not a DICOM file" not in reason, reason
        assert [p for p, _ in out["errors"]] == [str(secret)] and out["n_series"] == 1
        kind, is_medlab, message = out["single"].split("|", 2)
        assert kind == "UnreadableFileError" and is_medlab == "True"
        assert "permission denied" in message
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -------------------------------------------------------- finding 4: special files, link loops
def test_special_files_are_never_opened_and_loops_are_named(good_series):
    folder, arr = good_series
    os.mkfifo(folder / "pipe.dcm")  # opening it for reading blocks until a writer comes
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "socket.dcm"))
    os.symlink("/dev/zero", folder / "zero.nii")  # a character device, endless bytes
    os.symlink("loop.dcm", folder / "loop.dcm")  # a link to itself
    expected = {
        "pipe.dcm": "a FIFO (named pipe), not a regular file; it was not opened",
        "socket.dcm": "a socket, not a regular file; it was not opened",
        "zero.nii": "a character device, not a regular file; it was not opened",
        "loop.dcm": "a symbolic link loop",
    }
    try:
        with deadline(60):
            images = ml.io.load_all(folder, progress=False)
            _, skipped = scan_headers(folder, progress=False)
            with ml.cohort.scan(folder, progress=False, workers=1) as index:
                indexed = index.errors[["path", "reason"]].values.tolist(), len(index.series)
            for name, reason in expected.items():
                with pytest.raises(UnreadableFileError, match=re.escape(reason.split(";")[0])):
                    ml.load(folder / name)
        assert list(images) and np.array_equal(next(iter(images.values())).array, arr)
        for table in (images.skipped.values.tolist(), skipped, indexed[0]):
            got = {Path(p).name: r for p, r in table}
            assert set(got) == set(expected), got
            for name, reason in expected.items():
                assert got[name].startswith(f"{name}: {reason}")
        assert indexed[1] == 1
    finally:
        sock.close()


def test_a_path_that_is_a_fifo_or_loop_never_hangs_detect_format(tmp_path):
    os.mkfifo(tmp_path / "p.nii.gz")
    os.symlink("l", tmp_path / "l")
    with deadline(20):
        assert ml.io.detect_format(tmp_path / "p.nii.gz") == "nifti"  # by name only
        assert not looks_like_dicom(tmp_path / "p.nii.gz")
        with pytest.raises(UnreadableFileError, match="symbolic link loop"):
            ml.io.load_all(tmp_path / "l")
    assert stat.S_ISFIFO(os.stat(tmp_path / "p.nii.gz").st_mode)


# ------------------------------------------------------------------ finding 5: header claims
def _rle_ct(dest: Path, rows: int, *, side: int = 360) -> Path:
    """A ~250 KB RLE CT (random 12-bit noise) whose header then claims rows x rows."""
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(CT_SMALL)
    rng = np.random.default_rng(0)
    ds.Rows = ds.Columns = side
    ds.PixelData = rng.integers(0, 4096, (side, side), dtype=np.int16).tobytes()
    ds.compress(RLELossless)
    ds.Rows = ds.Columns = rows
    ds.save_as(dest)
    return dest


def _load_reporting(path: str) -> str:
    try:
        ml.load(path)
    except MedlabError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "loaded"


@pytest.mark.parametrize("rows", [30000, 46000])
def test_huge_rle_claim_is_a_clean_error_without_allocating(tmp_path, rows):
    path = _rle_ct(tmp_path / f"rle{rows}.dcm", rows)
    assert 200_000 < path.stat().st_size < 300_000
    # 1 GB more address space than the child has: a 1.8 or 4.2 GB buffer cannot be made,
    # so a clean answer proves none was attempted (the native decoder used to abort)
    res = in_child(_load_reporting, str(path), extra_address_space=2**30, timeout_s=120)
    assert res.ok and res.exitcode == 0, res.value
    assert res.value.startswith("DicomReadError"), res.value
    gb = {30000: "1.8 GB", 46000: "4.23 GB"}[rows]
    assert f"Rows {rows} x Columns {rows} x 1 frame(s) x 2 byte(s) = {gb}" in res.value
    assert "RLE" in res.value

    with ml.cohort.scan(path, progress=False, workers=1) as index:
        series = index.series
    (problem,) = series["decode_problem"]
    assert series["decodable"].iloc[0] == False  # noqa: E712
    assert f"Rows {rows} x Columns {rows}" in problem


def test_decode_budget_refuses_compressed_claims_above_it(tmp_path, monkeypatch):
    path = _rle_ct(tmp_path / "rle.dcm", 360)  # honest header: 360 x 360 x 2 bytes
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(ml.load(path).array[0], expected)
    monkeypatch.setenv("MEDLAB_MAX_DECODE_BYTES", "100kB")
    assert ml.io.decode_budget() == 100_000
    with pytest.raises(ImageTooLargeError, match=r"Rows 360 x Columns 360 x 1 frame\(s\) x 2 "
                       r"byte\(s\).*MEDLAB_MAX_DECODE_BYTES") as info:
        ml.load(path)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, MedlabError)
    images = ml.io.load_all(tmp_path, progress=False)
    assert not images and "decode budget of 100 kB" in images.skipped["reason"].iloc[0]
    monkeypatch.setenv("MEDLAB_MAX_DECODE_BYTES", "lots")
    with pytest.raises(ValueError, match="MEDLAB_MAX_DECODE_BYTES"):
        ml.io.decode_budget()
    monkeypatch.delenv("MEDLAB_MAX_DECODE_BYTES")
    with open("/proc/meminfo") as f:
        avail = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemAvailable"))
    assert 0 < ml.io.decode_budget() <= avail // 2 * 1.1
