"""NIfTI (and other nibabel formats) at the edge: RAS <-> LPS happens here."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..diffusion import fsl_to_lps, lps_to_fsl, read_fsl_gradients, write_fsl_gradients
from ..image import Image

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
    import nibabel as nib

    path = Path(path)
    img = nib.load(str(path))
    meta = {"source": "nifti", "files": [str(path)]}
    image = Image.from_nibabel(img, meta=meta)
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
        warnings.warn(f"{path.name}: gradient files ignored: {exc}", stacklevel=2)
        return image
    meta = dict(image.meta, files=[str(path), *(str(p) for p in (bval, bvec) if p)],
                gradient_source="FSL .bval/.bvec")
    meta.pop("nifti_pixdim4", None)
    lps = None if vecs is None else fsl_to_lps(vecs, img.affine)
    return image.with_array(image.array, b_values=bvals, b_vectors=lps, meta=meta)


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
