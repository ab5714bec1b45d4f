"""Sphinx configuration of medlab's documentation site (``python3 tasks.py docs``).

Offline by design: the theme's assets are bundled, no MathJax, no widget JavaScript from
a CDN. Generated at build time (and git-ignored): ``api/medlab*.rst`` (one page per
public module, from each ``__all__``) and ``notebooks/*.ipynb`` (the curated notebooks with
their outputs, reused from ``build/executed-notebooks/`` where the test suite or
``tasks.py lab --execute`` left a current copy, executed otherwise).
Set ``MEDLAB_DOCS_NOTEBOOKS=0`` to build without the notebook pages.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(REPO))

import sitegen  # noqa: E402  (docs/sitegen.py: the generators, importable by the tests)

import medlab  # noqa: E402

project = "medlab"
author = "medlab developers"
copyright = "medlab developers"
version = release = medlab.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]
templates_path: list[str] = []

# --- API reference
sitegen.write_api_pages(DOCS / "api")
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- notebooks: rendered with their outputs, never executed by myst-nb itself
if os.environ.get("MEDLAB_DOCS_NOTEBOOKS", "1") != "0":
    sitegen.prepare_notebooks(REPO / "notebooks", REPO / "build" / "executed-notebooks",
                             DOCS / "notebooks")
else:
    sitegen.skip_notebooks(DOCS / "notebooks")
nb_execution_mode = "off"
# widgets: their manager would come from a CDN, so the site shows the PNG each medlab
# widget's output carries (the saved widget state is dropped by sitegen)
nb_ipywidgets_js: dict = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_output_stderr = "remove"
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# --- HTML: pydata theme, everything served from the site itself
html_theme = "pydata_sphinx_theme"
html_title = f"medlab {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "icon_links": [],
}
html_show_sourcelink = False
html_static_path: list[str] = []
html_copy_source = False
html_math_renderer = "plain"  # registered below: LaTeX shown as text, no MathJax CDN


def _math_plain(app):
    from docutils import nodes

    def inline(self, node):
        self.body.append(self.starttag(node, "code", "", CLASS="math"))
        self.body.append(self.encode(node.astext()))
        self.body.append("</code>")
        raise nodes.SkipNode

    def block(self, node):
        self.body.append(self.starttag(node, "pre", "", CLASS="math"))
        self.body.append(self.encode(node.astext()))
        self.body.append("</pre>")
        raise nodes.SkipNode

    app.add_html_math_renderer("plain", (inline, None), (block, None))


def setup(app):
    _math_plain(app)
    app.connect("build-finished", sitegen.check_offline)
