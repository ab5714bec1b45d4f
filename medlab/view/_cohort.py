"""Cohort overview plots (plain matplotlib, so they survive export to HTML/PDF).

The numbers come from :mod:`medlab.cohort` (``series_counts``,
``spacing_table``, ``dates_table``, ``volume_usability``,
``studies_per_patient``); nothing is computed here beyond grouping for
display. No patient names or identifiers are drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from ._display import ensure_figure_display, require_matplotlib

__all__ = ["cohort_overview"]

_IMAGE_MODALITIES = ("CT", "MR", "PT", "NM")


def _top(labels: Any, n: int) -> Any:
    """Keep the ``n`` most frequent labels, the rest become 'other'."""
    keep = labels.value_counts().index[:n]
    return labels.where(labels.isin(keep), "other")


def _hist_by_modality(ax: Axes, table: Any, column: str, title: str) -> None:
    data = table[table["modality"].isin(_IMAGE_MODALITIES)].dropna(subset=[column])
    if data.empty:
        ax.set(title=title)
        return
    hi = float(np.percentile(data[column], 98))
    bins = np.linspace(0, max(hi, 1e-3) * 1.05, 25)
    for modality, grp in data.groupby("modality"):
        ax.hist(grp[column].clip(upper=bins[-1]), bins=bins.tolist(), alpha=0.6, label=modality)
    clipped = int((data[column] > bins[-1]).sum())
    ax.set(title=title + (f" ({clipped} above {bins[-1]:.3g} mm in the last bin)" if clipped else ""),
           xlabel="mm", ylabel="series")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)


def cohort_overview(index: Any, *, title: str | None = None, top_manufacturers: int = 6) -> Figure:
    """Six panels: series per modality and manufacturer, slice thickness and pixel
    spacing of the image series, studies per year, usable volumes and why not,
    series per patient.

    Parameters
    ----------
    index : medlab.cohort.Index or its series DataFrame
    title : str, optional
    top_manufacturers : int
        Manufacturers shown by name; the others are grouped as 'other'.

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_matplotlib("ml.view.cohort_overview")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from .. import cohort

    fig = Figure(figsize=(15, 8.5), layout="constrained")
    axes = fig.subplots(2, 3)

    counts = cohort.series_counts(index, by=("modality", "manufacturer"))
    counts["manufacturer"] = _top(
        counts["manufacturer"].str.strip().str.upper().str.split(",").str[0], top_manufacturers)
    pivot = counts.pivot_table(index="modality", columns="manufacturer", values="n_series",
                               aggfunc="sum", fill_value=0)
    pivot = pivot.loc[pivot.sum(axis=1).sort_values().index]
    pivot.plot.barh(stacked=True, ax=axes[0, 0], width=0.75)
    axes[0, 0].set(title="series per modality and manufacturer", xlabel="series", ylabel="")
    axes[0, 0].legend(fontsize=6, loc="lower right")

    spacing = cohort.spacing_table(index)
    _hist_by_modality(axes[0, 1], spacing, "slice_thickness_mm", "slice thickness")
    _hist_by_modality(axes[0, 2], spacing, "pixel_spacing_row_mm", "in-plane pixel spacing")

    dates = cohort.dates_table(index, freq="YS")
    if len(dates):
        axes[1, 0].bar(dates["period"].dt.year, dates["n_studies"], width=0.8)
    axes[1, 0].set(title="studies per year (study date)", xlabel="year", ylabel="studies")

    usable = cohort.volume_usability(index)
    usable = usable[usable["status"] != "not an image"]
    table = usable.pivot_table(index="status", columns="modality", values="n_series",
                               aggfunc="sum", fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values().index]
    table.plot.barh(stacked=True, ax=axes[1, 1], width=0.75)
    axes[1, 1].set(title="image series: usable as a volume, and why not", xlabel="series",
                   ylabel="")
    axes[1, 1].legend(fontsize=6, loc="lower right", ncol=2)

    per_patient = cohort.studies_per_patient(index)
    top = int(per_patient["n_series"].max()) if len(per_patient) else 1
    axes[1, 2].hist(per_patient["n_series"], bins=np.arange(0.5, top + 1.5), rwidth=0.8)
    axes[1, 2].set(title="series per patient", xlabel="series", ylabel="patients")

    if title:
        fig.suptitle(title)
    plt.close("all")
    ensure_figure_display()
    return fig
