"""A series gallery: one thumbnail per series of a cohort index, click to select.

Each thumbnail is the middle slice (middle frame of a cine) of its series,
read from the one file that holds it: the index's ``frames`` table says
where every 2D frame lies along the slice normal, so the gallery never loads
a whole series to draw it. Pixels go through medlab's own reader
(the stages of :mod:`medlab.io.dicom`: frames, plan, pixels with rescale, colour, decoders)
and the one window/level implementation (:mod:`medlab.view._window`).
A series that cannot be decoded gets a placeholder tile saying why; a bad
series never breaks the gallery.

Patient names and identifiers are not shown unless ``show_patient=True``:
captions carry the patient's display name (:func:`medlab.privacy.display_name`,
the pseudonym used by every medlab table, viewer title and report), and a
patient's id or name inside a series description is replaced by it.
"""

from __future__ import annotations

import base64
import html
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anywidget  # the 'view' extra: medlab.view checks for it before it imports this module
import ipywidgets as widgets
import numpy as np
import traitlets

from ._display import FullStateOnOpen, StaticSnapshot, ensure_figure_display
from ._gallery_tiles import (
    NON_IMAGE_MODALITIES,
    Tile,
    Window,
    _make_tile,
    _png,
    _series_frames,
    _short,
    series_thumbnail,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

    from ..cohort import Index
    from ..image import Image

__all__ = ["NON_IMAGE_MODALITIES", "Gallery", "Tile", "gallery", "series_thumbnail"]


class _TileGrid(FullStateOnOpen, anywidget.AnyWidget):
    """The clickable grid of tiles (one front-end view for all tiles)."""

    _esm = Path(__file__).parent / "_static" / "gallery.js"
    _css = Path(__file__).parent / "_static" / "gallery.css"
    tiles = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected_index = traitlets.Int(-1).tag(sync=True)
    size = traitlets.Int(128).tag(sync=True)
    columns = traitlets.Int(0).tag(sync=True)

    def __init__(self, **state: Any) -> None:
        super().__init__(**state)
        self._open_with_state()


class Gallery(StaticSnapshot, FullStateOnOpen, widgets.VBox):
    """Thumbnails of the series of a cohort index in a grid; click one to select it.

    Build one with :func:`gallery`. The widget shows a summary line, the
    tiles, and the description of the selected series.

    Attributes
    ----------
    selected : str or None
        Series Instance UID of the selected series (an observable traitlet:
        ``gallery.observe(fn, 'selected')``); set it to select a series.
    index : medlab.cohort.Index
        The index the series come from.
    tiles : list of Tile
        One per series shown, in the order shown.
    series : pandas.DataFrame
        The rows of ``index.series`` shown, in the order shown.
    """

    if traitlets is not None:
        selected = traitlets.Unicode(None, allow_none=True)

    def __init__(
        self,
        index: Index,
        *,
        series: pd.DataFrame | Iterable[str] | None = None,
        modalities: Literal["images", "all"] | Sequence[str] | None = "images",
        window: Window | Mapping[str, Window] = None,
        size: int = 128,
        columns: int | None = None,
        show_patient: bool = False,
        progress: bool = True,
    ) -> None:
        from tqdm.auto import tqdm

        from ..privacy import display_names

        if not isinstance(size, int) or size < 16:
            raise ValueError(f"size must be an integer number of pixels >= 16, got {size!r}")
        if columns is not None and (not isinstance(columns, int) or columns < 1):
            raise ValueError(f"columns must be a positive integer or None, got {columns!r}")
        super().__init__()
        self.index = index
        self.show_patient = bool(show_patient)
        self._callbacks: list[Callable[[str | None], Any]] = []
        table = index.series
        table = table.assign(_label=display_names(table["patient_id"], show_phi=False).values)
        n_total = len(table)
        if series is not None:
            uids = _as_uids(series)
            unknown = [u for u in uids if u not in set(table["series_uid"])]
            if unknown:
                raise KeyError(f"{len(unknown)} series are not in the index (e.g. "
                               f"{unknown[0]!r}); select rows of index.series")
            table = table[table["series_uid"].isin(set(uids))]
        is_image = (table["n_frames"].fillna(0).astype(int) > 0) & ~table["modality"].fillna(
            "").str.upper().isin(NON_IMAGE_MODALITIES)
        is_image |= (table["source"].fillna("local") != "local") & ~table["modality"].fillna(
            "").str.upper().isin(NON_IMAGE_MODALITIES)
        if modalities is None or (isinstance(modalities, str) and modalities == "all"):
            keep = np.ones(len(table), dtype=bool)
        elif isinstance(modalities, str) and modalities == "images":
            keep = is_image.to_numpy()
        else:
            wanted = {modalities.upper()} if isinstance(modalities, str) else {
                str(m).upper() for m in modalities}
            keep = table["modality"].fillna("").str.upper().isin(wanted).to_numpy()
        n_hidden = int((~keep).sum())
        table, is_image = table[keep].reset_index(drop=True), is_image[keep].reset_index(drop=True)
        frames = _series_frames(index, list(table["series_uid"])) if len(table) else None
        by_series = dict(tuple(frames.groupby("series_uid", sort=False))) if frames is not None \
            else {}
        empty = frames.iloc[:0] if frames is not None else None
        tiles: list[Tile] = []
        rows = table.to_dict("records")
        for row, image_like in tqdm(list(zip(rows, is_image, strict=True)), desc="thumbnails",
                                    unit="series", disable=not progress or len(rows) < 20):
            tiles.append(_make_tile(row, by_series.get(row["series_uid"], empty), row["_label"],
                                    window=window, size=size, show_patient=self.show_patient,
                                    is_image=bool(image_like)))
        self.series = table.drop(columns="_label")
        self.tiles = tiles
        self._uids = [t.series_uid for t in tiles]
        self._columns = columns
        self._n_total, self._n_hidden = n_total, n_hidden
        self._grid = _TileGrid(tiles=[_tile_state(t) for t in tiles], size=size,
                               columns=columns or 0)
        self._grid.observe(self._on_grid_click, "selected_index")
        self._header = widgets.HTML(value=html.escape(self._summary()))
        self._details = widgets.HTML(value="<i>click a thumbnail to select its series</i>")
        self.children = (self._header, self._grid, self._details)
        self.add_class("medlab-gallery-widget")
        self._open_with_state()

    # ------------------------------------------------------------------ selection
    def _summary(self) -> str:
        n = len(self.tiles)
        n_bad = sum(t.kind == "placeholder" for t in self.tiles)
        text = f"{n} series"
        if self._n_hidden:
            text += f" ({self._n_hidden} of the {self._n_total} in the index not shown)"
        if n_bad:
            text += f"; {n_bad} without a thumbnail (hover for why)"
        return text

    def _on_grid_click(self, change: dict) -> None:
        i = change["new"]
        self.selected = self._uids[i] if 0 <= i < len(self._uids) else None

    if traitlets is not None:

        @traitlets.validate("selected")
        def _check_selected(self, proposal: dict) -> str | None:
            uid = proposal["value"]
            if uid is not None and uid not in self._uids:
                raise traitlets.TraitError(
                    f"series {uid!r} is not in this gallery; pick one of gallery.series['series_uid']")
            return uid

        @traitlets.observe("selected")
        def _on_selected(self, change: dict) -> None:
            uid = change["new"]
            i = -1 if uid is None else self._uids.index(uid)
            if self._grid.selected_index != i:
                self._grid.selected_index = i
            if uid is None:
                self._details.value = "<i>no series selected</i>"
            else:
                tile = self.tiles[i]
                text = tile.tooltip + (f"\nthumbnail: {tile.problem}" if tile.problem else "")
                self._details.value = "<pre style='margin:0'>" + html.escape(text) + "</pre>"
            for callback in list(self._callbacks):
                callback(uid)

    @property
    def selected_row(self) -> pd.Series | None:
        """The selected series' row of :attr:`series` (None when nothing is selected)."""
        if self.selected is None:
            return None
        return self.series.iloc[self._uids.index(self.selected)]

    def on_select(self, callback: Callable[[str | None], Any], *, remove: bool = False) -> None:
        """Call ``callback(series_uid)`` whenever the selection changes.

        Parameters
        ----------
        callback : callable
            Receives the selected Series Instance UID (None when cleared);
            use :meth:`load` inside it to get the image.
        remove : bool
            Unregister ``callback`` instead.
        """
        if remove:
            self._callbacks = [c for c in self._callbacks if c != callback]
        else:
            self._callbacks.append(callback)

    def load(self, **kwargs: Any) -> Image:
        """The selected series as a :class:`medlab.Image` (via ``index.load_series``).

        Parameters
        ----------
        **kwargs
            Passed to :meth:`medlab.cohort.Index.load_series`.
        """
        if self.selected is None:
            raise ValueError("no series is selected; click a thumbnail or set "
                             "gallery.selected = series_uid")
        return self.index.load_series(self.selected, **kwargs)

    # ------------------------------------------------------------------ snapshot
    def snapshot(self, *, max_tiles: int = 48) -> Figure:
        """A montage of the thumbnails with their captions (the selected one framed).

        Parameters
        ----------
        max_tiles : int
            Draw at most this many tiles (the figure says how many more there are).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        tiles = self.tiles[:max_tiles]
        n = max(len(tiles), 1)
        ncols = min(self._columns or 6, n)
        nrows = math.ceil(n / ncols)
        fig = Figure(figsize=(2.1 * ncols, 2.75 * nrows + 0.3), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if not tiles:
            axes[0].text(0.5, 0.5, "no series", ha="center", va="center",
                         transform=axes[0].transAxes)
        for ax, tile in zip(axes, tiles, strict=False):
            ax.set_xlabel("\n".join(tile.lines), fontsize=6.5, linespacing=1.25)
            ax.set_box_aspect(1)
            if tile.pixels is not None:
                px = tile.pixels
                h, w = px.shape[:2]
                side = max(h, w)
                ax.set_facecolor("black")
                ax.imshow(px, cmap="gray", vmin=0, vmax=255, interpolation="nearest",
                          extent=((side - w) / 2, (side + w) / 2, (side + h) / 2, (side - h) / 2))
                ax.set_xlim(0, side)
                ax.set_ylim(side, 0)
            else:
                ax.set_facecolor("#e6e6f0" if tile.kind == "text" else "#dddddd")
                text = (tile.lines[0].split(" · ")[-1] if tile.kind == "text"
                        else "no thumbnail:\n" + textwrap.fill(_short(tile.problem or "", 120), 26))
                ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=6 if tile.kind !=
                        "text" else 10, transform=ax.transAxes, wrap=True, clip_on=True)
            if tile.series_uid == self.selected:
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("#e0442b")
                    spine.set_linewidth(2.5)
        title = self._summary()
        if len(self.tiles) > max_tiles:
            title += f"; the first {max_tiles} drawn"
        fig.suptitle(title, fontsize=9)
        plt.close("all")
        ensure_figure_display()
        return fig

    def __repr__(self) -> str:
        return f"<medlab Gallery: {self._summary()}; selected {self.selected!r}>"


def _tile_state(tile: Tile) -> dict[str, Any]:
    src = ""
    if tile.pixels is not None:
        src = "data:image/png;base64," + base64.b64encode(_png(tile.pixels)).decode("ascii")
    return {"kind": tile.kind, "src": src, "lines": list(tile.lines), "tooltip": tile.tooltip,
            "problem": _short(tile.problem or "")}


def _as_uids(series: Any) -> list[str]:
    import pandas as pd

    if isinstance(series, pd.DataFrame):
        if "series_uid" not in series.columns:
            raise ValueError("the series DataFrame has no 'series_uid' column; pass rows of "
                             "index.series (or a saved cohort, index.cohort(name))")
        return [str(u) for u in series["series_uid"].dropna()]
    if isinstance(series, str):
        return [series]
    return [str(u) for u in series]


def gallery(
    source: Index | str | os.PathLike | Iterable[str | os.PathLike],
    *,
    series: pd.DataFrame | Iterable[str] | None = None,
    modalities: Literal["images", "all"] | Sequence[str] | None = "images",
    window: Window | Mapping[str, Window] = None,
    size: int = 128,
    columns: int | None = None,
    show_patient: bool = False,
    progress: bool = True,
) -> Gallery:
    """A gallery of series thumbnails; click one to select it, then ``.load()`` it.

    Parameters
    ----------
    source : medlab.cohort.Index, or folder(s)/file(s)
        An index, or DICOM folders/files to index first (in memory, with
        :func:`medlab.cohort.scan`).
    series : DataFrame or list of str, optional
        Show only these series: rows of ``index.series`` (or a saved cohort,
        ``index.cohort(name)``) or Series Instance UIDs.
    modalities : 'images', 'all', None, or list of str
        ``'images'`` (default): series with pixel data that are pictures
        (not RTSTRUCT, SEG, SR, ... see :data:`NON_IMAGE_MODALITIES`);
        ``'all'`` or None: every series, non-images as text tiles; a list
        such as ``['CT', 'MR']``: those modalities.
    window : str, (width, level), None, or mapping modality -> window
        Window of the grey-scale thumbnails (see :func:`series_thumbnail`);
        None is :func:`medlab.view.resolve_window`'s default.
    size : int
        Thumbnail size in pixels (longer side).
    columns : int, optional
        Tiles per row (default: as many as fit).
    show_patient : bool
        Show patient ids and study dates in captions. By default patients
        are shown by their pseudonym (:func:`medlab.privacy.display_name`)
        and a patient's id or name inside a series description is replaced
        by it.
    progress : bool
        Progress bars while scanning and while making many thumbnails.

    Returns
    -------
    Gallery
        An ipywidgets container; ``.selected`` (Series Instance UID),
        ``.load()``, ``.on_select(callback)``, ``.snapshot()``.

    Examples
    --------
    >>> g = ml.view.gallery(index)  # doctest: +SKIP
    >>> g.on_select(lambda uid: print(g.selected_row["series_description"]))  # doctest: +SKIP
    >>> image = g.load()  # doctest: +SKIP
    """
    from ..cohort import Index

    if isinstance(source, Index):
        index = source
    elif isinstance(source, (str, os.PathLike)) or (
            isinstance(source, Iterable) and not isinstance(source, Mapping)):
        from .. import cohort

        index = cohort.scan(source, progress=progress)
    else:
        raise TypeError("source must be a medlab.cohort.Index or DICOM folder(s)/file(s), got "
                        f"{type(source).__name__}")
    return Gallery(index, series=series, modalities=modalities, window=window, size=size,
                   columns=columns, show_patient=show_patient, progress=progress)
