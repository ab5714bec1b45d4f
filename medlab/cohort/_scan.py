"""Reading index rows from DICOM files: the work of one scan worker (headers only).

:func:`read_chunk` turns a list of files into plain tuples — instance rows in
the order of :data:`~medlab.cohort._schema.INSTANCE_COLUMNS`, frame rows
(:data:`~medlab.cohort._schema.FRAME_COLUMNS`, the geometry the series checks
use) and error rows
(:data:`~medlab.cohort._schema.ERROR_COLUMNS`) — so that it runs alike in
this process, in local worker processes or on a ``dask.distributed`` cluster.

Headers are read, checked and turned into frames by the loader's own stages
(:mod:`medlab.io.dicom.header` and :mod:`medlab.io.dicom.frames`): the fast
header reader when it accepts the file, pydicom otherwise; pixel data are
never read. So the index sees a series exactly as :func:`medlab.load` would
assemble it, and it stores each frame (:func:`~medlab.io.dicom.frames.frame_record`)
so that :meth:`Index.load_series` plans a series without reading its headers
again. Values convert with :mod:`medlab.io.dicom.values`. This module imports
neither pandas nor DuckDB.

The files of a series repeat their header but for a few values, and a scan
reads them one after the other: each process reads headers with one
:class:`~medlab.io.dicom.header.HeaderReader` (a header of the previous
file's layout is read by comparing bytes, naming the values that differ),
and builds the frames (:class:`~medlab.io.dicom.frames.FastFrames`) and the
instance row of such a file from the previous file's, recomputing only what
the differing values give. The rows are those of reading each file alone
(tests/test_cohort_scan_speed.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.tag import Tag

from ..io.dicom.frames import FastFrames, Frame, NotAnImageError, checked_frames, frame_record
from ..io.dicom.header import (
    FAST_TAGS,
    FastDataset,
    FastHeader,
    HeaderReader,
    claim_problem,
    file_problem,
    looks_like_dicom,
    not_dicom_reason,
    quiet_pydicom,
    read_header,
    transfer_syntax,
    unreadable_reason,
)
from ..io.dicom.values import (
    BINARY_VRS,
    combine_date_time,
    int32,
    parse_date,
    parse_datetime,
    pydicom_parts,
    split,
    to_float,
    to_floats,
    to_int,
    to_str,
)
from ._schema import FRAME_COLUMNS, INSTANCE_COLUMNS, Column

__all__ = ["parse_date", "parse_datetime", "read_batch", "read_chunk", "read_file"]

_RADIO_SEQ = 0x00540016  # RadiopharmaceuticalInformationSequence
_DIRECTORY_RECORDS = 0x00041220  # DirectoryRecordSequence: a DICOMDIR
_CHARSET = 0x00080005
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"
_LATIN1_SETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6"}
_BINARY = frozenset(vr.encode("ascii") for vr in BINARY_VRS)


def _to_ms_seconds(v: Any) -> float | None:
    f = to_float(v)
    return None if f is None else f / 1000.0


def _to_date(v: Any) -> dt.date | None:
    first = v[0] if isinstance(v, list) and v else v
    return parse_date(str(first).split("\\")[0]) if first else None


#: column kind -> converter (of decoded text or a list of values, :mod:`medlab.io.dicom.values`)
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "str": to_str, "int": to_int, "float": to_float, "floats": to_floats,
    "ms": _to_ms_seconds, "date": _to_date,
    # person names: empty trailing component groups dropped, as pydicom shows them
    "pn": lambda v: (to_str(v) or "").rstrip("=") or None,
}


def _kind(col: Column) -> str:
    if col.dtype == "VARCHAR":
        return "str"
    if col.dtype in ("INTEGER", "BIGINT"):
        return "int"
    if col.dtype == "DATE":
        return "date"
    if col.dtype == "DOUBLE[]":
        return "floats"
    return "ms" if col.description == "converted from ms" else "float"


#: (column index, tag, kind, sequence tag or None, value index or None, dictionary VR)
#: for the columns read from a DICOM keyword
_SPECS: list[tuple[int, int, str, int | None, int | None, bytes]] = []
#: tags read inside the first item of the Radiopharmaceutical Information Sequence
_RADIO_KEYWORDS = {"Radiopharmaceutical", "RadionuclideTotalDose", "RadionuclideHalfLife",
                   "RadiopharmaceuticalStartTime"}
for _i, _c in enumerate(INSTANCE_COLUMNS):
    if _c.keyword is None:
        continue
    _SPECS.append((
        _i, int(Tag(_c.keyword)),
        "pn" if dictionary_VR(Tag(_c.keyword)) == "PN" else _kind(_c),
        _RADIO_SEQ if _c.keyword in _RADIO_KEYWORDS else None,
        {"pixel_spacing_row_mm": 0, "pixel_spacing_col_mm": 1, "imager_pixel_spacing_row_mm": 0,
         "imager_pixel_spacing_col_mm": 1}.get(_c.name),
        dictionary_VR(Tag(_c.keyword)).split(" or ")[0].encode("ascii"),
    ))
_COL = {c.name: i for i, c in enumerate(INSTANCE_COLUMNS)}
_N_COLS = len(INSTANCE_COLUMNS)

_EXTRA_KEYWORDS = ("AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime", "ContentDate",
                   "ContentTime", "SpecificCharacterSet", "RadiopharmaceuticalStartDateTime",
                   "NumberOfFrames", "PixelRepresentation", "SOPClassUID")
_TOP_TAGS = frozenset({spec[1] for spec in _SPECS if spec[3] is None}
                      | {int(Tag(k)) for k in _EXTRA_KEYWORDS} | FAST_TAGS)
_ITEM_TAGS = frozenset({_RADIO_SEQ})
_START_DATETIME = int(Tag("RadiopharmaceuticalStartDateTime"))
_T_ACQ_DT, _T_ACQ_DATE, _T_ACQ_TIME, _T_CON_DATE, _T_CON_TIME = (
    int(Tag(k)) for k in ("AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime",
                          "ContentDate", "ContentTime"))


def _acquisition_datetime(text: Callable[[int], str | None]) -> dt.datetime | None:
    value = parse_datetime(text(_T_ACQ_DT))
    if value is None:
        value = combine_date_time(text(_T_ACQ_DATE), text(_T_ACQ_TIME))
    if value is None:
        value = combine_date_time(text(_T_CON_DATE), text(_T_CON_TIME))
    return value


# --------------------------------------------------------------- from the fast reader
#: tag -> [(column index, kind, value index, dictionary VR)], top level and in the PET item
_TOP_SPECS: dict[int, list[tuple[int, str, int | None, bytes]]] = {}
_RADIO_SPECS: dict[int, list[tuple[int, str, int | None, bytes]]] = {}
for _i, _tag, _kind, _seq, _index, _vr in _SPECS:
    (_RADIO_SPECS if _seq is not None else _TOP_SPECS).setdefault(_tag, []).append(
        (_i, _kind, _index, _vr))


def _fill_fast(row: list[Any], values: dict[int, tuple[bytes, bytes | None]],
               specs: dict[int, list[tuple[int, str, int | None, bytes]]], encoding: str) -> None:
    for tag, (value, vr) in values.items():
        targets = specs.get(tag)
        if targets is None:
            continue
        for i, kind, index, vr_default in targets:
            vr = vr or vr_default
            if vr in _BINARY or index is not None:
                parts = split(value, vr, encoding=encoding)
                if index is not None:
                    parts = parts[index:index + 1] if parts and len(parts) == 2 else None
                row[i] = _CONVERT[kind](parts)
            else:  # text: the converters take it as it is (the usual single value)
                row[i] = _CONVERT[kind](value.decode(encoding, "replace"))


#: converted values by (tag, raw value, encoding), shared by the files a process reads: the
#: files of a series repeat most of their values byte for byte, so most conversions are
#: looked up. Emptied when it grows past _MEMO_MAX entries (unique UIDs and positions).
_MEMO: dict[tuple, Any] = {}
_MEMO_MAX = 50_000


def _fill_fast_memo(row: list[Any], values: dict[int, tuple[bytes, bytes | None]],
                    specs: dict[int, list[tuple[int, str, int | None, bytes]]],
                    encoding: str) -> None:
    """What :func:`_fill_fast` does, with each tag's cells memoised in :data:`_MEMO`."""
    memo = _MEMO
    for tag, raw in values.items():
        targets = specs.get(tag)
        if targets is None:
            continue
        key = (tag, raw, encoding)
        cells = memo.get(key)
        if cells is None:
            scratch: list[Any] = [None] * _N_COLS
            _fill_fast(scratch, {tag: raw}, specs, encoding)
            cells = tuple((i, scratch[i]) for i, *_ in targets)
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[key] = cells
        for i, value in cells:
            row[i] = value


_MISSING = object()
_KEYWORD_TAGS: dict[str, int | None] = {}


class _MemoDataset(FastDataset):
    """A :class:`FastDataset` whose ``get`` results are memoised in :data:`_MEMO` by
    (keyword, raw value): the loader's frame records read ~40 values per file, most of
    them equal in every file of a series."""

    __slots__ = ()

    def get(self, key: str | tuple[int, int], default: Any = None) -> Any:
        if isinstance(key, tuple):
            tag: int | None = key[0] << 16 | key[1]
        else:
            tag = _KEYWORD_TAGS.get(key, _MISSING)  # type: ignore[arg-type]
            if tag is _MISSING:
                from pydicom.datadict import tag_for_keyword

                tag = _KEYWORD_TAGS[key] = tag_for_keyword(key)
        raw = self.fh.values.get(tag) if tag is not None else None
        if raw is None:
            return default
        memo_key = ("ds", key, raw)
        value = _MEMO.get(memo_key, _MISSING)
        if value is _MISSING:
            value = FastDataset.get(self, key, _MISSING)
            if len(_MEMO) >= _MEMO_MAX:
                _MEMO.clear()
            _MEMO[memo_key] = value
        if value is _MISSING:
            return default
        return list(value) if isinstance(value, list) else value  # the memo's copy stays intact


#: per header layout (the header read in full, FastHeader.base None), the last file of that
#: layout whose row was made here, and its row before the file's own location: the row of a
#: header of the same layout differs from it only in the cells of the values that differ
#: between the two files (those of FastHeader.changed of either). Newest first, at most
#: HeaderReader.LAYOUTS; one tuple (layout, header, row, encoding) per layout, the whole
#: list replaced at once (threads of a dask worker may share it).
_ROW_REFS: list[tuple] = [()]
_ACQ_TAGS = frozenset({_T_ACQ_DT, _T_ACQ_DATE, _T_ACQ_TIME, _T_CON_DATE, _T_CON_TIME})


def _keep_row(layout: FastHeader, fh: FastHeader, row: list[Any], encoding: str) -> None:
    refs = _ROW_REFS[0]
    _ROW_REFS[0] = ((layout, fh, tuple(row), encoding),
                    *(r for r in refs if r[0] is not layout))[: HeaderReader.LAYOUTS]


def _row_from_fast(fh: FastHeader, path: str, size: int, mtime_ns: int) -> list[Any] | None:
    """An instance row from the fast reader's values; None when pydicom must do it."""
    values = fh.values
    layout = fh.base
    if layout is not None and _CHARSET not in fh.changed:  # type: ignore[operator]
        ref = next((r for r in _ROW_REFS[0] if r[0] is layout), None)
        if ref is not None:
            _, ref_fh, ref_row, encoding = ref
            row = list(ref_row)
            ref_values = ref_fh.values
            # the values that may differ between the two files: where either differs from
            # the layout's header (values of one file, mostly: not memoised)
            differ = [t for t in (fh.changed | ref_fh.changed if ref_fh.changed  # type: ignore[operator]
                                  else fh.changed)
                      if values.get(t) != ref_values.get(t)]
            if differ:
                if any(t not in values for t in differ if t in _TOP_SPECS):
                    return None  # (a layout has the same tags: never here)
                _fill_fast(row, {t: values[t] for t in differ if t in _TOP_SPECS}, _TOP_SPECS,
                           encoding)
                if not _ACQ_TAGS.isdisjoint(differ):
                    row[_COL["acquisition_datetime"]] = _acquisition_datetime(
                        lambda tag: _text(values, tag))
            if row[_COL["n_frames"]] is None and fh.pixel_offset is not None:
                row[_COL["n_frames"]] = 1
            _keep_row(layout, fh, row, encoding)
            _fill_location(row, path, size, mtime_ns)
            return row
    charset = values.get(_CHARSET)
    encoding = "latin-1"
    if charset is not None:
        cs = charset[0].decode("ascii", "replace").strip("\x00 ")
        if cs == "ISO_IR 192":
            encoding = "utf-8"
        elif cs not in _LATIN1_SETS:
            return None  # other character sets: pydicom decodes them
    if _RADIO_SEQ in fh.seen and _RADIO_SEQ not in fh.items:
        return None  # the sequence is encoded as UN: pydicom reads it
    radio = fh.items.get(_RADIO_SEQ, {})
    row: list[Any] = [None] * _N_COLS
    _fill_fast_memo(row, values, _TOP_SPECS, encoding)
    if radio:
        _fill_fast(row, radio, _RADIO_SPECS, encoding)

    row[_COL["acquisition_datetime"]] = _acquisition_datetime(lambda tag: _text(values, tag))
    if row[_COL["injection_time"]] is None and _START_DATETIME in radio:
        value, vr = radio[_START_DATETIME]
        row[_COL["injection_time"]] = to_str(split(value, vr or b"DT", encoding=encoding))
    row[_COL["transfer_syntax"]] = fh.transfer_syntax
    if row[_COL["n_frames"]] is None and fh.pixel_offset is not None:
        row[_COL["n_frames"]] = 1
    if fh.base is None:
        _keep_row(fh, fh, row, encoding)
    elif _CHARSET not in fh.changed:  # type: ignore[operator]
        _keep_row(fh.base, fh, row, encoding)  # (its layout's reference had been dropped)
    _fill_location(row, path, size, mtime_ns)
    return row


def _text(values: dict[int, tuple[bytes, bytes | None]], tag: int) -> str | None:
    raw = values.get(tag)
    return None if raw is None else raw[0].decode("latin-1").strip("\x00 ") or None


def _fill_location(row: list[Any], path: str, size: int, mtime_ns: int) -> None:
    row[_COL["path"]] = path
    row[_COL["source"]] = "local"
    row[_COL["file_size"]] = size
    row[_COL["mtime_ns"]] = mtime_ns


# ------------------------------------------------------------------- from pydicom
def _row_from_dataset(ds: Any, path: str, size: int, mtime_ns: int) -> list[Any]:
    """An instance row from a pydicom dataset."""
    from pydicom.tag import Tag as _Tag

    radio = None
    seq = ds.get(_Tag(_RADIO_SEQ))
    if seq is not None and getattr(seq, "VR", None) == "SQ" and seq.value:
        radio = seq.value[0]
    row: list[Any] = [None] * _N_COLS
    for i, tag, kind, in_seq, index, _vr in _SPECS:
        source = radio if in_seq is not None else ds
        if source is None:
            continue
        elem = source.get(_Tag(tag))
        if elem is None:
            continue
        parts = pydicom_parts(elem.value)
        if index is not None:
            parts = parts[index:index + 1] if parts and len(parts) == 2 else None
        row[i] = _CONVERT[kind](parts)

    def text(tag: int) -> str | None:
        elem = ds.get(_Tag(tag))
        return None if elem is None or elem.value in (None, "") else str(elem.value).strip()

    row[_COL["acquisition_datetime"]] = _acquisition_datetime(text)
    if row[_COL["injection_time"]] is None and radio is not None:
        elem = radio.get(_Tag(_START_DATETIME))
        if elem is not None:
            row[_COL["injection_time"]] = to_str(pydicom_parts(elem.value))
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:
        ts = transfer_syntax(ds)
    row[_COL["transfer_syntax"]] = str(ts)
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if row[_COL["n_frames"]] is None and has_pixels:
        row[_COL["n_frames"]] = 1
    _fill_location(row, path, size, mtime_ns)
    return row


# ------------------------------------------------------------------------ frames
#: the last split key and its JSON text (the frames of a series share their key object)
_KEY_TEXT: list[Any] = [None, None]


def _key_text(key: tuple) -> str:
    last, text = _KEY_TEXT  # one read of the pair (threads may share it)
    if key is not last:
        text = json.dumps(key, default=str)
        _KEY_TEXT[:] = [key, text]
    return text


def _frame_rows(frames: Iterable[Frame], path: str, series_uid: str | None) -> list[tuple]:
    out = []
    for f in frames:
        out.append((
            path, series_uid, f.series_number, _key_text(f.split_key),
            int32(f.index), int32(f.tile),
            None if f.ipp is None else [float(v) for v in f.ipp],
            None if f.iop is None else [float(v) for v in f.iop],
            f.temporal, f.trigger_ms, f.time_s, int32(f.acquisition), int32(f.instance), None,
            frame_record(f),
        ))
    return out


def _problem_row(path: str, series_uid: str | None, series_number: Any, problem: str) -> tuple:
    return (path, series_uid, str(series_number or "").strip(), None, None, None, None, None,
            None, None, None, None, None, problem, None)


# -------------------------------------------------------------------------- files
#: Pixel Data, Float Pixel Data, Double Float Pixel Data
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
#: a dataset with none of these is not an object that can be indexed
#: where the problem is in a frame row (FRAME_COLUMNS)
_PROBLEM = 13
_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                "Modality", "PixelData", "FloatPixelData", "DoubleFloatPixelData")


#: this process's header reader and frame stage: the files of a series share their header's
#: layout, so most are read by comparing bytes with the previous file's and their frames are
#: that file's with the per-file values changed (the results are those of the full reads)
_HEADERS = HeaderReader(_TOP_TAGS, items=_ITEM_TAGS)
_FRAMES = FastFrames()


def read_file(path: str, size: int, mtime_ns: int) -> tuple[list | None, list[tuple], tuple | None]:
    """Index one file: (instance row or None, frame rows, error row or None). Never raises."""
    try:
        row, frames, error = _read_file(path, size, mtime_ns)
        if row is not None and frames and frames[0][_PROBLEM] is None:
            problem = claim_problem(
                os.path.basename(path), rows=row[_COL["rows"]] or 0, columns=row[_COL["columns"]] or 0,
                n_frames=row[_COL["n_frames"]] or 1, samples=row[_COL["samples_per_pixel"]] or 1,
                bits_allocated=row[_COL["bits_allocated"]] or 8,
                transfer_syntax=row[_COL["transfer_syntax"]] or "", file_size=size)
            if problem:  # a header the loader refuses before allocating
                frames = [_problem_row(path, row[_COL["series_uid"]],
                                       row[_COL["series_number"]], problem)]
        return row, frames, error
    except Exception as exc:  # a file must never stop a scan
        return None, [], (path, size, mtime_ns, unreadable_reason(exc, Path(path)))


def _read_file(path: str, size: int, mtime_ns: int) -> tuple[list | None, list[tuple], tuple | None]:
    fh = _HEADERS.read(path)  # a regular file, or None (special files are never opened)
    if fh is None:
        problem = file_problem(path)
        if problem is not None:
            return None, [], (path, size, mtime_ns, problem)
    row = fast = None
    if fh is not None:
        if _DIRECTORY_RECORDS in fh.seen:
            return None, [], (path, size, mtime_ns, _dicomdir_reason(path))
        row = _row_from_fast(fh, path, size, mtime_ns)
        # the loader's fast path (None: the full reader explains the file); values read
        # through a memo, since most are equal in every file of a series
        fast = _FRAMES(fh, Path(path), size=size, dataset_type=_MemoDataset)
        if fast is not None and row is not None:
            return row, _frame_rows(fast, path, row[_COL["series_uid"]]), None
        if row is not None and fh.pixel_offset is None and not fh.seen & _PIXEL_TAGS:
            return row, [], None  # no pixel data: not an image (SR, RTSTRUCT, ...)
    p = Path(path)
    if fh is None and not looks_like_dicom(p):
        return None, [], (path, size, mtime_ns, not_dicom_reason(p))
    try:
        ds, truncated = read_header(p)
    except Exception as exc:
        reason = unreadable_reason(exc, p)
        if row is not None:  # the header is indexed; the loader cannot read the file
            return row, [_problem_row(path, row[_COL["series_uid"]],
                                      row[_COL["series_number"]], reason)], None
        return None, [], (path, size, mtime_ns, reason)
    with quiet_pydicom():
        meta = getattr(ds, "file_meta", None)
        sop = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
        if sop == _DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
            return None, [], (path, size, mtime_ns, _dicomdir_reason(path))
        if row is None and not any(k in ds for k in _IDENTIFYING):
            return None, [], (path, size, mtime_ns, (
                f"{p.name}: no DICOM attributes identify it (no SOP Class or Instance UID, no "
                "Study or Series UID, no Modality, no pixel data); the file is empty or cut "
                "short after its header. Get the complete file from its source"))
        if row is None:
            row = _row_from_dataset(ds, path, size, mtime_ns)
        series_uid = row[_COL["series_uid"]]
        if fast is not None:  # the row needed pydicom (its character set), the frames did not
            return row, _frame_rows(fast, path, series_uid), None
        try:
            frames = checked_frames(ds, p, truncated)
        except NotAnImageError:
            return row, [], None
        except Exception as exc:
            reason = str(exc) if str(exc).startswith(f"{p.name}:") else unreadable_reason(exc, p)
            return row, [_problem_row(path, series_uid, ds.get("SeriesNumber"), reason)], None
    return row, _frame_rows(frames, path, series_uid), None


def _dicomdir_reason(path: str) -> str:
    return (
        f"{Path(path).name}: a DICOMDIR (index of a DICOM media folder), not an image or "
        "object of a series; the files it lists are indexed from their own files"
    )


def read_chunk(items: list[tuple[str, int, int]]) -> dict[str, list]:
    """Index a list of ``(path, size, mtime_ns)``: instance, frame and error rows.

    The function a scan runs in worker processes or on a dask cluster; it
    returns plain lists of tuples (cheap to send back) and never raises for
    a bad file.
    """
    instances: list[tuple] = []
    frames: list[tuple] = []
    errors: list[tuple] = []
    with quiet_pydicom():
        for path, size, mtime_ns in items:
            row, frame_rows, error = read_file(path, size, mtime_ns)
            if row is not None:
                instances.append(tuple(row))
            frames.extend(frame_rows)
            if error is not None:
                errors.append(error)
    return {"instances": instances, "frames": frames, "errors": errors}



def read_batch(items: list[tuple[str, int, int]]) -> dict[str, Any]:
    """:func:`read_chunk`, with the rows as Arrow tables, built where they are read.

    The work of a scan's worker process or dask task: converting the rows to
    the index's Arrow schema there keeps it off the process that writes the
    index, and an Arrow table travels back as a few buffers instead of
    thousands of Python objects. Returns ``instances`` and ``frames`` (Arrow
    tables of :data:`INSTANCE_COLUMNS` and :data:`FRAME_COLUMNS`), ``inputs``
    (the instance columns the series checks read, ``_INSTANCE_INPUT``, series
    UID first, as tuples), ``geometry`` (the frame rows without the stored
    frame record: the columns the series checks read) and ``errors`` (tuples).
    """
    from ._store import _INSTANCE_AT, _INSTANCE_INPUT, _arrow_table

    out: dict[str, Any] = read_chunk(items)
    rows, frames = out["instances"], out["frames"]
    at = [_INSTANCE_AT[c] for c in _INSTANCE_INPUT]
    n_geometry = len(FRAME_COLUMNS) - 1  # all but frame_record, the last
    out["inputs"] = [tuple(r[i] for i in at) for r in rows]
    out["geometry"] = [f[:n_geometry] for f in frames]
    out["instances"] = _arrow_table(INSTANCE_COLUMNS, rows)
    out["frames"] = _arrow_table(FRAME_COLUMNS, frames)
    return out
