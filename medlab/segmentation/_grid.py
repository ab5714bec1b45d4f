"""Shared helpers of the segmentation methods: input checks, label images, seeds.

Every method works in index space on the voxel array and puts its result
back on the source grid (same shape and affine), so oblique and sheared
grids need no resampling. Sizes given in millimetres are converted with the
voxel size along each array axis (the length of the affine's columns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._validate import require_image
from ..errors import GeometryError
from ..image import Image
from ..measure import label_array
from ._common import SegmentationError, grid_extent_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "as_mask",
    "intensity_array",
    "label_dtype",
    "label_names",
    "label_result",
    "mm_to_voxels",
    "seed_indices",
]


def intensity_array(image: Image, what: str = "image") -> np.ndarray:
    """The voxel array of a 3D scalar image, or a clear error for other images."""
    require_image(image, what)
    if image.frame_axis is not None or image.channels:
        raise GeometryError(
            f"{what} must be a single 3D volume, got {image!r}; segment one frame "
            "(image.frame(t)) or one channel (image.with_array(image.array[..., c], channels=False))"
        )
    arr = np.asarray(image.array)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{what} must hold numbers, got dtype {arr.dtype}")
    return arr


def as_mask(mask: Image | npt.ArrayLike | None, image: Image, what: str = "mask") -> np.ndarray | None:
    """A boolean mask on ``image``'s grid (an Image on the same grid, or an array of its shape)."""
    if mask is None:
        return None
    if isinstance(mask, Image):
        mask.match_geometry(image)
        arr = label_array(mask, what)
    else:
        arr = np.asarray(mask)
        if arr.shape != image.spatial_shape:
            raise GeometryError(
                f"{what} has shape {arr.shape} but the image has {image.spatial_shape}; pass a "
                "mask on the image grid (e.g. a medlab.Image made by the same method)"
            )
    out = arr != 0
    if not out.any():
        raise SegmentationError(f"{what} is empty (no non-zero voxel)")
    return out


def label_dtype(max_label: int) -> np.dtype:
    """The smallest unsigned type holding ``max_label`` (uint8, uint16 or uint32)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_label <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


#: how each segmentation method makes its labels (DICOM SEG Segment Algorithm Type)
ALGORITHM_TYPES = {
    "threshold": "AUTOMATIC", "otsu": "AUTOMATIC", "multi_otsu": "AUTOMATIC",
    "hu_preset": "AUTOMATIC", "sliding_window": "AUTOMATIC", "watershed": "AUTOMATIC",
    "connected_threshold": "SEMIAUTOMATIC", "confidence_connected": "SEMIAUTOMATIC",
}


def label_result(
    source: Image,
    labels: np.ndarray,
    *,
    names: Mapping[int, str] | None,
    method: str,
    parameters: Mapping[str, Any] | None = None,
    keep_meta: bool = False,
    algorithm_type: str | None = None,
    **extra: Any,
) -> Image:
    """A label image on ``source``'s grid with the smallest fitting unsigned dtype.

    ``meta['labels']`` maps each label value to a name (the convention of
    :func:`rtstruct_to_labels` and :func:`medlab.measure.label_stats`).
    With ``keep_meta`` (label editing) the source's meta is carried on,
    otherwise only its frame of reference and series UID.
    ``meta['algorithm_type']`` says how the labels were made (MANUAL,
    SEMIAUTOMATIC, AUTOMATIC; what :func:`write_seg` records): given, else
    the method's own (:data:`ALGORITHM_TYPES`), else the source mask's (a
    component or morphology operation keeps how its input was made).
    """
    labels = np.asarray(labels)
    top = int(labels.max()) if labels.size else 0
    if labels.dtype != label_dtype(top):
        labels = labels.astype(label_dtype(top))
    if keep_meta:
        meta = dict(source.meta)
    else:
        meta = {
            "frame_of_reference_uid": source.meta.get("frame_of_reference_uid"),
            "reference_series_uid": source.meta.get("series_uid"),
        }
        # a mask is only as calibrated as the image it was made from
        meta.update({k: source.meta[k] for k in ("spacing_source", "spacing_plane")
                     if k in source.meta})
        if not source.spacing_known:  # so that a refusal can say which image to calibrate
            meta["derived_from"] = source.name
    meta.update(labels=dict(names or {}), method=method, parameters=dict(parameters or {}), **extra)
    algorithm = algorithm_type or ALGORITHM_TYPES.get(method) or source.meta.get("algorithm_type")
    if algorithm:
        meta["algorithm_type"] = algorithm
        meta.setdefault("algorithm_method", method if method in ALGORITHM_TYPES
                        else source.meta.get("algorithm_method", method))
    return Image(labels, source.affine, meta=meta)


def label_names(labels: Image) -> dict[int, str]:
    """The ``{value: name}`` mapping in a label image's meta (empty when there is none)."""
    names = labels.meta.get("labels")
    if isinstance(names, Mapping):
        return {int(k): str(v) for k, v in names.items()}
    return {}


def mm_to_voxels(image: Image, radius_mm: float, what: str = "radius_mm") -> np.ndarray:
    """Per-axis radius in (fractional) voxels of a radius in mm: ``radius_mm / spacing``."""
    r = float(radius_mm)
    if not np.isfinite(r) or r < 0:
        raise ValueError(f"{what} must be a finite distance >= 0 in mm, got {radius_mm!r}")
    image.require_spacing(what)
    return r / np.asarray(image.spacing)


# ------------------------------------------------------------------- seeds
_WORLD_COLUMNS = ("x_mm", "y_mm", "z_mm")
_INDEX_COLUMNS = (("k", "j", "i"), ("slice", "row", "column"))


def _seed_table(seeds: pd.DataFrame, seeds_are_indices: bool) -> np.ndarray:
    columns = set(seeds.columns)
    if seeds_are_indices:
        for names in _INDEX_COLUMNS:
            if columns.issuperset(names):
                return seeds[list(names)].to_numpy(dtype=float)
        raise ValueError(
            "with seeds_are_indices=True a seed table needs columns ('k', 'j', 'i') or "
            f"('slice', 'row', 'column'); got columns {list(seeds.columns)}"
        )
    if columns.issuperset(_WORLD_COLUMNS):
        return seeds[list(_WORLD_COLUMNS)].to_numpy(dtype=float)
    raise ValueError(
        "a seed table needs LPS columns ('x_mm', 'y_mm', 'z_mm') (as the viewer produces), or "
        f"index columns ('k', 'j', 'i') with seeds_are_indices=True; got columns {list(seeds.columns)}"
    )


def seed_indices(
    image: Image,
    seeds: npt.ArrayLike | pd.DataFrame | Iterable[Any],
    *,
    seeds_are_indices: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel indices ``(slice, row, column)`` of seeds, and the seeds as given.

    Seeds are LPS mm points (rounded to the nearest voxel centre) or, with
    ``seeds_are_indices``, voxel indices (which must be whole numbers).

    Raises
    ------
    ValueError
        No seeds, wrong shape, non-integer indices.
    SegmentationError
        A seed lies outside the image (the message names the seed and the
        image extent).
    """
    import pandas as pd

    if isinstance(seeds, pd.DataFrame):
        pts = _seed_table(seeds, seeds_are_indices)
    else:
        try:
            pts = np.asarray(seeds, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "seeds must be a list of (x, y, z) LPS mm points, a (n, 3) array, or a DataFrame "
                f"with columns x_mm, y_mm, z_mm; got {type(seeds).__name__}: {seeds!r:.80}"
            ) from exc
        if pts.shape == (3,):
            pts = pts[np.newaxis]
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise ValueError(
            f"seeds must be n >= 1 points of 3 coordinates each, got an array of shape {pts.shape}"
        )
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"seeds must be finite numbers, got {pts[~np.isfinite(pts).all(1)][0].tolist()}")
    shape = np.asarray(image.spatial_shape)
    if seeds_are_indices:
        if np.any(pts != np.round(pts)):
            bad = pts[np.any(pts != np.round(pts), axis=1)][0]
            raise ValueError(
                f"seed index {bad.tolist()} is not a whole voxel index; pass LPS mm points with "
                "seeds_are_indices=False, or round the indices"
            )
        idx = pts
        inside = np.all((idx >= 0) & (idx <= shape - 1), axis=1)
    else:
        idx = image.world_to_index(pts)
        inside = np.all((idx >= -0.5) & (idx <= shape - 0.5), axis=1)
    if not inside.all():
        n = int(np.argmin(inside))
        unit = "voxel index (slice, row, column)" if seeds_are_indices else "LPS point"
        where = "" if seeds_are_indices else f" (voxel index {np.round(idx[n], 2).tolist()})"
        hint = (
            "voxel indices run from 0 to n-1 along each axis" if seeds_are_indices
            else "check the seed's LPS coordinates (mm), or pass seeds_are_indices=True if the "
            "seeds are voxel indices"
        )
        raise SegmentationError(
            f"seed {n} at {unit} {pts[n].tolist()}{where} lies outside the image: "
            f"{grid_extent_text(image).replace('reference grid', 'image grid')}; {hint}"
        )
    out = np.clip(np.rint(idx), 0, shape - 1).astype(np.int64)
    return out, pts
