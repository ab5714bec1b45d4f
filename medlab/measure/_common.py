"""Input checks shared by the measurement functions."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from .._validate import require_image
from ..errors import GeometryError
from ..image import Image

#: 6-connected (face) neighbourhood used to define surface voxels.
FACE_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)


def label_array(labels: Image, what: str = "labels") -> np.ndarray:
    """The integer label array of a 3D label image (bool becomes 0/1).

    Raises
    ------
    GeometryError
        For a time series or channel image.
    ValueError
        For non-integer values (a probability map, an intensity image).
    """
    require_image(labels, what)
    if labels.frame_axis is not None or labels.channels:
        raise GeometryError(
            f"{what} must be a 3D label image, got {labels!r}; pass one frame or channel"
        )
    arr = np.asarray(labels.array)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all() or not np.array_equal(arr, np.round(arr)):
            bad = arr[~finite | (arr != np.round(arr))][:3]
            raise ValueError(
                f"{what} must hold integer label values, got a {arr.dtype} array with values "
                f"such as {bad.tolist()}; threshold a probability map first "
                "(e.g. image.with_array(image.array > 0.5))"
            )
        return arr.astype(np.int64)
    raise ValueError(f"{what} must hold integer label values, got dtype {arr.dtype}")


def voxel_volume_mm3(image: Image) -> float:
    """Volume of one voxel, |det| of the affine's 3x3 part (any shear or rotation)."""
    return float(abs(np.linalg.det(image.affine[:3, :3])))


def select_labels(requested: int | Iterable[int] | None, present: list[int]) -> list[int]:
    """Labels to report: all present ones, or the requested ones (checked to be > 0)."""
    if requested is None:
        return present
    if isinstance(requested, (int, np.integer)):
        requested = [int(requested)]
    out = [int(v) for v in requested]
    bad = [v for v in out if v <= 0]
    if bad:
        raise ValueError(f"label values must be > 0 (0 is background), got {bad}")
    return out


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a binary mask.

    A foreground voxel is on the surface when at least one of its six
    face neighbours is background or lies outside the array (the same
    definition as ``medpy.metric.binary`` with ``connectivity=1``).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    interior = ndimage.binary_erosion(mask, structure=FACE_CONNECTIVITY, border_value=0)
    return mask & ~interior


def bounding_slices(mask: np.ndarray, *, pad: int = 0) -> tuple[slice, ...] | None:
    """Index slices of the bounding box of ``mask`` (grown by ``pad``), or None if empty."""
    if not mask.any():
        return None
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(nz[0]) - pad, 0), min(int(nz[-1]) + 1 + pad, mask.shape[axis])))
    return tuple(out)


def label_boxes(lab: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Bounding slices of every label value > 0 present in ``lab``, sorted by value.

    One pass (:func:`scipy.ndimage.find_objects`) for integer arrays with
    values up to 2**24; one mask per label otherwise.
    """
    if lab.dtype.kind in "iu" and lab.size:
        top = int(lab.max())
        if top <= 0:
            return {}
        if top <= 2**24:
            boxes = ndimage.find_objects(lab, max_label=top)
            return {v + 1: box for v, box in enumerate(boxes) if box is not None}
    out = {}
    for v in (int(v) for v in np.unique(lab) if v > 0):
        box = bounding_slices(lab == v)
        assert box is not None
        out[v] = box
    return out


def union_box(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    """The smallest box holding both boxes (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True))
