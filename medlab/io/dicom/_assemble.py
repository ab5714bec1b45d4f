"""Series assembly: group frames into images, sort them in space and time,
and check the stack's geometry.

:func:`stack_geometry` (clustering frame positions into slices and time
points, then :func:`check_stack`) is *the* series-geometry check of medlab:
the loader uses it to build and refuse irregular stacks and the cohort index
uses it to say which series form regular volumes and why not.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import geometry as geo
from ._frames import Frame
from ._spacing import SOURCE_UNKNOWN, pixel_spacing
from ._timing import slice_times

__all__ = ["StackCheck", "StackGeometry", "check_stack", "stack_geometry", "VolumePlan",
           "plan_volumes"]


@dataclass(frozen=True)
class StackCheck:
    """The geometry of a stack of parallel frames, and what is wrong with it.

    Attributes
    ----------
    n_slices : int
    slice_spacing_mm : float
        Median distance between neighbouring positions along the normal.
    regular : bool
        True when positions are evenly spaced on one line with no gap.
    problem : str or None
        Which check failed, in words, with the values found.
    missing_slices : int
        Slices that a gap of several spacings implies are missing.
    spacing_deviation_mm : float
        Largest deviation of a step from the median step.
    tilt_deg : float
        Angle between the stacking direction and the frame normal
        (CT gantry tilt); 0 for a perpendicular stack.
    step : ndarray
        Mean world vector from one slice to the next.
    """

    n_slices: int
    slice_spacing_mm: float
    regular: bool
    problem: str | None
    missing_slices: int = 0
    spacing_deviation_mm: float = 0.0
    tilt_deg: float = 0.0
    step: np.ndarray = field(default_factory=lambda: np.zeros(3))


def check_stack(
    positions: np.ndarray,
    orientation: tuple[float, ...],
    *,
    rtol: float = 0.01,
    atol_mm: float = geo.POSITION_TOLERANCE_MM,
) -> StackCheck:
    """Check that frame positions form a regular volume.

    Parameters
    ----------
    positions : (n, 3) array
        Image Position (Patient) of each frame, already sorted along the
        normal.
    orientation : 6 floats
        Image Orientation (Patient) shared by the frames.
    rtol, atol_mm : float
        A step may differ from the median step by ``max(atol_mm, rtol *
        median)`` before spacing counts as uneven.

    Examples
    --------
    >>> pos = np.array([[0, 0, z] for z in (0, 2, 4, 8, 10)], dtype=float)
    >>> c = check_stack(pos, (1, 0, 0, 0, 1, 0))
    >>> c.regular, c.missing_slices
    (False, 1)
    """
    positions = np.asarray(positions, dtype=float)
    n = len(positions)
    normal = np.cross(orientation[:3], orientation[3:])
    if n < 2:
        return StackCheck(n, 0.0, True, None)
    d = positions @ normal
    steps = np.diff(d)
    median = float(np.median(steps))
    if median <= 0:
        return StackCheck(n, 0.0, False, "several frames share one position")
    tol = max(atol_mm, rtol * median)
    deviation = float(np.max(np.abs(steps - median)))
    step_vec = (positions[-1] - positions[0]) / (n - 1)
    # positions must lie on one line
    residual = positions - (positions[0] + np.outer(np.arange(n), step_vec))
    off_line = float(np.max(np.linalg.norm(residual - np.outer(residual @ normal, normal), axis=1)))
    cos_tilt = abs(step_vec @ normal) / np.linalg.norm(step_vec)
    tilt = float(np.degrees(np.arccos(np.clip(cos_tilt, -1.0, 1.0))))
    problem = None
    missing = 0
    if deviation > tol:
        ratios = steps / median
        gaps = ratios > 1.5
        near_multiple = np.abs(ratios - np.round(ratios)) < 0.1
        if np.any(gaps) and np.all(near_multiple[gaps]):
            missing = int(np.sum(np.round(ratios[gaps]) - 1))
            where = ", ".join(f"after slice {i}" for i in np.flatnonzero(gaps)[:5])
            problem = (
                f"{missing} missing slice(s): the spacing is {median:.4g} mm but jumps to "
                f"{', '.join(f'{s:.4g}' for s in steps[gaps][:5])} mm ({where})"
            )
        else:
            problem = (
                f"uneven slice spacing: steps range from {steps.min():.4g} to {steps.max():.4g} mm "
                f"(median {median:.4g} mm, tolerance {tol:.2g} mm)"
            )
    elif off_line > max(atol_mm, 0.1 * median):
        problem = (
            f"frame positions are not on one line (off by up to {off_line:.3g} mm): "
            "the series holds several stacks"
        )
    return StackCheck(
        n_slices=n,
        slice_spacing_mm=median,
        regular=problem is None,
        problem=problem,
        missing_slices=missing,
        spacing_deviation_mm=deviation,
        tilt_deg=tilt if tilt > 0.01 else 0.0,
        step=step_vec,
    )


@dataclass(frozen=True)
class StackGeometry:
    """How frames at various positions form slices and time points.

    Attributes
    ----------
    n_slices : int
        Distinct positions along the frame normal.
    n_timepoints : int
        Frames per position (0 when positions hold different numbers of frames).
    check : StackCheck or None
        The geometry check of the slice positions; None when the frames do not
        form a grid (positions with different numbers of frames).
    problem : str or None
        What is wrong, in words with the values found: uneven frame counts, or
        ``check.problem``.
    grid : list of list of int
        ``grid[t][k]``: the index (into the positions given) of the frame at
        time ``t`` and slice ``k``; empty when there is no grid.
    """

    n_slices: int
    n_timepoints: int
    check: StackCheck | None
    problem: str | None
    grid: list[list[int]] = field(default_factory=list)

    @property
    def regular(self) -> bool:
        """True when the frames form a regular 3D (or 3D+t) grid."""
        return self.problem is None


def stack_geometry(
    positions: Any,
    orientation: tuple[float, ...],
    *,
    sort_in_time: Callable[[list[int]], list[int]] | None = None,
) -> StackGeometry:
    """Cluster frame positions into slices (and time points) and check the stack.

    Positions closer than 1 µm along the normal of ``orientation`` are one
    slice position; every position must hold the same number of frames (the
    time points), and the first frame of each position in time must form a
    regular stack (:func:`check_stack`).

    Parameters
    ----------
    positions : (n, 3) array-like
        Image Position (Patient) of each frame, in any order.
    orientation : 6 floats
        Image Orientation (Patient) shared by the frames.
    sort_in_time : callable, optional
        Takes the indices of the frames at one position and returns them in
        time order; by default they stay in the order given.

    Returns
    -------
    StackGeometry

    Examples
    --------
    >>> pos = [[0, 0, z] for z in (0, 0, 2, 2, 4, 4)]
    >>> g = stack_geometry(pos, (1, 0, 0, 0, 1, 0))
    >>> g.n_slices, g.n_timepoints, g.regular
    (3, 2, True)
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    normal = np.cross(orientation[:3], orientation[3:])
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    clusters: list[list[int]] = []
    last = None
    for i in order:
        if last is None or d[i] - last > 1e-3:
            clusters.append([])
        clusters[-1].append(int(i))
        last = d[i]
    counts = {len(c) for c in clusters}
    if len(counts) > 1:
        per: dict[int, int] = defaultdict(int)
        for c in clusters:
            per[len(c)] += 1
        detail = ", ".join(f"{v} position(s) with {k} frame(s)" for k, v in sorted(per.items()))
        problem = (
            f"incomplete time series or duplicated slices: {len(clusters)} slice positions but "
            f"{detail}; check for missing files or mixed acquisitions in this series"
        )
        return StackGeometry(len(clusters), 0, None, problem)
    n_t = counts.pop() if counts else 0
    if sort_in_time is not None:
        clusters = [list(sort_in_time(c)) if len(c) > 1 else c for c in clusters]
    grid = [[c[t] for c in clusters] for t in range(n_t)]
    check = check_stack(pos[grid[0]], orientation) if grid else StackCheck(0, 0.0, False, "no frames")
    return StackGeometry(len(clusters), n_t, check, check.problem, grid)


@dataclass
class VolumePlan:
    """How to build one image from frames: ``grid[t][k]`` is the frame at
    time ``t``, slice ``k``."""

    id: str
    grid: list[list[Frame]]
    affine: np.ndarray
    frame_times_s: np.ndarray | None
    meta: dict[str, Any]
    check: StackCheck | None = None
    #: Image keyword arguments for a fourth axis that is not time (diffusion)
    axis: dict[str, Any] | None = None
    #: 'quantitative' (Philips floating point, Real World Value Mapping) or 'display'
    scaling_mode: str = "quantitative"

    def image_axis(self) -> dict[str, Any]:
        """The :class:`~medlab.Image` keyword arguments for this plan's fourth axis."""
        if self.axis is not None:
            return self.axis
        return {} if self.frame_times_s is None else {"frame_times_s": self.frame_times_s}

    @property
    def frames(self) -> list[Frame]:
        return [f for vol in self.grid for f in vol]


def _plane(iop: tuple[float, ...] | None) -> str:
    if iop is None:
        return "2D"
    normal = np.abs(np.cross(iop[:3], iop[3:]))
    return ("SAG", "COR", "AX")[int(np.argmax(normal))]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")[:48]


def _series_label(f: Frame) -> str:
    h = f.header
    number = h.get("SeriesNumber")
    desc = str(h.get("SeriesDescription") or h.get("ProtocolName") or "").strip()
    modality = str(h.get("Modality") or "")
    parts = []
    parts.append(f"S{int(number):03d}" if number not in (None, "") else modality or "series")
    if desc:
        parts.append(_slug(desc))
    elif modality and parts[0] != modality:
        parts.append(modality)
    return "-".join(parts)


def _sort_in_time(frames: list[Frame]) -> list[Frame]:
    def have(attr: str) -> bool:
        return all(getattr(f, attr) is not None for f in frames)

    keys = [a for a in ("temporal", "trigger_ms", "time_s", "acquisition") if have(a)]

    def key(f: Frame) -> tuple:
        return (*(getattr(f, a) for a in keys), f.instance, f.index or 0, f.tile or 0)

    return sorted(frames, key=key)


def sort_indices_in_time(frames: list[Any], idx: list[int]) -> list[int]:
    """``idx`` (indices into ``frames``) in time order, as :func:`_sort_in_time` orders frames.

    ``frames`` need the attributes ``temporal``, ``trigger_ms``, ``time_s``,
    ``acquisition``, ``instance``, ``index`` and ``tile`` (a :class:`Frame`,
    or a lighter record with the same fields).
    """
    ranked = _sort_in_time([frames[i] for i in idx])
    where = {id(frames[i]): i for i in idx}
    return [where[id(f)] for f in ranked]


def _frame_times(grid: list[list[Frame]], meta: dict[str, Any]) -> np.ndarray:
    """Seconds from the first frame, from whatever the headers say."""
    n = len(grid)
    first = [vol[0] for vol in grid]
    h = first[0].header
    tr_ms = None
    try:
        tr_ms = float(h.get("RepetitionTime")) if h.get("RepetitionTime") is not None else None
    except (TypeError, ValueError):
        tr_ms = None
    times = [min((f.time_s for f in vol if f.time_s is not None), default=None) for vol in grid]
    if all(t is not None for t in times) and len(set(np.round(times, 3))) == n:
        meta["frame_time_source"] = "acquisition time"
        t = np.asarray(times, dtype=float)
        return t - t[0]
    triggers = [vol[0].trigger_ms for vol in grid]
    if all(t is not None for t in triggers) and len(set(triggers)) == n:
        meta["frame_time_source"] = "trigger time"
        t = np.asarray(triggers, dtype=float) / 1000.0
        return t - t[0]
    if tr_ms and str(h.get("Modality", "")) == "MR":
        meta["frame_time_source"] = "repetition time"
        return np.arange(n) * tr_ms / 1000.0
    frame_time = first[0].frame_time_ms
    if frame_time:
        meta["frame_time_source"] = "frame time"
        return np.arange(n) * frame_time / 1000.0
    meta["frame_time_source"] = "index (no timing in the headers)"
    return np.arange(n, dtype=float)


def _group_features(frames: list[Frame]) -> dict[str, str]:
    f = frames[0]
    h = f.header
    feats = {
        "plane": _plane(f.iop),
        "size": f"{f.rows}x{f.columns}",
        "type": "_".join(str(v) for v in (h.get("ImageType") or ())[2:4]) or "",
        "echo": f"echo{f.split_key[3]:g}" if f.split_key[3] is not None else "",
    }
    if len(f.split_key) > 9:  # enhanced multi-frame: (base 5, geometry 4, type, TE, stack)
        ft = f.split_key[-3]
        feats["frametype"] = "_".join(ft[2:4]) if ft else ""
        feats["te"] = f"TE{f.split_key[-2]:g}" if f.split_key[-2] is not None else ""
        feats["stack"] = f"stack{f.split_key[-1]}" if f.split_key[-1] is not None else ""
    return feats


def plan_volumes(frames: list[Frame]) -> tuple[list[VolumePlan], list[tuple[str, str]]]:
    """Group frames into images.

    Returns
    -------
    plans : list of VolumePlan
    problems : list of (id, message)
        Groups of frames that do not form an image, and why.
    """
    # Files that share a SeriesInstanceUID but carry different Series Numbers are
    # different series, as for dcm2niix: e.g. re-encoded copies of one image
    # (dcm_qa_ts, dcm_qa_12bit) must not become the time points of one 4D image.
    by_series: dict[tuple[str, str], list[Frame]] = defaultdict(list)
    for f in frames:
        by_series[(f.series_uid, f.series_number)].append(f)

    plans: list[VolumePlan] = []
    problems: list[tuple[str, str]] = []
    for series_frames in by_series.values():
        groups: dict[tuple, list[Frame]] = defaultdict(list)
        for f in series_frames:
            groups[f.split_key].append(f)
        try:
            label = _series_label(series_frames[0])
        except Exception as exc:  # a header that cannot be read now: this series only
            f0 = series_frames[0]
            problems.append((str(f0.path), f"{f0.path.name}: cannot read the header "
                             f"({type(exc).__name__}: {exc}); the file is malformed"))
            continue
        group_list = list(groups.values())
        suffixes = [""] * len(group_list)
        if len(group_list) > 1:
            feats = [_group_features(g) for g in group_list]
            differing = [k for k in feats[0] if len({ft[k] for ft in feats}) > 1]
            for i, ft in enumerate(feats):
                suffixes[i] = "-".join(ft[k] for k in differing if ft[k])
            if len(set(suffixes)) < len(suffixes):
                suffixes = [f"{s}-{i + 1}".strip("-") for i, s in enumerate(suffixes)]
        for group, suffix in zip(group_list, suffixes, strict=True):
            gid = f"{label}[{suffix}]" if suffix else label
            try:
                plans.extend(_plan_group(group, gid))
            except ValueError as exc:
                problems.append((gid, str(exc)))
            except Exception as exc:  # a header that breaks an assumption: this group only
                problems.append((gid, f"unexpected {type(exc).__name__} while assembling the "
                                      f"image: {exc}; check the files' headers"))
    # make ids unique (two series may share number and description, or even a UID)
    count: dict[str, int] = defaultdict(int)
    for p in plans:
        count[p.id] += 1
    taken: set[str] = set()
    for p in plans:
        if count[p.id] > 1:
            base = f"{p.id}~{p.frames[0].series_uid[-8:]}"
            new_id, n = base, 1
            while new_id in taken:
                n += 1
                new_id = f"{base}-{n}"
            p.id = new_id
            p.meta["id"] = new_id
        taken.add(p.id)
    return plans, problems


def _plan_group(group: list[Frame], gid: str) -> list[VolumePlan]:
    f0 = group[0]
    if f0.iop is None or any(f.ipp is None for f in group):
        return _plan_without_geometry(group, gid)
    iop = f0.iop
    normal = np.cross(iop[:3], iop[3:])
    geometry = stack_geometry([f.ipp for f in group], iop,
                              sort_in_time=lambda idx: sort_indices_in_time(group, idx))
    if geometry.check is None:
        raise ValueError(geometry.problem)
    check = geometry.check
    n_t = geometry.n_timepoints
    grid = [[group[i] for i in row] for row in geometry.grid]
    positions = np.array([f.ipp for f in grid[0]], dtype=float)
    spacing = f0.pixel_spacing or (1.0, 1.0)
    meta = _meta(group, gid)
    if geometry.n_slices > 1:
        step = check.step
    else:
        step = normal * _single_slice_step(f0)
    affine = geo.dicom_affine(iop, positions[0], spacing, step)
    if check.tilt_deg:
        meta["gantry_tilt_deg"] = check.tilt_deg
    record_spacing(meta, f0)
    times = None
    axis = None
    if n_t > 1:
        times = _frame_times(grid, meta)
        axis = _diffusion_axis(grid, meta, times)
    elif f0.b_value is not None:
        meta["b_value"] = f0.b_value
    st = slice_times(grid[0])
    if st is not None:
        meta["slice_times_s"] = st
    return [VolumePlan(gid, grid, affine, times, meta, check, axis)]


def _diffusion_axis(
    grid: list[list[Frame]], meta: dict[str, Any], times: np.ndarray
) -> dict[str, Any] | None:
    """Image arguments for a diffusion fourth axis, when every volume has a b-value.

    The volumes' acquisition times are kept in ``meta['acquisition_times_s']``.
    """
    first = [vol[0] for vol in grid]
    b = [f.b_value for f in first]
    if any(v is None for v in b) or (len(set(b)) < 2 and not any(v for v in b)):
        return None
    meta["acquisition_times_s"] = [float(t) for t in times]
    meta["gradient_source"] = first[0].diffusion_source
    axis: dict[str, Any] = {"b_values": np.asarray(b, dtype=float)}
    if all(f.b_vector is not None for f in first):
        axis["b_vectors"] = np.asarray([f.b_vector for f in first], dtype=float)
    return axis


def _plan_without_geometry(group: list[Frame], gid: str) -> list[VolumePlan]:
    """2D images and cines without patient geometry: one image per file."""
    by_file: dict[str, list[Frame]] = defaultdict(list)
    for f in group:
        by_file[str(f.path)].append(f)
    plans = []
    for i, frames in enumerate(by_file.values()):
        frames = sorted(frames, key=lambda f: f.index or 0)
        f0 = frames[0]
        spacing = f0.pixel_spacing or (1.0, 1.0)
        iop = f0.iop or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        ipp = f0.ipp or (0.0, 0.0, 0.0)
        normal = np.cross(iop[:3], iop[3:])
        # one rule for every single-slice image: the slice step is nominal (2D images are
        # measured by area), SpacingBetweenSlices, else SliceThickness, else 1
        affine = geo.dicom_affine(iop, ipp, spacing, normal * _single_slice_step(f0))
        fid = gid if len(by_file) == 1 else f"{gid}-i{f0.instance or i + 1}"
        meta = _meta(frames, fid)
        meta["patient_geometry"] = False
        po = f0.header.get("PatientOrientation")
        if po:  # row and column directions of a projection image (PS3.3 C.7.6.1.1.1)
            meta["patient_orientation"] = [str(v) for v in
                                           (po.split("\\") if isinstance(po, str) else po)]
        record_spacing(meta, f0)
        if len(frames) > 1:
            grid = [[f] for f in frames]
            times = np.array(
                [f.time_s if f.time_s is not None else j for j, f in enumerate(frames)], dtype=float
            )
            meta["frame_time_source"] = "frame time" if f0.frame_time_ms else "index"
            plans.append(VolumePlan(fid, grid, affine, times - times[0], meta))
        else:
            plans.append(VolumePlan(fid, [[f0]], affine, None, meta))
    return plans


def _single_slice_step(f0: Frame) -> float:
    """The slice-axis step of a single-slice image: SpacingBetweenSlices, else SliceThickness,
    else 1 (nominal: a 2D image is measured by area, see ``Image.is_2d``)."""
    return f0.spacing_between or f0.slice_thickness or 1.0


def record_spacing(meta: dict[str, Any], f0: Frame) -> None:
    """Record where the image's pixel spacing came from (``spacing_source``, ``spacing_plane``
    and the values behind it), by :func:`._spacing.pixel_spacing` on the first frame."""
    info = pixel_spacing(f0.header)
    source, plane = info.source, info.plane
    if f0.pixel_spacing is None:
        source, plane = SOURCE_UNKNOWN, "unknown"
    elif source == SOURCE_UNKNOWN:  # per-frame functional groups only
        source, plane = "PixelSpacing", "patient"
    meta["spacing_source"] = source
    meta["spacing_plane"] = plane
    meta.update(info.extra)


_META_KEYWORDS = {
    "modality": "Modality",
    "manufacturer": "Manufacturer",
    "series_description": "SeriesDescription",
    "series_number": "SeriesNumber",
    "study_uid": "StudyInstanceUID",
    "frame_of_reference_uid": "FrameOfReferenceUID",
    "patient_position": "PatientPosition",
    "photometric": "PhotometricInterpretation",
    "body_part": "BodyPartExamined",
    "units": "Units",
}


def _meta(frames: list[Frame], gid: str) -> dict[str, Any]:
    h = frames[0].header
    meta: dict[str, Any] = {"id": gid, "source": "dicom", "series_uid": frames[0].series_uid}
    for key, kw in _META_KEYWORDS.items():
        if kw in h and h.get(kw) not in (None, ""):
            v = h.get(kw)
            meta[key] = v if isinstance(v, (int, float)) else str(v)
    for key, kw in (("repetition_time_s", "RepetitionTime"), ("echo_time_s", "EchoTime")):
        try:
            if h.get(kw) is not None:
                meta[key] = float(h.get(kw)) / 1000.0
        except (TypeError, ValueError):
            pass
    if meta.get("photometric") == "MONOCHROME1":
        meta["invert_display"] = True
    meta["files"] = sorted({str(f.path) for f in frames})
    return meta
