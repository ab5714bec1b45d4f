"""Shared test set-up.

Real datasets come through ``medlab.data`` from ``MEDLAB_DATA``; when it is
unset, the shared data folder beside the repository (``../shared/data``)
is used, as in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The browser fixtures are defined once for the whole session: a second sync Playwright in the
# same process (one per test module) fails. Tests use them by name.
from browser import chromium_browser, offline_page  # noqa: F401
from lab import jupyter_lab, lab_page, screenshot  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
_default = REPO.parent / "shared" / "data"
if "MEDLAB_DATA" not in os.environ and _default.is_dir():
    os.environ["MEDLAB_DATA"] = str(_default)

# keep the test suite's caches out of the user's home
os.environ.setdefault("MEDLAB_CACHE", str(REPO / ".medlab-cache"))

# tests/minimal/ runs in its own minimal environment (python3 tasks.py minimal), not here
collect_ignore = ["minimal"]


def shared_data_root() -> Path:
    """The first MEDLAB_DATA root (where the shared datasets live)."""
    return Path(os.environ["MEDLAB_DATA"].split(os.pathsep)[0])


@pytest.fixture(autouse=True, scope="module")
def _fresh_privacy_session():
    """Each test module starts with a fresh privacy session (as a new kernel would): identifiers
    one module's data taught (a phantom whose PatientName is 'phantom') must not pseudonymise
    another module's titles when both run in one worker."""
    import sys

    privacy = sys.modules.get("medlab.privacy")  # never import medlab here (test_import)
    if privacy is not None:
        privacy.reset()
    yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    return shared_data_root()


def pytest_runtest_makereport(item, call):
    """With MEDLAB_NO_SKIP=1 (CI), a skipped test counts as failed: nothing may hide."""
    if os.environ.get("MEDLAB_NO_SKIP") != "1" or call.excinfo is None:
        return None
    if call.excinfo.errisinstance(pytest.skip.Exception):
        from _pytest.reports import TestReport

        report = TestReport.from_item_and_call(item, call)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (MEDLAB_NO_SKIP=1): {call.excinfo.value}"
        return report
    return None


@pytest.fixture(scope="session")
def orthanc_server(tmp_path_factory):
    """A real Orthanc PACS (DICOMweb + DIMSE, authenticated) for the session; tests/orthanc.py."""
    import orthanc

    if orthanc.missing():
        pytest.skip(orthanc.missing())
    with orthanc.running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
