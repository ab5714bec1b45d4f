"""Honest evaluation of a registration: TRE, label overlap, Jacobian statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._validate import require_image
from ..image import Image
from ._convert import apply_transform, as_points, grid_points
from ._result import RegistrationResult, ensure_result, jacobian_determinant, resample

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = ["evaluate", "target_registration_error"]


def target_registration_error(found: npt.ArrayLike, expected: npt.ArrayLike) -> np.ndarray:
    """Euclidean distance (mm) between found and expected moving-space points, per point."""
    f, e = as_points(found, "found"), as_points(expected, "expected")
    if f.shape != e.shape:
        raise ValueError(f"found and expected points must be paired, got {f.shape} and {e.shape}")
    return np.linalg.norm(f - e, axis=1)


def evaluate(
    result: RegistrationResult,
    *,
    fixed_points: npt.ArrayLike | None = None,
    moving_points: npt.ArrayLike | None = None,
    truth: sitk.Transform | RegistrationResult | None = None,
    mask: Image | None = None,
    labels: tuple[Image, Image] | None = None,
    n_points: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Target registration error, label overlap and Jacobian statistics of a result.

    Parameters
    ----------
    result : RegistrationResult
    fixed_points, moving_points : (N, 3) array_like, optional
        Paired landmarks in LPS mm: TRE is ``|T(fixed_i) - moving_i|``.
    truth : SimpleITK.Transform or RegistrationResult, optional
        The known fixed -> moving transform (e.g. the misalignment applied
        to make the moving image). TRE is ``|T(p) - truth(p)|`` at
        ``fixed_points`` if given, else at up to ``n_points`` voxel centres
        drawn (seeded) from ``mask``, else from the whole fixed grid.
    mask : Image, optional
        Region (non-zero voxels, any grid in fixed space) where points are
        sampled and Jacobian statistics are taken.
    labels : (fixed_labels, moving_labels), optional
        Label maps of the two images. The moving labels are resampled
        nearest-neighbour onto the fixed labels' grid, and compared with
        :func:`medlab.measure.segmentation_metrics` (Dice, Jaccard, HD95,
        ASSD...), before (identity) and after registration.
    n_points : int
        Number of sampled points for TRE against ``truth``.
    seed : int
        Seed of the point sampling.

    Returns
    -------
    dict
        With TRE: ``tre_mean_mm``, ``tre_median_mm``, ``tre_max_mm``,
        ``tre_std_mm``, ``n_points``, ``misalignment_mean_mm`` (the same
        distances before registration, i.e. with the identity) and
        ``tre_per_point`` (DataFrame: fixed point, expected and found moving
        point, ``error_mm``). With labels: ``overlap`` and
        ``overlap_before`` (DataFrames, one row per label) and
        ``dice_mean``. For deformable results: ``jacobian_min``,
        ``jacobian_max``, ``jacobian_mean``, ``jacobian_std`` and
        ``folding_fraction`` (share of voxels with determinant <= 0).

    Raises
    ------
    ValueError
        When both ``truth`` and ``moving_points`` are given, or landmarks
        are unpaired.
    """
    import pandas as pd

    ensure_result(result)
    out: dict[str, Any] = {}
    if mask is not None:
        require_image(mask, "mask")
    if truth is not None and moving_points is not None:
        raise ValueError("give either truth (a transform) or moving_points (landmarks) for the "
                         "TRE, not both")
    if moving_points is not None and fixed_points is None:
        raise ValueError("moving_points need their paired fixed_points")
    if truth is not None or moving_points is not None:
        if isinstance(truth, RegistrationResult):
            truth = truth.transform
        if fixed_points is not None:
            pts = as_points(fixed_points, "fixed_points")
        else:
            if mask is not None:
                region, where = mask, np.asarray(mask.array) != 0
                if not where.any():
                    raise ValueError("mask is empty: no point to evaluate the TRE at")
            elif result.fixed is not None:
                region, where = result.fixed, None
            else:
                raise ValueError("pass fixed_points or a mask: this result has no fixed image "
                                 "to sample points from")
            pts = grid_points(region, mask=where, max_points=int(n_points), seed=seed)
        if result.dimension == 2 and pts.shape[1] == 2:
            pts = np.column_stack([pts, np.zeros(len(pts))])
        found = apply_transform(result.transform, pts)
        if truth is not None:
            expected = apply_transform(truth, pts)
        else:
            expected = as_points(moving_points, "moving_points")
            if expected.shape[0] != pts.shape[0]:
                raise ValueError(f"{len(pts)} fixed_points but {len(expected)} moving_points: "
                                 "landmarks must be paired row by row")
            if expected.shape[1] == 2:
                expected = np.column_stack([expected, pts[:, 2]])
        err = target_registration_error(found, expected)
        before = target_registration_error(pts, expected)
        axes = "xyz"
        table = {f"fixed_{axes[k]}_mm": pts[:, k] for k in range(pts.shape[1])}
        table.update({f"expected_{axes[k]}_mm": expected[:, k] for k in range(pts.shape[1])})
        table.update({f"found_{axes[k]}_mm": found[:, k] for k in range(pts.shape[1])})
        table["error_mm"] = err
        out.update(tre_mean_mm=float(err.mean()), tre_median_mm=float(np.median(err)),
                   tre_max_mm=float(err.max()), tre_std_mm=float(err.std()),
                   n_points=len(err), misalignment_mean_mm=float(before.mean()),
                   tre_per_point=pd.DataFrame(table))
    if labels is not None:
        out.update(_label_overlap(result, labels))
    if not result.transform.IsLinear():
        reference = result.fixed if result.fixed is not None else (
            mask if mask is not None else None)
        if reference is not None:
            det = jacobian_determinant(result.transform, reference).array
            if mask is not None:
                inside = np.asarray(
                    mask.resample_to(reference, interpolation="nearest").array) != 0
                det = det[inside]
            out.update(jacobian_min=float(det.min()), jacobian_max=float(det.max()),
                       jacobian_mean=float(det.mean()), jacobian_std=float(det.std()),
                       folding_fraction=float(np.mean(det <= 0)))
    return out


def _label_overlap(result: RegistrationResult, labels: tuple[Image, Image]) -> dict[str, Any]:
    import SimpleITK as sitk

    from ..measure import segmentation_metrics

    try:
        fixed_labels, moving_labels = labels
    except (TypeError, ValueError):
        raise ValueError("labels must be a pair (fixed_labels, moving_labels) of label "
                         "Images") from None
    require_image(fixed_labels, "fixed_labels")
    require_image(moving_labels, "moving_labels")
    warped = result.resample(moving_labels, interpolation="nearest", reference=fixed_labels)
    identity = sitk.Transform(result.dimension, sitk.sitkIdentity)
    before = resample(moving_labels, identity, fixed_labels, interpolation="nearest")
    after_table = segmentation_metrics(fixed_labels, warped)
    before_table = segmentation_metrics(fixed_labels, before)
    return {"overlap": after_table, "overlap_before": before_table,
            "dice_mean": float(after_table["dice"].mean())}
