"""DICOM reading: find files by content, assemble series, build images.

The public entry points are :func:`medlab.load` / :func:`medlab.io.load_all`;
this subpackage also exposes :func:`scan` (headers only) and
:func:`check_stack` (the series-geometry check the cohort index reuses).

Reading goes through four stages, each a module that is the documented internal
API for other medlab subpackages: :mod:`~medlab.io.dicom.header` (a file's
header, checked) -> :mod:`~medlab.io.dicom.frames` (one record per 2D frame)
-> :mod:`~medlab.io.dicom.plans` (frames grouped into images, no pixel read)
-> :mod:`~medlab.io.dicom.pixels` (the pixels of a plan, as an Image), with
:mod:`~medlab.io.dicom.values` converting header values. :func:`read_dicom`
runs them over folders; the cohort index stores the frames of its scan and
plans a series from them (:meth:`medlab.cohort.Index.load_series`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pandas as pd
from tqdm.auto import tqdm

# The stages of DICOM reading, header -> frames -> plans -> pixels, are the documented internal
# API for other medlab subpackages (the cohort index, the gallery's thumbnails): the modules
# medlab.io.dicom.header, .frames, .plans and .pixels (and .values, the one converter of
# header values). Other subpackages import from those or from here, never from io.dicom's
# underscore modules. Not in __all__: the names below re-exported for them.
from ...errors import DicomReadError, ImageReadError, SeriesAssemblyError
from ...image import Image
from . import pixels
from ._files import file_problem, iter_files, looks_like_dicom, read_dataset
from ._spacing import PixelSpacingInfo, pixel_spacing
from .frames import FastFrames, Frame, file_frames
from .frames import NotAnImageError as NotAnImageError
from .frames import frames_from_dataset as frames_from_dataset
from .header import FAST_TAGS, HeaderReader, quiet_pydicom
from .header import FastDataset as FastDataset
from .header import FastHeader as FastHeader
from .header import read_fast_header as read_fast_header
from .pixels import can_decode as can_decode
from .pixels import claim_problem as claim_problem
from .pixels import read_pixels as read_pixels
from .pixels import transfer_syntax as transfer_syntax
from .plans import Irregular, StackCheck, VolumePlan, check_stack, irregular_problem, loadable
from .plans import plan_volumes as plan_volumes
from .plans import sort_indices_in_time as sort_indices_in_time
from .plans import stack_geometry as stack_geometry

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

    def error(self, what: str) -> ImageReadError:
        """The error to raise when nothing was loaded: ``what`` and every reason in ``skipped``.

        Its class is the specific one (e.g. UnsupportedTransferSyntaxError for a file no
        decoder handles) when every failure that raised one agrees;
        SeriesAssemblyError when assembly was among them; DicomReadError otherwise.
        """
        rows = list(self.skipped.itertuples(index=False, name=None))
        reasons = "; ".join(
            r if r.startswith(f"{Path(p).name}:") else f"{Path(p).name}: {r}" for p, r in rows
        )
        classes = {type(e) for e in (self._errors.get(row) for row in rows) if e is not None}
        if len(classes) == 1:
            errcls = classes.pop()
        elif SeriesAssemblyError in classes:
            errcls = SeriesAssemblyError
        else:
            errcls = DicomReadError
        return errcls(f"{what}: {reasons or 'no DICOM files'}")

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
    # the files of a series repeat their header layout: read by comparison with the last one
    headers, fast = HeaderReader(FAST_TAGS), FastFrames()
    for path in tqdm(files, desc="reading DICOM headers", unit="file",
                     disable=not progress or len(files) < 200):
        found, reason = file_frames(path, headers=headers, frames=fast)
        if reason is not None:
            skipped.append((str(path), reason))
        frames.extend(found)
    return frames, skipped


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
    _check_options(irregular, scaling)
    frames, skipped = scan(paths, progress=progress)
    with quiet_pydicom():
        plans, problems = plan_volumes(frames)
    return read_plans(plans, problems, skipped, irregular=irregular, scaling=scaling,
                      progress=progress)


def _check_options(irregular: str, scaling: str) -> None:
    if irregular not in ("error", "stack"):
        raise ValueError(f"irregular must be 'error' or 'stack', got {irregular!r}")
    if scaling not in ("quantitative", "display"):
        raise ValueError(f"scaling must be 'quantitative' or 'display', got {scaling!r}")


def read_plans(
    plans: list[VolumePlan],
    problems: Iterable[tuple[str, str]] = (),
    skipped: Iterable[tuple[str, str]] = (),
    *,
    irregular: Irregular = "error",
    scaling: Literal["quantitative", "display"] = "quantitative",
    progress: bool = True,
) -> ImageCollection:
    """The pixel stage over planned images: each plan's Image, or why not.

    Documented internal API (the cohort index loads a series from the plan of its
    stored frames with it). ``problems`` are the plan stage's groups that form no
    image and ``skipped`` the files the header stage skipped: both go to the
    collection's ``skipped``. One bad image never stops the others; a multi-file
    image with one unreadable file is planned again without it.
    """
    _check_options(irregular, scaling)
    skipped = list(skipped)
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
        refused = irregular_problem(p, irregular)
        if refused is not None:
            fail(p.id, SeriesAssemblyError(refused))
            continue
        if p.check is not None and not p.check.regular:
            p.meta["geometry_warning"] = p.check.problem
            warnings.warn(f"{p.id}: {p.check.problem}; stacked with the mean slice step",
                          stacklevel=3)
        try:
            p.scaling_mode = scaling
            images[p.id] = pixels.image_from_plan(p)  # the pixel stage
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


def several_images_error(ids: list[str], where: str, hint: str) -> Exception:
    """The MultipleImagesError for ``where`` (e.g. a folder) holding the images ``ids``."""
    from ...errors import MultipleImagesError

    return MultipleImagesError(f"{where} holds {len(ids)} images: {', '.join(ids)}. {hint}",
                               ids=list(ids))


_LOAD_ALL_HINT = ("Use medlab.io.load_all(path) to get all of them keyed by these ids, "
                  "or point medlab.load at one series' folder or file")


def load_one(
    path: str | os.PathLike,
    *,
    irregular: Irregular = "error",
    scaling: Literal["quantitative", "display"] = "quantitative",
    progress: bool = True,
) -> Image:
    """Load the single DICOM image under ``path``; clear errors otherwise.

    Several images are found from the plan, before any pixel is decoded.
    """
    _check_options(irregular, scaling)
    frames, skipped = scan(path, progress=progress)
    with quiet_pydicom():
        plans, problems = plan_volumes(frames)
    several = loadable(plans, irregular)
    if len(several) > 1:
        raise several_images_error([p.id for p in several], repr(str(path)), _LOAD_ALL_HINT)
    images = read_plans(plans, problems, skipped, irregular=irregular, scaling=scaling,
                        progress=progress)
    if len(images) == 1:
        return next(iter(images.values()))
    if not images:
        raise images.error(f"no image could be loaded from {str(path)!r}")
    # a file that failed to decode split its image in several
    raise several_images_error(list(images), repr(str(path)), _LOAD_ALL_HINT)
