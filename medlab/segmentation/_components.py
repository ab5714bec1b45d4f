"""Connected components and label editing (merge, remove, relabel by size)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ..image import Image
from ..measure import label_array, voxel_volume_mm3
from ._common import SegmentationError
from ._grid import label_names, label_result

__all__ = [
    "connected_components",
    "largest_array",
    "largest_component",
    "merge_labels",
    "relabel",
    "remove_labels",
]

_STRUCTURE_RANK = {6: 1, 18: 2, 26: 3}


def _structure(connectivity: int) -> np.ndarray:
    from scipy import ndimage

    if connectivity not in _STRUCTURE_RANK:
        raise ValueError(
            f"connectivity must be 6 (faces), 18 (faces and edges) or 26 (faces, edges and "
            f"corners), got {connectivity!r}"
        )
    return ndimage.generate_binary_structure(3, _STRUCTURE_RANK[connectivity])


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Components sorted by size (1 = largest; ties by scan order) and their voxel counts."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=_structure(connectivity))
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    order = np.argsort(-counts, kind="stable")
    lut = np.zeros(n + 1, dtype=np.int64)
    lut[order + 1] = np.arange(1, n + 1)
    return lut[lab], counts[order]


def largest_array(mask: np.ndarray, *, connectivity: int = 6) -> np.ndarray:
    """The largest connected component of a boolean array (all False if empty)."""
    lab, counts = _components(mask, connectivity)
    return lab == 1 if counts.size else np.zeros(mask.shape, dtype=bool)


def _foreground(mask: Image, what: str) -> np.ndarray:
    return label_array(mask, what) != 0


def connected_components(
    mask: Image, *, min_size_mm3: float | None = None, connectivity: int = 6
) -> Image:
    """Label the connected components of a mask, largest first.

    Parameters
    ----------
    mask : Image
        Binary or label image; every non-zero voxel is foreground (labels
        are not kept apart: two touching labels form one component).
    min_size_mm3 : float, optional
        Drop components smaller than this volume (voxel count times the
        voxel volume); the rest are numbered after dropping.
    connectivity : {6, 18, 26}
        Neighbours that join voxels: sharing a face (6), also an edge
        (18), also a corner (26).

    Returns
    -------
    Image
        Labels 1..n on the mask's grid, 1 = largest (ties in array
        order); ``meta['n_components']``, ``meta['n_removed']``.
    """
    fg = _foreground(mask, "mask")
    lab, counts = _components(fg, connectivity)
    n_removed = 0
    if min_size_mm3 is not None:
        limit = float(min_size_mm3)
        if not np.isfinite(limit) or limit < 0:
            raise ValueError(f"min_size_mm3 must be a volume >= 0 in mm3, got {min_size_mm3!r}")
        mask.require_spacing("connected_components (min_size_mm3)")
        keep = counts * voxel_volume_mm3(mask) >= limit
        n_removed = int((~keep).sum())
        lab[lab > int(keep.sum())] = 0  # sorted by size: the small ones are last
        counts = counts[keep]
    base = _single_name(mask)
    names = {i: f"{base} component {i}" if base else f"component {i}"
             for i in range(1, counts.size + 1)}
    return label_result(mask, lab, names=names, method="connected_components",
                        parameters={"min_size_mm3": min_size_mm3, "connectivity": connectivity},
                        n_components=int(counts.size), n_removed=n_removed)


def largest_component(mask: Image, *, connectivity: int = 6) -> Image:
    """The largest connected component of a mask's non-zero voxels.

    Parameters
    ----------
    mask : Image
        Binary or label image (non-zero = foreground).
    connectivity : {6, 18, 26}
        As in :func:`connected_components`.

    Returns
    -------
    Image
        ``uint8`` mask (1 = the largest component) on the mask's grid. It
        keeps the name of the label it lies in (``meta['labels']``), and
        how the mask was made (``meta['algorithm_type']``).

    Raises
    ------
    SegmentationError
        If the mask is empty.
    """
    fg = _foreground(mask, "mask")
    if not fg.any():
        raise SegmentationError("the mask is empty: it has no component to keep")
    largest = largest_array(fg, connectivity=connectivity)
    values = np.unique(label_array(mask, "mask")[largest.astype(bool)])
    names = label_names(mask)
    name = "+".join(names.get(int(v), str(int(v))) for v in values) if names else None
    return label_result(mask, largest, names={1: name or "largest component"},
                        method="largest_component", parameters={"connectivity": connectivity})


def _single_name(mask: Image) -> str | None:
    """The name of a mask's one label, or None (unnamed, or several labels)."""
    names = label_names(mask)
    return next(iter(names.values())) if len(names) == 1 else None


# ------------------------------------------------------------ label editing
def _labels(labels: Image) -> np.ndarray:
    arr = label_array(labels)
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise ValueError(f"labels must be >= 0 (0 = background), found {int(arr.min())}")
    return arr


def _present(arr: np.ndarray) -> list[int]:
    return [int(v) for v in np.unique(arr) if v != 0]


def _check_values(values: Iterable[int], present: list[int], what: str) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or not float(v).is_integer():
            raise ValueError(f"{what} must be whole label values, got {v!r}")
        out.append(int(v))
    missing = sorted(set(out) - set(present))
    if missing:
        raise SegmentationError(
            f"label(s) {missing} are not in the label image, which holds {present[:20]}"
            + (" ..." if len(present) > 20 else "")
        )
    return out


def _apply_lut(arr: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    top = int(arr.max()) if arr.size else 0
    if top < 2**24:
        lut = np.arange(top + 1, dtype=np.int64)
        for old, new in mapping.items():
            lut[old] = new
        return lut[arr]
    values, inverse = np.unique(arr, return_inverse=True)
    mapped = np.array([mapping.get(int(v), int(v)) for v in values], dtype=np.int64)
    return mapped[inverse].reshape(arr.shape)


def merge_labels(labels: Image, mapping: Mapping[int, int]) -> Image:
    """Give labels new values, e.g. ``{2: 1, 3: 1}`` merges labels 2 and 3 into 1.

    Parameters
    ----------
    labels : Image
        Label image.
    mapping : mapping of int to int
        Old value -> new value (``0`` removes the label). Every old value
        must be present.

    Returns
    -------
    Image
        The edited label image (input meta kept). A new value keeps its
        own name if it had one, otherwise gets the merged names joined by
        ``'+'``.
    """
    if not isinstance(mapping, Mapping) or not mapping:
        raise TypeError(
            f"mapping must be a non-empty dict of old label -> new label (e.g. {{2: 1, 3: 1}}), "
            f"got {mapping!r}"
        )
    arr = _labels(labels)
    present = _present(arr)
    olds = _check_values(mapping.keys(), present, "mapping keys")
    news = [int(v) for v in mapping.values()]
    if any(v < 0 for v in news):
        raise ValueError(f"new label values must be >= 0, got {news}")
    mapping = dict(zip(olds, news, strict=True))
    out = _apply_lut(arr, mapping)
    names = label_names(labels)
    new_names = {v: n for v, n in names.items() if v not in mapping}
    for new in sorted(set(news) - {0}):
        if new in new_names:
            continue
        merged = [names.get(old, str(old)) for old in olds if mapping[old] == new]
        if new in present and new not in mapping:
            merged.insert(0, names.get(new, str(new)))
        new_names[new] = "+".join(merged)
    new_names = {v: new_names[v] for v in _present(out) if v in new_names}
    return label_result(labels, out, names=new_names, method="merge_labels",
                        parameters={"mapping": mapping}, keep_meta=True)


def remove_labels(labels: Image, values: int | Iterable[int]) -> Image:
    """Set the given label values to background (0).

    Parameters
    ----------
    labels : Image
        Label image.
    values : int or iterable of int
        Labels to remove; each must be present.

    Returns
    -------
    Image
        The edited label image; removed labels leave ``meta['labels']``.
    """
    arr = _labels(labels)
    vals = [values] if isinstance(values, (int, np.integer)) else list(values)
    vals = _check_values(vals, _present(arr), "values")
    out = arr.copy()
    out[np.isin(arr, vals)] = 0
    names = {v: n for v, n in label_names(labels).items() if v not in vals}
    return label_result(labels, out, names=names, method="remove_labels",
                        parameters={"values": vals}, keep_meta=True)


def relabel(labels: Image) -> Image:
    """Renumber labels consecutively by size: 1 = most voxels (ties: lower value first).

    Returns
    -------
    Image
        The relabelled image; names follow their labels and
        ``meta['relabel_map']`` maps old to new values.
    """
    arr = _labels(labels)
    values, counts = np.unique(arr, return_counts=True)
    keep = values != 0
    values, counts = values[keep], counts[keep]
    order = np.argsort(-counts, kind="stable")
    mapping = {int(values[i]): n + 1 for n, i in enumerate(order)}
    out = _apply_lut(arr, mapping)
    names = label_names(labels)
    new_names = {new: names[old] for old, new in mapping.items() if old in names}
    return label_result(labels, out, names=new_names, method="relabel", parameters={},
                        keep_meta=True, relabel_map=mapping)
