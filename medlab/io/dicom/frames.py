"""The frame stage of DICOM reading: one :class:`Frame` per 2D frame of a file.

Internal API for medlab subpackages; not for users; may change.

Stages: :mod:`.header` -> **frames** -> :mod:`.plans` -> :mod:`.pixels`. A
classic single-frame file gives one frame, a multi-frame object one per
frame, a Siemens mosaic one per tile (:func:`frames_from_dataset`). A plain
single-frame file takes the fast path (:func:`fast_frames`, from the fast
header reader's values); anything else goes through pydicom and the header
checks (:func:`checked_frames`). :func:`file_frames` does both for one file,
as the loader's scan does.

A frame is stored as text with :func:`frame_record` and rebuilt with
:func:`frame_from_record` (the cohort index keeps the frames its scan read,
so it loads a series without reading the headers again).
"""

from __future__ import annotations

import json
import math
import operator
from pathlib import Path
from typing import Any

import numpy as np

from ._fastheader import _tag_for
from ._frames import PER_FILE_FIELDS, Frame, NotAnImageError, frame_like, frames_from_dataset
from .header import (
    FAST_DECLINE,
    FAST_TAGS,
    WSI_SOP_CLASS,
    FastDataset,
    FastHeader,
    HeaderReader,
    check_elements,
    check_header,
    file_problem,
    looks_like_dicom,
    not_dicom_reason,
    not_image_reason,
    quiet_pydicom,
    read_fast_header,
    read_header,
    unreadable_reason,
)

__all__ = ["FastFrames", "Frame", "NotAnImageError", "checked_frames", "fast_frames",
           "file_frames", "frame_from_record", "frame_record", "frames_from_dataset"]


def fast_frames(fh: FastHeader | None, path: Path, *, size: int | None = None,
                dataset_type: type[FastDataset] = FastDataset) -> list[Frame] | None:
    """Frames of a plain single-frame little-endian file from the fast header reader's values.

    ``fh`` must hold (at least) :data:`~.header.FAST_TAGS`; ``size`` is the
    file's size in bytes (read from the file when not given). None when the
    file needs the full reader: multi-frame, mosaic, enhanced, ultrasound
    regions, packed bits, or anything odd about its pixel data (the full
    reader then explains what is wrong). ``dataset_type`` wraps ``fh`` for
    reading values (a :class:`~.header.FastDataset` subclass, e.g. one that
    memoises conversions across the files of a series).
    """
    if fh is None or fh.pixel_offset is None or fh.seen & FAST_DECLINE:
        return None
    return _fast_frames(fh, path, size, dataset_type(fh))


def _fast_frames(fh: FastHeader, path: Path, size: int | None, ds: Any) -> list[Frame] | None:
    n_frames = ds.get("NumberOfFrames", 1)
    image_type = ds.get("ImageType") or []
    bits = ds.get("BitsAllocated")
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if (n_frames not in (1, "1") or "MOSAIC" in image_type or bits not in (8, 16, 32)
            or not rows or not cols or str(ds.get("SOPClassUID", "")) == WSI_SOP_CLASS):
        return None
    if fh.pixel_length is not None:  # uncompressed: the length must match the header
        samples = ds.get("SamplesPerPixel", 1)
        if str(ds.get("PhotometricInterpretation", "")).endswith("_422"):
            return None
        expected = rows * cols * samples * bits // 8
        if size is None:
            size = path.stat().st_size
        if fh.pixel_length < expected or fh.pixel_offset + fh.pixel_length > size:
            return None
    try:
        with quiet_pydicom():
            return frames_from_dataset(ds, path, fast=fh)
    except Exception:  # anything unexpected: let the full reader explain it
        return None


#: tag -> keyword of :data:`~._frames.PER_FILE_FIELDS`
_PER_FILE_TAGS = {_tag_for(kw): kw for kw in PER_FILE_FIELDS}


class FastFrames:
    """:func:`fast_frames` for many files in a row, reusing the frames of similar files.

    For a header that :class:`~.header.HeaderReader` read by comparison with
    an earlier file's (:attr:`FastHeader.base`), whose values the frame
    stage read are those of a reference file (the base itself, or an earlier
    file of the same layout whose frame was computed in full: the first file
    of each series that shares a layout with another series) but for values
    that change from file to file of a series (:data:`~._frames.PER_FILE_FIELDS`:
    instance number, position, times, rescale), the frame is that file's frame
    with those fields recomputed (:func:`~._frames.frame_like`); otherwise
    :func:`fast_frames` runs, noting the tags it reads. Either way the result
    is what :func:`fast_frames` gives (tests/test_dicom_stages.py).
    """

    __slots__ = ("_refs", "_traced")

    #: reference frames kept (newest first): a few per layout
    REFS = 2 * HeaderReader.LAYOUTS

    def __init__(self) -> None:
        #: (layout's header read in full, the reference header, its frame, the tags its
        #: frame stage read, the values of those tags that differ from the layout's header
        #: and do not change from file to file) of the last few files whose frames were
        #: computed in full, newest first; a tuple replaced whole (threads of one process may
        #: share this object)
        self._refs: tuple[tuple[FastHeader, FastHeader, Frame, frozenset[int], frozenset],
                          ...] = ()
        self._traced: dict[type, type] = {}

    @staticmethod
    def _signature(fh: FastHeader, reads: frozenset[int]) -> frozenset:
        """The values read by the frame stage that differ from the layout's header and are
        not per-file values (tag and raw bytes): two files of a layout with the same
        signature have the same values but for the per-file ones."""
        values = fh.values
        return frozenset((t, values.get(t)) for t in fh.changed & reads  # type: ignore[operator]
                         if t not in _PER_FILE_TAGS)

    def __call__(self, fh: FastHeader | None, path: Path, *, size: int | None = None,
                 dataset_type: type[FastDataset] = FastDataset) -> list[Frame] | None:
        if fh is None or fh.pixel_offset is None or fh.seen & FAST_DECLINE:
            return None
        base = fh.base
        if base is not None:
            for layout, ref_fh, frame, reads, signature in self._refs:
                if layout is not base or self._signature(fh, reads) != signature:
                    continue
                if fh.pixel_length is not None and (
                        fh.pixel_offset + fh.pixel_length
                        > (path.stat().st_size if size is None else size)):
                    break
                # the per-file values that may differ from the reference file's: those that
                # differ from the layout's header in either (recomputed from this file)
                differ = (fh.changed | (ref_fh.changed or frozenset())) & reads  # type: ignore[operator]
                try:  # (medlab's own converters: no pydicom warning to silence)
                    return [frame_like(frame, dataset_type(fh),
                                       [_PER_FILE_TAGS[t] for t in differ
                                        if t in _PER_FILE_TAGS], path)]
                except Exception:  # as fast_frames: the full reader explains it
                    return None
        traced = self._traced.get(dataset_type)
        if traced is None:
            traced = self._traced[dataset_type] = _tracing(dataset_type)
        ds = traced(fh)
        ds.reads = set()
        frames = _fast_frames(fh, path, size, ds)
        if (frames is not None and len(frames) == 1 and frames[0].index is None
                and frames[0].tile is None):
            # a plain header: the reference of the files like it (of its layout, with its
            # values but for the per-file ones)
            reads = frozenset(ds.reads)
            layout = fh if fh.base is None else fh.base
            ref = (layout, fh, frames[0], reads,
                   frozenset() if fh.base is None else self._signature(fh, reads))
            self._refs = (ref, *self._refs)[: self.REFS]
        return frames


def _tracing(dataset_type: type[FastDataset]) -> type[FastDataset]:
    """A subclass of ``dataset_type`` that notes the tags of the values read from it."""

    class Tracing(dataset_type):  # type: ignore[valid-type, misc]
        __slots__ = ("reads",)

        def get(self, key: Any, default: Any = None) -> Any:
            tag = (key[0] << 16 | key[1]) if isinstance(key, tuple) else _tag_for(key)
            if tag is not None:
                self.reads.add(tag)
            return super().get(key, default)

    return Tracing


def checked_frames(ds: Any, path: Path, truncated: list[str] | tuple[str, ...] = ()) -> list[Frame]:
    """The frames of a pydicom dataset (from :func:`~.header.read_header`), after the header checks.

    Raises
    ------
    NotAnImageError
        No image pixel data (SR, RTSTRUCT, a whole-slide image, ...).
    DicomReadError, ValueError
        A header the pixel reader would have to guess at, or incomplete pixel data.
    """
    with quiet_pydicom():
        check_elements(ds, path)
        check_header(ds, path, truncated)
        return frames_from_dataset(ds, path)


def file_frames(path: Path, *, headers: HeaderReader | None = None,
                frames: FastFrames | None = None) -> tuple[list[Frame], str | None]:
    """The frames of one file, or why it gives none (never raises for a bad file).

    For many files in a row (a folder, a series), pass one
    :class:`~.header.HeaderReader` of :data:`~.header.FAST_TAGS` as ``headers``
    and one :class:`FastFrames` as ``frames``: files that repeat an earlier
    file's header layout are then read by comparison with it. The result is
    the same either way.
    """
    # the fast reader opens only regular Part-10 files (never a FIFO or a device) and
    # gives None for anything else, which is then explained
    fh = headers.read(path) if headers is not None else read_fast_header(path, FAST_TAGS)
    if fh is None:
        problem = file_problem(path)
        if problem is not None:
            return [], problem
        if not looks_like_dicom(path):
            return [], not_dicom_reason(path)
    fast = (frames or fast_frames)(fh, path)
    if fast is not None:
        return fast, None
    truncated: list[str] = []
    ds = None
    try:
        ds, truncated = read_header(path)
        return checked_frames(ds, path, truncated), None
    except NotAnImageError as exc:
        return [], not_image_reason(exc, ds, path, truncated)
    except Exception as exc:  # a corrupt file must not stop the scan
        return [], unreadable_reason(exc, path)


# ------------------------------------------------------------------------------ records
_TUPLES = ("iop", "ipp", "pixel_spacing", "b_vector", "mosaic_normal")
#: the fields of a record: everything but the file (kept beside it) and the parsed header
_FIELDS = tuple(n for n in Frame.__slots__ if n not in ("path", "_header"))  # type: ignore[attr-defined]


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot store a {type(v).__name__} in a frame record")


def _tuples(v: Any) -> Any:
    """JSON lists back to the tuples they were (split keys nest them)."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def frame_record(f: Frame) -> str:
    """One frame as JSON text (all fields but the file path and the parsed header).

    :func:`frame_from_record` rebuilds an equal frame; floats keep every digit.
    """
    values = _FIELD_VALUES(f)
    scaling = f.scaling
    if scaling:  # the rare dict field: encoded whole
        out = dict(zip(_FIELDS, values, strict=True))
        if "lut" in scaling:
            first, table = scaling["lut"]
            table = np.asarray(table)
            out["scaling"] = {**scaling, "lut": [int(first), table.tolist(), table.dtype.str]}
        return json.dumps(out, default=_plain, allow_nan=True)
    # the text json.dumps gives for the dict of the fields, field by field: the frames of a
    # series share most field values (the same objects), whose text is kept from the last
    # frame (only immutable values: the same object always gives the same text)
    last_values, last_texts = _LAST_RECORD
    texts = [
        last if value is old and type(value) in _IMMUTABLE
        else json.dumps(value, default=_plain, allow_nan=True)
        for value, old, last in zip(values, last_values, last_texts, strict=True)
    ] if last_values else [json.dumps(v, default=_plain, allow_nan=True) for v in values]
    _LAST_RECORD[:] = [values, texts]
    return "{" + ", ".join([f"{key}: {text}" for key, text in zip(_KEYS, texts, strict=True)]) + "}"


_FIELD_VALUES = operator.attrgetter(*_FIELDS)
_KEYS = [json.dumps(name) for name in _FIELDS]
_IMMUTABLE = frozenset({str, int, float, bool, tuple, type(None)})
#: the field values of the last frame stored, and their JSON texts
_LAST_RECORD: list[Any] = [(), []]


def frame_from_record(path: str | Path, record: str) -> Frame:
    """The frame that :func:`frame_record` stored (its header is read again only if used)."""
    data = json.loads(record)
    missing = [n for n in _FIELDS if n not in data]
    if missing:
        raise ValueError(f"a frame record without {', '.join(missing)}; index the file again")
    for name in _TUPLES:
        if data[name] is not None:
            data[name] = tuple(data[name])
    data["split_key"] = _tuples(data["split_key"])
    scaling = data["scaling"]
    if scaling:
        if "lut" in scaling:
            first, table, dtype = scaling["lut"]
            scaling["lut"] = (first, np.asarray(table, dtype=np.dtype(dtype)))
        if "rwvm" in scaling:
            scaling["rwvm"] = tuple(scaling["rwvm"])
    for name in ("slope", "intercept"):  # never None in a Frame
        if not isinstance(data[name], (int, float)) or not math.isfinite(data[name]):
            raise ValueError(f"a frame record with {name} {data[name]!r}; index the file again")
    return Frame(path=Path(path), _header=None, **{n: data[n] for n in _FIELDS})
