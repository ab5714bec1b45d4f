"""Which pixel spacing a DICOM image has, where it comes from, and at which plane.

The one place that reads the spacing attributes of PS3.3 (the loader calls
:func:`pixel_spacing` for every frame and records its provenance on the
image):

- **Pixel Spacing** (0028,0030) is the distance in the patient between pixel
  centres (PS3.3 10.7.1.1). For projection radiographs (CR, DX, MG, IO, XA,
  RF, ...) it is trusted as patient-plane only when Pixel Spacing
  Calibration Type (0028,0A02, GEOMETRY or FIDUCIAL, PS3.3 10.7.1.3 /
  Table 10-10) says it was calibrated, or when it differs from Imager Pixel
  Spacing (the modality corrected it); a Pixel Spacing equal to Imager Pixel
  Spacing is the detector spacing copied over.
- **Imager Pixel Spacing** (0018,1164) is measured at the front of the image
  receptor (PS3.3 C.8.11.4, C.8.11.7): an object in the patient is magnified
  by Estimated Radiographic Magnification Factor (0018,1114, the
  source-to-detector over source-to-object distance). As the IHE Mammography
  Image profile asks of displays, lengths are given at the patient, Imager
  Pixel Spacing divided by that factor, and the image says so; without the
  factor they are at the detector (``spacing_plane == 'detector'``).
- **Sequence of Ultrasound Regions** (0018,6011, PS3.3 C.8.5.5): a region's
  Physical Delta X/Y in cm (Physical Units X/Y Direction = 3) per pixel.
  Regions with one calibration give the image's spacing; regions with
  different calibrations leave the image's spacing unknown, and
  :func:`medlab.measure.ultrasound_region` gives each region with its own.
- **Nominal Scanned Pixel Spacing** (0018,2010): the pixel size on the
  digitised medium (film), ``spacing_plane == 'scanned medium'``.

Anything else: the spacing is unknown, never a silent 1 mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PixelSpacingInfo", "pixel_spacing", "PROJECTION_MODALITIES"]

#: modalities whose images are projections (magnified at the detector)
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "PX", "RG", "XA", "RF", "DF", "DG"})
#: Physical Units X/Y Direction code for centimetres (PS3.3 C.8.5.5.1.15)
_CM = 3

SOURCE_UNKNOWN = "unknown"


@dataclass(frozen=True)
class PixelSpacingInfo:
    """The in-plane spacing of a DICOM image and its provenance.

    Attributes
    ----------
    spacing : (row_mm, column_mm) or None
        None when the spacing is unknown.
    source : str
        Which attribute(s) gave it (see :attr:`medlab.Image.spacing_source`).
    plane : {'patient', 'detector', 'scanned medium', 'unknown'}
        Where lengths measured with it are true.
    extra : dict
        Values worth keeping on the image (magnification factor, detector
        spacing, ultrasound regions).
    """

    spacing: tuple[float, float] | None
    source: str
    plane: str
    extra: dict[str, Any] = field(default_factory=dict)


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in (value if not isinstance(value, (int, float)) else [value]))
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) and v > 0 for v in out):
        return None
    return out


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1e-12) for x, y in zip(a, b, strict=True))


def ultrasound_regions(ds: Any) -> list[dict[str, Any]]:
    """The spatially calibrated regions (cm in x and y) of Sequence of Ultrasound Regions.

    Each: ``region`` (index in the sequence), ``x0, y0, x1, y1`` (pixel
    bounds, inclusive), ``row_mm`` and ``column_mm`` (pixel size in mm),
    ``data_type`` (Region Data Type code).
    """
    out = []
    for n, r in enumerate(ds.get("SequenceOfUltrasoundRegions") or []):
        if r.get("PhysicalUnitsXDirection") != _CM or r.get("PhysicalUnitsYDirection") != _CM:
            continue  # spectral Doppler, M-mode time axes, ...: not lengths
        dx, dy = _float(r.get("PhysicalDeltaX")), _float(r.get("PhysicalDeltaY"))
        if not dx or not dy:
            continue
        out.append({
            "region": n,
            "x0": int(r.get("RegionLocationMinX0", 0) or 0),
            "y0": int(r.get("RegionLocationMinY0", 0) or 0),
            "x1": int(r.get("RegionLocationMaxX1", 0) or 0),
            "y1": int(r.get("RegionLocationMaxY1", 0) or 0),
            "row_mm": abs(dy) * 10.0,
            "column_mm": abs(dx) * 10.0,
            "data_type": int(r.get("RegionDataType", 0) or 0),
        })
    return out


def _functional_group_spacing(ds: Any) -> tuple[float, ...] | None:
    for kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(kw)
        if not groups:
            continue
        measures = groups[0].get("PixelMeasuresSequence")
        if measures:
            ps = _floats(measures[0].get("PixelSpacing"), 2)
            if ps:
                return ps
    return None


def pixel_spacing(ds: Any) -> PixelSpacingInfo:
    """The in-plane spacing of the image in ``ds`` (a pydicom-like dataset) and its provenance.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.Modality, ds.ImagerPixelSpacing = "MG", [0.085, 0.085]
    >>> ds.EstimatedRadiographicMagnificationFactor = 1.043
    >>> info = pixel_spacing(ds)
    >>> round(info.spacing[0], 5), info.plane
    (0.0815, 'patient')
    >>> del ds.EstimatedRadiographicMagnificationFactor
    >>> pixel_spacing(ds).source, pixel_spacing(ds).plane
    ('ImagerPixelSpacing', 'detector')
    """
    ps = _floats(ds.get("PixelSpacing"), 2)
    ips = _floats(ds.get("ImagerPixelSpacing"), 2)
    modality = str(ds.get("Modality", "") or "").upper()
    if ps is None and "PixelSpacing" not in ds:
        ps = _functional_group_spacing(ds)

    if "SequenceOfUltrasoundRegions" in ds and ps is None:
        regions = ultrasound_regions(ds)
        if regions:
            sizes = {(r["row_mm"], r["column_mm"]) for r in regions}
            first = (regions[0]["row_mm"], regions[0]["column_mm"])
            if all(_same(s, first) for s in sizes):
                return PixelSpacingInfo(first, "ultrasound region", "patient",
                                        {"ultrasound_regions": regions})
            return PixelSpacingInfo(None, SOURCE_UNKNOWN, "unknown", {
                "ultrasound_regions": regions,
                "spacing_note": f"{len(regions)} ultrasound regions with different calibrations; "
                                "measure each with ml.measure.ultrasound_region(image, n)"})

    projection = ips is not None or modality in PROJECTION_MODALITIES
    if projection:
        calibration = str(ds.get("PixelSpacingCalibrationType", "") or "").strip().upper()
        if ps is not None and calibration:
            return PixelSpacingInfo(ps, f"PixelSpacing (calibrated: {calibration})", "patient")
        if ps is not None and ips is not None and not _same(ps, ips):
            return PixelSpacingInfo(ps, "PixelSpacing", "patient",
                                    {"imager_pixel_spacing_mm": list(ips)})
        if ips is not None:
            ermf = _float(ds.get("EstimatedRadiographicMagnificationFactor"))
            extra: dict[str, Any] = {"imager_pixel_spacing_mm": list(ips)}
            if ermf is not None and ermf > 0:
                extra["magnification_factor"] = ermf
                return PixelSpacingInfo(
                    (ips[0] / ermf, ips[1] / ermf),
                    "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor", "patient",
                    extra)
            return PixelSpacingInfo(ips, "ImagerPixelSpacing", "detector", extra)
        if ps is not None:  # a projection with Pixel Spacing only: PS3.3 does not say where
            return PixelSpacingInfo(ps, "PixelSpacing", "unknown")
    elif ps is not None:
        return PixelSpacingInfo(ps, "PixelSpacing", "patient")

    nominal = _floats(ds.get("NominalScannedPixelSpacing"), 2)
    if nominal is not None:
        return PixelSpacingInfo(nominal, "NominalScannedPixelSpacing", "scanned medium")
    return PixelSpacingInfo(None, SOURCE_UNKNOWN, "unknown")
