"""Cohort overview plots (plain matplotlib, so they survive export to HTML/PDF).

The numbers come from :mod:`medlab.cohort` (``series_counts``,
``spacing_table``, ``dates_table``, ``volume_usability``); nothing is computed
here. No patient names or identifiers are drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["cohort_overview"]


def cohort_overview(index: Any, *, title: str | None = None) -> Figure:
    """Six panels: series per modality and manufacturer, slice thickness and pixel
    spacing distributions, studies over time, usable volumes and why not,
    studies per patient.

    Parameters
    ----------
    index : medlab.cohort.Index or its series DataFrame
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from .. import cohort

    fig = Figure(figsize=(15, 8.5), layout="constrained")
    axes = fig.subplots(2, 3)

    counts = cohort.series_counts(index, by=("modality", "manufacturer"))
    pivot = counts.pivot_table(index="modality", columns="manufacturer", values="n_series",
                               aggfunc="sum", fill_value=0)
    pivot.plot.bar(stacked=True, ax=axes[0, 0], rot=0, width=0.75)
    axes[0, 0].set(title="series per modality and manufacturer", xlabel="", ylabel="series")
    axes[0, 0].legend(fontsize=7, title=None)

    spacing = cohort.spacing_table(index)
    for modality, grp in spacing.dropna(subset=["slice_thickness_mm"]).groupby("modality"):
        axes[0, 1].hist(grp["slice_thickness_mm"], bins=20, alpha=0.6, label=modality)
    axes[0, 1].set(title="slice thickness", xlabel="mm", ylabel="series")
    if axes[0, 1].has_data():
        axes[0, 1].legend(fontsize=7)

    for modality, grp in spacing.dropna(subset=["pixel_spacing_row_mm"]).groupby("modality"):
        axes[0, 2].hist(grp["pixel_spacing_row_mm"], bins=20, alpha=0.6, label=modality)
    axes[0, 2].set(title="in-plane pixel spacing", xlabel="mm", ylabel="series")
    if axes[0, 2].has_data():
        axes[0, 2].legend(fontsize=7)

    dates = cohort.dates_table(index, freq="YS")
    if len(dates):
        axes[1, 0].bar(dates["period"].dt.year.astype(str), dates["n_studies"])
    axes[1, 0].set(title="studies per year (study date)", ylabel="studies")
    axes[1, 0].tick_params(axis="x", rotation=45)

    usable = cohort.volume_usability(index)
    table = usable.pivot_table(index="status", columns="modality", values="n_series",
                               aggfunc="sum", fill_value=0)
    table.plot.barh(stacked=True, ax=axes[1, 1], width=0.75)
    axes[1, 1].set(title="usable as a volume, and why not", xlabel="series", ylabel="")
    axes[1, 1].legend(fontsize=7)

    per_patient = cohort.studies_per_patient(index)
    axes[1, 2].hist(per_patient["n_series"], bins=range(1, int(per_patient["n_series"].max()) + 2),
                    align="left", rwidth=0.8)
    axes[1, 2].set(title="series per patient", xlabel="series", ylabel="patients")

    if title:
        fig.suptitle(title)
    plt.close("all")
    return fig
