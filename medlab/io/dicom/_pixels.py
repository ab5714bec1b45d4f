"""Reading pixel data of planned volumes into one preallocated array.

Uncompressed little-endian frames are read straight from the file into the
output buffer (one ``readinto`` per frame, no intermediate copy);
greyscale RLE, JPEG lossless, JPEG-LS and JPEG 2000 frames are cut out of
the encapsulated pixel data here and decoded by imagecodecs (the fastest
installed decoder for each of them, and one that releases the GIL, so
slices decode in parallel threads), with pydicom's own corrections applied
so that the result equals ``ds.pixel_array``; everything else, and any frame
that fails there, is decoded by pydicom's pixel plugins (pylibjpeg,
python-gdcm), which also give the error messages. Rescale slope/intercept
are applied per frame; integer data stay integer whenever the rescaled
values fit.
"""

from __future__ import annotations

import functools
import os
import re
import struct
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pydicom
import pydicom.pixels
from pydicom.uid import UID

from ...errors import DicomReadError, UnsupportedTransferSyntaxError
from .._limits import check_decode_size, format_bytes
from ._assemble import VolumePlan
from ._files import read_dataset
from ._frames import Frame

__all__ = ["can_decode", "claim_problem", "decode_error", "pixel_data_problem", "read_pixels",
           "transfer_syntax"]

_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_U32 = struct.Struct("<I")

def _raw_dtype(h: Any) -> np.dtype:
    if "FloatPixelData" in h:
        return np.dtype(np.float32)
    if "DoubleFloatPixelData" in h:
        return np.dtype(np.float64)
    bits = int(h.get("BitsAllocated", 16))
    signed = int(h.get("PixelRepresentation", 0)) == 1
    if bits == 1:
        return np.dtype(np.uint8)
    if bits <= 8:
        return np.dtype(np.int8 if signed else np.uint8)
    if bits <= 16:
        return np.dtype(np.int16 if signed else np.uint16)
    return np.dtype(np.int32 if signed else np.uint32)


def _stored_range(h: Any) -> tuple[int, int]:
    bits = int(h.get("BitsStored") or h.get("BitsAllocated") or 16)
    if int(h.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _is_int(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


def transfer_syntax(ds: Any) -> UID:
    """The transfer syntax of ``ds``: from its file meta, else from how it was read."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if implicit is None:
            implicit, little = bool(ds.is_implicit_VR), bool(ds.is_little_endian)
        if not little:
            return UID("1.2.840.10008.1.2.2")
        return UID("1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1")
    return UID(str(ts))


def _frame_count(h: Any) -> int:
    """Number of Frames, 1 when absent (the header check has rejected invalid values)."""
    try:
        return max(int(h.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


# what to install (or do) per family of transfer syntax, for error messages
_JPEG_HINT = "pip install pylibjpeg pylibjpeg-libjpeg (or: pip install python-gdcm)"
_J2K_HINT = "pip install pylibjpeg pylibjpeg-openjpeg (or: pip install python-gdcm)"
_VIDEO_HINT = (
    "pydicom has no decoder for video transfer syntaxes; extract the frames with ffmpeg "
    "(e.g. from the encapsulated stream) or convert the file with a DICOM toolkit"
)


def _install_hint(ts: UID) -> str:
    uid = str(ts)
    if uid in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
               "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"):
        return f"install a JPEG / JPEG-LS decoder: {_JPEG_HINT}"
    if uid.startswith(("1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20")):
        return f"install a JPEG 2000 decoder: {_J2K_HINT}"
    if uid == "1.2.840.10008.1.2.5":
        return "install an RLE decoder: pip install pylibjpeg pylibjpeg-rle (numpy suffices too)"
    if uid.startswith("1.2.840.10008.1.2.4.10"):
        return _VIDEO_HINT
    return (
        "install the decoders pydicom supports: pip install pylibjpeg pylibjpeg-libjpeg "
        "pylibjpeg-openjpeg pylibjpeg-rle python-gdcm"
    )


def _plugin_failures(exc: Exception) -> list[str]:
    """The per-plugin reasons of pydicom's 'exceptions were raised by all plugins' error."""
    lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
    # drop object reprs such as '<_io.BytesIO object at 0x7f...>'
    return [re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", ln) for ln in lines if ":" in ln]


def _decoders_for(ts: UID) -> tuple[str, ...] | None:
    """The installed pydicom decoder plugins for ``ts``; None if pydicom has none at all."""
    try:
        decoder = pydicom.pixels.get_decoder(ts)
    except (NotImplementedError, ValueError):
        return None
    try:
        return tuple(decoder.available_plugins)
    except Exception:  # pragma: no cover - depends on the installed plugins
        return ()


#: transfer syntaxes pydicom reads without a pixel decoder plugin
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                    "1.2.840.10008.1.2.1.99"}


@functools.lru_cache(maxsize=256)
def can_decode(transfer_syntax: str | None, *, bits_stored: int | None = None) -> tuple[bool, str | None]:
    """Whether pixel data in ``transfer_syntax`` can be decoded with what is installed.

    The same rules as the loader's decode errors (:func:`decode_error`):
    uncompressed syntaxes always decode; a compressed one needs an installed
    pydicom decoder plugin; 12-bit JPEG Extended (``1.2.840.10008.1.2.4.51``
    with Bits Stored > 8) has no decoder in pydicom at all.

    Parameters
    ----------
    transfer_syntax : str or None
        Transfer Syntax UID; None or '' (no file meta) means implicit VR
        little endian, as pydicom reads such files.
    bits_stored : int, optional
        Bits Stored of the pixel data (only matters for JPEG Extended).

    Returns
    -------
    ok : bool
    problem : str or None
        Why not, naming the transfer syntax and what to install or do.

    Examples
    --------
    >>> can_decode("1.2.840.10008.1.2.1")
    (True, None)
    >>> ok, why = can_decode("1.2.840.10008.1.2.4.51", bits_stored=12)
    >>> ok, "12-bit" in why
    (False, True)
    """
    uid = str(transfer_syntax or "1.2.840.10008.1.2").strip()
    if uid in _NATIVE_SYNTAXES:
        return True, None
    ts = UID(uid)
    ts_text = f"{ts.name} ({uid})" if ts.name != uid else uid
    if uid == "1.2.840.10008.1.2.4.51" and bits_stored is not None and int(bits_stored) > 8:
        return False, (
            f"transfer syntax {ts_text} with {int(bits_stored)}-bit samples (12-bit JPEG "
            "precision): none of pydicom's decoders handles 12-bit JPEG Extended. Decompress "
            "the files first with GDCM's converter (pip install python-gdcm): gdcmconv --raw "
            "in.dcm out.dcm (or DCMTK's dcmdjpeg)"
        )
    plugins = _decoders_for(ts)
    if plugins is None:
        hint = _install_hint(ts)
        if hint == _VIDEO_HINT:
            return False, f"transfer syntax {ts_text}: {hint}"
        return False, f"transfer syntax {ts_text}: pydicom has no decoder for it; to read it, {hint}"
    if not plugins:
        return False, (f"transfer syntax {ts_text}: no decoder for it is installed; to read it, "
                       f"{_install_hint(ts)}")
    return True, None


def decode_error(exc: Exception, ds: Any, path: Any) -> DicomReadError:
    """A clear error for a failed decode: the file, the transfer syntax, why, what to do.

    Returns :class:`UnsupportedTransferSyntaxError` when no installed decoder
    can handle the transfer syntax (none installed, none exists, or a known
    gap such as 12-bit JPEG Extended) and :class:`DicomReadError` when the
    decoders are there but the data do not decode (corrupt or inconsistent
    with the header).
    """
    name_of_file = os.path.basename(str(path))
    ts = transfer_syntax(ds)
    ts_text = f"{getattr(ts, 'name', str(ts))} ({ts})"
    failures = _plugin_failures(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    why = "; ".join(failures) if failures else first
    if not ts.is_compressed:
        return DicomReadError(
            f"{name_of_file}: cannot read the pixel data ({ts_text}): {why}. The pixel data do "
            "not match the image attributes (Rows, Columns, Bits Allocated, Samples per Pixel, "
            "Number of Frames); the file is malformed"
        )
    bits = ds.get("BitsStored") if hasattr(ds, "get") else None
    if str(ts) == "1.2.840.10008.1.2.4.51" and bits is not None and int(bits) > 8:
        return UnsupportedTransferSyntaxError(
            f"{name_of_file}: cannot decode pixel data in transfer syntax {ts_text} with "
            f"{int(bits)}-bit samples (12-bit JPEG precision): none of pydicom's decoders "
            "handles 12-bit JPEG Extended "
            f"({why}). Decompress the file first with GDCM's converter (install it with "
            f"`pip install python-gdcm`): gdcmconv --raw {name_of_file} decompressed.dcm "
            "(or DCMTK's dcmdjpeg), then load the decompressed copy"
        )
    plugins = _decoders_for(ts)
    if plugins is None or not plugins:
        what = "pydicom has no decoder for it" if plugins is None else "no decoder for it is installed"
        return UnsupportedTransferSyntaxError(
            f"{name_of_file}: cannot decode pixel data in transfer syntax {ts_text}: {what} "
            f"({first}). To read it, {_install_hint(ts)}"
        )
    return DicomReadError(
        f"{name_of_file}: cannot decode pixel data in transfer syntax {ts_text}: every installed "
        f"decoder ({', '.join(plugins)}) failed ({why}). Decoders for this transfer syntax are "
        "installed, so the compressed data are probably corrupt or do not match the header; "
        "check the file in another DICOM viewer or get a fresh copy from its source"
    )


def pixel_data_problem(h: Any, path: Any) -> str | None:
    """Why the pixel data of a header cannot be complete, if the header alone shows it.

    Catches an empty Pixel Data element, a file that ends before its pixel
    data do, and uncompressed pixel data shorter than Rows x Columns x
    Samples x Bits Allocated x Number of Frames. Used while scanning, so that
    a broken file is listed on its own and never joins a series.
    """
    name = os.path.basename(str(path))
    if "PixelData" not in h:
        return None
    elem = h.get_item(0x7FE00010, keep_deferred=True)
    length = getattr(elem, "length", None)
    value = getattr(elem, "value", None)
    if length in (None, 0xFFFFFFFF) and value is not None:
        length = len(value) if isinstance(value, (bytes, bytearray)) else None
    try:
        rows, cols = int(h.get("Rows") or 0), int(h.get("Columns") or 0)
        bits = int(h.get("BitsAllocated") or 0)
        samples = int(h.get("SamplesPerPixel") or 1)
    except (TypeError, ValueError):
        return None
    n_frames = _frame_count(h)
    desc = f"{n_frames} frame(s) of {rows}x{cols}"
    if length == 0 or (value is not None and len(value) == 0):
        return (
            f"{name}: the Pixel Data element is empty although the header describes {desc}: "
            "the file holds no pixel values. Get the complete file from its source"
        )
    if length in (None, 0xFFFFFFFF):  # encapsulated: only the decoder can tell
        return None
    ts = transfer_syntax(h)
    tell = getattr(elem, "value_tell", None)
    # value_tell is a file offset only for plain files (not deflated, not gzipped)
    if (value is None and tell is not None and str(ts) != "1.2.840.10008.1.2.1.99"
            and os.path.isfile(str(path))):
        missing = tell + length - os.path.getsize(str(path))
        if missing > 0:
            return (
                f"{name}: the file is truncated: it ends {missing} bytes before the end of its "
                f"pixel data ({desc}, {length} bytes declared). It was probably cut short while "
                "copying or downloading; get the complete file from its source"
            )
    if not ts.is_compressed and bits in (1, 8, 16, 32, 64) and "FloatPixelData" not in h:
        if samples == 3 and str(h.get("PhotometricInterpretation", "")).endswith("_422"):
            samples = 2  # YBR_FULL_422: two chroma samples shared by two pixels
        expected = (rows * cols * samples * n_frames * bits + 7) // 8
        if length < expected:
            return (
                f"{name}: pixel data are truncated: {length} bytes for {desc} with {samples} "
                f"sample(s) of {bits} bits ({expected} bytes expected). Get the complete file "
                "from its source"
            )
    return None


_RLE = "1.2.840.10008.1.2.5"
#: RLE (PackBits) turns 2 bytes into at most 128: no valid RLE data decode to more than
#: 64 times their size
_RLE_MAX_RATIO = 64


def _claim_text(rows: int, cols: int, n_frames: int, samples: int, nbytes: int) -> str:
    return (f"Rows {rows} x Columns {cols} x {n_frames} frame(s)"
            + (f" x {samples} samples" if samples > 1 else "") + f" x {nbytes} byte(s)")


def claim_problem(name: str, *, rows: int, columns: int, n_frames: int, samples: int,
                  bits_allocated: int, transfer_syntax: str, file_size: int) -> str | None:
    """Why a header's pixel-data claim cannot be true of a file this size, if it shows.

    RLE Lossless data expand at most 64-fold (PackBits: 2 bytes give at most
    128), so Rows x Columns x frames x samples x bytes above 64 times the
    file size is a corrupt header, found before anything is allocated. (Uncompressed
    claims are checked against the Pixel Data length by :func:`pixel_data_problem`;
    other codecs have no tight bound: the memory budget applies.)
    """
    if str(transfer_syntax) != _RLE:
        return None
    nbytes = max(int(bits_allocated) // 8, 1)
    claim = int(rows) * int(columns) * int(n_frames) * int(samples) * nbytes
    if claim > _RLE_MAX_RATIO * int(file_size) + 1024:
        return (
            f"{name}: the header declares {_claim_text(rows, columns, n_frames, samples, nbytes)}"
            f" = {format_bytes(claim)} of pixel data, but RLE data in a file of "
            f"{format_bytes(file_size)} decode to at most {format_bytes(_RLE_MAX_RATIO * file_size)};"
            " the header (Rows, Columns, Number of Frames) is corrupt. Get a fresh copy of the "
            "file from its source"
        )
    return None


def _check_claims(plan: VolumePlan, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Check what the headers declare before anything is allocated: RLE files against
    their size, compressed images against the memory budget."""
    per_file: dict[str, list[Frame]] = defaultdict(list)
    for f in plan.frames:
        per_file[str(f.path)].append(f)
    transient = 0
    compressed = False
    for frames in per_file.values():
        f = frames[0]
        if f.transfer_syntax in _NATIVE_LE or f.transfer_syntax in _NATIVE_SYNTAXES:
            continue
        compressed = True
        n_frames = max((fr.index or 0) for fr in frames) + 1
        tiles = max(f.mosaic_tiles_side, 1) ** 2
        nbytes = max(f.bits_allocated // 8, 1)
        try:
            size = os.path.getsize(f.path)
        except OSError:
            continue  # the reader reports it
        problem = claim_problem(f.path.name, rows=f.rows, columns=f.columns,
                                n_frames=n_frames * tiles, samples=f.samples,
                                bits_allocated=f.bits_allocated,
                                transfer_syntax=f.transfer_syntax, file_size=size)
        if problem:
            exc = DicomReadError(problem)
            exc.path = f.path  # type: ignore[attr-defined]
            raise exc
        transient = max(transient, f.rows * f.columns * n_frames * tiles * f.samples * nbytes)
    if compressed:
        f0 = plan.frames[0]
        total = int(np.prod(shape)) * dtype.itemsize
        claim = _claim_text(f0.rows, f0.columns, len(plan.frames), f0.samples, dtype.itemsize)
        check_decode_size(total + transient, claim + (
            f" (+ {format_bytes(transient)} while decoding)" if transient else ""),
            f0.path.name if len(per_file) == 1 else plan.id)


def read_pixels(plan: VolumePlan, *, max_workers: int | None = None) -> tuple[np.ndarray, bool]:
    """The array of a planned volume, and whether it has a channel axis.

    Raises
    ------
    medlab.errors.ImageTooLargeError
        Compressed pixel data whose declared size exceeds the memory budget
        (:func:`medlab.io.decode_budget`); nothing is allocated.
    medlab.errors.DicomReadError
        A file cannot be read or decoded, or its header claims more RLE data
        than the file can hold.
    """
    grid = plan.grid
    n_t, n_k = len(grid), len(grid[0])
    f0 = grid[0][0]
    has_time = plan.frame_times_s is not None
    samples = f0.samples
    shape: tuple[int, ...] = (n_k, f0.rows, f0.columns)
    if has_time:
        shape += (n_t,)
    colour = samples > 1 or f0.photometric.startswith(("PALETTE", "YBR", "RGB"))
    if colour:
        shape += (3,)
    raw_dtype = _raw_dtype(f0.header)
    if colour:
        # unsigned, as wide as the stored samples (8, 16 or 32 bits)
        raw_dtype = np.dtype(f"u{raw_dtype.itemsize}") if raw_dtype.kind != "f" else raw_dtype
        lut = f0.header.get("RedPaletteColorLookupTableDescriptor")
        if lut is not None and int(lut[2]) > 8:
            raw_dtype = np.dtype(np.uint16)
    _check_claims(plan, shape, raw_dtype)
    buf = np.empty(shape, dtype=raw_dtype)

    # frames per file, so each file is opened once
    jobs: dict[str, list[tuple[int, int, Frame]]] = defaultdict(list)
    for t, vol in enumerate(grid):
        for k, f in enumerate(vol):
            jobs[str(f.path)].append((t, k, f))

    def index(k: int, t: int) -> tuple:
        return (k, slice(None), slice(None), t) if has_time else (k,)

    # the stored values' range, when the rescale must look at it (see _rescale), taken
    # file by file while the frames just read are still in the cache
    lines = None if colour else _scaling_lines(plan)
    ranges: list[tuple[int, int]] | None = (
        [] if lines is not None and _range_needed(plan, lines, raw_dtype) else None)
    # and where every frame's rescale is an addition (CT: slope 1, intercept -1024), it is
    # done there too, in the stored type modulo 2**bits: the bits of the in-place result
    # (_rescale undoes it exactly when the values need a wider type)
    adds = _fused_additions(lines, raw_dtype) if lines is not None and ranges is not None else None

    def do_file(items: list[tuple[int, int, Frame]]) -> None:
        try:
            if colour or not (_read_native(items, buf, index, raw_dtype)
                              or _read_packed12(items, buf, index)
                              or _read_encapsulated(items, buf, index, raw_dtype)):
                _read_decoded(items, buf, index)
            if ranges is not None:
                for t, k, fr in items:
                    frame = buf[index(k, t)]
                    ranges.append((int(frame.min()), int(frame.max())))
                    if adds is not None and adds[id(fr)] is not None:
                        np.add(frame, adds[id(fr)], out=frame)
        except DicomReadError as exc:
            # which file failed, so the reader can drop it and keep the rest of the series
            if getattr(exc, "path", None) is None:
                exc.path = items[0][2].path  # type: ignore[attr-defined]
            raise

    # imagecodecs' decoders run outside the GIL and gain from threads (pydicom's plugins,
    # the fallback, hold it); plain reads from the page cache are fastest in one thread
    compressed = any(f.transfer_syntax not in _NATIVE_LE for f in (vol[0] for vol in grid))
    workers = max_workers or (min(4, os.cpu_count() or 1) if compressed else 1)
    with warnings.catch_warnings():
        # pydicom's value-validation warnings (over-long IS, bad UIDs, ...) say nothing
        # about the pixels; real problems surface as errors
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
        if len(jobs) > 8 and workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(do_file, jobs.values()))
        else:
            for items in jobs.values():
                do_file(items)

    if lines is None:  # colour
        return buf, True
    value_range = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None
    return _rescale(buf, plan, index, lines=lines, value_range=value_range, added=adds), False


def _read_native(items: list, buf: np.ndarray, index: Any, dtype: np.dtype) -> bool:
    """Read uncompressed little-endian frames straight into ``buf``; False if not applicable.

    Uses only what the frame records say about the storage (transfer syntax,
    pixel data offset and length, bits), so no header is parsed again.
    """
    f = items[0][2]
    if (f.tile is not None or f.transfer_syntax not in _NATIVE_LE or f.pixel_offset is None
            or f.pixel_length is None):
        return False
    bits_alloc = f.bits_allocated
    if bits_alloc not in (8, 16, 32) or dtype.itemsize * 8 != bits_alloc:
        return False
    frame_bytes = f.rows * f.columns * dtype.itemsize
    n_needed = max((fr.index or 0) for _, _, fr in items) + 1
    if f.pixel_length < frame_bytes * n_needed:
        raise DicomReadError(
            f"{f.path.name}: pixel data are truncated: {f.pixel_length} bytes for frame(s) of "
            f"{f.rows}x{f.columns} ({frame_bytes * n_needed} expected). Get the complete file "
            "from its source"
        )
    tell = f.pixel_offset
    with open(f.path, "rb") as fh:
        for t, k, fr in items:
            target = buf[index(k, t)]
            fh.seek(tell + (fr.index or 0) * frame_bytes)
            if target.flags.c_contiguous:
                n = fh.readinto(memoryview(target).cast("B"))
            else:
                tmp = np.empty((fr.rows, fr.columns), dtype=dtype)
                n = fh.readinto(memoryview(tmp).cast("B"))
                target[...] = tmp
            if n != frame_bytes:
                raise DicomReadError(
                    f"{fr.path.name}: the file is truncated: it ends inside the pixel data "
                    f"({n} of {frame_bytes} bytes of frame {(fr.index or 0) + 1}). Get the "
                    "complete file from its source"
                )
            if fr.bits_stored < bits_alloc:
                _fix_bits(buf[index(k, t)], fr.bits_stored, bits_alloc, dtype)
    return True


#: greyscale transfer syntaxes decoded by imagecodecs (see :func:`_read_encapsulated`):
#: per syntax the fastest decoder installed here, measured on 512x512 CT frames against
#: pydicom's plugins (pylibjpeg-rle/-libjpeg/-openjpeg, pyjpegls, python-gdcm), and the
#: only ones that release the GIL (benchmarks/bench_load.py prints the MB/s)
_FAST_CODECS = {
    "1.2.840.10008.1.2.5": "rle",  # dicomrle_decode
    "1.2.840.10008.1.2.4.57": "jpeg",  # jpeg8_decode: libjpeg-turbo 3 decodes lossless JPEG
    "1.2.840.10008.1.2.4.70": "jpeg",
    "1.2.840.10008.1.2.4.80": "jpegls",  # jpegls_decode: CharLS
    "1.2.840.10008.1.2.4.81": "jpegls",
    "1.2.840.10008.1.2.4.90": "j2k",  # jpeg2k_decode: OpenJPEG
    "1.2.840.10008.1.2.4.91": "j2k",
}
_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQ_END_TAG = b"\xfe\xff\xdd\xe0"


@functools.cache
def _imagecodecs() -> Any:
    """The imagecodecs module, or None when it is not installed (pydicom decodes then)."""
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - a dependency of medlab
        return None
    return imagecodecs


def _encapsulated_frames(data: bytes | memoryview, n_frames: int) -> list[bytes] | None:
    """The frames of encapsulated Pixel Data (the value, from the Basic Offset Table item
    on; PS3.5 A.4), or None when the layout is not one of the plain ones (the caller lets
    pydicom decide then)."""
    mv = memoryview(data)
    pos, end = 0, len(mv)
    if end < 8 or mv[:4] != _ITEM_TAG:
        return None
    bot_len = _U32.unpack_from(mv, 4)[0]
    if bot_len % 4 or 8 + bot_len > end:
        return None
    offsets = list(struct.unpack_from(f"<{bot_len // 4}I", mv, 8)) if bot_len else []
    pos = first = 8 + bot_len
    fragments: list[tuple[int, memoryview]] = []  # (offset from the first fragment, data)
    while pos + 8 <= end:
        tag = mv[pos : pos + 4]
        length = _U32.unpack_from(mv, pos + 4)[0]
        if tag == _SEQ_END_TAG:
            break
        if tag != _ITEM_TAG or length == 0xFFFFFFFF or pos + 8 + length > end:
            return None
        fragments.append((pos - first, mv[pos + 8 : pos + 8 + length]))
        pos += 8 + length
    else:
        return None  # no sequence delimiter: truncated
    if not fragments:
        return None
    if n_frames == 1:
        groups = [[fr for _, fr in fragments]]
    elif offsets:
        if len(offsets) != n_frames or offsets[0] != 0 or offsets != sorted(offsets):
            return None
        starts = {off: k for k, off in enumerate(offsets)}
        groups = []
        for off, fr in fragments:
            if off in starts:
                groups.append([])
            elif not groups:
                return None
            groups[-1].append(fr)
        if len(groups) != n_frames:
            return None
    elif len(fragments) == n_frames:
        groups = [[fr] for _, fr in fragments]
    else:
        return None  # several fragments per frame without an offset table: pydicom decides
    return [bytes(g[0]) if len(g) == 1 else b"".join(g) for g in groups]


def _stream_precision(frame: bytes, kind: str) -> tuple[int, bool] | None:
    """(precision, signed) that a JPEG-LS or JPEG 2000 codestream declares."""
    if kind == "j2k":
        off = _j2k_siz(frame)
        if off is None:
            return None
        ssiz = frame[off + 42]  # Ssiz of the first component: signed bit, precision - 1
        return (ssiz & 0x7F) + 1, bool(ssiz & 0x80)
    from pydicom.pixels.utils import _get_jpg_parameters

    info = _get_jpg_parameters(frame)
    return (info["precision"], False) if info else None


def _decode_fast(kind: str, frame: bytes, f: Frame,
                 dtype: np.dtype) -> tuple[np.ndarray, int] | None:
    """One greyscale frame decoded by imagecodecs, and the bit shift that corrects it as
    pydicom corrects it; None when the stream is not what the header says (pydicom then
    decides and explains)."""
    ic = _imagecodecs()
    if kind == "jpeg" and b"\xff\xd9" not in frame[-4:]:
        # no End Of Image marker: a truncated stream, which libjpeg-turbo decodes without
        # complaint (filling the rest); pydicom's plugins decide what it is
        return None
    if kind != "rle":
        got = _codestream_size(frame, "1.2.840.10008.1.2.4.90" if kind == "j2k"
                               else "1.2.840.10008.1.2.4.70")
        # refuse before decoding what the header does not describe (no huge allocation)
        if got is None or got[:3] != (f.rows, f.columns, 1):
            return None
    if kind == "rle":
        arr = np.frombuffer(ic.dicomrle_decode(frame, dtype.newbyteorder("<").str), dtype)
        if arr.size != f.rows * f.columns:
            return None
        arr = arr.reshape(f.rows, f.columns)
    else:
        decode = {"jpeg": ic.jpeg8_decode, "jpegls": ic.jpegls_decode, "j2k": ic.jpeg2k_decode}
        arr = decode[kind](frame)
        if arr.shape != (f.rows, f.columns) or arr.dtype.itemsize != dtype.itemsize:
            return None
    # the corrections of pydicom's DecodeRunner (pydicom.pixels.decoders.base), as a shift
    # left then right in the output type (unsigned: clears the high bits; signed: extends
    # the sign), applied by the caller in place in the output array
    if kind in ("rle", "jpeg"):  # correct_unused_bits
        return arr.view(dtype), max(f.bits_allocated - f.bits_stored, 0)
    info = _stream_precision(frame, kind)
    if info is None:
        return None
    precision, stream_signed = info
    shift = max(8 * dtype.itemsize - precision, 0)
    if kind == "j2k":
        fix = f.photometric in ("MONOCHROME1", "MONOCHROME2") and stream_signed != f.signed
    else:  # JPEG-LS cannot say it is signed: signed data always need the sign extended
        fix = f.signed
    return arr.view(dtype), shift if fix else 0


def _read_encapsulated(items: list, buf: np.ndarray, index: Any, dtype: np.dtype) -> bool:
    """Decode greyscale RLE / JPEG lossless / JPEG-LS / JPEG 2000 frames with imagecodecs
    straight into ``buf``; False if not applicable or anything is unusual (pydicom's
    plugins then decode the file, and explain a failure).

    Reads the encapsulated Pixel Data from the offset the header scan recorded, so no
    header is parsed again.
    """
    f = items[0][2]
    kind = _FAST_CODECS.get(f.transfer_syntax)
    if (kind is None or f.tile is not None or f.samples != 1 or f.pixel_offset is None
            or f.pixel_length not in (None, 0xFFFFFFFF) or dtype.kind not in "iu"
            or dtype.itemsize * 8 != f.bits_allocated or f.bits_allocated not in (8, 16, 32)
            or not f.photometric.startswith("MONOCHROME") or _imagecodecs() is None):
        return False
    if kind != "rle" and f.bits_allocated == 32:
        return False
    n_frames = max(_frame_count(f.header), 1) if f.index is not None else 1
    try:
        with open(f.path, "rb") as fh:
            fh.seek(f.pixel_offset)
            data = fh.read()
        frames = _encapsulated_frames(data, n_frames)
        if frames is None:
            return False
        decoded = {}
        for _, _, fr in items:
            i = fr.index or 0
            if i not in decoded:
                decoded[i] = _decode_fast(kind, frames[i], fr, dtype)
                if decoded[i] is None:
                    return False
    except Exception:  # a corrupt stream: pydicom's plugins decode or explain
        return False
    for t, k, fr in items:
        raw, shift = decoded[fr.index or 0]
        target = buf[index(k, t)]
        target[...] = raw
        if shift:
            target <<= shift
            target >>= shift
    return True


def _read_packed12(items: list, buf: np.ndarray, index: Any) -> bool:
    """Old ACR-NEMA 12-bit packed pixels (Bits Allocated 12): two pixels in three bytes.

    pydicom refuses Bits Allocated 12; the packing is GDCM's (and the ACR-NEMA
    standard's): bytes b0 b1 b2 hold ``b0 | (b1 & 0x0F) << 8`` and
    ``b1 >> 4 | b2 << 4``. False if not applicable.
    """
    f = items[0][2]
    if f.bits_allocated != 12:  # the frame's record says so: no header to parse
        return False
    h = f.header
    if str(h.get("BitsAllocated", "")) != "12" or str(transfer_syntax(h)) not in _NATIVE_LE:
        return False
    n_frames = _frame_count(h)
    n_pix = f.rows * f.columns
    try:
        ds = read_dataset(f.path)
        data = np.frombuffer(ds.PixelData, dtype=np.uint8)
    except Exception as exc:
        raise DicomReadError(f"{f.path.name}: cannot read the 12-bit packed pixel data: {exc}") from exc
    need = (n_pix * n_frames * 3 + 1) // 2
    if data.size < need:
        raise DicomReadError(
            f"{f.path.name}: 12-bit packed pixel data are truncated: {data.size} bytes for "
            f"{n_frames} frame(s) of {f.rows}x{f.columns} ({need} expected). Get the complete "
            "file from its source"
        )
    padded = np.zeros(-(-need // 3) * 3, dtype=np.uint8)  # whole 3-byte groups
    padded[:need] = data[:need]
    b = padded.reshape(-1, 3).astype(np.uint16)
    pix = np.empty(b.shape[0] * 2, dtype=np.uint16)
    pix[0::2] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    pix[1::2] = (b[:, 1] >> 4) | (b[:, 2] << 4)
    frames = pix[: n_pix * n_frames].reshape(n_frames, f.rows, f.columns)
    if buf.dtype.kind == "i":
        frames = ((frames.astype(np.int16) << 4) >> 4).astype(buf.dtype)  # sign-extend 12 bits
    for t, k, fr in items:
        buf[index(k, t)] = frames[fr.index or 0]
    return True


def _fix_bits(a: np.ndarray, stored: int, allocated: int, dtype: np.dtype) -> None:
    """Clear bits above BitsStored (and sign-extend signed data), in place."""
    if dtype.kind == "i":
        shift = allocated - stored
        a <<= shift
        a >>= shift
    else:
        a &= (1 << stored) - 1


_JPEG_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                  "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_J2K_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                 "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}


def _j2k_siz(frame: bytes) -> int | None:
    """Offset of a JPEG 2000 codestream (SOC + SIZ marker) in ``frame``, a bare
    codestream or a JP2 file; None when there is none."""
    off = 0
    if frame.startswith(b"\x00\x00\x00\x0cjP  "):  # a JP2 wrapper: find the codestream box
        off = frame.find(b"jp2c") + 4 if b"jp2c" in frame[:4096] else -1
    if off < 0 or frame[off : off + 4] != b"\xff\x4f\xff\x51" or len(frame) < off + 43:
        return None
    return off


def _codestream_size(frame: bytes, ts: str) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, precision) a JPEG / JPEG-LS / JPEG 2000 frame declares."""
    from pydicom.pixels.utils import _get_jpg_parameters

    if ts in _JPEG_SYNTAXES:
        info = _get_jpg_parameters(frame)
        if not info:
            return None
        return info["height"], info["width"], info["components"], info["precision"]
    off = _j2k_siz(frame)
    if off is None:
        return None
    xsiz, ysiz, xo, yo = struct.unpack(">4I", frame[off + 8 : off + 24])
    csiz = struct.unpack(">H", frame[off + 40 : off + 42])[0]
    return ysiz - yo, xsiz - xo, csiz, (frame[off + 42] & 0x7F) + 1


def codestream_problem(ds: Any, name: str) -> str | None:
    """Why the compressed frames of ``ds`` do not match its header, if they do not.

    Each JPEG, JPEG-LS or JPEG 2000 frame states its own size; a header whose
    Rows, Columns, Samples per Pixel or Bits Allocated disagree with it makes
    decoders write past their buffer (GDCM then aborts the whole process), so
    the mismatch is refused before anything is decoded.
    """
    from pydicom.encaps import generate_frames

    ts = str(transfer_syntax(ds))
    if ts not in _JPEG_SYNTAXES and ts not in _J2K_SYNTAXES:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.BitsAllocated)
        n_frames = _frame_count(ds)
        for k, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=n_frames)):
            got = _codestream_size(frame, ts)
            if got is None:
                continue  # an unusual stream: the decoder decides
            h, w, comps, precision = got
            if max(h, w) > 0xFFFF:
                continue  # not a size a header could hold: a stream parsed out of step
            if (h not in (0, rows) or w != cols or comps != samples
                    or precision > max(bits, 8) or (ts in _J2K_SYNTAXES and precision > 32)):
                return (
                    f"{name}: frame {k + 1} of the compressed pixel data is {h} x {w} with "
                    f"{comps} component(s) of {precision} bits, but the header declares Rows "
                    f"{rows} x Columns {cols} with {samples} sample(s) of {bits} bits allocated; "
                    "the file is corrupt. Get a fresh copy from its source"
                )
            if k + 1 >= n_frames:
                break
    except Exception:  # unusual encapsulation: the decoders decide
        return None
    return None


def _read_decoded(items: list, buf: np.ndarray, index: Any) -> None:
    f = items[0][2]
    try:
        ds = read_dataset(f.path)
    except Exception as exc:
        raise DicomReadError(f"{f.path.name}: cannot read the file: {exc}") from exc
    if "TransferSyntaxUID" not in ds.file_meta:
        # ACR-NEMA style or broken file meta: decode in the encoding the file was read in
        ds.file_meta.TransferSyntaxUID = transfer_syntax(ds)
    palette = str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR"
    problem = codestream_problem(ds, f.path.name)
    if problem:
        raise DicomReadError(problem)

    def decode(**kw: Any) -> np.ndarray:
        a = pydicom.pixels.pixel_array(ds, **kw)
        return pydicom.pixels.apply_color_lut(a, ds) if palette else a

    n_frames = _frame_count(ds)
    try:
        if f.index is not None and len(items) < n_frames // 2:
            frames = {fr.index: decode(index=fr.index) for _, _, fr in items}
        else:
            arr = decode()
            frames = None
            if n_frames == 1 and f.index is not None:
                arr = arr[np.newaxis]
    except Exception as exc:
        raise decode_error(exc, ds, f.path) from exc
    except BaseException as exc:
        # a decoder written in Rust panics with pyo3's PanicException, a BaseException
        # that pydicom does not catch (pylibjpeg-rle on corrupt RLE segments)
        if type(exc).__name__ != "PanicException":
            raise
        raise decode_error(RuntimeError(f"the decoder crashed: {exc}"), ds, f.path) from exc
    for t, k, fr in items:
        if frames is not None:
            src = frames[fr.index]
        elif fr.tile is not None:
            side = fr.mosaic_tiles_side
            r, c = divmod(fr.tile, side)
            src = arr[r * fr.rows : (r + 1) * fr.rows, c * fr.columns : (c + 1) * fr.columns]
        elif fr.index is not None:
            src = arr[fr.index]
        else:
            src = arr
        target = buf[index(k, t)]
        if src.shape != target.shape:
            if src.ndim == target.ndim - 1 and target.shape[-1] == 3:  # grey into colour
                src = np.repeat(src[..., np.newaxis], 3, axis=-1)
            else:
                raise DicomReadError(
                    f"{fr.path.name}: decoded frame has shape {src.shape}, expected {target.shape}"
                )
        target[...] = src


def frame_scaling(f: Frame, mode: str = "quantitative") -> tuple[float, float, str]:
    """(slope, intercept, name) turning a frame's stored values into the values medlab returns.

    ``mode='quantitative'`` (the default, as dcm2niix): Philips' floating-point
    values where the private scale slope (2005,100E) is present, ``FP = (SV *
    RS + RI) / (RS * SS)``; otherwise Rescale Slope/Intercept unless they are
    the identity; otherwise (a Parametric Map) a linear Real World Value
    Mapping. ``mode='display'``: Rescale Slope/Intercept only. A Modality
    LUT Sequence is a table, not a line: see :func:`_apply_lut`.
    """
    extra = f.scaling or {}
    if mode == "quantitative" and extra.get("philips_ss"):
        ss, rs, ri = extra["philips_ss"], f.slope, f.intercept
        return 1.0 / ss, ri / (rs * ss), "philips-float"
    if (f.slope, f.intercept) != (1.0, 0.0):
        return f.slope, f.intercept, "rescale"
    if mode == "quantitative" and extra.get("rwvm"):
        slope, intercept, _units = extra["rwvm"]
        return slope, intercept, "real-world-value-mapping"
    return 1.0, 0.0, "none"


def _apply_lut(buf: np.ndarray, plan: VolumePlan, index: Any) -> np.ndarray:
    """The Modality LUT Sequence (PS3.3 C.11.1): values below the first mapped one take
    the first entry, values beyond the table its last."""
    grid = plan.grid
    tables = [f.scaling["lut"] for f in plan.frames]
    top = max(int(t[1].max()) for t in tables)
    out = np.empty(buf.shape, dtype=_int_dtype(0, top))
    for t, vol in enumerate(grid):
        for k, f in enumerate(vol):
            first, table = f.scaling["lut"]
            ix = index(k, t)
            idx = np.clip(buf[ix].astype(np.int64) - first, 0, len(table) - 1)
            out[ix] = table[idx]
    plan.meta["scaling"] = "modality-lut"
    return out


def _scaling_lines(plan: VolumePlan) -> dict[int, tuple[float, float, str]]:
    """Per frame (by id) its :func:`frame_scaling` line in the plan's scaling mode."""
    return {id(f): frame_scaling(f, plan.scaling_mode) for f in plan.frames}


def _all_lut(plan: VolumePlan) -> bool:
    return all(f.scaling and "lut" in f.scaling for f in plan.frames)


def _integer_ends(plan: VolumePlan, pairs: set[tuple[float, float]]) -> list[float] | None:
    """The rescaled ends of the stored type's range, one pair per (slope, intercept), when the
    rescale is integer arithmetic; None when it needs floats. Integer only for integer,
    non-zero slopes and integer intercepts: a tiny slope such as 5.9e-08 (GE PET) is within
    1e-6 of 0 and would round every value to 0."""
    if not all(_is_int(s) and round(s) != 0 and _is_int(i) for s, i in pairs):
        return None
    lo, hi = _stored_range(plan.grid[0][0].header)
    return [s * v + i for s, i in pairs for v in (lo, hi)]


def _wrapped(v: float, dtype: np.dtype) -> np.ndarray:
    """An integer as ``dtype`` modulo its width (e.g. -1024 as uint16 is 64512)."""
    return np.array(round(v), dtype=np.int64).astype(dtype)


def _range_needed(plan: VolumePlan, lines: dict[int, tuple[float, float, str]],
                  dtype: np.dtype) -> bool:
    """Whether :func:`_rescale` needs the stored values' actual range: an integer
    rescale whose result over the stored type's whole range would not fit a type as
    wide as the stored one (e.g. signed 16-bit CT with intercept -1024)."""
    if dtype.kind not in "iu" or _all_lut(plan):
        return False
    pairs = {v[:2] for v in lines.values()}
    ends = None if pairs == {(1.0, 0.0)} else _integer_ends(plan, pairs)
    return ends is not None and _int_dtype(min(ends), max(ends)).itemsize > dtype.itemsize


def _fused_additions(lines: dict[int, tuple[float, float, str]],
                     dtype: np.dtype) -> dict[int, np.ndarray | None] | None:
    """Per frame (by id) its intercept as ``dtype`` modulo 2**bits (None for 0), when every
    frame's rescale is an integer addition (slope 1); None otherwise."""
    if not all(s == 1 and _is_int(i) for s, i, _ in lines.values()):
        return None
    return {fid: _wrapped(i, dtype) if i else None for fid, (_, i, _) in lines.items()}


def _rescale(buf: np.ndarray, plan: VolumePlan, index: Any, *,
             lines: dict[int, tuple[float, float, str]] | None = None,
             value_range: tuple[int, int] | None = None,
             added: dict[int, np.ndarray | None] | None = None) -> np.ndarray:
    """Stored values to the values medlab returns (in place where the type allows).

    ``lines``: :func:`_scaling_lines` of the plan, when the reader has them.
    ``value_range`` is the stored values' (min, max) when the reader took it
    (:func:`_range_needed`); otherwise it is computed here when needed.
    ``added``: the additions the reader has already made in ``buf``'s type modulo
    2**bits (:func:`_fused_additions`; every slope is 1).
    """
    grid = plan.grid
    if _all_lut(plan):
        return _apply_lut(buf, plan, index)
    if lines is None:
        lines = _scaling_lines(plan)
    kinds = sorted({v[2] for v in lines.values()})
    if kinds != ["none"]:
        plan.meta["scaling"] = "+".join(k for k in kinds if k != "none")
    if "real-world-value-mapping" in kinds:
        units = {f.scaling["rwvm"][2] for f in plan.frames if f.scaling and "rwvm" in f.scaling}
        if len(units) == 1 and None not in units:
            plan.meta["units"] = units.pop()
    pairs = {v[:2] for v in lines.values()}
    if pairs == {(1.0, 0.0)}:
        return buf
    plan.meta["rescaled"] = True
    ends = _integer_ends(plan, pairs)
    if buf.dtype.kind == "f" or ends is None:
        out_dtype = np.dtype(np.float64 if buf.dtype.itemsize >= 4 else np.float32)
        out = np.empty(buf.shape, dtype=out_dtype)
        for t, vol in enumerate(grid):
            for k, f in enumerate(vol):
                ix = index(k, t)
                slope, intercept, _ = lines[id(f)]
                np.multiply(buf[ix], slope, out=out[ix], dtype=out_dtype, casting="unsafe")
                out[ix] += intercept
        return out
    # integer rescale: choose the smallest integer type holding the rescaled values
    target = _int_dtype(min(ends), max(ends))
    if target.itemsize > buf.dtype.itemsize:
        # the theoretical range does not fit: look at the actual values, but stay signed
        # when the rescale can give negative values (CT: unsigned stored, intercept -1024),
        # so the dtype does not depend on the data and later arithmetic does not wrap
        signed = min(ends) < 0
        vmin, vmax = value_range if value_range is not None else (int(buf.min()), int(buf.max()))
        cands = [s * v + i for s, i in pairs for v in (vmin, vmax)]
        target = _int_dtype(min(cands), max(cands), signed=signed)
    in_place = target.itemsize == buf.dtype.itemsize
    if added is not None:
        if in_place:  # the additions made by the reader are the result's bits
            return buf.view(target)
        for t, vol in enumerate(grid):  # undone (exactly, modulo 2**bits): a wider type
            for k, f in enumerate(vol):
                if added[id(f)] is not None:
                    ix = index(k, t)
                    np.subtract(buf[ix], added[id(f)], out=buf[ix])
    out = buf.view(target) if in_place else np.empty(buf.shape, dtype=target)

    # in the output type itself, frame by frame: integer arithmetic modulo 2**bits gives
    # the same bits as computing in int64 and casting, and every rescaled stored value
    # fits the output type, so the result is exact (and no int64 copy is made)
    for t, vol in enumerate(grid):
        for k, f in enumerate(vol):
            ix = index(k, t)
            o = out[ix]
            if not in_place:
                o[...] = buf[ix]
            slope, intercept, _ = lines[id(f)]
            if slope != 1:
                np.multiply(o, _wrapped(slope, target), out=o)
            if intercept != 0:
                np.add(o, _wrapped(intercept, target), out=o)
    return out


def _int_dtype(lo: float, hi: float, *, signed: bool = False) -> np.dtype:
    for dt in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        if signed and np.dtype(dt).kind == "u":
            continue
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)
