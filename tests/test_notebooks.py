"""Every curated notebook executes headless on the bundled data (through the
same runner as ``python3 tasks.py lab --execute``)."""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO

import medlab as ml

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


EXECUTED = REPO / "build" / "executed-notebooks"
"""Where the executed copies stay for the docs site (``python3 tasks.py docs`` renders them
instead of executing every notebook again)."""


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nb = ml.report.run_notebook(path, output=tmp_path / path.name, timeout_s=900)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "error"]
    assert not errors
    # every cell that draws with ml.view shows a picture (not just a Figure repr)
    for cell in nb.cells:
        if cell.cell_type == "code" and "ml.view." in cell.source:
            kinds = {k for o in cell.outputs for k in o.get("data", {})}
            assert "image/png" in kinds, f"no picture from: {cell.source.splitlines()[0]}"
    # the source notebook is untouched (still without outputs)
    import json

    src = json.loads(path.read_text())
    assert all(not c.get("outputs") for c in src["cells"] if c["cell_type"] == "code")
    # it passed: keep the executed copy for the docs
    EXECUTED.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / path.name, EXECUTED / path.name)


def test_runner_reports_failing_cell(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('boom 42')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    p = tmp_path / "bad.ipynb"
    nbformat.write(nb, p)
    with pytest.raises(ml.report.NotebookError, match=r"bad.ipynb: cell 1 .*boom 42"):
        ml.report.run_notebook(p)


def test_runner_injects_parameters(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("patient = 'default'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("result = patient.upper()\nprint(result)"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    p = tmp_path / "p.ipynb"
    nbformat.write(nb, p)
    out = ml.report.run_notebook(p, parameters={"patient": "sts_002"})
    assert out.cells[2].outputs[0]["text"].strip() == "STS_002"
