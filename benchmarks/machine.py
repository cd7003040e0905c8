"""What the benchmarks share about the machine they run on (imported as `machine` by the
bench_*.py scripts, which run from the repository root as `python benchmarks/bench_x.py`)."""

from __future__ import annotations

import os
import time


def other_load(window: float = 0.5) -> float:
    """CPU cores used by other processes over `window` seconds (from /proc/stat): a timing
    taken while this is well above 0 shares the cores and is an upper bound."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK"), sum(os.times()[:2])
    (b0, s0), t0 = sample(), time.perf_counter()
    time.sleep(window)
    (b1, s1), t1 = sample(), time.perf_counter()
    return max(0.0, ((b1 - b0) - (s1 - s0)) / (t1 - t0))
