"""A series gallery: one thumbnail per series of a cohort index, click to select.

Each thumbnail is the middle slice (middle frame of a cine) of its series,
read from the one file that holds it: the index's ``frames`` table says
where every 2D frame lies along the slice normal, so the gallery never loads
a whole series to draw it. Pixels go through medlab's own reader
(:func:`medlab.io.dicom._pixels.read_pixels`: rescale, colour, decoders)
and the one window/level implementation (:mod:`medlab.view._window`).
A series that cannot be decoded gets a placeholder tile saying why; a bad
series never breaks the gallery.

Patient names and identifiers are not shown unless ``show_patient=True``:
captions carry ordinal labels (``P001``...) as :mod:`medlab.cohort`'s
tables do, and a patient's id or name inside a series description is
replaced by that label.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._display import StaticSnapshot, ensure_figure_display
from ._window import apply_window, resolve_window

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

    from ..cohort import Index
    from ..image import Image

try:  # the widget needs the 'view' extra; the thumbnail functions do not
    import anywidget
    import ipywidgets as widgets
    import traitlets
except ImportError:  # pragma: no cover - exercised only without medlab[view]
    anywidget = widgets = traitlets = None  # type: ignore[assignment]

__all__ = ["NON_IMAGE_MODALITIES", "Gallery", "Tile", "gallery", "series_thumbnail"]

Window = str | tuple[float, float] | None

#: modalities of objects that are not pictures (structures, documents, plans,
#: segmentations); hidden by the default ``modalities='images'``
NON_IMAGE_MODALITIES = frozenset({
    "RTSTRUCT", "RTPLAN", "RTRECORD", "RTION", "SEG", "SR", "KO", "PR", "REG", "RWV",
    "DOC", "ECG", "HD", "AU", "FID", "PLAN", "REGISTRATION", "RESP",
})

_FRAME_SQL = """
SELECT f.series_uid, f.path, f.series_number, f.group_key, f.frame_index, f.tile,
       f.position_mm, f.orientation, f.temporal, f.trigger_ms, f.time_s, f.acquisition,
       f.instance, i.transfer_syntax, i.bits_stored
FROM frames f JOIN instances i ON i.path = f.path AND i.source = 'local'
WHERE f.problem IS NULL AND f.series_uid IS NOT NULL"""

#: files tried per series before it gets a placeholder
_MAX_ATTEMPTS = 3

_TIME_KEYS = ["temporal", "trigger_ms", "time_s", "acquisition", "instance", "path",
              "frame_index", "tile"]


# --------------------------------------------------------------------------- picking
@dataclass(frozen=True)
class _Pick:
    """The frame a thumbnail shows: file, frame in a multi-frame file, mosaic tile."""

    path: str
    frame_index: int | None
    tile: int | None
    position_mm: tuple[float, float, float] | None
    n_candidates: int  # decodable frames the pick was made from
    n_excluded: int  # frames left out because their file cannot be decoded here


def _int_or_none(v: Any) -> int | None:
    import pandas as pd

    return None if v is None or pd.isna(v) else int(v)


def _has_list(v: Any) -> bool:
    """True for a non-empty list/array (DuckDB DOUBLE[] values), False for null/NA."""
    if v is None or isinstance(v, (str, float)):
        return False
    try:
        return len(v) > 0
    except TypeError:  # pandas NA
        return False


def _middle_frame(frames: pd.DataFrame) -> _Pick | None:
    """The middle frame of one series' rows of the index's ``frames`` table.

    The largest group of frames that load as one image (the loader's split
    key) is used; within it the middle slice position along the slice normal
    (index ``(n - 1) // 2`` in ascending order), and among the frames at that
    position the middle one in time. Without patient geometry (cines,
    projection images) the middle frame in time/instance order.
    Rows whose file cannot be decoded with what is installed are skipped.
    None when no frame is left.
    """
    from ..io.dicom._pixels import can_decode

    if frames.empty:
        return None
    ok_cache: dict[tuple[Any, Any], bool] = {}

    def decodable(ts: Any, bits: Any) -> bool:
        key = (ts, bits)
        if key not in ok_cache:
            ok_cache[key] = bool(can_decode(None if ts is None or ts != ts else str(ts),
                                            bits_stored=_int_or_none(bits))[0])
        return ok_cache[key]

    keep = [decodable(ts, b) for ts, b in zip(frames["transfer_syntax"], frames["bits_stored"],
                                               strict=True)]
    usable = frames[np.asarray(keep, dtype=bool)]
    n_excluded = len(frames) - len(usable)
    if usable.empty:
        return None
    # the largest group of frames the loader would assemble into one image
    keys = usable["series_number"].astype(str) + "|" + usable["group_key"].fillna("").astype(str)
    biggest = keys.value_counts(sort=True).index[0]
    group = usable[keys == biggest]
    geometric = (group["position_mm"].map(_has_list).all()
                 and group["orientation"].map(_has_list).all())
    if geometric:
        iop = np.asarray(group["orientation"].iloc[0], dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        proj = np.array([float(np.dot(np.asarray(p, dtype=float), normal))
                         for p in group["position_mm"]])
        slots = np.round(proj, 2)
        positions = np.unique(slots)
        target = positions[(len(positions) - 1) // 2]
        group = group[slots == target]
    ordered = group.sort_values(_TIME_KEYS, na_position="first", kind="stable")
    row = ordered.iloc[(len(ordered) - 1) // 2]
    pos = row["position_mm"]
    return _Pick(
        path=str(row["path"]),
        frame_index=_int_or_none(row["frame_index"]),
        tile=_int_or_none(row["tile"]),
        position_mm=tuple(float(v) for v in pos) if _has_list(pos) else None,  # type: ignore[arg-type]
        n_candidates=len(usable),
        n_excluded=n_excluded,
    )


def _read_pick(pick: _Pick) -> Image:
    """The picked frame as a one-slice :class:`medlab.Image` (only that frame is decoded)."""
    from ..errors import DicomReadError
    from ..image import Image
    from ..io.dicom import quiet_pydicom, scan
    from ..io.dicom._assemble import plan_volumes
    from ..io.dicom._pixels import read_pixels

    if not os.path.exists(pick.path):
        raise FileNotFoundError(
            f"{os.path.basename(pick.path)} is gone; run index.rescan() to update the index")
    frames, skipped = scan([pick.path], progress=False)
    match = [f for f in frames if f.index == pick.frame_index and f.tile == pick.tile]
    if not match:
        why = skipped[0][1] if skipped else "the frame recorded in the index is not in the file"
        raise DicomReadError(f"{os.path.basename(pick.path)}: {why}")
    with quiet_pydicom():
        plans, problems = plan_volumes(match[:1])
    if not plans:
        raise DicomReadError(problems[0][1] if problems else "the frame does not form an image")
    plan = plans[0]
    array, channels = read_pixels(plan, max_workers=1)
    return Image(array, plan.affine, frame_times_s=plan.frame_times_s, channels=channels,
                 meta=plan.meta)


def _to_display(image: Image, window: Window) -> np.ndarray:
    """Windowed 2D pixels in [0, 1]: grey (rows, columns) or RGB (rows, columns, 3)."""
    if image.n_frames > 1:
        image = image.frame((image.n_frames - 1) // 2)
    k = (image.spatial_shape[0] - 1) // 2
    px = np.asarray(image.array[k])
    if image.channels:
        if px.dtype.kind in "ui":
            return (px.astype(np.float32) / np.float32(np.iinfo(px.dtype).max)).clip(0, 1)
        lo, hi = float(np.nanmin(px)), float(np.nanmax(px))
        return ((px.astype(np.float32) - lo) / max(hi - lo, 1e-6)).clip(0, 1)
    one = image if image.spatial_shape[0] == 1 else image.with_array(image.array[k:k + 1])
    width, level = resolve_window(one, window)
    out = apply_window(px, width, level)
    if image.meta.get("invert_display"):
        out = 1.0 - out
    return out


def _window_for(window: Window | Mapping[str, Window], modality: str | None) -> Window:
    if isinstance(window, Mapping):
        return window.get(str(modality or "").upper(), window.get("default"))
    return window


def _resize(pixels: np.ndarray, spacing: tuple[float, float], size: int) -> np.ndarray:
    """uint8 thumbnail whose longer side is ``size`` px, with square physical pixels."""
    from PIL import Image as PILImage

    rows, cols = pixels.shape[:2]
    sr, sc = (s if s and np.isfinite(s) and s > 0 else 1.0 for s in spacing)
    scale = size / max(rows * sr, cols * sc)
    shape = (max(1, round(cols * sc * scale)), max(1, round(rows * sr * scale)))
    u8 = np.ascontiguousarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    pil = PILImage.fromarray(u8, mode="RGB" if u8.ndim == 3 else "L")
    return np.asarray(pil.resize(shape, PILImage.Resampling.LANCZOS))


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _series_frames(index: Index, uids: Sequence[str] | None = None) -> pd.DataFrame:
    """Decodable-looking frames (with their file's transfer syntax) of the series ``uids``."""
    query = _FRAME_SQL
    if uids is not None and not uids:
        query += " AND false"
    elif uids is not None and len(uids) <= 5000:  # else filter after the query
        query += " AND f.series_uid IN (" + ", ".join(f"'{_sql_str(u)}'" for u in uids) + ")"
    frames = index.sql(query)
    if uids is not None and len(uids) > 5000:
        frames = frames[frames["series_uid"].isin(set(uids))]
    return frames


def series_thumbnail(
    index: Index,
    series_uid: str,
    *,
    window: Window | Mapping[str, Window] = None,
    size: int | None = None,
) -> np.ndarray:
    """The middle slice of a series, windowed for display, read from one file.

    Parameters
    ----------
    index : medlab.cohort.Index
        The index the series is in (its ``frames`` table says which file
        holds the middle slice).
    series_uid : str
        Series Instance UID.
    window : str, (width, level), None, or mapping modality -> window
        As :func:`medlab.view.resolve_window`: None is automatic (the CT
        soft-tissue preset, otherwise the 1-99 percentiles of the slice's
        non-background pixels). A mapping such as ``{'CT': 'ct_lung'}``
        chooses per modality (key ``'default'`` for the rest).
    size : int, optional
        Resize so the longer side is ``size`` pixels (physical aspect kept)
        and return uint8; None returns the slice at full resolution.

    Returns
    -------
    numpy.ndarray
        Full resolution: float32 in [0, 1], shape (rows, columns), or
        (rows, columns, 3) for colour images (kept, not windowed).
        MONOCHROME1 images are inverted, as they are displayed. With
        ``size``: uint8 of the resized thumbnail.

    Raises
    ------
    ValueError
        The series has no decodable image frame (the reason is given).
    DicomReadError, FileNotFoundError
        Its middle file cannot be read.
    """
    frames = _series_frames(index, [series_uid])
    pick = _middle_frame(frames)
    if pick is None:
        row = index.sql(f"SELECT modality, decode_problem FROM series WHERE series_uid = "
                        f"'{_sql_str(series_uid)}'")
        if row.empty:
            raise KeyError(f"no series {series_uid!r} in the index; pick one from index.series")
        raise ValueError(f"series {series_uid!r} has no decodable image frame: "
                         f"{row['decode_problem'].iloc[0] or 'no pixel data'}")
    image = _read_pick(pick)
    pixels = _to_display(image, _window_for(window, image.meta.get("modality")))
    if size is None:
        return pixels
    return _resize(pixels, (image.spacing[1], image.spacing[2]), size)


def _sql_str(s: str) -> str:
    return str(s).replace("'", "''")


# --------------------------------------------------------------------------- tiles
@dataclass(frozen=True, eq=False)
class Tile:
    """One series in the gallery.

    Attributes
    ----------
    series_uid : str
    kind : {'image', 'placeholder', 'text'}
        A thumbnail; a series with pixel data that could not be shown (see
        ``problem``); a series that is not an image (RTSTRUCT, SR, ...).
    lines : tuple of str
        The caption (no patient identifiers unless ``show_patient=True``).
    tooltip : str
        The caption with the details (geometry and decoding problems).
    pixels : numpy.ndarray or None
        The uint8 thumbnail (grey or RGB), None for other kinds.
    problem : str or None
        Why there is no thumbnail, or what was left out of it.
    """

    series_uid: str
    kind: Literal["image", "placeholder", "text"]
    lines: tuple[str, ...]
    tooltip: str
    pixels: np.ndarray | None = None
    problem: str | None = None

    @property
    def png(self) -> bytes | None:
        """The thumbnail as PNG bytes (None without a thumbnail)."""
        return None if self.pixels is None else _png(self.pixels)


def _num(v: Any) -> float | None:
    import pandas as pd

    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _flag(v: Any) -> bool | None:
    """A boolean column value (numpy, pandas nullable or Python), None when null."""
    import pandas as pd

    if v is None or pd.isna(v):
        return None
    return bool(v)


def _text(v: Any) -> str | None:
    """A non-empty string value, or None (null, NaN, NA, blank)."""
    return v.strip() or None if isinstance(v, str) else None


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _secrets(row: Any) -> list[str]:
    """Patient id and name (and the name's parts) as they may appear in descriptions."""
    out: set[str] = set()
    for key in ("patient_id", "patient_name"):
        v = _text(row.get(key))
        if v:
            out.add(v)
            if key == "patient_name":
                out |= {p for p in re.split(r"[\^\s,=]+", v) if len(p) >= 3}
    return sorted(out, key=len, reverse=True)


def _redact(text: str, secrets: Iterable[str], label: str) -> str:
    for s in secrets:
        text = re.sub(re.escape(s), label, text, flags=re.IGNORECASE)
    return text


def _caption(row: Any, label: str, *, show_patient: bool) -> tuple[tuple[str, ...], str]:
    """(caption lines, tooltip) of one row of ``index.series``."""
    modality = _text(row.get("modality")) or "?"
    number = _num(row.get("series_number"))
    head = modality + (f" #{int(number)}" if number is not None else "")
    if show_patient:
        who = _text(row.get("patient_id")) or "(no id)"
        date = row.get("study_date")
        if date is not None and str(date) not in ("NaT", "None", "nan"):
            who += f" · {str(date)[:10]}"
    else:
        who = label
    desc = (_text(row.get("series_description")) or _text(row.get("protocol_name"))
            or "(no description)")
    if not show_patient:
        desc = _redact(desc, _secrets(row), label)
    n_inst = int(_num(row.get("n_instances")) or 0)
    n_frames = int(_num(row.get("n_frames")) or 0)
    if n_frames and n_frames != n_inst:
        count = f"{n_inst} file{'s' * (n_inst != 1)}, {n_frames} frames"
    else:
        count = f"{n_inst} image{'s' * (n_inst != 1)}" if n_frames else f"{n_inst} object{'s' * (n_inst != 1)}"
    rows, cols = _num(row.get("rows")), _num(row.get("columns"))
    dims = f"{int(rows)}×{int(cols)} px" if rows and cols else ""
    n_slices, n_t = _num(row.get("n_slices")), _num(row.get("n_timepoints"))
    if _flag(row.get("is_volume")) and n_slices:
        dims = f"{int(n_slices)} × {dims}" + (f" × {int(n_t)} t" if n_t and n_t > 1 else "")
    sr, sc = _num(row.get("pixel_spacing_row_mm")), _num(row.get("pixel_spacing_col_mm"))
    spacing = f"{_fmt(sr)}×{_fmt(sc)} mm" if sr and sc else ""
    step = _num(row.get("slice_spacing_mm"))
    if _flag(row.get("is_volume")) and step:
        spacing += f"{', ' if spacing else ''}{_fmt(step)} mm slices"
    short_desc = textwrap.shorten(desc, width=30, placeholder="…")
    lines = tuple(x for x in (f"{who} · {head}", short_desc, " · ".join(filter(None, (count, dims))),
                              spacing) if x)
    details = [f"{who} · {head}", desc, " · ".join(filter(None, (count, dims))), spacing]
    for key, what in (("volume_problem", "not a regular volume"), ("decode_problem", "decoding")):
        v = _text(row.get(key))
        if v and v != "no pixel data":
            details.append(f"{what}: {_redact(v, _secrets(row), label) if not show_patient else v}")
    return lines, "\n".join(d for d in details if d)


def _short(text: str, width: int = 160) -> str:
    return textwrap.shorten(" ".join(str(text).split()), width=width, placeholder="…")


def _make_tile(row: Any, frames: pd.DataFrame, label: str, *, window: Any, size: int,
               show_patient: bool, is_image: bool) -> Tile:
    uid = str(row["series_uid"])
    lines, tooltip = _caption(row, label, show_patient=show_patient)
    secrets = [] if show_patient else _secrets(row)

    def placeholder(why: str) -> Tile:
        why = _redact(why, secrets, label)
        return Tile(uid, "placeholder", lines, f"{tooltip}\nno thumbnail: {why}", None, why)

    source = _text(row.get("source")) or "local"
    if source != "local":
        return placeholder(f"only known from a PACS query ({source}); retrieve it and "
                           "index.update(folder)")
    if not is_image:
        if frames.empty:
            return Tile(uid, "text", lines, tooltip, None, None)
    if frames.empty:
        return placeholder(_text(row.get("decode_problem")) or _text(row.get("volume_problem"))
                           or "no image frame in the index")
    failed: list[str] = []
    n_all = len(frames)
    for _attempt in range(_MAX_ATTEMPTS):
        pick: _Pick | None = None
        try:
            pick = _middle_frame(frames)
            if pick is None:
                break
            image = _read_pick(pick)
            pixels = _to_display(image, _window_for(window, image.meta.get("modality")))
            thumb = _resize(pixels, (image.spacing[1], image.spacing[2]), size)
        except Exception as exc:  # a bad series never breaks the gallery
            failed.append(f"{type(exc).__name__}: {exc}")
            if pick is None:
                break
            # as the loader does: leave the bad file out and show another one
            frames = frames[frames["path"] != pick.path]
            continue
        notes = []
        decode_problem = _text(row.get("decode_problem"))
        if _flag(row.get("decodable")) is False and decode_problem:
            notes.append(decode_problem)  # the index's account, e.g. '1 of 10 file(s): ...'
        elif pick.n_excluded:
            notes.append(f"{pick.n_excluded} of {n_all} frames cannot be decoded here")
        if failed:
            notes.append(f"{len(failed)} file(s) could not be read ({_short(failed[0], 200)})")
        if notes:
            lines = (*lines, "⚠ partly readable")
            notes.append("the thumbnail shows the middle of the others")
        return Tile(uid, "image", lines, tooltip, thumb, _redact("; ".join(notes), secrets, label)
                    if notes else None)
    if failed:
        return placeholder(failed[0] if len(failed) == 1 else
                           f"{failed[0]} (and {len(failed) - 1} more file(s) failed)")
    return placeholder(_text(row.get("decode_problem")) or "no decodable frame")


# --------------------------------------------------------------------------- widget



if anywidget is not None:

    class _TileGrid(anywidget.AnyWidget):
        """The clickable grid of tiles (one front-end view for all tiles)."""

        _esm = Path(__file__).parent / "_static" / "gallery.js"
        _css = Path(__file__).parent / "_static" / "gallery.css"
        tiles = traitlets.List(traitlets.Dict()).tag(sync=True)
        selected_index = traitlets.Int(-1).tag(sync=True)
        size = traitlets.Int(128).tag(sync=True)
        columns = traitlets.Int(0).tag(sync=True)

    _Base: Any = widgets.VBox
else:  # pragma: no cover
    _TileGrid = None  # type: ignore[assignment,misc]
    _Base = object


def _require_widgets() -> None:
    if anywidget is None:  # pragma: no cover
        raise ImportError("the gallery widget needs ipywidgets and anywidget: "
                          "pip install 'medlab[view]'")


class Gallery(StaticSnapshot, _Base):
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
        _require_widgets()
        from tqdm.auto import tqdm

        from ..cohort._explore import _patient_labels

        if not isinstance(size, int) or size < 16:
            raise ValueError(f"size must be an integer number of pixels >= 16, got {size!r}")
        if columns is not None and (not isinstance(columns, int) or columns < 1):
            raise ValueError(f"columns must be a positive integer or None, got {columns!r}")
        super().__init__()
        self.index = index
        self.show_patient = bool(show_patient)
        self._callbacks: list[Callable[[str | None], Any]] = []
        table = index.series
        table = table.assign(_label=_patient_labels(table["patient_id"], show_phi=False).values)
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
        are ordinal labels (``P001``...) and a patient's id or name inside
        a series description is replaced by that label.
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
    _require_widgets()
    from ..cohort import _index

    if isinstance(source, _index.Index):
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
