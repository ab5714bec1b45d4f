"""Make returned matplotlib figures display in Jupyter.

medlab's plot functions build ``matplotlib.figure.Figure`` objects without
pyplot (so nothing leaks into pyplot's global state). IPython shows such a
figure as a picture only once its PNG formatter for figures is registered,
which normally happens as a side effect of using pyplot; this does it
explicitly, and only inside a running IPython kernel.
"""

from __future__ import annotations

__all__ = ["ensure_figure_display"]


def ensure_figure_display() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is not required outside notebooks
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters.get("image/png")
    if png is None or Figure in png.type_printers:
        return
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"}, bbox_inches="tight")
