"""Exports state their provenance truthfully (issue 13, finding 6).

References: the DICOM headers read with pydicom (series UIDs, ROI Generation
Algorithm) and the written SEG/SR read back with pydicom, not medlab.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pydicom
import pytest

import medlab as ml
from medlab.measure import SRError, label_stats, provenance, to_table, write_sr
from medlab.segmentation import (
    connected_threshold,
    largest_component,
    opening,
    rtstruct_to_masks,
    threshold,
    write_seg,
)

STS = "dicom/STS_002"


def _series_uid(folder) -> str:
    first = next(p for p in sorted(folder.rglob("*")) if p.is_file())
    return str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)


@pytest.fixture(scope="module")
def sts():
    root = ml.data.path("sts-cohort", STS)
    ct, pet = ml.load(root / "CT" / "image"), ml.load(root / "PET" / "image")
    gtv = {name: next(iter(rtstruct_to_masks(root / name / "mask", img).values()))
           for name, img in (("CT", ct), ("PET", pet))}
    return root, ct, pet, gtv


@pytest.fixture(scope="module")
def ct3():
    return ml.load(ml.data.path("dcmqi", "segmentations/ct-3slice"))


def _seg_segments(path) -> list[tuple[str, str]]:
    ds = pydicom.dcmread(path)
    return [(str(s.SegmentLabel), str(s.SegmentAlgorithmType)) for s in ds.SegmentSequence]


# --------------------------------------------------------------------------- tables
def test_to_table_keeps_each_rows_modality_and_series(sts, tmp_path):
    root, ct, pet, gtv = sts
    rows = pd.concat([label_stats(ct, gtv["CT"]).assign(patient="STS_002", modality="CT"),
                      label_stats(pet, gtv["PET"]).assign(patient="STS_002", modality="PET")],
                     ignore_index=True)
    # one source for rows of two images: refused, with the fix in the message
    with pytest.raises(ValueError, match=r"several images \(modality: CT, PET\).*provenance"):
        to_table(rows, tmp_path / "t.csv", source=ct)
    # each row's own provenance
    rows = pd.concat([rows[rows.modality == "CT"].assign(**provenance(ct)),
                      rows[rows.modality == "PET"].assign(**provenance(pet))], ignore_index=True)
    to_table(rows, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv").set_index("modality")
    assert back.loc["PET", "series_instance_uid"] == _series_uid(root / "PET" / "image")
    assert back.loc["CT", "series_instance_uid"] == _series_uid(root / "CT" / "image")
    assert back.loc["PET", "source_modality"] == "PT"


def test_to_table_never_overwrites_the_tables_columns(sts, tmp_path):
    _, ct, _, gtv = sts
    rows = label_stats(ct, gtv["CT"]).assign(modality="CT_contrast",
                                             series_instance_uid="1.2.3")
    out = to_table(rows, tmp_path / "t.csv", source=ct)
    assert out["modality"].tolist() == ["CT_contrast"]
    assert out["series_instance_uid"].tolist() == ["1.2.3"]
    assert out["source_modality"].tolist() == ["CT"]


# --------------------------------------------------- names and algorithm types in SEG
def test_label_names_survive_components_and_reach_the_seg(ct3, tmp_path):
    bone = threshold(ct3, lower=300)
    bone.meta["labels"] = {1: "bone"}
    largest = largest_component(bone)
    assert largest.meta["labels"] == {1: "bone"}
    assert opening(largest, radius_mm=1).meta["labels"] == {1: "bone"}
    parts = ml.segmentation.connected_components(bone)
    assert set(parts.meta["labels"].values()) >= {"bone component 1"}
    path = write_seg(largest, ct3, tmp_path / "seg.dcm")
    # a threshold is automatic, and stays so through the component step
    assert _seg_segments(path) == [("bone", "AUTOMATIC")]


def test_seg_algorithm_type_follows_how_the_mask_was_made(ct3, tmp_path):
    seed = ct3.center
    value = float(ct3.array[tuple(np.round(ct3.world_to_index(seed)).astype(int))])
    grown = connected_threshold(ct3, [seed], lower=value - 200, upper=value + 200)
    grown = largest_component(opening(grown, radius_mm=1))
    assert grown.meta["algorithm_type"] == "SEMIAUTOMATIC"
    path = write_seg(grown, ct3, tmp_path / "grown.dcm")
    [(_, kind)] = _seg_segments(path)
    assert kind == "SEMIAUTOMATIC"
    algo = pydicom.dcmread(path).SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert "connected_threshold" in str(algo.AlgorithmName)
    # the user's word wins
    path = write_seg(grown, ct3, tmp_path / "manual.dcm", algorithm_type="MANUAL")
    assert _seg_segments(path)[0][1] == "MANUAL"


def test_rtstruct_masks_keep_the_roi_generation_algorithm(sts, tmp_path):
    root, ct, _, gtv = sts
    rs = pydicom.dcmread(next(p for p in (root / "CT" / "mask").iterdir()))
    expected = str(rs.StructureSetROISequence[0].ROIGenerationAlgorithm)
    assert gtv["CT"].meta["algorithm_type"] == expected
    path = write_seg({"GTV": gtv["CT"]}, ct, tmp_path / "gtv.dcm")
    assert _seg_segments(path) == [("GTV", expected)]


# ------------------------------------------------------------------------- SR units
def test_sr_units_behave_as_documented(sts, tmp_path):
    root = ml.data.path("sts-cohort", STS)
    mr = ml.load(root / "MR_T1" / "image")
    mask = next(iter(rtstruct_to_masks(root / "MR_T1" / "mask", mr).values()))
    stats = label_stats(mr, mask).assign(name="GTV")
    seg = write_seg({"GTV": mask}, mr, tmp_path / "seg.dcm")
    sr = write_sr(stats, seg, mr, tmp_path / "sr.dcm")
    units = {str(item.MeasurementUnitsCodeSequence[0].CodeValue)
             for item in _numeric_items(pydicom.dcmread(sr))}
    assert units == {"mm3", "1"}  # volume, and MR signal on the scanner's arbitrary scale
    with pytest.raises(SRError, match="intensity_concept="):
        write_sr(stats.assign(units="ms"), seg, mr, tmp_path / "sr2.dcm")


def _numeric_items(ds):
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "NUM":
            yield item.MeasuredValueSequence[0]
        yield from _numeric_items(item)


def test_seg_and_sr_on_the_ge_adc_map(data_root, tmp_path):
    # finding 7: the GE ADC map's slices differ in orientation in the 8th decimal; what medlab
    # loads as one volume it can write a SEG and an SR against
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adc = ml.load(data_root / "dcmqi" / "paramaps" / "701-ADCb500")
    iops = {tuple(pydicom.dcmread(f, stop_before_pixels=True).ImageOrientationPatient)
            for f in adc.meta["files"]}
    assert len(iops) > 1  # the jitter is real
    mask = largest_component(threshold(adc, lower=float(np.percentile(adc.array, 99))))
    seg = write_seg(mask, adc, tmp_path / "seg.dcm")
    ds = pydicom.dcmread(seg)
    referenced = {str(r.ReferencedSOPInstanceUID)
                  for r in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    sops = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
            for f in adc.meta["files"]}
    assert referenced <= sops and referenced
    stats = label_stats(adc, mask).assign(name=mask.meta["labels"][1])
    # the GE map is a plain MR image without units: the user names the quantity
    sr = write_sr(stats, seg, adc, tmp_path / "sr.dcm",
                  intensity_concept=("113041", "DCM", "Apparent Diffusion Coefficient"),
                  intensity_unit=("um2/s", "UCUM", "square micrometer per second"))
    units = {str(i.MeasurementUnitsCodeSequence[0].CodeValue)
             for i in _numeric_items(pydicom.dcmread(sr))}
    assert units == {"mm3", "um2/s"}


# ------------------------------------------------------------- one geometry tolerance
def test_what_the_loader_groups_the_writers_accept():
    from medlab import geometry as geo

    rng = np.random.default_rng(0)
    grouped = 0
    for _ in range(5000):
        a = rng.uniform(-1, 1, 6)
        b = a + rng.uniform(-5e-4, 5e-4, 6)
        if geo.orientation_key(a) == geo.orientation_key(b):
            grouped += 1
            assert geo.same_orientation(a, b), (a, b)
    assert grouped > 100
    # the 8th-decimal jitter of the GE ADC map is one orientation
    assert geo.orientation_key([1, 0, 0, 0, 0.99999999, -1e-8]) == (1.0, 0, 0, 0, 1.0, 0)
