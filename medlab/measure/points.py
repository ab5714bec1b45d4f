"""Geometric measurements from points in patient coordinates (LPS mm).

Points are 3-vectors in millimetres, as a viewer or
:meth:`medlab.Image.index_to_world` gives them; :func:`points_to_world`
converts voxel indices (e.g. clicks on a slice) with bounds checking.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._validate import require_image
from ..image import Image

__all__ = ["angle", "distance", "points_to_world", "polyline_length"]


def _point(p: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if arr.shape != (3,):
        raise ValueError(
            f"{name} must be one point (x, y, z) in LPS mm, got shape {arr.shape}; "
            "convert voxel indices with ml.measure.points_to_world(image, indices)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has NaN or infinite coordinates: {arr.tolist()}")
    return arr


def distance(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Euclidean distance between two points, in mm.

    Parameters
    ----------
    p, q : (3,) array_like
        Points in LPS mm.

    Returns
    -------
    float

    Examples
    --------
    >>> distance([0, 0, 0], [3, 4, 0])
    5.0
    """
    return float(np.linalg.norm(_point(q, "q") - _point(p, "p")))


def angle(a: npt.ArrayLike, vertex: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Angle at ``vertex`` between the rays to ``a`` and ``b``, in degrees (0 to 180).

    Parameters
    ----------
    a, vertex, b : (3,) array_like
        Points in LPS mm.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``a`` or ``b`` coincides with ``vertex`` (the angle is undefined).

    Examples
    --------
    >>> angle([1, 0, 0], [0, 0, 0], [0, 2, 0])
    90.0
    """
    v = _point(vertex, "vertex")
    u1, u2 = _point(a, "a") - v, _point(b, "b") - v
    n1, n2 = np.linalg.norm(u1), np.linalg.norm(u2)
    if n1 == 0 or n2 == 0:
        which = "a" if n1 == 0 else "b"
        raise ValueError(f"point {which} coincides with the vertex {v.tolist()}: the angle is undefined")
    # atan2 of |cross| and dot is accurate near 0 and 180 degrees, unlike arccos
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(u1, u2)), u1 @ u2)))


def polyline_length(points: npt.ArrayLike, *, closed: bool = False) -> float:
    """Length of the polyline through ``points`` in order, in mm.

    Parameters
    ----------
    points : (N, 3) array_like
        Vertices in LPS mm; fewer than two points have length 0.
    closed : bool, default False
        Add the segment from the last point back to the first (a perimeter).

    Returns
    -------
    float

    Examples
    --------
    >>> polyline_length([[0, 0, 0], [3, 4, 0], [3, 4, 12]])
    17.0
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3) (x, y, z in LPS mm), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points contain NaN or infinite coordinates")
    if len(pts) < 2:
        return 0.0
    if closed:
        pts = np.vstack([pts, pts[:1]])
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def points_to_world(image: Image, indices: npt.ArrayLike, *, check_bounds: bool = True) -> np.ndarray:
    """LPS mm of voxel indices ``(k, j, i)`` of ``image`` (fractional allowed).

    Parameters
    ----------
    image : Image
        Gives the affine.
    indices : (3,) or (N, 3) array_like
        Array indices in (slice, row, column) order.
    check_bounds : bool, default True
        Raise if an index lies outside the grid (half a voxel of margin),
        which usually means (column, row) was passed instead of (row, column).

    Returns
    -------
    ndarray, shape (3,) or (N, 3)

    Examples
    --------
    >>> import medlab as ml
    >>> img = ml.Image(np.zeros((4, 5, 6)), np.diag([3.0, 2.0, 1.0, 1.0]))
    >>> points_to_world(img, [1, 2, 3]).tolist()
    [3.0, 4.0, 3.0]
    """
    require_image(image, "image")
    image.require_spacing("points_to_world")
    idx = np.asarray(indices, dtype=float)
    if idx.shape[-1:] != (3,) or idx.ndim > 2:
        raise ValueError(
            f"indices must have shape (3,) or (N, 3) in (slice, row, column) order, got {idx.shape}"
        )
    if check_bounds:
        shape = np.asarray(image.spatial_shape, dtype=float)
        outside = np.any((idx < -0.5) | (idx > shape - 0.5), axis=-1)
        if np.any(outside):
            first = np.atleast_2d(idx)[np.atleast_1d(outside)][0]
            raise ValueError(
                f"index {first.tolist()} lies outside the grid of shape {image.spatial_shape} "
                "(order is slice, row, column); pass check_bounds=False to allow it"
            )
    return image.index_to_world(idx)
