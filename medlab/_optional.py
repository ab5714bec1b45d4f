"""Optional dependencies: the one way medlab imports a package that an extra provides.

Documented internal API (used by every subpackage; not part of the public ``ml.`` namespace).
Modelled on highdicom's ``import_optional_dependency`` and nibabel's ``optional_package``: the
import happens when a feature is used, and a missing package raises
:class:`medlab.errors.MissingDependencyError` (an ``ImportError``) that names the feature, the
package and the install line, e.g. ``pip install "medlab[segmentation]"``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["import_optional", "install_line"]


def install_line(extra: str | None, package: str) -> str:
    """The command that installs ``package``: ``pip install "medlab[extra]"`` or ``pip install package``."""
    return f'pip install "medlab[{extra}]"' if extra else f"pip install {package}"


def import_optional(
    module: str,
    *,
    feature: str,
    extra: str | None,
    package: str | None = None,
    hint: str = "",
) -> ModuleType:
    """Import ``module``, or raise a :class:`~medlab.errors.MissingDependencyError` saying what to install.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"skimage.measure"``.
    feature : str
        What needs it, as the subject of the message ("reading DICOM SEG").
    extra : str or None
        The medlab extra that installs it (``"segmentation"``); None when no extra does.
    package : str, optional
        The distribution name on PyPI when it differs from the top-level module
        (``"scikit-image"`` for ``skimage``); by default the top-level module name.
    hint : str, optional
        Appended to the message (another way out, e.g. an environment variable).

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    medlab.errors.MissingDependencyError
        The module (or something it imports) cannot be imported; chained to the ImportError.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{feature} needs the optional package {name!r}, which cannot be imported ({exc}). "
            f"Install it with: {install_line(extra, name)}{hint}"
        ) from exc
