"""One report run: execute a notebook with parameters, record, de-identify, export.

A run folder holds::

    <stem>.ipynb        the executed notebook, provenance block appended (de-identified)
    <stem>.html         one self-contained HTML file (no network needed)
    <stem>.pdf          optional: Chromium's print of the HTML
    provenance.json     the provenance record (de-identified)
    results/*.parquet   the result tables the notebook recorded (as computed)
    run.json            what verify needs to rerun: the notebook's path, the parameters as
                        given and the input files' paths and SHA-256 -- it can hold patient
                        identifiers: do not hand it out with the report
"""

from __future__ import annotations

import datetime as dt
import json
import keyword
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import IdentifierLeakError
from ..privacy import ENV_CONTEXT, Pseudonyms, identifier_kind, learned_in_kernel, scan_files
from ._export import to_html, to_pdf
from ._provenance import _data_roots, collect, hash_inputs, read_tracked, sha256_file, to_markdown
from ._results import ENV_RUN_DIR, RESULTS_FOLDER, read_results
from ._runner import NotebookError, require_notebook_tools, run_notebook
from ._track import INPUTS_FILE

__all__ = ["PROVENANCE_FILE", "RUN_FILE", "WITHHELD_FOLDER", "RunResult", "check_outputs",
           "check_parameters", "run"]

RUN_FILE = "run.json"
PROVENANCE_FILE = "provenance.json"
#: where the outputs of a run that failed the identifier check are moved (not to be shared)
WITHHELD_FOLDER = ".withheld"
_STARTUP = ("import medlab.report._track as _medlab_track; _medlab_track.install(); "
            "del _medlab_track")


@dataclass(repr=False)
class RunResult:
    """What :func:`run` produced.

    Attributes
    ----------
    out : Path
        The run folder.
    notebook : Path
        The executed notebook (with the provenance block, de-identified).
    html, pdf : Path or None
        The exported report files.
    results : dict of str -> DataFrame
        The result tables the notebook recorded with :func:`medlab.report.result`, as
        written to ``results/`` (identifiers replaced by pseudonyms unless ``show_phi``).
    provenance : dict
        The provenance record (as in ``provenance.json``).
    parameters : dict
        The parameters as given (they may hold identifiers).
    run_time_s : float
        Execution time of the notebook.
    n_scanned : int
        Output files the final identifier check searched (0 with ``show_phi``).
    """

    out: Path
    notebook: Path
    html: Path | None
    pdf: Path | None
    results: dict[str, pd.DataFrame] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    run_time_s: float = 0.0
    n_scanned: int = 0

    def __repr__(self) -> str:
        tables = ", ".join(f"{k} ({len(v)} rows)" for k, v in self.results.items()) or "none"
        return (f"RunResult(out={str(self.out)!r}, results: {tables}, "
                f"html={self.html.name if self.html else None!r}, "
                f"pdf={self.pdf.name if self.pdf else None!r}, run_time_s={self.run_time_s:.1f})")


def _plain(name: str, value: Any) -> Any:
    """A parameter value as a JSON-compatible Python literal."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalars
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"parameter {name!r} is {value!r}; pass a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(name, v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(name, v) for k, v in value.items()}
    raise TypeError(
        f"parameter {name!r} is a {type(value).__name__}; parameters must be numbers, strings, "
        "booleans, None, paths, or lists/dicts of them (they are written into the notebook and "
        "the provenance record)")


def check_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate run parameters: identifier names, JSON-compatible values."""
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a mapping of name -> value, got "
                        f"{type(parameters).__name__}")
    out = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"parameter name {name!r} is not a Python variable name; the "
                             "notebook receives each parameter as `name = value`")
        out[name] = _plain(name, value)
    return out


def _path_parameters(parameters: Mapping[str, Any]) -> list[Path]:
    found = []
    for value in parameters.values():
        for v in (value if isinstance(value, list) else [value]):
            if isinstance(v, str) and v and len(v) < 4096 and ("/" in v or os.sep in v):
                p = Path(v).expanduser()
                if p.exists():
                    found.append(p)
    return found


def _notebook_path(notebook: str | os.PathLike) -> Path:
    path = Path(notebook).expanduser()
    if path.suffix != ".ipynb":
        raise ValueError(f"{str(path)!r} is not a notebook; pass an .ipynb file")
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {str(path)!r}")
    return path.resolve()


def _prepare_out(out: str | os.PathLike) -> Path:
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out={str(out)!r} is a file; pass a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / RESULTS_FOLDER, ignore_errors=True)  # never mix in an older run's
    shutil.rmtree(out / WITHHELD_FOLDER, ignore_errors=True)
    (out / INPUTS_FILE).unlink(missing_ok=True)
    return out


def _default_parameters(path: Path) -> dict[str, Any]:
    """The literal defaults of the notebook's ``parameters`` cell (they may name patients)."""
    import ast

    import nbformat

    out: dict[str, Any] = {}
    for cell in nbformat.read(str(path), as_version=4).cells:
        if cell.cell_type != "code" or "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                try:
                    out[node.targets[0].id] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
    return out


def _relative_path(value: str, *, folder: bool = False) -> str:
    """A path as shown in a report: relative to its dataset root (``<dataset>/...``).

    Paths outside every data root keep their form (their identifying components
    are replaced afterwards); with ``folder=True`` they are named by their last
    component only.
    """
    try:
        p = Path(value).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return value
    for root, _label in _data_roots():
        if p.is_relative_to(root) and p != root:
            return p.relative_to(root).as_posix()
    return p.name if folder else value


def _relative_paths(parameters: Mapping[str, Any]) -> dict[str, Any]:
    found = {str(p) for p in _path_parameters(parameters)}

    def one(v: Any) -> Any:
        if isinstance(v, str) and v in found:
            return _relative_path(v)
        if isinstance(v, list):
            return [one(x) for x in v]
        return v

    return {k: one(v) for k, v in parameters.items()}


def _show_parameters(nb: Any, shown: Mapping[str, Any]) -> None:
    """The injected parameters cell as shown in the report (pseudonyms, relative paths)."""
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = "# injected parameters\n" + "\n".join(
                f"{k} = {v!r}" for k, v in shown.items())


def _write_result(out: Path, name: str, table: pd.DataFrame) -> pd.DataFrame:
    target = out / RESULTS_FOLDER / f"{name}.parquet"
    tmp = target.with_name(target.name + ".tmp")
    try:
        table.to_parquet(tmp, index=False)
    except Exception:  # an identifier column of mixed types: store it as text
        table = table.copy()
        for c in table.columns:
            if identifier_kind(c) or pd.api.types.is_object_dtype(table[c]):
                table[c] = table[c].map(lambda v: v if v is None or pd.isna(v) else str(v))
        table.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return pd.read_parquet(target)


def check_outputs(out: str | os.PathLike, identifiers: Pseudonyms, *,
                  files: list[Path] | None = None) -> int:
    """The final check of a report: no known identifier in anything meant to be shared.

    Searches the run folder's HTML (as text), PDF (its text), notebook,
    ``provenance.json`` and result tables (or the given ``files``), and their
    names, for every identifier ``identifiers`` knows
    (:func:`medlab.privacy.scan_files`).
    ``run.json`` (the private rerun record) is not searched.

    Returns
    -------
    int
        The number of files searched.

    Raises
    ------
    medlab.errors.IdentifierLeakError
        An identifier was found: the message says where (the identifier is
        masked); the run's shareable outputs are moved to
        ``<out>/.withheld/`` so that nothing identifying is handed out.
    """
    out = Path(out)
    if files is None:
        files = sorted(p for p in out.rglob("*") if p.is_file()
                       and p.name not in (RUN_FILE, INPUTS_FILE)
                       and WITHHELD_FOLDER not in p.relative_to(out).parts)
    findings = scan_files(files, identifiers, root=out)
    if findings:
        withheld = out / WITHHELD_FOLDER
        for p in files:
            target = withheld / p.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)
        lines = [str(f) for f in findings]
        raise IdentifierLeakError(
            f"the report would show {len(findings)} patient identifier(s); it was withheld "
            f"(moved to {withheld}). Found: " + "; ".join(lines[:10])
            + (f"; and {len(lines) - 10} more" if len(lines) > 10 else "")
            + ". Show patients with ml.privacy.display_name(...) in titles and prints, or pass "
            "show_phi=True for an identified report", findings=lines)
    return len(files)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def _snapshot_path(snapshot: str | os.PathLike | None, out: str | os.PathLike, *,
                   show_phi: bool) -> Path | None:
    """Where the cohort snapshot goes; refused inside a de-identified report folder."""
    if snapshot is None:
        return None
    if not isinstance(snapshot, (str, os.PathLike)):
        raise TypeError(f"snapshot must be a path for the manifest (JSON), got "
                        f"{type(snapshot).__name__}")
    dest = Path(snapshot).expanduser().resolve()
    if not show_phi and dest.is_relative_to(Path(out).expanduser().resolve()):
        raise ValueError(
            f"the cohort snapshot {str(dest)!r} would lie in the report folder, and it names "
            "files and UIDs of the source data; write it outside out= (the report records its "
            "SHA-256), or pass show_phi=True for an identified report")
    return dest


def _write_snapshot(files: list[str], dest: Path) -> dict[str, Any]:
    """A cohort snapshot of the DICOM files among ``files``; its summary for the provenance."""
    from ..cohort import scan
    from ..cohort import snapshot as cohort_snapshot

    present = sorted({str(Path(f).resolve()) for f in files if Path(f).is_file()})
    index = scan(present, progress=False, workers=1) if present else None
    try:
        if index is None or not len(index.sql("SELECT 1 FROM instances LIMIT 1")):
            return {"n_series": 0, "n_files": 0, "sha256": None,
                    "note": "the notebook read no DICOM file; no snapshot written"}
        root = os.path.commonpath([str(Path(p).parent) for p in
                                   index.sql("SELECT path FROM instances")["path"]])
        manifest = cohort_snapshot(index, dest, root=root, progress=False)
    finally:
        if index is not None:
            index.close()
    return {"format": manifest["format"], "n_series": len(manifest["series"]),
            "n_files": len(manifest["files"]), "sha256": sha256_file(dest)}


def run(
    notebook: str | os.PathLike,
    *,
    parameters: Mapping[str, Any] | None = None,
    out: str | os.PathLike,
    html: bool = True,
    pdf: bool = False,
    hide_code: bool = False,
    show_phi: bool = False,
    pseudonyms: Any = None,
    key: str | bytes | None = None,
    timeout_s: float = 900,
    kernel_name: str = "python3",
    cwd: str | os.PathLike | None = None,
    snapshot: str | os.PathLike | None = None,
) -> RunResult:
    """Run a notebook with parameters into a report folder.

    The notebook is executed headless (its ``parameters`` cell overridden,
    papermill's convention), its :func:`~medlab.report.result` tables are
    recorded, a provenance block is appended, identifiers are replaced by
    pseudonyms, and the executed notebook is exported to a self-contained
    HTML file and optionally to PDF.

    Parameters
    ----------
    notebook : path
        The ``.ipynb`` to run; it is never modified.
    parameters : mapping, optional
        Name -> value (numbers, strings, booleans, None, paths, lists/dicts).
    out : path
        The run folder (created; an older run's results in it are replaced).
    html, pdf : bool
        Export to HTML (default) and/or PDF (needs Chromium and Playwright).
    hide_code : bool
        Results-only report: code cells' inputs left out of HTML and PDF.
    show_phi : bool
        An identified report: show patient identifiers as they are. By default
        (False) every identifier is replaced by its pseudonym where it is made
        (tables shown, figure text, medlab titles, :func:`medlab.privacy.display_name`)
        and in every output, and a final check (:func:`check_outputs`) fails the
        run if one is left.
    pseudonyms : path, DataFrame or dict, optional
        The mapping table of :func:`medlab.cohort.export` (or
        original -> pseudonym pairs); identifiers not in it get hash-based
        pseudonyms.
    key : str or bytes, optional
        Secret for keyed hash pseudonyms (the export's key gives the
        export's pseudonyms).
    timeout_s : float
        Per-cell timeout.
    kernel_name : str
    cwd : path, optional
        The kernel's working directory (default: the notebook's folder).
    snapshot : path, optional
        Also write a cohort snapshot (:func:`medlab.cohort.snapshot`) of the
        DICOM files the notebook read to this JSON file, so that
        :func:`medlab.cohort.restore` can fetch and check the report's data
        again. The manifest names files and UIDs, so it must lie outside
        ``out`` unless ``show_phi``; the report's provenance records its
        SHA-256 and size (``cohort_snapshot``), which ties the shared report to
        the private manifest.

    Returns
    -------
    RunResult

    Raises
    ------
    medlab.report.NotebookError
        A cell failed; the message names the cell and the error. The executed
        notebook (up to the failure) is still written to ``out``.
    FileNotFoundError, ValueError, TypeError
        Missing notebook, invalid parameters or ``out``.
    medlab.errors.MissingDependencyError
        ``pdf=True`` without Chromium or Playwright.
    medlab.errors.IdentifierLeakError
        A patient identifier is left in an output (see :func:`check_outputs`).
    """
    require_notebook_tools("medlab.report.run")
    path = _notebook_path(notebook)
    params = check_parameters(parameters)
    snapshot_path = _snapshot_path(snapshot, out, show_phi=show_phi)
    out = _prepare_out(out)
    pseudo = Pseudonyms.from_mapping(pseudonyms, key=key)
    pseudo.add_parameters(_default_parameters(path))
    pseudo.add_parameters(params)
    env = {**os.environ, ENV_RUN_DIR: str(out)}
    started = dt.datetime.now().astimezone()
    error: NotebookError | None = None
    with tempfile.TemporaryDirectory(prefix="medlab-privacy-") as private:
        # the kernel's privacy context: key, mapping and known identifiers (private, removed
        # after the run), so that tables and figure text are pseudonymised where they are made
        context = Path(private) / "context.json"
        context.write_text(json.dumps({**pseudo.to_context(), "show_phi": show_phi}), "utf-8")
        context.chmod(0o600)
        env[ENV_CONTEXT] = str(context)
        try:
            nb = run_notebook(path, parameters=params, timeout_s=timeout_s,
                              kernel_name=kernel_name, cwd=cwd, env=env, startup=_STARTUP)
        except NotebookError as exc:
            error, nb = exc, exc.notebook
        pseudo.update(learned_in_kernel(context))  # e.g. the patients of an index it opened
    finished = dt.datetime.now().astimezone()
    tracked = read_tracked(out)
    inputs = hash_inputs(tracked, extra=_path_parameters(params))
    (out / INPUTS_FILE).unlink(missing_ok=True)
    results = read_results(out)
    if not show_phi:
        pseudo.add_dicom_files(tracked)
        for table in results.values():
            pseudo.add_table(table)
        pseudo.add_path_components([*tracked, *_path_parameters(params)])
        results = {name: _write_result(out, name, pseudo.table(table))
                   for name, table in results.items()}
    _write_json(out / RUN_FILE, {
        "format": "medlab-report-run/1",
        "notebook": str(path), "parameters": params, "kernel_name": kernel_name,
        "timeout_s": timeout_s, "cwd": str(cwd) if cwd is not None else None,
        "hide_code": hide_code, "show_phi": show_phi, "keyed": bool(pseudo.key),
        "pseudonyms": os.fspath(pseudonyms) if isinstance(pseudonyms, (str, os.PathLike))
        else None,
        "inputs": inputs, "results": sorted(results), "started": started.isoformat(),
        "error": str(error) if error else None,
    })
    shown = params if show_phi else pseudo.parameters(_relative_paths(params))
    # per-file paths stay in run.json (they may name patients); a folder is named by its
    # place in the dataset, not by where it lies on this machine
    summary = [{**{k: v for k, v in group.items() if k not in ("files", "root")},
                **({} if group["kind"] == "dataset" else
                   {"name": _relative_path(group["name"], folder=True)})} for group in inputs]
    prov = collect(notebook=path, parameters=shown, inputs=summary, started=started,
                   finished=finished, kernel_name=kernel_name,
                   phi="shown as recorded (show_phi=True)" if show_phi else
                   "replaced by pseudonyms" + (" from the given mapping" if pseudo.mapping
                                               else ""))
    if snapshot_path is not None:
        prov["cohort_snapshot"] = _write_snapshot(tracked, snapshot_path)
    if not show_phi:
        prov = json.loads(pseudo.text(json.dumps(prov)))
        prov["parameters"] = shown
    _write_json(out / PROVENANCE_FILE, prov)
    if nb is not None:
        import nbformat

        nb.cells.append(nbformat.v4.new_markdown_cell(
            to_markdown(prov), metadata={"tags": ["medlab-provenance"]}))
        if not show_phi:
            _show_parameters(nb, shown)
            pseudo.notebook(nb)
        nbformat.write(nb, str(out / f"{path.stem}.ipynb"))
    if error is not None:
        message = str(error) if show_phi else pseudo.text(str(error))
        raise NotebookError(f"{message} (executed notebook: {out / (path.stem + '.ipynb')})",
                            notebook=nb, cell=error.cell) from error
    html_path = to_html(nb, out / f"{path.stem}.html", hide_code=hide_code,
                        title=path.stem) if html or pdf else None
    pdf_path = to_pdf(html_path, out / f"{path.stem}.pdf") if pdf else None
    if not html and html_path is not None:
        html_path.unlink()
        html_path = None
    scanned = check_outputs(out, pseudo) if not show_phi else 0
    return RunResult(out=out, notebook=out / f"{path.stem}.ipynb", html=html_path,
                     pdf=pdf_path, results=results, provenance=prov, parameters=params,
                     run_time_s=round((finished - started).total_seconds(), 2),
                     n_scanned=scanned)
