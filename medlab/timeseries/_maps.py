"""Parameter maps: a result mapping, tables, NIfTI and DICOM Parametric Map export."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import GeometryMismatchError, MissingDependencyError
from ..image import Image
from ._aif import AIF
from ._common import map_image

__all__ = ["KineticMaps", "save_maps_nifti", "write_parametric_map"]

#: (code value, scheme, meaning) of DICOM quantities (CID 7180 / DCM) and UCUM units
_QUANTITY_CODES = {
    "ktrans": ("126312", "DCM", "Ktrans"),
    "kep": ("126313", "DCM", "kep"),
    "ve": ("126314", "DCM", "ve"),
    "vp": ("126331", "DCM", "vp"),
}
_UNIT_CODES = {
    "/min": ("/min", "UCUM", "/min"),
    "1": ("1", "UCUM", "no units"),
    "mM": ("mmol/L", "UCUM", "millimole per liter"),
    "s": ("s", "UCUM", "second"),
    "%": ("%", "UCUM", "percent"),
}
_COLUMN_UNITS = {"/min": "_per_min", "mM": "_mM", "s": ""}


class KineticMaps(Mapping[str, Image]):
    """Kinetic parameter maps of one fit, by name, as Images on the source grid.

    Attributes
    ----------
    model : str
        ``'tofts'``, ``'extended_tofts'`` or ``'patlak'``.
    aif : AIF
        The input function used.
    method : str
        How the parameters were estimated.
    """

    def __init__(self, maps: Mapping[str, Image], *, model: str, aif: AIF, method: str) -> None:
        self._maps = dict(maps)
        self.model = model
        self.aif = aif
        self.method = method

    @classmethod
    def from_arrays(cls, source: Image, arrays: Mapping[str, np.ndarray], *, model: str,
                    aif: AIF, method: str) -> KineticMaps:
        from ._fit import UNITS

        maps = {}
        for name, arr in arrays.items():
            img = map_image(source, arr, quantity=name, units=UNITS.get(name))
            img.meta.update(model=model, aif=aif.name, method=method)
            maps[name] = img
        return cls(maps, model=model, aif=aif, method=method)

    def __getitem__(self, name: str) -> Image:
        try:
            return self._maps[name]
        except KeyError:
            raise KeyError(f"no map {name!r}; this fit has {sorted(self._maps)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._maps)

    def __len__(self) -> int:
        return len(self._maps)

    def __repr__(self) -> str:
        return (f"KineticMaps(model={self.model!r}, maps={list(self._maps)}, aif={self.aif.name!r}, "
                f"method={self.method!r})")

    def to_dataframe(self, mask: Image | None = None) -> pd.DataFrame:
        """One row per fitted voxel: ``k, j, i`` and each parameter with its unit in the name."""
        first = next(iter(self._maps.values()))
        fitted = np.isfinite(np.asarray(first.array))
        if mask is not None:
            first.match_geometry(mask)
            fitted &= np.asarray(mask.array).astype(bool)
        k, j, i = np.nonzero(fitted)
        data: dict[str, Any] = {"k": k, "j": j, "i": i}
        for name, img in self._maps.items():
            unit = img.meta.get("units")
            data[name + _COLUMN_UNITS.get(unit, "")] = np.asarray(img.array)[fitted]
        return pd.DataFrame(data)

    def summary(self, mask: Image | None = None) -> pd.DataFrame:
        """Median, mean, std and voxel count of every map (over ``mask`` when given)."""
        table = self.to_dataframe(mask).drop(columns=["k", "j", "i"])
        out = table.agg(["median", "mean", "std", "count"]).T.rename(columns={"count": "n"})
        return out.rename_axis("parameter").reset_index()

    def save_nifti(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write every map as ``<folder>/<name>.nii.gz``; see :func:`save_maps_nifti`."""
        return save_maps_nifti(self._maps, folder)

    def write_dicom(self, source: Any, folder: str | os.PathLike, *,
                    names: tuple[str, ...] | None = None, series_number: int = 400
                    ) -> dict[str, Path]:
        """Write maps as DICOM Parametric Maps referencing ``source``; see
        :func:`write_parametric_map`. Default: the model's parameters."""
        from ._fit import PARAMETERS

        folder = Path(folder)
        wanted = names or PARAMETERS[self.model]
        return {name: write_parametric_map(self[name], source, folder / f"{name}.dcm",
                                           series_number=series_number + n)
                for n, name in enumerate(wanted)}


def save_maps_nifti(maps: Mapping[str, Image], folder: str | os.PathLike) -> dict[str, Path]:
    """Write parameter maps as ``<folder>/<name>.nii.gz`` (float32, NaN kept)."""
    from ..io import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, img in maps.items():
        clean = img.with_array(np.asarray(img.array, dtype=np.float32),
                               meta={k: v for k, v in img.meta.items() if k != "files"})
        out[name] = save(clean, folder / f"{name}.nii.gz")
    return out


def _source_datasets(source: Any) -> list:
    import pydicom

    if isinstance(source, Image):
        files = source.meta.get("files")
        if not files:
            raise ValueError(
                "the source image has no meta['files'] (it was not loaded from DICOM); pass the "
                "source series' folder or files instead"
            )
        paths: list = list(files)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        paths = sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p]
    else:
        paths = list(source)
    out = []
    for item in paths:
        ds = item if isinstance(item, pydicom.Dataset) else pydicom.dcmread(item)
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            out.append(ds)
    if not out:
        raise ValueError(f"no single-frame DICOM image with a position was found in {source!r}")
    return out


def _code(triple: tuple[str, str, str]):
    import highdicom as hd

    return hd.sr.CodedConcept(value=triple[0], scheme_designator=triple[1], meaning=triple[2])


def write_parametric_map(
    image: Image,
    source: Any,
    path: str | os.PathLike,
    *,
    quantity: str | None = None,
    units: str | None = None,
    series_number: int = 400,
    series_description: str | None = None,
) -> Path:
    """Write a 3D map as a DICOM Parametric Map (float) referencing its source series.

    Parameters
    ----------
    image : Image
        The map, on the grid of the source series (same slices, rows and
        columns), e.g. one of :func:`fit_kinetics`' maps. NaN is kept.
    source : Image, folder or list of paths/Datasets
        The source series: the image loaded with :func:`medlab.load` (its
        ``meta['files']``), or its single-frame DICOM files. For a dynamic
        series with several files per position, the first in file order is
        referenced for each slice.
    path : path
        Output file.
    quantity, units : str, optional
        Default ``image.meta['quantity']`` and ``meta['units']``; quantities
        ktrans, kep, ve and vp get their DICOM codes (DCM 126312-126331).
    series_number, series_description
        Of the new series.

    Returns
    -------
    pathlib.Path
    """
    try:
        import highdicom as hd
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingDependencyError(
            "writing DICOM Parametric Maps needs 'highdicom'; pip install 'medlab[segmentation]'"
        ) from exc
    if image.frame_times_s is not None or image.channels:
        raise ValueError(f"a parametric map must be one 3D image, got {image!r}")
    quantity = quantity or str(image.meta.get("quantity", "value"))
    units = units if units is not None else image.meta.get("units") or "1"
    datasets = _source_datasets(source)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    affine = image.affine
    spacing = np.asarray(image.spacing)
    row_dir, col_dir = affine[:3, 2] / spacing[2], affine[:3, 1] / spacing[1]
    chosen = []
    for k in range(image.spatial_shape[0]):
        pos = affine[:3, :3] @ [k, 0, 0] + affine[:3, 3]
        hits = np.flatnonzero(np.linalg.norm(positions - pos, axis=1) < 1e-2 * max(spacing[0], 1))
        if hits.size == 0:
            raise GeometryMismatchError(
                f"slice {k} of the map (at {np.round(pos, 2).tolist()} mm) has no source image at "
                "that position; write maps on the source series' own grid"
            )
        ds = datasets[int(hits[0])]
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        if (not np.allclose(iop[:3], row_dir, atol=1e-3) or not np.allclose(iop[3:], col_dir, atol=1e-3)
                or (int(ds.Rows), int(ds.Columns)) != image.spatial_shape[1:]):
            raise GeometryMismatchError(
                "the map's rows and columns are not the source images' pixel grid (was it "
                "reoriented or resampled?); write maps on the source series' own grid"
            )
        chosen.append(ds)
    pixels = np.asarray(image.array, dtype=np.float32)
    finite = pixels[np.isfinite(pixels)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    qcode = _QUANTITY_CODES.get(quantity.lower())
    qconcept = _code(qcode) if qcode else hd.sr.CodedConcept(
        value="121401", scheme_designator="DCM", meaning="Derived")
    ucode = _UNIT_CODES.get(units, (units, "UCUM", units))
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=quantity[:16], lut_explanation=f"{quantity} ({units})"[:64], unit=_code(ucode),
        value_range=(lo, hi), slope=1.0, intercept=0.0,
        quantity_definition=qconcept)
    first = chosen[0]
    pm = hd.pm.ParametricMap(
        source_images=chosen, pixel_array=pixels, series_instance_uid=hd.UID(),
        series_number=int(series_number), sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="medlab", manufacturer_model_name="medlab.timeseries",
        software_versions=f"medlab {__version__}", device_serial_number="none",
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=(lo + hi) / 2,
                                                         window_width=hi - lo)],
        content_label=quantity.upper()[:16],
        content_description=str(image.meta.get("model", quantity))[:64],
        pixel_measures=hd.PixelMeasuresSequence(
            pixel_spacing=[float(spacing[1]), float(spacing[2])],
            slice_thickness=float(first.get("SliceThickness", spacing[0]) or spacing[0])),
        plane_orientation=hd.PlaneOrientationSequence(
            coordinate_system="PATIENT", image_orientation=[*row_dir.tolist(), *col_dir.tolist()]),
        plane_positions=[hd.PlanePositionSequence(
            coordinate_system="PATIENT",
            image_position=(affine[:3, :3] @ [k, 0, 0] + affine[:3, 3]).tolist())
            for k in range(image.spatial_shape[0])],
    )
    pm.SeriesDescription = (series_description or f"medlab {quantity} map")[:64]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.save_as(path)
    return path
