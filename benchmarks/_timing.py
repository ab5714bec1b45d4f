"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/bench_x.py``,
so this folder is on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(fastest of ``repeat`` timed calls in seconds, the last result), after one warm-up call
    (imports, caches, network set-up)."""
    fn()
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out
