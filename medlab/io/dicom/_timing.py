"""Per-slice acquisition times (for slice-timing correction and BIDS)."""

from __future__ import annotations

import warnings

import numpy as np

from ._frames import Frame

__all__ = ["slice_times"]


def slice_times(volume: list[Frame]) -> list[float] | None:
    """Acquisition time of each slice of one volume, in seconds from the first.

    Sources, in order: Siemens mosaic CSA ``MosaicRefAcqTimes``; per-slice
    trigger times; GE's RTIA timer (0021,105E); per-slice acquisition
    times with sub-second precision. None when the headers do not tell.
    """
    f0 = volume[0]
    if f0.tile is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            from nibabel.nicom import csareader

            csa = csareader.get_csa_header(f0.header, "image")
        try:
            items = csa["tags"]["MosaicRefAcqTimes"]["items"]
        except (KeyError, TypeError):
            return None
        if len(items) < max(f.tile for f in volume) + 1:  # type: ignore[type-var]
            return None
        return _relative([float(items[f.tile]) / 1000.0 for f in volume])  # type: ignore[index]
    if len(volume) < 2:
        return None
    trig = [f.trigger_ms for f in volume]
    if all(t is not None for t in trig) and len(set(trig)) > 1:
        return _relative([t / 1000.0 for t in trig])  # type: ignore[operator]
    rtia_s = [f.rtia_s for f in volume]
    if all(t is not None for t in rtia_s) and len(set(rtia_s)) > 1:
        return _relative(rtia_s)  # type: ignore[arg-type]
    acq = [f.time_s for f in volume]
    if all(t is not None for t in acq) and len(set(np.round(acq, 4))) > 1:  # type: ignore[arg-type]
        rel = _relative(acq)  # type: ignore[arg-type]
        tr = f0.header.get("RepetitionTime")
        if tr is None or max(rel) < float(tr) / 1000.0:
            return rel
    return None


def _relative(times: list[float]) -> list[float]:
    t0 = min(times)
    return [round(t - t0, 6) for t in times]
