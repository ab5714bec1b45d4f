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
    "UnknownSpacingError",
    "DicomReadError",
    "SeriesAssemblyError",
    "MultipleImagesError",
    "UnsupportedTransferSyntaxError",
    "DatasetError",
    "MissingDependencyError",
]


class MedlabError(Exception):
    """Base class of all medlab errors."""


class GeometryError(MedlabError, ValueError):
    """An affine, spacing, orientation or grid is invalid."""


class GeometryMismatchError(GeometryError):
    """Two images do not share the grid an operation needs."""


class UnknownSpacingError(GeometryError):
    """An image's pixel spacing is unknown, so no length, area or volume in mm exists.

    Raised by every function that would report millimetres for such an
    image; the message names the image and how to calibrate it
    (:meth:`medlab.Image.with_spacing` or :func:`medlab.measure.calibrate`).
    """


class DicomReadError(MedlabError, ValueError):
    """A DICOM file cannot be read or decoded."""


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


class MissingDependencyError(MedlabError, ImportError):
    """An optional dependency needed for a feature is not installed."""
