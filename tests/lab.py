"""A real JupyterLab in headless Chromium, for tests and benchmarks.

Builds on ``tests/browser.py`` (Debian's Chromium through Playwright, every
request leaving the machine aborted and recorded). This module adds:

- :class:`LabServer`: JupyterLab on 127.0.0.1 on a free port, with its
  configuration, runtime, workspaces and settings kept in one temporary
  folder, its log in a file, stopped (kernels included) on exit. A context
  manager, usable outside pytest (benchmarks use it).
- :func:`open_notebook`: puts a notebook in the server's root folder, opens
  it in a page under a fresh workspace with a tall viewport, waits for the
  kernel and runs every cell (:class:`LabNotebook`).
- :func:`save_screenshot`, :func:`is_blank`, :func:`differs`: pictures kept
  as test artefacts (``$MEDLAB_ARTIFACTS``, default ``<repo>/test-artifacts``)
  and what tests say about them.
- fixtures ``jupyter_lab`` (session), ``lab_page`` (a tall offline page) and
  ``screenshot`` (saves under the test's id).

The fixtures are registered once in ``tests/conftest.py`` (one Playwright
per session: a second sync Playwright in the same process fails). Use::

    import lab

    @pytest.mark.slow
    def test_widget(jupyter_lab, lab_page, screenshot):
        nb = lab.open_notebook(lab_page.page, jupyter_lab, notebook)
        png = screenshot(nb.output(0).locator("img"), "image")
        assert not lab.is_blank(png)
        assert not lab.unexpected_external(lab_page)

Outside pytest::

    with lab.LabServer() as server, lab.chromium() as b, lab.offline_page_in(b) as record:
        nb = lab.open_notebook(record.page, server, "analysis.ipynb")
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from browser import (
    CHROMIUM_ARGS,
    OfflinePage,
    chromium_missing,
    chromium_path,
    open_offline_page,
)

REPO = Path(__file__).resolve().parents[1]
TALL_VIEWPORT = {"width": 1400, "height": 8000}
"""Lab virtualises cells outside the viewport; a tall page keeps them all rendered."""

LAB_OWN_REQUESTS = (
    re.compile(r"^https://jupyterlab\.github\.io/assets/"),  # news feed / update check
    re.compile(r"^https://pypi\.org/"),  # extension manager look-ups
)
"""External URLs JupyterLab itself may request; aborted, recorded, tolerated."""

KERNEL_WS_NODELAY = """\
# TCP_NODELAY on the kernel websockets: jupyter_server leaves Nagle's algorithm on,
# so each small message can wait ~40 ms for a delayed ACK (Linux loopback)
from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

_open = KernelWebsocketHandler.open


async def _open_nodelay(self, *args, **kwargs):
    self.set_nodelay(True)
    return await _open(self, *args, **kwargs)


KernelWebsocketHandler.open = _open_nodelay
"""
"""``server_config`` for :class:`LabServer`: kernel websockets without Nagle's delay."""

# user settings that keep Lab quiet and render every cell (written into the
# server's own settings folder, never the user's)
_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

_FIND_PANEL_JS = """
const findPanel = (name) => {
  const app = window.jupyterapp;
  if (!app) { return null; }
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === name && w.content && w.sessionContext) { return w; }
  }
  return null;
};
"""

_KERNEL_STATE_JS = "(name) => {" + _FIND_PANEL_JS + """
  if (!window.jupyterapp) { return 'no jupyterapp (LabApp.expose_app_in_browser?)'; }
  const panel = findPanel(name);
  if (!panel) { return 'notebook not open yet'; }
  const sc = panel.sessionContext;
  if (!sc.isReady) { return 'session starting'; }
  const kernel = sc.session && sc.session.kernel;
  if (!kernel) { return 'no kernel'; }
  return kernel.status;
}"""

_RUN_ALL_JS = "(name) => {" + _FIND_PANEL_JS + """
  const panel = findPanel(name);
  window.jupyterapp.shell.activateById(panel.id);
  window.jupyterapp.commands.execute('notebook:run-all-cells');
}"""

_PROGRESS_JS = "(name) => {" + _FIND_PANEL_JS + """
  const panel = findPanel(name);
  if (!panel) { return null; }
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const out = {code: 0, done: 0, running: 0, status: kernel ? kernel.status : 'none',
               errors: []};
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') { return; }
    out.code += 1;
    const prompt = cell.promptNode ? cell.promptNode.textContent : '';
    if (prompt.includes('*') || cell.model.executionState === 'running') {
      out.running += 1;
    } else if (cell.model.executionCount !== null && cell.model.executionCount !== undefined) {
      out.done += 1;
    }
    for (let i = 0; i < cell.model.outputs.length; i++) {
      const o = cell.model.outputs.get(i).toJSON();
      if (o.output_type === 'error') {
        out.errors.push({cell: index, ename: o.ename, evalue: o.evalue,
                         traceback: (o.traceback || []).join('\\n')});
      }
    }
  });
  return out;
}"""

# runs the server so that it gets SIGTERM (and shuts its kernels down) when the
# process that started it dies without stopping it (Linux: PR_SET_PDEATHSIG)
_EXEC_WITH_PDEATHSIG = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class LabError(RuntimeError):
    """JupyterLab did not start, a notebook did not open, or its cells failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lab_missing() -> str | None:
    """Why JupyterLab cannot run here (None when it can)."""
    try:
        import ipykernel  # noqa: F401
        import jupyterlab  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        return f"JupyterLab is not installed ({exc}): pip install -e '.[lab]'"
    return None


class LabServer:
    """JupyterLab on 127.0.0.1, isolated in its own folder, as a context manager.

    Parameters
    ----------
    workdir : path, optional
        Where the server keeps everything: ``root/`` (notebooks; the server's
        root folder), ``jupyter/`` (config, data, runtime, workspaces, user
        settings, IPython profile) and ``server.log``. A new temporary folder,
        removed on :meth:`stop`, when not given.
    env : mapping, optional
        Extra environment variables for the server and its kernels.
        ``MEDLAB_DATA`` (and the rest of this process's environment) passes
        through.
    startup_timeout_s : float
        How long to wait for ``/api/status`` to answer.
    server_config : str, optional
        Python source written to the server's ``jupyter_server_config.py``
        (e.g. :data:`KERNEL_WS_NODELAY`).

    Attributes
    ----------
    port : int
    token : str
    base_url : str
        ``http://127.0.0.1:<port>``, without a trailing slash.
    root_dir : Path
    log_path : Path

    Notes
    -----
    On Linux the server gets SIGTERM (and shuts its kernels down) if this
    process dies without stopping it (killed, timed out).

    Examples
    --------
    >>> with LabServer() as server:  # doctest: +SKIP
    ...     server.add_notebook(nb, name="a.ipynb")
    ...     page.goto(server.workspace_url("a.ipynb"))
    """

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 90.0,
        server_config: str | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="medlab-lab-") if workdir is None
                            else workdir).resolve()
        self.root_dir = self.workdir / "root"
        self.jupyter_dir = self.workdir / "jupyter"
        self.log_path = self.workdir / "server.log"
        self.token = secrets.token_hex(24)
        self.port = 0
        self.base_url = ""
        self._extra_env = dict(env or {})
        self._startup_timeout_s = startup_timeout_s
        self._server_config = server_config
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> LabServer:
        """Start the server and wait until ``/api/status`` answers.

        Raises
        ------
        LabError
            When the server exits or does not answer in time (with its log's tail).
        """
        if self._proc is not None:
            return self
        j = self.jupyter_dir
        for sub in ("config", "data", "runtime", "workspaces", "settings", "ipython"):
            (j / sub).mkdir(parents=True, exist_ok=True)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        for rel, values in _LAB_SETTINGS.items():
            path = j / "settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        if self._server_config is not None:
            (j / "config" / "jupyter_server_config.py").write_text(self._server_config)
        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(j / "config"),
            "JUPYTER_DATA_DIR": str(j / "data"),
            "JUPYTER_RUNTIME_DIR": str(j / "runtime"),
            "IPYTHONDIR": str(j / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self._extra_env)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ip", "127.0.0.1", "--port", str(self.port), "--ServerApp.port_retries=0",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.extension_manager=readonly",
            f"--LabApp.workspaces_dir={j / 'workspaces'}",
            f"--LabApp.user_settings_dir={j / 'settings'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        if sys.platform.startswith("linux"):
            cmd = [sys.executable, "-c", _EXEC_WITH_PDEATHSIG, str(os.getpid()), *cmd]
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(cmd, cwd=self.root_dir, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise LabError(f"JupyterLab exited with code {code} while starting:\n"
                               f"{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if self.api("status", timeout_s=2.0) is not None:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"JupyterLab did not answer /api/status within "
                               f"{self._startup_timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, *, timeout_s: float = 20.0) -> None:
        """Shut the server and all its kernels down (``/api/shutdown``, then signals).

        Kernels the server left behind (found by their connection files in
        this server's runtime folder) are killed too.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.api("shutdown", method="POST", timeout_s=5.0)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        self._kill_leftover_kernels()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_workdir and self.workdir.exists():
            keep = os.environ.get("MEDLAB_KEEP_LAB")  # debugging: keep the folder
            if not keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_leftover_kernels(self) -> None:
        marker = str(self.jupyter_dir / "runtime").encode()
        for proc_dir in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc_dir / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline and b"ipykernel" in cmdline:
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.kill(int(proc_dir.name), signal.SIGKILL)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------ api
    def url(self, path: str = "", **query: str) -> str:
        """``base_url/path?token=...&query`` (the token always included)."""
        from urllib.parse import urlencode

        return f"{self.base_url}/{path.lstrip('/')}?{urlencode({'token': self.token, **query})}"

    def api(self, path: str, *, method: str = "GET", body: Any = None,
            timeout_s: float = 10.0) -> Any:
        """Call the server's REST API (``/api/<path>``); returns the decoded JSON (or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/api/{path.lstrip('/')}", data=data, method=method,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None

    def kernels(self) -> list[dict[str, Any]]:
        """The running kernels (``/api/kernels``)."""
        return list(self.api("kernels") or [])

    def shutdown_kernels(self) -> None:
        """Close every session and shut down every kernel (the server keeps running)."""
        for session in self.api("sessions") or []:
            with contextlib.suppress(urllib.error.HTTPError):
                self.api(f"sessions/{session['id']}", method="DELETE")
        for kernel in self.kernels():
            with contextlib.suppress(urllib.error.HTTPError):
                self.api(f"kernels/{kernel['id']}", method="DELETE")

    def log_tail(self, n_chars: int = 4000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "(no server log)"

    # ------------------------------------------------------------ notebooks
    def add_notebook(self, notebook: Any, *, name: str | None = None) -> str:
        """Put a notebook into the root folder; returns its name (path relative to the root).

        Parameters
        ----------
        notebook : nbformat.NotebookNode, dict or path
            A notebook object (written with nbformat) or an ``.ipynb`` file (copied).
        name : str, optional
            File name in the root folder; default: the file's name, or
            ``notebook-<random>.ipynb`` for an object.
        """
        import nbformat

        if isinstance(notebook, str | os.PathLike):
            src = Path(notebook)
            name = name or src.name
            shutil.copyfile(src, self.root_dir / name)
        else:
            name = name or f"notebook-{uuid.uuid4().hex[:8]}.ipynb"
            nb = notebook if isinstance(notebook, nbformat.NotebookNode) else \
                nbformat.from_dict(notebook)
            nb.metadata.setdefault("kernelspec", {"name": "python3", "language": "python",
                                                  "display_name": "Python 3 (ipykernel)"})
            nbformat.write(nb, self.root_dir / name)
        return name

    def workspace_url(self, name: str) -> str:
        """URL opening ``name`` in a fresh workspace (so no earlier layout is restored)."""
        return self.url(f"lab/workspaces/{uuid.uuid4().hex}/tree/{name}")


class LabNotebook:
    """A notebook open in JupyterLab in a page (see :func:`open_notebook`).

    Attributes
    ----------
    page : playwright.sync_api.Page
    server : LabServer
    name : str
        Path of the notebook relative to the server's root.
    """

    def __init__(self, page: Any, server: LabServer, name: str) -> None:
        self.page = page
        self.server = server
        self.name = name

    @property
    def panel(self) -> Any:
        """Locator of the notebook's panel."""
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first

    def cell(self, index: int) -> Any:
        """Locator of the ``index``-th cell (all cell types, from 0)."""
        return self.panel.locator(".jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        """Locator of the output area of the ``index``-th cell."""
        return self.cell(index).locator(".jp-OutputArea")

    def wait_kernel_idle(self, *, timeout_s: float = 60.0) -> None:
        """Wait until the notebook's kernel has started and is idle."""
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            state = self.page.evaluate(_KERNEL_STATE_JS, self.name)
            if state == "idle":
                return
            if state == "dead":
                break
            time.sleep(0.2)
        raise LabError(f"{self.name}: kernel not idle after {timeout_s:.0f} s (last state: "
                       f"{state!r})\nserver log:\n{self.server.log_tail(2000)}")

    def progress(self) -> dict[str, Any]:
        """Code cells, executed ones, running ones, kernel status and error outputs."""
        state = self.page.evaluate(_PROGRESS_JS, self.name)
        if state is None:
            raise LabError(f"{self.name} is not open in the page")
        return state

    def run_all(self, *, timeout_s: float = 120.0, allow_errors: bool = False) -> None:
        """Run every cell and wait until all code cells have executed.

        The ``notebook:run-all-cells`` command is started without awaiting its
        promise (it resolves late or never when widgets are displayed), then
        the cells' execution counts and the kernel status are polled.

        Raises
        ------
        LabError
            On an error output (unless ``allow_errors``), a dead kernel or the
            timeout; the message carries the tracebacks and stderr shown.
        """
        self.page.evaluate(_RUN_ALL_JS, self.name)
        deadline = time.monotonic() + timeout_s
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.progress()
            if state["status"] == "dead":
                raise LabError(f"{self.name}: the kernel died\n{self._report(state)}")
            settled = state["running"] == 0 and state["status"] == "idle"
            if state["errors"] and not allow_errors and settled:
                raise LabError(f"{self.name}: a cell raised\n{self._report(state)}")
            if settled and state["done"] == state["code"]:
                return
            time.sleep(0.2)
        raise LabError(f"{self.name}: cells still running after {timeout_s:.0f} s "
                       f"({state.get('done')}/{state.get('code')} code cells done, "
                       f"kernel {state.get('status')})\n{self._report(state)}")

    def errors(self) -> list[str]:
        """Tracebacks of the error outputs, as plain text."""
        return [_ANSI.sub("", f"cell {e['cell']}: {e['traceback'] or e['ename']}")
                for e in self.progress()["errors"]]

    def stderr(self) -> list[str]:
        """Texts of the stderr outputs shown in the page (tracebacks, warnings)."""
        sel = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
        return [t.strip() for t in self.panel.locator(sel).all_inner_texts() if t.strip()]

    def _report(self, state: dict[str, Any]) -> str:
        lines = [_ANSI.sub("", f"cell {e['cell']}: {e['ename']}: {e['evalue']}\n{e['traceback']}")
                 for e in state.get("errors", [])]
        with contextlib.suppress(Exception):  # stderr not already shown as a traceback
            lines += [f"stderr: {t}" for t in self.stderr() if not any(t in x for x in lines)]
        return "\n".join(lines) or "(no error output shown)"


def open_notebook(
    page: Any,
    server: LabServer,
    notebook: Any,
    *,
    name: str | None = None,
    run: bool = True,
    timeout_s: float = 120.0,
    viewport: Mapping[str, int] | None = None,
) -> LabNotebook:
    """Open a notebook in JupyterLab in ``page`` and (by default) run all its cells.

    Parameters
    ----------
    page : playwright.sync_api.Page
        Typically ``offline_page.page`` (from ``tests/browser.py``).
    server : LabServer
    notebook : nbformat.NotebookNode, dict or path
        Written or copied into the server's root folder (see
        :meth:`LabServer.add_notebook`).
    name : str, optional
        File name in the root folder.
    run : bool
        Run all cells and wait for them (:meth:`LabNotebook.run_all`).
    timeout_s : float
        For opening, starting the kernel and (separately) running the cells.
    viewport : mapping, optional
        Page size; default :data:`TALL_VIEWPORT` (Lab does not render cells
        outside the viewport).

    Returns
    -------
    LabNotebook
    """
    page.set_viewport_size(dict(viewport or TALL_VIEWPORT))
    name = server.add_notebook(notebook, name=name)
    page.goto(server.workspace_url(name), wait_until="domcontentloaded",
              timeout=timeout_s * 1000)
    nb = LabNotebook(page, server, name)
    nb.wait_kernel_idle(timeout_s=timeout_s)
    if run:
        nb.run_all(timeout_s=timeout_s)
    return nb


# ------------------------------------------------------------------ requests
def lab_own(url: str) -> bool:
    """True for an external URL JupyterLab itself requests (:data:`LAB_OWN_REQUESTS`)."""
    return any(p.match(url) for p in LAB_OWN_REQUESTS)


def unexpected_external(record: OfflinePage) -> list[str]:
    """The page's requests that left (tried to leave) the machine, except Lab's own."""
    return [u for u in record.external if not lab_own(u)]


# ------------------------------------------------------------------ browser
@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium outside pytest (same executable and arguments as the fixture)."""
    missing = chromium_missing()
    if missing:
        raise RuntimeError(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def offline_page_in(chromium_browser: Any) -> Iterator[OfflinePage]:
    """Outside pytest: a page with non-local requests aborted and all recorded.

    The same rule as the ``offline_page`` fixture (``browser.is_local``).
    """
    with open_offline_page(chromium_browser, viewport=dict(TALL_VIEWPORT)) as record:
        yield record


# ---------------------------------------------------------------- artefacts
def artifacts_dir() -> Path:
    """``$MEDLAB_ARTIFACTS``, default ``<repo>/test-artifacts`` (created)."""
    folder = Path(os.environ.get("MEDLAB_ARTIFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def artifact_name(test_id: str, label: str = "") -> str:
    """A file-name stem from a test id (``tests/test_x.py::test_y[p]``) and a label."""
    file, _, rest = test_id.partition("::")
    stem = Path(file).stem + (f"__{rest.replace('::', '__')}" if rest else "")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-")
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")
    return f"{stem}__{label}" if label else stem


def save_screenshot(target: Any, name: str, *, full_page: bool = False,
                    folder: str | os.PathLike[str] | None = None) -> bytes:
    """Screenshot a page or an element into the artefacts folder; returns the PNG.

    Parameters
    ----------
    target : playwright Page or Locator
    name : str
        File name without ``.png`` (see :func:`artifact_name`).
    full_page : bool
        For a page: the whole scrollable page, not just the viewport.
    folder : path, optional
        Default :func:`artifacts_dir`.
    """
    out = Path(folder) if folder is not None else artifacts_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    if hasattr(target, "goto"):  # a Page
        return target.screenshot(path=str(path), full_page=full_page)
    return target.screenshot(path=str(path))


# ------------------------------------------------------------------- images
def _pixels(png: bytes) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def is_blank(png: bytes, *, min_std: float = 2.0) -> bool:
    """True when a picture is (nearly) one flat colour.

    Parameters
    ----------
    png : bytes
        An encoded image (PNG, as screenshots return).
    min_std : float
        A picture whose pixel values (all channels) have a standard deviation
        below this counts as blank.
    """
    px = _pixels(png)
    return px.size == 0 or float(px.std()) < min_std


def differs(png_a: bytes, png_b: bytes, *, tolerance: int = 8) -> float:
    """Fraction of pixels that changed between two pictures (0 to 1).

    A pixel changed when any channel moved by more than ``tolerance``.
    Pictures of different sizes count as entirely changed (1.0).
    """
    a, b = _pixels(png_a), _pixels(png_b)
    if a.shape != b.shape:
        return 1.0
    if a.size == 0:
        return 0.0
    return float((abs(a - b) > tolerance).any(axis=-1).mean())


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One JupyterLab for the session (per xdist worker); its log is kept as an artefact."""
    missing = lab_missing()
    if missing:
        pytest.skip(missing)
    server = LabServer(workdir=tmp_path_factory.mktemp("jupyter-lab"))
    try:
        with server:
            yield server
    finally:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with contextlib.suppress(OSError):
            shutil.copyfile(server.log_path, artifacts_dir() / f"jupyter-lab-{worker}.log")


@pytest.fixture
def lab_page(offline_page: OfflinePage, jupyter_lab: LabServer) -> Iterator[OfflinePage]:
    """An offline page (``browser.offline_page``) with a tall viewport, for Lab.

    The kernels the test started are shut down afterwards.
    """
    offline_page.page.set_viewport_size(dict(TALL_VIEWPORT))
    offline_page.page.set_default_timeout(60_000)
    try:
        yield offline_page
    finally:
        with contextlib.suppress(Exception):
            jupyter_lab.shutdown_kernels()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Any:
    """``screenshot(target, label="", *, full_page=False) -> bytes``, named after the test."""

    def take(target: Any, label: str = "", *, full_page: bool = False) -> bytes:
        return save_screenshot(target, artifact_name(request.node.nodeid, label),
                               full_page=full_page)

    return take
