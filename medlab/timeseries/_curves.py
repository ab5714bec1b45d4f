"""Time-intensity curves of a region, a label map, voxels or points, as tidy tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..image import Image
from ..measure import label_stats
from ..measure.stats import image_units
from ._common import require_image, require_series

__all__ = ["curves"]

_COLUMNS = ["label", "name", "frame", "time_s", "mean", "std", "median", "n", "units"]


def curves(
    image: Image,
    roi: Image | npt.ArrayLike | None = None,
    *,
    labels: int | Iterable[int] | None = None,
    label_names: Mapping[int, str] | Sequence[str] | None = None,
    voxel: npt.ArrayLike | None = None,
    point_lps: npt.ArrayLike | None = None,
    resample: Literal["labels"] | None = None,
) -> pd.DataFrame:
    """Time-intensity curves: the statistics of a region in every frame.

    This is medlab's one implementation of time-intensity curves (the
    viewer's curve tool calls it).

    Parameters
    ----------
    image : Image
        A scalar time series (``frame_times_s`` set; RGB cines must be
        converted to one channel first).
    roi : Image or array_like, optional
        A 3D mask (bool: one curve) or label map (one curve per label value
        > 0) on the image's grid. Integer ``(slice, row, column)`` indices
        are taken as ``voxel``, floating-point coordinates as ``point_lps``.
        None (and no ``voxel``/``point_lps``) gives the curve of the whole
        image.
    labels : int or iterable of int, optional
        With a label map: the label values to report (default all present).
    label_names : mapping or sequence of str, optional
        Names of label values (``{1: 'tumour'}``), or of labels 1, 2, ...;
        default the label map's ``meta['labels']``.
    voxel : (3,) or (n, 3) array_like of int, optional
        Voxel indices ``(slice, row, column)``: one single-voxel curve each
        (labels 1..n).
    point_lps : (3,) or (n, 3) array_like of float, optional
        LPS points in mm: the curve of the voxel holding each point.
    resample : {None, 'labels'}
        ``'labels'`` resamples a ROI on another grid onto the image's grid
        (nearest neighbour); None requires the same grid.

    Returns
    -------
    pandas.DataFrame
        One row per curve and frame: ``label``, ``name``, ``frame``,
        ``time_s`` (seconds from the first frame, as the image's
        ``frame_times_s``; irregular sampling kept), ``mean``, ``std``
        (population, ``ddof=0``), ``median``, ``n`` (voxels), ``units``.

    Raises
    ------
    TimeSeriesError
        If ``image`` is not a scalar time series.
    GeometryMismatchError
        If the ROI is on another grid and ``resample`` is None.
    IndexError
        For a voxel or point outside the image.

    Examples
    --------
    >>> import medlab as ml, numpy as np
    >>> img = ml.Image(np.ones((1, 2, 2, 3)) * [1.0, 2.0, 4.0], np.eye(4), frame_times_s=[0, 5, 12])
    >>> ml.timeseries.curves(img)[["time_s", "mean", "n"]]
       time_s  mean  n
    0     0.0   1.0  4
    1     5.0   2.0  4
    2    12.0   4.0  4
    """
    require_series(image, "image", min_frames=1)
    if roi is not None and not isinstance(roi, Image):
        as_array = np.asarray(roi)
        if np.issubdtype(as_array.dtype, np.integer):
            roi, voxel = None, as_array if voxel is None else voxel
        elif np.issubdtype(as_array.dtype, np.floating):
            roi, point_lps = None, as_array if point_lps is None else point_lps
        else:
            raise TypeError(f"roi must be an Image, voxel indices or an LPS point, got "
                            f"{type(roi).__name__}")
    given = [x is not None for x in (roi, voxel, point_lps)]
    if sum(given) > 1:
        raise ValueError("give one of roi, voxel or point_lps, not several")
    if voxel is not None or point_lps is not None:
        return _voxel_curves(image, voxel=voxel, point_lps=point_lps)
    if roi is None:
        roi = image.frame(0).with_array(np.ones(image.spatial_shape, dtype=np.uint8),
                                        meta={"labels": {1: "image"}})
    require_image(roi, "roi")
    if not (image.spacing_known and roi.spacing_known):
        # curves are intensities only (no mm): measure on the placeholder grid, said to be so
        image, roi = (im.with_spacing(im.spacing, source="pixels (intensities only)",
                                      plane="unknown") for im in (image, roi))
    stats = label_stats(image, roi, label_names=label_names, percentiles=(), resample=resample,
                        shape=False)
    if labels is not None:
        wanted = [int(labels)] if isinstance(labels, (int, np.integer)) else [int(v) for v in labels]
        missing = sorted(set(wanted) - set(stats["label"].unique().tolist()))
        if missing:
            present = sorted(stats["label"].unique().tolist())
            raise ValueError(f"labels {missing} are not in the ROI (present: {present})")
        stats = stats[stats["label"].isin(wanted)]
    out = stats.rename(columns={"voxel_count": "n"})
    if roi.array.dtype == np.bool_ or (out["name"].isna().all() and set(out["label"]) == {1}):
        out["name"] = out["name"].fillna("roi")
    return out[_COLUMNS].reset_index(drop=True)


def _voxel_curves(image: Image, *, voxel: npt.ArrayLike | None,
                  point_lps: npt.ArrayLike | None) -> pd.DataFrame:
    shape = np.asarray(image.spatial_shape)
    if voxel is not None:
        idx = np.atleast_2d(np.asarray(voxel))
        if idx.shape[-1] != 3 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(
                f"voxel must be integer (slice, row, column) indices, shape (3,) or (n, 3), got "
                f"{np.asarray(voxel).tolist()}; for a position in mm use point_lps="
            )
        names = [f"voxel ({k}, {j}, {i})" for k, j, i in idx.tolist()]
    else:
        pts = np.atleast_2d(np.asarray(point_lps, dtype=float))
        if pts.shape[-1] != 3:
            raise ValueError(f"point_lps must be LPS mm, shape (3,) or (n, 3), got {pts.shape}")
        idx = np.rint(image.world_to_index(pts)).astype(int)
        names = [f"point ({x:.1f}, {y:.1f}, {z:.1f}) mm" for x, y, z in pts.tolist()]
    bad = np.any((idx < 0) | (idx >= shape), axis=1)
    if bad.any():
        raise IndexError(
            f"voxel {idx[bad][0].tolist()} is outside the image of spatial shape {tuple(shape)}"
        )
    times = image.frame_times_s
    assert times is not None
    units = image_units(image)
    rows = []
    for number, ((k, j, i), name) in enumerate(zip(idx.tolist(), names, strict=True), start=1):
        values = np.asarray(image.array[k, j, i], dtype=np.float64)
        for t, (time, value) in enumerate(zip(times, values, strict=True)):
            rows.append((number, name, t, float(time), float(value), 0.0, float(value), 1, units))
    return pd.DataFrame(rows, columns=_COLUMNS)
