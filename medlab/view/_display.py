"""Display plumbing: returned figures show in Jupyter; widgets carry a static PNG.

medlab's plot functions build ``matplotlib.figure.Figure`` objects without
pyplot (so nothing leaks into pyplot's global state). IPython shows such a
figure as a picture only once its PNG formatter for figures is registered,
which normally happens as a side effect of using pyplot; this does it
explicitly, and only inside a running IPython kernel.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FullStateOnOpen", "StaticSnapshot", "ensure_figure_display", "figure_png",
           "require_matplotlib"]


def require_matplotlib(feature: str) -> None:
    """Raise :class:`~medlab.errors.MissingDependencyError` naming the ``plot`` extra when
    matplotlib is missing (the static plots need it; ``import medlab.view`` does not)."""
    from .._optional import import_optional

    import_optional("matplotlib", feature=feature, extra="plot")


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


def figure_png(fig: Any, *, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (Agg, no pyplot state)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class StaticSnapshot:
    """Mixin for medlab widgets: a static PNG of the current state beside the live view.

    A widget class mixes this in and implements :meth:`snapshot`, which
    returns a matplotlib Figure drawn from the widget's Python state only.
    The notebook output then carries both the interactive view and
    ``image/png``; JupyterLab shows the widget, and nbconvert/medlab.report
    exports keep the picture (no JavaScript, no network).
    """

    def snapshot(self) -> Any:  # pragma: no cover - implemented by each widget
        """A matplotlib Figure of what the widget shows now."""
        raise NotImplementedError

    def to_png(self, *, dpi: int = 80) -> bytes:
        """The static snapshot as PNG bytes."""
        return figure_png(self.snapshot(), dpi=dpi)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        import base64

        out = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        # ipywidgets returns the bundle; anywidget returns (bundle, metadata)
        bundle, metadata = out if isinstance(out, tuple) else (out, None)
        bundle = dict(bundle or {})
        try:
            bundle["image/png"] = base64.b64encode(self.to_png()).decode("ascii")
        except Exception as exc:  # a snapshot failure must not hide the live widget
            bundle["text/plain"] = f"{bundle.get('text/plain', '')} (no snapshot: {exc})"
        return bundle if metadata is None else (bundle, metadata)


SYNC_REQUEST = "medlab-sync"
"""The message a medlab front end sends once its module has loaded: 'send me your state'."""


class FullStateOnOpen:
    """Mixin for medlab widgets: the front end gets the complete state with the widget's creation.

    ipywidgets opens the front-end connection (the comm) at the end of
    ``Widget.__init__``, with the traits' *default* values; everything a
    widget sets afterwards travels as separate updates. anywidget (0.11)
    gives a front-end module 2 s to load and drops the updates that wait for
    it when loading takes longer (a busy page: software 3D rendering, Run
    All), which left viewers empty. A widget using this mixin opens its comm
    only when its ``__init__`` calls :meth:`_open_with_state`, after every
    trait is set, so the creation message carries the whole state.

    Front ends that send :data:`SYNC_REQUEST` once loaded get the whole state
    again (an update sent while they were loading may have been dropped).
    """

    _defer_open = False  # open as ipywidgets does, unless __init__ below ran

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._defer_open = True
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.on_msg(self._on_sync_request)  # type: ignore[attr-defined]

    def open(self) -> None:
        """Open the comm (deferred until :meth:`_open_with_state` during construction)."""
        if not self._defer_open:
            super().open()  # type: ignore[misc]

    def _open_with_state(self) -> None:
        self._defer_open = False
        self.open()

    def _on_sync_request(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == SYNC_REQUEST:
            self.send_state()  # type: ignore[attr-defined]
