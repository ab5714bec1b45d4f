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

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MissingDependencyError
from ..image import Image
from ._display import StaticSnapshot
from ._window import WINDOW_PRESETS, apply_window, auto_window, resolve_window

try:
    import anywidget
    import traitlets as t
except ImportError as exc:  # pragma: no cover - the view extra is missing
    raise MissingDependencyError(
        "medlab.view widgets need anywidget and ipywidgets: pip install 'medlab[view]'"
    ) from exc

__all__ = ["CMAPS", "SliceViewer", "compare", "slices"]

_STATIC = Path(__file__).parent / "_static"
PLANES = ("axial", "coronal", "sagittal")
_NORMAL = {"axial": 0, "coronal": 1, "sagittal": 2}
#: colour maps offered in the viewer's menu (matplotlib names)
CMAPS = ("gray", "bone", "hot", "inferno", "viridis", "magma", "jet")
TOOLS = ("navigate", "ruler", "angle", "rect", "ellipse", "polygon", "seed", "landmark")
_ROI = ("rect", "ellipse", "polygon")
_NATIVE = {np.dtype(d) for d in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32")}


def _lut(name: str) -> bytes:
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return (np.asarray(cmap(np.linspace(0, 1, 256)))[:, :3] * 255).round().astype(np.uint8).tobytes()


def _label_colors(n: int = 256) -> np.ndarray:
    import matplotlib

    base = np.vstack([matplotlib.colormaps["tab10"].colors, matplotlib.colormaps["tab20b"].colors])
    colors = np.array([base[(v - 1) % len(base)] if v else (0, 0, 0) for v in range(n)])
    return (colors[:, :3] * 255).round().astype(np.uint8)


def _letter(direction: np.ndarray) -> str:
    """The patient direction (LPS) a screen direction points to."""
    a = int(np.argmax(np.abs(direction)))
    return ("L", "P", "S")[a] if direction[a] > 0 else ("R", "A", "I")[a]


def _wire(array: np.ndarray) -> tuple[bytes, str]:
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    elif a.dtype.newbyteorder("=") not in _NATIVE:
        a = a.astype(np.float32)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return a.tobytes(), a.dtype.name


class SliceViewer(StaticSnapshot, anywidget.AnyWidget):
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
    planes = t.List(t.Unicode()).tag(sync=True)
    shape = t.List(t.Int()).tag(sync=True)
    affine = t.List(t.Float()).tag(sync=True)
    cursor = t.List(t.Int()).tag(sync=True)
    frame = t.Int(0).tag(sync=True)
    n_frames = t.Int(1).tag(sync=True)
    frame_label = t.Unicode("").tag(sync=True)
    fps = t.Float(10.0).tag(sync=True)
    window = t.List(t.Float()).tag(sync=True)
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
        self._times = None if times is None else np.asarray(times, dtype=float)
        with self.hold_trait_notifications():
            self.title = title if title is not None else str(image.meta.get("id") or "")
            self.rgb = bool(image.channels)
            self.invert = bool(image.meta.get("invert_display"))
            self.units = str(image.meta.get("units") or
                             ("HU" if str(image.meta.get("modality", "")).upper() == "CT" else ""))
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
            self.cmap = cmap
            self._lut = _lut(cmap)
            self.neurological = neurological
            self.label_opacity = label_opacity
            self._label_names = label_names
            if self._labels is not None:
                self._label_lut = _label_colors().tobytes()
                self.legend = self._legend()
            self.has_overlay = self._overlay is not None
            if self._overlay is not None:
                self.overlay_window = list(resolve_window(overlay, overlay_window))
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

    # ------------------------------------------------------------ set-up
    def _prepare_layer(self, layer: Image | None, what: str, *, nearest: bool) -> Image | None:
        if layer is None:
            return None
        if not isinstance(layer, Image):
            raise TypeError(f"{what} must be a medlab.Image, got {type(layer).__name__}")
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
        values = np.unique(np.asarray(self._labels.array))
        names = self._label_names
        if names is None:
            names = self._labels.meta.get("label_names") or self._labels.meta.get("labels") or {}
        if isinstance(names, Sequence) and not isinstance(names, str):
            names = {i + 1: n for i, n in enumerate(names)}
        names = {int(k): str(v) for k, v in dict(names).items()}
        colors = _label_colors()
        return [{"value": int(v), "name": names.get(int(v), f"label {int(v)}"),
                 "color": "#{:02x}{:02x}{:02x}".format(*colors[int(v) % 256])}
                for v in values if v > 0]

    # ------------------------------------------------------------ planes
    def _pane_geometry(self, name: str) -> tuple[np.ndarray, tuple[int, int]]:
        """M (3x3, index = M @ [row, col, 1]) and the pane's (rows, cols)."""
        nz, ny, nx = self.shape
        k, j, i = self.cursor
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

    def _frame_array(self, image: Image) -> np.ndarray:
        arr = image.array
        if image.n_frames > 1:
            arr = arr[:, :, :, min(self.frame, image.n_frames - 1)]
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
        if self._is_2d and not self.image.meta.get("orientation_known", True):
            letters = ["", "", "", ""]
        pane: dict[str, Any] = {
            "shape": [h, w], "dtype": dtype, "data": data, "pixel_mm": [float(v) for v in pixel_mm],
            "M": m.tolist(), "letters": letters, "slice": int(self.cursor[_NORMAL[name]]),
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

    def _on_cursor(self, change: dict[str, Any]) -> None:
        old, new = change["old"] or [None] * 3, change["new"]
        for name in self.planes:
            axis = _NORMAL[name]
            if self._is_2d or old[axis] != new[axis]:
                self._send_pane(name)

    def _update_frame_label(self) -> None:
        if self._times is not None and self.n_frames > 1:
            self.frame_label = f"{self._times[self.frame]:.2f} s"

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

    # ------------------------------------------------------------ annotations
    def _on_annotations(self, change: dict[str, Any]) -> None:
        results = {}
        for a in change["new"]:
            try:
                results[str(a["id"])] = self._result_text(self._measure(a))
            except Exception as exc:  # show the reason beside the drawing
                results[str(a["id"])] = f"error: {exc}"
        self._results = results

    def _world(self, points: Any) -> np.ndarray:
        return np.atleast_2d(self._canon.index_to_world(np.asarray(points, dtype=float)))

    def _measure(self, a: Mapping[str, Any]) -> dict[str, Any]:
        """The numbers for one annotation, from medlab.measure."""
        from .. import measure

        kind = a["kind"]
        lps = self._world(a["points"])
        row: dict[str, Any] = {}
        if kind == "ruler":
            row["length_mm"] = measure.distance(lps[0], lps[1])
        elif kind == "angle":
            row["angle_deg"] = measure.angle(lps[0], lps[1], lps[2])
        elif kind in _ROI:
            slab, mask = self._roi_slab(a)
            stats = measure.label_stats(slab, mask, shape=False, percentiles=())
            if len(stats) == 0:
                row.update(area_mm2=0.0, voxel_count=0)
            else:
                s = stats.iloc[0]
                thickness = float(self._canon.spacing[_NORMAL[a["plane"]]])
                row.update(area_mm2=float(s["volume_mm3"]) / thickness,
                           voxel_count=int(s["voxel_count"]), mean=float(s["mean"]),
                           std=float(s["std"]), min=float(s["min"]), max=float(s["max"]),
                           units=str(s["units"]))
        return row

    @staticmethod
    def _result_text(row: Mapping[str, Any]) -> str:
        if "length_mm" in row:
            return f"{row['length_mm']:.1f} mm"
        if "angle_deg" in row:
            return f"{row['angle_deg']:.1f}\u00b0"
        if "area_mm2" in row:
            if not row.get("voxel_count"):
                return "empty"
            return (f"area {row['area_mm2']:.1f} mm\u00b2, mean {row['mean']:.1f} "
                    f"\u00b1 {row['std']:.1f} {row.get('units', '')}".rstrip())
        return ""

    def _roi_slab(self, a: Mapping[str, Any]) -> tuple[Image, Image]:
        """The one-voxel-thick slab an ROI lies in, and the ROI as a mask on it."""
        name, s = a["plane"], int(a["slice"])
        axis = _NORMAL[name]
        cursor = list(self.cursor)
        cursor[axis] = s
        m, (h, w) = self._pane_geometry_at(name, cursor)
        rc = self._pane_rc_at(m, np.asarray(a["points"], dtype=float))
        rows, cols = np.mgrid[0:h, 0:w]
        if a["kind"] == "rect":
            (r0, c0), (r1, c1) = rc[0], rc[1]
            eps = 1e-6  # corners given in mm come back from world_to_index with rounding
            inside = ((rows >= min(r0, r1) - eps) & (rows <= max(r0, r1) + eps)
                      & (cols >= min(c0, c1) - eps) & (cols <= max(c0, c1) + eps))
        elif a["kind"] == "ellipse":
            (r0, c0), (r1, c1) = rc[0], rc[1]
            rr, cc = (r0 + r1) / 2, (c0 + c1) / 2
            ar, ac = max(abs(r1 - r0) / 2, 1e-9), max(abs(c1 - c0) / 2, 1e-9)
            inside = ((rows - rr) / ar) ** 2 + ((cols - cc) / ac) ** 2 <= 1.0 + 1e-9
        else:
            from matplotlib.path import Path as MplPath

            path = MplPath(rc[:, ::-1])
            inside = path.contains_points(np.column_stack([cols.ravel(), rows.ravel()]),
                                          radius=1e-9).reshape(h, w)
        r, c = np.nonzero(inside)
        idx = np.rint(m @ np.vstack([r, c, np.ones_like(r)])).astype(int)
        offset = np.zeros(3, dtype=int)
        offset[axis] = s
        slab_shape = list(self.shape)
        slab_shape[axis] = 1
        mask = np.zeros(slab_shape, dtype=np.uint8)
        idx[axis] = 0
        mask[idx[0], idx[1], idx[2]] = 1
        arr = self._frame_array(self._canon)
        sl = [slice(None)] * 3
        sl[axis] = slice(s, s + 1)
        values = arr[tuple(sl)]
        if self.rgb:
            values = values.mean(axis=-1, dtype=np.float32)
        affine = self._canon.affine
        affine[:3, 3] = self._canon.index_to_world(offset)
        slab = Image(np.ascontiguousarray(values), affine, meta=dict(self._canon.meta))
        return slab, Image(mask, affine)

    def _pane_geometry_at(self, name: str, cursor: Sequence[int]) -> tuple[np.ndarray, tuple]:
        saved = self._trait_values["cursor"]
        self._trait_values["cursor"] = list(cursor)  # evaluate without notifying the view
        try:
            return self._pane_geometry(name)
        finally:
            self._trait_values["cursor"] = saved

    @staticmethod
    def _pane_rc_at(m: np.ndarray, index: np.ndarray) -> np.ndarray:
        index = np.atleast_2d(index)
        rc = np.zeros((len(index), 2))
        for axis in range(3):
            for col in (0, 1):
                if m[axis, col] != 0:
                    rc[:, col] = (index[:, axis] - m[axis, 2]) / m[axis, col]
        return rc

    # ------------------------------------------------------------ public API
    def add(
        self,
        kind: str,
        points_lps: Any,
        *,
        plane: str | None = None,
        group: str | None = None,
    ) -> int:
        """Add an annotation from Python (as if drawn), with points in LPS mm.

        Parameters
        ----------
        kind : {'ruler', 'angle', 'rect', 'ellipse', 'polygon', 'seed', 'landmark'}
            ``rect``/``ellipse`` take two opposite corners (ellipse: of its
            bounding box); ``polygon`` its vertices.
        points_lps : (n, 3) array_like
            Points in LPS mm. ROI points are projected onto the plane of the
            first point.
        plane : {'axial', 'coronal', 'sagittal'}, optional
            The plane the annotation is drawn on (default the first shown).
        group : str, optional
            Landmark group (e.g. ``'fixed'``).

        Returns
        -------
        int
            The annotation id.
        """
        if kind not in TOOLS or kind == "navigate":
            raise ValueError(f"kind must be one of {TOOLS[1:]}, got {kind!r}")
        plane = plane or self.planes[0]
        if plane not in self.planes:
            raise ValueError(f"plane {plane!r} is not shown; shown: {self.planes}")
        pts = np.atleast_2d(np.asarray(points_lps, dtype=float))
        need = {"ruler": 2, "angle": 3, "rect": 2, "ellipse": 2, "seed": 1, "landmark": 1}
        if (kind in need and len(pts) != need[kind]) or (kind == "polygon" and len(pts) < 3):
            raise ValueError(f"a {kind} needs {need.get(kind, 'at least 3')} points, got {len(pts)}")
        index = np.atleast_2d(self._canon.world_to_index(pts))
        axis = _NORMAL[plane]
        s = int(np.clip(np.rint(index[0, axis]), 0, self.shape[axis] - 1))
        if kind in _ROI:
            index[:, axis] = s
        new_id = max((int(a["id"]) for a in self.annotations), default=0) + 1
        item = {"id": new_id, "kind": kind, "plane": plane, "slice": s, "frame": int(self.frame),
                "points": index.tolist(), "group": group or self.landmark_group}
        self.annotations = [*self.annotations, item]
        return new_id

    def clear(self) -> None:
        """Remove every annotation."""
        self.annotations = []

    def measurements(self) -> pd.DataFrame:
        """One row per annotation: kind, plane, frame and its numbers (from medlab.measure).

        Columns: ``id``, ``kind``, ``plane``, ``frame``, ``group``,
        ``n_points``, then as applicable ``length_mm``, ``angle_deg``,
        ``area_mm2``, ``voxel_count``, ``mean``, ``std``, ``min``, ``max``,
        ``units``.
        """
        rows = []
        for a in self.annotations:
            row = {"id": int(a["id"]), "kind": a["kind"], "plane": a["plane"],
                   "frame": int(a.get("frame", 0)), "group": a.get("group", ""),
                   "n_points": len(a["points"])}
            row.update(self._measure(a))
            rows.append(row)
        base = ["id", "kind", "plane", "frame", "group", "n_points"]
        return pd.DataFrame(rows, columns=None if rows else base)

    def points(self, kind: str | None = None) -> pd.DataFrame:
        """Every drawn point in LPS mm: ``id``, ``kind``, ``group``, ``point``, ``x_mm``, ``y_mm``, ``z_mm``."""
        rows = []
        for a in self.annotations:
            if kind is not None and a["kind"] != kind:
                continue
            for n, p in enumerate(self._world(a["points"])):
                rows.append({"id": int(a["id"]), "kind": a["kind"], "group": a.get("group", ""),
                             "point": n, "x_mm": p[0], "y_mm": p[1], "z_mm": p[2]})
        return pd.DataFrame(rows, columns=["id", "kind", "group", "point", "x_mm", "y_mm", "z_mm"])

    def roi_mask(self, annotation_id: int) -> Image:
        """The ROI of a rect/ellipse/polygon annotation as a mask on the canonical grid."""
        a = self._annotation(annotation_id)
        if a["kind"] not in _ROI:
            raise ValueError(f"annotation {annotation_id} is a {a['kind']}, not an ROI")
        _, mask = self._roi_slab(a)
        full = np.zeros(self.shape, dtype=np.uint8)
        axis, s = _NORMAL[a["plane"]], int(a["slice"])
        sl = [slice(None)] * 3
        sl[axis] = slice(s, s + 1)
        full[tuple(sl)] = mask.array
        return Image(full, self._canon.affine)

    def _annotation(self, annotation_id: int) -> Mapping[str, Any]:
        for a in self.annotations:
            if int(a["id"]) == int(annotation_id):
                return a
        raise KeyError(f"no annotation {annotation_id}; present: "
                       f"{[int(a['id']) for a in self.annotations]}")

    def save(self, path: str | Path) -> Path:
        """Write the annotations to JSON, points in LPS mm (reloadable onto any grid)."""
        path = Path(path)
        items = [{"kind": a["kind"], "plane": a["plane"], "frame": int(a.get("frame", 0)),
                  "group": a.get("group", ""), "points_lps": self._world(a["points"]).tolist()}
                 for a in self.annotations]
        path.write_text(json.dumps({"medlab_annotations": 1, "coordinates": "LPS mm",
                                    "items": items}, indent=1))
        return path

    def load(self, path: str | Path) -> None:
        """Add the annotations saved with :meth:`save` (points given in LPS mm)."""
        doc = json.loads(Path(path).read_text())
        if doc.get("medlab_annotations") != 1:
            raise ValueError(f"{path} is not a medlab annotation file (missing 'medlab_annotations')")
        for item in doc["items"]:
            plane = item["plane"] if item["plane"] in self.planes else None
            self.add(item["kind"], item["points_lps"], plane=plane, group=item.get("group"))

    # ------------------------------------------------------------ static picture
    def _compose(self, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        """RGB picture of a pane (the same compositing as the browser)."""
        pane = self._pane(name)
        px = self._plane_pixels(self._frame_array(self._canon), name)
        width, level = self.window
        lut = np.frombuffer(self._lut, np.uint8).reshape(256, 3) / 255.0
        if self.rgb:
            rgb = np.asarray(px, dtype=np.float32) / 255.0
        else:
            g = np.rint(apply_window(px, width, level) * 255).astype(int)
            if self.invert:
                g = 255 - g
            rgb = lut[g]
        if self._overlay is not None and self.overlay_mode not in ("off", "none"):
            ov = self._plane_pixels(self._frame_array(self._overlay), name)
            a = self.overlay_alpha
            grey = lut[np.rint(apply_window(ov, width, level) * 255).astype(int)]
            if self.overlay_mode == "fusion":
                t_ = apply_window(ov, *self.overlay_window)
                olut = np.frombuffer(self._overlay_lut, np.uint8).reshape(256, 3) / 255.0
                col = olut[np.rint(t_ * 255).astype(int)]
                on = (t_ > 0)[..., None]
                rgb = np.where(on, (1 - a) * rgb + a * col, rgb)
            elif self.overlay_mode == "checkerboard":
                h, w = ov.shape
                r, c = np.mgrid[0:h, 0:w]
                odd = ((np.floor(c / (w / self.tiles)) + np.floor(r / (h / self.tiles))) % 2 == 1)
                rgb = np.where(odd[..., None], grey, rgb)
            elif self.overlay_mode == "blend":
                rgb = (1 - a) * rgb + a * grey
            elif self.overlay_mode == "difference":
                d = np.clip(np.abs(np.asarray(px, float) - ov) / max(width - 1, 1e-6), 0, 1)
                rgb = np.repeat(d[..., None], 3, axis=-1)
        if self._labels is not None and self.label_opacity > 0:
            lab = self._plane_pixels(np.asarray(self._labels.array), name)
            colors = _label_colors() / 255.0
            on = (lab > 0)[..., None]
            rgb = np.where(on, (1 - self.label_opacity) * rgb
                           + self.label_opacity * colors[lab.astype(int) % 256], rgb)
        return np.clip(rgb, 0, 1), pane

    def snapshot(self) -> Any:
        """A matplotlib Figure of the current view (planes, crosshair, letters, labels, drawings)."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        n = len(self.planes)
        fig = Figure(figsize=(4.0 * n, 4.3), layout="constrained", facecolor="black")
        axes = fig.subplots(1, n, squeeze=False)[0]
        results = self._results
        for ax, name in zip(axes, self.planes, strict=True):
            rgb, pane = self._compose(name)
            h, w = pane["shape"]
            dr, dc = pane["pixel_mm"]
            ax.imshow(rgb, extent=(0, w * dc, h * dr, 0), interpolation="nearest")
            ax.set_facecolor("black")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name if n > 1 else self.title or name, color="white", fontsize=10)
            m = np.asarray(pane["M"])

            def to_mm(index: np.ndarray, m: np.ndarray = m, dr: float = dr,
                      dc: float = dc) -> np.ndarray:
                rc = self._pane_rc_at(m, index)
                return np.column_stack([(rc[:, 1] + 0.5) * dc, (rc[:, 0] + 0.5) * dr])

            if n > 1:
                x, y = to_mm(np.asarray(self.cursor, float))[0]
                ax.axvline(x, color="c", lw=0.6, alpha=0.6)
                ax.axhline(y, color="c", lw=0.6, alpha=0.6)
            for a in self.annotations:
                if a["plane"] != name or int(a["slice"]) != pane["slice"]:
                    continue
                xy = to_mm(np.asarray(a["points"], float))
                if a["kind"] in ("rect", "ellipse"):
                    from matplotlib.patches import Ellipse, Rectangle

                    (x0, y0), (x1, y1) = xy
                    patch = (Rectangle((min(x0, x1), min(y0, y1)), abs(x1 - x0), abs(y1 - y0))
                             if a["kind"] == "rect" else
                             Ellipse(((x0 + x1) / 2, (y0 + y1) / 2), abs(x1 - x0), abs(y1 - y0)))
                    patch.set(fill=False, edgecolor="lime", lw=1.2)
                    ax.add_patch(patch)
                else:
                    closed = a["kind"] == "polygon"
                    pts = np.vstack([xy, xy[:1]]) if closed else xy
                    ax.plot(pts[:, 0], pts[:, 1], "-o", color="lime", lw=1.2, ms=3)
                ax.text(xy[-1, 0], xy[-1, 1], f" {a['kind']} {a['id']}: "
                        f"{results.get(str(a['id']), '')}", color="lime", fontsize=8)
            left, right, top, bottom = pane["letters"]
            kw = {"color": "yellow", "fontsize": 11, "fontweight": "bold",
                  "transform": ax.transAxes}
            ax.text(0.02, 0.5, left, ha="left", va="center", **kw)
            ax.text(0.98, 0.5, right, ha="right", va="center", **kw)
            ax.text(0.5, 0.98, top, ha="center", va="top", **kw)
            ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **kw)
            bar = _scale_bar_mm(w * dc)
            ax.plot([w * dc * 0.95 - bar, w * dc * 0.95], [h * dr * 0.93] * 2, color="white", lw=2)
            ax.text(w * dc * 0.95, h * dr * 0.91, f"{bar:g} mm", color="white", fontsize=7,
                    ha="right", va="bottom")
        info = [] if self.rgb else [f"W {self.window[0]:g} / L {self.window[1]:g}"]
        if self.n_frames > 1:
            info.append(f"frame {self.frame + 1}/{self.n_frames} {self.frame_label}")
        fig.text(0.99, 0.005, "   ".join(info), color="white", ha="right", va="bottom", fontsize=8)
        if self.legend:
            handles = [Patch(color=e["color"], label=f"{e['value']} {e['name']}") for e in self.legend]
            fig.legend(handles=handles, loc="lower left", fontsize=7, ncols=min(len(handles), 6),
                       facecolor="black", labelcolor="white", frameon=False)
        return fig

    def __repr__(self) -> str:
        return f"SliceViewer({self.image!r}, planes={self.planes})"


def _scale_bar_mm(width_mm: float) -> float:
    """A round length near a fifth of the width (the browser uses the same rule)."""
    nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    target = width_mm / 5
    return max([s for s in nice if s <= target], default=nice[0])


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
    **options: Any,
) -> SliceViewer:
    """Judge a registration: checkerboard, blend, difference or flicker of two images.

    ``moving`` is resampled onto ``fixed``'s grid for display (linear; the
    input images are untouched), so the two may come from any grids, e.g.
    ``moving`` straight from the scanner or ``result.resample(moving)``.
    Both are shown with the same window.

    Parameters
    ----------
    fixed, moving : Image
    mode : {'checkerboard', 'blend', 'difference', 'flicker', 'fusion'}
    tiles : int
        Checkerboard tiles per side (adjustable in the view).
    alpha : float
        Blend weight of ``moving``.
    window : str or (width, level), optional
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
    return SliceViewer(fixed, overlay=moving, overlay_mode=mode, tiles=tiles,
                       overlay_alpha=alpha, window=win, overlay_window=win,
                       overlay_cmap=options.pop("overlay_cmap", "gray"), **options)
