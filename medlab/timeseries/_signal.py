"""Spoiled gradient echo (SPGR) signal, signal to concentration, variable-flip-angle T1.

The steady-state SPGR signal (T2* effects neglected, TE << T2*) is::

    S = M0 sin(a) (1 - E1) / (1 - cos(a) E1),   E1 = exp(-TR R1)

and a contrast agent of relaxivity r1 raises R1 linearly:
``R1(t) = R10 + r1 C(t)`` (fast water exchange). See e.g. Tofts, "T1-weighted
DCE imaging concepts", in *Quantitative MRI of the Brain* (2003), and
Deoni, Rutt & Peters, MRM 49:515 (2003) for the variable-flip-angle
(DESPOT1) linearisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..errors import GeometryError
from ..image import Image
from ._common import (
    TimeSeriesError,
    as_float,
    baseline_indices,
    map_image,
    require_image,
    require_series,
    spatial_mask,
)

__all__ = ["signal_to_concentration", "spgr_signal", "vfa_t1"]


def spgr_signal(
    t1_s: npt.ArrayLike, *, flip_angle_deg: float | npt.ArrayLike, tr_s: float,
    m0: npt.ArrayLike = 1.0,
) -> np.ndarray:
    """Steady-state spoiled gradient echo signal (broadcast over the inputs).

    Parameters
    ----------
    t1_s : array_like
        T1 in seconds (``1 / R1``).
    flip_angle_deg : float or array_like
        Flip angle in degrees.
    tr_s : float
        Repetition time in seconds.
    m0 : array_like
        Equilibrium magnetisation (scales the signal).
    """
    a = np.deg2rad(np.asarray(flip_angle_deg, dtype=float))
    e1 = np.exp(-float(tr_s) / np.asarray(t1_s, dtype=float))
    return np.asarray(m0) * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)


def _tr_from(image: Image, tr_s: float | None) -> float:
    if tr_s is not None:
        return float(tr_s)
    tr = image.meta.get("repetition_time_s")
    if not tr:
        raise TimeSeriesError(
            f"the repetition time is not in the image's metadata ({image!r}); pass tr_s= "
            "(seconds, e.g. 0.005 for 5 ms)"
        )
    return float(tr)


def _on_grid(value: float | Image, image: Image, what: str) -> np.ndarray | float:
    if isinstance(value, Image):
        if value.frame_times_s is not None or value.channels:
            raise GeometryError(f"{what} must be a 3D map, got {value!r}")
        image.match_geometry(value)
        return np.asarray(value.array, dtype=np.float64)
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value}")
    return v


def signal_to_concentration(
    image: Image,
    *,
    flip_angle_deg: float,
    t10_s: float | Image,
    tr_s: float | None = None,
    r1_per_mM_s: float = 4.5,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    m0: Image | None = None,
    mask: Image | None = None,
) -> Image:
    """Contrast agent concentration (mM) from a spoiled gradient echo series.

    ``M0`` is found from the baseline signal and ``T10`` (unless given),
    then every frame is inverted for ``R1(t)`` and
    ``C(t) = (R1(t) - 1/T10) / r1``.

    Parameters
    ----------
    image : Image
        Dynamic SPGR signal series.
    flip_angle_deg : float
        Flip angle in degrees.
    t10_s : float or Image
        Pre-contrast T1 in seconds: one value or a 3D map on the grid (e.g.
        from :func:`vfa_t1`).
    tr_s : float, optional
        Repetition time in seconds; default ``image.meta['repetition_time_s']``.
    r1_per_mM_s : float
        Longitudinal relaxivity in /mM/s (e.g. about 4.5 for Gd-DTPA at
        1.5 T in plasma; use the value for your agent and field).
    baseline_frames, baseline_until_s
        Pre-contrast frames: the first n, or those up to this time (s);
        default the first frame.
    m0 : Image, optional
        Equilibrium magnetisation map (from :func:`vfa_t1`); overrides the
        one estimated from the baseline.
    mask : Image, optional
        Voxels to convert; NaN elsewhere.

    Returns
    -------
    Image
        float32 concentration series in mM, same frame times; NaN where the
        signal cannot be inverted (at or above ``M0 sin(a)``, or ``S0 <= 0``).
    """
    require_series(image, "image")
    tr = _tr_from(image, tr_s)
    if not 0 < flip_angle_deg < 180:
        raise ValueError(f"flip_angle_deg must be in (0, 180) degrees, got {flip_angle_deg}")
    if r1_per_mM_s <= 0:
        raise ValueError(f"r1_per_mM_s must be > 0, got {r1_per_mM_s}")
    times = np.asarray(image.frame_times_s)
    idx = baseline_indices(times, baseline_frames=baseline_frames, baseline_until_s=baseline_until_s)
    t10 = _on_grid(t10_s, image, "t10_s")
    if np.any(np.asarray(t10) <= 0):
        raise ValueError("t10_s must be > 0 seconds everywhere")
    a = np.deg2rad(flip_angle_deg)
    sin_a, cos_a = np.sin(a), np.cos(a)
    e10 = np.exp(-tr / np.asarray(t10, dtype=np.float64))
    signal = np.asarray(image.array, dtype=np.float64)
    if m0 is not None:
        m0_arr = _on_grid(require_image(m0, "m0"), image, "m0")
    else:
        s0 = signal[..., idx].mean(axis=-1)
        m0_arr = s0 * (1 - cos_a * e10) / (sin_a * (1 - e10))
    m0_arr = np.asarray(m0_arr, dtype=np.float64)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = (m0_arr * sin_a - signal) / (m0_arr * sin_a - signal * cos_a)
        r1 = -np.log(e1) / tr
        r10 = 1.0 / np.asarray(t10, dtype=np.float64)
        conc = (r1 - (r10[..., None] if r10.ndim else r10)) / r1_per_mM_s
    bad = ~np.isfinite(conc) | (e1 <= 0) | (e1 >= 1) | (m0_arr <= 0)
    conc = np.where(bad, np.nan, conc).astype(np.float32)
    keep = spatial_mask(image, mask)
    if keep is not None:
        conc = np.where(keep[..., None], conc, np.nan).astype(np.float32)
    meta = dict(image.meta, quantity="concentration", units="mM")
    return image.with_array(conc, meta=meta)


def vfa_t1(
    images: Sequence[Image] | Image,
    flip_angles_deg: Sequence[float],
    *,
    tr_s: float | None = None,
    mask: Image | None = None,
) -> dict[str, Image]:
    """T1 and M0 maps from spoiled gradient echoes at several flip angles (DESPOT1).

    Fits ``S/sin(a) = E1 S/tan(a) + M0 (1 - E1)`` by voxel-wise linear least
    squares (Deoni et al. 2003; vectorised over the volume), then
    ``T1 = -TR / ln(E1)``.

    Parameters
    ----------
    images : sequence of Image, or Image
        One 3D image per flip angle on one grid, or one image whose 4th
        axis holds the flip angles (a "time" axis of the same length).
    flip_angles_deg : sequence of float
        The flip angles in degrees, one per image.
    tr_s : float, optional
        Repetition time in seconds; default the first image's
        ``meta['repetition_time_s']``.
    mask : Image, optional
        Voxels to fit; NaN elsewhere.

    Returns
    -------
    dict
        ``'t1_s'`` (seconds) and ``'m0'`` (signal units) as 3D Images, NaN
        where the fit gives no T1 (``E1`` outside (0, 1)).
    """
    if isinstance(images, Image):
        if images.frame_times_s is None:
            raise TimeSeriesError(
                f"one Image must have a 4th axis holding the flip angles, got {images!r}; "
                "pass a list of 3D images instead"
            )
        ref = images.frame(0)
        stack = as_float(images.array)
    else:
        images = list(images)
        if len(images) < 2:
            raise ValueError(f"VFA T1 needs images at >= 2 flip angles, got {len(images)}")
        ref = require_image(images[0], "images[0]")
        for i, im in enumerate(images[1:], start=1):
            require_image(im, f"images[{i}]")
            ref.match_geometry(im)
        stack = np.stack([as_float(im.array) for im in images], axis=-1)
    angles = np.deg2rad(np.asarray(flip_angles_deg, dtype=float))
    if angles.ndim != 1 or angles.size != stack.shape[-1]:
        raise ValueError(
            f"{stack.shape[-1]} images were given with {np.size(angles)} flip angles; give one "
            "flip angle (degrees) per image"
        )
    if len(np.unique(angles)) < 2:
        raise ValueError(f"VFA T1 needs >= 2 different flip angles, got {flip_angles_deg}")
    tr = _tr_from(ref, tr_s)
    s = stack.astype(np.float64)
    y = s / np.sin(angles)
    x = s / np.tan(angles)
    n = angles.size
    xm, ym = x.mean(axis=-1, keepdims=True), y.mean(axis=-1, keepdims=True)
    sxx = ((x - xm) ** 2).sum(axis=-1)
    sxy = ((x - xm) * (y - ym)).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = sxy / sxx
        intercept = ym[..., 0] - e1 * xm[..., 0]
        t1 = -tr / np.log(e1)
        m0 = intercept / (1 - e1)
    ok = np.isfinite(e1) & (e1 > 0) & (e1 < 1) & (n >= 2)
    keep = spatial_mask(ref, mask)
    if keep is not None:
        ok &= keep
    return {
        "t1_s": map_image(ref, np.where(ok, t1, np.nan).astype(np.float32), quantity="T1",
                          units="s"),
        "m0": map_image(ref, np.where(ok, m0, np.nan).astype(np.float32), quantity="M0",
                        units=None),
    }
