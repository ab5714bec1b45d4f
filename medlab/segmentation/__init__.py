"""Segmentations: read existing ones onto image grids.

* DICOM RTSTRUCT: :func:`read_rtstruct` lists the ROIs, :func:`read_contours`
  gives the contour points, :func:`rtstruct_to_masks` rasterises ROIs onto
  a reference image grid (voxel-centre masks or partial-volume fractions,
  holes by the even-odd rule) and :func:`rtstruct_to_labels` makes one
  label map.
* DICOM SEG (binary, fractional, label map; overlapping segments):
  :func:`read_seg` returns a :class:`SegmentationResult` whose
  ``.masks(reference)`` and ``.labels(reference)`` map the frames onto a
  grid through their plane positions.
* Label images (NIfTI, NRRD, MHA): :func:`read_labels`.
* Export: :func:`write_seg` (DICOM SEG, binary or fractional, one source
  instance referenced per frame) and :func:`write_rtstruct` (contours of
  each slice); both read back with :func:`read_seg` and
  :func:`rtstruct_to_masks`.

Segment images (results are label images on the source grid, with names
in ``meta['labels']``):

* thresholds: :func:`threshold`, :func:`otsu`, :func:`multi_otsu`, CT
  presets :func:`hu_preset` (ranges in :data:`HU_PRESETS`);
* region growing from seeds in LPS mm or voxel indices:
  :func:`connected_threshold`, :func:`confidence_connected`; and
  :func:`watershed`;
* morphology with radii in mm: :func:`dilate`, :func:`erode`,
  :func:`opening`, :func:`closing`, :func:`fill_holes`;
* components and label editing: :func:`connected_components`,
  :func:`largest_component`, :func:`merge_labels`, :func:`remove_labels`,
  :func:`relabel`;
* any deep-learning model (a callable on numpy batches or a torch
  module): :func:`sliding_window`;
* trained models that run offline (deepbet, nnU-Net v2 folders, MONAI
  bundles, TotalSegmentator): :mod:`medlab.segmentation.models`.

All results are :class:`medlab.Image` objects on the reference grid (same
shape and affine), so they line up voxel for voxel with the image.
"""

from . import models
from ._common import SegmentationError
from ._components import (
    connected_components,
    largest_component,
    merge_labels,
    relabel,
    remove_labels,
)
from ._export import write_rtstruct, write_seg
from ._inference import sliding_window
from ._labels import read_labels
from ._morphology import closing, dilate, erode, fill_holes, opening
from ._raster import fill_polygons, polygon_area
from ._region import confidence_connected, connected_threshold, watershed
from ._rtstruct import read_contours, read_rtstruct, rtstruct_to_labels, rtstruct_to_masks
from ._seg import SegmentationResult, read_seg
from ._threshold import HU_PRESETS, hu_preset, multi_otsu, otsu, threshold

__all__ = [
    "HU_PRESETS",
    "SegmentationError",
    "SegmentationResult",
    "closing",
    "confidence_connected",
    "connected_components",
    "connected_threshold",
    "dilate",
    "erode",
    "fill_holes",
    "fill_polygons",
    "hu_preset",
    "largest_component",
    "merge_labels",
    "models",
    "multi_otsu",
    "opening",
    "otsu",
    "polygon_area",
    "read_contours",
    "read_labels",
    "read_rtstruct",
    "read_seg",
    "relabel",
    "remove_labels",
    "rtstruct_to_labels",
    "rtstruct_to_masks",
    "sliding_window",
    "threshold",
    "watershed",
    "write_rtstruct",
    "write_seg",
]
