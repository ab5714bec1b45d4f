"""Feature formulas of the texture matrices (IBSI chapter 1, sections 3.6-3.11).

Each function takes a stack of matrices (or the lists of entries of
sparse ones) and returns one value per matrix, so that every aggregation
(per slice, per direction, merged) is a grouping of the same inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DZM_NAMES",
    "GLCM_NAMES",
    "NGL_NAMES",
    "NGT_NAMES",
    "RLM_NAMES",
    "SZM_NAMES",
    "count_features",
    "glcm_features",
    "ngtdm_features",
]

GLCM_NAMES = (
    "joint_max", "joint_avg", "joint_var", "joint_entr", "diff_avg", "diff_var", "diff_entr",
    "sum_avg", "sum_var", "sum_entr", "energy", "contrast", "dissimilarity", "inv_diff",
    "inv_diff_norm", "inv_diff_mom", "inv_diff_mom_norm", "inv_var", "corr", "auto_corr",
    "clust_tend", "clust_shade", "clust_prom", "info_corr1", "info_corr2",
)
# The run-length, size-zone, distance-zone and dependence matrices share
# one set of 16 formulas (short/long "j", low/high grey "i", ...).
RLM_NAMES = (
    "sre", "lre", "lgre", "hgre", "srlge", "srhge", "lrlge", "lrhge", "glnu", "glnu_norm",
    "rlnu", "rlnu_norm", "r_perc", "gl_var", "rl_var", "rl_entr",
)
SZM_NAMES = (
    "sze", "lze", "lgze", "hgze", "szlge", "szhge", "lzlge", "lzhge", "glnu", "glnu_norm",
    "zsnu", "zsnu_norm", "z_perc", "gl_var", "zs_var", "zs_entr",
)
DZM_NAMES = (
    "sde", "lde", "lgze", "hgze", "sdlge", "sdhge", "ldlge", "ldhge", "glnu", "glnu_norm",
    "zdnu", "zdnu_norm", "z_perc", "gl_var", "zd_var", "zd_entr",
)
NGL_NAMES = (
    "lde", "hde", "lgce", "hgce", "ldlge", "ldhge", "hdlge", "hdhge", "glnu", "glnu_norm",
    "dcnu", "dcnu_norm", "dc_perc", "gl_var", "dc_var", "dc_entr", "dc_energy",
)
NGT_NAMES = ("coarseness", "contrast", "busyness", "complexity", "strength")


def _xlogx(p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(p)
    pos = p > 0
    out[pos] = p[pos] * np.log2(p[pos])
    return out


def glcm_features(
    counts: np.ndarray, levels: np.ndarray | None = None, n_levels: int | None = None
) -> dict[str, np.ndarray]:
    """The 25 IBSI GLCM features of each matrix in a stack.

    Parameters
    ----------
    counts : (K, L, L) array
        Co-occurrence counts, each matrix with a positive sum.
    levels : (L,) array, optional
        Grey level of each row and column (default 1..L): matrices may be
        restricted to the levels present in the ROI.
    n_levels : int, optional
        Ng, the number of grey levels of the discretisation (default L),
        used by the normalised inverse differences.

    Returns
    -------
    dict
        Feature name -> (K,) values.
    """
    k_, nl, _ = counts.shape
    lv = np.arange(1, nl + 1, dtype=np.float64) if levels is None else np.asarray(levels, float)
    ng = int(lv.max()) if n_levels is None else int(n_levels)
    p = counts / counts.sum(axis=(1, 2), keepdims=True)
    pi = p.sum(axis=2)
    pj = p.sum(axis=1)
    mu_i = pi @ lv
    mu_j = pj @ lv
    var_i = ((lv[None, :] - mu_i[:, None]) ** 2 * pi).sum(axis=1)
    var_j = ((lv[None, :] - mu_j[:, None]) ** 2 * pj).sum(axis=1)

    # diagonal (|i-j| = k, k = 0..Ng-1) and cross-diagonal (i+j = k, k = 2..2Ng) sums
    li = lv.astype(np.int64)
    diff = np.abs(li[:, None] - li[None, :]).ravel()
    total = (li[:, None] + li[None, :] - 2).ravel()
    rows = np.repeat(np.arange(k_), nl * nl)
    flat = p.reshape(-1)
    p_diff = np.bincount(
        rows * ng + np.tile(diff, k_), weights=flat, minlength=k_ * ng
    ).reshape(k_, ng)
    p_sum = np.bincount(
        rows * (2 * ng - 1) + np.tile(total, k_), weights=flat, minlength=k_ * (2 * ng - 1),
    ).reshape(k_, 2 * ng - 1)
    kd = np.arange(ng, dtype=np.float64)
    ks = np.arange(2, 2 * ng + 1, dtype=np.float64)

    diff_avg = p_diff @ kd
    sum_avg = p_sum @ ks
    hxy = -_xlogx(p).sum(axis=(1, 2))
    hx = -_xlogx(pi).sum(axis=1)
    hy = -_xlogx(pj).sum(axis=1)
    # HXY1 = -sum p_ij log2(p_i p_j) and HXY2 = -sum p_i p_j log2(p_i p_j) both equal HX + HY
    hxy1 = hx + hy
    auto_corr = np.einsum("kij,i,j->k", p, lv, lv)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (auto_corr - mu_i * mu_j) / np.sqrt(var_i * var_j)
        info1 = (hxy - hxy1) / np.maximum(hx, hy)
    info2 = np.sqrt(np.clip(1.0 - np.exp(-2.0 * (hxy1 - hxy)), 0.0, None))
    centred = ks[None, :] - (mu_i + mu_j)[:, None]
    inv_var_w = np.zeros(ng)
    inv_var_w[1:] = 1.0 / kd[1:] ** 2
    return {
        "joint_max": p.max(axis=(1, 2)),
        "joint_avg": mu_i,
        "joint_var": var_i,
        "joint_entr": hxy,
        "diff_avg": diff_avg,
        "diff_var": ((kd[None, :] - diff_avg[:, None]) ** 2 * p_diff).sum(axis=1),
        "diff_entr": -_xlogx(p_diff).sum(axis=1),
        "sum_avg": sum_avg,
        "sum_var": ((ks[None, :] - sum_avg[:, None]) ** 2 * p_sum).sum(axis=1),
        "sum_entr": -_xlogx(p_sum).sum(axis=1),
        "energy": (p * p).sum(axis=(1, 2)),
        "contrast": p_diff @ kd**2,
        "dissimilarity": diff_avg,
        "inv_diff": p_diff @ (1.0 / (1.0 + kd)),
        "inv_diff_norm": p_diff @ (1.0 / (1.0 + kd / ng)),
        "inv_diff_mom": p_diff @ (1.0 / (1.0 + kd**2)),
        "inv_diff_mom_norm": p_diff @ (1.0 / (1.0 + kd**2 / ng**2)),
        "inv_var": p_diff @ inv_var_w,
        "corr": corr,
        "auto_corr": auto_corr,
        "clust_tend": (centred**2 * p_sum).sum(axis=1),
        "clust_shade": (centred**3 * p_sum).sum(axis=1),
        "clust_prom": (centred**4 * p_sum).sum(axis=1),
        "info_corr1": info1,
        "info_corr2": info2,
    }


def count_features(
    group: np.ndarray,
    grey: np.ndarray,
    size: np.ndarray,
    voxels: np.ndarray,
    n_groups: int,
    names: tuple[str, ...],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features of sparse (grey level, size) matrices, one per group.

    Each entry is one run, zone or voxel: ``grey`` is its grey level i,
    ``size`` its run length, zone size, zone distance or dependence j,
    and ``voxels`` how many ROI voxels it stands for (the denominator of
    the percentage feature). Matrix element ``m_ij`` of group ``g`` is
    the number of its entries with that (i, j).

    Returns
    -------
    features : dict
        ``names[k]`` -> (n_groups,) values (NaN for an empty group).
    n_entries : (n_groups,) array
        Entries per group (0 marks an empty group).
    """
    g = np.asarray(group, dtype=np.int64)
    gi = np.asarray(grey, dtype=np.int64)
    gj = np.asarray(size, dtype=np.int64)
    nv = np.bincount(g, weights=voxels, minlength=n_groups)
    i_top, j_top = int(gi.max()) + 1, int(gj.max()) + 1
    # the non-zero matrix cells m_ij of every group, with their counts
    cells, counts = np.unique((g * i_top + gi) * j_top + gj, return_counts=True)
    c = counts.astype(np.float64)
    cg = cells // (i_top * j_top)
    i = ((cells // j_top) % i_top).astype(np.float64)
    j = (cells % j_top).astype(np.float64)

    def total(w: np.ndarray) -> np.ndarray:
        return np.bincount(cg, weights=c * w, minlength=n_groups)

    ns = np.bincount(cg, weights=c, minlength=n_groups)
    grey_sum = np.bincount(cg * i_top + i.astype(np.int64), weights=c,
                           minlength=n_groups * i_top)
    size_keys, size_inv = np.unique(cg * j_top + j.astype(np.int64), return_inverse=True)
    size_sum = np.bincount(size_inv, weights=c)

    with np.errstate(divide="ignore", invalid="ignore"):
        i2, j2 = i * i, j * j
        mean_i = total(i) / ns
        mean_j = total(j) / ns
        p_cell = c / ns[cg]
        glnu = (grey_sum.reshape(n_groups, i_top) ** 2).sum(axis=1)
        snu = np.bincount(size_keys // j_top, weights=size_sum**2, minlength=n_groups)
        values = [
            total(1.0 / j2) / ns,
            total(j2) / ns,
            total(1.0 / i2) / ns,
            total(i2) / ns,
            total(1.0 / (i2 * j2)) / ns,
            total(i2 / j2) / ns,
            total(j2 / i2) / ns,
            total(i2 * j2) / ns,
            glnu / ns,
            glnu / ns**2,
            snu / ns,
            snu / ns**2,
            ns / nv,
            total((i - mean_i[cg]) ** 2) / ns,
            total((j - mean_j[cg]) ** 2) / ns,
            -np.bincount(cg, weights=_xlogx(p_cell), minlength=n_groups),
        ]
        if len(names) > len(values):  # NGLDM dependence count energy
            values.append(np.bincount(cg, weights=p_cell**2, minlength=n_groups))
    empty = ns == 0
    out = {}
    for name, v in zip(names, values, strict=True):
        v = np.asarray(v, dtype=np.float64)
        v[empty] = np.nan
        out[name] = v
    return out, ns


def ngtdm_features(
    s: np.ndarray, n: np.ndarray, levels: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The 5 IBSI NGTDM features of each (s_i, n_i) table in a stack.

    Parameters
    ----------
    s : (K, L) array
        Sum over voxels of grey level i of |i - neighbourhood mean|.
    n : (K, L) array
        Number of such voxels (with at least one neighbour in the ROI).
    levels : (L,) array, optional
        Grey level of each column (default 1..L).
    """
    nl = n.shape[1]
    lv = np.arange(1, nl + 1, dtype=np.float64) if levels is None else np.asarray(levels, float)
    nvc = n.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = n / nvc[:, None]
    present = p > 0
    pair = present[:, :, None] & present[:, None, :]
    ngp = present.sum(axis=1).astype(np.float64)
    diff = lv[:, None] - lv[None, :]
    ps = p * s
    sum_ps = ps.sum(axis=1)
    sum_s = s.sum(axis=1)
    pp = p[:, :, None] * p[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        coarseness = np.where(sum_ps > 0, 1.0 / sum_ps, 1e6)
        contrast = np.where(
            ngp > 1,
            (pp * diff**2).sum(axis=(1, 2)) / (ngp * (ngp - 1)) * sum_s / nvc,
            0.0,
        )
        ip = lv[None, :] * p
        busy_den = np.where(pair, np.abs(ip[:, :, None] - ip[:, None, :]), 0.0).sum(axis=(1, 2))
        busyness = np.where(busy_den > 0, sum_ps / busy_den, 0.0)
        psum = p[:, :, None] + p[:, None, :]
        comp_terms = np.abs(diff)[None] * (ps[:, :, None] + ps[:, None, :]) / psum
        complexity = np.where(pair, comp_terms, 0.0).sum(axis=(1, 2)) / nvc
        strength_num = np.where(pair, psum * diff[None] ** 2, 0.0).sum(axis=(1, 2))
        strength = np.where(sum_s > 0, strength_num / sum_s, 0.0)
    return {
        "coarseness": coarseness,
        "contrast": contrast,
        "busyness": busyness,
        "complexity": complexity,
        "strength": strength,
    }
