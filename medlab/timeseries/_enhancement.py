"""Semi-quantitative maps of a dynamic series: enhancement, SER, iAUC, time to peak, slopes.

Every map is computed voxel-wise from the signal ``S(t)`` and the baseline
``S0`` (the mean of the baseline frames) and returned as a 3D
:class:`medlab.Image` on the series' grid, NaN where it is undefined (a
zero baseline, no enhancement, outside ``mask``). The baseline is the
first frame by default; ``baseline_frames=n`` takes the first n frames and
``baseline_until_s=t`` the frames acquired up to t seconds.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..image import Image
from ..measure.stats import image_units
from ._common import (
    as_float,
    baseline_indices,
    frame_at,
    map_image,
    require_series,
    spatial_mask,
)

__all__ = [
    "enhancement_maps",
    "initial_auc",
    "percent_enhancement",
    "relative_enhancement",
    "signal_enhancement_ratio",
    "time_to_peak",
    "wash_in_slope",
    "wash_out_slope",
]


class _Prepared:
    """The signal, baseline and timing of a series, computed once per call."""

    def __init__(self, image: Image, baseline_frames: int | None,
                 baseline_until_s: float | None, mask: Image | None) -> None:
        require_series(image, "image")
        self.image = image
        self.times = np.asarray(image.frame_times_s, dtype=float)
        self.base_idx = baseline_indices(self.times, baseline_frames=baseline_frames,
                                         baseline_until_s=baseline_until_s)
        self.first_post = int(self.base_idx[-1]) + 1
        self.signal = as_float(image.array)
        self.s0 = self.signal[..., self.base_idx].mean(axis=-1)
        self.mask = spatial_mask(image, mask)
        self.units = image_units(image)

    def post_peak(self) -> tuple[np.ndarray, np.ndarray]:
        """Index and value of the maximum signal after the baseline, per voxel."""
        post = self.signal[..., self.first_post:]
        idx = np.argmax(post, axis=-1)
        value = np.take_along_axis(post, idx[..., None], axis=-1)[..., 0]
        return idx + self.first_post, value

    def finish(self, values: np.ndarray, quantity: str, units: str | None) -> Image:
        out = np.asarray(values, dtype=np.float32)
        if self.mask is not None:
            out = np.where(self.mask, out, np.nan).astype(np.float32)
        return map_image(self.image, out, quantity=quantity, units=units)

    def relative(self, signal: np.ndarray) -> np.ndarray:
        s0 = self.s0 if signal.ndim == self.s0.ndim else self.s0[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s0 > 0, (signal - s0) / np.where(s0 > 0, s0, 1), np.nan)


def relative_enhancement(
    image: Image,
    *,
    frame: int | Literal["peak"] | None = "peak",
    at_s: float | None = None,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    mask: Image | None = None,
) -> Image:
    """Relative enhancement ``(S - S0) / S0`` (unitless; 1.0 = signal doubled).

    Parameters
    ----------
    image : Image
        A dynamic series.
    frame : int, 'peak' or None
        The frame to map: an index, ``'peak'`` (each voxel's maximum after
        the baseline, the usual "maximum enhancement") or None for the
        whole series (a 4D image with the same frame times).
    at_s : float, optional
        Instead of ``frame``: the frame acquired nearest this time (s).
    baseline_frames, baseline_until_s
        The baseline: the first n frames, or the frames up to this time
        (s); default the first frame.
    mask : Image, optional
        Voxels to map; NaN elsewhere.

    Returns
    -------
    Image
        float32, NaN where ``S0 <= 0``.
    """
    prep = _Prepared(image, baseline_frames, baseline_until_s, mask)
    if at_s is not None:
        frame = frame_at(prep.times, frame=None, at_s=at_s, what="enhancement")
    if frame is None:
        rel = prep.relative(prep.signal).astype(np.float32)
        if prep.mask is not None:
            rel = np.where(prep.mask[..., None], rel, np.nan).astype(np.float32)
        meta = dict(image.meta, quantity="relative enhancement", units="1")
        return image.with_array(rel, meta=meta)
    if isinstance(frame, str):
        if frame != "peak":
            raise ValueError(f"frame must be an index, 'peak' or None, got {frame!r}")
        _, sig = prep.post_peak()
    else:
        sig = prep.signal[..., frame_at(prep.times, frame=frame, at_s=None, what="enhancement")]
    return prep.finish(prep.relative(sig), "relative enhancement", "1")


def percent_enhancement(
    image: Image,
    *,
    frame: int | Literal["peak"] | None = "peak",
    at_s: float | None = None,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    mask: Image | None = None,
) -> Image:
    """Percent enhancement ``100 * (S - S0) / S0`` (%); see :func:`relative_enhancement`."""
    rel = relative_enhancement(image, frame=frame, at_s=at_s, baseline_frames=baseline_frames,
                               baseline_until_s=baseline_until_s, mask=mask)
    meta = dict(rel.meta, quantity="percent enhancement", units="%")
    return rel.with_array((rel.array * 100).astype(np.float32), meta=meta)


def signal_enhancement_ratio(
    image: Image,
    *,
    early_frame: int | None = None,
    late_frame: int | None = -1,
    early_s: float | None = None,
    late_s: float | None = None,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    min_enhancement_percent: float = 0.0,
    mask: Image | None = None,
) -> Image:
    """Signal enhancement ratio ``(S_early - S0) / (S_late - S0)`` (Hylton).

    SER > 1 means wash-out after the early phase, ~1 a plateau, < 1
    persistent enhancement.

    Parameters
    ----------
    image : Image
        A dynamic series.
    early_frame, late_frame : int, optional
        The early and late post-contrast frames; default the first frame
        after the baseline and the last frame.
    early_s, late_s : float, optional
        Instead: the frames nearest these times (s).
    baseline_frames, baseline_until_s
        The baseline (default the first frame).
    min_enhancement_percent : float
        Voxels whose early percent enhancement is at or below this are NaN
        (SER is meaningless without enhancement); Hylton's functional tumour
        volume uses 70.
    mask : Image, optional
        Voxels to map; NaN elsewhere.

    Returns
    -------
    Image
        Unitless float32 SER, NaN where undefined.
    """
    prep = _Prepared(image, baseline_frames, baseline_until_s, mask)
    if early_frame is None and early_s is None:
        early_frame = prep.first_post
    e = frame_at(prep.times, frame=early_frame, at_s=early_s, what="early")
    late_frame = None if late_s is not None else late_frame
    lt = frame_at(prep.times, frame=late_frame, at_s=late_s, what="late")
    if e <= prep.base_idx[-1] or lt <= prep.base_idx[-1] or e == lt:
        raise ValueError(
            f"the early ({e}) and late ({lt}) frames must be two different frames after the "
            f"baseline (frames {prep.base_idx.tolist()})"
        )
    early = prep.signal[..., e] - prep.s0
    late = prep.signal[..., lt] - prep.s0
    pe = 100 * prep.relative(prep.signal[..., e])
    ok = (pe > min_enhancement_percent) & (late != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ser = np.where(ok, early / np.where(late != 0, late, 1), np.nan)
    return prep.finish(ser, "signal enhancement ratio", "1")


def initial_auc(
    image: Image,
    *,
    window_s: float = 60.0,
    onset_s: float | None = None,
    relative: bool = False,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    mask: Image | None = None,
) -> Image:
    """Initial area under the enhancement curve, ``integral of (S - S0) dt``.

    Integrated from ``onset_s`` over ``window_s`` seconds with the
    trapezoidal rule on the curve interpolated linearly between frames
    (IAUC60 by default; IAUGC60 when ``image`` holds concentrations).

    Parameters
    ----------
    image : Image
        A dynamic series (signal or concentration).
    window_s : float
        Integration window, seconds.
    onset_s : float, optional
        Start of the window (contrast arrival); default the time of the
        last baseline frame.
    relative : bool
        Integrate the relative enhancement ``(S - S0) / S0`` instead.
    baseline_frames, baseline_until_s, mask
        As in :func:`relative_enhancement`.

    Returns
    -------
    Image
        In image units x s (``s`` when ``relative``).

    Raises
    ------
    ValueError
        When the window ends after the last frame.
    """
    prep = _Prepared(image, baseline_frames, baseline_until_s, mask)
    t0 = float(prep.times[prep.base_idx[-1]]) if onset_s is None else float(onset_s)
    t1 = t0 + float(window_s)
    if window_s <= 0 or t0 < prep.times[0] or t1 > prep.times[-1] + 1e-9:
        raise ValueError(
            f"the iAUC window [{t0:g}, {t1:g}] s must lie within the frames "
            f"[{prep.times[0]:g}, {prep.times[-1]:g}] s; choose a shorter window_s or onset_s"
        )
    inner = prep.times[(prep.times > t0) & (prep.times < t1)]
    knots = np.concatenate([[t0], inner, [t1]])
    # linear interpolation of every voxel's curve at the knots: weights (T, K)
    weights = np.stack([np.interp(knots, prep.times, np.eye(len(prep.times))[i])
                        for i in range(len(prep.times))])
    curve = prep.relative(prep.signal) if relative else prep.signal - prep.s0[..., None]
    at_knots = curve @ weights.astype(curve.dtype)
    area = np.trapezoid(at_knots, knots, axis=-1)
    units = "s" if relative else (f"{prep.units} s" if prep.units else "signal s")
    return prep.finish(area, "initial area under the curve", units)


def time_to_peak(
    image: Image,
    *,
    onset_s: float = 0.0,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    mask: Image | None = None,
) -> Image:
    """Time of each voxel's maximum signal after the baseline, minus ``onset_s`` (s)."""
    prep = _Prepared(image, baseline_frames, baseline_until_s, mask)
    idx, _ = prep.post_peak()
    return prep.finish(prep.times[idx] - float(onset_s), "time to peak", "s")


def wash_in_slope(
    image: Image,
    *,
    onset_s: float | None = None,
    relative: bool = False,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    mask: Image | None = None,
) -> Image:
    """Wash-in slope ``(S_peak - S0) / (t_peak - onset)`` per second.

    ``onset_s`` defaults to the time of the last baseline frame. With
    ``relative`` the enhancement is in percent (units ``%/s``).
    """
    prep = _Prepared(image, baseline_frames, baseline_until_s, mask)
    t0 = float(prep.times[prep.base_idx[-1]]) if onset_s is None else float(onset_s)
    idx, peak = prep.post_peak()
    rise = 100 * prep.relative(peak) if relative else peak - prep.s0
    dt = prep.times[idx] - t0
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(dt > 0, rise / np.where(dt > 0, dt, 1), np.nan)
    units = "%/s" if relative else (f"{prep.units}/s" if prep.units else "signal/s")
    return prep.finish(slope, "wash-in slope", units)


def wash_out_slope(
    image: Image,
    *,
    end_frame: int = -1,
    relative: bool = False,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    mask: Image | None = None,
) -> Image:
    """Wash-out slope ``(S_end - S_peak) / (t_end - t_peak)`` per second.

    Negative for wash-out; NaN where the peak is the end frame. With
    ``relative`` the signals are percent enhancement (``%/s``).
    """
    prep = _Prepared(image, baseline_frames, baseline_until_s, mask)
    end = frame_at(prep.times, frame=end_frame, at_s=None, what="end")
    idx, peak = prep.post_peak()
    s_end = prep.signal[..., end]
    if relative:
        change = 100 * (prep.relative(s_end) - prep.relative(peak))
    else:
        change = s_end - peak
    dt = prep.times[end] - prep.times[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(dt > 0, change / np.where(dt > 0, dt, 1), np.nan)
    units = "%/s" if relative else (f"{prep.units}/s" if prep.units else "signal/s")
    return prep.finish(slope, "wash-out slope", units)


def enhancement_maps(
    image: Image,
    *,
    baseline_frames: int | None = None,
    baseline_until_s: float | None = None,
    window_s: float | None = None,
    mask: Image | None = None,
) -> dict[str, Image]:
    """All semi-quantitative maps with default options, by name.

    Returns ``percent_enhancement`` (peak), ``ser``, ``time_to_peak_s``,
    ``wash_in_slope``, ``wash_out_slope`` and, when the series lasts
    ``window_s`` (default 60 s) after the baseline, ``iauc``.
    """
    opts = {"baseline_frames": baseline_frames, "baseline_until_s": baseline_until_s, "mask": mask}
    out = {
        "percent_enhancement": percent_enhancement(image, **opts),
        "time_to_peak_s": time_to_peak(image, **opts),
        "wash_in_slope": wash_in_slope(image, **opts),
        "wash_out_slope": wash_out_slope(image, **opts),
    }
    times = image.frame_times_s
    assert times is not None
    base = baseline_indices(times, baseline_frames=baseline_frames,
                            baseline_until_s=baseline_until_s)
    if len(times) - base[-1] - 1 >= 2:
        out["ser"] = signal_enhancement_ratio(image, **opts)
    window = 60.0 if window_s is None else float(window_s)
    if times[base[-1]] + window <= times[-1]:
        out["iauc"] = initial_auc(image, window_s=window, **opts)
    return out
