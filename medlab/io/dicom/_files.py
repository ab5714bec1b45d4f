"""Finding DICOM files by content and opening them (plain or gzip)."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import FileDataset

__all__ = ["iter_files", "looks_like_dicom", "read_dataset"]

_GZIP_MAGIC = b"\x1f\x8b"
# first group of a dataset without preamble: (0002,xxxx) file meta or (0008,xxxx),
# little or big endian
_NO_PREAMBLE_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def iter_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Every regular file under ``paths`` (files or folders), sorted, recursively.

    Hidden files and folders (starting with '.') are skipped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for p in paths:
        p = Path(p)
        if p.is_file():
            yield p
            continue
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder: {str(p)!r}")
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield Path(root) / name


def looks_like_dicom(path: str | os.PathLike) -> bool:
    """Whether a file's content looks like DICOM (by content, not by name).

    True for Part-10 files ('DICM' at byte 128), gzip files whose content
    is such a file (``.dcm.gz``), and files without preamble that start
    with a group-0002 or group-0008 tag (old ACR-NEMA style).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(132)
            if head[:2] == _GZIP_MAGIC:
                f.seek(0)
                try:
                    with gzip.GzipFile(fileobj=f) as g:
                        head = g.read(132)
                except (OSError, EOFError):
                    return False
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) >= 8 and head[:2] in _NO_PREAMBLE_STARTS:
        # a plausible VR or a 4-byte length must follow the tag
        vr = head[4:6]
        return (vr.isalpha() and vr.isupper()) or head[6:8] == b"\x00\x00" or head[4:6] == b"\x00\x00"
    return False


def read_dataset(
    path: str | os.PathLike,
    *,
    stop_before_pixels: bool = False,
    force: bool = True,
    defer_size: int | None = None,
) -> FileDataset:
    """Read a DICOM file, transparently un-gzipping ``.gz`` content.

    ``defer_size`` leaves values larger than that many bytes (pixel data) on
    disk until accessed (plain files only). The file is opened read-only;
    nothing is ever written next to it.
    """
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == _GZIP_MAGIC:
        with gzip.open(path, "rb") as g:
            data = g.read()
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels, force=force)
    return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=force,
                           defer_size=defer_size)
