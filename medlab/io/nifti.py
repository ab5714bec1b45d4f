"""NIfTI (and other nibabel formats) at the edge: RAS <-> LPS happens here."""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..diffusion import fsl_to_lps, lps_to_fsl, read_fsl_gradients, write_fsl_gradients
from ..errors import ImageReadError
from ..image import UNKNOWN_SPACING_DESCRIP, Image

__all__ = ["read_nifti", "write_nifti"]


def _stem(path: Path) -> Path:
    name = path.name
    for ext in (".nii.gz", ".nii", ".img", ".hdr", ".mgz", ".mgh"):
        if name.lower().endswith(ext):
            return path.with_name(name[: -len(ext)])
    return path.with_suffix("")


def _sidecar(stem: Path, *exts: str) -> Path | None:
    for ext in exts:
        p = stem.with_name(stem.name + ext)
        if p.is_file():
            return p
    return None


def read_nifti(path: str | os.PathLike) -> Image:
    """Load a NIfTI-1/2 (or another nibabel-readable) image as an :class:`Image`.

    A 4D image with FSL gradient files beside it (``<name>.bval`` and
    ``<name>.bvec``, as dcm2niix writes them) gets a diffusion fourth axis:
    b-values in s/mm2 and directions converted from FSL's voxel frame to
    LPS (:func:`medlab.diffusion.fsl_to_lps`). Files that do not match the
    image are named in a warning and ignored.
    """
    path = Path(path)
    img = _load_checked(path)
    meta, scale = _spacing_meta(img, path)
    try:
        image = Image.from_nibabel(img, meta=meta)
    except (OSError, EOFError, ValueError, OverflowError, zlib.error) as exc:
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError(
            f"{Path(path).name}: cannot read the image data ({type(exc).__name__}: {exc}); the "
            "file is truncated or corrupt. Get the complete file from its source") from exc
    if scale != 1.0:  # metres or microns: the affine is in mm
        affine = image.affine
        affine[:3, :] *= scale
        image = image.with_array(image.array, affine=affine)
    return _with_gradients(image, img, path)


def _with_gradients(image: Image, img, path: Path) -> Image:
    """The image with the diffusion axis of the FSL gradient files beside it, if any."""
    bval = _sidecar(_stem(path), ".bval", ".bvals")
    if image.ndim != 4 or image.channels or bval is None:
        return image
    bvec = _sidecar(_stem(path), ".bvec", ".bvecs")
    try:
        bvals, vecs = read_fsl_gradients(bval, bvec)
        if bvals.shape[0] != image.n_frames:
            raise ValueError(f"{bval.name} has {bvals.shape[0]} b-values for "
                             f"{image.n_frames} volumes")
    except (OSError, ValueError) as exc:
        warnings.warn(f"{path.name}: gradient files ignored: {exc}", stacklevel=3)
        return image
    meta = dict(image.meta, files=[str(path), *(str(p) for p in (bval, bvec) if p)],
                gradient_source="FSL .bval/.bvec")
    meta.pop("nifti_pixdim4", None)
    lps = None if vecs is None else fsl_to_lps(vecs, img.affine)
    return image.with_array(image.array, b_values=bvals, b_vectors=lps, meta=meta)


def _load_checked(path: str | os.PathLike):
    """``nibabel.load`` with medlab's errors, and the header's data size checked
    against the bytes present (uncompressed) or the decode budget (compressed)
    before any data are read."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    from ._limits import check_decode_size

    name = Path(path).name
    logger = nib.imageglobals.logger  # nibabel prints the header fixes it makes
    level = logger.level
    try:
        logger.setLevel(100)
        img: Any = nib.load(str(path))  # a NIfTI-1/2 or Analyze image (typed as the base class)
        shape = tuple(int(n) for n in img.header.get_data_shape())
        itemsize = img.header.get_data_dtype().itemsize
        offset = int(getattr(img.dataobj, "offset", 0) or 0)
    except (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, TypeError,
            zlib.error) as exc:
        raise ImageReadError(
            f"{name}: not a readable NIfTI/Analyze file ({type(exc).__name__}: "
            f"{str(exc).strip() or 'no detail'}); the header is corrupt or the file is "
            "truncated. Check it with another tool (e.g. fslhd) or get a fresh copy") from exc
    finally:
        logger.setLevel(level)
    if any(n < 0 for n in shape):
        raise ImageReadError(
            f"{name}: the header declares a negative size {shape}; the header is corrupt. "
            "Get a fresh copy of the file from its source")
    n_bytes = int(np.prod(shape, dtype=object)) * itemsize if shape else 0
    claim = " x ".join(str(n) for n in shape) + f" voxels x {itemsize} byte(s)"
    image_file = img.file_map["image"].filename or str(path)
    compressed = str(image_file).endswith((".gz", ".bz2", ".zst")) or _is_gzip(image_file)
    if compressed:
        check_decode_size(n_bytes, claim, name)
    else:
        present = os.path.getsize(image_file) - offset
        if n_bytes > present:
            raise ImageReadError(
                f"{name}: the header declares {claim} = {n_bytes} bytes of image data, but the "
                f"file holds {max(present, 0)} bytes after the header (offset {offset}); the "
                "file is truncated or its header is corrupt. Get the complete file from its "
                "source")
    return img


def _is_gzip(path: str | os.PathLike) -> bool:
    from .dicom._files import open_regular

    try:
        with open_regular(path) as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def _spacing_meta(img, path: str | os.PathLike) -> tuple[dict, float]:
    """Where the spacing of a nibabel image comes from, and its unit in mm."""
    meta = {"source": "nifti", "files": [str(path)], "spacing_plane": "patient"}
    try:
        unit = img.header.get_xyzt_units()[0]
    except AttributeError:  # formats without xyzt_units (MGH, ...): mm by definition
        unit = "mm"
    descrip = bytes(img.header.get("descrip", b"") or b"") if hasattr(img.header, "get") else b""
    if unit == "unknown" and descrip.startswith(UNKNOWN_SPACING_DESCRIP):  # written by medlab
        meta.update(spacing_source="unknown", spacing_plane="unknown")
        return meta, 1.0
    # NIfTI-1 spatial unit 0 ("unknown") is what nibabel writes by default: nibabel, ITK and
    # FSL read such files as mm, and so does medlab (the source says it was assumed)
    meta["spacing_source"] = ("NIfTI header" if unit in _UNIT_TO_MM else
                              "NIfTI header (spatial unit unknown: mm assumed, as nibabel and ITK)")
    return meta, _UNIT_TO_MM.get(unit, 1.0)


#: NIfTI xyzt spatial units, as nibabel names them, in mm
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001}


def write_nifti(image: Image, path: str | os.PathLike) -> Path:
    """Write ``image`` as NIfTI-1 (``.nii`` or ``.nii.gz``).

    A diffusion image also gets ``<name>.bval`` and ``<name>.bvec`` (FSL
    convention) beside it.
    """
    import nibabel as nib

    nii = image.to_nibabel()
    nib.save(nii, str(path))
    if image.b_values is not None:
        vec = image.b_vectors
        write_fsl_gradients(_stem(Path(path)), image.b_values,
                            None if vec is None else lps_to_fsl(vec, nii.affine))
    return Path(path)
