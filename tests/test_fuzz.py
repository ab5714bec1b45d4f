"""Fuzzing the readers: mutants of real files keep the error contract (issue 12).

A small seed corpus is made by code from the shared data (DICOM files in
explicit and implicit VR, RLE, JPEG-LS and JPEG 2000, and NIfTI written by
nibabel). Hypothesis mutates them -- truncations, bit flips, VR and length
corruptions, huge Rows/Columns/Number of Frames or NIfTI dimensions -- and
every mutant goes through the fast header reader, :func:`medlab.load` and the
cohort scan's per-file reader. The contract:

- the fast header reader returns a header or None, and never raises;
- ``medlab.load`` returns an image or raises a :class:`~medlab.errors.MedlabError`
  (nothing else);
- the cohort reader never raises (a bad file is an error row);
- nothing hangs (5 s per case, enforced with SIGALRM);
- nothing allocates what the machine does not have (the address space is
  capped at the process's size + 3 GB while fuzzing, so a header that makes a
  reader allocate gigabytes fails the test instead of killing it).

Runs derandomized (a fixed seed, no example database), so CI is reproducible.
Crashes it found are kept below as explicit regression tests. ``python
tests/test_fuzz.py [n]`` runs n examples and prints the closing counts.
"""

from __future__ import annotations

import contextlib
import os
import resource
import struct
import sys
import tempfile
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isolate import deadline

import medlab as ml
from medlab.cohort._scan import read_file
from medlab.errors import MedlabError
from medlab.io.dicom._fastheader import read_fast_header

DATA = Path(os.environ.get("MEDLAB_DATA", "").split(os.pathsep)[0])
SEED_FILES = ("pydicom-testfiles/CT_small.dcm", "pydicom-testfiles/MR_small_implicit.dcm",
              "pydicom-testfiles/MR_small_RLE.dcm", "pydicom-testfiles/JPEGLSNearLossless_08.dcm",
              "pydicom-testfiles/MR_small_jp2klossless.dcm")
PER_CASE_S = 5
EXTRA_ADDRESS_SPACE = 3 * 2**30
#: what the fuzz run saw; printed at the end (the issue's closing counts)
COUNTS: Counter = Counter()


# ------------------------------------------------------------------ the seed corpus
def _elements(data: bytes, path: Path) -> list[tuple[int, int, int, int]]:
    """(tag, header offset, length offset, length size) of the top-level data elements."""
    ds = pydicom.dcmread(path, force=True, defer_size=0)
    implicit = ds.original_encoding[0]
    out = []
    for tag in ds.keys():
        raw = ds.get_item(tag, keep_deferred=True)
        tell = getattr(raw, "value_tell", None)
        if tell is None:
            continue
        vr = data[tell - 8 + 4 : tell - 8 + 6] if not implicit else b""
        if implicit:
            out.append((int(tag), tell - 8, tell - 4, 4))
        elif vr.isalpha() and vr.isupper():
            out.append((int(tag), tell - 8, tell - 2, 2))
        else:  # long VR: 12-byte header
            out.append((int(tag), tell - 12, tell - 4, 4))
    return out


def _nifti_seeds() -> list[tuple[str, bytes, list]]:
    img = nib.Nifti1Image(np.arange(6 * 7 * 5, dtype=np.int16).reshape(6, 7, 5), np.eye(4))
    with tempfile.TemporaryDirectory() as tmp:
        nib.save(img, Path(tmp) / "s.nii")
        raw = (Path(tmp) / "s.nii").read_bytes()
    return [("seed.nii", raw, [])]


def _seeds() -> list[tuple[str, bytes, list]]:
    seeds = []
    for rel in SEED_FILES:
        path = DATA / rel
        data = path.read_bytes()
        seeds.append((path.name, data, _elements(data, path)))
    return seeds + _nifti_seeds()


SEEDS = _seeds() if all((DATA / rel).is_file() for rel in SEED_FILES) else []


# ------------------------------------------------------------------ mutations
def _truncate(data: bytearray, seed: tuple, frac: float) -> None:
    del data[int(len(data) * frac):]


def _flip(data: bytearray, seed: tuple, frac: float, bit: int) -> None:
    if data:
        data[min(int(len(data) * frac), len(data) - 1)] ^= 1 << bit


def _vr(data: bytearray, seed: tuple, which: int, vr: bytes) -> None:
    elems = [e for e in seed[2] if e[3] == 2 or (e[2] - e[1]) == 8]
    if elems:
        _, head, _, _ = elems[which % len(elems)]
        data[head + 4 : head + 6] = vr


def _length(data: bytearray, seed: tuple, which: int, value: int) -> None:
    if seed[2]:
        _, _, at, size = seed[2][which % len(seed[2])]
        data[at : at + size] = struct.pack("<H" if size == 2 else "<I", value % (256 ** size))


def _dims(data: bytearray, seed: tuple, rows: int, cols: int, frames: int) -> None:
    if seed[0].endswith(".nii"):  # dim[1..3] of the NIfTI header
        if len(data) < 48:
            return
        struct.pack_into("<3h", data, 42, rows % 32768, cols % 32768, frames % 32768)
        return
    for tag, _, at, size in seed[2]:
        if tag in (0x00280010, 0x00280011) and size == 2 and at + 4 <= len(data):
            data[at + 2 : at + 4] = struct.pack("<H", rows if tag == 0x00280010 else cols)
        elif tag in (0x00280010, 0x00280011) and at + 6 <= len(data):
            data[at + 4 : at + 6] = struct.pack("<H", rows if tag == 0x00280010 else cols)
        elif tag == 0x00280008 and size == 2:  # Number of Frames (IS): keep the length
            n = struct.unpack("<H", data[at : at + 2])[0]
            data[at + 2 : at + 2 + n] = str(frames).encode()[:n].ljust(n)


huge = st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 30000, 46000, 65535]))
MUTATIONS = st.one_of(
    st.tuples(st.just(_truncate), st.floats(0, 1)),
    st.tuples(st.just(_flip), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just(_vr), st.integers(0, 10_000),
              st.sampled_from([b"Cs", b"UN", b"SQ", b"OB", b"\x00\x00", b"zz", b"UT", b"US"])),
    st.tuples(st.just(_length), st.integers(0, 10_000),
              st.one_of(st.integers(0, 2**32 - 1),
                        st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF]))),
    st.tuples(st.just(_dims), huge, huge, st.sampled_from([1, 2, 1000, 99999999])),
)


# ------------------------------------------------------------------ the contract
@contextlib.contextmanager
def _capped_memory(extra: int):
    with open("/proc/self/status") as f:
        size = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check_contract(path: Path) -> str:
    """Run the three readers on one file; the outcome of ``medlab.load``, or raise
    AssertionError (a broken contract) / TimeoutError (a hang)."""
    COUNTS["files tried"] += 1
    try:
        with deadline(PER_CASE_S):
            fh = read_fast_header(path, frozenset({0x00280010, 0x00280011}))
            assert fh is None or fh.transfer_syntax is not None
            row, _frames, error = read_file(str(path), path.stat().st_size, 0)
            assert row is not None or error is not None
            try:
                ml.load(path)
                outcome = "loaded"
            except MedlabError:
                outcome = "clean error"
    except TimeoutError:
        COUNTS["hangs"] += 1
        raise
    except AssertionError:
        COUNTS["uncaught errors"] += 1
        raise
    except BaseException as exc:  # pyo3's PanicException is a BaseException
        if isinstance(exc, KeyboardInterrupt):
            raise
        COUNTS["uncaught errors"] += 1
        raise
    COUNTS[outcome] += 1
    return outcome


def _mutant(seed: tuple, mutations: list) -> bytes:
    data = bytearray(seed[1])
    for fn, *args in mutations:
        fn(data, seed, *args)
    return bytes(data)


pytestmark = pytest.mark.skipif(not SEEDS, reason=f"shared seed files missing: {SEED_FILES}")

FUZZ_EXAMPLES = int(os.environ.get("MEDLAB_FUZZ_EXAMPLES", "150"))


@pytest.mark.slow
def test_fuzz_readers_keep_the_error_contract(tmp_path):
    target = tmp_path / "mutant"
    seen: Counter = Counter()

    @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
              print_blob=True)
    @given(seed=st.sampled_from(SEEDS), mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
    def fuzz(seed, mutations):
        target.write_bytes(_mutant(seed, mutations))
        seen[check_contract(target)] += 1

    with _capped_memory(EXTRA_ADDRESS_SPACE):
        fuzz()
    print(f"\nfuzz: {dict(COUNTS)}")
    assert COUNTS["hangs"] == 0 and COUNTS["uncaught errors"] == 0
    # the mutations reach both outcomes: some mutants still load, most are refused cleanly
    assert seen["clean error"] > 0 and seen["loaded"] > 0


def test_seed_corpus_loads(tmp_path):
    """Every seed loads unmutated (so a refused mutant was refused for its mutation)."""
    for name, data, elems in SEEDS:
        path = tmp_path / name
        path.write_bytes(data)
        assert check_contract(path) == "loaded", name
        assert name.endswith(".nii") or len(elems) > 10


def test_mutants_in_one_folder_are_one_skipped_entry_each(tmp_path):
    """Whole-folder readers on a folder of mutants beside a good series."""
    from helpers import write_dicom_series

    arr = np.arange(3 * 6 * 6, dtype=np.int16).reshape(3, 6, 6)
    write_dicom_series(tmp_path / "good", arr, intercept=0, shuffle=False)
    rng = np.random.default_rng(0)
    n = 0
    for name, data, _ in SEEDS:
        for k in range(4):
            raw = bytearray(data)
            cut = int(rng.integers(200, len(raw)))
            del raw[cut:]
            raw[int(rng.integers(132, len(raw)))] ^= 0xFF
            (tmp_path / f"{k}_{name}").write_bytes(bytes(raw))
            n += 1
    with _capped_memory(EXTRA_ADDRESS_SPACE), deadline(120):
        images = ml.io.load_all(tmp_path, progress=False)
        with ml.cohort.scan(tmp_path, progress=False, workers=1) as index:
            n_indexed = len(index.instances) + len(index.errors)
    good = [img for img in images.values() if img.shape == (3, 6, 6)]
    assert len(good) == 1 and np.array_equal(good[0].array, arr)
    assert len(images) + len(images.skipped) >= n // 4  # every file accounted for somewhere
    assert n_indexed == n + 3


# ------------------------------------------------------------------ regressions found
def _regression(tmp_path: Path, name: str, mutations: list) -> str:
    seed = next(s for s in SEEDS if s[0] == name)
    path = tmp_path / "case"
    path.write_bytes(_mutant(seed, mutations))
    with _capped_memory(EXTRA_ADDRESS_SPACE):
        return check_contract(path)


def _regression_in_child(name: str, mutations: list, tmp: str) -> str:
    return _regression(Path(tmp), name, mutations)


@pytest.mark.parametrize("name, rows, cols", [
    ("JPEGLSNearLossless_08.dcm", 8, 8),       # found by this fuzz run: GDCM aborted the
    ("JPEGLSNearLossless_08.dcm", 2000, 2000),  # process ("len <= outbv->GetLength()")
    ("MR_small_jp2klossless.dcm", 8, 8),
    ("MR_small_jp2klossless.dcm", 4000, 64),
])
def test_regression_codestream_smaller_or_larger_than_header(tmp_path, name, rows, cols):
    """A header whose Rows/Columns disagree with the JPEG-LS / JPEG 2000 stream: GDCM's
    decoder threw a C++ exception nobody caught (the process aborted). Run in a child so
    an abort fails the test instead of ending it."""
    from isolate import in_child

    res = in_child(_regression_in_child, name, [(_dims, rows, cols, 1)], str(tmp_path),
                   timeout_s=120)
    assert res.ok and res.exitcode == 0, res
    assert res.value == "clean error"
    with pytest.raises(MedlabError, match=rf"frame 1 of the compressed pixel data is .* but "
                                          rf"the header declares Rows {rows} x Columns {cols}"):
        ml.load(tmp_path / "case")


@pytest.mark.parametrize("frac, bit", [(0.5725, 7), (0.5975, 7)])
def test_regression_rle_decoder_panic(tmp_path, frac, bit):
    """A flipped bit in an RLE segment made pylibjpeg-rle panic: pyo3's PanicException is
    a BaseException that escaped pydicom and medlab (found by this fuzz run)."""
    with pytest.raises(BaseException) as raw:  # the panic is real, in the decoder itself
        path = tmp_path / "raw.dcm"
        path.write_bytes(_mutant(next(s for s in SEEDS if s[0] == "MR_small_RLE.dcm"),
                                 [(_flip, frac, bit)]))
        pydicom.dcmread(path).pixel_array  # noqa: B018
    assert type(raw.value).__name__ == "PanicException"
    assert _regression(tmp_path, "MR_small_RLE.dcm", [(_flip, frac, bit)]) == "clean error"
    with pytest.raises(MedlabError, match="the decoder crashed"):
        ml.load(tmp_path / "case")


def test_regression_huge_length_is_not_read(tmp_path):
    """A corrupt length (1.68e9) made the fast header reader ask read() for that many
    bytes: a MemoryError under a memory cap (found by this fuzz run)."""
    mutation = [(_length, 0, 1_682_671_978)]
    assert _regression(tmp_path, "MR_small_implicit.dcm", mutation) == "clean error"
    with _capped_memory(2**28):
        assert read_fast_header(tmp_path / "case", frozenset()) is None


def test_regression_unknown_vr_accepted_by_the_fast_reader(tmp_path):
    """A flipped bit turned a VR into 'UH': the fast reader took it (two capitals), and the
    full header read while grouping series raised NotImplementedError out of medlab.load
    (found by this fuzz run)."""
    mutation = [(_flip, 0.41796875, 0)]
    assert _regression(tmp_path, "JPEGLSNearLossless_08.dcm", mutation) == "clean error"
    assert read_fast_header(tmp_path / "case", frozenset()) is None
    with pytest.raises(MedlabError, match="'UH'"):
        ml.load(tmp_path / "case")


def _corpus_counts(names: tuple[str, ...]) -> None:
    """The contract on every file of the shared public corpora, unmutated."""
    for name in names:
        for path in sorted((DATA / name).rglob("*")):
            if path.is_file() and path.name != "SOURCE.txt":
                with contextlib.suppress(TimeoutError, AssertionError, Exception):
                    check_contract(path)


if __name__ == "__main__":
    # python tests/test_fuzz.py [examples] [--corpus]: the closing counts of issue 12
    FUZZ_EXAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1000
    with tempfile.TemporaryDirectory() as tmp:
        try:
            test_fuzz_readers_keep_the_error_contract(Path(tmp))
        finally:
            print("fuzz:", dict(COUNTS))
    if "--corpus" in sys.argv:
        COUNTS.clear()
        with _capped_memory(EXTRA_ADDRESS_SPACE):
            _corpus_counts(("pydicom-testfiles", "pydicom-extra", "fo-dicom", "wg04-modalities",
                            "wg04-codecs", "dcm-qa-ts", "nibabel-testdata", "nibabel-header-only"))
        print("public corpus:", dict(COUNTS))
