"""Static slice views (matplotlib): three orthogonal planes with orientation letters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..image import Image
from ..privacy import display_text
from ._display import ensure_figure_display, require_matplotlib
from ._window import apply_window, resolve_window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["draw_letters", "label_colors", "label_legend", "plane_slices", "plot_slices"]

# (screen-left, screen-right, top, bottom) letters per plane in radiological convention
_LETTERS = {
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}


def label_colors(values: Any) -> np.ndarray:
    """RGB in [0, 1] of label values (0 is black): the one label mapping of every medlab view.

    matplotlib's tab10 then tab20b, cycling, so label 1 has the same colour in
    static plots, the slice viewer, its snapshot and the 3D view.
    """
    import matplotlib
    from matplotlib.colors import ListedColormap

    base = np.vstack([cast(ListedColormap, matplotlib.colormaps["tab10"]).colors,
                      cast(ListedColormap, matplotlib.colormaps["tab20b"]).colors])[:, :3]
    v = np.asarray(values, dtype=int)
    out = base[(v - 1) % len(base)]
    out[v == 0] = 0.0
    return out


def label_legend(values: Any, names: Any = None, *, meta: Any = None) -> list[dict[str, Any]]:
    """Legend entries ``{'value', 'name', 'color'}`` of the non-zero label values, in order.

    ``names``: a mapping value -> name or a sequence (value 1 first); default
    ``meta['label_names']`` or ``meta['labels']``; unnamed values read
    ``"label <value>"``. Colours are :func:`label_colors` as ``#rrggbb``.
    """
    from collections.abc import Sequence

    if names is None and meta is not None:
        names = meta.get("label_names") or meta.get("labels")
    names = names or {}
    if isinstance(names, Sequence) and not isinstance(names, str):
        names = {i + 1: n for i, n in enumerate(names)}
    names = {int(k): str(v) for k, v in dict(names).items()}
    vals = [int(v) for v in np.unique(np.asarray(values)) if v > 0]
    colours = np.rint(label_colors(vals) * 255).astype(int) if vals else []
    return [{"value": v, "name": names.get(v, f"label {v}"),
             "color": "#{:02x}{:02x}{:02x}".format(*c)} for v, c in zip(vals, colours, strict=True)]


def draw_letters(ax: Any, letters: tuple[str, ...] | list[str], *, fontsize: int = 12) -> None:
    """Orientation letters (left, right, top, bottom) at the edges of a matplotlib Axes."""
    left, right, top, bottom = letters
    from matplotlib import patheffects

    # a dark outline keeps them readable on bright pixels
    kw = {"color": "yellow", "fontsize": fontsize, "fontweight": "bold", "transform": ax.transAxes,
          "path_effects": [patheffects.withStroke(linewidth=2.5, foreground="black")]}
    ax.text(0.02, 0.5, left, ha="left", va="center", **kw)
    ax.text(0.98, 0.5, right, ha="right", va="center", **kw)
    ax.text(0.5, 0.98, top, ha="center", va="top", **kw)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **kw)


_AXIS_NAMES = ("x", "y", "z")


def _plane_axes(affine: np.ndarray, origin_index: np.ndarray, row_step: np.ndarray,
                col_step: np.ndarray, shape: tuple[int, int]) -> tuple[tuple[float, ...], str, str]:
    """imshow extent (left, right, bottom, top) of a plane in LPS mm, and the LPS axis names
    (horizontal, vertical): pixel (row r, column c) shows canonical voxel
    ``origin_index + r * row_step + c * col_step``; the extent puts every pixel centre at the
    LPS coordinate of its voxel along the axis each screen direction follows most closely."""
    a = np.asarray(affine, dtype=float)
    w0 = a[:3, :3] @ origin_index + a[:3, 3]
    dc, dr = a[:3, :3] @ col_step, a[:3, :3] @ row_step
    hor, ver = int(np.argmax(np.abs(dc))), int(np.argmax(np.abs(dr)))
    h, w = shape
    left, right = w0[hor] - dc[hor] / 2, w0[hor] + (w - 0.5) * dc[hor]
    top, bottom = w0[ver] - dr[ver] / 2, w0[ver] + (h - 0.5) * dr[ver]
    return (float(left), float(right), float(bottom), float(top)), _AXIS_NAMES[hor], _AXIS_NAMES[ver]


def plane_slices(
    image: Image, *, point: Any = None, frame: int = 0, neurological: bool = False
) -> dict[str, tuple[np.ndarray, tuple[float, ...], tuple[str, ...]]]:
    """Axial, coronal and sagittal planes through ``point`` (LPS mm; default centre).

    Returns, per plane, ``(pixels, extent, letters)`` ready for
    ``imshow(pixels, extent=extent)`` with the first row at the top. The
    extent is in patient coordinates (LPS mm): each pixel's centre lies at
    its voxel's LPS coordinates along the two axes shown (axial: x, y;
    coronal: x, z; sagittal: y, z), so a point's position can be read off
    the axes. Axis-aligned reorientation only (oblique images show their
    closest planes, not resampled ones, with the coordinates of the axes
    they lie closest to). RGB images keep their trailing channel axis.
    """
    img = image.frame(frame) if image.n_frames > 1 else image
    canon = img.reorient("SPL")  # axes: inferior->superior, anterior->posterior, right->left
    arr = canon.array
    if point is None:
        idx = (np.asarray(canon.spatial_shape) - 1) // 2
    else:
        idx = np.clip(np.rint(canon.world_to_index(point)).astype(int), 0,
                      np.asarray(canon.spatial_shape) - 1)
    nz = canon.spatial_shape[0]
    k, j, i = (int(v) for v in idx)
    e = np.eye(3)
    # (pixels, canonical index of pixel (0, 0), index step per row, per column)
    planes = {
        # rows anterior->posterior (top = A), columns right->left (left = R)
        "axial": (arr[k], np.array([k, 0, 0.0]), e[1], e[2]),
        # rows superior at top -> flip the slice axis
        "coronal": (arr[::-1, j], np.array([nz - 1.0, j, 0]), -e[0], e[2]),
        # columns anterior->posterior, rows superior at top
        "sagittal": (arr[::-1, :, i], np.array([nz - 1.0, 0, i]), -e[0], e[1]),
    }
    out: dict[str, tuple[np.ndarray, tuple[float, ...], tuple[str, ...]]] = {}
    for name, (px, origin, row_step, col_step) in planes.items():
        letters = _LETTERS[name]
        if neurological and name != "sagittal":
            px = px[:, ::-1]
            origin = origin + (px.shape[1] - 1) * col_step
            col_step = -col_step
            letters = (letters[1], letters[0], letters[2], letters[3])
        extent, _, _ = _plane_axes(canon.affine, origin, row_step, col_step, px.shape[:2])
        out[name] = (px, extent, letters)
    return out


def _axis_label(image: Image, name: str) -> str:
    if not image.spacing_known:
        return f"{name} (pixels)"
    if image.meta.get("patient_geometry") is False:
        return f"{name} (mm)"
    return f"{name} (LPS mm)"


def plot_slices(
    image: Image,
    *,
    window: str | tuple[float, float] | None = None,
    point: Any = None,
    frame: int = 0,
    labels: Image | None = None,
    cmap: str = "gray",
    neurological: bool = False,
    title: str | None = None,
) -> Figure:
    """Three orthogonal slices with orientation letters, window/level and axes in LPS mm.

    The axes are patient coordinates (LPS millimetres: axial x and y,
    coronal x and z, sagittal y and z), so a point's position, e.g. a seed
    for region growing, can be read off the figure. A single 2D image (a
    radiograph, an ultrasound frame) is shown as stored, one pane; without
    a position in the patient its axes are the image's own columns and
    rows (mm from the corner, or pixels when the spacing is unknown).

    Parameters
    ----------
    image : Image
        Grey-scale, or RGB (``image.channels``; shown as stored, no window).
    window : str or (width, level), optional
        A preset name (``'ct_lung'``, ``'ct_bone'``, ... see
        ``medlab.view.WINDOW_PRESETS``), an explicit pair, or None for
        automatic (soft tissue for CT, 1-99 percentiles otherwise).
    point : 3 floats, optional
        LPS mm point the planes pass through; default the image centre.
    frame : int
        Time frame of a 4D image (or cine).
    labels : Image, optional
        A label image on the same grid, drawn as a coloured overlay.
    neurological : bool
        Patient's right on the screen's right (default radiological).

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_matplotlib("ml.view.plot_slices")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    rgb = bool(image.channels)
    if rgb and image.array.shape[-1] not in (3, 4):
        raise ValueError(f"plot_slices shows grey-scale or RGB(A) images, got {image.array.shape[-1]} "
                         "channels; pick channels with image.with_array(image.array[..., :3])")
    width, level = resolve_window(image, window) if not rgb else (255.0, 127.5)
    if image.meta.get("invert_display"):
        cmap = cmap + "_r" if not cmap.endswith("_r") else cmap[:-2]
    is_2d = image.spatial_shape[0] == 1
    planes: dict[str, tuple[Any, ...]]
    if is_2d:
        planes = {"axial": _image_plane(image, frame)}
    else:
        planes = plane_slices(image, point=point, frame=frame, neurological=neurological)
    label_planes = None
    if labels is not None:
        image.match_geometry(labels)
        label_planes = ({"axial": _image_plane(labels, 0)} if is_2d else
                        plane_slices(labels, point=point, neurological=neurological))
    names = ["axial"] if is_2d else ["axial", "coronal", "sagittal"]
    fig = Figure(figsize=(4.2 * len(names), 4.4) if not is_2d else (6.0, 5.6),
                 layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    axis_names = {"axial": ("x", "y"), "coronal": ("x", "z"), "sagittal": ("y", "z")}
    for ax, name in zip(axes, names, strict=True):
        px, extent, letters = planes[name][:3]
        if rgb:
            shown = np.asarray(px)
            if shown.dtype != np.uint8:
                shown = np.clip(shown / max(float(np.nanmax(shown)), 1e-12), 0, 1)
            ax.imshow(shown, extent=extent, interpolation="nearest")
        else:
            ax.imshow(apply_window(px, width, level), cmap=cmap, vmin=0, vmax=1, extent=extent,
                      interpolation="nearest")
        if label_planes is not None:
            lab = label_planes[name][0]
            rgba = np.concatenate([label_colors(lab), 0.45 * (lab > 0)[..., None]], axis=-1)
            ax.imshow(rgba, extent=extent, interpolation="nearest")
        if is_2d:
            hname, vname = planes[name][3], planes[name][4]
            ax.set_title(display_text(title or image.meta.get("id", "image")))
        else:
            hname, vname = axis_names[name]
            ax.set_title(name)
        ax.set_xlabel(_axis_label(image, hname))
        ax.set_ylabel(_axis_label(image, vname))
        draw_letters(ax, letters)
    if title and not is_2d:
        fig.suptitle(display_text(title))
    info = [] if rgb else [f"W {width:g} / L {level:g}"]
    if image.n_frames > 1:
        info.append(f"frame {frame + 1}/{image.n_frames}")
    fig.text(0.99, 0.01, "   ".join(info), ha="right", va="bottom", fontsize=8)
    plt.close("all")  # the Figure is not registered with pyplot; nothing leaks
    ensure_figure_display()
    return fig


def _image_plane(image: Image, frame: int) -> tuple[np.ndarray, tuple[float, ...], tuple[str, ...], str, str]:
    """A 2D image as stored (rows down, columns right): pixels, extent, letters, axis names."""
    arr = image.array[0]
    if image.n_frames > 1:
        arr = arr[:, :, frame]
    h, w = arr.shape[:2]
    if image.meta.get("patient_geometry") is False:
        sr, sc = image.spacing[1], image.spacing[2]
        letters = tuple(projection_letters(image.meta.get("patient_orientation")))
        return arr, (0.0, w * sc, h * sr, 0.0), letters, "column", "row"
    e = np.eye(3)
    extent, hname, vname = _plane_axes(image.affine, np.zeros(3), e[1], e[2], (h, w))
    a = image.affine[:3, :3]
    letters = (_letter(-a @ e[2]), _letter(a @ e[2]), _letter(-a @ e[1]), _letter(a @ e[1]))
    return arr, extent, letters, hname, vname


def _letter(direction: np.ndarray) -> str:
    """The patient direction (LPS) a screen direction points to."""
    a = int(np.argmax(np.abs(direction)))
    return ("L", "P", "S")[a] if direction[a] > 0 else ("R", "A", "I")[a]


_OPPOSITE = str.maketrans("LRAPHFSI", "RLPAFHIS")


def projection_letters(orientation: Any) -> list[str]:
    """(left, right, top, bottom) from DICOM PatientOrientation (row, column directions)."""
    if not orientation or len(orientation) != 2:
        return ["", "", "", ""]
    right, bottom = (str(v) for v in orientation)
    return [right.translate(_OPPOSITE), right, bottom.translate(_OPPOSITE), bottom]


def acquisition_plane(image: Image) -> str:
    """The plane (axial, coronal or sagittal) closest to the image's own slices."""
    if image.spatial_shape[0] == 1:
        return "axial"
    normal = image.affine[:3, 0]
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]
