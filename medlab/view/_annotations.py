"""Measurement tools of the slice viewer: what the user drew, measured by medlab.measure.

Points are kept as continuous voxel indices of the viewer's canonical image
and reported in LPS mm. The viewer never computes a measurement itself: it
calls :func:`medlab.measure.distance`, :func:`~medlab.measure.angle` and
:func:`~medlab.measure.label_stats`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UnknownSpacingError
from ..image import Image

__all__ = ["Annotations", "TOOLS"]

TOOLS = ("navigate", "ruler", "angle", "rect", "ellipse", "polygon", "seed", "landmark")
ROI_KINDS = ("rect", "ellipse", "polygon")
POINT_KINDS = ("seed", "landmark")
NORMAL = {"axial": 0, "coronal": 1, "sagittal": 2}


class Annotations:
    """Mixin for :class:`~medlab.view.SliceViewer`: annotations, their numbers, save/load."""

    # ------------------------------------------------------------ annotations
    def _on_annotations(self, change: dict[str, Any]) -> None:
        results = {}
        for a in change["new"]:
            try:
                results[str(a["id"])] = self._result_text(self._measure(a))
            except UnknownSpacingError:  # the one rule: no number without a calibration
                results[str(a["id"])] = "spacing unknown: calibrate (ml.measure.calibrate)"
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
        if kind in ("ruler", "angle", *ROI_KINDS):
            self._canon.require_spacing(f"the viewer's {kind}")
        if kind == "ruler":
            row["length_mm"] = measure.distance(lps[0], lps[1])
        elif kind == "angle":
            row["angle_deg"] = measure.angle(lps[0], lps[1], lps[2])
        elif kind in POINT_KINDS:
            row.update(x_mm=float(lps[0, 0]), y_mm=float(lps[0, 1]), z_mm=float(lps[0, 2]))
        elif kind in ROI_KINDS:
            slab, mask = self._roi_slab(a)
            stats = measure.label_stats(slab, mask, shape=False, percentiles=())
            if len(stats) == 0:
                row.update(area_mm2=0.0, voxel_count=0)
            else:
                s = stats.iloc[0]
                if "area_mm2" in stats:  # an axial slab is a 2D image
                    area = float(s["area_mm2"])
                else:
                    area = float(s["volume_mm3"]) / float(self._canon.spacing[NORMAL[a["plane"]]])
                row.update(area_mm2=area,
                           voxel_count=int(s["voxel_count"]), mean=float(s["mean"]),
                           std=float(s["std"]), min=float(s["min"]), max=float(s["max"]),
                           units=s["units"] if isinstance(s["units"], str) else "")
        if "length_mm" in row or "area_mm2" in row:
            row.update(spacing_source=self._canon.spacing_source,
                       spacing_plane=self._canon.spacing_plane)
        return row

    @staticmethod
    def _result_text(row: Mapping[str, Any]) -> str:
        plane = row.get("spacing_plane", "patient")
        at = "" if plane == "patient" else f" (at the {plane})"
        if "length_mm" in row:
            return f"{row['length_mm']:.1f} mm{at}"
        if "angle_deg" in row:
            return f"{row['angle_deg']:.1f}\u00b0"
        if "x_mm" in row:
            return f"LPS ({row['x_mm']:.1f}, {row['y_mm']:.1f}, {row['z_mm']:.1f}) mm"
        if "area_mm2" in row:
            if not row.get("voxel_count"):
                return "empty"
            return (f"area {row['area_mm2']:.1f} mm\u00b2{at}, mean {row['mean']:.1f} "
                    f"\u00b1 {row['std']:.1f} {row.get('units', '')}".rstrip())
        return ""

    def _roi_slab(self, a: Mapping[str, Any]) -> tuple[Image, Image]:
        """The one-voxel-thick slab an ROI lies in, and the ROI as a mask on it."""
        name, s = a["plane"], int(a["slice"])
        axis = NORMAL[name]
        cursor = list(self.cursor)
        cursor[axis] = s
        m, (h, w) = self._pane_geometry(name, cursor)
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
            centres = np.column_stack([cols.ravel(), rows.ravel()])
            # the sign of matplotlib's radius grows or shrinks the path depending on the vertex
            # order: take both so that voxel centres on an edge count either way
            inside = (path.contains_points(centres, radius=1e-9)
                      | path.contains_points(centres, radius=-1e-9)).reshape(h, w)
        r, c = np.nonzero(inside)
        idx = np.rint(m @ np.vstack([r, c, np.ones_like(r)])).astype(int)
        offset = np.zeros(3, dtype=int)
        offset[axis] = s
        slab_shape = list(self.shape)
        slab_shape[axis] = 1
        mask = np.zeros(slab_shape, dtype=np.uint8)
        idx[axis] = 0
        mask[idx[0], idx[1], idx[2]] = 1
        arr = self._frame_array(self._canon, frame=int(a.get("frame", self.frame)))
        sl = [slice(None)] * 3
        sl[axis] = slice(s, s + 1)
        values = arr[tuple(sl)]
        if self.rgb:
            values = values.mean(axis=-1, dtype=np.float32)
        affine = self._canon.affine
        affine[:3, 3] = self._canon.index_to_world(offset)
        slab = Image(np.ascontiguousarray(values), affine, meta=dict(self._canon.meta))
        return slab, Image(mask, affine)

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
        frame: int | None = None,
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
        frame : int, optional
            Time frame the annotation belongs to (default the one shown).

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
        axis = NORMAL[plane]
        if kind in ROI_KINDS and not -0.5 <= index[0, axis] <= self.shape[axis] - 0.5:
            raise ValueError(  # an ROI measures voxels: it must lie on a slice of the image
                f"the {kind}'s first point {pts[0].round(2).tolist()} mm lies outside the image along the "
                f"{plane} plane's normal (voxel index {index[0, axis]:.1f}, valid 0..{self.shape[axis] - 1})")
        s = int(np.clip(np.rint(index[0, axis]), 0, self.shape[axis] - 1))
        if kind in ROI_KINDS:
            index[:, axis] = s
        new_id = max((int(a["id"]) for a in self.annotations), default=0) + 1
        item = {"id": new_id, "kind": kind, "plane": plane, "slice": s,
                "frame": int(self.frame if frame is None else frame),
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
        ``x_mm``/``y_mm``/``z_mm`` (a seed's or landmark's LPS position),
        ``area_mm2``, ``voxel_count``, ``mean``, ``std``, ``min``, ``max``,
        ``units``, and for lengths and areas ``spacing_source`` and
        ``spacing_plane`` (where the lengths are true).

        Raises
        ------
        UnknownSpacingError
            For a ruler, angle or ROI on an image whose pixel spacing is
            unknown: calibrate it (:func:`medlab.measure.calibrate`) and
            open the viewer on the calibrated image.
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
        if a["kind"] not in ROI_KINDS:
            raise ValueError(f"annotation {annotation_id} is a {a['kind']}, not an ROI")
        _, mask = self._roi_slab(a)
        full = np.zeros(self.shape, dtype=np.uint8)
        axis, s = NORMAL[a["plane"]], int(a["slice"])
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
            if plane is None and item["kind"] in ROI_KINDS:
                raise ValueError(f"{path}: a {item['kind']} ROI drawn on the {item['plane']} plane "
                                 f"cannot be shown on {self.planes}; open the viewer with "
                                 f"planes=[{item['plane']!r}, ...]")
            self.add(item["kind"], item["points_lps"], plane=plane, group=item.get("group"),
                     frame=int(item.get("frame", 0)))
