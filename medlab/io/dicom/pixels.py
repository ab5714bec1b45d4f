"""The pixel stage of DICOM reading: a plan's pixels decoded into one :class:`~medlab.Image`.

Internal API for medlab subpackages; not for users; may change.

Stages: :mod:`.header` -> :mod:`.frames` -> :mod:`.plans` -> **pixels**.
:func:`read_pixels` reads (uncompressed frames straight from the file) or
decodes (pydicom's plugins) the frames of a :class:`~.plans.VolumePlan`,
applies rescale/scaling and returns the array; :func:`image_from_plan` wraps
it as an Image with the plan's affine, fourth axis and metadata.
:func:`can_decode` says beforehand whether a transfer syntax decodes with
what is installed (the cohort index's ``decodable``).
"""

from __future__ import annotations

from ...image import Image
from ._assemble import VolumePlan
from ._pixels import (
    can_decode,
    claim_problem,
    decode_error,
    frame_scaling,
    pixel_data_problem,
    read_pixels,
    transfer_syntax,
)

__all__ = ["can_decode", "claim_problem", "decode_error", "frame_scaling", "image_from_plan",
           "pixel_data_problem", "read_pixels", "transfer_syntax"]


def image_from_plan(plan: VolumePlan, *, max_workers: int | None = None) -> Image:
    """The Image of a plan: its pixels (:func:`read_pixels`), affine, fourth axis and metadata.

    Raises
    ------
    medlab.errors.DicomReadError, medlab.errors.ImageTooLargeError
        As :func:`read_pixels`.
    """
    array, channels = read_pixels(plan, max_workers=max_workers)
    return Image(array, plan.affine, channels=channels, meta=plan.meta, **plan.image_axis())
