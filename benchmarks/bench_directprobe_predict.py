"""Benchmark: DirectProbe nearest-cluster prediction, today's batched/bounded search against
the per-point search it replaced (kept verbatim below as the "before" reference), same arrays,
same run; then DirectProbe end to end (clustering + prediction) both ways.

Run: python benchmarks/bench_directprobe_predict.py [--quick] [--test-points 1000]

Data: 600 training points x 384 features and 1,000 test points (the shapes of the geometry
study: 2-15 cluster hulls of 600 training points x 384 dims), k = 2, 11, 15 labels, Gaussian
blobs as in bench_directprobe.make_data (centres N(0, I), unit noise; train and test drawn
together so that they share the centres), clean and with 30% of the labels redrawn (hulls
much closer: the nearest-cluster search then needs exact distances). If the activation cache
(data/cache/activations) holds 384-dimensional states (all-MiniLM-L6-v2) with labels, their
top layer is benchmarked too (600 train / up to 1,000 test rows).

Asserted in the run: identical predictions (same label for every test point). Printed: seconds
of each, the ratio, how the new search decided the points (cheap bounds / race / exact search),
and the CPU load of other processes just before each timing (``machine.other_load``): the
machine may be shared, so the times are upper bounds; the ratio is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import qr, qr_delete, qr_insert
from scipy.linalg.lapack import dtrtrs

from bench_directprobe import make_data  # noqa: E402  (benchmarks/bench_directprobe.py)
from layerscope import paths
from layerscope.errors import ConfigError
from layerscope.measures._inputs import as_single, check_finite
from layerscope.measures.directprobe import directprobe
from layerscope.measures.directprobe_result import nearest_clusters
from machine import other_load  # noqa: E402  (benchmarks/machine.py)


# ---------------------------------------------------------------------------------------------
# BEFORE: the prediction code path as it was (layerscope commit 3cd36e3), verbatim: Wolfe's
# hull_distance from measures/convex_hulls.py and DirectProbeResult.centroids/predict from
# measures/directprobe_result.py (as methods of a stand-in holding the same fields).
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HullDistance:
    """distance: ||x*|| for the nearest pair p = sum weights_a a_i, q = sum weights_b b_j.

    lower/upper: the certified bracket at exit (upper - lower <= rtol * upper, or both 0 when
    the hulls touch); normal: the unit vector (p - q)/||p - q|| (zeros if they touch), a
    separating direction: a.normal >= q.normal + distance for every row of a, etc.
    """
    distance: float
    lower: float
    upper: float
    weights_a: np.ndarray  # [m_a] convex weights (sparse: only the corral is nonzero)
    weights_b: np.ndarray  # [m_b]
    normal: np.ndarray  # [d]
    iterations: int


class _Corral:
    """Wolfe's corral: affinely independent vertices S = [s_1 .. s_k] ([k, d]) and a QR
    factorisation of B = [1 .. 1; s_1 .. s_k] ([d + 1, k]), so that R^T R = e e^T + S S^T
    (Wolfe 1976 §4); scipy's qr_insert / qr_delete update it in O(d k) per vertex. The affine
    minimiser of S is alpha ~ (R^T R)^{-1} e, normalised to sum 1."""

    def __init__(self, v: np.ndarray, key):
        self.keys, self.k = [key], 1
        self.buf = np.empty((min(len(v) + 2, 64), len(v)))  # S, grown by doubling
        self.buf[0] = v
        self.q, self.r = qr(np.concatenate([[1.0], v])[:, None], mode="economic")

    @property
    def s(self) -> np.ndarray:
        return self.buf[:self.k]

    def add(self, v: np.ndarray, key) -> bool:
        k, u = self.k, np.concatenate([[1.0], v])
        if k >= self.q.shape[0]:  # d + 1 affinely independent points already: v is dependent
            return False
        full = self.q.shape[0] == self.q.shape[1]  # scipy keeps Q square once it got there
        try:  # economic QR (Q [d + 1, k]) until then, so an update costs O(d k)
            q, r = qr_insert(self.q, self.r, u, k, which="col", check_finite=False,
                             rcond=None if full else 1e-12)
        except np.linalg.LinAlgError:  # v (numerically) in the affine hull of the corral
            return False
        if not abs(r[k, k]) > 1e-12 * np.sqrt(u @ u):
            return False
        if k == len(self.buf):
            self.buf = np.concatenate([self.buf, np.empty_like(self.buf)])
        self.q, self.r, self.buf[k], self.k = q, r, v, k + 1
        self.keys.append(key)
        return True

    def affine_min(self) -> np.ndarray:
        r = self.r[:self.k, :self.k]
        z, _ = dtrtrs(r, np.ones(self.k), trans=1)  # R^T z = e, then R y = z
        y, _ = dtrtrs(r, z)
        return y / y.sum()

    def drop(self, keep: np.ndarray) -> None:
        """Remove the vertices where keep is False."""
        for k in np.flatnonzero(~keep)[::-1]:
            self.q, self.r = qr_delete(self.q, self.r, k, 1, which="col", check_finite=False)
            self.buf[k:self.k - 1] = self.buf[k + 1:self.k].copy()
            self.k -= 1
            del self.keys[k]


def hull_distance(a, b, *, rtol: float = 1e-7, atol: float = 1e-10, max_iter: int = 100_000,
                  stop_above: float | None = None) -> HullDistance:
    """Distance between conv(a) and conv(b) (a: [m_a, d], b: [m_b, d]); see the module doc.

    ``atol`` is relative to the points' spread: below ``atol * spread`` the hulls touch (0).
    ``stop_above``: return early once the lower bound exceeds it (a pruning query; the bracket
    then tells the truth, ``distance`` = ``upper``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ConfigError(f"hull_distance needs [m_a, d] and [m_b, d] point sets; got shapes"
                          f" {a.shape} and {b.shape}")
    shift = np.concatenate([a, b]).mean(0)  # translation-invariant; centring helps rounding
    scale = max(float(np.abs(a - shift).max()), float(np.abs(b - shift).max()), 1e-300)
    a, b = (a - shift) / scale, (b - shift) / scale  # distances come back times `scale`
    u = a.mean(0) - b.mean(0)  # start at the vertex the centroid direction picks (any will do)
    i, j = int(np.argmin(a @ u)), int(np.argmax(b @ u))
    corral, lam = _Corral(a[i] - b[j], (i, j)), np.array([1.0])
    x, lower = a[i] - b[j], 0.0
    for it in range(1, max_iter + 1):
        upper = float(np.sqrt(x @ x))
        pa, pb = a @ x, b @ x
        i, j = int(np.argmin(pa)), int(np.argmax(pb))
        if upper <= atol:
            return _result(0.0, 0.0, corral, lam, a, b, np.zeros_like(x), it, scale)
        lower = max(lower, float(pa[i] - pb[j]) / upper)  # min over vertices of v.x / ||x||
        done = upper - lower <= rtol * upper
        if done or (stop_above is not None and lower * scale > stop_above):
            return _result(upper, lower, corral, lam, a, b, x / upper, it, scale)
        if (i, j) in corral.keys or not corral.add(a[i] - b[j], (i, j)):
            if upper - lower <= 1e3 * rtol * upper + atol:  # floating point can do no better
                return _result(upper, max(lower, 0.0), corral, lam, a, b, x / upper, it, scale)
            raise ConfigError(f"hull_distance stalled at [{lower * scale:.3g},"
                              f" {upper * scale:.3g}]; the points may be nearly degenerate")
        lam = np.append(lam, 0.0)
        while True:  # Wolfe's minor cycle: towards the affine minimiser, dropping vertices
            alpha = corral.affine_min()
            if np.all(alpha > 1e-15):
                lam = alpha
                break
            neg = alpha <= 1e-15
            theta = min(1.0, float(np.min(lam[neg] / (lam[neg] - alpha[neg]))))
            lam = theta * alpha + (1 - theta) * lam
            keep = lam > 1e-15
            keep[np.argmax(lam)] = True
            corral.drop(keep)
            lam = lam[keep] / lam[keep].sum()
        x = lam @ corral.s
    raise ConfigError(f"hull_distance did not converge in {max_iter} iterations (bracket"
                      f" [{lower * scale:.3g}, {np.sqrt(x @ x) * scale:.3g}]); raise max_iter")


def _result(dist, lower, corral, lam, a, b, normal, it, scale) -> HullDistance:
    wa, wb = np.zeros(len(a)), np.zeros(len(b))
    for (i, j), w in zip(corral.keys, lam, strict=True):
        wa[i] += w
        wb[j] += w
    return HullDistance(float(dist * scale), float(lower * scale), float(dist * scale), wa, wb,
                        normal, it)




@dataclass(frozen=True, eq=False)
class NaiveResult:
    """The fields of a DirectProbeResult that prediction reads."""
    labels: np.ndarray
    assignment: np.ndarray
    cluster_labels: np.ndarray
    points: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_labels)

    def centroids(self) -> np.ndarray:
        """[K, d] cluster centroids."""
        return np.stack([self.points[self.assignment == c].mean(0)
                         for c in range(self.n_clusters)])

    def predict(self, x) -> np.ndarray:
        """[m] the label of the nearest cluster (point-to-hull distance) for each row of x."""
        x = as_single(x, "x")
        check_finite(x, "x")
        x = x.double().numpy()
        if x.shape[1] != self.points.shape[1]:
            raise ConfigError(f"x has {x.shape[1]} features but the clusters have"
                              f" {self.points.shape[1]}")
        members = [np.flatnonzero(self.assignment == c) for c in range(self.n_clusters)]
        mu = self.centroids()
        own = (self.points * mu[self.assignment]).sum(1)  # [n] x.mu(own cluster)
        out = np.empty(len(x), dtype=self.labels.dtype)
        for i, p in enumerate(x):
            u = p - mu  # [K, d]: lower bound by projecting on the point-centroid line
            norm = np.linalg.norm(u, axis=1)
            top = np.full(self.n_clusters, -np.inf)  # max over x in C of x.(p - mu_C)
            np.maximum.at(top, self.assignment, self.points @ p - own)
            with np.errstate(divide="ignore", invalid="ignore"):
                lower = np.where(norm > 0, ((u * p).sum(1) - top) / norm, 0.0)
            best, arg = np.inf, 0
            for c in np.argsort(np.maximum(lower, 0.0), kind="stable"):
                if lower[c] >= best:
                    break
                h = hull_distance(self.points[members[c]], p[None, :],
                                  stop_above=None if not np.isfinite(best) else best)
                if h.lower <= best and h.distance < best:
                    best, arg = h.distance, c
            out[i] = self.cluster_labels[arg]
        return out


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------
def cached_minilm(max_sets: int = 3):
    """(name, x [n, 384], y [n]) for up to ``max_sets`` cached 384-d activation sets with
    labels (top layer)."""
    root = paths.cache_dir() / "activations"
    out = []
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            states = np.load(folder / "states.npy", mmap_mode="r")
            labels = np.load(folder / "labels.npy")
        except (OSError, ValueError):
            continue
        if states.ndim != 3 or states.shape[-1] != 384 or labels.dtype.kind not in "iu":
            continue
        keep = labels >= 0
        values, counts = np.unique(labels[keep], return_counts=True)
        keep &= np.isin(labels, values[counts >= 20])
        x, y = np.asarray(states[-1][keep], np.float64), labels[keep]
        # the same vector under two labels (a sentence that occurs in two genres) has no
        # DirectProbe clustering (hulls touch): leave such vectors out, and say how many
        _, inverse = np.unique(x, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        pairs = np.unique(np.stack([inverse, y], 1), axis=0)
        clash = np.isin(inverse, np.flatnonzero(np.bincount(pairs[:, 0]) > 1))
        x, y = x[~clash], y[~clash]
        if len(x) < 700 or len(np.unique(y)) < 2:
            continue
        name = f"minilm {folder.name[:8]}" + (f" ({clash.sum()} clashing rows left out)"
                                               if clash.any() else "")
        out.append((name, x, y))
        if len(out) == max_sets:
            break
    return out


def timed(fn):
    load = other_load()
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0, load


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 test points, clean + 30% at k=11")
    ap.add_argument("--train-points", type=int, default=600)
    ap.add_argument("--test-points", type=int, default=None)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--labels", type=int, nargs="+", default=None)
    ap.add_argument("--cached", type=int, default=3,
                    help="at most this many cached minilm activation sets (0: none)")
    args = ap.parse_args()
    n_test = args.test_points or (200 if args.quick else 1000)
    n_train = args.train_points
    cases = []
    for k in args.labels or ([11] if args.quick else [2, 11, 15]):
        for shuffled in (0.0, 0.3):
            x, y = make_data(n_train + n_test, args.dim, k, shuffled, seed=k)
            name = f"blobs k={k}" + (" shuffled 30%" if shuffled else "")
            cases.append((name, np.asarray(x, np.float64), y))
    for name, x, y in cached_minilm(args.cached) if args.cached else []:
        rng = np.random.default_rng(0)
        order = rng.permutation(len(x))[:n_train + n_test]
        cases.append((name, x[order], y[order]))
    print(f"# {os.cpu_count()} cores; {n_train} train x {args.dim} dims, {n_test} test points;"
          f" threads OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print("| data | clusters | cluster s | predict before s | predict now s | predict ratio |"
          " end-to-end before s | end-to-end now s | end-to-end ratio | cheap / race / exact |"
          " other load (before, now) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, x, y in cases:
        xtr, ytr, xte = x[:n_train], y[:n_train], x[n_train:n_train + n_test]
        r, t_cluster, _ = timed(lambda: directprobe(xtr, ytr))  # noqa: B023
        naive = NaiveResult(r.labels, r.assignment, r.cluster_labels, r.points)
        before, t_before, load_b = timed(lambda: naive.predict(xte))  # noqa: B023
        now, t_now, load_n = timed(lambda: r.predict(xte))  # noqa: B023
        if not np.array_equal(before, now):
            bad = np.flatnonzero(before != now)
            raise SystemExit(f"{name}: predictions differ at {len(bad)} test points, e.g."
                             f" {bad[:5].tolist()}")
        _, st = nearest_clusters(r.points, r.assignment, r.n_clusters, xte)
        print(f"| {name} | {r.n_clusters} | {t_cluster:.2f} | {t_before:.2f} | {t_now:.3f} |"
              f" {t_before / t_now:.1f}x | {t_cluster + t_before:.2f} | {t_cluster + t_now:.2f} |"
              f" {(t_cluster + t_before) / (t_cluster + t_now):.1f}x |"
              f" {st['cheap']} / {st['race']} / {st['exact']} | {load_b:.2f}, {load_n:.2f} |",
              flush=True)
    print("\nIdentical predictions asserted for every case. 'other load' = CPU cores used by other"
          " processes in the 0.5 s before each prediction timing (a busy machine makes both times"
          " upper bounds; the ratio is from the same run). End to end = clustering (today's code,"
          " the same run for both) + prediction of the test points.")


if __name__ == "__main__":
    main()
