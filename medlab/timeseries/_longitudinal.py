"""A lesion followed across studies: registration, carried masks, change table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..image import Image
from ..measure import label_stats
from ._common import require_image
from ._motion import transform_motion

__all__ = ["LesionTracking", "track_lesion"]

#: columns whose absolute and percent change from baseline are reported
CHANGE_COLUMNS = ("volume_ml", "longest_diameter_mm", "longest_axial_diameter_mm",
                  "short_axis_mm", "mean", "median")


@dataclass
class LesionTracking:
    """The result of :func:`track_lesion`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per time point (baseline first): ``timepoint``, ``mask_source``
        (``'given'`` or ``'carried'``), ``volume_ml``, ``longest_diameter_mm``,
        ``longest_axial_diameter_mm`` (RECIST long axis), ``short_axis_mm``,
        ``units``, ``mean``, ``std``, ``median`` (image units: HU for CT, SUV
        for SUV images), registration ``translation_*_mm``, ``rotation_deg``,
        ``lesion_shift_mm`` (lesion centroid displacement relative to the
        registered anatomy), and ``<column>_change`` / ``<column>_change_pct``
        against the baseline for volume, diameters, mean and median.
    registrations : dict
        Time point -> :class:`medlab.registration.RegistrationResult`
        (follow-up registered to baseline; fixed = baseline).
    images_on_baseline, masks_on_baseline : dict
        Every time point's image and lesion mask resampled onto the baseline grid.
    masks : dict
        Every time point's lesion mask on its own grid (given or carried).
    """

    table: pd.DataFrame
    registrations: dict[str, Any] = field(default_factory=dict)
    images_on_baseline: dict[str, Image] = field(default_factory=dict)
    masks_on_baseline: dict[str, Image] = field(default_factory=dict)
    masks: dict[str, Image] = field(default_factory=dict)


def _named(items: Sequence[Any] | Mapping[str, Any], names: Sequence[str] | None, what: str
           ) -> dict[str, Any]:
    if isinstance(items, Mapping):
        return dict(items)
    items = list(items)
    if names is None:
        names = ["baseline"] + [f"follow-up {i}" for i in range(1, len(items))]
    if len(names) != len(items):
        raise ValueError(f"{len(items)} {what} were given with {len(names)} names")
    return dict(zip(names, items, strict=True))


def _as_mask(mask: Image, image: Image, what: str) -> Image:
    require_image(mask, what)
    image.match_geometry(mask)
    arr = np.asarray(mask.array)
    if not arr.astype(bool).any():
        raise ValueError(f"{what} is empty: there is no lesion to measure")
    return mask.with_array(arr.astype(bool), meta={"labels": {1: "lesion"}})


def track_lesion(
    images: Sequence[Image] | Mapping[str, Image],
    masks: Sequence[Image | None] | Mapping[str, Image | None],
    *,
    names: Sequence[str] | None = None,
    register: Literal["rigid", "affine"] | None = "rigid",
    metric: Literal["mattes", "correlation", "mean_squares"] = "mattes",
    progress: bool = False,
    **registration_options: Any,
) -> LesionTracking:
    """Follow one lesion across studies and tabulate its change from baseline.

    Each follow-up image is registered to the baseline (fixed) with
    :mod:`medlab.registration`. A follow-up's lesion mask is used as given
    (a re-segmentation on that study), or, when None, the baseline mask is
    carried onto the follow-up through the registration (same region,
    new intensities). Measurements (:func:`medlab.measure.label_stats`) are
    made on each study's own grid, so volumes are not altered by
    resampling; the masks are also resampled onto the baseline grid for
    display.

    Parameters
    ----------
    images : sequence or mapping of Image
        3D images, baseline first (a mapping keeps its order; names are its
        keys).
    masks : sequence or mapping of Image or None
        Lesion mask of each time point on its image's grid; the baseline's
        is required, a follow-up's may be None (carried).
    names : sequence of str, optional
        Time point names for sequences; default ``baseline``,
        ``follow-up 1``, ...
    register : {'rigid', 'affine'} or None
        Registration of follow-ups to the baseline; None assumes the studies
        are already aligned in LPS space (and needs every mask).
    metric, progress, **registration_options
        Passed to the registration.

    Returns
    -------
    LesionTracking
        ``.table`` (one row per time point with changes), registrations and
        resampled images/masks.
    """
    from .. import registration

    imgs = _named(images, names, "images")
    msks = _named(masks, list(imgs) if not isinstance(masks, Mapping) else None, "masks")
    if list(msks) != list(imgs):
        raise ValueError(f"masks are for {list(msks)} but images for {list(imgs)}")
    if len(imgs) < 2:
        raise ValueError("tracking needs a baseline and at least one follow-up image")
    base_name = next(iter(imgs))
    base = require_image(imgs[base_name], f"images[{base_name!r}]")
    if msks[base_name] is None:
        raise ValueError("the baseline lesion mask is required")
    base_mask = _as_mask(msks[base_name], base, f"masks[{base_name!r}]")
    out = LesionTracking(table=pd.DataFrame())
    out.images_on_baseline[base_name], out.masks_on_baseline[base_name] = base, base_mask
    out.masks[base_name] = base_mask
    rows = []
    base_stats = label_stats(base, base_mask, percentiles=(50,))
    base_centroid = base_stats.loc[0, ["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]]
    base_centroid = base_centroid.to_numpy(dtype=float)
    for name, image in imgs.items():
        require_image(image, f"images[{name!r}]")
        row: dict[str, Any] = {"timepoint": name}
        result = None
        if name != base_name and register is not None:
            result = getattr(registration, register)(
                base.with_array(np.asarray(base.array, dtype=np.float32)),
                image.with_array(np.asarray(image.array, dtype=np.float32)),
                metric=metric, progress=progress, **registration_options)
            out.registrations[name] = result
        mask = msks[name]
        if name == base_name:
            mask_img, source = base_mask, "given"
        elif mask is None:
            if result is None:
                raise ValueError(f"the mask of {name!r} is missing and register=None: nothing "
                                 "can carry the baseline lesion; give the mask or register")
            carried = registration.resample(base_mask, result.transform.GetInverse(), image,
                                            interpolation="nearest")
            mask_img, source = _as_mask(carried, image, f"carried mask of {name!r}"), "carried"
        else:
            mask_img, source = _as_mask(mask, image, f"masks[{name!r}]"), "given"
        out.masks[name] = mask_img
        stats = label_stats(image, mask_img, percentiles=(50,)).iloc[0]
        row.update(mask_source=source, volume_ml=stats["volume_ml"],
                   longest_diameter_mm=stats["longest_diameter_mm"],
                   longest_axial_diameter_mm=stats["longest_axial_diameter_mm"],
                   short_axis_mm=stats["short_axis_mm"], units=stats["units"],
                   mean=stats["mean"], std=stats["std"], median=stats["median"])
        centroid = stats[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(dtype=float)
        if name == base_name:
            row.update(dict.fromkeys(("translation_x_mm", "translation_y_mm", "translation_z_mm",
                                      "rotation_deg", "mean_displacement_mm",
                                      "max_displacement_mm"), 0.0))
        if result is not None:
            row.update(transform_motion(result, base))
            centroid = result.transform_points(centroid, inverse=True)
            out.images_on_baseline[name] = result.resample(image)
            out.masks_on_baseline[name] = result.resample(mask_img, interpolation="nearest")
        elif name != base_name:
            out.images_on_baseline[name] = image.resample_to(base)
            out.masks_on_baseline[name] = mask_img.resample_to(base, interpolation="nearest")
        row["lesion_shift_mm"] = float(np.linalg.norm(centroid - base_centroid))
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in CHANGE_COLUMNS:
        ref = table.loc[0, col]
        table[f"{col}_change"] = table[col] - ref
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"{col}_change_pct"] = 100.0 * (table[col] - ref) / abs(ref) if ref else np.nan
    out.table = table
    return out
