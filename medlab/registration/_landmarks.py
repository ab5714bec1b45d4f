"""Paired-landmark registration and linear transform helpers.

The fits are closed-form least squares: Umeyama (IEEE TPAMI 1991) for the
rigid and similarity cases (proper rotations only, no reflection), and an
ordinary linear least-squares fit for the affine case.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from ._convert import as_points
from ._result import RegistrationResult

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = ["landmark_registration"]

Kind = Literal["rigid", "similarity", "affine"]


def landmark_registration(
    fixed_points: npt.ArrayLike,
    moving_points: npt.ArrayLike,
    *,
    kind: Kind = "rigid",
) -> RegistrationResult:
    """The transform that best maps paired fixed landmarks onto moving ones.

    Parameters
    ----------
    fixed_points, moving_points : (N, 3) or (N, 2) array_like
        Corresponding points in LPS mm, row ``i`` of one paired with row
        ``i`` of the other. ``(N, 2)`` (x, y) points give a 2D transform,
        for single-slice images.
    kind : {'rigid', 'similarity', 'affine'}
        Rotation + translation; plus one isotropic scale; or a general
        affine map. Rigid and similarity need 3 points that are not on one
        line (2 distinct points in 2D); affine needs ``dim + 1`` points not
        all in one plane (line in 2D).

    Returns
    -------
    RegistrationResult
        ``.transform`` maps fixed points to moving points (ITK convention);
        ``.final_metric`` is the root-mean-square fiducial registration
        error in mm, ``.metric_trace`` holds each pair's residual.

    Raises
    ------
    ValueError
        For unpaired, too few or degenerate (collinear, coplanar) points.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]])
    >>> res = landmark_registration(f, f + [5.0, -2.0, 1.0])
    >>> np.round(res.transform_points([[1.0, 1.0, 1.0]]), 6).tolist()
    [[6.0, -1.0, 2.0]]
    """
    import pandas as pd

    t0 = time.perf_counter()
    fixed = as_points(fixed_points, "fixed_points")
    moving = as_points(moving_points, "moving_points")
    transform = landmark_transform(fixed, moving, kind=kind)
    mapped = np.array([transform.TransformPoint(tuple(p)) for p in fixed])
    residual = np.linalg.norm(mapped - moving, axis=1)
    trace = pd.DataFrame({"stage": f"landmark-{kind}", "level": 0,
                          "iteration": np.arange(len(fixed)), "metric": residual})
    return RegistrationResult(
        transform,
        metric_trace=trace,
        final_metric=float(np.sqrt(np.mean(residual**2))),
        seconds=time.perf_counter() - t0,
        kind=f"landmark-{kind}",
        metric="fre_rms_mm",
    )


def landmark_transform(fixed: np.ndarray, moving: np.ndarray, *, kind: str = "rigid"
                       ) -> sitk.Transform:
    """The least-squares ``kind`` transform mapping ``fixed`` onto ``moving`` points."""
    fixed = as_points(fixed, "fixed_points")
    moving = as_points(moving, "moving_points")
    if kind not in ("rigid", "similarity", "affine"):
        raise ValueError(f"kind must be 'rigid', 'similarity' or 'affine', got {kind!r}")
    if fixed.shape != moving.shape:
        raise ValueError(f"fixed_points and moving_points must be paired (same shape), got "
                         f"{fixed.shape} and {moving.shape}")
    n, dim = fixed.shape
    centred = fixed - fixed.mean(axis=0)
    rank = int(np.sum(np.linalg.svd(centred, compute_uv=False) > 1e-6 * max(
        1.0, float(np.abs(centred).max()))))
    if kind == "affine":
        if n < dim + 1 or rank < dim:
            shape = "plane" if dim == 3 else "line"
            raise ValueError(f"an affine fit in {dim}D needs at least {dim + 1} points not all "
                             f"in one {shape}; got {n} points spanning {rank} dimension(s)")
        design = np.column_stack([fixed, np.ones(n)])
        sol, *_ = np.linalg.lstsq(design, moving, rcond=None)
        matrix, offset = sol[:dim].T, sol[dim]
    else:
        need = dim - 1
        if n < 2 or rank < need:
            raise ValueError(f"a {kind} fit in {dim}D needs at least {need + 1} distinct points "
                             f"not all on one line; got {n} points spanning {rank} "
                             "dimension(s)")
        matrix, offset = _umeyama(fixed, moving, scale=kind == "similarity")
    centre = fixed.mean(axis=0)
    return make_linear(kind, dim, matrix, offset, centre)


def _umeyama(x: np.ndarray, y: np.ndarray, *, scale: bool) -> tuple[np.ndarray, np.ndarray]:
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    cov = yc.T @ xc / len(x)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(len(d))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[-1, -1] = -1.0
    rot = u @ s @ vt
    c = float(np.trace(np.diag(d) @ s) / np.mean(np.sum(xc**2, axis=1))) if scale else 1.0
    matrix = c * rot
    return matrix, my - matrix @ mx


def make_linear(kind: str, dim: int, matrix: npt.ArrayLike, offset: npt.ArrayLike,
                centre: npt.ArrayLike) -> sitk.Transform:
    """A centred SimpleITK transform of ``kind`` equal to ``x -> matrix @ x + offset``."""
    import SimpleITK as sitk

    a = np.asarray(matrix, dtype=float).reshape(dim, dim)
    c = np.asarray(centre, dtype=float)[:dim]
    t = np.asarray(offset, dtype=float) + a @ c - c
    if kind == "rigid":
        if dim == 2:
            return sitk.Euler2DTransform(c.tolist(), float(np.arctan2(a[1, 0], a[0, 0])),
                                         t.tolist())
        tx = sitk.VersorRigid3DTransform()
        tx.SetCenter(c.tolist())
        tx.SetMatrix(a.ravel().tolist(), 1e-6)
        tx.SetTranslation(t.tolist())
        return tx
    if kind == "similarity":
        scale = float(abs(np.linalg.det(a)) ** (1.0 / dim))
        if dim == 2:
            return sitk.Similarity2DTransform(scale, float(np.arctan2(a[1, 0], a[0, 0])),
                                              t.tolist(), c.tolist())
        tx = sitk.Similarity3DTransform()
        tx.SetCenter(c.tolist())
        tx.SetMatrix(a.ravel().tolist(), 1e-6)
        tx.SetTranslation(t.tolist())
        return tx
    return sitk.AffineTransform(a.ravel().tolist(), t.tolist(), c.tolist())


def affine_parts(transform: sitk.Transform, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(matrix, offset)`` with ``T(x) = matrix @ x + offset`` for a linear transform, else None."""
    if not transform.IsLinear():
        return None
    origin = np.asarray(transform.TransformPoint((0.0,) * dim))
    cols = [np.asarray(transform.TransformPoint(tuple(np.eye(dim)[k]))) - origin
            for k in range(dim)]
    return np.column_stack(cols), origin

