"""tasks.py, medlab's entry point: which extras each command installs, the JupyterLab
defaults it writes into the environment, and the progress of ``lab --execute``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO


def _load_tasks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("medlab_tasks", REPO / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tasks = _load_tasks()


@pytest.fixture
def fake_venv(tmp_path, monkeypatch):
    """tasks.py pointed at a project copy and a venv whose pip calls are only recorded."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(tasks, "ROOT", root)
    monkeypatch.setattr(tasks, "VENV", venv)
    monkeypatch.setattr(tasks, "PY", venv / "bin" / "python")
    monkeypatch.setattr(tasks, "_run", lambda *cmd, check=True: calls.append(
        tuple(str(c) for c in cmd)) or 0)
    monkeypatch.setenv("MEDLAB_DATA", str(tmp_path / "data"))
    return root, venv, calls


def _installs(calls):
    return [c[-1] for c in calls if "-e" in c]


def test_setup_installs_the_extras_each_command_needs(fake_venv):
    root, venv, calls = fake_venv
    tasks.setup(("all",))
    assert _installs(calls) == [".[all]"]
    tasks.setup(("all",))  # nothing changed: no pip at all
    assert _installs(calls) == [".[all]"]
    tasks.setup(("all", "test"))  # the test command needs more
    assert _installs(calls) == [".[all]", ".[all,test]"]
    tasks.setup(("all",))  # lab after test: already there
    tasks.setup(("all", "docs"))  # keeps test installed
    assert _installs(calls) == [".[all]", ".[all,test]", ".[all,docs,test]"]
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    tasks.setup(("all",))  # pyproject.toml changed: reinstall what this command needs
    assert _installs(calls)[-1] == ".[all]"
    stamp = json.loads((venv / ".medlab-installed").read_text())
    assert stamp["extras"] == ["all"]


def test_setup_reinstalls_over_an_old_stamp(fake_venv):
    root, venv, calls = fake_venv
    # the stamp older tasks.py wrote: the bare hash of pyproject.toml
    import hashlib

    (venv / ".medlab-installed").write_text(
        hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest())
    tasks.setup(("all",))
    assert _installs(calls) == [".[all]"]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


NEWS_QUESTION = "Would you like to get notified about official Jupyter news?"


@pytest.mark.slow
def test_lab_news_popup_is_off_in_the_environment(fake_venv, tmp_path, chromium_browser):
    """JupyterLab asks NEWS_QUESTION while the notification setting ``fetchNews`` is "none"
    (its schema default); the settings setup() writes into the environment make Lab itself
    serve "false" as the default, and the page no longer asks (checked in Chromium, before
    and after)."""
    import lab
    from browser import open_offline_page

    if (why := lab.lab_missing()):
        pytest.skip(why)
    _root, venv, _calls = fake_venv
    settings_dir = venv / "share" / "jupyter" / "lab" / "settings"  # Lab's app_settings_dir
    plugin = "@jupyterlab/apputils-extension:notification"
    port, token = lab.free_port(), "medlab-test-token"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_PLATFORM_DIRS="1")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1",
           "--port", str(port), "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
           f"--ServerApp.root_dir={tmp_path}", f"--LabApp.app_settings_dir={settings_dir}",
           f"--LabApp.user_settings_dir={tmp_path / 'user-settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    base = f"http://127.0.0.1:{port}"

    def news_default():
        served = _get_json(f"{base}/lab/api/settings/{plugin}?token={token}")
        assert not served.get("raw", "").strip("{} \n")  # no user settings in play
        return served["schema"]["properties"]["fetchNews"]["default"]

    def asks_about_news() -> bool:
        with open_offline_page(chromium_browser) as offline:
            page = offline.page
            page.goto(f"{base}/lab?token={token}")
            page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
            try:
                page.get_by_text(NEWS_QUESTION).wait_for(timeout=15_000)
                return True
            except Exception:  # playwright's TimeoutError
                return False

    log = open(tmp_path / "lab.log", "wb")  # closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get_json(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "JupyterLab did not start"
                time.sleep(0.3)
        # a bare environment: Lab asks (so the check below can fail)
        assert news_default() == "none"
        assert asks_about_news()
        tasks.setup(("all",))  # what every tasks.py command runs first
        assert (settings_dir / "overrides.d" / "medlab.json").is_file()
        served = _get_json(f"{base}/lab/api/settings/{plugin}?token={token}")
        assert served["schema"]["properties"]["checkForUpdates"]["default"] is False
        assert news_default() == "false"
        assert not asks_about_news()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_execute_prints_each_notebook_as_it_starts_and_its_time(tmp_path):
    a = _notebook(tmp_path / "a.ipynb", "import time\ntime.sleep(2.5)", "print('done a')")
    b = _notebook(tmp_path / "b.ipynb", "raise ValueError('boom 7')")
    out = tmp_path / "executed"
    proc = subprocess.Popen([sys.executable, "-m", "medlab.report", "execute", str(a), str(b),
                             "--out", str(out)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    first = proc.stdout.readline()
    assert first.strip() == "[1/2] a.ipynb ..."
    assert proc.poll() is None  # printed while the notebook still runs
    rest = proc.stdout.read().splitlines()
    assert proc.wait(timeout=120) == 1
    assert rest[0].startswith("ok   a.ipynb (")
    assert float(rest[0].split("(")[1].split(" s)")[0]) >= 2.5
    assert rest[1] == "[2/2] b.ipynb ..."
    assert rest[2].startswith("FAIL b.ipynb (") and "boom 7" in rest[2]
    assert rest[-1] == "1 passed, 1 failed"
    import nbformat

    executed = nbformat.read(out / "a.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "done a\n"
    assert not (out / "b.ipynb").exists()
