"""Registration results: transform, metric trace, resampling, points, files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._validate import require_image
from ..image import Image, Interpolation
from ._convert import RegistrationError, apply_transform, as_points

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

__all__ = ["RegistrationResult", "load_transform", "resample", "transform_points"]

def compose(after: sitk.Transform, first: sitk.Transform) -> sitk.Transform:
    """The transform ``x -> after(first(x))`` (one flat composite)."""
    import SimpleITK as sitk

    out = sitk.CompositeTransform([after, first])
    out.FlattenTransform()
    return out


def _spatial_dim(image: Image) -> int:
    return 2 if image.spatial_shape[0] == 1 else 3


def resample(
    image: Image,
    transform: sitk.Transform,
    reference: Image,
    *,
    interpolation: Interpolation = "linear",
    default_value: float = 0.0,
) -> Image:
    """Resample a moving-space ``image`` onto ``reference``'s grid through ``transform``.

    This is :meth:`medlab.Image.resample_to` with ``transform=`` (medlab's
    one resampler, with its interpolators and dtype rule), after a check
    that the transform's dimension fits both images.

    Parameters
    ----------
    image : Image
        In the moving image's physical space, on any grid (a label map, a
        dose, another sequence sharing the moving frame of reference).
        Channel images and time series (frame by frame) are accepted.
    transform : SimpleITK.Transform
        Maps reference (fixed) LPS points to ``image`` points, as
        :attr:`RegistrationResult.transform` does.
    reference : Image
        Gives the output grid; its data are not used.
    interpolation : {'linear', 'nearest', 'label', 'bspline'}
        ``'nearest'`` and ``'label'`` (SimpleITK's label-Gaussian, smoother
        label borders) keep the dtype and only produce existing values: use
        them for label maps. The others return float32 (float64 stays).
    default_value : float
        Value outside ``image``'s field of view.

    Returns
    -------
    Image
        On ``reference``'s grid, with ``image``'s metadata.
    """
    require_image(image, "image")
    require_image(reference, "reference")
    dim = transform.GetDimension()
    for role, img in (("image", image), ("reference", reference)):
        if _spatial_dim(img) != dim:
            raise RegistrationError(
                f"a {dim}D transform cannot resample a {_spatial_dim(img)}D {role} {img!r}; "
                "2D transforms go with single-slice (1, rows, columns) images")
    return image.resample_to(reference, transform=transform, interpolation=interpolation,
                             default_value=default_value)


def transform_points(points_lps: npt.ArrayLike, transform: sitk.Transform) -> np.ndarray:
    """Map LPS mm points through ``transform`` (fixed -> moving); shape kept.

    2D transforms map ``x, y`` and keep a ``z`` column unchanged.
    """
    return apply_transform(transform, points_lps)


def load_transform(path: str | os.PathLike) -> sitk.Transform:
    """Read an ITK transform file (``.tfm``, ``.txt``, ``.h5``, ``.mat``).

    Returns
    -------
    SimpleITK.Transform
        Maps fixed LPS points to moving ones, as saved by
        :meth:`RegistrationResult.save`; use it with :func:`resample` and
        :func:`transform_points`, or as ``initial=`` of a registration.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no transform file at {str(p)!r}")
    try:
        return sitk.ReadTransform(str(p)).Downcast()
    except RuntimeError as exc:
        raise RegistrationError(f"cannot read an ITK transform from {str(p)!r}: "
                                f"{str(exc).strip().splitlines()[-1]}") from exc


class RegistrationResult:
    """The outcome of a registration.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Maps **fixed** physical points (LPS mm) to **moving** ones: ITK's
        convention, the direction that resampling needs (for each fixed
        voxel, where to read the moving image). To carry a moving point
        into fixed space use ``transform_points(p, inverse=True)``.
    metric_trace : pandas.DataFrame
        ``stage``, ``level`` (0 = coarsest), ``iteration`` and ``metric``
        at every optimiser iteration (lower is better for all metrics:
        SimpleITK reports negated mutual information and correlation), and
        ``seconds`` since the stage started. Plot it to see convergence.
    final_metric : float
        Metric value at the last iteration (on the sampled voxels).
    seconds : float
        Wall time of the optimisation.
    fixed, moving : Image or None
        The registered images (None for landmark registration).
    kind : str
        ``'rigid'``, ``'affine'``, ``'bspline'``, stages joined by ``+``,
        or ``'landmark-<kind>'``.
    metric : str
        The similarity metric's name.
    stop_conditions : dict
        The optimiser's stop reason for each stage.
    """

    def __init__(self, transform: sitk.Transform, *, metric_trace: pd.DataFrame | None = None,
                 final_metric: float = float("nan"), seconds: float = 0.0,
                 fixed: Image | None = None, moving: Image | None = None, kind: str = "",
                 metric: str = "", stop_conditions: dict[str, str] | None = None) -> None:
        import pandas as pd

        self.transform = transform
        self.metric_trace = (metric_trace if metric_trace is not None else
                             pd.DataFrame(columns=["stage", "level", "iteration", "metric"]))
        self.final_metric = float(final_metric)
        self.seconds = float(seconds)
        self.fixed = fixed
        self.moving = moving
        self.kind = kind
        self.metric = metric
        self.stop_conditions = dict(stop_conditions or {})

    @property
    def dimension(self) -> int:
        """2 or 3: the dimension of :attr:`transform`."""
        return int(self.transform.GetDimension())

    def __repr__(self) -> str:
        return (f"RegistrationResult(kind={self.kind!r}, {self.dimension}D, metric={self.metric!r}, "
                f"final_metric={self.final_metric:.5g}, iterations={len(self.metric_trace)}, "
                f"seconds={self.seconds:.2f})")

    def _reference(self, reference: Image | None) -> Image:
        if reference is not None:
            return reference
        if self.fixed is None:
            raise ValueError("this result has no fixed image (landmark registration): pass "
                             "reference=<an Image giving the output grid>")
        return self.fixed

    def resample(self, image: Image, *, interpolation: Interpolation = "linear",
                 reference: Image | None = None, default_value: float = 0.0) -> Image:
        """Bring ``image`` (moving space, any grid) onto the fixed grid.

        Parameters
        ----------
        image : Image
            The moving image, or anything in its physical space (labels
            with ``interpolation='nearest'`` or ``'label'``).
        interpolation : {'linear', 'nearest', 'label', 'bspline'}
            See :func:`medlab.registration.resample`.
        reference : Image, optional
            Output grid; default the fixed image's.
        default_value : float
            Value outside ``image``'s field of view.

        Returns
        -------
        Image
        """
        return resample(image, self.transform, self._reference(reference),
                        interpolation=interpolation, default_value=default_value)

    def transform_points(self, points_lps: npt.ArrayLike, *, inverse: bool = False
                         ) -> np.ndarray:
        """Map fixed LPS points to moving space (or back with ``inverse=True``).

        Parameters
        ----------
        points_lps : (N, 3) or (3,) array_like
            LPS mm. With 2D results ``(N, 2)`` works too; a ``z`` column is
            kept unchanged.
        inverse : bool
            Map moving points to fixed space. Only for linear transforms;
            a deformable result raises (its inverse has no closed form).

        Returns
        -------
        ndarray
            Same shape as the input.
        """
        single = np.ndim(points_lps) == 1
        pts = as_points(points_lps, "points_lps")
        transform = self.transform
        if inverse:
            if not transform.IsLinear():
                raise RegistrationError(
                    f"the inverse of a deformable ({self.kind}) transform has no closed form; "
                    "register the images the other way round to map moving points to fixed")
            transform = transform.GetInverse()
        out = apply_transform(transform, pts)
        return out[0] if single else out

    def save(self, path: str | os.PathLike) -> Path:
        """Write :attr:`transform` as an ITK transform file (``.tfm``/``.txt`` or ``.h5``).

        Read it back with :func:`medlab.registration.load_transform`; other
        ITK tools (3D Slicer, ANTs, elastix's ITK reader) read it too.
        """
        import SimpleITK as sitk

        p = Path(path)
        if p.suffix.lower() not in (".tfm", ".txt", ".h5", ".hdf5", ".mat"):
            raise ValueError(f"save to a .tfm, .txt, .h5 or .mat file, got {str(p)!r}")
        sitk.WriteTransform(self.transform, str(p))
        return p

    def jacobian_determinant(self, *, reference: Image | None = None) -> Image:
        """Determinant of the transform's spatial Jacobian on the fixed grid.

        Values below 1 mean local contraction of the fixed region mapped
        into moving space, above 1 expansion, and ``<= 0`` folding (a
        non-invertible deformation). Computed from the displacement field
        by central differences in physical space, so any direction cosines
        are honoured.

        Returns
        -------
        Image
            float64 on the reference (default fixed) grid; ``meta`` holds
            ``folding_fraction`` (share of voxels with determinant <= 0),
            ``min``, ``max``, ``mean`` and ``std``.
        """
        ref = self._reference(reference)
        return jacobian_determinant(self.transform, ref)


def jacobian_determinant(transform: sitk.Transform, reference: Image) -> Image:
    """See :meth:`RegistrationResult.jacobian_determinant`."""
    import SimpleITK as sitk

    dim = transform.GetDimension()
    ref_s = reference.with_array(np.zeros(reference.spatial_shape, np.uint8), frame_times_s=None,
                                 channels=False).to_simpleitk(dimension=dim)
    field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64,
                                              ref_s.GetSize(), ref_s.GetOrigin(),
                                              ref_s.GetSpacing(), ref_s.GetDirection())
    u = sitk.GetArrayViewFromImage(field)  # array axes reversed (.., y, x), components x, y, (z)
    step = np.asarray(ref_s.GetDirection()).reshape(dim, dim) * np.asarray(ref_s.GetSpacing())
    grads = np.empty((*u.shape[:-1], dim, dim))  # [..., component, itk index axis]
    for k in range(dim):  # ITK index axis k is array axis dim - 1 - k
        axis = dim - 1 - k
        if u.shape[axis] > 1:
            grads[..., k] = np.gradient(u, axis=axis)
        else:
            grads[..., k] = 0.0
    jac = np.eye(dim) + grads @ np.linalg.inv(step)
    det = np.linalg.det(jac)
    if dim == 2:
        det = det[np.newaxis]
    meta = {"folding_fraction": float(np.mean(det <= 0)), "min": float(det.min()),
            "max": float(det.max()), "mean": float(det.mean()), "std": float(det.std())}
    return Image(det, reference.affine, meta=meta)


def ensure_result(obj: Any) -> RegistrationResult:
    """``obj`` if it is a :class:`RegistrationResult`, else a clear TypeError."""
    if not isinstance(obj, RegistrationResult):
        raise TypeError(f"expected a RegistrationResult (from ml.registration.rigid, affine, "
                        f"deformable, register or landmark_registration), got "
                        f"{type(obj).__name__}")
    return obj
