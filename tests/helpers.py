"""Synthetic test images with known geometry (the one place tests make them)."""

from __future__ import annotations

import numpy as np

import medlab as ml
from medlab import geometry as geo


def synthetic_image(
    shape=(6, 7, 8),
    *,
    spacing=(3.0, 0.8, 0.6),
    origin=(-10.0, 20.0, 5.0),
    direction=None,
    dtype=np.int16,
    seed=0,
) -> ml.Image:
    """A random image with a given grid; values are distinct per voxel."""
    rng = np.random.default_rng(seed)
    arr = rng.permutation(np.prod(shape)).reshape(shape).astype(dtype)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    return ml.Image(arr, geo.compose_affine(spacing, origin, direction))
