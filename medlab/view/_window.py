"""Window/level: presets and automatic windows (one implementation for all views)."""

from __future__ import annotations

import numpy as np

from ..image import Image

__all__ = ["CMAPS", "WINDOW_PRESETS", "apply_window", "auto_window", "resolve_window", "window_scaled"]

#: colour maps offered in the slice viewer's menu (matplotlib names)
CMAPS = ("gray", "bone", "hot", "inferno", "viridis", "magma", "jet")

#: (width, level) in the image's units (HU for CT).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "ct_brain": (80.0, 40.0),
    "ct_subdural": (215.0, 75.0),
    "ct_stroke": (40.0, 40.0),
    "ct_soft_tissue": (400.0, 40.0),
    "ct_abdomen": (350.0, 50.0),
    "ct_liver": (150.0, 30.0),
    "ct_mediastinum": (350.0, 50.0),
    "ct_lung": (1500.0, -600.0),
    "ct_bone": (1800.0, 400.0),
}


def auto_window(image: Image, *, percentiles: tuple[float, float] = (1.0, 99.0)) -> tuple[float, float]:
    """A (width, level) covering the given percentiles of the non-background voxels.

    CT images get the soft-tissue preset; other modalities (MR, PET, ...)
    a percentile window, which suits their arbitrary units.
    """
    if str(image.meta.get("modality", "")).upper() == "CT":
        return WINDOW_PRESETS["ct_soft_tissue"]
    data = np.asarray(image.array)
    if data.size > 2_000_000:  # a strided sample is plenty for percentiles
        data = data.ravel()[:: data.size // 1_000_000]
    data = data[np.isfinite(data)] if data.dtype.kind == "f" else data.ravel()
    if data.size == 0:
        return 1.0, 0.0
    nonzero = data[data != data.min()] if np.any(data != data.min()) else data
    lo, hi = np.percentile(nonzero, percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return float(hi - lo), float((hi + lo) / 2)


def resolve_window(
    image: Image, window: str | tuple[float, float] | None
) -> tuple[float, float]:
    """(width, level) from a preset name, an explicit pair, or None (automatic)."""
    if window is None:
        return auto_window(image)
    if isinstance(window, str):
        key = window.lower().replace(" ", "_").replace("-", "_")
        if key not in WINDOW_PRESETS and f"ct_{key}" in WINDOW_PRESETS:
            key = f"ct_{key}"
        if key not in WINDOW_PRESETS:
            raise ValueError(
                f"unknown window preset {window!r}; choose one of {sorted(WINDOW_PRESETS)} "
                "or pass (width, level)"
            )
        return WINDOW_PRESETS[key]
    width, level = (float(v) for v in window)
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    return width, level


def apply_window(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """Map values to [0, 1] with the DICOM linear window (PS3.3 C.11.2.1.2)."""
    lo = level - 0.5 - (width - 1) / 2
    return np.clip((np.asarray(values, dtype=np.float32) - lo) / max(width - 1, 1e-6), 0.0, 1.0)


def window_scaled(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """Values scaled by a window but not clipped: 0 at its bottom, 1 at its top.

    Two images of different ranges (scanners, modalities) become comparable
    after each is scaled by its own window: the compare views subtract them.
    """
    lo = level - 0.5 - (width - 1) / 2
    return (np.asarray(values, dtype=np.float64) - lo) / max(width - 1, 1e-6)
