"""Image.to_simpleitk: the one Image -> SimpleITK converter, with the options its users need."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import medlab as ml
from medlab.errors import GeometryError


def _oblique_affine() -> np.ndarray:
    """(slice, row, column) -> LPS with spacings 3, 0.8, 0.6 mm and a rotation about z."""
    c, s = np.cos(0.3), np.sin(0.3)
    a = np.eye(4)
    a[:3, 2] = [0.6 * c, 0.6 * s, 0.0]  # column axis
    a[:3, 1] = [-0.8 * s, 0.8 * c, 0.0]  # row axis
    a[:3, 0] = [0.0, 0.0, 3.0]  # slice axis
    a[:3, 3] = [-10.0, 5.0, 42.0]
    return a


def test_world_geometry_matches_the_affine() -> None:
    img = ml.Image(np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4), _oblique_affine())
    s = img.to_simpleitk()
    for k, j, i in [(0, 0, 0), (1, 2, 3), (1, 0, 2)]:
        # SimpleITK indexes (x=i, y=j, z=k); the affine maps (k, j, i)
        world = (img.affine @ np.array([k, j, i, 1.0]))[:3]
        np.testing.assert_allclose(s.TransformIndexToPhysicalPoint((i, j, k)), world, atol=1e-9)
        assert s[i, j, k] == img.array[k, j, i]
    assert s.GetPixelID() == sitk.sitkInt16


def test_dtype_cast_and_bool() -> None:
    img = ml.Image(np.ones((2, 3, 4), bool), np.eye(4))
    assert img.to_simpleitk().GetPixelID() == sitk.sitkUInt8
    assert img.to_simpleitk(dtype=np.float32).GetPixelID() == sitk.sitkFloat32


def test_two_dimensional_slice_keeps_in_plane_geometry() -> None:
    img = ml.Image(np.arange(12, dtype=np.float32).reshape(1, 3, 4), _oblique_affine())
    s = img.to_simpleitk(dimension=2)
    assert s.GetDimension() == 2 and s.GetSize() == (4, 3)
    for j, i in [(0, 0), (2, 3), (1, 2)]:
        world = (img.affine @ np.array([0.0, j, i, 1.0]))[:3]
        np.testing.assert_allclose(s.TransformIndexToPhysicalPoint((i, j)), world[:2], atol=1e-9)
    with pytest.raises(GeometryError, match="single-slice"):
        ml.Image(np.zeros((2, 3, 4)), np.eye(4)).to_simpleitk(dimension=2)


def test_index_space_accepts_a_sheared_grid_and_keeps_voxel_sizes() -> None:
    a = np.diag([2.0, 0.5, 0.7, 1.0])
    a[0, 1] = 0.3  # shear: rows step along the slice direction too (gantry tilt)
    img = ml.Image(np.zeros((2, 3, 4), np.float32), a)
    with pytest.raises(GeometryError, match="sheared"):
        img.to_simpleitk()
    s = img.to_simpleitk(index_space=True)
    np.testing.assert_allclose(s.GetSpacing(), [0.7, np.hypot(0.5, 0.3), 2.0])
    assert s.GetOrigin() == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(s.GetDirection(), np.eye(3).ravel())
