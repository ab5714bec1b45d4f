"""Deep-learning segmentation models that run offline, with labels on the input's grid.

One call takes an :class:`medlab.Image` and returns a label image on
exactly its grid (any orientation, oblique included), with the label
names in ``meta['labels']`` and the model's provenance (name, version,
SHA-256 of the weights) in ``meta['algorithm']``, which
:func:`medlab.segmentation.write_seg` records as an AUTOMATIC algorithm::

    model = ml.segmentation.models.load("deepbet")          # weights in the package
    brain = model(t1)                                        # on t1's grid
    model = ml.segmentation.models.load("path/to/nnUNet_results/Dataset001_X/"
                                        "nnUNetTrainer__nnUNetPlans__3d_fullres",
                                        orientation="SAR")
    model = ml.segmentation.models.load("path/to/monai_bundle")
    model = ml.segmentation.models.load("totalsegmentator", task="total", fast=True)

Formats (each through its own library, installed by ``medlab[dl]``):

* :class:`DeepBet` — T1 brain extraction, weights shipped in the wheel;
* :class:`NnUNetModel` — an nnU-Net v2 results folder (``nnunetv2``);
* :class:`MonaiBundle` — a MONAI bundle (``monai``);
* :class:`TotalSegmentator` — when its weights are on disk (never downloaded).

:func:`available` lists the registered models, :func:`register` adds one.
:func:`example_nnunet` and :func:`example_monai_bundle` write tiny models
with known answers, for teaching and tests.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._base import Model, ModelError, aligned_grid, torch_device
from ._deepbet import DeepBet
from ._examples import example_monai_bundle, example_nnunet
from ._monai import MonaiBundle
from ._nnunet import NnUNetModel
from ._totalseg import TotalSegmentator

__all__ = [
    "DeepBet",
    "Model",
    "ModelError",
    "MonaiBundle",
    "NnUNetModel",
    "TotalSegmentator",
    "aligned_grid",
    "available",
    "example_monai_bundle",
    "example_nnunet",
    "load",
    "register",
    "torch_device",
]

_REGISTRY: dict[str, dict[str, Any]] = {}


def register(name: str, factory: Callable[..., Model], *, description: str = "",
             package: str = "", weights: str = "") -> None:
    """Make ``load(name, **options)`` return ``factory(**options)``.

    ``package`` is the import name that must be installed; ``weights`` says
    where the weights come from.
    """
    if not callable(factory):
        raise TypeError(f"factory must be callable (options -> Model), got {factory!r}")
    _REGISTRY[str(name).lower()] = {"factory": factory, "description": description,
                                    "package": package, "weights": weights}


register("deepbet", DeepBet, package="deepbet",
         description="brain extraction of T1-weighted MRI (deepbet, MIT licence)",
         weights="in the deepbet wheel (offline)")
register("totalsegmentator", TotalSegmentator, package="totalsegmentator",
         description="CT/MR anatomy, 100+ structures (TotalSegmentator, Apache-2.0; task=...)",
         weights="on disk only: ~/.totalsegmentator or $TOTALSEG_WEIGHTS_PATH")


def available() -> Any:
    """The registered models: ``name``, ``description``, ``package``, ``installed``, ``weights``."""
    import pandas as pd

    rows = [{"name": name, "description": e["description"], "package": e["package"],
             "installed": (not e["package"]) or importlib.util.find_spec(e["package"]) is not None,
             "weights": e["weights"]} for name, e in _REGISTRY.items()]
    return pd.DataFrame(rows, columns=["name", "description", "package", "installed", "weights"])


def load(name_or_folder: str | os.PathLike, **options: Any) -> Model:
    """A model by registered name, or from a folder (nnU-Net results folder or MONAI bundle).

    Parameters
    ----------
    name_or_folder : str or path
        A name of :func:`available` (``'deepbet'``, ``'totalsegmentator'``)
        or a folder: with ``dataset.json`` and ``plans.json`` it is an
        nnU-Net v2 results folder (:class:`NnUNetModel`), with
        ``configs/metadata.json`` a MONAI bundle (:class:`MonaiBundle`).
    **options
        Passed to the model's class.

    Raises
    ------
    ModelError
        Unknown name, or a folder of no known format.
    """
    key = str(name_or_folder)
    if key.lower() in _REGISTRY and not Path(key).is_dir():
        return _REGISTRY[key.lower()]["factory"](**options)
    folder = Path(name_or_folder)
    if folder.is_dir():
        if (folder / "dataset.json").is_file() and (folder / "plans.json").is_file():
            return NnUNetModel(folder, **options)
        if (folder / "configs" / "metadata.json").is_file():
            return MonaiBundle(folder, **options)
        raise ModelError(
            f"{folder} is neither an nnU-Net v2 results folder (dataset.json, plans.json, "
            "fold_N/checkpoint_final.pth) nor a MONAI bundle (configs/metadata.json, "
            "configs/inference.json, models/model.pt); for nnU-Net point at the folder "
            "named <Trainer>__<Plans>__<configuration>")
    raise ModelError(f"no model named {key!r} and no such folder; registered models: "
                     f"{', '.join(sorted(_REGISTRY))} (see available())")
