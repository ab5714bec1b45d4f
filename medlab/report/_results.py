"""Result tables: the one way a notebook records what a report reports.

Inside a report run (:func:`medlab.report.run`), the environment variable
``MEDLAB_REPORT_DIR`` names the run folder; :func:`result` writes each table
to ``<run folder>/results/<name>.parquet`` and displays it. Outside a run
(interactive work) it only displays the table.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ENV_RUN_DIR", "RESULTS_FOLDER", "read_results", "result"]

#: environment variable naming the run folder of the notebook being run
ENV_RUN_DIR = "MEDLAB_REPORT_DIR"
#: sub-folder of a run folder holding the recorded result tables
RESULTS_FOLDER = "results"
#: display metadata that marks a result table in the executed notebook
RESULT_METADATA_KEY = "medlab_result"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_recorded: set[str] = set()


def _as_frame(name: str, table: Any) -> pd.DataFrame:
    if isinstance(table, pd.Series):
        table = table.to_frame(name=table.name if table.name is not None else name)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"result {name!r}: expected a pandas DataFrame (or Series), got "
            f"{type(table).__name__}; build one with pd.DataFrame(...)")
    df = table
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()  # a meaningful index becomes columns
    df = df.copy()
    df.columns = [str(c) if not isinstance(c, tuple) else "/".join(map(str, c))
                  for c in df.columns]
    duplicated = df.columns[df.columns.duplicated()].tolist()
    if duplicated:
        raise ValueError(f"result {name!r}: duplicate column names {duplicated}; rename them")
    return df


def result(name: str, table: Any, *, display: bool = True) -> None:
    """Record a result table of the running notebook (and display it).

    Results recorded this way are what a report's reproducibility check
    (:func:`medlab.report.verify`) compares and what a batch gathers into its
    cohort table; nothing else a notebook shows is recorded.

    Parameters
    ----------
    name : str
        Name of the table: letters, digits, ``_``, ``-``, ``.``; unique
        within a run (it becomes ``results/<name>.parquet``).
    table : pandas.DataFrame or pandas.Series
        The table. A non-default index becomes columns; column names become
        strings.
    display : bool
        Show the table as the cell's output (in a report, identifiers in it
        are replaced by pseudonyms).

    Returns
    -------
    None
        Nothing (so that the table is not shown twice when the call ends a
        cell); :func:`read_results` reads recorded tables back.

    Raises
    ------
    ValueError
        Invalid or repeated name, duplicate column names, or a table Parquet
        cannot store (the message names the column).
    TypeError
        ``table`` is not a DataFrame or Series.

    Examples
    --------
    >>> import pandas as pd, medlab as ml
    >>> ml.report.result("volumes", pd.DataFrame({"lesion": [1], "volume_ml": [3.2]}))
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"result name {name!r} is not allowed: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (e.g. 'lesion_volumes')")
    df = _as_frame(name, table)
    run_dir = os.environ.get(ENV_RUN_DIR)
    if run_dir:
        if name in _recorded:
            raise ValueError(
                f"result {name!r} was already recorded in this run; give each table its own "
                "name (e.g. f'volumes_{patient}')")
        folder = Path(run_dir) / RESULTS_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{name}.parquet"
        tmp = target.with_name(target.name + ".tmp")
        try:
            df.to_parquet(tmp, index=False)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            bad = [c for c in df.columns if df[c].dtype == object
                   and df[c].map(type).nunique(dropna=True) > 1]
            hint = (f"column(s) {bad} mix value types; convert them (e.g. .astype(str))"
                    if bad else "use numbers, strings, booleans or dates in the columns")
            raise ValueError(f"result {name!r} cannot be stored as Parquet ({exc}); {hint}"
                             ) from exc
        os.replace(tmp, target)
        _recorded.add(name)
    if display:
        try:
            from IPython import get_ipython
            from IPython.display import display as show
        except ImportError:  # pragma: no cover - IPython comes with the lab extra
            return None
        if get_ipython() is not None:
            show(df, metadata={RESULT_METADATA_KEY: name})
    return None


def read_results(run_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The result tables recorded in a run folder, by name (sorted)."""
    folder = Path(run_dir) / RESULTS_FOLDER
    if not folder.is_dir():
        return {}
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
