"""The settings of a radiomics computation and the IBSI presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FAMILIES", "IBSI_CONFIGURATIONS", "RadiomicsConfig"]

#: Feature families of IBSI chapter 1, in reporting order.
FAMILIES = ("morph", "loc", "stat", "ih", "ivh", "cm", "rlm", "szm", "dzm", "ngt", "ngl")

#: Aggregation methods of the GLCM and GLRLM (IBSI 3.1.2) and the
#: dimension each belongs to; the other texture families have one method
#: per dimension ("2d", "2_5d", "3d").
MATRIX_AGGREGATIONS = {
    "2d_avg": "2d",
    "2d_s_mrg": "2d",
    "2_5d_d_mrg": "2_5d",
    "2_5d_v_mrg": "2_5d",
    "3d_avg": "3d",
    "3d_v_mrg": "3d",
}
DIMENSIONS = ("2d", "2_5d", "3d")

Discretisation = Literal["fbn", "fbs", "none"]
Interpolation = Literal["nearest", "linear", "cubic"]


@dataclass(frozen=True)
class RadiomicsConfig:
    """Settings of :func:`medlab.measure.radiomics`, named as in the IBSI manual.

    The defaults compute every family in 3D on the image's own grid with
    32 fixed bins. :meth:`ibsi` gives the settings of the IBSI chapter-1
    digital phantom and of the CT phase-2 configurations A-E.

    Parameters
    ----------
    families : tuple of str
        Feature families to compute, any of ``'morph'`` (morphology),
        ``'loc'`` (local intensity), ``'stat'`` (intensity statistics),
        ``'ih'`` (intensity histogram), ``'ivh'`` (intensity-volume
        histogram), ``'cm'`` (GLCM), ``'rlm'`` (GLRLM), ``'szm'``
        (GLSZM), ``'dzm'`` (GLDZM), ``'ngt'`` (NGTDM), ``'ngl'`` (NGLDM).
    aggregation : tuple of str
        Texture aggregation: dimensions ``'2d'`` (by slice), ``'2_5d'``
        (slices merged), ``'3d'``, which select every method of that
        dimension, or the GLCM/GLRLM methods themselves: ``'2d_avg'``,
        ``'2d_s_mrg'``, ``'2_5d_d_mrg'``, ``'2_5d_v_mrg'``, ``'3d_avg'``,
        ``'3d_v_mrg'``.
    discretisation : {'fbn', 'fbs', 'none'}
        Fixed bin number, fixed bin size, or the intensities used as grey
        levels as they are (positive integers, as in the digital phantom).
        Used by the ``ih`` and texture families.
    bin_number : int
        Number of bins for ``'fbn'``.
    bin_width : float
        Bin width for ``'fbs'``, in intensity units; bins start at the
        lower bound of ``resegmentation_range`` when it has one, else at
        the ROI's minimum.
    spacing : float or (3,) tuple, optional
        Resample to this voxel size in mm (slice, row, column) before
        anything else, on the IBSI grid (grid centres aligned). A
        ``None`` entry keeps that axis (e.g. ``(None, 2, 2)`` for 2D
        in-plane resampling). ``None`` keeps the image's grid.
    interpolation : {'nearest', 'linear', 'cubic'}
        Image interpolation for resampling (cubic = cubic B-spline).
    mask_interpolation : {'nearest', 'linear'}
        Mask interpolation; a voxel is kept where the interpolated mask is
        at least ``mask_threshold``.
    mask_threshold : float
        Partial-volume threshold of the resampled mask.
    round_intensities : bool
        Round the resampled intensities to integers (IBSI configurations
        B-E, for CT).
    resegmentation_range : (low, high), optional
        Keep only ROI voxels with ``low <= intensity <= high`` in the
        intensity mask; either bound may be ``None`` (open).
    outlier_sigma : float, optional
        Also drop ROI voxels further than this many standard deviations
        from the ROI mean (IBSI outlier re-segmentation, usually 3).
    ivh_discretisation : {'none', 'fbs', 'fbn'}
        Discretisation of the intensity-volume histogram.
    ivh_bin_width, ivh_bin_number
        Its bin width (``'fbs'``) or bin count (``'fbn'``).
    distance : int
        Chebyshev neighbour distance of the GLCM, NGTDM and NGLDM.
    ngldm_alpha : float
        Coarseness parameter of the NGLDM (grey levels within ``alpha``
        are dependent).
    name : str
        A label for reports (e.g. ``'IBSI-C'``).
    """

    families: tuple[str, ...] = FAMILIES
    aggregation: tuple[str, ...] = ("3d",)
    discretisation: Discretisation = "fbn"
    bin_number: int = 32
    bin_width: float = 25.0
    spacing: float | tuple[float | None, float | None, float | None] | None = None
    interpolation: Interpolation = "linear"
    mask_interpolation: Literal["nearest", "linear"] = "linear"
    mask_threshold: float = 0.5
    round_intensities: bool = False
    resegmentation_range: tuple[float | None, float | None] | None = None
    outlier_sigma: float | None = None
    ivh_discretisation: Discretisation = "none"
    ivh_bin_width: float = 2.5
    ivh_bin_number: int = 1000
    distance: int = 1
    ngldm_alpha: float = 0.0
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        fams = _as_tuple(self.families, "families")
        bad = [f for f in fams if f not in FAMILIES]
        if bad or not fams:
            raise ValueError(
                f"families must be a non-empty selection of {list(FAMILIES)}, got {list(fams)}"
                + (f" (unknown: {bad})" if bad else "")
            )
        object.__setattr__(self, "families", fams)
        aggs = _as_tuple(self.aggregation, "aggregation")
        bad = [a for a in aggs if a not in DIMENSIONS and a not in MATRIX_AGGREGATIONS]
        if bad or not aggs:
            raise ValueError(
                f"aggregation must be a non-empty selection of {list(DIMENSIONS)} or "
                f"{list(MATRIX_AGGREGATIONS)}, got {list(aggs)}"
            )
        object.__setattr__(self, "aggregation", aggs)
        for key in ("discretisation", "ivh_discretisation"):
            if getattr(self, key) not in ("fbn", "fbs", "none"):
                raise ValueError(
                    f"{key} must be 'fbn' (fixed bin number), 'fbs' (fixed bin size) or 'none', "
                    f"got {getattr(self, key)!r}"
                )
        for key in ("bin_number", "ivh_bin_number", "distance"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        for key in ("bin_width", "ivh_bin_width"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a positive number, got {value!r}")
        if self.interpolation not in ("nearest", "linear", "cubic"):
            raise ValueError(
                f"interpolation must be 'nearest', 'linear' or 'cubic', got {self.interpolation!r}"
            )
        if self.mask_interpolation not in ("nearest", "linear"):
            raise ValueError(
                f"mask_interpolation must be 'nearest' or 'linear', got {self.mask_interpolation!r}"
            )
        if not 0 < self.mask_threshold <= 1:
            raise ValueError(f"mask_threshold must lie in (0, 1], got {self.mask_threshold!r}")
        object.__setattr__(self, "spacing", _check_spacing(self.spacing))
        rng = self.resegmentation_range
        if rng is not None:
            if len(rng) != 2:
                raise ValueError(
                    f"resegmentation_range must be (low, high) with None for an open bound, "
                    f"got {rng!r}"
                )
            low, high = (None if v is None else float(v) for v in rng)
            if low is not None and high is not None and low > high:
                raise ValueError(f"resegmentation_range must have low <= high, got {rng!r}")
            object.__setattr__(self, "resegmentation_range", (low, high))
        if self.outlier_sigma is not None and not self.outlier_sigma > 0:
            raise ValueError(f"outlier_sigma must be positive or None, got {self.outlier_sigma!r}")
        if self.ngldm_alpha < 0:
            raise ValueError(f"ngldm_alpha must be >= 0, got {self.ngldm_alpha!r}")

    # ------------------------------------------------------------ helpers
    @property
    def matrix_aggregations(self) -> tuple[str, ...]:
        """GLCM/GLRLM aggregation methods selected, in IBSI order."""
        chosen: set[str] = set()
        for a in self.aggregation:
            if a in DIMENSIONS:
                chosen.update(m for m, d in MATRIX_AGGREGATIONS.items() if d == a)
            else:
                chosen.add(a)
        return tuple(m for m in MATRIX_AGGREGATIONS if m in chosen)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Dimensions used by the GLSZM, GLDZM, NGTDM and NGLDM."""
        dims = {a if a in DIMENSIONS else MATRIX_AGGREGATIONS[a] for a in self.aggregation}
        return tuple(d for d in DIMENSIONS if d in dims)

    def replace(self, **changes) -> RadiomicsConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def ibsi(cls, name: str, **changes) -> RadiomicsConfig:
        """Settings of an IBSI chapter-1 reference case.

        Parameters
        ----------
        name : {'phantom', 'A', 'B', 'C', 'D', 'E'}
            ``'phantom'``: the digital phantom (grey levels as they are,
            every aggregation). ``'A'``-``'E'``: the CT phase-2
            configurations (A, B: 2D; C, D, E: 3D; see
            :data:`IBSI_CONFIGURATIONS`).
        **changes
            Settings to override (e.g. ``families=('stat', 'cm')``).
        """
        key = str(name).strip()
        key = key.upper() if len(key) == 1 else key.lower()
        if key not in IBSI_CONFIGURATIONS:
            raise ValueError(
                f"unknown IBSI configuration {name!r}; choose one of {list(IBSI_CONFIGURATIONS)}"
            )
        return dataclasses.replace(IBSI_CONFIGURATIONS[key], **changes)


def _as_tuple(value, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    try:
        return tuple(str(v) for v in value)
    except TypeError:
        raise TypeError(f"{what} must be a string or a sequence of strings, got {value!r}") from None


def _check_spacing(spacing):
    if spacing is None:
        return None
    if isinstance(spacing, (int, float)):
        spacing = (spacing,) * 3
    try:
        values = tuple(spacing)
    except TypeError:
        raise TypeError(
            f"spacing must be a number, a (slice, row, column) tuple in mm or None, got {spacing!r}"
        ) from None
    if len(values) != 3:
        raise ValueError(
            f"spacing must have 3 entries (slice, row, column) in mm, got {values!r}; use None "
            "for an axis to keep, e.g. (None, 2.0, 2.0) for in-plane resampling"
        )
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"spacing entries must be positive numbers or None, got {values!r}")
        out.append(float(v))
    return None if all(v is None for v in out) else tuple(out)


_ALL_AGG = ("2d", "2_5d", "3d")

#: The IBSI chapter-1 reference settings: the digital phantom and the CT
#: phase-2 configurations (IBSI reference manual, arXiv:1612.07003,
#: table "Reference data sets"). 2D configurations resample in-plane only.
IBSI_CONFIGURATIONS: dict[str, RadiomicsConfig] = {
    "phantom": RadiomicsConfig(
        aggregation=_ALL_AGG, discretisation="none", ivh_discretisation="none",
        name="IBSI digital phantom",
    ),
    "A": RadiomicsConfig(
        aggregation=("2d", "2_5d"), discretisation="fbs", bin_width=25.0,
        resegmentation_range=(-500.0, 400.0), ivh_discretisation="none", name="IBSI-A",
    ),
    "B": RadiomicsConfig(
        aggregation=("2d", "2_5d"), discretisation="fbn", bin_number=32,
        spacing=(None, 2.0, 2.0), interpolation="linear", round_intensities=True,
        resegmentation_range=(-500.0, 400.0), ivh_discretisation="none", name="IBSI-B",
    ),
    "C": RadiomicsConfig(
        aggregation=("3d",), discretisation="fbs", bin_width=25.0,
        spacing=2.0, interpolation="linear", round_intensities=True,
        resegmentation_range=(-1000.0, 400.0), ivh_discretisation="fbs", ivh_bin_width=2.5,
        name="IBSI-C",
    ),
    "D": RadiomicsConfig(
        aggregation=("3d",), discretisation="fbn", bin_number=32,
        spacing=2.0, interpolation="linear", round_intensities=True,
        outlier_sigma=3.0, ivh_discretisation="none", name="IBSI-D",
    ),
    "E": RadiomicsConfig(
        aggregation=("3d",), discretisation="fbn", bin_number=32,
        spacing=2.0, interpolation="cubic", round_intensities=True,
        resegmentation_range=(-1000.0, 400.0), outlier_sigma=3.0,
        ivh_discretisation="fbn", ivh_bin_number=1000, name="IBSI-E",
    ),
}
