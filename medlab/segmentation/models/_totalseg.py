"""TotalSegmentator through its Python API, only with its weights already on disk."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...image import Image
from ._base import Model, ModelError, require

__all__ = ["TotalSegmentator"]


@contextlib.contextmanager
def _offline(api: Any) -> Iterator[None]:
    """Run TotalSegmentator without its usage statistics (an HTTP request per run) and with
    its prints kept out of the notebook."""
    original = api.send_usage_stats
    api.send_usage_stats = lambda *args, **kwargs: None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        api.send_usage_stats = original


class TotalSegmentator(Model):
    """A TotalSegmentator task (Wasserthal et al., Radiol. AI 2023), run offline.

    TotalSegmentator's weights are not in its wheel: they are downloaded
    on first use into ``~/.totalsegmentator/nnunet/results`` (or
    ``$TOTALSEG_WEIGHTS_PATH``). medlab never downloads at run time: it
    checks the folders of the task are there and otherwise raises a
    :class:`ModelError` naming them and how to get them. TotalSegmentator
    does its own reorientation (RAS+), resampling to the task's spacing,
    cropping and post-processing; medlab hands it the image in RAS+ (an
    oblique one resampled onto an axis-aligned grid first), switches off
    its usage statistics and puts the labels back on the input grid.

    Parameters
    ----------
    task : str
        A TotalSegmentator task (``'total'``, ``'total_mr'``, ``'lung_vessels'``...).
    fast : bool
        The 3 mm model of tasks that have one.
    weights_dir : path, optional
        Where the nnU-Net result folders are; default TotalSegmentator's
        own (``$TOTALSEG_WEIGHTS_PATH`` or ``~/.totalsegmentator/nnunet/results``).
    """

    orientation = "SAR"

    def __init__(self, task: str = "total", *, fast: bool = False,
                 weights_dir: str | Path | None = None) -> None:
        super().__init__()
        api = require("totalsegmentator.python_api", feature="TotalSegmentator")
        tasks = require("totalsegmentator.map_tasks_config", feature="TotalSegmentator")
        config_mod = require("totalsegmentator.config", feature="TotalSegmentator")
        binary = require("totalsegmentator.map_to_binary", feature="TotalSegmentator")
        if task not in tasks.TASK_CONFIGS:
            raise ModelError(f"TotalSegmentator has no task {task!r}; tasks: "
                             f"{', '.join(sorted(tasks.TASK_CONFIGS))}")
        with contextlib.redirect_stdout(io.StringIO()):
            config = api.get_task_config(task, fast=fast, quiet=True)
        if config.get("commercial"):
            raise ModelError(f"TotalSegmentator task {task!r} needs a commercial licence; medlab "
                             "runs the openly licensed tasks only")
        ids = config["task_id"] if isinstance(config["task_id"], list) else [config["task_id"]]
        if config.get("crop") is not None or config.get("cascade"):
            ids.append(852 if task.endswith("_mr") else 298)  # TotalSegmentator's cropping model
        self.weights_dir = Path(weights_dir) if weights_dir else Path(config_mod.get_weights_dir())
        folders = []
        for task_id in ids:
            info = tasks.TASK_ID_WEIGHTS_CONFIGS[task_id]
            rel = Path(info.get("rel_path") or "") / info["foldername"]
            folders.append(self.weights_dir / rel)
        missing = [str(f) for f in folders if not any(f.glob("*/fold_*/checkpoint_final.pth"))]
        if missing:
            raise ModelError(
                f"TotalSegmentator task {task!r} needs weights that are not on this machine: "
                f"{', '.join(missing)}. medlab does not download at run time. On a machine with "
                f"network access run `totalseg_download_weights -t {task}` (TotalSegmentator "
                f"{_version()}), then copy the folder {self.weights_dir} here or point "
                "TOTALSEG_WEIGHTS_PATH (or weights_dir=) at the copy")
        self.task, self.fast, self._config = task, bool(fast), config
        self._folders = folders
        self.name = f"TotalSegmentator {task}" + (" (fast)" if fast else "")
        self.version = _version()
        self.labels = {int(k): str(v) for k, v in binary.class_map.get(task, {}).items()}
        self.source = f"TotalSegmentator {self.version}, weights in {self.weights_dir}"

    def weight_files(self) -> list[Path]:
        return sorted(p for f in self._folders for p in f.glob("*/fold_*/checkpoint_final.pth"))

    def _predict(self, image: Image, *, device: Any, progress: bool, **options: Any) -> np.ndarray:
        api = require("totalsegmentator.python_api", feature="TotalSegmentator")
        import os

        dev = "cpu" if device.type == "cpu" else (
            "mps" if device.type == "mps" else f"gpu:{device.index or 0}")
        nii = Image(np.asarray(image.array, dtype=np.float32), image.affine).to_nibabel()
        saved = os.environ.get("TOTALSEG_WEIGHTS_PATH")
        os.environ["TOTALSEG_WEIGHTS_PATH"] = str(self.weights_dir)
        try:
            with _offline(api):
                seg = api.totalsegmentator(nii, None, task=self.task, fast=self.fast, ml=True,
                                           device=dev, quiet=True, nr_thr_saving=1,
                                           skip_saving=True, **options)
        finally:
            if saved is None:
                os.environ.pop("TOTALSEG_WEIGHTS_PATH", None)
            else:
                os.environ["TOTALSEG_WEIGHTS_PATH"] = saved
        out = Image.from_nibabel(seg)
        if not out.geometry_equal(image):
            out = out.resample_to(image, interpolation="nearest")
        return np.asarray(out.array)


def _version() -> str:
    try:
        return importlib.metadata.version("TotalSegmentator")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"
