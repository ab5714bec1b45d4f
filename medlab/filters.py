"""Image filters in physical units (SimpleITK underneath), returning Images on the same grid."""

from __future__ import annotations

import numpy as np

from .errors import GeometryError
from .image import Image

__all__ = ["gaussian", "median"]


def _per_frame(image: Image, fn) -> Image:
    if image.channels:
        raise GeometryError("filters work on grey-scale images; convert RGB to grey first")
    if image.frame_axis is None:
        return fn(image)
    frames = [fn(f).array for f in image.frames()]
    return image.with_array(np.stack(frames, axis=3))


def gaussian(image: Image, *, sigma_mm: float | tuple[float, float, float]) -> Image:
    """Gaussian smoothing with ``sigma_mm`` in millimetres (per axis if a tuple, array order).

    Returns float32 (float64 stays float64); time series are smoothed frame by frame.
    """
    import SimpleITK as sitk

    sig = np.broadcast_to(np.asarray(sigma_mm, dtype=float), (3,))
    if np.any(sig < 0):
        raise ValueError(f"sigma_mm must be >= 0, got {sigma_mm!r}")

    def run(img: Image) -> Image:
        dtype = np.float64 if img.dtype == np.float64 else np.float32
        out = img.with_array(img.array.astype(dtype, copy=False)).to_simpleitk()
        # separable: one recursive Gaussian per axis with a non-zero sigma (ITK order x, y, z)
        for direction, s in enumerate(sig[::-1]):
            if s > 0:
                out = sitk.RecursiveGaussian(out, float(s), False, sitk.RecursiveGaussianImageFilter.ZeroOrder, direction)
        return img.with_array(sitk.GetArrayFromImage(out).astype(dtype, copy=False))

    return _per_frame(image, run)


def median(image: Image, *, radius_mm: float) -> Image:
    """Median filter over a box of half-width ``radius_mm`` (at least one voxel per axis)."""
    import SimpleITK as sitk

    if radius_mm <= 0:
        raise ValueError(f"radius_mm must be positive, got {radius_mm!r}")

    def run(img: Image) -> Image:
        radius = [max(1, round(radius_mm / s)) for s in img.spacing[::-1]]
        out = sitk.Median(img.to_simpleitk(), radius)
        return img.with_array(sitk.GetArrayFromImage(out))

    return _per_frame(image, run)
