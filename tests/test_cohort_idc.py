"""IDC's bundled index (idc-index-data, offline) and the IDC-shaped view of a local index.

Queries in the style of idc-index's documentation run unchanged on both; each result is
checked against the same question answered with pandas -- on IDC's side from the Parquet
read with pyarrow, on the local side from the files read with pydicom -- never against
medlab's own tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest

import medlab as ml
from medlab.cohort._idc import IDC_COLUMNS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LOCAL_DATASETS = ("sts-cohort", "breast-dce", "wg04-modalities")
_REF_COLUMNS = ["collection_id", "PatientID", "SeriesInstanceUID", "StudyInstanceUID",
                "PatientAge", "PatientSex", "StudyDate", "BodyPartExamined", "Modality",
                "Manufacturer", "ManufacturerModelName", "SeriesDescription", "instanceCount",
                "series_size_MB", "StudyDescription", "license_short_name"]


@pytest.fixture(scope="module")
def idc_frame() -> pd.DataFrame:
    """IDC's series table, read with pyarrow (not DuckDB)."""
    path = ml.cohort.idc_index_tables()["idc_index"]
    return pq.read_table(path, columns=_REF_COLUMNS).to_pandas()


def _idc_rows(column: str, values: set[str]) -> pd.DataFrame:
    """IDC's rows whose ``column`` is one of ``values`` (a filtered pyarrow read)."""
    path = ml.cohort.idc_index_tables()["idc_index"]
    return pq.read_table(path, columns=_REF_COLUMNS,
                         filters=[(column, "in", sorted(values))]).to_pandas()


@pytest.fixture(scope="module")
def local_index():
    roots = [ml.data.fetch(name, progress=False) for name in LOCAL_DATASETS]
    index = ml.cohort.scan(roots, progress=False, workers=1)
    yield index
    index.close()


@pytest.fixture(scope="module")
def local_frame() -> pd.DataFrame:
    """One row per local series with IDC's columns, from pydicom reads of the files."""
    rows = []
    for name in LOCAL_DATASETS:
        for p in sorted(ml.data.fetch(name, progress=False).rglob("*")):
            if not p.is_file():
                continue
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:
                continue
            if "SeriesInstanceUID" not in ds:
                continue

            def get(kw, ds=ds):
                v = ds.get(kw)
                return str(v) if v not in (None, "") else None

            date = get("StudyDate")
            rows.append({
                "SeriesInstanceUID": str(ds.SeriesInstanceUID), "sop": str(ds.SOPInstanceUID),
                "size": os.path.getsize(p), "PatientID": get("PatientID"),
                "StudyInstanceUID": get("StudyInstanceUID"), "PatientAge": get("PatientAge"),
                "PatientSex": get("PatientSex"),
                "StudyDate": f"{date[:4]}-{date[4:6]}-{date[6:8]}" if date else None,
                "BodyPartExamined": get("BodyPartExamined"), "Modality": get("Modality"),
                "Manufacturer": get("Manufacturer"),
                "ManufacturerModelName": get("ManufacturerModelName"),
                "SeriesDescription": get("SeriesDescription"),
                "StudyDescription": get("StudyDescription")})
    files = pd.DataFrame(rows)
    first = files.groupby("SeriesInstanceUID", sort=False).first()
    series = first.drop(columns=["sop", "size"]).assign(
        instanceCount=files.groupby("SeriesInstanceUID")["sop"].nunique(),
        series_size_MB=files.groupby("SeriesInstanceUID")["size"].sum() / 1e6).reset_index()
    # a local series that IDC holds takes IDC's collection (the same object)
    idc = _idc_rows("SeriesInstanceUID", set(series["SeriesInstanceUID"]))
    idc = idc.set_index("SeriesInstanceUID")
    in_idc = series["SeriesInstanceUID"].isin(idc.index)
    series["collection_id"] = "local"
    series.loc[in_idc, "collection_id"] = idc.loc[series.loc[in_idc, "SeriesInstanceUID"],
                                                  "collection_id"].to_numpy()
    series["license_short_name"] = None
    series.loc[in_idc, "license_short_name"] = idc.loc[
        series.loc[in_idc, "SeriesInstanceUID"], "license_short_name"].to_numpy()
    return series


def _size(df: pd.DataFrame, by: list[str], name: str) -> pd.DataFrame:
    return df.groupby(by, dropna=False).size().rename(name).reset_index()


# (query as written for idc-index's `index` table, the same question in pandas)
QUERIES: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame]]] = [
    ("SELECT DISTINCT Modality FROM index",
     lambda d: d[["Modality"]].drop_duplicates()),
    ("""SELECT DISTINCT BodyPartExamined, COUNT(*) as n
        FROM index WHERE Modality = 'CT' AND BodyPartExamined IS NOT NULL
        GROUP BY BodyPartExamined ORDER BY n DESC""",
     lambda d: _size(d[(d.Modality == "CT") & d.BodyPartExamined.notna()],
                     ["BodyPartExamined"], "n")),
    ("""SELECT DISTINCT Manufacturer, COUNT(*) as n
        FROM index WHERE Modality = 'MR'
        GROUP BY Manufacturer ORDER BY n DESC""",
     lambda d: _size(d[d.Modality == "MR"], ["Manufacturer"], "n")),
    ("""SELECT collection_id, Modality, COUNT(*) as series_count
        FROM index WHERE Modality IN ('SEG', 'RTSTRUCT')
        GROUP BY collection_id, Modality ORDER BY series_count DESC""",
     lambda d: _size(d[d.Modality.isin(["SEG", "RTSTRUCT"])], ["collection_id", "Modality"],
                     "series_count")),
    ("""SELECT SUM(series_size_MB) as total_mb, COUNT(*) as series_count
        FROM index WHERE Modality = 'CT'""",
     lambda d: pd.DataFrame({"total_mb": [d[d.Modality == "CT"].series_size_MB.sum()],
                             "series_count": [int((d.Modality == "CT").sum())]})),
    ("""SELECT collection_id, COUNT(*) as series_count, SUM(series_size_MB) as total_size_mb
        FROM index GROUP BY collection_id ORDER BY series_count DESC""",
     lambda d: d.groupby("collection_id").agg(series_count=("Modality", "size"),
                                              total_size_mb=("series_size_MB", "sum"))
     .reset_index()),
    ("""SELECT Modality, COUNT(*) as series_count, AVG(series_size_MB) as avg_size_mb
        FROM index GROUP BY Modality ORDER BY series_count DESC""",
     lambda d: d.groupby("Modality", dropna=False).agg(
         series_count=("series_size_MB", "size"), avg_size_mb=("series_size_MB", "mean"))
     .reset_index()),
    ("""SELECT Modality, BodyPartExamined, COUNT(*) as count
        FROM index WHERE BodyPartExamined IS NOT NULL
        GROUP BY Modality, BodyPartExamined ORDER BY count DESC""",
     lambda d: _size(d[d.BodyPartExamined.notna()], ["Modality", "BodyPartExamined"], "count")),
    ("""SELECT Manufacturer, COUNT(*) as series_count,
               COUNT(DISTINCT ManufacturerModelName) as model_count
        FROM index WHERE Manufacturer IS NOT NULL
        GROUP BY Manufacturer ORDER BY series_count DESC""",
     lambda d: d[d.Manufacturer.notna()].groupby("Manufacturer").agg(
         series_count=("Modality", "size"), model_count=("ManufacturerModelName", "nunique"))
     .reset_index()),
    ("""SELECT PatientSex, COUNT(*) as series_count
        FROM index WHERE PatientSex IS NOT NULL GROUP BY PatientSex""",
     lambda d: _size(d[d.PatientSex.notna()], ["PatientSex"], "series_count")),
    ("""SELECT SeriesInstanceUID, instanceCount, Modality, series_size_MB
        FROM index WHERE instanceCount >= 40 AND instanceCount <= 200
        ORDER BY instanceCount DESC""",
     lambda d: d.loc[d.instanceCount.between(40, 200),
                     ["SeriesInstanceUID", "instanceCount", "Modality", "series_size_MB"]]),
    ("""SELECT Modality, AVG(instanceCount) as avg_instances,
               MIN(instanceCount) as min_instances, MAX(instanceCount) as max_instances
        FROM index GROUP BY Modality ORDER BY avg_instances DESC""",
     lambda d: d.groupby("Modality", dropna=False).agg(
         avg_instances=("instanceCount", "mean"), min_instances=("instanceCount", "min"),
         max_instances=("instanceCount", "max")).reset_index()),
    ("""SELECT COUNT(*) as total_series, COUNT(PatientAge) as has_age,
               COUNT(PatientSex) as has_sex, COUNT(BodyPartExamined) as has_body_part,
               COUNT(SeriesDescription) as has_series_desc
        FROM index""",
     lambda d: pd.DataFrame({"total_series": [len(d)],
                             **{k: [int(d[c].notna().sum())] for k, c in (
                                 ("has_age", "PatientAge"), ("has_sex", "PatientSex"),
                                 ("has_body_part", "BodyPartExamined"),
                                 ("has_series_desc", "SeriesDescription"))}})),
    ("""SELECT PatientID, COUNT(DISTINCT StudyInstanceUID) as study_count,
               COUNT(*) as total_series
        FROM index GROUP BY PatientID
        HAVING COUNT(DISTINCT StudyInstanceUID) > 1 ORDER BY study_count DESC""",
     lambda d: (lambda g: g[g.study_count > 1])(d.groupby("PatientID").agg(
         study_count=("StudyInstanceUID", "nunique"), total_series=("Modality", "size"))
         .reset_index())),
    ("""SELECT Modality, COUNT(*) as n FROM index
        WHERE StudyDate >= '2000-01-01' AND StudyDate <= '2099-12-31'
        GROUP BY Modality""",
     lambda d: _size(d[(d.StudyDate >= "2000-01-01") & (d.StudyDate <= "2099-12-31")],
                     ["Modality"], "n")),
    ("""SELECT license_short_name, COUNT(*) as series_count, SUM(series_size_MB) as total_mb
        FROM index WHERE license_short_name LIKE 'CC BY%' GROUP BY license_short_name""",
     lambda d: d[d.license_short_name.fillna("").str.startswith("CC BY")]
     .groupby("license_short_name").agg(series_count=("Modality", "size"),
                                        total_mb=("series_size_MB", "sum")).reset_index()),
]


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.reset_index(drop=True)
    want = want.reset_index(drop=True)[list(got.columns)]
    assert list(got.columns) == list(want.columns)
    keys = list(got.columns)
    got = got.astype(object).where(got.notna(), None).sort_values(keys, key=_sort_key)
    want = want.astype(object).where(want.notna(), None).sort_values(keys, key=_sort_key)
    pd.testing.assert_frame_equal(got.reset_index(drop=True).infer_objects(),
                                  want.reset_index(drop=True).infer_objects(),
                                  check_dtype=False, check_exact=False, rtol=1e-9)


def _sort_key(s: pd.Series) -> pd.Series:
    return s.map(lambda v: (v is None, str(round(v, 6)) if isinstance(v, float) else str(v)))


def test_idc_columns_are_read_from_the_installed_parquet():
    path = ml.cohort.idc_index_tables()["idc_index"]
    assert tuple(pq.read_schema(path).names) == IDC_COLUMNS


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(QUERIES)))
def test_idc_query_runs_on_idc_index(i, idc_frame):
    query, reference = QUERIES[i]
    got = ml.cohort.idc_sql(query)
    assert not got.empty
    _same(got, reference(idc_frame))


@pytest.mark.parametrize("i", range(len(QUERIES)))
def test_idc_query_runs_unchanged_on_local_index(i, local_index, local_frame):
    query, reference = QUERIES[i]
    got = ml.cohort.idc_sql(query, index=local_index)
    want = reference(local_frame)
    assert len(got) == len(want)
    _same(got, want)


def test_local_view_has_idc_columns_and_types(local_index):
    local = ml.cohort.idc_sql("SELECT * FROM index", index=local_index)
    idc = ml.cohort.idc_sql("SELECT * FROM index LIMIT 5")
    assert list(local.columns) == list(IDC_COLUMNS) == list(idc.columns)
    types = ml.cohort.idc_sql("DESCRIBE SELECT * FROM local_index", index=local_index)
    idc_types = ml.cohort.idc_sql("DESCRIBE SELECT * FROM idc_index")
    assert list(types["column_type"]) == list(idc_types["column_type"])


def test_which_of_my_series_are_in_idc(local_index, local_frame):
    got = ml.cohort.idc_sql(
        """SELECT l.SeriesInstanceUID, g.collection_id, l.instanceCount AS local_instances,
                  g.instanceCount AS idc_instances
           FROM local_index l JOIN idc_index g USING (SeriesInstanceUID)""",
        index=local_index)
    mine = set(local_frame["SeriesInstanceUID"])
    want = _idc_rows("SeriesInstanceUID", mine)
    assert set(got["SeriesInstanceUID"]) == set(want["SeriesInstanceUID"])
    assert len(got) >= 2  # the sarcoma RTSTRUCTs and the breast DCE series are IDC's
    # the shared breast-dce folder holds part of IDC's series: the counts say so
    partial = got[got["local_instances"] < got["idc_instances"]]
    assert set(partial["collection_id"]) == {"breast_mri_nact_pilot"}
    # UNION: local series next to IDC's series of the same collections
    union = ml.cohort.idc_sql(
        """SELECT 'local' AS source, collection_id, SeriesInstanceUID FROM local_index
           UNION ALL
           SELECT 'idc', collection_id, SeriesInstanceUID FROM idc_index
           WHERE collection_id IN (SELECT collection_id FROM local_index)""",
        index=local_index)
    idc_part = union[union["source"] == "idc"]
    collections = set(got["collection_id"])
    assert len(idc_part) == len(_idc_rows("collection_id", collections)) > len(got)


def test_snapshot_records_the_idc_version(local_index):
    manifest = local_index.snapshot(query="modality = 'RTSTRUCT'", progress=False)
    assert manifest["idc_version"] == ml.cohort.idc_version() >= 25
    manifest = local_index.snapshot(query="modality = 'CT'", progress=False)
    assert manifest["idc_version"] is None


def test_bad_queries_name_the_tables(local_index):
    with pytest.raises(ValueError, match="local_index"):
        ml.cohort.idc_sql("SELECT nope FROM index", index=local_index)
    with pytest.raises(TypeError, match="SQL string"):
        ml.cohort.idc_sql(Path("q.sql"))


def test_volume_geometry_flags_match_numpy_on_the_headers(local_index):
    """IDC's volume_geometry_index checks, recomputed with numpy from pydicom reads."""
    import numpy as np

    got = ml.cohort.idc_sql("SELECT * FROM volume_geometry_index",
                            index=local_index).set_index("SeriesInstanceUID")
    classes = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4",
               "1.2.840.10008.5.1.4.1.1.128"}
    by_series: dict[str, list] = {}
    for name in LOCAL_DATASETS:
        for p in sorted(ml.data.fetch(name, progress=False).rglob("*.dcm")):
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            if ds.SOPClassUID in classes and "ImagePositionPatient" in ds:
                by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    assert set(got.index) == set(by_series)
    n_regular = 0
    for uid, dss in by_series.items():
        row = got.loc[uid]
        iop = np.array([[float(v) for v in d.ImageOrientationPatient] for d in dss])
        ipp = np.array([[float(v) for v in d.ImagePositionPatient] for d in dss])
        normal = np.cross(iop[:, :3], iop[:, 3:])
        pos = np.einsum("ij,ij->i", ipp, normal)
        assert row["single_orientation"] == (len({tuple(r) for r in iop}) == 1)
        assert row["unique_slice_positions"] == (len(set(pos)) == len(dss))
        assert row["consistent_in_plane_row"] == (np.ptp(np.einsum("ij,ij->i", ipp, iop[:, :3]))
                                                  < 0.1)
        assert row["consistent_pixel_spacing"] == (
            len({tuple(float(v) for v in d.PixelSpacing) for d in dss}) == 1)
        if len(dss) > 1:
            steps = np.diff(np.sort(pos))
            expected = (pos.max() - pos.min()) / (len(dss) - 1)
            uniform = bool(np.abs(steps - expected).max() < 0.01 * abs(expected))
            assert row["uniform_slice_spacing"] == uniform
            regular = bool(row["single_orientation"] and row["unique_slice_positions"]
                           and uniform and row["consistent_in_plane_row"]
                           and row["consistent_in_plane_col"])
            assert row["regularly_spaced_3d_volume"] == regular
            if regular:
                n_regular += 1
                assert row["slice_spacing_mm"] == pytest.approx(expected, rel=1e-6)
                assert list(row["origin_patient"]) == pytest.approx(ipp[np.argmin(pos)],
                                                                    abs=1e-4)
        else:
            assert not row["regularly_spaced_3d_volume"]
    assert n_regular >= 15  # the sarcoma CT, MR and PET volumes
