"""Binary morphology with radii in millimetres, for masks and label images.

The structuring element is a ball of ``radius_mm`` in patient space: on an
anisotropic grid, an ellipsoid whose semi-axis along each array axis is
``radius_mm / spacing`` voxels. The operations are computed exactly from
Euclidean distance maps in mm (SimpleITK ``SignedMaurerDistanceMap`` with
the voxel sizes): a voxel is in the dilation of a mask
when a mask voxel centre lies within ``radius_mm`` of its centre, and in
the erosion when no background voxel centre does. Work is cropped to each
label's bounding box plus the radius, so the cost follows the object, not
the volume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from ..image import Image
from ..measure import label_array, label_boxes
from ._grid import label_names, label_result

__all__ = ["closing", "dilate", "erode", "fill_holes", "opening"]

#: voxel centres radius_mm away count as inside the ball; the relative margin (0.5 um at
#: 5 mm) is far above the float32 error of the distance maps (~1e-6) and far below voxel sizes
_REL_TOL = 1e-4


def _distance_to(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance in mm from each voxel centre to the nearest True voxel centre (<= 0 on True
    voxels), by SimpleITK's exact Euclidean ``SignedMaurerDistanceMap``. ``mask`` must hold
    a True voxel."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    img.SetSpacing([float(v) for v in spacing[::-1]])
    d = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False,
                                     useImageSpacing=True)
    return sitk.GetArrayFromImage(d)


def _within(d: np.ndarray, r: float) -> np.ndarray:
    return d <= r * (1.0 + _REL_TOL) + 1e-9


def _dilate(mask: np.ndarray, r: float, spacing: np.ndarray) -> np.ndarray:
    if not mask.any():
        return mask.copy()
    return _within(_distance_to(mask, spacing), r)


def _erode(mask: np.ndarray, r: float, spacing: np.ndarray) -> np.ndarray:
    """Erosion; voxels outside the array count as foreground (the mask does not shrink
    from the edge of the field of view)."""
    if mask.all():
        return mask.copy()
    return mask & ~_within(_distance_to(~mask, spacing), r)


_OPS: dict[str, Callable[[np.ndarray, float, np.ndarray], np.ndarray]] = {
    "dilate": _dilate,
    "erode": _erode,
    "opening": lambda m, r, s: _dilate(_erode(m, r, s), r, s),
    "closing": lambda m, r, s: _erode(_dilate(m, r, s), r, s),
}
#: margins (in radii) around a label's box that the operation can reach or depend on
_REACH = {"dilate": 1, "erode": 1, "opening": 1, "closing": 2}


def _radius(radius_mm: float) -> float:
    try:
        r = float(radius_mm)
    except (TypeError, ValueError):
        raise TypeError(f"radius_mm must be a number of millimetres, got {radius_mm!r}") from None
    if not np.isfinite(r) or r < 0:
        raise ValueError(f"radius_mm must be a finite distance >= 0 mm, got {radius_mm!r}")
    return r


def _labels_of(labels: Image, label: int | None) -> tuple[np.ndarray, list[int]]:
    arr = label_array(labels)
    present = sorted(label_boxes(arr))
    if label is None:
        return arr, present
    if int(label) not in present:
        raise ValueError(f"label {label!r} is not in the label image, which holds {present[:20]}")
    return arr, [int(label)]


def _morph(op: str, labels: Image, radius_mm: float, label: int | None) -> Image:
    r = _radius(radius_mm)
    labels.require_spacing(f"{op} (radius_mm)")
    arr, values = _labels_of(labels, label)
    spacing = np.asarray(labels.spacing)
    shape = np.asarray(arr.shape)
    margin = (np.ceil(r / spacing).astype(int) + 1) * _REACH[op]
    boxes = label_boxes(arr)
    out = arr.copy()
    claimed = np.zeros(arr.shape, dtype=bool)
    for value in values:
        box = boxes[value]
        lo = np.array([s.start for s in box]) - margin
        hi = np.array([s.stop for s in box]) + margin
        inner = tuple(slice(a, b) for a, b in zip(np.maximum(lo, 0), np.minimum(hi, shape), strict=True))
        crop = arr[inner] == value
        if op == "closing":  # zero padding beyond the image: closing stays extensive at the edge
            pad = np.stack([np.maximum(-lo, 0), np.maximum(hi - shape, 0)], axis=1)
            res = _OPS[op](np.pad(crop, pad), r, spacing)
            res = res[tuple(slice(a, a + n) for a, n in zip(pad[:, 0], crop.shape, strict=True))]
        else:
            res = _OPS[op](crop, r, spacing)
        view = out[inner]
        view[crop & ~res] = 0
        # grow only into background of the input, first come (lower label) first served
        grow = res & ~crop & (arr[inner] == 0) & ~claimed[inner]
        view[grow] = value
        claimed[inner] |= grow
    return label_result(labels, out, names=label_names(labels), method=op,
                        parameters={"radius_mm": r, "label": label}, keep_meta=True)


def dilate(labels: Image, *, radius_mm: float, label: int | None = None) -> Image:
    """Grow each label by ``radius_mm``.

    Parameters
    ----------
    labels : Image
        Binary mask or label image; with several labels each is processed
        on its own.
    radius_mm : float
        Radius in mm of the ball structuring element (an ellipsoid of
        ``radius_mm / spacing`` voxels along each array axis).
    label : int, optional
        Process only this label; the others stay as they are.

    Returns
    -------
    Image
        Same grid, dtype and label names. Growing never overwrites another
        label: a background voxel reached by several labels takes the
        lowest value.
    """
    return _morph("dilate", labels, radius_mm, label)


def erode(labels: Image, *, radius_mm: float, label: int | None = None) -> Image:
    """Shrink each label by ``radius_mm``.

    Voxels outside the image count as foreground (as in ITK), so a mask
    touching the edge of the field of view does not shrink from it.

    Parameters
    ----------
    labels : Image
        Binary mask or label image; with several labels each is processed
        on its own.
    radius_mm : float
        Radius in mm of the ball structuring element (an ellipsoid of
        ``radius_mm / spacing`` voxels along each array axis).
    label : int, optional
        Process only this label; the others stay as they are.

    Returns
    -------
    Image
        Same grid, dtype and label names.
    """
    return _morph("erode", labels, radius_mm, label)


def opening(labels: Image, *, radius_mm: float, label: int | None = None) -> Image:
    """Erode then dilate: removes parts thinner than ``2 * radius_mm``.

    Parameters
    ----------
    labels : Image
        Binary mask or label image; with several labels each is processed
        on its own.
    radius_mm : float
        Radius in mm of the ball structuring element (an ellipsoid of
        ``radius_mm / spacing`` voxels along each array axis).
    label : int, optional
        Process only this label; the others stay as they are.

    Returns
    -------
    Image
        Same grid, dtype and label names.
    """
    return _morph("opening", labels, radius_mm, label)


def closing(labels: Image, *, radius_mm: float, label: int | None = None) -> Image:
    """Dilate then erode: closes gaps and notches narrower than ``2 * radius_mm``.

    Beyond the image counts as background, so the result contains the input.

    Parameters
    ----------
    labels : Image
        Binary mask or label image; with several labels each is processed
        on its own.
    radius_mm : float
        Radius in mm of the ball structuring element (an ellipsoid of
        ``radius_mm / spacing`` voxels along each array axis).
    label : int, optional
        Process only this label; the others stay as they are.

    Returns
    -------
    Image
        Same grid, dtype and label names. Growing never overwrites another
        label: a background voxel reached by several labels takes the
        lowest value.
    """
    return _morph("closing", labels, radius_mm, label)


def fill_holes(
    labels: Image, *, label: int | None = None, mode: Literal["3d", "slice"] = "3d"
) -> Image:
    """Fill the holes of each label: background regions it encloses completely.

    Parameters
    ----------
    labels : Image
        Binary mask or label image.
    label : int, optional
        Fill only this label.
    mode : {'3d', 'slice'}
        ``'3d'``: a hole is background not 6-connected to the image border
        in 3D (as ``sitk.BinaryFillhole``). ``'slice'``: holes are filled
        in each plane of the first array axis (axial for DICOM axial
        series), so a tube open at its ends gets filled too.

    Returns
    -------
    Image
        Same grid, dtype and label names. Only background voxels are
        filled; another label inside a hole is kept.
    """
    from scipy import ndimage

    if mode not in ("3d", "slice"):
        raise ValueError(f"mode must be '3d' or 'slice', got {mode!r}")
    arr, values = _labels_of(labels, label)
    structure = ndimage.generate_binary_structure(3, 1)
    if mode == "slice":
        structure[0] = structure[2] = False
    boxes = label_boxes(arr)
    out = arr.copy()
    for value in values:
        box = boxes[value]  # a hole lies inside its label's bounding box
        crop = arr[box] == value
        filled = ndimage.binary_fill_holes(crop, structure=structure)
        view = out[box]
        view[filled & (view == 0)] = value
    return label_result(labels, out, names=label_names(labels), method="fill_holes",
                        parameters={"label": label, "mode": mode}, keep_meta=True)
