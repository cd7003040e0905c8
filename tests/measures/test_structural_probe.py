"""Hewitt & Manning 2019's structural (distance) probe: tree distances, UUAS and DSpr. on
hand-made cases, and the recovery of planted trees from synthetic vectors."""

from collections import deque

import numpy as np
import pytest
from scipy.stats import spearmanr

from layerscope.errors import ConfigError, UndefinedError
from layerscope.measures import structural_probe as P


def _bfs_distances(heads):
    """Reference: breadth-first search from every word over the undirected tree (ROOT = 0)."""
    n = len(heads)
    adj = {v: set() for v in range(n + 1)}
    for d, h in enumerate(heads, 1):
        adj[d].add(h)
        adj[h].add(d)
    out = np.zeros((n, n), dtype=np.int64)
    for s in range(1, n + 1):
        seen, q = {s: 0}, deque([s])
        while q:
            v = q.popleft()
            for u in adj[v]:
                if u not in seen:
                    seen[u] = seen[v] + 1
                    q.append(u)
        out[s - 1] = [seen[t] for t in range(1, n + 1)]
    return out


def _random_tree(g, n, single_root=True):
    order = g.permutation(n) + 1
    heads = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        heads[order[i] - 1] = order[g.integers(0, i)] if single_root else g.choice(
            np.concatenate([[0], order[:i]]))
    return heads


def test_tree_distances_by_hand():
    assert P.tree_distances([0, 1, 2]).tolist() == [[0, 1, 2], [1, 0, 1], [2, 1, 0]]  # chain
    # "the cat sat .": the -> cat -> sat <- .
    assert P.tree_distances([2, 3, 0, 3]).tolist() == [[0, 1, 2, 3], [1, 0, 1, 2],
                                                       [2, 1, 0, 1], [3, 2, 1, 0]]
    assert P.tree_distances([0, 0]).tolist() == [[0, 2], [2, 0]]  # two roots: through ROOT
    assert P.tree_distances([0]).tolist() == [[0]]


def test_tree_distances_match_breadth_first_search():
    g = np.random.default_rng(0)
    for n in (2, 5, 9, 15, 30):
        for single_root in (True, False):
            h = _random_tree(g, n, single_root)
            d = P.tree_distances(h)
            assert np.array_equal(d, _bfs_distances(h)) and np.array_equal(d, d.T)


def test_tree_distances_refuse_non_trees():
    with pytest.raises(ConfigError, match="contain a cycle"):
        P.tree_distances([2, 1, 0])
    with pytest.raises(ConfigError, match="word 2 has head 2"):
        P.tree_distances([0, 2])
    with pytest.raises(ConfigError, match="word 1 has head 4"):
        P.tree_distances([4, 0])
    with pytest.raises(ConfigError, match="non-empty 1-D integer"):
        P.tree_distances([0.5])


def test_uuas_by_hand():
    chain = np.array([0, 1, 2, 3])  # edges {1,2} {2,3} {3,4}
    star = np.array([[0, 1, 1, 1], [1, 0, 2, 2], [1, 2, 0, 2], [1, 2, 2, 0]], float)  # at word 1
    s = P.uuas([star], [chain])
    assert s.correct.tolist() == [1] and s.total.tolist() == [3] and s.uuas == pytest.approx(1 / 3)
    # word 4 as punctuation: gold {1,2} {2,3}; predicted among words 1-3: {1,2} {1,3}
    s = P.uuas([star], [chain], keep=[[True, True, True, False]])
    assert s.correct.tolist() == [1] and s.total.tolist() == [2]
    # two sentences: corpus UUAS is a ratio of sums, not a mean of ratios
    s = P.uuas([star, P.tree_distances(chain)], [chain, chain])
    assert s.uuas == pytest.approx((1 + 3) / (3 + 3))
    # an internal punctuation word (word 2 of the chain): gold is the MST of gold distances
    s = P.uuas([P.tree_distances(chain)], [chain], keep=[[True, False, True, True]])
    assert s.total.tolist() == [2] and s.correct.tolist() == [2]


def test_distance_spearman_averages_within_then_across_lengths():
    g = np.random.default_rng(1)
    heads = [_random_tree(g, n) for n in (5, 5, 6, 4, 7)]
    gold = [P.tree_distances(h).astype(float) for h in heads]
    pred = [d + g.normal(scale=0.8, size=d.shape) for d in gold]
    pred = [(p + p.T) / 2 for p in pred]
    s = P.distance_spearman(pred, heads)
    rows = {n: [] for n in (5, 6, 7)}  # the authors' way: all rows of one length pooled
    for p, d, h in zip(pred, gold, heads, strict=True):
        if len(h) >= 5:
            rows[len(h)] += [spearmanr(a, b)[0] for a, b in zip(p, d, strict=True)]
    want = {n: np.mean(v) for n, v in rows.items()}
    assert s.per_length == pytest.approx(want, abs=1e-12)
    assert s.mean == pytest.approx(np.mean(list(want.values())), abs=1e-12)
    assert s.sentence_index.tolist() == [0, 1, 2, 4] and s.lengths.tolist() == [5, 5, 6, 7]
    assert P.distance_spearman(gold, heads).mean == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(UndefinedError, match="no sentence has 5-50 words"):
        P.distance_spearman(gold[3:4], heads[3:4])
    flat = [np.ones((5, 5))] + pred[1:]
    with pytest.raises(UndefinedError, match="sentence 0 word 1: its predicted distances"):
        P.distance_spearman(flat, heads)


def _planted(seed, n_sentences, k=12, extra=8, noise=1.0):
    """Sentences of 6-12 words whose vectors hold their tree exactly: each word's edge to its
    head gets its own orthonormal direction, a word's vector is the sum along its path from
    ROOT, so squared distances are path lengths (Hewitt & Manning's Pythagorean embedding);
    then `extra` noise dimensions and one fixed random rotation of everything."""
    q, _ = np.linalg.qr(np.random.default_rng(99).normal(size=(k + extra, k + extra)))
    g = np.random.default_rng(seed)
    states, heads = [], []
    for _ in range(n_sentences):
        n = int(g.integers(6, k + 1))
        h = _random_tree(g, n)
        edge = np.eye(k)[g.permutation(k)[:n]]
        vec = np.zeros((n, k))
        for w in range(1, n + 1):
            v = w
            while v:
                vec[w - 1] += edge[v - 1]
                v = h[v - 1]
        states.append(np.concatenate([vec, noise * g.normal(size=(n, extra))], 1) @ q.T)
        heads.append(h)
    return states, heads


@pytest.fixture(scope="module")
def planted():
    return _planted(0, 100), _planted(1, 20), _planted(2, 30)


def test_the_probe_recovers_planted_trees(planted):
    train, val, test = planted
    # more steps per epoch than batches of 20 give on 100 sentences: the authors' plateau rule
    # (lr x0.1 at the first epoch without improvement) assumes large epochs
    probe = P.fit_distance_probe(*train, *val, learning_rate=1e-2, batch_size=5, seed=0)
    s = P.evaluate_probe(probe, *test)
    assert s.uuas.uuas == 1.0
    assert s.spearman.mean > 0.95
    assert s.to_record() == {"uuas": 1.0, "dspr": s.spearman.mean, "n_sentences": 30}
    assert probe.rank == 20 and probe.B.shape == (20, 20)
    # the recorded validation loss (float32 Gram form) is the paper's loss of the kept B
    # recomputed from the probe's float64 difference form
    loss = np.mean([np.abs(probe.distances(x) - P.tree_distances(h)).sum() / len(h) ** 2
                    for x, h in zip(*val, strict=True)])
    assert loss == pytest.approx(probe.val_loss[probe.best_epoch], rel=1e-3, abs=1e-5)
    # kept: the last epoch that beat the best so far by more than 1e-4 (the authors' rule)
    assert min(probe.val_loss) > probe.val_loss[probe.best_epoch] - 1e-4
    assert len(probe.val_loss) - 1 - probe.best_epoch == 5  # stopped after 5 epochs without
    one, two, other = (P.fit_distance_probe(*train, learning_rate=1e-2, max_epochs=2, seed=s)
                       for s in (3, 3, 4))
    assert np.array_equal(one.B, two.B) and not np.array_equal(one.B, other.B)  # seeded


def test_no_tree_in_the_vectors_no_tree_found(planted):
    (_, heads), _, (_, test_heads) = planted
    g = np.random.default_rng(5)
    noise = [g.normal(size=(len(h), 20)) for h in heads]
    probe = P.fit_distance_probe(noise, heads, learning_rate=1e-2, batch_size=5, rank=4)
    s = P.evaluate_probe(probe, [g.normal(size=(len(h), 20)) for h in test_heads], test_heads)
    assert s.uuas.uuas < 0.5 and s.spearman.mean < 0.6
    assert probe.rank == 4 and len(probe.val_loss) == len(probe.train_loss)


def test_bad_inputs(planted):
    (states, heads), _, _ = planted
    n = len(heads[1])
    with pytest.raises(ConfigError, match=f"training sentence 1: {n} word vectors but"
                       f" {n - 1} heads"):
        P.fit_distance_probe(states[:2], [heads[0], heads[1][:-1]])
    with pytest.raises(ConfigError, match="different widths"):
        P.fit_distance_probe([states[0], states[1][:, :5]], heads[:2])
    with pytest.raises(ConfigError, match="give both states_val and heads_val"):
        P.fit_distance_probe(states, heads, states)
    bad = [states[0].copy()]
    bad[0][0, 0] = np.nan
    with pytest.raises(ConfigError, match=r"states\[0\] contains 1 NaN"):
        P.fit_distance_probe(bad, heads[:1])
    with pytest.raises(ConfigError, match="keep has 1 sentences but there are 2"):
        P.uuas([np.zeros((2, 2))] * 2, [[0, 1]] * 2, keep=[[True, True]])
