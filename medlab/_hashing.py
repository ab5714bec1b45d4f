"""SHA-256 of files and byte streams: the one implementation medlab uses.

Documented internal API shared by every subpackage (dataset checksums in
:mod:`medlab.data`, input hashes in report provenance, model weight digests in
:mod:`medlab.segmentation.models`, cohort snapshots).  Files are read in
1 MiB blocks, so memory stays flat for files of any size; hashing runs at the
speed of :func:`hashlib.sha256` (as fast as :func:`pooch.file_hash`, which
hashes in 64 KiB blocks, and :func:`hashlib.file_digest`: about 400 MB/s
each on one core here).  Memoising digests is the caller's business (only the
caller knows how long a file may be trusted to stay unchanged).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator

__all__ = ["file_chunks", "sha256_file", "sha256_files", "sha256_stream"]

#: Bytes read at a time.
CHUNK = 1 << 20


def file_chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """Yield the bytes of the file at ``path`` in blocks of :data:`CHUNK` bytes."""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def sha256_stream(
    chunks: Iterable[bytes], *, copy_to: str | os.PathLike[str] | None = None
) -> str:
    """Hex SHA-256 of the concatenated ``chunks``.

    Parameters
    ----------
    chunks : iterable of bytes
        The data, e.g. :func:`file_chunks` or the chunks of an object-store download.
    copy_to : path, optional
        Also write the bytes to this file (its folder is created), reading the source once.

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> sha256_stream([b"med", b"lab"]) == hashlib.sha256(b"medlab").hexdigest()
    True
    """
    h = hashlib.sha256()
    if copy_to is None:
        for chunk in chunks:
            h.update(chunk)
        return h.hexdigest()
    os.makedirs(os.path.dirname(os.path.abspath(copy_to)), exist_ok=True)
    with open(copy_to, "wb") as out:
        for chunk in chunks:
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def sha256_file(
    path: str | os.PathLike[str], *, copy_to: str | os.PathLike[str] | None = None
) -> str:
    """Hex SHA-256 of the file at ``path`` (optionally copying it to ``copy_to`` on the way).

    Raises
    ------
    OSError
        The file cannot be read (or the copy cannot be written).
    """
    return sha256_stream(file_chunks(path), copy_to=copy_to)


def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """One SHA-256 over the bytes of several files, read in sorted path order.

    One digest for data that spans files, e.g. the weights of a model saved as
    several folds.
    """
    return sha256_stream(
        chunk for path in sorted(os.fspath(p) for p in paths) for chunk in file_chunks(path)
    )
