"""The one helper for optional dependencies (medlab._optional)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import medlab as ml
from medlab._optional import import_optional, install_line
from medlab.errors import MissingDependencyError


def test_present_module_is_returned() -> None:
    import json

    assert import_optional("json", feature="x", extra="view") is json


def test_missing_module_names_package_extra_and_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage.measure", None)  # makes the import fail
    with pytest.raises(MissingDependencyError) as info:
        import_optional("skimage.measure", feature="Morphological features",
                        extra="segmentation", package="scikit-image")
    msg = str(info.value)
    assert msg.startswith("Morphological features needs the optional package 'scikit-image'")
    assert 'pip install "medlab[segmentation]"' in msg
    assert isinstance(info.value, ImportError)  # callers catching ImportError keep working
    assert isinstance(info.value.__cause__, ImportError)


def test_no_extra_installs_the_package_and_hint_is_appended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(MissingDependencyError, match=r"pip install zstandard; or set X$"):
        import_optional("zstandard", feature="it", extra=None, hint="; or set X")
    assert install_line("pacs", "pynetdicom") == 'pip install "medlab[pacs]"'


def test_features_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two features from different subpackages raise the same kind of message."""
    monkeypatch.setitem(sys.modules, "itk", None)
    img = ml.Image(np.zeros((2, 3, 4), np.float32), np.eye(4))
    with pytest.raises(MissingDependencyError, match=r"ITK images needs .*'itk'.*medlab\[itk\]"):
        img.to_itk()
    monkeypatch.setitem(sys.modules, "highdicom", None)
    from medlab.segmentation import read_seg

    with pytest.raises(MissingDependencyError, match=r"'highdicom'.*medlab\[segmentation\]"):
        read_seg("does-not-matter.dcm")
