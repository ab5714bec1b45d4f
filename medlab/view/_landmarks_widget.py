"""Paired landmarks between two images, for landmark registration and TRE.

Two slice viewers side by side with the landmark tool; the n-th landmark
clicked on the fixed image pairs with the n-th on the moving image. The
pairs come back in LPS mm, ready for
:func:`medlab.registration.landmark_registration`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ipywidgets  # the 'view' extra: medlab.view checks for it before it imports this module
import numpy as np
import pandas as pd

from ..image import Image
from ._display import FullStateOnOpen, StaticSnapshot
from ._slices_widget import SliceViewer

__all__ = ["LandmarkPairs", "landmarks"]

_COLUMNS = ["pair", "fixed_x_mm", "fixed_y_mm", "fixed_z_mm", "moving_x_mm", "moving_y_mm",
            "moving_z_mm"]


class LandmarkPairs(StaticSnapshot, FullStateOnOpen, ipywidgets.VBox):
    """Two viewers for picking corresponding points (see :func:`landmarks`)."""

    def __init__(self, fixed: Image, moving: Image, **options: Any) -> None:
        options.setdefault("planes", ["axial"])
        options.setdefault("height", 400)
        self.fixed_view = SliceViewer(fixed, tool="landmark", landmark_group="fixed",
                                      title=options.pop("fixed_title", "fixed"), **options)
        self.moving_view = SliceViewer(moving, tool="landmark", landmark_group="moving",
                                       title=options.pop("moving_title", "moving"), **options)
        self.table = ipywidgets.HTML(value=self._table_html())
        super().__init__([ipywidgets.HBox([self.fixed_view, self.moving_view]), self.table])
        for view in (self.fixed_view, self.moving_view):
            view.observe(self._refresh, names="annotations")
        self._open_with_state()

    def _points(self, view: SliceViewer) -> pd.DataFrame:
        return view.points("landmark")

    def pairs(self) -> pd.DataFrame:
        """One row per complete pair: ``pair`` and the fixed and moving points in LPS mm."""
        f, m = self._points(self.fixed_view), self._points(self.moving_view)
        n = min(len(f), len(m))
        xyz = ["x_mm", "y_mm", "z_mm"]
        table = pd.DataFrame(np.hstack([f[xyz].to_numpy()[:n], m[xyz].to_numpy()[:n]]),
                             columns=_COLUMNS[1:])
        table.insert(0, "pair", np.arange(1, n + 1))
        return table

    def unpaired(self) -> dict[str, int]:
        """How many landmarks on each side still wait for their partner."""
        nf, nm = len(self._points(self.fixed_view)), len(self._points(self.moving_view))
        return {"fixed": max(nf - nm, 0), "moving": max(nm - nf, 0)}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(fixed_points, moving_points)`` as (n, 3) arrays in LPS mm."""
        table = self.pairs()
        return (table[_COLUMNS[1:4]].to_numpy(float), table[_COLUMNS[4:]].to_numpy(float))

    def add(self, fixed_lps: Any, moving_lps: Any) -> None:
        """Add a pair from Python (points in LPS mm)."""
        self.fixed_view.add("landmark", fixed_lps, group="fixed")
        self.moving_view.add("landmark", moving_lps, group="moving")

    def register(self, *, kind: str = "rigid") -> Any:
        """:func:`medlab.registration.landmark_registration` on the pairs picked so far."""
        from .. import registration

        fixed_points, moving_points = self.arrays()
        return registration.landmark_registration(fixed_points, moving_points, kind=kind)

    def save(self, path: str | Path) -> Path:
        """Write the pairs (LPS mm) to JSON."""
        path = Path(path)
        fixed_points, moving_points = self.arrays()
        path.write_text(json.dumps({"medlab_landmark_pairs": 1, "coordinates": "LPS mm",
                                    "fixed": fixed_points.tolist(),
                                    "moving": moving_points.tolist()}, indent=1))
        return path

    def load(self, path: str | Path) -> None:
        """Add the pairs saved with :meth:`save`."""
        doc = json.loads(Path(path).read_text())
        if doc.get("medlab_landmark_pairs") != 1:
            raise ValueError(f"{path} is not a medlab landmark file (missing 'medlab_landmark_pairs')")
        for f, m in zip(doc["fixed"], doc["moving"], strict=True):
            self.add(f, m)

    def _refresh(self, change: Any = None) -> None:
        self.table.value = self._table_html()

    def _table_html(self) -> str:
        table = self.pairs()
        waiting = self.unpaired()
        note = "".join(f" {n} {side} landmark(s) wait for a partner." for side, n in waiting.items()
                       if n)
        html = table.round(2).to_html(index=False, classes="medlab-landmarks") if len(table) else ""
        return f"<b>{len(table)} pair(s)</b>{note}{html}"

    def snapshot(self) -> Any:
        """Both viewers side by side."""
        import io

        import matplotlib.image as mpimg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 5), layout="constrained")
        for ax, view in zip(fig.subplots(1, 2), (self.fixed_view, self.moving_view), strict=True):
            ax.imshow(mpimg.imread(io.BytesIO(view.to_png()), format="png"))
            ax.axis("off")
        return fig


def landmarks(fixed: Image, moving: Image, **options: Any) -> LandmarkPairs:
    """Pick paired landmarks on two images (the n-th on each side form a pair).

    Parameters
    ----------
    fixed, moving : Image
    **options
        Passed to both :func:`medlab.view.slices` viewers (default one
        axial plane each).

    Returns
    -------
    LandmarkPairs
        ``.pairs()`` (DataFrame, LPS mm), ``.arrays()``, ``.register()``,
        ``.save()``/``.load()``.
    """
    return LandmarkPairs(fixed, moving, **options)
