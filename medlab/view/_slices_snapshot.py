"""The slice viewer's static picture, drawn in the kernel from its Python state."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._slices import draw_letters, label_colors
from ._window import apply_window, window_scaled

__all__ = ["Snapshot", "label_lut"]


def label_lut() -> np.ndarray:
    """(256, 3) uint8 colours of label values modulo 256, sent to the browser (0 black)."""
    return np.rint(label_colors(np.arange(256)) * 255).astype(np.uint8)


def _scale_bar_mm(width_mm: float) -> float:
    """A round length near a fifth of the width (the browser uses the same rule)."""
    nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    target = width_mm / 5
    return max([s for s in nice if s <= target], default=nice[0])


def _lut_index(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """0..255 lookup-table indices of windowed values (NaN shows as the lowest, like the browser)."""
    return np.rint(np.nan_to_num(apply_window(values, width, level), nan=0.0) * 255).astype(int)


class Snapshot:
    """Mixin for :class:`~medlab.view.SliceViewer`: the same compositing as the browser, in numpy."""

    # ------------------------------------------------------------ static picture
    def _compose(self, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        """RGB picture of a pane (the same compositing as the browser)."""
        pane = self._pane(name)
        px = self._plane_pixels(self._frame_array(self._canon), name)
        width, level = self.window
        lut = np.frombuffer(self._lut, np.uint8).reshape(256, 3) / 255.0
        if self.rgb:
            rgb = np.asarray(px, dtype=np.float32) / 255.0
        else:
            g = _lut_index(px, width, level)
            if self.invert:
                g = 255 - g
            rgb = lut[g]
        if self._overlay is not None and self.overlay_mode not in ("off", "none"):
            ov = self._plane_pixels(self._frame_array(self._overlay), name)
            a = self.overlay_alpha
            og = _lut_index(ov, *self.overlay_window)  # the overlay's own window
            grey = lut[255 - og if self.invert else og]
            if self.overlay_mode == "fusion":
                t_ = np.nan_to_num(apply_window(ov, *self.overlay_window), nan=0.0)
                olut = np.frombuffer(self._overlay_lut, np.uint8).reshape(256, 3) / 255.0
                col = olut[np.rint(t_ * 255).astype(int)]
                on = (t_ > 0)[..., None]
                rgb = np.where(on, (1 - a) * rgb + a * col, rgb)
            elif self.overlay_mode == "checkerboard":
                h, w = ov.shape
                r, c = np.mgrid[0:h, 0:w]
                odd = ((np.floor(c / (w / self.tiles)) + np.floor(r / (h / self.tiles))) % 2 == 1)
                rgb = np.where(odd[..., None], grey, rgb)
            elif self.overlay_mode == "blend":
                rgb = (1 - a) * rgb + a * grey
            elif self.overlay_mode == "difference":
                d = np.clip(0.5 + 0.5 * (window_scaled(px, width, level)
                                         - window_scaled(ov, *self.overlay_window)), 0, 1)
                rgb = np.repeat(np.nan_to_num(d, nan=0.5)[..., None], 3, axis=-1)
        if self._labels is not None and self.label_opacity > 0:
            lab = self._plane_pixels(np.asarray(self._labels.array), name)
            colors = label_lut() / 255.0
            on = (lab > 0)[..., None]
            rgb = np.where(on, (1 - self.label_opacity) * rgb
                           + self.label_opacity * colors[lab.astype(int) % 256], rgb)
        return np.clip(rgb, 0, 1), pane

    def snapshot(self) -> Any:
        """A matplotlib Figure of the current view (planes, crosshair, letters, labels, drawings)."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        n = len(self.planes)
        fig = Figure(figsize=(4.0 * n, 4.3) if n > 1 else (5.6, 5.8), layout="constrained",
                     facecolor="black")
        axes = fig.subplots(1, n, squeeze=False)[0]
        results = self._results
        for ax, name in zip(axes, self.planes, strict=True):
            rgb, pane = self._compose(name)
            h, w = pane["shape"]
            dr, dc = pane["pixel_mm"]
            ax.imshow(rgb, extent=(0, w * dc, h * dr, 0), interpolation="nearest")
            ax.set_facecolor("black")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(pane["title"] if n > 1 else self.title or pane["title"], color="white",
                         fontsize=10)
            m = np.asarray(pane["M"])

            def to_mm(index: np.ndarray, m: np.ndarray = m, dr: float = dr,
                      dc: float = dc) -> np.ndarray:
                rc = self._pane_rc_at(m, index)
                return np.column_stack([(rc[:, 1] + 0.5) * dc, (rc[:, 0] + 0.5) * dr])

            if n > 1:
                x, y = to_mm(np.asarray(self.cursor, float))[0]
                ax.axvline(x, color="c", lw=0.6, alpha=0.6)
                ax.axhline(y, color="c", lw=0.6, alpha=0.6)
            for a in self.annotations:
                if a["plane"] != name or int(a["slice"]) != pane["slice"]:
                    continue
                xy = to_mm(np.asarray(a["points"], float))
                if a["kind"] in ("rect", "ellipse"):
                    from matplotlib.patches import Ellipse, Rectangle

                    (x0, y0), (x1, y1) = xy
                    patch = (Rectangle((min(x0, x1), min(y0, y1)), abs(x1 - x0), abs(y1 - y0))
                             if a["kind"] == "rect" else
                             Ellipse(((x0 + x1) / 2, (y0 + y1) / 2), abs(x1 - x0), abs(y1 - y0)))
                    patch.set(fill=False, edgecolor="lime", lw=1.2)
                    ax.add_patch(patch)
                else:
                    closed = a["kind"] == "polygon"
                    pts = np.vstack([xy, xy[:1]]) if closed else xy
                    ax.plot(pts[:, 0], pts[:, 1], "-o", color="lime", lw=1.2, ms=3)
                ax.text(xy[-1, 0], xy[-1, 1], f" {a['kind']} {a['id']}: "
                        f"{results.get(str(a['id']), '')}", color="lime", fontsize=7, clip_on=True)
            draw_letters(ax, pane["letters"], fontsize=11)
            if pane.get("calibrated", True):  # no scale bar without a known spacing
                bar = _scale_bar_mm(w * dc)
                ax.plot([w * dc * 0.95 - bar, w * dc * 0.95], [h * dr * 0.93] * 2, color="white",
                        lw=2)
                ax.text(w * dc * 0.95, h * dr * 0.91, f"{bar:g} mm", color="white", fontsize=7,
                        ha="right", va="bottom")
        info = [] if self.rgb else [f"W {self.window[0]:g} / L {self.window[1]:g}"]
        if self.n_frames > 1:
            info.append(f"frame {self.frame + 1}/{self.n_frames} {self.frame_label}")
        if self._overlay is not None and self.overlay_mode == "difference":
            info.insert(0, "difference: fixed \u2212 moving, each scaled by its own window")
        fig.text(0.99, 0.005, "   ".join(info), color="white", ha="right", va="bottom", fontsize=8)
        if self._overlay is not None and self.overlay_mode == "fusion":
            from matplotlib.cm import ScalarMappable
            from matplotlib.colors import ListedColormap, Normalize

            ow, ol = self.overlay_window
            olut = np.frombuffer(self._overlay_lut, np.uint8).reshape(256, 3) / 255.0
            bar = fig.colorbar(ScalarMappable(Normalize(ol - ow / 2, ol + ow / 2),
                                              ListedColormap(olut)),
                               ax=list(axes), orientation="horizontal", shrink=0.4, aspect=40,
                               pad=0.02)
            bar.set_label(f"overlay {self.overlay_units}".strip(), color="white", fontsize=8)
            bar.ax.tick_params(colors="white", labelsize=7)
        if self.legend:
            handles = [Patch(color=e["color"], label=f"{e['value']} {e['name']}") for e in self.legend]
            fig.legend(handles=handles, loc="lower left", fontsize=7, ncols=min(len(handles), 6),
                       facecolor="black", labelcolor="white", frameon=False)
        return fig
