"""Morphological features (IBSI chapter 1, section 3.1), mesh based."""

from __future__ import annotations

import numpy as np
from scipy import fft, spatial, special

from ..._optional import import_optional

__all__ = ["MORPH_NAMES", "morphology"]

MORPH_NAMES = (
    "volume", "vol_approx", "area_mesh", "av", "comp_1", "comp_2", "sph_dispr", "sphericity",
    "asphericity", "com", "diam", "pca_maj_axis", "pca_min_axis", "pca_least_axis",
    "pca_elongation", "pca_flatness", "vol_dens_aabb", "area_dens_aabb", "vol_dens_aee",
    "area_dens_aee", "vol_dens_conv_hull", "area_dens_conv_hull", "integ_int", "moran_i",
    "geary_c",
)


def mesh(mask: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface (level 0.5) of a binary mask, vertices in mm."""
    measure = import_optional("skimage.measure", feature="Morphological features",
                               extra="segmentation")
    padded = np.pad(mask.astype(np.float32), 1)
    verts, faces, _, _ = measure.marching_cubes(padded, level=0.5, spacing=tuple(spacing))
    return verts, faces


def _ellipsoid_area(a: float, b: float, c: float, terms: int = 20) -> float:
    """Surface of an ellipsoid with semi-axes a >= b >= c (IBSI Legendre series)."""
    if a <= 0:
        return float("nan")
    alpha = np.sqrt(max(1.0 - (b / a) ** 2, 0.0))
    beta = np.sqrt(max(1.0 - (c / a) ** 2, 0.0))
    ab = alpha * beta
    if ab < 1e-12:  # a sphere or prolate spheroid limit: series tends to its first terms
        if alpha < 1e-12 and beta < 1e-12:
            return float(4 * np.pi * a * a)
        ab = 1e-12
    x = (alpha**2 + beta**2) / (2 * ab)
    nu = np.arange(terms + 1)
    series = np.sum(ab**nu / (1 - 4 * nu**2) * special.eval_legendre(nu, x))
    return float(4 * np.pi * a * b * series)


def _autocorrelation(values: np.ndarray, mask: np.ndarray, spacing) -> tuple[float, float]:
    """Moran's I and Geary's C with weights 1/distance, exact, by FFT convolution.

    The weight of a voxel pair depends only on their offset, so the double
    sums over pairs are correlations of the (centred) intensity and mask
    arrays with a 1/distance kernel.
    """
    n = int(mask.sum())
    if n < 2:
        return float("nan"), float("nan")
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(mask))
    mask, values = mask[box], values[box]
    x = np.where(mask, values, 0.0)
    mu = x[mask].mean()
    a = np.where(mask, x - mu, 0.0)
    m = mask.astype(np.float64)
    grids = np.meshgrid(*[np.arange(-(k - 1), k) * s for k, s in zip(mask.shape, spacing,
                                                                     strict=True)], indexing="ij")
    dist = np.sqrt(sum(g * g for g in grids))
    w = np.zeros_like(dist)
    w[dist > 0] = 1.0 / dist[dist > 0]
    # circular convolution of size >= 2k-1 leaves the k wanted outputs unaliased
    fshape = [fft.next_fast_len(2 * k - 1, real=True) for k in mask.shape]
    fw = fft.rfftn(w, fshape)
    core = tuple(slice(k - 1, 2 * k - 1) for k in mask.shape)
    wa = fft.irfftn(fft.rfftn(a, fshape) * fw, fshape)[core]
    wm = fft.irfftn(fft.rfftn(m, fshape) * fw, fshape)[core]
    total_w = float(np.sum(m * wm))
    cross = float(np.sum(a * wa))
    ss = float(np.sum(a * a))
    if ss <= 0 or total_w <= 0:
        return float("nan"), float("nan")
    moran = n / total_w * cross / ss
    geary = (n - 1) / (2 * total_w) * (2 * float(np.sum(a * a * wm)) - 2 * cross) / ss
    return float(moran), float(geary)


def morphology(
    morph_mask: np.ndarray,
    int_mask: np.ndarray,
    intensity: np.ndarray,
    spacing: tuple[float, float, float],
) -> dict[str, float]:
    """IBSI morphological features (``morph_*``) of an ROI.

    Volume and area come from a marching-cubes mesh of the morphological
    mask; the PCA axes from the covariance of its voxel centres; the centre
    of mass shift and the integrated intensity and spatial autocorrelation
    (Moran's I, Geary's C, weights 1/distance) use the intensity mask.
    Oriented bounding box and minimum-volume enclosing ellipsoid densities
    (no IBSI consensus) are not computed.
    """
    sp = np.asarray(spacing, dtype=np.float64)
    verts, faces = mesh(morph_mask, sp)
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    volume = abs(float(np.einsum("ij,ij->", a, np.cross(b, c)))) / 6.0
    area = float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()) / 2.0
    n_vox = int(morph_mask.sum())
    vol_approx = n_vox * float(np.prod(sp))

    coords = np.argwhere(morph_mask) * sp
    int_coords = np.argwhere(int_mask) * sp
    weights = intensity[int_mask]
    with np.errstate(divide="ignore", invalid="ignore"):
        weighted = (int_coords * weights[:, None]).sum(axis=0) / weights.sum()
    com = float(np.linalg.norm(coords.mean(axis=0) - weighted))

    if n_vox > 1:
        eig = np.sort(np.linalg.eigvalsh(np.cov(coords, rowvar=False)))[::-1]
        eig = np.clip(eig, 0.0, None)
    else:
        eig = np.zeros(3)
    l_major, l_minor, l_least = eig
    with np.errstate(divide="ignore", invalid="ignore"):
        elong = np.sqrt(l_minor / l_major)
        flat = np.sqrt(l_least / l_major)

    extent = verts.max(axis=0) - verts.min(axis=0)
    aabb_area = 2.0 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
    sa, sb, sc = 2 * np.sqrt(l_major), 2 * np.sqrt(l_minor), 2 * np.sqrt(l_least)
    try:
        hull = spatial.ConvexHull(verts)
        hull_volume, hull_area = hull.volume, hull.area
        hull_pts = verts[hull.vertices]
    except spatial.QhullError:  # flat ROI (a single slice): no 3D hull
        hull_volume = hull_area = float("nan")
        hull_pts = verts
    diam = float(spatial.distance.pdist(hull_pts).max()) if len(hull_pts) > 1 else 0.0
    moran, geary = _autocorrelation(intensity, int_mask, sp)
    sph = (36.0 * np.pi * volume**2) ** (1.0 / 3.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "volume": volume,
            "vol_approx": vol_approx,
            "area_mesh": area,
            "av": area / volume,
            "comp_1": volume / (np.sqrt(np.pi) * area**1.5),
            "comp_2": 36.0 * np.pi * volume**2 / area**3,
            "sph_dispr": area / sph,
            "sphericity": sph / area,
            "asphericity": (area**3 / (36.0 * np.pi * volume**2)) ** (1.0 / 3.0) - 1.0,
            "com": com,
            "diam": diam,
            "pca_maj_axis": 4.0 * np.sqrt(l_major),
            "pca_min_axis": 4.0 * np.sqrt(l_minor),
            "pca_least_axis": 4.0 * np.sqrt(l_least),
            "pca_elongation": elong,
            "pca_flatness": flat,
            "vol_dens_aabb": volume / float(np.prod(extent)),
            "area_dens_aabb": area / aabb_area,
            "vol_dens_aee": 3.0 * volume / (4.0 * np.pi * sa * sb * sc),
            "area_dens_aee": area / _ellipsoid_area(sa, sb, sc),
            "vol_dens_conv_hull": volume / hull_volume,
            "area_dens_conv_hull": area / hull_area,
            "integ_int": volume * float(weights.mean()),
            "moran_i": moran,
            "geary_c": geary,
        }
    return {f"morph_{k}": float(values[k]) for k in MORPH_NAMES}
