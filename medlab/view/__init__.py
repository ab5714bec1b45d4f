"""Everything that draws: static plots now, widgets later.

Compute functions elsewhere return data; functions here draw it.
"""

from ._cohort import cohort_overview
from ._slices import plane_slices, plot_slices
from ._window import WINDOW_PRESETS, apply_window, auto_window, resolve_window

__all__ = ["WINDOW_PRESETS", "apply_window", "auto_window", "cohort_overview", "plane_slices",
           "plot_slices", "resolve_window"]
