"""Day-one tables about a cohort: what is in it, from which scanners, usable how.

Every function takes an :class:`~medlab.cohort.Index` (or its ``series``
DataFrame) and returns a tidy DataFrame; ``medlab.view.cohort_overview``
draws them. Patients are shown by :func:`medlab.privacy.display_name` (their
pseudonym, the same as in reports and de-identified exports of the session's
key) unless ``show_phi=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..privacy import display_names

__all__ = [
    "dates_table",
    "series_counts",
    "spacing_table",
    "studies_per_patient",
    "summary",
    "volume_usability",
]


def _series(index: Any) -> pd.DataFrame:
    """The series table of an Index, or the DataFrame itself."""
    if isinstance(index, pd.DataFrame):
        return index
    series = getattr(index, "series", None)
    if not isinstance(series, pd.DataFrame):
        raise TypeError(
            f"expected a medlab.cohort.Index or its series DataFrame, got {type(index).__name__}"
        )
    return series


def summary(index: Any) -> pd.DataFrame:
    """One row per measure: patients, studies, series, instances, modalities, dates, usability,
    and how many series have no known pixel spacing (measurable in pixels only)."""
    s = _series(index)
    rows: list[tuple[str, Any]] = [
        ("patients", s["patient_id"].nunique(dropna=False) if "patient_id" in s else np.nan),
        ("studies", s["study_uid"].nunique() if "study_uid" in s else np.nan),
        ("series", len(s)),
        ("instances", int(s["n_instances"].sum()) if "n_instances" in s else np.nan),
        ("modalities", ", ".join(sorted(s["modality"].dropna().unique())) if "modality" in s else ""),
    ]
    if "study_date" in s and s["study_date"].notna().any():
        dates = pd.to_datetime(s["study_date"])
        rows.append(("first study", dates.min().date()))
        rows.append(("last study", dates.max().date()))
    if "is_volume" in s:
        rows.append(("series usable as volumes", int(s["is_volume"].fillna(False).sum())))
    if "decodable" in s:
        rows.append(("series not decodable here", int((~s["decodable"].fillna(True)).sum())))
    if "pixel_spacing_row_mm" in s:  # no mm for these until calibrated (see spacing_table)
        unknown = sum(_in_plane_spacing(r)[0] is None for r in s.to_dict("records"))
        rows.append(("series without a known pixel spacing", unknown))
    errors = getattr(index, "errors", None)
    if isinstance(errors, pd.DataFrame):
        rows.append(("files not indexed", len(errors)))
    return pd.DataFrame(rows, columns=["measure", "value"])


def studies_per_patient(index: Any, *, show_phi: bool = False) -> pd.DataFrame:
    """One row per patient: studies, series, modalities (patient ids hidden by default)."""
    s = _series(index)
    out = (
        s.assign(patient=display_names(s["patient_id"], show_phi=True if show_phi else None))
        .groupby("patient", sort=True)
        .agg(n_studies=("study_uid", "nunique"), n_series=("series_uid", "count"),
             modalities=("modality", lambda m: ", ".join(sorted(m.dropna().unique()))))
        .reset_index()
    )
    return out


def series_counts(index: Any, by: tuple[str, ...] | list[str] = ("modality", "manufacturer")
                  ) -> pd.DataFrame:
    """Number of series (and instances) per combination of ``by`` columns."""
    s = _series(index)
    by = list(by)
    missing = [c for c in by if c not in s]
    if missing:
        raise KeyError(f"no column(s) {missing} in the series table; choose from {sorted(s.columns)}")
    agg = {"n_series": ("series_uid", "count")}
    if "n_instances" in s:
        agg["n_instances"] = ("n_instances", "sum")
    return (s.fillna({c: "(unknown)" for c in by}).groupby(by).agg(**agg)
            .reset_index().sort_values("n_series", ascending=False, ignore_index=True))


def spacing_table(index: Any) -> pd.DataFrame:
    """Per series: modality, in-plane pixel spacing and where it holds, slice thickness and
    slice spacing (mm).

    ``spacing_row_mm``/``spacing_col_mm`` is the spacing the loader uses, by the rules of
    :func:`medlab.io.dicom.pixel_spacing` (for a projection radiograph, Imager Pixel Spacing
    over the magnification factor, at the patient), with ``spacing_source`` and
    ``spacing_plane``; null where no header gives one (``spacing_source`` ``'unknown'``).
    Ultrasound region calibrations are not indexed: load the series (:func:`medlab.load`)
    for theirs (``spacing_source`` then reads ``'unknown (ultrasound regions not indexed)'``).
    """
    s = _series(index)
    derived = [_in_plane_spacing(row) for row in s.to_dict("records")]
    s = s.assign(spacing_row_mm=[d[0] for d in derived], spacing_col_mm=[d[1] for d in derived],
                 spacing_source=[d[2] for d in derived], spacing_plane=[d[3] for d in derived])
    cols = [c for c in ("series_uid", "modality", "spacing_row_mm", "spacing_col_mm",
                        "spacing_source", "spacing_plane", "pixel_spacing_row_mm",
                        "pixel_spacing_col_mm", "slice_thickness_mm", "slice_spacing_mm", "rows",
                        "columns", "n_slices")
            if c in s]
    return s[cols].reset_index(drop=True)


def _in_plane_spacing(row: dict[str, Any]) -> tuple[float | None, float | None, str, str]:
    """(row mm, column mm, source, plane) of one series row, by the loader's rules."""
    from ..io.dicom import pixel_spacing

    def pair(a: str, b: str) -> list[float] | None:
        va, vb = row.get(a), row.get(b)
        ok = all(v is not None and not pd.isna(v) for v in (va, vb))
        return [float(va), float(vb)] if ok else None

    tags = {"Modality": row.get("modality") or "",
            "PixelSpacing": pair("pixel_spacing_row_mm", "pixel_spacing_col_mm"),
            "ImagerPixelSpacing": pair("imager_pixel_spacing_row_mm", "imager_pixel_spacing_col_mm"),
            "EstimatedRadiographicMagnificationFactor": row.get("magnification_factor"),
            "PixelSpacingCalibrationType": row.get("pixel_spacing_calibration")}
    tags = {k: v for k, v in tags.items() if v is not None and not (isinstance(v, float) and pd.isna(v))}
    info = pixel_spacing(tags)
    if info.spacing is None:
        source = info.source + (" (ultrasound regions not indexed)"
                                if str(row.get("modality")) == "US" else "")
        return None, None, source, info.plane
    return info.spacing[0], info.spacing[1], info.source, info.plane


def dates_table(index: Any, *, freq: str = "MS") -> pd.DataFrame:
    """Studies and series per period of ``study_date`` (default: per month)."""
    s = _series(index)
    dated = s.dropna(subset=["study_date"]).assign(date=lambda d: pd.to_datetime(d["study_date"]))
    if dated.empty:
        return pd.DataFrame(columns=["period", "n_studies", "n_series"])
    return (dated.groupby(pd.Grouper(key="date", freq=freq))
            .agg(n_studies=("study_uid", "nunique"), n_series=("series_uid", "count"))
            .reset_index().rename(columns={"date": "period"}))


#: (text found in a volume_problem, category) — first match wins
_PROBLEM_KINDS = (
    ("no image pixel data", "not an image"),
    ("missing slice", "missing slices"),
    ("uneven", "uneven spacing"),
    ("share one position", "duplicate positions"),
    ("not on one line", "several stacks"),
    ("holds", "several images in one series"),
    ("incomplete", "incomplete time series"),
    ("single", "single image"),
    ("no patient geometry", "no patient geometry"),
)


def _problem_kind(problem: Any) -> str:
    if not isinstance(problem, str) or not problem:
        return "other"
    text = problem.lower()
    return next((label for key, label in _PROBLEM_KINDS if key in text), "other")


def volume_usability(index: Any) -> pd.DataFrame:
    """How many series form regular volumes, and why the others do not (per modality).

    ``status`` is 'regular volume' or a category of the geometry check's
    ``volume_problem`` ('missing slices', 'uneven spacing', 'single image',
    'several images in one series', 'no patient geometry', 'not an image', ...).
    """
    s = _series(index)
    status = np.where(s["is_volume"].fillna(False), "regular volume",
                      s["volume_problem"].map(_problem_kind))
    return (s.assign(status=status).groupby(["modality", "status"], dropna=False)
            .agg(n_series=("series_uid", "count")).reset_index()
            .sort_values(["modality", "n_series"], ascending=[True, False], ignore_index=True))
