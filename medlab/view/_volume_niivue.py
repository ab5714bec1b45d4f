"""NiiVue backend of :func:`medlab.view.volume`: in-memory NIfTI bytes to ipyniivue.

ipyniivue 2.4 bundles NiiVue's JavaScript in its wheel, so the viewer works
offline in JupyterLab 4. The images travel as NIfTI-1 bytes (made by
nibabel from :meth:`medlab.Image.to_nibabel`, RAS affine) through the
widget's binary ``data`` trait: no files, no URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._optional import import_optional
from ..image import Image
from ._slices import label_colors

__all__ = ["build_niivue", "check_niivue", "nifti_bytes", "niivue_colormaps"]


def check_niivue(colormap: str) -> None:
    """Raise if ipyniivue is missing or ``colormap`` is not one of NiiVue's."""
    import_optional("ipyniivue", feature="ml.view.volume (NiiVue widget for Jupyter)",
                    extra="view", hint="  (ipyniivue>=2.4,<2.5, anywidget>=0.9)")
    names = niivue_colormaps()
    if names and colormap not in names:
        raise ValueError(f"unknown colormap {colormap!r}; NiiVue has: {', '.join(names)}")


def _niivue_colormap_dir() -> Any:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("ipyniivue")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "colormaps"
    return folder if folder.is_dir() else None


def niivue_colormaps() -> list[str]:
    """Names of NiiVue's built-in colormaps (empty when ipyniivue is not installed)."""
    folder = _niivue_colormap_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder else []


def _matplotlib_cmap(name: str) -> Any:
    """The matplotlib colormap drawing like NiiVue's ``name`` (its own table when available)."""
    import json

    from matplotlib import colormaps
    from matplotlib.colors import LinearSegmentedColormap

    folder = _niivue_colormap_dir()
    path = folder / f"{name}.json" if folder else None
    if path is not None and path.is_file():
        table = json.loads(path.read_text())
        pos = np.asarray(table.get("I") or np.linspace(0, 255, len(table["R"])), dtype=float)
        rgb = np.stack([table["R"], table["G"], table["B"]], axis=1) / 255.0
        span = pos.max() - pos.min()
        pos = (pos - pos.min()) / span if span > 0 else np.linspace(0, 1, len(pos))
        return LinearSegmentedColormap.from_list(name, list(zip(pos, rgb, strict=True)))
    return colormaps[name] if name in colormaps else colormaps["gray"]


def nifti_bytes(image: Image) -> bytes:
    """An uncompressed single-file NIfTI-1 (``.nii``) of a 3D image, as bytes (RAS affine).

    64-bit integers, which NiiVue does not read, become int32 when their
    values fit, else float32.
    """
    arr = image.array
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        fits = arr.size == 0 or (arr.min() >= np.iinfo(np.int32).min and arr.max() <= np.iinfo(np.int32).max)
        image = image.with_array(arr.astype(np.int32 if fits else np.float32))
    return image.to_nibabel().to_bytes()


def _label_lut(values: np.ndarray, names: Mapping[int, str] | None) -> dict[str, Any]:
    values = np.unique(np.concatenate([[0], values.astype(np.int64)]))
    rgb = np.rint(label_colors(values) * 255).astype(int)
    names = dict(names or {})
    return {
        "R": rgb[:, 0].tolist(),
        "G": rgb[:, 1].tolist(),
        "B": rgb[:, 2].tolist(),
        "A": [0 if v == 0 else 255 for v in values],
        "I": [int(v) for v in values],
        "labels": [names.get(int(v), "" if v == 0 else str(int(v))) for v in values],
    }


def build_niivue(state: dict[str, Any], *, height: int, label_names: Mapping[int, str] | None) -> Any:
    """The NiiVue widget: multiplanar views plus a 3D render, image and optional labels."""
    from ipyniivue import MultiplanarType, NiiVue, ShowRender, SliceType, Volume

    image: Image = state["display_image"]
    width, level = state["window"]
    nv = NiiVue(
        height=int(height),
        slice_type=SliceType.MULTIPLANAR,
        multiplanar_show_render=ShowRender.ALWAYS,
        multiplanar_layout=MultiplanarType.GRID,
        is_radiological_convention=not state["neurological"],
        is_orient_cube=True,
        drag_and_drop_enabled=False,
        back_color=(0.0, 0.0, 0.0, 1.0),
        # orientation letters white and large enough to read (NiiVue's default: small, grey)
        font_color=(1.0, 1.0, 1.0, 1.0),
        font_size_scaling=0.8,
        font_min_px=16,
        # the nose to the left on the sagittal pane: anterior on the left, as in the slice viewer
        sagittal_nose_left=True,
    )
    main = Volume(
        name="image.nii",
        data=nifti_bytes(image),
        colormap=state["colormap"],
        cal_min=float(level - width / 2.0),
        cal_max=float(level + width / 2.0),
        opacity=1.0,
        colorbar_visible=False,
    )
    if state["invert"]:
        main.colormap_invert = True
    volumes = [main]
    labels: Image | None = state["display_labels"]
    if labels is not None:
        lab = Volume(
            name="labels.nii",
            data=nifti_bytes(labels),
            opacity=float(state["label_opacity"]),
            colorbar_visible=False,
        )
        present = np.unique(labels.array)
        lab.set_colormap_label(_label_lut(present[present != 0], label_names))
        volumes.append(lab)
    nv.load_volumes(volumes)
    return nv
