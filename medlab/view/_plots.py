"""Static figures (matplotlib) for reports: a parametric map over anatomy, time curves, and a
registration overlay. Each returns a :class:`matplotlib.figure.Figure` built without pyplot
state; the axes of image panes are patient coordinates (LPS mm), as in :func:`plot_slices`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..image import Image
from ..privacy import display_text
from ._display import ensure_figure_display, require_matplotlib
from ._slices import (
    _axis_label,
    _image_plane,
    acquisition_plane,
    draw_letters,
    plane_slices,
)
from ._window import apply_window, resolve_window, window_scaled

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["plot_curves", "plot_map", "plot_registration"]

_PLANES = ("axial", "coronal", "sagittal")
_AXES = {"axial": ("x", "y"), "coronal": ("x", "z"), "sagittal": ("y", "z")}
REGISTRATION_MODES = ("checkerboard", "fusion", "blend", "difference")


def _units_of(image: Image) -> str:
    from ..measure import display_units
    from ..measure.stats import image_units

    return display_units(image_units(image))


def _on_grid(layer: Image, reference: Image, *, nearest: bool = False) -> Image:
    """``layer`` on ``reference``'s grid, for display (the inputs are untouched)."""
    if layer.n_frames > 1 or layer.channels:
        raise ValueError(f"a map or moving image must be one scalar 3D/2D image, got {layer!r}")
    if reference.geometry_equal(layer):
        return layer
    return layer.resample_to(reference, interpolation="nearest" if nearest else "linear")


def _plane(image: Image, plane: str, point: Any, frame: int = 0) -> tuple[np.ndarray, tuple, str, str, tuple]:
    """Pixels, LPS extent, axis names and letters of one plane (2D images: as stored)."""
    if image.spatial_shape[0] == 1:
        px, extent, letters, h, v = _image_plane(image, frame)
        return px, extent, h, v, letters
    px, extent, letters = plane_slices(image, point=point, frame=frame)[plane]
    h, v = _AXES[plane]
    return px, extent, h, v, letters


def _check_plane(image: Image, plane: str | None) -> str:
    plane = plane or acquisition_plane(image)
    if plane not in _PLANES:
        raise ValueError(f"plane must be one of {_PLANES}, got {plane!r}")
    return plane


def _finish(fig: Any) -> Any:
    import matplotlib.pyplot as plt

    plt.close("all")  # nothing registered with pyplot leaks
    ensure_figure_display()
    return fig


def _decorate(ax: Any, image: Image, hname: str, vname: str, letters: Any) -> None:
    ax.set_xlabel(_axis_label(image, hname))
    ax.set_ylabel(_axis_label(image, vname))
    draw_letters(ax, letters, fontsize=11)


def plot_map(
    anatomy: Image,
    values: Image,
    *,
    plane: str | None = None,
    point: Any = None,
    frame: int = 0,
    window: str | tuple[float, float] | None = None,
    cmap: str = "magma",
    vmin: float | None = None,
    vmax: float | None = None,
    threshold: float | None = None,
    alpha: float = 0.7,
    units: str | None = None,
    label: str | None = None,
    title: str | None = None,
) -> Figure:
    """A parametric map (enhancement, SUV, Ktrans, Jacobian, ...) in colour over the anatomy.

    Parameters
    ----------
    anatomy : Image
        The grey-scale picture underneath (a 4D series shows ``frame``).
    values : Image
        The map; resampled onto ``anatomy``'s grid for display (linear) when
        on another grid. NaN values are transparent.
    plane : {'axial', 'coronal', 'sagittal'}, optional
        Default the plane of ``anatomy``'s own slices. 2D images show as stored.
    point : 3 floats, optional
        LPS mm point the plane passes through (default the centre).
    window : str or (width, level), optional
        Window of the anatomy (default automatic).
    cmap : str
        Colour map of the values.
    vmin, vmax : float, optional
        Colour range (default the 2nd and 98th percentiles of the shown values).
    threshold : float, optional
        Values below it are transparent (e.g. SUV 0.5, 20 % enhancement).
    alpha : float
        Opacity of the map.
    units : str, optional
        Unit on the colour bar (default ``values.meta['units']``, as people read it).
    label : str, optional
        Colour bar label (default ``values.meta['quantity']`` or "value").
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One pane with LPS mm axes and a colour bar.
    """
    require_matplotlib("ml.view.plot_map")
    from matplotlib.figure import Figure

    plane = _check_plane(anatomy, plane)
    ref = anatomy.frame(frame) if anatomy.n_frames > 1 else anatomy
    if ref.channels:
        raise ValueError("the anatomy must be a grey-scale image; convert RGB with a channel mean")
    shown = _on_grid(values, ref)
    px, extent, hname, vname, letters = _plane(ref, plane, point)
    vals = np.asarray(_plane(shown, plane, point)[0], dtype=float)
    width, level = resolve_window(ref, window)
    finite = vals[np.isfinite(vals)]
    if threshold is not None:
        finite = finite[finite >= threshold]
    lo = vmin if vmin is not None else (float(np.percentile(finite, 2)) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(np.percentile(finite, 98)) if finite.size else 1.0)
    hide = ~np.isfinite(vals) | (vals < threshold if threshold is not None else False)
    fig = Figure(figsize=(6.4, 5.4), layout="constrained")
    ax = fig.subplots()
    ax.imshow(apply_window(px, width, level), cmap="gray", vmin=0, vmax=1, extent=extent,
              interpolation="nearest")
    im = ax.imshow(np.ma.masked_array(vals, hide), cmap=cmap, vmin=lo, vmax=hi, alpha=alpha,
                   extent=extent, interpolation="nearest")
    units = _units_of(values) if units is None else units
    name = label or str(values.meta.get("quantity") or "value")
    fig.colorbar(im, ax=ax, label=f"{name} ({units})" if units else name, shrink=0.85)
    _decorate(ax, ref, hname, vname, letters)
    ax.set_title(display_text(title or (plane if ref.spatial_shape[0] > 1
                                        else values.meta.get("id", ""))))
    return _finish(fig)


def plot_curves(
    table: pd.DataFrame,
    *,
    statistic: str = "mean",
    error: str | None = "std",
    by: str | None = None,
    title: str | None = None,
) -> Figure:
    """Time-intensity curves from a :func:`medlab.timeseries.curves` table.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``time_s``, the ``statistic``, optionally ``error`` and
        ``units``, and one curve per ``by`` value.
    statistic : str
        Column plotted (``'mean'``, ``'median'``...).
    error : str or None
        Column drawn as error bars (default ``'std'``; None for none).
    by : str, optional
        Column naming the curves (default ``'name'``, else ``'label'``).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Time in seconds on x, the statistic with its unit on y, a legend.
    """
    require_matplotlib("ml.view.plot_curves")
    from matplotlib.figure import Figure

    from ..measure import display_units

    missing = [c for c in ("time_s", statistic) if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no {missing} column(s); pass the table of "
                         f"ml.timeseries.curves (columns: {list(table.columns)})")
    by = by or next((c for c in ("name", "label") if c in table.columns), None)
    units = ""
    if "units" in table.columns:
        found = {display_units(u) for u in table["units"].dropna().unique()} - {""}
        units = ", ".join(sorted(found))
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    groups = table.groupby(by, sort=False) if by else [("", table)]
    for name, part in groups:
        part = part.sort_values("time_s")
        err = part[error] if error and error in part.columns else None
        ax.errorbar(part["time_s"], part[statistic], yerr=err, marker="o", ms=4, capsize=3,
                    label=str(name) if by else None)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{statistic} ({units})" if units else statistic)
    if by:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(display_text(title))
    return _finish(fig)


def plot_registration(
    fixed: Image,
    moving: Image,
    *,
    mode: str | Sequence[str] = "checkerboard",
    plane: str | None = None,
    point: Any = None,
    tiles: int = 8,
    window: str | tuple[float, float] | None = None,
    moving_window: str | tuple[float, float] | None = None,
    cmap: str = "hot",
    alpha: float = 0.5,
    title: str | None = None,
) -> Figure:
    """Judge a registration on paper: checkerboard, fusion, blend or difference of two images.

    ``moving`` is resampled onto ``fixed``'s grid (linear, for display), so
    pass it as it is or as ``result.resample(moving)``. Each image keeps
    its own window (two scanners or modalities have different ranges); the
    difference subtracts the two after scaling each by its own window (0 at
    its bottom, 1 at its top), as :func:`medlab.view.compare` does.

    Parameters
    ----------
    fixed, moving : Image
    mode : str or sequence of str
        ``'checkerboard'``, ``'fusion'`` (``moving`` in colour with a colour
        bar), ``'blend'`` or ``'difference'``; several give one pane each.
    plane : {'axial', 'coronal', 'sagittal'}, optional
        Default the plane of ``fixed``'s slices; 2D images show as stored.
    point : 3 floats, optional
        LPS mm point the plane passes through (default the centre).
    tiles : int
        Checkerboard tiles per side.
    window, moving_window : str or (width, level), optional
        Windows of the two images; ``moving_window`` defaults to ``window``
        when one is given, else automatic for ``moving``.
    cmap : str
        Colour map of ``moving`` in fusion mode.
    alpha : float
        Opacity of ``moving`` in fusion and blend modes.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_matplotlib("ml.view.plot_registration")
    from matplotlib.figure import Figure

    modes = [mode] if isinstance(mode, str) else list(mode)
    bad = [m for m in modes if m not in REGISTRATION_MODES]
    if bad or not modes:
        raise ValueError(f"mode must be among {REGISTRATION_MODES}, got {mode!r}")
    plane = _check_plane(fixed, plane)
    if fixed.channels or fixed.n_frames > 1:
        raise ValueError(f"fixed must be one scalar 3D/2D image, got {fixed!r}")
    shown = _on_grid(moving, fixed)
    f_px, extent, hname, vname, letters = _plane(fixed, plane, point)
    m_px = _plane(shown, plane, point)[0]
    fw = resolve_window(fixed, window)
    mw = resolve_window(moving, moving_window if moving_window is not None else window)
    f = apply_window(f_px, *fw)
    m = apply_window(m_px, *mw)
    fig = Figure(figsize=(5.4 * len(modes), 5.2), layout="constrained")
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    for ax, kind in zip(axes, modes, strict=True):
        if kind == "checkerboard":
            h, w = f.shape
            r, c = np.mgrid[0:h, 0:w]
            odd = (np.floor(c / (w / tiles)) + np.floor(r / (h / tiles))) % 2 == 1
            ax.imshow(np.where(odd, m, f), cmap="gray", vmin=0, vmax=1, extent=extent,
                      interpolation="nearest")
            ax.set_title(f"checkerboard ({tiles}x{tiles}): fixed / moving")
        elif kind == "blend":
            ax.imshow((1 - alpha) * f + alpha * m, cmap="gray", vmin=0, vmax=1, extent=extent,
                      interpolation="nearest")
            ax.set_title(f"blend ({alpha:g} moving)")
        elif kind == "fusion":
            ax.imshow(f, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
            lo, hi = mw[1] - mw[0] / 2, mw[1] + mw[0] / 2
            vals = np.asarray(m_px, dtype=float)
            im = ax.imshow(np.ma.masked_less_equal(vals, lo), cmap=cmap, vmin=lo, vmax=hi,
                           alpha=alpha, extent=extent, interpolation="nearest")
            units = _units_of(moving)
            fig.colorbar(im, ax=ax, shrink=0.8, label=f"moving ({units})" if units else "moving")
            ax.set_title("fusion: moving in colour")
        else:
            d = window_scaled(f_px, *fw) - window_scaled(m_px, *mw)
            im = ax.imshow(np.clip(d, -1, 1), cmap="RdBu_r", vmin=-1, vmax=1, extent=extent,
                           interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.8,
                         label="fixed \u2212 moving (each scaled by its own window)")
            ax.set_title("difference")
        _decorate(ax, fixed, hname, vname, letters)
    if title:
        fig.suptitle(display_text(title))
    fig.text(0.99, 0.005, f"fixed W {fw[0]:g} / L {fw[1]:g}   moving W {mw[0]:g} / L {mw[1]:g}",
             ha="right", va="bottom", fontsize=8)
    return _finish(fig)

