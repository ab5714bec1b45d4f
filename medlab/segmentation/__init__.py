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

All results are :class:`medlab.Image` objects on the reference grid (same
shape and affine), so they line up voxel for voxel with the image.
"""

from ._common import SegmentationError
from ._labels import read_labels
from ._raster import fill_polygons, polygon_area
from ._rtstruct import read_contours, read_rtstruct, rtstruct_to_labels, rtstruct_to_masks
from ._seg import SegmentationResult, read_seg

__all__ = [
    "SegmentationError",
    "SegmentationResult",
    "fill_polygons",
    "polygon_area",
    "read_contours",
    "read_labels",
    "read_rtstruct",
    "read_seg",
    "rtstruct_to_labels",
    "rtstruct_to_masks",
]
