"""Label statistics: volume, intensity, position and shape, one row per label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .._validate import require_image
from ..errors import GeometryError
from ..image import Image
from ._common import label_array, label_boxes, voxel_volume_mm3
from .shape import perimeter_mm, region_shape

__all__ = ["label_stats"]

#: Units assumed from the modality when the image's meta has no ``units``.
_MODALITY_UNITS = {"CT": "HU"}


def image_units(image: Image) -> str | None:
    """The intensity units of ``image``: ``meta['units']``, else from the modality."""
    units = image.meta.get("units")
    if units:
        return str(units)
    return _MODALITY_UNITS.get(str(image.meta.get("modality", "")).upper())


def _percentile_column(q: float) -> str:
    return f"p{q:g}".replace(".", "_")


def _check_percentiles(percentiles: Sequence[float]) -> list[float]:
    qs = [float(q) for q in np.atleast_1d(np.asarray(percentiles, dtype=float))]
    bad = [q for q in qs if not 0 <= q <= 100]
    if bad:
        raise ValueError(f"percentiles must lie in [0, 100], got {bad}")
    return qs


def _names(label_names: Mapping[int, str] | Sequence[str] | None, labels: Image) -> dict[int, str]:
    names = label_names
    if names is None:
        # label maps made by medlab.segmentation carry names in meta['labels']
        names = labels.meta.get("label_names") or labels.meta.get("labels")
        if not isinstance(names, (Mapping, list, tuple)):
            return {}
    if isinstance(names, Mapping):
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, (list, tuple)):
        # a sequence names labels 1, 2, 3, ...
        return {i + 1: str(v) for i, v in enumerate(names)}
    raise TypeError(
        f"label_names must map label values to names (e.g. {{1: 'GTV'}}) or list the names of "
        f"labels 1, 2, ...; got {type(names).__name__}"
    )


def _on_common_grid(
    image: Image, labels: Image, resample: Literal["labels", "image"] | None
) -> tuple[Image, Image]:
    if resample is None:
        try:
            image.match_geometry(labels)
        except GeometryError as exc:
            raise type(exc)(
                f"{exc} For label statistics you can also pass resample='labels' (nearest "
                "neighbour onto the image grid) or resample='image' (linear onto the labels grid)."
            ) from None
        return image, labels
    if resample == "labels":
        if labels.geometry_equal(image):
            return image, labels
        return image, labels.resample_to(image, interpolation="nearest")
    if resample == "image":
        if image.geometry_equal(labels):
            return image, labels
        return image.resample_to(labels, interpolation="linear"), labels
    raise ValueError(f"resample must be None, 'labels' or 'image', got {resample!r}")


def label_stats(
    image: Image,
    labels: Image,
    *,
    label_names: Mapping[int, str] | Sequence[str] | None = None,
    percentiles: Sequence[float] = (5, 25, 50, 75, 95),
    resample: Literal["labels", "image"] | None = None,
    shape: bool = True,
) -> pd.DataFrame:
    """Volume, intensity, position and shape of each label, as a tidy table.

    Parameters
    ----------
    image : Image
        Intensity image, 3D or 4D: one row per volume, with ``frame`` and
        ``time_s``, ``b_value_s_per_mm2`` or ``echo_time_s`` by the kind of
        fourth axis (:attr:`medlab.Image.frame_axis`).
    labels : Image
        Label map (integer or bool, 3D). Every value > 0 is a label.
    label_names : mapping or sequence of str, optional
        Names by label value (``{1: 'GTV'}``), or the names of labels 1,
        2, ... in order. Defaults to ``labels.meta['label_names']`` or
        ``labels.meta['labels']`` (set by :mod:`medlab.segmentation`).
    percentiles : sequence of float
        Intensity percentiles to report (columns ``p5``, ``p25``, ...;
        ``p2_5`` for 2.5). Linear interpolation, as ``numpy.percentile``.
    resample : {None, 'labels', 'image'}
        When the two are on different grids: None raises
        :class:`~medlab.errors.GeometryMismatchError` naming what differs;
        ``'labels'`` resamples the labels onto the image grid (nearest
        neighbour); ``'image'`` resamples the image onto the labels grid
        (linear).
    shape : bool, default True
        Compute the shape columns (principal axes, diameters, RECIST);
        False skips them for speed.

    Returns
    -------
    pandas.DataFrame
        One row per label value > 0 (per label and frame for a time
        series, with ``frame`` and ``time_s``), sorted by label, with:

        - ``label``, ``name``, ``voxel_count``, ``volume_mm3``,
          ``volume_ml`` (voxel volume = ``|det(affine[:3, :3])|``); for a
          2D image (one slice, :attr:`medlab.Image.is_2d`) instead
          ``area_mm2`` (pixel area = ``|row x column|`` of the affine) and
          ``perimeter_mm`` (:func:`~medlab.measure.shape.perimeter_mm`,
          marching squares), and no ``extent_k_mm`` or
          ``principal_axis_3_mm``: the slice step of a 2D image is nominal;
        - ``units`` (``image.meta['units']``, or ``'HU'`` for CT),
          ``mean``, ``std`` (population, ``ddof=0``), ``min``, ``max``,
          ``median`` and the percentile columns, in the image's units;
        - ``centroid_x_mm``, ``centroid_y_mm``, ``centroid_z_mm``: mean
          LPS position of the voxel centres (not intensity-weighted);
        - ``bbox_k0, bbox_k1, bbox_j0, bbox_j1, bbox_i0, bbox_i1``: index
          bounding box as Python slices (``k1`` is one past the last
          slice: ``array[k0:k1, j0:j1, i0:i1]``), and ``extent_k_mm``,
          ``extent_j_mm``, ``extent_i_mm``: its size along each array axis
          (voxel count times spacing, edge to edge);
        - shape (with ``shape=True``): ``principal_axis_1_mm`` >=
          ``principal_axis_2_mm`` >= ``principal_axis_3_mm``, the axes of
          the ellipsoid with the same second moments as the voxel centres
          (``2 * sqrt(5 * eigenvalue)`` of their covariance: a sphere's
          diameter); ``longest_diameter_mm``, the largest 3D distance
          between two voxel centres (Feret diameter, via the convex
          hull); ``longest_axial_diameter_mm``, the RECIST long axis: the
          largest such distance within one slice of array axis 0 (the
          acquisition plane, axial for axial CT), on the slice where it is
          largest (``recist_slice``); ``short_axis_mm``, the longest chord
          perpendicular to it in that slice. Lengths are between voxel
          centres; see :func:`recist_diameters` for the end points;
        - ``spacing_source``, ``spacing_plane``: where the pixel spacing
          came from and where its lengths are true
          (:attr:`medlab.Image.spacing_source`).

    Raises
    ------
    GeometryMismatchError
        If image and labels are on different grids and ``resample`` is None.
    UnknownSpacingError
        If the pixel spacing of either is unknown (calibrate first:
        :meth:`medlab.Image.with_spacing`, :func:`medlab.measure.calibrate`).
    TypeError, ValueError
        For inputs that are not images or labels that are not integers.

    Examples
    --------
    >>> import medlab as ml, numpy as np
    >>> img = ml.Image(np.arange(8.0).reshape(2, 2, 2), np.diag([2.0, 1.0, 1.0, 1.0]))
    >>> lab = img.with_array((img.array > 3).astype(np.uint8))
    >>> ml.measure.label_stats(img, lab)[["label", "voxel_count", "volume_mm3", "mean"]]
       label  voxel_count  volume_mm3  mean
    0      1            4         8.0   5.5
    """
    require_image(image, "image")
    require_image(labels, "labels")
    if image.channels:
        raise GeometryError(
            f"label statistics need a scalar image, got one with channels: {image!r}; "
            "convert it to grey or pass one channel"
        )
    qs = _check_percentiles(percentiles)
    image.require_spacing("label_stats")
    labels.require_spacing("label_stats")
    image, labels = _on_common_grid(image, labels, resample)
    planar = image.is_2d
    lab = label_array(labels)
    names = _names(label_names, labels)
    units = image_units(image)
    vox_mm3 = voxel_volume_mm3(image)
    affine = image.affine
    pixel_mm2 = float(np.linalg.norm(np.cross(affine[:3, 1], affine[:3, 2])))
    spacing = np.asarray(image.spacing)
    # a 4D image gives one row per volume, with what its fourth axis is
    times, axis_col = _frame_values(image)
    frames = [np.asarray(image.array)] if image.frame_axis is None else [
        np.asarray(image.array[:, :, :, t]) for t in range(image.n_frames)
    ]

    rows = []
    for value, sl in label_boxes(lab).items():
        crop = lab[sl] == value
        offset = np.array([s.start for s in sl])
        n = int(crop.sum())
        geom: dict = {"label": value, "name": names.get(value), "voxel_count": n}
        if planar:  # 2D: area and perimeter in the image plane, no volume
            geom["area_mm2"] = n * pixel_mm2
            geom["perimeter_mm"] = perimeter_mm(crop[0], affine)
        else:
            geom["volume_mm3"] = n * vox_mm3
            geom["volume_ml"] = n * vox_mm3 / 1000.0
        geom.update(units=units, spacing_source=image.spacing_source,
                    spacing_plane=image.spacing_plane)
        info = region_shape(crop, offset, affine) if shape else None
        centroid = info["centroid"] if info else _centroid(crop, offset, affine)
        place = {
            "centroid_x_mm": centroid[0], "centroid_y_mm": centroid[1], "centroid_z_mm": centroid[2],
            "bbox_k0": sl[0].start, "bbox_k1": sl[0].stop,
            "bbox_j0": sl[1].start, "bbox_j1": sl[1].stop,
            "bbox_i0": sl[2].start, "bbox_i1": sl[2].stop,
        }
        for ax, name in enumerate("kji"):
            if planar and name == "k":
                continue
            place[f"extent_{name}_mm"] = (sl[ax].stop - sl[ax].start) * spacing[ax]
        if info:
            rec = info["recist"]
            place.update({
                "principal_axis_1_mm": info["axes"][0],
                "principal_axis_2_mm": info["axes"][1],
                **({} if planar else {"principal_axis_3_mm": info["axes"][2]}),
                "longest_diameter_mm": info["longest_mm"],
                "longest_axial_diameter_mm": rec["long_mm"],
                "short_axis_mm": rec["short_mm"],
                "recist_slice": rec["slice"],
            })
        for t, arr in enumerate(frames):
            values = np.asarray(arr[sl][crop], dtype=np.float64)
            row = dict(geom)
            if image.frame_axis is not None:
                row["frame"] = t
                if times is not None:
                    row[axis_col] = float(times[t])
            row.update(_intensity(values, qs))
            row.update(place)
            rows.append(row)
    return _table(rows, qs, timed=image.frame_axis is not None, shape=shape, planar=planar,
                  axis_col=axis_col)


def _frame_values(image: Image) -> tuple[np.ndarray | None, str | None]:
    """The values along a 4D image's fourth axis and the column they go to."""
    for values, col in ((image.frame_times_s, "time_s"), (image.b_values, "b_value_s_per_mm2"),
                        (image.echo_times_s, "echo_time_s")):
        if values is not None:
            return values, col
    return None, None


def _intensity(values: np.ndarray, qs: list[float]) -> dict:
    pct = np.percentile(values, [50.0, *qs])
    out = {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "median": float(pct[0]),
    }
    out.update({_percentile_column(q): float(p) for q, p in zip(qs, pct[1:], strict=True)})
    return out


def _centroid(crop: np.ndarray, offset: np.ndarray, affine: np.ndarray) -> np.ndarray:
    mean_index = np.argwhere(crop).mean(axis=0) + offset
    return affine[:3, :3] @ mean_index + affine[:3, 3]


def _table(rows: list[dict], qs: list[float], *, timed: bool, shape: bool,
           planar: bool, axis_col: str | None = "time_s") -> pd.DataFrame:
    columns = ["label", "name"]
    if timed:
        columns += ["frame", *([axis_col] if axis_col else [])]
    size = ["area_mm2", "perimeter_mm"] if planar else ["volume_mm3", "volume_ml"]
    columns += ["voxel_count", *size, "units", "mean", "std", "min", "max",
                "median", *(_percentile_column(q) for q in qs),
                "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
                "bbox_k0", "bbox_k1", "bbox_j0", "bbox_j1", "bbox_i0", "bbox_i1",
                *([] if planar else ["extent_k_mm"]), "extent_j_mm", "extent_i_mm"]
    if shape:
        columns += ["principal_axis_1_mm", "principal_axis_2_mm",
                    *([] if planar else ["principal_axis_3_mm"]),
                    "longest_diameter_mm", "longest_axial_diameter_mm", "short_axis_mm",
                    "recist_slice"]
    columns += ["spacing_source", "spacing_plane"]
    df = pd.DataFrame(rows, columns=columns)
    int_cols = ["label", "voxel_count", "bbox_k0", "bbox_k1", "bbox_j0", "bbox_j1",
                "bbox_i0", "bbox_i1"] + (["frame"] if timed else [])
    if shape:
        df["recist_slice"] = df["recist_slice"].astype("Int64")
    return df.astype(dict.fromkeys(int_cols, "int64"))
