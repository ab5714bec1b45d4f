"""IBSI image processing: resampling, re-segmentation, masks and discretisation.

Everything works on a block cropped around the ROI (with a margin wide
enough for the local-intensity sphere), so the cost follows the ROI size,
not the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ... import geometry as geo
from ..._validate import require_image
from ...errors import GeometryError
from ...image import Image
from ._config import RadiomicsConfig

__all__ = ["Prepared", "discretise", "prepare"]

#: Radius in mm of a 1 cm^3 sphere (IBSI local intensity peak).
PEAK_RADIUS_MM = float((3.0 / (4.0 * np.pi)) ** (1.0 / 3.0) * 10.0)


@dataclass
class Prepared:
    """An ROI ready for feature computation.

    Attributes
    ----------
    intensity : ndarray of float64
        Image block after resampling and rounding (all voxels, ROI or not).
    morph_mask, int_mask : ndarray of bool
        Morphological mask (after resampling) and intensity mask (after
        re-segmentation), on the same block.
    spacing : (3,) tuple of float
        Voxel size in mm (slice, row, column).
    """

    intensity: np.ndarray
    morph_mask: np.ndarray
    int_mask: np.ndarray
    spacing: tuple[float, float, float]

    @property
    def values(self) -> np.ndarray:
        """Intensities of the intensity-mask voxels (C order)."""
        return self.intensity[self.int_mask]


def _roi_mask(mask: Image, label: int | None) -> np.ndarray:
    arr = np.asarray(mask.array)
    if mask.frame_axis is not None or mask.channels or arr.ndim != 3:
        raise GeometryError(f"mask must be a 3D image, got {mask!r}")
    if label is None:
        if arr.dtype != np.bool_ and np.issubdtype(arr.dtype, np.floating):
            finite = arr[np.isfinite(arr)]
            if finite.size and not np.array_equal(finite, np.round(finite)):
                raise ValueError(
                    f"mask holds fractional values (e.g. {finite[finite != np.round(finite)][:3]}); "
                    "threshold it first, e.g. mask.with_array(mask.array >= 0.5)"
                )
        return arr != 0
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"label must be an integer label value, got {label!r}")
    return arr == label


def _check_inputs(image: Image, mask: Image, label: int | None) -> tuple[np.ndarray, np.ndarray]:
    require_image(image, "image")
    require_image(mask, "mask")
    image.require_spacing("radiomics")
    mask.require_spacing("radiomics")
    if image.frame_axis is not None or image.channels or image.ndim != 3:
        raise GeometryError(
            f"radiomics needs a 3D scalar image, got {image!r}; pass one frame "
            "(image.frame(t)) or channel"
        )
    image.match_geometry(mask)
    if not geo.is_orthogonal(image.affine):
        raise GeometryError(
            f"radiomics needs an orthogonal voxel grid, got a sheared one ({image!r}, e.g. CT "
            "with gantry tilt); resample image and mask first: "
            "image.resample_to(image.orthogonal_grid())"
        )
    roi = _roi_mask(mask, label)
    if not roi.any():
        what = "non-zero voxels" if label is None else f"voxels with label {label}"
        present = np.unique(np.asarray(mask.array))[:10].tolist()
        raise ValueError(f"the mask has no {what} (values present: {present}); nothing to measure")
    values = np.asarray(image.array)
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(f"image must hold real numbers, got dtype {values.dtype}")
    if values.dtype.kind == "f" and not np.isfinite(values[roi]).all():
        bad = int(np.count_nonzero(~np.isfinite(values[roi])))
        raise ValueError(
            f"{bad} ROI voxels hold NaN or infinite intensities; remove them from the mask "
            "(e.g. mask.with_array(mask.array & np.isfinite(image.array)))"
        )
    return values, roi


def _bbox(mask: np.ndarray) -> list[tuple[int, int]]:
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        out.append((int(nz[0]), int(nz[-1]) + 1))
    return out


def prepare(
    image: Image, mask: Image, config: RadiomicsConfig, *, label: int | None = None
) -> Prepared:
    """Resample, crop and re-segment an image and ROI as the IBSI prescribes.

    The resampled grid follows the IBSI convention: ``n_new = ceil(n * s /
    s_new)`` voxels per axis, centred on the original grid. The mask is
    interpolated the same way (linear by default) and kept where it is at
    least ``config.mask_threshold``; that is the morphological mask. The
    intensity mask is the morphological mask less the voxels outside
    ``config.resegmentation_range`` and, if ``config.outlier_sigma`` is
    set, those further than that many standard deviations from the mean.

    Raises
    ------
    ValueError
        If the ROI is empty, before or after re-segmentation.
    """
    values, roi = _check_inputs(image, mask, label)
    old_spacing = np.asarray(image.spacing, dtype=float)
    shape_old = np.asarray(values.shape)
    target = config.spacing
    if target is None:
        new_spacing = old_spacing.copy()
    else:
        steps = (target,) * 3 if isinstance(target, (int, float)) else target  # a tuple by now
        new_spacing = np.array([o if t is None else t for o, t in zip(old_spacing, steps, strict=True)])
    scale = new_spacing / old_spacing
    resample = not np.allclose(scale, 1.0)
    if resample:
        shape_new = np.ceil(shape_old * old_spacing / new_spacing - 1e-9).astype(int)
        offset = ((shape_old - 1) - (shape_new - 1) * scale) / 2.0
    else:
        shape_new, offset, scale = shape_old.copy(), np.zeros(3), np.ones(3)

    # block of the new grid around the ROI, wide enough for the peak sphere
    box_old = _bbox(roi)
    margin = np.ceil((PEAK_RADIUS_MM + 1e-6) / new_spacing).astype(int) + 1
    lo, hi = [], []
    for ax in range(3):
        a_old, b_old = box_old[ax][0] - 1, box_old[ax][1]  # ROI extent incl. interpolation
        a = int(np.floor((a_old - offset[ax]) / scale[ax])) - margin[ax]
        b = int(np.ceil((b_old - offset[ax]) / scale[ax])) + 1 + margin[ax]
        lo.append(max(a, 0))
        hi.append(min(b, int(shape_new[ax])))
    out_shape = tuple(h - low for low, h in zip(lo, hi, strict=True))

    if resample:
        order = {"nearest": 0, "linear": 1, "cubic": 3}[config.interpolation]
        intensity = _resample_block(values, lo, out_shape, scale, offset, order)
        mask_order = 0 if config.mask_interpolation == "nearest" else 1
        mask_f = _resample_block(roi.astype(np.float32), lo, out_shape, scale, offset, mask_order)
        morph = mask_f >= config.mask_threshold - 1e-6
    else:
        block = tuple(slice(low, h) for low, h in zip(lo, hi, strict=True))
        intensity = np.asarray(values[block], dtype=np.float64)
        morph = roi[block].copy()
    if config.round_intensities:
        intensity = np.round(intensity)
    if not morph.any():
        raise ValueError(
            f"the ROI vanished when resampled to {tuple(new_spacing.round(4))} mm "
            f"(mask threshold {config.mask_threshold}); use a smaller spacing or "
            "mask_interpolation='nearest'"
        )
    int_mask = _resegment(intensity, morph, config)
    return Prepared(
        intensity=intensity,
        morph_mask=morph,
        int_mask=int_mask,
        spacing=tuple(float(s) for s in new_spacing),  # type: ignore[arg-type]
    )


def _resample_block(values, lo, out_shape, scale, offset, order) -> np.ndarray:
    """Values on new-grid indices ``lo + k`` (k < out_shape), new -> old index affine."""
    start_old = offset + scale * np.asarray(lo, dtype=float)
    end_old = start_old + scale * (np.asarray(out_shape) - 1)
    pad = 2 if order <= 1 else 8  # the cubic spline prefilter reaches further
    a = np.maximum(np.floor(np.minimum(start_old, end_old)).astype(int) - pad, 0)
    b = np.minimum(np.ceil(np.maximum(start_old, end_old)).astype(int) + pad + 1, values.shape)
    src = np.asarray(values[a[0]:b[0], a[1]:b[1], a[2]:b[2]], dtype=np.float64)
    return ndimage.affine_transform(
        src, scale, offset=start_old - a, output_shape=tuple(out_shape), order=order,
        mode="nearest", prefilter=order > 1,
    )


def _resegment(intensity: np.ndarray, morph: np.ndarray, config: RadiomicsConfig) -> np.ndarray:
    int_mask = morph.copy()
    rng = config.resegmentation_range
    if rng is not None:
        low, high = rng
        if low is not None:
            int_mask &= intensity >= low
        if high is not None:
            int_mask &= intensity <= high
        if not int_mask.any():
            vals = intensity[morph]
            raise ValueError(
                f"no ROI voxel lies in the re-segmentation range {rng} (ROI intensities span "
                f"{vals.min():g} to {vals.max():g}); widen resegmentation_range or set it to None"
            )
    if config.outlier_sigma is not None:
        vals = intensity[int_mask]
        mu, sd = vals.mean(), vals.std()
        k = config.outlier_sigma
        int_mask &= (intensity >= mu - k * sd) & (intensity <= mu + k * sd)
    return int_mask


def discretise(
    values: np.ndarray,
    method: str,
    *,
    bin_number: int,
    bin_width: float,
    lower_bound: float | None,
) -> tuple[np.ndarray, int]:
    """IBSI discretisation of ROI intensities into grey levels 1..Ng.

    Parameters
    ----------
    values : ndarray
        Intensities of the ROI voxels.
    method : {'fbn', 'fbs', 'none'}
        ``'fbn'``: ``floor(Ng (x - min) / (max - min)) + 1`` (the maximum
        goes to Ng). ``'fbs'``: ``floor((x - x0) / w) + 1`` with ``x0``
        the lower bound (re-segmentation range) or the ROI minimum.
        ``'none'``: the intensities themselves (positive integers).
    bin_number, bin_width, lower_bound
        Parameters of ``'fbn'`` and ``'fbs'``.

    Returns
    -------
    levels : ndarray of int64
        Grey level of each value.
    n_levels : int
        Ng: the bin number for ``'fbn'``, the highest level otherwise.
    """
    values = np.asarray(values, dtype=np.float64)
    if method == "fbn":
        vmin, vmax = values.min(), values.max()
        if vmax > vmin:
            levels = np.floor(bin_number * (values - vmin) / (vmax - vmin)).astype(np.int64) + 1
            levels = np.minimum(levels, bin_number)
        else:
            levels = np.ones(values.shape, dtype=np.int64)
        return levels, int(bin_number)
    if method == "fbs":
        x0 = values.min() if lower_bound is None else lower_bound
        levels = np.floor((values - x0) / bin_width + 1e-9).astype(np.int64) + 1
        levels = np.maximum(levels, 1)
        return levels, int(levels.max())
    if method == "none":
        rounded = np.round(values)
        if not np.allclose(values, rounded, atol=1e-6) or rounded.min() < 1:
            raise ValueError(
                "discretisation='none' uses the intensities as grey levels, so they must be "
                f"positive integers; got values from {values.min():g} to {values.max():g}"
                + ("" if np.allclose(values, rounded, atol=1e-6) else " with fractions")
                + ". Use discretisation='fbs' or 'fbn' instead"
            )
        levels = rounded.astype(np.int64)
        return levels, int(levels.max())
    raise ValueError(f"unknown discretisation {method!r}; use 'fbn', 'fbs' or 'none'")
