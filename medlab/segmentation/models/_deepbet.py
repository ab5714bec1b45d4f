"""deepbet: T1-weighted brain extraction whose weights ship inside its wheel (MIT licence)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np

from ...image import Image
from ._base import Model, ModelError, require

__all__ = ["DeepBet"]


class DeepBet(Model):
    """Brain extraction of T1-weighted MRI with deepbet (Fisch et al., Comput. Biol. Med. 2024).

    The weights (two TorchScript networks, about 17 MB) ship in the
    ``deepbet`` wheel (MIT licence), so it runs offline. deepbet reads the
    image made RAS+ (``nibabel.as_closest_canonical``); here the image is
    reoriented the same way (:attr:`orientation` ``'SAR'``), and deepbet's
    own steps follow: intensities scaled by their 0.5 and 99.5 percentiles, a
    128^3 network finds the brain's bounding box, a 256^3 network segments
    it, then the largest component is kept and holes are filled. Voxel size
    is not used (the networks see resized boxes).

    Parameters
    ----------
    threshold : float
        Probability above which a voxel is brain (deepbet's default 0.5).
    """

    name = "deepbet"
    orientation = "SAR"

    def __init__(self, *, threshold: float = 0.5) -> None:
        super().__init__()
        require("torch", feature="the deepbet model")
        utils = require("deepbet.utils", feature="the deepbet model")
        self.version = importlib.metadata.version("deepbet")
        self.threshold = float(threshold)
        self.labels = {1: "Brain"}
        self.source = f"deepbet {self.version} (PyPI wheel, MIT licence)"
        models = Path(utils.DATA_PATH) / "models"
        self._files = [models / "model.pt", models / "bbox_model.pt"]
        missing = [str(p) for p in self._files if not p.is_file()]
        if missing:
            raise ModelError(f"the deepbet package is installed but its weights are missing: "
                             f"{missing}; reinstall it (pip install --force-reinstall deepbet)")
        self._bet: Any = None

    def weight_files(self) -> list[Path]:
        return list(self._files)

    def _predict(self, image: Image, *, device: Any, progress: bool, **options: Any) -> np.ndarray:
        from deepbet.bet import BrainExtraction

        if self._bet is None:
            self._bet = BrainExtraction(no_gpu=True, model_path=str(self._files[0]),
                                        bbox_model_path=str(self._files[1]))
        bet = self._bet
        bet.model.to(device)
        bet.bbox_model.to(device)
        # medlab (slice, row, column) in 'SAR' is NIfTI (i, j, k) in RAS+ reversed
        x = np.ascontiguousarray(np.asarray(image.array, dtype=np.float32).transpose(2, 1, 0))
        mask = bet.run_model(x) > self.threshold
        mask = bet.postprocess(mask)
        return np.ascontiguousarray(mask.transpose(2, 1, 0)).astype(np.uint8)
