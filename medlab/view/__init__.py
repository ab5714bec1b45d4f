"""Everything that draws: static plots and widgets.

Compute functions elsewhere return data; functions here draw it. Every widget
also carries a static PNG of its state, so exported reports show a picture.

The static plots (:func:`plot_slices`, :func:`plot_map`, :func:`plot_curves`,
:func:`plot_registration`, :func:`cohort_overview`) need matplotlib only, the
``plot`` extra. The widgets (:func:`slices`, :func:`compare`, :func:`curves`,
:func:`landmarks`, :func:`gallery`, :func:`volume` and their classes) need
ipywidgets and anywidget, the ``view`` extra; their modules are imported on
first use. Without them a widget's name still resolves (``from medlab.view
import slices`` works), and using it raises
:class:`~medlab.errors.MissingDependencyError` with the install line, the way
nibabel's ``optional_package`` defers the error to first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NoReturn

from .._optional import import_optional
from ..errors import MissingDependencyError
from ._cohort import cohort_overview
from ._gallery_tiles import Tile, series_thumbnail
from ._plots import plot_curves, plot_map, plot_registration
from ._slices import plane_slices, plot_slices
from ._volume_itk import ViewerUnavailableError
from ._window import CMAPS, WINDOW_PRESETS, apply_window, auto_window, resolve_window

if TYPE_CHECKING:  # pragma: no cover
    from ._curves_widget import CurveExplorer, curves
    from ._gallery import Gallery, gallery
    from ._landmarks_widget import LandmarkPairs, landmarks
    from ._slices_widget import SliceViewer, compare, slices
    from ._volume import VolumeView, volume

__all__ = ["CMAPS", "WINDOW_PRESETS", "CurveExplorer", "Gallery", "LandmarkPairs", "SliceViewer",
           "Tile", "ViewerUnavailableError", "VolumeView", "apply_window", "auto_window",
           "cohort_overview", "compare", "curves", "gallery", "landmarks", "plane_slices",
           "plot_curves", "plot_map", "plot_registration", "plot_slices", "resolve_window",
           "series_thumbnail", "slices", "volume"]

#: the widgets (the 'view' extra): name -> module, imported on first use
_WIDGETS = {
    "SliceViewer": "_slices_widget", "compare": "_slices_widget", "slices": "_slices_widget",
    "CurveExplorer": "_curves_widget", "curves": "_curves_widget",
    "LandmarkPairs": "_landmarks_widget", "landmarks": "_landmarks_widget",
    "Gallery": "_gallery", "gallery": "_gallery",
    "VolumeView": "_volume", "volume": "_volume",
}
#: what every widget module imports; checked first, so a missing one names the extra
_WIDGET_PACKAGES = ("ipywidgets", "anywidget")


class _Unavailable(type):
    """Metaclass of the stand-in for a widget whose packages are missing: using it raises."""

    _error: str

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise MissingDependencyError(cls._error)

    def __getattr__(cls, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingDependencyError(cls._error)

    def __repr__(cls) -> str:
        return f"<medlab.view.{cls.__name__}, unavailable: {cls._error}>"


def _unavailable(name: str, error: MissingDependencyError) -> type:
    """A stand-in for widget ``name``: calling it (or anything on it) raises ``error`` again.

    A class, so that ``isinstance(x, ml.view.SliceViewer)`` stays a valid (False) test.
    """
    def init_subclass(cls: type, **kwargs: Any) -> NoReturn:
        raise MissingDependencyError(str(error))

    return _Unavailable(name, (), {"_error": str(error), "__module__": __name__,
                                   "__doc__": f"Unavailable: {error}",
                                   "__init_subclass__": classmethod(init_subclass)})


def __getattr__(name: str) -> Any:
    module = _WIDGETS.get(name)
    if module is None:
        raise AttributeError(f"module 'medlab.view' has no attribute {name!r}")
    try:
        for package in _WIDGET_PACKAGES:
            import_optional(package, feature=f"ml.view.{name} (a Jupyter widget)", extra="view")
    except MissingDependencyError as exc:
        return _unavailable(name, exc)  # not cached: installing the extra later works
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
