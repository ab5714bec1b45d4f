"""FSL ``.bval``/``.bvec`` gradient tables and their conversion to LPS.

FSL gives gradient directions in the NIfTI image's voxel axes (i, j, k),
not in scanner or patient coordinates, and in a "radiological" voxel frame:
when the determinant of the header's voxel-to-world matrix is positive,
the first (x) component is negated (FSL FDT documentation; dcm2niix writes
its ``.bvec`` files this way; MRtrix3 ``mrconvert -fslgrad`` reads them so).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["fsl_to_lps", "lps_to_fsl", "read_fsl_gradients", "write_fsl_gradients"]

_RAS_TO_LPS3 = np.diag([-1.0, -1.0, 1.0])


def _frame(affine_ras: npt.ArrayLike) -> tuple[np.ndarray, float]:
    """Unit voxel-axis directions (columns, RAS) and the x sign FSL applies."""
    m = np.asarray(affine_ras, dtype=float)[:3, :3]
    cols = m / np.linalg.norm(m, axis=0)
    return cols, (-1.0 if np.linalg.det(m) > 0 else 1.0)


def fsl_to_lps(bvecs: npt.ArrayLike, affine_ras: npt.ArrayLike) -> np.ndarray:
    """FSL gradient directions of a NIfTI image as LPS directions.

    Parameters
    ----------
    bvecs : (n, 3) array_like
        Directions as in an FSL ``.bvec`` file (one row per volume).
    affine_ras : (4, 4) array_like
        The NIfTI image's voxel (i, j, k) -> RAS mm matrix (nibabel's
        ``img.affine``).

    Returns
    -------
    (n, 3) ndarray
        The same directions in LPS (zero rows stay zero).

    Examples
    --------
    >>> fsl_to_lps([[1, 0, 0]], np.diag([2.0, 2.0, 2.0, 1.0])).tolist()
    [[1.0, -0.0, 0.0]]
    """
    vec = np.asarray(bvecs, dtype=float).reshape(-1, 3).copy()
    cols, xsign = _frame(affine_ras)
    vec[:, 0] *= xsign
    return (_RAS_TO_LPS3 @ cols @ vec.T).T


def lps_to_fsl(vectors_lps: npt.ArrayLike, affine_ras: npt.ArrayLike) -> np.ndarray:
    """LPS gradient directions as FSL ``.bvec`` rows for a NIfTI image (the inverse)."""
    vec = np.asarray(vectors_lps, dtype=float).reshape(-1, 3)
    cols, xsign = _frame(affine_ras)
    out = np.linalg.solve(cols, _RAS_TO_LPS3 @ vec.T).T
    out[:, 0] *= xsign
    return out + 0.0  # no negative zeros in files


def read_fsl_gradients(
    bval: str | os.PathLike, bvec: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """b-values (s/mm2) and FSL directions (n, 3) from ``.bval``/``.bvec`` files.

    Both layouts of ``.bvec`` are read: FSL's three rows of n values and
    one row of three values per volume. Undefined directions (``nan``, as
    some tools write for b=0) become zero vectors.

    Raises
    ------
    ValueError
        When the files cannot be parsed or disagree in length.
    """
    bvals = _load_numbers(bval).ravel()
    if bvec is None:
        return bvals, None
    vec = _load_numbers(bvec)
    if vec.ndim != 2 or 3 not in vec.shape:
        raise ValueError(f"{Path(bvec).name}: expected 3 rows (FSL) or 3 columns of directions, "
                         f"got shape {vec.shape}")
    if vec.shape[0] == 3 and vec.shape[1] != 3:
        vec = vec.T
    elif vec.shape == (3, 3):
        vec = vec.T  # FSL's layout is the documented one
    if vec.shape[0] != bvals.shape[0]:
        raise ValueError(f"{Path(bval).name} has {bvals.shape[0]} b-values but "
                         f"{Path(bvec).name} has {vec.shape[0]} directions")
    return bvals, np.nan_to_num(vec, nan=0.0)


def write_fsl_gradients(
    path_stem: str | os.PathLike, b_values: npt.ArrayLike, bvecs: npt.ArrayLike | None
) -> list[Path]:
    """Write ``<stem>.bval`` (and ``<stem>.bvec`` in FSL's 3-row layout); the paths written."""
    stem = Path(path_stem)
    out = [stem.with_name(stem.name + ".bval")]
    out[0].write_text(" ".join(f"{v:.10g}" for v in np.asarray(b_values, dtype=float)) + "\n")
    if bvecs is not None:
        vec = np.asarray(bvecs, dtype=float).reshape(-1, 3)
        out.append(stem.with_name(stem.name + ".bvec"))
        out[1].write_text("\n".join(" ".join(f"{v:.8g}" for v in row) for row in vec.T) + "\n")
    return out


def _load_numbers(path: str | os.PathLike) -> np.ndarray:
    text = Path(path).read_text().replace(",", " ")
    rows = [line.split() for line in text.splitlines() if line.strip()]
    try:
        arr = np.array([[float(v) for v in row] for row in rows], dtype=float)
    except ValueError as exc:
        raise ValueError(f"{Path(path).name}: not a table of numbers ({exc})") from None
    if arr.dtype == object:
        raise ValueError(f"{Path(path).name}: rows of different lengths")
    return arr
