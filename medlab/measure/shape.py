"""Shape of a labelled region: diameters, principal axes, RECIST axes.

All lengths are between **voxel centres** in LPS millimetres (as ITK's
Feret diameter), so a region one voxel wide has diameter 0 along that
direction; add about one voxel size to compare with edge-to-edge
lengths. Every affine works, oblique and sheared ones included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import ConvexHull
from scipy.spatial.distance import cdist

from .. import geometry as geo
from ..image import Image
from ._common import bounding_slices, label_array, surface_mask

__all__ = ["recist_diameters"]

_BLOCK = 512  # rows per block of the pairwise-distance search


def hull_vertices(points: np.ndarray) -> np.ndarray:
    """Indices of the extreme points of ``points`` (N, d); handles flat sets.

    The set is first reduced to its affine span (a plane or a line for a
    single-slice or single-row region), where Qhull needs full rank.
    """
    n = len(points)
    if n <= 3:
        return np.arange(n)
    centred = points - points.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(sv > 1e-9 * max(sv[0], 1e-300)))
    if rank == 0:
        return np.array([0])
    proj = centred @ vt[:rank].T
    if rank == 1:
        return np.array([int(np.argmin(proj[:, 0])), int(np.argmax(proj[:, 0]))])
    return ConvexHull(proj).vertices


def farthest_pair(points: np.ndarray) -> tuple[float, int, int]:
    """Largest distance between two of ``points`` (N, d), and their indices."""
    if len(points) < 2:
        return 0.0, 0, 0
    cand = hull_vertices(points)
    pts = points[cand]
    best, bi, bj = -1.0, 0, 0
    for start in range(0, len(pts), _BLOCK):
        d = cdist(pts[start : start + _BLOCK], pts)
        flat = int(np.argmax(d))
        r, c = divmod(flat, d.shape[1])
        if d[r, c] > best:
            best, bi, bj = float(d[r, c]), start + r, c
    return best, int(cand[bi]), int(cand[bj])


def principal_axis_lengths(points: np.ndarray) -> np.ndarray:
    """Lengths (mm, descending) of the ellipsoid with the same second moments.

    With ``lambda`` the eigenvalues of the (population) covariance of the
    voxel-centre coordinates, the length is ``2 * sqrt(5 * lambda)``: the
    full axis length of a solid ellipsoid, or the diameter of a sphere.
    IBSI/pyradiomics "major axis length" is ``4 * sqrt(lambda)``, which is
    ``2 / sqrt(5)`` times this.
    """
    if len(points) < 2:
        return np.zeros(3)
    cov = np.cov(points.T, bias=True)
    lam = np.clip(np.linalg.eigvalsh(cov)[::-1], 0.0, None)
    return 2.0 * np.sqrt(5.0 * lam)


def _plane_frame(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal in-plane coordinates for the (row, column) plane of a slice.

    Returns ``(Q, R, Rinv)`` with ``affine[:3, 1:3] = Q @ R``: in-plane
    coordinates ``R @ [j, i]`` keep world distances within one slice.
    """
    q, r = np.linalg.qr(affine[:3, 1:3])
    return q, r, np.linalg.inv(r)


def _short_axis(coords: np.ndarray, u: np.ndarray, width: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Longest chord perpendicular to ``u`` through a 2D point set.

    Points are grouped into strips of ``width`` across ``u`` (two strip
    phases, to be independent of where strips start); within a strip the
    chord is the spread of the points along the perpendicular ``v``.
    Returns the length and the chord's two end points (2D, exactly
    perpendicular to ``u``).
    """
    v = np.array([-u[1], u[0]])
    s, t = coords @ u, coords @ v
    best = (-1.0, 0.0, 0.0, 0.0)
    for phase in (0.0, 0.5):
        bins = np.floor((s - s.min()) / width + phase).astype(np.int64)
        order = np.argsort(bins, kind="stable")
        b, ts, ss = bins[order], t[order], s[order]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        tmax = np.maximum.reduceat(ts, starts)
        tmin = np.minimum.reduceat(ts, starts)
        k = int(np.argmax(tmax - tmin))
        if tmax[k] - tmin[k] > best[0]:
            end = starts[k + 1] if k + 1 < len(starts) else len(ts)
            best = (float(tmax[k] - tmin[k]), float(ss[starts[k] : end].mean()), tmin[k], tmax[k])
    length, s0, t0, t1 = best
    return length, s0 * u + t0 * v, s0 * u + t1 * v


def recist_axes(mask: np.ndarray, offset: np.ndarray, affine: np.ndarray) -> dict:
    """RECIST long and short axes of a binary region, per slice of array axis 0.

    Parameters
    ----------
    mask : (K, J, I) bool array
        The region, cropped to its bounding box.
    offset : (3,) ints
        Index of ``mask[0, 0, 0]`` in the full grid.
    affine : (4, 4) array
        Affine of the full grid.

    Returns
    -------
    dict
        ``long_mm``, ``short_mm``, ``slice`` (index on axis 0 of the full
        grid) and ``long_ends`` / ``short_ends`` ((2, 3) LPS mm), or NaNs
        and None for an empty mask.
    """
    _, r, rinv = _plane_frame(affine)
    width = float(np.min(np.abs(np.diag(r))))
    best: tuple | None = None
    for k in range(mask.shape[0]):
        ji = np.argwhere(mask[k])
        if len(ji) == 0:
            continue
        coords = (ji + offset[1:]) @ r.T
        d, a, b = farthest_pair(coords)
        key = (round(d, 6), len(ji))
        if best is None or key > best[0]:
            best = (key, k, coords, a, b)
    if best is None:
        return {"long_mm": np.nan, "short_mm": np.nan, "slice": None,
                "long_ends": None, "short_ends": None}
    (long_mm, _), k, coords, a, b = best
    if long_mm > 0:
        u = (coords[b] - coords[a]) / long_mm
        short_mm, c0, c1 = _short_axis(coords, u, width)
    else:
        short_mm, c0, c1 = 0.0, coords[a], coords[a]
    k_full = int(k + offset[0])

    def to_world(c2: np.ndarray) -> np.ndarray:
        ji = rinv @ c2
        return geo.apply_affine(affine, [k_full, ji[0], ji[1]])

    return {
        "long_mm": float(long_mm),
        "short_mm": float(short_mm),
        "slice": k_full,
        "long_ends": np.array([to_world(coords[a]), to_world(coords[b])]),
        "short_ends": np.array([to_world(c0), to_world(c1)]),
    }


def perimeter_mm(mask: np.ndarray, affine: np.ndarray) -> float:
    """Boundary length of a 2D mask (rows, columns) in mm, by marching squares.

    This is the 2D perimeter of IBSI and of pyradiomics (``shape2D``
    ``Perimeter``): it agrees with pyradiomics to rounding.

    The boundary is the iso-line at 0.5 between pixel centres (as
    :func:`skimage.measure.find_contours` traces it on the zero-padded
    mask); each 2x2 cell of pixel centres holds one straight piece of it,
    whose length depends only on which of its four pixels are inside. The
    pixel steps are the affine's row and column vectors, so anisotropic,
    oblique and sheared grids are measured in mm. Holes count (their
    boundary is part of the perimeter).

    Examples
    --------
    >>> round(perimeter_mm(np.ones((3, 4), bool), np.eye(4)), 4)  # 2*(2+3) + 4*sqrt(0.5)
    12.8284
    """
    m = np.pad(np.asarray(mask, dtype=bool), 1).astype(np.int8)
    a, b, c, d = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]  # TL, TR, BL, BR
    row, col = np.asarray(affine, float)[:3, 1], np.asarray(affine, float)[:3, 2]
    plus = 0.5 * float(np.linalg.norm(row + col))  # half-diagonal piece along row + column
    minus = 0.5 * float(np.linalg.norm(row - col))
    n = a + b + c + d
    corner = (n == 1) | (n == 3)
    # the odd pixel out (alone inside, or alone outside) decides the piece's direction
    odd = np.where(n == 1, 1, 0)
    tl_or_br = corner & (((a == odd) & (b != odd) & (c != odd)) | ((d == odd) & (b != odd) & (c != odd)))
    n_plus = int((corner & ~tl_or_br).sum())
    n_minus = int(tl_or_br.sum())
    two = n == 2
    horizontal = two & (a == b)  # top pair vs bottom pair: a piece across the columns
    vertical = two & (a == c)
    # diagonal pairs: the inside pixels are not connected (as find_contours' default), each
    # gets its own corner piece
    saddle_minus = two & (a == d) & (a == 1)  # TL and BR inside
    saddle_plus = two & (b == c) & (b == 1)  # TR and BL inside
    return float(n_plus * plus + n_minus * minus
                 + horizontal.sum() * np.linalg.norm(col) + vertical.sum() * np.linalg.norm(row)
                 + 2 * saddle_minus.sum() * minus + 2 * saddle_plus.sum() * plus)


def region_shape(mask: np.ndarray, offset: np.ndarray, affine: np.ndarray) -> dict:
    """Geometric description of one non-empty region (cropped mask + offset)."""
    idx = np.argwhere(mask) + offset
    world = geo.apply_affine(affine, idx)
    surf = np.argwhere(surface_mask(mask)) + offset
    longest, _, _ = farthest_pair(geo.apply_affine(affine, surf))
    return {
        "centroid": world.mean(axis=0),
        "axes": principal_axis_lengths(world),
        "longest_mm": longest,
        "recist": recist_axes(mask, offset, affine),
    }


def recist_diameters(labels: Image, *, label: int = 1) -> pd.DataFrame:
    """RECIST-style long and short axis of one label, with their end points.

    The long axis is the longest distance between two voxel centres of
    the label within one slice of array axis 0 (the acquisition plane:
    axial for axial CT), on the slice where it is largest. The short axis
    is the longest chord perpendicular to it in the same slice. The end
    points let a viewer draw both lines.

    Parameters
    ----------
    labels : Image
        Label map (integer or bool), 3D.
    label : int, default 1
        The label value to measure.

    Returns
    -------
    pandas.DataFrame
        Two rows (``axis`` = ``'long'``, ``'short'``) with ``label``,
        ``slice`` (index on array axis 0), ``length_mm`` and the end points
        ``x1_mm, y1_mm, z1_mm, x2_mm, y2_mm, z2_mm`` (LPS).

    Raises
    ------
    ValueError
        If ``label`` is absent from ``labels``.
    """
    arr = label_array(labels)
    labels.require_spacing("recist_diameters")
    mask = arr == label
    sl = bounding_slices(mask)
    if sl is None:
        present = [int(v) for v in np.unique(arr) if v > 0][:20]
        raise ValueError(f"label {label} is not in the label image (labels present: {present})")
    offset = np.array([s.start for s in sl])
    res = recist_axes(mask[sl], offset, labels.affine)
    rows = []
    for axis in ("long", "short"):
        p, q = res[f"{axis}_ends"]
        rows.append({
            "label": int(label), "axis": axis, "slice": res["slice"],
            "length_mm": res[f"{axis}_mm"],
            "x1_mm": p[0], "y1_mm": p[1], "z1_mm": p[2],
            "x2_mm": q[0], "y2_mm": q[1], "z2_mm": q[2],
        })
    return pd.DataFrame(rows)
