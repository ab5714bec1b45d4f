"""Images, masks and points between medlab and SimpleITK for registration.

A 3D :class:`medlab.Image` becomes a 3D SimpleITK image with the same
physical geometry. A single-slice image (shape ``(1, rows, columns)``)
becomes a **2D** SimpleITK image on its LPS ``x, y`` plane, so 2D
registration optimises 2D transforms (3 rigid parameters, not 6). Its
row and column axes must lie in an axial plane (no ``z`` component):
true for PNG, MHA and single axial DICOM slices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .. import geometry as geo
from .._validate import require_image
from ..errors import MedlabError
from ..image import Image

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = ["RegistrationError"]


class RegistrationError(MedlabError, ValueError):
    """Registration inputs do not fit together, or the optimisation cannot start."""


def image_dimension(image: Image, role: str) -> int:
    """2 for a single-slice image, 3 for a volume; errors for what cannot register."""
    require_image(image, role)
    if image.frame_axis is not None:
        raise RegistrationError(
            f"{role} is 4D ({image.n_frames} frames): {image!r}; register one "
            f"frame at a time, e.g. {role}.frame(0)"
        )
    if image.channels:
        raise RegistrationError(
            f"{role} has {image.shape[-1]} channels (e.g. an RGB or grey+alpha PNG): "
            f"{image!r}; registration needs one scalar channel, e.g. "
            f"{role}.with_array({role}.array[..., 0], channels=False)"
        )
    if not geo.is_orthogonal(image.affine):
        raise RegistrationError(
            f"{role} has a sheared grid (e.g. CT gantry tilt), which ITK cannot represent; "
            f"resample it first: {role}.resample_to({role}.orthogonal_grid())"
        )
    if image.spatial_shape[0] == 1:
        a = image.affine
        if not np.allclose(a[2, 1:3], 0.0, atol=1e-6):
            raise RegistrationError(
                f"{role} is a single slice whose rows and columns are not in an axial (x-y) "
                f"plane (orientation {image.orientation!r}); 2D registration works in the "
                "LPS x-y plane. Register the 3D volumes instead, or resample the slice onto "
                "an axial grid"
            )
        return 2
    if min(image.spatial_shape) < 4:
        raise RegistrationError(
            f"{role} has shape {image.spatial_shape}: too thin to register in 3D (at least "
            "4 voxels along each axis); use single-slice (1, rows, columns) images for 2D"
        )
    return 3


def pair_dimension(fixed: Image, moving: Image) -> int:
    """The common dimension of ``fixed`` and ``moving``, or a clear error."""
    df, dm = image_dimension(fixed, "fixed"), image_dimension(moving, "moving")
    if df != dm:
        raise RegistrationError(
            f"cannot register a {dm}D moving image {moving!r} to a {df}D fixed image "
            f"{fixed!r}: both must be 2D (one slice, shape (1, rows, columns)) or both 3D. "
            "Extract the matching slice of the volume, or register two volumes"
        )
    return df


def mask_to_sitk(mask: Image | None, image: Image, dim: int, role: str) -> sitk.Image | None:
    """A uint8 SimpleITK mask (non-zero = inside) on ``image``'s grid, or None.

    Raises
    ------
    RegistrationError
        If the mask is on another grid (resample it nearest-neighbour) or empty.
    """
    if mask is None:
        return None
    require_image(mask, f"{role}_mask")
    if mask.frame_axis is not None or mask.channels:
        raise RegistrationError(f"{role}_mask must be one scalar label image, got {mask!r}")
    if not mask.geometry_equal(image):
        raise RegistrationError(
            f"{role}_mask must be on the {role} image's grid: mask {mask!r} with origin "
            f"{np.round(mask.origin, 3).tolist()} vs {role} {image!r} with origin "
            f"{np.round(image.origin, 3).tolist()}. Resample it first: "
            f"{role}_mask.resample_to({role}, interpolation='nearest')"
        )
    inside = np.asarray(mask.array) != 0
    if not inside.any():
        raise RegistrationError(f"{role}_mask is empty (no non-zero voxel); pass a mask with "
                                "the region to register, or None")
    return mask.with_array(inside.astype(np.uint8)).to_simpleitk(dimension=dim, dtype=np.uint8)


def grid_points(image: Image, *, mask: npt.ArrayLike | None = None, max_points: int = 20000,
                seed: int = 0) -> np.ndarray:
    """LPS mm of voxel centres of ``image`` (inside ``mask`` if given), at most ``max_points``.

    Points are drawn at random without replacement (seeded) when there are
    more candidates than ``max_points``.
    """
    if mask is None:
        n = int(np.prod(image.spatial_shape))
        rng = np.random.default_rng(seed)
        flat = rng.choice(n, size=min(n, max_points), replace=False) if n > max_points \
            else np.arange(n)
        idx = np.column_stack(np.unravel_index(flat, image.spatial_shape))
    else:
        idx = np.argwhere(np.asarray(mask) != 0)
        if len(idx) > max_points:
            rng = np.random.default_rng(seed)
            idx = idx[np.sort(rng.choice(len(idx), size=max_points, replace=False))]
    return image.index_to_world(idx.astype(float))


def as_points(points: npt.ArrayLike, role: str) -> np.ndarray:
    """``points`` as a float (N, 2 or 3) array, or a clear error."""
    p = np.asarray(points, dtype=float)
    if p.ndim == 1 and p.shape[0] in (2, 3):
        p = p[np.newaxis]
    if p.ndim != 2 or p.shape[1] not in (2, 3):
        raise ValueError(
            f"{role} must be an (N, 3) array of LPS mm points (or (N, 2) for 2D), got shape "
            f"{p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{role} contains NaN or infinite coordinates")
    return p


def apply_transform(transform: sitk.Transform, points: npt.ArrayLike) -> np.ndarray:
    """Map LPS points through a SimpleITK transform (2D transforms keep ``z``).

    Parameters
    ----------
    transform : SimpleITK.Transform
        A 2D or 3D transform.
    points : (N, 2) or (N, 3) array_like
        LPS mm. For a 2D transform, ``x, y`` are mapped and a ``z`` column,
        if any, is returned unchanged.
    """
    p = as_points(points, "points")
    dim = transform.GetDimension()
    if dim == 3 and p.shape[1] != 3:
        raise ValueError(f"a 3D transform needs (N, 3) points, got shape {p.shape}")
    out = p.copy()
    for i, q in enumerate(p[:, :dim]):
        out[i, :dim] = transform.TransformPoint(tuple(float(v) for v in q))
    return out
