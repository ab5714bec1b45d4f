"""Exceptions raised by medlab.

Every medlab error derives from :class:`MedlabError` and also from the
built-in exception a caller would naturally catch (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "MedlabError",
    "GeometryError",
    "GeometryMismatchError",
    "ImageReadError",
    "UnknownSpacingError",
    "DicomReadError",
    "ImageTooLargeError",
    "UnreadableFileError",
    "SeriesAssemblyError",
    "MultipleImagesError",
    "UnsupportedTransferSyntaxError",
    "DatasetError",
    "IndexFileError",
    "MissingDependencyError",
    "IdentifierLeakError",
]


class MedlabError(Exception):
    """Base class of all medlab errors."""


class GeometryError(MedlabError, ValueError):
    """An affine, spacing, orientation or grid is invalid."""


class GeometryMismatchError(GeometryError):
    """Two images do not share the grid an operation needs."""


class ImageReadError(MedlabError, ValueError):
    """An image file (DICOM, NIfTI, NRRD, MetaImage) is corrupt, truncated or
    not in a format medlab reads."""


class UnknownSpacingError(GeometryError):
    """An image's pixel spacing is unknown, so no length, area or volume in mm exists.

    Raised by every function that would report millimetres for such an
    image; the message names the image and how to calibrate it
    (:meth:`medlab.Image.with_spacing` or :func:`medlab.measure.calibrate`).
    """


class DicomReadError(ImageReadError):
    """A DICOM file cannot be read or decoded."""


class ImageTooLargeError(ImageReadError, MemoryError):
    """A header declares more (compressed) pixel data than the memory budget
    allows to decode; nothing was allocated. (A claim larger than what an
    uncompressed file holds is a truncated or corrupt file:
    :class:`ImageReadError`.)

    The budget is ``MEDLAB_MAX_DECODE_BYTES`` (bytes, e.g. ``8e9``) when set,
    else half of the memory available when the image is read; see
    :func:`medlab.io.decode_budget`.
    """


class UnreadableFileError(MedlabError, OSError):
    """A path exists but cannot be read as a file: no read permission, a
    special file (FIFO, socket, device: never opened), or a symbolic-link
    loop."""


class UnsupportedTransferSyntaxError(DicomReadError):
    """Pixel data use a transfer syntax no installed decoder handles."""


class SeriesAssemblyError(MedlabError, ValueError):
    """DICOM instances do not form the volume asked for (missing slices,
    uneven spacing, mixed orientations, ...)."""


class MultipleImagesError(MedlabError, ValueError):
    """A path holds several images where one was expected.

    Attributes
    ----------
    ids : list of str
        The readable ids of the images found; pass the path to
        :func:`medlab.io.load_all` to get all of them.
    """

    def __init__(self, message: str, ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.ids = list(ids or [])


class DatasetError(MedlabError, FileNotFoundError):
    """A registered dataset cannot be found, fetched or verified."""


class IndexFileError(MedlabError, OSError):
    """A cohort index file cannot be opened: damaged (truncated, overwritten),
    not an index, or held by another process that writes to it."""


class MissingDependencyError(MedlabError, ImportError):
    """An optional dependency needed for a feature is not installed."""


class IdentifierLeakError(MedlabError, RuntimeError):
    """A patient identifier was found in an output meant to be shared (a report).

    Attributes
    ----------
    findings : list of str
        Where each identifier was found (file and place; the identifier itself
        is masked in the message).
    """

    def __init__(self, message: str, findings: list[str] | None = None) -> None:
        super().__init__(message)
        self.findings = list(findings or [])
