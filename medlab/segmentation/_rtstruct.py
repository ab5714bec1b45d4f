"""DICOM RTSTRUCT: list ROIs, read contours, rasterise them onto an image grid."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import geometry as geo
from .._validate import require_image
from ..errors import GeometryError
from ..image import Image
from ._common import (
    Outside,
    SegmentationError,
    check_outside,
    ensure_same_frame_of_reference,
    grid_extent_text,
    read_dicom_object,
)
from ._raster import fill_polygons

__all__ = ["read_contours", "read_rtstruct", "rtstruct_to_labels", "rtstruct_to_masks"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
RoiSelection = str | int | Sequence[str | int] | None
Mode = Literal["center", "fraction"]

#: contours whose planes are closer than this (in slices) form one plane
_SAME_PLANE = 0.05
#: a contour is planar in the grid when its points span at most this many slices
_PLANAR = 0.1


@dataclass
class _Roi:
    number: int
    name: str
    frame_of_reference_uid: str = ""
    colour: tuple[int, int, int] | None = None
    interpreted_type: str = ""
    algorithm: str = ""
    contours: list[tuple[str, np.ndarray, tuple[str, ...]]] = field(default_factory=list)


def _read(rtstruct: Any) -> tuple[Any, str]:
    return read_dicom_object(
        rtstruct, modality="RTSTRUCT", what="RTSTRUCT", sop_classes=(RTSTRUCT_SOP_CLASS,)
    )


def _parse(ds: Any, source: str) -> list[_Roi]:
    rois: dict[int, _Roi] = {}
    for item in ds.get("StructureSetROISequence", []):
        number = int(item.ROINumber)
        rois[number] = _Roi(
            number=number,
            name=str(item.get("ROIName", "")),
            frame_of_reference_uid=str(item.get("ReferencedFrameOfReferenceUID", "")),
            algorithm=str(item.get("ROIGenerationAlgorithm", "")),
        )
    for obs in ds.get("RTROIObservationsSequence", []):
        number = int(obs.get("ReferencedROINumber", -1))
        if number in rois:
            rois[number].interpreted_type = str(obs.get("RTROIInterpretedType", "") or "")
    for item in ds.get("ROIContourSequence", []):
        number = int(item.ReferencedROINumber)
        roi = rois.setdefault(number, _Roi(number=number, name=f"ROI {number}"))
        colour = item.get("ROIDisplayColor")
        if colour is not None and len(colour) == 3:
            roi.colour = tuple(int(c) for c in colour)  # type: ignore[assignment]
        for c in item.get("ContourSequence", []):
            data = np.asarray(c.get("ContourData", []), dtype=float)
            if data.size == 0 or data.size % 3:
                raise GeometryError(
                    f"{source}: ROI {roi.name!r} has a contour with {data.size} ContourData "
                    "values, not a whole number of (x, y, z) points"
                )
            refs = tuple(str(r.ReferencedSOPInstanceUID) for r in c.get("ContourImageSequence", []))
            kind = str(c.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            roi.contours.append((kind, data.reshape(-1, 3), refs))
    frames = [str(f.get("FrameOfReferenceUID", ""))
              for f in ds.get("ReferencedFrameOfReferenceSequence", [])]
    for roi in rois.values():  # a missing per-ROI frame of reference: the structure set's own
        if not roi.frame_of_reference_uid and len(set(frames)) == 1:
            roi.frame_of_reference_uid = frames[0]
    return list(rois.values())


def _plane_key(points: np.ndarray) -> tuple[float, ...]:
    """Normal (Newell's method, sign made canonical) and offset of a contour's plane."""
    if len(points) < 3:
        return (0.0, 0.0, 0.0, *np.round(points.mean(axis=0), 2).tolist())
    a, b = points, np.roll(points, -1, axis=0)
    n = np.array([np.sum((a[:, 1] - b[:, 1]) * (a[:, 2] + b[:, 2])),
                  np.sum((a[:, 2] - b[:, 2]) * (a[:, 0] + b[:, 0])),
                  np.sum((a[:, 0] - b[:, 0]) * (a[:, 1] + b[:, 1]))])
    norm = np.linalg.norm(n)
    if norm == 0:
        return (0.0, 0.0, 0.0, *np.round(points.mean(axis=0), 2).tolist())
    n /= norm
    n *= np.sign(n[np.argmax(np.abs(n))])
    return (*np.round(n, 3).tolist(), round(float(n @ points.mean(axis=0)), 2))


def _referenced_series(ds: Any) -> dict[str, list[str]]:
    """Frame of reference UID -> referenced series UIDs."""
    out: dict[str, list[str]] = {}
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        uid = str(fr.get("FrameOfReferenceUID", ""))
        series = out.setdefault(uid, [])
        for study in fr.get("RTReferencedStudySequence", []):
            for s in study.get("RTReferencedSeriesSequence", []):
                series.append(str(s.SeriesInstanceUID))
    return out


def read_rtstruct(rtstruct: str | os.PathLike | Any) -> pd.DataFrame:
    """List the ROIs of a DICOM RTSTRUCT.

    Parameters
    ----------
    rtstruct : path, folder or pydicom.Dataset
        The RTSTRUCT file, a folder holding exactly one, or a dataset.

    Returns
    -------
    pandas.DataFrame
        One row per ROI: ``roi_number``, ``name``, ``n_contours``,
        ``n_planes`` (distinct contour planes), ``contour_types``,
        ``interpreted_type`` (GTV, ORGAN, ...), ``generation_algorithm``,
        ``frame_of_reference_uid``, ``referenced_series_uid`` (the series
        the structure set was drawn on; several are joined by ``\\``) and
        ``colour`` (an ``(r, g, b)`` tuple or None). ``attrs`` holds
        ``source``, ``structure_set_label`` and ``sop_instance_uid``.
    """
    ds, source = _read(rtstruct)
    series = _referenced_series(ds)
    rows = []
    for roi in _parse(ds, source):
        planes = {_plane_key(p) for _, p, _ in roi.contours}
        rows.append(
            {
                "roi_number": roi.number,
                "name": roi.name,
                "n_contours": len(roi.contours),
                "n_planes": len(planes),
                "contour_types": ",".join(sorted({k for k, _, _ in roi.contours})),
                "interpreted_type": roi.interpreted_type,
                "generation_algorithm": roi.algorithm,
                "frame_of_reference_uid": roi.frame_of_reference_uid,
                "referenced_series_uid": "\\".join(series.get(roi.frame_of_reference_uid, [])),
                "colour": roi.colour,
            }
        )
    table = pd.DataFrame(rows, columns=[
        "roi_number", "name", "n_contours", "n_planes", "contour_types", "interpreted_type",
        "generation_algorithm", "frame_of_reference_uid", "referenced_series_uid", "colour",
    ])
    table.attrs.update(
        source=source,
        structure_set_label=str(ds.get("StructureSetLabel", "")),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
    )
    return table


def _select(rois: list[_Roi], selection: RoiSelection, source: str) -> list[_Roi]:
    if selection is None:
        return rois
    wanted = [selection] if isinstance(selection, str | int) else list(selection)
    out = []
    for w in wanted:
        if isinstance(w, int | np.integer):
            hits = [r for r in rois if r.number == int(w)]
        else:
            hits = [r for r in rois if r.name == w] or [
                r for r in rois if r.name.lower() == str(w).lower()
            ]
        if not hits:
            known = ", ".join(f"{r.number}: {r.name!r}" for r in rois)
            raise SegmentationError(
                f"{source} has no ROI {w!r}; its ROIs are {known or 'none'}. "
                "Select ROIs by name or ROI number"
            )
        out.extend(h for h in hits if h not in out)
    return out


def read_contours(
    rtstruct: str | os.PathLike | Any, *, rois: RoiSelection = None
) -> pd.DataFrame:
    """The contours of an RTSTRUCT, one row each, points in LPS mm.

    Parameters
    ----------
    rtstruct : path, folder or pydicom.Dataset
    rois : str, int or sequence of them, optional
        ROI names or numbers to keep (default all).

    Returns
    -------
    pandas.DataFrame
        Columns ``roi_number``, ``roi_name``, ``contour`` (index within the
        ROI), ``geometric_type``, ``n_points``, ``points`` (an (N, 3) array)
        and ``referenced_sop_instance_uids`` (tuple).
    """
    ds, source = _read(rtstruct)
    rows = []
    for roi in _select(_parse(ds, source), rois, source):
        for n, (kind, pts, refs) in enumerate(roi.contours):
            rows.append(
                {
                    "roi_number": roi.number,
                    "roi_name": roi.name,
                    "contour": n,
                    "geometric_type": kind,
                    "n_points": len(pts),
                    "points": pts,
                    "referenced_sop_instance_uids": refs,
                }
            )
    return pd.DataFrame(rows, columns=[
        "roi_number", "roi_name", "contour", "geometric_type", "n_points", "points",
        "referenced_sop_instance_uids",
    ])


def _rasterise_roi(
    roi: _Roi,
    reference: Image,
    *,
    mode: Mode,
    supersampling: int,
    slice_tolerance: float,
    outside: Outside,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rasterise one ROI onto the reference grid; returns the volume and notes."""
    shape = reference.spatial_shape
    inv = np.linalg.inv(reference.affine)
    skipped = [n for n, (kind, _, _) in enumerate(roi.contours) if kind != "CLOSED_PLANAR"]
    contours = []  # (contour number, mean slice index, (row, col) polygon)
    for n, (kind, pts, _) in enumerate(roi.contours):
        if kind != "CLOSED_PLANAR":
            continue
        idx = geo.apply_affine(inv, pts)
        span = float(np.ptp(idx[:, 0]))
        if span > _PLANAR:
            raise GeometryError(
                f"contour {n} of ROI {roi.name!r} is not parallel to the reference slices: its "
                f"points span slice indices {idx[:, 0].min():.2f} to {idx[:, 0].max():.2f}. "
                "Rasterise on a grid whose slices are parallel to the contours (e.g. the series "
                "the RTSTRUCT references) and resample the mask with nearest neighbour"
            )
        contours.append((n, float(idx[:, 0].mean()), idx[:, 1:]))
    # group contours into planes (contours on one image share one position)
    contours.sort(key=lambda c: c[1])
    planes: list[list[tuple[int, float, np.ndarray]]] = []
    for c in contours:
        if planes and c[1] - planes[-1][0][1] <= _SAME_PLANE:
            planes[-1].append(c)
        else:
            planes.append([c])
    problems, by_slice = [], {}
    limits = np.asarray(shape, dtype=float) - 0.5
    for plane in planes:
        k = float(np.mean([c[1] for c in plane]))
        target = int(np.floor(k + 0.5))  # ties go to the higher slice
        if not (0 <= target < shape[0]) or abs(k - target) > slice_tolerance + 1e-9:
            z = [float(np.mean(roi.contours[c[0]][1][:, 2])) for c in plane]
            problems.append(
                f"ROI {roi.name!r} contour(s) {[c[0] for c in plane]} on the plane at slice "
                f"index {k:.2f} (LPS z {min(z):.2f} mm) lie(s) off the reference slices "
                f"0..{shape[0] - 1} (tolerance {slice_tolerance} slice)"
            )
            continue
        for n, _, poly in plane:
            lo, hi = poly.min(axis=0), poly.max(axis=0)
            if np.any(lo < -0.5 - 1e-6) or np.any(hi > limits[1:] + 1e-6):
                problems.append(
                    f"ROI {roi.name!r} contour {n} on slice {target} extends outside the rows/"
                    f"columns: rows {lo[0]:.1f}..{hi[0]:.1f}, columns {lo[1]:.1f}..{hi[1]:.1f} "
                    f"(grid 0..{shape[1] - 1}, 0..{shape[2] - 1})"
                )
        by_slice.setdefault(target, []).append((abs(k - target), plane))
    if problems and outside == "error":
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise GeometryError(
            f"{len(problems)} contour plane(s) fall outside the {grid_extent_text(reference)}: "
            f"{shown}. Rasterise on an image covering the contours (e.g. the series the RTSTRUCT "
            "references), or pass outside='clip' to drop what lies outside"
        )
    supersampling = 1 if mode == "center" else supersampling
    out = np.zeros(shape, dtype=np.bool_ if mode == "center" else np.float32)
    dropped = 0
    for target, candidates in by_slice.items():
        candidates.sort(key=lambda c: c[0])
        dropped += len(candidates) - 1
        plane = candidates[0][1]
        out[target] = fill_polygons([c[2] for c in plane], shape[1:], supersampling=supersampling)
    if dropped:
        warnings.warn(
            f"ROI {roi.name!r}: {dropped} contour plane(s) fell on a reference slice that already "
            "had a closer plane and were not used (the contours are denser than the slices)",
            stacklevel=3,
        )
    if skipped:
        warnings.warn(
            f"ROI {roi.name!r}: {len(skipped)} contour(s) are not CLOSED_PLANAR (points or open "
            "lines enclose no area) and were skipped",
            stacklevel=3,
        )
    notes = {
        "n_contours": len(roi.contours),
        "n_planes": len(planes),
        "n_slices": len(by_slice),
        "outside": problems,
        "skipped_contours": skipped,
    }
    return out, notes


def _check_mode(mode: str, supersampling: int, slice_tolerance: float) -> None:
    if mode not in ("center", "fraction"):
        raise ValueError(f"mode must be 'center' or 'fraction', got {mode!r}")
    if int(supersampling) != supersampling or supersampling < 1:
        raise ValueError(f"supersampling must be a positive integer, got {supersampling!r}")
    if not 0 <= slice_tolerance <= 0.5:
        raise ValueError(
            f"slice_tolerance is a fraction of the slice spacing in [0, 0.5], got {slice_tolerance!r}"
        )


def rtstruct_to_masks(
    rtstruct: str | os.PathLike | Any,
    reference: Image,
    *,
    rois: RoiSelection = None,
    mode: Mode = "center",
    supersampling: int = 4,
    slice_tolerance: float = 0.5,
    outside: Outside = "error",
    check_frame_of_reference: bool = True,
) -> dict[str, Image]:
    """Rasterise RTSTRUCT contours onto a reference grid, one mask per ROI.

    Each closed planar contour is mapped into the reference's index space
    (any orientation, oblique and sheared grids included) and drawn on the
    slice whose centre is nearest along the slice normal. Contours on one
    plane are combined with the even-odd rule: a contour inside another
    cuts a hole (RTSTRUCT has no hole flag). Slices between contour planes
    stay empty (no interpolation).

    Parameters
    ----------
    rtstruct : path, folder or pydicom.Dataset
        The RTSTRUCT file (or a folder holding exactly one).
    reference : Image
        The grid to rasterise on (its data are not used). Its contour
        planes must be parallel to the reference's slices.
    rois : str, int or sequence of them, optional
        ROI names or numbers (default: all ROIs).
    mode : {'center', 'fraction'}
        ``'center'``: a voxel is in the ROI when its centre is (bool mask).
        ``'fraction'``: the share of the voxel's in-plane area inside the
        contours (float32 in [0, 1]), estimated from
        ``supersampling x supersampling`` sub-pixel centres.
    supersampling : int, default 4
        Sub-pixels per pixel side in ``'fraction'`` mode.
    slice_tolerance : float, default 0.5
        Largest distance, in slices, between a contour plane and the slice
        it is drawn on.
    outside : {'error', 'clip'}
        What to do with contours off the grid (beyond the first or last
        slice, or extending outside the rows/columns): raise an error
        listing them, or drop/clip them (``meta['outside']`` lists them).
    check_frame_of_reference : bool, default True
        Require the ROI's FrameOfReferenceUID to match the reference's
        (when both are known).

    Returns
    -------
    dict of str to Image
        ROI name -> mask on the reference grid (a duplicated name gets
        ``'#<roi number>'`` appended). ``meta`` holds ``roi_name``,
        ``roi_number``, ``colour``, ``mode``, ``source``, counts of
        contours/planes/slices used and ``outside``.

    Raises
    ------
    medlab.errors.GeometryMismatchError
        The frames of reference differ.
    medlab.errors.GeometryError
        Contours off the grid (with ``outside='error'``), or a contour not
        parallel to the reference slices.
    SegmentationError
        An unknown ROI was asked for.
    """
    _check_mode(mode, supersampling, slice_tolerance)
    check_outside(outside)
    require_image(reference, "reference (the image grid)",
                  hint="load the image series first, e.g. ml.load(series_folder)")
    if reference.ndim != 3:
        raise GeometryError(
            f"the reference must be a 3D image, got shape {reference.shape}; pass one frame "
            "(image.frame(0)) of a time series"
        )
    ds, source = _read(rtstruct)
    selected = _select(_parse(ds, source), rois, source)
    if check_frame_of_reference:
        ensure_same_frame_of_reference(
            {r.frame_of_reference_uid for r in selected}, reference, source=f"the RTSTRUCT {source}"
        )
    series = _referenced_series(ds)
    names = [r.name for r in selected]
    out: dict[str, Image] = {}
    for roi in selected:
        arr, notes = _rasterise_roi(
            roi, reference, mode=mode, supersampling=supersampling,
            slice_tolerance=slice_tolerance, outside=outside,
        )
        key = roi.name if names.count(roi.name) == 1 else f"{roi.name}#{roi.number}"
        meta = {
            "roi_name": roi.name,
            "roi_number": roi.number,
            "colour": roi.colour,
            "interpreted_type": roi.interpreted_type,
            "mode": mode,
            "source": source,
            "frame_of_reference_uid": roi.frame_of_reference_uid
            or reference.meta.get("frame_of_reference_uid"),
            "rtstruct_series_uids": tuple(series.get(roi.frame_of_reference_uid, [])),
            "reference_series_uid": reference.meta.get("series_uid"),
            **notes,
        }
        if roi.algorithm.upper() in ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"):
            meta["algorithm_type"] = roi.algorithm.upper()  # ROI Generation Algorithm
        if mode == "fraction":
            meta["supersampling"] = int(supersampling)
        out[key] = Image(arr, reference.affine, meta=meta)
    return out


def rtstruct_to_labels(
    rtstruct: str | os.PathLike | Any,
    reference: Image,
    *,
    rois: RoiSelection = None,
    overlap: Literal["error", "last"] = "error",
    slice_tolerance: float = 0.5,
    outside: Outside = "error",
    check_frame_of_reference: bool = True,
) -> Image:
    """Rasterise RTSTRUCT ROIs into one label map (voxel centre inclusion).

    The label of a voxel is the ROI number. For partial-volume fractions,
    or ROIs that overlap (BODY around a GTV), use :func:`rtstruct_to_masks`.

    Parameters
    ----------
    rtstruct, reference, rois, slice_tolerance, outside, check_frame_of_reference
        As in :func:`rtstruct_to_masks`.
    overlap : {'error', 'last'}
        ROIs sharing voxels raise :class:`SegmentationError` naming them,
        or, with ``'last'``, the ROI later in ``rois`` order wins.

    Returns
    -------
    Image
        Unsigned integer label map on the reference grid (0 = background);
        ``meta['labels']`` maps ROI number to name.
    """
    if overlap not in ("error", "last"):
        raise ValueError(f"overlap must be 'error' or 'last', got {overlap!r}")
    masks = rtstruct_to_masks(
        rtstruct, reference, rois=rois, mode="center", slice_tolerance=slice_tolerance,
        outside=outside, check_frame_of_reference=check_frame_of_reference,
    )
    items = list(masks.values())
    top = max((m.meta["roi_number"] for m in items), default=0)
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    labels = np.zeros(reference.spatial_shape, dtype=dtype)
    if overlap == "error":
        clashes = []
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                n = int(np.count_nonzero(items[a].array & items[b].array))
                if n:
                    clashes.append(
                        f"{items[a].meta['roi_name']!r} ({items[a].meta['roi_number']}) and "
                        f"{items[b].meta['roi_name']!r} ({items[b].meta['roi_number']}) share {n} voxels"
                    )
        if clashes:
            raise SegmentationError(
                "a label map holds one label per voxel, but ROIs overlap: " + "; ".join(clashes)
                + ". Use rtstruct_to_masks() for overlapping ROIs, select disjoint rois=..., or "
                "pass overlap='last' to let later ROIs overwrite earlier ones"
            )
    for m in items:
        labels[m.array] = m.meta["roi_number"]
    meta = {
        "labels": {m.meta["roi_number"]: m.meta["roi_name"] for m in items},
        "colours": {m.meta["roi_number"]: m.meta["colour"] for m in items},
        "source": items[0].meta["source"] if items else None,
        "frame_of_reference_uid": reference.meta.get("frame_of_reference_uid"),
        "reference_series_uid": reference.meta.get("series_uid"),
        "outside": [p for m in items for p in m.meta["outside"]],
    }
    algorithms = {m.meta.get("algorithm_type") for m in items}
    if len(algorithms) == 1 and None not in algorithms:
        meta["algorithm_type"] = algorithms.pop()
    return Image(labels, reference.affine, meta=meta)
