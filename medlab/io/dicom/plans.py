"""The plan stage of DICOM reading: frames grouped into images, sorted in space and time.

Internal API for medlab subpackages; not for users; may change.

Stages: :mod:`.header` -> :mod:`.frames` -> **plans** -> :mod:`.pixels`.
:func:`plan_volumes` groups frames (from :mod:`.frames`, or rebuilt from the
cohort index's records) into :class:`VolumePlan` objects: the grid of frames of one
image, its affine and metadata, and its geometry check. No pixel is read, so
the plan alone says how many images a folder holds (:func:`loadable`).
:func:`stack_geometry` and :func:`check_stack` are *the* series-geometry check
(the cohort index derives ``is_volume`` with them).
"""

from __future__ import annotations

from typing import Literal

from ._assemble import (
    StackCheck,
    StackGeometry,
    VolumePlan,
    check_stack,
    plan_volumes,
    record_spacing,
    sort_indices_in_time,
    stack_geometry,
)

__all__ = ["StackCheck", "StackGeometry", "VolumePlan", "check_stack", "irregular_problem",
           "loadable", "plan_volumes", "record_spacing", "sort_indices_in_time",
           "stack_geometry"]

Irregular = Literal["error", "stack"]


def irregular_problem(plan: VolumePlan, irregular: Irregular = "error") -> str | None:
    """Why the plan is not loaded as it stands with ``irregular`` (None: it is loaded).

    ``irregular='error'`` refuses a stack whose slices are unevenly spaced or
    missing; ``'stack'`` loads it with the mean slice step.
    """
    if plan.check is None or plan.check.regular or irregular == "stack":
        return None
    return (f"{plan.check.problem}. Pass irregular='stack' to load it anyway (the mean slice "
            "step is used), or load a regular subset of files")


def loadable(plans: list[VolumePlan], irregular: Irregular = "error") -> list[VolumePlan]:
    """The plans that become images with ``irregular`` (before any pixel is read)."""
    if irregular not in ("error", "stack"):
        raise ValueError(f"irregular must be 'error' or 'stack', got {irregular!r}")
    return [p for p in plans if irregular_problem(p, irregular) is None]
