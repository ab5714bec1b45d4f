"""Intensity statistics, intensity histogram, intensity-volume histogram and
local intensity features (IBSI chapter 1, sections 3.2-3.5)."""

from __future__ import annotations

import numpy as np
from scipy import signal

from ._preprocess import PEAK_RADIUS_MM

__all__ = ["intensity_histogram", "intensity_stats", "intensity_volume_histogram", "local_intensity"]


def _moments(x: np.ndarray) -> dict[str, float]:
    """Statistics shared by ``stat_`` (intensities) and ``ih_`` (grey levels)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean()
    dev = x - mean
    m2 = float(np.mean(dev**2))
    if m2 > 0:
        skew = float(np.mean(dev**3) / m2**1.5)
        kurt = float(np.mean(dev**4) / m2**2 - 3.0)
    else:
        skew = kurt = 0.0
    p10, p25, median, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    central = x[(x >= p10) & (x <= p90)]
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = np.sqrt(m2) / mean
        qcod = (p75 - p25) / (p75 + p25)
    return {
        "mean": float(mean),
        "var": m2,
        "skew": skew,
        "kurt": kurt,
        "median": float(median),
        "min": float(x.min()),
        "p10": float(p10),
        "p90": float(p90),
        "max": float(x.max()),
        "iqr": float(p75 - p25),
        "range": float(x.max() - x.min()),
        "mad": float(np.mean(np.abs(dev))),
        "rmad": float(np.mean(np.abs(central - central.mean()))),
        "medad": float(np.mean(np.abs(x - median))),
        "cov": float(cov),
        "qcod": float(qcod),
    }


def intensity_stats(values: np.ndarray) -> dict[str, float]:
    """IBSI intensity-based statistics (``stat_*``) of the ROI intensities.

    Variance, skewness and kurtosis (excess) are population moments;
    percentiles interpolate linearly; the robust mean absolute deviation
    uses the voxels between the 10th and 90th percentiles.
    """
    out = {f"stat_{k}": v for k, v in _moments(values).items()}
    x = np.asarray(values, dtype=np.float64)
    out["stat_energy"] = float(np.sum(x * x))
    out["stat_rms"] = float(np.sqrt(np.mean(x * x)))
    # IBSI order: energy and rms come before the dispersion measures
    order = ["mean", "var", "skew", "kurt", "median", "min", "p10", "p90", "max", "iqr",
             "range", "mad", "rmad", "medad", "cov", "qcod", "energy", "rms"]
    return {f"stat_{k}": out[f"stat_{k}"] for k in order}


def intensity_histogram(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """IBSI intensity-histogram features (``ih_*``) of discretised grey levels 1..Ng.

    The histogram has one bin per level 1..Ng (empty ones included); the
    mode is the most frequent level (the lowest if tied); the gradient is
    the central difference inside and one-sided at both ends.
    """
    out = {f"ih_{k}": v for k, v in _moments(levels).items()}
    hist = np.bincount(np.asarray(levels, dtype=np.int64), minlength=n_levels + 1)[1:]
    hist = hist.astype(np.float64)
    p = hist / hist.sum()
    nz = p[p > 0]
    grad: np.ndarray
    if hist.size > 1:
        grad = np.empty_like(hist)
        grad[0] = hist[1] - hist[0]
        grad[-1] = hist[-1] - hist[-2]
        grad[1:-1] = (hist[2:] - hist[:-2]) / 2.0
    else:
        grad = np.zeros(1)
    out.update({
        "ih_mode": float(np.argmax(hist) + 1),
        "ih_entropy": float(-(nz * np.log2(nz)).sum()),
        "ih_uniformity": float((p * p).sum()),
        "ih_max_grad": float(grad.max()),
        "ih_max_grad_g": float(np.argmax(grad) + 1),
        "ih_min_grad": float(grad.min()),
        "ih_min_grad_g": float(np.argmin(grad) + 1),
    })
    order = ["mean", "var", "skew", "kurt", "median", "min", "p10", "p90", "max", "mode", "iqr",
             "range", "mad", "rmad", "medad", "cov", "qcod", "entropy", "uniformity", "max_grad",
             "max_grad_g", "min_grad", "min_grad_g"]
    return {f"ih_{k}": out[f"ih_{k}"] for k in order}


def intensity_volume_histogram(
    values: np.ndarray,
    method: str,
    *,
    bin_width: float,
    bin_number: int,
    lower_bound: float | None,
) -> dict[str, float]:
    """IBSI intensity-volume histogram features (``ivh_*``).

    Parameters
    ----------
    values : ndarray
        ROI intensities.
    method : {'none', 'fbs', 'fbn'}
        ``'none'``: the intensities themselves on a grid of step 1 from
        the ROI minimum to its maximum (for integer data, e.g. HU), or the
        distinct values otherwise. ``'fbs'``: bins of ``bin_width`` from
        ``lower_bound`` (else the ROI minimum), represented by their
        centres. ``'fbn'``: ``bin_number`` bins, represented by their index.

    Notes
    -----
    ``ivh_v10`` is the ROI fraction whose intensity fraction
    ``(x - x_min) / (x_max - x_min)`` is at least 0.1; ``ivh_i10`` is the
    smallest grid intensity reached by at most 10 % of the ROI;
    ``ivh_auc`` (no IBSI consensus value) integrates the volume fraction
    over the intensity fraction with the trapezoidal rule.
    """
    x = np.asarray(values, dtype=np.float64)
    if method == "fbn":
        vmin, vmax = x.min(), x.max()
        if vmax > vmin:
            d = np.minimum(np.floor(bin_number * (x - vmin) / (vmax - vmin)) + 1, bin_number)
        else:
            d = np.ones_like(x)
        x = d
        grid = np.arange(1, bin_number + 1, dtype=np.float64)
        lo, hi = 1.0, float(bin_number)
    elif method == "fbs":
        x0 = x.min() if lower_bound is None else lower_bound
        d = np.floor((x - x0) / bin_width + 1e-9) + 1
        x = x0 + (d - 0.5) * bin_width
        grid = x0 + (np.arange(1, d.max() + 1) - 0.5) * bin_width
        lo, hi = float(grid[0]), float(grid[-1])  # from bin 1, as the grey levels 1..Ng
    elif method == "none":
        lo, hi = float(x.min()), float(x.max())
        if np.allclose(x, np.round(x), atol=1e-6) and hi - lo <= 1e6:
            grid = np.arange(np.round(lo), np.round(hi) + 1)
        else:
            grid = np.unique(x)
    else:
        raise ValueError(f"unknown IVH discretisation {method!r}; use 'none', 'fbs' or 'fbn'")
    n = x.size
    span = hi - lo
    gamma = (x - lo) / span if span > 0 else np.zeros_like(x)
    xs = np.sort(x)
    frac_at_least = 1.0 - np.searchsorted(xs, grid - 1e-9 * max(abs(span), 1.0), side="left") / n

    def intensity_at(v: float) -> float:
        hit = np.flatnonzero(frac_at_least <= v)
        return float(grid[hit[0]]) if hit.size else float(grid[-1])

    v10 = float(np.mean(gamma >= 0.1 - 1e-12))
    v90 = float(np.mean(gamma >= 0.9 - 1e-12))
    i10, i90 = intensity_at(0.10), intensity_at(0.90)
    grid_gamma = (grid - lo) / span if span > 0 else np.zeros_like(grid)
    auc = float(np.sum((frac_at_least[1:] + frac_at_least[:-1]) / 2 * np.diff(grid_gamma)))
    return {
        "ivh_v10": v10,
        "ivh_v90": v90,
        "ivh_i10": i10,
        "ivh_i90": i90,
        "ivh_diff_v10_v90": v10 - v90,
        "ivh_diff_i10_i90": i10 - i90,
        "ivh_auc": auc,
    }


def local_intensity(
    intensity: np.ndarray, int_mask: np.ndarray, spacing: tuple[float, float, float]
) -> dict[str, float]:
    """IBSI local intensity peaks (``loc_peak_loc``, ``loc_peak_glob``).

    The peak is the mean intensity of all image voxels (ROI or not) whose
    centres lie within a 1 cm^3 sphere (radius 6.2 mm) of a voxel's
    centre. Local: around the ROI's brightest voxel (the highest peak if
    several tie). Global: the highest peak over the ROI.
    """
    sp = np.asarray(spacing, dtype=np.float64)
    half = np.floor(PEAK_RADIUS_MM / sp).astype(int)
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, sp, strict=True)],
                        indexing="ij")
    kernel = (sum(g * g for g in grids) <= PEAK_RADIUS_MM**2 + 1e-9).astype(np.float64)
    sums = signal.fftconvolve(intensity, kernel, mode="same")
    counts = np.round(signal.fftconvolve(np.ones_like(intensity), kernel, mode="same"))
    means = sums[int_mask] / counts[int_mask]
    roi_values = intensity[int_mask]
    at_max = roi_values == roi_values.max()
    return {
        "loc_peak_loc": float(means[at_max].max()),
        "loc_peak_glob": float(means.max()),
    }
