"""Every benchmark runs in its quick mode, so none of them rots. Speed targets
are reported by the benchmarks themselves, never asserted here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

BENCHMARKS = sorted((REPO / "benchmarks").glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_quick_mode_runs(script):
    out = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True,
                         text=True, timeout=600, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ratio" in out.stdout, out.stdout[-2000:]
    if "same voxel sum" in out.stdout:  # benchmarks that compare arrays say so on that line
        assert "NO" not in out.stdout.split("same voxel sum")[-1].splitlines()[0], out.stdout
