"""Finding DICOM files by content and opening them (plain or gzip)."""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import FileDataset

__all__ = ["check_readable", "file_problem", "iter_files", "looks_like_dicom", "open_regular",
           "read_dataset", "read_head"]

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


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def file_problem(path: str | os.PathLike, *, check_read: bool = False) -> str | None:
    """Why ``path`` cannot be read as a regular file, or None if it can.

    Decided from ``os.stat`` alone: special files (FIFOs, sockets, devices)
    are never opened, since opening a FIFO blocks until a writer appears
    and opening a device may have side effects. With ``check_read`` the
    file is also opened (and closed) to find a missing read permission.

    Examples
    --------
    >>> print(file_problem("/dev/null"))
    null: a character device, not a regular file; it was not opened
    """
    name = os.path.basename(os.fspath(path))
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (f"{name}: a symbolic link loop (the link points, directly or through "
                    "other links, back to itself); fix or remove the link")
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return (f"{name}: a broken symbolic link (its target {os.readlink(path)!r} does not "
                    "exist); fix or remove the link")
        if exc.errno == errno.ENOENT:
            return f"{name}: no such file (it was removed while being read)"
        return f"{name}: cannot be accessed ({exc.strerror or exc}); check its permissions"
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _SPECIAL_KINDS if test(st.st_mode)), "a special file")
        return f"{name}: {kind}, not a regular file; it was not opened"
    if check_read:
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError as exc:
            return _open_reason(name, exc, st)
    return None


def _open_reason(name: str, exc: OSError, st: os.stat_result | None = None) -> str:
    if isinstance(exc, PermissionError):
        mode = f" (mode {stat.filemode(st.st_mode)}, owner uid {st.st_uid})" if st else ""
        return (f"{name}: cannot be read: permission denied{mode}; ask its owner for read "
                "access (chmod +r) or copy it somewhere readable")
    return f"{name}: cannot be opened ({exc.strerror or exc}); check the file and its permissions"


def check_readable(path: str | os.PathLike) -> None:
    """Raise a clear error unless ``path`` is a folder or a readable regular file.

    Raises
    ------
    FileNotFoundError
        Nothing exists at ``path`` (a broken symbolic link included).
    medlab.errors.UnreadableFileError
        No read permission, a special file (never opened) or a symbolic-link loop.
    """
    from ...errors import UnreadableFileError

    p = os.fspath(path)
    if os.path.isdir(p):
        return
    problem = file_problem(p, check_read=True)
    if problem is None:
        return
    if not os.path.lexists(p) or "broken symbolic link" in problem:
        raise FileNotFoundError(f"no such file or folder: {p!r}" + (
            f" ({problem})" if os.path.lexists(p) else ""))
    raise UnreadableFileError(problem)


def open_regular(path: str | os.PathLike):
    """Open a regular file for binary reading; never opens a special file.

    Raises
    ------
    medlab.errors.UnreadableFileError
        A FIFO, socket, device or folder (checked with ``os.stat`` before
        opening), or a symbolic-link loop.
    OSError
        The file cannot be opened (e.g. permission denied).
    """
    return os.fdopen(_open_regular_fd(path), "rb")


def read_head(path: str | os.PathLike, size: int) -> bytes:
    """The first ``size`` bytes of a regular file (fewer if it is shorter), without a file
    object; never opens a special file. Raises as :func:`open_regular`."""
    fd = _open_regular_fd(path)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def _open_regular_fd(path: str | os.PathLike) -> int:
    from ...errors import UnreadableFileError

    st = os.stat(path) if not isinstance(path, int) else None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UnreadableFileError(file_problem(path) or f"{path}: not a regular file")
    # O_NONBLOCK: should the path have become a FIFO since the stat, opening does not block
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def looks_like_dicom(path: str | os.PathLike) -> bool:
    """Whether a file's content looks like DICOM (by content, not by name).

    True for Part-10 files ('DICM' at byte 128), gzip files whose content
    is such a file (``.dcm.gz``), and files without preamble that start
    with a group-0002 or group-0008 tag (old ACR-NEMA style).
    """
    try:
        with open_regular(path) as f:
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
    with open_regular(path) as f:
        magic = f.read(2)
    if magic == _GZIP_MAGIC:
        with gzip.open(path, "rb") as g:
            data = g.read()
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels, force=force)
    return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=force,
                           defer_size=defer_size)
