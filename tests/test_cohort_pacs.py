"""medlab.cohort.pacs against a real Orthanc (DICOMweb and DIMSE), on real shared data.

One Orthanc per session (tests/orthanc.py): basic authentication on HTTP,
only the registered AE title ``MEDLAB`` over DIMSE. Half of the data goes in
with STOW-RS, half with C-STORE; queries are checked against what pydicom
reads from the original files (and against Orthanc's own REST API), and
retrieved files -- over the other protocol than they were sent with where
possible -- must hold the same pixel data as the originals.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from pathlib import Path

import numpy as np
import orthanc
import pandas as pd
import pydicom
import pytest

import medlab as ml
from medlab.cohort import INSTANCE_COLUMNS
from medlab.cohort._schema import column_names
from medlab.errors import DicomReadError, MedlabError

pytest.importorskip("pynetdicom")
pytest.importorskip("dicomweb_client")

pytestmark = pytest.mark.skipif(orthanc.missing() is not None, reason=str(orthanc.missing()))

#: sent with STOW-RS: one sts-cohort patient's CT and PET series and its RTSTRUCT
STOW_SET = ("dicom/STS_002/CT/image", "dicom/STS_002/PET/image", "dicom/STS_002/CT/mask")
#: sent with C-STORE: a dcmqi CT with its SEG, and compressed single images
CSTORE_SET = (("dcmqi", "segmentations/ct-3slice"), ("dcmqi", "segmentations/liver.dcm"),
              ("wg04-codecs", "CT1_JLSL.dcm"),   # JPEG-LS lossless
              ("wg04-codecs", "MR1_J2KI.dcm"),   # JPEG 2000 (lossy)
              ("wg04-codecs", "US1_RLE.dcm"))    # RLE, RGB
TIMEOUT_S = 2.0
MARGIN_S = 2.0  # allowed on top of a timeout before we call it a hang


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _reference(paths: list[Path], via: str) -> pd.DataFrame:
    """What pydicom reads from the originals: the independent reference."""
    rows = []
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        rows.append({
            "file": p, "via": via, "sop_uid": ds.SOPInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "study_uid": ds.StudyInstanceUID, "patient_id": ds.PatientID,
            "patient_name": str(ds.PatientName), "modality": ds.Modality,
            "study_date": pd.Timestamp(ds.StudyDate) if ds.get("StudyDate") else pd.NaT,
            "series_number": ds.get("SeriesNumber"), "instance_number": ds.get("InstanceNumber"),
            "sop_class_uid": ds.SOPClassUID, "ts": ds.file_meta.TransferSyntaxUID,
            "rows": ds.get("Rows"), "columns": ds.get("Columns"),
            "position": [float(x) for x in ds.ImagePositionPatient]
            if "ImagePositionPatient" in ds else None,
            "spacing": [float(x) for x in ds.PixelSpacing] if "PixelSpacing" in ds else None,
            "slope": float(ds.RescaleSlope) if "RescaleSlope" in ds else None,
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# fixtures


# orthanc_server: tests/conftest.py (one real Orthanc per session, ~0.1 s up, ~3 s down)


@pytest.fixture(scope="session")
def web(orthanc_server):
    return ml.cohort.DicomWeb(orthanc_server.dicomweb_url, username=orthanc_server.username,
                              password=orthanc_server.password, timeout_s=10)


@pytest.fixture(scope="session")
def dimse(orthanc_server):
    return ml.cohort.Dimse("127.0.0.1", orthanc_server.dicom_port, called_aet="ORTHANC",
                           calling_aet="MEDLAB", timeout_s=10)


@pytest.fixture(scope="session")
def uploaded(orthanc_server, web, dimse):
    """Upload the test data (STOW-RS and C-STORE); return the pydicom reference table."""
    stow = [f for rel in STOW_SET for f in _files(ml.data.path("sts-cohort", rel))]
    cstore = [f for name, rel in CSTORE_SET for f in _files(ml.data.path(name, rel))]
    n_web = web.store([ml.data.path("sts-cohort", rel) for rel in STOW_SET])  # folders
    n_dimse = dimse.store(cstore)
    ref = pd.concat([_reference(stow, "stow"), _reference(cstore, "cstore")], ignore_index=True)
    return {"ref": ref, "n_web": n_web, "n_dimse": n_dimse, "n_stow": len(stow),
            "n_cstore": len(cstore)}


@pytest.fixture(params=["dicomweb", "dimse"])
def client(request, web, dimse, uploaded):
    """Query with QIDO-RS or C-FIND: the same call, the same answers."""
    if request.param == "dicomweb":
        return web.query
    return dimse.find


# ---------------------------------------------------------------------------
# upload


def test_upload_counts_match_orthanc(orthanc_server, uploaded):
    assert uploaded["n_web"] == uploaded["n_stow"] == 97
    assert uploaded["n_dimse"] == uploaded["n_cstore"] == 7
    ref = uploaded["ref"]
    # Orthanc's own REST API (standard library, no medlab code) as the reference
    stats = orthanc_server.rest("/statistics")
    assert stats["CountInstances"] == len(ref) == ref.sop_uid.nunique()
    assert stats["CountSeries"] == ref.series_uid.nunique()
    assert stats["CountStudies"] == ref.study_uid.nunique()
    stored = {orthanc_server.rest(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]
              for i in orthanc_server.rest("/instances")}
    assert stored == set(ref.sop_uid)


def test_echo(dimse, uploaded):
    assert dimse.echo() is True


def test_dimse_socket_has_tcp_nodelay(dimse):
    """Without TCP_NODELAY each DIMSE message can wait ~40 ms for a delayed ACK."""
    from pynetdicom.sop_class import Verification

    with dimse._association([(Verification, ["1.2.840.10008.1.2"])], action="test") as assoc:
        sock = assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_store_again_is_acknowledged_and_non_dicom_is_refused(web, dimse, uploaded, tmp_path):
    one = ml.data.path("wg04-codecs", "CT1_JLSL.dcm")
    assert web.store(one) == 1
    assert dimse.store([one]) == 1
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    for send in (web.store, dimse.store):
        with pytest.raises(DicomReadError, match=r"notes\.txt"):
            send([one, junk])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        web.store(tmp_path / "nowhere")


# ---------------------------------------------------------------------------
# queries


def test_query_schema(client, uploaded):
    df = client("series")
    assert list(df.columns) == column_names()
    assert set(df.columns) <= set(column_names())  # what Index.add_remote accepts
    dtypes = {c.name: c.dtype for c in INSTANCE_COLUMNS}
    assert str(df["series_number"].dtype) == "Int64"
    assert str(df["study_date"].dtype) == "datetime64[ns]"
    assert df["source"].str.startswith("remote:").all()
    assert df["path"].notna().all()
    assert all(p.endswith(f"/series/{uid}") for p, uid in zip(df.path, df.series_uid, strict=True))
    # instance-level columns are null at series level
    assert df["sop_uid"].isna().all() and df["rows"].isna().all()
    assert dtypes["study_date"] == "DATE"


def test_query_study_level(client, uploaded):
    ref = uploaded["ref"]
    df = client("study")
    assert len(df) == ref.study_uid.nunique() == 5
    want = ref.groupby("study_uid").first()
    got = df.set_index("study_uid")
    assert set(got.index) == set(want.index)
    assert got.patient_id.to_dict() == want.patient_id.to_dict()
    assert got.study_date.to_dict() == want.study_date.to_dict()
    assert got["series_uid"].isna().all()
    # study-level modality matches ModalitiesInStudy
    seg = client("study", modality="SEG")
    assert list(seg.study_uid) == list(ref.loc[ref.modality == "SEG", "study_uid"].unique())
    # dates: a range, open at one end, as a tuple of ISO strings or date objects
    after = client("study", study_date=("2006-01-01", None))
    assert set(after.study_uid) == set(ref.loc[ref.study_date >= "2006-01-01", "study_uid"])
    on = client("study", study_date=dt.date(2003, 12, 8))
    assert set(on.study_uid) == set(ref.loc[ref.study_date == "2003-12-08", "study_uid"])
    # wildcards
    comp = client("study", patient_name="CompressedSamples*")
    assert set(comp.patient_id) == {"1CT1", "4MR1", "13US1"}


def test_query_series_level(client, uploaded):
    ref = uploaded["ref"]
    sts = ref[ref.patient_id == "STS_002"]
    df = client("series", patient_id="STS_002")
    assert set(df.series_uid) == set(sts.series_uid) and len(df) == 3
    assert sorted(df.modality) == sorted(sts.groupby("series_uid").modality.first())
    numbers = sts.groupby("series_uid").series_number.first()
    assert dict(zip(df.series_uid, df.series_number, strict=True)) == numbers.to_dict()
    ct = client("series", modality="CT")
    assert set(ct.series_uid) == set(ref.loc[ref.modality == "CT", "series_uid"])
    both = client("series", patient_id="STS_002", modality="PT")
    assert list(both.series_uid) == list(sts.loc[sts.modality == "PT", "series_uid"].unique())
    # UID-list matching
    two = sorted(ref.series_uid.unique())[:2]
    assert set(client("series", series_uid=two).series_uid) == set(two)
    assert client("series", patient_id="NOBODY").empty
    assert list(client("series", patient_id="NOBODY").columns) == column_names()


def test_query_instance_level_matches_originals(client, uploaded):
    ref = uploaded["ref"]
    pet = ref[(ref.patient_id == "STS_002") & (ref.modality == "PT")].set_index("sop_uid")
    df = client("instance", series_uid=pet.series_uid.iloc[0])
    assert len(df) == len(pet) == 48
    assert set(df.sop_uid) == set(pet.index)
    got = df.set_index("sop_uid").loc[pet.index]
    assert (got.instance_number.astype(int) == pet.instance_number.astype(int)).all()
    assert (got.sop_class_uid == pet.sop_class_uid).all()
    assert (got["rows"] == pet["rows"]).all() and (got["columns"] == pet["columns"]).all()
    np.testing.assert_allclose(np.stack(got.image_position_mm), np.stack(pet.position))
    np.testing.assert_allclose(got.pixel_spacing_row_mm, [s[0] for s in pet.spacing])
    np.testing.assert_allclose(got.pixel_spacing_col_mm, [s[1] for s in pet.spacing])
    np.testing.assert_allclose(got.rescale_slope, pet.slope.astype(float))
    assert (got.n_frames == 1).all()
    assert all(p.endswith(f"/instances/{uid}") for p, uid in zip(df.path, df.sop_uid, strict=True))
    # units: EchoTime and RepetitionTime are written in ms, the schema has seconds
    mr = client("instance", modality="MR")
    orig = pydicom.dcmread(ref.loc[ref.modality == "MR", "file"].iloc[0], stop_before_pixels=True)
    assert mr.echo_time_s.iloc[0] == pytest.approx(float(orig.EchoTime) / 1000)
    assert mr.repetition_time_s.iloc[0] == pytest.approx(float(orig.RepetitionTime) / 1000)
    assert mr.flip_angle_deg.iloc[0] == pytest.approx(float(orig.FlipAngle))
    # a SEG: one multi-frame instance
    seg = client("instance", modality="SEG")
    want = ref[ref.modality == "SEG"]
    assert list(seg.sop_uid) == list(want.sop_uid)
    assert seg.n_frames.iloc[0] == pydicom.dcmread(want.file.iloc[0]).NumberOfFrames


def test_dicomweb_and_dimse_agree(web, dimse, uploaded):
    """QIDO-RS and C-FIND answer the same query with the same rows (two protocols, one schema)."""
    a = web.query("instance", patient_id="STS_002")
    b = dimse.find("instance", patient_id="STS_002")
    assert len(a) == len(b) == 97
    a, b = a.set_index("sop_uid").sort_index(), b.set_index("sop_uid").sort_index()
    compared = 0
    for col in a.columns.drop(["path", "source"]):
        filled = a[col].notna()
        if not filled.any():
            continue
        compared += 1
        left, right = a.loc[filled, col], b.loc[filled, col]
        if col in ("image_position_mm", "image_orientation"):
            np.testing.assert_allclose(np.stack(left), np.stack(right), err_msg=col)
        else:
            pd.testing.assert_series_equal(left, right, check_names=False, obj=col)
    assert compared >= 30  # most of the schema comes back from Orthanc
    # C-FIND also returns the PET radiopharmaceutical sequence
    pet = b[b.modality == "PT"]
    assert pet.radiopharmaceutical.str.contains("FDG").all()
    ds = pydicom.dcmread(uploaded["ref"].set_index("sop_uid").loc[pet.index[0], "file"])
    assert pet.injected_dose_bq.iloc[0] == pytest.approx(
        float(ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose))


def test_query_bad_arguments(web, dimse):
    for query in (web.query, dimse.find):
        with pytest.raises(ValueError, match=r"one of: .*patient_id"):
            query("series", patientid="x")
        with pytest.raises(ValueError, match=r"series-level attribute.*level='series'"):
            query("study", series_description="x")
        with pytest.raises(ValueError, match="level must be one of"):
            query("patients")
        with pytest.raises(ValueError, match="study_date"):
            query("study", study_date="last week")


# ---------------------------------------------------------------------------
# retrieval


def _assert_same_as_originals(files: list[Path], ref: pd.DataFrame, *, want: pd.DataFrame,
                              same_syntax: bool) -> None:
    assert sorted(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files) \
        == sorted(want.sop_uid)
    by_sop = ref.set_index("sop_uid")
    for f in files:
        got = pydicom.dcmread(f)
        orig = pydicom.dcmread(by_sop.loc[got.SOPInstanceUID, "file"])
        assert got.SeriesInstanceUID == orig.SeriesInstanceUID
        assert got.StudyInstanceUID == orig.StudyInstanceUID
        assert got.SOPClassUID == orig.SOPClassUID
        if same_syntax:
            assert got.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID
        if "PixelData" in orig:
            a, b = got.pixel_array, orig.pixel_array
            assert a.dtype == b.dtype and a.shape == b.shape, f.name
            assert np.array_equal(a, b), f"pixel data differ for {f.name}"


def test_wado_retrieve_series_and_study(web, uploaded, tmp_path):
    ref = uploaded["ref"]
    ct = ref[(ref.patient_id == "STS_002") & (ref.modality == "CT")]
    files = web.retrieve(study_uid=ct.study_uid.iloc[0], series_uid=ct.series_uid.iloc[0],
                         dest=tmp_path / "ct")
    assert len(files) == 48 and all(f.parent == tmp_path / "ct" for f in files)
    assert not list((tmp_path / "ct").glob(".medlab-*"))  # no temporary files left
    _assert_same_as_originals(files, ref, want=ct, same_syntax=True)
    # a whole study sent with C-STORE: CT slices and their SEG
    dcmqi = ref[ref.patient_id == "99000"]
    files = web.retrieve(study_uid=dcmqi.study_uid.iloc[0], dest=tmp_path / "seg")
    _assert_same_as_originals(files, ref, want=dcmqi, same_syntax=True)


def test_wado_retrieve_compressed_as_stored(web, uploaded, tmp_path):
    """JPEG-LS, JPEG 2000 and RLE files sent with C-STORE come back byte-identical in pixels."""
    ref = uploaded["ref"]
    for _, row in ref[ref.file.map(lambda p: p.parent.name == "wg04-codecs")].iterrows():
        files = web.retrieve(study_uid=row.study_uid, series_uid=row.series_uid,
                             dest=tmp_path / row.patient_id)
        _assert_same_as_originals(files, ref, want=ref[ref.sop_uid == row.sop_uid],
                                  same_syntax=True)
        assert pydicom.dcmread(files[0]).PixelData == pydicom.dcmread(row.file).PixelData


def test_cget_series_and_study(dimse, uploaded, tmp_path):
    ref = uploaded["ref"]
    pet = ref[(ref.patient_id == "STS_002") & (ref.modality == "PT")]  # sent with STOW-RS
    files = dimse.get(study_uid=pet.study_uid.iloc[0], series_uid=pet.series_uid.iloc[0],
                      dest=tmp_path / "pet")
    assert len(files) == 48
    _assert_same_as_originals(files, ref, want=pet, same_syntax=False)
    sts = ref[ref.patient_id == "STS_002"]  # CT, PET, RTSTRUCT: three SOP classes
    files = dimse.get(study_uid=sts.study_uid.iloc[0], dest=tmp_path / "sts")
    _assert_same_as_originals(files, ref, want=sts, same_syntax=False)


def test_cget_compressed_as_stored(dimse, uploaded, tmp_path):
    ref = uploaded["ref"]
    for _, row in ref[ref.file.map(lambda p: p.parent.name == "wg04-codecs")].iterrows():
        files = dimse.get(study_uid=row.study_uid, dest=tmp_path / row.patient_id)
        _assert_same_as_originals(files, ref, want=ref[ref.study_uid == row.study_uid],
                                  same_syntax=True)


def test_cget_when_cfind_gives_no_sop_classes(dimse, uploaded, tmp_path, monkeypatch):
    """Servers that do not return SOPClassUID: C-GET offers the common storage classes."""
    real = type(dimse)._c_find

    def without_classes(self, identifier, *, action):
        answers = real(self, identifier, action=action)
        for ds in answers:
            if "SOPClassUID" in ds:
                del ds.SOPClassUID
        return answers

    monkeypatch.setattr(type(dimse), "_c_find", without_classes)
    ref = uploaded["ref"]
    for want in (ref[ref.patient_id == "99000"], ref[ref.patient_id == "1CT1"]):  # CT+SEG, JPEG-LS
        files = dimse.get(study_uid=want.study_uid.iloc[0], dest=tmp_path / want.patient_id.iloc[0])
        _assert_same_as_originals(files, ref, want=want, same_syntax=False)


def test_retrieve_unknown_uids(web, dimse, uploaded, tmp_path):
    with pytest.raises(ml.cohort.PacsError, match="404"):
        web.retrieve(study_uid="1.2.3.4.5", dest=tmp_path)
    with pytest.raises(ml.cohort.PacsError, match=r"no instances of study 1\.2\.3\.4\.5"):
        dimse.get(study_uid="1.2.3.4.5", dest=tmp_path)
    with pytest.raises(ValueError, match="study_uid"):
        web.retrieve(study_uid="", dest=tmp_path)


def test_query_results_and_retrieved_files_go_into_the_index(web, dimse, uploaded, tmp_path):
    """QIDO-RS rows (remote) and the index's own scan of the C-GET files (local) agree."""
    ref = uploaded["ref"]
    pet = ref[(ref.patient_id == "STS_002") & (ref.modality == "PT")]
    dimse.get(study_uid=pet.study_uid.iloc[0], series_uid=pet.series_uid.iloc[0],
              dest=tmp_path / "pet")
    index = ml.cohort.scan(tmp_path / "pet", progress=False)
    try:
        rows = web.query("instance", series_uid=pet.series_uid.iloc[0])
        assert set(rows.columns) <= set(column_names())
        index.add_remote(rows, source=web.name)
        index.add_remote(rows, source=web.name)  # a repeated query replaces, not duplicates
        inst = index.instances
        local = inst[inst.source == "local"].set_index("sop_uid").sort_index()
        remote = inst[inst.source == web.source].set_index("sop_uid").sort_index()
        assert len(local) == len(remote) == 48 and list(local.index) == list(remote.index)
        assert remote.path.str.startswith(web.url + "/studies/").all()
        compared = 0
        for col in local.columns.drop(["path", "source", "file_size", "mtime_ns"]):
            if remote[col].isna().all():
                continue
            compared += 1
            for a, b in zip(local[col], remote[col], strict=True):
                if isinstance(a, list | np.ndarray):
                    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float))
                else:
                    assert (pd.isna(a) and pd.isna(b)) or a == b, (col, a, b)
        assert compared >= 30
    finally:
        index.close()


# ---------------------------------------------------------------------------
# refusals and failures: clear errors, no hangs


def test_wrong_password_is_refused(orthanc_server):
    web = ml.cohort.DicomWeb(orthanc_server.dicomweb_url, username="medlab",
                             password="not-the-password", timeout_s=TIMEOUT_S)
    with pytest.raises(ml.cohort.PacsError) as err:
        web.query("study")
    msg = str(err.value)
    assert "401" in msg and "refused the credentials" in msg and "'medlab'" in msg
    assert orthanc_server.dicomweb_url in msg and "not-the-password" not in msg
    assert isinstance(err.value, ConnectionError) and isinstance(err.value, MedlabError)
    anonymous = ml.cohort.DicomWeb(orthanc_server.dicomweb_url, timeout_s=TIMEOUT_S)
    with pytest.raises(ml.cohort.PacsError, match=r"requires credentials.*username="):
        anonymous.query("series")


def test_server_down_fails_fast(tmp_path):
    port = orthanc.free_port()  # nobody listens there
    web = ml.cohort.DicomWeb(f"http://127.0.0.1:{port}/dicom-web", username="u", password="p",
                             timeout_s=TIMEOUT_S)
    dimse = ml.cohort.Dimse("127.0.0.1", port, called_aet="ORTHANC", timeout_s=TIMEOUT_S)
    one = ml.data.path("wg04-codecs", "CT1_JLSL.dcm")
    calls = (lambda: web.query("study"), lambda: web.retrieve(study_uid="1.2.3", dest=tmp_path),
             lambda: web.store(one), dimse.echo, lambda: dimse.find("study"),
             lambda: dimse.get(study_uid="1.2.3", dest=tmp_path), lambda: dimse.store(one))
    for call in calls:
        t0 = time.perf_counter()
        with pytest.raises(ml.cohort.PacsError, match=f"127.0.0.1:{port}") as err:
            call()
        assert time.perf_counter() - t0 < TIMEOUT_S + MARGIN_S
        assert "cannot connect" in str(err.value)


def _tcp_server(*, hang_up: bool):
    """A TCP port on 127.0.0.1 that accepts connections and then never says a word
    (a hung server) or hangs up at once (not a DICOM server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn = sock.accept()[0]
            except OSError:
                continue
            if hang_up:
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for s in held:
        s.close()
    sock.close()


@pytest.fixture
def silent_server():
    yield from _tcp_server(hang_up=False)


@pytest.fixture
def hang_up_server():
    yield from _tcp_server(hang_up=True)


def test_silent_server_times_out(silent_server):
    port = silent_server
    web = ml.cohort.DicomWeb(f"http://127.0.0.1:{port}/dicom-web", timeout_s=1.0)
    dimse = ml.cohort.Dimse("127.0.0.1", port, called_aet="ORTHANC", timeout_s=1.0)
    for call, expect in ((lambda: web.query("study"), "did not answer within 1 s"),
                         (dimse.echo, "did not accept the association within timeout_s=1")):
        t0 = time.perf_counter()
        with pytest.raises(ml.cohort.PacsError, match=expect):
            call()
        assert time.perf_counter() - t0 < 1.0 + MARGIN_S


def test_server_that_hangs_up(hang_up_server):
    dimse = ml.cohort.Dimse("127.0.0.1", hang_up_server, called_aet="ORTHANC", timeout_s=5.0)
    t0 = time.perf_counter()
    with pytest.raises(ml.cohort.PacsError, match="closed the connection without answering"):
        dimse.echo()
    assert time.perf_counter() - t0 < 2.0  # no waiting for a timeout


def test_unknown_ae_titles_are_refused(orthanc_server):
    stranger = ml.cohort.Dimse("127.0.0.1", orthanc_server.dicom_port, called_aet="ORTHANC",
                               calling_aet="STRANGER", timeout_s=TIMEOUT_S)
    for call in (stranger.echo, lambda: stranger.find("study"),
                 lambda: stranger.store([ml.data.path("wg04-codecs", "CT1_JLSL.dcm")])):
        with pytest.raises(ml.cohort.PacsError, match="refused the association") as err:
            call()
        msg = str(err.value)
        assert "does not know the calling AE title 'STRANGER'" in msg
        assert f"127.0.0.1:{orthanc_server.dicom_port}" in msg
    wrong = ml.cohort.Dimse("127.0.0.1", orthanc_server.dicom_port, called_aet="NOT-ORTHANC",
                            timeout_s=TIMEOUT_S)
    with pytest.raises(ml.cohort.PacsError, match=r"AE title is not 'NOT-ORTHANC'.*called_aet="):
        wrong.echo()


def test_constructor_checks():
    with pytest.raises(ValueError, match="http"):
        ml.cohort.DicomWeb("127.0.0.1:8042")
    with pytest.raises(ValueError, match="username="):
        ml.cohort.DicomWeb("http://u:p@127.0.0.1:8042/dicom-web")
    with pytest.raises(ValueError, match="timeout_s"):
        ml.cohort.DicomWeb("http://127.0.0.1:8042/dicom-web", timeout_s=0)
    with pytest.raises(ValueError, match="16"):
        ml.cohort.Dimse("127.0.0.1", 104, called_aet="A" * 17)
    with pytest.raises(ValueError, match="port"):
        ml.cohort.Dimse("127.0.0.1", 0, called_aet="ORTHANC")
    with ml.cohort.DicomWeb("http://127.0.0.1:8042/dicom-web/", username="u",
                            password="secret") as web:
        assert "secret" not in repr(web) and web.source == "remote:127.0.0.1:8042/dicom-web"
        assert web.url == "http://127.0.0.1:8042/dicom-web"
    dimse = ml.cohort.Dimse("127.0.0.1", 104, called_aet="PACS", name="research-pacs")
    assert dimse.source == "remote:research-pacs"
