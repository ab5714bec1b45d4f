"""Motion correction of a time series: every frame registered to a reference frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..image import Image
from ._common import require_series, spatial_mask

__all__ = ["MotionCorrection", "motion_correct", "transform_motion"]

_MAX_POINTS = 20000


@dataclass
class MotionCorrection:
    """The result of :func:`motion_correct`.

    Attributes
    ----------
    corrected : Image
        The series with every frame resampled onto the reference frame
        (float32, same grid and frame times).
    motion : pandas.DataFrame
        One row per frame: ``frame``, ``time_s``, ``translation_x_mm``,
        ``translation_y_mm``, ``translation_z_mm`` (LPS displacement of the
        grid centre), ``rotation_deg`` (angle of the rotation),
        ``mean_displacement_mm`` and ``max_displacement_mm`` over the
        voxels (of ``mask`` when given) and the registration's
        ``final_metric``. The reference frame has zeros.
    registrations : list
        The :class:`medlab.registration.RegistrationResult` of each frame
        (None for the reference), in the frame's (proxy) space.
    reference : int
        Index of the reference frame.
    """

    corrected: Image
    motion: pd.DataFrame
    registrations: list[Any] = field(default_factory=list)
    reference: int = 0


def _proxy(frame: Image) -> tuple[Image, np.ndarray]:
    """A single slice re-expressed on an axial grid (2D registration works in x-y).

    Returns the proxy and the 3x3 matrix taking proxy (x, y, z) directions to LPS.
    """
    aff = frame.affine
    sp = frame.spacing
    col_dir, row_dir = aff[:3, 2] / sp[2], aff[:3, 1] / sp[1]
    normal = np.cross(col_dir, row_dir)
    proxy_aff = np.array([[0, 0, sp[2], 0], [0, sp[1], 0, 0], [sp[0], 0, 0, 0], [0, 0, 0, 1.0]])
    to_lps = np.stack([col_dir, row_dir, normal], axis=1)
    return Image(frame.array, proxy_aff, meta=frame.meta), to_lps


def transform_motion(result: Any, reference: Image, *, mask: np.ndarray | None = None,
                     to_lps: np.ndarray | None = None) -> dict[str, float]:
    """Translation, rotation and displacement statistics of a linear registration.

    ``result.transform`` maps reference (fixed) points to the frame's
    (moving) points, so the numbers describe how the frame's content moved.
    """
    centre = reference.center
    ends = centre + np.eye(3)
    mapped = result.transform_points(np.vstack([centre, ends]))
    shift = mapped[0] - centre
    linear = (mapped[1:] - mapped[0]).T
    u, _, vt = np.linalg.svd(linear)
    rot = u @ vt
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0))))
    shape = np.asarray(reference.spatial_shape)
    if mask is not None and mask.any():
        idx = np.argwhere(mask)
    else:
        stride = max(1, int(np.ceil((np.prod(shape) / _MAX_POINTS) ** (1 / 3))))
        grids = np.meshgrid(*[np.arange(0, n, stride if n > 1 else 1) for n in shape], indexing="ij")
        idx = np.stack([g.ravel() for g in grids], axis=1)
    if len(idx) > _MAX_POINTS:
        idx = idx[np.linspace(0, len(idx) - 1, _MAX_POINTS).astype(int)]
    pts = reference.index_to_world(idx)
    disp = np.linalg.norm(result.transform_points(pts) - pts, axis=1)
    if to_lps is not None:
        shift = to_lps @ shift
    return {"translation_x_mm": float(shift[0]), "translation_y_mm": float(shift[1]),
            "translation_z_mm": float(shift[2]), "rotation_deg": angle,
            "mean_displacement_mm": float(disp.mean()), "max_displacement_mm": float(disp.max())}


def motion_correct(
    series: Image,
    *,
    reference: int = 0,
    transform: Literal["rigid", "affine"] = "rigid",
    metric: Literal["mattes", "correlation", "mean_squares"] = "mattes",
    mask: Image | None = None,
    progress: bool = False,
    **registration_options: Any,
) -> MotionCorrection:
    """Register every frame to a reference frame and resample it there.

    Uses :func:`medlab.registration.rigid` (or ``affine``) per frame, with
    the reference frame fixed. Single-slice series (cines) are registered
    in their own image plane, whatever its orientation.

    Parameters
    ----------
    series : Image
        A scalar time series (3D frames or single slices).
    reference : int
        Index of the reference frame.
    transform : {'rigid', 'affine'}
        Transform of each frame.
    metric : {'mattes', 'correlation', 'mean_squares'}
        Similarity metric; mutual information (default) tolerates the
        intensity changes of contrast enhancement.
    mask : Image, optional
        3D region of the reference frame where the metric is evaluated and
        the displacement is averaged.
    progress : bool
        Show each registration's progress bar.
    **registration_options
        Passed to the registration (``levels``, ``sampling``, ``iterations``...).

    Returns
    -------
    MotionCorrection
        ``.corrected`` series, per-frame ``.motion`` table, ``.registrations``.
    """
    from .. import registration

    require_series(series, "series")
    n = series.n_frames
    if not -n <= reference < n:
        raise IndexError(f"reference frame {reference} is out of range for {n} frames")
    reference %= n
    if transform not in ("rigid", "affine"):
        raise ValueError(f"transform must be 'rigid' or 'affine', got {transform!r}")
    register = getattr(registration, transform)
    keep = spatial_mask(series, mask)
    single = series.spatial_shape[0] == 1

    def prepared(img: Image) -> tuple[Image, np.ndarray | None]:
        img = img.with_array(np.asarray(img.array, dtype=np.float32), meta={})
        return _proxy(img) if single else (img, None)

    fixed, to_lps = prepared(series.frame(reference))
    fixed_mask = None
    if keep is not None:
        fixed_mask = Image(keep.astype(np.uint8), fixed.affine)
    out = np.empty(series.shape, dtype=np.float32)
    times = series.frame_times_s
    assert times is not None
    rows, results = [], []
    zero = {"translation_x_mm": 0.0, "translation_y_mm": 0.0, "translation_z_mm": 0.0,
            "rotation_deg": 0.0, "mean_displacement_mm": 0.0, "max_displacement_mm": 0.0}
    for t in range(n):
        if t == reference:
            out[..., t] = fixed.array
            rows.append({"frame": t, "time_s": float(times[t]), **zero, "final_metric": np.nan})
            results.append(None)
            continue
        moving, _ = prepared(series.frame(t))
        res = register(fixed, moving, metric=metric, fixed_mask=fixed_mask, progress=progress,
                       **registration_options)
        out[..., t] = res.resample(moving, default_value=0.0).array
        motion = transform_motion(res, fixed, mask=keep, to_lps=to_lps)
        rows.append({"frame": t, "time_s": float(times[t]), **motion,
                     "final_metric": res.final_metric})
        results.append(res)
    meta = dict(series.meta, motion_corrected=True, motion_reference_frame=reference)
    corrected = series.with_array(out, meta=meta)
    return MotionCorrection(corrected=corrected, motion=pd.DataFrame(rows),
                            registrations=results, reference=reference)
