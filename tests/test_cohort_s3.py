"""DICOM in an S3-compatible bucket: a real S3 server (s3rver) on 127.0.0.1 holding shared
series in IDC's layout; headers indexed with ranged reads, checked against pydicom reads of
the same files; IDC-style download checked byte for byte."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pydicom
import pytest

import medlab as ml

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BUCKET = "idc-open-data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    exe = shutil.which("s3rver")
    if exe is None:
        pytest.skip("s3rver is not installed (npm install -g s3rver@3.7.1; .ci/run does)")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--address", "127.0.0.1", "--port", str(port), "--silent",
         "--directory", str(tmp_path_factory.mktemp("s3")), "--configure-bucket", BUCKET],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"s3rver exited: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def _series_files(name: str, rel: str) -> list[Path]:
    return sorted((ml.data.fetch("sts-cohort", progress=False) / "dicom" / name / rel).glob("*.dcm"))


@pytest.fixture(scope="module")
def bucket(s3_endpoint):
    """Shared sts-cohort series uploaded as IDC lays them out: <crdc_series_uuid>/<sop>.dcm."""
    import obstore

    store = ml.cohort.bucket_store(BUCKET, endpoint=s3_endpoint, anonymous=True)
    layout = {}
    ct = _series_files("STS_002", "CT/image")
    rt = _series_files("STS_002", "CT/mask")
    (rt_uid,) = {str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID) for p in rt}
    idc = ml.cohort.idc_sql("SELECT crdc_series_uuid FROM idc_index WHERE SeriesInstanceUID = "
                            f"'{rt_uid}'")
    rt_prefix = idc["crdc_series_uuid"].iloc[0]  # the RTSTRUCT is IDC's: its real layout
    for prefix, files in (("0f0e0d0c-ct-series-of-sts-002", ct), (rt_prefix, rt)):
        for p in files:
            sop = pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
            key = f"{prefix}/{sop}.dcm"
            obstore.put(store, key, p.read_bytes())
            layout[key] = p
    obstore.put(store, "0f0e0d0c-ct-series-of-sts-002/README.txt", b"not DICOM\n")
    return {"endpoint": s3_endpoint, "layout": layout, "ct": ct, "rt": rt, "rt_uid": rt_uid}


def test_scan_bucket_reads_headers_with_ranges(bucket):
    index = ml.cohort.scan_bucket(f"s3://{BUCKET}/", endpoint=bucket["endpoint"],
                                  anonymous=True, header_bytes=4096, progress=False)
    stats = index.last_bucket_scan
    assert stats["n_objects"] == len(bucket["layout"]) + 1
    assert stats["n_indexed"] == len(bucket["layout"])
    assert [k for k, _ in stats["errors"]] == ["0f0e0d0c-ct-series-of-sts-002/README.txt"]
    # headers only: far fewer bytes than the objects hold
    assert stats["bytes_read"] < stats["bytes_total"] / 2
    rows = index.instances.set_index("sop_uid")
    for key, p in bucket["layout"].items():
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        row = rows.loc[str(ds.SOPInstanceUID)]
        assert row["path"] == f"s3://{BUCKET}/{key}"
        assert row["source"] == f"remote:s3://{BUCKET}"
        assert row["series_uid"] == ds.SeriesInstanceUID
        assert row["modality"] == ds.Modality
        assert row["file_size"] == p.stat().st_size
        if "ImagePositionPatient" in ds:
            assert list(row["image_position_mm"]) == pytest.approx(
                [float(v) for v in ds.ImagePositionPatient])
            assert row["rows"] == ds.Rows and row["n_frames"] == 1
    # the IDC-shaped view of bucket rows: sizes and counts from the objects
    per_series = ml.cohort.idc_sql(
        "SELECT SeriesInstanceUID, Modality, instanceCount, series_size_MB FROM index",
        index=index).set_index("SeriesInstanceUID")
    ct_uid = str(pydicom.dcmread(bucket["ct"][0], stop_before_pixels=True).SeriesInstanceUID)
    assert per_series.loc[ct_uid, "instanceCount"] == len(bucket["ct"])
    assert per_series.loc[ct_uid, "series_size_MB"] == pytest.approx(
        sum(p.stat().st_size for p in bucket["ct"]) / 1e6)
    index.close()


def test_fetch_bucket_series_loads_like_the_local_files(bucket, tmp_path):
    index = ml.cohort.scan_bucket(f"s3://{BUCKET}/0f0e0d0c-ct-series-of-sts-002/",
                                  endpoint=bucket["endpoint"], anonymous=True, progress=False)
    (uid,) = set(index.series["series_uid"])
    files = ml.cohort.fetch_bucket_series(index, uid, tmp_path / "ct",
                                          endpoint=bucket["endpoint"], anonymous=True)
    assert len(files) == len(bucket["ct"])
    local = ml.load(bucket["ct"][0].parent)
    fetched = ml.load(tmp_path / "ct")
    assert fetched.geometry_equal(local)
    assert (fetched.array == local.array).all()
    index.close()
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        ml.cohort.scan_bucket("idc-open-data/x", endpoint=bucket["endpoint"])


def test_download_idc_series_in_idc_layout(bucket, tmp_path):
    files = ml.cohort.download_idc_series(bucket["rt_uid"], tmp_path / "rt",
                                          endpoint=bucket["endpoint"])
    want = {hashlib.sha256(p.read_bytes()).hexdigest() for p in bucket["rt"]}
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == want
    with pytest.raises(KeyError, match="not in IDC"):
        ml.cohort.download_idc_series("1.2.3.4", tmp_path / "x", endpoint=bucket["endpoint"])


def test_snapshot_of_bucket_series_restores_and_names_changes(bucket, tmp_path):
    import obstore

    prefix = "0f0e0d0c-ct-series-of-sts-002/"
    index = ml.cohort.scan_bucket(f"s3://{BUCKET}/{prefix}", endpoint=bucket["endpoint"],
                                  anonymous=True, progress=False)
    manifest = index.snapshot(tmp_path / "bucket.json", endpoint=bucket["endpoint"],
                              anonymous=True, progress=False)
    index.close()
    assert manifest["sources"] == [{"kind": "s3", "bucket": BUCKET,
                                    "endpoint": bucket["endpoint"]}]
    by_key = {f["relpath"]: f for f in manifest["files"]}
    for key, p in bucket["layout"].items():
        if key.startswith(prefix):
            assert by_key[key]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    report = ml.cohort.restore(tmp_path / "bucket.json", root=tmp_path / "r1", anonymous=True,
                               progress=False)
    assert report.ok, str(report)
    assert len(report.index.instances) == len(bucket["ct"])
    report.index.close()

    # behind its back: one object overwritten, one deleted
    store = ml.cohort.bucket_store(BUCKET, endpoint=bucket["endpoint"], anonymous=True)
    keys = sorted(by_key)
    obstore.put(store, keys[0], bucket["layout"][keys[1]].read_bytes())
    obstore.delete(store, keys[2])
    report = ml.cohort.restore(tmp_path / "bucket.json", root=tmp_path / "r2", anonymous=True,
                               progress=False)
    assert report.problems.set_index("relpath")["status"].to_dict() == {
        keys[0]: "changed", keys[2]: "missing"}
    report.index.close()
    # put the bucket back as the other tests expect it
    obstore.put(store, keys[0], bucket["layout"][keys[0]].read_bytes())
    obstore.put(store, keys[2], bucket["layout"][keys[2]].read_bytes())


@pytest.mark.slow
def test_scan_bucket_on_a_dask_cluster_gives_the_same_rows(bucket):
    import pandas as pd
    from dask.distributed import Client, LocalCluster

    url = f"s3://{BUCKET}/"
    with ml.cohort.scan_bucket(url, endpoint=bucket["endpoint"], anonymous=True,
                               progress=False) as here:
        expected = here.instances.drop(columns=["mtime_ns"])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with ml.cohort.scan_bucket(url, endpoint=bucket["endpoint"], anonymous=True,
                                   client=client, progress=False) as there:
            got = there.instances.drop(columns=["mtime_ns"])
            assert there.last_bucket_scan["n_indexed"] == len(bucket["layout"])
    pd.testing.assert_frame_equal(got, expected)
