"""itkwidgets backend of :func:`medlab.view.volume`, made safe for offline kernels.

Only itkwidgets 1.0a55 works with JupyterLab 4 and ipywidgets 8 (0.32
needs ipywidgets<8), and it needs ngff-zarr<0.33. Its viewer is not in the
wheel: the browser loads it at run time from an IPFS gateway
(``itkwidgets.viewer_config.ITK_VIEWER_SRC``) and its UI and the ImJoy RPC
library from jsDelivr.

Why that hangs a kernel: importing ``itkwidgets.viewer`` instantiates
``itkwidgets.cell_watcher.CellWatcher``, which replaces the kernel's
``execute_request`` handler by one that queues every later cell until each
``Viewer`` reports "ready" from the browser. When the viewer cannot load
(offline, or no browser at all as under nbclient/papermill) it never does,
so every later cell waits forever.

What medlab does:

1. checks the installed versions (no import) and names the pin to install;
2. checks, from the kernel, that the asset hosts accept a TCP connection
   within a short timeout, and raises :class:`ViewerUnavailableError`
   naming the hosts and the fixes when they do not (before importing
   itkwidgets, so nothing is queued). This is a stand-in for the browser's
   network: a kernel and its browser usually share it;
3. after importing itkwidgets, puts the kernel's own ``execute_request``
   handler back and unregisters the watcher's hook, so later cells never
   wait for the viewer, whatever happens in the browser. Setters called on
   the ``Viewer`` are still queued by itkwidgets' own background thread.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .. import geometry as geo
from ..errors import MedlabError, MissingDependencyError
from ..image import Image

__all__ = ["ITKWIDGETS_PIN", "ViewerUnavailableError", "asset_hosts", "build_itkwidgets",
           "check_itkwidgets", "release_cell_watcher", "unreachable_hosts"]

#: The itkwidgets release that works with JupyterLab 4 / ipywidgets 8.
ITKWIDGETS_VERSION = "1.0a55"
#: pip requirement lines for the itkwidgets backend (``[lab]``: its JupyterLab extension).
ITKWIDGETS_PIN = f'"itkwidgets[lab]=={ITKWIDGETS_VERSION}" "ngff-zarr<0.33"'
_INSTALL = f"pip install {ITKWIDGETS_PIN}"
_DEFAULT = "use the default backend, ml.view.volume(image) (NiiVue, works offline)"
# Hosts of itkwidgets 1.0a55 (viewer_config.py) when its source cannot be read, plus
# jsDelivr, where the ImJoy JupyterLab extension loads imjoy-rpc from.
_FALLBACK_URLS = (
    "https://bafybeieiqiiwvdq66e2bndws5nwojbe4wwerbxyua6u37axxivi2rwf7wy.ipfs.dweb.link/",
    "https://cdn.jsdelivr.net/npm/imjoy-rpc/",
)


class ViewerUnavailableError(MedlabError, RuntimeError):
    """A viewer backend cannot show anything here (its assets cannot be loaded, no kernel, ...)."""


def _installed_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_versions() -> None:
    """Raise :class:`MissingDependencyError` unless itkwidgets 1.0a55 and ngff-zarr<0.33 are installed."""
    found = _installed_version("itkwidgets")
    if found is None:
        raise MissingDependencyError(
            "backend='itkwidgets' needs itkwidgets, which is not installed. "
            f"Install it with: {_INSTALL}  (or {_DEFAULT})"
        )
    if found != ITKWIDGETS_VERSION:
        why = (" (0.32 needs ipywidgets<8 and does not work with JupyterLab 4)"
               if found.startswith("0.") else "")
        raise MissingDependencyError(
            f"backend='itkwidgets' needs itkwidgets {ITKWIDGETS_VERSION}, but itkwidgets {found} is "
            f"installed{why}. Install the pinned version with: {_INSTALL}  (or {_DEFAULT})"
        )
    ngff = _installed_version("ngff-zarr")
    if ngff is not None and _version_tuple(ngff) >= (0, 33):
        raise MissingDependencyError(
            f"itkwidgets {ITKWIDGETS_VERSION} breaks with ngff-zarr {ngff} (0.33 and newer); "
            f"install an older one with: {_INSTALL}"
        )


def asset_hosts() -> list[tuple[str, int]]:
    """(host, port) pairs the itkwidgets viewer loads from, read from its source without importing it."""
    import importlib.util
    from pathlib import Path

    urls: list[str] = []
    spec = importlib.util.find_spec("itkwidgets")
    if spec is not None and spec.submodule_search_locations:
        config = Path(next(iter(spec.submodule_search_locations))) / "viewer_config.py"
        if config.is_file():
            urls = re.findall(r"[\"'](https?://[^\"']+)[\"']", config.read_text(encoding="utf-8"))
    urls = urls or list(_FALLBACK_URLS[:1])
    urls.append(_FALLBACK_URLS[1])
    hosts: list[tuple[str, int]] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if (parts.hostname, port) not in hosts:
                hosts.append((parts.hostname, port))
    return hosts


def _reachable(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def unreachable_hosts(hosts: list[tuple[str, int]], *, timeout_s: float = 2.0) -> list[str]:
    """The ``host:port`` entries that do not accept a TCP connection within ``timeout_s``.

    All hosts are tried at once in daemon threads (name resolution has no
    timeout of its own), so this returns within about ``timeout_s``.
    """
    results: dict[int, bool] = {}

    def probe(i: int, host: str, port: int) -> None:
        results[i] = _reachable(host, port, timeout_s)

    threads = [threading.Thread(target=probe, args=(i, h, p), daemon=True)
               for i, (h, p) in enumerate(hosts)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s + 0.5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [f"{h}:{p}" for i, (h, p) in enumerate(hosts) if not results.get(i, False)]


def _kernel() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None) if shell is not None else None


def check_itkwidgets(*, timeout_s: float = 2.0) -> None:
    """Everything that can be checked before importing itkwidgets; raises with the fix.

    Raises
    ------
    MissingDependencyError
        itkwidgets missing or not 1.0a55; ngff-zarr 0.33 or newer.
    ViewerUnavailableError
        An asset host cannot be reached within ``timeout_s`` (checked
        from the kernel), or there is no Jupyter kernel to show a viewer.
    """
    check_versions()
    down = unreachable_hosts(asset_hosts(), timeout_s=timeout_s)
    if down:
        raise ViewerUnavailableError(
            f"the itkwidgets viewer cannot load here: itkwidgets {ITKWIDGETS_VERSION} loads its "
            "JavaScript at run time from an IPFS gateway and cdn.jsdelivr.net (it has no local "
            f"copy), and {', '.join(down)} could not be reached from this kernel within "
            f"{timeout_s:g} s. Offline its output stays blank and, without medlab's guard, every "
            f"later cell waits for it forever. Fix: {_DEFAULT}, or connect to the network."
        )
    if _kernel() is None:
        raise ViewerUnavailableError(
            "backend='itkwidgets' shows its viewer only in a running Jupyter kernel "
            f"(JupyterLab/Notebook) and there is none here; {_DEFAULT}, or run this in a notebook."
        )


def release_cell_watcher() -> bool:
    """Undo itkwidgets' cell blocking: restore the kernel's ``execute_request`` handler.

    Returns True when a watcher was installed and has been disabled.
    """
    import sys

    module = sys.modules.get("itkwidgets.viewer")
    watcher = getattr(module, "_cell_watcher", None)
    if watcher is None:
        return False
    kernel = getattr(watcher, "kernel", None)
    original = getattr(watcher, "execute_request_handler", None)
    if kernel is None or original is None:
        return False
    kernel.shell_handlers["execute_request"] = original
    try:
        watcher.shell.events.unregister("post_run_cell", watcher.post_run_cell)
    except ValueError:  # already unregistered
        pass
    return True


def _import_itkwidgets() -> Any:
    try:
        import itkwidgets
    except RuntimeError as exc:  # its import-time check for the JupyterLab extension
        raise MissingDependencyError(
            f"itkwidgets {ITKWIDGETS_VERSION} cannot start: {exc} Install its JupyterLab parts "
            f"with: {_INSTALL}  (or {_DEFAULT})"
        ) from exc
    except ImportError as exc:
        raise MissingDependencyError(
            f"itkwidgets cannot be imported ({exc}); install it with: {_INSTALL}"
        ) from exc
    finally:
        release_cell_watcher()
    return itkwidgets


def _itkwasm_image(image: Image) -> Any:
    """An ``itkwasm.Image`` (no ``itk`` needed), reoriented to LPS axes without interpolation.

    itkwidgets converts images to OME-NGFF, which keeps origin and spacing
    but only anatomical labels for the axes: reorienting first makes an
    axis-aligned image's direction the identity, so nothing is lost.
    """
    import itkwasm

    canon = image.reorient("SPL")  # array (S, P, L) = ITK index (x: L, y: P, z: S)
    arr = np.ascontiguousarray(canon.array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    out = itkwasm.image_from_array(arr)
    spacing, origin, direction = geo.affine_to_itk(canon.affine)
    out.spacing = [float(v) for v in spacing]
    out.origin = [float(v) for v in origin]
    out.direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    return out


#: medlab colormap (NiiVue name) -> itk-vtk-viewer preset.
_ITK_CMAPS = {
    "gray": "Grayscale",
    "viridis": "Viridis (matplotlib)",
    "inferno": "Inferno (matplotlib)",
    "magma": "Magma (matplotlib)",
    "plasma": "Plasma (matplotlib)",
    "jet": "Jet",
    "hot": "Black-Body Radiation",
    "cool": "Cool to Warm",
}


def build_itkwidgets(state: dict[str, Any], *, height: int) -> tuple[Any, Any]:
    """An ``ipywidgets.Output`` holding an itkwidgets viewer, and the viewer.

    Call :func:`check_itkwidgets` first. The cell-blocking watcher of
    itkwidgets is disabled (see the module docstring).
    """
    import ipywidgets

    itkwidgets = _import_itkwidgets()
    width, level = state["window"]
    kwargs: dict[str, Any] = {
        "image": _itkwasm_image(state["display_image"]),
        "color_range": [float(level - width / 2.0), float(level + width / 2.0)],
        "ui_collapsed": True,
        "container_style": {"height": f"{int(height)}px", "width": "100%"},
    }
    if state["colormap"] in _ITK_CMAPS:
        kwargs["cmap"] = _ITK_CMAPS[state["colormap"]]
    if state["display_labels"] is not None:
        kwargs["label_image"] = _itkwasm_image(state["display_labels"])
        kwargs["label_blend"] = float(state["label_opacity"])
    out = ipywidgets.Output(layout={"min_height": f"{int(height)}px"})
    try:
        with out:
            viewer = itkwidgets.view(**kwargs)
    finally:
        release_cell_watcher()
    if state["display_image"].is_oblique:
        state["notes"].append("itkwidgets (OME-NGFF) shows oblique axes as if axis-aligned")
    state["notes"].append(
        "itkwidgets loads its viewer from the network; if it stays blank, use backend='niivue'"
    )
    return out, viewer
