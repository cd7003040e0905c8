"""DirectProbe (Zhou & Srikumar 2021; used in Zhou & Srikumar 2022 §2.2): the clustering. No I/O.

Start from single points; repeatedly merge the two closest clusters of the same label (closest
by centroid distance, as the authors' code does), but only if the merged cluster's convex hull
stays disjoint from the hull of every cluster of another label; a pair whose merge would overlap
is never retried. The end state: every cluster holds one label, and any two clusters of
different labels are linearly separable. Cluster count == label count means the labels are
linearly separable; more clusters means a non-linear classifier is needed (§2.2, Fig. 1).

Speed, with the same result as checking every merge:
* "merge to the end, then check" (the authors' strategy): merging without checks is cheap, and
  hull overlap is monotone along the merge sequence (clusters only grow), so the first merge that
  breaks separability is found by binary search over states; checked merging resumes from the
  last valid state. Separable data needs a single check of the final state.
* the exact tests run on standardised features (each shifted and scaled to [-1, 1]: hull
  intersection is affine-invariant, and badly scaled features no longer stall them);
* a cheap sufficient test first, for all pairs at once (``centroid_line_gaps``): project both
  clusters on the line between their centroids; disjoint intervals mean separable (this implies
  the authors' bounding-sphere test). Only undecided pairs go to the exact test: Wolfe's
  nearest-point solver with an early exit (``convex_hulls.hull_distance``: a positive lower
  bound certifies separability, a zero distance proves overlap), or the HiGHS LP
  (``test="lp"``: ``convex_hulls.overlap_lp_verdict``, on standardised coordinates, each
  answer checked; where HiGHS gives none that checks out, e.g. status 4, Wolfe decides, and
  ``stats["fallbacks"]`` counts it; if both fail, a ConfigError names the sizes and the fix).
* a failed merge fails forever, and so does any merge containing it: if A u Q overlaps some other
  label's cluster C, then (A u B) u Q overlaps C's successor (hulls only grow), so failure marks
  are inherited on merging.

Shapes: x: [n, d] points; y: [n] labels. Results in ``directprobe_result.DirectProbeResult``.
"""

from __future__ import annotations

import time

import numpy as np

from ..devices import to_numpy
from ..errors import ConfigError, UndefinedError, check_choice
from ._inputs import as_labels, as_single, check_finite
from .batched_mlp import available_bytes
from .convex_hulls import centroid_line_gaps, hull_distance, overlap_lp_verdict
from .directprobe_result import DirectProbeResult, spatial_similarity

__all__ = ["TESTS", "directprobe", "DirectProbeResult", "spatial_similarity"]

TESTS = ("wolfe", "lp")


class _Label:
    """Same-label clusters of one label, by slot: members, centroids, the squared centroid
    distance matrix D (inf: same slot, inactive, or a known failed merge) with row minima.
    Inactive slots are compacted away when they make up half the matrix (slot numbers change
    then, identically on a replay of the same merges)."""

    def __init__(self, x: np.ndarray, groups: list[np.ndarray], track=None):
        self.members = [np.asarray(g) for g in groups]
        self.count = np.array([len(g) for g in groups], dtype=float)
        self.cent = np.stack([x[g].mean(0) for g in groups])
        self.sq = (self.cent * self.cent).sum(1)
        self.d = np.maximum(self.sq[:, None] + self.sq[None, :] - 2 * self.cent @ self.cent.T, 0)
        np.fill_diagonal(self.d, np.inf)
        self.failed = np.zeros(self.d.shape, dtype=bool)
        self.active = np.ones(len(groups), dtype=bool)
        self.rowmin, self.rowarg = self.d.min(1), self.d.argmin(1)
        # ``track`` = (slot_of [n], selfproj [n]) shared by all labels: each point's slot and
        # x.mu(own cluster), kept current for the vectorised merge test (checked phase only)
        self.x, self.track = x, track
        self.points = np.concatenate(self.members)
        if track is not None:
            for i, g in enumerate(self.members):
                track[0][g], track[1][g] = i, x[g] @ self.cent[i]

    def best(self) -> tuple[float, int, int]:
        r = int(np.argmin(self.rowmin))
        return float(self.rowmin[r]), min(r, int(self.rowarg[r])), max(r, int(self.rowarg[r]))

    def _refresh(self, rows) -> None:
        rows = np.atleast_1d(rows)
        if len(rows):
            sub = self.d[rows]
            self.rowarg[rows] = sub.argmin(1)
            self.rowmin[rows] = sub[np.arange(len(rows)), self.rowarg[rows]]

    def fail(self, s: int, t: int) -> None:
        self.failed[s, t] = self.failed[t, s] = True
        self.d[s, t] = self.d[t, s] = np.inf
        self._refresh([s, t])

    def merge(self, s: int, t: int) -> None:
        """Slot s becomes s u t; slot t goes inactive. Failure marks are inherited (module doc)."""
        self.members[s] = np.concatenate([self.members[s], self.members[t]])
        self.members[t] = self.members[t][:0]
        ns, nt = self.count[s], self.count[t]
        self.count[s] += nt
        self.cent[s] = (ns * self.cent[s] + nt * self.cent[t]) / (ns + nt)
        self.sq[s] = self.cent[s] @ self.cent[s]
        self.active[t] = False
        self.failed[s] |= self.failed[t]
        self.failed[:, s] = self.failed[s]
        row = np.maximum(self.sq + self.sq[s] - 2 * (self.cent @ self.cent[s]), 0.0)
        row[~self.active | self.failed[s]] = np.inf
        row[s] = np.inf
        self.d[s], self.d[:, s] = row, row
        self.d[t], self.d[:, t] = np.inf, np.inf
        self.rowmin[t] = np.inf
        # rows whose minimum pointed at s or t need a rescan, unless the new entry is smaller
        better = self.active & (row <= self.rowmin)
        stale = np.flatnonzero(self.active & ~better & ((self.rowarg == s) | (self.rowarg == t)))
        self.rowmin[better], self.rowarg[better] = row[better], s
        self._refresh(np.union1d(stale, [s]))
        if self.track is not None:
            m = self.members[s]
            self.track[0][m], self.track[1][m] = s, self.x[m] @ self.cent[s]
        if len(self.active) > 64 and 2 * self.active.sum() < len(self.active):
            self._compact()

    def _compact(self) -> None:
        keep = np.flatnonzero(self.active)
        if self.track is not None:
            self.track[0][self.points] = (np.cumsum(self.active) - 1)[self.track[0][self.points]]
        self.members = [self.members[i] for i in keep]
        self.count, self.cent, self.sq = self.count[keep], self.cent[keep], self.sq[keep]
        self.d = self.d[np.ix_(keep, keep)]
        self.failed = self.failed[np.ix_(keep, keep)]
        self.active = np.ones(len(keep), dtype=bool)
        self.rowmin, self.rowarg = self.d.min(1), self.d.argmin(1)


def _clusters(labels: list[_Label]) -> tuple[list[np.ndarray], np.ndarray]:
    """Active clusters' member arrays and their label ids."""
    out, lab = [], []
    for li, lm in enumerate(labels):
        for s in np.flatnonzero(lm.active):
            out.append(lm.members[s])
            lab.append(li)
    return out, np.array(lab)


class _Tester:
    """The exact test with counters; ``prune`` turns the cheap test on."""

    def __init__(self, x, test: str, prune: bool):
        self.x, self.test, self.prune = x, test, prune
        # the exact tests see each feature shifted and scaled to [-1, 1]: an affine bijection,
        # so no verdict changes, but features of very different scales (1e-9 next to 1e9)
        # no longer stall Wolfe or mislead HiGHS; the cheap tests and the geometry use x
        shift = x.mean(0)
        scale = np.abs(x - shift).max(0)
        scale[~(scale > 1e-300)] = 1.0
        self.xs = (x - shift) / scale
        self.stats = {"exact_tests": 0, "cheap_decided": 0, "exact_seconds": 0.0,
                      "fallbacks": 0}

    def overlap(self, p: np.ndarray, q: np.ndarray) -> bool:
        """The exact test. "lp": HiGHS with every answer checked, Wolfe deciding where HiGHS
        gives none that checks out (status 4, ...); "wolfe": Wolfe, the checked LP where Wolfe
        stalls. ``fallbacks`` counts the tests the other method decided."""
        t0 = time.perf_counter()
        self.stats["exact_tests"] += 1
        try:
            if self.test == "wolfe":
                try:
                    return not hull_distance(self.xs[p], self.xs[q], stop_above=0.0).lower > 0.0
                except ConfigError:  # Wolfe stalled (near-degenerate): the LP decides
                    self.stats["fallbacks"] += 1
            verdict, how = overlap_lp_verdict(self.xs[p], self.xs[q])
            if self.test == "lp" and how == "wolfe":
                self.stats["fallbacks"] += 1
            return verdict
        except ConfigError as err:
            raise ConfigError(f"DirectProbe (test={self.test!r}, {len(self.x)} points): {err}"
                              ) from None
        finally:
            self.stats["exact_seconds"] += time.perf_counter() - t0

    def any_overlap(self, members, labs) -> bool:
        """Does any different-label pair of these clusters overlap? (early exit)"""
        k = len(members)
        cross = (labs[:, None] != labs[None, :]) & np.triu(np.ones((k, k), dtype=bool), 1)
        if self.prune:
            gap = centroid_line_gaps(self.x, members)
            self.stats["cheap_decided"] += int((cross & (gap > 0)).sum())
            cross &= gap <= 0
            ii, jj = np.nonzero(cross)
            order = np.argsort(gap[ii, jj], kind="stable")  # most doubtful pairs first
            ii, jj = ii[order], jj[order]
        else:
            ii, jj = np.nonzero(cross)
        return any(self.overlap(members[i], members[j])
                   for i, j in zip(ii, jj, strict=True))

    def merge_ok(self, merged: np.ndarray, others: list[_Label]) -> bool:
        """Is ``merged`` separable from every active cluster of the ``others`` labels?

        The cheap test for all of them at once: with u = mu_C - mu_M, the merged side is
        max_{x in M} x.u = rows of X_M [mu_C] minus x.mu_M; C's side min_{x in C} x.u uses each
        point's x.mu(own cluster) kept in ``track``. Undecided pairs, most doubtful first, go
        to the exact test."""
        x, cand = self.x, []
        xm = x[merged]
        mu_m = xm.mean(0)
        pm = xm @ mu_m
        for lm in others:
            act = np.flatnonzero(lm.active)
            if not self.prune:
                cand += [(0.0, lm.members[c]) for c in act]
                continue
            side_m = (xm @ lm.cent[act].T - pm[:, None]).max(0)  # [K_j]
            slot_of, selfproj = lm.track
            pts = lm.points
            seg = (np.cumsum(lm.active) - 1)[slot_of[pts]]
            side_o = np.full(len(act), np.inf)
            np.minimum.at(side_o, seg, selfproj[pts] - x[pts] @ mu_m)
            gap = side_o - side_m
            self.stats["cheap_decided"] += int((gap > 0).sum())
            cand += [(gap[i], lm.members[act[i]]) for i in np.flatnonzero(gap <= 0)]
        cand.sort(key=lambda gc: gc[0])
        return not any(self.overlap(merged, m) for _, m in cand)


def _check_input(x, y, min_points_per_label: int):
    x = as_single(x, "x")
    check_finite(x, "x")
    x = to_numpy(x.double())
    y = as_labels(y, len(x), "y", min_classes=2)
    values, yi, counts = np.unique(y, return_inverse=True, return_counts=True)
    small = values[counts < min_points_per_label]
    if len(small):
        raise ConfigError(f"label(s) {small.tolist()} have fewer than {min_points_per_label}"
                          " points; a one-point cluster's distances are one example's noise."
                          " Drop those labels or pass min_points_per_label=1")
    rows, inv = np.unique(x, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if len(rows) < len(x):
        lab_min = np.full(len(rows), len(values))
        lab_max = np.full(len(rows), -1)
        np.minimum.at(lab_min, inv, yi)
        np.maximum.at(lab_max, inv, yi)
        bad = np.flatnonzero(lab_min != lab_max)
        if len(bad):
            ex = np.flatnonzero(inv == bad[0])
            raise UndefinedError(f"{len(bad)} vector(s) occur under two or more labels (e.g."
                                 f" examples {ex[:4].tolist()} with labels"
                                 f" {values[yi[ex[:4]]].tolist()}): their hulls touch at"
                                 " distance 0, so no clustering with disjoint hulls exists and"
                                 " label distances are undefined (a constant layer, such as"
                                 " BERT's layer-0 CLS, does this)")
    return x, values, yi


def directprobe(x, y, *, test: str = "wolfe", prune: bool = True,
                min_points_per_label: int = 2) -> DirectProbeResult:
    """Cluster points x [n, d] with labels y [n] (see the module docstring).

    Deterministic: no randomness; ties go to the lower index. Distances between the final
    clusters and nearest-cluster prediction are on the returned ``DirectProbeResult``.
    """
    check_choice(test, TESTS, "separability test")
    x, values, yi = _check_input(x, y, min_points_per_label)
    counts = np.bincount(yi)
    need = int(9 * (counts.astype(float) ** 2).sum())  # per label: [n_l, n_l] float64 + bool
    if need > 0.8 * available_bytes():
        raise ConfigError(f"DirectProbe on these {len(x)} points needs ~{need / 2**30:.1f} GiB"
                          f" (a centroid-distance matrix per label; the largest label has"
                          f" {counts.max()} points) but only {available_bytes() / 2**30:.1f} GiB"
                          " is available; subsample the largest labels")
    t0 = time.perf_counter()
    tester = _Tester(x, test, prune)
    groups = [np.flatnonzero(yi == li) for li in range(len(values))]
    labels = [_Label(x, [g[i:i + 1] for i in range(len(g))]) for g in groups]
    history = []  # the unchecked merge sequence, as (a point of one cluster, one of the other)
    while True:  # 1. merge to the end without checks (closest same-label pair first)
        cands = [lm.best() for lm in labels]
        li = int(np.argmin([c[0] for c in cands]))
        if not np.isfinite(cands[li][0]):
            break
        s, t = cands[li][1], cands[li][2]
        history.append((int(labels[li].members[s][0]), int(labels[li].members[t][0])))
        labels[li].merge(s, t)
    states = 1
    if tester.any_overlap(*_clusters(labels)):
        lo, hi = 0, len(history)  # state lo is valid (singletons), state hi is not
        while hi - lo > 1:  # 2. binary search for the first merge that breaks separability
            mid = (lo + hi) // 2
            states += 1
            if tester.any_overlap(*_state(yi, history[:mid])):
                hi = mid
            else:
                lo = mid
        members, labs = _state(yi, history[:lo])
        track = (np.zeros(len(x), dtype=np.int64), np.zeros(len(x)))
        labels = [_Label(x, [m for m, lab in zip(members, labs, strict=True) if lab == li],
                         track) for li in range(len(values))]
        p, q = history[lo]  # the first merge that fails: mark it, then merge with checks
        lm = labels[yi[p]]
        slot = {int(m[0]): i for i, m in enumerate(lm.members)}
        root = {int(pt): slot[int(m[0])] for m in lm.members for pt in m}
        lm.fail(min(root[p], root[q]), max(root[p], root[q]))
        _forward(labels, tester)  # 3. checked merging from the last valid state
    members, labs = _clusters(labels)
    assignment = np.empty(len(x), dtype=np.int64)
    for c, m in enumerate(members):
        assignment[m] = c
    stats = dict(tester.stats, states_checked=states, merges_unchecked=len(history),
                 cluster_seconds=time.perf_counter() - t0)
    return DirectProbeResult.build(x, values, assignment, labs, stats)


def _state(yi: np.ndarray, merges) -> tuple[list[np.ndarray], np.ndarray]:
    """Clusters (member arrays, label ids) after the given merges of single points, by
    union-find on point ids; members sorted, clusters ordered by their smallest point."""
    parent = np.arange(len(yi))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for p, q in merges:
        rp, rq = find(p), find(q)
        parent[max(rp, rq)] = min(rp, rq)
    roots = np.array([find(i) for i in range(len(yi))])
    order = np.argsort(roots, kind="stable")
    cuts = np.flatnonzero(np.diff(roots[order])) + 1
    members = np.split(order, cuts)
    return members, np.array([yi[m[0]] for m in members])


def _forward(labels: list[_Label], tester: _Tester) -> None:
    """Merge the closest same-label pair whose union stays separable from every other-label
    cluster; mark the pair failed otherwise; stop when no pair is left."""
    while True:
        cands = [lm.best() for lm in labels]
        li = int(np.argmin([c[0] for c in cands]))
        _, s, t = cands[li]
        if not np.isfinite(cands[li][0]):
            return
        lm = labels[li]
        merged = np.concatenate([lm.members[s], lm.members[t]])
        if tester.merge_ok(merged, [o for lj, o in enumerate(labels) if lj != li]):
            lm.merge(s, t)
        else:
            lm.fail(s, t)
