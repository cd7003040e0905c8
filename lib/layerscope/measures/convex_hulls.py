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
* ``overlap_lp(a, b)``: the exact test "do conv(a) and conv(b) intersect?" as a feasibility LP
  (sum lambda_i a_i = sum mu_j b_j, lambda, mu in simplices) solved by scipy's HiGHS. Touching
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

__all__ = ["HullDistance", "hull_distance", "point_hull_distances", "overlap_lp",
           "centroid_line_gaps"]


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


def point_hull_distances(points, hull, *, rtol: float = 1e-7) -> np.ndarray:
    """Distance from each row of points [m, d] to conv(hull) [c, d] (0 inside): [m]."""
    hull = np.asarray(hull, dtype=np.float64)
    return np.array([hull_distance(hull, p[None, :], rtol=rtol).distance
                     for p in np.asarray(points, dtype=np.float64)])


def overlap_lp(a, b) -> bool:
    """True iff conv(a) and conv(b) intersect (touching counts), by an exact LP (HiGHS).

    Feasibility of sum lambda_i a_i - sum mu_j b_j = 0, sum lambda = sum mu = 1, lambda, mu >= 0
    (d + 2 equality rows, m_a + m_b columns), after centring and scaling. HiGHS's simplex
    sometimes ends with status "unknown" on this form; then its interior-point method, and then
    the primal form (w.a_i - c >= 1 >= ... , w.b_j - c <= -1) decide.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    shift = np.concatenate([a, b]).mean(0)
    scale = max(float(np.abs(np.concatenate([a, b]) - shift).max()), 1e-300)
    a, b = (a - shift) / scale, (b - shift) / scale
    ma, mb, d = len(a), len(b), a.shape[1]
    a_eq = np.zeros((d + 2, ma + mb))
    a_eq[:d, :ma], a_eq[:d, ma:] = a.T, -b.T
    a_eq[d, :ma], a_eq[d + 1, ma:] = 1.0, 1.0
    b_eq = np.zeros(d + 2)
    b_eq[d:] = 1.0
    messages = []
    for method in ("highs", "highs-ipm"):
        res = linprog(np.zeros(ma + mb), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method=method)
        if res.status in (0, 2):  # feasible: a common point; infeasible: separable
            return res.status == 0
        messages.append(res.message)
    a_ub = np.block([[-a, np.ones((ma, 1))], [b, -np.ones((mb, 1))]])
    res = linprog(np.zeros(d + 1), A_ub=a_ub, b_ub=-np.ones(ma + mb),
                  bounds=[(None, None)] * (d + 1), method="highs")
    if res.status in (0, 2):  # a separating hyperplane exists iff the primal is feasible
        return res.status == 2
    raise ConfigError(f"the separability LP failed in every form ({messages[0]};"
                      f" {res.message}); the points may be badly scaled or nearly touching")


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
