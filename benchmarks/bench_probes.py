"""Benchmark: Zhou & Srikumar's probe protocol, batched torch vs a scikit-learn loop.

Run: python benchmarks/bench_probes.py [--quick] [--labels 2 12] [--sklearn-dtype float64]
                                       [--threads N]

The protocol (Zhou & Srikumar 2022 §2.1): a grid of 16 hidden-size pairs {32..256}^2 x 4 L2
weights (1e-4 .. 1e-1), 64 two-layer ReLU MLPs (Adam, lr 1e-3, minibatch 200, at most 1,000
epochs, sklearn's tol=1e-4 / 10-epoch stopping rule), chosen on validation accuracy, then the
best configuration retrained with 5 seeds. Two ways, in the same run, on the same data:

* batched -- layerscope.measures.probes.select_and_restart: the 64 configurations as one batched
             model in float32 (then the 5 restarts as another), per-configuration stopping;
* sklearn -- a Python loop of sklearn.neural_network.MLPClassifier fits with the same settings
             (random_state = seed), on float64 features by default (what the paper's
             scikit-learn 0.22 computed in; --sklearn-dtype float32 keeps float32).

Data: n = 2,000 training and 1,000 validation points x 384 features, synthetic with structure:
each label is a union of 3 Gaussian blobs in a random 24-d subspace, isotropic noise on top, so
the task needs more than memorisation and accuracy is well below 1 for 12 labels.
Both sides get the same number of threads (--threads, default torch's count): torch's, and
numpy's BLAS through threadpoolctl. On a shared machine an OpenBLAS pool spinning on busy cores
slows the sklearn loop down many times (measured here: 10-15x with 2 threads), which would
flatter the batched side; --threads 1 is the robust comparison there.
The machine is shared: the other cores' load measured just before each timed part is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import torch

from layerscope.measures.probes import ZHOU_ALPHAS, ZHOU_HIDDEN, select_and_restart
from machine import other_load  # noqa: E402  (benchmarks/machine.py)


def make_data(n: int, d: int, k: int, seed: int = 0, per_label: int = 3, latent: int = 24,
              noise: float = 2.5):
    """x [n, d] float32, y [n]: label = blob id mod k; blobs in a random latent subspace."""
    rng = np.random.default_rng(seed)
    centres = 1.6 * rng.normal(size=(k * per_label, latent))
    basis = np.linalg.qr(rng.normal(size=(d, latent)))[0]
    which = rng.integers(0, k * per_label, n)
    z = centres[which] + noise * rng.normal(size=(n, latent))
    x = 3.0 * z @ basis.T + 0.5 * rng.normal(size=(n, d))
    return x.astype(np.float32), which % k


def grid_flops(n: int, d: int, k: int, configs_epochs) -> float:
    """Useful flops of full-batch-equivalent epochs: per epoch 2n (2 d h1 + 3 sum_l f f') --
    layer 1: forward + weight gradient; deeper layers: forward, weight and input gradients."""
    out = 1 if k == 2 else k
    total = 0.0
    for hidden, epochs in configs_epochs:
        units = (d, *hidden, out)
        macs = 2 * units[0] * units[1] + 3 * sum(a * b for a, b in zip(units[1:-1], units[2:],
                                                                          strict=True))
        total += epochs * 2 * n * macs
    return total


def gemm_rate(dtype) -> float:
    """Measured GEMM flop/s for [2000, 384] x [384, 2000]: torch for float32, numpy (the BLAS
    sklearn uses) for float64."""
    if dtype == np.float32:
        a, b = torch.randn(2000, 384), torch.randn(384, 2000)
        mm = torch.mm
    else:
        rng = np.random.default_rng(0)
        a, b, mm = rng.normal(size=(2000, 384)).astype(dtype), rng.normal(size=(384, 2000)), None
        b = b.astype(dtype)
        mm = np.matmul
    mm(a, b)
    t0 = time.perf_counter()
    for _ in range(10):
        mm(a, b)
    return 10 * 2 * 2000 * 384 * 2000 / (time.perf_counter() - t0)


def sklearn_protocol(xt, yt, xv, yv, hidden, alphas, max_iter, n_restarts, dtype):
    """The paper's way: one MLPClassifier fit per configuration, then per restart seed.
    Returns (grid s, restarts s, (best val, hidden, alpha), restart val [R], [(hidden, n_iter)])."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    xt, xv = xt.astype(dtype), xv.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        scores, epochs = [], []
        for h in hidden:
            for a in alphas:
                m = MLPClassifier(h, alpha=a, max_iter=max_iter, random_state=0).fit(xt, yt)
                scores.append((m.score(xv, yv), h, a))
                epochs.append((tuple(h), m.n_iter_))
        t_grid = time.perf_counter() - t0
        best = max(scores, key=lambda s: s[0])  # first maximum, like np.argmax
        t0 = time.perf_counter()
        rest = [MLPClassifier(best[1], alpha=best[2], max_iter=max_iter, random_state=s)
                .fit(xt, yt).score(xv, yv) for s in range(1, n_restarts + 1)]
        t_rest = time.perf_counter() - t0
    return t_grid, t_rest, best, np.array(rest), epochs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a 4-config grid")
    ap.add_argument("--labels", type=int, nargs="+", default=[2, 12])
    ap.add_argument("--sklearn-dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--threads", type=int, default=None, help="threads for torch and BLAS")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # the sklearn loop's BLAS gets as many threads as torch
    if args.quick:
        n, nv, d, hidden, alphas, max_iter = 400, 200, 64, [(32, 32), (64, 32)], [1e-4, 1e-2], 200
    else:
        n, nv, d, hidden, alphas, max_iter = 2000, 1000, 384, ZHOU_HIDDEN, ZHOU_ALPHAS, 1000
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch"
          f" {torch.__version__} threads={torch.get_num_threads()}; n={n} train + {nv} val x"
          f" d={d}; grid {len(hidden)} x {len(alphas)}, then 5 restarts; max_iter={max_iter}")
    sk_dtype = np.dtype(args.sklearn_dtype).type
    r32, r_sk = gemm_rate(np.float32), gemm_rate(sk_dtype)
    print(f"# measured GEMM rate: float32 (torch) {r32 / 1e9:.0f} GFLOP/s,"
          f" {args.sklearn_dtype} (numpy) {r_sk / 1e9:.0f} GFLOP/s")
    rows = []
    for k in args.labels:
        x, y = make_data(n + nv, d, k)
        xt, yt, xv, yv = x[:n], y[:n], x[n:], y[n:]
        load_b = other_load()
        t0 = time.perf_counter()
        res = select_and_restart(xt, yt, xv, yv, hidden=hidden, alphas=alphas, n_restarts=5,
                                 max_iter=max_iter)
        t_b = time.perf_counter() - t0
        g = res.grid
        fl_b = grid_flops(n, d, k, [(c.hidden, e) for c, e in zip(g.configs, g.n_iter,
                                                                   strict=True)])
        load_s = other_load()
        t_sg, t_sr, best, rest, ep = sklearn_protocol(xt, yt, xv, yv, hidden, alphas, max_iter,
                                                      5, sk_dtype)
        fl_s = grid_flops(n, d, k, ep)
        rows.append((k, "batched float32", g.seconds, t_b - g.seconds, t_b,
                     float(g.val_accuracy[g.best_index]), res.config.hidden, res.config.alpha,
                     res.val_mean_std, load_b, int(g.n_iter.sum()), fl_b / g.seconds, r32))
        rows.append((k, f"sklearn {args.sklearn_dtype}", t_sg, t_sr, t_sg + t_sr, best[0],
                     best[1], best[2], (rest.mean(), rest.std(ddof=1)), load_s,
                     sum(e for _, e in ep), fl_s / t_sg, r_sk))
        print(f"labels={k}: batched {t_b:.1f} s, sklearn {t_sg + t_sr:.1f} s", flush=True)
    print()
    print("| labels | method | grid s | restarts s | total s | ratio | grid best val | best"
          " (h, alpha) | restarts val mean ± std | epochs (grid, all configs) | grid GFLOP/s"
          " (% of GEMM rate) | other load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        base = rows[i - i % 2 + 1][4]
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {base / r[4]:.2f}x"
              f" | {r[5]:.3f} | {r[6]}, {r[7]:g} | {r[8][0]:.3f} ± {r[8][1]:.3f} | {r[10]}"
              f" | {r[11] / 1e9:.1f} ({100 * r[11] / r[12]:.0f}%) | {r[9]:.2f} |")

if __name__ == "__main__":
    main()
