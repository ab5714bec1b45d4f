"""Threshold segmentation: fixed, Otsu, multi-Otsu and CT Hounsfield-unit presets."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from .._optional import import_optional
from ..image import Image
from ._common import SegmentationError
from ._grid import as_mask, intensity_array, label_result

__all__ = ["HU_PRESETS", "hu_preset", "multi_otsu", "otsu", "threshold"]

Preset = Literal["body", "lung", "bone", "fat", "soft_tissue"]

#: Hounsfield-unit ranges of :func:`hu_preset`, inclusive, ``None`` = open.
#: fat and soft tissue follow the body-composition ranges of Mitsiopoulos
#: et al. (J Appl Physiol 1998): adipose -190..-30 HU, muscle -29..150 HU.
HU_PRESETS: dict[str, tuple[float | None, float | None]] = {
    "body": (-500.0, None),
    "lung": (None, -400.0),
    "bone": (300.0, 3000.0),
    "fat": (-190.0, -30.0),
    "soft_tissue": (-29.0, 150.0),
}


def _bound(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    v = float(value)
    if np.isnan(v):
        raise ValueError(f"{name} must be a number or None, got NaN")
    return v


def _in_range(arr: np.ndarray, lower: float | None, upper: float | None) -> np.ndarray:
    out = np.ones(arr.shape, dtype=bool)
    if lower is not None:
        out &= arr >= lower
    if upper is not None:
        out &= arr <= upper
    return out


def threshold(image: Image, *, lower: float | None = None, upper: float | None = None) -> Image:
    """Voxels whose value lies in ``[lower, upper]`` (both inclusive).

    Parameters
    ----------
    image : Image
        A 3D scalar image.
    lower, upper : float, optional
        Bounds in the image's units (HU for CT, SUV for PET); at least one.
        A missing bound is open.

    Returns
    -------
    Image
        ``uint8`` mask (1 inside, named ``'threshold'``) on the image's grid.

    Examples
    --------
    >>> import medlab as ml, numpy as np
    >>> img = ml.Image(np.arange(8.0).reshape(2, 2, 2), np.eye(4))
    >>> ml.segmentation.threshold(img, lower=2, upper=5).array.ravel().tolist()
    [0, 0, 1, 1, 1, 1, 0, 0]
    """
    arr = intensity_array(image)
    lo, hi = _bound(lower, "lower"), _bound(upper, "upper")
    if lo is None and hi is None:
        raise ValueError("threshold needs lower=..., upper=... or both (in the image's units)")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"lower ({lo}) is above upper ({hi}); swap them")
    return label_result(image, _in_range(arr, lo, hi), names={1: "threshold"}, method="threshold",
                        parameters={"lower": lo, "upper": hi})


def otsu(image: Image, *, mask: Image | npt.ArrayLike | None = None, bins: int = 128) -> Image:
    """Otsu's threshold (SimpleITK ``OtsuThreshold``): voxels above it are foreground.

    Parameters
    ----------
    image : Image
        A 3D scalar image.
    mask : Image or array, optional
        Compute the histogram inside this mask only (same grid); voxels
        outside it are 0 in the result.
    bins : int
        Histogram bins (SimpleITK's default 128).

    Returns
    -------
    Image
        ``uint8`` mask, 1 where the value is ``> meta['threshold']``.
    """
    import SimpleITK as sitk

    arr = intensity_array(image)
    inside = as_mask(mask, image)
    if int(bins) < 2:
        raise ValueError(f"bins must be >= 2, got {bins!r}")
    f = sitk.OtsuThresholdImageFilter()
    f.SetInsideValue(0)  # ITK's "inside" is at or below the threshold
    f.SetOutsideValue(1)
    f.SetNumberOfHistogramBins(int(bins))
    src = Image(arr, image.affine).to_simpleitk(index_space=True)
    if inside is not None:
        f.SetMaskValue(1)
        f.SetMaskOutput(True)
        mask = Image(inside.view(np.uint8), image.affine).to_simpleitk(index_space=True)
        out = f.Execute(src, mask)
    else:
        out = f.Execute(src)
    result = sitk.GetArrayFromImage(out)
    if inside is not None:
        result &= inside
    t = float(f.GetThreshold())
    return label_result(image, result, names={1: "otsu"}, method="otsu",
                        parameters={"bins": int(bins), "masked": inside is not None}, threshold=t)


def multi_otsu(
    image: Image, *, classes: int = 3, mask: Image | npt.ArrayLike | None = None, bins: int = 256
) -> Image:
    """Multi-Otsu thresholds (``skimage.filters.threshold_multiotsu``): ``classes`` intensity classes.

    Parameters
    ----------
    image : Image
        A 3D scalar image.
    classes : int
        Number of classes (>= 2); ``classes - 1`` thresholds.
    mask : Image or array, optional
        Compute the thresholds from the voxels in this mask only; voxels
        outside it are 0 in the result.
    bins : int
        Histogram bins (scikit-image's default 256).

    Returns
    -------
    Image
        Labels ``1 .. classes`` from the darkest to the brightest class
        (a voxel equal to a threshold goes to the upper class, as
        ``numpy.digitize``); ``meta['thresholds']`` lists the thresholds.
    """
    filters = import_optional("skimage.filters", feature="this segmentation method",
                              extra="segmentation", package="scikit-image")
    arr = intensity_array(image)
    inside = as_mask(mask, image)
    classes = int(classes)
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    values = arr[inside] if inside is not None else arr.ravel()
    values = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    try:
        thresholds = filters.threshold_multiotsu(values, classes=classes, nbins=int(bins))
    except ValueError as exc:
        raise SegmentationError(
            f"multi-Otsu with classes={classes} and bins={bins} failed: {exc}. Use fewer classes "
            "or more bins"
        ) from exc
    labels = np.digitize(arr, bins=thresholds) + 1
    if inside is not None:
        labels[~inside] = 0
    names = {c: f"class {c}" for c in range(1, classes + 1)}
    return label_result(image, labels, names=names, method="multi_otsu",
                        parameters={"classes": classes, "bins": int(bins)},
                        thresholds=[float(t) for t in thresholds])


# --------------------------------------------------------------- HU presets
_HU_UNITS = ("HU", "HOUNSFIELD UNIT", "HOUNSFIELD UNITS")


def _check_hu(image: Image, arr: np.ndarray) -> None:
    units = image.meta.get("units")
    modality = str(image.meta.get("modality") or "").upper()
    if units and str(units).upper() in _HU_UNITS:
        return  # stated explicitly: trust it
    if units:
        raise SegmentationError(
            f"hu_preset needs a CT image in Hounsfield units, but this image's units are "
            f"{units!r} (modality {modality or 'unknown'}); use threshold(image, lower=..., "
            "upper=...) with bounds in its own units"
        )
    if modality != "CT":
        raise SegmentationError(
            f"hu_preset needs a CT image in Hounsfield units, but this image's modality is "
            f"{modality or 'unknown'!r}. For another modality use threshold(image, lower=..., "
            "upper=...); if the values are HU (e.g. a CT loaded from NIfTI), set "
            "image.meta['units'] = 'HU' first"
        )
    sample = arr[:: max(1, arr.shape[0] // 16), ::4, ::4]
    sample = sample[np.isfinite(sample)] if np.issubdtype(sample.dtype, np.floating) else sample
    if sample.size == 0:
        raise SegmentationError("the CT image has no finite values")
    lo, hi, p95 = float(sample.min()), float(sample.max()), float(np.percentile(sample, 95))
    if lo >= 0 and p95 > 700:
        raise SegmentationError(
            f"this CT's values ({lo:g} to {hi:g}, 95th percentile {p95:g}) look like stored pixel values "
            "without the rescale (air near 0, water near 1024), not Hounsfield units. Apply the "
            "DICOM RescaleSlope/Intercept (HU = slope * value + intercept, usually intercept "
            "-1024), or set image.meta['units'] = 'HU' if they are HU"
        )
    if hi - lo <= 10:
        raise SegmentationError(
            f"this CT's values span only {lo:g} to {hi:g}: they look normalised, not Hounsfield "
            "units; segment the original HU image, or set image.meta['units'] = 'HU' if they are HU"
        )


def _axial_axis(image: Image) -> int:
    """The array axis closest to the patient's superior-inferior axis."""
    return int(np.argmax(np.abs(image.direction[2])))


def _body(arr: np.ndarray, axial: int) -> np.ndarray:
    from scipy import ndimage

    from ._components import largest_array

    body = largest_array(arr >= HU_PRESETS["body"][0], connectivity=6)
    structure = np.expand_dims(ndimage.generate_binary_structure(2, 1), axial)  # in-plane only
    return ndimage.binary_fill_holes(body, structure=structure)


def hu_preset(image: Image, preset: Preset = "body") -> Image:
    """Segment a CT by a Hounsfield-unit preset.

    Parameters
    ----------
    image : Image
        CT in Hounsfield units: ``meta['modality'] == 'CT'`` (as
        :func:`medlab.load` sets for DICOM) or ``meta['units'] == 'HU'``.
    preset : {'body', 'lung', 'bone', 'fat', 'soft_tissue'}
        Ranges (inclusive, :data:`HU_PRESETS`):

        - ``'body'``: HU >= -500, the largest 6-connected component, with
          holes filled in each axial plane (lungs and bowel gas included,
          the table and blankets dropped when they do not touch the body).
        - ``'lung'``: HU <= -400 inside the body mask (air-filled lung, and
          also trachea and bowel gas).
        - ``'bone'``: 300 to 3000 HU (cortical and dense trabecular bone;
          contrast-filled vessels may reach it).
        - ``'fat'``: -190 to -30 HU (adipose tissue).
        - ``'soft_tissue'``: -29 to 150 HU (muscle and organs).

    Returns
    -------
    Image
        ``uint8`` mask named after the preset; ``meta['hu_range']`` holds
        the range used.

    Raises
    ------
    SegmentationError
        Not a CT, units other than HU, or values that look like stored
        pixel values without the rescale (or normalised values).
    """
    if preset not in HU_PRESETS:
        raise ValueError(f"preset must be one of {sorted(HU_PRESETS)}, got {preset!r}")
    arr = intensity_array(image)
    _check_hu(image, arr)
    lo, hi = HU_PRESETS[preset]
    if preset == "body":
        mask = _body(arr, _axial_axis(image))
    elif preset == "lung":
        mask = _in_range(arr, lo, hi) & _body(arr, _axial_axis(image))
    else:
        mask = _in_range(arr, lo, hi)
    return label_result(image, mask, names={1: preset}, method="hu_preset",
                        parameters={"preset": preset}, hu_range=(lo, hi))
