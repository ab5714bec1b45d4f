"""One registration stage: inputs, start transform, pyramid, optimiser, trace.

Rigid and affine stages run one SimpleITK registration per pyramid level
on images that medlab smooths (recursive Gaussian, sigma in mm) and
shrinks per axis (towards isotropic voxels), so that each level has its
own optimiser and step length (half a level voxel, in mm of motion; see
:func:`configure_optimizer`). B-spline stages use SimpleITK's own
pyramid, which refines the control grid between levels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..image import Image
from ._convert import RegistrationError, grid_points, mask_to_sitk, pair_dimension
from ._landmarks import affine_parts, landmark_transform, make_linear
from ._result import RegistrationResult, compose

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

Metric = Literal["mattes", "correlation", "mean_squares"]
Sampling = float | Literal["auto"] | None
Initial = Any  # 'geometry' | 'moments' | SimpleITK.Transform | RegistrationResult | (fixed, moving points)

METRICS = ("mattes", "correlation", "mean_squares")
#: a level samples at least this many voxels (or all of them) whatever ``sampling`` says
MIN_SAMPLES = 5000
#: the fraction of voxels ``sampling='auto'`` draws at random where it samples (larger images,
#: B-spline stages)
DEFAULT_SAMPLING = 0.2
#: default cap of sampled voxels per level (more add time, not accuracy)
MAX_SAMPLES = 20_000
#: default B-spline control point spacing (mm) of the finest grid
DEFAULT_GRID_SPACING_MM = 32.0
#: registration refuses to start when less of the sampled image than this overlaps the other
MIN_OVERLAP = 0.05
#: ``sampling='auto'``: rigid and affine stages sample every voxel (in the mask), on every
#: level, of an image with at most EVERY_VOXEL_MAX voxels, unless one of the two images is
#: MUCH_COARSER than the other. A random sample of a small image (a cropped MR: 0.1-0.6
#: million voxels) makes a rough landscape whose local optima lie millimetres apart: on the
#: real MR/CT pairs of benchmarks/bench_registration.py the result then depended on the
#: start pose by up to 6 mm even with 100,000 samples on the finest level, and by up to 2 mm
#: with every voxel there but random samples on the coarser levels; with every voxel on
#: every level by at most 0.13 mm (sampled on the MR; 0.62 mm on the CT for the MR that
#: covers 97% of it). Against a much coarser image, a regular grid of samples adds
#: interpolation artefacts (optima at the coarse grid's period; Pluim et al., IEEE TMI 2000)
#: that random samples average out: on one PET/CT pair (PET voxels 16 times the CT's) every
#: CT voxel moved the result 3.2 mm with the start pose, 20,000 random ones 0.18 mm. Larger
#: images are sampled at random (DEFAULT_SAMPLING, at most MAX_SAMPLES a level): every voxel
#: would take many times as long
EVERY_VOXEL_MAX = 1_000_000
#: an image whose voxels are more than this many times another's (in volume) is much
#: coarser: it is not the one sampled (sampled_on_moving), and no image is sampled at every
#: voxel against it (EVERY_VOXEL_MAX)
MUCH_COARSER = 8.0
#: optimiser step length, in voxels of the level (mm of motion / level spacing)
STEP = 0.5
#: regular-step gradient descent (finest level): step reduction when the gradient turns
#: back, and the final step (in voxels of the finest level) that ends the registration
RELAXATION = 0.7
MIN_STEP = 1e-4
#: images are not shrunk below this many voxels along an axis
MIN_LEVEL_SIZE = 8
#: coarse multi-start (string initialisations): the extra starts are the start rotated by
#: +-SEARCH_DEG about each axis; the start and the SEARCH_KEEP - 1 best of them are optimised,
#: and their distinct optima go through the finer levels (the finest metric picks one)
SEARCH_DEG = 15.0
SEARCH_KEEP = 3
#: coarse levels hand the best position they visited to the next level (not the last one)
KEEP_BEST = True
#: rigid and affine stages sample the metric on the moving image when its field of view is
#: smaller than the fixed image's by more than this fraction (see sampled_on_moving)
SWAP_MARGIN = 0.02
#: B-spline L-BFGS: stop when |gradient| / max(1, |parameters|) falls below this
LBFGS_ACCURACY = 1e-6


def check_options(metric: str, levels: Sequence[int], sigmas_mm: Sequence[float] | None,
                  sampling: Sampling, iterations: int, f_s: sitk.Image, bins: int
                  ) -> tuple[list[int], list[float]]:
    """Validated shrink factors and smoothing sigmas (mm), or a clear ValueError."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    try:
        lv = [int(f) for f in levels]
    except TypeError:
        raise ValueError(f"levels must be a sequence of shrink factors such as (4, 2, 1), "
                         f"got {levels!r}") from None
    if not lv or any(f < 1 for f in lv):
        raise ValueError(f"levels must be shrink factors >= 1 such as (4, 2, 1), got {levels!r}")
    if sigmas_mm is None:
        finest = float(min(f_s.GetSpacing()))
        sig = [0.5 * f * finest if f > 1 else 0.0 for f in lv]
    else:
        sig = [float(s) for s in sigmas_mm]
        if len(sig) != len(lv) or any(s < 0 for s in sig):
            raise ValueError(f"sigmas_mm needs one value >= 0 per level ({len(lv)}), got "
                             f"{list(sigmas_mm)!r}")
    if not (sampling is None or sampling == "auto"
            or (not isinstance(sampling, str) and 0 < float(sampling) <= 1)):
        raise ValueError(f"sampling is 'auto', a fraction of voxels in (0, 1] or None, got "
                         f"{sampling!r}")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations!r}")
    if int(bins) < 4:
        raise ValueError(f"bins must be at least 4, got {bins!r}")
    return lv, sig


def _moment_image(img: sitk.Image, mask: sitk.Image | None) -> sitk.Image:
    import SimpleITK as sitk

    shifted = img - float(sitk.GetArrayViewFromImage(img).min())
    if mask is not None:
        shifted = shifted * sitk.Cast(mask, shifted.GetPixelID())
    return shifted


def _start(kind: str, dim: int, initial: Initial, f_s: sitk.Image, m_s: sitk.Image,
           f_mask: sitk.Image | None, m_mask: sitk.Image | None
           ) -> tuple[sitk.Transform, sitk.Transform | None]:
    """(transform to optimise, fixed transform applied after it or None)."""
    import SimpleITK as sitk

    if isinstance(initial, RegistrationResult):
        initial = initial.transform
    centre = np.asarray(f_s.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2.0 for n in f_s.GetSize()]))
    keep_centre = False  # the initialisers' centre (grid centre or centre of mass) is kept
    if isinstance(initial, str):
        mode = initial.lower()
        if mode not in ("geometry", "moments", "identity"):
            raise ValueError(f"initial must be 'geometry', 'moments', 'identity', a transform "
                             f"or (fixed_points, moving_points), got {initial!r}")
        base = sitk.Euler2DTransform() if dim == 2 else sitk.VersorRigid3DTransform()
        keep_centre = mode != "identity"
        if mode == "identity":
            pass  # keep the physical alignment (a shared frame of reference)
        elif mode == "geometry":
            base = sitk.CenteredTransformInitializer(
                f_s, m_s, base, sitk.CenteredTransformInitializerFilter.GEOMETRY)
        else:
            base = sitk.CenteredTransformInitializer(
                _moment_image(f_s, f_mask), _moment_image(m_s, m_mask), base,
                sitk.CenteredTransformInitializerFilter.MOMENTS)
        initial = base
    elif isinstance(initial, tuple | list) and len(initial) == 2:
        fixed_pts, moving_pts = (np.asarray(p, dtype=float) for p in initial)
        n_affine = dim + 1
        land_kind = "affine" if kind != "rigid" and len(fixed_pts) >= n_affine else "rigid"
        initial = landmark_transform(fixed_pts[:, :dim] if fixed_pts.ndim == 2 else fixed_pts,
                                     moving_pts[:, :dim] if moving_pts.ndim == 2 else moving_pts,
                                     kind=land_kind)
    elif not isinstance(initial, sitk.Transform):
        raise TypeError(f"initial must be 'geometry', 'moments', a SimpleITK transform, a "
                        f"RegistrationResult or (fixed_points, moving_points), got "
                        f"{type(initial).__name__}")
    if initial.GetDimension() != dim:
        raise RegistrationError(f"the initial transform is {initial.GetDimension()}D but the "
                                f"images are {dim}D")
    if kind == "bspline":
        parts = affine_parts(initial, dim)
        if parts is not None and np.allclose(parts[0], np.eye(dim)) and np.allclose(parts[1], 0):
            return None, None  # identity: nothing to compose
        return None, initial
    parts = affine_parts(initial, dim)
    if parts is None:  # not linear (e.g. a deformation): keep it, optimise on top of it
        return make_linear(kind, dim, np.eye(dim), np.zeros(dim), centre), initial
    matrix, offset = parts
    if kind == "rigid":
        u, _, vt = np.linalg.svd(matrix)
        rot = u @ vt
        if np.linalg.det(rot) < 0 or not np.allclose(matrix, rot, atol=1e-4):
            # scaled or sheared start: keep it and optimise a rigid correction after it
            return make_linear(kind, dim, np.eye(dim), np.zeros(dim), centre), initial
        matrix = rot
    own_centre = _transform_centre(initial) if keep_centre else None
    # rotations about the image (not the LPS origin, often far away) are well conditioned
    return make_linear(kind, dim, matrix, offset,
                       own_centre if own_centre is not None else centre), None


def _field_of_view_mm(image: Image, mask: Image | None, dim: int) -> float:
    """Area (2D) or volume (3D) in mm of an image's grid, or of its mask's voxels."""
    spacing = np.asarray(image.spacing, dtype=float)[-dim:]
    if mask is not None:
        return float(np.count_nonzero(np.asarray(mask.array))) * float(np.prod(spacing))
    return float(np.prod(np.asarray(image.spatial_shape, dtype=float)[-dim:] * spacing))


def _much_coarser(spacing: Sequence[float], other: Sequence[float]) -> bool:
    """Whether voxels of ``spacing`` (mm per axis) are MUCH_COARSER than ``other``'s."""
    return float(np.prod(spacing)) > MUCH_COARSER * float(np.prod(other))


def sampled_on_moving(fixed: Image, moving: Image, fixed_mask: Image | None = None,
                      moving_mask: Image | None = None) -> bool:
    """Whether a rigid or affine stage samples its metric on ``moving``.

    It does when ``moving`` (or its mask) covers a smaller field of view
    (area or volume) than ``fixed`` (or its mask), by more than
    :data:`SWAP_MARGIN`, and is not :data:`MUCH_COARSER` than ``fixed``.
    The metric's samples then stay inside the other image as the pose
    changes; sampled
    on the larger image, samples that fall outside the smaller one enter
    and leave it from step to step, which changes the metric in ways its
    gradient does not see. Mutual information, correlation and mean squares
    are symmetric in the two images, and a linear transform inverts
    exactly, so the stage registers ``fixed`` onto ``moving`` and returns
    the inverse. A much coarser image is not sampled (a PET against its
    CT: on the PET's 4-5 mm voxels the result of one sts-cohort pair moved
    3.3 mm with the start pose, on the CT 0.18 mm). Fields of view and
    voxel sizes are properties of the images, not of their pose, so the
    choice is the same from any start.
    """
    dim = pair_dimension(fixed, moving)
    if _much_coarser(moving.spacing[-dim:], fixed.spacing[-dim:]):
        return False  # few samples, interpolation artefacts
    return (_field_of_view_mm(moving, moving_mask, dim)
            < (1.0 - SWAP_MARGIN) * _field_of_view_mm(fixed, fixed_mask, dim))


def _reverse_initial(initial: Initial, dim: int) -> Initial | None:
    """``initial`` for the reversed pair (moving -> fixed), or None when it has no inverse."""
    import SimpleITK as sitk

    if isinstance(initial, str):
        return initial  # centres of the grids or of mass, the shared frame: symmetric
    if isinstance(initial, tuple | list) and len(initial) == 2:
        return (initial[1], initial[0])
    if isinstance(initial, RegistrationResult):
        initial = initial.transform
    if not isinstance(initial, sitk.Transform) or initial.GetDimension() != dim:
        return None  # not ours to judge: the unreversed stage raises its clear error
    if affine_parts(initial, dim) is None:
        return None  # a deformation: optimise on top of it, unreversed
    try:
        return initial.GetInverse()
    except RuntimeError:
        return None


def _transform_centre(transform: sitk.Transform) -> np.ndarray | None:
    try:
        return np.asarray(transform.Downcast().GetCenter(), dtype=float)
    except (AttributeError, RuntimeError, TypeError):
        return None


def _inside_fraction(points: np.ndarray, transform: sitk.Transform, m_s: sitk.Image) -> float:
    dim = m_s.GetDimension()
    size = np.asarray(m_s.GetSize())
    inside = 0
    for p in points:
        q = transform.TransformPoint(tuple(float(v) for v in p[:dim]))
        idx = np.asarray(m_s.TransformPhysicalPointToContinuousIndex(q))
        inside += bool(np.all(idx >= -0.5) and np.all(idx <= size - 0.5))
    return inside / max(len(points), 1)


def _check_overlap(fixed: Image, fixed_mask: Image | None, transform: sitk.Transform,
                   m_s: sitk.Image, moving: Image,
                   roles: tuple[str, str] = ("fixed", "moving")) -> None:
    """Refuse a start where less than MIN_OVERLAP of the sampled image (``fixed``, called
    ``roles[0]`` in the message) maps inside the other."""
    mask = None if fixed_mask is None else np.asarray(fixed_mask.array)
    pts = grid_points(fixed, mask=mask, max_points=800, seed=1)
    frac = _inside_fraction(pts, transform, m_s)
    if frac < MIN_OVERLAP:
        region = f"{roles[0]} mask" if fixed_mask is not None else f"{roles[0]} image"
        raise RegistrationError(
            f"after initialisation only {100 * frac:.1f}% of the {region} overlaps the "
            f"{roles[1]} image (at least {100 * MIN_OVERLAP:.0f}% is needed). "
            f"{roles[0].capitalize()} {fixed!r} is centred at "
            f"{np.round(fixed.center, 1).tolist()} mm, {roles[1]} {moving!r} at "
            f"{np.round(moving.center, 1).tolist()} mm (LPS). Check that both are in one "
            "physical space, or start from initial='geometry', 'moments' or paired landmarks"
        )


def _mesh_size(f_s: sitk.Image, grid_spacing_mm: float | Sequence[float], n_levels: int
               ) -> list[int]:
    dim = f_s.GetDimension()
    spacing = np.broadcast_to(np.asarray(grid_spacing_mm, dtype=float), (dim,))
    if np.any(spacing <= 0):
        raise ValueError(f"grid_spacing_mm must be positive, got {grid_spacing_mm!r}")
    extent = np.asarray(f_s.GetSize()) * np.asarray(f_s.GetSpacing())
    final = np.maximum(np.round(extent / spacing), 1)
    return [int(v) for v in np.maximum(np.round(final / 2 ** (n_levels - 1)), 1)]


def sitk_array(image: sitk.Image) -> np.ndarray:
    """A read-only numpy view of a SimpleITK image."""
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image)


def _sample_fraction(sampling: Sampling, max_samples: int | None, n_voxels: float,
                     inside: float) -> float:
    """Fraction of a level's voxels to draw (ITK draws it over the whole grid and drops
    the points outside the fixed mask, so draw proportionally more)."""
    if sampling is None:
        return 1.0
    fraction = DEFAULT_SAMPLING if sampling == "auto" else float(sampling)
    wanted = max(fraction * n_voxels * inside, MIN_SAMPLES)
    if max_samples is not None:
        wanted = min(wanted, float(max_samples))
    return min(wanted / max(n_voxels * inside, 1.0), 1.0)


def _shrink_factors(img: sitk.Image, target_mm: float) -> list[int]:
    """Per-axis integer factors bringing the spacing towards ``target_mm``."""
    out = []
    for n, sp in zip(img.GetSize(), img.GetSpacing(), strict=True):
        f = max(1, math.floor(target_mm / sp + 0.5))
        out.append(max(1, min(f, n // MIN_LEVEL_SIZE)))
    return out


def _level_image(img: sitk.Image, sigma_mm: float, target_mm: float) -> sitk.Image:
    import SimpleITK as sitk

    if sigma_mm > 0:
        img = sitk.SmoothingRecursiveGaussian(img, float(sigma_mm))
    factors = _shrink_factors(img, target_mm)
    return sitk.Shrink(img, factors) if max(factors) > 1 else img


@contextmanager
def _reproducible(metric: str) -> Iterator[None]:
    """Run Mattes mutual information single-threaded, then restore the thread count.

    ITK accumulates the Mattes joint histogram across threads in a varying
    order, so multi-threaded runs differ in the last bits, and the optimiser
    can amplify that. With the sample counts used here one thread costs
    little time. (ITK's default thread count is process-wide.)
    """
    import SimpleITK as sitk

    if metric != "mattes":
        yield
        return
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def level_bins(bins: int, n_samples: float) -> int:
    """Histogram bins for ``n_samples``: at most ``bins``, about sqrt(n / 5), at least 12.

    A joint histogram needs several samples per bin pair: with few samples
    (coarse levels, small masks) fewer bins keep mutual information smooth.
    """
    return int(min(int(bins), max(12, math.sqrt(max(n_samples, 1.0) / 5.0))))


def _set_metric(reg: sitk.ImageRegistrationMethod, metric: str, bins: int) -> None:
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(bins))
    elif metric == "correlation":
        reg.SetMetricAsCorrelation()
    else:
        reg.SetMetricAsMeanSquares()
    # image gradients by central differences at the sampled points: faster than smoothing
    # whole gradient images, and no extra blur at full resolution (better accuracy)
    reg.SetMetricUseFixedImageGradientFilter(False)
    reg.SetMetricUseMovingImageGradientFilter(False)


def _sampling_seed(seed: int | None) -> int:
    import SimpleITK as sitk

    # SimpleITK reads seed 0 as "use the clock": shift user seeds by one
    return sitk.sitkWallClock if seed is None else int(seed) + 1


class _Tracker:
    """Collects the metric trace and drives the progress bar."""

    def __init__(self, kind: str, total: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        self.kind, self.rows, self.level = kind, [], 0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, desc=f"{kind} registration", unit="it",
                        disable=not progress, leave=False)

    def attach(self, reg: sitk.ImageRegistrationMethod, *, level: int | None = None) -> None:
        import SimpleITK as sitk

        def on_iteration() -> None:
            lv = level if level is not None else int(reg.GetCurrentLevel())
            value = float(reg.GetMetricValue())
            self.rows.append((self.kind, lv, int(reg.GetOptimizerIteration()), value,
                              time.perf_counter() - self.t0))
            self.bar.update(1)
            self.bar.set_postfix(level=lv, metric=f"{value:.5g}", refresh=False)

        reg.AddCommand(sitk.sitkIterationEvent, on_iteration)

    def frame(self) -> Any:
        import pandas as pd

        self.bar.close()
        return pd.DataFrame(self.rows, columns=["stage", "level", "iteration", "metric",
                                                "seconds"])


def _corners(img: sitk.Image) -> list[tuple[float, ...]]:
    """Physical positions of the corner voxels of ``img``."""
    import itertools

    size = img.GetSize()
    return [img.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
            for corner in itertools.product(*[(0, n - 1) for n in size])]


class _BestKeeper:
    """Remembers the best position a constant-step descent visited (its metric value at
    an iteration is that of the position before the step); :meth:`restore` puts it back."""

    def __init__(self, reg: sitk.ImageRegistrationMethod, transform: sitk.Transform) -> None:
        import SimpleITK as sitk

        self.reg, self.transform = reg, transform
        self.before = tuple(transform.GetParameters())
        self.best: tuple[float, tuple[float, ...]] = (float("inf"), self.before)
        reg.AddCommand(sitk.sitkIterationEvent, self)

    def __call__(self) -> None:
        value = float(self.reg.GetMetricValue())
        if value < self.best[0]:
            self.best = (value, self.before)
        self.before = tuple(self.reg.GetOptimizerPosition())

    def restore(self) -> None:
        if np.isfinite(self.best[0]):
            self.transform.SetParameters(self.best[1])


class _StepMonitor:
    """Stops a registration level that has converged.

    Either a step moved no corner of the fixed image by more than
    ``min_step_mm``, or, once the step has shrunk to half its first length
    (or after ``3 * window`` iterations), the metric has not improved
    (relative ``1e-5``) over the last ``window`` iterations: the optimiser
    is creeping along a flat optimum.
    """

    window = 20

    def __init__(self, reg: sitk.ImageRegistrationMethod, transform: sitk.Transform,
                 corners: list[tuple[float, ...]], min_step_mm: float) -> None:
        import SimpleITK as sitk

        self.reg, self.corners, self.min_step = reg, corners, float(min_step_mm)
        self.probe = sitk.Transform(transform)
        self.previous = self._points(transform.GetParameters())
        self.values: list[float] = []
        self.first_step = 0.0
        self.reason = ""
        reg.AddCommand(sitk.sitkIterationEvent, self)

    def _points(self, parameters: tuple[float, ...]) -> np.ndarray:
        self.probe.SetParameters(parameters)
        return np.array([self.probe.TransformPoint(c) for c in self.corners])

    def __call__(self) -> None:
        if self.reason:
            return
        current = self._points(self.reg.GetOptimizerPosition())
        step = float(np.max(np.linalg.norm(current - self.previous, axis=1)))
        self.previous = current
        self.first_step = self.first_step or step
        self.values.append(float(self.reg.GetMetricValue()))
        n = len(self.values)
        if step < self.min_step:
            self.reason = (f"step below {self.min_step:.3g} mm after {n} iterations "
                           f"(last step {step:.3g} mm)")
        elif n > self.window and (step < 0.5 * self.first_step or n > 3 * self.window):
            # once the step has shrunk (a full-length step may still be searching), or
            # after 60 iterations without a shrink
            before = min(self.values[:-self.window])
            recent = min(self.values[-self.window:])
            if recent > before - 1e-5 * max(abs(before), 1e-12):
                self.reason = (f"metric converged: no improvement over the last "
                               f"{self.window} of {n} iterations")
        if self.reason:
            self.reg.StopRegistration()


def configure_optimizer(reg: sitk.ImageRegistrationMethod, transform: sitk.Transform,
                        corners: list[tuple[float, ...]], *, level: int, n_levels: int,
                        target: float, finest: float, factor: int, iterations: int
                        ) -> _StepMonitor | None:
    """The optimiser of one pyramid level of a rigid or affine stage.

    Every step length is in mm of motion of the fixed image's corners
    (SimpleITK re-estimates the learning rate at each iteration from the
    physical-shift scales), so rotations, scalings and translations are
    balanced whatever the parametrisation. Coarse levels take constant steps
    of half a level voxel (gradient descent, stopped when the metric no
    longer improves over 10 iterations, then set back to the best position
    visited, see :class:`_BestKeeper`): they only need to get close. The
    finest level uses regular-step gradient descent, whose step shrinks
    each time the gradient turns back, until a step moves no corner by more
    than 1e-4 voxel.
    """
    step = STEP * target
    if level < n_levels - 1:
        reg.SetOptimizerAsGradientDescent(
            learningRate=1.0, numberOfIterations=iterations, convergenceMinimumValue=1e-6,
            convergenceWindowSize=10, estimateLearningRate=reg.EachIteration,
            maximumStepSizeInPhysicalUnits=step)
        reg.SetOptimizerScalesFromPhysicalShift()
        return None
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-12, numberOfIterations=iterations,
        relaxationFactor=RELAXATION, gradientMagnitudeTolerance=1e-10,
        estimateLearningRate=reg.EachIteration, maximumStepSizeInPhysicalUnits=step)
    reg.SetOptimizerScalesFromPhysicalShift()
    return _StepMonitor(reg, transform, corners, MIN_STEP * finest)


def run_stage(kind: str, fixed: Image, moving: Image, *, metric: Metric, initial: Initial,
              fixed_mask: Image | None, moving_mask: Image | None, levels: Sequence[int],
              sigmas_mm: Sequence[float] | None, sampling: Sampling,
              max_samples: int | None, seed: int | None, iterations: int, bins: int,
              progress: bool, grid_spacing_mm: float | Sequence[float] = DEFAULT_GRID_SPACING_MM
              ) -> RegistrationResult:
    """Run one stage (``'rigid'``, ``'affine'`` or ``'bspline'``); see :func:`rigid`.

    Rigid and affine stages sample the metric on ``moving`` when its field of
    view is the smaller (:func:`sampled_on_moving`): the stage then registers
    ``fixed`` onto ``moving`` and returns the inverse.
    """
    dim = pair_dimension(fixed, moving)
    for image in (fixed, moving):  # transforms, sigmas and grids are in mm
        image.require_spacing("registration")
    options = {"metric": metric, "levels": levels, "sigmas_mm": sigmas_mm, "sampling": sampling,
               "max_samples": max_samples, "seed": seed, "iterations": iterations, "bins": bins,
               "progress": progress, "grid_spacing_mm": grid_spacing_mm}
    if kind != "bspline" and sampled_on_moving(fixed, moving, fixed_mask, moving_mask):
        reverse = _reverse_initial(initial, dim)
        if reverse is not None:
            back = _run_stage(kind, moving, fixed, dim, ("moving", "fixed"), initial=reverse,
                              fixed_mask=moving_mask, moving_mask=fixed_mask, **options)
            return RegistrationResult(back.transform.GetInverse(),
                                      metric_trace=back.metric_trace,
                                      final_metric=back.final_metric, seconds=back.seconds,
                                      fixed=fixed, moving=moving, kind=kind, metric=metric,
                                      stop_conditions=back.stop_conditions)
    return _run_stage(kind, fixed, moving, dim, ("fixed", "moving"), initial=initial,
                      fixed_mask=fixed_mask, moving_mask=moving_mask, **options)


def _run_stage(kind: str, fixed: Image, moving: Image, dim: int, roles: tuple[str, str], *,
               metric: Metric, initial: Initial, fixed_mask: Image | None,
               moving_mask: Image | None, levels: Sequence[int],
               sigmas_mm: Sequence[float] | None, sampling: Sampling, max_samples: int | None,
               seed: int | None, iterations: int, bins: int, progress: bool,
               grid_spacing_mm: float | Sequence[float]) -> RegistrationResult:
    """:func:`run_stage` on ``fixed`` (sampled) and ``moving``; ``roles`` are the names the
    caller gave them (``('moving', 'fixed')`` for a reversed pair), for the messages."""
    f_s = fixed.to_simpleitk(dimension=dim, dtype=np.float32)
    m_s = moving.to_simpleitk(dimension=dim, dtype=np.float32)
    lv, sig = check_options(metric, levels, sigmas_mm, sampling, iterations, f_s, bins)
    f_mask = mask_to_sitk(fixed_mask, fixed, dim, roles[0])
    m_mask = mask_to_sitk(moving_mask, moving, dim, roles[1])
    optimised, after = _start(kind, dim, initial, f_s, m_s, f_mask, m_mask)
    inside = 1.0 if f_mask is None else float(np.mean(sitk_array(f_mask) != 0))
    tracker = _Tracker(kind, int(iterations) * len(lv), progress)
    t0 = time.perf_counter()
    try:
        if kind == "bspline":
            optimised, value, stop = _bspline(f_s, m_s, f_mask, m_mask, after, lv, sig, metric,
                                              bins, sampling, max_samples, seed, iterations,
                                              inside, grid_spacing_mm, tracker, fixed, moving,
                                              fixed_mask)
        else:
            start = optimised if after is None else compose(after, optimised)
            _check_overlap(fixed, fixed_mask, start, m_s, moving, roles)
            # a string start is a guess: search around it; a given transform is trusted
            value, stop = _linear(optimised, f_s, m_s, f_mask, m_mask, after, lv, sig, metric,
                                  bins, sampling, max_samples, seed, iterations, inside,
                                  tracker, search=isinstance(initial, str))
    except RuntimeError as exc:
        raise _explain(exc, fixed, moving, roles) from exc
    finally:
        trace = tracker.frame()
    seconds = time.perf_counter() - t0
    final = optimised if after is None else compose(after, optimised)
    return RegistrationResult(final, metric_trace=trace, final_metric=value, seconds=seconds,
                              fixed=fixed, moving=moving, kind=kind, metric=metric,
                              stop_conditions={kind: stop})


def _linear(transform: sitk.Transform, f_s: sitk.Image, m_s: sitk.Image,
            f_mask: sitk.Image | None, m_mask: sitk.Image | None,
            after: sitk.Transform | None, lv: list[int], sig: list[float], metric: str,
            bins: int, sampling: Sampling, max_samples: int | None, seed: int | None,
            iterations: int, inside: float, tracker: _Tracker, search: bool = False
            ) -> tuple[float, str]:
    """Optimise ``transform`` in place, one SimpleITK registration per pyramid level.

    With ``search``, the coarsest level also starts from rotated copies of
    the start (:func:`_search_starts`); its distinct optima each go through
    the finer levels, and the one with the lowest finest-level metric (every
    voxel) is returned, with its own metric trace.
    """
    import SimpleITK as sitk

    finest = float(min(f_s.GetSpacing()))
    corners = _corners(f_s)
    # sampling='auto': a small image is sampled at every voxel on every level, unless one
    # image is much coarser than the other (see EVERY_VOXEL_MAX)
    f_sp, m_sp = f_s.GetSpacing(), m_s.GetSpacing()
    every_voxel = (sampling == "auto"
                   and float(np.prod(f_s.GetSize())) * inside <= EVERY_VOXEL_MAX
                   and not (_much_coarser(m_sp, f_sp) or _much_coarser(f_sp, m_sp)))
    value, stop = float("nan"), ""
    candidates = [transform]
    paths: list[list[tuple]] = [[]]
    for level, (factor, sigma) in enumerate(zip(lv, sig, strict=True)):
        target = factor * finest
        f_l, m_l = _level_image(f_s, sigma, target), _level_image(m_s, sigma, target)
        n_level = float(np.prod(f_l.GetSize()))
        frac = 1.0 if every_voxel else _sample_fraction(sampling, max_samples, n_level,
                                                        inside)

        def method(start: sitk.Transform, *, frac: float = frac,
                   n_level: float = n_level) -> sitk.ImageRegistrationMethod:
            reg = sitk.ImageRegistrationMethod()
            _set_metric(reg, metric, level_bins(bins, frac * n_level * inside))
            if frac >= 1.0:
                reg.SetMetricSamplingStrategy(reg.NONE)
            else:
                reg.SetMetricSamplingStrategy(reg.RANDOM)
                reg.SetMetricSamplingPercentage(frac, _sampling_seed(seed))
            if f_mask is not None:
                reg.SetMetricFixedMask(f_mask)
            if m_mask is not None:
                reg.SetMetricMovingMask(m_mask)
            reg.SetInterpolator(sitk.sitkLinear)
            reg.SetInitialTransform(start, inPlace=True)
            if after is not None:
                reg.SetMovingInitialTransform(after)
            return reg

        if search and level == 0 and len(lv) > 1:
            candidates = _coarse_search(transform, method, f_l, m_l, metric, target,
                                        iterations, corners)
        if len(paths) != len(candidates):  # the coarse search found several optima
            paths = [list(paths[0]) for _ in candidates]
        results = []
        for candidate, path in zip(candidates, paths, strict=True):
            reg = method(candidate)
            tracker.attach(reg, level=level)
            monitor = configure_optimizer(reg, candidate, corners, level=level,
                                          n_levels=len(lv), target=target, finest=finest,
                                          factor=factor, iterations=int(iterations))
            keeper = _BestKeeper(reg, candidate) if monitor is None and KEEP_BEST else None
            with _reproducible(metric):
                reg.Execute(f_l, m_l)
            if keeper is not None:
                keeper.restore()
            stop = (monitor.reason if monitor is not None else "") or \
                reg.GetOptimizerStopConditionDescription()
            results.append((float(reg.GetMetricValue()), stop))
            path.extend(tracker.rows)  # each candidate's own trace
            del tracker.rows[:]
        if len(candidates) > 1 and level < len(lv) - 1:
            # optima of the coarse search that this level brought into one basin (within a
            # level voxel at the fixed image's corners) go on as one: the best of them
            candidates, paths, results = _merge_basins(candidates, paths, results, corners,
                                                       target)
        if len(candidates) > 1 and level == len(lv) - 1:
            # distinct optima of the coarse search: the best on the finest level's metric,
            # free of sampling noise (SimpleITK's MetricEvaluate uses every voxel)
            with _reproducible(metric):
                finals = [method(sitk.Transform(c)).MetricEvaluate(f_l, m_l)
                          for c in candidates]
            best = int(np.argmin(finals))
            candidates, paths, results = [candidates[best]], [paths[best]], [results[best]]
        value, stop = results[0]
        done = int(iterations) * (level + 1)
        if tracker.bar.n < done:
            tracker.bar.update(done - tracker.bar.n)
    transform.SetParameters(candidates[0].GetParameters())
    tracker.rows.extend(paths[0])  # the trace is the path of the optimum returned
    return value, stop



def _distinct_basins(transforms: list, corners: list[tuple[float, ...]], target: float
                     ) -> list[int]:
    """Indices of the ``transforms`` (best first) each in its own basin: a transform
    within ``target`` mm of a kept one at every corner of the fixed image is in its
    basin. Distances at fixed points do not depend on the moving image's pose."""
    kept: list[int] = []
    points: list[np.ndarray] = []
    for i, t in enumerate(transforms):
        at = np.array([t.TransformPoint(c) for c in corners])
        if all(np.max(np.linalg.norm(at - q, axis=1)) > target for q in points):
            kept.append(i)
            points.append(at)
    return kept


def _merge_basins(candidates: list, paths: list, results: list,
                  corners: list[tuple[float, ...]], target: float) -> tuple[list, list, list]:
    """The candidates in distinct basins (:func:`_distinct_basins`), each basin's best
    (lowest metric), in their order; ``paths`` and ``results`` follow."""
    order = sorted(range(len(candidates)), key=lambda i: results[i][0])
    kept = sorted(order[j] for j in _distinct_basins([candidates[i] for i in order],
                                                      corners, target))  # the search's order
    return ([candidates[i] for i in kept], [paths[i] for i in kept],
            [results[i] for i in kept])

def _search_starts(transform: sitk.Transform) -> list[sitk.Transform]:
    """Copies of a linear ``transform`` rotated in fixed space about its centre, by
    +-``SEARCH_DEG`` about each axis (the one angle in 2D), before it is applied."""
    import SimpleITK as sitk

    from ..geometry import rotation_matrix

    dim = transform.GetDimension()
    centre = np.asarray(transform.GetFixedParameters()[:dim], dtype=float)
    parts = affine_parts(transform, dim)
    if parts is None:  # pragma: no cover - _start only optimises linear transforms
        return []
    matrix, offset = parts
    axes = [2] if dim == 2 else [0, 1, 2]
    kind = "rigid" if transform.GetNumberOfParameters() == 3 * (dim - 1) else "affine"
    out = []
    for axis in axes:
        for sign in (-1.0, 1.0):
            angles = np.zeros(3)
            angles[axis] = sign * SEARCH_DEG
            turned = matrix @ rotation_matrix(angles)[:dim, :dim]
            candidate = sitk.Transform(transform).Downcast()
            candidate.SetParameters(make_linear(
                kind, dim, turned, offset + matrix @ centre - turned @ centre,
                centre).GetParameters())
            out.append(candidate)
    return out


def _coarse_search(transform: sitk.Transform,
                   method: Callable[[sitk.Transform], sitk.ImageRegistrationMethod],
                   f_l: sitk.Image, m_l: sitk.Image, metric: str, target: float,
                   iterations: int, corners: list[tuple[float, ...]]) -> list[sitk.Transform]:
    """Multi-start on the coarsest level: the distinct optima, best first.

    The start and its rotated copies (:func:`_search_starts`) are ranked by
    their metric; the start and the ``SEARCH_KEEP - 1`` best copies are
    optimised (constant steps of half a level voxel, as on any coarse level).
    Optima closer than one level voxel (at the fixed image's corners) are one
    basin. On real multimodal pairs a single descent can stop in a side basin
    that depends on where it started, and the coarse metric does not always
    tell the basins apart: the distinct optima go on through the finer levels
    and the finest level's metric picks one.
    """
    import SimpleITK as sitk

    starts = [sitk.Transform(transform).Downcast(), *_search_starts(transform)]
    with _reproducible(metric):
        values = [method(s).MetricEvaluate(f_l, m_l) for s in starts]
    ranked = [int(i) for i in np.argsort(values, kind="stable") if i != 0]
    found: list[tuple[float, sitk.Transform]] = []
    for i in [0, *ranked[:SEARCH_KEEP - 1]]:
        reg = method(starts[i])  # optimises starts[i] in place
        reg.SetOptimizerAsGradientDescent(
            learningRate=1.0, numberOfIterations=int(iterations), convergenceMinimumValue=1e-6,
            convergenceWindowSize=10, estimateLearningRate=reg.EachIteration,
            maximumStepSizeInPhysicalUnits=STEP * target)
        reg.SetOptimizerScalesFromPhysicalShift()
        with _reproducible(metric):
            reg.Execute(f_l, m_l)
        found.append((float(reg.GetMetricValue()), starts[i]))
    found.sort(key=lambda vt: vt[0])
    distinct = [found[i][1] for i in _distinct_basins([t for _, t in found], corners, target)]
    transform.SetParameters(distinct[0].GetParameters())
    return [transform, *distinct[1:]]


def _bspline(f_s: sitk.Image, m_s: sitk.Image, f_mask: sitk.Image | None,
             m_mask: sitk.Image | None, after: sitk.Transform | None, lv: list[int],
             sig: list[float], metric: str, bins: int, sampling: Sampling,
             max_samples: int | None, seed: int | None, iterations: int, inside: float,
             grid_spacing_mm: float | Sequence[float], tracker: _Tracker, fixed: Image,
             moving: Image, fixed_mask: Image | None) -> tuple[sitk.Transform, float, str]:
    """B-spline stage on SimpleITK's pyramid (it refines the control grid per level)."""
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    n = float(np.prod(f_s.GetSize()))
    sizes = [n / f ** f_s.GetDimension() for f in lv]
    fracs = [_sample_fraction(sampling, max_samples, size, inside) for size in sizes]
    # one metric for every level here: bins for the level with the fewest samples
    _set_metric(reg, metric, level_bins(bins, min(p * size * inside
                                                  for p, size in zip(fracs, sizes, strict=True))))
    if all(p >= 1.0 for p in fracs):
        reg.SetMetricSamplingStrategy(reg.NONE)
    else:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentagePerLevel(fracs, _sampling_seed(seed))
    if f_mask is not None:
        reg.SetMetricFixedMask(f_mask)
    if m_mask is not None:
        reg.SetMetricMovingMask(m_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(lv)
    reg.SetSmoothingSigmasPerLevel(sig)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    mesh = _mesh_size(f_s, grid_spacing_mm, len(lv))
    transform = sitk.BSplineTransformInitializer(f_s, mesh, order=3)
    reg.SetInitialTransformAsBSpline(transform, inPlace=True,
                                     scaleFactors=[2 ** i for i in range(len(lv))])
    # L-BFGS (libLBFGS through ITK): no parameter scales needed for B-spline coefficients.
    # Mutual information's gradient in mm of coefficient is small: with libLBFGS's
    # default accuracy (1e-5, |gradient| / max(1, |x|)) it often stops at once as
    # "Already minimized" or after a few iterations (a smooth 5 mm displacement of a 48^3 CT:
    # 9 iterations at full resolution, TRE 1.44 mm left; with 1e-6, 50 iterations, 1.08 mm)
    reg.SetOptimizerAsLBFGS2(solutionAccuracy=LBFGS_ACCURACY, numberOfIterations=int(iterations),
                             deltaConvergenceTolerance=1e-5)
    if after is not None:
        reg.SetMovingInitialTransform(after)
    _check_overlap(fixed, fixed_mask, after if after is not None else
                   sitk.Transform(f_s.GetDimension(), sitk.sitkIdentity), m_s, moving)
    tracker.attach(reg)
    with _reproducible(metric):
        out = reg.Execute(f_s, m_s)
    return out, float(reg.GetMetricValue()), reg.GetOptimizerStopConditionDescription()


def _explain(exc: RuntimeError, fixed: Image, moving: Image,
             roles: tuple[str, str] = ("fixed", "moving")) -> Exception:
    text = str(exc)
    if "outside" in text.lower() or "samples" in text.lower():
        return RegistrationError(
            "the images stopped overlapping during registration (ITK: "
            f"{text.strip().splitlines()[-1][:200]}). {roles[0].capitalize()} {fixed!r}, "
            f"{roles[1]} {moving!r}. "
            "Start closer (initial='moments' or landmarks), add masks, or check the geometry"
        )
    return RegistrationError(f"SimpleITK registration failed: {text.strip()[-400:]}")

