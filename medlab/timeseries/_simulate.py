"""Simulated data with known truth: a DCE volume and a lesion follow-up.

For demonstrations and tests: :func:`simulate_tofts_volume` turns Ktrans / ve
maps into a noisy SPGR signal series (the path a real acquisition takes), and
:func:`simulate_follow_up` grows a lesion by a known in-plane dilation and
shifts the anatomy by a known whole-voxel translation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..image import Image
from ._aif import AIF
from ._kinetics import tofts
from ._signal import spgr_signal

__all__ = ["simulate_follow_up", "simulate_tofts_volume"]


def simulate_tofts_volume(
    ktrans: npt.ArrayLike,
    ve: npt.ArrayLike,
    *,
    times_s: npt.ArrayLike,
    aif: AIF,
    snr: float | None = 50.0,
    flip_angle_deg: float = 25.0,
    tr_s: float = 0.005,
    t10_s: float = 1.0,
    r1: float = 4.5,
    m0: float = 1000.0,
    spacing_mm: Sequence[float] = (3.0, 1.5, 1.5),
    seed: int | None = 0,
) -> tuple[Image, dict[str, np.ndarray]]:
    """A noisy SPGR signal series of a Tofts volume with known parameters.

    Parameters
    ----------
    ktrans, ve : array_like
        Parameter maps (/min and fraction), broadcast to one 3D shape.
    times_s : array_like
        Frame times, seconds from the first frame.
    aif : AIF
        Plasma input function (e.g. ``parker_aif(delay_s=30)``).
    snr : float or None
        Baseline signal (mean over voxels) over the noise standard deviation;
        None for no noise.
    flip_angle_deg, tr_s, t10_s, r1, m0
        SPGR flip angle (degrees), repetition time (s), pre-contrast T1 (s),
        relaxivity (/mM/s) and equilibrium magnetisation.
    spacing_mm : (float, float, float)
        Voxel spacing along the array axes (diagonal affine).
    seed : int or None
        Seed of the noise.

    Returns
    -------
    (Image, dict)
        The signal series (``meta['repetition_time_s']`` set) and the truth:
        ``ktrans``, ``ve`` (3D arrays) and ``concentration`` (mM, 4D).
    """
    kt, v = np.broadcast_arrays(np.asarray(ktrans, float), np.asarray(ve, float))
    if kt.ndim != 3:
        raise ValueError(f"ktrans and ve must broadcast to a 3D shape, got {kt.shape}")
    times = np.asarray(times_s, dtype=float)
    conc = tofts(times, aif, ktrans=kt, ve=v)
    signal = spgr_signal(1 / (1 / t10_s + r1 * conc), flip_angle_deg=flip_angle_deg, tr_s=tr_s,
                         m0=m0)
    if snr is not None:
        rng = np.random.default_rng(seed)
        signal = signal + rng.normal(0, signal[..., 0].mean() / snr, signal.shape)
    img = Image(signal, np.diag([*map(float, spacing_mm), 1.0]), frame_times_s=times,
                meta={"repetition_time_s": tr_s})
    return img, {"ktrans": kt.copy(), "ve": v.copy(), "concentration": conc}


def simulate_follow_up(
    image: Image,
    mask: Image,
    *,
    growth_iterations: int = 2,
    shift_voxels: Sequence[int] = (0, 0, 0),
    fill: float | None = None,
    background: float = -1000.0,
) -> tuple[Image, Image]:
    """A follow-up of ``image`` whose lesion grew and whose anatomy moved, both known.

    The lesion ``mask`` is dilated in-plane (4-connected, along array axes 1
    and 2) ``growth_iterations`` times; the new rim takes ``fill`` (default
    the lesion's median). The whole volume is then translated by
    ``shift_voxels`` (array axes; uncovered voxels get ``background``).

    Returns
    -------
    (Image, Image)
        The follow-up image and its lesion mask, on ``image``'s grid. The
        shift in scanner millimetres is ``image.affine[:3, :3] @ shift_voxels``.
    """
    from scipy import ndimage

    lesion = np.asarray(mask.array, bool)
    if lesion.shape != image.spatial_shape:
        raise ValueError(f"mask shape {lesion.shape} differs from image {image.spatial_shape}")
    shift = np.asarray(shift_voxels, dtype=int)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    grown = (ndimage.binary_dilation(lesion, in_plane, iterations=growth_iterations)
             if growth_iterations > 0 else lesion.copy())
    arr = np.asarray(image.array).astype(np.float32)
    arr[grown & ~lesion] = np.median(arr[lesion]) if fill is None else fill
    moved = np.full_like(arr, background)
    moved_mask = np.zeros_like(grown)
    src = tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(shift, arr.shape, strict=True))
    dst = tuple(slice(max(0, s), n - max(0, -s)) for s, n in zip(shift, arr.shape, strict=True))
    moved[dst], moved_mask[dst] = arr[src], grown[src]
    return image.with_array(moved), image.with_array(moved_mask)
