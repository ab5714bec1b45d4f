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


#: the idle fraction of the CPUs that wait_idle waits for
IDLE_THRESHOLD = 0.85


def wait_idle(*, threshold: float = IDLE_THRESHOLD, window_s: float = 0.5,
              max_wait_s: float = 15.0) -> float:
    """Wait until the CPUs were at least ``threshold`` idle over ``window_s`` (at most
    ``max_wait_s``); return the idle fraction last seen (1.0 where /proc/stat is missing).

    A contender started right after another one's processes (or the page cache's write-back)
    would otherwise pay for them: on a 2-core machine a busy core halves what a second
    worker can gain.
    """

    def snapshot() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all

    try:
        snapshot()
    except OSError:
        return 1.0
    deadline = time.monotonic() + max_wait_s
    while True:
        idle0, all0 = snapshot()
        time.sleep(window_s)
        idle1, all1 = snapshot()
        fraction = (idle1 - idle0) / max(1, all1 - all0)
        if fraction >= threshold or time.monotonic() > deadline:
            return fraction
