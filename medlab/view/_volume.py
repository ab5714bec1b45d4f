"""3D volume rendering plus multiplanar views: :func:`volume` and :class:`VolumeView`.

The default backend, NiiVue (through ipyniivue, whose JavaScript ships in
its wheel), works offline in JupyterLab 4; the image travels to it in
memory as NIfTI bytes. ``backend="itkwidgets"`` is supported with the
safety checks of :mod:`medlab.view._volume_itk`.

Large images are resampled for display only (see :func:`display_grid`):
the caller's image is never changed, and the view says what it shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import geometry as geo
from .._validate import require_image
from ..errors import GeometryError, GeometryMismatchError
from ..image import Image
from ..privacy import display_text
from ._display import StaticSnapshot, ensure_figure_display
from ._slices import _LETTERS, draw_letters, label_colors, label_legend
from ._volume_niivue import _matplotlib_cmap
from ._window import apply_window, resolve_window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_MAX_VOXELS", "VolumeView", "display_grid", "volume"]

#: Images with more voxels than this are resampled for display (256**3).
DEFAULT_MAX_VOXELS = 256**3

Backend = Literal["niivue", "itkwidgets"]


# ------------------------------------------------------------------ display grid
def display_grid(
    image: Image, *, max_voxels: int = DEFAULT_MAX_VOXELS
) -> tuple[tuple[int, int, int], np.ndarray, tuple[float, float, float]]:
    """The grid an image is shown on: its own, or a coarser one of at most ``max_voxels``.

    The coarser grid covers the same field of view (voxel edges to voxel
    edges) with the same axis directions. The finest axes are coarsened
    first, so anisotropic voxels become closer to isotropic before any
    axis with coarse spacing is touched.

    Parameters
    ----------
    image : Image
    max_voxels : int
        Largest number of spatial voxels shown as they are.

    Returns
    -------
    shape : (3,) tuple of int
        Spatial shape of the display grid.
    affine : (4, 4) ndarray
        Index -> LPS mm of the display grid.
    factors : (3,) tuple of float
        Display spacing divided by the image spacing, per array axis (1.0
        when the axis is not resampled).
    """
    if max_voxels < 1:
        raise ValueError(f"max_voxels must be >= 1, got {max_voxels}")
    shape = np.asarray(image.spatial_shape, dtype=float)
    if float(np.prod(shape)) <= max_voxels:
        return image.spatial_shape, image.affine, (1.0, 1.0, 1.0)
    spacing = np.asarray(image.spacing, dtype=float)
    extent = shape * spacing

    def shape_for(floor_mm: float) -> np.ndarray:
        target = np.maximum(spacing, floor_mm)
        return np.maximum(1.0, np.ceil(extent / target - 1e-6))

    lo, hi = float(spacing.min()), float(extent.max())
    for _ in range(100):  # smallest spacing floor whose grid fits
        mid = 0.5 * (lo + hi)
        if float(np.prod(shape_for(mid))) <= max_voxels:
            hi = mid
        else:
            lo = mid
    new_shape = shape_for(hi)
    factors = shape / new_shape
    step = np.eye(4)
    step[:3, :3] = np.diag(factors)
    step[:3, 3] = 0.5 * (factors - 1.0)  # first centre half a new voxel inside the old edge
    affine = image.affine @ step
    return (
        tuple(int(n) for n in new_shape),  # type: ignore[return-value]
        affine,
        tuple(float(f) for f in factors),  # type: ignore[return-value]
    )


def _downsample(image: Image, shape: tuple[int, ...], affine: np.ndarray,
                factors: tuple[float, ...]) -> Image:
    """Antialiased resampling onto a coarser grid (Gaussian, then linear); dtype kept."""
    from ..filters import gaussian

    # sigma (f - 1) / 2 voxels; below 0.25 voxel (f < 1.5) linear interpolation's own
    # low-pass is comparable, and skipping the pass saves a third of the time per axis
    sigma_vox = [(f - 1.0) / 2.0 if f >= 1.5 else 0.0 for f in factors]
    sigma_mm = tuple(sv * s for sv, s in zip(sigma_vox, image.spacing, strict=True))
    smooth = gaussian(image, sigma_mm=sigma_mm) if any(s > 0 for s in sigma_mm) else image
    out = smooth.resample_to((shape, affine), interpolation="linear")
    if image.dtype.kind in "iub":
        info = np.iinfo(np.uint8 if image.dtype == np.bool_ else image.dtype)
        arr = np.clip(np.rint(out.array), info.min, info.max).astype(image.dtype)
        out = out.with_array(arr)
    return out


def _label_array(labels: Image) -> np.ndarray:
    arr = labels.array
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.rint(arr)):
            raise ValueError("labels must hold integer values (a label map), not continuous ones")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        dtype = np.uint8 if lo >= 0 and hi < 256 else np.int32
        return arr.astype(dtype)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be an integer image, got dtype {arr.dtype}")
    return arr


# ------------------------------------------------------------------ the widget
def _widget_base() -> type:
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover - ipywidgets is in the view extra
        return object
    return ipywidgets.VBox


class VolumeView(StaticSnapshot, _widget_base()):  # type: ignore[misc]
    """A 3D rendering plus multiplanar views of an image, made by :func:`volume`.

    A ``ipywidgets.VBox``: a caption (what is shown, at which display
    resolution, with which window) above the viewer widget. Notebook
    outputs also carry :meth:`snapshot` (maximum-intensity projections) as
    ``image/png`` for HTML/PDF export.

    Attributes
    ----------
    backend : str
        ``'niivue'`` or ``'itkwidgets'``.
    source_shape : tuple of int
        Spatial shape of the image passed in (which is not modified).
    display_image : Image
        The 3D image the viewer shows (the source's frame, possibly
        resampled for display).
    display_labels : Image or None
        The label image shown, on the display grid.
    display_factor : tuple of float
        Display spacing / source spacing per array axis; all 1.0 when the
        image is shown at full resolution.
    window : (float, float)
        (width, level) used for the grey levels.
    niivue : ipyniivue.NiiVue or None
        The NiiVue widget (``backend='niivue'``).
    viewer : Any
        The itkwidgets ``Viewer`` (``backend='itkwidgets'``), else None.
    notes : list of str
        What was done for display (downsampling, resampling of sheared grids, frame shown).
    """

    def __init__(self, *, viewer_widget: Any, caption: str, state: dict[str, Any]) -> None:
        import ipywidgets

        self._caption = ipywidgets.HTML(value=caption)
        super().__init__(children=[self._caption, viewer_widget])
        self.backend: str = state["backend"]
        self.source_shape: tuple[int, ...] = state["source_shape"]
        self.display_image: Image = state["display_image"]
        self.display_labels: Image | None = state["display_labels"]
        self.display_factor: tuple[float, float, float] = state["display_factor"]
        self.window: tuple[float, float] = state["window"]
        self.colormap: str = state["colormap"]
        self.neurological: bool = state["neurological"]
        self.invert: bool = state["invert"]
        self.label_opacity: float = state["label_opacity"]
        self.legend: list[dict[str, Any]] = list(state.get("legend") or [])
        self.title: str = state["title"]
        self.notes: list[str] = list(state["notes"])
        self.niivue: Any = state.get("niivue")
        self.viewer: Any = state.get("viewer")

    # ----------------------------------------------------------- properties
    @property
    def downsampled(self) -> bool:
        """Whether the viewer shows a coarser grid than the source image."""
        return any(f > 1.0 + 1e-9 for f in self.display_factor)

    @property
    def display_shape(self) -> tuple[int, int, int]:
        return self.display_image.spatial_shape

    @property
    def display_spacing(self) -> tuple[float, float, float]:
        return self.display_image.spacing

    @property
    def nifti_bytes(self) -> bytes | None:
        """The NIfTI-1 bytes handed to NiiVue for the image (None for other backends)."""
        if self.niivue is None or not self.niivue.volumes:
            return None
        return bytes(self.niivue.volumes[0].data)

    def describe(self) -> str:
        """One line: backend, source and display grids, window."""
        shape = "x".join(str(n) for n in self.source_shape)
        text = f"VolumeView(backend={self.backend!r}, {self.title!r}, shape {shape}"
        if self.downsampled:
            disp = "x".join(str(n) for n in self.display_shape)
            fac = ", ".join(f"{f:.3g}" for f in self.display_factor)
            sp = ", ".join(f"{s:.3g}" for s in self.display_spacing)
            text += f" shown downsampled at {disp} (factor {fac}; spacing {sp} mm)"
        w, lev = self.window
        return text + f", W {w:g} / L {lev:g})"

    def __repr__(self) -> str:
        return self.describe()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs)
        text = str(bundle.get("text/plain", ""))
        cut = text.find(" (no snapshot:")  # keep StaticSnapshot's failure note, full repr
        bundle["text/plain"] = self.describe() + (text[cut:] if cut >= 0 else "")
        return bundle

    # -------------------------------------------------------------- snapshot
    def mip_planes(
        self,
    ) -> dict[str, tuple[np.ndarray, np.ndarray | None, tuple[float, float, float, float], tuple[str, ...]]]:
        """Maximum-intensity projections of the display image, as drawn by :meth:`snapshot`.

        Returns, per plane (``'axial'``, ``'coronal'``, ``'sagittal'``):
        ``(mip, label_mip, extent_mm, letters)`` with the first row at the
        top. The image is reoriented (no interpolation) so that axial
        projects along S, coronal along P and sagittal along L; screen
        directions follow :func:`medlab.view.plot_slices`.
        """
        canon = self.display_image.reorient("SPL")
        arr = np.asarray(canon.array)
        lab = None
        if self.display_labels is not None:
            lab = np.asarray(self.display_labels.reorient("SPL").array)
        sz, sy, sx = canon.spacing
        nz, ny, nx = canon.spatial_shape
        out: dict[str, Any] = {}
        proj = {
            "axial": (0, (0, nx * sx, ny * sy, 0), False),
            "coronal": (1, (0, nx * sx, 0, nz * sz), True),
            "sagittal": (2, (0, ny * sy, 0, nz * sz), True),
        }
        reduce = np.fmax.reduce if arr.dtype.kind == "f" else np.maximum.reduce  # fmax skips NaN
        for name, (axis, extent, flip_rows) in proj.items():
            mip = reduce(arr, axis=axis)
            lmip = lab.max(axis=axis) if lab is not None else None
            if flip_rows:  # superior at the top
                mip = mip[::-1]
                lmip = lmip[::-1] if lmip is not None else None
            letters = _LETTERS[name]
            if self.neurological and name != "sagittal":
                mip = mip[:, ::-1]
                lmip = lmip[:, ::-1] if lmip is not None else None
                letters = (letters[1], letters[0], letters[2], letters[3])
            out[name] = (mip, lmip, extent, letters)
        return out

    def snapshot(self) -> Figure:
        """Maximum-intensity projections along three axes (matplotlib, from Python state).

        Physical aspect ratio (extents in mm), orientation letters, the
        view's window and colormap, labels as a coloured overlay; the title
        says when the display was downsampled.
        """
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure

        width, level = self.window
        cmap = _matplotlib_cmap(self.colormap)
        if self.invert:
            cmap = cmap.reversed()
        planes = self.mip_planes()
        fig = Figure(figsize=(12.6, 4.6), layout="constrained")
        axes = fig.subplots(1, 3)
        label_values = None
        if self.display_labels is not None:
            label_values = np.unique(self.display_labels.array)
            label_values = label_values[label_values != 0]
        for ax, (name, (mip, lmip, extent, letters)) in zip(
            axes, planes.items(), strict=True
        ):
            ax.imshow(apply_window(mip, width, level), cmap=cmap, vmin=0, vmax=1, extent=extent,
                      interpolation="nearest")
            if lmip is not None and label_values is not None and label_values.size:
                # map label values to 1..n so the listed colours match the NiiVue table
                index = np.searchsorted(label_values, lmip)
                index = np.where(lmip != 0, index + 1, 0)
                colours = ListedColormap(label_colors(label_values))
                ax.imshow(np.ma.masked_equal(index, 0), cmap=colours, vmin=0.5,
                          vmax=label_values.size + 0.5, alpha=self.label_opacity, extent=extent,
                          interpolation="nearest")
            ax.set_title(f"{name} MIP")
            ax.set_xlabel("mm")
            draw_letters(ax, letters)
        suptitle = self.title
        if self.downsampled:
            suptitle += " (display downsampled: " + "x".join(str(n) for n in self.display_shape) + ")"
        fig.suptitle(suptitle)
        fig.text(0.99, 0.01, f"W {width:g} / L {level:g}", ha="right", va="bottom", fontsize=8)
        if self.legend:
            from matplotlib.patches import Patch

            handles = [Patch(color=e["color"], label=f"{e['value']} {e['name']}") for e in self.legend]
            fig.legend(handles=handles, loc="lower left", fontsize=8, ncols=min(len(handles), 6),
                       frameon=False)
        ensure_figure_display()
        return fig


# ------------------------------------------------------------------ entry point
def volume(
    image: Image,
    *,
    labels: Image | None = None,
    backend: Backend = "niivue",
    window: str | tuple[float, float] | None = None,
    colormap: str = "gray",
    label_opacity: float = 0.5,
    label_names: Mapping[int, str] | None = None,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    frame: int = 0,
    neurological: bool = False,
    height: int = 520,
    title: str | None = None,
    asset_timeout_s: float = 2.0,
) -> VolumeView:
    """3D volume rendering plus axial, coronal and sagittal views of an image.

    Parameters
    ----------
    image : Image
        A grey-scale 3D image, or a 4D one (``frame`` picks the time point).
    labels : Image, optional
        A label map on the same grid as ``image`` (same shape and affine),
        drawn over it with a discrete colour per label value.
    backend : {'niivue', 'itkwidgets'}
        ``'niivue'`` (default) works offline in JupyterLab 4: its JavaScript
        ships with ipyniivue and the data go to it in memory. ``'itkwidgets'``
        needs itkwidgets 1.0a55 and a network connection from the browser
        (its viewer loads from an IPFS gateway and jsDelivr); see Raises.
    window : str or (width, level), optional
        Grey-level window: a preset name (``'ct_bone'``, ...), an explicit
        pair, or None for automatic (:func:`medlab.view.resolve_window`).
        Becomes NiiVue's calibrated range ``level -/+ width/2``.
    colormap : str
        A NiiVue colormap name (``'gray'``, ``'hot'``, ``'viridis'``,
        ``'ct_bones'``, ...); the snapshot uses the same colour table.
    label_opacity : float
        Opacity of the label overlay, 0..1.
    label_names : mapping of int to str, optional
        Names of label values, shown in NiiVue's legend.
    max_voxels : int
        Images with more spatial voxels are shown resampled onto a coarser
        grid of at most this many voxels (Gaussian smoothing then linear
        interpolation; nearest for labels). The image passed in is not
        modified; the view reports the display grid and factor.
    frame : int
        Time frame of a 4D image.
    neurological : bool
        Patient's right on the screen's right in the 2D views (default:
        radiological, as :func:`medlab.view.plot_slices`).
    height : int
        Height of the viewer in pixels.
    title : str, optional
        Caption; default the image's ``meta['id']`` or modality.
    asset_timeout_s : float
        itkwidgets only: seconds allowed to reach each host its viewer
        loads from (checked from the kernel) before giving up.

    Returns
    -------
    VolumeView
        The widget (caption + viewer); its text repr says whether and how
        the display was downsampled, and exports carry a MIP snapshot.

    Raises
    ------
    GeometryMismatchError
        ``labels`` are on a different grid; the message names what differs.
    MissingDependencyError
        The backend's packages are not installed (or the wrong itkwidgets
        version is); the message gives the install line.
    medlab.view.ViewerUnavailableError
        ``backend='itkwidgets'`` when its viewer could not load: no
        connection from the kernel to its asset hosts within
        ``asset_timeout_s`` (the check stands in for the browser's
        network), or no Jupyter kernel. Raised quickly, before itkwidgets
        is imported, so no later cell is held up.

    Examples
    --------
    >>> ct = ml.load(ml.data.path("ibsi1-ct-phantom"))      # doctest: +SKIP
    >>> ml.view.volume(ct, window="ct_bone")                # doctest: +SKIP
    """
    if backend not in ("niivue", "itkwidgets"):
        raise ValueError(f"backend must be 'niivue' or 'itkwidgets', got {backend!r}")
    if not isinstance(image, Image):
        raise TypeError(f"volume() takes a medlab Image, got {type(image).__name__}")
    if image.channels:
        raise GeometryError("volume() shows grey-scale images; convert RGB images to grey first")
    if not 0.0 <= label_opacity <= 1.0:
        raise ValueError(f"label_opacity must be within 0..1, got {label_opacity}")
    if labels is not None:
        require_image(labels, "labels")
        try:
            image.match_geometry(labels)
        except GeometryMismatchError as exc:
            raise GeometryMismatchError(
                f"labels must be on the image's grid (same shape and affine), but {exc}"
            ) from None
    if backend == "niivue":
        from ._volume_niivue import check_niivue

        check_niivue(colormap)
    else:
        from ._volume_itk import check_itkwidgets

        check_itkwidgets(timeout_s=asset_timeout_s)

    notes: list[str] = []
    shown = image
    if image.n_frames > 1:
        shown = image.frame(frame)
        notes.append(f"frame {frame % image.n_frames} of {image.n_frames}")
    lab = labels
    if lab is not None:
        if lab.n_frames > 1:
            lab = lab.frame(frame)
        lab = lab.with_array(_label_array(lab))
    if not geo.is_orthogonal(shown.affine):
        grid = shown.orthogonal_grid()
        shown = shown.resample_to(grid, interpolation="linear")
        lab = lab.resample_to(grid, interpolation="nearest") if lab is not None else None
        notes.append("sheared grid resampled onto an orthogonal one for display")
    shape, affine, factors = display_grid(shown, max_voxels=max_voxels)
    if any(f > 1.0 for f in factors):
        shown = _downsample(shown, shape, affine, factors)
        lab = lab.resample_to((shape, affine), interpolation="nearest") if lab is not None else None
        notes.append(
            "display downsampled to " + "x".join(str(n) for n in shape)
            + " (factor " + ", ".join(f"{f:.3g}" for f in factors)
            + "; spacing " + ", ".join(f"{s:.3g}" for s in shown.spacing)
            + " mm); the image itself is unchanged"
        )
    width, level = resolve_window(image, window)
    name = display_text(title or str(image.meta.get("id") or image.meta.get("modality") or "image"))
    state: dict[str, Any] = {
        "backend": backend,
        "source_shape": image.spatial_shape,
        "display_image": shown,
        "display_labels": lab,
        "display_factor": factors,
        "window": (width, level),
        "colormap": colormap,
        "neurological": bool(neurological),
        "invert": bool(image.meta.get("invert_display")),
        "label_opacity": float(label_opacity),
        "legend": ([] if lab is None else
                   label_legend(lab.array, label_names, meta=labels.meta if labels is not None else None)),
        "title": name,
        "notes": notes,
    }
    if backend == "niivue":
        from ._volume_niivue import build_niivue

        widget = build_niivue(state, height=height, label_names=label_names)
        state["niivue"] = widget
    else:
        from ._volume_itk import build_itkwidgets

        widget, viewer = build_itkwidgets(state, height=height)
        state["viewer"] = viewer
    return VolumeView(viewer_widget=widget, caption=_caption(state), state=state)


def _caption(state: dict[str, Any]) -> str:
    import html

    w, lev = state["window"]
    engine = {"niivue": "NiiVue", "itkwidgets": "itkwidgets"}[state["backend"]]
    parts = [f"<b>{html.escape(state['title'])}</b>", f"3D render + MPR ({engine})",
             f"W {w:g} / L {lev:g}"]
    parts += [html.escape(n) for n in state["notes"]]
    text = " &middot; ".join(parts)
    legend = state.get("legend") or []
    if legend:  # the labels' colours, as the 3D view draws them
        items = "".join(
            f'<span class="medlab-volume-legend-item" style="margin-right:10px;white-space:nowrap">'
            f'<span style="display:inline-block;width:10px;height:10px;margin-right:4px;'
            f'border:1px solid #888;background:{e["color"]}"></span>'
            f'{e["value"]} {html.escape(e["name"])}</span>' for e in legend)
        text += f'<div class="medlab-volume-legend">labels: {items}</div>'
    return text
