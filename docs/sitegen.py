"""What the documentation build generates: API pages from each public ``__all__``, the
notebook pages with outputs, and the final offline check (used by ``conf.py`` and the tests).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGE = "medlab"
API_PAGE_PREFIX = "medlab"  # generated pages: api/medlab*.rst (git-ignored)
SKIPPED_PAGE = "not-built.md"  # notebooks/ page of a build without the notebooks


# ------------------------------------------------------------------ API reference
def public_modules() -> list[ModuleType]:
    """Every importable public module of medlab that declares ``__all__``, parents first.

    Public: no path component after ``medlab`` starts with an underscore.
    """
    root = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(root.__path__, f"{PACKAGE}."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    modules = [importlib.import_module(n) for n in names]
    modules = [m for m in modules if hasattr(m, "__all__")]
    return sorted(modules, key=lambda m: (m.__name__.count("."), m.__name__))


def _kind(obj: Any) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def api_entries() -> dict[str, list[tuple[str, str, str | None]]]:
    """module name -> [(name, kind, documented_elsewhere_as or None)], in ``__all__`` order.

    An object is described once, at its first (shortest) public path; a re-export names
    that path instead of describing the object twice.
    """
    seen: dict[int, str] = {}
    keep: list[Any] = []  # ids stay valid while the objects live
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    for module in public_modules():
        rows = []
        for name in module.__all__:
            obj = getattr(module, name)
            kind = _kind(obj)
            path = f"{module.__name__}.{name}"
            if kind == "module":
                rows.append((name, kind, obj.__name__))
                continue
            # immutable scalars (a version string) may be shared by chance: never merged
            shareable = not isinstance(obj, str | int | float | bool | type(None))
            if shareable and id(obj) in seen:
                rows.append((name, kind, seen[id(obj)]))
                continue
            if shareable:
                seen[id(obj)] = path
                keep.append(obj)
            rows.append((name, kind, None))
        out[module.__name__] = rows
    return out


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def write_api_pages(folder: Path) -> list[Path]:
    """Write ``api/<module>.rst`` for every public module and ``api/modules.rst``
    (their table of contents). Files are rewritten only when their text changes."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = api_entries()
    written = []
    for module_name, rows in entries.items():
        lines = [_title(f"``{module_name}``"),
                 f".. automodule:: {module_name}", "   :no-members:", ""]
        own = [(n, k) for n, k, where in rows if where is None]
        if own:
            lines += [".. autosummary::", "   :nosignatures:", ""]
            lines += [f"   {n}" for n, _ in own]
            lines.append("")
        elsewhere = [(n, k, where) for n, k, where in rows if where is not None]
        if elsewhere:
            lines += ["Also available here", "-------------------", ""]
            for name, kind, where in elsewhere:
                role = "mod" if kind == "module" else "obj"
                lines.append(f"* ``{module_name}.{name}``: :{role}:`{where}`")
            lines.append("")
        if own:
            lines += ["Reference", "---------", ""]
        for name, kind in own:
            target = f"{module_name}.{name}"
            if kind == "class":
                lines += [f".. autoclass:: {target}", "   :members:", ""]
            elif kind == "exception":
                lines += [f".. autoexception:: {target}", ""]
            elif kind == "function":
                lines += [f".. autofunction:: {target}", ""]
            else:
                lines += [f".. autodata:: {target}", "   :no-value:", ""]
        written.append(_write_if_changed(folder / f"{module_name}.rst", "\n".join(lines)))
    toc = [_title("All modules"), ".. toctree::", "   :maxdepth: 1", ""]
    toc += [f"   {m}" for m in entries]
    written.append(_write_if_changed(folder / f"{API_PAGE_PREFIX}-modules.rst",
                                     "\n".join(toc) + "\n"))
    for stale in folder.glob(f"{API_PAGE_PREFIX}*.rst"):
        if stale not in written:
            stale.unlink()
    return written


def _write_if_changed(path: Path, text: str) -> Path:
    # unchanged files keep their times, so Sphinx rebuilds only what changed
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# ------------------------------------------------------------------ notebooks
def _code_sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]]


def is_current(source: Path, executed: Path) -> bool:
    """Whether ``executed`` is an executed copy of ``source`` as it is now (same cells)."""
    if not executed.is_file():
        return False
    try:
        ran = json.loads(executed.read_text())
        now = json.loads(source.read_text())
    except (OSError, ValueError):
        return False
    return _code_sources(ran) == _code_sources(now)


def _for_site(executed: Path) -> str:
    """The executed notebook as the site shows it: without the saved widget state.

    Widgets need a live kernel or a widget manager from a CDN, neither of which the site
    has; the state (megabytes of images for the viewers) would only weigh the page down.
    Each medlab widget's output also holds a PNG of its state, which the site shows.
    """
    nb = json.loads(executed.read_text())
    nb.get("metadata", {}).pop("widgets", None)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def prepare_notebooks(source_dir: Path, executed_dir: Path, out_dir: Path,
                      *, timeout_s: float = 900) -> list[Path]:
    """Put an executed copy of every curated notebook into ``out_dir``.

    Copies come from ``executed_dir`` (left there by tests/test_notebooks.py or
    ``python3 tasks.py lab --execute``) when they match the notebook's current cells;
    otherwise the notebook is executed now (and the copy kept in ``executed_dir``).

    Raises
    ------
    RuntimeError
        When a notebook fails to execute (the docs would show a broken page).
    """
    from medlab.report import NotebookError, run_notebook

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SKIPPED_PAGE).unlink(missing_ok=True)
    executed_dir.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(source_dir.glob("*.ipynb"))
    for i, source in enumerate(notebooks, 1):
        executed = executed_dir / source.name
        if not is_current(source, executed):
            print(f"[{i}/{len(notebooks)}] executing {source.name} for the docs ...",
                  file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                run_notebook(source, output=executed, timeout_s=timeout_s)
            except NotebookError as exc:
                raise RuntimeError(f"docs: {exc}") from exc
            print(f"    {source.name} done in {time.perf_counter() - start:.1f} s",
                  file=sys.stderr, flush=True)
        _write_if_changed(out_dir / source.name, _for_site(executed))
    for stale in out_dir.glob("*.ipynb"):
        if not (source_dir / stale.name).exists():
            stale.unlink()
    return [out_dir / s.name for s in notebooks]


def skip_notebooks(out_dir: Path) -> None:
    """Build without the notebook pages: one page that says so instead."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ipynb"):
        old.unlink()
    (out_dir / SKIPPED_PAGE).write_text(
        "# Notebooks not rendered\n\nThis build was made with `MEDLAB_DOCS_NOTEBOOKS=0`; "
        "`python3 tasks.py docs` renders the notebooks with their outputs.\n")


# ------------------------------------------------------------------ offline check
def external_loads(html_dir: Path) -> dict[str, list[str]]:
    """Page -> what it would load from another host (scripts, styles, images, frames)."""
    from medlab.report import external_references

    found = {}
    for page in sorted(html_dir.rglob("*.html")):
        urls = [ref for ref in external_references(page.read_text(encoding="utf-8"))
                if "//" in ref.split(": ", 1)[-1][:8]]
        if urls:
            found[str(page.relative_to(html_dir))] = urls
    return found


def check_offline(app: Any, exception: Exception | None) -> None:
    """Sphinx ``build-finished`` hook: a page that loads from elsewhere is an error."""
    if exception is not None or app.builder.format != "html":
        return
    found = external_loads(Path(app.outdir))
    if found:
        lines = [f"{page}: {', '.join(urls[:3])}" for page, urls in list(found.items())[:10]]
        raise RuntimeError("docs: pages load from other hosts (the site must work offline):\n"
                           + "\n".join(lines))
