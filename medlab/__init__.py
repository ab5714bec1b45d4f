"""medlab: a Jupyter-based research environment for medical images.

The image model is :class:`medlab.Image` (array + 4x4 affine in LPS mm,
axes ordered slice, row, column); :func:`medlab.load` and
:func:`medlab.save` read and write it. Subpackages: ``io``, ``data``,
``cohort``, ``segmentation``, ``measure``, ``registration``, ``timeseries``,
``diffusion``, ``filters``, ``view``, ``report``; ``privacy`` holds the one
pseudonym and display-name rule they all use.

``import medlab`` loads only numpy and the image model: each subpackage, and
the heavy libraries behind it (pydicom, SimpleITK, scipy, pandas, nibabel,
matplotlib, DuckDB, highdicom, ...), is imported on first use, e.g. at the
first ``ml.load(...)`` or ``ml.view``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors, geometry
from ._version import __version__
from .image import Image

if TYPE_CHECKING:  # pragma: no cover
    from . import (
        cohort,
        data,
        diffusion,
        filters,
        io,
        measure,
        privacy,
        registration,
        report,
        segmentation,
        timeseries,
        view,
    )
    from .io import load, save

__all__ = [
    "Image", "__version__", "cohort", "data", "diffusion", "errors", "filters", "geometry", "io",
    "load", "measure", "privacy", "registration", "report", "save", "segmentation", "timeseries",
    "view",
]

#: subpackages imported on first attribute access (they pull in the heavy dependencies)
_SUBPACKAGES = ("cohort", "data", "diffusion", "filters", "io", "measure", "privacy",
                "registration", "report", "segmentation", "timeseries", "view")
#: functions re-exported from a subpackage, imported with it on first use
_FUNCTIONS = {"load": "io", "save": "io"}


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name in _FUNCTIONS:
        value = getattr(importlib.import_module(f".{_FUNCTIONS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dir(ml) and tab completion list the lazy subpackages before their first use
    return sorted(set(globals()) | set(__all__))
