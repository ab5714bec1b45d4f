"""Interactive slice viewer: linked orthogonal planes, window/level, labels, overlays, measurements.

The viewer is an anywidget whose JavaScript (``_static/slices.js``) ships in
the package, so it works offline. The kernel holds the image and does every
computation: it sends the raw values of the displayed planes (binary
buffers, one trait per plane), the browser applies window/level and lookup
tables, draws, and sends back the cursor, window and the points the user
clicked. Measurements are computed by :mod:`medlab.measure` and shown as text.

Display geometry: 3D images are shown through their axis-aligned canonical
orientation (:meth:`medlab.Image.reorient` to ``'SPL'``: no interpolation);
oblique images show their closest planes. Every point the user draws is kept
as a continuous voxel index of that canonical image and reported in LPS mm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget  # the 'view' extra: medlab.view checks for it before it imports this module
import numpy as np
import traitlets as t

from .._validate import require_image
from ..image import Image
from ..privacy import display_text
from ._annotations import NORMAL as _NORMAL
from ._annotations import TOOLS, Annotations
from ._display import FullStateOnOpen, StaticSnapshot
from ._slices import _letter, acquisition_plane, label_legend
from ._slices import projection_letters as _projection_letters
from ._slices_snapshot import Snapshot, label_lut
from ._window import CMAPS, WINDOW_PRESETS, auto_window, resolve_window

__all__ = ["SliceViewer", "acquisition_plane", "compare", "slices"]

_STATIC = Path(__file__).parent / "_static"
PLANES = ("axial", "coronal", "sagittal")
_NATIVE = {np.dtype(d) for d in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32")}


def _lut(name: str) -> bytes:
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return (np.asarray(cmap(np.linspace(0, 1, 256)))[:, :3] * 255).round().astype(np.uint8).tobytes()


def _units(image: Image) -> str:
    """The intensity unit of an image as people read it (HU for CT, SUVbw, Bq/ml, ...)."""
    from ..measure import display_units
    from ..measure.stats import image_units

    return display_units(image_units(image))


def pane_title(image: Image, plane: str) -> str:
    """What a pane of ``image`` is called: the plane of a 3D image; for a single 2D image the
    plane its normal is closest to when it has a position in the patient, else "projection"
    (radiographs) or "2D" (ultrasound, photographs: no patient geometry)."""
    if image.spatial_shape[0] != 1:
        return plane
    if image.meta.get("patient_geometry") is False:
        modality = str(image.meta.get("modality", "")).upper()
        return "projection" if modality in _PROJECTION_MODALITIES else "2D"
    normal = image.affine[:3, 0]
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


_PROJECTION_MODALITIES = {"CR", "DX", "MG", "XA", "RF", "IO", "PX", "RG", "DR"}


def _wire(array: np.ndarray) -> tuple[bytes, str]:
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    elif a.dtype.newbyteorder("=") not in _NATIVE:
        a = a.astype(np.float32)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return a.tobytes(), a.dtype.name


class SliceViewer(Annotations, Snapshot, StaticSnapshot, FullStateOnOpen, anywidget.AnyWidget):
    """Linked orthogonal slice views of an :class:`~medlab.Image` (see :func:`slices`).

    Attributes you can read or set from Python (all synced with the view):
    ``cursor`` (canonical voxel index k, j, i), ``frame``, ``window``
    (width, level), ``cmap``, ``neurological``, ``label_opacity``,
    ``overlay_mode``, ``overlay_alpha``, ``tiles``, ``tool`` and
    ``annotations``. What was drawn comes back with :meth:`measurements`
    and :meth:`points`.
    """

    _esm = _STATIC / "slices.js"
    _css = _STATIC / "slices.css"

    title = t.Unicode("").tag(sync=True)

    @t.validate("title")
    def _display_title(self, proposal: Any) -> str:
        return display_text(proposal["value"])  # one display rule for patients

    planes = t.List(t.Unicode()).tag(sync=True)
    shape = t.List(t.Int()).tag(sync=True)
    affine = t.List(t.Float()).tag(sync=True)
    cursor = t.List(t.Int()).tag(sync=True)
    frame = t.Int(0).tag(sync=True)
    n_frames = t.Int(1).tag(sync=True)
    frame_label = t.Unicode("").tag(sync=True)
    fps = t.Float(10.0).tag(sync=True)
    window = t.List(t.Float()).tag(sync=True)
    default_window = t.List(t.Float()).tag(sync=True)
    presets = t.Dict().tag(sync=True)
    cmap = t.Unicode("gray").tag(sync=True)
    cmaps = t.List(t.Unicode(), default_value=list(CMAPS)).tag(sync=True)
    invert = t.Bool(False).tag(sync=True)
    rgb = t.Bool(False).tag(sync=True)
    units = t.Unicode("").tag(sync=True)
    neurological = t.Bool(False).tag(sync=True)
    label_opacity = t.Float(0.4).tag(sync=True)
    legend = t.List(t.Dict()).tag(sync=True)
    has_overlay = t.Bool(False).tag(sync=True)
    overlay_mode = t.Unicode("fusion").tag(sync=True)
    overlay_alpha = t.Float(0.5).tag(sync=True)
    overlay_window = t.List(t.Float(), default_value=[1.0, 0.5]).tag(sync=True)
    overlay_units = t.Unicode("").tag(sync=True)
    tiles = t.Int(8).tag(sync=True)
    tool = t.Unicode("navigate").tag(sync=True)
    landmark_group = t.Unicode("").tag(sync=True)
    annotations = t.List(t.Dict()).tag(sync=True)
    height = t.Int(340).tag(sync=True)
    _results = t.Dict().tag(sync=True)
    _lut = t.Bytes(b"").tag(sync=True)
    _overlay_lut = t.Bytes(b"").tag(sync=True)
    _label_lut = t.Bytes(b"").tag(sync=True)
    _pane_axial = t.Dict().tag(sync=True)
    _pane_coronal = t.Dict().tag(sync=True)
    _pane_sagittal = t.Dict().tag(sync=True)

    def __init__(
        self,
        image: Image,
        *,
        labels: Image | None = None,
        label_names: Mapping[int, str] | Sequence[str] | None = None,
        overlay: Image | None = None,
        window: str | tuple[float, float] | None = None,
        overlay_window: str | tuple[float, float] | None = None,
        cmap: str = "gray",
        overlay_cmap: str = "hot",
        overlay_mode: str = "fusion",
        overlay_alpha: float = 0.5,
        tiles: int = 8,
        label_opacity: float = 0.4,
        planes: Sequence[str] | None = None,
        point: Any = None,
        frame: int = 0,
        neurological: bool = False,
        tool: str = "navigate",
        landmark_group: str = "",
        height: int | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(image, Image):
            raise TypeError(f"slices() shows a medlab.Image, got {type(image).__name__}; "
                            "load one with ml.load(path)")
        self.image = image
        self._is_2d = image.spatial_shape[0] == 1
        self._canon = image if self._is_2d else image.reorient("SPL")
        self._labels = self._prepare_layer(labels, "labels", nearest=True)
        self._overlay = self._prepare_layer(overlay, "overlay", nearest=False)
        self._overlay_source = overlay
        n_frames = image.n_frames
        times = image.frame_times_s
        # what the fourth axis is, for the frame label: seconds, b-values or echo times
        self._frame_values = next(((np.asarray(v, dtype=float), fmt) for v, fmt in (
            (times, "{:.2f} s"), (image.b_values, "b={:g} s/mm²"),
            (image.echo_times_s, "TE {:.4g} s")) if v is not None), None)
        with self.hold_trait_notifications():
            self.title = title if title is not None else str(image.meta.get("id") or "")
            self.rgb = bool(image.channels)
            self.invert = bool(image.meta.get("invert_display"))
            self.units = _units(image)
            default_planes = ["axial"] if self._is_2d else list(PLANES)
            chosen = list(planes) if planes is not None else default_planes
            bad = [p for p in chosen if p not in PLANES]
            if bad or not chosen:
                raise ValueError(f"planes must be among {PLANES}, got {list(chosen)}")
            self.planes = chosen
            self.shape = [int(s) for s in self._canon.spatial_shape]
            self.affine = [float(v) for v in self._canon.affine.ravel()]
            self.n_frames = n_frames
            if not 0 <= frame < n_frames:
                raise IndexError(f"frame {frame} is outside 0..{n_frames - 1}")
            self.frame = frame
            if point is None:
                cursor = (np.asarray(self.shape) - 1) // 2
            else:
                cursor = np.clip(np.rint(self._canon.world_to_index(point)), 0,
                                 np.asarray(self.shape) - 1)
            self.cursor = [int(c) for c in cursor]
            self.presets = self._presets()
            self.window = list(resolve_window(image, window)) if not self.rgb else [255.0, 127.5]
            self.default_window = list(self.window)
            self.cmap = cmap
            self._lut = _lut(cmap)
            self.neurological = neurological
            self.label_opacity = label_opacity
            self._label_names = label_names
            if self._labels is not None:
                self._label_lut = label_lut().tobytes()
                self.legend = self._legend()
            self.has_overlay = self._overlay is not None
            if self._overlay is not None:
                self.overlay_window = list(resolve_window(overlay, overlay_window))
                self.overlay_units = _units(overlay)
                self._overlay_lut = _lut(overlay_cmap)
            self.overlay_mode = overlay_mode
            self.overlay_alpha = overlay_alpha
            self.tiles = tiles
            if tool not in TOOLS:
                raise ValueError(f"tool must be one of {TOOLS}, got {tool!r}")
            self.tool = tool
            self.landmark_group = landmark_group
            self.height = height or (480 if len(chosen) == 1 else 300)
            self._update_frame_label()
            for name in chosen:
                self._send_pane(name)
        self.observe(self._on_cursor, names="cursor")
        self.observe(self._on_frame, names="frame")
        self.observe(self._on_neurological, names="neurological")
        self.observe(self._on_cmap, names="cmap")
        self.observe(self._on_annotations, names="annotations")
        self._open_with_state()  # the front end gets all of the above with the widget's creation

    # ------------------------------------------------------------ set-up
    def _prepare_layer(self, layer: Image | None, what: str, *, nearest: bool) -> Image | None:
        if layer is None:
            return None
        require_image(layer, what)
        if layer.channels:
            raise ValueError(f"{what} must be a scalar image, got one with channels")
        if layer.n_frames > 1 and what == "labels":
            raise ValueError("labels must be a 3D label map, got a time series")
        if not self.image.geometry_equal(layer):
            # display only: the source images are untouched
            layer = layer.resample_to(self.image, interpolation="nearest" if nearest else "linear")
        return layer if self._is_2d else layer.reorient("SPL")

    def _presets(self) -> dict[str, list[float]]:
        if self.image.channels:
            return {}
        presets = {"auto": list(auto_window(self.image))}
        if str(self.image.meta.get("modality", "")).upper() == "CT":
            presets.update({k.removeprefix("ct_"): list(v) for k, v in WINDOW_PRESETS.items()})
        else:
            lo, hi = float(np.nanmin(self.image.array)), float(np.nanmax(self.image.array))
            presets["full range"] = [max(hi - lo, 1.0), (hi + lo) / 2]
        return presets

    def _legend(self) -> list[dict[str, Any]]:
        return label_legend(np.asarray(self._labels.array), self._label_names,
                            meta=self._labels.meta)

    # ------------------------------------------------------------ planes
    def _pane_geometry(
        self, name: str, cursor: Sequence[int] | None = None
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """M (3x3, index = M @ [row, col, 1]) and the pane's (rows, cols), at ``cursor``
        (default the current one)."""
        nz, ny, nx = self.shape
        k, j, i = self.cursor if cursor is None else cursor
        if self._is_2d:
            m, hw = [[0, 0, 0], [1, 0, 0], [0, 1, 0]], (ny, nx)
        elif name == "axial":
            m, hw = [[0, 0, k], [1, 0, 0], [0, 1, 0]], (ny, nx)
        elif name == "coronal":
            m, hw = [[-1, 0, nz - 1], [0, 0, j], [0, 1, 0]], (nz, nx)
        else:
            m, hw = [[-1, 0, nz - 1], [0, 1, 0], [0, 0, i]], (nz, ny)
        m = np.array(m, dtype=float)
        if self.neurological and name in ("axial", "coronal") and not self._is_2d:
            m[2] = [0, -1, nx - 1]  # columns run left to right of the patient
        return m, hw

    def _plane_pixels(self, arr: np.ndarray, name: str) -> np.ndarray:
        """The 2D (or 2D+channel) pixels of plane ``name`` through the cursor, display order."""
        k, j, i = self.cursor
        if self._is_2d or name == "axial":
            px = arr[0 if self._is_2d else k]
        elif name == "coronal":
            px = arr[::-1, j]
        else:
            px = arr[::-1, :, i]
        if self.neurological and name in ("axial", "coronal") and not self._is_2d:
            px = px[:, ::-1]
        return px

    def _frame_array(self, image: Image, *, frame: int | None = None) -> np.ndarray:
        arr = image.array
        if image.n_frames > 1:
            arr = arr[:, :, :, min(self.frame if frame is None else frame, image.n_frames - 1)]
        return arr

    def _pane(self, name: str) -> dict[str, Any]:
        m, (h, w) = self._pane_geometry(name)
        px = self._plane_pixels(self._frame_array(self._canon), name)
        data, dtype = _wire(px)
        sp = self._canon.spacing
        pixel_mm = {"axial": (sp[1], sp[2]), "coronal": (sp[0], sp[2]),
                    "sagittal": (sp[0], sp[1])}[name]
        a = self._canon.affine[:3, :3]
        down, right = a @ m[:, 0], a @ m[:, 1]
        letters = [_letter(-right), _letter(right), _letter(-down), _letter(down)]
        if self.image.meta.get("patient_geometry") is False:  # no position in the patient
            letters = _projection_letters(self.image.meta.get("patient_orientation"))
        pane: dict[str, Any] = {
            "shape": [h, w], "dtype": dtype, "data": data, "pixel_mm": [float(v) for v in pixel_mm],
            "M": m.tolist(), "letters": letters, "slice": int(self.cursor[_NORMAL[name]]),
            "title": pane_title(self.image, name),
            "calibrated": self._canon.spacing_known,
        }
        if self._labels is not None:
            lab = self._plane_pixels(np.asarray(self._labels.array), name)
            lab = lab.astype(np.uint8 if lab.max(initial=0) < 256 else np.uint16)
            pane["labels"], pane["labels_dtype"] = _wire(lab)
        if self._overlay is not None:
            ov = self._plane_pixels(self._frame_array(self._overlay), name)
            pane["overlay"] = np.ascontiguousarray(ov, dtype="<f4").tobytes()
        return pane

    def _send_pane(self, name: str) -> None:
        setattr(self, f"_pane_{name}", self._pane(name))

    @t.validate("cursor")
    def _valid_cursor(self, proposal: dict[str, Any]) -> list[int]:
        cursor = [int(c) for c in proposal["value"]]
        if self.shape and (len(cursor) != 3 or any(not 0 <= c < n for c, n in zip(cursor, self.shape, strict=False))):
            raise ValueError(f"cursor must be a voxel index (k, j, i) inside {self.shape}, got {cursor}")
        return cursor

    def _on_cursor(self, change: dict[str, Any]) -> None:
        old, new = change["old"] or [None] * 3, change["new"]
        for name in self.planes:
            axis = _NORMAL[name]
            if self._is_2d or old[axis] != new[axis]:
                self._send_pane(name)

    def _update_frame_label(self) -> None:
        if self._frame_values is not None and self.n_frames > 1:
            values, fmt = self._frame_values
            self.frame_label = fmt.format(values[self.frame])

    def _on_frame(self, change: dict[str, Any]) -> None:
        self._update_frame_label()
        for name in self.planes:
            self._send_pane(name)
        self._on_annotations({"new": self.annotations})

    def _on_neurological(self, change: dict[str, Any]) -> None:
        for name in self.planes:
            self._send_pane(name)

    def _on_cmap(self, change: dict[str, Any]) -> None:
        self._lut = _lut(change["new"])

    def __repr__(self) -> str:
        return f"SliceViewer({self.image!r}, planes={self.planes})"


def slices(image: Image, **options: Any) -> SliceViewer:
    """Interactive orthogonal slice viewer with window/level, overlays and measurement tools.

    Parameters
    ----------
    image : Image
        3D, 2D (one slice: CR/DX, shown as acquired), a time series (frame
        slider and play) or RGB (ultrasound). MONOCHROME1 images
        (``meta['invert_display']``) are shown inverted.
    labels : Image, optional
        Label map shown as coloured overlay with a legend; resampled
        (nearest neighbour) for display when on another grid.
    label_names : mapping or sequence of str, optional
        Legend names (default ``labels.meta['label_names']``/``['labels']``).
    overlay : Image, optional
        A second image fused on top (e.g. PET on CT), resampled onto the
        image's grid for display.
    window, overlay_window : str or (width, level), optional
        Preset name (``'ct_lung'``, ``'bone'``, ... see
        ``medlab.view.WINDOW_PRESETS``), explicit pair, or automatic.
    cmap, overlay_cmap : str
        Matplotlib colour map names (default ``'gray'`` and ``'hot'``).
    overlay_mode : {'fusion', 'checkerboard', 'blend', 'difference', 'flicker', 'off'}
    overlay_alpha : float
        Opacity of the overlay in fusion and blend modes.
    tiles : int
        Checkerboard tiles per side.
    label_opacity : float
    planes : sequence of {'axial', 'coronal', 'sagittal'}, optional
        Planes to show (default all three; 2D images one).
    point : 3 floats, optional
        LPS mm point the planes pass through at the start (default centre).
    frame : int
        Initial time frame.
    neurological : bool
        Patient's right on the screen's right (default radiological).
    tool : str
        Initial tool: ``'navigate'``, ``'ruler'``, ``'angle'``, ``'rect'``,
        ``'ellipse'``, ``'polygon'``, ``'seed'`` or ``'landmark'``.
    height : int, optional
        Pane size in screen pixels.
    title : str, optional

    Returns
    -------
    SliceViewer
        The widget; in the browser: click to move the crosshair, wheel to
        page, ctrl+wheel to zoom, drag to pan, right-drag for window/level.
        ``measurements()`` and ``points()`` return what was drawn (LPS mm).

    Examples
    --------
    >>> viewer = ml.view.slices(ct, labels=gtv, window="soft_tissue")  # doctest: +SKIP
    >>> viewer.add("ruler", [[0, 0, 0], [30, 40, 0]])  # doctest: +SKIP
    >>> viewer.measurements()["length_mm"]  # doctest: +SKIP
    """
    return SliceViewer(image, **options)


def compare(
    fixed: Image,
    moving: Image,
    *,
    mode: str = "checkerboard",
    tiles: int = 8,
    alpha: float = 0.5,
    window: str | tuple[float, float] | None = None,
    moving_window: str | tuple[float, float] | None = None,
    **options: Any,
) -> SliceViewer:
    """Judge a registration: checkerboard, blend, difference or flicker of two images.

    ``moving`` is resampled onto ``fixed``'s grid for display (linear; the
    input images are untouched), so the two may come from any grids, e.g.
    ``moving`` straight from the scanner or ``result.resample(moving)``.
    Each image is shown with its own window, so two images with different
    intensity ranges (two scanners, MR sequences, modalities) each keep
    their contrast. The difference view subtracts the two after scaling
    each by its own window (0 at the window's bottom, 1 at its top):
    mid-grey where they agree, bright where the fixed image is brighter.

    Parameters
    ----------
    fixed, moving : Image
    mode : {'checkerboard', 'blend', 'difference', 'flicker', 'fusion'}
    tiles : int
        Checkerboard tiles per side (adjustable in the view).
    alpha : float
        Blend weight of ``moving``.
    window : str or (width, level), optional
        Window of ``fixed`` (default automatic, see :func:`resolve_window`).
    moving_window : str or (width, level), optional
        Window of ``moving``; default ``window`` when one is given (the same
        preset for two CTs), else automatic for ``moving`` itself.
    **options
        Passed to :func:`slices` (``planes``, ``point``, ``title``, ...).

    Returns
    -------
    SliceViewer
    """
    modes = ("checkerboard", "blend", "difference", "flicker", "fusion")
    if mode not in modes:
        raise ValueError(f"mode must be one of {modes}, got {mode!r}")
    win = resolve_window(fixed, window)
    moving_win = resolve_window(moving, moving_window if moving_window is not None else window)
    return SliceViewer(fixed, overlay=moving, overlay_mode=mode, tiles=tiles,
                       overlay_alpha=alpha, window=win, overlay_window=moving_win,
                       overlay_cmap=options.pop("overlay_cmap", "gray"), **options)
