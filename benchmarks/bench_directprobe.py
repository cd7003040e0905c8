"""Benchmark: DirectProbe clustering time and peak memory vs n, and what the cheap test buys.

Run: python benchmarks/bench_directprobe.py [--quick] [--sizes 500 2000 5000] [--timeout 900]

Data: n points x 384 features, k labels (2 or 12); each label a Gaussian blob (unit noise,
centres N(0, I)), which is linearly separable; "shuffled 30%" re-draws the label of 30% of the
points at random, which makes the labels non-separable once n is well above the dimension.
Below that they stay separable: points in general position are separable under any labelling
when a pair of labels holds <= d + 1 of them, and mostly up to ~2d (Cover 1965); with 12 labels
a label pair holds ~n/6 points, so "shuffled" 12-label data at n = 2,000 is still separable.
For each case:

* ours      -- layerscope.measures.directprobe.directprobe (cheap centroid-line test first,
               exact test = Wolfe's nearest-point solver with early exit), including the label
               distances (hull to hull, certified);
* exact     -- the same with prune=False: every different-label pair goes to the exact test
               (Wolfe); the ratio exact / ours is the cheap test's effect, measured in the run;
* lp        -- test="lp": the exact test is scipy's HiGHS LP (the authors used a Gurobi LP).

Reference (issue 8): the authors' code (Gurobi LP, one core) took ~6 s for n = 500 and ~29 s for
n = 2,000 (2 labels, separable), ~40 s for n = 2,000 with 12 labels, and did not finish in 300 s
for n = 2,000 non-separable points. Peak memory = peak resident set size during the call minus
the resident size just before (Linux VmHWM, reset through /proc/self/clear_refs where allowed).
A case that exceeds --timeout seconds is stopped (SIGALRM) and shown as "> timeout".
The machine is shared: the other processes' CPU load seen just before each run is printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import time

import numpy as np

from layerscope.measures.directprobe import directprobe
from machine import other_load  # noqa: E402  (benchmarks/machine.py)


def make_data(n: int, d: int, k: int, shuffled: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(size=(n, d))
    if shuffled:
        flip = rng.random(n) < shuffled
        y = y.copy()
        y[flip] = rng.integers(0, k, int(flip.sum()))
    return x.astype(np.float32), y


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def run(x, y, timeout: int, **kw):
    """(seconds or None on timeout, peak extra bytes, result or None)."""
    gc.collect()
    exact_peak = _reset_peak()
    base = _status("VmRSS:")
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    t0 = time.perf_counter()
    try:
        res = directprobe(x, y, **kw)
        sec = time.perf_counter() - t0
    except _Timeout:
        res, sec = None, None
    finally:
        signal.alarm(0)
    peak = _status("VmHWM:") - base if exact_peak else float("nan")
    return sec, peak, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 250, 500 only; no LP runs")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--labels", type=int, nargs="+", default=[2, 12])
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    sizes = args.sizes or ([250, 500] if args.quick else [500, 2000, 5000])
    print(f"# {os.cpu_count()} cores, d = {args.dim}, timeout {args.timeout} s per run")
    print("| n | labels | data | method | seconds | peak MiB | clusters | exact tests |"
          " cheap-decided pairs | states checked | exact s | distance s | ratio vs ours |"
          " other load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for k in args.labels:
            for shuffled in (0.0, 0.3):
                x, y = make_data(n, args.dim, k, shuffled)
                methods = [("ours", {}), ("exact", {"prune": False})]
                if not args.quick and n <= 2000:
                    methods.append(("lp", {"test": "lp"}))
                ours = None
                for name, kw in methods:
                    load = other_load()
                    sec, peak, r = run(x, y, args.timeout, **kw)
                    if name == "ours":
                        ours = sec
                    data = "separable blobs" if not shuffled else "shuffled 30%"
                    if r is None:
                        print(f"| {n} | {k} | {data} | {name} | > {args.timeout} | | | | | |"
                              f" | | > {args.timeout / ours:.1f}x | {load:.2f} |"
                              if ours else f"| {n} | {k} | {data} | {name} | > {args.timeout}"
                              f" | | | | | | | | | {load:.2f} |", flush=True)
                        continue
                    st = r.stats
                    ratio = f"{sec / ours:.2f}x" if ours else ""
                    print(f"| {n} | {k} | {data} | {name} | {sec:.2f} | {peak / 2**20:.0f} |"
                          f" {r.n_clusters} | {st['exact_tests']} | {st['cheap_decided']} |"
                          f" {st['states_checked']} | {st['exact_seconds']:.2f} |"
                          f" {st['distance_seconds']:.2f} | {ratio} | {load:.2f} |", flush=True)


if __name__ == "__main__":
    main()
