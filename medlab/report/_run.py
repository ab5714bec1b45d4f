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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._deid import Pseudonyms
from ._export import to_html, to_pdf
from ._provenance import collect, hash_inputs, read_tracked, to_markdown
from ._results import ENV_RUN_DIR, RESULTS_FOLDER, read_results
from ._runner import NotebookError, run_notebook
from ._track import INPUTS_FILE

__all__ = ["PROVENANCE_FILE", "RUN_FILE", "RunResult", "check_parameters", "run"]

RUN_FILE = "run.json"
PROVENANCE_FILE = "provenance.json"
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
        computed (identifiers not replaced: they are the run's data, not its report).
    provenance : dict
        The provenance record (as in ``provenance.json``).
    parameters : dict
        The parameters as given (they may hold identifiers).
    run_time_s : float
        Execution time of the notebook.
    """

    out: Path
    notebook: Path
    html: Path | None
    pdf: Path | None
    results: dict[str, pd.DataFrame] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    run_time_s: float = 0.0

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
    (out / INPUTS_FILE).unlink(missing_ok=True)
    return out


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


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
        Show patient identifiers as they are (default: pseudonyms).
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
    """
    path = _notebook_path(notebook)
    params = check_parameters(parameters)
    out = _prepare_out(out)
    pseudo = Pseudonyms.from_mapping(pseudonyms, key=key)
    pseudo.add_parameters(params)
    env = {**os.environ, ENV_RUN_DIR: str(out)}
    started = dt.datetime.now().astimezone()
    error: NotebookError | None = None
    try:
        nb = run_notebook(path, parameters=params, timeout_s=timeout_s, kernel_name=kernel_name,
                          cwd=cwd, env=env, startup=_STARTUP)
    except NotebookError as exc:
        error, nb = exc, exc.notebook
    finished = dt.datetime.now().astimezone()
    results = read_results(out)
    inputs = hash_inputs(read_tracked(out), extra=_path_parameters(params))
    (out / INPUTS_FILE).unlink(missing_ok=True)
    if not show_phi:
        for table in results.values():
            pseudo.add_table(table)
    _write_json(out / RUN_FILE, {
        "format": "medlab-report-run/1",
        "notebook": str(path), "parameters": params, "kernel_name": kernel_name,
        "timeout_s": timeout_s, "cwd": str(cwd) if cwd is not None else None,
        "hide_code": hide_code, "show_phi": show_phi,
        "pseudonyms": os.fspath(pseudonyms) if isinstance(pseudonyms, (str, os.PathLike))
        else None,
        "inputs": inputs, "results": sorted(results), "started": started.isoformat(),
        "error": str(error) if error else None,
    })
    shown = params if show_phi else pseudo.parameters(params)
    summary = [{k: v for k, v in group.items() if k not in ("files", "root")}
               for group in inputs]  # per-file paths stay in run.json (they may name patients)
    prov = collect(notebook=path, parameters=shown, inputs=summary, started=started,
                   finished=finished, kernel_name=kernel_name,
                   phi="shown as recorded (show_phi=True)" if show_phi else
                   "replaced by pseudonyms" + (" from the given mapping" if pseudo.mapping
                                               else ""))
    if not show_phi:
        prov = json.loads(pseudo.text(json.dumps(prov)))
        prov["parameters"] = shown
    _write_json(out / PROVENANCE_FILE, prov)
    if nb is not None:
        import nbformat

        nb.cells.append(nbformat.v4.new_markdown_cell(
            to_markdown(prov), metadata={"tags": ["medlab-provenance"]}))
        if not show_phi:
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
    return RunResult(out=out, notebook=out / f"{path.stem}.ipynb", html=html_path,
                     pdf=pdf_path, results=results, provenance=prov, parameters=params,
                     run_time_s=round((finished - started).total_seconds(), 2))
