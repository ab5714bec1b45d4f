"""NIfTI (and other nibabel formats) at the edge: RAS <-> LPS happens here."""

from __future__ import annotations

import os
from pathlib import Path

from ..image import Image

__all__ = ["read_nifti", "write_nifti"]


def read_nifti(path: str | os.PathLike) -> Image:
    """Load a NIfTI-1/2 (or another nibabel-readable) image as an :class:`Image`."""
    import nibabel as nib

    img = nib.load(str(path))
    return Image.from_nibabel(img, meta={"source": "nifti", "files": [str(path)]})


def write_nifti(image: Image, path: str | os.PathLike) -> Path:
    """Write ``image`` as NIfTI-1 (``.nii`` or ``.nii.gz``)."""
    import nibabel as nib

    nib.save(image.to_nibabel(), str(path))
    return Path(path)
