"""NRRD, MetaImage (MHA/MHD) and other formats through SimpleITK."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ImageReadError
from ..image import Image

__all__ = ["read_itk", "write_itk"]


def read_itk(path: str | os.PathLike) -> Image:
    """Load an image SimpleITK can read (NRRD, MHA/MHD, PNG, ...) as an :class:`Image`.

    4D files get a fourth axis of unknown kind: ITK keeps no unit for the
    4th spacing (``meta['itk_spacing4']``), so no time is invented; give
    the times with ``image.with_array(image.array, frame_times_s=...)``.
    """
    import numpy as np
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageReadError(
            f"SimpleITK cannot read {str(path)!r}: {str(exc).strip().splitlines()[-1]}"
        ) from exc
    meta: dict[str, Any] = {"source": "itk", "files": [str(path)], **_spacing_provenance(path, img)}
    if img.GetDimension() == 4:
        frames = [sitk.Extract(img, [*img.GetSize()[:3], 0], [0, 0, 0, t])
                  for t in range(img.GetSize()[3])]
        vols = [Image.from_simpleitk(f) for f in frames]
        arr = np.stack([v.array for v in vols], axis=3)
        meta["itk_spacing4"] = float(img.GetSpacing()[3])
        return Image(arr, vols[0].affine, frame_axis="unknown", meta=meta)
    return Image.from_simpleitk(img, meta=meta)


#: header key written for images whose spacing is unknown
_SPACING_KEY = "medlab_spacing_source"
#: header formats whose spacing is a physical voxel size (mm by ITK's convention)
_HEADER_SOURCES = {".nrrd": "NRRD header", ".nhdr": "NRRD header", ".mha": "MetaImage header",
                   ".mhd": "MetaImage header"}
#: picture formats: a spacing of exactly 1 means the file gave none
_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


def _spacing_provenance(path: str | os.PathLike, img: object) -> dict[str, str]:
    """``spacing_source``/``spacing_plane`` of an image read by SimpleITK."""
    name = str(path).lower()
    if img.HasMetaDataKey(_SPACING_KEY) and img.GetMetaData(_SPACING_KEY) == "unknown":  # type: ignore[attr-defined]
        return {"spacing_source": "unknown", "spacing_plane": "unknown"}
    for suffix, source in _HEADER_SOURCES.items():
        if name.endswith(suffix):
            return {"spacing_source": source, "spacing_plane": "patient"}
    if name.endswith(_PICTURE_SUFFIXES) and all(s == 1.0 for s in img.GetSpacing()):  # type: ignore[attr-defined]
        return {"spacing_source": "unknown", "spacing_plane": "unknown"}
    return {"spacing_source": "image header", "spacing_plane": "patient"}


def write_itk(image: Image, path: str | os.PathLike, *, compress: bool = True) -> Path:
    """Write ``image`` with SimpleITK (format from the extension: .nrrd, .mha, .mhd).

    An image of unknown spacing is written with its 1-pixel placeholder and the
    header key ``medlab_spacing_source = unknown``, so that it reads back unknown.
    """
    import SimpleITK as sitk

    out = image.to_simpleitk()
    if not image.spacing_known:
        out.SetMetaData(_SPACING_KEY, "unknown")
    sitk.WriteImage(out, str(path), useCompression=compress)
    return Path(path)
