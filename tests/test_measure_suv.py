"""PET SUV from DICOM headers: ml.measure.suv_factors / to_suv / read_rwvm.

Independent references: the formulas written out here from the QIBA
vendor-neutral pseudo-code (Kinahan et al.) and the cited papers, on
header values read with plain pydicom; pixel values decoded by pydicom;
``pysuv`` (an independent SUV package) as an extra check when installed;
the Real World Value Mapping of dcmqi's example read by pydicom traversal.

Hand computation for fo-dicom GH184 (GE Discovery ST, Units BQML,
DecayCorrection START): injection RadiopharmaceuticalStartTime 09:32:00
on the SeriesDate 2014-10-23, scan start SeriesTime 11:00:36, so the
decay time is 1 h 28 min 36 s = 5316 s; RadionuclideTotalDose 474592928 Bq,
RadionuclideHalfLife 6588 s, PatientWeight 90 kg:
decayed dose = 474592928 * 2 ** (-5316 / 6588) = 271.277 MBq and
SUVbw factor = 90000 g / 271.277 MBq = 3.3176e-4 g/ml per Bq/ml.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import medlab as ml
from medlab.measure import SuvError, read_rwvm, suv_factors, to_suv

GH184 = ("fo-dicom", "GH184.dcm")
GH610 = ("fo-dicom", "GH610.dcm")
STS_PET = ("sts-cohort", "dicom/STS_002/PET/image")


def _path(spec) -> Path:
    return ml.data.path(*spec)


def _header(spec=GH184) -> pydicom.Dataset:
    return pydicom.dcmread(_path(spec), stop_before_pixels=True)


# ---------------------------------------------------- formulas, written out
def _seconds(hhmmss: str) -> float:
    return int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + float(hhmmss[4:])


def qiba_suvbw_factor(ds: pydicom.Dataset) -> float:
    """QIBA pseudo-code for BQML + START: weight[g] / (dose * 2^(-(scan - injection)/T))."""
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    decay_s = _seconds(str(ds.SeriesTime)) - _seconds(str(rp.RadiopharmaceuticalStartTime))
    decayed = float(rp.RadionuclideTotalDose) * 2.0 ** (-decay_s / float(rp.RadionuclideHalfLife))
    return float(ds.PatientWeight) * 1000.0 / decayed


def james_lbm(w, h_cm, sex):
    return 1.10 * w - 128 * (w / h_cm) ** 2 if sex == "M" else 1.07 * w - 148 * (w / h_cm) ** 2


def janmahasatian_lbm(w, h_m, sex):
    bmi = w / h_m**2
    return 9270 * w / (6680 + 216 * bmi) if sex == "M" else 9270 * w / (8780 + 244 * bmi)


def dubois_bsa_m2(w, h_cm):
    return 0.007184 * w**0.425 * h_cm**0.725


def _pysuv_factor(path, normalization):
    """pysuv's factor when that package is installed (not a medlab dependency), else None."""
    try:
        import pysuv
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(pysuv.get_suv_factor(str(path), normalization=normalization).suv_factor)


# --------------------------------------------------------------- BQML (GE)
def test_gh184_suvbw_factor_matches_the_hand_computation():
    ds = _header()
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    # the inputs as read by pydicom, so the numbers in the module docstring are these
    assert (str(ds.Units), str(ds.DecayCorrection)) == ("BQML", "START")
    assert _seconds(str(ds.SeriesTime)) - _seconds(str(rp.RadiopharmaceuticalStartTime)) == 5316.0
    expected = 90.0 * 1000.0 / (474592928.0 * 2.0 ** (-5316.0 / 6588.0))
    assert expected == pytest.approx(3.3176370742e-4, rel=1e-9)
    assert qiba_suvbw_factor(ds) == pytest.approx(expected, rel=1e-12)

    info = suv_factors(_path(GH184))
    assert info["factor"] == pytest.approx(expected, rel=1e-12)
    assert info["suv_bw_factor"] == info["factor"]
    assert info["decay_time_s"] == 5316.0
    assert info["decayed_dose_bq"] == pytest.approx(271277412.17, rel=1e-9)
    assert info["units_out"] == "SUVbw" and info["ucum"] == "g/ml{SUVbw}"
    assert info["from"]["injection_datetime"].startswith("RadiopharmaceuticalStartTime")
    assert info["from"]["reference_datetime"].startswith("SeriesDate/SeriesTime")

    reference = _pysuv_factor(_path(GH184), "bw")
    if reference is not None:  # pysuv, an independent implementation, when installed
        assert info["factor"] == pytest.approx(reference, rel=1e-9)


def test_gh184_suv_image_against_pydicom_pixels():
    full = pydicom.dcmread(_path(GH184))
    activity = full.pixel_array.astype(np.float64) * float(full.RescaleSlope) + float(full.RescaleIntercept)
    suv = to_suv(ml.load(_path(GH184)))
    assert suv.meta["units"] == "SUVbw" and suv.meta["units_ucum"] == "g/ml{SUVbw}"
    assert suv.dtype == np.float32
    expected = activity * qiba_suvbw_factor(full)
    np.testing.assert_allclose(suv.array[0], expected, rtol=1e-6, atol=1e-6)
    # a plausible FDG slice: SUVmax of a few, background below 1
    assert 1.0 < float(suv.array.max()) < 30.0
    assert float(np.median(suv.array)) < 1.0


def test_lean_body_mass_and_body_surface_area_variants():
    ds = _header()
    bw = qiba_suvbw_factor(ds)
    w, h = 90.0, float(ds.PatientSize)
    for sex in ("M", "F"):
        jan = suv_factors(_path(GH184), kind="lbm", sex=sex)
        assert jan["lbm_formula"] == "janmahasatian"
        assert jan["lbm_kg"] == pytest.approx(janmahasatian_lbm(w, h, sex), rel=1e-12)
        assert jan["factor"] == pytest.approx(bw * janmahasatian_lbm(w, h, sex) / w, rel=1e-10)
        assert jan["ucum"] == "g/ml{SUVlbm(Janma)}"
        james = suv_factors(_path(GH184), kind="lbm", sex=sex, lbm_formula="james")
        assert james["lbm_kg"] == pytest.approx(james_lbm(w, h * 100, sex), rel=1e-12)
        assert james["factor"] == pytest.approx(bw * james_lbm(w, h * 100, sex) / w, rel=1e-10)
    # by hand, 90 kg, 1.70 m, male: BMI 31.14, Janmahasatian 834300 / 13406.7 = 62.23 kg;
    # James 99 - 128 * 0.28028 = 63.12 kg
    assert janmahasatian_lbm(90, 1.7, "M") == pytest.approx(62.23, abs=0.01)
    assert james_lbm(90, 170, "M") == pytest.approx(63.12, abs=0.01)

    bsa = suv_factors(_path(GH184), kind="bsa")
    assert bsa["bsa_m2"] == pytest.approx(dubois_bsa_m2(w, h * 100), rel=1e-12)
    assert bsa["bsa_m2"] == pytest.approx(2.014, abs=1e-3)
    # SUVbsa in cm2/ml: BSA[cm2] / decayed dose
    assert bsa["factor"] == pytest.approx(bw * dubois_bsa_m2(w, h * 100) * 1e4 / (w * 1000), rel=1e-10)
    assert bsa["ucum"] == "cm2/ml{SUVbsa}"
    reference = _pysuv_factor(_path(GH184), "bsa")  # pysuv gives BSA in m2
    if reference is not None:
        assert bsa["factor"] == pytest.approx(reference * 1e4, rel=1e-9)

    img = ml.load(_path(GH184))
    lbm = to_suv(img, kind="lbm", sex="F", lbm_formula="james")
    assert lbm.meta["units"] == "SUVlbm"
    np.testing.assert_allclose(lbm.array, img.array * lbm.meta["suv"]["factor"], rtol=1e-6)


# -------------------------------------------------------- decay correction
def test_decay_reference_times_and_admin(tmp_path):
    base = _header()
    w, dose, T = 90000.0, 474592928.0, 6588.0

    admin = copy.deepcopy(base)
    admin.DecayCorrection = "ADMIN"
    info = suv_factors(admin)
    assert info["decay_time_s"] == 0.0 and info["factor"] == pytest.approx(w / dose, rel=1e-12)

    # a post-processed series (series time after the acquisition): GE's private scan time
    post = copy.deepcopy(base)
    post.SeriesTime = "130000"
    info = suv_factors(post)
    assert info["from"]["reference_datetime"].startswith("GE private")
    assert info["decay_time_s"] == 5316.0
    # ... and without it, the acquisition time (here 5 min after the injection + 5316 s)
    del post[0x0009, 0x0010]
    post.AcquisitionTime = "110536"
    info = suv_factors(post)
    assert info["from"]["reference_datetime"].startswith("earliest Acquisition")
    assert info["decay_time_s"] == 5316.0 + 300.0

    # RadiopharmaceuticalStartDateTime wins over the time of day; midnight crossing
    dt = copy.deepcopy(base)
    dt.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20141023103200"
    assert suv_factors(dt)["decay_time_s"] == 5316.0 - 3600.0
    night = copy.deepcopy(base)
    night.SeriesTime = night.AcquisitionTime = "003000"
    night.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime = "233000"
    info = suv_factors(night)
    assert info["decay_time_s"] == 3600.0
    assert any("midnight" in n for n in info["notes"])
    expected = w / (dose * 2.0 ** (-3600.0 / T))
    assert info["factor"] == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------- Philips CNTS
def _philips(ds: pydicom.Dataset, *, suv=None, conc=None) -> pydicom.Dataset:
    out = copy.deepcopy(ds)
    out.Units, out.Manufacturer = "CNTS", "Philips Medical Systems"
    block = out.private_block(0x7053, "Philips PET Private Group", create=True)
    if suv is not None:
        block.add_new(0x00, "DS", str(suv))
    if conc is not None:
        block.add_new(0x09, "DS", str(conc))
    return out


def test_philips_counts_with_vendor_scale_factors():
    ds = _header()
    bw = qiba_suvbw_factor(ds)
    info = suv_factors(_philips(ds, suv=0.0005))
    assert info["factor"] == 0.0005
    assert info["from"]["suv_bw_factor"].startswith("Philips SUV scale factor (7053,1000)")
    lbm = suv_factors(_philips(ds, suv=0.0005), kind="lbm", sex="M")
    assert lbm["factor"] == pytest.approx(0.0005 * janmahasatian_lbm(90, 1.7000000476837, "M") / 90, rel=1e-10)
    # only the activity concentration scale factor: counts -> Bq/ml, then as BQML
    conc = suv_factors(_philips(ds, conc=2.5))
    assert conc["bqml_per_unit"] == 2.5
    assert conc["factor"] == pytest.approx(2.5 * bw, rel=1e-12)
    with pytest.raises(SuvError, match=r"CNTS.*\(7053,1000\).*\(7053,1009\).*bqml_per_unit="):
        suv_factors(_philips(ds))


def test_per_slice_philips_factors_applied_per_slice(tmp_path):
    """Three copies of GH184 as one series, each slice with its own (7053,1000)."""
    full = pydicom.dcmread(_path(GH184))
    series, factors = generate_uid(), [0.001, 0.002, 0.004]
    for k, f in enumerate(factors):
        ds = _philips(full, suv=f)
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [float(v) for v in full.ImagePositionPatient[:2]] + [10.0 * k]
        ds.InstanceNumber = k + 1
        ds.SliceLocation = 10.0 * k
        ds.save_as(tmp_path / f"{k}.dcm")
    img = ml.load(tmp_path)
    assert img.spatial_shape[0] == 3 and img.meta["units"] == "CNTS"
    suv = to_suv(img)
    activity = full.pixel_array * float(full.RescaleSlope)
    z = img.index_to_world([[k, 0, 0] for k in range(3)])[:, 2]
    for k in range(3):
        f = factors[round(z[k] / 10.0)]
        np.testing.assert_allclose(suv.array[k], activity * f, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- GML (SUV)
def test_sts_pet_in_gml_passes_through():
    pet = ml.load(_path(STS_PET))
    ds = pydicom.dcmread(pet.meta["files"][0], stop_before_pixels=True)
    assert (str(ds.Units), str(ds.SUVType), str(ds.DecayCorrection)) == ("GML", "BW", "ADMIN")
    suv = to_suv(pet)
    assert suv.meta["units"] == "SUVbw"
    np.testing.assert_array_equal(suv.array, pet.array)
    assert any("already SUVbw" in n for n in suv.meta["suv"]["notes"])
    # SUVlbm from SUVbw: times LBM / weight (99 kg, 1.74 m, male)
    lbm = to_suv(pet, kind="lbm")
    ratio = janmahasatian_lbm(99.0, 1.74, "M") / 99.0
    assert lbm.meta["suv"]["factor"] == pytest.approx(ratio, rel=1e-12)
    np.testing.assert_allclose(lbm.array, pet.array * ratio, rtol=1e-6)
    with pytest.raises(SuvError, match="already holds SUVbw"):
        to_suv(suv)


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize(("change", "pattern"), [
    (lambda d: d.__delattr__("PatientWeight"), r"PatientWeight \(0010,1030\).*weight_kg="),
    (lambda d: setattr(d, "PatientWeight", "0"), r"PatientWeight \(0010,1030\).*weight_kg="),
    (lambda d: d.RadiopharmaceuticalInformationSequence[0].__delattr__("RadionuclideTotalDose"),
     r"RadionuclideTotalDose \(0018,1074\).*injected_dose_bq="),
    (lambda d: d.RadiopharmaceuticalInformationSequence[0].__delattr__("RadionuclideHalfLife"),
     r"RadionuclideHalfLife \(0018,1075\).*half_life_s="),
    (lambda d: d.RadiopharmaceuticalInformationSequence[0].__delattr__("RadiopharmaceuticalStartTime"),
     r"RadiopharmaceuticalStartTime \(0018,1072\).*injection_time="),
    (lambda d: [d.__delattr__(k) for k in ("SeriesTime", "AcquisitionTime")]
     + [d.__delitem__((0x0009, 0x0010))],  # and GE's private scan time
     r"SeriesTime \(0008,0031\).*scan_time="),
    (lambda d: setattr(d, "DecayCorrection", "NONE"), r"DecayCorrection 'NONE'.*decay_time_s="),
])
def test_missing_header_values_name_the_tag_and_the_keyword(change, pattern):
    ds = _header()
    change(ds)
    with pytest.raises(SuvError, match=pattern):
        suv_factors(ds)


def test_overrides_and_other_errors():
    ds = _header()
    bw = qiba_suvbw_factor(ds)
    no_weight = copy.deepcopy(ds)
    del no_weight.PatientWeight
    assert suv_factors(no_weight, weight_kg=45.0)["factor"] == pytest.approx(bw / 2, rel=1e-12)
    assert suv_factors(ds, decay_time_s=0.0)["factor"] == pytest.approx(90000 / 474592928, rel=1e-12)
    assert suv_factors(ds, injected_dose_bq=474592928 / 2)["factor"] == pytest.approx(2 * bw, rel=1e-12)
    assert suv_factors(ds, scan_time="20141023110036", injection_time="20141023093200")["decay_time_s"] == 5316
    # sex 'O' cannot give a lean body mass
    with pytest.raises(SuvError, match=r"PatientSex \(0010,0040\) is 'O'.*sex='M' or 'F'"):
        suv_factors(ds, kind="lbm")
    # GE PROPCPS: not activity concentration
    with pytest.raises(SuvError, match=r"Units 'PROPCPS'.*BQML.*bqml_per_unit="):
        to_suv(ml.load(_path(GH610)))
    ct = ml.load(ml.data.path("dcmqi", "segmentations/ct-3slice"))
    with pytest.raises(SuvError, match=r"PET images.*'CT'"):
        to_suv(ct)
    bare = ml.Image(np.ones((1, 2, 2), np.float32), np.eye(4), meta={"units": "BQML"})
    with pytest.raises(SuvError, match=r"meta\['files'\].*header="):
        to_suv(bare)
    out = to_suv(bare, header=_path(GH184))
    assert out.array[0, 0, 0] == pytest.approx(bw, rel=1e-6)
    with pytest.raises(ValueError, match="kind must be"):
        suv_factors(ds, kind="ibw")
    assert math.isnan(suv_factors(ds)["suv_lbm_factor"])  # no sex: lbm not computable, no error for bw


# ---------------------------------------------------------------------- RWVM
def test_dcmqi_rwvm_pet_suv_factors():
    """dcmqi's RWVM (QIICR Slicer SUVFactorCalculator) for the QIN-HEADNECK PET.

    The PET itself is not in the data, so the slope cannot be recomputed
    here: the test checks the parse against a pydicom traversal, and the
    SR beside it references this very mapping. For the record, with its
    PatientWeight 75 kg the slope 0.000375125 g/ml per Bq/ml implies a
    decay-corrected dose of 75000 / 0.000375125 = 199.93 MBq.
    """
    path = ml.data.path("dcmqi", "sr-example/rwvm.dcm")
    table = read_rwvm(path)
    ds = pydicom.dcmread(path)
    ref = ds.ReferencedImageRealWorldValueMappingSequence[0]
    mapping = ref.RealWorldValueMappingSequence[0]
    assert len(table) == 1
    row = table.iloc[0]
    assert row["slope"] == float(mapping.RealWorldValueSlope) == 0.000375125
    assert row["intercept"] == 0.0
    assert row["units_ucum"] == "{SUVbw}g/ml" and row["label"] == "{SUVbw}g/ml"
    assert row["quantity"] == "Standardized Uptake Value"
    assert row["method"] == "SUV body weight calculation method"
    assert row["n_referenced_images"] == len(ref.ReferencedImageSequence) == 191
    assert table.attrs["patient_weight_kg"] == 75.0
    assert 75000 / row["slope"] == pytest.approx(199.93e6, rel=1e-4)
    # the SR of the same example points at this mapping
    sr = pydicom.dcmread(ml.data.path("dcmqi", "sr-example/sr.dcm"))
    refs = {str(s.ReferencedSOPInstanceUID)
            for e in sr.CurrentRequestedProcedureEvidenceSequence
            for series in e.ReferencedSeriesSequence for s in series.ReferencedSOPSequence}
    assert table.attrs["sop_instance_uid"] in refs
    with pytest.raises(ml.errors.DicomReadError, match="not a Real World Value Mapping"):
        read_rwvm(sr)
