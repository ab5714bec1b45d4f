"""The import-layer contract of medlab, read from the source with ``ast`` (nothing is imported).

Layers, lowest first (a subpackage may import only from lower layers, or from itself)::

    errors, _version                      foundations
    geometry, _optional                   affine maths; the one optional-import helper
    image                                 ml.Image
    _validate, privacy                    input checks; pseudonyms and identifier checks
    diffusion                             gradient tables (io.nifti reads FSL bvec/bval with them)
    io, data                              readers/writers; sample datasets
    filters, measure                      image filters; measurements in physical units
    segmentation, registration            analyses built on measure
    timeseries                            time series (motion correction uses registration)
    cohort                                indexes of DICOM folders, de-identification, PACS
    view                                  figures and widgets (they draw what the layers below compute)
    report                                reproducible reports
    medlab (__init__), __main__           the package namespace and the command line

Exception in the order, by design: ``diffusion`` sits below ``io`` because ``io.nifti`` reads
and writes FSL gradient files with ``medlab.diffusion``'s conversions; ``diffusion`` itself
imports only ``image``, ``errors`` and ``_validate``.

Private modules: a module never imports another subpackage's underscore module (or an
underscore name from it). What one subpackage needs from another goes through the owner's
public namespace or documented internal API (names re-exported by its ``__init__``). The
top-level ``medlab._optional``, ``medlab._validate`` and ``medlab._version`` are package-wide
documented internal API and may be imported from anywhere.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "medlab"

LAYERS: list[set[str]] = [
    {"errors", "_version"},
    {"geometry", "_optional", "_hashing"},
    {"image"},
    {"_validate", "privacy"},
    {"diffusion"},
    {"io", "data"},
    {"filters", "measure"},
    {"segmentation", "registration"},
    {"timeseries"},
    {"cohort"},
    {"view"},
    {"report"},
    {"", "__main__"},  # "" is medlab/__init__.py
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
#: package-wide internal modules at the top level, importable from every subpackage
SHARED_INTERNAL = {"_hashing", "_optional", "_validate", "_version"}

#: Private reach-ins that exist today and are not fixed yet: (importing module, imported
#: module, name). Remove an entry when the reach-in goes; NEVER add one: expose what is needed
#: through the owning subpackage instead (as io.dicom's stages header -> frames -> plan ->
#: pixels are the documented internal API that cohort's header scan uses).
KNOWN_REACH_INS: set[tuple[str, str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> list[tuple[str, str, str, int]]:
    """(importing module, imported module, imported name or "", line) for every medlab import."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        mod = _module_name(path)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target == "medlab" or target.startswith("medlab."):
                    out += [(mod, target, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.Import):
                out += [(mod, alias.name, "", node.lineno) for alias in node.names
                        if alias.name == "medlab" or alias.name.startswith("medlab.")]
    return out


def _top(module: str) -> str:
    """The top-level subpackage or module of a dotted medlab name ("" for medlab itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


IMPORTS = _imports()


def test_the_walk_sees_the_package() -> None:
    """The contract is checked on real imports (a broken walk would pass everything)."""
    tops = {_top(m) for m, *_ in IMPORTS}
    assert {"io", "cohort", "measure", "view", "report", "segmentation"} <= tops
    assert ("medlab.measure.stats", "medlab.image", "Image") in {i[:3] for i in IMPORTS}


def test_every_subpackage_has_a_layer() -> None:
    found = {_top(_module_name(p)) for p in ROOT.rglob("*.py")}
    assert found - set(RANK) == set(), "give the new subpackage a layer in LAYERS"


def test_io_never_imports_cohort_and_measure_never_imports_view() -> None:
    bad = [(m, t, n, line) for m, t, n, line in IMPORTS
           if (_top(m), _top(t)) in {("io", "cohort"), ("measure", "view")}
           or (_top(m) in {"io", "measure"} and _top(t) == "" and n in {"cohort", "view"})]
    assert bad == []


def _targets(target: str, name: str) -> list[str]:
    """The top-level subpackages an import reaches: ``from medlab import view`` reaches view."""
    top = _top(target)
    if top == "" and name and name != "*":
        return [name]
    return [top]


def test_lower_layers_never_import_higher_ones() -> None:
    bad = []
    for mod, target, name, line in IMPORTS:
        src = _top(mod)
        for dst in _targets(target, name):
            if dst != src and dst in RANK and RANK[dst] >= RANK[src]:
                bad.append(f"{mod}:{line} imports {target} {name} ({src} -> {dst})")
    assert bad == []


def _reach_ins() -> set[tuple[str, str, str]]:
    found = set()
    for mod, target, name, _line in IMPORTS:
        src, dst = _top(mod), _top(target)
        if dst == "" and name:
            dst = name  # from medlab import _something
            if dst == src or dst in SHARED_INTERNAL or not _private(dst):
                continue
            found.add((mod, target, name))
            continue
        if dst == src or dst in SHARED_INTERNAL:
            continue
        below = target.split(".")[2:]  # modules below the owning subpackage
        if any(_private(p) for p in below) or _private(name):
            found.add((mod, target, name))
    return found


def test_no_module_imports_another_subpackages_private_module() -> None:
    new = sorted(_reach_ins() - KNOWN_REACH_INS)
    assert new == [], ("import what you need through the owning subpackage's public namespace "
                       "(re-export it in its __init__), not its underscore modules")


def test_known_reach_ins_are_still_there() -> None:
    """A fixed reach-in leaves the known set, so the set only shrinks."""
    assert sorted(KNOWN_REACH_INS - _reach_ins()) == []


@pytest.mark.parametrize("case", [
    ("medlab.view._gallery", "medlab.cohort", "_index"),
    ("medlab.segmentation._grid", "medlab.measure._common", "label_array"),
    ("medlab.report._run", "medlab.data._fetch", "fetch"),
])
def test_reach_in_rule_flags_examples(case: tuple[str, str, str], monkeypatch) -> None:
    """The rule itself: each of these imports would be a reach-in."""
    monkeypatch.setattr(sys.modules[__name__], "IMPORTS", [(*case, 1)])
    assert _reach_ins() == {case}


def test_layer_rule_flags_an_upward_import(monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "IMPORTS",
                        [("medlab.io.nifti", "medlab.cohort", "Index", 1),
                         ("medlab.measure.stats", "medlab", "view", 1)])
    with pytest.raises(AssertionError):
        test_lower_layers_never_import_higher_ones()
    with pytest.raises(AssertionError):
        test_io_never_imports_cohort_and_measure_never_imports_view()
