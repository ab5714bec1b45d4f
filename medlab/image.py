"""The one image type of medlab: an array plus an affine in LPS millimetres.

See :mod:`medlab.geometry` for the conventions: spatial axes are ordered
(slice, row, column) and the affine maps those indices to LPS mm. Optional
trailing axes follow the three spatial ones, in this order: time (when
``frame_times_s`` is given), then channels (when ``channels=True``, e.g. RGB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import geometry as geo
from .errors import (
    GeometryError,
    GeometryMismatchError,
    MissingDependencyError,
    UnknownSpacingError,
)

if TYPE_CHECKING:  # pragma: no cover
    import nibabel
    import SimpleITK as sitk

__all__ = ["Image"]

Interpolation = Literal["nearest", "linear", "bspline"]
#: NIfTI ``descrip`` of an image written with an unknown pixel spacing
UNKNOWN_SPACING_DESCRIP = b"medlab: pixel spacing unknown"


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
    channels : bool
        Whether the last axis holds channels (RGB, vector components).
    meta : mapping, optional
        Free-form metadata (modality, units, source UIDs, ...). Copied
        shallowly.

    Examples
    --------
    >>> img = Image(np.zeros((4, 5, 6)), np.diag([3.0, 2.0, 1.0, 1.0]))
    >>> img.spacing
    (3.0, 2.0, 1.0)
    >>> img.index_to_world([1, 1, 1]).tolist()
    [3.0, 2.0, 1.0]
    """

    __slots__ = ("_affine", "_array", "_channels", "_frame_times_s", "meta")

    def __init__(
        self,
        array: npt.ArrayLike,
        affine: npt.ArrayLike,
        *,
        frame_times_s: Sequence[float] | None = None,
        channels: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        arr = np.asanyarray(array)
        n_expected = 3 + (frame_times_s is not None) + bool(channels)
        if arr.ndim != n_expected:
            what = ["3 spatial axes"]
            if frame_times_s is not None:
                what.append("a time axis")
            if channels:
                what.append("a channel axis")
            raise GeometryError(
                f"array has {arr.ndim} axes (shape {arr.shape}) but {n_expected} are expected "
                f"({' + '.join(what)}); a 2D image needs shape (1, rows, columns)"
            )
        self._array = arr
        self._affine = geo.check_affine(affine)
        self._channels = bool(channels)
        if frame_times_s is not None:
            times = np.asarray(frame_times_s, dtype=float).ravel()
            if times.shape[0] != arr.shape[3]:
                raise GeometryError(
                    f"{times.shape[0]} frame times were given for a time axis of length "
                    f"{arr.shape[3]}"
                )
            self._frame_times_s: np.ndarray | None = times
        else:
            self._frame_times_s = None
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
    def frame_times_s(self) -> np.ndarray | None:
        """Frame times in seconds (a copy), or None for a single time point."""
        return None if self._frame_times_s is None else self._frame_times_s.copy()

    @property
    def n_frames(self) -> int:
        return 1 if self._frame_times_s is None else int(self._array.shape[3])

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

        Keyword arguments override ``affine``, ``frame_times_s``, ``channels``
        or ``meta``.
        """
        kwargs: dict[str, Any] = {
            "affine": self._affine,
            "frame_times_s": self._frame_times_s,
            "channels": self._channels,
            "meta": self.meta,
        }
        kwargs.update(changes)
        return Image(array, **kwargs)

    def frame(self, t: int) -> Image:
        """The 3D image at time index ``t`` (a view of the data)."""
        if self._frame_times_s is None:
            raise IndexError("this image has no time axis; it is a single frame")
        n = self.n_frames
        if not -n <= t < n:
            raise IndexError(f"frame {t} is out of range for {n} frames")
        meta = dict(self.meta, time_s=float(self._frame_times_s[t]), frame_index=t % n)
        return Image(self._array[:, :, :, t], self._affine, channels=self._channels, meta=meta)

    def frames(self) -> list[Image]:
        """All time frames as 3D images (views)."""
        return [self.frame(t) for t in range(self.n_frames)] if self._frame_times_s is not None else [self]

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
        if self._frame_times_s is not None:
            extra += f", frames={self.n_frames}"
        if self._channels:
            extra += f", channels={self._array.shape[-1]}"
        modality = self.meta.get("modality")
        mod = f", modality={modality!r}" if modality else ""
        return (
            f"Image(shape={self.shape}, dtype={self.dtype}, spacing={sp}, "
            f"orientation={self.orientation!r}{extra}{mod})"
        )

    # ------------------------------------------------------------ resampling
    def resample_to(
        self,
        reference: Image | tuple[Sequence[int], npt.ArrayLike],
        *,
        interpolation: Interpolation = "linear",
        default_value: float = 0.0,
    ) -> Image:
        """Resample onto the grid (shape and affine) of ``reference``.

        Works for any pair of affines, sheared ones included: the index
        mapping is computed here and SimpleITK only interpolates.

        Parameters
        ----------
        reference : Image or (shape, affine)
            Gives the output grid (spatial shape and affine); an image's
            data are not used.
        interpolation : {'nearest', 'linear', 'bspline'}
            Use ``'nearest'`` for label images (keeps label values and dtype).
        default_value : float
            Value outside this image's field of view.

        Returns
        -------
        Image
            Same trailing axes and metadata as this image. ``'nearest'``
            keeps the dtype; the others return float32 (float64 stays).
        """
        import SimpleITK as sitk

        if isinstance(reference, Image):
            ref_shape, ref_affine = reference.spatial_shape, reference._affine
        else:
            ref_shape = tuple(int(n) for n in reference[0])[:3]
            ref_affine = geo.check_affine(reference[1])
        interpolators = {
            "nearest": sitk.sitkNearestNeighbor,
            "linear": sitk.sitkLinear,
            "bspline": sitk.sitkBSpline,
        }
        if interpolation not in interpolators:
            raise ValueError(
                f"interpolation must be one of {sorted(interpolators)}, got {interpolation!r}"
            )
        # output index (x,y,z) -> world -> this image's index (x,y,z)
        rev = geo.swap_xyz_index(np.eye(4))
        mapping = rev @ np.linalg.inv(self._affine) @ ref_affine @ rev
        transform = sitk.AffineTransform(3)
        transform.SetMatrix(mapping[:3, :3].ravel().tolist())
        transform.SetTranslation(mapping[:3, 3].tolist())

        if interpolation == "nearest":
            out_dtype = self.dtype
        else:
            out_dtype = np.dtype(np.float64 if self.dtype == np.float64 else np.float32)
        out_shape = tuple(ref_shape) + self.shape[3:]
        out = np.empty(out_shape, dtype=out_dtype)
        time_indices = range(self.n_frames) if self._frame_times_s is not None else [None]
        for t in time_indices:
            src = self._array if t is None else self._array[:, :, :, t]
            src_arr = np.ascontiguousarray(src)
            if src_arr.dtype == np.bool_:
                src_arr = src_arr.astype(np.uint8)
            if interpolation != "nearest":
                src_arr = src_arr.astype(out_dtype, copy=False)
            src_img = sitk.GetImageFromArray(src_arr, isVector=self._channels)
            res = sitk.Resample(
                src_img,
                [int(n) for n in ref_shape[::-1]],
                transform,
                interpolators[interpolation],
                (0.0, 0.0, 0.0),
                (1.0, 1.0, 1.0),
                (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
                float(default_value),
            )
            arr = sitk.GetArrayViewFromImage(res)
            if t is None:
                out[...] = arr
            else:
                out[:, :, :, t] = arr
        return Image(
            out,
            ref_affine,
            frame_times_s=self._frame_times_s,
            channels=self._channels,
            meta=self.meta,
        )

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
    def to_simpleitk(self) -> sitk.Image:
        """A 3D SimpleITK image (vector-valued when ``channels``).

        Raises
        ------
        GeometryError
            For a time series (convert one :meth:`frame`) or a sheared
            affine (ITK needs orthogonal axes; :meth:`resample_to` an
            orthogonal grid first).
        """
        import SimpleITK as sitk

        if self._frame_times_s is not None:
            raise GeometryError(
                f"a time series ({self.n_frames} frames) cannot become one 3D SimpleITK image; "
                "convert one frame: image.frame(t).to_simpleitk()"
            )
        self._require_orthogonal("SimpleITK")
        arr = self._array.astype(np.uint8) if self.dtype == np.bool_ else self._array
        img = sitk.GetImageFromArray(arr, isVector=self._channels)
        spacing, origin, direction = geo.affine_to_itk(self._affine)
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
        itk = _import_optional("itk", feature="ITK images", extra="itk")
        if self._frame_times_s is not None:
            raise GeometryError(
                f"a time series ({self.n_frames} frames) cannot become one 3D ITK image; "
                "convert one frame: image.frame(t).to_itk()"
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
        itk = _import_optional("itk", feature="ITK images", extra="itk")
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
        are evenly spaced; irregular times are kept in ``meta`` only.
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
        img.header.set_xyzt_units("mm" if self.spacing_known else "unknown", "sec")
        if not self.spacing_known:  # read back as unknown by medlab.io.read_nifti
            img.header["descrip"] = UNKNOWN_SPACING_DESCRIP
        img.set_qform(affine_ras, code=1)
        img.set_sform(affine_ras, code=1)
        if self._frame_times_s is not None and self.n_frames > 1:
            steps = np.diff(self._frame_times_s)
            if np.allclose(steps, steps[0], rtol=1e-3):
                zooms = list(img.header.get_zooms())
                zooms[3] = float(steps[0])
                img.header.set_zooms(zooms)
        return img

    @classmethod
    def from_nibabel(cls, image: Any, *, meta: Mapping[str, Any] | None = None) -> Image:
        """An Image from a nibabel spatial image (NIfTI, MGH, ...), 2D to 4D.

        Integer data stay integer unless the header scales them. A 4th axis
        becomes time, with frame times from the TR (``pixdim[4]``).
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
        frame_times = None
        meta = dict(meta or {})
        if arr.ndim == 4:
            tr = _nifti_tr_seconds(image)
            meta.setdefault("repetition_time_s", tr)
            frame_times = np.arange(arr.shape[3]) * (tr if tr else 1.0)
            if not tr:
                meta["time_unit_unknown"] = True
        return cls(arr, affine, frame_times_s=frame_times, meta=meta)

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


def _nifti_tr_seconds(image: Any) -> float | None:
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
    except AttributeError:
        unit = "sec"
    return {"msec": tr / 1000.0, "usec": tr / 1e6}.get(unit, tr)


def _import_optional(module: str, *, feature: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingDependencyError(
            f"{feature} need the optional package {module!r}, which is not installed. "
            f"Install it with: pip install 'medlab[{extra}]'"
        ) from exc
