"""Loading and saving images: DICOM, NIfTI, NRRD, MHA/MHD.

``load(path)`` returns one :class:`~medlab.Image`; ``load_all(path)``
returns every image under a path keyed by readable ids. Formats are
recognised by content, not by file name.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

from ..errors import ImageReadError, MedlabError
from ..image import Image
from ._limits import decode_budget
from .dicom import ImageCollection, check_stack, looks_like_dicom, read_dicom
from .dicom import load_one as _load_dicom
from .dicom._files import check_readable, file_problem, iter_files, open_regular
from .itk import read_itk, write_itk
from .nifti import read_nifti, write_nifti

__all__ = [
    "ImageCollection",
    "check_stack",
    "decode_budget",
    "detect_format",
    "dicom_to_nifti",
    "load",
    "load_all",
    "save",
]

_ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff", ".jpg", ".bmp")
_NIFTI_SUFFIXES = (".nii", ".nii.gz", ".img", ".hdr", ".mgz", ".mgh", ".mnc", ".par")


def detect_format(path: str | os.PathLike) -> str:
    """'dicom', 'nifti', 'itk' or 'unknown' for a file, by content first.

    Examples
    --------
    >>> detect_format("no/such/file.nrrd")
    'itk'
    """
    p = Path(path)
    name = p.name.lower()
    head = b""
    if p.is_file():  # a regular file (special files are never opened)
        try:
            with open_regular(p) as f:
                head = f.read(352)
                if head[:2] == b"\x1f\x8b":
                    f.seek(0)
                    try:
                        with gzip.GzipFile(fileobj=f) as g:
                            head = g.read(352)
                    except (OSError, EOFError):
                        head = b""
        except OSError:  # unreadable: decided by name below
            head = b""
    if head:
        # 'DICM' after the 128-byte preamble is decisive: a preamble may start with the
        # bytes of a NIfTI/Analyze header size (nibabel's siemens_dwi_0.dcm.gz does)
        if head[128:132] == b"DICM":
            return "dicom"
        if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00", b"n+2\x00", b"ni2\x00"):
            return "nifti"
        if head[4:8] in (b"n+2\x00", b"ni2\x00") or (len(head) >= 4 and head[:4] in (
                b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c", b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c")):
            return "nifti"
        if head.startswith(b"NRRD") or head.lstrip().startswith((b"ObjectType", b"NDims")):
            return "itk"
    if p.is_file() and looks_like_dicom(p):
        return "dicom"
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_ITK_SUFFIXES):
        return "itk"
    return "unknown"


def load(path: str | os.PathLike, **kwargs: Any) -> Image:
    """Load the one image stored at ``path``.

    Parameters
    ----------
    path : path
        A DICOM file or folder (searched recursively, files recognised by
        content), or a NIfTI, NRRD or MHA/MHD file.
    **kwargs
        Passed to the DICOM reader (``irregular='stack'`` to accept uneven
        slice spacing, ``scaling='display'`` for Philips' console values
        instead of its floating-point ones: :func:`read_dicom`).

    Raises
    ------
    MultipleImagesError
        When the path holds several images; its message and ``.ids`` list
        them. Use :func:`load_all` to get all of them.
    FileNotFoundError
        When nothing exists at ``path``.
    medlab.errors.UnreadableFileError
        When ``path`` cannot be read: no read permission, a special file
        (FIFO, socket, device: never opened) or a symbolic-link loop.
    medlab.errors.ImageReadError
        When the file is corrupt, truncated or in no format medlab reads
        (:class:`~medlab.errors.DicomReadError` for DICOM).
    medlab.errors.ImageTooLargeError
        When the header declares more pixel data than the memory budget
        allows (see :func:`decode_budget`).
    """
    p = Path(path)
    check_readable(p)
    if p.is_dir():
        return _load_dicom(p, **kwargs)
    fmt = detect_format(p)
    if fmt == "nifti":
        return read_nifti(p)
    if fmt == "itk":
        return read_itk(p)
    if fmt == "dicom":
        return _load_dicom(p, **kwargs)
    raise ImageReadError(
        f"cannot tell the format of {str(p)!r}: not DICOM (no 'DICM' marker), NIfTI, NRRD "
        "or MetaImage. Check the file, or load it with nibabel or SimpleITK directly"
    )


def load_all(path: str | os.PathLike, **kwargs: Any) -> ImageCollection:
    """Every image under ``path``, keyed by readable ids.

    DICOM files are grouped into series (and split where a series mixes
    orientations, sizes, echoes or image types); NIfTI/NRRD/MHA files load
    one image each, keyed by file name. What cannot be loaded is listed in
    the result's ``skipped`` table with the reason (corrupt, truncated,
    unreadable, special files such as FIFOs, which are never opened,
    symbolic-link loops, other formats); one bad file never stops the rest.

    Raises
    ------
    FileNotFoundError
        When nothing exists at ``path``.
    medlab.errors.UnreadableFileError
        When ``path`` itself is a file that cannot be read (see :func:`load`).
    """
    p = Path(path)
    check_readable(p)
    if p.is_file() and detect_format(p) in ("nifti", "itk"):
        return ImageCollection({p.name: load(p)}, [])
    collection = read_dicom(p, **kwargs)
    if p.is_dir():
        # volumes in other formats next to the DICOM files (the DICOM scan has listed
        # every file it could not read, with the reason)
        for f in iter_files(p):
            if file_problem(f, check_read=True) is not None:
                continue
            if detect_format(f) not in ("nifti", "itk") or looks_like_dicom(f):
                continue
            try:
                collection[str(f.relative_to(p))] = load(f)
            except Exception as exc:  # listed, never fatal
                reason = str(exc) if isinstance(exc, MedlabError) else (
                    f"{f.name}: unexpected {type(exc).__name__}: {exc}")
                drop = collection.skipped["path"] == str(f)
                collection.skipped = collection.skipped[~drop].reset_index(drop=True)
                collection.skipped.loc[len(collection.skipped)] = [str(f), reason]
            else:
                drop = collection.skipped["path"] == str(f)
                collection.skipped = collection.skipped[~drop].reset_index(drop=True)
    return collection


def save(image: Image, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write ``image`` to NIfTI (``.nii``, ``.nii.gz``), NRRD or MHA/MHD.

    Refuses to overwrite any file the image was loaded from.
    """
    p = Path(path)
    sources = {Path(f).resolve() for f in image.meta.get("files", [])}
    if p.resolve() in sources:
        raise MedlabError(
            f"refusing to overwrite {str(p)!r}: the image was loaded from it. "
            "Choose another output path; medlab never modifies source files"
        )
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return write_nifti(image, p)
    if name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
        return write_itk(image, p, **kwargs)
    raise MedlabError(
        f"cannot save to {str(p)!r}: unknown extension. Use .nii, .nii.gz, .nrrd, .mha or .mhd"
    )


def dicom_to_nifti(source: str | os.PathLike, dest: str | os.PathLike, **kwargs: Any):
    """Convert DICOM series to NIfTI with BIDS sidecars; see :mod:`medlab.io.convert`."""
    from .convert import dicom_to_nifti as _convert

    return _convert(source, dest, **kwargs)

