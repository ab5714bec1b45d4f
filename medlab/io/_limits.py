"""The memory budget for decoding pixel data, and checks of header claims against it.

A header states how many pixels a file holds (Rows x Columns x frames x
samples x bytes); for compressed data nothing bounds that claim but the
header itself, so a corrupt or hostile 250 KB file can ask for gigabytes.
Every reader checks the claim before it allocates:

- uncompressed data: the claim must fit in the bytes the file holds;
- compressed data: the claim must fit in the memory budget,
  :func:`decode_budget`.

The budget is the environment variable ``MEDLAB_MAX_DECODE_BYTES`` (a
number of bytes such as ``8e9``, or with a unit: ``8GB``, ``500MiB``) when
set, else half of the memory available when the image is read (the
smaller of the system's available memory and the container's cgroup
limit).
"""

from __future__ import annotations

import os
import re

__all__ = ["check_decode_size", "decode_budget", "format_bytes"]

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_FALLBACK = 4 * 2**30  # when the available memory cannot be found


def format_bytes(n: float) -> str:
    """A byte count for people: '1.8 GB', '250 kB'.

    Examples
    --------
    >>> format_bytes(1_800_000_000)
    '1.8 GB'
    """
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _available_memory() -> int:
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = _FALLBACK
    try:  # a container's limit (cgroup v2)
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                used = int(f.read().strip())
            avail = min(avail, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return avail


def decode_budget() -> int:
    """The most bytes medlab allocates to decode one image's pixel data.

    ``MEDLAB_MAX_DECODE_BYTES`` when set (``8e9``, ``8GB``, ``500MiB``), else
    half of the memory available now.

    Raises
    ------
    ValueError
        ``MEDLAB_MAX_DECODE_BYTES`` is not a positive number of bytes.
    """
    text = os.environ.get("MEDLAB_MAX_DECODE_BYTES", "").strip()
    if text:
        m = re.fullmatch(r"([0-9.eE+]+)\s*([a-zA-Z]*)", text)
        try:
            value = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else -1.0
        except (KeyError, ValueError):
            value = -1.0
        if not value > 0:
            raise ValueError(f"MEDLAB_MAX_DECODE_BYTES must be a positive number of bytes "
                             f"(e.g. 8e9, 8GB or 500MiB), got {text!r}")
        return int(value)
    return _available_memory() // 2


def check_decode_size(n_bytes: int, claim: str, name: str) -> None:
    """Refuse to decode ``n_bytes`` when they exceed :func:`decode_budget`.

    Parameters
    ----------
    n_bytes : int
        Bytes the decode would allocate.
    claim : str
        What the header declares, e.g. ``'Rows 30000 x Columns 30000 x 1 frame(s) x 2 bytes'``.
    name : str
        The file (or image id), for the message.

    Raises
    ------
    medlab.errors.ImageTooLargeError
    """
    from ..errors import ImageTooLargeError

    budget = decode_budget()
    if n_bytes > budget:
        set_by = ("MEDLAB_MAX_DECODE_BYTES" if os.environ.get("MEDLAB_MAX_DECODE_BYTES")
                  else "half the available memory")
        raise ImageTooLargeError(
            f"{name}: the header declares {claim} = {format_bytes(n_bytes)} of pixel data, more "
            f"than the decode budget of {format_bytes(budget)} ({set_by}). If the header is "
            "right, free memory or raise the budget (environment variable "
            "MEDLAB_MAX_DECODE_BYTES, e.g. 32GB); otherwise the file is corrupt"
        )
