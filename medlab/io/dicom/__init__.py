"""DICOM reading: find files by content, assemble series, build images.

The public entry points are :func:`medlab.load` / :func:`medlab.io.load_all`;
this subpackage also exposes :func:`scan` (headers only) and
:func:`check_stack` (the series-geometry check the cohort index reuses).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
from pydicom.tag import Tag
from tqdm.auto import tqdm

# Not in __all__: sort_indices_in_time, stack_geometry, FastHeader, can_decode, claim_problem,
# transfer_syntax (and frames_from_dataset, read_fast_header, plan_volumes, read_pixels ...) are
# the documented internal API of the DICOM stages (header -> frames -> plan -> pixels) for other
# medlab subpackages (cohort's index, the gallery's thumbnails). Other subpackages import them
# from here, never from io.dicom's underscore modules.
from ...errors import DicomReadError, ImageReadError, SeriesAssemblyError
from ...image import Image
from ._assemble import StackCheck, VolumePlan, check_stack, plan_volumes
from ._assemble import sort_indices_in_time as sort_indices_in_time
from ._assemble import stack_geometry as stack_geometry
from ._fastheader import FastDataset, read_fast_header
from ._fastheader import FastHeader as FastHeader
from ._files import file_problem, iter_files, looks_like_dicom, open_regular, read_dataset
from ._frames import Frame, NotAnImageError, frames_from_dataset
from ._pixels import can_decode as can_decode
from ._pixels import claim_problem as claim_problem
from ._pixels import pixel_data_problem, read_pixels
from ._pixels import transfer_syntax as transfer_syntax
from ._spacing import PixelSpacingInfo, pixel_spacing

__all__ = [
    "Frame",
    "ImageCollection",
    "PixelSpacingInfo",
    "StackCheck",
    "VolumePlan",
    "check_stack",
    "file_problem",
    "iter_files",
    "looks_like_dicom",
    "pixel_spacing",
    "plan",
    "read_dataset",
    "read_dicom",
    "scan",
]

Irregular = Literal["error", "stack"]

#: Values longer than this are not read while scanning headers (pixel data, big
#: private blobs); their file offset is kept so pixels can be read directly.
_DEFER_BYTES = 1024


class ImageCollection(dict):
    """A ``dict`` of id -> :class:`~medlab.Image`, plus what could not be loaded.

    Attributes
    ----------
    skipped : pandas.DataFrame
        One row per file or series that was not loaded: ``path`` (or image
        id) and ``reason``.
    """

    def __init__(
        self,
        images: dict[str, Image],
        skipped: list[tuple[str, str]],
        errors: dict[tuple[str, str], Exception] | None = None,
    ) -> None:
        super().__init__(images)
        self.skipped = pd.DataFrame(skipped, columns=["path", "reason"])
        # (path, reason) -> the exception behind a skipped row, so that medlab.load can
        # raise the specific error class (e.g. UnsupportedTransferSyntaxError)
        self._errors = dict(errors or {})

    def summary(self) -> pd.DataFrame:
        """One row per image: id, modality, shape, spacing and its provenance, orientation, frames.

        ``spacing_mm`` is None where the pixel spacing is unknown;
        ``spacing_source`` and ``spacing_plane`` say where it came from
        (:attr:`medlab.Image.spacing_source`).
        """
        rows = []
        for key, img in self.items():
            rows.append(
                {
                    "id": key,
                    "modality": img.meta.get("modality"),
                    "shape": img.shape,
                    "spacing_mm": (tuple(round(s, 4) for s in img.spacing)
                                   if img.spacing_known else None),
                    "spacing_source": img.spacing_source,
                    "spacing_plane": img.spacing_plane,
                    "orientation": img.orientation,
                    "n_frames": img.n_frames,
                    "dtype": str(img.dtype),
                }
            )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (
            f"ImageCollection({len(self)} images: {list(self)}; "
            f"{len(self.skipped)} skipped)"
        )


def scan(
    paths: str | os.PathLike | Iterable[str | os.PathLike], *, progress: bool = True
) -> tuple[list[Frame], list[tuple[str, str]]]:
    """Read the headers of every DICOM file under ``paths``.

    Returns
    -------
    frames : list of Frame
        One per 2D frame (multi-frame objects and mosaics give several).
    skipped : list of (path, reason)
        Files that are not DICOM, not images, or unreadable (no read
        permission, special files such as FIFOs, sockets and devices, which
        are never opened, symbolic-link loops). Never raises for a single
        bad file.
    """
    files = list(iter_files(paths))
    frames: list[Frame] = []
    skipped: list[tuple[str, str]] = []
    for path in tqdm(files, desc="reading DICOM headers", unit="file",
                     disable=not progress or len(files) < 200):
        problem = file_problem(path)
        if problem is not None:
            skipped.append((str(path), problem))
            continue
        if not looks_like_dicom(path):
            skipped.append((str(path), _not_dicom_reason(path)))
            continue
        fast = _fast_frames(path)
        if fast is not None:
            frames.extend(fast)
            continue
        truncated: list[str] = []
        ds = None
        try:
            ds, truncated = _read_header(path)
            with quiet_pydicom():
                _check_elements(ds, path)
                _check_header(ds, path, truncated)
                frames.extend(frames_from_dataset(ds, path))
        except NotAnImageError as exc:
            skipped.append((str(path), _not_image_reason(exc, ds, path, truncated)))
        except Exception as exc:  # a corrupt file must not stop the scan
            skipped.append((str(path), _unreadable_reason(exc, path)))
    return frames, skipped


#: what the fast path reads from each plain single-frame file
_FAST_KEYWORDS = (
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
_FAST_TAGS = frozenset(
    {int(Tag(k)) for k in _FAST_KEYWORDS}
    | {0x0021105E, 0x00430010, 0x00431039}  # + GE RTIA timer, GE b-value and its creator
)
#: tags whose presence sends a file to the full (pydicom) path: functional groups,
#: ultrasound calibration regions, float pixel data, diffusion attributes (standard,
#: Siemens, Philips), the Modality LUT Sequence, Real World Value Mapping, Philips'
#: private scale slope
_FAST_DECLINE = frozenset({0x52009229, 0x52009230, 0x00186011, 0x7FE00008, 0x7FE00009,
                           0x00189087, 0x0019100C, 0x20011003, 0x00283000, 0x00409096,
                           0x2005100E})


def _fast_frames(path: Path) -> list[Frame] | None:
    """Frames of a plain single-frame little-endian file via the fast header reader.

    None when the file needs the full reader: multi-frame, mosaic, enhanced,
    ultrasound regions, packed bits, or anything odd about its pixel data (the
    full reader then explains what is wrong).
    """
    fh = read_fast_header(path, _FAST_TAGS)
    if fh is None or fh.pixel_offset is None or fh.seen & _FAST_DECLINE:
        return None
    ds = FastDataset(fh)
    n_frames = ds.get("NumberOfFrames", 1)
    image_type = ds.get("ImageType") or []
    bits = ds.get("BitsAllocated")
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if (n_frames not in (1, "1") or "MOSAIC" in image_type or bits not in (8, 16, 32)
            or not rows or not cols or str(ds.get("SOPClassUID", "")) == _WSI_SOP_CLASS):
        return None
    if fh.pixel_length is not None:  # uncompressed: the length must match the header
        samples = ds.get("SamplesPerPixel", 1)
        if str(ds.get("PhotometricInterpretation", "")).endswith("_422"):
            return None
        expected = rows * cols * samples * bits // 8
        if fh.pixel_length < expected or fh.pixel_offset + fh.pixel_length > path.stat().st_size:
            return None
    try:
        return frames_from_dataset(ds, path, fast=fh)
    except Exception:  # anything unexpected: let the full reader explain it
        return None


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


def _read_header(path: Path):
    """The dataset (pixel data deferred) and pydicom's truncation warnings, if any."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_regular(path) as f:
            gz = f.read(2) == b"\x1f\x8b"
        if gz:
            ds = read_dataset(path)
        else:
            import pydicom

            ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)
    truncated = [
        str(w.message).split(" in file ")[0]
        for w in caught
        if any(key in str(w.message).lower() for key in _TRUNCATION_WARNINGS)
    ]
    return ds, truncated


def _check_elements(ds, path: Path) -> None:
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


def _not_dicom_reason(path: Path) -> str:
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


def _not_image_reason(exc: Exception, ds, path: Path, truncated: list[str]) -> str:
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


def _unreadable_reason(exc: Exception, path: Path) -> str:
    text = str(exc).strip() or type(exc).__name__
    if text.startswith(f"{path.name}:"):  # already a complete medlab message
        return text
    return (
        f"{path.name}: cannot parse the DICOM data ({type(exc).__name__}: {text}); the file is "
        "malformed or truncated. Check it with another DICOM tool (e.g. dcmdump) or get a "
        "fresh copy"
    )


_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _check_header(ds, path: Path, truncated: Sequence[str] = ()) -> None:
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
    if str(ds.get("SOPClassUID", "")) == _WSI_SOP_CLASS:
        raise NotAnImageError(
            f"{path.name}: a tiled whole-slide microscopy image ({ds.get('NumberOfFrames')} tiles "
            f"of {ds.get('Rows')}x{ds.get('Columns')} in a {ds.get('TotalPixelMatrixRows')}x"
            f"{ds.get('TotalPixelMatrixColumns')} pixel matrix); medlab does not assemble "
            "whole-slide tiles. Open it with wsidicom or OpenSlide"
        )


def plan(
    paths: str | os.PathLike | Iterable[str | os.PathLike], *, progress: bool = True
) -> tuple[list[VolumePlan], list[tuple[str, str]]]:
    """Scan headers and group them into images, without reading pixels."""
    frames, skipped = scan(paths, progress=progress)
    plans, problems = plan_volumes(frames)
    return plans, skipped + problems


def read_dicom(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    irregular: Irregular = "error",
    scaling: Literal["quantitative", "display"] = "quantitative",
    progress: bool = True,
) -> ImageCollection:
    """Load every DICOM image under ``paths``.

    Parameters
    ----------
    paths : path or list of paths
        Files and/or folders (searched recursively, files found by content).
    irregular : {'error', 'stack'}
        What to do with a stack whose slices are unevenly spaced or missing:
        ``'error'`` lists it in ``skipped`` with the reason; ``'stack'``
        loads it with the mean slice step and records the problem in
        ``meta['geometry_warning']`` (and warns).
    scaling : {'quantitative', 'display'}
        Which values to return, as dcm2niix does by default: ``'quantitative'``
        gives Philips' floating-point values where the private scale slope
        (2005,100E) is present (``FP = (SV * RS + RI) / (RS * SS)``) and the Real
        World Value Mapping of images without Rescale Slope/Intercept
        (Parametric Maps); ``'display'`` gives the Rescale Slope/Intercept
        values only (what the scanner console shows). A Modality LUT Sequence
        is applied in both. ``meta['scaling']`` records what was applied:
        ``'rescale'``, ``'philips-float'``, ``'real-world-value-mapping'``,
        ``'modality-lut'`` (absent: stored values).
    progress : bool
        Show a progress bar on long reads.

    Returns
    -------
    ImageCollection
        id -> Image, with ``.skipped`` naming what was not loaded and why.
    """
    if irregular not in ("error", "stack"):
        raise ValueError(f"irregular must be 'error' or 'stack', got {irregular!r}")
    if scaling not in ("quantitative", "display"):
        raise ValueError(f"scaling must be 'quantitative' or 'display', got {scaling!r}")
    frames, skipped = scan(paths, progress=progress)
    with quiet_pydicom():
        plans, problems = plan_volumes(frames)
    errors: dict[tuple[str, str], Exception] = {}

    def fail(key: str, exc: Exception) -> None:
        row = (key, str(exc))
        skipped.append(row)
        errors[row] = exc

    for gid, problem in problems:
        fail(gid, SeriesAssemblyError(problem))
    images: dict[str, Image] = {}
    queue = list(plans)
    taken = {p.id for p in plans}
    bar = tqdm(total=len(queue), desc="reading pixel data", unit="image",
               disable=not progress or len(plans) < 20)
    while queue:
        p = queue.pop(0)
        bar.update(1)
        if p.check is not None and not p.check.regular:
            if irregular == "error":
                fail(p.id, SeriesAssemblyError(
                    f"{p.check.problem}. Pass irregular='stack' to load it anyway "
                    "(the mean slice step is used), or load a regular subset of files"))
                continue
            p.meta["geometry_warning"] = p.check.problem
            warnings.warn(f"{p.id}: {p.check.problem}; stacked with the mean slice step",
                          stacklevel=2)
        try:
            p.scaling_mode = scaling
            array, channels = read_pixels(p)
            images[p.id] = Image(array, p.affine, channels=channels, meta=p.meta,
                                 **p.image_axis())
        except ImageReadError as exc:  # DicomReadError, or a header claim over the budget
            bad = getattr(exc, "path", None)
            rest = [f for f in p.frames if str(f.path) != str(bad)]
            if bad is None or not rest:
                fail(p.id, exc)
                continue
            # one file of a multi-file image failed: list it on its own and rebuild the
            # image from the other files (a gap then shows up in the geometry check)
            fail(str(bad), exc)
            with quiet_pydicom():
                again, problems = plan_volumes(rest)
            for gid, problem in problems:
                fail(gid, SeriesAssemblyError(problem))
            for n, q in enumerate(again):
                new_id = p.id if len(again) == 1 else f"{p.id}-{n + 1}"
                while new_id in taken and new_id != p.id:
                    new_id += "~"
                q.id = q.meta["id"] = new_id
                taken.add(new_id)
                q.meta["excluded_files"] = [*p.meta.get("excluded_files", []), str(bad)]
            queue[:0] = again
            bar.total += len(again)
        except Exception as exc:  # one bad image never stops the others
            files = ", ".join(sorted({f.path.name for f in p.frames})[:3])
            fail(p.id, DicomReadError(
                f"{files}: unexpected {type(exc).__name__} while reading the pixel data: {exc}. "
                "This is a medlab bug or a file that breaks an assumption; please report it "
                "with the file's header (dcmdump or pydicom)"))
    bar.close()
    return ImageCollection(images, skipped, errors)


def load_one(path: str | os.PathLike, **kwargs) -> Image:
    """Load the single DICOM image under ``path``; clear errors otherwise."""
    from ...errors import MultipleImagesError

    images = read_dicom(path, **kwargs)
    if len(images) == 1:
        return next(iter(images.values()))
    if not images:
        rows = list(images.skipped.itertuples(index=False, name=None))
        reasons = "; ".join(
            r if r.startswith(f"{Path(p).name}:") else f"{Path(p).name}: {r}" for p, r in rows
        )
        # the specific class when every failure that raised one agrees
        # (e.g. UnsupportedTransferSyntaxError for a file no decoder handles)
        classes = {type(e) for e in (images._errors.get(row) for row in rows) if e is not None}
        if len(classes) == 1:
            errcls = classes.pop()
        elif SeriesAssemblyError in classes:
            errcls = SeriesAssemblyError
        else:
            errcls = DicomReadError
        raise errcls(f"no image could be loaded from {str(path)!r}: {reasons or 'no DICOM files'}")
    raise MultipleImagesError(
        f"{str(path)!r} holds {len(images)} images: {', '.join(images)}. "
        "Use medlab.io.load_all(path) to get all of them keyed by these ids, "
        "or point medlab.load at one series' folder or file",
        ids=list(images),
    )
