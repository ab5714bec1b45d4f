"""Input checks and small helpers shared by the time-series functions."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import require_image as _require_image
from ..errors import GeometryError, MedlabError
from ..image import Image

_HOW = ("load one with ml.load(path) or wrap an array with "
        "ml.Image(array, affine, frame_times_s=times)")


class TimeSeriesError(MedlabError, ValueError):
    """A time series, its timing or an option does not fit the computation asked for."""


def require_image(obj: object, what: str) -> Image:
    """``obj`` if it is a :class:`medlab.Image`, else a clear TypeError (medlab._validate's,
    with how to make a time series)."""
    return _require_image(obj, what, hint=_HOW)


def require_series(image: object, what: str = "image", *, min_frames: int = 2) -> Image:
    """A scalar time series (an Image with ``frame_times_s``), else a clear error."""
    require_image(image, what)
    assert isinstance(image, Image)
    if image.frame_times_s is None:
        if image.frame_axis is not None:
            raise TimeSeriesError(
                f"{what}'s fourth axis is {image.frame_axis}, not time: {image!r}. If its "
                f"volumes really are time points, give their times: "
                f"{what}.with_array({what}.array, frame_times_s=times_s)"
            )
        raise TimeSeriesError(
            f"{what} must be a time series (an Image with frame_times_s), got {image!r}; "
            "load a dynamic series with ml.load(path) or build one with "
            "ml.Image(array, affine, frame_times_s=times_s)"
        )
    if image.channels:
        raise TimeSeriesError(
            f"{what} has {image.shape[-1]} channels (e.g. RGB): {image!r}; convert it to one "
            f"scalar channel first, e.g. {what}.with_array({what}.array.mean(axis=-1), "
            "channels=False)"
        )
    if image.n_frames < min_frames:
        raise TimeSeriesError(f"{what} needs at least {min_frames} frames, got {image.n_frames}")
    times = image.frame_times_s
    assert times is not None
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise TimeSeriesError(
            f"the frame times of {what} must be finite and strictly increasing, got "
            f"{np.round(times, 3).tolist()[:10]}..."
        )
    return image


def as_float(array: Any) -> np.ndarray:
    """``array`` as float32 (float64 stays float64), without copying when possible."""
    arr = np.asarray(array)
    if arr.dtype == np.float64:
        return arr
    return arr.astype(np.float32, copy=False)


def baseline_indices(
    times_s: np.ndarray, *, baseline_frames: int | None, baseline_until_s: float | None
) -> np.ndarray:
    """Indices of the baseline (pre-contrast) frames.

    ``baseline_frames`` takes the first n frames, ``baseline_until_s`` the
    frames acquired at or before that time; neither means the first frame.
    At least one frame must be left after the baseline.
    """
    n = len(times_s)
    if baseline_frames is not None and baseline_until_s is not None:
        raise ValueError(
            f"give either baseline_frames ({baseline_frames}) or baseline_until_s "
            f"({baseline_until_s}), not both"
        )
    if baseline_until_s is not None:
        idx = np.flatnonzero(times_s <= float(baseline_until_s) + 1e-9)
        if idx.size == 0:
            raise ValueError(
                f"no frame is acquired at or before baseline_until_s={baseline_until_s} s; "
                f"the first frame is at {times_s[0]:g} s"
            )
    else:
        count = 1 if baseline_frames is None else int(baseline_frames)
        if count < 1:
            raise ValueError(f"baseline_frames must be >= 1, got {baseline_frames}")
        idx = np.arange(min(count, n))
    if idx[-1] >= n - 1:
        raise ValueError(
            f"the baseline takes {idx.size} of the {n} frames (up to {times_s[idx[-1]]:g} s), "
            "which leaves no frame after it; use fewer baseline frames"
        )
    return idx


def spatial_mask(image: Image, mask: Image | None, what: str = "mask") -> np.ndarray | None:
    """The boolean array of ``mask`` on ``image``'s grid (None stays None)."""
    if mask is None:
        return None
    require_image(mask, what)
    if mask.frame_times_s is not None or mask.channels:
        raise GeometryError(f"{what} must be a 3D mask, got {mask!r}")
    image.match_geometry(mask)
    arr = np.asarray(mask.array)
    return arr.astype(bool) if arr.dtype != np.bool_ else arr


def map_image(source: Image, array: np.ndarray, *, quantity: str, units: str | None) -> Image:
    """A 3D parameter map on ``source``'s spatial grid, keeping its identifying metadata."""
    keep = ("modality", "series_uid", "study_uid", "frame_of_reference_uid", "patient_position",
            "files", "id", "series_description")
    meta = {k: source.meta[k] for k in keep if k in source.meta}
    meta.update(quantity=quantity, units=units, derived_from=source.meta.get("series_uid"))
    return Image(array, source.affine, meta=meta)


def frame_at(times_s: np.ndarray, *, frame: int | None, at_s: float | None, what: str) -> int:
    """A frame index from an index or the time nearest ``at_s``."""
    n = len(times_s)
    if frame is not None and at_s is not None:
        raise ValueError(f"give either {what} frame ({frame}) or its time ({at_s} s), not both")
    if at_s is not None:
        return int(np.argmin(np.abs(times_s - float(at_s))))
    if frame is None:
        raise ValueError(f"the {what} frame is not set")
    if not -n <= int(frame) < n:
        raise IndexError(f"{what} frame {frame} is out of range for {n} frames")
    return int(frame) % n
