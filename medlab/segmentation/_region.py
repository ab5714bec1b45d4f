"""Seeded region growing (connected threshold, confidence connected) and watershed.

Seeds are LPS mm points (a list of ``(x, y, z)``, an ``(n, 3)`` array, or a
DataFrame with columns ``x_mm, y_mm, z_mm`` as the viewer produces); each
is rounded to the voxel whose centre is nearest. With
``seeds_are_indices=True`` they are voxel indices ``(slice, row, column)``
(table columns ``k, j, i``). A seed outside the image is an error naming
the seed and the image extent.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from ..image import Image
from ._common import SegmentationError
from ._grid import (
    as_mask,
    intensity_array,
    label_names,
    label_result,
    mm_to_voxels,
    seed_indices,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["confidence_connected", "connected_threshold", "watershed"]

Seeds: TypeAlias = "npt.ArrayLike | pd.DataFrame"


def _connectivity(connectivity: int) -> Any:
    import SimpleITK as sitk

    options = {6: sitk.ConnectedThresholdImageFilter.FaceConnectivity,
               26: sitk.ConnectedThresholdImageFilter.FullConnectivity}
    if connectivity not in options:
        raise ValueError(
            f"connectivity must be 6 (faces) or 26 (faces, edges and corners), got {connectivity!r}"
        )
    return options[connectivity]


def _dtype_bounds(arr: np.ndarray, lower: float, upper: float) -> tuple[float, float]:
    """Bounds ITK can take for this pixel type without changing which values pass.

    Integer images: ``ceil(lower)``, ``floor(upper)`` (ITK would truncate
    towards zero), clipped to the type's range.
    """
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        lower = float(np.clip(np.ceil(lower), info.min, info.max + 1))
        upper = float(np.clip(np.floor(upper), info.min - 1, info.max))
    return lower, upper


def _flood(arr: np.ndarray, image: Image, idx: np.ndarray, lower: float, upper: float,
           connectivity: int) -> np.ndarray:
    import SimpleITK as sitk

    lo, hi = _dtype_bounds(arr, lower, upper)
    if lo > hi:
        return np.zeros(arr.shape, dtype=bool)
    f = sitk.ConnectedThresholdImageFilter()
    f.SetSeedList([[int(i) for i in s[::-1]] for s in idx])
    f.SetLower(lo)
    f.SetUpper(hi)
    f.SetReplaceValue(1)
    f.SetConnectivity(_connectivity(connectivity))
    src = Image(arr, image.affine).to_simpleitk(index_space=True)
    return sitk.GetArrayFromImage(f.Execute(src)).astype(bool)


def _seed_values(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return arr[tuple(idx.T)].astype(float)


def connected_threshold(
    image: Image,
    seeds: Seeds,
    *,
    lower: float,
    upper: float,
    seeds_are_indices: bool = False,
    connectivity: int = 6,
) -> Image:
    """Grow a region from seeds over voxels with values in ``[lower, upper]``.

    Uses SimpleITK ``ConnectedThreshold``: the result is every voxel
    connected to a seed through voxels whose values lie in the range.

    Parameters
    ----------
    image : Image
        A 3D scalar image.
    seeds : points or DataFrame
        LPS mm points (see :mod:`medlab.segmentation._region`), or voxel
        indices with ``seeds_are_indices=True``.
    lower, upper : float
        Inclusive value range in the image's units (HU, SUV, ...).
    seeds_are_indices : bool
        Whether ``seeds`` are ``(slice, row, column)`` voxel indices.
    connectivity : {6, 26}
        Face neighbours, or face, edge and corner neighbours.

    Returns
    -------
    Image
        ``uint8`` mask (1 = region) on the image's grid; ``meta['seeds_index']``
        holds the seed voxels.

    Raises
    ------
    SegmentationError
        A seed outside the image, or no seed with a value in the range
        (a seed outside the range only warns when others are inside).
    """
    arr = intensity_array(image)
    lo, hi = float(lower), float(upper)
    if not lo <= hi:
        raise ValueError(f"lower ({lower!r}) must be <= upper ({upper!r})")
    idx, _ = seed_indices(image, seeds, seeds_are_indices=seeds_are_indices)
    values = _seed_values(arr, idx)
    ok = (values >= lo) & (values <= hi)
    if not ok.any():
        raise SegmentationError(
            f"no seed has a value in [{lo:g}, {hi:g}]: the seed voxels {idx.tolist()} hold "
            f"{values.tolist()}, so nothing can grow. Widen the range or move the seeds"
        )
    if not ok.all():
        warnings.warn(
            f"{int((~ok).sum())} seed(s) have values outside [{lo:g}, {hi:g}] "
            f"({values[~ok].tolist()}) and grow nothing", stacklevel=2,
        )
    region = _flood(arr, image, idx, lo, hi, connectivity)
    return label_result(image, region, names={1: "region"}, method="connected_threshold",
                        parameters={"lower": lo, "upper": hi, "connectivity": connectivity},
                        seeds_index=idx.tolist())


def _neighbourhood_stats(arr: np.ndarray, idx: np.ndarray, radius: np.ndarray) -> tuple[float, float]:
    """ITK's initial statistics: mean of the per-seed box means, and the variance of all
    box values about it; boxes reaching past the edge repeat the edge voxels."""
    shape = arr.shape
    total = sum_sq = 0.0
    n_box = int(np.prod(2 * radius + 1))
    if n_box * len(idx) < 2:
        raise ValueError(
            "with one seed and a neighbourhood of one voxel the variance is undefined; "
            "give radius_mm of at least one voxel or more seeds"
        )
    for s in idx:
        axes = [np.clip(np.arange(c - r, c + r + 1), 0, n - 1) for c, r, n in zip(s, radius, shape, strict=True)]
        box = arr[np.ix_(*axes)].astype(np.float64)
        total += box.mean()
        sum_sq += float((box * box).sum())
    mean = total / len(idx)
    n_all = n_box * len(idx)
    return mean, (sum_sq - mean * mean * n_all) / (n_all - 1.0)


def confidence_connected(
    image: Image,
    seeds: Seeds,
    *,
    multiplier: float = 2.5,
    iterations: int = 4,
    radius_mm: float | None = None,
    seeds_are_indices: bool = False,
    connectivity: int = 6,
) -> Image:
    """Grow a region whose values are statistically like the seeds' neighbourhood.

    The algorithm of ITK's ``ConfidenceConnectedImageFilter``: the mean
    ``m`` and standard deviation ``s`` of the voxels in a box around each
    seed give the range ``m ± multiplier * s`` (widened to include the
    seed values); the connected region in that range (SimpleITK
    ``ConnectedThreshold``) gives new ``m`` and ``s``, ``iterations``
    times. Unlike ``sitk.ConfidenceConnected``, the box radius is given in
    mm per axis, which matters on anisotropic grids; with equal voxel
    radii and a floating-point image the two agree voxel for voxel.

    Parameters
    ----------
    image : Image
        A 3D scalar image.
    seeds : points or DataFrame
        As in :func:`connected_threshold`.
    multiplier : float
        Width of the range in standard deviations.
    iterations : int
        Number of re-estimations after the first region (0 = the first).
    radius_mm : float, optional
        Half-size of the initial box around each seed, in mm, converted to
        ``round(radius_mm / spacing)`` voxels per axis. Default: one voxel
        along each axis (ITK's default).
    seeds_are_indices : bool
        Whether ``seeds`` are ``(slice, row, column)`` voxel indices.
    connectivity : {6, 26}
        Face neighbours, or face, edge and corner neighbours.

    Returns
    -------
    Image
        ``uint8`` mask (1 = region); ``meta`` holds the final ``lower``,
        ``upper``, ``mean``, ``std`` and the box radius in voxels.

    Notes
    -----
    For integer images the range keeps the values inside it exactly
    (ITK truncates non-integer bounds towards zero instead, so it may
    include one more grey level).
    """
    arr = intensity_array(image)
    idx, _ = seed_indices(image, seeds, seeds_are_indices=seeds_are_indices)
    mult = float(multiplier)
    if not np.isfinite(mult) or mult <= 0:
        raise ValueError(f"multiplier must be > 0, got {multiplier!r}")
    iterations = int(iterations)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if radius_mm is None:
        radius = np.ones(3, dtype=int)
    else:
        radius = np.rint(mm_to_voxels(image, radius_mm)).astype(int)
    seed_values = _seed_values(arr, idx)
    if not np.all(np.isfinite(seed_values)):
        raise SegmentationError(f"seed voxels {idx.tolist()} hold non-finite values {seed_values.tolist()}")
    mean, var = _neighbourhood_stats(arr, idx, radius)

    def bounds(mean: float, var: float) -> tuple[float, float]:
        sd = float(np.sqrt(max(var, 0.0)))
        return min(mean - mult * sd, seed_values.min()), max(mean + mult * sd, seed_values.max())

    lo, hi = bounds(mean, var)
    region = _flood(arr, image, idx, lo, hi, connectivity)
    for _ in range(iterations):
        values = arr[region].astype(np.float64)
        n = values.size
        total = float(values.sum())
        var = (float((values * values).sum()) - total * total / n) / (n - 1.0) if n > 1 else 0.0
        mean = total / n
        if abs(var) < 1e-12:
            break
        lo, hi = bounds(mean, var)
        region = _flood(arr, image, idx, lo, hi, connectivity)
    return label_result(
        image, region, names={1: "region"}, method="confidence_connected",
        parameters={"multiplier": mult, "iterations": iterations, "radius_mm": radius_mm,
                    "connectivity": connectivity},
        seeds_index=idx.tolist(), radius_voxels=radius.tolist(), lower=lo, upper=hi,
        mean=mean, std=float(np.sqrt(max(var, 0.0))),
    )


def watershed(
    image: Image,
    *,
    markers: Image | npt.ArrayLike | None = None,
    level: float = 0.0,
    gradient: bool = True,
    sigma_mm: float = 1.0,
    mask: Image | npt.ArrayLike | None = None,
    connectivity: Literal[6, 26] = 6,
    watershed_line: bool = False,
) -> Image:
    """Morphological watershed (SimpleITK), from markers or from the regional minima.

    Parameters
    ----------
    image : Image
        A 3D scalar image.
    markers : Image or array, optional
        Label image on the image's grid: each label floods its basin and
        the result carries its values (and names). Without markers, every
        regional minimum deeper than ``level`` starts a basin
        (``sitk.MorphologicalWatershed``).
    level : float
        Without markers: minima shallower than this (in the relief's units)
        are merged; 0 keeps every minimum (over-segmentation).
    gradient : bool
        Flood the gradient magnitude (``sitk.GradientMagnitudeRecursiveGaussian``
        with ``sigma_mm``, so boundaries are edges) rather than the values
        themselves (pass e.g. a negated distance map with ``gradient=False``
        to split touching blobs).
    sigma_mm : float
        Gaussian scale of the gradient, in mm (voxel sizes honoured).
    mask : Image or array, optional
        Voxels outside this mask are 0 in the result.
    connectivity : {6, 26}
        Neighbourhood of the flooding.
    watershed_line : bool
        Keep one-voxel lines of 0 between basins.

    Returns
    -------
    Image
        Labels on the image's grid (marker values, or 1..n basins).
    """
    import SimpleITK as sitk

    arr = intensity_array(image)
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity!r}")
    inside = as_mask(mask, image)
    relief = Image(arr.astype(np.float32), image.affine).to_simpleitk(index_space=True)
    if gradient:
        if not float(sigma_mm) > 0:
            raise ValueError(f"sigma_mm must be > 0 mm, got {sigma_mm!r}")
        image.require_spacing("watershed (sigma_mm)")
        relief = sitk.GradientMagnitudeRecursiveGaussian(relief, sigma=float(sigma_mm))
    full = connectivity == 26
    names: dict[int, str] = {}
    if markers is None:
        out = sitk.MorphologicalWatershed(relief, level=float(level), markWatershedLine=watershed_line,
                                          fullyConnected=full)
    else:
        if isinstance(markers, Image):
            names = label_names(markers)
        marker_arr = as_mask(markers, image, "markers")  # checks grid / shape and emptiness
        m = markers.array if isinstance(markers, Image) else np.asarray(markers)
        m = np.where(marker_arr, m, 0)
        if (np.issubdtype(m.dtype, np.floating) and np.any(m != np.round(m))) or m.min() < 0:
            raise ValueError("markers must hold whole label values >= 0 (0 = unlabelled)")
        out = sitk.MorphologicalWatershedFromMarkers(
            relief, Image(m.astype(np.uint32), image.affine).to_simpleitk(index_space=True),
            markWatershedLine=watershed_line,
            fullyConnected=full)
    labels = sitk.GetArrayFromImage(out)
    if inside is not None:
        labels[~inside] = 0
    if not names:
        names = {int(v): f"basin {int(v)}" for v in np.unique(labels) if v}
    return label_result(image, labels, names=names, method="watershed",
                        algorithm_type="SEMIAUTOMATIC" if markers is not None else "AUTOMATIC",
                        parameters={"level": float(level), "gradient": gradient,
                                    "sigma_mm": float(sigma_mm), "markers": markers is not None,
                                    "connectivity": connectivity, "watershed_line": watershed_line})
