"""Intensity-based registration stages on SimpleITK's registration framework.

medlab writes no optimiser: each stage configures
``SimpleITK.ImageRegistrationMethod`` with defaults that converge without
tuning (see :mod:`medlab.registration` for the list) and records the
metric at every iteration.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..image import Image
from ._result import RegistrationResult
from ._stage import DEFAULT_GRID_SPACING_MM, MAX_SAMPLES, Initial, Metric, Sampling, run_stage

__all__ = ["affine", "deformable", "register", "rigid"]

_STAGES = ("rigid", "affine", "bspline")
#: default optimiser iterations per pyramid level
DEFAULT_ITERATIONS = {"rigid": 200, "affine": 200, "bspline": 50}


# ----------------------------------------------------------------- public API
def rigid(
    fixed: Image,
    moving: Image,
    *,
    metric: Metric = "mattes",
    initial: Initial = "geometry",
    fixed_mask: Image | None = None,
    moving_mask: Image | None = None,
    levels: Sequence[int] = (4, 2, 1),
    sigmas_mm: Sequence[float] | None = None,
    sampling: Sampling = "auto",
    max_samples: int | None = MAX_SAMPLES,
    seed: int | None = 0,
    iterations: int = DEFAULT_ITERATIONS["rigid"],
    bins: int = 50,
    progress: bool = True,
) -> RegistrationResult:
    """Rigid registration (rotation + translation) of ``moving`` onto ``fixed``.

    Parameters
    ----------
    fixed, moving : Image
        Both 3D volumes, or both single slices (shape ``(1, rows, columns)``,
        registered as 2D images in the LPS x-y plane). Scalar, one frame.
        Any grids, spacings and direction cosines: registration works in
        physical (LPS mm) space.
    metric : {'mattes', 'correlation', 'mean_squares'}
        Mattes mutual information (multimodal, the default), normalised
        correlation or mean squares (same modality, same intensity scale).
    initial : {'geometry', 'moments', 'identity'} or transform or (fixed_points, moving_points)
        Starting transform: align the grid centres (``'geometry'``), the
        intensity centres of mass (``'moments'``, intensities shifted to be
        non-negative, within the masks if given), keep the images where
        they are (``'identity'``: for images sharing a frame of reference,
        e.g. PET/CT), a SimpleITK transform or a previous
        :class:`RegistrationResult` (fixed -> moving), or paired LPS
        landmarks (a rigid landmark fit).
    fixed_mask, moving_mask : Image, optional
        Regions (non-zero) where the metric is evaluated; each must be on
        its image's grid, else :class:`RegistrationError` (resample it with
        ``mask.resample_to(image, interpolation='nearest')``).
    levels : sequence of int
        Shrink factors of the multi-resolution pyramid, coarse to fine. A
        level's voxels are about ``factor`` times the finest fixed spacing
        along every axis (thick-slice axes are shrunk less), never fewer
        than 8 along an axis.
    sigmas_mm : sequence of float, optional
        Gaussian smoothing per level in mm; default ``0.5 * factor * finest
        fixed spacing`` for shrunk levels and 0 at full resolution.
    sampling : 'auto', float or None
        Fraction of the sampled image's voxels (inside its mask) drawn at
        random for the metric at each level, at least 5000 voxels (or all
        of them); ``None`` uses every voxel. ``'auto'`` (the default):
        every voxel of an image of at most a million voxels (inside its
        mask) when the two images' voxels are of similar size (see Notes),
        else 0.2; B-spline stages always 0.2.
    max_samples : int or None
        Upper bound on the voxels sampled at random per level (default
        20 000): beyond it more samples cost time without improving
        accuracy on large images. ``None`` lifts it.
    seed : int or None
        Seed of the random sampling: the same seed gives the same result
        run to run. ``None`` draws a new sample each run. No effect where
        every voxel is sampled.
    iterations : int
        Maximum optimiser iterations per level.
    bins : int
        Histogram bins of Mattes mutual information at the finest level;
        levels with few samples use fewer (about ``sqrt(samples / 5)``, at
        least 12), which keeps the metric smooth on coarse levels and in
        small masks.
    progress : bool
        Show a progress bar (tqdm).

    Returns
    -------
    RegistrationResult
        ``.transform`` maps fixed LPS points to moving LPS points (ITK's
        convention); ``.resample(moving)`` brings the moving image onto the
        fixed grid.

    Raises
    ------
    RegistrationError
        For a 2D image against a 3D one, time series or channel images,
        masks on other grids, or images that do not overlap after
        initialisation.

    Notes
    -----
    Rigid and affine stages sample the metric on ``fixed``, unless
    ``moving`` covers a smaller field of view (physical size of the grid,
    or of the mask), such as a cropped MR against a CT, and its voxels are
    not more than 8 times larger (in volume). Then the samples are drawn
    on ``moving`` and stay inside the other image as the pose changes,
    instead of entering and leaving the overlap from step to step (which
    changes the metric in ways its gradient does not see). The metrics are symmetric and a
    linear transform inverts exactly, so the stage registers ``fixed``
    onto ``moving`` and ``.transform`` is its inverse, still fixed ->
    moving; ``metric_trace`` and ``final_metric`` are that run's.

    A random sample of a small image makes a rough metric landscape with
    local optima millimetres apart; hence ``sampling='auto'`` uses every
    voxel up to a million. Not against an image with voxels more than 8
    times larger or smaller (a PET against a CT): a regular grid of
    samples then adds interpolation artefacts, optima at the coarse grid's
    period, which random samples average out. On the real MR/CT pairs of
    ``benchmarks/bench_registration.py`` (MR crops of 0.1-0.6 million
    voxels) the result depends on the start pose by at most 0.13 mm,
    against up to 11.5 mm with 20,000 random samples of the CT; it takes
    6-14 s per registration instead of 2-5 s.

    Examples
    --------
    >>> result = ml.registration.rigid(ct, mr)            # doctest: +SKIP
    >>> mr_on_ct = result.resample(mr)                    # doctest: +SKIP
    """
    return run_stage("rigid", fixed, moving, **_options(locals()))


def affine(
    fixed: Image,
    moving: Image,
    *,
    metric: Metric = "mattes",
    initial: Initial = "geometry",
    fixed_mask: Image | None = None,
    moving_mask: Image | None = None,
    levels: Sequence[int] = (4, 2, 1),
    sigmas_mm: Sequence[float] | None = None,
    sampling: Sampling = "auto",
    max_samples: int | None = MAX_SAMPLES,
    seed: int | None = 0,
    iterations: int = DEFAULT_ITERATIONS["affine"],
    bins: int = 50,
    progress: bool = True,
) -> RegistrationResult:
    """Affine registration (rotation, scaling, shear, translation).

    Parameters are those of :func:`rigid`. A rigid or affine ``initial``
    transform (e.g. ``rigid(...).transform``) is the starting point;
    landmarks give an affine fit when there are enough of them (4 in 3D,
    3 in 2D), else a rigid one.

    Returns
    -------
    RegistrationResult
    """
    return run_stage("affine", fixed, moving, **_options(locals()))


def deformable(
    fixed: Image,
    moving: Image,
    *,
    grid_spacing_mm: float | Sequence[float] = DEFAULT_GRID_SPACING_MM,
    metric: Metric = "mattes",
    initial: Initial = "geometry",
    fixed_mask: Image | None = None,
    moving_mask: Image | None = None,
    levels: Sequence[int] = (4, 2, 1),
    sigmas_mm: Sequence[float] | None = None,
    sampling: Sampling = "auto",
    max_samples: int | None = MAX_SAMPLES,
    seed: int | None = 0,
    iterations: int = DEFAULT_ITERATIONS["bspline"],
    bins: int = 50,
    progress: bool = True,
) -> RegistrationResult:
    """B-spline free-form deformation (cubic, L-BFGS optimiser).

    The control grid starts coarse and is refined by 2 at each pyramid
    level, ending at ``grid_spacing_mm``. Usually run after a rigid or
    affine stage: pass its result (or transform) as ``initial``; the
    final transform is then ``initial`` after the deformation, as one
    composite transform (fixed -> moving).

    Parameters
    ----------
    grid_spacing_mm : float or sequence of float
        Control point spacing of the finest grid in mm (per x, y, z axis
        or one value).

    Other parameters are those of :func:`rigid`.

    Returns
    -------
    RegistrationResult
        With :meth:`RegistrationResult.jacobian_determinant`.
    """
    return run_stage("bspline", fixed, moving, **_options(locals()))


def register(
    fixed: Image,
    moving: Image,
    *,
    stages: Sequence[str] = ("rigid", "affine", "bspline"),
    metric: Metric = "mattes",
    initial: Initial = "geometry",
    fixed_mask: Image | None = None,
    moving_mask: Image | None = None,
    levels: Sequence[int] = (4, 2, 1),
    sigmas_mm: Sequence[float] | None = None,
    sampling: Sampling = "auto",
    max_samples: int | None = MAX_SAMPLES,
    seed: int | None = 0,
    iterations: int | dict[str, int] | None = None,
    grid_spacing_mm: float | Sequence[float] = DEFAULT_GRID_SPACING_MM,
    bins: int = 50,
    progress: bool = True,
) -> RegistrationResult:
    """Run registration stages in turn, each starting from the previous one.

    Parameters
    ----------
    stages : sequence of {'rigid', 'affine', 'bspline'}
        In order; each stage starts from the transform of the one before.
    iterations : int or dict, optional
        Per level, for every stage, or a ``{stage: iterations}`` mapping;
        defaults ``{'rigid': 200, 'affine': 200, 'bspline': 50}``.

    Other parameters are those of :func:`rigid` and :func:`deformable`.

    Returns
    -------
    RegistrationResult
        The composed transform, with the metric trace of every stage (its
        ``stage`` column tells them apart) and the total time.
    """
    stages = [str(s).lower() for s in stages]
    bad = [s for s in stages if s not in _STAGES]
    if not stages or bad:
        raise ValueError(f"stages must be a non-empty sequence of {list(_STAGES)}, got {stages!r}")
    if "bspline" in stages and stages.index("bspline") != len(stages) - 1:
        raise ValueError(f"'bspline' must be the last stage, got {stages!r}")
    if isinstance(iterations, dict):
        unknown = set(iterations) - set(_STAGES)
        if unknown:
            raise ValueError(f"iterations has unknown stages {sorted(unknown)}; use {_STAGES}")
        per_stage = {s: int(iterations.get(s, DEFAULT_ITERATIONS[s])) for s in stages}
    else:
        per_stage = {s: int(iterations) if iterations is not None else DEFAULT_ITERATIONS[s]
                     for s in stages}
    common = {"metric": metric, "fixed_mask": fixed_mask, "moving_mask": moving_mask,
              "levels": levels, "sigmas_mm": sigmas_mm, "sampling": sampling,
              "max_samples": max_samples, "seed": seed,
              "bins": bins, "progress": progress, "grid_spacing_mm": grid_spacing_mm}
    results: list[RegistrationResult] = []
    current: Initial = initial
    for stage in stages:
        res = run_stage(stage, fixed, moving, initial=current, iterations=per_stage[stage],
                         **common)
        results.append(res)
        current = res.transform
    import pandas as pd

    last = results[-1]
    return RegistrationResult(
        last.transform,
        metric_trace=pd.concat([r.metric_trace for r in results], ignore_index=True),
        final_metric=last.final_metric,
        seconds=sum(r.seconds for r in results),
        fixed=fixed,
        moving=moving,
        kind="+".join(stages),
        metric=metric,
        stop_conditions={r.kind: r.stop_conditions[r.kind] for r in results},
    )


# ------------------------------------------------------------------ internals
def _options(local: dict) -> dict:
    return {k: v for k, v in local.items() if k not in ("fixed", "moving")}
