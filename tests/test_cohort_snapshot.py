"""Cohort snapshots: a manifest checked against hashlib and pydicom, and a restore round
trip on a copy of a shared cohort with one file changed behind its back and one deleted."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import orthanc
import pandas as pd
import pydicom
import pytest

import medlab as ml
from medlab.cohort import SnapshotMismatchError


@pytest.fixture
def cohort_copy(tmp_path):
    """Two patients of sts-cohort (CT and PET images), copied: the copy may be damaged."""
    src = ml.data.fetch("sts-cohort", progress=False) / "dicom"
    dst = tmp_path / "store"
    for pt in ("STS_002", "STS_008"):
        for mod in ("CT", "PET"):
            shutil.copytree(src / pt / mod / "image", dst / pt / mod / "image")
    return dst


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_snapshot_manifest_matches_files(cohort_copy, tmp_path):
    index = ml.cohort.scan(cohort_copy, progress=False, workers=1)
    manifest_path = tmp_path / "cohort.json"
    manifest = index.snapshot(manifest_path, query="modality = 'CT'", progress=False)
    assert json.loads(manifest_path.read_text()) == manifest
    files = sorted(cohort_copy.glob("*/CT/image/*.dcm"))
    assert len(manifest["files"]) == len(files) > 0
    by_rel = {f["relpath"]: f for f in manifest["files"]}
    assert manifest["sources"] == [{"kind": "local", "root": str(cohort_copy)}]
    for p in files:
        entry = by_rel[p.relative_to(cohort_copy).as_posix()]
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert entry["sha256"] == _sha(p)
        assert entry["size"] == p.stat().st_size
        assert entry["sop_uid"] == ds.SOPInstanceUID
        assert entry["series_uid"] == ds.SeriesInstanceUID
    series = {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in files}
    assert {s["series_uid"] for s in manifest["series"]} == series
    assert sum(s["n_instances"] for s in manifest["series"]) == len(files)
    assert manifest["query"] == "modality = 'CT'"
    assert manifest["medlab_version"] == ml.__version__
    assert manifest["idc_version"] is None  # these series were re-exported, not IDC's
    assert manifest["created"].endswith("+00:00")
    index.close()


def test_restore_round_trip_names_changed_and_missing(cohort_copy, tmp_path):
    index = ml.cohort.scan(cohort_copy, progress=False, workers=1)
    manifest_path = tmp_path / "cohort.json"
    index.snapshot(manifest_path, progress=False)
    before_series = index.series.sort_values("series_uid").reset_index(drop=True)
    before_instances = index.instances
    index.close()

    # an untouched restore gives the same index rows (other paths) and every hash
    clean = ml.cohort.restore(manifest_path, root=tmp_path / "clean", progress=False)
    assert clean.ok and clean.problems.empty
    assert len(clean.files) == len(before_instances)
    after = clean.index.series.sort_values("series_uid").reset_index(drop=True)
    pd.testing.assert_frame_equal(before_series, after)
    inst_cols = [c for c in before_instances.columns if c not in ("path", "mtime_ns")]
    pd.testing.assert_frame_equal(
        before_instances[inst_cols].sort_values("sop_uid").reset_index(drop=True),
        clean.index.instances[inst_cols].sort_values("sop_uid").reset_index(drop=True))
    for p in (tmp_path / "clean").rglob("*.dcm"):
        assert _sha(p) == _sha(cohort_copy / p.relative_to(tmp_path / "clean"))
    clean.index.close()

    # behind its back: one file's header edited (same size class, other content), one deleted
    changed = sorted(cohort_copy.glob("STS_002/CT/image/*.dcm"))[3]
    ds = pydicom.dcmread(changed)
    ds.SeriesDescription = "edited later"
    ds.save_as(changed)
    deleted = sorted(cohort_copy.glob("STS_008/PET/image/*.dcm"))[0]
    deleted.unlink()

    report = ml.cohort.restore(manifest_path, root=tmp_path / "again", progress=False)
    assert not report.ok
    problems = report.problems.set_index("relpath")["status"].to_dict()
    assert problems == {changed.relative_to(cohort_copy).as_posix(): "changed",
                        deleted.relative_to(cohort_copy).as_posix(): "missing"}
    text = str(report)
    assert changed.name in text and deleted.name in text
    row = report.files.set_index("relpath").loc[changed.relative_to(cohort_copy).as_posix()]
    assert row["found_sha256"] == _sha(changed) != row["expected_sha256"]
    # the restored folder holds only what the snapshot recorded
    assert not (tmp_path / "again" / changed.relative_to(cohort_copy)).exists()
    assert len(report.index.instances) == len(before_instances) - 2
    report.index.close()

    with pytest.raises(SnapshotMismatchError, match=changed.name) as info:
        ml.cohort.restore(manifest_path, root=tmp_path / "strict", strict=True, progress=False)
    assert len(info.value.report.problems) == 2
    info.value.report.index.close()


def test_restore_from_moved_source_and_bad_input(cohort_copy, tmp_path):
    index = ml.cohort.scan(cohort_copy, progress=False, workers=1)
    manifest = index.snapshot(None, query="modality = 'PT'", progress=False)
    index.close()
    moved = tmp_path / "elsewhere"
    shutil.move(cohort_copy, moved)
    report = ml.cohort.restore(manifest, root=tmp_path / "r", source=moved, progress=False)
    assert report.ok and len(report.files) == len(list(moved.glob("*/PET/image/*.dcm")))
    assert set(report.index.series["modality"]) == {"PT"}
    report.index.close()

    with pytest.raises(FileExistsError, match="not empty"):
        ml.cohort.restore(manifest, root=tmp_path / "r", source=moved, progress=False)
    with pytest.raises(ValueError, match="not a medlab cohort snapshot"):
        ml.cohort.restore({"format": "other"}, root=tmp_path / "x")
    with pytest.raises(ValueError, match="selects no series"):
        ml.cohort.scan(moved, progress=False, workers=1).snapshot(query="modality = 'MR'")


# ---------------------------------------------------------------------------
# a PACS as source: a real Orthanc of this test's own (tests/orthanc.py)


def _orthanc_id(server, sop_uid: str) -> str:
    hits = server.rest("/tools/lookup", method="POST", body=sop_uid.encode())
    return next(h["ID"] for h in hits if h["Type"] == "Instance")


@pytest.mark.skipif(orthanc.missing() is not None, reason=str(orthanc.missing()))
def test_snapshot_and_restore_from_a_pacs(cohort_copy, tmp_path):
    """Series known only from a PACS query are retrieved, hashed and restored; the manifest holds
    no credentials; an instance changed or deleted on the server afterwards is named."""
    originals = sorted(ml.data.path("dcmqi", "segmentations/ct-3slice").glob("*.dcm"))
    ref = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in originals}
    series_uid = next(iter(ref.values())).SeriesInstanceUID
    with orthanc.running_orthanc(tmp_path / "orthanc") as server:
        web = ml.cohort.DicomWeb(server.dicomweb_url, username=server.username,
                                 password=server.password, timeout_s=10, name="hospital")
        web.store(originals)
        index = ml.cohort.scan(cohort_copy / "STS_002" / "PET", progress=False, workers=1)
        index.add_remote(web.query("instance", series_uid=series_uid), source=web.name)

        with pytest.raises(ValueError, match="remote:hospital"):  # asked for, not served
            index.snapshot(query=f"series_uid = '{series_uid}'", progress=False)
        path = tmp_path / "cohort.json"
        manifest = index.snapshot(path, pacs=web, progress=False)
        index.close()
        text = path.read_text()
        assert server.password not in text  # the address, never the credentials
        pacs_src = [i for i, s in enumerate(manifest["sources"]) if s["kind"] == "pacs"]
        assert len(manifest["sources"]) == 2 and len(pacs_src) == 1
        assert manifest["sources"][pacs_src[0]] == {
            "kind": "pacs", "server": "remote:hospital", "protocol": "dicomweb",
            "url": server.dicomweb_url}
        from_pacs = {f["sop_uid"]: f for f in manifest["files"] if f["source"] == pacs_src[0]}
        assert set(from_pacs) == set(ref)  # every instance, by pydicom's reading of the originals
        assert {f["relpath"] for f in from_pacs.values()} == {
            f"{series_uid}/{sop}.dcm" for sop in ref}
        n_local = len(list((cohort_copy / "STS_002" / "PET").rglob("*.dcm")))
        assert len(manifest["files"]) == n_local + len(ref)

        with pytest.raises(ValueError, match=r"pacs=ml\.cohort\.DicomWeb"):
            ml.cohort.restore(path, root=tmp_path / "no-client", progress=False)
        clean = ml.cohort.restore(path, root=tmp_path / "clean", pacs=web, progress=False)
        assert clean.ok, str(clean)
        for sop, ds in ref.items():  # the restored pixels are the originals'
            got = pydicom.dcmread(tmp_path / "clean" / series_uid / f"{sop}.dcm")
            assert got.SOPInstanceUID == sop
            assert (got.pixel_array == ds.pixel_array).all()
        assert series_uid in set(clean.index.series["series_uid"])
        clean.index.close()

        # on the server, behind the snapshot's back: one instance edited, one deleted
        edited_sop, deleted_sop = sorted(ref)[:2]
        server.rest(f"/instances/{_orthanc_id(server, edited_sop)}", method="DELETE")
        edited = ref[edited_sop].copy()
        edited.SeriesDescription = "edited later"
        edited.save_as(tmp_path / "edited.dcm")
        web.store([tmp_path / "edited.dcm"])
        server.rest(f"/instances/{_orthanc_id(server, deleted_sop)}", method="DELETE")
        report = ml.cohort.restore(path, root=tmp_path / "again", pacs=web, progress=False)
        assert report.problems.set_index("relpath")["status"].to_dict() == {
            f"{series_uid}/{edited_sop}.dcm": "changed",
            f"{series_uid}/{deleted_sop}.dcm": "missing"}
        assert deleted_sop in str(report)
        report.index.close()

        # the whole series gone from the server: each of its files is missing, nothing hangs
        for sop in ref:
            if sop != deleted_sop:
                server.rest(f"/instances/{_orthanc_id(server, sop)}", method="DELETE")
        gone = ml.cohort.restore(path, root=tmp_path / "gone", pacs=web, progress=False)
        assert set(gone.problems["status"]) == {"missing"} and len(gone.problems) == len(ref)
        gone.index.close()
