"""Label maps stored as images (NIfTI, NRRD, MHA): read, check, map onto a grid."""

from __future__ import annotations

import os

import numpy as np

from .. import geometry as geo
from .._validate import require_image
from ..errors import GeometryError
from ..image import Image
from ._common import Outside, SegmentationError, check_outside, grid_extent_text

__all__ = ["read_labels"]


def _as_integer(image: Image, source: str) -> Image:
    arr = image.array
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return image
    if not np.issubdtype(arr.dtype, np.floating):
        raise SegmentationError(f"{source} holds {arr.dtype} values, not labels")
    finite = np.isfinite(arr)
    if not finite.all() or np.any(arr != np.round(arr)):
        bad = arr[~finite] if not finite.all() else arr[arr != np.round(arr)]
        raise SegmentationError(
            f"{source} is not a label map: it holds non-integer values (e.g. {bad.flat[0].item()!r}). "
            "Load a probability or intensity image with ml.load(path) instead"
        )
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    for dtype in (np.uint8, np.uint16, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            break
    meta = dict(image.meta, converted_from=str(arr.dtype))
    return image.with_array(arr.astype(dtype), meta=meta)


def _foreground_outside(labels: Image, reference: Image) -> tuple[int, int]:
    """(labelled voxels whose centre falls outside the reference grid, all labelled voxels)."""
    mapping = np.linalg.inv(reference.affine) @ labels.affine
    hi = np.asarray(reference.spatial_shape, dtype=float) - 0.5
    n_out = n_all = 0
    for k in range(labels.spatial_shape[0]):  # slice by slice: bounded memory
        jk = np.argwhere(labels.array[k] != 0)
        if jk.size == 0:
            continue
        idx = np.column_stack([np.full(len(jk), k), jk])
        ref_idx = geo.apply_affine(mapping, idx)
        n_out += int(np.any((ref_idx < -0.5 - 1e-3) | (ref_idx > hi + 1e-3), axis=1).sum())
        n_all += len(jk)
    return n_out, n_all


def read_labels(
    path: str | os.PathLike,
    reference: Image | None = None,
    *,
    outside: Outside = "error",
) -> Image:
    """Read a label map from NIfTI, NRRD or MHA, optionally onto a reference grid.

    Parameters
    ----------
    path : path
        A label image (any format :func:`medlab.load` reads except DICOM;
        for DICOM use :func:`read_seg` or :func:`rtstruct_to_labels`).
    reference : Image, optional
        Resample the labels onto this grid with nearest neighbour.
    outside : {'error', 'clip'}
        With a reference: labelled voxels whose centres fall outside the
        reference grid raise an error saying how many, or are dropped
        (``meta['voxels_outside']`` counts them).

    Returns
    -------
    Image
        Integer labels (the file's integer dtype is kept; float files whose
        values are all whole numbers become the smallest fitting integer
        type). ``meta['labels']`` lists the non-zero label values.

    Raises
    ------
    SegmentationError
        Non-integer values, or a time series / multi-channel image.
    medlab.errors.GeometryError
        The labels and the reference do not overlap in space, or (with
        ``outside='error'``) labelled voxels lie outside the reference.
    """
    from ..io import detect_format, load

    check_outside(outside)
    source = str(path)
    fmt = detect_format(path)
    if fmt == "dicom":
        raise SegmentationError(
            f"{source} is DICOM: read a DICOM SEG with read_seg(path) and an RTSTRUCT with "
            "rtstruct_to_labels(path, reference)"
        )
    image = load(path)
    if image.ndim != 3:
        raise SegmentationError(
            f"{source} has shape {image.shape}: a label map needs 3 spatial axes only "
            "(one 3D volume, no time or channel axis)"
        )
    image = _as_integer(image, source)
    meta = dict(image.meta, source=source)
    if reference is not None:
        require_image(reference, "reference")
        n_out, n_all = _foreground_outside(image, reference)
        if n_all and n_out == n_all:
            raise GeometryError(
                f"the labels of {source} do not overlap the {grid_extent_text(reference)} at "
                f"all (label grid: {grid_extent_text(image).removeprefix('reference grid ')}); "
                "check that both are in the same patient coordinates"
            )
        if n_out and outside == "error":
            raise GeometryError(
                f"{n_out} of {n_all} labelled voxels of {source} lie outside the "
                f"{grid_extent_text(reference)}; use a reference covering them or pass "
                "outside='clip' to drop them"
            )
        image = image.resample_to(reference, interpolation="nearest")
        meta.update(voxels_outside=n_out, reference_series_uid=reference.meta.get("series_uid"))
    values = np.unique(image.array)
    meta["labels"] = [v.item() for v in values if v != 0]
    return image.with_array(image.array, meta=meta)
