"""Everything that draws: static plots and widgets.

Compute functions elsewhere return data; functions here draw it. Every widget
also carries a static PNG of its state, so exported reports show a picture.
"""

from ._cohort import cohort_overview
from ._curves_widget import CurveExplorer, curves
from ._gallery import Gallery, Tile, gallery, series_thumbnail
from ._landmarks_widget import LandmarkPairs, landmarks
from ._plots import plot_curves, plot_map, plot_registration
from ._slices import plane_slices, plot_slices
from ._slices_widget import CMAPS, SliceViewer, compare, slices
from ._volume import VolumeView, volume
from ._volume_itk import ViewerUnavailableError
from ._window import WINDOW_PRESETS, apply_window, auto_window, resolve_window

__all__ = ["CMAPS", "WINDOW_PRESETS", "CurveExplorer", "Gallery", "LandmarkPairs", "SliceViewer",
           "Tile", "ViewerUnavailableError", "VolumeView", "apply_window", "auto_window",
           "cohort_overview", "compare", "curves", "gallery", "landmarks", "plane_slices",
           "plot_curves", "plot_map", "plot_registration", "plot_slices", "resolve_window", "series_thumbnail", "slices", "volume"]
