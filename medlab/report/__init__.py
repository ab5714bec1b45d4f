"""Reports: parameterised notebook runs, exported with provenance, checked by rerunning.

- :func:`result` records a result table inside a running notebook: the only
  way results are recorded.
- :func:`run` executes a notebook with parameters into a run folder: the
  executed notebook with a provenance block, a self-contained HTML file
  (:func:`to_html`), optionally a PDF (:func:`to_pdf`, Chromium), the result
  tables and ``provenance.json``. Patient identifiers are replaced by
  pseudonyms unless ``show_phi=True``.
- :func:`batch` runs a notebook once per group (e.g. patient) of a named
  cohort, in parallel or on a dask cluster, and gathers the results into
  one cohort table.
- :func:`verify` reruns a report and says what changed.
- :func:`run_notebook` is medlab's one notebook runner: the test suite, the
  ``make lab EXECUTE=1`` check and the reports all use it.

The command line is ``medlab report run|batch|verify|execute``
(``python -m medlab.report ...``).
"""

from ._batch import BatchResult, batch
from ._deid import Pseudonyms
from ._export import external_references, find_chromium, to_html, to_pdf
from ._results import read_results, result
from ._run import RunResult, run
from ._runner import NotebookError, run_notebook, run_notebooks
from ._verify import VerifyResult, verify

__all__ = [
    "BatchResult",
    "NotebookError",
    "Pseudonyms",
    "RunResult",
    "VerifyResult",
    "batch",
    "external_references",
    "find_chromium",
    "read_results",
    "result",
    "run",
    "run_notebook",
    "run_notebooks",
    "to_html",
    "to_pdf",
    "verify",
]
