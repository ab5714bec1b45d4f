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

    Works on any number of slices: an axis of one voxel (a 2D image's
    slice axis) is not smoothed, so a 2D image is filtered in-plane; axes
    of 2 or 3 voxels, too short for ITK's recursive filter, are smoothed
    with :func:`scipy.ndimage.gaussian_filter1d` (the edge value repeated
    beyond the border, as ITK does). Returns float32 (float64 stays
    float64); time series are smoothed frame by frame.

    Raises
    ------
    UnknownSpacingError
        If the image's pixel spacing is unknown (``sigma_mm`` has no size in
        voxels); calibrate it first (:meth:`medlab.Image.with_spacing`).
    """
    import SimpleITK as sitk
    from scipy import ndimage

    sig = np.broadcast_to(np.asarray(sigma_mm, dtype=float), (3,))
    if np.any(sig < 0) or not np.all(np.isfinite(sig)):
        raise ValueError(f"sigma_mm must be >= 0, got {sigma_mm!r}")
    if np.any(sig > 0):
        image.require_spacing("gaussian (sigma_mm)")

    def run(img: Image) -> Image:
        dtype = np.float64 if img.dtype == np.float64 else np.float32
        arr = img.array.astype(dtype, copy=False)
        shape = img.spatial_shape
        short = [ax for ax in range(3) if sig[ax] > 0 and 1 < shape[ax] < 4]
        for ax in short:
            arr = ndimage.gaussian_filter1d(arr, sig[ax] / img.spacing[ax], axis=ax,
                                            mode="nearest", truncate=6.0)
        out = img.with_array(arr).to_simpleitk()
        # separable: one recursive Gaussian per axis long enough for it (ITK order x, y, z)
        for ax in range(3):
            if sig[ax] > 0 and shape[ax] >= 4:
                out = sitk.RecursiveGaussian(out, float(sig[ax]), False,
                                             sitk.RecursiveGaussianImageFilter.ZeroOrder, 2 - ax)
        return img.with_array(sitk.GetArrayFromImage(out).astype(dtype, copy=False))

    return _per_frame(image, run)


def median(image: Image, *, radius_mm: float) -> Image:
    """Median filter over a box of half-width ``radius_mm`` (at least one voxel per axis).

    An axis of one voxel (a 2D image's slice axis) gets radius 0, so a 2D
    image is filtered in-plane. Voxels beyond the border repeat the edge
    value (ITK's zero-flux boundary).

    Raises
    ------
    UnknownSpacingError
        If the image's pixel spacing is unknown; calibrate it first.
    """
    import SimpleITK as sitk

    if not radius_mm > 0:
        raise ValueError(f"radius_mm must be positive, got {radius_mm!r}")
    image.require_spacing("median (radius_mm)")

    def run(img: Image) -> Image:
        radius = [0 if n == 1 else max(1, round(radius_mm / s))
                  for s, n in zip(img.spacing[::-1], img.spatial_shape[::-1], strict=True)]
        out = sitk.Median(img.to_simpleitk(), radius)
        return img.with_array(sitk.GetArrayFromImage(out))

    return _per_frame(image, run)
