"""The radiomics() entry point: pre-processing, then each feature family."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...image import Image
from . import _texture as tex
from ._config import FAMILIES, MATRIX_AGGREGATIONS, RadiomicsConfig
from ._firstorder import (
    intensity_histogram,
    intensity_stats,
    intensity_volume_histogram,
    local_intensity,
)
from ._morph import morphology
from ._preprocess import Prepared, discretise, prepare

__all__ = ["radiomics", "radiomics_prepared"]

_TEXTURE = ("cm", "rlm", "szm", "dzm", "ngt", "ngl")
# aggregation suffixes, longest first so that "2_5d_d_mrg" wins over "2_5d"
_SUFFIXES = sorted([*MATRIX_AGGREGATIONS, "2d", "2_5d", "3d"], key=len, reverse=True)


def radiomics(
    image: Image,
    mask: Image,
    *,
    config: RadiomicsConfig | None = None,
    label: int | None = None,
    wide: bool = False,
) -> pd.DataFrame:
    """IBSI chapter-1 radiomics features of one ROI.

    Parameters
    ----------
    image : Image
        A 3D scalar image (e.g. CT in HU).
    mask : Image
        The ROI on the same grid: non-zero voxels, or those equal to
        ``label``.
    config : RadiomicsConfig, optional
        Families, aggregation, discretisation, resampling and
        re-segmentation; default ``RadiomicsConfig()`` (every family, 3D,
        32 fixed bins, no resampling). ``RadiomicsConfig.ibsi('C')`` gives
        an IBSI reference configuration.
    label : int, optional
        ROI label value in a label map.
    wide : bool
        Return one row with one column per feature instead of the long table.

    Returns
    -------
    pandas.DataFrame
        Long format, one row per feature: ``family`` (``'morph'``,
        ``'cm'``, ...), ``feature`` (the IBSI tag, e.g.
        ``'cm_joint_max_d1_3d_avg'``, ``'szm_sze_2d'``), ``aggregation``
        (``'3d_avg'``, ``'2_5d'``, ... or ``''`` for non-texture families)
        and ``value``. Lengths are in mm, areas in mm^2, volumes in mm^3,
        intensities in the image's units. ``df.attrs`` holds the config,
        the voxel spacing used and the ROI voxel counts.

    Raises
    ------
    GeometryMismatchError
        If image and mask are on different grids.
    ValueError
        If the ROI is empty (before or after re-segmentation), or the
        intensities do not suit ``discretisation='none'``.

    Examples
    --------
    >>> df = ml.measure.radiomics(ct, gtv, config=RadiomicsConfig.ibsi("C"))  # doctest: +SKIP
    >>> df.set_index("feature").value["morph_volume"]  # doctest: +SKIP
    """
    config = RadiomicsConfig() if config is None else config
    if not isinstance(config, RadiomicsConfig):
        raise TypeError(
            f"config must be a RadiomicsConfig, got {type(config).__name__}; e.g. "
            "RadiomicsConfig(discretisation='fbs', bin_width=25) or RadiomicsConfig.ibsi('C')"
        )
    prepared = prepare(image, mask, config, label=label)
    return radiomics_prepared(prepared, config, wide=wide)


def radiomics_prepared(
    prepared: Prepared, config: RadiomicsConfig, *, wide: bool = False
) -> pd.DataFrame:
    """Features of an already prepared ROI (see :func:`radiomics`)."""
    fams = config.families
    values = prepared.values
    feats: dict[str, dict[str, float]] = {}
    if "morph" in fams:
        feats["morph"] = morphology(
            prepared.morph_mask, prepared.int_mask, prepared.intensity, prepared.spacing
        )
    if "loc" in fams:
        feats["loc"] = local_intensity(prepared.intensity, prepared.int_mask, prepared.spacing)
    if "stat" in fams:
        feats["stat"] = intensity_stats(values)
    low = None if config.resegmentation_range is None else config.resegmentation_range[0]
    if "ih" in fams or any(f in fams for f in _TEXTURE):
        grey, n_levels = discretise(
            values, config.discretisation, bin_number=config.bin_number,
            bin_width=config.bin_width, lower_bound=low,
        )
        if "ih" in fams:
            feats["ih"] = intensity_histogram(grey, n_levels)
    if "ivh" in fams:
        feats["ivh"] = intensity_volume_histogram(
            values, config.ivh_discretisation, bin_width=config.ivh_bin_width,
            bin_number=config.ivh_bin_number, lower_bound=low,
        )
    if any(f in fams for f in _TEXTURE):
        feats.update(_texture(prepared, grey, n_levels, config))

    rows = [
        (family, tag, _aggregation(family, tag), value)
        for family in FAMILIES if family in feats
        for tag, value in feats[family].items()
    ]
    df = pd.DataFrame(rows, columns=["family", "feature", "aggregation", "value"])
    attrs = {
        "config": config,
        "spacing_mm": prepared.spacing,
        "n_voxels_morph": int(prepared.morph_mask.sum()),
        "n_voxels_intensity": int(prepared.int_mask.sum()),
    }
    if wide:
        df = df.set_index("feature")["value"].to_frame().T.reset_index(drop=True)
        df.columns.name = None
    df.attrs.update(attrs)
    return df


def _aggregation(family: str, tag: str) -> str:
    if family not in _TEXTURE:
        return ""
    return next((s for s in _SUFFIXES if tag.endswith("_" + s)), "")


def _texture(prepared: Prepared, grey: np.ndarray, n_levels: int, config: RadiomicsConfig):
    # grey levels on the block, cropped to the morphological mask's bounding box
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(prepared.morph_mask))
    levels = np.zeros(prepared.int_mask.shape, dtype=np.int64)
    levels[prepared.int_mask] = grey
    levels = levels[box]
    fams, out = config.families, {}
    methods, dims = config.matrix_aggregations, config.dimensions
    if "cm" in fams:
        out["cm"] = tex.glcm(levels, n_levels, methods, distance=config.distance)
    if "rlm" in fams:
        out["rlm"] = tex.glrlm(levels, n_levels, methods)
    if "szm" in fams:
        out["szm"] = tex.glszm(levels, dims)
    if "dzm" in fams:
        out["dzm"] = tex.gldzm(levels, dims, prepared.morph_mask[box])
    if "ngt" in fams:
        out["ngt"] = tex.ngtdm(levels, dims, distance=config.distance)
    if "ngl" in fams:
        out["ngl"] = tex.ngldm(levels, dims, distance=config.distance, alpha=config.ngldm_alpha)
    return out
