"""DirectProbe (Zhou & Srikumar 2021/2022 §2.2): clusters, hull distances, spatial similarity."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.svm import SVC

from layerscope.errors import ConfigError, UndefinedError
from layerscope.measures.convex_hulls import hull_distance, overlap_lp, point_hull_distances
from layerscope.measures.directprobe import directprobe, spatial_similarity


def qp_distance(a, b):
    """Independent reference: min ||w_a a - w_b b|| over two simplices, by SLSQP (tiny only)."""
    ma, mb = len(a), len(b)

    def f(w):
        r = w[:ma] @ a - w[ma:] @ b
        return r @ r

    cons = [{"type": "eq", "fun": lambda w: w[:ma].sum() - 1},
            {"type": "eq", "fun": lambda w: w[ma:].sum() - 1}]
    w0 = np.r_[np.full(ma, 1 / ma), np.full(mb, 1 / mb)]
    res = minimize(f, w0, method="SLSQP", bounds=[(0, 1)] * (ma + mb), constraints=cons,
                   options={"ftol": 1e-16, "maxiter": 2000})
    return np.sqrt(max(res.fun, 0.0))


def test_hull_distance_known_answers():
    assert hull_distance([[0.0], [1.0]], [[3.0], [5.0]]).distance == pytest.approx(2.0)
    sq = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    h = hull_distance(sq, sq + [3, 0])  # nearest points 2 apart: distance 2, normal along x
    assert h.distance == pytest.approx(2.0, rel=1e-9)
    assert h.lower <= h.distance <= h.upper and h.upper - h.lower <= 1e-6
    np.testing.assert_allclose(np.abs(h.normal), [1, 0], atol=1e-9)
    assert hull_distance(sq, sq + [0.5, 0.5]).distance == 0.0  # overlapping squares
    assert hull_distance(sq, sq[[3]] + 1).distance == pytest.approx(np.sqrt(2))  # corner point


@pytest.mark.parametrize("seed", range(6))
def test_hull_distance_matches_an_independent_qp_and_the_svm_margin(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(8, 4))
    b = rng.normal(size=(7, 4)) + rng.normal(size=4) * 2.5
    h = hull_distance(a, b)
    assert h.distance == pytest.approx(qp_distance(a, b), rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(h.weights_a @ a - h.weights_b @ b, h.distance * h.normal,
                               atol=1e-8)  # the reported nearest points realise the distance
    if h.distance > 1e-3:  # twice the hard-margin SVM margin (Zhou & Srikumar §2.2)
        svm = SVC(kernel="linear", C=1e10, tol=1e-10).fit(np.r_[a, b], np.r_[[1] * 8, [-1] * 7])
        assert h.distance == pytest.approx(2 / np.linalg.norm(svm.coef_), rel=1e-5)
    assert overlap_lp(a, b) == (h.distance == 0.0)


def test_high_dimensional_distance_is_certified():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=64)
    a, b = rng.normal(size=(150, 64)) + 0.4 * mu, rng.normal(size=(150, 64)) - 0.4 * mu
    h = hull_distance(a, b, rtol=1e-9)
    # any unit direction bounds the distance from below: the solver's normal attains it
    gap = (a @ h.normal).min() - (b @ h.normal).max()
    assert gap == pytest.approx(h.distance, rel=1e-8)
    early = hull_distance(a, b, stop_above=0.0)  # a separability query stops early
    assert 0 < early.lower <= h.distance <= early.upper and early.iterations < h.iterations


def two_blobs(n=60, d=5, gap=6.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = np.arange(n) % 2
    x[:, 0] += gap * y
    return x, y


def test_separable_blobs_give_one_cluster_per_label():
    x, y = two_blobs()
    r = directprobe(x, y)
    assert r.n_clusters == 2 and r.is_linearly_separable
    assert set(zip(r.assignment, y, strict=True)) == {(0, 0), (1, 1)}
    exact = hull_distance(x[y == 0], x[y == 1]).distance
    assert r.label_distances[0, 1] == pytest.approx(exact)
    np.testing.assert_allclose(r.min_distances(), [exact, exact])
    three = np.r_[x, x[y == 1] + [0, 9, 0, 0, 0]]
    r3 = directprobe(three, np.r_[y, np.full((y == 1).sum(), 2)])
    assert r3.n_clusters == 3 and r3.distance_vector().shape == (3,)


def xor(n=400, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(-1, 1, size=(n, 2))
    return p, ((p[:, 0] > 0) ^ (p[:, 1] > 0)).astype(int)


def test_xor_filled_to_the_axes_gives_four_clusters():
    p, y = xor()
    r = directprobe(p, y)
    assert r.n_clusters == 4 and not r.is_linearly_separable
    np.testing.assert_array_equal(r.clusters_per_label, [2, 2])
    with pytest.raises(UndefinedError, match="several clusters"):
        r.distance_vector()
    assert np.isnan(r.distance_vector("nan")).all()
    assert np.all(r.distance_vector("min") >= 0)


def test_final_clusters_are_pairwise_separable_and_maximal():
    # random labels in 3-d: many clusters; check every claim with the LP, independently
    rng = np.random.default_rng(5)
    x = rng.normal(size=(70, 3))
    y = rng.integers(0, 3, 70)
    r = directprobe(x, y)
    assert r.n_labels < r.n_clusters < 70
    members = [np.flatnonzero(r.assignment == c) for c in range(r.n_clusters)]
    for i, j in combinations(range(r.n_clusters), 2):
        if r.cluster_labels[i] != r.cluster_labels[j]:
            assert not overlap_lp(x[members[i]], x[members[j]])
        else:  # no same-label merge is left: each would overlap another label's cluster
            merged = np.r_[members[i], members[j]]
            assert any(overlap_lp(x[merged], x[members[k]]) for k in range(r.n_clusters)
                       if r.cluster_labels[k] != r.cluster_labels[i])
    assert r.accuracy(x, y) == 1.0  # every point lies in (on) its own cluster's hull


def test_the_exact_test_and_pruning_do_not_change_the_result():
    p, y = xor(160, seed=2)
    ref = directprobe(p, y)
    for kw in ({"test": "lp"}, {"prune": False}):
        other = directprobe(p, y, **kw)
        np.testing.assert_array_equal(other.assignment, ref.assignment)
    assert ref.stats["cheap_decided"] > 0 and ref.stats["states_checked"] > 1
    again = directprobe(p, y)  # deterministic
    np.testing.assert_array_equal(again.assignment, ref.assignment)
    np.testing.assert_array_equal(again.label_distances, ref.label_distances)


def test_prediction_is_the_nearest_hull():
    p, y = xor(200, seed=3)
    r = directprobe(p, y)
    q, yq = xor(60, seed=4)
    hulls = [p[r.assignment == c] for c in range(r.n_clusters)]
    brute = np.stack([point_hull_distances(q, h) for h in hulls])  # [K, m]
    np.testing.assert_array_equal(r.predict(q), r.cluster_labels[brute.argmin(0)])
    assert r.accuracy(q, yq) > 0.9
    x, yb = two_blobs(seed=1)
    xt, yt = two_blobs(seed=2)
    assert directprobe(x, yb).accuracy(xt, yt) == 1.0


def test_spatial_similarity():
    rng = np.random.default_rng(6)
    k, d = 5, 8
    centres = rng.normal(size=(k, d)) * 6
    y = np.repeat(np.arange(k), 12)
    x = centres[y] + rng.normal(size=(len(y), d))
    rot = np.linalg.qr(rng.normal(size=(d, d)))[0]
    a = directprobe(x, y)
    b = directprobe(3.0 * x @ rot + 7.0, y)  # scaled, rotated and shifted copy
    np.testing.assert_allclose(b.label_distances, 3.0 * a.label_distances, rtol=1e-6)
    assert spatial_similarity(a, b) == pytest.approx(1.0, abs=1e-9)
    other = directprobe(centres[rng.permutation(k)][y] + rng.normal(size=x.shape), y)
    assert spatial_similarity(a, other) < 0.99
    assert spatial_similarity([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef(
        [1, 2, 3], [2, 4, 7])[0, 1])
    with pytest.raises(UndefinedError, match="at least 3"):
        spatial_similarity(directprobe(*two_blobs()), directprobe(*two_blobs(seed=3)))
    with pytest.raises(UndefinedError, match="NaN"):
        spatial_similarity([1.0, np.nan, 3.0, 4.0], [1, 2, 3, 4])
    with pytest.raises(UndefinedError, match="constant"):
        spatial_similarity([1, 1, 1], [1, 2, 3])


def test_bad_input_is_refused_with_the_reason():
    x, y = two_blobs(20)
    with pytest.raises(ConfigError, match="1 distinct class"):
        directprobe(x, np.zeros(20, int))
    with pytest.raises(ConfigError, match="fewer than 2 points"):
        directprobe(x, np.r_[np.zeros(19, int), 1])
    dup = x.copy()
    dup[3] = dup[4]  # examples 3 and 4: same vector, labels 1 and 0
    with pytest.raises(UndefinedError, match=r"examples \[3, 4\].*distance 0"):
        directprobe(dup, y)
    with pytest.raises(UndefinedError, match="two or more labels"):
        directprobe(np.ones((20, 4)), y)  # a constant layer (BERT's layer-0 CLS)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        directprobe(bad, y)
    with pytest.raises(ConfigError, match="19 entries"):
        directprobe(x, y[:19])
    with pytest.raises(ConfigError, match="separability test"):
        directprobe(x, y, test="gurobi")
    r = directprobe(x, y)
    with pytest.raises(ConfigError, match="features"):
        r.predict(x[:, :2])
