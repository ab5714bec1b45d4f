"""One record per 2D frame: the unit that series assembly sorts and stacks.

A classic single-frame file gives one :class:`Frame`; an enhanced or
legacy multi-frame object gives one per frame (geometry and rescale from
its per-frame functional groups); a Siemens mosaic gives one per tile.
Assembly (``_assemble``) then treats them all alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import operator
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ...geometry import orientation_key
from ._spacing import _float, pixel_spacing

__all__ = ["Frame", "NotAnImageError", "PER_FILE_FIELDS", "frame_like", "frames_from_dataset"]


class NotAnImageError(ValueError):
    """A DICOM object without pixel data (SR, RTSTRUCT, DICOMDIR, ...)."""


@dataclass(slots=True)
class Frame:
    """Everything assembly needs to know about one 2D frame."""

    path: Path
    _header: Any = field(repr=False)  # pydicom Dataset, or None until first needed
    index: int | None  # frame number in a multi-frame object (0-based)
    tile: int | None  # tile number in a Siemens mosaic
    mosaic_tiles_side: int  # number of tiles per mosaic row (0 if not a mosaic)
    rows: int
    columns: int
    samples: int
    series_uid: str
    iop: tuple[float, ...] | None
    ipp: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    instance: int
    split_key: tuple
    acquisition: int | None = None
    temporal: float | None = None  # temporal position identifier / index
    trigger_ms: float | None = None
    time_s: float | None = None  # acquisition or content date-time, seconds
    frame_time_ms: float | None = None  # cine frame interval
    slice_thickness: float | None = None
    spacing_between: float | None = None
    mosaic_normal: tuple[float, ...] | None = None
    series_number: str = ""
    # how the pixel data are stored (so pixels can be read without the full header)
    transfer_syntax: str = ""
    pixel_offset: int | None = None  # file offset of the Pixel Data value, when known
    pixel_length: int | None = None
    bits_allocated: int = 16
    bits_stored: int = 16
    signed: bool = False
    photometric: str = ""
    rtia_s: float | None = None  # GE RTIA timer (slice timing), seconds
    b_value: float | None = None  # diffusion weighting, s/mm2
    b_vector: tuple[float, ...] | None = None  # gradient direction, LPS (zeros: none)
    diffusion_source: str | None = None  # which attributes gave b_value/b_vector
    #: scalings other than Rescale Slope/Intercept (rare): 'philips_ss' (Philips private
    #: scale slope), 'lut' (Modality LUT Sequence: first value mapped, table),
    #: 'rwvm' (Real World Value Mapping: slope, intercept, units); 'rescale' says
    #: whether Rescale Slope/Intercept were present
    scaling: dict[str, Any] | None = None

    @property
    def header(self) -> Dataset:
        """The file's pydicom dataset (pixel data deferred), read on first use."""
        if self._header is None:
            from ._files import read_dataset

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._header = read_dataset(self.path, defer_size=1024)
        return self._header


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _seconds(date: Any, time: Any) -> float | None:
    """Seconds since the epoch (or since midnight without a date) of DA/TM values."""
    t = str(time or "").strip()
    if not t:
        return None
    try:
        hh, mm = int(t[0:2]), int(t[2:4] or 0)
        ss = float(t[4:] or 0) if ":" not in t else None
        if ":" in t:  # old ACR-NEMA style HH:MM:SS
            hh, mm, ss = (float(x) for x in t.split(":"))
    except ValueError:
        return None
    secs = hh * 3600 + mm * 60 + (ss or 0.0)
    d = str(date or "").strip()
    if len(d) == 8 and d.isdigit():
        day = dt.date(int(d[:4]), int(d[4:6]), int(d[6:8]))
        secs += (day - dt.date(1970, 1, 1)).days * 86400.0
    return secs


def _datetime_seconds(value: Any) -> float | None:
    s = str(value or "").strip()
    if len(s) < 8:
        return None
    return _seconds(s[:8], s[8:].split("+")[0].split("-")[0])


def _acq_seconds(ds: Dataset) -> float | None:
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime")):
        s = _seconds(ds.get(date_kw) or ds.get("SeriesDate") or ds.get("StudyDate"), ds.get(time_kw))
        if s is not None:
            return s
    return _datetime_seconds(ds.get("AcquisitionDateTime"))


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _group(ds: Dataset, per: Dataset | None, shared: Dataset | None, seq: str, kw: str) -> Any:
    for grp in (per, shared):
        if grp is not None and seq in grp and len(grp[seq].value):
            item = grp[seq].value[0]
            if kw in item:
                return item[kw].value
    return None


def _private(ds: Any, group: int, element: int, creator: str) -> Any:
    """A private value checked against its private creator (block 0x10 as vendors write it)."""
    if isinstance(ds, Dataset):
        try:
            return ds.get_private_item(group, element & 0xFF, creator).value
        except (KeyError, ValueError):
            return None
    owner = ds.get((group, 0x0010))
    if owner is None or str(owner).strip().upper() != creator.upper():
        return None
    return ds.get((group, element))


def _diffusion(
    ds: Any, per: Dataset | None = None, shared: Dataset | None = None
) -> tuple[float | None, tuple[float, ...] | None, str | None]:
    """(b-value s/mm2, LPS direction, source) of one frame, as dcm2niix reads them.

    In order: the standard MR Diffusion attributes (PS3.3 C.8.13.5.9; in the
    MR Diffusion Sequence of enhanced objects), Siemens' private B_value and
    DiffusionGradientDirection (0019,100C/100E, patient coordinates), Philips'
    (2001,1003) b-value with (2005,10B0-10B2) RL/AP/FH directions, and GE's
    b-value in (0043,1039) (its first value). GE's gradient directions
    (0019,10BB-10BD) are in the scanner's logical frame with software-
    dependent signs (dcm2niix derives them per version); they are not read.
    """
    item = None
    for grp in (per, shared):
        if grp is not None and grp.get("MRDiffusionSequence"):
            item = grp.MRDiffusionSequence[0]
            break
    src = item if item is not None else ds
    b = _float(src.get("DiffusionBValue"))
    if b is not None:
        vec = None
        if isinstance(src, Dataset) and src.get("DiffusionGradientDirectionSequence"):
            vec = _floats(src.DiffusionGradientDirectionSequence[0].get(
                "DiffusionGradientOrientation"), 3)
        vec = vec or _floats(src.get("DiffusionGradientOrientation"), 3)
        if str(src.get("DiffusionDirectionality", "")).upper() in ("ISOTROPIC", "NONE") or b == 0:
            vec = (0.0, 0.0, 0.0)
        return b, vec, "MR Diffusion (0018,9087)"
    b = _float(_private(ds, 0x0019, 0x100C, "SIEMENS MR HEADER"))
    if b is not None:
        vec = _floats(_private(ds, 0x0019, 0x100E, "SIEMENS MR HEADER"), 3)
        return b, (0.0, 0.0, 0.0) if b == 0 and vec is None else vec, "Siemens (0019,100C/E)"
    b = _float(_private(ds, 0x2001, 0x1003, "Philips Imaging DD 001"))
    if b is not None:
        parts = [_float(_private(ds, 0x2005, e, "Philips MR Imaging DD 001"))
                 for e in (0x10B0, 0x10B1, 0x10B2)]
        vec = None if any(v is None for v in parts) else tuple(parts)  # type: ignore[arg-type]
        return b, (0.0, 0.0, 0.0) if b == 0 else vec, "Philips (2001,1003)"
    ge = _private(ds, 0x0043, 0x1039, "GEMS_PARM_01")
    if ge is not None and str(ds.get("Modality", "")) == "MR":
        seq = not isinstance(ge, (str, bytes)) and hasattr(ge, "__len__")
        first = _float(ge[0] if seq and len(ge) else ge)
        if first is not None and 0 <= first < 1e5:  # larger values carry flags: not decoded
            return first, None, "GE (0043,1039)"
    return None, None, None


def _rwvm(items: Any) -> tuple[float, float, str | None] | None:
    """(slope, intercept, units) of the first linear Real World Value Mapping item."""
    if not items:
        return None
    item = items[0]
    slope = _float(item.get("RealWorldValueSlope"))
    if slope is None:
        return None
    units = None
    code = item.get("MeasurementUnitsCodeSequence")
    if code:
        units = str(code[0].get("CodeValue") or "") or None
    return slope, _float(item.get("RealWorldValueIntercept")) or 0.0, units


def _scaling(ds: Any, per: Dataset | None = None, shared: Dataset | None = None,
             *, rescale: bool) -> dict[str, Any] | None:
    """What else than Rescale Slope/Intercept could scale this frame's stored values."""
    if not isinstance(ds, Dataset):
        return None  # the fast path declines files with any of these
    out: dict[str, Any] = {"rescale": rescale}
    if "PHILIPS" in str(ds.get("Manufacturer", "")).upper():
        ss = None
        for grp in (per, shared):
            priv = grp.get((0x2005, 0x140F)) if grp is not None else None
            if priv is not None and priv.VR == "SQ" and len(priv.value):
                ss = _float(getattr(priv.value[0].get((0x2005, 0x100E)), "value", None))
                if ss is not None:
                    break
        if ss is None:
            ss = _float(_private(ds, 0x2005, 0x100E, "Philips MR Imaging DD 001"))
        if ss:
            out["philips_ss"] = ss
    lut = ds.get("ModalityLUTSequence")
    if lut:  # PS3.3 C.11.1: the table replaces Rescale Slope/Intercept (as in pydicom)
        item = lut[0]
        n, first, _bits = (int(v) for v in item.LUTDescriptor)
        data = item.LUTData
        table = (np.frombuffer(data, "<u2") if isinstance(data, bytes)
                 else np.atleast_1d(np.asarray(data)))
        out["lut"] = (first, table[: n or 65536])
    rwvm = None
    for grp in (per, shared, ds):
        if grp is not None and grp.get("RealWorldValueMappingSequence"):
            rwvm = _rwvm(grp.RealWorldValueMappingSequence)
            break
    if rwvm is not None:
        out["rwvm"] = rwvm
    return out if len(out) > 1 else None


@functools.lru_cache(maxsize=4096)
def _spacing_key(spacing: tuple[float, float]) -> tuple:
    """The pixel spacing as the split key holds it (rounded to 4 decimals); one spacing
    repeats in every file of a series."""
    return tuple(np.round(spacing, 4))


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm by the rules of :func:`._spacing.pixel_spacing`."""
    return pixel_spacing(ds).spacing


def _storage(ds: Any, fast: Any) -> dict[str, Any]:
    """How the pixel data are stored: transfer syntax, offset, bits, photometric."""
    bits = _int(ds.get("BitsAllocated"), 16)
    out: dict[str, Any] = {
        "bits_allocated": bits,
        "bits_stored": _int(ds.get("BitsStored"), bits) or bits,
        "signed": _int(ds.get("PixelRepresentation"), 0) == 1,
        "photometric": str(ds.get("PhotometricInterpretation", "") or ""),
    }
    rtia = ds.get((0x0021, 0x105E))  # GE private RTIA timer, in 1/10 ms
    if rtia is not None:
        out["rtia_s"] = _float(getattr(rtia, "value", rtia))
        out["rtia_s"] = None if out["rtia_s"] is None else out["rtia_s"] / 10000.0
    if fast is not None:
        out.update(transfer_syntax=fast.transfer_syntax, pixel_offset=fast.pixel_offset,
                   pixel_length=fast.pixel_length)
        return out
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    out["transfer_syntax"] = str(ts or "")
    if "PixelData" in ds:
        elem = ds.get_item(0x7FE00010, keep_deferred=True)
        if getattr(elem, "value", None) is None and getattr(elem, "value_tell", None) is not None:
            out["pixel_offset"], out["pixel_length"] = elem.value_tell, elem.length
    return out


def _require_pixels(ds: Dataset, path: Path) -> None:
    has = any(kw in ds for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if not has or "Rows" not in ds or "Columns" not in ds:
        sop = str(ds.get("SOPClassUID", "")) or "unknown"
        name = getattr(ds.get("SOPClassUID"), "name", "") if "SOPClassUID" in ds else ""
        modality = ds.get("Modality", "?")
        raise NotAnImageError(
            f"{path.name}: no image pixel data (modality {modality}, SOP class "
            f"{name or sop}); not an image"
        )


def _series_uid(ds: Any, path: Path) -> str:
    """The series UID, or one per file for a file without it."""
    return str(ds.get("SeriesInstanceUID") or f"file:{path}")


def _rescale(ds: Any) -> tuple[float, float, bool]:
    """(slope, intercept, whether Rescale Slope is present) of a frame's header."""
    slope = _float(ds.get("RescaleSlope"))
    intercept = _float(ds.get("RescaleIntercept"))
    return 1.0 if slope in (None, 0.0) else slope, intercept or 0.0, slope is not None


def _slope_intercept(ds: Any) -> dict[str, Any]:
    slope, intercept, _ = _rescale(ds)
    return {"slope": slope, "intercept": intercept}


#: The values of a plain single-frame file (the fast path of :func:`frames_from_dataset`)
#: that differ from file to file of a series, and the fields of its :class:`Frame` that each
#: gives, by the expressions :func:`frames_from_dataset` uses. Nothing else in the frame
#: depends on them (Rescale Slope's presence only matters for pydicom datasets, in
#: ``_scaling``), so the frame of a file whose values differ from another file's only in
#: these is that file's frame with these fields recomputed (:func:`frame_like`).
PER_FILE_FIELDS: dict[str, Any] = {
    "InstanceNumber": lambda ds: {"instance": _int(ds.get("InstanceNumber"))},
    "ImagePositionPatient": lambda ds: {"ipp": _floats(ds.get("ImagePositionPatient"), 3)},
    "AcquisitionNumber": lambda ds: {"acquisition": _int(ds.get("AcquisitionNumber"), None)},
    "TemporalPositionIdentifier":
        lambda ds: {"temporal": _float(ds.get("TemporalPositionIdentifier"))},
    "TriggerTime": lambda ds: {"trigger_ms": _float(ds.get("TriggerTime"))},
    "RescaleSlope": _slope_intercept,
    "RescaleIntercept": _slope_intercept,
    **{kw: lambda ds: {"time_s": _acq_seconds(ds)} for kw in (
        "AcquisitionDate", "AcquisitionTime", "ContentDate", "ContentTime", "SeriesDate",
        "StudyDate", "AcquisitionDateTime")},
}


_ALL_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Frame)))


def frame_like(frame: Frame, ds: Any, keywords: Iterable[str], path: Path) -> Frame:
    """The frame of a plain single-frame file (``ds``, a fast-reader dataset at ``path``) whose
    values are those of ``frame``'s file but for ``keywords`` (of :data:`PER_FILE_FIELDS`), and
    whose pixel data are stored alike; what :func:`frames_from_dataset` would give."""
    if frame.index is not None or frame.tile is not None or isinstance(ds, Dataset):
        raise ValueError("frame_like takes the frame of a plain single-frame file")
    fields: dict[str, Any] = {"series_uid": _series_uid(ds, path)}  # the file's own without one
    for kw in keywords:
        fields.update(PER_FILE_FIELDS[kw](ds))
    out = Frame(*_ALL_FIELDS(frame))  # a copy (positional: the fields in their order)
    out.path = path
    out._header = None  # this file's own, read when first needed (``frame``'s may be loaded)
    for name, value in fields.items():
        setattr(out, name, value)
    return out


def frames_from_dataset(ds: Any, path: Path, *, fast: Any = None) -> list[Frame]:
    """All frames of one DICOM object (header only; pixels are read later).

    ``ds`` is a pydicom Dataset, or a :class:`~._fastheader.FastDataset` for
    a plain single-frame file read by the fast header reader (``fast`` is
    then its FastHeader, which knows where the pixel data are).
    """
    _require_pixels(ds, path)
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples = _int(ds.get("SamplesPerPixel"), 1)
    n_frames = _int(ds.get("NumberOfFrames"), 1) or 1
    series_uid = _series_uid(ds, path)
    image_type = tuple(str(v) for v in (ds.get("ImageType") or ()))
    base_key = (
        str(ds.get("Modality", "")),
        samples,
        str(ds.get("PhotometricInterpretation", "")),
        _float(ds.get("EchoNumbers")),
        image_type,
    )
    common: dict[str, Any] = {
        "path": path,
        "_header": ds if isinstance(ds, Dataset) else None,
        "series_uid": series_uid,
        "series_number": str(ds.get("SeriesNumber", "")).strip(),
        **_storage(ds, fast),
        "samples": samples,
        "instance": _int(ds.get("InstanceNumber")),
        "acquisition": _int(ds.get("AcquisitionNumber"), None),  # type: ignore[arg-type]
        "slice_thickness": _float(ds.get("SliceThickness")),
        "spacing_between": _float(ds.get("SpacingBetweenSlices")),
    }
    slope, intercept, has_rescale = _rescale(ds)

    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_frames(ds, common, base_key, rows, columns, n_frames, slope, intercept)

    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    spacing = _pixel_spacing(ds)
    if "ImageType" in ds and "MOSAIC" in image_type and iop and ipp:
        return _mosaic_frames(ds, common, base_key, rows, columns, iop, spacing, slope, intercept)

    time_s = _acq_seconds(ds)
    temporal = _float(ds.get("TemporalPositionIdentifier"))
    trigger = _float(ds.get("TriggerTime"))
    b_value, b_vector, b_source = _diffusion(ds)
    common.update(b_value=b_value, b_vector=b_vector, diffusion_source=b_source,
                  scaling=_scaling(ds, rescale=has_rescale))
    key = (
        *base_key,
        rows,
        columns,
        orientation_key(iop),
        None if spacing is None else _spacing_key(spacing),
    )
    if n_frames == 1:
        return [
            Frame(
                index=None, tile=None, mosaic_tiles_side=0, rows=rows, columns=columns,
                iop=iop, ipp=ipp, pixel_spacing=spacing, slope=slope, intercept=intercept,
                split_key=key, temporal=temporal, trigger_ms=trigger, time_s=time_s, **common,
            )
        ]
    # legacy multi-frame without functional groups: RT dose grids (frames are slices),
    # otherwise cines / dynamic NM (frames are time points)
    offsets = ds.get("GridFrameOffsetVector")
    frame_time = _float(ds.get("FrameTime"))
    times_vec = ds.get("FrameTimeVector")
    out = []
    for i in range(n_frames):
        f_ipp = ipp
        f_time = None
        if offsets is not None and iop is not None and ipp is not None and len(offsets) == n_frames:
            normal = np.cross(iop[:3], iop[3:])
            f_ipp = tuple(np.asarray(ipp) + float(offsets[i]) * normal)
        else:
            if times_vec is not None and len(times_vec) == n_frames:
                f_time = float(np.sum(np.asarray(times_vec[: i + 1], dtype=float))) / 1000.0
            elif frame_time:
                f_time = i * frame_time / 1000.0
            else:
                f_time = float(i)
        out.append(
            Frame(
                index=i, tile=None, mosaic_tiles_side=0, rows=rows, columns=columns, iop=iop,
                ipp=f_ipp, pixel_spacing=spacing, slope=slope, intercept=intercept,
                split_key=key, temporal=float(i) if f_time is not None else None,
                time_s=f_time, frame_time_ms=frame_time, **common,
            )
        )
    return out


def _enhanced_frames(
    ds: Dataset,
    common: dict[str, Any],
    base_key: tuple,
    rows: int,
    columns: int,
    n_frames: int,
    slope: float,
    intercept: float,
) -> list[Frame]:
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_seq = ds.get("PerFrameFunctionalGroupsSequence") or []
    for key, kw in (("slice_thickness", "SliceThickness"), ("spacing_between", "SpacingBetweenSlices")):
        if common[key] is None:  # enhanced objects keep them in Pixel Measures
            value = _float(_group(ds, per_seq[0] if per_seq else None, shared,
                                  "PixelMeasuresSequence", kw))
            common = {**common, key: value}
    out = []
    for i in range(n_frames):
        per = per_seq[i] if i < len(per_seq) else None

        def g(seq: str, kw: str, per: Dataset | None = per) -> Any:
            return _group(ds, per, shared, seq, kw)

        iop = _floats(g("PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        ipp = _floats(g("PlanePositionSequence", "ImagePositionPatient"), 3)
        spacing = _floats(g("PixelMeasuresSequence", "PixelSpacing"), 2) or _pixel_spacing(ds)
        f_slope = _float(g("PixelValueTransformationSequence", "RescaleSlope"))
        f_inter = _float(g("PixelValueTransformationSequence", "RescaleIntercept"))
        frame_type = None
        for seq in ("MRImageFrameTypeSequence", "CTImageFrameTypeSequence", "FrameTypeSequence"):
            ft = g(seq, "FrameType")
            if ft is not None:
                frame_type = tuple(str(v) for v in ft)
                break
        time_s = _datetime_seconds(g("FrameContentSequence", "FrameAcquisitionDateTime"))
        if time_s is None:
            time_s = _datetime_seconds(g("FrameContentSequence", "FrameReferenceDateTime"))
        temporal = _float(g("FrameContentSequence", "TemporalPositionIndex"))
        trigger = _float(g("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"))
        echo = _float(g("MREchoSequence", "EffectiveEchoTime"))
        stack = g("FrameContentSequence", "StackID")
        b_value, b_vector, b_source = _diffusion(ds, per, shared)
        f_scaling = _scaling(ds, per, shared, rescale=f_slope is not None or "RescaleSlope" in ds)
        key = (
            *base_key,
            rows,
            columns,
            orientation_key(iop),
            None if spacing is None else tuple(np.round(spacing, 4)),
            frame_type,
            echo,
            None if stack is None else str(stack),
        )
        out.append(
            Frame(
                index=i, tile=None, mosaic_tiles_side=0, rows=rows, columns=columns, iop=iop,
                ipp=ipp, pixel_spacing=spacing,
                slope=slope if f_slope in (None, 0.0) else f_slope,
                intercept=intercept if f_inter is None else f_inter,
                split_key=key, temporal=temporal, trigger_ms=trigger,
                time_s=time_s if time_s is not None else _acq_seconds(ds),
                b_value=b_value, b_vector=b_vector, diffusion_source=b_source,
                scaling=f_scaling, **common,
            )
        )
    return out


def _mosaic_frames(
    ds: Dataset,
    common: dict[str, Any],
    base_key: tuple,
    rows: int,
    columns: int,
    iop: tuple[float, ...],
    spacing: tuple[float, float] | None,
    slope: float,
    intercept: float,
) -> list[Frame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import csareader, dicomwrappers

        csa = csareader.get_csa_header(ds, "image")
        n_tiles = csareader.get_n_mosaic(csa) if csa else None
        if not n_tiles:
            raise ValueError(
                f"{common['path'].name}: Siemens MOSAIC without a readable CSA header "
                "(NumberOfImagesInMosaic); cannot split the mosaic into slices"
            )
        wrapper = dicomwrappers.MosaicWrapper(ds, csa, n_tiles)
        first = np.asarray(wrapper.image_position, dtype=float)
        normal = np.asarray(wrapper.slice_normal, dtype=float)
        b_value, b_vector, b_source = _diffusion(ds)
        if b_value is None and csareader.get_b_value(csa) is not None:
            # the CSA image header's B_value and DiffusionGradientDirection (LPS)
            b_value = float(csareader.get_b_value(csa))
            g = csareader.get_g_vector(csa)
            b_vector = (0.0, 0.0, 0.0) if g is None and b_value == 0 else (
                None if g is None else tuple(float(v) for v in g))
            b_source = "Siemens CSA"
    side = math.ceil(math.sqrt(n_tiles))
    t_rows, t_cols = rows // side, columns // side
    step = common["spacing_between"] or common["slice_thickness"] or 1.0
    time_s = _acq_seconds(ds)
    key = (*base_key, "mosaic", t_rows, t_cols, orientation_key(iop))
    out = []
    for k in range(int(n_tiles)):
        out.append(
            Frame(
                index=None, tile=k, mosaic_tiles_side=side, rows=t_rows, columns=t_cols,
                iop=iop, ipp=tuple(first + k * step * normal), pixel_spacing=spacing,
                slope=slope, intercept=intercept, split_key=key, time_s=time_s,
                temporal=_float(ds.get("TemporalPositionIdentifier")),
                mosaic_normal=tuple(normal), b_value=b_value, b_vector=b_vector,
                diffusion_source=b_source, **common,
            )
        )
    return out
