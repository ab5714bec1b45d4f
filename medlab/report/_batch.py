"""One report run per group of a named cohort, in parallel; a combined cohort table."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._deid import Pseudonyms, identifier_kind
from ._results import read_results
from ._run import check_outputs, check_parameters, run

__all__ = ["BatchResult", "batch"]

COHORT_TABLE = "cohort_results"
RUNS_TABLE = "runs.csv"


@dataclass(repr=False)
class BatchResult:
    """What :func:`batch` produced.

    Attributes
    ----------
    out : Path
        The batch folder: one run folder per group under ``runs/``.
    runs : pandas.DataFrame
        One row per group: ``group`` (pseudonymised unless ``show_phi``),
        ``run_dir``, ``status`` (``ok``/``failed``), ``error``, ``run_time_s``.
    table : pandas.DataFrame
        Every successful run's result tables, concatenated: columns ``run``,
        ``result`` (table name), the run parameters, then the tables' columns.
    table_csv, table_parquet : Path
        Where ``table`` was written.
    """

    out: Path
    runs: pd.DataFrame
    table: pd.DataFrame
    table_csv: Path
    table_parquet: Path
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every run succeeded."""
        return bool((self.runs["status"] == "ok").all())

    @property
    def failed(self) -> pd.DataFrame:
        """The runs that failed, with their errors."""
        return self.runs[self.runs["status"] != "ok"].reset_index(drop=True)

    def __repr__(self) -> str:
        n_ok = int((self.runs["status"] == "ok").sum())
        return (f"BatchResult({len(self.runs)} runs: {n_ok} ok, {len(self.runs) - n_ok} failed; "
                f"cohort table {len(self.table)} rows -> {str(self.table_csv)!r})")


def _index_path(index: Any) -> Path:
    db = getattr(index, "db_path", index)
    if db is None:
        raise ValueError("the index is in memory; batch runs open it from their own processes, "
                         "so build it with medlab.cohort.scan(..., db=PATH) and pass PATH")
    if not isinstance(db, (str, os.PathLike)):
        raise TypeError(f"index must be the path of a cohort index (DuckDB file), got "
                        f"{type(index).__name__}")
    path = Path(db).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no cohort index at {str(path)!r}; create one with "
                                "medlab.cohort.scan(folders, db=PATH)")
    return path


def _groups(db: Path, cohort: str, by: str, pseudo: Pseudonyms, *, show_phi: bool
            ) -> list[Any]:
    from ..cohort import open_index

    with open_index(db, read_only=True) as idx:
        table = idx.cohort(cohort)
        if by not in table.columns:
            series = idx.series
            if by not in series.columns:
                raise KeyError(
                    f"cannot group cohort {cohort!r} by {by!r}: no such column in the cohort "
                    f"({list(table.columns)}) or the series table; e.g. by='patient_id'")
            table = table.merge(series[["series_uid", by]], on="series_uid", how="left")
        if not show_phi:  # every patient of the index: names, birth dates, folders, ...
            pseudo.add_index(idx)
    values = [v.item() if hasattr(v, "item") else v for v in pd.unique(table[by].dropna())]
    if not show_phi and identifier_kind(by):
        for v in values:
            pseudo.add(v, identifier_kind(by) or "id")
    return sorted(values, key=str)


def _label(value: Any, pseudo: Pseudonyms, by: str, show_phi: bool) -> str:
    shown = value if show_phi or not identifier_kind(by) else pseudo.known.get(
        str(value).strip(), pseudo.pseudonym(value))
    return str(shown)


def _run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one group (top level: runs in worker processes and on dask workers)."""
    t0 = time.perf_counter()
    task = dict(task)
    pseudo: Pseudonyms = task.pop("pseudonyms")
    try:
        run(task.pop("notebook"), pseudonyms=pseudo, **task)
        status, error = "ok", None
    except Exception as exc:  # a failed run is reported; the others go on
        status = "failed"
        error = f"{type(exc).__name__}: {exc}"
        if not task.get("show_phi"):
            error = pseudo.text(error)
    return {"status": status, "error": error, "run_time_s": round(time.perf_counter() - t0, 2)}


def _execute(tasks: list[dict[str, Any]], *, workers: int, client: Any, progress: bool
             ) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    results: list[dict[str, Any] | None] = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc="report runs", unit="run", disable=not progress)
    try:
        if client is not None:
            from dask.distributed import Client, as_completed

            if isinstance(client, str):
                client = Client(client)
            futures = {client.submit(_run_task, t, pure=False): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # the worker died
                    results[i] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                  "run_time_s": None}
                bar.update()
        elif workers == 1 or len(tasks) == 1:
            for i, t in enumerate(tasks):
                results[i] = _run_task(t)
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as ex:
                futures = {ex.submit(_run_task, t): i for i, t in enumerate(tasks)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:  # the worker process died
                        results[i] = {"status": "failed",
                                      "error": f"{type(exc).__name__}: {exc}", "run_time_s": None}
                    bar.update()
    finally:
        bar.close()
    return [r or {"status": "failed", "error": "not run", "run_time_s": None} for r in results]


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _gather(runs: pd.DataFrame, shown_params: list[dict[str, Any]], pseudo: Pseudonyms,
            show_phi: bool) -> pd.DataFrame:
    frames = []
    for row, params in zip(runs.itertuples(index=False), shown_params, strict=True):
        if row.status != "ok":
            continue
        for name, table in read_results(row.run_dir).items():
            t = table if show_phi else pseudo.table(table)
            front = {"run": Path(row.run_dir).name, "result": name}
            for k, v in params.items():
                front[k if k not in t.columns and k not in front else f"param_{k}"] = _cell(v)
            frames.append(pd.concat([pd.DataFrame({k: [v] * len(t) for k, v in front.items()}),
                                     t.reset_index(drop=True)], axis=1))
    if not frames:
        return pd.DataFrame(columns=["run", "result"])
    return pd.concat(frames, ignore_index=True, sort=False)


def _write_table(table: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    csv, parquet = out / f"{COHORT_TABLE}.csv", out / f"{COHORT_TABLE}.parquet"
    table.to_csv(csv, index=False)
    try:
        table.to_parquet(parquet, index=False)
    except Exception:  # mixed types across runs' tables: store those columns as text
        fixed = table.copy()
        for c in fixed.columns:
            if pd.api.types.is_object_dtype(fixed[c]):
                fixed[c] = fixed[c].map(lambda v: v if v is None or pd.isna(v) else str(v))
        fixed.to_parquet(parquet, index=False)
    return csv, parquet


def batch(
    notebook: str | os.PathLike,
    *,
    cohort: str,
    index: Any,
    by: str = "patient_id",
    parameters: Mapping[str, Any] | None = None,
    out: str | os.PathLike,
    workers: int = 2,
    client: Any = None,
    html: bool = True,
    pdf: bool = False,
    hide_code: bool = False,
    show_phi: bool = False,
    pseudonyms: Any = None,
    key: str | bytes | None = None,
    timeout_s: float = 900,
    kernel_name: str = "python3",
    progress: bool = True,
) -> BatchResult:
    """Run a notebook once per group of a named cohort; gather the results.

    Each run gets the parameters ``cohort_name`` (the cohort), ``index_db``
    (the index file; open it with ``medlab.cohort.open_index(index_db,
    read_only=True)``) and ``<by>`` (the group's value, e.g. ``patient_id``),
    plus ``parameters``. Runs go to ``out/runs/<NNN>_<group>/``
    (:func:`medlab.report.run`); a run that fails is reported with its error
    and the others go on.

    Parameters
    ----------
    notebook : path
    cohort : str
        A cohort saved in the index (``Index.save_cohort``).
    index : path or medlab.cohort.Index
        The cohort index file (or a file-backed Index; close it first if it
        is open for writing: DuckDB lets other processes read a file only
        when no process writes it).
    by : str
        Column of the cohort (or of the index's series table) to group by.
    parameters : mapping, optional
        Parameters common to all runs.
    out : path
        The batch folder.
    workers : int
        Local worker processes (1: run one after the other in this process).
    client : dask.distributed.Client or str, optional
        Run on this dask cluster instead (a Client or a scheduler address);
        the notebook, the index and the data must be at the same paths there.
    html, pdf, hide_code, show_phi, pseudonyms, key, timeout_s, kernel_name
        As for :func:`medlab.report.run`; pseudonyms are consistent across runs.
    progress : bool
        Show a progress bar.

    Returns
    -------
    BatchResult
        Also written: ``out/runs.csv`` and the cohort table
        ``out/cohort_results.csv`` / ``.parquet``.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(cohort, str) or not cohort:
        raise ValueError(f"cohort must be the name of a saved cohort, got {cohort!r}")
    notebook = Path(notebook).expanduser().resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {str(notebook)!r}")
    db = _index_path(index)
    common = check_parameters(parameters)
    pseudo = Pseudonyms.from_mapping(pseudonyms, key=key)
    pseudo.add_parameters(common)
    values = _groups(db, cohort, by, pseudo, show_phi=show_phi)
    if not values:
        raise ValueError(f"cohort {cohort!r} has no values in column {by!r} to run for")
    out = Path(out).expanduser().resolve()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    tasks, rows, shown = [], [], []
    for i, value in enumerate(values, start=1):
        label = _label(value, pseudo, by, show_phi)
        run_dir = out / "runs" / f"{i:03d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)[:60]}"
        params = {**common, "cohort_name": cohort, "index_db": str(db), by: value}
        tasks.append({"notebook": str(notebook), "parameters": params, "out": str(run_dir),
                      "html": html, "pdf": pdf, "hide_code": hide_code, "show_phi": show_phi,
                      "pseudonyms": pseudo, "timeout_s": timeout_s,
                      "kernel_name": kernel_name})
        shown_params = params if show_phi else pseudo.parameters(params)
        shown.append({k: v for k, v in shown_params.items() if k != "index_db"})
        rows.append({"group": label, "run_dir": str(run_dir)})
    outcomes = _execute(tasks, workers=workers, client=client, progress=progress)
    runs = pd.DataFrame([{**r, **o} for r, o in zip(rows, outcomes, strict=True)],
                        columns=["group", "run_dir", "status", "error", "run_time_s"])
    runs.to_csv(out / RUNS_TABLE, index=False)
    table = _gather(runs, shown, pseudo, show_phi)
    csv, parquet = _write_table(table, out)
    if not show_phi:  # the batch's own tables pass the same final check as each report
        check_outputs(out, pseudo, files=[csv, parquet, out / RUNS_TABLE])
    return BatchResult(out=out, runs=runs, table=table, table_csv=csv, table_parquet=parquet,
                       params=common)
