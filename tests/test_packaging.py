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
    checked = 0
    for dep in deps:
        if not isinstance(dep, str) or dep.startswith(("python=", "pip")):
            continue
        name = re.split(r"[<>=!]", dep, maxsplit=1)[0]
        spec = dep[len(name):]
        pypi = CONDA_TO_PYPI.get(name, name).lower()
        assert pypi in pyproject, f"environment.yml lists {name!r}, which pyproject.toml lacks"
        assert Requirement(f"x{spec}").specifier == pyproject[pypi].specifier, (
            f"{name}: environment.yml says {spec!r}, pyproject.toml says "
            f"{str(pyproject[pypi].specifier)!r}")
        checked += 1
    assert checked >= 10


def test_all_extra_covers_every_extra():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # itkwidgets[lab] pins pydantic<2 and adds a Lab extension: users opt in (README says so);
    # dl brings PyTorch (GBs with CUDA): users opt in, .ci/run installs it with a CPU build;
    # course: the teacher's grader (nbgrader), not a user feature
    extras = set(meta["optional-dependencies"]) - {"all", "itkwidgets", "dl", "course"}
    (all_line,) = meta["optional-dependencies"]["all"]
    assert set(re.search(r"\[(.*)\]", all_line).group(1).split(",")) == extras


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
