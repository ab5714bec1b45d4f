"""Write segmentations as DICOM SEG (highdicom) and RTSTRUCT (contours).

Both writers take the masks on the grid of the source series and
reference its instances slice by slice: :func:`write_seg` one source SOP
instance per frame, :func:`write_rtstruct` one per contour. They read back
through :func:`~medlab.segmentation.read_seg` and
:func:`~medlab.segmentation.rtstruct_to_masks`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import geometry as geo
from .._optional import import_optional
from .._version import __version__
from ..errors import GeometryMismatchError
from ..image import Image
from ._common import SegmentationError

__all__ = ["write_rtstruct", "write_seg"]

Masks = Image | Mapping[str, Image]
Names = Mapping[int, str] | Sequence[str] | None
CodeLike = Any  # pydicom Code, highdicom CodedConcept or (value, scheme, meaning)
AlgorithmType = Literal["MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"]

#: Warnings about the source headers (not about what is written), silenced while writing
_SOURCE_WARNINGS = (r".*unlikely to represent the intended person name.*",
                    r".*exceeds the maximum length.*")
_PALETTE = [(255, 0, 0), (0, 200, 0), (0, 80, 255), (255, 200, 0), (200, 0, 255), (0, 220, 220)]


# ------------------------------------------------------------------ inputs
def _code(value: CodeLike) -> Any:
    from pydicom.sr.coding import Code

    if isinstance(value, tuple) and len(value) == 3:
        return Code(str(value[0]), str(value[1]), str(value[2]))
    return value


def _per_segment(value: Any, name: str, number: int) -> Any:
    """A per-segment option given once for all, by name or by segment number."""
    if isinstance(value, Mapping):
        return value.get(name, value.get(number))  # type: ignore[call-overload]
    return value


def _segments(masks: Masks, segment_names: Names, *, fractional: bool
              ) -> tuple[Image, list[tuple[str, np.ndarray, dict]]]:
    """(grid image, [(name, array, meta)]) from a label image or a dict of masks."""
    if isinstance(masks, Image):
        arr = np.asarray(masks.array)
        if masks.ndim != 3:
            raise SegmentationError(f"labels must be a 3D image, got shape {masks.shape}")
        if arr.dtype.kind == "f" and fractional:
            name = _name_of(segment_names, masks.meta, 1) or masks.meta.get("roi_name") or "Segment 1"
            return masks, [(name, arr.astype(np.float32), dict(masks.meta))]
        if arr.dtype.kind == "f":
            if not np.array_equal(arr, np.round(arr)):
                raise SegmentationError(
                    "labels hold fractions; pass segmentation_type='FRACTIONAL' (DICOM SEG) or "
                    "threshold them first (image.with_array(image.array >= 0.5))")
            arr = arr.astype(np.int64)
        if arr.dtype == np.bool_:
            name = _name_of(segment_names, masks.meta, 1) or masks.meta.get("roi_name") or "Segment 1"
            return masks, [(name, arr, dict(masks.meta))]
        values = [int(v) for v in np.unique(arr) if v > 0]
        if not values:
            raise SegmentationError("the label image is empty: there is nothing to write")
        colours = masks.meta.get("colours") or {}
        out = []
        for v in values:
            name = _name_of(segment_names, masks.meta, v) or f"Segment {v}"
            out.append((name, arr == v, {"label": v, "colour": colours.get(v),
                                         "algorithm_type": masks.meta.get("algorithm_type"),
                                         "algorithm_method": masks.meta.get("algorithm_method")}))
        return masks, out
    if isinstance(masks, Mapping):
        if not masks:
            raise SegmentationError("no masks were given: there is nothing to write")
        items = list(masks.items())
        grid = items[0][1]
        out = []
        for name, m in items:
            if not isinstance(m, Image):
                raise TypeError(f"mask {name!r} must be a medlab.Image, got {type(m).__name__}")
            m.match_geometry(grid)
            a = np.asarray(m.array)
            if a.dtype.kind == "f" and not fractional:
                if not np.isin(a, (0.0, 1.0)).all():
                    raise SegmentationError(
                        f"mask {name!r} holds fractions; pass segmentation_type='FRACTIONAL' (SEG) "
                        "or threshold it (mask.array >= 0.5)")
                a = a > 0.5
            elif a.dtype.kind != "f":
                a = a.astype(bool) if not fractional else a.astype(np.float32)
            if not np.any(a):
                raise SegmentationError(f"mask {name!r} is empty: a segment needs at least one voxel")
            out.append((str(name), a, dict(m.meta)))
        return grid, out
    raise TypeError(
        f"expected a label Image or a dict of name -> mask Image, got {type(masks).__name__}")


def _name_of(names: Names, meta: Mapping, value: int) -> str | None:
    if names is None:
        names = meta.get("labels") or meta.get("label_names")
        if not isinstance(names, Mapping | list | tuple):
            return None
    if isinstance(names, Mapping):
        found = names.get(value)
        return None if found is None else str(found)
    if isinstance(names, list | tuple):
        return str(names[value - 1]) if 0 < value <= len(names) else None
    raise TypeError(f"segment_names must map label values to names or list them, got {type(names).__name__}")


def _clean_header(ds: Any, *, own: bool) -> Any:
    """The header with an empty SpecificCharacterSet removed (highdicom rejects '')."""
    if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
        if not own:
            import copy

            ds = copy.deepcopy(ds)
        del ds.SpecificCharacterSet
    return ds


def _source_slices(source: Any, grid: Image) -> dict[int, tuple[Any, int | None]]:
    """Slice index of ``grid`` -> (source dataset, frame number or None).

    Checks that each source image lies on a slice of the grid, with the
    same rows, columns, pixel spacing and orientation.
    """
    import pydicom

    from ..io.dicom import iter_files, read_dataset

    with warnings.catch_warnings():
        for message in _SOURCE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        if isinstance(source, Image):
            files = source.meta.get("files") or []
            if not files:
                raise SegmentationError(
                    "the source image has no DICOM files in meta['files'] (load it from DICOM with "
                    "ml.load), so its instances cannot be referenced; pass the source file paths")
            datasets = [read_dataset(f, stop_before_pixels=True) for f in files]
        elif isinstance(source, str | os.PathLike):
            datasets = [read_dataset(f, stop_before_pixels=True) for f in iter_files(source)]
        elif isinstance(source, Sequence) and source:
            datasets = [s if isinstance(s, pydicom.Dataset) else read_dataset(s, stop_before_pixels=True)
                        for s in source]
        else:
            raise TypeError(
                "source must be the source medlab.Image (loaded from DICOM), a folder, or a list of "
                f"file paths or pydicom Datasets, got {type(source).__name__}")
    given = {id(s) for s in source} if isinstance(source, Sequence) else set()
    datasets = [_clean_header(ds, own=id(ds) not in given) for ds in datasets]
    inv = np.linalg.inv(grid.affine)
    spacing = np.asarray(grid.spacing)
    row_dir = grid.affine[:3, 2] / spacing[2]
    col_dir = grid.affine[:3, 1] / spacing[1]
    out: dict[int, tuple[Any, int | None]] = {}
    problems = []
    for ds in datasets:
        for frame, ipp, iop, ps in _frame_planes(ds):
            if ipp is None or iop is None or ps is None:
                problems.append(f"{ds.get('SOPInstanceUID', '?')} has no plane position/orientation")
                continue
            k, j, i = inv[:3, :3] @ np.asarray(ipp, float) + inv[:3, 3]
            same_plane = (geo.same_orientation([float(v) for v in iop], [*row_dir, *col_dir])
                          and np.allclose([float(ps[0]), float(ps[1])], spacing[1:], rtol=1e-3)
                          and int(ds.get("Rows", -1)) == grid.spatial_shape[1]
                          and int(ds.get("Columns", -1)) == grid.spatial_shape[2])
            kk = int(np.floor(k + 0.5))
            if not same_plane or abs(j) > 1e-2 or abs(i) > 1e-2 or abs(k - kk) > 1e-2:
                problems.append(f"instance {ds.get('SOPInstanceUID', '?')}"
                                + (f" frame {frame}" if frame else "")
                                + f" lies at grid index ({k:.2f}, {j:.2f}, {i:.2f})")
                continue
            if 0 <= kk < grid.spatial_shape[0]:
                out[kk] = (ds, frame)
    missing = [k for k in range(grid.spatial_shape[0]) if k not in out]
    if missing:
        shown = "; ".join(problems[:3])
        raise GeometryMismatchError(
            f"the masks' grid {grid.spatial_shape} does not match the source images: slices "
            f"{missing[:10]}{'...' if len(missing) > 10 else ''} have no source image on the same "
            f"plane and pixel grid{(' (' + shown + ')') if shown else ''}. Resample the masks "
            "onto the source series first: mask.resample_to(source_image, interpolation='nearest')")
    return out


def _frame_planes(ds: Any) -> list[tuple[int | None, Any, Any, Any]]:
    """(frame number or None, ImagePositionPatient, ImageOrientationPatient, PixelSpacing)."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return [(None, ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"),
                 ds.get("PixelSpacing"))]
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    out = []
    for f, per in enumerate(ds.PerFrameFunctionalGroupsSequence[:n]):
        def get(seq: str, kw: str, per: Any = per) -> Any:
            for group in (per, shared):
                if group is not None and seq in group and kw in group[seq][0]:
                    return group[seq][0][kw].value
            return None
        out.append((f + 1, get("PlanePositionSequence", "ImagePositionPatient"),
                    get("PlaneOrientationSequence", "ImageOrientationPatient"),
                    get("PixelMeasuresSequence", "PixelSpacing")))
    return out


# --------------------------------------------------------------------- SEG
def write_seg(
    labels: Masks,
    source: Any,
    path: str | os.PathLike,
    *,
    segment_names: Names = None,
    segmentation_type: Literal["BINARY", "FRACTIONAL"] = "BINARY",
    category: CodeLike | Mapping = None,
    property_type: CodeLike | Mapping = None,
    algorithm_type: AlgorithmType | None = None,
    algorithm_name: str | None = None,
    algorithm_family: CodeLike = None,
    series_description: str = "medlab segmentation",
    series_number: int = 300,
    omit_empty_frames: bool = True,
) -> Path:
    """Write masks as a DICOM Segmentation referencing the source series.

    Parameters
    ----------
    labels : Image or dict of str to Image
        A label image (one segment per value > 0, or one for a bool mask)
        or named masks (overlaps allowed), on the source series' grid.
    source : Image, folder or list of paths/Datasets
        The series the masks were drawn on: the image loaded with
        :func:`medlab.load` (its ``meta['files']``), or its files. Each
        frame of the SEG references the source instance of its slice.
    path : path
        Output file.
    segment_names : mapping or sequence of str, optional
        Names of label values (``{1: 'GTV'}``) or of labels 1, 2, ...;
        default ``labels.meta['labels']``, else ``'Segment <value>'``.
        Ignored for a dict (its keys are the names).
    segmentation_type : {'BINARY', 'FRACTIONAL'}
        FRACTIONAL stores float masks in [0, 1] as 8-bit fractions (the
        values read back are ``round(f * 255) / 255``).
    category, property_type : code, tuple (value, scheme, meaning) or mapping
        Segmented property category and type, for all segments or by name
        or segment number; default SNOMED CT 85756007 "Tissue".
    algorithm_type : {'MANUAL', 'SEMIAUTOMATIC', 'AUTOMATIC'}, optional
        How the segments were made, for all of them. Default: a model's
        result (:mod:`medlab.segmentation.models`, ``meta['algorithm']``) is
        AUTOMATIC with the model's name, version and weights SHA-256 (as an
        algorithm parameter) and family "Artificial Intelligence"; otherwise
        each mask's own record, ``meta['algorithm_type']``, which medlab's
        segmentation functions set (AUTOMATIC for thresholds, Otsu, HU
        presets and watershed, SEMIAUTOMATIC for region growing from seeds,
        carried through component and morphology operations; read from
        RTSTRUCT and SEG files); MANUAL for masks without a record (drawn, or
        read from NIfTI). SEMIAUTOMATIC and AUTOMATIC record
        ``algorithm_name`` (default the model's name or ``'medlab <method>'``)
        and ``algorithm_family`` (a code of DICOM CID 7162; default
        "Artificial Intelligence" for models, "Histogram Analysis" otherwise)
        with the model's or medlab's version.
    algorithm_name, algorithm_family, series_description, series_number
        Recorded in the SEG.
    omit_empty_frames : bool, default True
        Leave out frames without any segmented pixel.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    GeometryMismatchError
        The masks are not on the source series' slices and pixel grid.
    SegmentationError
        Empty masks, fractions in a BINARY SEG, overlapping inputs that
        cannot be represented.
    """
    hd = import_optional("highdicom", feature="writing DICOM SEG", extra="segmentation")
    from pydicom.sr.codedict import codes

    if segmentation_type not in ("BINARY", "FRACTIONAL"):
        raise ValueError(f"segmentation_type must be 'BINARY' or 'FRACTIONAL', got {segmentation_type!r}")
    model = labels.meta.get("algorithm") if isinstance(labels, Image) else None
    model = dict(model) if isinstance(model, Mapping) else {}
    if algorithm_type not in (None, "MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"):
        raise ValueError(f"algorithm_type must be MANUAL, SEMIAUTOMATIC or AUTOMATIC, got {algorithm_type!r}")
    fractional = segmentation_type == "FRACTIONAL"
    grid, segments = _segments(labels, segment_names, fractional=fractional)
    slices = _source_slices(source, grid)
    multi_frame = any(frame is not None for _, frame in slices.values())
    order = sorted(slices, key=lambda k: (slices[k][1] or 0, k)) if multi_frame else sorted(slices)
    sources = ([_with_shared_planes(slices[order[0]][0])] if multi_frame
               else _harmonised_orientation([slices[k][0] for k in order]))
    dtype = np.float32 if fractional else np.bool_
    pixels = np.zeros((len(order), *grid.spatial_shape[1:], len(segments)), dtype=dtype)
    for s, (_, arr, _) in enumerate(segments):
        pixels[..., s] = np.clip(arr[order], 0, 1) if fractional else arr[order]
    descriptions = []
    for number, (name, _, meta) in enumerate(segments, start=1):
        kind = algorithm_type or model.get("type") or meta.get("algorithm_type") or "MANUAL"
        if kind not in ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"):
            kind = "MANUAL"
        algorithm = None
        if kind != "MANUAL":
            method = meta.get("algorithm_method") or meta.get("method")
            default_family = (codes.cid7162.ArtificialIntelligence
                              if model or method == "sliding_window"
                              else codes.cid7162.HistogramAnalysis)
            algorithm = hd.AlgorithmIdentificationSequence(
                name=algorithm_name or model.get("name")
                or (f"medlab {method}" if method else "medlab"),
                version=str(model.get("version") or __version__),
                family=_code(algorithm_family) or default_family,
                parameters=({"weights_sha256": model["weights_sha256"]}
                            if model.get("weights_sha256") else None))
        cat = _code(_per_segment(category, name, number)) or codes.SCT.Tissue
        typ = _code(_per_segment(property_type, name, number)) or codes.SCT.Tissue
        colour = meta.get("colour") or _PALETTE[(number - 1) % len(_PALETTE)]
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64], segmented_property_category=cat,
            segmented_property_type=typ, algorithm_type=kind,
            algorithm_identification=algorithm, tracking_uid=hd.UID(), tracking_id=name[:64],
            display_color=hd.color.CIELabColor.from_rgb(*[int(c) for c in colour])))
    with warnings.catch_warnings():
        for message in _SOURCE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixels, segmentation_type=segmentation_type,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(),
            series_number=int(series_number), sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="medlab", manufacturer_model_name="medlab",
            software_versions=f"medlab {__version__}", device_serial_number="none",
            content_description=series_description[:64], content_label="SEGMENTATION",
            omit_empty_frames=omit_empty_frames)
        seg.SeriesDescription = series_description[:64]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        seg.save_as(path)
    return path


def _harmonised_orientation(datasets: list[Any]) -> list[Any]:
    """The source headers with one Image Orientation (Patient), for highdicom.

    highdicom requires the source images of a SEG to share their orientation
    exactly; scanners jitter it in the last decimals (dcmqi's GE ADC map: the
    8th). Headers whose orientation agrees with the first one's within
    medlab's geometry tolerance (:data:`medlab.geometry.ORIENTATION_TOLERANCE`,
    already checked by :func:`_source_slices`) are copied with the first
    one's value; the references keep each instance's own UIDs.
    """
    import copy

    first = [float(v) for v in datasets[0].ImageOrientationPatient]
    out = []
    for ds in datasets:
        iop = [float(v) for v in ds.ImageOrientationPatient]
        if iop != first and geo.same_orientation(iop, first):
            ds = copy.copy(ds)  # a shallow copy: only this element changes
            ds.ImageOrientationPatient = datasets[0].ImageOrientationPatient
        out.append(ds)
    return out


def _with_shared_planes(ds: Any) -> Any:
    """A copy of a multi-frame header whose pixel measures and plane orientation, when they are
    the same for every frame, sit in the shared functional groups (where highdicom reads them)."""
    import copy

    from pydicom.dataset import Dataset

    per = ds.get("PerFrameFunctionalGroupsSequence") or []
    if not per:
        return ds
    ds = copy.deepcopy(ds)
    if "SharedFunctionalGroupsSequence" not in ds:
        ds.SharedFunctionalGroupsSequence = [Dataset()]
    shared = ds.SharedFunctionalGroupsSequence[0]
    for seq in ("PixelMeasuresSequence", "PlaneOrientationSequence"):
        if seq in shared or seq not in per[0]:
            continue
        if all(seq in f and _same_plane_item(f[seq].value[0], per[0][seq].value[0]) for f in per):
            shared[seq] = per[0][seq]
            for f in per:
                del f[seq]
    return ds


def _same_plane_item(a: Any, b: Any) -> bool:
    """Two Pixel Measures or Plane Orientation items equal (orientation within tolerance)."""
    if "ImageOrientationPatient" in a and "ImageOrientationPatient" in b:
        return geo.same_orientation([float(v) for v in a.ImageOrientationPatient],
                                    [float(v) for v in b.ImageOrientationPatient])
    return a == b


# ---------------------------------------------------------------- RTSTRUCT
def _slice_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours (row, column) around the pixels of one slice (level 0.5)."""
    from skimage import measure

    padded = np.pad(mask.astype(np.float32), 1)
    out = []
    for c in measure.find_contours(padded, 0.5):
        c = c[:-1] if len(c) > 1 and np.allclose(c[0], c[-1]) else c
        if len(c) >= 3:
            out.append(c - 1.0)
    return out


def write_rtstruct(
    masks: Masks,
    source: Any,
    path: str | os.PathLike,
    *,
    roi_names: Names = None,
    colours: Mapping[str, Sequence[int]] | None = None,
    interpreted_types: Mapping[str, str] | str = "",
    algorithm_type: AlgorithmType | None = None,
    structure_set_label: str = "medlab",
    series_description: str = "medlab structures",
    series_number: int = 301,
) -> Path:
    """Write masks as a DICOM RTSTRUCT, one ROI per mask, referencing the source.

    Contours are the 0.5 iso-lines of each slice of the mask
    (:func:`skimage.measure.find_contours`, marching squares), which pass
    half-way between inside and outside pixel centres, mapped to LPS mm
    through the grid's affine. Holes become inner contours; they read back
    with the even-odd rule of :func:`rtstruct_to_masks`. Float masks are
    thresholded at 0.5.

    Parameters
    ----------
    masks : Image or dict of str to Image
        Named masks, or a label image (one ROI per value > 0), on the
        source series' grid.
    source : Image, folder or list of paths/Datasets
        The image series the masks are on (for the frame of reference and
        the referenced instances of each contour).
    path : path
        Output file.
    roi_names : mapping or sequence of str, optional
        For a label image: names of the label values (as ``segment_names``
        of :func:`write_seg`).
    colours : dict of str to (r, g, b), optional
        ROI display colours; default the masks' ``meta['colour']`` or a
        palette.
    interpreted_types : str or dict of str to str
        RT ROI Interpreted Type (``'GTV'``, ``'ORGAN'``, ...); default the
        masks' ``meta['interpreted_type']`` or empty.
    algorithm_type : {'MANUAL', 'SEMIAUTOMATIC', 'AUTOMATIC'}, optional
        ROI Generation Algorithm, for all ROIs; default each mask's
        ``meta['algorithm_type']`` as in :func:`write_seg`, else MANUAL.
    structure_set_label, series_description, series_number
        Recorded in the RTSTRUCT.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    grid, segments = _segments(masks, roi_names, fractional=False)
    slices = _source_slices(source, grid)
    first = slices[min(slices)][0]
    for_uid = str(first.get("FrameOfReferenceUID", "")) or str(grid.meta.get("frame_of_reference_uid", ""))
    if not for_uid:
        raise SegmentationError(
            "the source images have no FrameOfReferenceUID (0020,0052), which an RTSTRUCT needs")
    affine = grid.affine
    now = datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    with warnings.catch_warnings():  # the sources' own over-long values
        for message in _SOURCE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                   "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName"):
            setattr(ds, kw, first.get(kw, ""))
        ds.StudyID = str(first.get("StudyID", ""))[:16]  # SH, truncated to its 16 characters
        ds.AccessionNumber = str(first.get("AccessionNumber", ""))[:16]
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID, ds.SeriesNumber = generate_uid(), int(series_number)
    ds.SeriesDescription = series_description[:64]
    ds.Manufacturer, ds.SoftwareVersions = "medlab", f"medlab {__version__}"
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    ds.StructureSetLabel = structure_set_label[:16]
    ds.StructureSetDate, ds.StructureSetTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.InstanceNumber = 1

    def image_ref(k: int) -> Dataset:
        src, frame = slices[k]
        item = Dataset()
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
        if frame is not None:
            item.ReferencedFrameNumber = frame
        return item

    series = Dataset()
    series.SeriesInstanceUID = str(first.get("SeriesInstanceUID", ""))
    series.ContourImageSequence = DicomSequence([image_ref(k) for k in sorted(slices)])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, conventional)
    study.ReferencedSOPInstanceUID = str(first.get("StudyInstanceUID", ""))
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = for_uid
    frame_ref.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_ref])

    rois, contours_seq, observations = [], [], []
    for number, (name, arr, meta) in enumerate(segments, start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, for_uid
        kind = algorithm_type or meta.get("algorithm_type") or "MANUAL"
        roi.ROIName, roi.ROIGenerationAlgorithm = name[:64], kind
        rois.append(roi)
        colour = (colours or {}).get(name) or meta.get("colour") or _PALETTE[(number - 1) % len(_PALETTE)]
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [int(c) for c in colour]
        items = []
        for k in range(arr.shape[0]):
            if not arr[k].any():
                continue
            for poly in _slice_contours(arr[k]):
                # along the grid's edge the iso-line runs on the border (index -0.5 or n - 0.5):
                # keep it a hair inside, so that decimal rounding cannot put it outside
                poly = np.clip(poly, -0.5 + 1e-3, np.asarray(arr.shape[1:]) - 0.5 - 1e-3)
                idx = np.column_stack([np.full(len(poly), float(k)), poly])
                world = idx @ affine[:3, :3].T + affine[:3, 3]
                c = Dataset()
                c.ContourImageSequence = DicomSequence([image_ref(k)])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(world)
                c.ContourData = [f"{v:.5f}".rstrip("0").rstrip(".") for v in world.ravel()]
                items.append(c)
        rc.ContourSequence = DicomSequence(items)
        contours_seq.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = number, number
        kind = interpreted_types if isinstance(interpreted_types, str) else interpreted_types.get(name, "")
        obs.RTROIInterpretedType = kind or str(meta.get("interpreted_type") or "")
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours_seq)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
