"""The project's promises about itself: environment files agree, notebooks are clean,
the README's commands exist."""

from __future__ import annotations

import json
import re
import tomllib

import yaml
from conftest import REPO
from packaging.requirements import Requirement

# conda-forge name -> PyPI name where they differ
CONDA_TO_PYPI = {"simpleitk": "SimpleITK"}


def _pyproject_requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for items in meta["optional-dependencies"].values():
        reqs += [r for r in items if not r.startswith("medlab[")]
    out = {}
    for r in reqs:
        req = Requirement(r)
        out[req.name.lower()] = req
    return out


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[all]" in pip_section, "conda users must get medlab with all extras"
    pyproject = _pyproject_requirements()
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    user = _expand("all", _extras()) | {Requirement(r).name.lower() for r in core}
    checked = 0
    for dep in deps:
        if not isinstance(dep, str) or dep.startswith(("python=", "pip")):
            continue
        name = re.split(r"[<>=!]", dep, maxsplit=1)[0]
        spec = dep[len(name):]
        pypi = CONDA_TO_PYPI.get(name, name).lower()
        assert pypi in pyproject, f"environment.yml lists {name!r}, which pyproject.toml lacks"
        assert pypi in user, f"environment.yml lists {name!r}, which is not in medlab[all]"
        assert Requirement(f"x{spec}").specifier == pyproject[pypi].specifier, (
            f"{name}: environment.yml says {spec!r}, pyproject.toml says "
            f"{str(pyproject[pypi].specifier)!r}")
        checked += 1
    assert checked >= 10


# extras a user opts into, each for a reason the README gives (tested below)
NOT_IN_ALL = {
    "test": "tools and reference peers only the tests use",
    "docs": "Sphinx and friends, for python3 tasks.py docs",
    "course": "the teacher's grader (nbgrader) for course/",
    "itk": "1.6 GB, only for Image.to_itk/from_itk",
    # itkwidgets[lab] pins pydantic<2, adds a Lab extension and loads from a CDN
    "itkwidgets": "an optional 3D backend that needs a network",
    # PyTorch, MONAI, nnU-Net: GBs (CUDA builds); .ci/run installs a CPU build
    "dl": "deep-learning models, PyTorch is large",
}


def _extras() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]


def _expand(extra: str, extras: dict[str, list[str]]) -> set[str]:
    """Every requirement name an extra brings in (following medlab[...] references)."""
    names = set()
    for item in extras[extra]:
        if item.startswith("medlab["):
            for sub in re.search(r"\[(.*)\]", item).group(1).split(","):
                names |= _expand(sub.strip(), extras)
        else:
            names.add(Requirement(item).name.lower())
    return names


def test_all_extra_is_every_user_feature_and_no_tooling():
    extras = _extras()
    (all_line,) = extras["all"]
    in_all = set(re.search(r"\[(.*)\]", all_line).group(1).split(","))
    assert in_all == set(extras) - {"all"} - set(NOT_IN_ALL), (
        "a new extra belongs in [all] (or in NOT_IN_ALL with its reason in the README)")
    user = _expand("all", extras)
    only_tests = {"pytest", "ruff", "pytest-xdist", "itk-elastix", "pyradiomics-bhklab",
                  "medpy", "dicognito", "itkwidgets", "itk", "sphinx", "mypy", "antspyx"}
    # (pypdf is a user dependency: a report's final identifier check reads the PDF's text)
    assert not user & only_tests, f"[all] pulls in tooling: {sorted(user & only_tests)}"
    # the test command gets everything the user gets plus ITK for the to_itk edge and the
    # docs tools (tests/test_docs.py builds the site)
    assert {"itk", "pytest", "ruff", "mypy", "sphinx", "myst-nb"} <= _expand("test", extras)


def test_readme_names_the_extras_outside_all():
    text = (REPO / "README.md").read_text()
    for extra in NOT_IN_ALL:
        assert f"[{extra}]" in text or f",{extra}]" in text, f"README does not mention [{extra}]"


def test_tasks_install_the_right_extras():
    import ast

    tree = ast.parse((REPO / "tasks.py").read_text())
    calls = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"):
                    calls[fn.name] = ast.literal_eval(node.args[0]) if node.args else ("all",)
    assert calls["lab"] == ("all",)
    assert calls["test"] == ("all", "test")
    assert calls["docs"] == ("all", "docs")


def test_dir_shows_every_subpackage_and_import_stays_lazy():
    import subprocess
    import sys

    code = (
        "import json, sys, rlcompleter, medlab as ml\n"
        "lazy = ('view', 'cohort', 'segmentation', 'registration', 'timeseries')\n"
        "assert not [m for m in lazy if f'medlab.{m}' in sys.modules], 'import medlab got heavy'\n"
        "names = set(dir(ml))\n"
        "missing = [m for m in ml.__all__ if m not in names]\n"
        "assert not missing, missing\n"
        "assert not [m for m in lazy if f'medlab.{m}' in sys.modules], 'dir() imported'\n"
        "c = rlcompleter.Completer({'ml': ml})\n"
        "hits = {c.complete('ml.', i) for i in range(200)} - {None}\n"
        # Jupyter's completer (IPython), with and without jedi
        "from IPython.testing.globalipapp import start_ipython\n"
        "from IPython.core.completer import provisionalcompleter\n"
        "ip = start_ipython()\n"
        "ip.run_cell('import medlab as ml')\n"
        "for jedi in (True, False):\n"
        "    ip.Completer.use_jedi = jedi\n"
        "    with provisionalcompleter():\n"
        "        hits |= {'ml.' + x.text.lstrip('.') for x in ip.Completer.completions('ml.', 3)}\n"
        "print(json.dumps(sorted(hits)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    completed = json.loads(out.stdout.strip().splitlines()[-1])
    for sub in ("view", "cohort", "segmentation", "registration", "timeseries", "io", "data",
                "measure", "report", "filters"):
        assert any(h.rstrip("(") == f"ml.{sub}" for h in completed), (sub, completed)


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{nb_path.name} has outputs; clear them"
                assert cell.get("execution_count") is None, nb_path.name


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["python3 tasks.py lab", "python3 tasks.py test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 tasks.py test" in ci
    # CI builds the docs after the tests, which leave the executed notebooks the docs reuse
    assert ci.index("python3 tasks.py test") < ci.index("python3 tasks.py docs")


def test_plot_extra_is_the_static_figures_without_widgets():
    """``[plot]`` (matplotlib) is what the static figures need; ``[view]`` adds the widgets on top
    (tests/minimal/ checks both in a real minimal install)."""
    extras = _extras()
    plot, view = _expand("plot", extras), _expand("view", extras)
    assert "matplotlib" in plot
    assert not plot & {"anywidget", "ipywidgets", "ipyniivue"}
    assert plot < view and {"anywidget", "ipywidgets"} <= view
