"""NRRD, MetaImage (MHA/MHD) and other formats through SimpleITK."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MedlabError
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
        raise MedlabError(
            f"SimpleITK cannot read {str(path)!r}: {str(exc).strip().splitlines()[-1]}"
        ) from exc
    meta = {"source": "itk", "files": [str(path)]}
    if img.GetDimension() == 4:
        frames = [sitk.Extract(img, [*img.GetSize()[:3], 0], [0, 0, 0, t])
                  for t in range(img.GetSize()[3])]
        vols = [Image.from_simpleitk(f) for f in frames]
        arr = np.stack([v.array for v in vols], axis=3)
        meta["itk_spacing4"] = float(img.GetSpacing()[3])
        return Image(arr, vols[0].affine, frame_axis="unknown", meta=meta)
    return Image.from_simpleitk(img, meta=meta)


def write_itk(image: Image, path: str | os.PathLike, *, compress: bool = True) -> Path:
    """Write ``image`` with SimpleITK (format from the extension: .nrrd, .mha, .mhd)."""
    import SimpleITK as sitk

    sitk.WriteImage(image.to_simpleitk(), str(path), useCompression=compress)
    return Path(path)
