"""Per-series derived columns of the index: volume geometry and decodability.

The geometry is the loader's own: frames are grouped as
:func:`medlab.io.dicom.plans.plan_volumes` groups them (series number,
then the split key of :func:`~medlab.io.dicom.frames.frames_from_dataset`)
and each group goes through :func:`~medlab.io.dicom.plans.stack_geometry`
(slice/time clustering and :func:`~medlab.io.dicom.plans.check_stack`),
so ``is_volume`` is True exactly when :func:`medlab.load` would build one
regular 3D (or 3D+t) image from the series. Decodability uses
:func:`medlab.io.dicom.pixels.can_decode`, the rules behind the loader's
decode errors.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..io.dicom.pixels import can_decode
from ..io.dicom.plans import sort_indices_in_time, stack_geometry

__all__ = ["FrameRecord", "InstanceRecord", "series_rows"]


@dataclass(slots=True)
class FrameRecord:
    """One row of the index's ``frames`` table (the fields assembly sorts on)."""

    path: str
    series_number: str
    group_key: str | None
    index: int | None
    tile: int | None
    ipp: list[float] | None
    iop: list[float] | None
    temporal: float | None
    trigger_ms: float | None
    time_s: float | None
    acquisition: int | None
    instance: int
    problem: str | None


@dataclass(slots=True)
class InstanceRecord:
    path: str
    modality: str | None
    sop_class_uid: str | None
    transfer_syntax: str | None
    bits_stored: int | None


#: names of the loader's split-key fields, to say how the images of a series differ
_BASE_FIELDS = ("modality", "samples per pixel", "photometric interpretation", "echo number",
                "image type")
_PLAIN_FIELDS = ("rows", "columns", "orientation", "pixel spacing")
_ENHANCED_FIELDS = (*_PLAIN_FIELDS, "frame type", "echo time", "stack")
_MOSAIC_FIELDS = ("mosaic", "tile rows", "tile columns", "orientation")


def _key_fields(key: list) -> tuple[str, ...]:
    if len(key) > 5 and key[5] == "mosaic":
        return _BASE_FIELDS + _MOSAIC_FIELDS
    return _BASE_FIELDS + (_ENHANCED_FIELDS if len(key) > 9 else _PLAIN_FIELDS)


def _show(value: Any) -> str:
    if isinstance(value, list):
        if not value:
            return "(none)"
        if all(isinstance(v, str) for v in value):
            return "\\".join(value)
        # + 0.0: no '-0' for the rounded direction cosines
        return "(" + ", ".join(f"{v + 0.0:g}" if isinstance(v, float) else str(v)
                               for v in value) + ")"
    return "(none)" if value is None else str(value)


def describe_groups(groups: dict[tuple[str, str | None], list[Any]]) -> str:
    """How the images of one series differ, e.g. 'image type (A vs B)'."""
    numbers = {number for number, _ in groups}
    parts = []
    if len(numbers) > 1:
        parts.append(f"series number ({' vs '.join(sorted(numbers))})")
    keys = [json.loads(k) if k else [] for _, k in groups]
    width = min(len(k) for k in keys) if keys else 0
    names = _key_fields(keys[0]) if keys else ()
    for i in range(width):
        values = []
        for k in keys:
            shown = _show(k[i])
            if shown not in values:
                values.append(shown)
        if len(values) > 1 and i < len(names):
            more = f" and {len(values) - 3} more" if len(values) > 3 else ""
            parts.append(f"{names[i]} ({' vs '.join(values[:3])}{more})")
    if len({len(k) for k in keys}) > 1:
        parts.append("kind of object (single-frame, multi-frame, mosaic)")
    return "; ".join(parts) or "their frame grouping"


def _geometry(frames: list[FrameRecord], series_uid: str) -> dict[str, Any]:
    """is_volume, volume_problem, n_slices, n_timepoints, slice_spacing_mm of a series."""
    out: dict[str, Any] = {"is_volume": False, "volume_problem": None, "n_slices": None,
                           "n_timepoints": None, "slice_spacing_mm": None}
    ok = [f for f in frames if f.problem is None]
    if not ok:
        bad = [f.problem for f in frames if f.problem]
        out["volume_problem"] = (
            f"no file of the series can be assembled: {bad[0]}" if bad else "no image frames")
        return out
    groups: dict[tuple[str, str | None], list[FrameRecord]] = defaultdict(list)
    for f in ok:
        groups[(f.series_number, f.group_key)].append(f)
    if len(groups) > 1:
        out["volume_problem"] = (
            f"the series holds {len(groups)} images whose frames differ in "
            f"{describe_groups(groups)}; medlab loads them as separate images "
            f"(medlab.io.dicom.read_dicom(index.files({series_uid!r})))"
        )
        return out
    group = next(iter(groups.values()))
    iop = group[0].iop
    if iop is None or any(f.ipp is None for f in group):
        n_files = len({f.path for f in group})
        out["volume_problem"] = (
            "no patient geometry (Image Position/Orientation (Patient) missing): "
            f"{n_files} 2D image(s), one per file"
        )
        return out
    geometry = stack_geometry([f.ipp for f in group], tuple(iop),
                              sort_in_time=lambda idx: sort_indices_in_time(group, idx))
    out["n_slices"] = geometry.n_slices
    out["n_timepoints"] = geometry.n_timepoints or None
    if geometry.check is not None and geometry.n_slices > 1:
        out["slice_spacing_mm"] = geometry.check.slice_spacing_mm
    if geometry.problem is not None:
        out["volume_problem"] = geometry.problem
    elif geometry.n_slices < 2:
        frames_text = (f" with {geometry.n_timepoints} frames in time"
                       if geometry.n_timepoints > 1 else "")
        out["volume_problem"] = f"a single slice position: a 2D image{frames_text}, not a volume"
    else:
        out["is_volume"] = True
    return out


def _decodability(image_instances: list[InstanceRecord],
                  frames: list[FrameRecord]) -> tuple[bool | None, str | None]:
    if not image_instances:
        return None, "no pixel data"
    problems: dict[str, int] = defaultdict(int)
    for inst in image_instances:
        ok, why = can_decode(inst.transfer_syntax, bits_stored=inst.bits_stored)
        if not ok:
            problems[str(why)] += 1
    bad_files = {f.path: f.problem for f in frames if f.problem}
    for problem in bad_files.values():
        problems[str(problem)] += 1
    if not problems:
        return True, None
    n = len(image_instances)
    text = "; ".join(f"{k if k == n else f'{k} of {n}'} file(s): {why}"
                     for why, k in sorted(problems.items(), key=lambda kv: -kv[1]))
    return False, text


def series_rows(
    instances: Iterable[tuple[str, InstanceRecord]],
    frames: Iterable[tuple[str, FrameRecord]],
) -> list[tuple]:
    """SERIES_COLUMNS rows for the series of the given (series_uid, record) pairs."""
    by_series: dict[str, list[InstanceRecord]] = defaultdict(list)
    for uid, inst in instances:
        by_series[uid].append(inst)
    frames_by_series: dict[str, list[FrameRecord]] = defaultdict(list)
    for uid, f in frames:
        frames_by_series[uid].append(f)
    rows = []
    for uid, insts in by_series.items():
        fr = frames_by_series.get(uid, [])
        image_paths = {f.path for f in fr}
        images = [i for i in insts if i.path in image_paths]
        n_frames = sum(1 for f in fr if f.problem is None)
        if fr:
            geo = _geometry(fr, uid)
        else:
            modality = next((i.modality for i in insts if i.modality), None) or "unknown modality"
            geo = {"is_volume": False, "n_slices": None, "n_timepoints": None,
                   "slice_spacing_mm": None,
                   "volume_problem": f"no image pixel data ({modality} objects): not an image"}
        decodable, decode_problem = _decodability(images, fr)
        rows.append((uid, len(insts), n_frames, geo["is_volume"], geo["volume_problem"],
                     geo["n_slices"], geo["n_timepoints"], geo["slice_spacing_mm"],
                     decodable, decode_problem))
    return rows
