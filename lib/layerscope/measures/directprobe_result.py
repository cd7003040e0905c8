"""DirectProbe results: cluster distances, label distance vectors, spatial similarity,
nearest-cluster prediction (Zhou & Srikumar 2022 §2.2, §4.1, §4.3, §4.5). No I/O.

The distance between two clusters is the Euclidean distance between their convex hulls, which is
twice the margin of the hard-margin linear SVM between them (§2.2), solved to a certified
bracket by ``convex_hulls.hull_distance``. For two labels with several clusters each the label
distance here is the minimum over their cluster pairs (the distance between the unions of the
hulls). The paper's distance vector and spatial similarity need one cluster per label ("this
construction works only when the number of clusters equals the number of labels", §2.2), so
``distance_vector`` refuses otherwise unless told how to treat those pairs; it never writes 0
for "undefined" (the authors' follow-up code does, which reads as "distance 0").

Nearest-cluster prediction (``nearest_clusters``) decides most points from certified bounds
computed for all points at once (nearest member, centroid line, batched Wolfe iterations) and
searches exactly, point by point, only where two clusters are within 0.1% of each other; its
predictions are those of the exact search (benchmarks/bench_directprobe_predict.py).

Shapes: points [n, d]; assignment [n]; K clusters, k labels; distance vector [k (k - 1) / 2]
over label pairs (i < j) in ``pairs`` order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..devices import to_numpy
from ..errors import ConfigError, UndefinedError, check_choice
from ._inputs import as_labels, as_single, check_finite
from .convex_hulls import RUNNING, PointHullBatch, centroid_line_gaps, hull_distance

__all__ = ["MULTI_CLUSTER", "DirectProbeResult", "spatial_similarity", "nearest_clusters"]

MULTI_CLUSTER = ("raise", "min", "nan")  # what distance_vector does without 1 cluster/label


PREDICT_MARGIN = 1e-3  # relative gap below which a point's two nearest clusters count as tied
_RACE_RTOL = 1e-6  # bracket width at which a point-to-hull race pair stops


def nearest_clusters(points, assignment, n_clusters: int, x, *, chunk: int | None = None
                     ) -> tuple[np.ndarray, dict]:
    """Nearest cluster (by point-to-hull distance) of each row of x [B, d]: ([B] cluster
    index, counters). points [n, d] with cluster ``assignment`` [n] in 0..n_clusters-1.

    Decides each point from certified brackets lower <= distance <= upper, all points at once:
    1. cheap bounds for every (point, cluster) pair from two matrix products: upper = the
       distance to the cluster's nearest member, lower = the centroid-line bound (the hull
       projected on the line from the cluster's centroid to the point);
    2. a cluster is out once its lower bound exceeds (1 + PREDICT_MARGIN) times the point's
       best upper bound (plus 1e-8 of the data's spread); a point with one cluster left is
       decided;
    3. the pairs still in race, each cluster's points batched (``PointHullBatch``, warm-started
       at the nearest member), one Wolfe iteration per round, brackets shrinking, pairs
       dropping out as above, until every point is decided or its pairs have converged;
    4. a point whose nearest clusters are within the margin (a tie, or a near one) is searched
       exactly as before (``_nearest_one``: clusters in centroid-bound order, ties to the
       first), so ties are broken exactly as that search breaks them.
    A point decided in 1-3 has the true nearest cluster with a relative margin of 1e-3, which
    the exact search (rtol 1e-7) also returns: the predictions are those of the exact search.
    Counters: points decided by the cheap bounds, by the race, by the exact search; race steps.
    ``chunk``: test points per pass (default: [chunk, n] products of ~32 MB, at most 1,024).
    """
    points = np.asarray(points, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    assignment = np.asarray(assignment)
    members = [np.flatnonzero(assignment == c) for c in range(n_clusters)]
    stats = {"cheap": 0, "race": 0, "exact": 0, "race_steps": 0}
    out = np.zeros(len(x), dtype=np.int64)
    if not len(x):
        return out, stats
    chunk = chunk or int(min(1024, max(16, 2**22 // len(points))))
    center = points.mean(0)
    xc, pc = points - center, x - center
    spread = float(np.max(np.maximum(xc.max(0), pc.max(0)) - np.minimum(xc.min(0), pc.min(0))))
    slack = 1e-8 * spread
    mu = np.stack([xc[m].mean(0) for m in members])  # [K, d]
    own = np.einsum("nd,nd->n", xc, mu[assignment])  # x.mu(own cluster)
    xx = np.einsum("nd,nd->n", xc, xc)
    radius = float(np.sqrt(xx.max()))
    gamma = 4 * (xc.shape[1] + 4) * np.finfo(float).eps  # worst-case rounding of a d-term sum
    exact = []
    for lo in range(0, len(x), chunk):
        rows = slice(lo, lo + chunk)
        arg, decided = _race(xc, pc[rows], members, mu, own, xx, radius, gamma, slack, stats)
        out[rows] = arg
        exact += (lo + np.flatnonzero(~decided)).tolist()
    if exact:
        ctx = _exact_context(points, assignment, n_clusters)
        for i in exact:
            out[i] = _nearest_one(ctx, x[i])
    stats["exact"] = len(exact)
    return out, stats


def _race(xc, pc, members, mu, own, xx, radius, gamma, slack, stats):
    """Steps 1-3 of ``nearest_clusters`` for one chunk of points pc [B, d] (coordinates
    centred like xc [n, d]): ([B] winner, [B] decided)."""
    b, k = len(pc), len(members)
    pp = np.einsum("bd,bd->b", pc, pc)
    dot = pc @ xc.T  # [B, n]
    err = gamma * (np.sqrt(pp)[:, None] + radius) ** 2  # bounds the rounding of dot, pp, xx
    d2 = pp[:, None] + xx[None, :] - 2 * dot
    upper, lower = np.empty((b, k)), np.empty((b, k))
    nearest = np.empty((b, k), dtype=np.int64)
    top = dot - own[None, :]  # x.(p - mu_C) for x in C, up to the constant p.mu_C - x.mu_C
    for c, m in enumerate(members):
        a = np.argmin(d2[:, m], axis=1)
        nearest[:, c] = a
        upper[:, c] = np.sqrt(np.maximum(d2[np.arange(b), m[a]], 0.0) + 4 * err[:, 0])
        u = pc - mu[c]
        norm = np.sqrt(np.einsum("bd,bd->b", u, u))
        pu = pp - pc @ mu[c]  # u.p
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = (pu - top[:, m].max(1) - 4 * err[:, 0]) / norm
        lower[:, c] = np.where(norm > 0, np.maximum(lo, 0.0), 0.0)
    margin = 1.0 + PREDICT_MARGIN

    def standing():
        thr = upper.min(1) * margin + slack
        return lower <= thr[:, None]

    alive = standing()
    decided = alive.sum(1) == 1
    stats["cheap"] += int(decided.sum())
    cheap = decided.copy()
    race = []
    for c, m in enumerate(members):
        rows = np.flatnonzero(alive[:, c] & ~decided)
        if len(rows):
            race.append((c, rows, PointHullBatch(xc[m], pc[rows], start=nearest[rows, c],
                                                 rtol=_RACE_RTOL, zero=slack * 1e-3)))
    while True:
        stepped = False
        for c, rows, batch in race:
            go = np.flatnonzero((batch.state == RUNNING) & alive[rows, c] & ~decided[rows])
            if len(go):
                batch.step(go)
                stepped = True
                stats["race_steps"] += len(go)
                lower[rows, c] = np.maximum(lower[rows, c], batch.lower)
                upper[rows, c] = np.minimum(upper[rows, c], batch.upper)
        alive = standing()
        decided = alive.sum(1) == 1
        if not stepped:
            break
    stats["race"] += int((decided & ~cheap).sum())
    return np.argmax(alive, axis=1), decided


def _exact_context(points, assignment, n_clusters):
    """What ``_nearest_one`` needs, computed once (as the per-point search always did)."""
    members = [np.flatnonzero(assignment == c) for c in range(n_clusters)]
    mu = np.stack([points[assignment == c].mean(0) for c in range(n_clusters)])
    own = (points * mu[assignment]).sum(1)  # [n] x.mu(own cluster)
    return points, assignment, n_clusters, members, mu, own


def _nearest_one(ctx, p) -> int:
    """The exact per-point search: clusters in order of the centroid-line lower bound, each
    solved by ``hull_distance`` with an early exit at the best distance so far; the first of
    equal distances wins. (The whole prediction loop before the batched search, unchanged.)"""
    points, assignment, n_clusters, members, mu, own = ctx
    u = p - mu  # [K, d]: lower bound by projecting on the point-centroid line
    norm = np.linalg.norm(u, axis=1)
    top = np.full(n_clusters, -np.inf)  # max over x in C of x.(p - mu_C)
    np.maximum.at(top, assignment, points @ p - own)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(norm > 0, ((u * p).sum(1) - top) / norm, 0.0)
    best, arg = np.inf, 0
    for c in np.argsort(np.maximum(lower, 0.0), kind="stable"):
        if lower[c] >= best:
            break
        h = hull_distance(points[members[c]], p[None, :],
                          stop_above=None if not np.isfinite(best) else best)
        if h.lower <= best and h.distance < best:
            best, arg = h.distance, c
    return int(arg)


def _min_distance(points, members, pairs_, lower) -> float:
    """min hull distance over candidate cluster pairs, exact, pruned by lower bounds."""
    best = np.inf
    for p, q in sorted(pairs_, key=lambda pq: lower[pq]):
        if lower[p, q] >= best:
            break
        h = hull_distance(points[members[p]], points[members[q]],
                          stop_above=None if not np.isfinite(best) else best)
        if h.lower <= best:
            best = min(best, h.distance)
    return float(best)


@dataclass(frozen=True, eq=False)
class DirectProbeResult:
    """The clustering and its geometry.

    labels [k]: label values (sorted); assignment [n]: cluster of each point; cluster_labels
    [K]: label value of each cluster; label_distances [k, k]: minimum hull distance between any
    cluster of label i and any of label j (diagonal 0); points [n, d]: the clustered points
    (float64); stats: counters and seconds of the run.
    """
    labels: np.ndarray
    assignment: np.ndarray
    cluster_labels: np.ndarray
    label_distances: np.ndarray
    points: np.ndarray
    stats: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, points, values, assignment, cluster_label_idx, stats):
        """Compute the label distances for a finished clustering (``directprobe`` calls this).

        points [n, d]; values [k] label values; assignment [n]; cluster_label_idx [K] label
        index (into values) of each cluster."""
        t0 = time.perf_counter()
        members = [np.flatnonzero(assignment == c) for c in range(len(cluster_label_idx))]
        k = len(values)
        lower = np.maximum(centroid_line_gaps(points, members), 0.0)
        dist = np.zeros((k, k))
        for a, b in combinations(range(k), 2):
            ca = np.flatnonzero(cluster_label_idx == a)
            cb = np.flatnonzero(cluster_label_idx == b)
            dist[a, b] = dist[b, a] = _min_distance(points, members,
                                                    [(p, q) for p in ca for q in cb], lower)
        stats = dict(stats, distance_seconds=time.perf_counter() - t0)
        return cls(values, assignment, values[cluster_label_idx], dist, points, stats)

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_labels)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def is_linearly_separable(self) -> bool:
        """One cluster per label: the labels are pairwise linearly separable."""
        return self.n_clusters == self.n_labels

    @property
    def clusters_per_label(self) -> np.ndarray:
        """[k] number of clusters of each label."""
        return np.array([(self.cluster_labels == v).sum() for v in self.labels])

    @property
    def pairs(self) -> list[tuple]:
        """Label pairs (i < j, as label values) in distance-vector order."""
        return [(self.labels[i], self.labels[j])
                for i, j in combinations(range(self.n_labels), 2)]

    def min_distances(self) -> np.ndarray:
        """[k] each label's minimum distance to any other label (§4.3, Figure 2)."""
        d = self.label_distances + np.diag(np.full(self.n_labels, np.inf))
        return d.min(1)

    def distance_vector(self, multi_cluster: str = "raise") -> np.ndarray:
        """[k (k - 1) / 2] label-pair distances (§2.2). Without one cluster per label:
        "raise" (UndefinedError), "min" (minimum over the labels' clusters) or "nan" (NaN for
        pairs involving a label with several clusters)."""
        check_choice(multi_cluster, MULTI_CLUSTER, "multi_cluster")
        iu = np.triu_indices(self.n_labels, 1)
        vec = self.label_distances[iu].copy()
        multi = self.clusters_per_label > 1
        if multi.any():
            if multi_cluster == "raise":
                raise UndefinedError(
                    f"labels {self.labels[multi].tolist()} have several clusters ({self.n_clusters}"
                    f" clusters for {self.n_labels} labels: not linearly separable), so the"
                    " label-to-label distance vector is undefined (Zhou & Srikumar 2022 §2.2);"
                    " pass multi_cluster='min' for the minimum over their clusters or 'nan' to"
                    " mark those pairs")
            if multi_cluster == "nan":
                vec[multi[iu[0]] | multi[iu[1]]] = np.nan
        return vec

    def cluster_distance(self, i: int, j: int) -> float:
        """Hull distance between clusters i and j (0 if they touch; computed on demand)."""
        key = (min(i, j), max(i, j))
        if key not in self._cache:
            pi = self.points[self.assignment == i]
            pj = self.points[self.assignment == j]
            if not len(pi) or not len(pj):
                raise ConfigError(f"cluster index out of range: {i}, {j} (K={self.n_clusters})")
            self._cache[key] = 0.0 if i == j else hull_distance(pi, pj).distance
        return self._cache[key]

    def centroids(self) -> np.ndarray:
        """[K, d] cluster centroids."""
        return np.stack([self.points[self.assignment == c].mean(0)
                         for c in range(self.n_clusters)])

    def predict(self, x) -> np.ndarray:
        """[m] the label of the nearest cluster (point-to-hull distance) for each row of x.

        See ``nearest_clusters``: certified bounds decide most points without an exact
        distance; the rest get the per-point exact search."""
        x = as_single(x, "x")
        check_finite(x, "x")
        x = to_numpy(x.double())
        if x.shape[1] != self.points.shape[1]:
            raise ConfigError(f"x has {x.shape[1]} features but the clusters have"
                              f" {self.points.shape[1]}")
        arg, _ = nearest_clusters(self.points, self.assignment, self.n_clusters, x)
        return self.cluster_labels[arg]

    def accuracy(self, x, y) -> float:
        """Nearest-cluster prediction accuracy on held-out points (x [m, d], y [m])."""
        y = as_labels(y, len(as_single(x, "x")), "y", min_classes=1)
        return float(np.mean(self.predict(x) == y))

    def to_record(self) -> dict:
        """Flat scalars for a results table."""
        md = self.min_distances()
        return {"n_points": len(self.points), "n_labels": self.n_labels,
                "n_clusters": self.n_clusters, "linearly_separable": self.is_linearly_separable,
                "min_label_distance": float(md.min()), "mean_min_distance": float(md.mean()),
                **{k: v for k, v in self.stats.items() if np.isscalar(v)}}


def spatial_similarity(a, b, *, multi_cluster: str = "raise") -> float:
    """Pearson correlation of two label-distance vectors (§2.2): two representations, two
    checkpoints, or the train and test sets of one representation (§4.1).

    a, b: ``DirectProbeResult`` (over the same labels) or distance vectors [p]. NaN entries,
    fewer than 3 pairs or a constant vector make it undefined: an UndefinedError says which.
    """
    names = []
    vecs = []
    for _what, r in (("a", a), ("b", b)):
        if isinstance(r, DirectProbeResult):
            names.append(r.labels)
            vecs.append(r.distance_vector(multi_cluster))
        else:
            vecs.append(np.asarray(r, dtype=np.float64).reshape(-1))
    if len(names) == 2 and not np.array_equal(names[0], names[1]):
        raise ConfigError(f"the two results have different labels ({names[0].tolist()} vs"
                          f" {names[1].tolist()}); spatial similarity compares the same pairs")
    va, vb = vecs
    if va.shape != vb.shape:
        raise ConfigError(f"distance vectors of different lengths: {len(va)} and {len(vb)}")
    bad = ~(np.isfinite(va) & np.isfinite(vb))
    if bad.any():
        raise UndefinedError(f"{int(bad.sum())} of {len(va)} label pairs have no defined"
                             " distance (NaN): spatial similarity over them is undefined; drop"
                             " those pairs from both vectors first")
    if len(va) < 3:
        raise UndefinedError(f"spatial similarity needs at least 3 label pairs (3 labels); got"
                             f" {len(va)}: a correlation of {len(va)} value(s) means nothing")
    if np.ptp(va) == 0 or np.ptp(vb) == 0:
        raise UndefinedError("a distance vector is constant, so its Pearson correlation is"
                             " undefined")
    return float(np.corrcoef(va, vb)[0, 1])
