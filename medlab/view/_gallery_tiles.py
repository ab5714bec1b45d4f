"""Series thumbnails and gallery tiles, from a cohort index (no widgets needed).

Each thumbnail is the middle slice (middle frame of a cine) of its series,
read from the one file that holds it: the index's ``frames`` table says
where every 2D frame lies along the slice normal, so no series is loaded
whole to draw it. Pixels go through medlab's own reader and the one
window/level implementation (:mod:`medlab.view._window`). Captions carry
ordinal patient labels unless asked otherwise.
"""

from __future__ import annotations

import io
import os
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._window import apply_window, resolve_window

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..cohort import Index
    from ..image import Image

__all__ = ["NON_IMAGE_MODALITIES", "Tile", "series_thumbnail"]

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
    from ..io.dicom.pixels import can_decode

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
    """The picked frame as a one-slice :class:`medlab.Image` (only that frame is decoded).

    Through the loader's stages (:mod:`medlab.io.dicom.frames`, ``.plans``, ``.pixels``):
    the file's frames, a plan of the picked one, its pixels.
    """
    from ..errors import DicomReadError
    from ..io.dicom.frames import file_frames
    from ..io.dicom.header import quiet_pydicom
    from ..io.dicom.pixels import image_from_plan
    from ..io.dicom.plans import plan_volumes

    if not os.path.exists(pick.path):
        raise FileNotFoundError(
            f"{os.path.basename(pick.path)} is gone; run index.rescan() to update the index")
    frames, reason = file_frames(Path(pick.path))
    match = [f for f in frames if f.index == pick.frame_index and f.tile == pick.tile]
    if not match:
        why = reason or "the frame recorded in the index is not in the file"
        raise DicomReadError(f"{os.path.basename(pick.path)}: {why}")
    with quiet_pydicom():
        plans, problems = plan_volumes(match[:1])
    if not plans:
        raise DicomReadError(problems[0][1] if problems else "the frame does not form an image")
    return image_from_plan(plans[0], max_workers=1)


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
