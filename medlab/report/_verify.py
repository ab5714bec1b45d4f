"""Reproducibility check: rerun a report and compare its recorded results."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._provenance import sha256_file
from ._results import read_results
from ._run import RUN_FILE, run

__all__ = ["VerifyResult", "compare_results", "verify"]


@dataclass(repr=False)
class VerifyResult:
    """What :func:`verify` found.

    Attributes
    ----------
    ok : bool
        True when every input file is unchanged and every recorded result
        table was reproduced within the tolerance. ``bool(result)`` is ``ok``.
    differences : pandas.DataFrame
        One row per problem: ``kind`` (``input``, ``table``, ``column``,
        ``rerun``), ``what`` (file, table or ``table.column``) and ``detail``.
    notes : list of str
        Facts that do not fail the check (the notebook changed, new tables).
    run_dir : Path
        The run that was checked.
    tables : list of str
        The result tables compared.
    """

    ok: bool
    differences: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    run_dir: Path = Path()
    tables: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = (f"{self.run_dir}: reproduced ({len(self.tables)} result table(s) match)"
                if self.ok else f"{self.run_dir}: NOT reproduced ({len(self.differences)} "
                                f"difference(s))")
        lines = [head]
        lines += [f"  {r.kind}: {r.what}: {r.detail}" for r in self.differences.itertuples()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"VerifyResult(ok={self.ok}, differences={len(self.differences)}, "
                f"tables={self.tables})")


def _numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _compare_column(name: str, col: str, old: pd.Series, new: pd.Series, rtol: float,
                    atol: float) -> str | None:
    if _numeric(old) and _numeric(new):
        a, b = old.to_numpy(dtype=float), new.to_numpy(dtype=float)
        close = np.isclose(b, a, rtol=rtol, atol=atol, equal_nan=True)
        if close.all():
            return None
        bad = np.flatnonzero(~close)
        i = bad[0]
        with np.errstate(invalid="ignore"):
            diff = np.nanmax(np.abs(b[bad] - a[bad])) if np.isfinite(b[bad] - a[bad]).any() \
                else float("nan")
        return (f"{len(bad)} of {len(a)} values differ beyond rtol={rtol:g}, atol={atol:g} "
                f"(max |difference| {diff:.6g}; first at row {i}: {a[i]!r} -> {b[i]!r})")
    a = old.astype(object).where(old.notna(), None).tolist()
    b = new.astype(object).where(new.notna(), None).tolist()
    bad = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if str(x) != str(y)]
    if not bad:
        return None
    i = bad[0]
    return f"{len(bad)} of {len(a)} values differ (first at row {i}: {a[i]!r} -> {b[i]!r})"


def compare_results(old: dict[str, pd.DataFrame], new: dict[str, pd.DataFrame], *,
                    rtol: float = 1e-6, atol: float = 0.0) -> tuple[list[tuple[str, str, str]],
                                                                     list[str]]:
    """Compare two runs' result tables: ``([(kind, what, detail), ...], notes)``.

    Numeric columns are compared with :func:`numpy.isclose` (NaN equals NaN),
    all others exactly (as text). Rows are compared in order.
    """
    diffs: list[tuple[str, str, str]] = []
    notes = []
    for name, a in old.items():
        if name not in new:
            diffs.append(("table", name, "not recorded by the rerun"))
            continue
        b = new[name]
        if len(a) != len(b):
            diffs.append(("table", name, f"{len(a)} rows before, {len(b)} now"))
            continue
        for col in a.columns:
            if col not in b.columns:
                diffs.append(("column", f"{name}.{col}", "missing in the rerun"))
                continue
            detail = _compare_column(name, col, a[col].reset_index(drop=True),
                                     b[col].reset_index(drop=True), rtol, atol)
            if detail:
                diffs.append(("column", f"{name}.{col}", detail))
        extra = [c for c in b.columns if c not in a.columns]
        if extra:
            notes.append(f"table {name!r} has new column(s) {extra}")
    for name in new:
        if name not in old:
            notes.append(f"the rerun recorded a new table {name!r}")
    return diffs, notes


def _check_inputs(inputs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    diffs = []
    for group in inputs:
        root = Path(group["root"])
        for rel, recorded in group["files"].items():
            p = root / rel
            if not p.is_file():
                diffs.append(("input", str(p), f"missing (recorded sha256 {recorded[:16]}…)"))
                continue
            now = sha256_file(p)
            if now != recorded:
                diffs.append(("input", str(p), f"changed: sha256 {recorded[:16]}… -> "
                                               f"{now[:16]}… (in {group['kind']} "
                                               f"{group['name']!r})"))
    return diffs


def verify(run_dir: str | os.PathLike, *, rtol: float = 1e-6, atol: float = 0.0,
           out: str | os.PathLike | None = None, timeout_s: float | None = None,
           key: str | bytes | None = None) -> VerifyResult:
    """Rerun a report and compare its recorded numeric results with the earlier run.

    Checks that every input file the run read still has its recorded
    SHA-256, reruns the notebook with the same parameters, and compares each
    result table (:func:`medlab.report.result`) column by column.

    Parameters
    ----------
    run_dir : path
        A run folder written by :func:`medlab.report.run` (or one run of a batch).
    rtol, atol : float
        Relative and absolute tolerance for numeric columns.
    out : path, optional
        Where to keep the rerun (default: a temporary folder, removed after).
    timeout_s : float, optional
        Per-cell timeout of the rerun (default: the original run's).
    key : str or bytes, optional
        The pseudonym key the run was made with (result tables hold pseudonyms:
        a keyed run compares equal only when rerun with the same key).

    Returns
    -------
    VerifyResult
        ``ok`` is False when an input file changed or is missing, the rerun
        failed, or a table or column differs; ``differences`` says which.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` is not a run folder (no ``run.json``) or the notebook is gone.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    record_path = run_dir / RUN_FILE
    if not record_path.is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} is not a report run folder (no {RUN_FILE}); make one with "
            "medlab.report.run(notebook, out=...) or `medlab report run`")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record.get("keyed") and key is None:
        raise ValueError("this run's pseudonyms were keyed: pass the same key "
                         "(verify(..., key=...), or MEDLAB_REPORT_KEY for the command line) so "
                         "that the rerun's pseudonymised results can be compared")
    notebook = Path(record["notebook"])
    if not notebook.is_file():
        raise FileNotFoundError(f"the notebook of this run, {str(notebook)!r}, is gone; "
                                "verify reruns it from there")
    if out is not None and Path(out).expanduser().resolve() == run_dir:
        raise ValueError("out= must not be the run folder being verified; pass another folder "
                         "(or none: a temporary one)")
    old = read_results(run_dir)
    diffs = _check_inputs(record.get("inputs", []))
    notes = []
    if record.get("error"):
        notes.append(f"the original run failed: {record['error']}")
    prov_path = run_dir / "provenance.json"
    if prov_path.is_file():
        recorded_sha = json.loads(prov_path.read_text(encoding="utf-8"))["notebook"]["sha256"]
        if sha256_file(notebook) != recorded_sha:
            notes.append(f"the notebook {notebook.name} changed since the run")
    if not old:
        notes.append("the run recorded no result tables (mark them with ml.report.result); "
                     "only the inputs were checked")
    with tempfile.TemporaryDirectory(prefix="medlab-verify-") as tmp:
        target = Path(out) if out is not None else Path(tmp)
        try:
            rerun = run(notebook, parameters=record.get("parameters") or {}, out=target,
                        html=False, show_phi=bool(record.get("show_phi")),
                        pseudonyms=record.get("pseudonyms"), key=key,
                        kernel_name=record.get("kernel_name", "python3"),
                        timeout_s=timeout_s or record.get("timeout_s", 900),
                        cwd=record.get("cwd"))
            new = rerun.results
        except Exception as exc:
            diffs.append(("rerun", notebook.name, f"{type(exc).__name__}: {exc}"))
            new = None
    if new is not None:
        table_diffs, table_notes = compare_results(old, new, rtol=rtol, atol=atol)
        diffs += table_diffs
        notes += table_notes
    frame = pd.DataFrame(diffs, columns=["kind", "what", "detail"])
    return VerifyResult(ok=frame.empty, differences=frame, notes=notes, run_dir=run_dir,
                        tables=sorted(old))
