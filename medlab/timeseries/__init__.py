"""Time series: curves, semi-quantitative maps, DCE-MRI kinetics, motion, longitudinal change.

Works on :class:`medlab.Image` time series (axis 3 is time, ``frame_times_s``
in seconds from the first frame; irregular sampling is kept). Compute
functions return data -- DataFrames and Images on the source grid -- and
never plot.

- Curves: :func:`curves` (time-intensity curves of a mask, label map,
  voxel or point; the one implementation the viewer uses).
- Semi-quantitative maps: :func:`relative_enhancement`,
  :func:`percent_enhancement`, :func:`signal_enhancement_ratio`,
  :func:`initial_auc`, :func:`time_to_peak`, :func:`wash_in_slope`,
  :func:`wash_out_slope`, :func:`enhancement_maps`.
- DCE-MRI: :func:`spgr_signal`, :func:`signal_to_concentration`,
  :func:`vfa_t1`; input functions :class:`AIF`, :func:`parker_aif`,
  :func:`georgiou_aif`, :func:`mcgrath_aif` (preclinical),
  :func:`measured_aif`; models :func:`tofts`, :func:`extended_tofts`,
  :func:`patlak`; voxel-wise fits :func:`fit_kinetics` (Images) and
  :func:`fit_curves` (arrays) returning :class:`KineticMaps`; export with
  :func:`write_parametric_map` (DICOM) and :func:`save_maps_nifti`.
- Motion: :func:`motion_correct` (every frame registered to a reference).
- Longitudinal: :func:`track_lesion` (a lesion across studies, with
  absolute and percent change).
- Simulation with known truth: :func:`simulate_tofts_volume`,
  :func:`simulate_follow_up`.
"""

from ._aif import AIF, georgiou_aif, mcgrath_aif, measured_aif, parker_aif
from ._common import TimeSeriesError
from ._curves import curves
from ._enhancement import (
    enhancement_maps,
    initial_auc,
    percent_enhancement,
    relative_enhancement,
    signal_enhancement_ratio,
    time_to_peak,
    wash_in_slope,
    wash_out_slope,
)
from ._fit import fit_curves, fit_kinetics
from ._kinetics import extended_tofts, patlak, tofts
from ._longitudinal import LesionTracking, track_lesion
from ._maps import KineticMaps, save_maps_nifti, write_parametric_map
from ._motion import MotionCorrection, motion_correct
from ._signal import signal_to_concentration, spgr_signal, vfa_t1
from ._simulate import simulate_follow_up, simulate_tofts_volume

__all__ = [
    "AIF",
    "KineticMaps",
    "LesionTracking",
    "MotionCorrection",
    "TimeSeriesError",
    "curves",
    "enhancement_maps",
    "extended_tofts",
    "fit_curves",
    "fit_kinetics",
    "georgiou_aif",
    "initial_auc",
    "mcgrath_aif",
    "measured_aif",
    "motion_correct",
    "parker_aif",
    "patlak",
    "percent_enhancement",
    "relative_enhancement",
    "save_maps_nifti",
    "signal_enhancement_ratio",
    "signal_to_concentration",
    "simulate_follow_up",
    "simulate_tofts_volume",
    "spgr_signal",
    "time_to_peak",
    "tofts",
    "track_lesion",
    "vfa_t1",
    "wash_in_slope",
    "wash_out_slope",
    "write_parametric_map",
]
