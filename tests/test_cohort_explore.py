"""Day-one cohort tables and the overview figure, on a synthetic cohort whose
contents are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_dicom_series
from pydicom.uid import generate_uid

import medlab as ml


@pytest.fixture(scope="module")
def cohort_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 2000, (6, 8, 8)).astype(np.int16)
    # patient A: two studies (2019, 2021), CT + MR in the first
    study_a1, study_a2 = generate_uid(), generate_uid()
    write_dicom_series(root / "a1_ct", vol, patient_id="SECRET-A", study_uid=study_a1,
                       study_date="20190301", manufacturer="ACME")
    write_dicom_series(root / "a1_mr", vol, patient_id="SECRET-A", study_uid=study_a1,
                       study_date="20190301", modality="MR", manufacturer="Zeta")
    write_dicom_series(root / "a2_ct", vol, patient_id="SECRET-A", study_uid=study_a2,
                       study_date="20210610", manufacturer="ACME")
    # patient B: one CT with a missing slice
    positions = [np.array([0, 0, 2.0 * k]) for k in (0, 1, 2, 4, 5, 6)]
    write_dicom_series(root / "b1_ct", vol, patient_id="SECRET-B", positions=positions,
                       study_date="20210611", manufacturer="ACME")
    return ml.cohort.scan(root, progress=False)


def test_summary_counts(cohort_index):
    s = dict(ml.cohort.summary(cohort_index).itertuples(index=False))
    assert (s["patients"], s["studies"], s["series"], s["instances"]) == (2, 3, 4, 24)
    assert s["modalities"] == "CT, MR"
    assert str(s["first study"]) == "2019-03-01" and str(s["last study"]) == "2021-06-11"
    assert s["series usable as volumes"] == 3


def test_studies_per_patient_hides_identifiers(cohort_index):
    t = ml.cohort.studies_per_patient(cohort_index)
    assert sorted(t["patient"]) == sorted(ml.privacy.pseudonym(p) for p in ("SECRET-A", "SECRET-B"))
    assert sorted(zip(t["n_studies"], t["n_series"], strict=True)) == [(1, 1), (2, 3)]
    assert "SECRET" not in t.to_string()
    shown = ml.cohort.studies_per_patient(cohort_index, show_phi=True)
    assert set(shown["patient"]) == {"SECRET-A", "SECRET-B"}


def test_series_counts_dates_and_usability(cohort_index):
    c = ml.cohort.series_counts(cohort_index, by=["modality", "manufacturer"])
    assert {(r.modality, r.manufacturer, r.n_series) for r in c.itertuples()} == {
        ("CT", "ACME", 3), ("MR", "Zeta", 1)}
    with pytest.raises(KeyError, match="no column"):
        ml.cohort.series_counts(cohort_index, by=["scanner_colour"])
    d = ml.cohort.dates_table(cohort_index, freq="YS")
    assert dict(zip(d["period"].dt.year, d["n_studies"], strict=True)) == {2019: 1, 2020: 0, 2021: 2}
    u = ml.cohort.volume_usability(cohort_index)
    assert {(r.modality, r.status, r.n_series) for r in u.itertuples()} == {
        ("CT", "regular volume", 2), ("CT", "missing slices", 1), ("MR", "regular volume", 1)}
    sp = ml.cohort.spacing_table(cohort_index)
    assert np.allclose(sp["pixel_spacing_row_mm"], 0.8)


def test_overview_figure_draws_without_phi(cohort_index):
    fig = ml.view.cohort_overview(cohort_index, title="synthetic")
    assert len(fig.axes) == 6
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert any("regular volume" in t for t in texts)
    assert not any("SECRET" in t or "Phantom" in t for t in texts)
    fig.canvas.draw()  # renders without error
