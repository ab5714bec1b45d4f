"""Import time of medlab: ``python -X importtime -c "import medlab"`` in fresh processes.

Reports the median cumulative import time of ``medlab`` over ``--runs`` fresh
interpreters, next to the floors: the interpreter alone (``python -c pass``,
whole process) and ``import numpy`` (medlab's one eager dependency, importtime),
plus the whole-process time of ``python -c "import medlab"``. Lists the slowest
modules medlab itself imports and any heavy dependency found in ``sys.modules``
(there should be none: they load on first use).

    python benchmarks/bench_import.py            # 15 runs
    python benchmarks/bench_import.py --quick    # CI: 3 runs

Target (issue 15): ``import medlab`` under 0.3 s. Prints the numbers; never
fails on a ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("SimpleITK", "pydicom", "pandas", "scipy", "nibabel", "matplotlib", "duckdb",
         "highdicom")


def importtime(module: str) -> tuple[float, dict[str, float]]:
    """Cumulative import time of ``module`` (s) and of every module it imported."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, env=env, check=True)
    times = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        times[name.strip()] = int(cumulative) / 1e6
    return times[module], times


def wall(code: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs (CI smoke test)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    ml_t, np_t, proc_ml, proc_pass = [], [], [], []
    detail: dict[str, float] = {}
    for _ in range(runs):  # interleaved
        t, detail = importtime("medlab")
        ml_t.append(t)
        np_t.append(importtime("numpy")[0])
        proc_ml.append(wall("import medlab"))
        proc_pass.append(wall("pass"))
    med = statistics.median
    print(f"{runs} fresh interpreters each (medians; min in brackets)")
    print(f"import medlab (-X importtime, cumulative) {med(ml_t):8.3f} s  [{min(ml_t):.3f}]"
          "  target < 0.3 s")
    print(f"floor: import numpy (-X importtime)        {med(np_t):8.3f} s  [{min(np_t):.3f}]")
    print(f"python -c 'import medlab', whole process   {med(proc_ml):8.3f} s  "
          f"[{min(proc_ml):.3f}]")
    print(f"floor: python -c pass, whole process       {med(proc_pass):8.3f} s  "
          f"[{min(proc_pass):.3f}]")
    print(f"medlab over numpy: {med(ml_t) - med(np_t):.3f} s; ratio import medlab / import "
          f"numpy (floor): {med(ml_t) / med(np_t):.2f}; ratio to the 0.3 s target: "
          f"{med(ml_t) / 0.3:.2f}")
    own = sorted(((v, k) for k, v in detail.items() if k.startswith("medlab.")), reverse=True)
    print("slowest medlab modules (last run, cumulative):",
          ", ".join(f"{k} {v * 1000:.0f} ms" for v, k in own[:5]))
    heavy = sorted({k.split(".")[0] for k in detail} & set(HEAVY))
    print("heavy dependencies imported by 'import medlab':", ", ".join(heavy) or "none")


if __name__ == "__main__":
    main()
