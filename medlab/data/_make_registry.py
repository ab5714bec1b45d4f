"""Regenerate ``_registry.json`` from a local copy of the shared sample data.

Usage::

    python -m medlab.data._make_registry /path/to/shared/data [-o OUT] [--wheel-dir DIR]

The data folder holds one sub-folder per dataset, each with a ``SOURCE.txt``
naming its upstream origin and licence, and a ``README.md`` with a table of
one-line descriptions.  For every file the registry records its relative path,
size and SHA-256, and a *recipe* telling :func:`medlab.data.fetch` how to get
the very same bytes from the public origin.

How local paths map to upstream paths cannot be parsed reliably from the
free-text ``SOURCE.txt``, so it is spelled out in :data:`RULES` below; the
repository commits and package versions are read from ``SOURCE.txt`` and
checked against the rules, so a changed snapshot fails loudly instead of
producing wrong URLs.  Every data file must match exactly one rule.

The samples bundled in the repository's ``data/`` folder (made by
``data/make_samples.py``) are registered too, as datasets whose files are all
``bundled`` (found in ``data/<name>/``, never downloaded); their description
comes from ``data/README.md`` and their licence from their ``SOURCE.txt``.

``--wheel-dir`` names a folder holding the wheels the registry refers to (as
``pip download --no-deps --only-binary=:all: PKG==VER`` saves them); when
given, every wheel recipe is checked to point at a member with the expected
SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medlab._hashing import sha256_file

__all__ = ["RULES", "Rule", "build_registry", "dumps_registry", "main"]

#: The repository's folder of bundled samples (absent in an installed package).
BUNDLED_ROOT = Path(__file__).resolve().parents[2] / "data"

#: The local-note files: provenance notes written for the snapshot itself.
NOTE_NAMES = ("SOURCE.txt",)


@dataclass(frozen=True)
class Rule:
    """Map local relative paths matching ``pattern`` to an upstream path.

    Parameters
    ----------
    pattern : str
        Regular expression matched (``re.fullmatch``) against the local path
        relative to the dataset folder.
    source : str or None
        Key of the dataset's source; None makes a ``manual`` recipe.
    upstream : str
        ``str.format`` template of the upstream path relative to the source
        base; ``{0}`` is the whole local path, named groups are available.
    decompress : str or None
        ``"zst"`` when the upstream file is zstandard-compressed.
    note : str or None
        Human-readable remark stored with the recipe (for manual recipes:
        where to get the file).
    inferred : bool
        The upstream path was inferred (not spelled out in ``SOURCE.txt``);
        the SHA-256 check still guards the download.
    """

    pattern: str
    source: str | None
    upstream: str = "{0}"
    decompress: str | None = None
    note: str | None = None
    inferred: bool = False


def _gh(repo: str, base: str = "", *, source_of: str | None = None) -> dict[str, Any]:
    # The commit is filled in from SOURCE.txt (of this dataset or of source_of).
    spec: dict[str, Any] = {"kind": "github", "repo": repo, "base": base}
    if source_of:
        spec["source_of"] = source_of
    return spec


def _wheel(package: str, base: str) -> dict[str, Any]:
    # The version is filled in from SOURCE.txt.
    return {"kind": "wheel", "package": package, "base": base}


_FODICOM_BASE = "Tests/FO-DICOM.Tests/Test Data/"

#: Per dataset: sources (key -> spec), rules, optional description override and
#: optional origin prefix (what the upstream is, before "via github ...").
RULES: dict[str, dict[str, Any]] = {
    "breast-dce": {
        "sources": {
            "mirp": _gh("oncoray/mirp", "test/data/dce_images_mr/UCSF-BR-06/image_dce_3dfgre_orig/")
        },
        "rules": [Rule(r"dce_3dfgre_3phases/(?P<n>[^/]+)", "mirp", "{n}")],
        "origin_prefix": "TCIA Breast-MRI-NACT-Pilot UCSF-BR-06 (subset)",
    },
    "ct2d-head": {
        "sources": {"elx": _gh("InsightSoftwareConsortium/ITKElastix", "examples/data/")},
        "rules": [Rule(r"[^/]+\.mha", "elx")],
    },
    "dcm-qa-12bit": {
        "sources": {"qa": _gh("neurolabusc/dcm_qa_12bit")},
        "rules": [Rule(r"In/.+", "qa")],
    },
    "dcm-qa-enhanced": {
        "sources": {"qa": _gh("neurolabusc/dcm_qa_enh")},
        "rules": [Rule(r"In/.+", "qa")],
    },
    "dcm-qa-nih": {
        "sources": {"qa": _gh("neurolabusc/dcm_qa_nih")},
        "rules": [Rule(r"In/.+", "qa")],
    },
    "dcm-qa-orientation": {
        "sources": {"qa": _gh("neurolabusc/dcm_qa", "In/Orientation/")},
        "rules": [Rule(r"In/(?P<r>.+)", "qa", "{r}")],
    },
    "dcm-qa-table": {
        "sources": {"qa": _gh("neurolabusc/dcm_qa_table")},
        "rules": [Rule(r"In/.+", "qa")],
    },
    "dcm-qa-ts": {
        "sources": {"qa": _gh("neurolabusc/dcm_qa_ts")},
        "rules": [Rule(r"In/.+", "qa")],
    },
    "dcmqi": {
        "sources": {"dtf": _gh("robyoung/dicom-test-files", "data/dcmqi/")},
        "rules": [
            Rule(
                r"paramaps/pm-example-slice\.dcm",
                "dtf",
                "paramaps/701-ADCb500/000000.dcm.zst",
                decompress="zst",
                note=(
                    "byte-identical to paramaps/701-ADCb500/000000.dcm (same SHA-256); "
                    "the mirror has no separate pm-example-slice file, so it is rebuilt "
                    "from that slice"
                ),
            ),
            Rule(r".+\.dcm", "dtf", "{0}.zst", decompress="zst"),
        ],
        "origin_prefix": "QIICR dcmqi test data",
    },
    "dipy-dwi": {
        "sources": {"whl": _wheel("dipy", "dipy/data/files/")},
        "rules": [Rule(r"[^/]+", "whl")],
    },
    "fo-dicom": {
        "sources": {"fo": _gh("fo-dicom/fo-dicom", _FODICOM_BASE)},
        "rules": [Rule(r".+", "fo")],
    },
    "ibsi1-ct-phantom": {
        "sources": {"ibsi": _gh("theibsi/data_sets", "ibsi_1_ct_radiomics_phantom/")},
        "rules": [Rule(r"dicom/(image|mask)/[^/]+\.dcm", "ibsi")],
    },
    "ibsi1-phantom": {
        "sources": {
            "ibsi": _gh("theibsi/data_sets", "ibsi_1_digital_phantom/"),
            "mirp": _gh("oncoray/mirp", "test/data/ibsi_1_reference_values/"),
        },
        "rules": [
            Rule(r"nifti/(image|mask)/[^/]+\.nii\.gz", "ibsi"),
            Rule(r"reference_values\.csv", "mirp", "ibsi_1_dig_phantom.csv"),
        ],
    },
    "ibsi2-phantoms": {
        "sources": {"ibsi": _gh("theibsi/data_sets", "ibsi_2_digital_phantom/")},
        "rules": [Rule(r"nifti/[^/]+/(image|mask)/[^/]+\.nii\.gz", "ibsi")],
    },
    "itk-brain-slices": {
        "sources": {"itk": _gh("InsightSoftwareConsortium/ITK", "Examples/Data/")},
        "rules": [Rule(r"[^/]+", "itk")],
    },
    "mni152": {
        "sources": {"whl": _wheel("nilearn", "nilearn/datasets/data/")},
        "rules": [Rule(r"[^/]+\.nii\.gz", "whl")],
    },
    "nibabel-header-only": {
        "sources": {"whl": _wheel("nibabel", "nibabel/nicom/tests/data/")},
        "rules": [Rule(r"[^/]+\.dcm\.gz", "whl")],
        "description": (
            "real Siemens mosaic DWI and Philips enhanced MPRAGE DICOM headers with the "
            "pixel data zeroed (gzip-compressed)"
        ),
    },
    "nibabel-testdata": {
        "sources": {"whl": _wheel("nibabel", "nibabel/tests/data/")},
        "rules": [Rule(r"[^/]+", "whl")],
    },
    "pydicom-extra": {
        "sources": {"whl": _wheel("pydicom-data", "data_store/data/")},
        "rules": [Rule(r"[^/]+\.dcm", "whl")],
        "description": (
            "pydicom-data DICOM samples: UN VRs, enhanced CT/MR, truncation, no file meta, "
            "palette and segmented LUTs, overlays, big-endian"
        ),
    },
    "pydicom-testfiles": {
        "sources": {"whl": _wheel("pydicom", "pydicom/data/test_files/")},
        "rules": [Rule(r".+", "whl")],
        "description": (
            "pydicom's own small test files: transfer syntaxes, codecs, malformed files, "
            "RT/SR/waveform IODs, DICOMDIR trees"
        ),
    },
    "pyradiomics-cases": {
        "sources": {"prad": _gh("AIM-Harvard/pyradiomics", "data/")},
        "rules": [Rule(r"[^/]+\.nrrd", "prad")],
    },
    "sts-cohort": {
        "sources": {"ibsi": _gh("theibsi/data_sets", "ibsi_validation/")},
        "rules": [Rule(r"dicom/STS_\d{3}/(CT|MR_T1|PET)/(image|mask)/[^/]+\.dcm", "ibsi")],
        "origin_prefix": "TCIA Soft-tissue-Sarcoma, IBSI validation export (5 of 51 patients)",
    },
    "us-cine": {
        "sources": {"whl": _wheel("pydicom-data", "data_store/data/")},
        "rules": [Rule(r"color3d_jpeg_baseline\.dcm", "whl")],
    },
    "wg04-codecs": {
        "sources": {"dtf": _gh("robyoung/dicom-test-files", "data/WG04/")},
        "rules": [
            Rule(r"(?P<img>[A-Z]+\d)_(?P<codec>[A-Z0-9]+)\.dcm", "dtf", "{codec}/{img}_{codec}")
        ],
        "origin_prefix": "NEMA DICOM WG-04 compression test set",
    },
    "wg04-modalities": {
        # SOURCE.txt of this folder is cut after "as mirrored in"; the mirror is
        # the one named by ../wg04-codecs/SOURCE.txt.  The J2KR files have the
        # SHA-256 the mirror publishes for data/WG04/J2KR/*; the *_UNC files are
        # its zstandard-compressed REF/ images (decompressed sizes match).
        "sources": {"dtf": _gh("robyoung/dicom-test-files", "data/WG04/", source_of="wg04-codecs")},
        "rules": [
            Rule(
                r"(?P<img>[A-Z]+\d)_UNC\.dcm",
                "dtf",
                "REF/{img}_UNC.zst",
                decompress="zst",
                inferred=True,
                note="mirror inferred: this folder's SOURCE.txt is truncated",
            ),
            Rule(
                r"(?P<img>[A-Z]+\d)_J2KR\.dcm",
                "dtf",
                "J2KR/{img}_J2KR",
                inferred=True,
                note="mirror inferred: this folder's SOURCE.txt is truncated",
            ),
        ],
        "origin_prefix": "NEMA DICOM WG-04 compression test set",
    },
    "xa-mr-cine": {
        "sources": {"fo": _gh("fo-dicom/fo-dicom", _FODICOM_BASE)},
        "rules": [Rule(r"[^/]+\.dcm", "fo")],
    },
}


# ---------------------------------------------------------------------------
# parsing the notes


def _field(text: str, key: str) -> str:
    """Return the ``Key:`` field of a SOURCE.txt, continuation lines joined."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(key + ":"):
            parts = [line[len(key) + 1 :].strip()]
            for nxt in lines[i + 1 :]:
                if not nxt[:1].isspace():
                    break
                parts.append(nxt.strip())
            return " ".join(p for p in parts if p)
    return ""


def _readme_table(readme: Path) -> dict[str, tuple[str, str]]:
    """Map folder name -> (what, good for) from the README table."""
    table: dict[str, tuple[str, str]] = {}
    if not readme.is_file():
        return table
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("folder", "") or set(cells[0]) <= set("-: "):
            continue
        for name in cells[0].split(","):
            table[name.strip()] = (cells[1], cells[2])
    return table


def _github_commits(text: str) -> dict[str, str]:
    # "github owner/repo @ <sha>" or "github owner/repo some/path @ <sha>"
    return dict(re.findall(r"github ([\w.-]+/[\w.-]+)(?: [^@\s]+)? @ ([0-9a-f]{40})", text))


def _wheel_versions(text: str) -> dict[str, str]:
    # "<index> dipy 1.12.1 (wheel)", "<index> nibabel 5.4.2 wheel"
    return dict(re.findall(r"\b([A-Za-z0-9_.-]+) (\d[0-9A-Za-z.]*) \(?wheel", text))


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------
# building


def _resolve_sources(name: str, spec: dict[str, Any], notes: dict[str, str]) -> dict[str, Any]:
    sources: dict[str, Any] = {}
    for key, src in spec["sources"].items():
        src = dict(src)
        text = notes[src.pop("source_of", name)]
        if src["kind"] == "github":
            commits = _github_commits(text)
            if src["repo"] not in commits:
                raise ValueError(f"{name}: SOURCE.txt names no commit of github {src['repo']}")
            src["commit"] = commits[src["repo"]]
        else:
            versions = _wheel_versions(text)
            if src["package"] not in versions:
                raise ValueError(f"{name}: SOURCE.txt names no wheel version of {src['package']}")
            src["version"] = versions[src["package"]]
        sources[key] = src
    return sources


def _origin(spec: dict[str, Any], sources: dict[str, Any]) -> str:
    parts = []
    for src in sources.values():
        if src["kind"] == "github":
            parts.append(f"github {src['repo']} @ {src['commit'][:12]}, {src['base'] or '/'}")
        else:
            parts.append(f"Python package {src['package']} {src['version']} (wheel), {src['base']}")
    origin = "; ".join(parts)
    if spec.get("origin_prefix"):
        origin = f"{spec['origin_prefix']}, via {origin}"
    return origin


def _recipe(rel: str, rules: list[Rule], name: str) -> Any:
    if Path(rel).name in NOTE_NAMES and "/" not in rel:
        return "note"
    for rule in rules:
        m = re.fullmatch(rule.pattern, rel)
        if not m:
            continue
        if rule.source is None:
            return {"kind": "manual", "note": rule.note or "no public origin recorded"}
        upstream = rule.upstream.format(rel, **m.groupdict())
        if upstream == rel and not (rule.decompress or rule.note or rule.inferred):
            return rule.source
        out: dict[str, Any] = {"src": rule.source}
        if upstream != rel:
            out["path"] = upstream
        if rule.decompress:
            out["decompress"] = rule.decompress
        if rule.inferred:
            out["inferred"] = True
        if rule.note:
            out["note"] = rule.note
        return out
    raise ValueError(f"{name}: no rule for {rel!r}; add one to RULES (or a manual rule)")


def build_registry(
    root: Path, *, wheel_dir: Path | None = None, bundled: Path | None = BUNDLED_ROOT
) -> dict[str, Any]:
    """Scan ``root`` and return the registry as a JSON-ready dict.

    Parameters
    ----------
    root : Path
        The shared data folder (one sub-folder per dataset).
    wheel_dir : Path, optional
        Folder with the referenced wheels; when given, wheel recipes are
        checked against the wheels' members.
    bundled : Path or None, default :data:`BUNDLED_ROOT`
        The folder of bundled samples (one sub-folder per sample, each with a
        ``SOURCE.txt``); None or a missing folder registers none.

    Returns
    -------
    dict
        ``{"format": 1, "readme": {...}, "datasets": {name: {...}}}``.

    Raises
    ------
    ValueError
        A folder has no rules, a file matches no rule, or SOURCE.txt does not
        name the commit/version the rules expect.
    """
    root = Path(root)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = sorted(set(folders) - set(RULES))
    if unknown:
        raise ValueError(f"no RULES for dataset folder(s): {', '.join(unknown)}")
    notes = {n: (root / n / "SOURCE.txt").read_text(encoding="utf-8") for n in folders}
    readme = _readme_table(root / "README.md")

    registry: dict[str, Any] = {"format": 1}
    if (root / "README.md").is_file():
        readme_path = root / "README.md"
        registry["readme"] = ["README.md", readme_path.stat().st_size, sha256_file(readme_path), "note"]
    datasets: dict[str, Any] = {}
    for name in folders:
        spec = RULES[name]
        folder = root / name
        sources = _resolve_sources(name, spec, notes)
        what, use = readme.get(name, ("", ""))
        entry: dict[str, Any] = {
            "description": _one_line(spec.get("description") or what),
            "use": _one_line(use),
            "licence": _one_line(_field(notes[name], "License")),
            "origin": _origin(spec, sources),
            "sources": sources,
        }
        rows = []
        for p in sorted(folder.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(folder).as_posix()
            rows.append([rel, p.stat().st_size, sha256_file(p), _recipe(rel, spec["rules"], name)])
        entry["files"] = rows
        datasets[name] = entry
    if bundled is not None and Path(bundled).is_dir():
        datasets.update(_bundled_datasets(Path(bundled), set(datasets)))
    registry["datasets"] = dict(sorted(datasets.items()))
    if wheel_dir is not None:
        _check_wheels(registry, Path(wheel_dir))
    return registry


def _bundled_datasets(root: Path, taken: set[str]) -> dict[str, Any]:
    """Register the sample folders of ``root`` (every file a ``bundled`` recipe)."""
    readme = _readme_table(root / "README.md")
    out: dict[str, Any] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._"):
        name = folder.name
        if name in taken:
            raise ValueError(f"bundled sample {name!r} has the name of a shared dataset")
        note = (folder / "SOURCE.txt").read_text(encoding="utf-8")
        derived = re.search(r"medlab dataset '([^']+)'", note)
        what, use = readme.get(name, ("", ""))
        out[name] = {
            "description": _one_line(what),
            "use": _one_line(use),
            "licence": _one_line(_field(note, "License")),
            "origin": f"bundled with medlab (data/{name}/ in the repository)"
            + (f", derived from dataset '{derived.group(1)}' by data/make_samples.py"
               if derived else ""),
            "sources": {"repo": {"kind": "bundled"}},
            "files": [
                [p.relative_to(folder).as_posix(), p.stat().st_size, sha256_file(p), "repo"]
                for p in sorted(folder.rglob("*"))
                if p.is_file()
            ],
        }
    return out


def _check_wheels(registry: dict[str, Any], wheel_dir: Path) -> None:
    cache: dict[tuple[str, str], dict[str, str]] = {}
    for name, ds in registry["datasets"].items():
        for rel, _size, sha, recipe in ds["files"]:
            key = recipe if isinstance(recipe, str) else recipe.get("src")
            src = ds["sources"].get(key) if key else None
            if not src or src["kind"] != "wheel":
                continue
            wkey = (src["package"], src["version"])
            if wkey not in cache:
                stem = src["package"].replace("-", "_")
                found = sorted(wheel_dir.glob(f"{stem}-{src['version']}-*.whl"))
                if not found:
                    raise ValueError(f"no wheel for {wkey} in {wheel_dir}")
                with zipfile.ZipFile(found[0]) as z:
                    cache[wkey] = {
                        i.filename: hashlib.sha256(z.read(i)).hexdigest()
                        for i in z.infolist()
                        if not i.is_dir()
                    }
            member = src["base"] + (recipe.get("path", rel) if isinstance(recipe, dict) else rel)
            if cache[wkey].get(member) != sha:
                raise ValueError(f"{name}/{rel}: wheel member {member} missing or different")


def dumps_registry(registry: dict[str, Any]) -> str:
    """Serialise a registry dict compactly: one line per file, stable order."""
    out = ["{", f' "format": {json.dumps(registry["format"])},']
    if "readme" in registry:
        out.append(f' "readme": {json.dumps(registry["readme"])},')
    out.append(' "datasets": {')
    names = list(registry["datasets"])
    for i, name in enumerate(names):
        ds = registry["datasets"][name]
        out.append(f"  {json.dumps(name)}: {{")
        for key in ("description", "use", "licence", "origin"):
            out.append(f"   {json.dumps(key)}: {json.dumps(ds[key], ensure_ascii=False)},")
        out.append('   "sources": {')
        skeys = list(ds["sources"])
        for j, skey in enumerate(skeys):
            comma = "," if j < len(skeys) - 1 else ""
            out.append(f"    {json.dumps(skey)}: {json.dumps(ds['sources'][skey])}{comma}")
        out.append("   },")
        out.append('   "files": [')
        for j, row in enumerate(ds["files"]):
            comma = "," if j < len(ds["files"]) - 1 else ""
            out.append(f"    {json.dumps(row, ensure_ascii=False)}{comma}")
        out.append("   ]")
        out.append("  }" + ("," if i < len(names) - 1 else ""))
    out.append(" }")
    out.append("}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m medlab.data._make_registry", description=__doc__.splitlines()[0]
    )
    parser.add_argument("root", type=Path, help="shared data folder (one sub-folder per dataset)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path(__file__).with_name("_registry.json"),
        help="registry file to write (default: the package's _registry.json)",
    )
    parser.add_argument("--wheel-dir", type=Path, help="check wheel recipes against these wheels")
    parser.add_argument(
        "--bundled",
        type=Path,
        default=BUNDLED_ROOT,
        help="folder of bundled samples (default: the repository's data/)",
    )
    args = parser.parse_args(argv)
    registry = build_registry(args.root, wheel_dir=args.wheel_dir, bundled=args.bundled)
    text = dumps_registry(registry)
    args.output.write_text(text, encoding="utf-8")
    n = sum(len(d["files"]) for d in registry["datasets"].values())
    sys.stderr.write(
        f"wrote {args.output}: {len(registry['datasets'])} datasets, {n} files, "
        f"{len(text.encode()) / 1024:.0f} KiB\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
