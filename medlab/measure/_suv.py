"""PET standardised uptake values (SUV) from the DICOM headers.

Formulas (SUV = activity concentration x normaliser / decayed dose):

- decay-corrected dose ``D = A0 * 2 ** (-t / T)``: ``A0`` the injected
  activity (RadionuclideTotalDose, Bq), ``T`` RadionuclideHalfLife (s),
  ``t`` the time from injection (RadiopharmaceuticalStartDateTime, or
  RadiopharmaceuticalStartTime on the SeriesDate) to the time the images
  are decay-corrected to: the scan start for DecayCorrection ``START``
  (SeriesDate/Time when not after the acquisition, else GE's private scan
  date-time (0009,100D), else the earliest AcquisitionDate/Time); ``t = 0``
  for ``ADMIN`` (already corrected to the injection). This is the QIBA
  vendor-neutral pseudo-code (Kinahan et al., QIBA FDG-PET/CT profile).
- ``SUVbw = C[Bq/ml] * W[g] / D`` (g/ml).
- ``SUVlbm = C * LBM[g] / D`` (g/ml), lean body mass from weight ``W`` (kg),
  height ``H`` and sex, by Janmahasatian et al. 2005 (default; PERCIST's
  SUL): ``9270 W / (6680 + 216 BMI)`` (male), ``9270 W / (8780 + 244 BMI)``
  (female), ``BMI = W / H[m]^2``; or James 1976: ``1.10 W - 128 (W/H[cm])^2``
  (male), ``1.07 W - 148 (W/H[cm])^2`` (female).
- ``SUVbsa = C * BSA[cm2] / D`` (cm2/ml), DuBois & DuBois 1916:
  ``BSA[m2] = 0.007184 W^0.425 H[cm]^0.725``.

Units: ``BQML`` (GE, Siemens) are used as they are; ``CNTS`` (Philips) are
scaled by the private SUV scale factor (7053,1000), or to Bq/ml by the
activity concentration scale factor (7053,1009); ``GML`` images are
already SUV (body weight unless SUVType says otherwise) and pass through.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._validate import require_image
from ..errors import MedlabError
from ..image import Image

__all__ = ["SuvError", "suv_factors", "to_suv"]

SuvKind = Literal["bw", "lbm", "bsa"]
LbmFormula = Literal["janmahasatian", "james"]

#: ``meta['units']`` of an SUV image, by kind
SUV_UNITS = {"bw": "SUVbw", "lbm": "SUVlbm", "bsa": "SUVbsa"}
#: UCUM codes (DICOM CID 85) of the SUV units
SUV_UCUM = {
    ("bw", None): "g/ml{SUVbw}",
    ("lbm", "james"): "g/ml{SUVlbm}",
    ("lbm", "janmahasatian"): "g/ml{SUVlbm(Janma)}",
    ("bsa", None): "cm2/ml{SUVbsa}",
}
_PHILIPS = "Philips PET Private Group"
_GE = "GEMS_PETD_01"
_SUV_TYPE = {"BW": "bw", "LBM": "lbm", "BSA": "bsa"}
#: patient inputs: (what, tag, keyword), and which SUV needs which
_INPUTS = {
    "weight": ("the patient's weight", "PatientWeight (0010,1030)", "weight_kg=... (kg)"),
    "height": ("the patient's height", "PatientSize (0010,1020)", "height_m=... (m)"),
    "sex": ("the patient's sex (M or F)", "PatientSex (0010,0040)", "sex='M' or 'F'"),
}
_NEEDS = {"bw": ("weight",), "lbm": ("weight", "height", "sex"), "bsa": ("weight", "height")}


class SuvError(MedlabError, ValueError):
    """SUV cannot be computed from the headers (missing tag, unsupported units)."""


# --------------------------------------------------------------- formulas
def lean_body_mass_kg(weight_kg: float, height_m: float, sex: str,
                      formula: LbmFormula = "janmahasatian") -> float:
    """Lean body mass in kg (Janmahasatian 2005 or James 1976); ``sex`` 'M' or 'F'."""
    if formula == "janmahasatian":
        bmi = weight_kg / height_m**2
        return 9270.0 * weight_kg / ((6680.0 + 216.0 * bmi) if sex == "M" else (8780.0 + 244.0 * bmi))
    if formula == "james":
        ratio = weight_kg / (height_m * 100.0)
        return (1.10 * weight_kg - 128.0 * ratio**2) if sex == "M" else (1.07 * weight_kg - 148.0 * ratio**2)
    raise ValueError(f"lbm_formula must be 'janmahasatian' or 'james', got {formula!r}")


def body_surface_area_m2(weight_kg: float, height_m: float) -> float:
    """Body surface area in m2 (DuBois & DuBois 1916)."""
    return 0.007184 * weight_kg**0.425 * (height_m * 100.0) ** 0.725


# ---------------------------------------------------------------- headers
def _datasets(source: Any) -> tuple[list[Any], str]:
    """Headers (no pixels) of an Image's files, a path, paths or a Dataset."""
    import pydicom

    from ..io.dicom import read_dataset

    if isinstance(source, pydicom.Dataset):
        return [source], "the given dataset"
    if isinstance(source, Image):
        files = source.meta.get("files") or []
        if not files:
            raise SuvError(
                "the image has no source DICOM files in meta['files'] (it was not loaded from "
                "DICOM, or was derived), so its PET headers cannot be read; pass header= (a "
                "path or pydicom Dataset of one of its PET files)")
        return [read_dataset(f, stop_before_pixels=True) for f in files], str(Path(files[0]).parent)
    if isinstance(source, str | os.PathLike):
        return [read_dataset(source, stop_before_pixels=True)], str(source)
    if isinstance(source, Sequence) and source:
        return [read_dataset(f, stop_before_pixels=True) for f in source], str(source[0])
    raise TypeError(
        f"expected a medlab.Image loaded from DICOM, a path or a pydicom Dataset, got "
        f"{type(source).__name__}")


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _number(ds: Any, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        out = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return out if out else None  # zero means 'unknown' in these headers


def _private(ds: Any, group: int, creator: str, element: int) -> Any:
    try:
        return ds.private_block(group, creator)[element].value
    except KeyError:
        return None


def _datetime(date: str, time: str) -> datetime | None:
    from pydicom.valuerep import DT

    if not date or not time:
        return None
    try:
        return _naive(DT(date + time.replace(":", "")))
    except ValueError:
        return None


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None) if value.tzinfo else value


def _as_datetime(value: datetime | str, name: str) -> datetime:
    from pydicom.valuerep import DT

    if isinstance(value, datetime):
        return _naive(value)
    try:
        return _naive(DT(str(value)))
    except ValueError as exc:
        raise ValueError(
            f"{name} must be a datetime or a DICOM date-time 'YYYYMMDDHHMMSS', got {value!r}"
        ) from exc


def _radiopharmaceutical(ds: Any) -> Any:
    seq = ds.get("RadiopharmaceuticalInformationSequence") or []
    return seq[0] if len(seq) else None


def _need(value: Any, what: str, tag: str, keyword: str, where: str, kind: str,
          state: str = "missing, empty or zero") -> Any:
    if value is None:
        raise SuvError(
            f"SUV{kind} needs {what}, but {tag} is {state} in {where}; pass {keyword} to supply it")
    return value


# --------------------------------------------------------------- factors
def suv_factors(
    source: Any,
    *,
    kind: SuvKind = "bw",
    lbm_formula: LbmFormula = "janmahasatian",
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    injected_dose_bq: float | None = None,
    half_life_s: float | None = None,
    injection_time: datetime | str | None = None,
    scan_time: datetime | str | None = None,
    decay_time_s: float | None = None,
    bqml_per_unit: float | None = None,
) -> dict[str, Any]:
    """The factors that turn PET values into SUV, from the DICOM headers.

    Parameters
    ----------
    source : Image, path, sequence of paths or pydicom.Dataset
        A PET image loaded from DICOM (its ``meta['files']`` are read), or
        PET files/headers.
    kind : {'bw', 'lbm', 'bsa'}
        The SUV that must be computable; a missing input for it raises.
        The other kinds are computed when their inputs are there (else NaN).
    lbm_formula : {'janmahasatian', 'james'}
        Lean body mass formula (see the module docstring).
    weight_kg, height_m, sex, injected_dose_bq, half_life_s : optional
        Override PatientWeight (0010,1030), PatientSize (0010,1020),
        PatientSex (0010,0040), RadionuclideTotalDose (0018,1074) and
        RadionuclideHalfLife (0018,1075).
    injection_time, scan_time : datetime or DICOM DT string, optional
        Override the injection time (RadiopharmaceuticalStartDateTime) and
        the decay-correction reference time (scan start).
    decay_time_s : float, optional
        Override the decay time from injection to the reference directly.
    bqml_per_unit : float, optional
        Calibration of images whose Units are not activity concentration
        (e.g. PROPCPS): Bq/ml per image unit.

    Returns
    -------
    dict
        ``suv_bw_factor``, ``suv_lbm_factor``, ``suv_bsa_factor`` (multiply
        the image values, in the header's ``units``, to get SUV), ``factor``
        (the one of ``kind``), ``units_out`` ('SUVbw', ...), ``ucum``, the
        inputs used (``weight_kg``, ``height_m``, ``sex``,
        ``injected_dose_bq``, ``half_life_s``, ``injection_datetime``,
        ``reference_datetime``, ``decay_time_s``, ``decay_factor`` (the
        remaining fraction ``2 ** (-t / T)``), ``decayed_dose_bq``,
        ``lbm_kg``, ``bsa_m2``, ``bqml_per_unit``), ``units``,
        ``decay_correction``, ``manufacturer``, ``from`` (where each input
        came from) and ``notes``. For an image whose files carry different
        factors (Philips per-slice scale factors), ``slice_factors`` maps
        file path to factor.

    Raises
    ------
    SuvError
        A needed header value is missing (the message names the tag and
        the keyword that supplies it), or the units are not convertible.
    """
    if kind not in SUV_UNITS:
        raise ValueError(f"kind must be 'bw', 'lbm' or 'bsa', got {kind!r}")
    if lbm_formula not in ("janmahasatian", "james"):
        raise ValueError(f"lbm_formula must be 'janmahasatian' or 'james', got {lbm_formula!r}")
    datasets, where = _datasets(source)
    ds = datasets[0]
    notes: list[str] = []
    origin: dict[str, str] = {}
    modality = _text(ds, "Modality").upper()
    if modality not in ("PT", ""):
        raise SuvError(f"SUV needs PET images, but {where} has Modality {modality!r}")
    units = _text(ds, "Units").upper()
    corrected = {str(v).upper() for v in (ds.get("CorrectedImage") or [])}
    if corrected and "ATTN" not in corrected:
        notes.append(f"CorrectedImage {sorted(corrected)} lacks ATTN: the images are not "
                     "attenuation corrected, so SUVs are not quantitative")
    out: dict[str, Any] = {"source": where, "units": units, "manufacturer": _text(ds, "Manufacturer"),
                           "decay_correction": _text(ds, "DecayCorrection").upper(), "kind": kind,
                           "lbm_formula": lbm_formula}

    # patient
    w = float(weight_kg) if weight_kg else _number(ds, "PatientWeight")
    origin["weight_kg"] = "weight_kg=" if weight_kg else "PatientWeight (0010,1030)"
    h = float(height_m) if height_m else _number(ds, "PatientSize")
    origin["height_m"] = "height_m=" if height_m else "PatientSize (0010,1020)"
    if h is not None and h > 3.0:
        notes.append(f"PatientSize {h:g} is more than 3 m: taken as centimetres")
        h = h / 100.0
    raw_sex = sex or _text(ds, "PatientSex")
    s = raw_sex.strip().upper()[:1] or None
    origin["sex"] = "sex=" if sex else "PatientSex (0010,0040)"
    s = s if s in ("M", "F") else None
    out.update(weight_kg=w, height_m=h, sex=s)

    # normalisers: weight (g), lean body mass (g), body surface area (cm2)
    norms: dict[str, float] = {}
    if w is not None:
        norms["bw"] = w * 1000.0
    out["lbm_kg"] = out["bsa_m2"] = float("nan")
    if w is not None and h is not None and s is not None:
        out["lbm_kg"] = lean_body_mass_kg(w, h, s, lbm_formula)
        norms["lbm"] = out["lbm_kg"] * 1000.0
    if w is not None and h is not None:
        out["bsa_m2"] = body_surface_area_m2(w, h)
        norms["bsa"] = out["bsa_m2"] * 1e4
    # units -> how values relate to SUV
    base_kind = None  # for values already normalised (GML, Philips SUV factor)
    base_factor = None
    activity = None  # Bq/ml per image unit
    per_file: dict[str, float] = {}
    if bqml_per_unit is not None:
        activity, origin["bqml_per_unit"] = float(bqml_per_unit), "bqml_per_unit="
    elif units == "BQML":
        activity, origin["bqml_per_unit"] = 1.0, "Units BQML"
    elif units == "CNTS":
        factors = [_private(d, 0x7053, _PHILIPS, 0x00) for d in datasets]
        if all(f is not None and float(f) > 0 for f in factors):
            base_kind, base_factor = "bw", float(factors[0])
            origin["suv_bw_factor"] = "Philips SUV scale factor (7053,1000)"
            if not np.allclose([float(f) for f in factors], base_factor, rtol=1e-9, atol=0):
                files = [str(f) for f in ((source.meta.get("files") or []) if isinstance(source, Image) else [])]
                per_file = dict(zip(files, (float(f) for f in factors), strict=False))
        else:
            conc = _private(ds, 0x7053, _PHILIPS, 0x09)
            if conc is None or float(conc) <= 0:
                raise SuvError(
                    f"{where} has Units CNTS (counts) without Philips' SUV scale factor (7053,1000) "
                    "or activity concentration scale factor (7053,1009) (private creator "
                    f"{_PHILIPS!r}), so counts cannot be turned into SUV; pass bqml_per_unit= "
                    "(Bq/ml per count) if you know the calibration")
            activity, origin["bqml_per_unit"] = float(conc), "Philips activity concentration scale factor (7053,1009)"
    elif units in ("GML", "CM2ML"):
        suv_type = _text(ds, "SUVType").upper()
        base_kind = _SUV_TYPE.get(suv_type, "bw" if units == "GML" else "bsa")
        if suv_type not in _SUV_TYPE:
            notes.append(f"Units {units} without a known SUVType ({suv_type or 'missing'}): taken as "
                         f"SUV{base_kind}")
        base_factor = 1.0
        notes.append(f"the values are already SUV{base_kind} (Units {units}); SUV{base_kind} passes "
                     "through unchanged")
        origin["suv_bw_factor"] = f"Units {units}, SUVType {suv_type or 'missing'}"
    else:
        raise SuvError(
            f"{where} has Units {units or 'missing'!r} (0054,1001), which is not activity "
            "concentration: SUV needs BQML (Bq/ml), Philips CNTS with a scale factor, or GML "
            "(already SUV). Re-export the series in Bq/ml, or pass bqml_per_unit= (Bq/ml per "
            "image unit) if you know the calibration")
    out["bqml_per_unit"] = activity if activity is not None else float("nan")
    if kind not in norms and not (activity is None and kind == base_kind):
        values = {"weight": w, "height": h, "sex": s}
        for key, (what, tag, keyword) in _INPUTS.items():
            if key in _NEEDS[kind]:
                state = (f"{raw_sex.strip()!r} (not M or F)" if key == "sex" and raw_sex.strip()
                         else "missing, empty or zero")
                _need(values[key], what, tag, keyword, where, kind, state)

    # decayed dose (only for values in activity concentration)
    for key in ("injected_dose_bq", "half_life_s", "decay_time_s", "decay_factor", "decayed_dose_bq"):
        out[key] = float("nan")
    out["injection_datetime"] = out["reference_datetime"] = None
    if activity is not None:
        dose = _decayed_dose(datasets, where, kind, out, origin, notes,
                             injected_dose_bq=injected_dose_bq, half_life_s=half_life_s,
                             injection_time=injection_time, scan_time=scan_time,
                             decay_time_s=decay_time_s)
        factors_out = {k: activity * n / dose for k, n in norms.items()}
    else:
        if base_kind not in norms:
            tag = {"bw": "PatientWeight (0010,1030)", "lbm": "PatientWeight, PatientSize and PatientSex",
                   "bsa": "PatientWeight and PatientSize"}[base_kind]  # type: ignore[index]
            if kind != base_kind:
                raise SuvError(
                    f"the values of {where} are SUV{base_kind}; converting them to SUV{kind} needs "
                    f"{tag} (missing); pass weight_kg=, height_m= and sex= as needed")
            factors_out = {base_kind: base_factor}  # type: ignore[dict-item]
        else:
            factors_out = {k: base_factor * n / norms[base_kind] for k, n in norms.items()}  # type: ignore[operator,index]
    for k in SUV_UNITS:
        out[f"suv_{k}_factor"] = float(factors_out.get(k, float("nan")))
    out["factor"] = out[f"suv_{kind}_factor"]
    out["units_out"] = SUV_UNITS[kind]
    out["ucum"] = SUV_UCUM[(kind, lbm_formula if kind == "lbm" else None)]
    if per_file:
        scale = out["factor"] / base_factor  # type: ignore[operator]
        out["slice_factors"] = {f: v * scale for f, v in per_file.items()}
    out["from"] = origin
    out["notes"] = notes
    return out


def _decayed_dose(datasets: list[Any], where: str, kind: str, out: dict, origin: dict,
                  notes: list[str], *, injected_dose_bq: float | None, half_life_s: float | None,
                  injection_time: Any, scan_time: Any, decay_time_s: float | None) -> float:
    ds = datasets[0]
    rp = _radiopharmaceutical(ds)
    seq = "RadiopharmaceuticalInformationSequence (0054,0016)"
    dose: float | None
    if injected_dose_bq:
        dose, origin["injected_dose_bq"] = float(injected_dose_bq), "injected_dose_bq="
    else:
        dose = _number(rp, "RadionuclideTotalDose") if rp is not None else None
        origin["injected_dose_bq"] = f"RadionuclideTotalDose (0018,1074) in {seq}"
        _need(dose, "the injected activity", origin["injected_dose_bq"], "injected_dose_bq=... (Bq)", where, kind)
    if dose is not None and dose < 1e5:
        notes.append(f"the injected activity {dose:g} Bq is implausibly small (MBq stored as Bq?)")
    out["injected_dose_bq"] = dose
    correction = out["decay_correction"]
    if decay_time_s is not None:
        t, origin["decay_time_s"] = float(decay_time_s), "decay_time_s="
    elif correction == "ADMIN" and scan_time is None:
        t, origin["decay_time_s"] = 0.0, "DecayCorrection ADMIN"
        notes.append("DecayCorrection ADMIN: the images are decay-corrected to the injection time, "
                     "so the injected activity is used without decay")
    else:
        if correction not in ("START", "") and scan_time is None:
            raise SuvError(
                f"{where} has DecayCorrection {correction!r} (0054,1102); medlab computes SUV for "
                "START (corrected to the scan start) and ADMIN (to the injection). Pass "
                "decay_time_s= (seconds from injection to the time the values refer to)")
        if correction == "":
            notes.append("DecayCorrection (0054,1102) is missing: START assumed")
        start = _reference_time(datasets, where, kind, origin, notes, scan_time)
        inj = _injection_time(ds, rp, where, kind, origin, notes, injection_time)
        t = (start - inj).total_seconds()
        if t < 0 and origin["injection_datetime"].startswith("RadiopharmaceuticalStartTime"):
            inj -= timedelta(days=1)
            t += 86400.0
            notes.append("the injection time of day is after the scan: injected the day before "
                         "(midnight crossing) assumed")
        if t < 0:
            raise SuvError(
                f"the injection ({inj.isoformat()}, from {origin['injection_datetime']}) is after "
                f"the scan start ({start.isoformat()}, from {origin['reference_datetime']}) in "
                f"{where}; pass injection_time=, scan_time= or decay_time_s= to correct it")
        if t > 86400.0:
            notes.append(f"the decay time {t / 3600:.1f} h is longer than a day: check the injection "
                         "and scan dates (de-identification may have shifted one of them)")
        out["injection_datetime"], out["reference_datetime"] = inj, start
    T: float | None
    if half_life_s:
        T, origin["half_life_s"] = float(half_life_s), "half_life_s="
    else:
        T = _number(rp, "RadionuclideHalfLife") if rp is not None else None
        origin["half_life_s"] = f"RadionuclideHalfLife (0018,1075) in {seq}"
        if t != 0.0:
            _need(T, "the radionuclide half-life", origin["half_life_s"], "half_life_s=... (s)", where, kind)
    out["half_life_s"] = T if T is not None else float("nan")
    out["decay_time_s"] = t
    out["decay_factor"] = 2.0 ** (-t / T) if t else 1.0  # type: ignore[operator]
    out["decayed_dose_bq"] = dose * out["decay_factor"]  # type: ignore[operator]
    return out["decayed_dose_bq"]


def _reference_time(datasets: list[Any], where: str, kind: str, origin: dict, notes: list[str],
                    override: Any) -> datetime:
    if override is not None:
        origin["reference_datetime"] = "scan_time="
        return _as_datetime(override, "scan_time")
    ds = datasets[0]
    series = _datetime(_text(ds, "SeriesDate"), _text(ds, "SeriesTime"))
    acquisitions = [a for a in (_acquisition_time(d) for d in datasets) if a is not None]
    first = min(acquisitions) if acquisitions else None
    if series is not None and (first is None or series <= first):
        origin["reference_datetime"] = "SeriesDate/SeriesTime (0008,0021/0031)"
        return series
    ge = _private(ds, 0x0009, _GE, 0x0D)
    if ge:
        origin["reference_datetime"] = "GE private scan_datetime (0009,100D)"
        notes.append("the series time is after the acquisition (a post-processed series): GE's "
                     "private scan date-time used as the scan start")
        return _as_datetime(str(ge), "GE scan_datetime")
    if first is not None:
        origin["reference_datetime"] = "earliest AcquisitionDate/AcquisitionTime (0008,0022/0032)"
        if series is not None:
            notes.append("the series time is after the acquisition: the earliest acquisition time "
                         "used as the scan start")
        return first
    raise SuvError(
        f"SUV{kind} needs the scan start time (the decay-correction reference), but SeriesDate "
        f"(0008,0021)/SeriesTime (0008,0031) and AcquisitionDate (0008,0022)/AcquisitionTime "
        f"(0008,0032) are missing in {where}; pass scan_time= (a datetime or 'YYYYMMDDHHMMSS')")


def _acquisition_time(ds: Any) -> datetime | None:
    dt = _text(ds, "AcquisitionDateTime")
    if dt:
        try:
            return _as_datetime(dt, "AcquisitionDateTime")
        except ValueError:
            pass
    return _datetime(_text(ds, "AcquisitionDate") or _text(ds, "SeriesDate"), _text(ds, "AcquisitionTime"))


def _injection_time(ds: Any, rp: Any, where: str, kind: str, origin: dict, notes: list[str],
                    override: Any) -> datetime:
    if override is not None:
        origin["injection_datetime"] = "injection_time="
        return _as_datetime(override, "injection_time")
    if rp is not None and _text(rp, "RadiopharmaceuticalStartDateTime"):
        origin["injection_datetime"] = "RadiopharmaceuticalStartDateTime (0018,1078)"
        return _as_datetime(_text(rp, "RadiopharmaceuticalStartDateTime"), "RadiopharmaceuticalStartDateTime")
    time = _text(rp, "RadiopharmaceuticalStartTime") if rp is not None else ""
    for date_kw in ("SeriesDate", "AcquisitionDate", "StudyDate"):
        value = _datetime(_text(ds, date_kw), time)
        if value is not None:
            origin["injection_datetime"] = f"RadiopharmaceuticalStartTime (0018,1072) on the {date_kw}"
            return value
    raise SuvError(
        f"SUV{kind} needs the injection time, but RadiopharmaceuticalStartDateTime (0018,1078) and "
        f"RadiopharmaceuticalStartTime (0018,1072) (in RadiopharmaceuticalInformationSequence) are "
        f"missing in {where}; pass injection_time= (a datetime or 'YYYYMMDDHHMMSS')")


# ------------------------------------------------------------------ image
def to_suv(
    image: Image,
    *,
    kind: SuvKind = "bw",
    header: Any = None,
    lbm_formula: LbmFormula = "janmahasatian",
    **overrides: Any,
) -> Image:
    """A PET image in standardised uptake values.

    Parameters
    ----------
    image : Image
        PET image as loaded by :func:`medlab.load` (values rescaled to the
        header's Units, e.g. Bq/ml).
    kind : {'bw', 'lbm', 'bsa'}
        Body weight, lean body mass or body surface area SUV.
    header : path or pydicom.Dataset, optional
        Where to read the PET headers when ``image.meta['files']`` is
        missing.
    lbm_formula : {'janmahasatian', 'james'}
        For ``kind='lbm'``.
    **overrides
        ``weight_kg``, ``height_m``, ``sex``, ``injected_dose_bq``,
        ``half_life_s``, ``injection_time``, ``scan_time``,
        ``decay_time_s``, ``bqml_per_unit``: see :func:`suv_factors`.

    Returns
    -------
    Image
        float32 SUV image (float64 stays), same grid. ``meta['units']``
        is ``'SUVbw'``, ``'SUVlbm'`` or ``'SUVbsa'``; ``meta['units_ucum']``
        the UCUM code; ``meta['suv']`` the :func:`suv_factors` result.

    Raises
    ------
    SuvError
        As :func:`suv_factors`; also when the image already holds SUV or
        its values are not in the header's units.
    """
    require_image(image, "image")
    units = str(image.meta.get("units") or "")
    if units.upper().startswith("SUV"):
        raise SuvError(f"the image already holds {units}; to_suv() converts activity images")
    if image.meta.get("rescaled") is False:
        raise SuvError("the image holds raw stored values (meta['rescaled'] is False); load it "
                       "with the rescale slope applied")
    info = suv_factors(image if header is None else header, kind=kind,
                       lbm_formula=lbm_formula, **overrides)
    if units and info["units"] and units.upper() != info["units"] and not overrides.get("bqml_per_unit"):
        raise SuvError(f"the image's units {units!r} differ from the header's Units "
                       f"{info['units']!r}; pass the PET series' own header")
    for note in info["notes"]:
        if any(w in note for w in ("not attenuation corrected", "implausibly", "longer than a day")):
            warnings.warn(note, stacklevel=2)
    dtype = np.float64 if image.dtype == np.float64 else np.float32
    factor = np.asarray(info["factor"], dtype=np.float64)
    if "slice_factors" in info:
        factor = _slice_factors(image, info["slice_factors"])
    data = (np.asarray(image.array, dtype=np.float64) * factor).astype(dtype)
    meta = dict(image.meta, units=info["units_out"], units_ucum=info["ucum"], suv=info)
    return image.with_array(data, meta=meta)


def _slice_factors(image: Image, by_file: Mapping[str, float]) -> np.ndarray:
    """Per-slice factors, shaped to broadcast over the image, from per-file ones."""
    from ..io.dicom import read_dataset

    inv = np.linalg.inv(image.affine)
    out = np.full(image.spatial_shape[0], np.nan)
    for path, factor in by_file.items():
        pos = read_dataset(path, stop_before_pixels=True).get("ImagePositionPatient")
        if pos is None:
            continue
        k = int(np.floor((inv @ np.r_[np.asarray(pos, float), 1.0])[0] + 0.5))
        if 0 <= k < out.size:
            out[k] = factor
    if np.isnan(out).any():
        raise SuvError(f"the per-slice SUV factors do not cover slices "
                       f"{np.flatnonzero(np.isnan(out)).tolist()} of the image")
    return out.reshape((-1,) + (1,) * (image.ndim - 1))
