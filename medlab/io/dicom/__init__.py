"""DICOM reading: find files by content, assemble series, build images.

The public entry points are :func:`medlab.load` / :func:`medlab.io.load_all`;
this subpackage also exposes :func:`scan` (headers only) and
:func:`check_stack` (the series-geometry check the cohort index reuses).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pandas as pd
from tqdm.auto import tqdm

from ...errors import DicomReadError, SeriesAssemblyError
from ...image import Image
from ._assemble import StackCheck, VolumePlan, check_stack, plan_volumes
from ._files import iter_files, looks_like_dicom, read_dataset
from ._frames import Frame, NotAnImageError, frames_from_dataset
from ._pixels import read_pixels

__all__ = [
    "Frame",
    "ImageCollection",
    "StackCheck",
    "VolumePlan",
    "check_stack",
    "iter_files",
    "looks_like_dicom",
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

    def __init__(self, images: dict[str, Image], skipped: list[tuple[str, str]]) -> None:
        super().__init__(images)
        self.skipped = pd.DataFrame(skipped, columns=["path", "reason"])

    def summary(self) -> pd.DataFrame:
        """One row per image: id, modality, shape, spacing, orientation, frames."""
        rows = []
        for key, img in self.items():
            rows.append(
                {
                    "id": key,
                    "modality": img.meta.get("modality"),
                    "shape": img.shape,
                    "spacing_mm": tuple(round(s, 4) for s in img.spacing),
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
        Files that are not DICOM, not images, or unreadable. Never raises
        for a single bad file.
    """
    files = list(iter_files(paths))
    frames: list[Frame] = []
    skipped: list[tuple[str, str]] = []
    for path in tqdm(files, desc="reading DICOM headers", unit="file",
                     disable=not progress or len(files) < 200):
        if not looks_like_dicom(path):
            skipped.append((str(path), "not a DICOM file"))
            continue
        try:
            ds = _read_header(path)
            frames.extend(frames_from_dataset(ds, path))
        except NotAnImageError as exc:
            skipped.append((str(path), str(exc)))
        except Exception as exc:  # a corrupt file must not stop the scan
            skipped.append((str(path), f"unreadable DICOM: {type(exc).__name__}: {exc}"))
    return frames, skipped


def _read_header(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        if gz:
            return read_dataset(path)
        import pydicom

        return pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)


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
    progress : bool
        Show a progress bar on long reads.

    Returns
    -------
    ImageCollection
        id -> Image, with ``.skipped`` naming what was not loaded and why.
    """
    if irregular not in ("error", "stack"):
        raise ValueError(f"irregular must be 'error' or 'stack', got {irregular!r}")
    plans, skipped = plan(paths, progress=progress)
    images: dict[str, Image] = {}
    for p in tqdm(plans, desc="reading pixel data", unit="image",
                  disable=not progress or len(plans) < 20):
        if p.check is not None and not p.check.regular:
            if irregular == "error":
                skipped.append(
                    (p.id, f"{p.check.problem}. Pass irregular='stack' to load it anyway "
                           "(the mean slice step is used), or load a regular subset of files")
                )
                continue
            p.meta["geometry_warning"] = p.check.problem
            warnings.warn(f"{p.id}: {p.check.problem}; stacked with the mean slice step",
                          stacklevel=2)
        try:
            array, channels = read_pixels(p)
        except DicomReadError as exc:
            skipped.append((p.id, str(exc)))
            continue
        images[p.id] = Image(
            array, p.affine, frame_times_s=p.frame_times_s, channels=channels, meta=p.meta
        )
    return ImageCollection(images, skipped)


def load_one(path: str | os.PathLike, **kwargs) -> Image:
    """Load the single DICOM image under ``path``; clear errors otherwise."""
    from ...errors import MultipleImagesError

    images = read_dicom(path, **kwargs)
    if len(images) == 1:
        return next(iter(images.values()))
    if not images:
        reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in images.skipped.itertuples(index=False))
        errcls = SeriesAssemblyError if any(
            not Path(p).exists() for p in images.skipped["path"]) else DicomReadError
        raise errcls(f"no image could be loaded from {str(path)!r}: {reasons or 'no DICOM files'}")
    raise MultipleImagesError(
        f"{str(path)!r} holds {len(images)} images: {', '.join(images)}. "
        "Use medlab.io.load_all(path) to get all of them keyed by these ids, "
        "or point medlab.load at one series' folder or file",
        ids=list(images),
    )
