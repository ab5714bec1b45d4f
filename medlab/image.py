"""The one image type of medlab: an array plus an affine in LPS millimetres.

See :mod:`medlab.geometry` for the conventions: spatial axes are ordered
(slice, row, column) and the affine maps those indices to LPS mm. Optional
trailing axes follow the three spatial ones, in this order: a fourth axis,
then channels (when ``channels=True``, e.g. RGB).

The fourth axis says what it is (:attr:`Image.frame_axis`): ``'time'``
(``frame_times_s``, seconds), ``'diffusion'`` (``b_values`` in s/mm2 and
gradient directions ``b_vectors`` in LPS), ``'echo'`` (``echo_times_s``) or
``'unknown'`` (e.g. a NIfTI whose time unit is unknown): a time is never
invented where the data hold none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import geometry as geo
from ._optional import import_optional
from .errors import (
    GeometryError,
    GeometryMismatchError,
    UnknownSpacingError,
)

if TYPE_CHECKING:  # pragma: no cover
    import nibabel
    import SimpleITK as sitk

__all__ = ["Image"]

Interpolation = Literal["nearest", "linear", "label", "bspline"]
#: the one interpolator table: medlab's name -> SimpleITK's interpolator
_INTERPOLATORS = {"nearest": "sitkNearestNeighbor", "linear": "sitkLinear",
                  "label": "sitkLabelGaussian", "bspline": "sitkBSpline"}
#: NIfTI ``descrip`` of an image written with an unknown pixel spacing
UNKNOWN_SPACING_DESCRIP = b"medlab: pixel spacing unknown"
FrameAxis = Literal["time", "diffusion", "echo", "unknown"]
_AXIS_KWARGS = ("frame_times_s", "b_values", "b_vectors", "echo_times_s", "frame_axis")


class Image:
    """An n-dimensional medical image with its geometry in LPS millimetres.

    Parameters
    ----------
    array : array_like
        Voxel data. Axes 0..2 are spatial (slice, row, column); then an
        optional time axis, then an optional channel axis. A 2D image has a
        single slice: shape ``(1, rows, columns)``. The array is not copied.
    affine : (4, 4) array_like
        Maps ``[slice, row, column, 1]`` indices to LPS mm. Copied.
    frame_times_s : sequence of float, optional
        Time of each frame in seconds from the first frame; makes axis 3 a
        time axis of that length. Irregular sampling is kept as given.
    b_values : sequence of float, optional
        Diffusion weighting of each volume in s/mm2; makes axis 3 a
        diffusion axis.
    b_vectors : (n, 3) array_like, optional
        Unit gradient direction of each volume in LPS (zeros where there is
        none, e.g. b=0); only with ``b_values``. See :attr:`b_vectors_image`
        for the same directions in the image's axes.
    echo_times_s : sequence of float, optional
        Echo time of each volume in seconds; makes axis 3 an echo axis.
    frame_axis : {'unknown'}, optional
        A fourth axis whose meaning is unknown (no times are invented).
        The other kinds follow from the arguments above.
    channels : bool
        Whether the last axis holds channels (RGB, vector components).
    meta : mapping, optional
        Free-form metadata (modality, units, source UIDs, ...). Copied
        shallowly. ``meta['scaling']`` (shown in ``repr``) says which value
        scaling the voxels carry when loaded from DICOM: ``'rescale'``,
        ``'philips-float'``, ``'real-world-value-mapping'``, ``'modality-lut'``.

    Examples
    --------
    >>> img = Image(np.zeros((4, 5, 6)), np.diag([3.0, 2.0, 1.0, 1.0]))
    >>> img.spacing
    (3.0, 2.0, 1.0)
    >>> img.index_to_world([1, 1, 1]).tolist()
    [3.0, 2.0, 1.0]
    """

    __slots__ = ("_affine", "_array", "_axis4", "_axis4_values", "_b_vectors", "_channels",
                 "meta")

    def __init__(
        self,
        array: npt.ArrayLike,
        affine: npt.ArrayLike,
        *,
        frame_times_s: npt.ArrayLike | None = None,
        b_values: npt.ArrayLike | None = None,
        b_vectors: npt.ArrayLike | None = None,
        echo_times_s: npt.ArrayLike | None = None,
        frame_axis: FrameAxis | None = None,
        channels: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        arr = np.asanyarray(array)
        kind, values = _fourth_axis(frame_times_s, b_values, b_vectors, echo_times_s, frame_axis)
        n_expected = 3 + (kind is not None) + bool(channels)
        if arr.ndim != n_expected:
            what = ["3 spatial axes"]
            if kind is not None:
                what.append(f"a fourth ({kind}) axis")
            if channels:
                what.append("a channel axis")
            raise GeometryError(
                f"array has {arr.ndim} axes (shape {arr.shape}) but {n_expected} are expected "
                f"({' + '.join(what)}); a 2D image needs shape (1, rows, columns)"
            )
        self._array = arr
        self._affine = geo.check_affine(affine)
        self._channels = bool(channels)
        self._axis4: str | None = kind
        self._axis4_values: np.ndarray | None = values
        self._b_vectors: np.ndarray | None = None
        if values is not None and values.shape[0] != arr.shape[3]:
            name = {"time": "frame times", "diffusion": "b-values", "echo": "echo times"}[str(kind)]
            raise GeometryError(
                f"{values.shape[0]} {name} were given for a {kind} axis of length {arr.shape[3]}"
            )
        if kind == "diffusion" and b_vectors is not None:
            vec = np.asarray(b_vectors, dtype=float).reshape(-1, 3)
            if vec.shape[0] != arr.shape[3] or not np.all(np.isfinite(vec)):
                raise GeometryError(
                    f"b_vectors must be {arr.shape[3]} finite LPS directions (shape "
                    f"({arr.shape[3]}, 3)), got shape {np.shape(b_vectors)}"
                )
            self._b_vectors = vec
        self.meta: dict[str, Any] = dict(meta or {})

    # ------------------------------------------------------------------ data
    @property
    def array(self) -> np.ndarray:
        """The voxel array (not a copy)."""
        return self._array

    @property
    def affine(self) -> np.ndarray:
        """4x4 index -> LPS mm matrix (a copy)."""
        return self._affine.copy()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return tuple(self._array.shape[:3])  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return self._array.ndim

    @property
    def channels(self) -> bool:
        """Whether the last axis holds channels."""
        return self._channels

    @property
    def frame_axis(self) -> FrameAxis | None:
        """What axis 3 is: ``'time'``, ``'diffusion'``, ``'echo'``, ``'unknown'``, or None."""
        return self._axis4  # type: ignore[return-value]

    @property
    def frame_times_s(self) -> np.ndarray | None:
        """Frame times in seconds (a copy); None unless axis 3 is time."""
        return self._values_of("time")

    @property
    def b_values(self) -> np.ndarray | None:
        """Diffusion b-value of each volume in s/mm2 (a copy); None unless axis 3 is diffusion."""
        return self._values_of("diffusion")

    @property
    def b_vectors(self) -> np.ndarray | None:
        """Gradient direction of each volume as LPS unit vectors, shape (n, 3), or None.

        Zero rows where a volume has no direction (b=0, isotropic trace).
        """
        return None if self._b_vectors is None else self._b_vectors.copy()

    @property
    def b_vectors_image(self) -> np.ndarray | None:
        """The gradient directions in the image's own axes, shape (n, 3), or None.

        Component ``j`` is along array axis ``j`` (slice, row, column), as
        unit vectors. This is medlab's axis order: FSL's ``.bvec`` convention
        (NIfTI voxel axes i, j, k, x flipped for a positive determinant) is
        applied only when reading and writing ``.bvec`` files.
        """
        if self._b_vectors is None:
            return None
        cols = self._affine[:3, :3] / np.linalg.norm(self._affine[:3, :3], axis=0)
        local = np.linalg.solve(cols, self._b_vectors.T).T
        norm = np.linalg.norm(local, axis=1, keepdims=True)
        return np.divide(local, norm, out=np.zeros_like(local), where=norm > 0)

    @property
    def echo_times_s(self) -> np.ndarray | None:
        """Echo time of each volume in seconds (a copy); None unless axis 3 is echo."""
        return self._values_of("echo")

    @property
    def n_frames(self) -> int:
        """Length of axis 3 (whatever it is), 1 without one."""
        return 1 if self._axis4 is None else int(self._array.shape[3])

    def _values_of(self, kind: str) -> np.ndarray | None:
        if self._axis4 != kind or self._axis4_values is None:
            return None
        return self._axis4_values.copy()

    def _axis_kwargs(self) -> dict[str, Any]:
        """The constructor arguments that recreate this image's fourth axis."""
        if self._axis4 is None:
            return {}
        if self._axis4 == "unknown":
            return {"frame_axis": "unknown"}
        if self._axis4 == "diffusion":
            return {"b_values": self._axis4_values, "b_vectors": self._b_vectors}
        key = {"time": "frame_times_s", "echo": "echo_times_s"}[self._axis4]
        return {key: self._axis4_values}

    # -------------------------------------------------------------- geometry
    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along the three spatial array axes, in mm."""
        return tuple(float(s) for s in geo.voxel_sizes(self._affine))  # type: ignore[return-value]

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position of voxel ``[0, 0, 0]``, in mm."""
        return tuple(float(v) for v in self._affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit LPS directions of the array axes."""
        return geo.decompose_affine(self._affine)[2]

    @property
    def orientation(self) -> str:
        """LPS letters each array axis points to, e.g. ``'SPL'`` for axial DICOM."""
        return "".join(geo.orientation_codes(self._affine))

    @property
    def is_oblique(self) -> bool:
        """Whether any axis is not aligned with L/P/S (within 1e-4)."""
        d = np.abs(self.direction)
        return not np.allclose(np.sort(d, axis=0)[:2], 0, atol=1e-4)

    def index_to_world(self, index: npt.ArrayLike) -> np.ndarray:
        """LPS mm of (fractional) array indices, shape (..., 3)."""
        return geo.apply_affine(self._affine, index)

    def world_to_index(self, points: npt.ArrayLike) -> np.ndarray:
        """Fractional array indices of LPS mm points, shape (..., 3)."""
        return geo.apply_affine(np.linalg.inv(self._affine), points)

    @property
    def center(self) -> np.ndarray:
        """LPS mm of the centre of the voxel grid."""
        return self.index_to_world((np.asarray(self.spatial_shape) - 1) / 2.0)

    def geometry_equal(self, other: Image, *, atol: float = 1e-4) -> bool:
        """Whether ``other`` has the same spatial shape and affine (within ``atol`` mm)."""
        return self.spatial_shape == other.spatial_shape and bool(
            np.allclose(self._affine, other._affine, atol=atol)
        )

    def match_geometry(self, other: Image, *, atol: float = 1e-4) -> None:
        """Raise :class:`GeometryMismatchError` naming what differs from ``other``."""
        problems = []
        if self.spatial_shape != other.spatial_shape:
            problems.append(f"shape {self.spatial_shape} vs {other.spatial_shape}")
        for name in ("spacing", "origin"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if not np.allclose(a, b, atol=atol):
                problems.append(f"{name} {np.round(a, 4).tolist()} vs {np.round(b, 4).tolist()}")
        if not np.allclose(self.direction, other.direction, atol=atol):
            problems.append(
                f"direction {np.round(self.direction, 4).tolist()} vs "
                f"{np.round(other.direction, 4).tolist()}"
            )
        if problems:
            raise GeometryMismatchError(
                "the images are on different grids: "
                + "; ".join(problems)
                + ". Use image.resample_to(reference) to bring one onto the other's grid."
            )

    # ---------------------------------------------------------- derivations
    def with_array(self, array: npt.ArrayLike, **changes: Any) -> Image:
        """A new image with the same geometry, metadata and axes, and new data.

        Keyword arguments override ``affine``, ``channels``, ``meta`` or the
        fourth axis: any of ``frame_times_s``, ``b_values``, ``b_vectors``,
        ``echo_times_s``, ``frame_axis`` replaces it as a whole (e.g.
        ``frame_times_s=None`` for a 3D result).
        """
        kwargs: dict[str, Any] = {
            "affine": self._affine,
            "channels": self._channels,
            "meta": self.meta,
        }
        if not any(k in changes for k in _AXIS_KWARGS):
            kwargs.update(self._axis_kwargs())
        kwargs.update(changes)
        return Image(array, **kwargs)

    def frame(self, t: int) -> Image:
        """The 3D image at index ``t`` of axis 3 (a view of the data).

        Its ``meta`` gains ``frame_index`` and, by the kind of axis,
        ``time_s``, ``b_value`` (and ``b_vector`` in LPS) or ``echo_time_s``.
        """
        if self._axis4 is None:
            raise IndexError("this image has no fourth axis; it is a single frame")
        n = self.n_frames
        if not -n <= t < n:
            raise IndexError(f"frame {t} is out of range for {n} frames")
        meta = dict(self.meta, frame_index=t % n)
        if self._axis4_values is not None:
            key = {"time": "time_s", "diffusion": "b_value", "echo": "echo_time_s"}[self._axis4]
            meta[key] = float(self._axis4_values[t])
        if self._b_vectors is not None:
            meta["b_vector"] = self._b_vectors[t].tolist()
        return Image(self._array[:, :, :, t], self._affine, channels=self._channels, meta=meta)

    def frames(self) -> list[Image]:
        """All volumes along axis 3 as 3D images (views); ``[self]`` without one."""
        return [self.frame(t) for t in range(self.n_frames)] if self._axis4 is not None else [self]

    def reorient(self, target: str = "SPL") -> Image:
        """The same voxels with array axes permuted/flipped to point to ``target``.

        No interpolation: each voxel keeps its value and world position. For
        oblique images the closest letters are used. ``'SPL'`` is the
        canonical DICOM axial order (slices inferior to superior, rows
        anterior to posterior, columns right to left).
        """
        perm, flips = geo.reorientation(self._affine, target)
        arr = np.transpose(self._array, (*perm, *range(3, self.ndim)))
        new = np.eye(4)
        start = np.zeros(3)
        for ax, (old, flip) in enumerate(zip(perm, flips, strict=True)):
            col = self._affine[:3, old]
            new[:3, ax] = -col if flip else col
            if flip:
                arr = np.flip(arr, axis=ax)
                start[old] = self.spatial_shape[old] - 1
        new[:3, 3] = self.index_to_world(start)
        return self.with_array(arr, affine=new)

    def __repr__(self) -> str:
        if self.spacing_known:
            sp = "(" + ", ".join(f"{s:.4g}" for s in self.spacing) + ") mm"
            if "spacing_source" in self.meta:
                sp += f" from {self.spacing_source} ({self.spacing_plane})"
        else:
            sp = "unknown (pixels)"
        extra = ""
        if self._axis4 is not None:
            extra += f", frames={self.n_frames} ({self._axis4})"
        if self._channels:
            extra += f", channels={self._array.shape[-1]}"
        modality = self.meta.get("modality")
        mod = f", modality={modality!r}" if modality else ""
        if self.meta.get("scaling"):  # which value scaling the voxels carry
            mod += f", scaling={self.meta['scaling']!r}"
        return (
            f"Image(shape={self.shape}, dtype={self.dtype}, spacing={sp}, "
            f"orientation={self.orientation!r}{extra}{mod})"
        )

    # ------------------------------------------------------------ resampling
    def resample_to(
        self,
        reference: Image | tuple[Sequence[int], npt.ArrayLike],
        *,
        transform: sitk.Transform | npt.ArrayLike | None = None,
        interpolation: Interpolation = "linear",
        default_value: float = 0.0,
    ) -> Image:
        """Resample onto the grid (shape and affine) of ``reference``; medlab's one resampler.

        Works for any pair of affines, sheared ones included: the index
        mapping (output voxel -> this image's voxel) is computed here and
        SimpleITK only interpolates. Registration results
        (:meth:`medlab.registration.RegistrationResult.resample`),
        segmentation and the viewers resample through this method.

        Parameters
        ----------
        reference : Image or (shape, affine)
            Gives the output grid: an image (its data are not used) or a
            spatial ``shape`` and a 4x4 index -> LPS mm ``affine``, as
            :func:`nibabel.processing.resample_from_to` accepts an image or
            ``(shape, affine)`` (medlab's axis order and LPS, not RAS).
        transform : SimpleITK.Transform or (4, 4) array_like, optional
            Maps **reference** (output) points to points of **this** image,
            both LPS mm: ITK's direction, the one resampling needs (for each
            output voxel, where to read this image); the
            :attr:`~medlab.registration.RegistrationResult.transform` of a
            registration is one. A 4x4 matrix acts on ``[x, y, z, 1]``. A 2D
            SimpleITK transform (2D registration) needs single-slice images
            and maps their LPS ``x, y``. None: both grids share one physical
            space (the identity).
        interpolation : {'linear', 'nearest', 'label', 'bspline'}
            ``'nearest'`` and ``'label'`` (SimpleITK's label-Gaussian:
            smoother label borders) only produce values that exist in this
            image; use them for label maps. ``'bspline'`` is cubic.
        default_value : float
            Value outside this image's field of view.

        Returns
        -------
        Image
            On the reference grid, with this image's trailing axes (each
            frame of a fourth axis and every channel resampled alike) and
            metadata. Dtype rule: ``'nearest'`` and ``'label'`` keep the
            dtype (a label image stays integer, bool stays bool; in native
            byte order); the others return float32 (float64 stays float64).

        Raises
        ------
        ValueError
            An unknown ``interpolation``, a malformed grid or transform.
        GeometryError
            A 2D transform with an image or grid of more than one slice.

        Examples
        --------
        >>> img = Image(np.arange(8.0).reshape(1, 1, 8), np.eye(4))
        >>> shift = np.eye(4); shift[2, 3] = 2.0  # read 2 mm further along z
        >>> img.resample_to(img, transform=shift, interpolation="nearest").array[0, 0].tolist()
        [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0, 0.0]
        """
        import SimpleITK as sitk

        ref_shape, ref_affine = _grid(reference)
        if interpolation not in _INTERPOLATORS:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERPOLATORS)}, got {interpolation!r}"
            )
        dim: Literal[2, 3] = 2 if transform is not None and hasattr(transform, "GetDimension") \
            and int(transform.GetDimension()) == 2 else 3
        if dim == 2 and (self.spatial_shape[0] != 1 or ref_shape[0] != 1):
            raise GeometryError(
                f"a 2D transform resamples single-slice images (1, rows, columns), got an image "
                f"of shape {self.spatial_shape} onto a grid of shape {ref_shape}; use a 3D "
                "transform for volumes"
            )
        mapping = _index_transform(_itk_index_affine(self._affine, dim),
                                   _itk_index_affine(ref_affine, dim), transform, dim)
        keep = interpolation in ("nearest", "label")
        if keep:
            out_dtype = self.dtype.newbyteorder("=")
        else:
            out_dtype = np.dtype(np.float64 if self.dtype == np.float64 else np.float32)
        out = np.empty(tuple(ref_shape) + self.shape[3:], dtype=out_dtype)
        size = [int(n) for n in ref_shape[::-1]][:dim]
        for t, frame in enumerate(self.frames()):
            src = frame.to_simpleitk(dtype=None if keep else out_dtype, dimension=dim,
                                     index_space=True)
            src.SetSpacing([1.0] * dim)  # physical point = ITK index (x, y[, z] order)
            res = sitk.Resample(src, size, mapping, getattr(sitk, _INTERPOLATORS[interpolation]),
                                [0.0] * dim, [1.0] * dim, np.eye(dim).ravel().tolist(),
                                float(default_value))
            arr = sitk.GetArrayViewFromImage(res)
            if self._axis4 is None:
                out[...] = arr.reshape(out.shape)
            else:
                out[:, :, :, t] = arr.reshape(out.shape[:3] + out.shape[4:])
        return Image(out, ref_affine, channels=self._channels, meta=self.meta,
                     **self._axis_kwargs())

    def orthogonal_grid(self) -> tuple[tuple[int, int, int], np.ndarray]:
        """An orthogonal grid covering this image, as ``(shape, affine)``.

        For sheared images (gantry tilt): keeps the in-plane axes and
        spacing, replaces the slice axis by the plane normal with the same
        slice distance, and extends the slice count to cover every voxel.
        For an orthogonal image it returns the image's own grid.
        """
        if geo.is_orthogonal(self._affine):
            return self.spatial_shape, self.affine
        a = self._affine
        row_axis, col_axis = a[:3, 1], a[:3, 2]
        normal = np.cross(col_axis, row_axis)
        normal /= np.linalg.norm(normal)
        if normal @ a[:3, 0] < 0:
            normal = -normal
        step = float(abs(normal @ a[:3, 0]))
        corners = np.array(
            [[k, j, i] for k in (0, self.spatial_shape[0] - 1)
             for j in (0, self.spatial_shape[1] - 1) for i in (0, self.spatial_shape[2] - 1)],
            dtype=float,
        )
        world = self.index_to_world(corners)
        new = np.eye(4)
        new[:3, 0] = normal * step
        new[:3, 1:3] = a[:3, 1:3]
        new[:3, 3] = a[:3, 3]
        idx = geo.apply_affine(np.linalg.inv(new), world)
        lo, hi = np.floor(idx.min(axis=0) + 1e-6), np.ceil(idx.max(axis=0) - 1e-6)
        new[:3, 3] = geo.apply_affine(new, lo)
        shape = tuple(int(n) for n in (hi - lo + 1))
        return shape, new  # type: ignore[return-value]

    # ------------------------------------------------------------ SimpleITK
    def to_simpleitk(
        self,
        *,
        dtype: npt.DTypeLike | None = None,
        dimension: Literal[2, 3] = 3,
        index_space: bool = False,
    ) -> sitk.Image:
        """A SimpleITK image (vector-valued when ``channels``); the one Image -> SimpleITK converter.

        Parameters
        ----------
        dtype : numpy dtype, optional
            Cast the voxels to this type; None keeps theirs. Bool always
            becomes uint8 (SimpleITK has no bool pixels), big-endian data
            native byte order.
        dimension : {3, 2}
            3 (default), or 2 for a single-slice image (shape
            ``(1, rows, columns)``): a 2D SimpleITK image with the in-plane
            spacing, origin and direction (registration of slices).
        index_space : bool
            Set only the voxel sizes (origin 0, identity direction): for
            filters that need the spacing alone, on grids ITK cannot
            represent (sheared); their results go back onto this affine.

        Raises
        ------
        GeometryError
            For a time series (convert one :meth:`frame`), a sheared
            affine unless ``index_space`` (ITK needs orthogonal axes;
            :meth:`resample_to` an orthogonal grid first), or
            ``dimension=2`` for more than one slice.
        """
        import SimpleITK as sitk

        if self._axis4 is not None:
            raise GeometryError(
                f"a 4D image ({self.n_frames} {self._axis4} frames) cannot become one 3D "
                "SimpleITK image; convert one frame: image.frame(t).to_simpleitk()"
            )
        if dimension not in (2, 3):
            raise ValueError(f"dimension must be 2 or 3, got {dimension!r}")
        if dimension == 2 and self.spatial_shape[0] != 1:
            raise GeometryError(
                f"dimension=2 needs a single-slice image (1, rows, columns), got shape "
                f"{self.spatial_shape}"
            )
        if not index_space:
            self._require_orthogonal("SimpleITK")
        arr = self._array
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        if arr.dtype == np.bool_:
            arr = arr.view(np.uint8)
        elif not arr.dtype.isnative:  # e.g. big-endian NIfTI data: SimpleITK needs native
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if dimension == 2:
            arr = arr[0]
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr), isVector=self._channels)
        sizes = [float(s) for s in self.spacing[::-1]]
        if index_space:
            img.SetSpacing(sizes[:dimension])
            return img
        if dimension == 3:
            spacing, origin, direction = geo.affine_to_itk(self._affine)
        else:  # the in-plane (column, row) axes of the single slice
            a = self._affine
            col, row = a[:2, 2], a[:2, 1]
            spacing = (float(np.linalg.norm(col)), float(np.linalg.norm(row)))
            d = np.column_stack([col / spacing[0], row / spacing[1]])
            origin, direction = (float(a[0, 3]), float(a[1, 3])), tuple(d.ravel().tolist())
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        img.SetDirection(direction)
        return img

    @classmethod
    def from_simpleitk(cls, image: sitk.Image, *, meta: Mapping[str, Any] | None = None) -> Image:
        """An Image from a 2D or 3D SimpleITK image (2D gets one slice)."""
        import SimpleITK as sitk

        dim = image.GetDimension()
        if dim not in (2, 3):
            raise GeometryError(
                f"only 2D and 3D SimpleITK images convert directly, got {dim}D; "
                "extract 3D volumes first (sitk.Extract)"
            )
        arr = sitk.GetArrayFromImage(image)
        channels = image.GetNumberOfComponentsPerPixel() > 1
        spacing, origin, direction = image.GetSpacing(), image.GetOrigin(), image.GetDirection()
        if dim == 2:
            arr = arr[np.newaxis]
            d2 = np.asarray(direction).reshape(2, 2)
            d3 = np.eye(3)
            d3[:2, :2] = d2
            spacing, origin, direction = (*spacing, 1.0), (*origin, 0.0), d3
        return cls(arr, geo.itk_to_affine(spacing, origin, direction), channels=channels, meta=meta)

    # ------------------------------------------------------------------ ITK
    def to_itk(self) -> Any:
        """An ITK image (for itkwidgets); needs the ``itk`` package (``medlab[itk]``)."""
        itk = import_optional("itk", feature="ITK images", extra="itk")
        if self._axis4 is not None:
            raise GeometryError(
                f"a 4D image ({self.n_frames} {self._axis4} frames) cannot become one 3D ITK "
                "image; convert one frame: image.frame(t).to_itk()"
            )
        self._require_orthogonal("ITK")
        arr = np.ascontiguousarray(self._array)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        img = itk.image_from_array(arr, is_vector=self._channels)
        spacing, origin, direction = geo.affine_to_itk(self._affine)
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        img.SetDirection(np.asarray(direction).reshape(3, 3))
        return img

    @classmethod
    def from_itk(cls, image: Any, *, meta: Mapping[str, Any] | None = None) -> Image:
        """An Image from a 3D ITK image."""
        itk = import_optional("itk", feature="ITK images", extra="itk")
        arr = itk.array_from_image(image)
        channels = image.GetNumberOfComponentsPerPixel() > 1
        if image.GetImageDimension() != 3:
            raise GeometryError(f"only 3D ITK images convert, got {image.GetImageDimension()}D")
        direction = itk.array_from_matrix(image.GetDirection())
        affine = geo.itk_to_affine(tuple(image.GetSpacing()), tuple(image.GetOrigin()), direction)
        return cls(arr, affine, channels=channels, meta=meta)

    # ------------------------------------------------------------- nibabel
    def to_nibabel(self) -> nibabel.Nifti1Image:
        """A NIfTI-1 image (RAS affine, (i, j, k[, t]) array), for saving or nilearn.

        Frame times become the NIfTI TR (``pixdim[4]``, seconds) when they
        are evenly spaced; irregular times are kept in ``meta`` only. A
        fourth axis that is not time gets time unit 'unknown' (diffusion
        gradients go to ``.bval``/``.bvec`` files: :func:`medlab.io.save`).
        """
        import nibabel as nib

        if self._channels:
            raise GeometryError(
                "NIfTI export of channel images (RGB) is not supported; convert to grey first"
            )
        self._require_orthogonal("NIfTI")
        data = np.asarray(self._array)
        axes = (2, 1, 0, *range(3, data.ndim))
        data = data.transpose(axes)
        if data.dtype == np.bool_:
            data = data.astype(np.uint8)
        affine_ras = geo.LPS_TO_RAS @ geo.swap_xyz_index(self._affine)
        img = nib.Nifti1Image(data, affine_ras)
        # an unknown spacing stays unknown in the file (NIfTI spatial unit code 0)
        img.header.set_xyzt_units("mm" if self.spacing_known else "unknown",
                                  "sec" if self._axis4 in (None, "time") else "unknown")
        if not self.spacing_known:  # read back as unknown by medlab.io.read_nifti
            img.header["descrip"] = UNKNOWN_SPACING_DESCRIP
        img.set_qform(affine_ras, code=1)
        img.set_sform(affine_ras, code=1)
        times = self._values_of("time")
        if times is not None and self.n_frames > 1:
            steps = np.diff(times)
            if np.allclose(steps, steps[0], rtol=1e-3):
                zooms = list(img.header.get_zooms())
                zooms[3] = float(steps[0])
                img.header.set_zooms(zooms)
        return img

    @classmethod
    def from_nibabel(cls, image: Any, *, meta: Mapping[str, Any] | None = None) -> Image:
        """An Image from a nibabel spatial image (NIfTI, MGH, ...), 2D to 4D.

        Integer data stay integer unless the header scales them. A 4th axis
        becomes time, with frame times from the TR (``pixdim[4]``), only when
        the header's time unit is seconds, milliseconds or microseconds;
        otherwise its kind is ``'unknown'`` and ``meta['nifti_pixdim4']``
        keeps the raw value (a loader may know better: ``.bval``/``.bvec``
        files beside the image make it a diffusion axis).
        """
        data = np.asanyarray(image.dataobj)
        if data.ndim > 4:
            raise GeometryError(
                f"only 2D to 4D NIfTI images load as one Image, got shape {data.shape}"
            )
        while data.ndim < 3:
            data = data[..., np.newaxis]
        axes = (2, 1, 0, *range(3, data.ndim))
        arr = data.transpose(axes)
        affine = geo.swap_xyz_index(geo.RAS_TO_LPS @ np.asarray(image.affine, dtype=float))
        axis: dict[str, Any] = {}
        meta = dict(meta or {})
        if arr.ndim == 4:
            tr = _nifti_tr_seconds(image)
            if tr:
                meta.setdefault("repetition_time_s", tr)
                axis["frame_times_s"] = np.arange(arr.shape[3]) * tr
            else:
                axis["frame_axis"] = "unknown"
                zooms = image.header.get_zooms()
                if len(zooms) > 3 and float(zooms[3]) > 0:
                    meta["nifti_pixdim4"] = float(zooms[3])
        return cls(arr, affine, meta=meta, **axis)

    # ---------------------------------------------------- spacing provenance
    @property
    def spacing_source(self) -> str:
        """Where the in-plane pixel spacing comes from (``meta['spacing_source']``).

        One of ``'PixelSpacing'``, ``'PixelSpacing (calibrated: GEOMETRY)'``
        (or ``FIDUCIAL``, from Pixel Spacing Calibration Type),
        ``'ImagerPixelSpacing'`` (at the detector),
        ``'ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor'``
        (at the patient), ``'ultrasound region'``,
        ``'NominalScannedPixelSpacing'``, ``'NIfTI header'``, ``'NRRD header'``,
        ``'MetaImage header'``, ``'user'`` (:meth:`with_spacing`,
        :func:`medlab.measure.calibrate`), ``'unknown'`` (the affine then
        holds a 1-pixel placeholder, never reported as mm), or ``'affine'``
        for an image made from an array and an affine in code.
        """
        return str(self.meta.get("spacing_source", "affine"))

    @property
    def spacing_plane(self) -> str:
        """The plane where lengths are true (``meta['spacing_plane']``).

        ``'patient'``, ``'detector'`` (a projection radiograph's receptor:
        objects in the patient are magnified), ``'scanned medium'``
        (digitised film), or ``'unknown'``.
        """
        default = "patient" if self.spacing_known else "unknown"
        return str(self.meta.get("spacing_plane", default))

    @property
    def spacing_known(self) -> bool:
        """False when the headers gave no pixel spacing: then nothing is reported in mm."""
        return self.spacing_source != "unknown"

    @property
    def is_2d(self) -> bool:
        """Whether the image is one plane (one slice): measured by area, not volume.

        The slice axis of a 2D image carries a nominal step (the slice
        thickness when the headers give one, else 1 mm) so that its affine
        stays invertible; no measurement uses it.
        """
        return self.spatial_shape[0] == 1

    @property
    def name(self) -> str:
        """A short name for messages: the first file's name, else ``meta['id']``."""
        files = self.meta.get("files") or []
        if files:
            return str(files[0]).replace("\\", "/").rsplit("/", 1)[-1]
        return str(self.meta.get("id") or "this image")

    def require_spacing(self, what: str) -> None:
        """Raise :class:`UnknownSpacingError` if the spacing is unknown.

        ``what`` names the measurement (e.g. ``'label_stats'``) in the message.
        """
        if self.spacing_known:
            return
        name = repr(self.name)
        if "derived_from" in self.meta and not self.meta.get("files"):
            name = f"this image (made from {self.meta['derived_from']!r})"
        raise UnknownSpacingError(
            f"{what} needs lengths in mm, but the pixel spacing of {name} is unknown (its "
            "headers give no PixelSpacing, ImagerPixelSpacing, ultrasound region calibration "
            "or NominalScannedPixelSpacing; its affine holds a 1-pixel placeholder). "
            "Calibrate it first: image = image.with_spacing((row_mm, column_mm)), or from a "
            "ruler of known length in the image: image = ml.measure.calibrate(image, p0, p1, "
            "known_length_mm=...)"
        )

    def with_spacing(
        self,
        spacing: Sequence[float],
        *,
        source: str = "user",
        plane: str = "patient",
    ) -> Image:
        """The same voxels with a new voxel size, recorded as coming from ``source``.

        Parameters
        ----------
        spacing : 2 or 3 floats
            ``(row_mm, column_mm)`` for the in-plane spacing (the slice
            step is kept), or ``(slice_mm, row_mm, column_mm)``.
        source : str, default ``'user'``
            Recorded as :attr:`spacing_source`.
        plane : str, default ``'patient'``
            Recorded as :attr:`spacing_plane`.

        Returns
        -------
        Image
            Same data, origin and directions (a view of the array).

        Examples
        --------
        >>> img = Image(np.zeros((1, 4, 4)), np.eye(4), meta={"spacing_source": "unknown"})
        >>> img.with_spacing((0.5, 0.25)).spacing, img.with_spacing((0.5, 0.25)).spacing_source
        ((1.0, 0.5, 0.25), 'user')
        """
        values = [float(v) for v in np.ravel(np.asarray(spacing, dtype=float))]
        if len(values) == 2:
            values = [self.spacing[0], *values]
        if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(
                f"spacing must be 2 (row, column) or 3 (slice, row, column) positive numbers "
                f"of mm, got {spacing!r}"
            )
        affine = self._affine.copy()
        affine[:3, :3] = affine[:3, :3] * (np.asarray(values) / np.asarray(self.spacing))
        meta = dict(self.meta, spacing_source=str(source), spacing_plane=str(plane))
        return self.with_array(self._array, affine=affine, meta=meta)

    # -------------------------------------------------------------- helpers
    def _require_orthogonal(self, target: str) -> None:
        if not geo.is_orthogonal(self._affine):
            raise GeometryError(
                f"{target} cannot represent this image's sheared grid (e.g. CT gantry tilt); "
                "resample it onto an orthogonal grid first: "
                "image.resample_to(image.orthogonal_grid())"
            )


def _grid(reference: Any) -> tuple[tuple[int, int, int], np.ndarray]:
    """The spatial shape and affine of an Image or a ``(shape, affine)`` grid."""
    if isinstance(reference, Image):
        return reference.spatial_shape, reference.affine
    if not isinstance(reference, (tuple, list)) or len(reference) != 2:
        raise TypeError(
            "reference must be a medlab.Image or a (shape, affine) grid, got "
            f"{type(reference).__name__}"
        )
    shape = tuple(int(n) for n in reference[0])[:3]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"a grid's shape needs 3 spatial sizes >= 1, got {tuple(reference[0])}")
    return shape, geo.check_affine(reference[1])  # type: ignore[return-value]


def _itk_index_affine(affine: np.ndarray, dim: int) -> np.ndarray:
    """ITK-ordered index ``(x, y[, z])`` -> LPS mm as a (dim+1)-square matrix.

    ``dim=2`` keeps a single slice's in-plane (column, row) axes on the LPS
    ``x, y`` plane, as :meth:`Image.to_simpleitk` with ``dimension=2`` does.
    """
    if dim == 3:
        return geo.swap_xyz_index(affine)
    a = np.eye(3)
    a[:2, 0], a[:2, 1], a[:2, 2] = affine[:2, 2], affine[:2, 1], affine[:2, 3]
    return a


def _transform_matrix(transform: Any, dim: int) -> np.ndarray | None:
    """A (dim+1)-square matrix of a linear transform (None when it is not linear)."""
    if not hasattr(transform, "GetDimension"):
        m = np.asarray(transform, dtype=float)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)) \
                or not np.allclose(m[3], [0, 0, 0, 1]):
            raise ValueError(
                "transform must be a SimpleITK transform or a 4x4 matrix acting on LPS "
                f"[x, y, z, 1] (last row 0, 0, 0, 1), got {np.asarray(transform).shape!r} "
                f"{type(transform).__name__}"
            )
        return m
    if not transform.IsLinear():
        return None
    m = np.eye(dim + 1)
    m[:dim, dim] = transform.TransformPoint([0.0] * dim)
    for k in range(dim):
        m[:dim, k] = np.asarray(transform.TransformPoint(np.eye(dim)[k].tolist())) - m[:dim, dim]
    return m


def _affine_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    import SimpleITK as sitk

    dim = matrix.shape[0] - 1
    out = sitk.AffineTransform(dim)
    out.SetMatrix(matrix[:dim, :dim].ravel().tolist())
    out.SetTranslation(matrix[:dim, dim].tolist())
    return out


def _index_transform(src: np.ndarray, ref: np.ndarray, transform: Any, dim: int) -> sitk.Transform:
    """Output ITK index -> source ITK index: ``src^-1 . transform . ref``.

    One affine when ``transform`` is None or linear; otherwise a composite
    of the two grid affines around the (deformable) transform.
    """
    import SimpleITK as sitk

    if transform is None:
        return _affine_transform(np.linalg.inv(src) @ ref)
    matrix = _transform_matrix(transform, dim)
    if matrix is not None:
        return _affine_transform(np.linalg.inv(src) @ matrix @ ref)
    return sitk.CompositeTransform(
        [_affine_transform(np.linalg.inv(src)), transform, _affine_transform(ref)]
    )


def _fourth_axis(
    frame_times_s: Any, b_values: Any, b_vectors: Any, echo_times_s: Any, frame_axis: Any
) -> tuple[str | None, np.ndarray | None]:
    """(kind, values) of the fourth axis from the constructor's arguments."""
    given = {k: v for k, v in (("time", frame_times_s), ("diffusion", b_values),
                                ("echo", echo_times_s)) if v is not None}
    if b_vectors is not None and b_values is None:
        raise GeometryError("b_vectors need b_values (s/mm2) for the same volumes")
    if len(given) > 1:
        raise GeometryError(
            f"the fourth axis can be one thing only, got {' and '.join(given)} values; pass "
            "one of frame_times_s, b_values, echo_times_s"
        )
    if frame_axis not in (None, "time", "diffusion", "echo", "unknown"):
        raise GeometryError(
            f"frame_axis must be 'time', 'diffusion', 'echo' or 'unknown', got {frame_axis!r}"
        )
    if not given:
        if frame_axis in ("time", "diffusion", "echo"):
            need = {"time": "frame_times_s", "diffusion": "b_values", "echo": "echo_times_s"}
            raise GeometryError(f"a {frame_axis} axis needs {need[frame_axis]}=...")
        return frame_axis, None
    kind, values = next(iter(given.items()))
    if frame_axis not in (None, kind):
        raise GeometryError(f"frame_axis={frame_axis!r} contradicts the {kind} values given")
    arr = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(arr)):
        raise GeometryError(f"the {kind} values must be finite numbers, got {arr.tolist()}")
    return kind, arr


def _nifti_tr_seconds(image: Any) -> float | None:
    """The NIfTI TR in seconds, or None where the header's time unit is not a time."""
    header = image.header
    try:
        zooms = header.get_zooms()
        tr = float(zooms[3])
    except (IndexError, AttributeError):
        return None
    if tr <= 0:
        return None
    try:
        unit = header.get_xyzt_units()[1]
    except AttributeError:  # formats without units (MGH: TR in ms is not a zoom)
        return None
    return {"sec": tr, "msec": tr / 1000.0, "usec": tr / 1e6}.get(unit)


