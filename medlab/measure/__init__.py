"""Measurement: label statistics, geometric measurements, segmentation metrics.

Every function takes :class:`medlab.Image` objects (so sizes are in mm,
for any spacing and orientation) or points in LPS millimetres, and
returns numbers or tidy :class:`pandas.DataFrame` tables, one row per
object, with the physical unit in each column name.

- :func:`label_stats`: volume, intensity statistics, centroid, bounding
  box, principal axes, longest 3D diameter and RECIST axes of each label;
  :func:`recist_diameters` gives the RECIST axes' end points.
- :func:`distance`, :func:`angle`, :func:`polyline_length` (points in
  LPS mm) and :func:`points_to_world` (voxel indices to LPS mm).
- :func:`overlap`, :func:`segmentation_metrics` and
  :func:`surface_distances`: Dice, Jaccard, volume differences,
  Hausdorff, HD95, ASSD; definitions in :mod:`medlab.measure.metrics`.
- PET: :func:`suv_factors` and :func:`to_suv` (SUVbw, SUVlbm, SUVbsa from
  the DICOM headers), :func:`read_rwvm` (Real World Value Mapping).
- Calibration: :func:`calibrate` (pixel spacing from a line of known
  length) and :func:`ultrasound_region` (one region of an ultrasound image
  with its own calibration). Where an image's spacing is unknown
  (:attr:`medlab.Image.spacing_known`), every function here that would
  report mm, mm2, mm3 or ml raises
  :class:`~medlab.errors.UnknownSpacingError` naming the file and these
  fixes; a 2D image (one slice) is measured by area and perimeter.
- Export: :func:`write_sr` / :func:`read_sr` (DICOM SR TID 1500
  Measurement Report referencing a SEG) and :func:`to_table` (CSV or
  Parquet with source UIDs and medlab's version; :func:`provenance` gives
  each image's source columns).
- :func:`display_units`: coded units (UCUM, DICOM) as people read them.
"""

# label_array, label_boxes, voxel_volume_mm3: documented internal API for other medlab
# subpackages (segmentation's label-image helpers), importable from here, not in __all__
from ._calibration import calibrate, ultrasound_region
from ._common import label_array as label_array
from ._common import label_boxes as label_boxes
from ._common import voxel_volume_mm3 as voxel_volume_mm3
from ._sr import SRError, provenance, read_rwvm, read_sr, to_table, write_sr
from ._suv import SuvError, suv_factors, to_suv
from .metrics import overlap, segmentation_metrics, surface_distances
from .points import angle, distance, points_to_world, polyline_length
from .radiomics import RadiomicsConfig as RadiomicsConfig
from .radiomics import radiomics as radiomics
from .shape import recist_diameters
from .stats import label_stats
from .units import display_units

__all__ = [
    "SRError",
    "SuvError",
    "angle",
    "calibrate",
    "display_units",
    "distance",
    "label_stats",
    "overlap",
    "points_to_world",
    "polyline_length",
    "provenance",
    "read_rwvm",
    "read_sr",
    "recist_diameters",
    "segmentation_metrics",
    "surface_distances",
    "suv_factors",
    "to_suv",
    "to_table",
    "ultrasound_region",
    "write_sr",
]
