"""Diffusion MRI: gradient tables and the apparent diffusion coefficient.

A diffusion-weighted image is an :class:`medlab.Image` whose fourth axis
is ``'diffusion'``: ``image.b_values`` (s/mm2) and ``image.b_vectors``
(unit gradient directions in LPS; ``image.b_vectors_image`` gives them in
the image's own axes). :func:`medlab.load` fills them from DICOM (the MR
Diffusion attributes, Siemens CSA headers) and from FSL ``.bval``/``.bvec``
files beside a NIfTI image.

Examples
--------
>>> import numpy as np, medlab as ml
>>> b = np.array([0.0, 500.0, 1000.0])
>>> signal = 1000 * np.exp(-b * 0.8e-3)[None, None, None, :] * np.ones((2, 2, 2, 1))
>>> dwi = ml.Image(signal, np.eye(4), b_values=b)
>>> round(float(ml.diffusion.adc(dwi).array[0, 0, 0]), 7)
0.0008
"""

from ._adc import adc
from ._gradients import fsl_to_lps, lps_to_fsl, read_fsl_gradients, write_fsl_gradients

__all__ = ["adc", "fsl_to_lps", "lps_to_fsl", "read_fsl_gradients", "write_fsl_gradients"]
