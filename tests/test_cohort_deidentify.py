"""De-identified export (DICOM PS3.15 Annex E) on real files.

The checks are independent of the implementation: PHI values are collected
from the originals with plain pydicom and searched for in the raw bytes of the
exported files; pixel data and geometry are compared with the originals;
references are followed through the mapping table; dates are compared day by
day; and the result is compared with another de-identifier (dicognito).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import shared_data_root
from pydicom.datadict import dictionary_description, dictionary_VR, keyword_for_tag, tag_for_keyword

import medlab as ml
from medlab.cohort import deidentify as deid

KEY = "medlab-test-key-0123456789abcdef"
OTHER_KEY = "another-secret-key-fedcba9876543210"
MODIFIED = "retain_longitudinal_modified_dates"
#: SR/coding-resource version stamps: dates of a dictionary release, not of a patient
VERSION_DATES = {"ContextGroupVersion", "ContextGroupLocalVersion", "TemplateVersion",
                 "TemplateLocalVersion"}
PHI_KEYWORDS = {
    "PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "IssuerOfPatientID",
    "MedicalRecordLocator", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "PatientAddress",
}
PSEUDO_UID = re.compile(rb"2\.25\.\d+")
# the shared files carry over-long values; pydicom warns on reading them
pytestmark = pytest.mark.filterwarnings("ignore:The value length:UserWarning")


def _root() -> Path:
    return shared_data_root()


def _sources() -> dict[str, list[Path]]:
    d = _root()
    return {
        # one real patient: CT, MR, PET series and their three RTSTRUCTs
        "sts": [d / "sts-cohort" / "dicom" / "STS_025"],
        # a DICOM SEG and the CT slices it references
        "seg": [d / "dcmqi" / "segmentations" / "ct-3slice",
                d / "dcmqi" / "segmentations" / "liver.dcm"],
        # TID 1500 SR referencing a SEG, and a real-world value mapping
        "sr": [d / "dcmqi" / "sr-example"],
        "us": [d / "wg04-modalities" / "US1_UNC.dcm"],
        # patient names in many character sets (OT images: flagged as burned-in)
        "charset": [d / "fo-dicom" / "charset"],
    }


def _files(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        out += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source_hashes():
    files = _files([p for ps in _sources().values() for p in ps])
    d = _root()
    files += _files([d / "sts-cohort" / "dicom" / "STS_002" / "CT", d / "fo-dicom" / "GH364.dcm",
                     d / "fo-dicom" / "GH227.dcm", d / "wg04-modalities" / "CT1_UNC.dcm",
                     d / "pydicom-extra" / "JPGLosslessP14SV1_1s_1f_8b.dcm",
                     d / "pydicom-extra" / "MR-SIEMENS-DICOM-WithOverlays.dcm",
                     d / "pydicom-testfiles" / "ExplVR_BigEnd.dcm",
                     d / "pydicom-testfiles" / "dicomdirtests" / "DICOMDIR"])
    return {f: (_sha256(f), f.stat().st_mtime_ns) for f in files}


@pytest.fixture(scope="module")
def basic(tmp_path_factory, source_hashes):
    """Everything exported with the basic profile (burned-in files included)."""
    tmp = tmp_path_factory.mktemp("basic")
    sel = [p for ps in _sources().values() for p in ps]
    report = ml.cohort.export(sel, tmp / "out", key=KEY, mapping=tmp / "map.csv",
                              allow_burned_in=True, progress=False)
    return report


@pytest.fixture(scope="module")
def dated(tmp_path_factory, source_hashes):
    """Two patients with modified (shifted) dates, mapping as Parquet."""
    tmp = tmp_path_factory.mktemp("dated")
    d = _root() / "sts-cohort" / "dicom"
    return ml.cohort.export([d / "STS_025", d / "STS_002" / "CT"], tmp / "out", key=KEY,
                            options=[MODIFIED], mapping=tmp / "map.parquet", progress=False)


def _pairs(report) -> list[tuple[Path, Path]]:
    return [(Path(p), report.dest / o) for p, o in zip(report.written["path"],
                                                       report.written["output"], strict=True)]


def _mapping(report) -> dict[tuple[str, str], str]:
    m = report.mapping
    return {(k, o): r for k, o, r in zip(m["kind"], m["original"], m["replacement"], strict=True)}


# -- the table -------------------------------------------------------------------------
def test_annex_e_table_transcription_matches_pydicom_dictionary():
    t = deid.annex_e_table()
    assert len(t) == 621  # the 2024b edition (innolitics/dicom-standard)
    standard = t[t["tag"].str.fullmatch(r"[0-9A-F]{8}")]
    assert len(standard) == 617
    norm = lambda s: re.sub(r"[^a-z0-9]", "", s.lower().replace("(trial)", ""))  # noqa: E731
    for tag, kw, name in zip(standard["tag"], standard["keyword"], standard["name"], strict=True):
        assert norm(dictionary_description(int(tag, 16))) == norm(name), tag
        assert keyword_for_tag(int(tag, 16)) == kw, tag
    assert set(t["basic"]) <= {"D", "Z", "X", "K", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    for col in t.columns[5:]:
        assert set(t[col]) <= {"", "K", "C", "X"}, col
    by_kw = standard.set_index("keyword")
    # rows checked against PS3.15 Table E.1-1 by hand
    expected = {
        "PatientName": ("Z", "", ""), "PatientID": ("Z/D", "", ""),
        "PatientBirthDate": ("Z", "", ""), "PatientSex": ("Z", "", "K"),
        "PatientAge": ("X", "", "K"), "PatientWeight": ("X", "", "K"),
        "StudyDate": ("Z", "C", ""), "SeriesDate": ("X/D", "C", ""),
        "AcquisitionDateTime": ("X/Z/D", "C", ""), "StudyTime": ("Z", "C", ""),
        "InstitutionName": ("X/Z/D", "", ""), "SOPInstanceUID": ("U", "", ""),
        "FrameOfReferenceUID": ("U", "", ""), "ReferencedImageSequence": ("X/Z/U*", "", ""),
        "AccessionNumber": ("Z", "", ""), "ContentSequence": ("D", "", ""),
        "OperatorsName": ("X/Z/D", "", ""), "StationName": ("X/Z/D", "", ""),
    }
    for kw, (basic, modified, chars) in expected.items():
        row = by_kw.loc[kw]
        assert (row["basic"], row["retain_long_modified_dates"],
                row["retain_patient_chars"]) == (basic, modified, chars), kw
    for tag in deid.ADDITIONS:
        assert keyword_for_tag(tag) and f"{tag:08X}" not in set(t["tag"])


# -- (1) no PHI -------------------------------------------------------------------------
def _is_standard_uid(value: str, keyword: str) -> bool:
    """UIDs that identify no patient: classes, transfer syntaxes, coding schemes, and
    anything under the DICOM root 1.2.840.10008 (reserved for the standard, PS3.5 9.1)."""
    return (keyword.endswith(("ClassUID", "TransferSyntaxUID")) or keyword == "CodingSchemeUID"
            or value.startswith("1.2.840.10008."))


def _phi(path: Path) -> tuple[set[bytes], set[str]]:
    """(raw byte strings, decoded strings) of identifying values in an original file."""
    ds = pydicom.dcmread(path, force=True)
    encodings = pydicom.charset.convert_encodings(ds.get("SpecificCharacterSet", "ISO_IR 6"))
    raw: set[bytes] = set()
    text: set[str] = set()
    elements = list(ds.file_meta) + list(ds.iterall())
    for el in elements:
        if el.value is None or el.value == "" or el.VR in ("SQ", "UN"):
            continue
        values = el.value if isinstance(el.value, (list, pydicom.multival.MultiValue)) else [
            el.value]
        kw = el.keyword
        for v in values:
            s = str(v).strip()
            if el.VR == "PN" or kw in PHI_KEYWORDS:
                parts = {s, *re.split(r"[\^=]", s)}
                for part in parts:
                    part = part.strip()
                    if len(part) >= 3 and re.search(r"\w", part):
                        text.add(part)
                        try:
                            raw.add(pydicom.charset.encode_string(part, encodings))
                        except (UnicodeError, LookupError, ValueError):
                            pass
            elif el.VR in ("DA", "DT") and kw not in VERSION_DATES:
                m = re.match(r"\d{8}", s.replace(".", ""))
                if m:
                    text.add(m.group(0))
                    raw.add(m.group(0).encode())
            elif el.VR == "UI" and s and not _is_standard_uid(s, kw):
                text.add(s)
                raw.add(s.encode())
    return raw, text


def _searchable(path: Path) -> tuple[bytes, str]:
    """The exported file's raw bytes before its Pixel Data element (pixel bytes are compared
    with the originals in another test) and its decoded strings, with medlab's '2.25.'
    pseudonyms blanked: they are keyed hashes whose digits may contain short numeric IDs."""
    data = path.read_bytes()
    cut = data.rfind(b"\xe0\x7f\x10\x00")
    data = PSEUDO_UID.sub(b"2.25.#", data[:cut] if cut > 0 else data)
    ds = pydicom.dcmread(path)
    strings = [str(el.value) for el in [*ds.file_meta, *ds.iterall()]
               if el.VR not in ("SQ", "OB", "OW", "OF", "OD", "OL", "UN") and el.value is not None]
    return data, PSEUDO_UID.sub(b"2.25.#", "\n".join(strings).encode()).decode()


def test_no_original_phi_value_in_any_exported_byte(basic):
    pairs = _pairs(basic)
    assert basic.n_written >= 130 and len(pairs) == basic.n_written
    modalities = {pydicom.dcmread(o, stop_before_pixels=True).Modality for _, o in pairs}
    assert {"CT", "MR", "PT", "RTSTRUCT", "SEG", "SR", "US", "OT"} <= modalities
    leaks = []
    checked = 0
    for src, out in pairs:
        raw, text = _phi(src)
        # values that the original also has inside kept equipment text are not PHI: the
        # dcmqi RWVM names 'QIICR' as content creator, and its Manufacturer is the URL
        # https://github.com/QIICR/... (Table E.1-1 keeps Manufacturer)
        equipment = " ".join(str(pydicom.dcmread(src, stop_before_pixels=True).get(k, ""))
                             for k in ("Manufacturer", "ManufacturerModelName", "SoftwareVersions"))
        raw = {v for v in raw if v.decode("latin-1") not in equipment}
        text = {v for v in text if v not in equipment}
        data, strings = _searchable(out)
        checked += len(raw) + len(text)
        leaks += [(src.name, v) for v in raw if v in data]
        leaks += [(src.name, v) for v in text if v in strings]
        ds = pydicom.dcmread(out)
        assert not [el.tag for el in ds.iterall() if el.tag.is_private], out
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        codes = [it.CodeValue for it in ds.DeidentificationMethodCodeSequence]
        assert codes[0] == "113100" and not {"113106", "113107", "113108", "113111"} & set(codes)
        assert ds.PatientID == ds.PatientName == out.relative_to(basic.dest).parts[0]
        assert out.relative_to(basic.dest).parts[1:] == (
            ds.StudyInstanceUID, ds.SeriesInstanceUID, f"{ds.SOPInstanceUID}.dcm")
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.preamble == b"\x00" * 128
    assert checked > 4000
    assert not leaks, leaks[:20]


def test_skipped_files_are_listed_with_reasons(basic):
    reasons = dict(zip(basic.skipped["path"].map(lambda p: Path(p).name), basic.skipped["reason"],
                       strict=True))
    assert "same SOPInstanceUID" in reasons["chrJapMultiExplicitIR6.dcm"]
    assert "not a storable DICOM instance" in reasons["chrSQEncoding.dcm"]
    assert basic.n_files == basic.n_written + len(basic.skipped)


# -- (2) geometry and pixels ---------------------------------------------------------------
def test_pixel_data_and_geometry_unchanged(basic):
    n_pixels = 0
    for src, out in _pairs(basic):
        a, b = pydicom.dcmread(src), pydicom.dcmread(out)
        assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
        for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                   "SliceThickness", "Rows", "Columns", "NumberOfFrames", "RescaleSlope",
                   "RescaleIntercept", "FrameOfReferenceUID"):
            if kw == "FrameOfReferenceUID":
                assert (kw in a) == (kw in b)
            else:
                assert a.get(kw) == b.get(kw), (src, kw)
        if "SharedFunctionalGroupsSequence" in a:  # the multi-frame SEG's plane geometry
            pos = lambda ds: [f.PlanePositionSequence[0].ImagePositionPatient  # noqa: E731
                              for f in ds.PerFrameFunctionalGroupsSequence]
            assert pos(a) == pos(b)
        if "PixelData" in a:
            assert a.PixelData == b.PixelData, src  # byte for byte, not re-encoded
            assert np.array_equal(a.pixel_array, b.pixel_array), src
            n_pixels += 1
    assert n_pixels >= 125


# -- (3) deterministic ---------------------------------------------------------------------
def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.dcm"))}


def test_same_key_same_bytes_other_key_other_uids(tmp_path):
    sel = _sources()["seg"] + _sources()["sr"]
    r1 = ml.cohort.export(sel, tmp_path / "a", key=KEY, progress=False)
    r2 = ml.cohort.export(sel, tmp_path / "b", key=KEY, progress=False)
    r3 = ml.cohort.export(sel, tmp_path / "c", key=OTHER_KEY, progress=False)
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert r1.n_written == len(a) == 7
    assert a == b

    def uids(folder: Path) -> set[str]:
        return {str(el.value) for p in folder.rglob("*.dcm") for el in pydicom.dcmread(p).iterall()
                if el.VR == "UI" and str(el.value).startswith("2.25.")}

    assert not set(a) & set(c)
    ua, uc = uids(tmp_path / "a"), uids(tmp_path / "c")
    assert len(ua) > 20 and not ua & uc
    assert set(r1.mapping["replacement"]) == set(r2.mapping["replacement"])
    assert r3.n_written == 7


# -- (4) references resolve -----------------------------------------------------------------
def _refs(ds) -> list[tuple[str, str]]:
    keep = {"ReferencedSOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
            "FrameOfReferenceUID", "ReferencedFrameOfReferenceUID", "UID"}
    return [(el.keyword, str(el.value)) for el in ds.iterall() if el.keyword in keep]


def test_references_still_resolve(basic):
    mapping = _mapping(basic)
    pairs = _pairs(basic)
    originals = [pydicom.dcmread(s, stop_before_pixels=True) for s, _ in pairs]
    exported = [pydicom.dcmread(o, stop_before_pixels=True) for _, o in pairs]
    targets = {kw: {str(ds.get(kw)) for ds in originals} for kw in
               ("SOPInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")}
    new_targets = {kw: {str(ds.get(kw)) for ds in exported} for kw in targets}
    kind = {"ReferencedSOPInstanceUID": "SOPInstanceUID", "SeriesInstanceUID":
            "SeriesInstanceUID", "FrameOfReferenceUID": "FrameOfReferenceUID",
            "ReferencedFrameOfReferenceUID": "FrameOfReferenceUID"}
    resolved = {}
    for a, b in zip(originals, exported, strict=True):
        if a.Modality not in ("SEG", "RTSTRUCT", "SR"):
            continue
        ra, rb = _refs(a), _refs(b)
        assert len(ra) == len(rb) and [k for k, _ in ra] == [k for k, _ in rb]
        for (kw, old), (_, new) in zip(ra, rb, strict=True):
            assert new == mapping[("uid", old)]  # consistent pseudonym, invertible
            if kw in kind and old in targets[kind[kw]]:
                assert new in new_targets[kind[kw]], (a.Modality, kw)
                resolved[(a.Modality, kw)] = resolved.get((a.Modality, kw), 0) + 1
    # SEG -> its CT slices, SR -> the SEG, RTSTRUCT -> series and frame of reference
    # (the STS structure sets' instance references point at the uncropped originals,
    # which are not in the data set, in the original as in the export)
    assert resolved[("SEG", "ReferencedSOPInstanceUID")] >= 3
    assert resolved[("SR", "ReferencedSOPInstanceUID")] >= 1
    assert resolved[("RTSTRUCT", "SeriesInstanceUID")] >= 3
    assert resolved[("RTSTRUCT", "ReferencedFrameOfReferenceUID")] >= 3


def test_loader_groups_the_export_like_the_original(basic):
    patient = basic.mapping.query("kind == 'patient' and original == 'STS_025'")["replacement"]
    orig = ml.io.load_all(_root() / "sts-cohort" / "dicom" / "STS_025", progress=False)
    new = ml.io.load_all(basic.dest / patient.iloc[0], progress=False)
    assert len(orig) == len(new) == 3
    key = lambda im: (im.shape, tuple(np.round(im.affine, 4).ravel()))  # noqa: E731
    a = sorted(orig.values(), key=key)
    b = sorted(new.values(), key=key)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(x.affine, y.affine)
        np.testing.assert_array_equal(x.array, y.array)


# -- (5) dates -------------------------------------------------------------------------------
def _dates(ds) -> list[tuple[str, str]]:
    return [(el.keyword, str(v)) for el in ds.iterall() if el.VR in ("DA", "DT")
            for v in (el.value if isinstance(el.value, pydicom.multival.MultiValue)
                      else [el.value])]


def _day(s: str) -> date:
    return date(int(s[:4]), int(s[4:6]), int(s[6:8]))


def test_dates_shift_by_one_offset_per_patient(dated):
    offsets: dict[str, set[int]] = {}
    originals: dict[str, set[date]] = {}
    shifted: dict[str, set[date]] = {}
    for src, out in _pairs(dated):
        a, b = pydicom.dcmread(src, stop_before_pixels=True), pydicom.dcmread(out)
        pid = str(a.PatientID)
        da, db = _dates(a), _dates(b)
        assert [k for k, _ in da] == [k for k, _ in db]
        for (kw, old), (_, new) in zip(da, db, strict=True):
            if kw == "PatientBirthDate" or not old:
                assert not new  # always removed (Table E.1-1: Z, no option)
                continue
            offsets.setdefault(pid, set()).add((_day(new) - _day(old)).days)
            originals.setdefault(pid, set()).add(_day(old))
            shifted.setdefault(pid, set()).add(_day(new))
            assert old[8:] == new[8:]  # DT: the time part is kept
        for kw in ("StudyTime", "SeriesTime", "ContentTime", "AcquisitionTime"):
            assert a.get(kw) == b.get(kw)  # times stay
        assert b.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113107" in [it.CodeValue for it in b.DeidentificationMethodCodeSequence]
    assert set(offsets) == {"STS_025", "STS_002"}
    mapping = _mapping(dated)
    for pid, found in offsets.items():
        (offset,) = found  # one offset per patient
        assert -3650 <= offset <= -365
        assert int(mapping[("date_offset", pid)]) == offset
        # intervals between all dates of the patient are kept
        o, s = sorted(originals[pid]), sorted(shifted[pid])
        assert len(o) >= 3
        assert np.array_equal(np.diff([d.toordinal() for d in o]),
                              np.diff([d.toordinal() for d in s]))
    assert offsets["STS_025"] != offsets["STS_002"]
    assert pd.read_parquet(dated.mapping_path).query("kind == 'date_offset'").shape[0] == 2


# -- (6) burned-in annotation ----------------------------------------------------------------
def test_burned_in_is_flagged_and_not_exported(tmp_path):
    d = _root()
    yes = d / "fo-dicom" / "GH364.dcm"  # US with BurnedInAnnotation YES
    us = d / "wg04-modalities" / "US1_UNC.dcm"  # US without the attribute
    no = d / "pydicom-extra" / "JPGLosslessP14SV1_1s_1f_8b.dcm"  # US with BurnedInAnnotation NO
    ct = d / "wg04-modalities" / "CT1_UNC.dcm"
    r = ml.cohort.export([yes, us, no, ct], tmp_path / "out", key=KEY, progress=False)
    flagged = dict(zip(r.flagged["path"], r.flagged["reason"], strict=True))
    assert set(flagged) == {str(yes), str(us)}
    assert "BurnedInAnnotation is YES" in flagged[str(yes)]
    assert "Modality US without BurnedInAnnotation" in flagged[str(us)]
    assert not r.flagged["exported"].any()
    assert r.n_written == 2 and set(r.written["path"]) == {str(no), str(ct)}
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2
    r2 = ml.cohort.export([yes, us], tmp_path / "all", key=KEY, allow_burned_in=True,
                          progress=False)
    assert r2.n_written == 2 and r2.flagged["exported"].all()


# -- (7) dicognito ----------------------------------------------------------------------------
def _values_by_keyword(ds) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for el in ds.iterall():
        if el.tag.is_private or el.VR == "SQ" or el.value is None:
            continue
        out.setdefault(el.keyword, set()).add(str(el.value))
    return out


def test_compare_with_dicognito(basic):
    """Both tools must change every attribute the basic profile does not keep.

    dicognito (0.19) replaces names, IDs, UIDs, dates and institution data with
    fakes; medlab follows Table E.1-1. Attributes the profile removes that
    dicognito leaves unchanged are listed in DICOGNITO_KEEPS with the reason.
    """
    from dicognito.anonymizer import Anonymizer

    table = deid.annex_e_table().query("keyword != ''")
    action = dict(zip(table["keyword"], table["basic"], strict=True))

    def medlab_keeps(kw: str) -> bool:  # the table's K, or unlisted and not text (deny by default)
        if kw in action:
            return action[kw] == "K"
        vr = dictionary_VR(tag_for_keyword(kw))
        return vr not in deid.DENIED_VRS and kw not in deid.CS_LABELS
    code_macro = {"CodeValue", "CodingSchemeDesignator", "CodeMeaning"}  # cleaned as codes
    denied = set()
    kept_differences: set[str] = set()
    anonymizer = Anonymizer(seed="medlab-test")  # one instance: consistent across files
    required: set[str] = set()
    medlab_handled: set[str] = set()
    dicognito_handled: set[str] = set()
    for src, out in _pairs(basic):
        orig = pydicom.dcmread(src)
        copy = pydicom.dcmread(src)  # dicognito works on this copy, in memory
        anonymizer.anonymize(copy)
        before = _values_by_keyword(orig)
        ours, theirs = _values_by_keyword(pydicom.dcmread(out)), _values_by_keyword(copy)
        for kw, values in before.items():
            values = {v for v in values if v.strip()}
            if not values or not kw:
                continue
            if kw not in action and not medlab_keeps(kw):
                # not in the table, text: denied by default (dicognito keeps most of these)
                if kw not in code_macro:
                    denied.add(kw)
                    assert not values & ours.get(kw, set()), (kw, out)
                continue
            if medlab_keeps(kw):
                if bool(values & ours.get(kw, set())) != bool(values & theirs.get(kw, set())):
                    kept_differences.add(kw)
                continue
            required.add(kw)
            if not values & ours.get(kw, set()):
                medlab_handled.add(kw)
            if not values & theirs.get(kw, set()):
                dicognito_handled.add(kw)
    assert len(required) >= 30
    assert {"Manufacturer", "SoftwareVersions", "ConvolutionKernel"} <= denied
    assert medlab_handled == required, required - medlab_handled
    # what the profile removes and dicognito keeps (medlab follows the profile):
    dicognito_keeps = {
        # descriptions, labels and comments: free text that may name the patient or site
        "StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments",
        "DerivationDescription", "AdditionalPatientHistory", "ROIName", "ROIObservationLabel",
        "ROIObservationDescription", "StructureSetLabel", "StructureSetName",
        # patient characteristics: kept only with retain_patient_characteristics
        "PatientSex", "PatientAge", "PatientWeight", "PatientSize",
        # device identity: kept only with the Retain Device Identity option
        "DeviceSerialNumber", "PlateID",
        # clinical-trial identifiers and site names (X or Z in Table E.1-1)
        "ClinicalTrialCoordinatingCenterName", "ClinicalTrialSeriesID",
        "ClinicalTrialTimePointID",
        # a location hint, and padding that may hold leftovers of earlier data
        "TimezoneOffsetFromUTC", "DataSetTrailingPadding",
        # times the 2024b edition of the table removes (dicognito keeps times)
        "RadiopharmaceuticalStartTime", "Time",
    }
    missed = required - dicognito_handled
    assert missed == dicognito_keeps & required, sorted(missed ^ (dicognito_keeps & required))
    # every attribute dicognito changes is one medlab changes too
    assert dicognito_handled <= medlab_handled
    # where the profile keeps an attribute, the tools differ only here:
    #   CodingSchemeUID: dicognito replaces it; it names a coding scheme (a registry UID),
    #     not a patient, and replacing it breaks the codes that use it (medlab keeps it)
    #   LongitudinalTemporalInformationModified: medlab records REMOVED / MODIFIED
    # (free text the table does not list, such as SR TextValue, is denied by default;
    # InstanceCreationTime is listed in the 2024b table)
    assert kept_differences == {"CodingSchemeUID", "LongitudinalTemporalInformationModified"}
    assert "TextValue" in denied and action["InstanceCreationTime"] == "X/Z/D"
    # the core identifiers: both tools replace them
    core = {"PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
            "FrameOfReferenceUID", "ReferencedSOPInstanceUID", "StudyDate", "AccessionNumber",
            "InstitutionName"}
    assert core <= required & dicognito_handled & medlab_handled


# -- (8) mapping ------------------------------------------------------------------------------
def test_mapping_outside_dest_and_invertible(basic, tmp_path):
    with pytest.raises(ValueError, match="inside dest"):
        ml.cohort.export(_sources()["us"], tmp_path / "out", key=KEY,
                         mapping=tmp_path / "out" / "private" / "map.csv", progress=False)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        ml.cohort.export(_sources()["us"], tmp_path / "out2", key=KEY,
                         mapping=tmp_path / "map.xlsx", progress=False)
    table = pd.read_csv(basic.mapping_path, dtype=str, keep_default_na=False)
    assert not basic.mapping_path.resolve().is_relative_to(basic.dest.resolve())
    inverse = {(k, r): o for k, o, r in zip(table["kind"], table["original"],
                                            table["replacement"], strict=True)}
    files = {r: o for k, o, r in zip(table["kind"], table["original"], table["replacement"],
                                     strict=True) if k == "file"}
    assert len(files) == basic.n_written
    for out in basic.dest.rglob("*.dcm"):
        src = files[str(out.relative_to(basic.dest).as_posix())]
        a, b = pydicom.dcmread(src, stop_before_pixels=True), pydicom.dcmread(
            out, stop_before_pixels=True)
        assert inverse[("patient", b.PatientID)] == (str(a.PatientID).strip()
                                                     or str(a.PatientName).strip())
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert inverse[("uid", b[kw].value)] == a[kw].value


# -- options, keys, selections -------------------------------------------------------------
def test_patient_characteristics_option_keeps_them(tmp_path):
    ct = _root() / "sts-cohort" / "dicom" / "STS_025" / "CT" / "image" / "000000.dcm"
    r = ml.cohort.export([ct], tmp_path / "a", key=KEY, progress=False,
                         options=("basic", "retain_patient_characteristics"))
    b = pydicom.dcmread(tmp_path / "a" / r.written["output"][0])
    a = pydicom.dcmread(ct)
    assert (b.PatientSex, b.PatientWeight) == (a.PatientSex, a.PatientWeight) == ("M", 66.0)
    assert "113108" in [it.CodeValue for it in b.DeidentificationMethodCodeSequence]
    r0 = ml.cohort.export([ct], tmp_path / "b", key=KEY, progress=False)
    b0 = pydicom.dcmread(tmp_path / "b" / r0.written["output"][0])
    assert b0.PatientSex == "" and "PatientWeight" not in b0


def test_safe_private_keeps_only_the_listed_element(tmp_path):
    src = _root() / "dcmqi" / "segmentations" / "ct-3slice" / "01.dcm"
    r = ml.cohort.export([src], tmp_path / "a", key=KEY, progress=False,
                         safe_private=[(0x0045, "GEMS_HELIOS_01", 0x06)])
    ds = pydicom.dcmread(tmp_path / "a" / r.written["output"][0])
    private = {el.tag: el.value for el in ds if el.tag.is_private}
    assert private == {0x00450010: "GEMS_HELIOS_01", 0x00451006: "OUT OF GANTRY"}
    assert "113111" in [it.CodeValue for it in ds.DeidentificationMethodCodeSequence]
    with pytest.raises(ValueError, match="group must be odd"):
        ml.cohort.export([src], tmp_path / "b", key=KEY, safe_private=[(0x0044, "X", 1)])


def test_key_is_required_strong_or_generated(tmp_path):
    src = _sources()["seg"][1]
    with pytest.raises(TypeError):
        ml.cohort.export([src], tmp_path / "a")  # no key: no silent default
    with pytest.raises(ValueError, match="token_hex"):
        ml.cohort.export([src], tmp_path / "a", key="short")
    r1 = ml.cohort.export([src], tmp_path / "b", key=None, progress=False)
    r2 = ml.cohort.export([src], tmp_path / "c", key=None, progress=False)
    assert re.fullmatch(r"[0-9a-f]{64}", r1.key) and r1.key != r2.key
    assert "generated" in repr(r1) and r1.key not in repr(r1)
    assert list(r1.written["output"]) != list(r2.written["output"])
    r3 = ml.cohort.export([src], tmp_path / "d", key=r1.key, progress=False)
    assert list(r3.written["output"]) == list(r1.written["output"])


def test_bad_arguments_name_what_was_received(tmp_path):
    src = _sources()["seg"][1]
    with pytest.raises(ValueError, match=r"profile='strict'.*basic"):
        ml.cohort.export([src], tmp_path / "a", key=KEY, profile="strict")
    with pytest.raises(ValueError, match="unknown option 'retain_uids'"):
        ml.cohort.export([src], tmp_path / "a", key=KEY, options=["retain_uids"])
    with pytest.raises(ValueError, match="inside the source folder"):
        ml.cohort.export([src.parent], src.parent / "export", key=KEY)
    with pytest.raises(FileNotFoundError, match="no such file"):
        ml.cohort.export([tmp_path / "missing"], tmp_path / "a", key=KEY)
    with pytest.raises(ValueError, match="'path' column"):
        ml.cohort.export(pd.DataFrame({"x": [1]}), tmp_path / "a", key=KEY)
    with pytest.raises(TypeError, match="index="):
        ml.cohort.export(pd.DataFrame({"series_uid": ["1.2"]}), tmp_path / "a", key=KEY)


def test_dataframe_selections(tmp_path):
    seg_dir, liver = _sources()["seg"]
    ct = sorted(seg_dir.glob("*.dcm"))
    text_file = str(liver.parent.parent / "SOURCE.txt")
    rows = pd.DataFrame({"path": [str(p) for p in ct] + ["http://pacs/x", text_file],
                         "source": ["local"] * 3 + ["remote:orthanc", "local"]})
    r = ml.cohort.export(rows, tmp_path / "a", key=KEY, progress=False)
    assert r.n_written == 3
    reasons = dict(zip(r.skipped["path"], r.skipped["reason"], strict=True))
    assert "retrieve it" in reasons["http://pacs/x"]
    assert "not a DICOM file" in reasons[text_file]

    series = str(pydicom.dcmread(ct[0], stop_before_pixels=True).SeriesInstanceUID)

    class FakeIndex:  # the index's contract: files(series_uid) -> paths
        def files(self, uid):
            assert uid == series
            return ct

    r2 = ml.cohort.export(pd.DataFrame({"series_uid": [series, series]}), tmp_path / "b",
                          key=KEY, index=FakeIndex(), progress=False)
    assert r2.n_written == 3
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_selections_from_a_real_index(tmp_path):
    folder = _root() / "sts-cohort" / "dicom" / "STS_025"
    index = ml.cohort.scan(folder, progress=False)
    instances = index.instances
    ct = instances[instances["modality"] == "CT"]
    r1 = ml.cohort.export(ct, tmp_path / "a", key=KEY, progress=False)
    series = ct[["series_uid"]].drop_duplicates()
    r2 = ml.cohort.export(series, tmp_path / "b", key=KEY, index=index, progress=False)
    assert r1.n_written == r2.n_written == len(ct) == 47
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_mapping_is_extended_not_overwritten(tmp_path):
    seg_dir, liver = _sources()["seg"]
    m = tmp_path / "map.csv"
    ml.cohort.export([liver], tmp_path / "a", key=KEY, mapping=m, progress=False)
    n1 = len(pd.read_csv(m))
    ml.cohort.export([seg_dir], tmp_path / "a", key=KEY, mapping=m, progress=False)
    table = pd.read_csv(m)
    assert len(table) > n1 and not table.duplicated().any()
    assert (table["kind"] == "file").sum() == 4


def test_exporting_a_copy_into_a_folder_next_to_it(tmp_path):
    """Files copied out of the shared data behave the same (and dest may be a sibling)."""
    src = tmp_path / "src"
    shutil.copytree(_sources()["seg"][0], src)
    r = ml.cohort.export(src, tmp_path / "out", key=KEY, progress=False)
    assert r.n_written == 3 and r.skipped.empty


def test_unusual_files(tmp_path):
    d = _root()
    overlay = d / "pydicom-extra" / "MR-SIEMENS-DICOM-WithOverlays.dcm"
    big_endian = d / "pydicom-testfiles" / "ExplVR_BigEnd.dcm"
    deflated = d / "fo-dicom" / "GH227.dcm"
    dicomdir = d / "pydicom-testfiles" / "dicomdirtests" / "DICOMDIR"
    r = ml.cohort.export([overlay, big_endian, deflated, dicomdir], tmp_path / "out", key=KEY,
                         allow_burned_in=True, progress=False)
    assert "DICOMDIR" in r.skipped["reason"].iloc[0] and r.n_written == 3
    for src, out in _pairs(r):
        a, b = pydicom.dcmread(src), pydicom.dcmread(out)
        assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
        assert np.array_equal(a.pixel_array, b.pixel_array)
        if src == overlay:
            assert any(0x6000 <= t.group <= 0x60FF for t in a.keys())
            # Overlay Data is X: the whole plane goes (a plane without its data is invalid)
            assert not any(0x6000 <= t.group <= 0x60FF for t in b.keys())


# -- the source is never modified -------------------------------------------------------------
def test_sources_unchanged(source_hashes, basic, dated):
    """Runs last: every source file read by the tests above is byte-identical and untouched."""
    assert basic.n_written and dated.n_written and len(source_hashes) > 200
    changed = [str(p) for p, h in source_hashes.items() if (_sha256(p), p.stat().st_mtime_ns) != h]
    assert not changed


# -- (9) deny by default: a value in every text, name, date and time attribute ----------------
FAMILY = "Testperson"


def _marker(i: int, vr: str, keyword: str) -> tuple[Any, str]:
    """(value to write, text to search for) unique to attribute number ``i``."""
    if vr == "DA":
        d = date(1901, 1, 1) + pd.Timedelta(days=i).to_pytimedelta()
        return d.strftime("%Y%m%d"), d.strftime("%Y%m%d")
    if vr == "DT":
        d = date(1901, 1, 1) + pd.Timedelta(days=i).to_pytimedelta()
        return d.strftime("%Y%m%d") + "101010", d.strftime("%Y%m%d")
    if vr == "TM":
        return f"1{i // 3600 % 10}{i // 60 % 60:02d}{i % 60:02d}.{i:06d}", f".{i:06d}"
    if vr == "PN":
        return f"Phi{i:05d}name^Hanna", f"Phi{i:05d}name"
    if vr == "UR":
        return f"http://phi{i:05d}.example/x", f"phi{i:05d}"
    text = f"PHI{i:05d}Q" if vr == "CS" else f"Phi{i:05d}q"
    return text, text


def _injectable() -> list[tuple[int, str, str]]:
    """(tag, keyword, VR) of every attribute of pydicom's dictionary (retired ones too, and
    the curve/overlay repeating groups as group 5000/6000) with a text, person-name, date
    or time VR, and the CS attributes medlab treats as free labels."""
    from pydicom.datadict import DicomDictionary, RepeatersDictionary

    out = []
    entries = list(DicomDictionary.items()) + [
        (int(mask.replace("x", "0"), 16), entry) for mask, entry in RepeatersDictionary.items()]
    for tag, (vr, _vm, _name, _retired, keyword) in entries:
        if not keyword or tag >> 16 in (0x0000, 0xFFFE, 0xFFFC):
            continue  # command group, item delimiters, padding
        if vr in deid.DENIED_VRS or keyword in deid.CS_LABELS:
            out.append((tag, keyword, vr))
    return sorted(out)


def _inject(ds: pydicom.Dataset, attributes, start: int, markers: dict[str, str]) -> int:
    from pydicom.dataelem import DataElement

    for n, (tag, keyword, vr) in enumerate(attributes):
        value, search = _marker(start + n, vr, keyword)
        markers[search] = f"{keyword} (item level {start // len(attributes)})"
        target = ds.file_meta if tag >> 16 == 0x0002 and hasattr(ds, "file_meta") else ds
        target[tag] = DataElement(tag, vr, value)
    return len(attributes)


def test_no_text_attribute_survives_unless_kept(tmp_path):
    """Every text/PN/date/time attribute of the data dictionary gets a unique value, at the
    top level and inside nested sequences (one the table keeps and recurses into, one it
    does not list, the SR Content Sequence); none of the values may appear in any byte or
    name of the export."""
    from helpers import write_dicom_series

    paths, _ = write_dicom_series(tmp_path / "src", np.zeros((1, 4, 4), np.int16),
                                  patient_id=FAMILY)
    ds = pydicom.dcmread(paths[0])
    attributes = _injectable()
    assert len(attributes) > 900  # nearly 4000 elements in all, with the nested copies
    markers: dict[str, str] = {}
    n = _inject(ds, attributes, 0, markers)
    # nested: a sequence Table E.1-1 keeps with its UIDs replaced (X/Z/U*), one it does not
    # list (two levels deep), and the SR Content Sequence (D: cleaned as text)
    for level, path in enumerate((["ReferencedImageSequence"],
                                  ["AnatomicRegionSequence", "AnatomicRegionModifierSequence"],
                                  ["ContentSequence"]), start=1):
        item = pydicom.Dataset()
        n += _inject(item, [a for a in attributes if a[0] >> 16 != 0x0002],
                     level * len(attributes), markers)
        for keyword in reversed(path):
            parent = pydicom.Dataset()
            setattr(parent, keyword, pydicom.Sequence([item]))
            item = parent
        for el in item:
            ds.add(el)
    # the specific survivors of the review, with the family name in them
    ds.WindowCenterWidthExplanation = ds.ContentDescription = FAMILY
    ds.AcquisitionContextDescription = ds.RescaleType = FAMILY
    ds.ContentLabel, ds.DeidentificationMethod = FAMILY.upper(), f"by {FAMILY}"
    ds.ContrastBolusStartTime = "101112.424242"
    region = pydicom.Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = \
        "818981001", "SCT", FAMILY
    ds.AnatomicRegionSequence[0].AnatomicRegionModifierSequence.append(region)
    ds.PatientBirthDate = "19500312"
    ds.save_as(paths[0], enforce_file_format=False)
    src = tmp_path / "src"

    report = ml.cohort.export(src, tmp_path / "out", key=KEY, progress=False)
    assert report.n_written == 1, report.skipped.to_dict("records")
    files = [p for p in (tmp_path / "out").rglob("*")]
    out = next(p for p in files if p.is_file())
    data = out.read_bytes()
    names = "\n".join(p.relative_to(tmp_path / "out").as_posix() for p in files)
    searched = {**markers, FAMILY: "family name", FAMILY.upper(): "family name",
                "424242": "ContrastBolusStartTime", "19500312": "PatientBirthDate"}
    survivors = sorted(where for s, where in searched.items()
                       if s.encode() in data or s.lower() in names.lower())
    print(f"PHI injection: {n} attributes injected ({len(attributes)} keywords, 4 places), "
          f"{len(searched)} values searched in {len(files)} output names and "
          f"{len(data)} bytes; survivors: {len(survivors)}")
    assert n >= 3500
    assert survivors == []
    # the export is still valid DICOM, and a standard code keeps its value and meaning
    back = pydicom.dcmread(out)
    code = back.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[-1]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == \
        ("818981001", "SCT", "Abdomen")
    assert back.Modality == "CT" and back.PatientIdentityRemoved == "YES"
    assert back.PatientID == back.PatientName == report.written["output"].iloc[0].split("/")[0]
    assert ml.privacy.is_pseudonym(back.PatientID)


def test_keep_option_keeps_named_attributes(tmp_path):
    from helpers import write_dicom_series

    write_dicom_series(tmp_path / "src", np.zeros((1, 4, 4), np.int16), manufacturer="ACME")
    plain = ml.cohort.export(tmp_path / "src", tmp_path / "a", key=KEY, progress=False)
    kept = ml.cohort.export(tmp_path / "src", tmp_path / "b", key=KEY, keep=["Manufacturer"],
                            progress=False)
    read = lambda r: pydicom.dcmread(r.dest / r.written["output"].iloc[0])  # noqa: E731
    assert read(plain).Manufacturer == "ANONYMIZED" and read(kept).Manufacturer == "ACME"
    with pytest.raises(ValueError, match=r"DICOM keywords.*'Manufactur'"):
        ml.cohort.export(tmp_path / "src", tmp_path / "c", key=KEY, keep=["Manufactur"])
    with pytest.raises(ValueError, match="always replaced"):
        ml.cohort.export(tmp_path / "src", tmp_path / "c", key=KEY, keep=["PatientName"])
