"""Shared helpers of medlab.segmentation: errors, DICOM input, grid checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DicomReadError, GeometryMismatchError, MedlabError
from ..image import Image

__all__ = ["SegmentationError", "Outside"]

Outside = Literal["error", "clip"]


class SegmentationError(MedlabError, ValueError):
    """A segmentation cannot be turned into what was asked for (overlapping
    segments for a label map, unknown ROI or segment, ...)."""


def read_dicom_object(
    source: Any, *, modality: str, what: str, sop_classes: tuple[str, ...]
) -> tuple[Any, str]:
    """Read a DICOM object of one modality from a path, folder or dataset.

    A folder must hold exactly one object of that modality. Returns the
    dataset and a readable name of where it came from.
    """
    import pydicom

    from ..io.dicom import iter_files, read_dataset

    if isinstance(source, pydicom.Dataset):
        ds, name = source, f"the given {what} dataset"
    else:
        if not isinstance(source, str | os.PathLike):
            raise TypeError(
                f"expected a path to a {what} file (or a folder holding one) or a pydicom "
                f"Dataset, got {type(source).__name__}"
            )
        path = Path(source)
        if path.is_dir():
            found = []
            for f in iter_files(path):
                try:
                    head = read_dataset(f, stop_before_pixels=True)
                except Exception:
                    continue
                if str(head.get("Modality", "")).upper() == modality:
                    found.append(f)
            if len(found) != 1:
                listing = ", ".join(p.name for p in found[:5])
                raise DicomReadError(
                    f"the folder {str(path)!r} holds {len(found)} {what} files"
                    + (f" ({listing})" if found else "")
                    + f"; pass the path of one {what} file"
                )
            path = found[0]
        if not path.is_file():
            raise FileNotFoundError(f"no {what} file at {str(path)!r}")
        try:
            ds = read_dataset(path)
        except Exception as exc:
            raise DicomReadError(f"cannot read {str(path)!r} as DICOM: {exc}") from exc
        name = str(path)
    found_modality = str(ds.get("Modality", "")).upper()
    sop = str(ds.get("SOPClassUID", ""))
    if found_modality != modality and sop not in sop_classes:
        raise DicomReadError(
            f"{name} is not a {what}: its Modality is {found_modality or 'missing'!r} "
            f"(SOP class {sop or 'missing'}), expected {modality!r}"
        )
    return ds, name


def ensure_same_frame_of_reference(found: set[str], reference: Image, *, source: str) -> None:
    """Raise when the reference image's frame of reference is not among ``found``.

    Skipped when either side has no FrameOfReferenceUID (e.g. NIfTI images).
    """
    ref_uid = reference.meta.get("frame_of_reference_uid")
    found = {u for u in found if u}
    if not ref_uid or not found or ref_uid in found:
        return
    raise GeometryMismatchError(
        f"{source} is defined in frame of reference {', '.join(sorted(found))}, but the "
        f"reference image is in {ref_uid}: their patient coordinates are unrelated, so the "
        "contours/segments would land in the wrong place. Use an image of the same frame of "
        "reference (e.g. the series the segmentation references, or one registered to it), or "
        "pass check_frame_of_reference=False if you know the coordinates agree"
    )


def check_outside(option: str) -> None:
    if option not in ("error", "clip"):
        raise ValueError(f"outside must be 'error' or 'clip', got {option!r}")


def grid_extent_text(reference: Image) -> str:
    """Readable description of the reference grid for error messages."""
    corners = reference.index_to_world(np.array([[0, 0, 0], np.asarray(reference.spatial_shape) - 1]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return (
        f"reference grid {reference.spatial_shape} (slice, row, column), voxel centres from "
        f"LPS {np.round(lo, 2).tolist()} to {np.round(hi, 2).tolist()} mm"
    )


def slice_normal(affine: np.ndarray) -> np.ndarray:
    """Unit normal of the (row, column) planes of a grid, pointing along increasing slice."""
    n = np.cross(affine[:3, 1], affine[:3, 2])
    n /= np.linalg.norm(n)
    return n if n @ affine[:3, 0] >= 0 else -n
