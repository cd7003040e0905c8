"""Convex-hull geometry for DirectProbe: separability and hull-to-hull distance. No I/O.

* ``hull_distance(a, b)``: the Euclidean distance between conv(a) and conv(b), which equals twice
  the margin of the hard-margin linear SVM between a and b (Zhou & Srikumar 2022 §2.2). Solved by
  Wolfe's minimum-norm-point algorithm (Wolfe 1976, Math. Programming 11) on the Minkowski
  difference conv(a) - conv(b) = conv{a_i - b_j}, whose vertices are only ever visited through
  the linear oracle min_i a_i.x - max_j b_j.x, so the m_a x m_b vertices are never formed. Each
  iterate x = sum lambda_i a_i - sum mu_j b_j gives an upper bound ||x|| and the oracle a lower
  bound (min_i a_i.x - max_j b_j.x) / ||x||; the solver stops when they agree to ``rtol``, so a
  returned distance is certified, not an iteration limit's guess (the authors' SVM stops at
  max_iter and can under-report distances).
* ``PointHullBatch`` / ``point_hull_distances``: the same algorithm for many points against
  one hull at once (one corral per point, the work done as shared matrix products), with the
  same certified brackets; DirectProbe's nearest-cluster prediction is built on it.
* ``overlap_lp(a, b)``: the exact test "do conv(a) and conv(b) intersect?" as a feasibility LP
  (sum lambda_i a_i = sum mu_j b_j, lambda, mu in simplices) solved by scipy's HiGHS, on
  per-coordinate standardised points, each answer checked (a common point, or a separating
  hyperplane); an answer that does not check out (HiGHS status 4, ...) goes to Wolfe. Touching
  hulls (distance 0, e.g. one vector under two labels) count as overlapping.

Shapes: a: [m_a, d], b: [m_b, d] (rows are points); results are float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import qr, qr_delete, qr_insert
from scipy.linalg.lapack import dtrtrs
from scipy.optimize import linprog

from ..errors import ConfigError

__all__ = ["HullDistance", "hull_distance", "point_hull_distances", "PointHullBatch",
           "overlap_lp", "overlap_lp_verdict", "centroid_line_gaps"]


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


def point_hull_distances(points, hull, *, rtol: float = 1e-7, atol: float = 1e-10,
                         chunk: int = 2048) -> np.ndarray:
    """Distance from each row of points [m, d] to conv(hull) [c, d] (0 inside): [m].

    All points at once (``PointHullBatch``), each certified to ``rtol`` like ``hull_distance``
    (which takes over for a point whose batched bracket stalls); below ``atol`` times the
    points' spread a point counts as inside (0)."""
    hull = np.asarray(hull, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if hull.ndim != 2 or points.ndim != 2 or hull.shape[1] != points.shape[1] or not len(hull):
        raise ConfigError(f"point_hull_distances needs [m, d] points and a [c, d] hull; got"
                          f" shapes {points.shape} and {hull.shape}")
    out = np.empty(len(points))
    for lo in range(0, len(points), chunk):
        p = points[lo:lo + chunk]
        both = np.concatenate([hull, p])
        zero = atol * float(np.abs(both - both.mean(0)).max())
        batch = PointHullBatch(hull, p, rtol=rtol, zero=zero)
        batch.run()
        d = np.where(batch.upper <= zero, 0.0, batch.upper)
        for i in np.flatnonzero(batch.state != CONVERGED):
            d[i] = hull_distance(hull, p[i:i + 1], rtol=rtol, atol=atol).distance
        out[lo:lo + chunk] = d
    return out


RUNNING, CONVERGED, STALLED = 0, 1, 2


class PointHullBatch:
    """Wolfe's nearest-point algorithm for many points against one hull at once.

    The point-to-hull analogue of ``hull_distance``, vectorised over the points: each point
    keeps its own corral (vertex indices ``idx`` [B, k_max], padded with m, and weights
    ``lam``), one ``step`` advances any subset of the points by one major iteration, and the
    heavy work is one shared matrix product with the hull's Gram matrix G = C C^T ([B, m] x
    [m, m]: the oracle c_i.(p - x) = c_i.p - (G lam)_i for the iterate x = sum lam c). The minor
    cycle solves each corral's affine minimiser from G too, batched over the points.

    Every step certifies a bracket from the iterate itself: upper = ||p - x|| (x is a convex
    combination), lower = min_i (p - c_i).r / ||r|| with r = p - x (any direction bounds the
    distance from below). From the Gram products these carry their worst-case rounding error
    (added to the upper bound, taken off the lower one); where that error would matter (p
    within ~1e3 rounding errors of the hull) r is formed from the coordinates instead. The
    brackets are valid whatever the floating point does to the iterates; the solver only makes
    them tight. ``lower``/``upper`` [B] are the best bracket seen; ``state`` [B]: RUNNING,
    CONVERGED (upper - lower <= rtol * upper, or upper <= zero) or STALLED (the corral cannot
    grow or the bracket stopped shrinking; the bracket is still valid).

    hull: [m, d]; points: [B, d]; start: [B] first vertex of each corral (default: nearest).
    """

    def __init__(self, hull, points, *, start=None, rtol: float = 1e-7, zero: float = 0.0,
                 max_iter: int = 10_000):
        hull = np.asarray(hull, dtype=np.float64)
        points = np.asarray(points, dtype=np.float64)
        center = hull.mean(0)  # translation-invariant; centring keeps the Gram products exact
        self.c, self.p = c, p = hull - center, points - center
        m, b = len(c), len(p)
        self.m, self.rtol, self.zero, self.max_iter = m, rtol, zero, max_iter
        g = c @ c.T
        self.g = np.zeros((m + 1, m + 1))  # padded: index m is "no vertex"
        self.g[:m, :m] = g
        self.h = np.zeros((b, m + 1))
        self.h[:, :m] = p @ c.T  # p_b . c_i
        self.pp = np.einsum("bd,bd->b", p, p)
        self._radius = float(np.sqrt(np.max(np.diag(g))))
        self._gamma = 4 * (max(m, c.shape[1]) + 4) * np.finfo(float).eps
        # the weight t of e e^T in the corral matrix (c_i - p).(c_j - p) + t: any t > 0 gives
        # the same affine minimiser; one of the size of the Gram part keeps it conditioned
        self.t = self.pp + float(np.trace(g)) / m + 1e-300
        if start is None:
            start = np.argmin(np.diag(g)[None, :] - 2 * self.h[:, :m], axis=1)
        self.idx = np.full((b, 4), m, dtype=np.int64)
        self.idx[:, 0] = start
        self.lam = np.zeros((b, 4))
        self.lam[:, 0] = 1.0
        self.k = np.ones(b, dtype=np.int64)
        self.lower = np.full(b, -np.inf)
        self.upper = np.full(b, np.inf)
        self.state = np.full(b, RUNNING, dtype=np.int8)
        self.iterations = np.zeros(b, dtype=np.int64)
        self._flat = np.zeros(b, dtype=np.int64)  # steps without a shrinking bracket

    def running(self) -> np.ndarray:
        return np.flatnonzero(self.state == RUNNING)

    def run(self, rows=None) -> None:
        """Step the given (default: all) points until none of them is RUNNING."""
        rows = self.running() if rows is None else np.asarray(rows)
        while len(rows):
            self.step(rows)
            rows = rows[self.state[rows] == RUNNING]

    def step(self, rows) -> None:
        """One major iteration for the RUNNING points ``rows`` (indices into the batch)."""
        rows = np.asarray(rows, dtype=np.int64)
        n = len(rows)
        if not n:
            return
        idx, lam, m = self.idx[rows], self.lam[rows], self.m
        dense = np.zeros((n, m + 1))
        dense[np.arange(n)[:, None], idx] = lam  # pads write 0 into column m
        dense = dense[:, :m]
        gl = dense @ self.g[:m, :m]  # [n, m]: c_i . x for the iterate x = sum lam c
        h = self.h[rows, :m]
        pp, px = self.pp[rows], np.einsum("nm,nm->n", dense, h)
        xx = np.einsum("nm,nm->n", dense, gl)
        oracle = h - gl  # c_i . r with r = p - x
        j = np.argmax(oracle, axis=1)
        top = oracle[np.arange(n), j]
        # certificates from the Gram products, with their worst-case rounding error added
        # (Higham's gamma_n bound on each sum): valid upper and lower bounds, not estimates
        err = self._gamma * (np.sqrt(pp) + self._radius) ** 2
        rr = pp - 2 * px + xx
        nr = np.sqrt(np.maximum(rr, 0.0) + 4 * err)
        with np.errstate(divide="ignore", invalid="ignore"):  # nr = 0: p is the one vertex
            low = np.where(nr > 0, np.maximum((pp - px - top - 2 * err) / nr, 0.0), 0.0)
        near = np.flatnonzero(rr <= 1e6 * err)  # the Gram form cannot resolve these: redo
        if len(near):  # them from the coordinates (r = p - x formed explicitly)
            r = self.p[rows[near]] - dense[near] @ self.c
            orc = r @ self.c.T
            j[near] = np.argmax(orc, axis=1)
            nr[near] = np.sqrt(np.einsum("nd,nd->n", r, r))
            with np.errstate(divide="ignore", invalid="ignore"):
                low[near] = np.where(nr[near] > 0, (np.einsum("nd,nd->n", self.p[rows[near]], r)
                                                    - orc.max(1)) / nr[near], 0.0)
        before = self.upper[rows] - self.lower[rows]
        up = np.minimum(self.upper[rows], nr)
        lo = np.maximum(self.lower[rows], low)
        self.upper[rows], self.lower[rows] = up, lo
        self.iterations[rows] += 1
        done = (up - lo <= self.rtol * up) | (up <= self.zero)
        self.state[rows[done]] = CONVERGED
        shrunk = up - lo < before
        self._flat[rows] = np.where(shrunk, 0, self._flat[rows] + 1)
        stuck = ~done & ((self._flat[rows] >= 8) | (self.iterations[rows] >= self.max_iter))
        stuck |= ~done & (self.idx[rows] == j[:, None]).any(1)  # the oracle repeats a vertex
        self.state[rows[stuck]] = STALLED
        go = ~(done | stuck)
        rows, j = rows[go], j[go]
        if not len(rows):
            return
        self._grow(int(self.k[rows].max()) + 1)
        # affine independence of the new vertex: its Schur complement in the corral's matrix
        k = self.k[rows]
        mat = self._matrix(rows)
        col = self._column(rows, j)
        z = _solve(mat, col)
        vv = self.g[j, j] - 2 * self.h[rows, j] + self.pp[rows] + self.t[rows]
        schur = vv - np.einsum("nk,nk->n", col, z)
        dep = ~(schur > 1e-12 * np.abs(vv))
        self.state[rows[dep]] = STALLED
        rows, j, k = rows[~dep], j[~dep], k[~dep]
        self.idx[rows, k] = j
        self.lam[rows, k] = 0.0
        self.k[rows] = k + 1
        self._minor(rows)

    def _matrix(self, rows) -> np.ndarray:
        """[n, K, K] corral matrices (c_i - p).(c_j - p) + t (K: the largest corral of these
        rows), identity on the padding."""
        kmax = int(self.k[rows].max())
        idx = self.idx[rows, :kmax]
        hs = self.h[rows[:, None], idx]  # [n, K]
        mat = self.g[idx[:, :, None], idx[:, None, :]] - hs[:, :, None] - hs[:, None, :]
        mat += (self.pp[rows] + self.t[rows])[:, None, None]
        pad = idx == self.m
        mat[pad[:, :, None] | pad[:, None, :]] = 0.0
        mat[:, np.arange(kmax), np.arange(kmax)] += pad
        return mat

    def _column(self, rows, j) -> np.ndarray:
        idx = self.idx[rows, :int(self.k[rows].max())]
        col = (self.g[idx, j[:, None]] - self.h[rows[:, None], idx]
               - self.h[rows, j][:, None] + (self.pp[rows] + self.t[rows])[:, None])
        col[idx == self.m] = 0.0
        return col

    def _minor(self, rows) -> None:
        """Wolfe's minor cycle: move to the corral's affine minimiser, dropping vertices."""
        while len(rows):
            kmax = int(self.k[rows].max())
            valid = self.idx[rows, :kmax] != self.m
            y = _solve(self._matrix(rows), valid.astype(float))
            y[~valid] = 0.0
            s = y.sum(1, keepdims=True)
            alpha = np.divide(y, s, out=np.zeros_like(y), where=s != 0)
            good = (alpha > 1e-15) | ~valid
            ok = good.all(1) & np.isfinite(alpha).all(1)
            self.lam[rows[ok], :kmax] = alpha[ok]
            bad = rows[~ok]
            if not len(bad):
                return
            alpha, lam, valid = alpha[~ok], self.lam[bad, :kmax], valid[~ok]
            neg = ~good[~ok] & valid
            den = lam - alpha
            ratio = np.where(neg & (den > 0), lam / np.where(den > 0, den, 1.0), np.inf)
            ratio[neg & ~(den > 0)] = 0.0
            theta = np.minimum(1.0, ratio.min(1))[:, None]
            lam = np.where(valid, theta * np.nan_to_num(alpha) + (1 - theta) * lam, 0.0)
            keep = (lam > 1e-15) & valid
            keep[np.arange(len(bad)), np.argmax(lam, 1)] = True
            kept = keep.sum(1)
            same = kept == self.k[bad]  # nothing to drop: a degenerate corral; stop there
            self.state[bad[same]] = STALLED
            order = np.argsort(~keep, axis=1, kind="stable")
            lam = np.take_along_axis(np.where(keep, lam, 0.0), order, 1)
            self.idx[bad, :kmax] = np.take_along_axis(np.where(keep, self.idx[bad, :kmax],
                                                               self.m), order, 1)
            self.lam[bad, :kmax] = lam / lam.sum(1, keepdims=True)
            self.k[bad] = kept
            rows = bad[~same]

    def _grow(self, need: int) -> None:
        if need > self.idx.shape[1]:
            extra = max(need, 2 * self.idx.shape[1]) - self.idx.shape[1]
            self.idx = np.pad(self.idx, ((0, 0), (0, extra)), constant_values=self.m)
            self.lam = np.pad(self.lam, ((0, 0), (0, extra)))


def _solve(mat: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched solve; a singular system (a degenerate corral) gives NaN for that row only."""
    try:
        return np.linalg.solve(mat, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        out = np.full(rhs.shape, np.nan)
        for i in range(len(mat)):
            try:
                out[i] = np.linalg.solve(mat[i], rhs[i])
            except np.linalg.LinAlgError:
                pass
        return out


def _standardise(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift to the joint mean and scale each coordinate by its largest deviation (1 where the
    coordinate is constant): an affine bijection, so whether the hulls meet is unchanged, and
    the LP sees entries of one size however the features are scaled (features 1e-9 and 1e9
    apart made HiGHS report a "common point" of separable sets, and status 4)."""
    both = np.concatenate([a, b])
    shift = both.mean(0)
    spread = np.abs(both - shift).max(0)
    spread[~(spread > 1e-300)] = 1.0
    return (a - shift) / spread, (b - shift) / spread


LP_TOUCH = 1e-6  # a common point within this (standardised units, max-norm) counts as touching


def overlap_lp(a, b) -> bool:
    """True iff conv(a) and conv(b) intersect (touching counts), decided by exact LPs (HiGHS)
    whose answers are checked in floating point; see ``overlap_lp_verdict``."""
    return overlap_lp_verdict(a, b)[0]


def overlap_lp_verdict(a, b) -> tuple[bool, str]:
    """(overlap?, how): the LP test, every answer certified.

    After ``_standardise``: (1) the feasibility LP sum lambda_i a_i = sum mu_j b_j, lambda, mu in
    simplices (d + 2 equality rows, m_a + m_b columns): a solution whose common point checks out
    to ``LP_TOUCH`` proves overlap; "infeasible" is confirmed by a separating direction (Wolfe's
    early exit, at most 1,000 iterations: cheaper than another LP); (2) otherwise the primal
    form w.a_i >= c + 1, w.b_j <= c - 1: a (w, c) with min a.w > max b.w, recomputed here,
    proves separability. HiGHS can end with status 4 (numerical difficulties, "unknown",
    "unbounded or infeasible") or claim a solution that does not check out on badly scaled or
    nearly touching points; then Wolfe's certified nearest-point solver (``hull_distance`` with
    an early exit) decides: how = "lp" or "wolfe". If that fails too, a ConfigError names the
    sizes and what to try.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ConfigError(f"overlap_lp needs [m_a, d] and [m_b, d] point sets; got shapes"
                          f" {a.shape} and {b.shape}")
    a, b = _standardise(a, b)
    ma, mb, d = len(a), len(b), a.shape[1]
    messages = []
    a_eq = np.zeros((d + 2, ma + mb))
    a_eq[:d, :ma], a_eq[:d, ma:] = a.T, -b.T
    a_eq[d, :ma], a_eq[d + 1, ma:] = 1.0, 1.0
    b_eq = np.zeros(d + 2)
    b_eq[d:] = 1.0
    res = _linprog(np.zeros(ma + mb), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    messages.append(f"feasibility form: status {res.status}")
    if res.status == 0 and res.x is not None:
        lam, mu = np.maximum(res.x[:ma], 0.0), np.maximum(res.x[ma:], 0.0)
        if lam.sum() > 0 and mu.sum() > 0:
            gap = np.abs(lam @ a / lam.sum() - mu @ b / mu.sum()).max()
            if gap <= LP_TOUCH:
                return True, "lp"
            messages[-1] += f" (its common point is {gap:.2g} off)"
    if res.status == 2:  # infeasible, i.e. separable: a separating direction must confirm it
        try:  # Wolfe's early exit is far cheaper than a second LP (a positive lower bound)
            h = hull_distance(a, b, stop_above=0.0, max_iter=1000)
        except ConfigError:
            h = None
        if h is not None and h.lower > 0.0:
            return False, "lp"
        if h is not None and h.distance == 0.0:  # they touch after all (within 1e-10)
            return True, "wolfe"
        messages[-1] += " (not confirmed by a separating direction)"
    a_ub = np.block([[-a, np.ones((ma, 1))], [b, -np.ones((mb, 1))]])
    res = _linprog(np.zeros(d + 1), A_ub=a_ub, b_ub=-np.ones(ma + mb),
                   bounds=[(None, None)] * (d + 1), method="highs")
    messages.append(f"separating-hyperplane form: status {res.status}")
    if res.status == 0 and res.x is not None:
        w = res.x[:d]
        margin = float((a @ w).min() - (b @ w).max())
        if margin > 1e-9 * np.sqrt(d) * float(np.linalg.norm(w)):  # beyond rounding
            return False, "lp"
        messages[-1] += f" (its hyperplane leaves a gap of {margin:.2g})"
    try:
        h = hull_distance(a, b, stop_above=0.0)
    except ConfigError as err:
        raise ConfigError(
            f"the separability test of two point sets of {ma} and {mb} points in {d}"
            f" dimensions failed: HiGHS gave no checkable answer ({'; '.join(messages)}) and"
            f" the nearest-point solver failed ({err}). The points are badly conditioned or"
            " the hulls nearly touch: remove duplicate or near-duplicate points, drop"
            " near-constant features, or reduce the features with PCA") from None
    return (not h.lower > 0.0), "wolfe"


def _linprog(*args, **kw):
    """scipy's linprog (one place, so that a test can make HiGHS fail)."""
    return linprog(*args, **kw)


def centroid_line_gaps(x: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    """[K, K] cheap lower bounds on hull distances between clusters (rows of x [n, d] indexed
    by ``members``): project both clusters on the line between their centroids; the gap between
    the two intervals, divided by the centroid distance, bounds their hull distance from below.
    Positive means certainly separable (this implies the bounding-sphere test); the diagonal
    and non-positive entries decide nothing."""
    mu = np.stack([x[m].mean(0) for m in members])
    a = np.empty((len(members), len(members)))
    for p, m in enumerate(members):
        g = x[m] @ mu.T  # [|P|, K]: a[P, Q] = max over x in P of x.(mu_Q - mu_P)
        a[p] = (g - g[:, [p]]).max(0)
    sq = (mu * mu).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * mu @ mu.T, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = -(a + a.T) / dist
    gap[~np.isfinite(gap)] = -np.inf
    np.fill_diagonal(gap, -np.inf)
    return gap
