"""Cohort snapshots: a manifest checked against hashlib and pydicom, and a restore round
trip on a copy of a shared cohort with one file changed behind its back and one deleted."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

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
