"""Pure affine geometry: index <-> world, LPS <-> RAS, orientation codes.

Conventions (used everywhere in medlab)
---------------------------------------
* World coordinates are **LPS millimetres**, DICOM's patient coordinate
  system: +x towards the patient's Left, +y Posterior, +z Superior.
* Spatial array axes are ordered **(slice, row, column)**, i.e. numpy /
  SimpleITK ``GetArrayFromImage`` order: the last axis varies fastest and
  is ITK's ``x`` index, the first axis is ITK's ``z`` index.
* An affine is a 4x4 matrix ``A`` with ``A @ [k, j, i, 1] = [x, y, z, 1]``
  (LPS mm) for the array index ``[k, j, i]``. Its columns 0..2 are the
  world step of one voxel along array axes 0..2; column 3 is the world
  position of voxel ``[0, 0, 0]`` (the *origin*).
* ``spacing`` is the length of each column (array axis order),
  ``direction`` the 3x3 matrix of the unit columns.

The functions here take and return plain numpy arrays and do no I/O.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .errors import GeometryError

__all__ = [
    "LPS_TO_RAS",
    "ORIENTATION_DECIMALS",
    "ORIENTATION_TOLERANCE",
    "POSITION_TOLERANCE_MM",
    "RAS_TO_LPS",
    "affine_to_itk",
    "apply_affine",
    "axis_aligned_directions",
    "compose_affine",
    "decompose_affine",
    "dicom_affine",
    "is_orthogonal",
    "itk_to_affine",
    "orientation_codes",
    "orientation_key",
    "reorientation",
    "rotation_matrix",
    "same_orientation",
    "swap_xyz_index",
    "voxel_sizes",
]

#: Flips x and y: converts an LPS point to RAS and back (its own inverse).
LPS_TO_RAS: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])
RAS_TO_LPS: np.ndarray = LPS_TO_RAS

#: medlab's one geometry tolerance, shared by the DICOM loader (which frames form one
#: volume), the cohort checks (which series are volumes) and the SEG/RTSTRUCT/SR writers
#: (which source images a mask lies on): what medlab loads as one volume it can write
#: against. Direction cosines of Image Orientation (Patient) agreeing to
#: ``ORIENTATION_DECIMALS`` decimals (within ``ORIENTATION_TOLERANCE``, about 0.06 degrees)
#: are one orientation; scanners write the same orientation with jitter in the 6th to
#: 8th decimal (the GE ADC map of dcmqi: 8th).
ORIENTATION_DECIMALS: int = 3
ORIENTATION_TOLERANCE: float = 10.0**-ORIENTATION_DECIMALS
#: Positions (mm) closer than this are the same; also the least slice-spacing
#: deviation a stack tolerates (:func:`medlab.io.check_stack`).
POSITION_TOLERANCE_MM: float = 0.05


def orientation_key(iop: Sequence[float] | None) -> tuple[float, ...] | None:
    """Image Orientation (Patient) rounded to the shared tolerance: frames with equal keys
    are one orientation (the loader's and the cohort index's grouping key).

    Examples
    --------
    >>> orientation_key([1, 0, 0, 0, 0.99999999, 1e-8])
    (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    """
    if iop is None:
        return None
    if type(iop) is tuple:  # the loader's frames: one orientation repeats in every file
        return _orientation_key_of(iop)
    return _orientation_key_of(tuple(iop))


@functools.lru_cache(maxsize=4096)
def _orientation_key_of(iop: tuple) -> tuple[float, ...]:
    return tuple(float(v) + 0.0 for v in np.round(np.asarray(iop, dtype=float),
                                                   ORIENTATION_DECIMALS))


def same_orientation(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two Image Orientation (Patient) values agree within the shared tolerance.

    Everything the loader puts in one volume passes (equal :func:`orientation_key`
    implies a difference below ``ORIENTATION_TOLERANCE``).
    """
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                            rtol=0.0, atol=ORIENTATION_TOLERANCE))


#: Reverses the order of the three spatial index axes (k, j, i) <-> (i, j, k).
_REVERSE_INDEX: np.ndarray = np.array(
    [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float
)


def apply_affine(affine: npt.ArrayLike, points: npt.ArrayLike) -> np.ndarray:
    """Apply a 4x4 affine to points.

    Parameters
    ----------
    affine : (4, 4) array_like
    points : (..., 3) array_like

    Returns
    -------
    ndarray, shape (..., 3)

    Examples
    --------
    >>> apply_affine(np.diag([2.0, 3.0, 4.0, 1.0]), [1, 1, 1])
    array([2., 3., 4.])
    """
    affine = np.asarray(affine, dtype=float)
    points = np.asarray(points, dtype=float)
    return points @ affine[:3, :3].T + affine[:3, 3]


def voxel_sizes(affine: npt.ArrayLike) -> np.ndarray:
    """Length of the world step along each array axis (the spacing).

    Examples
    --------
    >>> voxel_sizes([[0, 0, 3, 0], [0, -2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    array([1., 2., 3.])
    """
    affine = np.asarray(affine, dtype=float)
    return np.sqrt((affine[:3, :3] ** 2).sum(axis=0))


def compose_affine(
    spacing: Sequence[float], origin: Sequence[float], direction: npt.ArrayLike
) -> np.ndarray:
    """Build an affine from spacing, origin and direction (array axis order).

    Examples
    --------
    >>> compose_affine([3, 2, 1], [10, 20, 30], np.eye(3))[:3]
    array([[ 3.,  0.,  0., 10.],
           [ 0.,  2.,  0., 20.],
           [ 0.,  0.,  1., 30.]])
    """
    step = np.asarray(spacing, dtype=float)
    direction = np.asarray(direction, dtype=float)
    if step.shape != (3,) or direction.shape != (3, 3):
        raise GeometryError(
            f"spacing must have 3 values and direction be 3x3, got {step.shape} and "
            f"{direction.shape}"
        )
    if np.any(step <= 0) or not np.all(np.isfinite(step)):
        raise GeometryError(f"spacing must be positive and finite, got {step.tolist()}")
    affine = np.eye(4)
    affine[:3, :3] = direction * step
    affine[:3, 3] = origin
    return affine


def decompose_affine(affine: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split an affine into ``(spacing, origin, direction)``.

    Raises
    ------
    GeometryError
        If the affine is not 4x4 with last row ``[0, 0, 0, 1]``, or is singular.
    """
    affine = check_affine(affine)
    spacing = voxel_sizes(affine)
    direction = affine[:3, :3] / spacing
    return spacing, affine[:3, 3].copy(), direction


def check_affine(affine: npt.ArrayLike) -> np.ndarray:
    """Return ``affine`` as a float (4, 4) array, or raise a clear error."""
    a = np.array(affine, dtype=float)
    if a.shape != (4, 4):
        raise GeometryError(f"an affine must be 4x4, got shape {a.shape}")
    if not np.allclose(a[3], [0, 0, 0, 1]):
        raise GeometryError(f"the last row of an affine must be [0, 0, 0, 1], got {a[3].tolist()}")
    if not np.all(np.isfinite(a)):
        raise GeometryError("the affine contains NaN or infinite values")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise GeometryError(
            f"the affine is singular (a zero or repeated axis): {a[:3, :3].tolist()}; "
            "check the spacing and direction it was built from"
        )
    return a


def is_orthogonal(affine: npt.ArrayLike, *, atol: float = 1e-4) -> bool:
    """Whether the axes of ``affine`` are mutually perpendicular.

    Sheared affines arise from CT gantry tilt; most toolkits (ITK, NIfTI
    ``qform``) cannot represent them.
    """
    _, _, direction = decompose_affine(affine)
    return bool(np.allclose(direction.T @ direction, np.eye(3), atol=atol))


def orientation_codes(affine: npt.ArrayLike) -> tuple[str, str, str]:
    """The patient direction each array axis points to, as LPS letters.

    Each letter names where increasing the index along that array axis
    goes (the closest of L/R, P/A, S/I).

    Examples
    --------
    >>> orientation_codes(np.eye(4))
    ('L', 'P', 'S')
    >>> orientation_codes(np.diag([1, -1, -1, 1.0])[[2, 1, 0, 3]])
    ('S', 'A', 'R')
    """
    import nibabel.orientations as nio

    labels = (("R", "L"), ("A", "P"), ("I", "S"))
    return tuple(nio.aff2axcodes(check_affine(affine), labels=labels))  # type: ignore[return-value]


def axis_aligned_directions() -> list[np.ndarray]:
    """All 48 axis-aligned direction matrices (signed permutations).

    Examples
    --------
    >>> len(axis_aligned_directions())
    48
    """
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for col, (row, s) in enumerate(zip(perm, signs, strict=True)):
                m[row, col] = s
            out.append(m)
    return out


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation about x, then y, then z (degrees), as a 3x3 matrix.

    Examples
    --------
    >>> np.round(rotation_matrix([0, 0, 90]) @ [1, 0, 0], 6)
    array([0., 1., 0.])
    """
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def dicom_affine(
    image_orientation: Sequence[float],
    first_position: Sequence[float],
    pixel_spacing: Sequence[float],
    slice_step: Sequence[float],
) -> np.ndarray:
    """Affine of a stack of DICOM frames in (slice, row, column) order.

    Parameters
    ----------
    image_orientation : 6 floats
        Image Orientation (Patient): direction of a row (increasing column
        index) then of a column (increasing row index).
    first_position : 3 floats
        Image Position (Patient) of the first frame of the stack.
    pixel_spacing : 2 floats
        Pixel Spacing: (between rows, between columns), in mm.
    slice_step : 3 floats
        World vector from one frame's position to the next one's. It need
        not be perpendicular to the frame (gantry tilt).

    Examples
    --------
    >>> dicom_affine([1, 0, 0, 0, 1, 0], [-100, -120, 30], [0.5, 0.7], [0, 0, 2.5])
    array([[   0. ,    0. ,    0.7, -100. ],
           [   0. ,    0.5,    0. , -120. ],
           [   2.5,    0. ,    0. ,   30. ],
           [   0. ,    0. ,    0. ,    1. ]])
    """
    iop = np.asarray(image_orientation, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(slice_step, dtype=float)
    affine[:3, 1] = col_dir * float(pixel_spacing[0])
    affine[:3, 2] = row_dir * float(pixel_spacing[1])
    affine[:3, 3] = np.asarray(first_position, dtype=float)
    return affine


def itk_to_affine(
    spacing: Sequence[float], origin: Sequence[float], direction: npt.ArrayLike
) -> np.ndarray:
    """Affine (array order) from ITK-style geometry (ITK ``x, y, z`` index order).

    ITK's ``direction`` is a 3x3 matrix (or its 9 row-major values) whose
    columns belong to the index axes ``x, y, z``; medlab's array axes are
    the reverse order. Both use LPS.
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    itk_affine = np.eye(4)
    itk_affine[:3, :3] = d * np.asarray(spacing, dtype=float)
    itk_affine[:3, 3] = origin
    return itk_affine @ _REVERSE_INDEX


def affine_to_itk(affine: npt.ArrayLike) -> tuple[tuple, tuple, tuple]:
    """ITK ``(spacing, origin, direction)`` (x, y, z order; direction flat row-major)."""
    spacing, origin, direction = decompose_affine(np.asarray(affine, dtype=float) @ _REVERSE_INDEX)
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())


def swap_xyz_index(affine: npt.ArrayLike) -> np.ndarray:
    """Reverse the spatial index order of an affine ((k, j, i) <-> (i, j, k)).

    Its own inverse. Used at the nibabel edge, whose arrays are (i, j, k).
    """
    return np.asarray(affine, dtype=float) @ _REVERSE_INDEX


def reorientation(affine: npt.ArrayLike, target: str = "SPL") -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """How to permute and flip array axes so they point to ``target`` letters.

    Returns ``(perm, flips)``: new axis ``n`` is old axis ``perm[n]``, and
    is reversed when ``flips[n]``. Oblique axes go to the closest letter.

    Examples
    --------
    >>> reorientation(np.diag([-1.0, 1.0, 1.0, 1.0]), "RPS")
    ((0, 1, 2), (False, False, False))
    >>> reorientation(np.diag([-1.0, 1.0, 1.0, 1.0]), "LPS")
    ((0, 1, 2), (True, False, False))
    """
    opposite = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}
    target = target.upper()
    if len(target) != 3 or {opposite.get(c, c) for c in target} | set(target) != set("LRPASI"):
        raise GeometryError(
            f"target must name one direction per axis from L/R, P/A, S/I (e.g. 'SPL'), got {target!r}"
        )
    codes = orientation_codes(affine)
    perm, flips = [], []
    for letter in target:
        for old, code in enumerate(codes):
            if code == letter or code == opposite[letter]:
                perm.append(old)
                flips.append(code != letter)
                break
    return tuple(perm), tuple(flips)
