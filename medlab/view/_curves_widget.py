"""Time-curve explorer: click a voxel or draw a region on a 4D series, see its time-intensity curve.

The curves are computed by :func:`medlab.timeseries.curves` (medlab's one
implementation); this widget only collects the points and regions drawn in
a :class:`~medlab.view.SliceViewer` and plots what that function returns.
"""

from __future__ import annotations

from typing import Any

import ipywidgets  # the 'view' extra: medlab.view checks for it before it imports this module
import numpy as np
import pandas as pd

from ..image import Image
from ._display import FullStateOnOpen, StaticSnapshot, figure_png
from ._slices_widget import SliceViewer, acquisition_plane

__all__ = ["CurveExplorer", "curves"]

_CURVE_KINDS = ("seed", "landmark", "rect", "ellipse", "polygon")


class CurveExplorer(StaticSnapshot, FullStateOnOpen, ipywidgets.HBox):
    """A slice viewer of a time series beside the curves of what was drawn on it (see :func:`curves`)."""

    def __init__(
        self,
        series: Image,
        *,
        roi: Image | None = None,
        label_names: Any = None,
        statistic: str = "mean",
        tool: str = "seed",
        **options: Any,
    ) -> None:
        if series.n_frames < 2:
            raise ValueError(f"curves() needs a time series, got {series!r}; "
                             "load all frames (e.g. ml.load on the whole DICOM folder)")
        if statistic not in ("mean", "median", "std"):
            raise ValueError(f"statistic must be 'mean', 'median' or 'std', got {statistic!r}")
        self.series = series
        self.statistic = statistic
        options.setdefault("planes", [acquisition_plane(series)])
        self.viewer = SliceViewer(series, labels=roi, label_names=label_names, tool=tool,
                                  **options)
        canon = self.viewer._canon
        if canon.channels:  # RGB cines: the curve of the grey value (mean of the channels)
            canon = canon.with_array(np.asarray(canon.array, dtype=np.float32).mean(axis=-1))
        self._scalar = canon
        self._cache: dict[tuple, pd.DataFrame] = {}
        self._roi_curves = (None if roi is None else
                            _timeseries().curves(self._scalar, self.viewer._labels,
                                                 label_names=label_names))
        # the plot's picture is in the Image widget's creation message (no update to lose)
        self.plot = ipywidgets.Image(value=self._plot_png(), format="png",
                                     layout=ipywidgets.Layout(width="420px", height="auto",
                                                              align_self="flex-start",
                                                              object_fit="contain"))
        super().__init__([self.viewer, self.plot])
        self.viewer.observe(self._refresh, names="annotations")
        self._open_with_state()

    # ------------------------------------------------------------ computing (medlab.timeseries)
    def _curve_of(self, a: dict[str, Any]) -> pd.DataFrame:
        key = (a["id"], a["kind"], a["plane"], a["slice"], str(a["points"]))
        if key not in self._cache:
            ts = _timeseries()
            if a["kind"] in ("rect", "ellipse", "polygon"):
                roi = self.viewer.roi_mask(a["id"])
                table = ts.curves(self._scalar, roi)
            else:
                lps = self._scalar.index_to_world(np.asarray(a["points"][0], dtype=float))
                table = ts.curves(self._scalar, point_lps=lps)
            table = table.assign(annotation=int(a["id"]), kind=a["kind"],
                                 name=f"{a['kind']} {a['id']}")
            self._cache[key] = table
        return self._cache[key]

    def curves(self) -> pd.DataFrame:
        """The curves shown, one row per curve and frame (columns of :func:`medlab.timeseries.curves`
        plus ``annotation`` and ``kind``; curves of the ``roi`` labels have annotation 0)."""
        tables = []
        if self._roi_curves is not None:
            tables.append(self._roi_curves.assign(annotation=0, kind="roi"))
        tables += [self._curve_of(a) for a in self.viewer.annotations if a["kind"] in _CURVE_KINDS]
        if not tables:
            return pd.DataFrame(columns=["annotation", "kind", "name", "frame", "time_s", "mean",
                                         "std", "median", "n", "units"])
        return pd.concat(tables, ignore_index=True)

    # ------------------------------------------------------------ drawing
    def _plot_figure(self, fig: Any = None, ax: Any = None) -> Any:
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(5.2, 3.6), layout="constrained")
            ax = fig.subplots()
        table = self.curves()
        for name, group in table.groupby("name", sort=False):
            ax.plot(group["time_s"], group[self.statistic], "o-", ms=3, label=str(name))
        units = table["units"].iloc[0] if len(table) and "units" in table else ""
        units = units if isinstance(units, str) else ""
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"{self.statistic} {units}".strip())
        if len(table):
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "click a voxel (seed tool) or draw a region", ha="center",
                    va="center", transform=ax.transAxes, color="gray")
        t = self.series.frame_times_s
        if t is not None and self.viewer.frame < len(t):
            ax.axvline(float(t[self.viewer.frame] - t[0]), color="gray", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
        return fig

    def _plot_png(self) -> bytes:
        return figure_png(self._plot_figure(), dpi=80)

    def _refresh(self, change: Any = None) -> None:
        self.plot.value = self._plot_png()

    def snapshot(self) -> Any:
        """The viewer's first plane beside the curves."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), layout="constrained")
        left, right = fig.subplots(1, 2)
        import io

        import matplotlib.image as mpimg

        left.imshow(mpimg.imread(io.BytesIO(self.viewer.to_png()), format="png"))
        left.axis("off")
        self._plot_figure(fig, right)
        return fig


def _timeseries() -> Any:
    from .. import timeseries

    return timeseries


def curves(series: Image, **options: Any) -> CurveExplorer:
    """Explore a 4D series: click a voxel or draw a region, see its time-intensity curve.

    Parameters
    ----------
    series : Image
        A time series (``frame_times_s`` set), e.g. a DCE-MRI or a cine.
    roi : Image, optional
        A mask or label map whose curves are shown from the start (and
        drawn as an overlay).
    label_names : mapping or sequence of str, optional
    statistic : {'mean', 'median', 'std'}
        What is plotted (every statistic is in :meth:`CurveExplorer.curves`).
    tool : str
        Initial tool: ``'seed'`` (click a voxel) or ``'rect'``, ``'ellipse'``,
        ``'polygon'`` (draw a region).
    **options
        Passed to :func:`medlab.view.slices` (``window``, ``planes``, ...).

    Returns
    -------
    CurveExplorer
        ``.curves()`` returns the curves as a DataFrame (from
        :func:`medlab.timeseries.curves`); ``.viewer`` is the slice viewer
        (``.viewer.add('seed', point_lps)`` adds a point from Python).
    """
    return CurveExplorer(series, **options)
