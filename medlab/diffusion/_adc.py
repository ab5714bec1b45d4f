"""The apparent diffusion coefficient (ADC), mono-exponential."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validate import require_image
from ..errors import GeometryError
from ..image import Image

__all__ = ["adc"]


def adc(
    image: Image,
    *,
    b_values: Sequence[float] | None = None,
    b_max: float | None = None,
) -> Image:
    """ADC map in mm2/s from a diffusion-weighted image.

    Fits the mono-exponential model ``S(b) = S0 exp(-b ADC)`` voxel by voxel
    by linear least squares on ``log S`` over all volumes used. With several
    gradient directions per b-value this is the ADC of the geometric mean of
    the directions (the "trace" ADC that scanners report).

    Parameters
    ----------
    image : Image
        4D with a ``'diffusion'`` fourth axis (``image.b_values``, s/mm2).
    b_values : sequence of float, optional
        The b-value of each volume in s/mm2, for an image whose fourth axis
        does not say (e.g. a NIfTI without ``.bval`` file).
    b_max : float, optional
        Use only volumes with ``b <= b_max`` (e.g. 1000 to leave out the
        high b-values where the mono-exponential model fails).

    Returns
    -------
    Image
        3D float32 ADC in mm2/s on the image's grid; ``meta['units']`` is
        ``'mm2/s'``, ``meta['quantity']`` ``'ADC'`` and ``meta['b_values_used']``
        lists the b-values fitted. Voxels with a non-positive signal in any
        volume used are NaN.

    Raises
    ------
    GeometryError
        Without b-values, or with fewer than two different b-values.
    """
    require_image(image, "image")
    if image.channels or image.frame_axis is None:
        raise GeometryError(f"adc needs a 4D diffusion-weighted image, got {image!r}")
    b = image.b_values if b_values is None else np.asarray(b_values, dtype=float).ravel()
    if b is None:
        raise GeometryError(
            f"the image's fourth axis is {image.frame_axis}, not diffusion: {image!r}; pass the "
            "b-value of each volume: adc(image, b_values=[0, 1000, ...]) (s/mm2)"
        )
    if b.shape[0] != image.n_frames:
        raise GeometryError(f"{b.shape[0]} b-values were given for {image.n_frames} volumes")
    use = np.ones(b.shape, bool) if b_max is None else b <= b_max
    if len(np.unique(b[use])) < 2:
        raise GeometryError(
            f"an ADC needs at least two different b-values, got {sorted(set(b[use].tolist()))} "
            "s/mm2" + ("" if b_max is None else f" at or below b_max={b_max}")
        )
    bu = b[use]
    signal = np.asarray(image.array[..., use], dtype=np.float64)
    valid = np.all(signal > 0, axis=-1)
    logs = np.log(np.where(signal > 0, signal, 1.0))
    # least squares slope of log S against b, for all voxels at once
    bc = bu - bu.mean()
    slope = (logs - logs.mean(axis=-1, keepdims=True)) @ bc / float(bc @ bc)
    out = np.where(valid, -slope, np.nan).astype(np.float32)
    meta = {k: v for k, v in image.meta.items()
            if k not in ("units", "frame_index", "b_value", "b_vector", "scaling",
                         "acquisition_times_s", "gradient_source", "quantity")}
    meta.update(units="mm2/s", quantity="ADC", b_values_used=sorted(set(bu.tolist())))
    meta["id"] = f"{image.meta.get('id', 'dwi')}-ADC"
    return Image(out, image.affine, meta=meta)
