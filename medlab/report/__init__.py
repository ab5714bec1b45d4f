"""Reports: running notebooks headless (parameterised) and exporting them.

:func:`run_notebook` is medlab's one notebook runner: the test suite, the
``make lab EXECUTE=1`` check and (later) report generation all use it.
"""

from ._runner import NotebookError, run_notebook, run_notebooks

__all__ = ["NotebookError", "run_notebook", "run_notebooks"]
