"""The printed report as a reader sees it: table headers whole (never one letter per line),
wide tables on the page, no half-empty pages, units as people read them (HU)."""

from __future__ import annotations

import browser
import nbformat
import pandas as pd
import pytest

import medlab as ml

COLUMNS = ["roi_name", "volume_mm3", "voxel_count", "mean", "std", "min", "max", "median", "units",
           "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "bbox_min_x_mm", "bbox_max_x_mm",
           "longest_diameter_mm", "short_axis_mm", "sphericity", "surface_area_mm2"]


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """A report with a wide label-statistics table (units from an SR's UCUM code) and a long
    printed output after half a page of text, exported to HTML and printed to PDF."""
    if browser.chromium_missing():
        pytest.skip(browser.chromium_missing())
    pypdf = pytest.importorskip("pypdf", reason="pip install pypdf")
    rows = [[f"GTV {i}", 12345.6, 1234, 40.1, 12.3, -100, 200, 41.0,
             ml.measure.display_units("[hnsf'U]"), -12.3, 45.6, -789.0, -30.0, 10.0, 55.5, 33.3,
             0.8, 4567.8 + i] for i in range(3)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    long_output = "\n".join(f"line {i:03d} of a long printed output" for i in range(120))
    out = nbformat.v4.new_output
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Layout check\n" + "text " * 300),
        nbformat.v4.new_code_cell("stats", execution_count=1, outputs=[out(
            "execute_result", data={"text/html": table.to_html(), "text/plain": "stats"},
            execution_count=1)]),
        nbformat.v4.new_code_cell("print(log)", execution_count=2, outputs=[out(
            "stream", name="stdout", text=long_output)]),
    ])
    folder = tmp_path_factory.mktemp("layout")
    pdf = ml.report.to_pdf(ml.report.to_html(nb, folder / "layout.html"))
    import shutil

    from lab import artifacts_dir

    shutil.copyfile(pdf, artifacts_dir() / "test_report_layout__printed.pdf")
    return pypdf.PdfReader(pdf)


def test_table_headers_are_whole_words_and_the_table_fits(printed):
    text = printed.pages[0].extract_text()
    lines = text.splitlines()
    # a header wraps at most after its underscores: every part of every header is whole
    for name in COLUMNS:
        for part in name.split("_"):
            assert any(part in line for line in lines), (name, part)
    # no run of one-letter lines (the headers printed one letter per line)
    one_letter = [line for line in lines if len(line.strip()) == 1]
    assert len(one_letter) == 0, one_letter
    # the last column is on the page, not cut at its edge
    for i in range(3):
        assert f"{4567.8 + i:.1f}" in text


def test_units_read_as_people_read_them(printed):
    text = "".join(p.extract_text() for p in printed.pages)
    assert " HU " in text and "hnsf" not in text


def test_long_output_continues_on_the_same_page(printed):
    first = printed.pages[0].extract_text()
    # the output starts below the table on page 1 instead of leaving half of it empty
    assert "line 000 of a long printed output" in first
    assert "line 010 of a long printed output" in first
    assert len(printed.pages) <= 3
