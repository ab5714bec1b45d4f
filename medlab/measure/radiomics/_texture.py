"""Texture matrices (GLCM, GLRLM, GLSZM, GLDZM, NGTDM, NGLDM) and their aggregation.

Input is a grey-level array ``levels`` (1..Ng inside the intensity mask,
0 outside) with axes (slice, row, column). 2D means in-plane (per slice);
2.5D merges the per-slice matrices over slices; 3D uses the volume.
Every matrix is built in one vectorised pass per direction (no loop over
voxels), and each aggregation method groups the same entries differently.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

from ..._optional import import_optional
from ._matrix import (
    DZM_NAMES,
    NGL_NAMES,
    RLM_NAMES,
    SZM_NAMES,
    count_features,
    glcm_features,
    ngtdm_features,
)

__all__ = ["DIRS_2D", "DIRS_3D", "glcm", "gldzm", "glrlm", "glszm", "ngldm", "ngtdm"]

#: In-plane directions, then the 9 through-plane ones: the 13 unique 3D
#: directions (first non-zero component positive), as (slice, row, column).
DIRS_2D = ((0, 0, 1), (0, 1, 0), (0, 1, 1), (0, 1, -1))
DIRS_3D = (
    *DIRS_2D,
    (1, 0, 0), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0),
    (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1),
)


def pair_slices(shape, offset) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``(src, dst)`` so that ``a[dst]`` is the neighbour at ``offset`` of ``a[src]``."""
    src, dst = [], []
    for n, o in zip(shape, offset, strict=True):
        if o >= 0:
            src.append(slice(0, max(n - o, 0)))
            dst.append(slice(min(o, n), n))
        else:
            src.append(slice(min(-o, n), n))
            dst.append(slice(0, max(n + o, 0)))
    return tuple(src), tuple(dst)


def _mean_over(features: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, float]:
    out = {}
    for name, vals in features.items():
        v = vals[keep]
        v = v[np.isfinite(v)]
        out[name] = float(v.mean()) if v.size else float("nan")
    return out


def _tagged(prefix: str, features: dict[str, float], suffix: str) -> dict[str, float]:
    return {f"{prefix}_{name}_{suffix}": value for name, value in features.items()}


#: Most matrix cells (matrices x levels x levels) held at once, ~400 MB.
MAX_CELLS = 50_000_000


def _compress(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels renumbered 1..L over the L levels present, and those levels."""
    present = np.flatnonzero(np.bincount(levels.ravel())[1:]) + 1
    lut = np.zeros(int(present.max()) + 1, dtype=np.int64)
    lut[present] = np.arange(1, present.size + 1)
    return lut[levels], present


def _check_size(n_matrices: int, n: int, what: str) -> None:
    if n_matrices * n * n > MAX_CELLS:
        raise ValueError(
            f"{what}: {n} grey levels present in the ROI make {n_matrices} matrices of "
            f"{n} x {n} ({n_matrices * n * n:,} cells, more than {MAX_CELLS:,}); discretise "
            "more coarsely (a smaller bin_number or a larger bin_width) or use 3D aggregation"
        )


# --------------------------------------------------------------------- GLCM
def _cooccurrence(levels: np.ndarray, ng: int, offsets, *, by_slice: bool) -> np.ndarray:
    """Symmetric co-occurrence counts, shape (n_slices or 1, n_offsets, Ng, Ng)."""
    nz = levels.shape[0] if by_slice else 1
    out = np.zeros((nz, len(offsets), ng * ng), dtype=np.float64)
    z_index = np.arange(levels.shape[0])
    for d, off in enumerate(offsets):
        src, dst = pair_slices(levels.shape, off)
        a, b = levels[src], levels[dst]
        valid = (a > 0) & (b > 0)
        idx = (a[valid] - 1) * ng + (b[valid] - 1)
        if by_slice:
            z = np.broadcast_to(z_index[src[0]][:, None, None], a.shape)[valid]
            idx = z * (ng * ng) + idx
        out[:, d] = np.bincount(idx, minlength=nz * ng * ng).reshape(nz, ng * ng)
    counts = out.reshape(nz, len(offsets), ng, ng)
    return counts + counts.swapaxes(-1, -2)


def glcm(levels: np.ndarray, ng: int, methods: tuple[str, ...], *, distance: int = 1) -> dict:
    """GLCM features for each aggregation method (tags ``cm_<name>_d<distance>_<method>``)."""
    out: dict[str, float] = {}
    two = [m for m in methods if m.startswith("2")]
    three = [m for m in methods if m.startswith("3")]
    compact, present = _compress(levels)  # matrices over the levels present only
    nl = present.size

    def features(stack):
        return _stack_glcm(stack, present, ng)

    if two:
        _check_size(levels.shape[0] * len(DIRS_2D), nl, "2D GLCM")
        offs = [tuple(distance * c for c in d) for d in DIRS_2D]
        c2 = _cooccurrence(compact, nl, offs, by_slice=True)
        for m in two:
            stack = {
                "2d_avg": lambda: c2.reshape(-1, nl, nl),
                "2d_s_mrg": lambda: c2.sum(axis=1),
                "2_5d_d_mrg": lambda: c2.sum(axis=0),
                "2_5d_v_mrg": lambda: c2.sum(axis=(0, 1))[None],
            }[m]()
            out.update(_tagged("cm", features(stack), f"d{distance}_{m}"))
    if three:
        _check_size(len(DIRS_3D), nl, "3D GLCM")
        offs = [tuple(distance * c for c in d) for d in DIRS_3D]
        c3 = _cooccurrence(compact, nl, offs, by_slice=False)[0]
        for m in three:
            stack = c3 if m == "3d_avg" else c3.sum(axis=0)[None]
            out.update(_tagged("cm", features(stack), f"d{distance}_{m}"))
    return out


def _stack_glcm(stack: np.ndarray, present: np.ndarray, ng: int) -> dict[str, float]:
    keep = stack.sum(axis=(1, 2)) > 0
    if not keep.any():
        return dict.fromkeys(glcm_features(np.ones((1, 1, 1))), float("nan"))
    feats = glcm_features(stack[keep], present, ng)
    return _mean_over(feats, np.ones(int(keep.sum()), dtype=bool))


# -------------------------------------------------------------------- GLRLM
def _runs(levels: np.ndarray, dirs) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(grey level, length, slice of start) of every run, for each unit direction.

    With a zero border, stepping by the flat-index stride ``s`` of a
    direction follows the geometric line and stops at the border, so the
    runs of all lines along a direction are the runs of the chains of flat
    indices with equal ``index mod s``. A run starts where the previous
    voxel of its chain differs and ends where the next one does; sorted by
    (chain, index), starts and ends pair up one to one.
    """
    padded = np.pad(levels, 1)
    flat = padded.ravel()
    strides = (padded.shape[1] * padded.shape[2], padded.shape[2], 1)
    idx = np.flatnonzero(flat)
    grey = flat[idx]
    out = []
    for off in dirs:
        step = int(np.dot(off, strides))  # > 0: the first non-zero component is +1
        starts = idx[flat[idx - step] != grey]
        ends = idx[flat[idx + step] != grey]
        if step > 1:
            starts = np.sort(starts % step * flat.size + starts) % flat.size
            ends = np.sort(ends % step * flat.size + ends) % flat.size
        out.append((flat[starts], (ends - starts) // step + 1, starts // strides[0] - 1))
    return out


def glrlm(levels: np.ndarray, ng: int, methods: tuple[str, ...]) -> dict:
    """GLRLM features for each aggregation method (tags ``rlm_<name>_<method>``)."""
    out: dict[str, float] = {}
    dirs = DIRS_3D if any(m.startswith("3") for m in methods) else DIRS_2D
    runs = _runs(levels, dirs)
    nz = levels.shape[0]
    for m in methods:
        used = runs[:4] if m.startswith("2") else runs
        grey = np.concatenate([r[0] for r in used])
        length = np.concatenate([r[1] for r in used])
        z = np.concatenate([r[2] for r in used])
        d = np.concatenate([np.full(r[0].size, k) for k, r in enumerate(used)])
        group, n_groups = {
            "2d_avg": (z * 4 + d, nz * 4),
            "2d_s_mrg": (z, nz),
            "2_5d_d_mrg": (d, 4),
            "2_5d_v_mrg": (np.zeros_like(z), 1),
            "3d_avg": (d, len(used)),
            "3d_v_mrg": (np.zeros_like(z), 1),
        }[m]
        feats, ns = count_features(group, grey, length, length, n_groups, RLM_NAMES)
        out.update(_tagged("rlm", _mean_over(feats, ns > 0), m))
    return out


# ------------------------------------------------------------ GLSZM, GLDZM
def _label_zones(levels: np.ndarray, in_plane: bool) -> np.ndarray:
    """Connected zones of equal grey level (8-connected in-plane or 26-connected)."""
    measure = import_optional("skimage.measure", feature="GLSZM and GLDZM features",
                               extra="segmentation")
    if not in_plane:
        return measure.label(levels, background=0, connectivity=3)
    # empty slices in between keep 26-connectivity from crossing slices
    nz = levels.shape[0]
    spaced = np.zeros((2 * nz - 1, *levels.shape[1:]), dtype=levels.dtype)
    spaced[::2] = levels
    return measure.label(spaced, background=0, connectivity=3)[::2]


def _zones(levels: np.ndarray, in_plane: bool, distance_mask: np.ndarray | None):
    """(grey, size, slice, distance) of every zone; distance only if a mask is given."""
    labels = _label_zones(levels, in_plane)
    flat = labels.ravel()
    n = int(flat.max())
    size = np.bincount(flat, minlength=n + 1)[1:]
    _, first = np.unique(flat, return_index=True)  # first voxel of each zone
    first = first[1:] if flat[first[0]] == 0 else first
    grey = levels.ravel()[first]
    z = np.unravel_index(first, levels.shape)[0]
    dist = None
    if distance_mask is not None:
        dmap = border_distance(distance_mask, in_plane=in_plane)
        dist = ndimage.minimum(dmap, labels, index=np.arange(1, n + 1)).astype(np.int64)
    return grey, size, z, dist


def border_distance(mask: np.ndarray, *, in_plane: bool) -> np.ndarray:
    """Steps to the ROI border (4-/6-connected), 1 on border voxels, 0 outside."""
    if in_plane:
        metric = np.zeros((3, 3, 3), dtype=bool)
        metric[1] = ndimage.generate_binary_structure(2, 1)
        pad = ((0, 0), (1, 1), (1, 1))
    else:
        metric = ndimage.generate_binary_structure(3, 1)
        pad = ((1, 1),) * 3
    padded = np.pad(mask, pad)
    dist = ndimage.distance_transform_cdt(padded, metric=metric)
    return dist[tuple(slice(p[0], p[0] + n) for p, n in zip(pad, mask.shape, strict=True))]


def _zone_family(prefix, names, levels, dims, distance_mask):
    out: dict[str, float] = {}
    nz = levels.shape[0]
    cache = {}
    for dim in dims:
        in_plane = dim != "3d"
        if in_plane not in cache:
            cache[in_plane] = _zones(levels, in_plane, distance_mask)
        grey, size, z, dist = cache[in_plane]
        j = size if distance_mask is None else dist
        group, n_groups = (z, nz) if dim == "2d" else (np.zeros_like(z), 1)
        feats, ns = count_features(group, grey, j, size, n_groups, names)
        out.update(_tagged(prefix, _mean_over(feats, ns > 0), dim))
    return out


def glszm(levels: np.ndarray, dims: tuple[str, ...]) -> dict:
    """GLSZM features per dimension (tags ``szm_<name>_<dim>``)."""
    return _zone_family("szm", SZM_NAMES, levels, dims, None)


def gldzm(levels: np.ndarray, dims: tuple[str, ...], distance_mask: np.ndarray) -> dict:
    """GLDZM features per dimension (tags ``dzm_<name>_<dim>``).

    The distance of a zone is the smallest border distance of its voxels,
    measured in ``distance_mask`` (4-connected in-plane for 2D and 2.5D,
    6-connected in 3D).
    """
    return _zone_family("dzm", DZM_NAMES, levels, dims, distance_mask)


# ----------------------------------------------------- NGTDM and NGLDM
def _neighbourhood(distance: int, in_plane: bool):
    r = range(-distance, distance + 1)
    offs = [o for o in itertools.product(r, r, r) if any(o) and (not in_plane or o[0] == 0)]
    return offs


def ngtdm(levels: np.ndarray, dims: tuple[str, ...], *, distance: int = 1) -> dict:
    """NGTDM features per dimension (tags ``ngt_<name>_<dim>``).

    A voxel's neighbourhood mean uses only neighbours inside the ROI;
    voxels without any are left out (IBSI).
    """
    out: dict[str, float] = {}
    roi = levels > 0
    nz = levels.shape[0]
    lv = levels.astype(np.float64)
    compact, present = _compress(levels)
    nl = present.size
    for dim in dims:
        in_plane = dim != "3d"
        size = 2 * distance + 1
        kernel = np.ones((1 if in_plane else size, size, size))
        kernel[tuple(k // 2 for k in kernel.shape)] = 0
        total = ndimage.correlate(lv, kernel, mode="constant")
        count = ndimage.correlate(roi.astype(np.float64), kernel, mode="constant")
        valid = roi & (count > 0.5)
        dev = np.abs(levels[valid] - total[valid] / count[valid])
        z = np.nonzero(valid)[0] if dim == "2d" else np.zeros(dev.size, dtype=np.int64)
        n_groups = nz if dim == "2d" else 1
        _check_size(n_groups, nl, f"{dim} NGTDM")
        key = z * nl + (compact[valid] - 1)
        s = np.bincount(key, weights=dev, minlength=n_groups * nl).reshape(n_groups, nl)
        n = np.bincount(key, minlength=n_groups * nl).reshape(n_groups, nl).astype(np.float64)
        keep = n.sum(axis=1) > 0
        if not keep.any():
            feats = dict.fromkeys(ngtdm_features(np.zeros((1, 1)), np.ones((1, 1))), float("nan"))
        else:
            feats = _mean_over(ngtdm_features(s[keep], n[keep], present),
                               np.ones(int(keep.sum()), bool))
        out.update(_tagged("ngt", feats, dim))
    return out


def ngldm(
    levels: np.ndarray, dims: tuple[str, ...], *, distance: int = 1, alpha: float = 0.0
) -> dict:
    """NGLDM features per dimension (tags ``ngl_<name>_d<distance>_a<alpha>_<dim>``).

    The dependence of a voxel is 1 plus the number of its neighbours in the
    ROI whose grey level differs by at most ``alpha``.
    """
    out: dict[str, float] = {}
    roi = levels > 0
    nz = levels.shape[0]
    padded = np.pad(levels, distance)
    inner = tuple(slice(distance, distance + n) for n in levels.shape)
    for dim in dims:
        in_plane = dim != "3d"
        dep = np.ones(levels.shape, dtype=np.int64)
        for off in _neighbourhood(distance, in_plane):
            nb = padded[tuple(slice(s.start + o, s.stop + o) for s, o in zip(inner, off, strict=True))]
            dep += (nb > 0) & (np.abs(nb - levels) <= alpha)
        grey = levels[roi]
        j = dep[roi]
        z = np.nonzero(roi)[0] if dim == "2d" else np.zeros(grey.size, dtype=np.int64)
        n_groups = nz if dim == "2d" else 1
        feats, ns = count_features(z, grey, j, np.ones(grey.size), n_groups, NGL_NAMES)
        out.update(_tagged("ngl", _mean_over(feats, ns > 0), f"d{distance}_a{alpha:g}_{dim}"))
    return out
