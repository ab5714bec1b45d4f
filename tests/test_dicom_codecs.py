"""medlab's own decoding of compressed greyscale frames (imagecodecs, issue 15).

Greyscale RLE, JPEG lossless, JPEG-LS and JPEG 2000 frames are cut out of the
encapsulated pixel data by medlab and decoded by imagecodecs in parallel
threads. The references are independent: pydicom's ``pixel_array`` (its own
plugins, with its sign and unused-bit corrections) on real files of the shared
data, the uncompressed WG04 originals, and pydicom's ``generate_frames`` for
the fragment layout. A corrupt frame inside a series is reported by file name
and the rest of the series still loads, without a hang.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.pixels
import pytest
from isolate import in_child
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID

import medlab
from medlab.errors import DicomReadError
from medlab.io.dicom import _pixels

DATA = Path(os.environ.get("MEDLAB_DATA", "").split(os.pathsep)[0])


def _path(rel: str) -> Path:
    path = DATA / rel
    if not path.is_file():
        pytest.skip(f"shared data file {rel} not found")
    return path


def _quiet_load(path: Path, **kwargs) -> medlab.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return medlab.load(path, progress=False, **kwargs)


@pytest.fixture
def decoded_by(monkeypatch):
    """Which reader decoded each file: 'fast' (imagecodecs) or 'pydicom' (the fallback)."""
    seen: dict[str, str] = {}
    fast, slow = _pixels._read_encapsulated, _pixels._read_decoded

    def spy_fast(items, *args):
        ok = fast(items, *args)
        if ok:
            seen[items[0][2].path.name] = "fast"
        return ok

    def spy_slow(items, *args):
        seen[items[0][2].path.name] = "pydicom"
        return slow(items, *args)

    monkeypatch.setattr(_pixels, "_read_encapsulated", spy_fast)
    monkeypatch.setattr(_pixels, "_read_decoded", spy_slow)
    return seen


# every transfer syntax of the fast path, with the corrections pydicom applies: signed
# JPEG-LS (sign extension), a JPEG 2000 stream whose signedness disagrees with Pixel
# Representation, near-lossless JPEG-LS and irreversible JPEG 2000 (lossy, still equal to
# pydicom's decode), 10-bit data in 16 bits, 8-bit JPEG lossless, multi-frame 32-bit RLE
FAST_FILES = [
    "wg04-codecs/CT1_RLE.dcm", "wg04-codecs/MR1_RLE.dcm", "wg04-codecs/XA1_RLE.dcm",
    "wg04-codecs/CT1_JLSL.dcm", "wg04-codecs/CT1_JLSN.dcm", "wg04-codecs/NM1_JLSN.dcm",
    "wg04-codecs/CT1_J2KR.dcm", "wg04-codecs/CT1_J2KI.dcm", "wg04-codecs/MR1_J2KI.dcm",
    "wg04-codecs/CT1_JPLL.dcm", "wg04-codecs/NM1_JPLL.dcm",
    "pydicom-testfiles/MR_small_RLE.dcm", "pydicom-testfiles/MR_small_jpeg_ls_lossless.dcm",
    "pydicom-testfiles/MR_small_jp2klossless.dcm", "pydicom-testfiles/J2K_pixelrep_mismatch.dcm",
    "pydicom-testfiles/JPEGLSNearLossless_16.dcm", "pydicom-testfiles/693_J2KI.dcm",
    "pydicom-testfiles/rtdose_rle.dcm", "pydicom-extra/JPGLosslessP14SV1_1s_1f_8b.dcm",
    "fo-dicom/D_CLUNIE_CT1_RLE_FRAGS.dcm", "wg04-modalities/RG3_J2KR.dcm",
]


@pytest.mark.parametrize("rel", FAST_FILES)
def test_fast_decode_equals_pydicom_pixel_array(rel, decoded_by):
    path = _path(rel)
    img = _quiet_load(path)
    assert decoded_by == {path.name: "fast"}, "the imagecodecs path did not decode it"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        ref = pydicom.pixels.pixel_array(ds)  # pydicom's own plugins
    ref = ref if int(ds.get("NumberOfFrames") or 1) > 1 else ref[np.newaxis]
    slope, inter = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    want = ref * slope + inter if (slope, inter) != (1.0, 0.0) else ref
    # medlab orders multi-frame data in space: compare as a set of frames
    got = sorted(img.array, key=lambda a: a.tobytes())
    want = sorted(want, key=lambda a: a.tobytes())
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w), f"{rel}: medlab's frame differs from pydicom's"


def test_colour_and_mosaic_files_still_go_through_pydicom(decoded_by):
    rgb = _path("wg04-codecs/US1_RLE.dcm")
    mosaic = _path("dcm-qa-ts/In/4.dcm")  # a Siemens mosaic in RLE
    _quiet_load(rgb)
    _quiet_load(mosaic)
    assert decoded_by == {"US1_RLE.dcm": "pydicom", "4.dcm": "pydicom"}


def test_lossless_syntaxes_equal_the_uncompressed_original():
    original = _quiet_load(_path("wg04-modalities/CT1_UNC.dcm"))
    for codec in ("RLE", "JLSL", "J2KR", "JPLL"):
        img = _quiet_load(_path(f"wg04-codecs/CT1_{codec}.dcm"))
        assert img.dtype == original.dtype
        np.testing.assert_array_equal(img.array, original.array)


SEQ_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@pytest.mark.parametrize("with_offset_table", [True, False])
def test_fragments_are_grouped_into_frames_as_pydicom_does(with_offset_table):
    rng = np.random.default_rng(1)
    frames = [rng.bytes(n) for n in (100, 3001, 50)]
    value = encapsulate(frames, fragments_per_frame=1 if not with_offset_table else 3,
                        has_bot=with_offset_table)
    want = list(generate_frames(value, number_of_frames=3))
    # what follows the Pixel Data tag in a file: the items, the sequence delimiter, and
    # maybe more elements (here trailing padding)
    data = value + SEQ_END + b"\xfc\xff\xfc\xff" + b"OB\x00\x00\x02\x00\x00\x00\x00\x00"
    got = _pixels._encapsulated_frames(data, 3)
    assert got is not None and [bytes(g) for g in got] == [bytes(w) for w in want]
    # several fragments per frame without an offset table: ambiguous, pydicom decides
    ambiguous = encapsulate(frames, fragments_per_frame=2, has_bot=False) + SEQ_END
    assert _pixels._encapsulated_frames(ambiguous, 3) is None
    # no sequence delimiter (a truncated file): not guessed at
    assert _pixels._encapsulated_frames(value, 3) is None


# --------------------------------------------------------------------------- a series
SYNTAXES = {"rle": "1.2.840.10008.1.2.5", "jpeg-ls": "1.2.840.10008.1.2.4.80",
            "jpeg2000": "1.2.840.10008.1.2.4.90"}


def _ct_series(tmp_path: Path, uid: str | None, n: int = 12) -> Path:
    """``n`` slices of a real CT series (more than the 8 files that start threads),
    compressed with pydicom's encoders when ``uid`` is given."""
    src = DATA / "sts-cohort" / "dicom" / "STS_002" / "CT" / "image"
    if not src.is_dir():
        pytest.skip("sts-cohort not found")
    files = sorted(src.glob("*.dcm"))
    z = {f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files}
    folder = tmp_path / (uid or "raw")
    folder.mkdir()
    for i, f in enumerate(sorted(files, key=z.get)[:n]):
        if uid is None:
            shutil.copy(f, folder / f"s{i:02d}.dcm")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(f)
            ds.compress(UID(uid))
            ds.save_as(folder / f"s{i:02d}.dcm", enforce_file_format=True)
    return folder


@pytest.mark.parametrize("name", sorted(SYNTAXES))
def test_compressed_series_decodes_in_threads_to_the_uncompressed_volume(tmp_path, name,
                                                                        decoded_by):
    raw = _quiet_load(_ct_series(tmp_path, None))
    folder = _ct_series(tmp_path, SYNTAXES[name])
    img = _quiet_load(folder)
    assert set(decoded_by.values()) == {"fast"} and len(decoded_by) == 12
    assert img.dtype == raw.dtype
    np.testing.assert_array_equal(img.array, raw.array)
    np.testing.assert_allclose(img.affine, raw.affine)


@pytest.mark.parametrize("name", ["rle", "jpeg2000"])
def test_one_corrupt_frame_in_a_series_is_named_and_the_rest_loads(tmp_path, name):
    folder = _ct_series(tmp_path, SYNTAXES[name])
    bad = folder / "s05.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(bad)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = encapsulate([frame[:64] + bytes(len(frame) - 64)])  # garbage after 64 B
        ds.save_as(bad, enforce_file_format=True)

    def scan_and_load():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            col = medlab.io.load_all(folder, progress=False)
            try:
                medlab.load(folder, progress=False)
                error = None
            except Exception as exc:
                error = (type(exc).__name__, str(exc))
            img = medlab.load(folder, progress=False, irregular="stack")
        return dict(col.skipped.itertuples(index=False)), error, img.shape, img.meta["excluded_files"]

    result = in_child(scan_and_load, timeout_s=120)
    assert not result.hung, "decoding a series with a corrupt frame hung"
    assert result.ok, result.value
    rows, error, shape, excluded = result.value
    reason = rows.pop(str(bad))
    ts_name = UID(SYNTAXES[name]).name
    assert reason.startswith("s05.dcm: cannot decode pixel data in transfer syntax "
                             f"{ts_name}"), reason
    assert re.search(r"every installed decoder \(.*\) failed.*probably corrupt", reason)
    assert error is not None and error[0] == "SeriesAssemblyError" and "missing slice" in error[1]
    assert shape[0] == 11 and excluded == [str(bad)]


def test_decode_error_is_a_dicom_read_error_naming_the_file(tmp_path):
    folder = _ct_series(tmp_path, SYNTAXES["rle"], n=1)
    path = next(folder.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + bytes(60)])  # 1 segment, no data
        ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomReadError, match=rf"{re.escape(path.name)}: cannot decode pixel data"):
        _quiet_load(path)


# ------------------------------------------------------------- integer rescale in place
@pytest.mark.parametrize(
    ("signed", "bits_stored", "slope", "intercept", "low", "high", "dtype"),
    [
        (False, 12, 1.0, -1024.0, 0, 4095, "int16"),  # CT: unsigned stored, negative intercept
        (True, 16, 1.0, -1024.0, -2000, 3000, "int16"),  # full int16 range does not fit: data
        (False, 16, 2.0, -1000.0, 0, 60000, "int32"),  # slope 2 widens
        (True, 16, -1.0, 0.0, -32768, 32767, "int32"),  # a negative slope
        (False, 8, 3.0, 7.0, 0, 255, "uint16"),  # stored in 16 bits, only 8 used
    ],
)
def test_integer_rescale_equals_int64_arithmetic(tmp_path, signed, bits_stored, slope,
                                                 intercept, low, high, dtype):
    from helpers import write_dicom_series

    rng = np.random.default_rng(3)
    stored = rng.integers(low, high + 1, size=(3, 16, 16))
    stored[0, 0, 0], stored[0, 0, 1] = low, high  # the extremes are present
    write_dicom_series(tmp_path, stored, bits_stored=bits_stored, signed=signed, slope=slope,
                       intercept=intercept, shuffle=False)
    img = _quiet_load(tmp_path)
    expected = stored.astype(np.int64) * int(slope) + int(intercept)  # the independent answer
    assert img.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.array.astype(np.int64), expected)
