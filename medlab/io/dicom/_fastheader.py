"""A minimal DICOM header reader for the common case, ~10x faster than pydicom.

It walks the top-level elements of a little-endian Part-10 file (explicit or
implicit VR, uncompressed or encapsulated pixel data), keeps the raw bytes of
the tags asked for, skips everything else (sequences included, defined or
undefined length) and stops at Pixel Data, recording its file offset. For a
few named sequences (``items=``) it keeps the top-level values of the first
item (e.g. the PET Radiopharmaceutical Information Sequence). It returns
None for anything else (no preamble, big endian, deflate, gzip, malformed)
so the caller falls back to pydicom. Tested against pydicom on every file of
the shared datasets (tests/test_fastheader.py).

:class:`HeaderReader` reads many files in a row (a scan): the header of a file
whose bytes differ from the last walked file's only inside element values
(the files of one series) is read by comparing the bytes, without walking
its elements, and gives the same result.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from ._files import open_regular, read_head
from .values import pydicom_like, split, to_float, to_floats, to_str

__all__ = ["FastDataset", "FastHeader", "HeaderReader", "read_fast_header", "PIXEL_DATA"]

PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
#: the value representations with a 2-byte length in explicit VR (any other VR makes the
#: reader decline the file, so that pydicom explains it)
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                        b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                        b"US"})
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_LE_SYNTAXES = {
    "1.2.840.10008.1.2": True,  # implicit VR little endian
    "1.2.840.10008.1.2.1": False,  # explicit VR little endian
}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
_CHUNK = 64 * 1024


@dataclass(slots=True)
class FastHeader:
    """Raw values of the tags asked for, and where the pixel data are."""

    values: dict[int, tuple[bytes, bytes | None]]  # tag -> (raw bytes, VR or None if implicit)
    seen: set[int]  # every top-level tag met before Pixel Data
    transfer_syntax: str
    implicit: bool
    pixel_offset: int | None  # file offset of the Pixel Data value
    pixel_length: int | None  # its length (None: undefined = encapsulated)
    pixel_vr: bytes | None
    #: sequence tag -> the top-level values of its first item (for the ``items`` asked for)
    items: dict[int, dict[int, tuple[bytes, bytes | None]]] = field(default_factory=dict)
    #: for a header read by :class:`HeaderReader` by comparison with an earlier file of the
    #: same byte layout: that file's header, and the kept tags whose values differ from it
    #: (None for a header read by walking its elements)
    base: FastHeader | None = None
    changed: frozenset[int] | None = None

    # typed accessors: the one converter of each kind (medlab.io.dicom.values)
    def string(self, tag: int) -> str | None:
        """A text value, stripped of padding; None when absent or empty."""
        v = self.values.get(tag)
        return None if v is None else to_str(v[0].decode("latin-1"))

    def strings(self, tag: int) -> list[str] | None:
        v = self.values.get(tag)
        return None if v is None else split(v[0])

    def number(self, tag: int) -> float | None:
        """A DS/IS value (first of several) as float; None when absent or invalid."""
        return to_float(self.strings(tag))

    def numbers(self, tag: int) -> list[float] | None:
        return to_floats(self.strings(tag))

    def us(self, tag: int) -> int | None:
        """An unsigned short (US) value."""
        v = self.values.get(tag)
        values = None if v is None else split(v[0], "US")
        return values[0] if values else None


class _Reader:
    __slots__ = ("buf", "f", "pos", "size", "start")

    def __init__(self, f: Any) -> None:
        self.f = f
        # a length from the file is checked against the file's size before anything is
        # read: a corrupt length (e.g. 1.6e9) must not make read() allocate that much
        self.size = os.fstat(f.fileno()).st_size
        self.buf = f.read(_CHUNK)
        self.start = 0  # file offset of buf[0]
        self.pos = 0  # file offset of the cursor

    def _refill(self, n: int) -> None:
        """Keep the buffer from the cursor on and read so that ``n`` bytes follow it."""
        keep = self.buf[self.pos - self.start :]
        want = min(max(_CHUNK, n - len(keep)), max(self.size - self.pos - len(keep), 0))
        self.buf = keep + self.f.read(want)
        self.start = self.pos

    def available(self, n: int) -> int:
        """Bytes after the cursor, reading more if fewer than ``n`` are buffered."""
        have = len(self.buf) - (self.pos - self.start)
        if have < n:
            self._refill(n)
            have = len(self.buf)
        return have

    def need(self, n: int) -> memoryview | bytes:
        end = self.pos + n
        if end > self.size:
            raise EOFError
        if end - self.start > len(self.buf):
            self._refill(n)
            if end - self.start > len(self.buf):
                raise EOFError
        out = self.buf[self.pos - self.start : end - self.start]
        self.pos = end
        return out

    def element(self, implicit: bool, *, at_end: Any = EOFError) -> tuple[int, int, bytes | None, int]:
        """The next element header: (group, element, VR or None, value length).

        Item and delimiter tags (group FFFE) and implicit-VR elements (outside
        the file meta group) have no VR, only a 4-byte length. Returns
        ``at_end`` when fewer than 4 bytes are left (the file ends cleanly),
        unless it is EOFError.
        """
        off = self.pos - self.start
        if len(self.buf) - off < 12:
            self._refill(12)
            off = 0
        buf = self.buf
        avail = len(buf) - off
        if avail < 8:
            if avail < 4 and at_end is not EOFError:
                return at_end
            raise EOFError
        g, e = _TAG.unpack_from(buf, off)
        if g == 0xFFFE or (implicit and g != 0x0002):
            self.pos += 8
            return g, e, None, _U32.unpack_from(buf, off + 4)[0]
        vr = buf[off + 4 : off + 6]
        if vr in _LONG_VRS:
            if avail < 12:
                raise EOFError
            self.pos += 12
            return g, e, vr, _U32.unpack_from(buf, off + 8)[0]
        if vr not in _SHORT_VRS:
            raise ValueError("not explicit VR")
        self.pos += 8
        return g, e, vr, _U16.unpack_from(buf, off + 6)[0]

    def skip(self, n: int) -> None:
        end = self.pos + n
        if end - self.start > len(self.buf):
            self.f.seek(end)
            self.buf = self.f.read(_CHUNK)
            self.start = end
            if not self.buf and n:
                # skipping to exactly the end of the file is fine; beyond is not
                self.f.seek(0, 2)
                if end > self.f.tell():
                    raise EOFError
        self.pos = end


def _skip_undefined_sequence(r: _Reader, implicit: bool) -> None:
    """Skip items until the sequence delimiter."""
    unpack_tag, unpack_u32 = _TAG.unpack_from, _U32.unpack_from
    while True:
        off = r.pos - r.start
        if len(r.buf) - off >= 8:  # an item or delimiter head (8 bytes), buffered
            g, e = unpack_tag(r.buf, off)
            length = unpack_u32(r.buf, off + 4)[0]
            r.pos += 8
        else:
            g, e, _, length = r.element(True)
        tag = (g << 16) | e
        if tag == _SEQ_END:
            return
        if tag != _ITEM:
            raise ValueError("malformed sequence")
        if length != _UNDEFINED:
            r.skip(length)
        else:
            _skip_dataset(r, implicit, until=_ITEM_END)


def _skip_dataset(r: _Reader, implicit: bool, *, until: int) -> None:
    # this loop runs for every element of every sequence item: the cursor lives in locals
    # (buf, start, pos) and goes back to the reader before any call that moves it
    unpack_head, unpack_u32 = _HEAD.unpack_from, _U32.unpack_from
    short_codes, long_codes, vr_of = _SHORT_CODES, _LONG_CODES, _VR_OF
    buf, start, pos = r.buf, r.start, r.pos
    n = len(buf)
    while True:
        off = pos - start
        if n - off >= 12:  # _Reader.element inlined
            g, e, code, length = unpack_head(buf, off)
            if g == 0xFFFE or (implicit and g != 0x0002):
                vr = None
                length = unpack_u32(buf, off + 4)[0]
                pos += 8
            elif code in long_codes:
                vr = vr_of[code]
                length = unpack_u32(buf, off + 8)[0]
                pos += 12
            elif code in short_codes:
                vr = vr_of[code]
                pos += 8
            else:
                raise ValueError("not explicit VR")
        else:
            r.pos = pos
            g, e, vr, length = r.element(implicit)
            buf, start, pos = r.buf, r.start, r.pos
            n = len(buf)
        tag = (g << 16) | e
        if tag == until:
            r.pos = pos
            return
        if g == 0xFFFE:
            raise ValueError("malformed item")
        if length == _UNDEFINED:
            r.pos = pos
            _skip_undefined_sequence(r, implicit or vr == b"UN")
            buf, start, pos = r.buf, r.start, r.pos
            n = len(buf)
        elif pos + length - start <= n:
            pos += length
        else:
            r.pos = pos
            r.skip(length)
            buf, start, pos = r.buf, r.start, r.pos
            n = len(buf)


#: values longer than this inside a kept sequence item are skipped (icons, blobs)
_ITEM_VALUE_MAX = 64 * 1024


def _first_item(r: _Reader, implicit: bool, length: int) -> dict[int, tuple[bytes, bytes | None]]:
    """The top-level values of a sequence's first item; skip the other items."""
    end = None if length == _UNDEFINED else r.pos + length
    first: dict[int, tuple[bytes, bytes | None]] | None = None
    while end is None or r.pos < end:
        g, e, _, item_length = r.element(True)
        tag = (g << 16) | e
        if tag == _SEQ_END:
            break
        if tag != _ITEM:
            raise ValueError("malformed sequence")
        if first is None:
            first = _read_item(r, implicit, item_length)
        elif item_length == _UNDEFINED:
            _skip_dataset(r, implicit, until=_ITEM_END)
        else:
            r.skip(item_length)
    if end is not None and r.pos != end:
        raise ValueError("sequence items overrun the sequence length")
    return first or {}


def _read_item(r: _Reader, implicit: bool, length: int) -> dict[int, tuple[bytes, bytes | None]]:
    out: dict[int, tuple[bytes, bytes | None]] = {}
    end = None if length == _UNDEFINED else r.pos + length
    while end is None or r.pos < end:
        g, e, vr, value_length = r.element(implicit)
        tag = (g << 16) | e
        if tag == _ITEM_END:
            break
        if g == 0xFFFE:
            raise ValueError("malformed item")
        if value_length == _UNDEFINED:
            _skip_undefined_sequence(r, implicit or vr == b"UN")
        elif vr == b"SQ" or value_length > _ITEM_VALUE_MAX:
            r.skip(value_length)
        else:
            out[tag] = (bytes(r.need(value_length)), vr)
    if end is not None and r.pos != end:
        raise ValueError("item elements overrun the item length")
    return out


#: an explicit VR element head: group, element, VR (as a little-endian 16-bit code) and
#: the 2-byte length, in one unpack
_HEAD = struct.Struct("<HHHH")
_VR_OF = {_U16.unpack(vr)[0]: vr for vr in _SHORT_VRS | _LONG_VRS}
_SHORT_CODES = frozenset(_U16.unpack(vr)[0] for vr in _SHORT_VRS)
_LONG_CODES = frozenset(_U16.unpack(vr)[0] for vr in _LONG_VRS)


def _top_level(r: _Reader, tags: frozenset[int] | set[int], items: frozenset[int] | set[int],
               ts: str, implicit: bool, spans: list[tuple[int, int, int]] | None = None
               ) -> FastHeader:
    """Walk the top-level elements after the file meta group (the body of read_fast_header).

    The loop runs once per element of every file a scan reads, so the cursor
    lives in locals (``buf``, ``start``, ``pos``) and the reader is only called
    to refill its buffer, to skip beyond it, and for sequences.

    ``spans``, when given, receives ``(start, end, tag)`` for the value of every
    element of defined length that is not a kept sequence (``tag`` -1 for the
    values skipped): the bytes that may differ in a file of the same layout
    (:class:`HeaderReader`).
    """
    values: dict[int, tuple[bytes, bytes | None]] = {}
    kept_items: dict[int, dict[int, tuple[bytes, bytes | None]]] = {}
    seen: set[int] = set()
    seen_add = seen.add
    unpack_head, unpack_u32 = _HEAD.unpack_from, _U32.unpack_from
    short_codes, long_codes, vr_of = _SHORT_CODES, _LONG_CODES, _VR_OF
    undefined, pixel_data = _UNDEFINED, PIXEL_DATA
    buf, start, pos = r.buf, r.start, r.pos
    n = len(buf)
    while True:
        off = pos - start
        if n - off >= 12:
            g, e, code, length = unpack_head(buf, off)
            if g == 0xFFFE:
                raise ValueError("item tag at the top level")
            if implicit and g != 0x0002:
                vr = None
                length = unpack_u32(buf, off + 4)[0]
                pos += 8
            elif code in short_codes:
                vr = vr_of[code]
                pos += 8
            elif code in long_codes:
                vr = vr_of[code]
                length = unpack_u32(buf, off + 8)[0]
                pos += 12
            else:
                raise ValueError("not explicit VR")
        else:
            r.pos = pos
            head = r.element(implicit, at_end=None)
            if head is None:  # the file ends without pixel data
                return FastHeader(values, seen, ts, implicit, None, None, None, kept_items)
            g, e, vr, length = head
            if g == 0xFFFE:
                raise ValueError("item tag at the top level")
            buf, start, pos = r.buf, r.start, r.pos
            n = len(buf)
        tag = (g << 16) | e
        seen_add(tag)
        if tag == pixel_data:
            return FastHeader(values, seen, ts, implicit, pos,
                              None if length == undefined else length, vr, kept_items)
        if length == undefined or tag in items:
            r.pos = pos
            if tag in items and vr in (b"SQ", None):
                kept_items[tag] = _first_item(r, implicit, length)
            elif length == _UNDEFINED:  # a sequence (UN: encoded as implicit VR)
                _skip_undefined_sequence(r, implicit or vr == b"UN")
            elif tag in tags:
                if spans is not None:
                    spans.append((pos, pos + length, tag))
                values[tag] = (bytes(r.need(length)), vr)
            else:
                r.skip(length)
            buf, start, pos = r.buf, r.start, r.pos
            n = len(buf)
        elif spans is not None:  # the same as the two branches below, recording the spans
            r.pos = pos
            if tag in tags:
                spans.append((pos, pos + length, tag))
                values[tag] = (bytes(r.need(length)), vr)
            else:
                spans.append((pos, pos + length, -1))
                r.skip(length)
            buf, start, pos = r.buf, r.start, r.pos
            n = len(buf)
        elif tag in tags:
            end = pos + length
            if end - start <= n:  # buf is bytes: the slice is the value
                values[tag] = (buf[pos - start : end - start], vr)
                pos = end
            else:
                r.pos = pos
                values[tag] = (bytes(r.need(length)), vr)
                buf, start, pos = r.buf, r.start, r.pos
                n = len(buf)
        elif pos + length - start <= n:
            pos += length  # skip within the buffer
        else:
            r.pos = pos
            r.skip(length)
            buf, start, pos = r.buf, r.start, r.pos
            n = len(buf)
        if g > 0x7FE0:
            return FastHeader(values, seen, ts, implicit, None, None, None, kept_items)


def read_fast_header(
    path: Any,
    tags: frozenset[int] | set[int],
    *,
    items: frozenset[int] | set[int] = frozenset(),
) -> FastHeader | None:
    """Read the values of ``tags`` (top level only) and locate Pixel Data.

    ``items`` names top-level sequences whose first item's top-level values
    are kept in :attr:`FastHeader.items` (a sequence encoded as UN is not
    read: it is missing from ``items`` although its tag is in ``seen``, and
    the caller should then use pydicom).

    Returns None when the file is not a little-endian Part-10 file this
    reader handles; the caller should then use pydicom.
    """
    try:
        with open_regular(path) as f:  # never a FIFO or device: they could block
            return _read_open(f, tags, items, None)
    except (OSError, EOFError, ValueError, struct.error, UnicodeDecodeError):
        return None


def _read_open(f: Any, tags: frozenset[int] | set[int], items: frozenset[int] | set[int],
               spans: list[tuple[int, int, int]] | None) -> FastHeader | None:
    """The body of :func:`read_fast_header`, on a file opened at its start (``spans``: see
    :func:`_top_level`; the file meta elements but the transfer syntax go there too)."""
    r = _Reader(f)
    if len(r.buf) < 132 or r.buf[128:132] != b"DICM":
        return None
    if spans is not None:
        spans.append((0, 128, -1))  # the preamble
    r.pos = 132
    ts = None
    # file meta: always explicit VR little endian
    buf = r.buf  # the first read holds the file meta group unless it is huge
    while True:
        off = r.pos  # r.start is 0 while buf is the first read
        if buf is r.buf and len(buf) - off >= 12 and buf[off : off + 2] == b"\x02\x00":
            _, e, code, length = _HEAD.unpack_from(buf, off)
            if code in _SHORT_CODES:
                off += 8
            elif code in _LONG_CODES:
                length = _U32.unpack_from(buf, off + 8)[0]
                off += 12
            else:
                raise ValueError("not explicit VR")
            if length == _UNDEFINED:
                return None
            if off + length <= len(buf):
                r.pos = off + length
                if e == 0x0010:
                    ts = buf[off : off + length].decode("ascii", "replace").strip("\x00 ")
                elif spans is not None:
                    spans.append((off, off + length, -1))
                continue
            r.pos = off - (8 if code in _SHORT_CODES else 12)
        if r.available(4) < 4:
            raise EOFError
        if _TAG.unpack_from(r.buf, r.pos - r.start)[0] != 0x0002:
            break
        _, e, _, length = r.element(False)
        if length == _UNDEFINED:
            return None
        if spans is not None and e != 0x0010:
            spans.append((r.pos, r.pos + length, -1))
        value = bytes(r.need(length))
        if e == 0x0010:
            ts = value.decode("ascii", "replace").strip("\x00 ")
    encapsulated = ts is not None and (ts.startswith("1.2.840.10008.1.2.4")
                                       or ts == "1.2.840.10008.1.2.5")  # + RLE
    if ts not in _LE_SYNTAXES and not encapsulated:
        return None  # big endian, deflate, or unknown: pydicom handles these
    if encapsulated:
        implicit = False  # encapsulated syntaxes are explicit VR little endian
    else:
        implicit = _LE_SYNTAXES[ts]  # type: ignore[index]
    return _top_level(r, tags, items, ts, implicit, spans)  # type: ignore[arg-type]


class _Layout:
    """The byte layout of one file's header, up to its Pixel Data value: the bytes, and
    which element value (if any) each byte belongs to."""

    __slots__ = ("fh", "owner", "raw", "size", "span_of", "span_tags", "tail")

    def __init__(self, fh: FastHeader, raw: bytes, spans: list[tuple[int, int, int]]) -> None:
        import numpy as np

        self.fh = fh
        self.size = len(raw)
        #: the last bytes: the Pixel Data element's head (tag, VR, length), checked first
        self.tail = raw[-8:] if fh.implicit else raw[-12:]
        self.raw = np.frombuffer(raw, np.uint8)
        #: per byte: the index in ``spans`` of the value it belongs to, -1 where the walk
        #: reads it (element heads, sequences kept or walked, the transfer syntax)
        self.owner = np.full(len(raw), -1, np.int32)
        for i, (a, b, _) in enumerate(spans):
            self.owner[a:b] = i
        self.span_tags = [tag for _, _, tag in spans]
        #: kept tag -> its value's span (the last one, as the walk keeps the last value)
        self.span_of = {tag: (a, b) for a, b, tag in spans if tag >= 0}

    def match(self, data: bytes) -> FastHeader | None:
        """The header of a file whose first bytes are ``data``, if its layout is this one."""
        import numpy as np

        if len(data) != self.size or not data.endswith(self.tail):
            return None
        owners = self.owner[np.frombuffer(data, np.uint8) != self.raw]
        fh = self.fh
        values = dict(fh.values)
        changed: frozenset[int] = frozenset()
        if len(owners):
            if owners.min() < 0:
                return None  # a byte that the walk reads differs: another layout
            tags = self.span_tags
            changed = frozenset([tags[i] for i in set(owners.tolist())]) - {-1}
            for tag in changed:
                a, b = self.span_of[tag]
                values[tag] = (data[a:b], values[tag][1])
        return FastHeader(values, set(fh.seen), fh.transfer_syntax, fh.implicit,
                          fh.pixel_offset, fh.pixel_length, fh.pixel_vr, fh.items,
                          base=fh, changed=changed)


class HeaderReader:
    """:func:`read_fast_header` for many files in a row, faster when they share a layout.

    The files of a series repeat their header byte for byte but for a few
    values (SOP Instance UID, instance number, position, ...). The reader
    keeps the layouts of the last few headers it walked (:attr:`LAYOUTS`:
    UIDs of different lengths give a series several layouts, and a folder
    may interleave series). A file's first bytes are compared with each
    layout's, most recently used first: if only bytes inside element values
    differ, the elements are where they were, and only the kept values that
    differ are taken from the new file (:attr:`FastHeader.changed`, relative
    to :attr:`FastHeader.base`); otherwise the file is walked and its layout
    is kept. The result equals :func:`read_fast_header`'s either way
    (tests/test_fastheader.py). Safe to share between threads: the layouts
    are an immutable tuple, replaced whole.
    """

    #: how many layouts a reader keeps
    LAYOUTS = 8

    __slots__ = ("_layouts", "items", "tags")

    def __init__(self, tags: frozenset[int] | set[int], *,
                 items: frozenset[int] | set[int] = frozenset()) -> None:
        self.tags = tags
        self.items = items
        #: (the layouts, most recently used first; the longest one's size)
        self._layouts: tuple[tuple[_Layout, ...], int] = ((), 0)

    def read(self, path: Any) -> FastHeader | None:
        """The header of ``path``, as :func:`read_fast_header` gives it."""
        layouts, longest = self._layouts
        if layouts:
            try:  # the bytes of the longest layout (no file object)
                data = read_head(path, longest)
            except OSError:
                data = b""  # read below, which says what is wrong
            for i, layout in enumerate(layouts):
                size = layout.size
                if len(data) < size:
                    continue
                # the layout's bytes end with the Pixel Data element's head, so a file
                # that matches them has its pixel data where the layout has
                fh = layout.match(data if len(data) == size else data[:size])
                if fh is not None:
                    if i:
                        self._keep(layout, layouts)
                    return fh
        try:
            with open_regular(path) as f:  # never a FIFO or device: they could block
                spans: list[tuple[int, int, int]] = []
                fh = _read_open(f, self.tags, self.items, spans)
                if fh is not None and fh.pixel_offset is not None and fh.pixel_offset <= 4 * _CHUNK:
                    f.seek(0)
                    raw = f.read(fh.pixel_offset)
                    if len(raw) == fh.pixel_offset:
                        self._keep(_Layout(fh, raw, spans), self._layouts[0])
                return fh
        except (OSError, EOFError, ValueError, struct.error, UnicodeDecodeError):
            return None

    def _keep(self, layout: _Layout, layouts: tuple[_Layout, ...]) -> None:
        """``layout`` first, then the others of ``layouts`` (at most :attr:`LAYOUTS`)."""
        kept = (layout, *(x for x in layouts if x is not layout))[: self.LAYOUTS]
        self._layouts = (kept, max(x.size for x in kept))


@functools.lru_cache(maxsize=1024)
def _tag_for(keyword: str) -> int | None:
    from pydicom.datadict import tag_for_keyword

    return tag_for_keyword(keyword)


@functools.lru_cache(maxsize=1024)
def _dictionary_vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:  # private tag in implicit VR: read as text
        return "LO"


class FastDataset:
    """A read-only, pydicom-like view (``get``, ``in``, attributes) of a FastHeader.

    Values convert the way pydicom converts them for the VRs medlab reads
    (numbers, text, multi-values as lists); tags that were not kept read as
    absent, so only use it for the tags asked for.
    """

    __slots__ = ("fh",)

    def __init__(self, fh: FastHeader) -> None:
        self.fh = fh

    def __contains__(self, keyword: str) -> bool:
        tag = _tag_for(keyword)
        return tag is not None and tag in self.fh.seen

    def get(self, key: str | tuple[int, int], default: Any = None) -> Any:
        tag = (key[0] << 16 | key[1]) if isinstance(key, tuple) else _tag_for(key)
        raw = self.fh.values.get(tag) if tag is not None else None
        if raw is None:
            return default
        value, vr_bytes = raw
        return pydicom_like(value, vr_bytes.decode("ascii") if vr_bytes else _dictionary_vr(tag),
                            default)

    def __getattr__(self, keyword: str) -> Any:
        value = self.get(keyword)
        if value is None:
            raise AttributeError(keyword)
        return value
