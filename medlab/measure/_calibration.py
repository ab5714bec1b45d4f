"""Calibration: give an image a pixel spacing its headers lack, or choose an ultrasound region.

medlab never reports millimetres for an image whose spacing is unknown
(:class:`~medlab.errors.UnknownSpacingError`); these are the ways to make
it known, recorded as the image's :attr:`~medlab.Image.spacing_source`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .._validate import require_image
from ..image import Image

__all__ = ["calibrate", "ultrasound_region"]


def _in_plane(p: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(p, dtype=float).ravel()
    if arr.shape not in ((2,), (3,)) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} must be a voxel index (row, column) or (slice, row, column), got {p!r}"
        )
    return arr[-2:]


def calibrate(
    image: Image,
    p0: npt.ArrayLike,
    p1: npt.ArrayLike,
    *,
    known_length_mm: float,
    plane: str = "patient",
) -> Image:
    """The image rescaled so that the line ``p0``-``p1`` is ``known_length_mm`` long.

    Draw the line along an object of known size in the image (a ruler, a
    calibration sphere, a coin): the in-plane pixel spacing is scaled so
    that the line has that length. With an unknown spacing, pixels are
    taken as square; with a known one (e.g. at the detector) both in-plane
    spacings are scaled by the same factor, keeping their ratio.

    Parameters
    ----------
    image : Image
    p0, p1 : array_like
        End points as voxel indices, ``(row, column)`` or ``(slice, row,
        column)`` (the slice is ignored), as a viewer's clicks give them.
    known_length_mm : float
        The true length of the line, in mm.
    plane : str, default ``'patient'``
        Where the object of known size lies (recorded as
        :attr:`~medlab.Image.spacing_plane`).

    Returns
    -------
    Image
        Same voxels with :attr:`~medlab.Image.spacing_source` ``'user'``
        and ``meta['calibration']`` holding the line and its length.

    Examples
    --------
    >>> import medlab as ml
    >>> img = ml.Image(np.zeros((1, 100, 100)), np.eye(4), meta={"spacing_source": "unknown"})
    >>> cal = ml.measure.calibrate(img, (10, 10), (10, 60), known_length_mm=25.0)
    >>> cal.spacing[1:], cal.spacing_source
    ((0.5, 0.5), 'user')
    """
    require_image(image, "image")
    length = float(known_length_mm)
    if not np.isfinite(length) or length <= 0:
        raise ValueError(f"known_length_mm must be a positive length in mm, got {known_length_mm!r}")
    a, b = _in_plane(p0, "p0"), _in_plane(p1, "p1")
    row_mm, col_mm = image.spacing[1:] if image.spacing_known else (1.0, 1.0)
    measured = float(np.hypot((b[0] - a[0]) * row_mm, (b[1] - a[1]) * col_mm))
    if measured == 0:
        raise ValueError(f"p0 and p1 are the same point {a.tolist()}: draw a line along the object")
    factor = length / measured
    out = image.with_spacing((row_mm * factor, col_mm * factor), source="user", plane=plane)
    out.meta["calibration"] = {"p0": a.tolist(), "p1": b.tolist(), "known_length_mm": length,
                               "previous_spacing_source": image.spacing_source}
    return out


def ultrasound_region(image: Image, region: int = 0) -> Image:
    """One calibrated region of an ultrasound image, with that region's pixel spacing.

    An ultrasound image may hold several regions (Sequence of Ultrasound
    Regions, PS3.3 C.8.5.5), each with its own Physical Delta X/Y: e.g. two
    B-mode views at different depths. When their calibrations differ the
    image's spacing is unknown as a whole; measure each region on the crop
    this returns.

    Parameters
    ----------
    image : Image
        An ultrasound image loaded by medlab (``meta['ultrasound_regions']``).
    region : int
        Index of the region in the Sequence of Ultrasound Regions.

    Returns
    -------
    Image
        The region's pixels (rows ``y0..y1``, columns ``x0..x1``) with its
        spacing, :attr:`~medlab.Image.spacing_source` ``'ultrasound region'``.
    """
    require_image(image, "image")
    regions: list[dict[str, Any]] = list(image.meta.get("ultrasound_regions") or [])
    found = [r for r in regions if int(r["region"]) == int(region)]
    if not found:
        raise ValueError(
            f"no spatially calibrated ultrasound region {region!r} in this image; calibrated "
            f"regions: {[int(r['region']) for r in regions]} (a region in cm along x and y)"
        )
    r = found[0]
    y0, y1 = max(int(r["y0"]), 0), min(int(r["y1"]), image.spatial_shape[1] - 1)
    x0, x1 = max(int(r["x0"]), 0), min(int(r["x1"]), image.spatial_shape[2] - 1)
    affine = image.affine
    affine[:3, 3] = image.index_to_world([0, y0, x0])
    meta = {k: v for k, v in image.meta.items() if k != "ultrasound_regions"}
    meta["ultrasound_region"] = dict(r)
    crop = Image(image.array[:, y0:y1 + 1, x0:x1 + 1], affine,
                 frame_times_s=image.frame_times_s, channels=image.channels, meta=meta)
    return crop.with_spacing((float(r["row_mm"]), float(r["column_mm"])),
                             source="ultrasound region", plane="patient")
