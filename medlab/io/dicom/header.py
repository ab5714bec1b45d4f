"""The header stage of DICOM reading: a file's header, checked, or why it is not an image.

Internal API for medlab subpackages; not for users; may change.

Stages: **header** -> :mod:`.frames` -> :mod:`.plans` -> :mod:`.pixels`. This
stage reads a header two ways: :func:`read_fast_header` (the fast reader, raw
values of the tags asked for; :data:`FAST_TAGS` are those the frame stage needs)
for plain little-endian files, :func:`read_header` (pydicom, pixel data
deferred) for everything else. :func:`check_elements` and :func:`check_header`
refuse headers that would make the pixel reader guess; :func:`not_dicom_reason`,
:func:`not_image_reason` and :func:`unreadable_reason` word why a file is
skipped. Values convert with :mod:`.values` (one converter of each kind).

The loader (:func:`medlab.io.dicom.scan`) and the cohort index's scan
(``medlab.cohort``) both read headers through this module.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydicom.tag import Tag

from ...errors import DicomReadError
from ._fastheader import PIXEL_DATA, FastDataset, FastHeader, HeaderReader, read_fast_header
from ._files import file_problem, looks_like_dicom, open_regular, read_dataset
from ._frames import NotAnImageError
from ._pixels import claim_problem, pixel_data_problem, transfer_syntax

__all__ = [
    "DEFER_BYTES", "FAST_DECLINE", "FAST_KEYWORDS", "FAST_TAGS", "PIXEL_DATA", "WSI_SOP_CLASS",
    "FastDataset", "FastHeader", "HeaderReader", "NotAnImageError", "check_elements",
    "check_header",
    "claim_problem", "file_problem", "looks_like_dicom", "not_dicom_reason", "not_image_reason",
    "pixel_data_problem", "quiet_pydicom", "read_fast_header", "read_header", "transfer_syntax",
    "unreadable_reason",
]

#: Values longer than this are not read while reading headers with pydicom (pixel data,
#: big private blobs); their file offset is kept so pixels can be read directly.
DEFER_BYTES = 1024

#: what the fast path reads from each plain single-frame file
FAST_KEYWORDS = (
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "ImageType",
    "InstanceNumber", "AcquisitionNumber", "EchoNumbers", "TemporalPositionIdentifier",
    "TriggerTime", "AcquisitionDate", "AcquisitionTime", "ContentDate", "ContentTime",
    "SeriesDate", "StudyDate", "AcquisitionDateTime", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing",
    "SliceThickness", "SpacingBetweenSlices", "Rows", "Columns", "SamplesPerPixel",
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "RescaleSlope", "RescaleIntercept", "NumberOfFrames", "SOPClassUID",
    "EstimatedRadiographicMagnificationFactor", "PixelSpacingCalibrationType",
)
#: the tags (as ints) the fast reader keeps for the frame stage: :data:`FAST_KEYWORDS` and GE's
#: RTIA timer, b-value and its private creator
FAST_TAGS = frozenset(
    {int(Tag(k)) for k in FAST_KEYWORDS}
    | {0x0021105E, 0x00430010, 0x00431039}  # + GE RTIA timer, GE b-value and its creator
)
#: tags whose presence sends a file to the full (pydicom) path: functional groups,
#: ultrasound calibration regions, float pixel data, diffusion attributes (standard,
#: Siemens, Philips), the Modality LUT Sequence, Real World Value Mapping, Philips'
#: private scale slope
FAST_DECLINE = frozenset({0x52009229, 0x52009230, 0x00186011, 0x7FE00008, 0x7FE00009,
                           0x00189087, 0x0019100C, 0x20011003, 0x00283000, 0x00409096,
                           0x2005100E})


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's value-validation warnings (over-long IS, invalid UIDs, ...).

    Headers are read lazily, so these fire long after the file was opened;
    they say nothing a user can act on. Real problems surface as errors or
    as ``skipped`` reasons.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
        yield


#: pydicom's warnings (while parsing) that mean the file ends too early
_TRUNCATION_WARNINGS = ("end of file", "truncated", "unexpected end", "fewer bytes")


def read_header(path: Path) -> tuple[Any, list[str]]:
    """The dataset (pixel data deferred) and pydicom's truncation warnings, if any."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_regular(path) as f:
            gz = f.read(2) == b"\x1f\x8b"
        if gz:
            ds = read_dataset(path)
        else:
            import pydicom

            ds = pydicom.dcmread(path, defer_size=DEFER_BYTES, force=True)
    truncated = [
        str(w.message).split(" in file ")[0]
        for w in caught
        if any(key in str(w.message).lower() for key in _TRUNCATION_WARNINGS)
    ]
    return ds, truncated


def check_elements(ds, path: Path) -> None:
    """Decode every top-level element (large deferred values excepted), so that an
    undecodable one (e.g. an unknown VR such as 'Cs') is reported now, for this file,
    and not later while its series is assembled."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if tag.group in (0x7FE0, 0xFFFE) or (getattr(raw, "value", b"") is None and raw.length):
            continue  # pixel data, a stray item tag (readers skip it), a large value on disk
        try:
            ds[tag]
        except Exception as exc:
            from pydicom.datadict import keyword_for_tag

            kw = keyword_for_tag(tag) or "private or unknown"
            raise DicomReadError(
                f"{path.name}: element {tag} ({kw}) cannot be decoded ({type(exc).__name__}: "
                f"{str(exc).strip()}); the file is malformed. Correct the element in a copy of "
                "the file (e.g. with dcmodify or pydicom) or get a fresh copy from its source"
            ) from exc


def not_dicom_reason(path: Path) -> str:
    problem = file_problem(path, check_read=True)
    if problem is not None:
        return problem
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"{path.name}: cannot be opened ({exc.strerror or exc}); check its permissions"
    if size == 0:
        return f"{path.name}: empty file (0 bytes); not a DICOM file"
    return (
        f"{path.name}: not a DICOM file (no 'DICM' marker at byte 128 and no DICOM tag at "
        f"the start; {size} bytes)"
    )


def not_image_reason(exc: Exception, ds, path: Path, truncated: list[str]) -> str:
    meta = getattr(ds, "file_meta", None)
    sop = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    if sop == "1.2.840.10008.1.3.10" or (ds is not None and "DirectoryRecordSequence" in ds):
        return (
            f"{path.name}: a DICOMDIR (index of a DICOM media folder), not an image; the "
            "images it lists are found and loaded from their own files"
        )
    if truncated:
        return (
            f"{path.name}: the file is truncated ({truncated[0]}), so no pixel data could be "
            "read; not an image as it stands. Get the complete file from its source"
        )
    text = str(exc)
    if "SOP class unknown" in text and sop:
        from pydicom.uid import UID

        text = text.replace("SOP class unknown", f"SOP class {UID(sop).name or sop}")
    return text


def unreadable_reason(exc: Exception, path: Path) -> str:
    text = str(exc).strip() or type(exc).__name__
    if text.startswith(f"{path.name}:"):  # already a complete medlab message
        return text
    return (
        f"{path.name}: cannot parse the DICOM data ({type(exc).__name__}: {text}); the file is "
        "malformed or truncated. Check it with another DICOM tool (e.g. dcmdump) or get a "
        "fresh copy"
    )


WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def check_header(ds, path: Path, truncated: Sequence[str] = ()) -> None:
    """Refuse headers that would make the pixel reader guess (and read wrong data),
    and files whose pixel data are visibly incomplete (so they never join a series)."""
    if "PixelData" in ds:
        problem = pixel_data_problem(ds, path)
        if problem:
            raise DicomReadError(problem)
        if truncated:
            raise DicomReadError(
                f"{path.name}: the file is truncated ({truncated[0]}); its pixel data are "
                "incomplete. Get the complete file from its source"
            )
    raw = ds.get("NumberOfFrames")
    if raw not in (None, ""):
        try:
            ok = int(raw) >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            hint = ""
            elem = ds.get_item(0x7FE00010, keep_deferred=True) if "PixelData" in ds else None
            try:
                frame = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * (
                    int(ds.BitsAllocated) // 8)
                if elem is not None and frame and elem.length and elem.length % frame == 0:
                    hint = f" (the pixel data size suggests {elem.length // frame})"
            except (AttributeError, TypeError, ValueError):
                pass
            raise ValueError(
                f"{path.name}: Number of Frames (0028,0008) is {str(raw)!r}, not a positive "
                f"integer{hint}, so the frames in the pixel data cannot be counted. Correct the "
                "header in a copy of the file (e.g. with pydicom: ds.NumberOfFrames = n; "
                "ds.save_as(copy)) and load the copy"
            )
    if str(ds.get("SOPClassUID", "")) == WSI_SOP_CLASS:
        raise NotAnImageError(
            f"{path.name}: a tiled whole-slide microscopy image ({ds.get('NumberOfFrames')} tiles "
            f"of {ds.get('Rows')}x{ds.get('Columns')} in a {ds.get('TotalPixelMatrixRows')}x"
            f"{ds.get('TotalPixelMatrixColumns')} pixel matrix); medlab does not assemble "
            "whole-slide tiles. Open it with wsidicom or OpenSlide"
        )
