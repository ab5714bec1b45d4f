"""Execute notebooks with nbclient, headless, never touching the source file."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .._optional import import_optional
from ..errors import MedlabError

__all__ = ["NotebookError", "require_notebook_tools", "run_notebook", "run_notebooks"]


def require_notebook_tools(feature: str) -> None:
    """Raise :class:`~medlab.errors.MissingDependencyError` naming the ``report`` extra when
    nbformat or nbclient (which run notebooks) are missing, before anything is written."""
    for module in ("nbformat", "nbclient"):
        import_optional(module, feature=feature, extra="report")


class NotebookError(MedlabError, RuntimeError):
    """A notebook cell raised; the message names the notebook, cell and error.

    Attributes
    ----------
    notebook : nbformat.NotebookNode or None
        The notebook as executed up to (and including) the failing cell.
    cell : int or None
        Index of the failing cell.
    """

    def __init__(self, message: str, *, notebook: Any = None, cell: int | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell


def _run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion on an event loop of its own.

    Unlike nbclient's ``execute`` (whose loop is shared through a context
    variable), this is safe in threads that run notebooks side by side (dask
    workers); inside a running loop (a Jupyter kernel) it uses a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_notebook(
    path: str | os.PathLike,
    *,
    parameters: Mapping[str, Any] | None = None,
    output: str | os.PathLike | None = None,
    timeout_s: float = 600,
    kernel_name: str = "python3",
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    startup: str | None = None,
) -> Any:
    """Execute a notebook top to bottom and return the executed notebook.

    Parameters
    ----------
    path : path
        The ``.ipynb`` file; it is read, never written.
    parameters : mapping, optional
        Values injected as a first cell (``name = repr(value)``), after the
        cell tagged ``parameters`` when there is one (papermill's convention).
    output : path, optional
        Where to write the executed notebook (with outputs).
    timeout_s : float
        Per-cell timeout.
    kernel_name : str
    cwd : path, optional
        Working directory of the kernel; default the notebook's folder.
    env : mapping, optional
        Environment of the kernel process (default: this process's).
    startup : str, optional
        One line of Python the kernel runs before the first cell (IPython's
        ``exec_lines``); not shown in the notebook.

    Raises
    ------
    NotebookError
        When a cell fails: names the notebook, the cell number and the error.
    """
    require_notebook_tools("running a notebook (medlab.report)")
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if parameters:
        src = "# injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
        at = next((i + 1 for i, c in enumerate(nb.cells)
                   if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
        nb.cells.insert(at, cell)
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(cwd or path.parent)}},
        # the kernel's own log (e.g. its TCP transport warning) is not notebook output
        extra_arguments=["--IPKernelApp.log_level=ERROR"]
        + ([f"--IPKernelApp.exec_lines={startup}"] if startup else []),
    )
    try:
        _run_coroutine(client.async_execute(**({"env": dict(env)} if env is not None else {})))
    except CellExecutionError as exc:
        failing = next(
            (i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()  # no colours
        summary = text[-1] if text else type(exc).__name__
        first_line = nb.cells[failing].source.strip().splitlines()[0] if failing is not None else ""
        raise NotebookError(
            f"{path.name}: cell {failing} ({first_line[:60]!r}) failed: {summary}",
            notebook=nb, cell=failing,
        ) from exc
    if output is not None:
        nbformat.write(nb, str(output))
    return nb


def run_notebooks(
    paths: Iterable[str | os.PathLike], **kwargs: Any
) -> dict[str, str | None]:
    """Run several notebooks; returns name -> None (passed) or the error message."""
    results: dict[str, str | None] = {}
    for p in paths:
        try:
            run_notebook(p, **kwargs)
            results[Path(p).name] = None
        except NotebookError as exc:
            results[Path(p).name] = str(exc)
    return results
