"""The minimal install keeps its promises: ``pip install medlab`` (no extras), then
``pip install "medlab[plot]"`` (matplotlib, no widgets).

Not part of the main test run (tests/conftest.py ignores this folder, whose environment has
every extra): ``python3 tasks.py minimal`` installs the wheel into a fresh virtual environment,
once without extras and once with ``[plot]``, and runs this module in each with
``MEDLAB_MINIMAL_EXTRAS`` set to what it installed ("" or "plot"). No conftest is loaded; only
pytest and what medlab itself depends on are installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import medlab as ml
from medlab.errors import MissingDependencyError

STAGE = os.environ.get("MEDLAB_MINIMAL_EXTRAS")
if STAGE is None:  # run by hand: judge by what is installed
    STAGE = "plot" if importlib.util.find_spec("matplotlib") else ""
PLOT = STAGE == "plot"

#: packages of the extras that must NOT be installed here (else this test proves nothing)
EXTRA_PACKAGES = {
    "anywidget": "view", "ipywidgets": "view", "ipyniivue": "view", "duckdb": "cohort",
    "highdicom": "segmentation", "skimage": "segmentation", "pynetdicom": "pacs",
    "dicomweb_client": "pacs", "nbclient": "report", "nbformat": "report",
    "playwright": "report", "jupyterlab": "lab", "torch": "dl", "itk": "itk",
}
SAMPLE_CT = "dicom/STS_002/CT/image"


def test_the_installed_wheel_is_tested_in_a_minimal_environment() -> None:
    site = Path(ml.__file__).resolve().parents[1]
    assert site.name == "site-packages", f"medlab imported from {ml.__file__}, not the wheel"
    assert (site / "medlab" / "py.typed").is_file()  # PEP 561: type checkers read medlab's hints
    present = sorted(m for m in EXTRA_PACKAGES if importlib.util.find_spec(m) is not None)
    assert not present, f"packages of extras are installed: {present}"
    assert (importlib.util.find_spec("matplotlib") is not None) == PLOT, (
        f"MEDLAB_MINIMAL_EXTRAS={STAGE!r} but matplotlib is "
        f"{'missing' if PLOT else 'installed'}")


def test_import_medlab_stays_light() -> None:
    code = ("import json, sys, medlab; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"pydicom", "SimpleITK", "pandas", "scipy", "nibabel", "matplotlib"}


@pytest.fixture(scope="module")
def ct() -> ml.Image:
    return ml.load(ml.data.path("sts-cohort-sample", SAMPLE_CT))


def test_dicom_from_the_bundled_samples_matches_its_tags(ct: ml.Image) -> None:
    import pydicom

    folder = ml.data.path("sts-cohort-sample", SAMPLE_CT)
    assert Path(folder).resolve().is_relative_to(Path(ml.__file__).resolve().parent), (
        "the sample should come from the wheel (medlab/data/samples), not MEDLAB_DATA")
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(Path(folder).iterdir())]
    headers.sort(key=lambda h: float(h.ImagePositionPatient[2]))
    first = headers[0]
    assert ct.shape == (len(headers), int(first.Rows), int(first.Columns))
    assert np.allclose(ct.spacing[1:], [float(v) for v in first.PixelSpacing])
    z = [float(h.ImagePositionPatient[2]) for h in headers]
    assert np.isclose(ct.spacing[0], abs(z[1] - z[0]))
    # the first slice's position in LPS mm is the corner of one end of the volume
    corners = {tuple(np.round(ct.affine[:3, 3], 3)),
               tuple(np.round(ct.affine[:3, :3] @ [len(headers) - 1, 0, 0] + ct.affine[:3, 3], 3))}
    assert tuple(np.round([float(v) for v in first.ImagePositionPatient], 3)) in corners
    # Hounsfield units from the rescale tags of one slice (independent of medlab's reader)
    raw = pydicom.dcmread(sorted(Path(folder).iterdir())[0])
    hu = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    assert any(np.allclose(ct.array[k], hu) for k in range(ct.shape[0]))


def test_nifti_round_trip(ct: ml.Image, tmp_path: Path) -> None:
    import nibabel as nib

    path = ml.save(ct, tmp_path / "ct.nii.gz")
    back = ml.load(path)
    assert np.array_equal(back.array, ct.array)
    assert np.allclose(back.affine, ct.affine, atol=1e-4)
    # nibabel's own reading: RAS affine = diag(-1, -1, 1) @ LPS
    nii = nib.load(str(path))
    assert nii.shape == tuple(reversed(ct.shape))  # (column, row, slice) on disk
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ nii.affine
    assert np.allclose(lps[:3, 3], ct.affine[:3, 3], atol=1e-4)


def test_plot_slices(ct: ml.Image) -> None:
    if PLOT:
        fig = ml.view.plot_slices(ct, window="ct_soft_tissue")
        assert type(fig).__name__ == "Figure" and len(fig.axes) >= 3
        assert "matplotlib" in sys.modules
    else:
        with pytest.raises(MissingDependencyError, match=r"matplotlib.*medlab\[plot\]"):
            ml.view.plot_slices(ct)


@pytest.mark.parametrize("name", ["slices", "compare", "curves", "landmarks", "gallery",
                                  "volume", "SliceViewer", "Gallery"])
def test_widgets_name_the_view_extra(name: str, ct: ml.Image) -> None:
    widget = getattr(ml.view, name)  # resolves: a notebook's import line does not fail
    with pytest.raises(MissingDependencyError, match=r'ml\.view\.\w+.*pip install "medlab\[view\]"'):
        widget(ct)


def _feature_calls(tmp_path: Path) -> dict[str, tuple[str, object]]:
    notebook = tmp_path / "n.ipynb"
    notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    folder = ml.data.path("sts-cohort-sample", SAMPLE_CT)
    return {
        "cohort": ("duckdb", lambda: ml.cohort.scan(folder, progress=False)),
        "segmentation": ("highdicom", lambda: ml.segmentation.read_seg(tmp_path / "seg.dcm")),
        "pacs": ("pynetdicom", lambda: ml.cohort.Dimse("127.0.0.1", 104, called_aet="PACS")),
        "report": ("nbformat", lambda: ml.report.run(notebook, out=tmp_path / "report")),
    }


@pytest.mark.parametrize("extra", ["cohort", "segmentation", "pacs", "report"])
def test_optional_features_say_what_is_missing(extra: str, tmp_path: Path) -> None:
    package, call = _feature_calls(tmp_path)[extra]
    with pytest.raises(MissingDependencyError) as info:
        call()
    msg = str(info.value)
    assert package in msg and f'pip install "medlab[{extra}]"' in msg, msg
    assert not (tmp_path / "report").exists()  # nothing written before the check
