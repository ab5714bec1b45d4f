"""IBSI chapter-1 radiomics: morphology, intensity and texture features of an ROI.

:func:`radiomics` computes the feature families of the Image Biomarker
Standardisation Initiative (IBSI) reference manual, chapter 1, with its
image processing (resampling on the IBSI grid, re-segmentation,
morphological/intensity masks, fixed bin number or size discretisation)
and texture aggregation methods (2D, 2.5D, 3D; averaged or merged).
Features are named by their IBSI tags (``morph_volume``,
``cm_joint_max_d1_3d_avg``, ``szm_sze_2d``, ...). :class:`RadiomicsConfig`
holds the settings; ``RadiomicsConfig.ibsi('phantom' | 'A' ... 'E')``
gives the IBSI reference configurations.

Every feature with an IBSI consensus value for the digital phantom is
checked against it in ``tests/test_radiomics.py``. Not computed: the
oriented minimum bounding box and minimum-volume enclosing ellipsoid
densities (``morph_*_ombb``, ``morph_*_mvee``; no IBSI consensus).
"""

from ._config import FAMILIES, IBSI_CONFIGURATIONS, RadiomicsConfig
from ._core import radiomics

__all__ = ["FAMILIES", "IBSI_CONFIGURATIONS", "RadiomicsConfig", "radiomics"]
