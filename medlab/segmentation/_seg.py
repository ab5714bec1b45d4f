"""DICOM SEG: read binary, fractional and label-map segmentations onto image grids."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import geometry as geo
from .._optional import import_optional
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
    slice_normal,
)

__all__ = ["SegmentationResult", "read_seg"]

SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
SegmentSelection = int | str | Sequence[int | str] | None


def _fg(ds: Any, per: Any, seq: str, keyword: str) -> Any:
    """A functional-group attribute: per-frame first, then shared."""
    for group in (per, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if group is None or seq not in group:
            continue
        items = group[seq].value
        if items and keyword in items[0]:
            return items[0][keyword].value
    return None


def _colour(item: Any) -> tuple[int, int, int] | None:
    lab = item.get("RecommendedDisplayCIELabValue")
    if lab is None:
        return None
    hd = import_optional("highdicom", feature="reading DICOM SEG", extra="segmentation")
    rgb = hd.color.CIELabColor.from_dicom_value(list(lab)).to_rgb(clip=True)
    return tuple(int(v) for v in rgb)  # type: ignore[return-value]


def _code(item: Any, seq: str) -> str:
    codes = item.get(seq) or []
    return str(codes[0].get("CodeMeaning", "")) if codes else ""


class SegmentationResult:
    """A DICOM SEG read by :func:`read_seg`, ready to map onto image grids.

    Attributes
    ----------
    segments : pandas.DataFrame
        One row per segment: ``number``, ``label``, ``category``, ``type``,
        ``algorithm_type``, ``colour`` ((r, g, b) from the recommended
        CIELab value, or None), ``tracking_id``, ``n_frames``.
    frames : pandas.DataFrame
        One row per frame: ``frame`` (1-based), ``segment`` (None for a
        LABELMAP SEG), ``x``, ``y``, ``z`` (Image Position (Patient), mm)
        and ``referenced_sop_instance_uid`` (the source image, if given).
    segmentation_type : str
        ``'BINARY'``, ``'FRACTIONAL'`` or ``'LABELMAP'``.
    frame_of_reference_uid, referenced_series_uid, source : str
    reference : Image or None
        Default grid of :meth:`masks` and :meth:`labels`.
    dataset : highdicom.seg.Segmentation
        The parsed object, for everything else.
    """

    def __init__(self, dataset: Any, source: str, reference: Image | None = None) -> None:
        self.dataset = dataset
        self.source = source
        self.reference = reference
        self.segmentation_type = str(dataset.SegmentationType).upper()
        self.frame_of_reference_uid = str(dataset.get("FrameOfReferenceUID", ""))
        refs = dataset.get("ReferencedSeriesSequence") or []
        self.referenced_series_uid = str(refs[0].SeriesInstanceUID) if refs else ""
        self._max_fraction = float(dataset.get("MaximumFractionalValue", 1) or 1)
        rows = []
        per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
        for n in range(int(dataset.get("NumberOfFrames", 1))):
            per = per_frame[n] if n < len(per_frame) else None
            pos = _fg(dataset, per, "PlanePositionSequence", "ImagePositionPatient")
            seg_no = _fg(dataset, per, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
            src = None
            if per is not None and "DerivationImageSequence" in per:
                for der in per.DerivationImageSequence:
                    for s in der.get("SourceImageSequence", []):
                        src = src or str(s.ReferencedSOPInstanceUID)
            if pos is None:
                raise GeometryError(
                    f"{source}: frame {n + 1} has no PlanePositionSequence, so it cannot be "
                    "placed in patient coordinates (tiled whole-slide SEGs are not supported)"
                )
            rows.append({
                "frame": n + 1,
                "segment": None if self.segmentation_type == "LABELMAP" else int(seg_no),
                "x": float(pos[0]), "y": float(pos[1]), "z": float(pos[2]),
                "referenced_sop_instance_uid": src,
            })
        self.frames = pd.DataFrame(rows, columns=[
            "frame", "segment", "x", "y", "z", "referenced_sop_instance_uid"])
        seg_rows = []
        for item in dataset.SegmentSequence:
            number = int(item.SegmentNumber)
            n_frames = (len(self.frames) if self.segmentation_type == "LABELMAP"
                        else int((self.frames["segment"] == number).sum()))
            seg_rows.append({
                "number": number,
                "label": str(item.get("SegmentLabel", "")),
                "category": _code(item, "SegmentedPropertyCategoryCodeSequence"),
                "type": _code(item, "SegmentedPropertyTypeCodeSequence"),
                "algorithm_type": str(item.get("SegmentAlgorithmType", "")),
                "colour": _colour(item),
                "tracking_id": str(item.get("TrackingID", "")),
                "n_frames": n_frames,
            })
        self.segments = pd.DataFrame(seg_rows, columns=[
            "number", "label", "category", "type", "algorithm_type", "colour", "tracking_id",
            "n_frames"])

    def __repr__(self) -> str:
        labels = ", ".join(f"{r.number}: {r.label!r}" for r in self.segments.itertuples())
        return (
            f"SegmentationResult({self.segmentation_type}, {len(self.frames)} frames, "
            f"segments {{{labels}}}, source={self.source!r})"
        )

    # ----------------------------------------------------------- selection
    def _select(self, segments: SegmentSelection) -> list[int]:
        numbers = self.segments["number"].tolist()
        if segments is None:
            return numbers
        wanted = [segments] if isinstance(segments, int | str) else list(segments)
        out = []
        for w in wanted:
            if isinstance(w, int | np.integer):
                hit = [n for n in numbers if n == int(w)]
            else:
                hit = self.segments.loc[self.segments["label"] == w, "number"].tolist()
            if not hit:
                known = ", ".join(f"{r.number}: {r.label!r}" for r in self.segments.itertuples())
                raise SegmentationError(
                    f"{self.source} has no segment {w!r}; its segments are {known}. Select "
                    "segments by number or label"
                )
            out.extend(h for h in hit if h not in out)
        return out

    # ------------------------------------------------------------ geometry
    def _frame_geometry(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(4x4 affine of frame ``n`` (0-based) as a 1-slice grid, unit normal)."""
        ds = self.dataset
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        per = per_frame[n] if n < len(per_frame) else None
        iop = _fg(ds, per, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = _fg(ds, per, "PixelMeasuresSequence", "PixelSpacing")
        if iop is None or spacing is None:
            raise GeometryError(
                f"{self.source}: frame {n + 1} lacks ImageOrientationPatient or PixelSpacing in "
                "its functional groups, so it cannot be placed in patient coordinates"
            )
        thickness = (_fg(ds, per, "PixelMeasuresSequence", "SpacingBetweenSlices")
                     or _fg(ds, per, "PixelMeasuresSequence", "SliceThickness") or 1.0)
        row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
        normal = np.cross(row_dir, col_dir)
        pos = self.frames.loc[n, ["x", "y", "z"]].to_numpy(float)
        affine = geo.dicom_affine(iop, pos, spacing, normal * abs(float(thickness)))
        return affine, normal

    def own_grid(self) -> Image:
        """An empty image on the SEG's own volume grid (from highdicom).

        Raises
        ------
        SegmentationError
            When the frames do not form a regularly spaced volume.
        """
        try:
            geometry = self.dataset.get_volume_geometry()
        except Exception as exc:
            geometry, why = None, f" ({exc})"
        else:
            why = ""
        if geometry is None:
            raise SegmentationError(
                f"the frames of {self.source} do not form a regularly spaced volume{why}; pass "
                "the image it was drawn on as reference= to map the frames onto that grid"
            )
        shape = tuple(int(s) for s in geometry.spatial_shape)
        return Image(np.zeros(shape, np.uint8), np.asarray(geometry.affine, dtype=float),
                     meta={"frame_of_reference_uid": self.frame_of_reference_uid})

    def _pixels(self, n: int) -> np.ndarray:
        return np.asarray(self.dataset.get_stored_frame(n + 1))

    def _iter_frames(self, numbers: list[int]) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(frame index, segment, frame affine, pixels) one at a time (bounded memory)."""
        for n in range(len(self.frames)):
            if self.segmentation_type != "LABELMAP" and int(self.frames.loc[n, "segment"]) not in numbers:
                continue
            affine, _ = self._frame_geometry(n)
            raw = self._pixels(n)
            if self.segmentation_type == "LABELMAP":
                for s in numbers:
                    yield n, s, affine, raw == s
            elif self.segmentation_type == "FRACTIONAL":
                px = (raw.astype(np.float32) / np.float32(self._max_fraction)).clip(0, 1)
                yield n, int(self.frames.loc[n, "segment"]), affine, px
            else:
                yield n, int(self.frames.loc[n, "segment"]), affine, raw.astype(bool)

    # ------------------------------------------------------------- mapping
    def masks(
        self,
        reference: Image | None = None,
        *,
        segments: SegmentSelection = None,
        outside: Outside = "error",
        check_frame_of_reference: bool = True,
    ) -> dict[int, Image]:
        """One mask per segment on a reference grid.

        Each frame is placed through its Image Position/Orientation. When
        the frames are parallel to the reference slices, a frame goes to
        the slice nearest its plane (within half a slice) and is mapped
        in-plane with nearest neighbour (a plain copy when the pixel grids
        coincide); otherwise the SEG's own volume is built and resampled
        with nearest neighbour.

        Parameters
        ----------
        reference : Image, optional
            The grid to map onto; default the ``reference`` given to
            :func:`read_seg`, else the SEG's own volume grid.
        segments : int, str or sequence of them, optional
            Segment numbers or labels (default all).
        outside : {'error', 'clip'}
            What to do when segmented pixels fall off the reference grid:
            raise an error listing the frames, or drop them.
        check_frame_of_reference : bool, default True
            Require the SEG's FrameOfReferenceUID to match the reference's.

        Returns
        -------
        dict of int to Image
            Segment number -> bool mask (BINARY, LABELMAP) or float32
            fractions in [0, 1] (FRACTIONAL). ``meta`` holds the segment's
            ``label``, ``category``, ``type``, ``colour`` and ``source``.
        """
        check_outside(outside)
        numbers = self._select(segments)
        grid = reference if reference is not None else self.reference
        if grid is None:
            grid = self.own_grid()
        else:
            require_image(grid, "reference")
            if check_frame_of_reference:
                ensure_same_frame_of_reference(
                    {self.frame_of_reference_uid}, grid, source=f"the SEG {self.source}")
        if grid.ndim != 3:
            raise GeometryError(
                f"the reference must be a 3D image, got shape {grid.shape}; pass one frame")
        dtype = np.float32 if self.segmentation_type == "FRACTIONAL" else np.bool_
        normal = slice_normal(grid.affine)
        parallel = all(abs(self._frame_geometry(n)[1] @ normal) > 1 - 1e-3
                       for n in range(len(self.frames)))
        target = grid if parallel else self.own_grid()
        arrays = {n: np.zeros(target.spatial_shape, dtype=dtype) for n in numbers}
        problems = []
        for n, s, affine, px in self._iter_frames(numbers):
            if not np.any(px):
                continue
            problem = _outside_problem(n, s, affine, px, grid)
            if problem:
                problems.append(problem)
                if outside == "error":
                    continue
            _place(px, affine, target, arrays[s])
        if problems and outside == "error":
            shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise GeometryError(
                f"segmented pixels of {len(problems)} frame(s) of {self.source} fall outside the "
                f"{grid_extent_text(grid)}: {shown}. Use the image the SEG references as "
                "reference, or pass outside='clip' to drop what lies outside")
        if not parallel:
            for n, arr in arrays.items():
                res = target.with_array(arr).resample_to(grid, interpolation="nearest")
                arrays[n] = res.array.astype(dtype, copy=False)
        out = {}
        for n in numbers:
            row = self.segments.loc[self.segments["number"] == n].iloc[0]
            meta = {
                "segment_number": n, "label": row["label"], "category": row["category"],
                "type": row["type"], "colour": row["colour"], "source": self.source,
                "segmentation_type": self.segmentation_type,
                "frame_of_reference_uid": self.frame_of_reference_uid,
                "referenced_series_uid": self.referenced_series_uid,
                "reference_series_uid": grid.meta.get("series_uid"),
                "outside": problems,
            }
            if row["algorithm_type"] in ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"):
                meta["algorithm_type"] = row["algorithm_type"]
            out[n] = Image(arrays[n], grid.affine, meta=meta)
        return out

    def labels(
        self,
        reference: Image | None = None,
        *,
        segments: SegmentSelection = None,
        threshold: float = 0.5,
        outside: Outside = "error",
        check_frame_of_reference: bool = True,
    ) -> Image:
        """A label map (value = segment number) on a reference grid.

        Parameters
        ----------
        reference, segments, outside, check_frame_of_reference
            As in :meth:`masks`.
        threshold : float, default 0.5
            FRACTIONAL segments count where their fraction is >= this.

        Returns
        -------
        Image
            Unsigned integer labels, 0 = background; ``meta['labels']``
            maps segment number to label.

        Raises
        ------
        SegmentationError
            If segments overlap (the message names each pair and how many
            voxels they share); use :meth:`masks` for overlapping segments.
        """
        masks = self.masks(reference, segments=segments, outside=outside,
                           check_frame_of_reference=check_frame_of_reference)
        binary = {n: (m.array >= threshold) if m.array.dtype != np.bool_ else m.array
                  for n, m in masks.items()}
        keys = list(binary)
        clashes = []
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                shared = int(np.count_nonzero(binary[a] & binary[b]))
                if shared:
                    clashes.append(f"{a} {masks[a].meta['label']!r} and {b} "
                                   f"{masks[b].meta['label']!r} share {shared} voxels")
        if clashes:
            raise SegmentationError(
                f"the segments of {self.source} overlap, so they cannot form one label map: "
                + "; ".join(clashes) + ". Use .masks() to get one mask per segment, or select "
                "non-overlapping segments=...")
        top = max(keys, default=0)
        dtype = np.uint8 if top < 256 else np.uint16
        first = next(iter(masks.values()))  # a SEG has at least one segment
        out = np.zeros(first.spatial_shape, dtype=dtype)
        for n, b in binary.items():
            out[b] = n
        meta = {
            "labels": {n: masks[n].meta["label"] for n in keys},
            "colours": {n: masks[n].meta["colour"] for n in keys},
            "source": self.source,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "referenced_series_uid": self.referenced_series_uid,
        }
        algorithms = {masks[n].meta.get("algorithm_type") for n in keys}
        if len(algorithms) == 1 and None not in algorithms:
            meta["algorithm_type"] = algorithms.pop()
        return Image(out, first.affine, meta=meta)


def _outside_problem(n: int, s: int, affine: np.ndarray, px: np.ndarray, grid: Image) -> str:
    """Describe frame ``n`` if its segmented pixels reach outside ``grid``, else ''."""
    rows, cols = np.nonzero(px)
    corners = np.array([[0, r, c] for r in (rows.min(), rows.max())
                        for c in (cols.min(), cols.max())], dtype=float)
    idx = geo.apply_affine(np.linalg.inv(grid.affine) @ affine, corners)
    hi = np.asarray(grid.spatial_shape, dtype=float) - 0.5
    if np.all(idx >= -0.5 - 1e-3) and np.all(idx <= hi + 1e-3):
        return ""
    return (f"segment {s} in frame {n + 1} (slice index {idx[:, 0].mean():.2f}, rows "
            f"{idx[:, 1].min():.1f}..{idx[:, 1].max():.1f}, columns "
            f"{idx[:, 2].min():.1f}..{idx[:, 2].max():.1f})")


def _place(px: np.ndarray, affine: np.ndarray, grid: Image, out: np.ndarray) -> None:
    """Put one frame, parallel to the grid's slices, on its nearest slice of ``out`` (max)."""
    ref_affine = grid.affine
    k = float(geo.apply_affine(np.linalg.inv(ref_affine), affine[:3, 3])[0])
    target = int(np.floor(k + 0.5))
    if not 0 <= target < grid.spatial_shape[0] or abs(k - target) > 0.5 + 1e-3:
        return  # off the grid (reported by _outside_problem)
    slab_affine = ref_affine.copy()
    slab_affine[:3, 3] = geo.apply_affine(ref_affine, [target, 0, 0])
    mapping = np.linalg.inv(slab_affine) @ affine  # frame (0, r, c) -> slab (k, j, i)
    offset = mapping[1:3, 3]
    rows, cols = grid.spatial_shape[1:]
    if np.allclose(mapping[1:3, 1:3], np.eye(2), atol=1e-4) and np.allclose(offset, np.round(offset), atol=1e-3):
        # same pixel grid up to a whole-pixel shift: copy the overlapping block
        dj, di = (int(v) for v in np.round(offset))
        j0, i0 = max(dj, 0), max(di, 0)
        j1, i1 = min(dj + px.shape[0], rows), min(di + px.shape[1], cols)
        if j1 > j0 and i1 > i0:
            block = px[j0 - dj : j1 - dj, i0 - di : i1 - di]
            np.maximum(out[target, j0:j1, i0:i1], block, out=out[target, j0:j1, i0:i1])
        return
    src_affine = affine.copy()
    src_affine[:3, 0] = ref_affine[:3, 0]  # one reference slice thick
    res = Image(px[np.newaxis], src_affine).resample_to(
        ((1, rows, cols), slab_affine), interpolation="nearest")
    np.maximum(out[target], res.array[0], out=out[target])


def read_seg(path: str | os.PathLike | Any, reference: Image | None = None) -> SegmentationResult:
    """Read a DICOM Segmentation (SEG) object with highdicom.

    Parameters
    ----------
    path : path, folder or pydicom.Dataset
        The SEG file (or a folder holding exactly one SEG), or a dataset.
    reference : Image, optional
        The image grid the segments should be mapped onto by default
        (typically the series the SEG references, loaded with
        :func:`medlab.load`). Without it, the SEG's own grid is used.

    Returns
    -------
    SegmentationResult
        ``.segments`` and ``.frames`` tables; ``.masks(reference)`` gives
        one mask per segment (overlaps allowed), ``.labels(reference)`` a
        label map (raises if segments overlap).

    Examples
    --------
    >>> seg = read_seg("liver.dcm", reference=ml.load("ct_folder"))  # doctest: +SKIP
    >>> liver = seg.masks()[1]  # doctest: +SKIP
    """
    hd = import_optional("highdicom", feature="reading DICOM SEG", extra="segmentation")
    ds, source = read_dicom_object(path, modality="SEG", what="DICOM SEG",
                                   sop_classes=SEG_SOP_CLASSES)
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as exc:
        raise SegmentationError(f"highdicom cannot parse {source} as a SEG: {exc}") from exc
    if reference is not None:
        require_image(reference, "reference")
    return SegmentationResult(seg, source, reference)
