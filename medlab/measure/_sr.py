"""Export measurements: DICOM SR (TID 1500 Measurement Report) and CSV/Parquet tables.

:func:`write_sr` turns a :func:`label_stats` table into a Comprehensive 3D
SR whose measurement groups reference the segments of a DICOM SEG and the
source series; :func:`read_sr` reads the measurements of any TID 1500
report back into a tidy table (values from the Floating Point Value when
present, so medlab's numbers round-trip exactly). :func:`to_table` writes
the statistics with the source UIDs and medlab's version.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._optional import import_optional
from .._validate import require_image
from .._version import __version__
from ..errors import DicomReadError, MedlabError
from ..image import Image
from .units import display_units

__all__ = ["SRError", "provenance", "read_rwvm", "read_sr", "to_table", "write_sr"]

#: statistics columns of label_stats that write_sr can encode
SR_MEASUREMENTS = ("volume_mm3", "area_mm2", "mean", "std", "min", "max", "median")
_DERIVATIONS = {  # column -> SNOMED CT derivation (value, meaning)
    "mean": ("373098007", "Mean"),
    "std": ("386136009", "Standard Deviation"),
    "min": ("255605001", "Minimum"),
    "max": ("56851009", "Maximum"),
    "median": ("373099004", "Median"),
}
#: medlab units -> (concept (value, scheme, meaning), UCUM unit (value, meaning))
_INTENSITY = {
    "HU": (("112031", "DCM", "Attenuation Coefficient"), ("[hnsf'U]", "Hounsfield unit")),
    "SUVbw": (("126401", "DCM", "SUVbw"), ("g/ml{SUVbw}", "Standardized Uptake Value body weight")),
    "SUVbsa": (("126403", "DCM", "SUVbsa"),
               ("cm2/ml{SUVbsa}", "Standardized Uptake Value body surface area")),
    "BQML": (("126400", "DCM", "Standardized Uptake Value"), ("Bq/ml", "Becquerels/milliliter")),
    "mm2/s": (("113041", "DCM", "Apparent Diffusion Coefficient"),
              ("mm2/s", "square millimeter per second")),
}
_SUVLBM_UNITS = {
    "janmahasatian": ("g/ml{SUVlbm(Janma)}", "Standardized Uptake Value lean body mass (Janma)"),
    "james": ("g/ml{SUVlbm}", "Standardized Uptake Value lean body mass (James)"),
}
_PROCEDURES = {
    "CT": ("25045-6", "LN", "CT unspecified body region"),
    "PT": ("44139-4", "LN", "PET whole body"),
    "MR": ("25056-3", "LN", "MRI unspecified body region"),
}


class SRError(MedlabError, ValueError):
    """Measurements cannot be written to or read from a DICOM SR."""


def _code(value: Any) -> Any:
    from pydicom.sr.coding import Code

    if isinstance(value, tuple):
        return Code(*[str(v) for v in value])
    return value


def _source_headers(source: Any) -> list[Any]:
    """Headers of the source series (an empty SpecificCharacterSet, which highdicom rejects, removed)."""
    import copy

    headers = _read_headers(source)
    out = []
    for ds in headers:
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            ds = copy.deepcopy(ds)
            del ds.SpecificCharacterSet
        out.append(ds)
    return out


def _read_headers(source: Any) -> list[Any]:
    import pydicom

    from ..io.dicom import iter_files, read_dataset

    if isinstance(source, Image):
        files = source.meta.get("files") or []
        if not files:
            raise SRError("the source image has no DICOM files in meta['files']; load it from "
                          "DICOM with ml.load, or pass the source file paths")
        return [read_dataset(f, stop_before_pixels=True) for f in files]
    if isinstance(source, str | os.PathLike):
        return [read_dataset(f, stop_before_pixels=True) for f in iter_files(source)]
    if isinstance(source, Sequence) and source:
        return [s if isinstance(s, pydicom.Dataset) else read_dataset(s, stop_before_pixels=True)
                for s in source]
    raise TypeError(f"source must be a medlab.Image loaded from DICOM, a folder or a list of "
                    f"paths, got {type(source).__name__}")


def _intensity(units: str, modality: str, lbm_formula: str) -> tuple[Any, Any]:
    from pydicom.sr.coding import Code

    if units == "SUVlbm":
        value, meaning = _SUVLBM_UNITS[lbm_formula]
        return Code("126402", "DCM", "SUVlbm"), Code(value, "UCUM", meaning)
    if units in _INTENSITY:
        concept, unit = _INTENSITY[units]
        return Code(*concept), Code(unit[0], "UCUM", unit[1])
    if not units and modality == "MR":
        # MR signal intensity on the scanner's arbitrary scale
        return Code("110852", "DCM", "MR signal intensity"), Code("1", "UCUM", "no units")
    raise SRError(
        f"no DICOM code is known for intensities in units {units or 'missing'!r} (modality "
        f"{modality or 'unknown'}); medlab encodes HU, SUVbw, SUVlbm, SUVbsa, BQML, mm2/s (ADC) "
        "and MR signal intensity (MR without units). Pass intensity_concept= and "
        "intensity_unit= (codes, or (value, scheme, meaning) tuples)")


def _match_segments(stats: pd.DataFrame, seg: Any, seg_path: Any) -> list[tuple[int, Any]]:
    """[(segment number, stats row)] by segment label (stats 'name') or number ('label')."""
    segments = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    by_label = {v: k for k, v in segments.items()}
    known = ", ".join(f"{k}: {v!r}" for k, v in segments.items())
    out = []
    for _, row in stats.iterrows():
        name = row.get("name")
        if isinstance(name, str) and name:
            if name not in by_label:
                raise SRError(f"the statistics row {name!r} has no segment of that label in the SEG "
                              f"{seg_path} (segments {known}); name the rows like the segments")
            out.append((by_label[name], row))
        else:
            number = int(row["label"])
            if number not in segments:
                raise SRError(f"label {number} (unnamed) is not a segment number of the SEG "
                              f"{seg_path} (segments {known})")
            out.append((number, row))
    numbers = [n for n, _ in out]
    if len(set(numbers)) != len(numbers):
        raise SRError("several statistics rows map to one segment (a time series?); write one "
                      "row per segment")
    return out


def write_sr(
    stats: pd.DataFrame,
    seg_path: str | os.PathLike,
    source: Any,
    path: str | os.PathLike,
    *,
    measurements: Sequence[str] | None = None,
    lbm_formula: Literal["janmahasatian", "james"] = "janmahasatian",
    intensity_concept: Any = None,
    intensity_unit: Any = None,
    procedure_reported: Any = None,
    series_description: str = "medlab measurements",
    series_number: int = 302,
) -> Path:
    """Write label statistics as a DICOM TID 1500 Measurement Report.

    One volumetric ROI measurement group (TID 1411) per row of ``stats``,
    referencing its segment of the SEG (and, through it, the source
    series), with the volume (mm3, sum of segmented voxels) and the
    intensity statistics in the image's units, UCUM coded: the ``units``
    column HU, SUVbw, SUVlbm, SUVbsa, BQML or mm2/s (ADC). An MR image
    without units is written as DCM 110852 "MR signal intensity" with UCUM
    unit ``1`` (no units: the scanner's arbitrary scale), not refused. A
    quantitative MR map stored without units (e.g. a vendor ADC map saved
    as a plain MR image, whose header does not say what it holds) cannot
    be told apart from signal intensity: pass ``intensity_concept`` and
    ``intensity_unit`` for it. Any other units raise :class:`SRError`
    unless those two are given. Values are stored as Floating Point Value
    (exact) as well as the decimal string.

    Parameters
    ----------
    stats : pandas.DataFrame
        A :func:`label_stats` table (columns ``label``, ``name``,
        ``units`` and the measured columns). Rows are matched to segments
        by ``name`` = segment label, else by ``label`` = segment number.
    seg_path : path
        The DICOM SEG of the measured segments (e.g. from
        :func:`medlab.segmentation.write_seg`).
    source : Image, folder or list of paths
        The image series that was measured (the evidence of the report).
    path : path
        Output file.
    measurements : sequence of str, optional
        Columns to encode, among ``volume_mm3, area_mm2, mean, std, min,
        max, median``; by default those the table has (a 2D image's table
        has ``area_mm2``, in mm2, instead of ``volume_mm3``).
    lbm_formula : {'janmahasatian', 'james'}
        Which lean body mass formula SUVlbm values used (for their unit).
    intensity_concept, intensity_unit : code or (value, scheme, meaning), optional
        Codes for intensities in units medlab does not know.
    procedure_reported : code or (value, scheme, meaning), optional
        Default from the source modality (LOINC CT/PET/MRI).
    series_description, series_number
        Recorded in the SR.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    SRError
        Unknown measurement columns or units (see above), rows that match no
        segment.
    """
    hd = import_optional("highdicom", feature="DICOM SR", extra="segmentation")
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    if measurements is None:
        measurements = [m for m in SR_MEASUREMENTS if m in stats.columns]
    bad = [m for m in measurements if m not in SR_MEASUREMENTS]
    if bad:
        raise SRError(f"cannot encode {bad} in the SR; choose among {list(SR_MEASUREMENTS)}")
    missing = [m for m in measurements if m not in stats.columns]
    if missing:
        raise SRError(f"the statistics table lacks the columns {missing}; pass a label_stats table "
                      "or choose measurements= among its columns")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(person name|exceeds the maximum length).*")
        seg = hd.seg.segread(seg_path)
        headers = _source_headers(source)
        modality = str(headers[0].get("Modality", "")).upper()
        source_series = str(headers[0].SeriesInstanceUID)
        groups = []
        for number, row in _match_segments(stats, seg, seg_path):
            item = next(s for s in seg.SegmentSequence if int(s.SegmentNumber) == number)
            units = "" if pd.isna(row.get("units")) else str(row.get("units") or "")
            items = []
            for column in measurements:
                value = row[column]
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                if column == "volume_mm3":
                    items.append(hd.sr.Measurement(
                        name=codes.SCT.Volume, value=float(value), unit=codes.UCUM.CubicMillimeter,
                        method=codes.DCM.SumOfSegmentedVoxelMethodForVolume))
                    continue
                if column == "area_mm2":  # a 2D image's segment
                    items.append(hd.sr.Measurement(
                        name=codes.SCT.Area, value=float(value), unit=codes.UCUM.SquareMillimeter))
                    continue
                if intensity_concept is not None and intensity_unit is not None:
                    concept, unit = _code(intensity_concept), _code(intensity_unit)
                else:
                    concept, unit = _intensity(units, modality, lbm_formula)
                items.append(hd.sr.Measurement(
                    name=concept, value=float(value), unit=unit,
                    derivation=Code(_DERIVATIONS[column][0], "SCT", _DERIVATIONS[column][1])))
            groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=str(item.get("TrackingUID", "")) or hd.UID(), identifier=str(item.SegmentLabel)),
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=str(seg.SOPInstanceUID),
                    segment_number=number,
                    source_series=hd.sr.SourceSeriesForSegmentation(source_series)),
                finding_type=hd.sr.CodedConcept.from_dataset(item.SegmentedPropertyTypeCodeSequence[0]),
                measurements=items))
        procedure = _code(procedure_reported) or Code(*_PROCEDURES.get(modality, _PROCEDURES["CT"]))
        observer = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=hd.UID(), name="medlab", manufacturer_name="medlab", model_name=__version__))
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=observer),
            procedure_reported=procedure, imaging_measurements=groups)
        sr = hd.sr.Comprehensive3DSR(
            evidence=[*headers, seg], content=report, series_instance_uid=hd.UID(),
            series_number=int(series_number), sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="medlab", is_complete=True)
        sr.SeriesDescription = series_description[:64]
        sr.SoftwareVersions = f"medlab {__version__}"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sr.save_as(path)
    return path


def _meaning(code: Any) -> str | None:
    return None if code is None else str(code.meaning)


def _statistic(name: Any, derivation: Any, unit: str) -> str | None:
    """The label_stats column a measurement corresponds to, when it is one."""
    is_volume = name is not None and (str(name.value) in ("118565006", "G-D705")
                                      or str(name.meaning).lower() == "volume")
    if is_volume and derivation is None:
        return {"mm3": "volume_mm3", "ml": "volume_ml", "cm3": "volume_ml"}.get(unit)
    is_area = name is not None and (str(name.value) == "42798000"
                                    or str(name.meaning).lower() == "area")
    if is_area and derivation is None:
        return {"mm2": "area_mm2"}.get(unit)
    if derivation is None:
        return None
    for column, (value, _) in _DERIVATIONS.items():
        if str(derivation.value) == value or str(derivation.meaning).lower() == _DERIVATIONS[column][1].lower():
            return column
    return None


def read_sr(path: str | os.PathLike | Any) -> pd.DataFrame:
    """The measurements of a TID 1500 Measurement Report, one row each.

    Parameters
    ----------
    path : path or pydicom.Dataset
        A Comprehensive / Comprehensive 3D / Enhanced SR holding a TID 1500
        report (medlab's, dcmqi's, ...).

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` (1-based measurement group), ``group_type``
        ('volumetric', 'planar', 'image'), ``tracking_id`` (the segment or
        ROI name), ``tracking_uid``, ``finding``, ``finding_site``,
        ``seg_sop_instance_uid``, ``segment_number``, ``source_series_uid``,
        ``quantity`` (concept name), ``quantity_code`` ('SCHEME:value'),
        ``derivation``, ``method``, ``value`` (float: the Floating Point
        Value when present, else the decimal string), ``unit`` (UCUM
        code), ``unit_meaning``, ``units`` (the unit as people read it,
        :func:`display_units`: ``HU`` for ``[hnsf'U]``) and ``statistic`` (the :func:`label_stats`
        column it corresponds to: ``volume_mm3``, ``mean``, ...; else None).
        ``attrs`` holds ``sop_instance_uid``, ``series_instance_uid``,
        ``study_instance_uid`` and ``source``.
    """
    hd = import_optional("highdicom", feature="DICOM SR", extra="segmentation")
    import pydicom

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(person name|exceeds the maximum length).*")
        try:
            sr = _from_dataset(hd, path) if isinstance(path, pydicom.Dataset) else hd.sr.srread(path)
        except Exception as exc:
            raise SRError(f"{path} cannot be read as a structured report: {exc}") from exc
        report = sr.content
        if not isinstance(report, hd.sr.MeasurementReport):
            raise SRError(f"{path} is an SR but not a TID 1500 Measurement Report (its title is "
                          f"{_meaning(sr.ConceptNameCodeSequence[0]) if 'ConceptNameCodeSequence' in sr else '?'})")
        rows = []
        kinds = (("volumetric", report.get_volumetric_roi_measurement_groups()),
                 ("planar", report.get_planar_roi_measurement_groups()),
                 ("image", report.get_image_measurement_groups()))
        n = 0
        for kind, groups in kinds:
            for group in groups:
                n += 1
                rows.extend(_group_rows(group, kind, n))
    columns = ["group", "group_type", "tracking_id", "tracking_uid", "finding", "finding_site",
               "seg_sop_instance_uid", "segment_number", "source_series_uid", "quantity",
               "quantity_code", "derivation", "method", "value", "unit", "unit_meaning", "units", "statistic"]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs.update(sop_instance_uid=str(sr.SOPInstanceUID),
                       series_instance_uid=str(sr.SeriesInstanceUID),
                       study_instance_uid=str(sr.StudyInstanceUID), source=str(path))
    return table


def _from_dataset(hd: Any, ds: Any) -> Any:
    cls = {"1.2.840.10008.5.1.4.1.1.88.34": hd.sr.Comprehensive3DSR,
           "1.2.840.10008.5.1.4.1.1.88.33": hd.sr.ComprehensiveSR,
           "1.2.840.10008.5.1.4.1.1.88.22": hd.sr.EnhancedSR}.get(str(ds.SOPClassUID))
    if cls is None:
        raise SRError(f"SOP class {ds.SOPClassUID} is not a Comprehensive (3D) or Enhanced SR")
    return cls.from_dataset(ds)


def _group_rows(group: Any, kind: str, n: int) -> list[dict]:
    seg_uid = segment = series = None
    ref = getattr(group, "referenced_segment", None)
    if ref is not None:
        seg_uid = str(ref.referenced_sop_instance_uid)
        numbers = ref.referenced_segment_numbers
        segment = int(numbers[0]) if numbers else None
        src = ref.source_series_for_segmentation
        series = str(src.value) if src is not None else None
    sites = getattr(group, "finding_sites", None) or []
    base = {
        "group": n, "group_type": kind,
        "tracking_id": group.tracking_identifier, "tracking_uid": group.tracking_uid,
        "finding": _meaning(group.finding_type),
        "finding_site": _meaning(sites[0].value) if sites else None,
        "seg_sop_instance_uid": seg_uid, "segment_number": segment, "source_series_uid": series,
    }
    rows = []
    for m in group.get_measurements():
        unit = str(m.unit.value) if m.unit is not None else None
        rows.append({
            **base,
            "quantity": _meaning(m.name),
            "quantity_code": f"{m.name.scheme_designator}:{m.name.value}",
            "derivation": _meaning(m.derivation), "method": _meaning(m.method),
            "value": float(m.value), "unit": unit, "unit_meaning": _meaning(m.unit),
            "units": display_units(unit),
            "statistic": _statistic(m.name, m.derivation, unit or ""),
        })
    return rows


# ------------------------------------------------------------------ tables
def provenance(image: Image) -> dict[str, str]:
    """The source columns of rows measured on ``image``.

    ``study_instance_uid``, ``series_instance_uid``,
    ``frame_of_reference_uid`` (empty when unknown) and ``source_modality``
    (the DICOM modality). Add them to the rows of each image before
    combining tables of several images, e.g.
    ``label_stats(pet, mask).assign(**ml.measure.provenance(pet))``.
    """
    require_image(image, "image")
    meta = image.meta
    return {
        "study_instance_uid": str(meta.get("study_uid") or ""),
        "series_instance_uid": str(meta.get("series_uid") or ""),
        "frame_of_reference_uid": str(meta.get("frame_of_reference_uid") or ""),
        "source_modality": str(meta.get("modality") or ""),
    }


#: columns that say a table's rows come from several images
_MIXED_ROW_COLUMNS = ("modality", "source_modality", "patient", "patient_id", "series_instance_uid",
                      "image", "case")


def to_table(
    stats: pd.DataFrame,
    path: str | os.PathLike,
    *,
    source: Image | None = None,
    file_format: Literal["csv", "parquet"] | None = None,
) -> pd.DataFrame:
    """Write a statistics table as CSV or Parquet with its provenance columns.

    Parameters
    ----------
    stats : pandas.DataFrame
        E.g. a :func:`label_stats` table.
    path : path
        Output file; ``.csv`` or ``.parquet``/``.pq`` pick the format.
    source : Image, optional
        The image every row was measured on: adds the :func:`provenance`
        columns (and ``modality`` when the table has none). Columns the
        table already has are never overwritten, and a table whose rows
        come from several images (several values in ``modality``,
        ``patient``, ... columns) is refused: add each row's own
        provenance first (``rows.assign(**ml.measure.provenance(image))``
        per image) and call without ``source``.
    file_format : {'csv', 'parquet'}, optional
        Overrides the format given by the suffix.

    Returns
    -------
    pandas.DataFrame
        The table as written: ``stats`` plus the source columns and
        ``medlab_version``.
    """
    if not isinstance(stats, pd.DataFrame):
        raise TypeError(f"stats must be a pandas DataFrame, got {type(stats).__name__}")
    path = Path(path)
    fmt = file_format or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(path.suffix.lower())
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"cannot tell the format of {str(path)!r}: use a .csv or .parquet suffix "
                         "or pass file_format='csv' or 'parquet'")
    out = stats.copy()
    if source is not None:
        columns = provenance(source)
        columns.setdefault("modality", columns["source_modality"])
        missing = {k: v for k, v in columns.items() if k not in out.columns}
        mixed = {c: sorted(map(str, out[c].dropna().unique()))[:5] for c in _MIXED_ROW_COLUMNS
                 if c in out.columns and out[c].nunique(dropna=True) > 1}
        if mixed and missing:
            what = "; ".join(f"{c}: {', '.join(v)}" for c, v in mixed.items())
            raise ValueError(
                f"the table's rows come from several images ({what}), so one source image "
                f"({source.meta.get('id') or source!r}) cannot be the source of every row. Add "
                "each row's own provenance first, rows.assign(**ml.measure.provenance(image)) "
                "for each image, and call to_table without source="
            )
        for key, value in missing.items():
            out[key] = value
    out["medlab_version"] = __version__
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        out.to_csv(path, index=False)
    else:
        out.to_parquet(path, index=False)
    return out


# ------------------------------------------------------------------- RWVM
def read_rwvm(path: str | os.PathLike | Any) -> pd.DataFrame:
    """The mappings of a DICOM Real World Value Mapping object (e.g. SUV factors).

    Returns
    -------
    pandas.DataFrame
        One row per mapping: ``label`` (LUT Label), ``explanation``,
        ``units_ucum``, ``units_meaning``, ``slope``, ``intercept``,
        ``first_value_mapped``, ``last_value_mapped``, ``quantity``,
        ``method`` (from the Quantity Definition Sequence) and
        ``n_referenced_images``. ``attrs`` holds ``sop_instance_uid``,
        ``referenced_sop_instance_uids`` and ``patient_weight_kg``.
    """
    import pydicom

    from ..io.dicom import read_dataset

    ds = path if isinstance(path, pydicom.Dataset) else read_dataset(path)
    if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.67":
        raise DicomReadError(f"{path} is not a Real World Value Mapping object (SOP class "
                       f"{ds.get('SOPClassUID', 'missing')})")
    rows, refs = [], []
    for ref in ds.get("ReferencedImageRealWorldValueMappingSequence", []):
        images = [str(r.ReferencedSOPInstanceUID) for r in ref.get("ReferencedImageSequence", [])]
        refs.extend(images)
        for m in ref.get("RealWorldValueMappingSequence", []):
            unit = (m.get("MeasurementUnitsCodeSequence") or [None])[0]
            quantities = {}
            for q in m.get("QuantityDefinitionSequence", []):
                name = q.ConceptNameCodeSequence[0].CodeMeaning
                value = q.get("ConceptCodeSequence")
                quantities[str(name)] = str(value[0].CodeMeaning) if value else str(q.get("TextValue", ""))
            rows.append({
                "label": str(m.get("LUTLabel", "")),
                "explanation": str(m.get("LUTExplanation", "")),
                "units_ucum": str(unit.CodeValue) if unit else "",
                "units_meaning": str(unit.CodeMeaning) if unit else "",
                "slope": float(m.get("RealWorldValueSlope", np.nan)),
                "intercept": float(m.get("RealWorldValueIntercept", np.nan)),
                "first_value_mapped": m.get("RealWorldValueFirstValueMapped"),
                "last_value_mapped": m.get("RealWorldValueLastValueMapped"),
                "quantity": quantities.get("Quantity", ""),
                "method": quantities.get("Measurement Method", ""),
                "n_referenced_images": len(images),
            })
    table = pd.DataFrame(rows)
    table.attrs.update(sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
                       referenced_sop_instance_uids=refs,
                       patient_weight_kg=float(ds.get("PatientWeight") or "nan"))
    return table
