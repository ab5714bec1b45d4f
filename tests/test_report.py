"""medlab.report: parameterised runs, self-contained HTML (checked in an offline
Chromium), PDF, provenance, pseudonyms, verify and batch runs over a cohort."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import re
import shutil
from pathlib import Path

import browser
import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import shared_data_root
from helpers import write_dicom_series

import medlab as ml
from medlab.__main__ import main as medlab_main
from medlab.errors import MissingDependencyError

chromium_missing = browser.chromium_missing

PATIENT = "STS_777"  # an identifier that must not appear in any report


def _notebook(path, cells, *, parameters):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Small report\nThe phantom's intensity inside the mask."),
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        *[nbformat.v4.new_code_cell(c) for c in cells],
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


PHANTOM_CELLS = [
    "from pathlib import Path\nimport matplotlib.pyplot as plt\nimport pandas as pd\n"
    "import medlab as ml\n"
    "img = ml.load(Path(data_dir) / 'nifti/image/phantom.nii.gz')\n"
    "mask = ml.load(Path(data_dir) / 'nifti/mask/mask.nii.gz')\n"
    "print('analysing patient', patient_id)",
    "fig, ax = plt.subplots(figsize=(4, 3))\n"
    "ax.imshow(img.array[img.array.shape[0] // 2], cmap='gray')\n"
    "ax.set_title('middle slice of the phantom')\nplt.show()",
    "inside = img.array[mask.array > 0]\n"
    "ml.report.result('stats', pd.DataFrame({'patient_id': [patient_id],\n"
    "    'mean': [float(inside.mean())], 'n_voxels': [int(inside.size)]}))",
]


def _phantom_copy(dest):
    src = shared_data_root() / "ibsi1-phantom"
    if not src.is_dir():
        pytest.skip(f"the ibsi1-phantom dataset is not in MEDLAB_DATA ({src})")
    shutil.copytree(src, dest)
    return dest


def _expected_stats(data_dir):
    img = ml.load(data_dir / "nifti/image/phantom.nii.gz")
    mask = ml.load(data_dir / "nifti/mask/mask.nii.gz")
    inside = img.array[mask.array > 0]
    return float(inside.mean()), int(inside.size)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One report (HTML + PDF) of a small notebook: figure, result table, patient parameter."""
    if chromium_missing():
        pytest.skip(chromium_missing())
    root = tmp_path_factory.mktemp("report")
    data = _phantom_copy(root / "phantom")
    nb = _notebook(root / "small.ipynb", PHANTOM_CELLS,
                   parameters="data_dir = 'nowhere'\npatient_id = 'nobody'")
    res = ml.report.run(nb, parameters={"data_dir": data, "patient_id": PATIENT},
                        out=root / "out", pdf=True)
    return res, data


# ---------------------------------------------------------------------------- one run
def test_run_records_results_and_writes_the_report(small_run):
    res, data = small_run
    mean, n = _expected_stats(data)
    assert set(res.results) == {"stats"}
    stats = res.results["stats"]
    assert stats["mean"].iloc[0] == pytest.approx(mean) and stats["n_voxels"].iloc[0] == n
    # the Parquet file is what was recorded (raw: it is the run's data, not the report)
    assert pd.read_parquet(res.out / "results" / "stats.parquet").equals(stats)
    for p in (res.notebook, res.html, res.pdf, res.out / "provenance.json", res.out / "run.json"):
        assert p.is_file(), p
    nb = nbformat.read(res.notebook, as_version=4)
    assert "medlab-provenance" in nb.cells[-1].metadata["tags"]
    assert "Installed packages" in nb.cells[-1].source
    # the result table is displayed once, marked as a result
    marked = [o for c in nb.cells for o in c.get("outputs", [])
              if "medlab_result" in o.get("metadata", {})]
    assert len(marked) == 1 and marked[0]["metadata"]["medlab_result"] == "stats"


def test_html_is_self_contained_and_renders_offline(small_run, offline_page):
    res, _ = small_run
    html = res.html.read_text()
    # nothing in the file can load from elsewhere: no scripts, no stylesheets, no remote urls
    assert "<script" not in html and "<link" not in html
    assert ml.report.external_references(html) == []
    for m in re.finditer(r"https?://", html):
        before = html[max(0, m.start() - 200):m.start()]
        # only hyperlinks or SVG namespaces may name a URL; never a src, @import or url()
        assert re.search(r"(<a\b[^>]*href=[\"']?|xmlns(:\w+)?=[\"'])$", before), \
            html[m.start() - 80:m.start() + 80]
    page = offline_page.page
    page.goto(res.html.as_uri(), wait_until="load")
    sizes = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
    assert sizes, "the report shows no image"
    assert all(complete and width > 0 for complete, width in sizes), sizes
    assert offline_page.requests, "the page was not loaded through the recording route"
    assert offline_page.external == [] and offline_page.blocked == []
    text = page.inner_text("body")
    assert "Small report" in text and "Provenance" in text and "n_voxels" in text


def test_pdf_has_text_and_figure(small_run):
    PdfReader = pytest.importorskip("pypdf", reason="pip install pypdf").PdfReader

    res, data = small_run
    reader = PdfReader(res.pdf)
    text = "\n".join(p.extract_text() for p in reader.pages)
    mean, n = _expected_stats(data)
    assert "Small report" in text and "Provenance" in text
    assert f"{mean:.6f}" in text and str(n) in text
    assert sum(len(p.images) for p in reader.pages) >= 1


def test_provenance_record(small_run):
    res, data = small_run
    prov = json.loads((res.out / "provenance.json").read_text())
    assert prov == res.provenance
    assert prov["medlab"]["version"] == ml.__version__
    assert prov["packages"]["numpy"] == md.version("numpy")
    assert len(prov["packages"]) > 50  # every installed distribution
    assert prov["python"]["version"].count(".") == 2
    assert prov["machine"]["cpu_count"] >= 1 and prov["run_time_s"] > 0
    assert prov["notebook"]["name"] == "small.ipynb"
    (folder,) = prov["inputs"]  # the data folder given as a parameter, all its files
    assert folder["kind"] == "folder" and folder["n_files"] == 4
    files = sorted(p for p in data.rglob("*") if p.is_file())
    listing = "".join(f"{p.relative_to(data).as_posix()}  "
                      f"{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files)
    assert folder["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    # per-file hashes (paths may name patients) stay in the private rerun record
    (recorded,) = json.loads((res.out / "run.json").read_text())["inputs"]
    mask = data / "nifti/mask/mask.nii.gz"
    assert recorded["files"]["nifti/mask/mask.nii.gz"] == \
        hashlib.sha256(mask.read_bytes()).hexdigest()
    assert prov["parameters"]["data_dir"] == str(data)
    assert prov["parameters"]["patient_id"].startswith("ANON-")


def test_no_patient_identifier_in_the_report(small_run):
    PdfReader = pytest.importorskip("pypdf", reason="pip install pypdf").PdfReader

    res, _ = small_run
    pseudonym = res.provenance["parameters"]["patient_id"]
    assert pseudonym == ml.report.Pseudonyms().pseudonym(PATIENT)
    shared = [res.html, res.notebook, res.out / "provenance.json"]
    for p in shared:
        text = p.read_text()
        assert PATIENT not in text, p
        assert pseudonym in text, p
    pdf_text = "".join(p.extract_text() for p in PdfReader(res.pdf).pages)
    assert PATIENT not in pdf_text and pseudonym in pdf_text
    # the private rerun record keeps the real parameters (verify needs them)
    assert json.loads((res.out / "run.json").read_text())["parameters"]["patient_id"] == PATIENT


# ---------------------------------------------------------------------------- verify
def test_verify_passes_on_rerun_and_fails_when_an_input_changes(tmp_path, capsys):
    data = _phantom_copy(tmp_path / "phantom")
    nb = _notebook(tmp_path / "small.ipynb", PHANTOM_CELLS[:1] + PHANTOM_CELLS[2:],
                   parameters="data_dir = ''\npatient_id = ''")
    out = tmp_path / "run"
    ml.report.run(nb, parameters={"data_dir": str(data), "patient_id": "x1"}, out=out,
                  html=False)
    assert medlab_main(["report", "verify", str(out)]) == 0
    assert "reproduced" in capsys.readouterr().out

    mask_path = data / "nifti/mask/mask.nii.gz"
    mask = ml.load(mask_path)
    arr = mask.array.copy()
    arr.flat[np.flatnonzero(arr == 0)[0]] = 1  # one more voxel in the mask
    ml.save(ml.Image(arr, mask.affine), mask_path)
    res = ml.report.verify(out)
    assert not res and not res.ok
    d = res.differences
    changed = d[d["kind"] == "input"]
    assert len(changed) == 1 and changed["what"].iloc[0].endswith("mask.nii.gz")
    assert "sha256" in changed["detail"].iloc[0]
    assert "stats.n_voxels" in set(d.loc[d["kind"] == "column", "what"])
    assert "NOT reproduced" in str(res) and "mask.nii.gz" in str(res)
    assert medlab_main(["report", "verify", str(out)]) == 1


def test_verify_needs_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a report run folder.*medlab.report.run"):
        ml.report.verify(tmp_path)


# ---------------------------------------------------------------------------- batch
BATCH_CELLS = [
    "import pandas as pd\nimport medlab as ml\n"
    "idx = ml.cohort.open_index(index_db, read_only=True)\n"
    "mine = idx.cohort(cohort_name).query('patient_id == @patient_id')\n"
    "print('patient', patient_id, 'series', len(mine))",
    "if patient_id == fail_for:\n    raise ValueError(f'failing on purpose for {patient_id}')",
    "image = idx.load_series(mine['series_uid'].iloc[0])\n"
    "name = idx.patients.set_index('patient_id').loc[patient_id, 'patient_name']\n"
    "ml.report.result('hu', pd.DataFrame({'patient_id': [patient_id], 'patient_name': [name],\n"
    "    'mean_hu': [float(image.array.mean())], 'n_slices': [image.array.shape[0]]}))",
]


@pytest.fixture(scope="module")
def cohort_index(tmp_path_factory):
    """Three synthetic CT patients (constant HU 100, 200, 300 - 1024) in a saved cohort."""
    root = tmp_path_factory.mktemp("cohort")
    for k in (1, 2, 3):
        write_dicom_series(root / "dicom" / f"p{k}", np.full((3, 6, 6), 100 * k, np.int16),
                           patient_id=f"SYN00{k}", series_number=k)
    db = root / "index.duckdb"
    with ml.cohort.scan(root / "dicom", db=db, progress=False, workers=1) as index:
        index.save_cohort("ct", "modality = 'CT'")
    return root, db


def test_batch_runs_per_patient_and_reports_a_failure(cohort_index, tmp_path):
    root, db = cohort_index
    nb = _notebook(tmp_path / "per_patient.ipynb", BATCH_CELLS, parameters=(
        "patient_id = None\ncohort_name = None\nindex_db = None\nfail_for = None"))
    res = ml.report.batch(nb, cohort="ct", index=db, by="patient_id", out=tmp_path / "out",
                          parameters={"fail_for": "SYN003"}, workers=2, progress=False)
    runs = res.runs
    assert len(runs) == 3 and not res.ok
    assert list(runs["status"]) == ["ok", "ok", "failed"]  # sorted by patient: SYN003 last
    (error,) = res.failed["error"]
    assert "failing on purpose" in error and "SYN003" not in error
    pseudo = ml.report.Pseudonyms()
    assert pseudo.pseudonym("SYN003") in error
    # the gathered cohort table: both successful runs, run parameters as columns
    table = res.table
    assert len(table) == 2 and set(table["result"]) == {"hu"}
    assert {"run", "cohort_name", "fail_for", "param_patient_id", "mean_hu"} <= set(table.columns)
    assert sorted(table["mean_hu"]) == [100 - 1024, 200 - 1024]
    assert set(table["patient_id"]) == {pseudo.pseudonym("SYN001"), pseudo.pseudonym("SYN002")}
    assert pd.read_parquet(res.table_parquet).shape == table.shape
    assert pd.read_csv(res.table_csv).shape == table.shape
    # no patient ID or name in anything meant to be shown or shared
    shared = [res.table_csv, res.out / "runs.csv"]
    for run_dir in runs["run_dir"]:
        shared += [p for p in Path(run_dir).glob("*") if p.suffix in (".html", ".ipynb", ".json")
                   and p.name != "run.json"]
    assert len(shared) >= 2 + 3 * 2
    for p in shared:
        text = p.read_text()
        assert "SYN00" not in text and "Phantom" not in text, p
    assert not any("SYN00" in str(v) for v in pd.read_parquet(res.table_parquet).to_numpy().ravel())
    ok_html = (root / runs["run_dir"].iloc[0]).glob("*.html")
    assert pseudo.pseudonym("SYN001") in next(ok_html).read_text()


def test_batch_cli_and_errors(cohort_index, tmp_path, capsys):
    _, db = cohort_index
    nb = _notebook(tmp_path / "count.ipynb", [
        "import medlab as ml\n"
        "n = len(ml.cohort.open_index(index_db, read_only=True).cohort(cohort_name))\n"
        "ml.report.result('n', __import__('pandas').DataFrame({'n_series': [n]}))"],
        parameters="cohort_name = ''\nindex_db = ''\nmodality = ''")
    rc = medlab_main(["report", "batch", str(nb), "--cohort", "ct", "--index", str(db),
                      "--by", "modality", "--out", str(tmp_path / "out"), "--workers", "1",
                      "--no-html", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "1 passed, 0 failed" in out
    table = pd.read_csv(tmp_path / "out" / "cohort_results.csv")
    assert table["n_series"].tolist() == [3] and table["modality"].tolist() == ["CT"]
    with pytest.raises(KeyError, match="cannot group cohort 'ct' by 'nope'"):
        ml.report.batch(nb, cohort="ct", index=db, by="nope", out=tmp_path / "x")
    with pytest.raises(KeyError, match="no cohort 'missing'"):
        ml.report.batch(nb, cohort="missing", index=db, out=tmp_path / "x")
    assert medlab_main(["report", "batch", str(nb), "--cohort", "ct", "--index",
                        str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "x")]) == 2
    assert "no cohort index" in capsys.readouterr().err


def test_batch_on_a_dask_cluster(cohort_index, tmp_path):
    from dask.distributed import Client, LocalCluster

    _, db = cohort_index
    nb = _notebook(tmp_path / "p.ipynb", [
        "import pandas as pd, medlab as ml\n"
        "ml.report.result('p', pd.DataFrame({'n': [len(patient_id)]}))"],
        parameters="patient_id = ''")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        res = ml.report.batch(nb, cohort="ct", index=db, out=tmp_path / "out", client=client,
                              html=False, progress=False)
    assert res.ok and len(res.runs) == 3, res.runs["error"].tolist()
    assert res.table["n"].tolist() == [6, 6, 6]  # len('SYN00k'), computed on the cluster


def test_keyed_pseudonyms_are_the_exports(cohort_index, tmp_path):
    _, db = cohort_index
    key = "a-course-secret-of-enough-length"
    with ml.cohort.open_index(db, read_only=True) as index:
        ml.cohort.export(index.instances, tmp_path / "export", key=key,
                         mapping=tmp_path / "mapping.csv", progress=False)
    mapping = pd.read_csv(tmp_path / "mapping.csv", dtype=str)
    patients = mapping[mapping["kind"] == "patient"].set_index("original")["replacement"]
    from_table = ml.report.Pseudonyms.from_mapping(tmp_path / "mapping.csv")
    keyed = ml.report.Pseudonyms(key=key)
    for pid in ("SYN001", "SYN002", "SYN003"):
        assert from_table.pseudonym(pid) == keyed.pseudonym(pid) == patients[pid]
    assert ml.report.Pseudonyms().pseudonym("SYN001") != patients["SYN001"]  # unkeyed differs


# ---------------------------------------------------------------------------- units
def test_pseudonyms_replace_known_identifiers():
    p = ml.report.Pseudonyms()
    p.add_parameters({"patient_id": "AB123", "threshold": "AB123x", "birth_date": "19700102"})
    p.add("Doe^Jane", "name", same_as="AB123")
    text = "AB123 at /data/AB123/ct: Jane Doe, born 1970-01-02; AB1234 is someone else"
    out = p.text(text)
    code = p.pseudonym("AB123")
    assert out == (f"{code} at /data/{code}/ct: {code}, born [birth date removed]; "
                   "AB1234 is someone else")
    table = p.table(pd.DataFrame({"PatientID": ["ZZ9"], "patient_birth_date": ["1980-05-05"],
                                  "note": ["seen AB123"], "value": [1.5]}))
    assert table.iloc[0].tolist() == [p.pseudonym("ZZ9"), "[birth date removed]",
                                      f"seen {code}", 1.5]
    assert p.parameters({"patient_id": "AB123", "n": 3}) == {"patient_id": code, "n": 3}


def test_result_outside_a_run_records_nothing_and_checks_input(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDLAB_REPORT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert ml.report.result("t", pd.DataFrame({"a": [1]})) is None
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="result name 'bad name' is not allowed"):
        ml.report.result("bad name", pd.DataFrame())
    with pytest.raises(TypeError, match=r"expected a pandas DataFrame.*got list"):
        ml.report.result("t", [1, 2])
    monkeypatch.setenv("MEDLAB_REPORT_DIR", str(tmp_path))
    ml.report.result("indexed", pd.Series([1.0, 2.0], index=pd.Index(["a", "b"], name="k"),
                                          name="v"))
    assert pd.read_parquet(tmp_path / "results" / "indexed.parquet").columns.tolist() == ["k", "v"]
    with pytest.raises(ValueError, match="already recorded"):
        ml.report.result("indexed", pd.DataFrame({"a": [1]}))


def test_run_checks_parameters(tmp_path):
    nb = _notebook(tmp_path / "n.ipynb", ["x = 1"], parameters="a = 1")
    with pytest.raises(ValueError, match="'not a name' is not a Python variable name"):
        ml.report.run(nb, parameters={"not a name": 1}, out=tmp_path / "o")
    with pytest.raises(TypeError, match="parameter 'a' is a object"):
        ml.report.run(nb, parameters={"a": object()}, out=tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="no notebook at"):
        ml.report.run(tmp_path / "missing.ipynb", out=tmp_path / "o")
    with pytest.raises(SystemExit):  # argparse: --param wants NAME=VALUE
        medlab_main(["report", "run", str(nb), "--param", "novalue", "--out", "x"])


def test_failed_run_keeps_the_executed_notebook(tmp_path, capsys):
    nb = _notebook(tmp_path / "bad.ipynb", [
        "raise RuntimeError(f'cannot read scan of {patient_id}')"], parameters="patient_id = ''")
    rc = medlab_main(["report", "run", str(nb), "--param", f"patient_id={PATIENT}",
                      "--out", str(tmp_path / "o"), "--no-html"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot read scan" in err and "cell 3" in err and PATIENT not in err
    kept = nbformat.read(tmp_path / "o" / "bad.ipynb", as_version=4)
    assert any(o.get("output_type") == "error" for c in kept.cells for o in c.get("outputs", []))
    assert PATIENT not in (tmp_path / "o" / "bad.ipynb").read_text()


def test_html_export_strips_remote_resources_and_keeps_widget_snapshots(tmp_path, offline_page):
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAEklEQVR4nGP4z8DwHwyBNAMDAOPTBPzu"
           "ZfaiAAAAAElFTkSuQmCC")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("![remote](https://example.org/logo.png) and a "
                                      "[link](https://example.org/paper)"),
        nbformat.v4.new_code_cell("w", outputs=[nbformat.v4.new_output(
            "display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                            "version_minor": 0},
                "image/png": png, "text/plain": "Viewer(...)"})]),
        nbformat.v4.new_code_cell("h", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": (
                "<script src='https://cdn.example.org/lib.js'></script>"
                "<link rel='stylesheet' href='https://fonts.example.org/f.css'>"
                "<div style=\"background: url('https://example.org/bg.png')\">styled</div>"
                "<style>@import url('https://fonts.example.org/x.css'); "
                ".a { background: url(https://example.org/a.png) }</style>")})]),
        nbformat.v4.new_code_cell("v", outputs=[nbformat.v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": {
                "model_id": "def", "version_major": 2, "version_minor": 0},
                "text/plain": "Slider()"})]),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path = ml.report.to_html(nb, tmp_path / "w.html", hide_code=True)
    html = path.read_text()
    assert ml.report.external_references(html) == []
    assert "example.org/paper" in html  # a hyperlink is not a load: kept
    for gone in ("lib.js", "f.css", "bg.png", "x.css", "a.png", "widget-state"):
        assert gone not in html, gone
    assert f"data:image/png;base64,{png}" in html
    assert "no static snapshot" in html
    offline_page.page.goto(path.as_uri(), wait_until="load")
    widths = offline_page.page.evaluate(
        "[...document.images].filter(i => i.src.startsWith('data:')).map(i => i.naturalWidth)")
    assert widths == [2]
    assert offline_page.external == []


def test_pdf_without_chromium_says_how_to_install(tmp_path, monkeypatch):
    page = tmp_path / "p.html"
    page.write_text("<html><body>hi</body></html>")
    monkeypatch.delenv("MEDLAB_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="apt-get install chromium"):
        ml.report.to_pdf(page)


def test_medlab_command_line_entry_point(capsys):
    assert medlab_main(["--version"]) == 0
    assert ml.__version__ in capsys.readouterr().out
    assert medlab_main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err
    assert medlab_main(["report", "execute", "/nonexistent-folder-xyz"]) == 2


def test_run_writes_a_cohort_snapshot_of_the_dicom_it_read(tmp_path, capsys):
    """--snapshot: a manifest of exactly the DICOM files the notebook read, outside the report;
    the provenance ties the report to it by SHA-256; restore fetches the files again."""
    import pydicom

    src = ml.data.path("dcmqi", "segmentations/ct-3slice")
    first = pydicom.dcmread(sorted(src.glob("*.dcm"))[0], stop_before_pixels=True)
    name, pid = str(first.PatientName), str(first.PatientID)  # 'JANCT000', '99000'
    data = tmp_path / "store" / name / "ct"  # a folder named after the patient, as they often are
    shutil.copytree(src, data)
    (tmp_path / "store" / name / "notes.txt").write_text("not read by the notebook")
    nb = _notebook(tmp_path / "dicom.ipynb", [
        "from pathlib import Path\nimport pandas as pd\nimport medlab as ml\n"
        "img = ml.load(Path(data_dir))\n"
        "ml.report.result('shape', pd.DataFrame({'n_slices': [img.shape[0]]}))"],
        parameters="data_dir = ''")
    out, snap = tmp_path / "out", tmp_path / "private" / "cohort.json"
    snap.parent.mkdir()
    with pytest.raises(ValueError, match="outside out="):  # refused before anything runs
        ml.report.run(nb, parameters={"data_dir": str(data)}, out=out,
                      snapshot=out / "cohort.json")
    assert not out.exists()
    assert medlab_main(["report", "run", str(nb), "--param", f"data_dir={data}",
                        "--out", str(out), "--no-html", "--snapshot", str(snap)]) == 0
    assert str(snap) in capsys.readouterr().out
    manifest = json.loads(snap.read_text())
    originals = sorted(data.glob("*.dcm"))
    assert {f["sop_uid"] for f in manifest["files"]} == {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in originals}
    assert {f["sha256"] for f in manifest["files"]} == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in originals}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["cohort_snapshot"]["sha256"] == hashlib.sha256(snap.read_bytes()).hexdigest()
    assert prov["cohort_snapshot"]["n_files"] == 3 and prov["cohort_snapshot"]["n_series"] == 1
    for p in out.rglob("*"):  # the report names no patient, the snapshot is not in it
        if p.is_file() and p.name != "run.json":  # run.json: the private rerun record
            text = p.read_bytes().decode("utf-8", "replace")
            assert name not in text and not re.search(rf"\b{pid}\b", text), p
    restored = ml.cohort.restore(snap, root=tmp_path / "restored", progress=False)
    assert restored.ok and len(restored.files) == 3
    restored.index.close()
