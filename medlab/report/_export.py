"""Export an executed notebook to one self-contained HTML file, and that to PDF.

HTML: nbconvert's ``lab`` template with every image embedded (outputs are
data URIs already; markdown images are embedded by ``embed_images``). The
result is then made static and offline:

- every ``<script>`` is removed (the report needs no JavaScript; the template
  would load require.js, MathJax, mermaid and the widget manager from CDNs),
  so math shows as its TeX source;
- widget outputs are replaced by their static snapshot (``image/png``, else
  HTML/text) and the notebook's widget state is dropped;
- every remaining reference that would load something from elsewhere
  (``<link>``, ``src``/``srcset``, ``@import`` and ``url()`` in CSS) is removed;
- a Content-Security-Policy ``<meta>`` forbids any network load, as a second
  line of defence.

PDF: Chromium's print-to-PDF of that HTML, driven by Playwright with the
system Chromium (Debian's ``chromium`` package) and every request that is not
local aborted.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .._optional import import_optional
from ..errors import MissingDependencyError

__all__ = ["CHROMIUM_ARGS", "external_references", "find_chromium", "to_html", "to_pdf"]

#: Chromium flags for headless, offline, sandbox-less (container) use
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
        "media-src data:")
_EXTRA_CSS = """
.medlab-provenance table { border-collapse: collapse; font-size: 0.85em; margin: 0.3em 0; }
.medlab-provenance th, .medlab-provenance td { border: 1px solid #ccc; padding: 2px 6px;
  text-align: left; vertical-align: top; overflow-wrap: anywhere; }
.medlab-provenance th { white-space: nowrap; }
.medlab-provenance .medlab-packages { font-size: 0.7em; line-height: 1.3; }
img { max-width: 100%; height: auto; }
@media print {
  pre { white-space: pre-wrap; word-break: break-word; }
  /* a cell may continue on the next page (keeping whole cells, or whole inputs, together left
     pages half empty); pictures and table rows stay in one piece, headings with what follows */
  .jp-Cell, .jp-OutputArea-child { break-inside: auto; }
  .jp-OutputArea-output img, .jp-RenderedHTMLCommon tr { break-inside: avoid; }
  h1, h2, h3, h4 { break-after: avoid; }
  .jp-OutputArea-output { overflow: visible !important; }
  /* wide tables wrap between words; a column header is never broken inside a word (which
     stacked headers one letter per line), the column grows to its longest header word */
  .jp-RenderedHTMLCommon table { font-size: 0.7em; table-layout: auto; max-width: 100%; }
  .jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td { white-space: normal;
    overflow-wrap: break-word; padding: 0.2em 0.35em; }
  .jp-RenderedHTMLCommon th { overflow-wrap: normal; word-break: keep-all; hyphens: none; }
  .jp-RenderedHTMLCommon thead { display: table-header-group; }
}
"""
_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(?!data:)[^)'\"]*\1\s*\)", re.I)
_CSS_IMPORT = re.compile(r"@import\s+[^;]+;", re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_STATIC = ("image/png", "image/jpeg", "image/svg+xml", "text/html", "text/markdown", "text/plain")


def _static_widgets(nb: Any) -> Any:
    """Replace widget views by their static snapshot; drop JavaScript outputs and widget state."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if not data:
                continue
            data.pop("application/javascript", None)
            if _WIDGET_VIEW in data:
                data.pop(_WIDGET_VIEW)
                kept = {m: data[m] for m in _STATIC if m in data}
                if "image/png" in kept or "image/jpeg" in kept:
                    kept = {m: v for m, v in kept.items() if m.startswith("image/")}
                if not any(m != "text/plain" for m in kept):
                    kept = {"text/plain": "[interactive widget: no static snapshot was saved; "
                                          "run the notebook to use it]"}
                data.clear()
                data.update(kept)
    return nb


def external_references(html_text: str) -> list[str]:
    """Everything in an HTML page that would make a browser load something from elsewhere.

    Returns ``'<tag>: <url>'`` strings for scripts, stylesheets, images,
    frames, media and CSS ``url()``/``@import`` that are not ``data:`` URIs or
    in-page anchors. Plain hyperlinks (``<a href>``) are not loads and are
    not listed. An empty list means the page is self-contained.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_text, "html.parser")
    found = []
    for tag in soup.find_all(True):
        if tag.name == "script" and tag.get("src"):
            found.append(f"script: {tag['src']}")
        for attr in ("src", "srcset", "data", "poster", "background"):
            v = tag.get(attr)
            if v and tag.name != "script" and not str(v).strip().lower().startswith("data:"):
                found.append(f"{tag.name}[{attr}]: {v}")
        if tag.name == "link" and tag.get("href"):
            found.append(f"link: {tag['href']}")
        if tag.name == "a":
            continue
        style = (tag.string or "") if tag.name == "style" else tag.get("style", "")
        found += [f"{tag.name} css: {m.group(0)[:120]}" for m in _CSS_URL.finditer(style)
                  if not m.group(0)[4:].strip(" '\"").startswith("#")]
        found += [f"{tag.name} css: {m.group(0)[:120]}" for m in _CSS_IMPORT.finditer(style)]
    return found


def _header_breaks(soup: Any) -> None:
    """Let table headers wrap after underscores (``volume_<wbr>mm3``), and nowhere else inside a
    word: tidy column names are long single words that printed one letter per line otherwise."""
    from bs4 import NavigableString

    for th in soup.find_all("th"):
        for text in list(th.find_all(string=True)):
            if "_" not in text or not isinstance(text, NavigableString):
                continue
            parts = str(text).split("_")
            new: list[Any] = []
            for i, part in enumerate(parts):
                if i < len(parts) - 1:
                    new += [NavigableString(part + "_"), soup.new_tag("wbr")]
                elif part:
                    new.append(NavigableString(part))
            text.replace_with(*new)


def _make_static(html_text: str, title: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_text, "html.parser")
    for tag in soup.find_all(["script", "link", "base", "iframe", "object", "embed"]):
        tag.decompose()
    for tag in soup.find_all("meta", attrs={"http-equiv": True}):
        tag.decompose()
    for tag in soup.find_all(["img", "video", "audio", "source", "input", "track"]):
        for attr in ("src", "srcset", "poster"):
            v = tag.get(attr)
            if v and not str(v).strip().lower().startswith("data:"):
                del tag[attr]
                if tag.name == "img":
                    tag["alt"] = f"[image not embedded: {v}]"
    for tag in soup.find_all(style=True):
        tag["style"] = _CSS_IMPORT.sub("", _CSS_URL.sub("none", tag["style"]))
    for tag in soup.find_all(True):
        for attr in ("data", "background"):
            if tag.name != "a" and tag.get(attr) and _REMOTE.match(str(tag[attr])):
                del tag[attr]
    for style in soup.find_all("style"):
        css = style.string or ""
        cleaned = _CSS_IMPORT.sub("", _CSS_URL.sub(
            lambda m: m.group(0) if m.group(0)[4:].strip(" '\"").startswith("#") else "none",
            _CSS_COMMENT.sub("", css)))
        if cleaned != css:
            style.string = cleaned
    _header_breaks(soup)
    head = soup.head or soup.new_tag("head")
    if soup.head is None:
        (soup.html or soup).insert(0, head)
    csp = soup.new_tag("meta")
    csp["http-equiv"] = "Content-Security-Policy"
    csp["content"] = _CSP
    head.insert(0, csp)
    extra = soup.new_tag("style")
    extra.string = _EXTRA_CSS
    head.append(extra)
    if soup.title is None:
        t = soup.new_tag("title")
        t.string = title
        head.append(t)
    else:
        soup.title.string = title
    return str(soup)


def to_html(nb: Any, path: str | os.PathLike, *, hide_code: bool = False,
            title: str | None = None) -> Path:
    """Write ``nb`` (an executed notebook) as one self-contained HTML file.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        Not modified.
    path : path
        The ``.html`` file to write.
    hide_code : bool
        Results-only report: no code cells' inputs, no prompts. Cells tagged
        ``remove-cell`` are left out and those tagged ``hide-input`` lose
        their input in any case.
    title : str, optional
        Page title (default: the file name's stem).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    RuntimeError
        If a reference to an external resource survived (a bug: report it).
    """
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    path = Path(path)
    nb = _static_widgets(copy.deepcopy(nb))
    cfg = Config()
    cfg.TagRemovePreprocessor.remove_cell_tags = {"remove-cell", "remove_cell"}
    cfg.TagRemovePreprocessor.remove_input_tags = {"hide-input", "remove-input", "remove_input"}
    cfg.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(config=cfg, template_name="lab", embed_images=True,
                            exclude_input=hide_code, exclude_input_prompt=hide_code,
                            exclude_output_prompt=hide_code)
    exporter.register_preprocessor(TagRemovePreprocessor(config=cfg), enabled=True)
    title = title or path.stem
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": title, "path": str(path.parent)}})
    page = _make_static(body, title)
    left = external_references(page)
    if left:
        raise RuntimeError(f"the HTML report still references external resources: {left[:5]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def find_chromium() -> str:
    """Path of a Chromium/Chrome executable: ``$MEDLAB_CHROMIUM`` or one on ``PATH``.

    Raises
    ------
    medlab.errors.MissingDependencyError
        None found; the message says how to install Debian's ``chromium``.
    """
    env = os.environ.get("MEDLAB_CHROMIUM")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise MissingDependencyError(
                f"MEDLAB_CHROMIUM={env!r} is not an executable file; point it at a Chromium or "
                "Chrome binary, or unset it to use `chromium` from PATH")
        return env
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise MissingDependencyError(
        "PDF export prints the HTML report with Chromium, and no Chromium was found (looked for "
        f"{', '.join(_CHROMIUM_NAMES)} on PATH and $MEDLAB_CHROMIUM). Install it: "
        "`apt-get install chromium` (Debian/Ubuntu), or set MEDLAB_CHROMIUM=/path/to/chrome")


def _is_local(url: str) -> bool:
    u = url.lower()
    return (u.startswith(("file:", "data:", "about:", "blob:"))
            or re.match(r"^[a-z]+://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)", u) is not None)


_PRINT_WIDTH_PX = round((210 - 20) / 25.4 * 96)  # A4 less 2 x 10 mm margins, CSS pixels
# a table wider than the page is scaled down to fit (not cut at the page edge), at most to half
_FIT_TABLES_JS = """() => {
  for (const table of document.querySelectorAll('table')) {
    // the printed page lays the cells out a little narrower than the screen: keep 8 % spare
    const page = document.documentElement.clientWidth;
    const parent = table.parentElement ? table.parentElement.clientWidth : page;
    const room = 0.92 * Math.min(parent, page - table.getBoundingClientRect().left);
    const need = table.scrollWidth;
    if (room > 0 && need > room) table.style.zoom = String(Math.max(0.5, room / need));
  }
}"""


def _print_pdf(html_path: Path, pdf_path: Path, executable: str, timeout_s: float) -> list[str]:
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def route(r: Any) -> None:
        if _is_local(r.request.url):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS),
                                    timeout=timeout_s * 1000)
        try:
            # laid out at the printed width (A4 less the margins), so that tables can be fitted
            page = browser.new_page(viewport={"width": _PRINT_WIDTH_PX, "height": 1100})
            page.route("**/*", route)
            page.goto(html_path.resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
            page.emulate_media(media="print")
            page.evaluate(_FIT_TABLES_JS)
            page.pdf(path=str(pdf_path), format="A4", print_background=True,
                     margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
        finally:
            browser.close()
    return blocked


def to_pdf(html_path: str | os.PathLike, pdf_path: str | os.PathLike | None = None, *,
           timeout_s: float = 120) -> Path:
    """Print an HTML report to PDF with headless Chromium (network blocked).

    Parameters
    ----------
    html_path : path
        A self-contained HTML report (:func:`to_html`).
    pdf_path : path, optional
        Default: beside the HTML with suffix ``.pdf``.
    timeout_s : float
        Limit for starting the browser and loading the page.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    medlab.errors.MissingDependencyError
        Playwright (the Python package) or Chromium is missing; the message
        says what to install.
    """
    html_path = Path(html_path)
    if not html_path.is_file():
        raise FileNotFoundError(f"no HTML report at {str(html_path)!r}; write one with to_html")
    pdf_path = Path(pdf_path) if pdf_path is not None else html_path.with_suffix(".pdf")
    import_optional("playwright.sync_api", feature="PDF export", extra="report",
                    package="playwright", hint=" (medlab uses the system Chromium, so "
                    "`playwright install` is not needed)")
    executable = find_chromium()
    # Playwright's sync API refuses to run inside an asyncio loop (a Jupyter kernel has one):
    # drive it from a thread of its own
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_print_pdf, html_path, pdf_path, executable, timeout_s).result()
    return pdf_path
