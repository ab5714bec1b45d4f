"""The model runner every format shares: geometry in and out, device, provenance."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ... import geometry as geo
from ..._hashing import sha256_files
from ..._optional import import_optional
from ..._validate import require_image
from ...errors import GeometryError
from ...image import Image
from .._common import SegmentationError
from .._grid import label_result

__all__ = ["Model", "ModelError", "aligned_grid", "require", "sha256_files", "torch_device"]

#: Unit LPS vector of each orientation letter.
_UNIT = {"L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0), "P": (0.0, 1.0, 0.0),
         "A": (0.0, -1.0, 0.0), "S": (0.0, 0.0, 1.0), "I": (0.0, 0.0, -1.0)}

#: Added to the install line of the ``dl`` extra, which brings the deep-learning libraries.
_CPU_HINT = (" (for a CPU-only PyTorch, install torch from PyTorch's CPU wheel index first)")


class ModelError(SegmentationError):
    """A model folder, its weights or its metadata cannot be used (missing files, unknown
    format, a declaration medlab cannot follow)."""


def require(module: str, *, feature: str) -> Any:
    """Import an optional dependency of the ``dl`` extra (:func:`medlab._optional.import_optional`)."""
    return import_optional(module, feature=feature, extra="dl", hint=_CPU_HINT)


def torch_device(device: Any = None) -> Any:
    """A ``torch.device``: the given one, else CUDA when available, else the CPU.

    Raises
    ------
    ValueError
        A CUDA device was asked for but PyTorch sees none (a CPU build, or no GPU).
    """
    torch = require("torch", feature="deep-learning segmentation")
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = device if isinstance(device, torch.device) else torch.device(str(device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} asks for a CUDA GPU but PyTorch {torch.__version__} sees none "
            "(a CPU-only build, or no GPU on this machine); use device='cpu' or leave it None"
        )
    return dev


def aligned_grid(image: Image, orientation: str) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid whose axes point exactly to the ``orientation`` letters and covers ``image``.

    Spacing along each axis is the image's spacing along the axis closest to
    it; the grid holds every voxel centre of the image. For an image that is
    already axis-aligned this is the grid of ``image.reorient(orientation)``.
    """
    perm, _ = geo.reorientation(image.affine, orientation)
    spacing = np.asarray(image.spacing, dtype=float)[list(perm)]
    dirs = np.array([_UNIT[c] for c in orientation.upper()], dtype=float).T  # columns
    n = np.asarray(image.spatial_shape) - 1
    corners = np.array([[k, j, i] for k in (0, n[0]) for j in (0, n[1]) for i in (0, n[2])], float)
    coords = image.index_to_world(corners) @ dirs  # position along each new axis
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    shape = tuple(int(v) for v in np.ceil((hi - lo) / spacing - 1e-6).astype(int) + 1)
    affine = np.eye(4)
    affine[:3, :3] = dirs * spacing
    affine[:3, 3] = dirs @ lo
    return shape, affine  # type: ignore[return-value]


class Model:
    """A segmentation model that takes an :class:`medlab.Image` and returns labels on its grid.

    Subclasses (one per format) implement :meth:`_predict` on an image whose
    array axes already point to :attr:`orientation`; this class does the
    geometry around it: an axis-aligned image is reoriented without
    interpolation (a permutation and flips of the array, undone exactly on
    the way back); an oblique image is resampled (linear) onto an
    axis-aligned grid in that orientation covering it and the labels are
    resampled back (nearest neighbour). Spacing, intensity normalisation and
    patching are the format's own (read from the model's files).

    Attributes
    ----------
    name, version : str
        What the model is, recorded with every result and in DICOM SEG
        (Algorithm Identification).
    labels : dict of int to str
        Name of each label value the model returns (0 = background).
    orientation : str or None
        ``Image.orientation`` letters the model's array axes must point to
        (``'SAR'``: slices inferior to superior, rows posterior to anterior,
        columns left to right, i.e. a NIfTI image in RAS+ read by
        :func:`medlab.load`); None when the model needs no particular one.
    source : str
        Where the model came from (a package and its version, a folder).
    """

    name: str = "model"
    version: str = "unknown"
    orientation: str | None = None
    n_channels: int = 1

    def __init__(self) -> None:
        self.labels: dict[int, str] = {}
        self.source: str = ""
        self._sha256: str | None = None

    # ---------------------------------------------------------- interface
    def weight_files(self) -> list[Path]:
        """The files holding the model's weights (hashed into :attr:`weights_sha256`)."""
        raise NotImplementedError

    def _predict(self, image: Image, *, device: Any, progress: bool, **options: Any) -> np.ndarray:
        """Integer labels of shape ``image.spatial_shape`` for an image in :attr:`orientation`."""
        raise NotImplementedError

    # ------------------------------------------------------------- shared
    @property
    def weights_sha256(self) -> str:
        """SHA-256 of the weight files (:func:`sha256_files`), computed once."""
        if self._sha256 is None:
            self._sha256 = sha256_files(self.weight_files())
        return self._sha256

    @property
    def provenance(self) -> dict[str, str]:
        """What DICOM SEG export records as the (automatic) algorithm."""
        return {"type": "AUTOMATIC", "name": self.name, "version": self.version,
                "family": "Artificial Intelligence", "weights_sha256": self.weights_sha256,
                "source": self.source}

    def __repr__(self) -> str:
        names = ", ".join(f"{k}: {v!r}" for k, v in list(self.labels.items())[:6])
        more = ", ..." if len(self.labels) > 6 else ""
        return (f"{type(self).__name__}({self.name!r}, version {self.version!r}, "
                f"labels {{{names}{more}}})")

    def __call__(self, image: Image, *, device: Any = None, progress: bool = True,
                 **options: Any) -> Image:
        """Segment ``image``; labels on exactly its grid (same shape and affine).

        Parameters
        ----------
        image : Image
            A 3D image (with channels when the model takes several inputs).
        device : str or torch.device, optional
            Where the network runs: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...;
            default a CUDA GPU when PyTorch sees one, else the CPU.
        progress : bool
            Show the format's progress bar where it has one.
        **options
            Format-specific options (see the class).

        Returns
        -------
        Image
            Unsigned integer labels; ``meta['labels']`` names them and
            ``meta['algorithm']`` holds :attr:`provenance`, which
            :func:`medlab.segmentation.write_seg` records as an AUTOMATIC
            algorithm.
        """
        require_image(image, "image")
        if image.frame_times_s is not None:
            raise GeometryError(f"{self.name} segments one 3D volume, got a time series "
                                f"{image!r}; pass image.frame(t)")
        n_channels = image.shape[-1] if image.channels else 1
        if n_channels != self.n_channels:
            raise ModelError(
                f"{self.name} takes {self.n_channels} input channel(s), got an image with "
                f"{n_channels}; stack co-registered images on a last channel axis "
                "(ml.Image(np.stack(arrays, -1), affine, channels=True)) in the model's order"
            )
        dev = torch_device(device)
        target = self.orientation
        if target is None:
            model_input, back = image, None
        elif not image.is_oblique:
            model_input = image.reorient(target)
            back = "reorient"
        else:
            shape, affine = aligned_grid(image, target)
            base = image.array if not image.channels else image.array.reshape(-1, n_channels)
            model_input = image.with_array(np.asarray(image.array, dtype=np.float32)).resample_to(
                (shape, affine), interpolation="linear", default_value=float(np.min(base)))
            back = "resample"
        labels = np.asarray(self._predict(model_input, device=dev, progress=progress, **options))
        if labels.shape != model_input.spatial_shape:
            raise ModelError(f"{self.name} returned labels of shape {labels.shape} for an input "
                             f"of shape {model_input.spatial_shape}")
        if back == "reorient":
            out = Image(labels, model_input.affine).reorient(image.orientation)
            if not np.allclose(out.affine, image.affine, atol=1e-4):  # pragma: no cover - guard
                raise GeometryError("reorienting the labels back did not restore the input grid")
            labels = out.array
        elif back == "resample":
            labels = Image(labels, model_input.affine).resample_to(
                image, interpolation="nearest", default_value=0).array
        params = {"device": str(dev), **{k: v for k, v in options.items() if _plain(v)}}
        return label_result(image, labels, names=self.labels, method=self.name,
                            parameters=params, algorithm=self.provenance)


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | tuple | list | type(None))


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON file of a model folder, or a ModelError naming what is missing."""
    import json

    if not path.is_file():
        raise ModelError(f"{what}: {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{what}: {path} is not readable JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise ModelError(f"{what}: {path} holds a {type(data).__name__}, not a JSON object")
    return dict(data)
