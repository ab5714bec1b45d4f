"""A deep-learning hook: run any callable sliding-window over an image."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .._validate import require_image
from ..errors import GeometryError
from ..image import Image
from ._grid import label_result

__all__ = ["gaussian_weights", "sliding_window", "window_starts"]


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start indices of the windows along one axis (the last one ends at the edge).

    The step is ``max(1, int(patch * (1 - overlap)))``; windows start at
    ``0, step, 2 * step, ...`` with the last moved back to ``size - patch``
    (``size >= patch``, the image is padded first otherwise).
    """
    step = max(1, int(patch * (1.0 - overlap)))
    n = int(np.ceil(max(size - patch, 0) / step)) + 1
    return sorted({min(i * step, size - patch) for i in range(n)})


def gaussian_weights(patch: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Blending weights of one window: a separable Gaussian centred on the window,
    ``sigma = sigma_scale * patch`` per axis, 1 at the centre (never 0)."""
    w = np.ones((), dtype=np.float64)
    for p in patch:
        x = np.arange(p) - (p - 1) / 2.0
        g = np.exp(-0.5 * (x / (sigma_scale * p)) ** 2)
        w = np.multiply.outer(w, g)
    return w.astype(np.float32)


def _patch_size(patch_size: int | Sequence[int]) -> tuple[int, int, int]:
    values = [patch_size] * 3 if np.ndim(patch_size) == 0 else list(patch_size)  # type: ignore[list-item]
    if len(values) != 3 or any(int(v) != v or int(v) < 1 for v in values):
        raise ValueError(
            "patch_size must be one int or 3 ints >= 1 (slice, row, column voxels), e.g. (64, 128, "
            f"128) or (1, 256, 256) for a 2D model; got {patch_size!r}"
        )
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _as_numpy(out: Any) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor: no torch import needed
        out = out.detach().cpu().numpy()
    return np.asarray(out)


def _on_device(model: Any, device: Any) -> Any:
    """A torch module as a numpy-batch callable running on ``device``; other callables as they are."""
    torch = __import__("sys").modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return model
    from .models._base import torch_device

    dev = torch_device(device)
    net = model.to(dev).eval()

    def run(batch: np.ndarray) -> Any:
        with torch.inference_mode():
            return net(torch.from_numpy(batch).to(dev))

    return run


def _names(class_names: Sequence[str] | Mapping[int, str] | None, n_classes: int) -> dict[int, str]:
    if class_names is None:
        return {k: f"class {k}" for k in range(1, n_classes)}
    if isinstance(class_names, Mapping):
        return {int(k): str(v) for k, v in class_names.items() if int(k) != 0}
    names = list(class_names)
    if len(names) != n_classes:
        raise ValueError(
            f"class_names lists {len(names)} names for {n_classes} label values; list one name "
            "per output channel, background (class 0) first (for a single-channel model: "
            "['background', 'name'])"
        )
    return {k: str(names[k]) for k in range(1, n_classes)}


def sliding_window(
    image: Image,
    model: Callable[[np.ndarray], npt.ArrayLike],
    *,
    patch_size: int | Sequence[int],
    overlap: float = 0.5,
    batch_size: int = 1,
    blend: Literal["gaussian", "constant"] = "gaussian",
    output: Literal["labels", "probabilities"] = "labels",
    n_classes: int | None = None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    sigma_scale: float = 0.125,
    padding_mode: str = "constant",
    padding_value: float = 0.0,
    device: Any = None,
    progress: bool = True,
) -> Image:
    """Run a segmentation model patch by patch over an image and blend the patches.

    Parameters
    ----------
    image : Image
        A 3D image, or a 3D image with channels (``channels=True``, e.g.
        co-registered CT and PET stacked on the last axis). Voxel values are
        passed as they are: normalise inside ``model`` if it expects that.
    model : callable or torch.nn.Module
        ``model(batch) -> scores``. A ``torch.nn.Module`` is put in eval
        mode on ``device`` and called on float32 tensors there, without
        gradients; any other callable gets numpy batches. ``batch`` is a float32 numpy array of
        shape ``(batch, channel, slice, row, column)`` (array order of
        :class:`medlab.Image`: for axial DICOM, inferior-to-superior slices,
        anterior-to-posterior rows, right-to-left columns). ``scores`` must
        have shape ``(batch, n_classes, slice, row, column)``, the patch's
        shape; a numpy array, anything ``numpy.asarray`` takes, or a torch
        tensor (detached and moved to the CPU here).
    patch_size : int or (int, int, int)
        Window size in voxels (slice, row, column); ``(1, rows, cols)`` runs
        a 2D model slice by slice.
    overlap : float
        Fraction of a window shared with the next, in ``[0, 1)``; windows
        step by ``int(patch * (1 - overlap))`` voxels (at least 1), the
        last one aligned with the image's edge (:func:`window_starts`).
    batch_size : int
        Windows per model call.
    blend : {'gaussian', 'constant'}
        Weighting of overlapping windows: a Gaussian peaked at the window
        centre (``sigma = sigma_scale * patch``, :func:`gaussian_weights`),
        or a plain average. The blended score of a voxel is
        ``sum_w weight_w * score_w / sum_w weight_w`` over the windows
        covering it.
    output : {'labels', 'probabilities'}
        ``'labels'``: the argmax over classes (0 = class 0, usually
        background); with a single output channel, ``score > 0.5``.
        ``'probabilities'``: the blended scores themselves (apply softmax
        or sigmoid in ``model`` to get probabilities).
    n_classes : int, optional
        Expected number of output channels; checked against the model.
    class_names : sequence or mapping, optional
        Names of the classes (background first), stored in
        ``meta['labels']``.
    sigma_scale : float
        Gaussian width relative to the window size.
    padding_mode, padding_value
        An image smaller than the window along an axis is padded on both
        sides (``numpy.pad`` mode; ``'constant'`` uses ``padding_value``)
        and the result cropped back.
    device : str or torch.device, optional
        Where a ``torch.nn.Module`` runs (``'cpu'``, ``'cuda'``,
        ``'cuda:1'``); default a CUDA GPU when PyTorch sees one, else the
        CPU. Only used for a torch module.
    progress : bool
        Show a progress bar over the windows.

    Returns
    -------
    Image
        On the source grid (same shape and affine): unsigned integer labels,
        or float32 scores with a channel axis of length ``n_classes``
        (``channels=True``).

    Notes
    -----
    A PyTorch or MONAI network ``net`` fits through a small wrapper::

        import torch
        net.eval()
        def model(batch):
            with torch.no_grad():
                return torch.softmax(net(torch.from_numpy(batch)), dim=1)
        labels = ml.segmentation.sliding_window(ct, model, patch_size=(96, 96, 96))

    Networks trained on arrays in NIfTI / ITK ``(x, y, z)`` order (MONAI's
    ``LoadImage``) expect the reversed axes: transpose ``batch`` with
    ``(0, 1, 4, 3, 2)`` before the call and the scores back after it, and
    reorient the image to the training orientation first
    (:meth:`medlab.Image.reorient`).
    """
    from tqdm.auto import tqdm

    require_image(image, "image")
    if image.frame_axis is not None:
        raise GeometryError(f"sliding_window needs one 3D volume, got a 4D image {image!r}; "
                            "pass image.frame(t)")
    if not callable(model):
        raise TypeError(f"model must be a callable (numpy batch -> scores), got {type(model).__name__}")
    model = _on_device(model, device)
    patch = _patch_size(patch_size)
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if blend not in ("gaussian", "constant"):
        raise ValueError(f"blend must be 'gaussian' or 'constant', got {blend!r}")
    if output not in ("labels", "probabilities"):
        raise ValueError(f"output must be 'labels' or 'probabilities', got {output!r}")
    if not float(sigma_scale) > 0:
        raise ValueError(f"sigma_scale must be > 0, got {sigma_scale!r}")

    arr = np.asarray(image.array, dtype=np.float32)
    arr = np.moveaxis(arr, -1, 0) if image.channels else arr[np.newaxis]  # (C, Z, Y, X)
    shape = np.asarray(arr.shape[1:])
    before = np.maximum(np.asarray(patch) - shape, 0) // 2
    after = np.maximum(np.asarray(patch) - shape, 0) - before
    if np.any(before + after):
        widths = [(0, 0)] + [(int(b), int(a)) for b, a in zip(before, after, strict=True)]
        kwargs = {"constant_values": padding_value} if padding_mode == "constant" else {}
        arr = np.pad(arr, widths, mode=padding_mode, **kwargs)
    padded = arr.shape[1:]
    starts = [window_starts(n, p, float(overlap)) for n, p in zip(padded, patch, strict=True)]
    windows = list(itertools.product(*starts))
    weights = (gaussian_weights(patch, float(sigma_scale)) if blend == "gaussian"
               else np.ones(patch, dtype=np.float32))

    acc: np.ndarray | None = None
    norm = np.zeros(padded, dtype=np.float32)
    bar = tqdm(total=len(windows), desc="sliding window", unit="patch",
               disable=not progress or len(windows) < 2)
    try:
        for first in range(0, len(windows), int(batch_size)):
            group = windows[first:first + int(batch_size)]
            boxes = [tuple(slice(s, s + p) for s, p in zip(w, patch, strict=True)) for w in group]
            batch = np.stack([arr[(slice(None), *b)] for b in boxes])
            scores = _as_numpy(model(batch))
            expected = (len(group), n_classes if n_classes is not None else "n_classes", *patch)
            if (scores.ndim != 5 or scores.shape[0] != len(group) or scores.shape[2:] != patch
                    or (n_classes is not None and scores.shape[1] != n_classes)):
                raise ValueError(
                    f"the model returned scores of shape {scores.shape} for an input batch of "
                    f"shape {batch.shape}; expected {expected} (batch, class, slice, row, column)"
                )
            if acc is None:
                n_classes = int(scores.shape[1])
                acc = np.zeros((n_classes, *padded), dtype=np.float32)
            for b, s in zip(boxes, scores, strict=True):
                acc[(slice(None), *b)] += s * weights
                norm[b] += weights
            bar.update(len(group))
    finally:
        bar.close()
    assert acc is not None and n_classes is not None
    crop = tuple(slice(int(b), int(b + n)) for b, n in zip(before, shape, strict=True))
    blended = acc[(slice(None), *crop)] / norm[crop]
    params = {"patch_size": patch, "overlap": float(overlap), "blend": blend,
              "n_windows": len(windows), "n_classes": n_classes}
    names = _names(class_names, max(n_classes, 2))
    if output == "probabilities":
        meta = {"frame_of_reference_uid": image.meta.get("frame_of_reference_uid"),
                "reference_series_uid": image.meta.get("series_uid"),
                "labels": names, "method": "sliding_window", "parameters": params}
        return Image(np.moveaxis(blended, 0, -1), image.affine, channels=True, meta=meta)
    labels = blended[0] > 0.5 if n_classes == 1 else np.argmax(blended, axis=0)
    return label_result(image, labels, names=names, method="sliding_window", parameters=params)
