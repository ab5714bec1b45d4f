"""Static slice views (matplotlib): three orthogonal planes with orientation letters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..image import Image
from ._display import ensure_figure_display
from ._window import apply_window, resolve_window

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["draw_letters", "label_colors", "plane_slices", "plot_slices"]

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

    base = np.vstack([matplotlib.colormaps["tab10"].colors,
                      matplotlib.colormaps["tab20b"].colors])[:, :3]
    v = np.asarray(values, dtype=int)
    out = base[(v - 1) % len(base)]
    out[v == 0] = 0.0
    return out


def draw_letters(ax: Any, letters: tuple[str, ...] | list[str], *, fontsize: int = 12) -> None:
    """Orientation letters (left, right, top, bottom) at the edges of a matplotlib Axes."""
    left, right, top, bottom = letters
    kw = {"color": "yellow", "fontsize": fontsize, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.02, 0.5, left, ha="left", va="center", **kw)
    ax.text(0.98, 0.5, right, ha="right", va="center", **kw)
    ax.text(0.5, 0.98, top, ha="center", va="top", **kw)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **kw)


def plane_slices(
    image: Image, *, point: Any = None, frame: int = 0, neurological: bool = False
) -> dict[str, tuple[np.ndarray, tuple[float, float, float, float], tuple[str, ...]]]:
    """Axial, coronal and sagittal planes through ``point`` (LPS mm; default centre).

    Returns, per plane, ``(pixels, extent_mm, letters)`` ready for
    ``imshow(pixels, extent=extent_mm)`` with the first row at the top.
    Axis-aligned reorientation only (oblique images show their closest
    planes, not resampled ones).
    """
    img = image.frame(frame) if image.n_frames > 1 else image
    canon = img.reorient("SPL")  # axes: inferior->superior, anterior->posterior, right->left
    arr = canon.array
    if point is None:
        idx = (np.asarray(canon.spatial_shape) - 1) // 2
    else:
        idx = np.clip(np.rint(canon.world_to_index(point)).astype(int), 0,
                      np.asarray(canon.spatial_shape) - 1)
    sz, sy, sx = canon.spacing
    nz, ny, nx = canon.spatial_shape
    out = {}
    # axial: rows anterior->posterior (top = A), columns right->left (left = R)
    ax = arr[idx[0]]
    out["axial"] = (ax, (0, nx * sx, ny * sy, 0), _LETTERS["axial"])
    # coronal: rows superior at top -> flip the slice axis
    co = arr[::-1, idx[1]]
    out["coronal"] = (co, (0, nx * sx, 0, nz * sz), _LETTERS["coronal"])
    # sagittal: columns anterior->posterior, rows superior at top
    sa = arr[::-1, :, idx[2]]
    out["sagittal"] = (sa, (0, ny * sy, 0, nz * sz), _LETTERS["sagittal"])
    if neurological:
        for name in ("axial", "coronal"):
            px, ext, (left, right, top, bottom) = out[name]
            out[name] = (px[:, ::-1], ext, (right, left, top, bottom))
    return out


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
    """Three orthogonal slices with orientation letters, window/level and mm axes.

    Parameters
    ----------
    image : Image
    window : str or (width, level), optional
        A preset name (``'ct_lung'``, ``'ct_bone'``, ... see
        ``medlab.view.WINDOW_PRESETS``), an explicit pair, or None for
        automatic (soft tissue for CT, 1-99 percentiles otherwise).
    point : 3 floats, optional
        LPS mm point the planes pass through; default the image centre.
    frame : int
        Time frame of a 4D image.
    labels : Image, optional
        A label image on the same grid, drawn as a coloured overlay.
    neurological : bool
        Patient's right on the screen's right (default radiological).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if image.channels:
        raise ValueError("plot_slices shows grey-scale images; show RGB frames with imshow")
    width, level = resolve_window(image, window)
    if image.meta.get("invert_display"):
        cmap = cmap + "_r" if not cmap.endswith("_r") else cmap[:-2]
    planes = plane_slices(image, point=point, frame=frame, neurological=neurological)
    label_planes = None
    if labels is not None:
        image.match_geometry(labels)
        label_planes = plane_slices(labels, point=point, neurological=neurological)
    is_2d = image.spatial_shape[0] == 1
    names = ["axial"] if is_2d else ["axial", "coronal", "sagittal"]
    fig = Figure(figsize=(4.2 * len(names), 4.4), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        px, extent, (left, right, top, bottom) = planes[name]
        ax.imshow(apply_window(px, width, level), cmap=cmap, vmin=0, vmax=1, extent=extent,
                  interpolation="nearest")
        if label_planes is not None:
            lab = label_planes[name][0]
            rgba = np.concatenate([label_colors(lab), 0.45 * (lab > 0)[..., None]], axis=-1)
            ax.imshow(rgba, extent=extent, interpolation="nearest")
        ax.set_title(name if not is_2d else (title or image.meta.get("id", "image")))
        ax.set_xlabel("mm" if image.spacing_known else "pixels (spacing unknown)")
        draw_letters(ax, (left, right, top, bottom))
    if title and not is_2d:
        fig.suptitle(title)
    fig.text(0.99, 0.01, f"W {width:g} / L {level:g}", ha="right", va="bottom", fontsize=8)
    plt.close("all")  # the Figure is not registered with pyplot; nothing leaks
    ensure_figure_display()
    return fig
