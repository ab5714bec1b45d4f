"""The cohort index against independent references: pydicom reads of the same files,
the loader's own behaviour, and synthetic series with known defects."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import shutil
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from helpers import write_dicom_series
from pydicom.valuerep import DA, DT, TM

import medlab as ml
from medlab.cohort import INSTANCE_COLUMNS
from medlab.errors import MultipleImagesError, SeriesAssemblyError, UnsupportedTransferSyntaxError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _dataset_roots() -> list[Path]:
    # the public datasets (the bundled samples are crops of some of them: same UIDs' studies)
    table = ml.data.datasets()
    return [ml.data.fetch(name, progress=False) for name in table.loc[~table["bundled"], "name"]]


@pytest.fixture(scope="module")
def index():
    """Every shared dataset, indexed with the default local worker processes."""
    idx = ml.cohort.scan(_dataset_roots(), progress=False)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def instances(index) -> pd.DataFrame:
    return index.instances.set_index("path", drop=False)


@pytest.fixture(scope="module")
def series(index) -> pd.DataFrame:
    return index.series.set_index("series_uid", drop=False)


def _pydicom(path) -> pydicom.Dataset:
    """The reference read, with pydicom alone (gzip handled here)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True, defer_size=1024)


def _none(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple, np.ndarray)):
        return list(v)
    return None if pd.isna(v) else v


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        s = "\\".join(str(v).strip() for v in value).strip()
    else:
        s = str(value).strip()
    return s or None


def _first(value):
    if isinstance(value, (pydicom.multival.MultiValue, list)):
        return value[0] if len(value) else None
    return value


def _number(value, cast=float):
    value = _first(value)
    if value is None or str(value).strip() == "":
        return None
    try:
        return cast(float(value))
    except (TypeError, ValueError):
        return None


def _date(value) -> dt.date | None:
    s = _first(value)
    if s is None:
        return None
    try:
        return DA(str(s).strip().replace(".", ""))
    except (TypeError, ValueError):
        return None


def _reference_row(ds: pydicom.Dataset) -> dict:
    """The index columns, computed from pydicom's values (independently of medlab)."""
    out = {}
    radio = None
    if "RadiopharmaceuticalInformationSequence" in ds and ds.RadiopharmaceuticalInformationSequence:
        radio = ds.RadiopharmaceuticalInformationSequence[0]
    ms = {"trigger_time_s", "echo_time_s", "repetition_time_s"}
    for col in INSTANCE_COLUMNS:
        if col.keyword is None:
            continue
        src = radio if col.keyword in ("Radiopharmaceutical", "RadionuclideTotalDose",
                                       "RadionuclideHalfLife", "RadiopharmaceuticalStartTime") else ds
        value = None if src is None else src.get(col.keyword)
        if col.name.startswith("pixel_spacing_"):
            vals = list(value) if value is not None and not isinstance(value, (str, bytes)) else []
            value = vals[0 if col.name.endswith("row_mm") else 1] if len(vals) == 2 else None
        if col.dtype == "VARCHAR":
            out[col.name] = _text(value)
        elif col.dtype == "INTEGER":
            v = _number(value, int)
            # IS values are 32-bit by the standard; a value beyond that (a malformed file)
            # cannot go into an INTEGER column and is null
            out[col.name] = v if v is None or -(2**31) <= v < 2**31 else None
        elif col.dtype == "DOUBLE":
            v = _number(value)
            out[col.name] = v / 1000.0 if v is not None and col.name in ms else v
        elif col.dtype == "DATE":
            out[col.name] = _date(value)
        elif col.dtype == "DOUBLE[]":
            out[col.name] = None if value is None else [float(v) for v in value]
    has_pixels = "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
    if out["n_frames"] is None and has_pixels:
        out["n_frames"] = 1
    if out["injection_time"] is None and radio is not None:
        out["injection_time"] = _text(radio.get("RadiopharmaceuticalStartDateTime"))
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        out["transfer_syntax"] = str(meta.TransferSyntaxUID)
    else:  # no file meta: the encoding pydicom read the file with
        implicit, little = ds.original_encoding
        out["transfer_syntax"] = ("1.2.840.10008.1.2.2" if not little else
                                  "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1")
    out["acquisition_datetime"] = _acq_datetime(ds)
    return out


def _acq_datetime(ds) -> dt.datetime | None:
    if ds.get("AcquisitionDateTime"):
        try:
            return DT(str(ds.AcquisitionDateTime).strip()).replace(tzinfo=None)
        except ValueError:
            pass
    for d, t in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime")):
        if ds.get(d) and ds.get(t):
            try:
                # old ACR-NEMA style 'YYYY.MM.DD' and 'HH:MM:SS' as well
                return dt.datetime.combine(DA(str(ds.get(d)).strip().replace(".", "")),
                                           TM(str(ds.get(t)).strip().replace(":", "")))
            except (TypeError, ValueError):
                continue
    return None


def _sample(instances: pd.DataFrame, per_dataset: int = 6) -> list[str]:
    """First, last and evenly spaced files of every dataset (sorted paths)."""
    # datasets live in MEDLAB_DATA or (bundled samples) in the repository's data/
    roots = {str(root): root.name for root in _dataset_roots()}

    def dataset(path: str) -> str:
        return next(name for root, name in roots.items() if path.startswith(root + "/"))

    by_dataset = defaultdict(list)
    for p in sorted(instances["path"]):
        by_dataset[dataset(p)].append(p)
    out = []
    for paths in by_dataset.values():
        idx = np.unique(np.linspace(0, len(paths) - 1, min(per_dataset, len(paths))).astype(int))
        out += [paths[i] for i in idx]
    # PET slices of every patient of the cohort (the radiopharmaceutical fields)
    pet = sorted(p for p in instances["path"] if "/PET/image/" in p)
    # all of the small and odd files: big endian, deflated, gzipped, no file meta, character
    # sets, truncated (the reader's fallbacks)
    odd = [p for p in instances["path"] if dataset(p) in (
        "pydicom-testfiles", "pydicom-extra", "fo-dicom", "nibabel-header-only", "dcm-qa-ts")]
    return sorted(set(out + pet[::20] + odd))


def test_scan_report_and_tables(index):
    report = index.last_report
    assert report.n_files_seen == report.n_new > 1500
    assert report.n_changed == report.n_removed == report.n_unchanged == 0
    assert report.n_errors == len(index.errors) > 0
    assert len(index.instances) + len(index.errors) == report.n_files_seen
    assert list(index.instances.columns) == [c.name for c in INSTANCE_COLUMNS]
    assert list(index.series.columns[:10]) == [c.name for c in ml.cohort.SERIES_COLUMNS]
    for col in ("patient_id", "study_uid", "modality", "manufacturer", "model",
                "series_description", "body_part", "study_date", "pixel_spacing_row_mm",
                "slice_thickness_mm", "rows", "columns", "transfer_syntax"):
        assert col in index.series.columns
    assert set(index.instances["source"]) == {"local"}
    assert {"patient_id", "n_studies", "n_series", "n_instances"} <= set(index.patients.columns)
    assert {"study_uid", "n_series", "n_instances", "modalities"} <= set(index.studies.columns)
    counts = index.sql("SELECT modality, count(*) AS n FROM series GROUP BY modality ORDER BY n DESC")
    assert isinstance(counts, pd.DataFrame) and counts["n"].sum() == len(index.series)
    assert "instances" in repr(index)


def test_values_agree_with_pydicom(instances):
    """Every column that has a DICOM keyword, on a sample of every dataset's files."""
    sample = _sample(instances)
    assert len(sample) > 250
    compared = Counter()
    for path in sample:
        ref = _reference_row(_pydicom(path))
        row = instances.loc[path]
        for name, expected in ref.items():
            got = _none(row[name])
            if isinstance(got, pd.Timestamp):
                got = got.to_pydatetime()
                if isinstance(expected, dt.date) and not isinstance(expected, dt.datetime):
                    got = got.date()
            if Path(path).name == "emri_small_jpeg_2k_lossless_too_short.dcm" and expected is None:
                continue  # pydicom drops the elements of this truncated file; medlab keeps them
            if isinstance(expected, float):
                assert got == pytest.approx(expected, rel=1e-12), (path, name)
            elif isinstance(expected, list):
                assert got == pytest.approx(expected, rel=1e-12), (path, name)
            else:
                if name == "patient_name" and expected is not None:
                    expected = expected.rstrip("=")  # empty trailing groups (pydicom drops them)
                assert got == expected, (path, name, got, expected)
            compared[name] += expected is not None
    # the sample exercises the columns, not just nulls
    for name in ("patient_id", "study_date", "series_uid", "pixel_spacing_row_mm",
                 "image_position_mm", "acquisition_datetime", "radiopharmaceutical",
                 "injected_dose_bq", "half_life_s", "echo_time_s", "rescale_slope", "n_frames",
                 "transfer_syntax", "kvp", "flip_angle_deg"):
        assert compared[name] > 0, name


def test_instance_counts_per_series_match_a_pydicom_loop(index, series):
    """Count the files of each series with pydicom alone and compare."""
    expected = Counter()
    for root in _dataset_roots():
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data = path.read_bytes()
                    if data[:2] == b"\x1f\x8b":
                        data = gzip.decompress(data)
                    ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
            except Exception:
                continue
            if "DirectoryRecordSequence" in ds or not ds.get("SOPClassUID"):
                continue
            uid = ds.get("SeriesInstanceUID")
            if uid:
                expected[str(uid)] += 1
    got = series.loc[series["source"] == "local", "n_instances"].to_dict()
    assert got == dict(expected)


def test_regular_ct_volumes_of_the_cohort(series, instances):
    ct = series[(series["modality"] == "CT") & series["series_uid"].isin(
        instances.loc[instances["path"].str.contains("sts-cohort"), "series_uid"])]
    assert len(ct) == 5
    assert ct["is_volume"].all() and ct["volume_problem"].isna().all()
    assert (ct["n_timepoints"] == 1).all() and (ct["n_slices"] == ct["n_instances"]).all()
    assert ct["decodable"].all()
    # slice spacing vs pydicom positions
    for uid, row in ct.iterrows():
        z = sorted(float(_pydicom(p).ImagePositionPatient[2])
                   for p in instances.loc[instances["series_uid"] == uid, "path"])
        assert row["slice_spacing_mm"] == pytest.approx(np.median(np.diff(z)), abs=1e-4)


def _series_under(instances, series, fragment):
    uids = instances.loc[instances["path"].str.contains(fragment, regex=False), "series_uid"].unique()
    return series.loc[[u for u in uids if u in series.index]]


def test_4d_series(instances, series):
    ge = _series_under(instances, series, "dcm-qa-nih/In/20180918GE/mr_0004")
    assert len(ge) == 1
    assert (ge["n_timepoints"].iloc[0], ge["n_slices"].iloc[0]) == (10, 15)
    dce = _series_under(instances, series, "breast-dce")
    assert len(dce) == 1
    assert (dce["n_timepoints"].iloc[0], dce["n_slices"].iloc[0]) == (3, 12)
    assert dce["is_volume"].iloc[0]


@pytest.mark.parametrize("dataset", ["dcm-qa-nih", "breast-dce", "dcm-qa-orientation",
                                     "dcm-qa-enhanced", "sts-cohort", "dcm-qa-table",
                                     "dcm-qa-12bit"])
def test_the_loader_agrees(dataset, series, instances):
    """A series flagged as a volume loads as one image of n_slices x n_timepoints frames,
    mosaics and enhanced multi-frame included: the same frames, the same clustering."""
    images = ml.io.load_all(ml.data.fetch(dataset, progress=False), progress=False)
    by_series = defaultdict(list)
    for img in images.values():
        by_series[img.meta["series_uid"]].append(img)
    root = str(ml.data.fetch(dataset, progress=False))
    inside = instances["path"].str.startswith(root + os.sep)
    # series wholly in this dataset (some test data reuse one Series UID across datasets)
    elsewhere = set(instances.loc[~inside, "series_uid"].dropna())
    uids = [u for u in instances.loc[inside, "series_uid"].dropna().unique() if u not in elsewhere]
    volumes = series.loc[[u for u in uids if u in series.index and series.loc[u, "is_volume"]]]
    checked = len(volumes)
    for uid, row in volumes.iterrows():
        (img,) = by_series[uid]
        assert img.shape[0] == row["n_slices"], uid
        assert img.n_frames == row["n_timepoints"], uid
        if row["n_slices"] > 1:
            assert img.spacing[0] == pytest.approx(row["slice_spacing_mm"], rel=1e-3)
    # and what the index calls several images, the loader splits
    for uid in uids:
        if uid in series.index and "holds" in str(series.loc[uid, "volume_problem"]):
            n = int(str(series.loc[uid, "volume_problem"]).split("holds ")[1].split()[0])
            assert len(by_series[uid]) == n, uid
            checked += 1
    assert checked > 0


def test_missing_slice_is_found(tmp_path):
    positions = [np.array([-50.0, -40.0, 10.0 + 2.5 * k]) for k in range(8) if k != 5]
    write_dicom_series(tmp_path / "gap", np.zeros((7, 6, 5), np.int16), positions=positions)
    write_dicom_series(tmp_path / "ok", np.zeros((6, 6, 5), np.int16))
    with ml.cohort.scan(tmp_path, progress=False) as idx:
        s = idx.series.set_index("n_instances")
        gap, ok = s.loc[7], s.loc[6]
        assert not gap["is_volume"] and "missing slice" in gap["volume_problem"]
        assert gap["n_slices"] == 7 and gap["slice_spacing_mm"] == pytest.approx(2.5)
        assert ok["is_volume"] and pd.isna(ok["volume_problem"])
    # the same words as the loader's refusal: one implementation
    with pytest.raises(SeriesAssemblyError) as err:
        ml.load(tmp_path / "gap", progress=False)
    assert gap["volume_problem"] in str(err.value)


def test_undecodable_12bit_jpeg(instances, series):
    jply = instances[instances["path"].str.endswith("_JPLY.dcm")]
    assert len(jply) == 2
    for uid in jply["series_uid"]:
        row = series.loc[uid]
        assert row["decodable"] is False or row["decodable"] == False  # noqa: E712
        assert "1.2.840.10008.1.2.4.51" in row["decode_problem"]
        assert "12-bit JPEG" in row["decode_problem"]
    # the loader refuses the file for the same reason
    with pytest.raises(UnsupportedTransferSyntaxError):
        ml.load(jply["path"].iloc[0], progress=False)
    # series without JPEG Extended files decode (JPEG 2000, JPEG-LS, lossless JPEG, RLE)
    jpeg_ext = set(instances.loc[instances["transfer_syntax"] == "1.2.840.10008.1.2.4.51",
                                 "series_uid"])
    codecs = set(instances.loc[instances["path"].str.contains("wg04-codecs"), "series_uid"])
    assert len(codecs - jpeg_ext) >= 4
    assert series.loc[sorted(codecs - jpeg_ext), "decodable"].all()


def test_non_images_are_instances_not_volumes(instances, series):
    rt = instances[instances["modality"] == "RTSTRUCT"]
    assert len(rt) >= 15  # one per image series of the cohort
    row = series.loc[rt["series_uid"].iloc[0]]
    assert not row["is_volume"] and "no image pixel data" in row["volume_problem"]
    assert pd.isna(row["decodable"])


def test_errors_table_reasons(index):
    errors = index.errors.set_index("path")
    by_name = {Path(p).name: r for p, r in errors["reason"].items()}
    assert all(r.startswith(f"{Path(p).name}:") for p, r in errors["reason"].items())
    assert "not a DICOM file" in by_name["reference_values.csv"]
    assert "DICOMDIR" in by_name["DICOMDIR"]
    bad = "GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm"
    assert "cannot parse the DICOM data" in by_name[bad]
    assert errors["file_size"].notna().all() and errors["mtime_ns"].notna().all()


# ------------------------------------------------------------------ incremental updates
@pytest.fixture()
def cohort_copy(tmp_path):
    """A writable copy of one patient of the cohort (CT, MR, PET slices, RTSTRUCTs)."""
    src = ml.data.fetch("sts-cohort", progress=False) / "dicom" / "STS_002"
    dst = tmp_path / "src" / "STS_002"
    shutil.copytree(src, dst)
    (tmp_path / "src" / "notes.txt").write_text("not DICOM")
    return tmp_path / "src"


def _snapshot(folder: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_rescan_reads_only_new_and_changed_files(cohort_copy, tmp_path, monkeypatch):
    db = tmp_path / "index.duckdb"
    idx = ml.cohort.scan(cohort_copy, db=db, progress=False, workers=1)
    first = idx.last_report
    n_files = first.n_files_seen
    assert first.n_new == n_files and first.n_errors == 1
    ct = cohort_copy / "STS_002" / "CT" / "image"
    slices = sorted(ct.iterdir())
    uid = str(_pydicom(slices[0]).SeriesInstanceUID)
    assert idx.series.set_index("series_uid").loc[uid, "is_volume"]

    read = []
    import medlab.cohort._scan as scan_module

    real = scan_module.read_file
    monkeypatch.setattr(scan_module, "read_file",
                        lambda path, size, mtime: read.append(path) or real(path, size, mtime))
    report = idx.rescan(progress=False)
    assert read == [] and report.n_unchanged == n_files and report.n_new == report.n_changed == 0

    # add two files, change one, delete a middle slice
    extra = cohort_copy / "more"
    extra.mkdir()
    mr = sorted((cohort_copy / "STS_002" / "MR_T1" / "image").iterdir())
    shutil.copy(mr[0], extra / "copy1.dcm")
    (extra / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    changed = slices[3]
    ds = pydicom.dcmread(changed)
    ds.SeriesDescription = "edited"
    ds.save_as(changed)
    os.utime(changed, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    removed = slices[len(slices) // 2]
    removed.unlink()

    report = idx.rescan(progress=False)
    assert sorted(read) == sorted([str(extra / "copy1.dcm"), str(extra / "broken.dcm"), str(changed)])
    assert (report.n_new, report.n_changed, report.n_removed) == (2, 1, 1)
    assert report.n_unchanged == n_files - 2  # one changed, one removed
    assert report.n_errors == 1
    inst = idx.instances.set_index("path")
    assert str(removed) not in inst.index
    assert inst.loc[str(changed), "series_description"] == "edited"
    assert inst.loc[str(changed), "mtime_ns"] == 1_700_000_000_000_000_000
    assert str(extra / "broken.dcm") in set(idx.errors["path"])
    # the series geometry was recomputed: a slice is now missing
    row = idx.series.set_index("series_uid").loc[uid]
    assert row["n_instances"] == len(slices) - 1
    assert not row["is_volume"] and "missing slice" in row["volume_problem"]
    # the bad file repaired -> leaves the errors table
    shutil.copy(mr[1], extra / "broken.dcm")
    read.clear()
    report = idx.rescan(progress=False)
    assert read == [str(extra / "broken.dcm")] and report.n_errors == 0
    assert str(extra / "broken.dcm") not in set(idx.errors["path"])
    # a whole folder removed
    shutil.rmtree(extra)
    report = idx.rescan(progress=False)
    assert report.n_removed == 2
    assert not idx.instances["path"].str.startswith(str(extra)).any()
    idx.close()


def test_update_adds_folders(cohort_copy, tmp_path):
    idx = ml.cohort.scan(cohort_copy / "STS_002" / "CT", progress=False)
    n = len(idx.instances)
    report = idx.update(cohort_copy / "STS_002" / "PET", progress=False)
    assert report.n_new == len(list((cohort_copy / "STS_002" / "PET").rglob("*.dcm")))
    assert len(idx.instances) == n + report.n_new
    assert idx.roots == [str(cohort_copy / "STS_002" / "CT"), str(cohort_copy / "STS_002" / "PET")]
    assert set(idx.series["modality"]) == {"CT", "PT", "RTSTRUCT"}
    # updating an indexed folder again reads nothing
    assert idx.update(cohort_copy / "STS_002" / "PET", progress=False).n_new == 0


def test_source_folder_is_never_written(cohort_copy, tmp_path):
    before = _snapshot(cohort_copy)
    db = tmp_path / "elsewhere" / "index.duckdb"
    db.parent.mkdir()
    with ml.cohort.scan(cohort_copy, db=db, progress=False) as idx:
        idx.rescan(progress=False)
        uid = idx.series.query("modality == 'CT'")["series_uid"].iloc[0]
        idx.load_series(uid)
        idx.save_cohort("ct", "modality = 'CT'")
    with ml.cohort.open_index(db) as idx:
        idx.rescan(progress=False)
    assert _snapshot(cohort_copy) == before


def test_index_file_inside_the_scanned_folder_is_skipped(cohort_copy):
    db = cohort_copy / "index.duckdb"
    with ml.cohort.scan(cohort_copy, db=db, progress=False) as idx:
        assert not idx.errors["path"].str.contains("index.duckdb").any()
        assert idx.rescan(progress=False).n_new == 0


def test_persistence(cohort_copy, tmp_path):
    db = tmp_path / "cohort.duckdb"
    with ml.cohort.scan(cohort_copy, db=db, progress=False) as idx:
        instances, series = idx.instances, idx.series
        idx.save_cohort("pet", "modality = 'PT'")
    assert db.is_file()
    with ml.cohort.open_index(db) as idx:
        assert idx.db_path == db.resolve()
        assert idx.roots == [str(cohort_copy)]
        pd.testing.assert_frame_equal(idx.instances, instances)
        pd.testing.assert_frame_equal(idx.series, series)
        assert idx.cohorts() == ["pet"]
        assert idx.rescan(progress=False).n_new == 0
    with ml.cohort.open_index(db, read_only=True) as idx:
        assert len(idx.instances) == len(instances)
    with pytest.raises(FileNotFoundError, match="no index file"):
        ml.cohort.open_index(tmp_path / "nope.duckdb")
    import duckdb

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE t (x INTEGER)").close()
    with pytest.raises(ValueError, match="not a medlab index"):
        ml.cohort.open_index(other)
    with pytest.raises(ValueError, match="not a medlab index"):
        ml.cohort.scan(cohort_copy, db=other)


def test_scan_on_an_existing_index_updates_it(cohort_copy, tmp_path):
    db = tmp_path / "i.duckdb"
    ml.cohort.scan(cohort_copy / "STS_002" / "CT", db=db, progress=False).close()
    with ml.cohort.scan(cohort_copy, db=db, progress=False) as idx:
        report = idx.last_report
        assert report.n_unchanged == len(list((cohort_copy / "STS_002" / "CT").rglob("*.dcm")))
        assert report.n_new == report.n_files_seen - report.n_unchanged


# ------------------------------------------------------------------ cohorts, images
def test_cohorts(index, series):
    ct = index.save_cohort("sts-ct", "modality = 'CT' AND is_volume AND patient_id LIKE 'STS_%'")
    assert list(ct.columns) == ["cohort", "series_uid", "patient_id", "study_uid", "saved_at"]
    assert len(ct) == 5 and set(ct["cohort"]) == {"sts-ct"}
    assert set(ct["patient_id"]) == {"STS_002", "STS_008", "STS_019", "STS_025", "STS_042"}
    expected = series.set_index("series_uid", drop=False).loc[ct["series_uid"]]
    assert list(ct["study_uid"]) == list(expected["study_uid"])
    pet = series[(series["modality"] == "PT") & series["patient_id"].str.startswith("STS", na=False)]
    index.save_cohort("sts-pet", pet)
    index.save_cohort("two", list(pet["series_uid"][:2]))
    assert index.cohorts() == ["sts-ct", "sts-pet", "two"]
    pd.testing.assert_frame_equal(index.cohort("sts-ct"), ct)
    assert len(index.cohort("sts-pet")) == len(pet)
    # saving again replaces; SQL sees the table
    index.save_cohort("two", list(pet["series_uid"][:1]))
    assert len(index.cohort("two")) == 1
    assert index.sql("SELECT count(*) AS n FROM cohorts WHERE cohort = 'two'")["n"][0] == 1
    with pytest.raises(KeyError, match="sts-ct"):
        index.cohort("nope")
    with pytest.raises(ValueError, match="not a valid SQL condition"):
        index.save_cohort("bad", "modality = ")
    with pytest.raises(ValueError, match="not in the index"):
        index.save_cohort("bad", ["1.2.3.4"])
    with pytest.raises(ValueError, match="series_uid"):
        index.save_cohort("bad", pd.DataFrame({"uid": ["1"]}))
    with pytest.raises(ValueError, match="non-empty name"):
        index.save_cohort("", ["1"])


def test_load_series_matches_the_loader(index, instances):
    ct_dir = ml.data.path("sts-cohort", "dicom/STS_019/CT/image")
    uid = instances.loc[instances["path"].str.startswith(str(ct_dir)), "series_uid"].iloc[0]
    assert index.files(uid) == sorted(str(p) for p in ct_dir.iterdir())
    img = index.load_series(uid)
    ref = ml.load(ct_dir, progress=False)
    np.testing.assert_array_equal(img.array, ref.array)
    np.testing.assert_allclose(img.affine, ref.affine)


def test_load_series_errors(index, series):
    multi = series[series["volume_problem"].str.contains("holds", na=False)
                   & series["decodable"].fillna(False).astype(bool)]
    uid = multi["series_uid"].iloc[0]
    with pytest.raises(MultipleImagesError, match="holds") as err:
        index.load_series(uid)
    assert len(err.value.ids) >= 2 and all(i in str(err.value) for i in err.value.ids)
    with pytest.raises(KeyError, match=r"no series '1\.2\.3'"):
        index.load_series("1.2.3")
    with pytest.raises(TypeError, match="string"):
        index.files(42)


def test_remote_rows(cohort_copy):
    with ml.cohort.scan(cohort_copy, progress=False) as idx:
        rows = pd.DataFrame({
            "path": ["http://pacs/wado/1", "http://pacs/wado/2"],
            "patient_id": ["REMOTE1", "REMOTE1"], "study_uid": ["1.2.9", "1.2.9"],
            "series_uid": ["1.2.9.1", "1.2.9.1"], "sop_uid": ["1.2.9.1.1", "1.2.9.1.2"],
            "modality": ["CT", "CT"], "study_date": [dt.date(2020, 5, 1), "20200501"],
            "rows": [512, 512],
        })
        assert idx.add_remote(rows, source="orthanc") == 2
        assert idx.add_remote(rows, source="orthanc") == 2  # repeated query: replaced
        remote = idx.instances.query("source == 'remote:orthanc'")
        assert len(remote) == 2 and remote["file_size"].isna().all()
        assert (remote["study_date"] == pd.Timestamp("2020-05-01")).all()
        s = idx.series.set_index("series_uid").loc["1.2.9.1"]
        assert s["source"] == "remote:orthanc" and s["n_instances"] == 2 and pd.isna(s["is_volume"])
        assert idx.rescan(progress=False).n_removed == 0  # rescans leave remote rows alone
        assert len(idx.instances.query("source == 'remote:orthanc'")) == 2
        with pytest.raises(FileNotFoundError, match="only known from a PACS query"):
            idx.load_series("1.2.9.1")
        with pytest.raises(ValueError, match="unknown column"):
            idx.add_remote(pd.DataFrame({"StudyInstanceUID": ["1"]}), source="orthanc")
        with pytest.raises(ValueError, match="source must name"):
            idx.add_remote(rows, source="")


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        ml.cohort.scan(tmp_path / "no-such-folder", progress=False)
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        ml.cohort.scan(tmp_path, workers=0)
    with pytest.raises(TypeError, match=r"client must be a dask\.distributed Client"):
        ml.cohort.scan(tmp_path, client=42, progress=False)
    with pytest.raises(IsADirectoryError, match="path of a DuckDB file"):
        ml.cohort.scan(tmp_path, db=tmp_path)
    with ml.cohort.scan(tmp_path, progress=False) as idx:
        with pytest.raises(ValueError, match="the query failed"):
            idx.sql("SELECT nope FROM series")
    with pytest.raises(RuntimeError, match="closed"):
        idx.series  # noqa: B018


def test_progress_goes_to_stderr_only(capsys):
    folder = ml.data.fetch("dcm-qa-nih", progress=False)
    with ml.cohort.scan(folder, progress=True) as idx:
        assert len(idx.instances) > 200
    out = capsys.readouterr()
    assert out.out == ""
    assert "indexing DICOM headers" in out.err


# ------------------------------------------------------------------ dask
@pytest.mark.slow
def test_dask_cluster_writes_the_same_index():
    from dask.distributed import Client, LocalCluster

    roots = [ml.data.fetch(n, progress=False) for n in
             ("sts-cohort", "dcm-qa-nih", "breast-dce", "pydicom-testfiles", "wg04-codecs")]
    with ml.cohort.scan(roots, progress=False, workers=1) as local:
        expected = {t: local.sql(f"SELECT * FROM {t} ORDER BY ALL") for t in
                    ("instances", "frames", "errors", "series_geometry")}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with ml.cohort.scan(roots, progress=False, client=client) as remote:
            for table, df in expected.items():
                pd.testing.assert_frame_equal(
                    remote.sql(f"SELECT * FROM {table} ORDER BY ALL"), df, obj=table)
            # the reading happened on the workers
            loaded = client.run(lambda: "medlab.cohort._scan" in __import__("sys").modules)
            assert len(loaded) == 2 and all(loaded.values())
        # a scheduler address works too
        with ml.cohort.scan(roots[2], progress=False, client=cluster.scheduler_address) as by_addr:
            assert len(by_addr.instances) == len(expected["instances"].query(
                "path.str.contains('breast-dce')", engine="python"))


@pytest.mark.parametrize("first", ["zeta", "alpha"])
def test_series_value_tie_is_broken_the_same_way_whatever_the_file_order(tmp_path, first):
    """A series whose files disagree half and half on a value (here SeriesDescription and
    StudyDescription) shows the smallest of the tied values, whichever comes first in the
    folder: DuckDB's plain ``mode()`` returned whichever its hash table met first."""
    paths, _ = write_dicom_series(tmp_path / "s", np.zeros((4, 6, 5), np.int16))
    other = "alpha" if first == "zeta" else "zeta"
    for k, path in enumerate(sorted(paths)):
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = ds.StudyDescription = first if k < 2 else other
        ds.save_as(path)
    with ml.cohort.scan(tmp_path, progress=False) as idx:
        assert idx.series["series_description"].tolist() == ["alpha"]
        assert idx.studies["study_description"].tolist() == ["alpha"]
