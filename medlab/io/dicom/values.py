"""DICOM value conversion, one of each: raw element bytes to values, values to typed Python.

Internal API for medlab subpackages; not for users; may change.

The DICOM stages (:mod:`.header` -> :mod:`.frames` -> :mod:`.plans` -> :mod:`.pixels`)
and the cohort index convert header values only through these functions:

- :func:`split` turns the raw bytes of an element (as the fast header reader
  keeps them) into its values: numbers for binary VRs (US, SS, UL, SL, FL,
  FD), padding-stripped strings for text VRs;
- :func:`to_str`, :func:`to_int`, :func:`to_float`, :func:`to_floats`,
  :func:`parse_date`, :func:`parse_time`, :func:`parse_datetime` turn values
  (decoded text, a list of values, or one number) into one typed Python value,
  None when absent or invalid (never an exception);
- :func:`pydicom_like` gives what pydicom gives for an element (the
  :class:`~medlab.io.dicom.header.FastDataset` view);
- :func:`pydicom_parts` turns a value read by pydicom into the list
  :func:`split` would give, so that both readers fill the same columns alike.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from typing import Any

__all__ = ["BINARY_VRS", "combine_date_time", "int32", "parse_date", "parse_datetime", "parse_time",
           "pydicom_like", "pydicom_parts", "split", "to_float", "to_floats", "to_int", "to_str"]

#: binary VRs and their little-endian struct formats
BINARY_VRS = {"US": "<H", "SS": "<h", "UL": "<I", "SL": "<i", "FL": "<f", "FD": "<d"}
_SIZES = {vr: struct.calcsize(fmt) for vr, fmt in BINARY_VRS.items()}
#: padding and white space around text values
_PAD = " \x00\t\r\n\x0b\x0c"

Values = str | list[Any] | tuple[Any, ...] | int | float | None


def _vr(vr: str | bytes | None) -> str:
    if vr is None:
        return ""
    return vr.decode("ascii", "replace") if isinstance(vr, bytes) else vr


def split(raw: bytes, vr: str | bytes | None = None, *, encoding: str = "latin-1") -> list[Any] | None:
    """The values of a raw (little-endian) element value; None when it holds none.

    Binary VRs give numbers; any other VR (``None``: text, as an implicit-VR
    private element) gives the backslash-separated values, decoded with
    ``encoding`` and stripped of padding.

    Examples
    --------
    >>> split(b"1.5\\\\-2 ", "DS")
    ['1.5', '-2']
    >>> split(b"\\x00\\x02", "US")
    [512]
    """
    name = _vr(vr)
    fmt = BINARY_VRS.get(name)
    if fmt is not None:
        n = len(raw) // _SIZES[name]
        if n == 0:
            return None
        return list(struct.unpack("<" + fmt[1] * n, raw[: n * _SIZES[name]]))
    return _split_text(bytes(raw).decode(encoding, "replace"))


def _split_text(text: str) -> list[str] | None:
    parts = [p.strip(_PAD) for p in text.split("\\")]
    return parts if any(parts) else None


def _first(v: Values) -> Any:
    """The first value: of a list, of backslash-separated text, or the value itself."""
    if isinstance(v, str):
        i = v.find("\\")
        return (v if i < 0 else v[:i]).strip(_PAD)
    if isinstance(v, (list, tuple)):
        return v[0] if v else None
    return v


def int32(v: int | None) -> int | None:
    """``v`` when it fits a 32-bit INTEGER column, else None (a malformed value)."""
    return v if v is None or -(2**31) <= v < 2**31 else None


def to_str(v: Values) -> str | None:
    """Text as written: values joined by '\\\\', padding stripped; None when empty."""
    if v is None:
        return None
    if isinstance(v, str):
        if "\\" not in v:
            return v.strip(_PAD) or None
        v = _split_text(v)
        if v is None:
            return None
    elif not isinstance(v, (list, tuple)):
        v = [v]
    if not any(str(p) for p in v):
        return None
    return "\\".join(str(p) for p in v).strip() or None


def to_float(v: Values) -> float | None:
    """The first value as a finite float; None when absent or not a number."""
    first = _first(v)
    if first is None or first == "":
        return None
    try:
        f = float(first)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def to_int(v: Values) -> int | None:
    """The first value as an integer that fits 32 bits (IS values such as '3.0' included)."""
    f = to_float(v)
    return int32(int(f)) if f is not None and f == int(f) else None


def to_floats(v: Values) -> list[float] | None:
    """Every value as a finite float; None when any is not one."""
    if v is None:
        return None
    if isinstance(v, str):
        v = _split_text(v)
    elif not isinstance(v, (list, tuple)):
        v = [v]
    if not v:
        return None
    try:
        out = [float(p) for p in v]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(x) for x in out) else None


def pydicom_like(raw: bytes, vr: str | bytes | None, default: Any = None) -> Any:
    """The value pydicom gives for a raw element: a number or text for one value, a list for
    several (IS as int, DS as float; text that is not a number stays text)."""
    name = _vr(vr)
    parts = split(raw, name)
    if parts is None:
        return default
    if name in ("IS", "DS"):
        try:
            nums = [int(float(p)) if name == "IS" else float(p) for p in parts]
        except ValueError:
            return "\\".join(parts)
        return nums[0] if len(nums) == 1 else nums
    return parts[0] if len(parts) == 1 else parts


def pydicom_parts(value: Any) -> list[Any] | None:
    """A value read by pydicom as the list :func:`split` gives (strings; None when empty)."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return _split_text(bytes(value).decode("latin-1", "replace"))
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        parts = [str(v).strip(" \x00") for v in value]
        return parts if any(parts) else None
    return _split_text(str(value))


# ------------------------------------------------------------------------ dates and times
def parse_date(text: str | None) -> dt.date | None:
    """A DA value ('YYYYMMDD', or the old 'YYYY.MM.DD') as a date; None if invalid."""
    if not text:
        return None
    s = text.strip().replace(".", "")
    if len(s) != 8 or not s.isdigit():
        return None
    try:
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def parse_time(text: str | None) -> dt.time | None:
    """A TM value ('HHMMSS.FFFFFF', truncated forms, or the old 'HH:MM:SS')."""
    if not text:
        return None
    s = text.strip().replace(":", "")
    whole, _, frac = s.partition(".")
    if not whole.isdigit() or len(whole) % 2 or not 2 <= len(whole) <= 6:
        return None
    hh, mm, ss = int(whole[0:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    frac = (frac + "000000")[:6]
    if not frac.isdigit():
        return None
    try:
        return dt.time(hh, mm, min(ss, 59), int(frac))  # 60 (leap second) -> 59
    except ValueError:
        return None


def parse_datetime(text: str | None) -> dt.datetime | None:
    """A DT value ('YYYYMMDDHHMMSS.FFFFFF&ZZXX', possibly truncated), time-zone offset ignored."""
    if not text:
        return None
    s = text.strip()
    rest = s[8:]
    for sign in "+-":
        rest = rest.split(sign)[0]
    day = parse_date(s[:8])
    if day is None:
        return None
    t = parse_time(rest) if rest else dt.time()
    return None if t is None else dt.datetime.combine(day, t)


def combine_date_time(date: str | None, time: str | None) -> dt.datetime | None:
    """DA + TM as a datetime; None unless both are valid."""
    day, t = parse_date(date), parse_time(time)
    if day is None or t is None:
        return None
    return dt.datetime.combine(day, t)
