"""NIfTI (and other nibabel formats) at the edge: RAS <-> LPS happens here."""

from __future__ import annotations

import os
from pathlib import Path

from ..image import UNKNOWN_SPACING_DESCRIP, Image

__all__ = ["read_nifti", "write_nifti"]


def read_nifti(path: str | os.PathLike) -> Image:
    """Load a NIfTI-1/2 (or another nibabel-readable) image as an :class:`Image`."""
    import nibabel as nib

    img = nib.load(str(path))
    meta = {"source": "nifti", "files": [str(path)], "spacing_plane": "patient"}
    try:
        unit = img.header.get_xyzt_units()[0]
    except AttributeError:  # formats without xyzt_units (MGH, ...): mm by definition
        unit = "mm"
    scale = _UNIT_TO_MM.get(unit, 1.0)
    descrip = bytes(img.header.get("descrip", b"") or b"") if hasattr(img.header, "get") else b""
    if unit == "unknown" and descrip.startswith(UNKNOWN_SPACING_DESCRIP):  # written by medlab
        meta.update(spacing_source="unknown", spacing_plane="unknown")
        return Image.from_nibabel(img, meta=meta)
    # NIfTI-1 spatial unit 0 ("unknown") is what nibabel writes by default: nibabel, ITK and
    # FSL read such files as mm, and so does medlab (the source says it was assumed)
    meta["spacing_source"] = ("NIfTI header" if unit in _UNIT_TO_MM else
                              "NIfTI header (spatial unit unknown: mm assumed, as nibabel and ITK)")
    image = Image.from_nibabel(img, meta=meta)
    if scale != 1.0:  # metres or microns: the affine is in mm
        affine = image.affine
        affine[:3, :] *= scale
        image = image.with_array(image.array, affine=affine)
    return image


#: NIfTI xyzt spatial units, as nibabel names them, in mm
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001}


def write_nifti(image: Image, path: str | os.PathLike) -> Path:
    """Write ``image`` as NIfTI-1 (``.nii`` or ``.nii.gz``)."""
    import nibabel as nib

    nib.save(image.to_nibabel(), str(path))
    return Path(path)
