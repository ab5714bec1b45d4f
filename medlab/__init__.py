"""medlab: a Jupyter-based research environment for medical images.

The image model is :class:`medlab.Image` (array + 4x4 affine in LPS mm,
axes ordered slice, row, column); :func:`medlab.load` and
:func:`medlab.save` read and write it. Subpackages: ``io``, ``data``,
``cohort``, ``segmentation``, ``measure``, ``registration``, ``timeseries``,
``diffusion``, ``filters``, ``view``, ``report``; ``privacy`` holds the one
pseudonym and display-name rule they all use.
"""

from . import data, diffusion, errors, filters, geometry, io, measure, privacy, report
from ._version import __version__
from .image import Image
from .io import load, save

__all__ = [
    "Image", "__version__", "cohort", "data", "diffusion", "errors", "filters", "geometry", "io",
    "load", "measure", "privacy", "registration", "report", "save", "segmentation", "timeseries",
    "view",
]


_LAZY = ("view", "cohort", "segmentation", "registration", "timeseries")
"""Subpackages that pull in matplotlib, DuckDB, highdicom, ...: imported on first use so
that ``import medlab`` stays light."""


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'medlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dir(ml) and tab completion list the lazy subpackages before their first use
    return sorted(set(globals()) | set(__all__))
