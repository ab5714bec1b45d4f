"""nnU-Net v2 results folders, run through nnunetv2's own predictor."""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...image import Image
from ._base import Model, ModelError, read_json, require

__all__ = ["NnUNetModel"]

#: nnU-Net readers that make every image RAS+ before training and inference.
_REORIENTING_READERS = ("NibabelIOWithReorient",)
_NIFTI_RAS = "SAR"  # Image.orientation of a NIfTI image stored RAS+


class NnUNetModel(Model):
    """A trained nnU-Net v2 model: its results folder, run with ``nnunetv2``.

    The folder is the one ``nnUNetv2_train`` writes
    (``Dataset001_Name/nnUNetTrainer__nnUNetPlans__3d_fullres``): ``dataset.json``
    (channel and label names), ``plans.json`` (spacing, normalisation,
    patch size, network) and ``fold_N/checkpoint_final.pth``.

    nnU-Net's predictor does what ``plans.json`` declares: cropping to the
    non-zero region, the normalisation scheme of each channel, resampling
    to the training spacing, Gaussian-weighted sliding windows (with
    mirroring when the checkpoint allows it) and resampling back. medlab
    gives it the image in the array orientation it was trained on and puts
    the labels back on the input grid.

    Parameters
    ----------
    folder : path
        The results folder.
    folds : sequence of int or 'all', optional
        Folds to ensemble; default every ``fold_*`` with a checkpoint.
    checkpoint : str
        Checkpoint file name in each fold.
    orientation : str, optional
        ``Image.orientation`` of the training images as :func:`medlab.load`
        reads them (e.g. ``'SAR'`` for NIfTI files stored RAS+, ``'SPL'``
        for LPS+ / DICOM axial). nnU-Net does not record it, except for
        the reader ``NibabelIOWithReorient`` (always RAS+); otherwise it
        must be given (check a training image: ``ml.load(path).orientation``).
    tile_step_size : float
        Window step as a fraction of the patch (nnU-Net's default 0.5).
    mirroring : bool
        Test-time mirroring along the axes the checkpoint allows (nnU-Net's
        default; up to 8 network runs per window in 3D).
    """

    def __init__(self, folder: str | os.PathLike, *, folds: Sequence[int | str] | None = None,
                 checkpoint: str = "checkpoint_final.pth", orientation: str | None = None,
                 tile_step_size: float = 0.5, mirroring: bool = True) -> None:
        super().__init__()
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ModelError(f"nnU-Net results folder {self.folder} does not exist")
        what = f"nnU-Net model {self.folder}"
        self.dataset = read_json(self.folder / "dataset.json", what)
        self.plans = read_json(self.folder / "plans.json", what)
        if folds is None:
            folds = sorted((p.parent.name[5:] for p in self.folder.glob(f"fold_*/{checkpoint}")),
                           key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f))
        self.folds = tuple(int(f) if str(f).isdigit() else str(f) for f in folds)
        self._files = [self.folder / f"fold_{f}" / checkpoint for f in self.folds]
        missing = [str(p) for p in self._files if not p.is_file()]
        if not self._files or missing:
            raise ModelError(
                f"{what} has no checkpoint {missing or checkpoint!r} (expected "
                f"fold_<n>/{checkpoint}); pass folds= and checkpoint= naming files that exist")
        self.checkpoint = checkpoint
        reader = str(self.plans.get("image_reader_writer", ""))
        if orientation is None and reader in _REORIENTING_READERS:
            orientation = _NIFTI_RAS
        if orientation is None:
            raise ModelError(
                f"{what}: nnU-Net does not record the orientation of its training images "
                f"(plans.json image_reader_writer is {reader!r}), and a network only works on "
                "images whose axes point the same way; pass orientation= as the "
                "Image.orientation of a training image, e.g. ml.load('imagesTr/case_0000.nii.gz')"
                ".orientation ('SAR' for NIfTI files stored RAS+, 'SPL' for LPS+)")
        self.orientation = orientation.upper()
        channels = self.dataset.get("channel_names") or self.dataset.get("modality") or {"0": ""}
        self.channel_names = [str(channels[k]) for k in sorted(channels, key=int)]
        self.n_channels = len(self.channel_names)
        self.labels = _label_names(self.dataset)
        self.name = str(self.plans.get("dataset_name") or self.folder.parent.name)
        self.version = str(self.dataset.get("release") or self.dataset.get("version")
                           or f"{self.folder.name}, folds {','.join(map(str, self.folds))}")
        self.source = f"nnU-Net v2 results folder {self.folder}"
        self.tile_step_size = float(tile_step_size)
        self.mirroring = bool(mirroring)
        self._predictor: Any = None
        self._predictor_device: Any = None

    def weight_files(self) -> list[Path]:
        return list(self._files)

    def predictor(self, device: Any) -> Any:
        """nnU-Net's own ``nnUNetPredictor`` for this folder, initialised on ``device``."""
        require("torch", feature="nnU-Net models")
        module = require("nnunetv2.inference.predict_from_raw_data", feature="nnU-Net models")
        if self._predictor is None or self._predictor_device != device:
            with warnings.catch_warnings(), _quiet():
                warnings.simplefilter("ignore")
                p = module.nnUNetPredictor(
                    tile_step_size=self.tile_step_size, use_gaussian=True,
                    use_mirroring=self.mirroring, perform_everything_on_device=device.type == "cuda",
                    device=device, verbose=False, verbose_preprocessing=False, allow_tqdm=True)
                p.initialize_from_trained_model_folder(str(self.folder), use_folds=self.folds,
                                                       checkpoint_name=self.checkpoint)
            self._predictor, self._predictor_device = p, device
        return self._predictor

    def _predict(self, image: Image, *, device: Any, progress: bool, **options: Any) -> np.ndarray:
        predictor = self.predictor(device)
        predictor.allow_tqdm = bool(progress)
        arr = np.asarray(image.array, dtype=np.float32)
        # nnU-Net's array order is SimpleITK's (slice, row, column) = medlab's, for every reader
        arr = np.moveaxis(arr, -1, 0) if image.channels else arr[np.newaxis]
        props = {"spacing": [float(s) for s in image.spacing]}
        with _quiet():
            seg = predictor.predict_single_npy_array(np.ascontiguousarray(arr), props, None, None,
                                                     False)
        return np.asarray(seg)


def _label_names(dataset: dict[str, Any]) -> dict[int, str]:
    labels = dataset.get("labels") or {}
    order = dataset.get("regions_class_order")
    names: dict[int, str] = {}
    for name, value in labels.items():
        if isinstance(value, list | tuple):  # region-based training: value = position in order
            if order is None:
                continue
            region = [v for v in value]
            for n, v in enumerate(order, start=1):
                if v in region and n not in names:
                    names[n] = str(name)
                    break
        elif int(value) != 0:
            names[int(value)] = str(name)
    return dict(sorted(names.items()))


class _quiet:
    """Silence nnU-Net's prints to stdout (the library never prints where it should return)."""

    def __enter__(self) -> None:
        import contextlib
        import io

        self._ctx = contextlib.redirect_stdout(io.StringIO())
        self._ctx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def nnunet_version() -> str:
    """The installed nnunetv2 version (for benchmarks and reports)."""
    return importlib.metadata.version("nnunetv2")
