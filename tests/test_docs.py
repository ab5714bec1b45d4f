"""The documentation site (``python3 tasks.py docs``): it builds with warnings as errors,
documents every public name of every module, has a user guide page per subpackage and
loads nothing from other hosts."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import medlab

SUBPACKAGES = ["io", "data", "cohort", "segmentation", "measure", "registration",
               "timeseries", "view", "report"]


def _public_module_names() -> list[str]:
    """medlab and every module below it with no underscore in its path (independent of the
    docs' own generator)."""
    names = ["medlab"]
    for info in pkgutil.walk_packages(medlab.__path__, "medlab."):
        if not any(p.startswith("_") for p in info.name.split(".")[1:]):
            names.append(info.name)
    return names


def _resolve(path: str):
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for p in parts[1:]:
        obj = getattr(obj, p)
    return obj


def _text(page: Path) -> str:
    """The visible text of an HTML page (code highlighting spans removed)."""
    import html

    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
    return re.sub(r"[ \t]+", " ", text)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built without the notebook pages (those need executed notebooks; the full
    build is ``python3 tasks.py docs``, which CI runs after the tests)."""
    pytest.importorskip("sphinx", reason="the docs tools: pip install -e '.[docs]'")
    pytest.importorskip("numpydoc", reason="the docs tools: pip install -e '.[docs]'")
    pytest.importorskip("myst_nb", reason="the docs tools: pip install -e '.[docs]'")
    pytest.importorskip("pydata_sphinx_theme", reason="the docs tools: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("docs")
    # a copy of docs/ beside links to the rest of the repository: what the build generates
    # (api/, notebooks/) goes into the copy, never into the working tree
    repo = out / "repo"
    repo.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in ("docs", ".git", ".venv", "build"):
            (repo / entry.name).symlink_to(entry)
    shutil.copytree(REPO / "docs", repo / "docs",
                    ignore=shutil.ignore_patterns("notebooks", "medlab*.rst", "__pycache__"))
    env = dict(os.environ, MEDLAB_DOCS_NOTEBOOKS="0", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(repo / "docs"), str(out / "html")],
        capture_output=True, text=True, cwd=repo, env=env, check=False)
    assert proc.returncode == 0, f"docs build failed (warnings are errors):\n{proc.stderr[-4000:]}"
    return out / "html"


@pytest.mark.slow
def test_api_reference_documents_every_public_name(site):
    pages = {p: p.read_text(encoding="utf-8") for p in (site / "api").glob("*.html")}
    ids = set()
    for text in pages.values():
        ids |= set(re.findall(r'<dt class="sig sig-object py[^"]*" id="([^"]+)"', text))
    ids_by_object = {}
    for i in ids:
        try:
            ids_by_object.setdefault(id(_resolve(i)), i)
        except AttributeError:
            pass
    missing, checked = [], 0
    for module_name in _public_module_names():
        module = importlib.import_module(module_name)
        if not hasattr(module, "__all__"):
            continue
        page = pages.get(site / "api" / f"{module_name}.html", "")
        assert page, f"no API page for {module_name}"
        for name in module.__all__:
            checked += 1
            path = f"{module_name}.{name}"
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                ok = f'id="module-{obj.__name__}"' in "".join(pages.values())
            elif path in ids:
                ok = True
            else:
                # a re-export: its module's page names it and links where it is described
                where = ids_by_object.get(id(obj))
                ok = where is not None and path in page and f"#{where}" in page
            if not ok:
                missing.append(path)
    assert checked > 200
    assert not missing, f"not in the API reference: {missing}"


@pytest.mark.slow
def test_site_has_a_guide_page_per_subpackage_with_the_conventions(site):
    for sub in SUBPACKAGES:
        page = site / "guide" / f"{sub}.html"
        assert page.is_file(), f"no user guide page for medlab.{sub}"
        text = _text(page)
        assert "Conventions" in text, f"guide/{sub}: no conventions section"
        assert f"medlab.{sub}" in text  # links into the API reference
    start = _text(site / "getting-started.html")
    for phrase in ("LPS", "(slice, row, column)", "python3 tasks.py lab"):
        assert phrase in start, phrase


@pytest.mark.slow
def test_site_loads_nothing_from_other_hosts(site):
    from medlab.report import external_references

    pages = list(site.rglob("*.html"))
    assert len(pages) > 30
    for page in pages:
        refs = external_references(page.read_text(encoding="utf-8"))
        remote = [r for r in refs if re.search(r"(^|\s)(https?:)?//", r.split(": ", 1)[-1])]
        assert not remote, f"{page.relative_to(site)} loads {remote[:3]}"
    assert not list(site.rglob("*mathjax*")), "MathJax would come from a CDN"


@pytest.mark.slow
def test_docs_reuse_current_executed_notebooks(tmp_path):
    """A copy left by the test suite is reused only while its cells match the notebook."""
    spec = importlib.util.spec_from_file_location("sitegen", REPO / "docs" / "sitegen.py")
    sitegen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sitegen)
    import nbformat

    src = tmp_path / "src"
    ran = tmp_path / "ran"
    src.mkdir()
    ran.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(nb, src / "a.ipynb")
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                  execution_count=1)]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": {}}}}
    nbformat.write(nb, ran / "a.ipynb")
    assert sitegen.is_current(src / "a.ipynb", ran / "a.ipynb")
    out = sitegen.prepare_notebooks(src, ran, tmp_path / "site")  # no kernel needed
    shown = nbformat.read(out[0], as_version=4)
    assert shown.cells[0].outputs[0].data["text/plain"] == "2"
    assert "widgets" not in shown.metadata  # no dead widget state weighing the page down
    changed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 2")])
    changed.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}
    nbformat.write(changed, src / "a.ipynb")  # the notebook changed since: the copy is stale
    assert not sitegen.is_current(src / "a.ipynb", ran / "a.ipynb")
    out = sitegen.prepare_notebooks(src, ran, tmp_path / "site")  # executed again
    assert nbformat.read(out[0], as_version=4).cells[0].outputs[0].data["text/plain"] == "3"
    assert sitegen.is_current(src / "a.ipynb", ran / "a.ipynb")


def test_a_page_that_loads_from_a_cdn_fails_the_build(tmp_path):
    """The build-finished check of docs/conf.py turns a remote script into a failed build."""
    pytest.importorskip("sphinx", reason="the docs tools: pip install -e '.[docs]'")
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'docs')!r})\n"
        "import sitegen\n"
        "def setup(app):\n"
        "    app.connect('build-finished', sitegen.check_offline)\n")
    page = "Title\n=====\n\n.. raw:: html\n\n   <script src=\"{}\"></script>\n"
    (src / "index.rst").write_text(page.format("_static/local.js"))

    def build():
        return subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(src),
                               str(tmp_path / "out")], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)), check=False)

    assert build().returncode == 0
    (src / "index.rst").write_text(page.format("https://cdn.example.org/widgets.js"))
    failed = build()
    assert failed.returncode != 0
    assert "cdn.example.org" in failed.stderr and "offline" in failed.stderr
