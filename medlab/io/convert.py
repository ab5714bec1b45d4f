"""DICOM to NIfTI conversion with BIDS-style JSON sidecars.

Field names and units follow the BIDS specification (times in seconds).
``PhaseEncodingDirection`` refers to the axes of the NIfTI file written
here (``i`` = DICOM column index, ``j`` = DICOM row index, as stored: the
row order is not flipped). Where the polarity is not in the headers, only
``PhaseEncodingAxis`` is written.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from .._version import __version__
from ..image import Image
from .dicom import read_dataset, read_dicom
from .nifti import write_nifti

__all__ = ["bids_sidecar", "dicom_to_nifti"]

_MS_FIELDS = {"RepetitionTime": "RepetitionTime", "EchoTime": "EchoTime",
              "InversionTime": "InversionTime"}
_PLAIN_FIELDS = (
    "Modality", "MagneticFieldStrength", "Manufacturer", "ManufacturerModelName",
    "SeriesDescription", "ProtocolName", "SeriesNumber", "AcquisitionNumber", "FlipAngle",
    "SliceThickness", "SpacingBetweenSlices", "ScanningSequence", "SequenceVariant",
    "SequenceName", "BodyPartExamined", "PatientPosition", "SoftwareVersions",
    "MRAcquisitionType", "ImagingFrequency", "PixelBandwidth", "EchoTrainLength",
)
_BIDS_NAMES = {"ManufacturerModelName": "ManufacturersModelName"}


def _find(ds: Any, keyword: str) -> Any:
    """A value from the dataset or, for enhanced objects, its functional groups."""
    if keyword in ds:
        return ds.get(keyword)
    for grp_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        grp = ds.get(grp_kw)
        if not grp:
            continue
        for seq in grp[0]:
            if seq.VR == "SQ" and len(seq.value) and keyword in seq.value[0]:
                return seq.value[0].get(keyword)
    return None


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_json_value(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):  # pydicom IS values are ints
        return int(value)
    if isinstance(value, float):  # pydicom DS values are floats
        return float(value)
    return str(value)


def bids_sidecar(image: Image, header: Any) -> dict[str, Any]:
    """BIDS sidecar fields for an image loaded from DICOM.

    Parameters
    ----------
    image : Image
        Supplies geometry-dependent fields (slice timing, frame times).
    header : pydicom Dataset
        One representative header of the series.
    """
    out: dict[str, Any] = {}
    for kw in _PLAIN_FIELDS:
        v = _find(header, kw)
        if v not in (None, ""):
            out[_BIDS_NAMES.get(kw, kw)] = _json_value(v)
    for kw, name in _MS_FIELDS.items():
        v = _find(header, kw)
        try:
            if v not in (None, ""):
                out[name] = float(v) / 1000.0
        except (TypeError, ValueError):
            pass
    if "EchoTime" not in out:
        te = _find(header, "EffectiveEchoTime")
        if te is not None:
            out["EchoTime"] = float(te) / 1000.0
    image_type = header.get("ImageType")
    if image_type:
        out["ImageType"] = [str(v) for v in image_type]
    if image.frame_times_s is not None and image.n_frames > 1 and "RepetitionTime" in out:
        steps = set(round(float(s), 3) for s in (image.frame_times_s[1:] - image.frame_times_s[:-1]))
        if len(steps) > 1:
            out["VolumeTiming"] = [round(float(t), 6) for t in image.frame_times_s]
    if "slice_times_s" in image.meta:
        out["SliceTiming"] = image.meta["slice_times_s"]
    pe = _phase_encoding(header)
    out.update(pe)
    out["ConversionSoftware"] = "medlab"
    out["ConversionSoftwareVersion"] = __version__
    return out


def _phase_encoding(header: Any) -> dict[str, str]:
    direction = _find(header, "InPlanePhaseEncodingDirection")
    if direction is None:
        return {}
    axis = {"ROW": "i", "COL": "j", "COLUMN": "j"}.get(str(direction).upper())
    if axis is None:
        return {}
    positive = None
    if str(header.get("Manufacturer", "")).upper().startswith("SIEMENS"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            from nibabel.nicom import csareader

            try:
                csa = csareader.get_csa_header(header, "image")
                positive = csareader.get_scalar(csa, "PhaseEncodingDirectionPositive")
            except Exception:  # a broken private header only loses the polarity
                positive = None
    if positive is None:
        return {"PhaseEncodingAxis": axis}
    return {"PhaseEncodingDirection": axis if int(positive) == 1 else f"{axis}-"}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "image"


def dicom_to_nifti(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    compress: bool = True,
    sidecar: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Convert every DICOM image under ``source`` to NIfTI in folder ``dest``.

    Each image becomes ``<id>.nii.gz`` (or ``.nii``) plus, with
    ``sidecar=True``, ``<id>.json`` holding BIDS fields (RepetitionTime,
    EchoTime, SliceTiming, PhaseEncodingDirection, ... in seconds).
    Colour images are skipped (NIfTI has no standard for them). The source
    folder is only read.

    Returns
    -------
    list of Path
        The NIfTI files written.
    """
    dest = Path(dest)
    src = Path(source).resolve()
    if dest.resolve() == src or src in dest.resolve().parents:
        raise ValueError(
            f"dest {str(dest)!r} is inside the source folder; write the conversion elsewhere "
            "(medlab never writes into source folders)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    images = read_dicom(source, progress=progress)
    written = []
    suffix = ".nii.gz" if compress else ".nii"
    for key, img in images.items():
        if img.channels:
            continue
        name = _safe_name(key)
        path = dest / f"{name}{suffix}"
        write_nifti(img, path)  # + FSL .bval/.bvec for a diffusion series, as dcm2niix
        if sidecar:
            header = read_dataset(img.meta["files"][0], stop_before_pixels=True)
            with open(dest / f"{name}.json", "w") as f:
                json.dump(bids_sidecar(img, header), f, indent=2)
        written.append(path)
    return written
