"""Tree decoders against brute-force enumeration of every tree (n <= 5 words)."""

import itertools

import numpy as np
import pytest

from layerscope.errors import ConfigError
from layerscope.parsing import mst as M


def _all_trees(n):
    """Every dependency tree over n words (heads in 0..n, no self-loop, no cycle)."""
    choices = [[h for h in range(n + 1) if h != d] for d in range(1, n + 1)]
    return [np.array(h) for h in itertools.product(*choices) if M.is_tree(np.array(h))]


TREES = {n: _all_trees(n) for n in range(1, 6)}


def test_tree_counts_are_cayleys():
    """Trees on n + 1 labelled nodes rooted at 0: (n + 1)^(n - 1) (Cayley's formula)."""
    assert [len(TREES[n]) for n in range(1, 6)] == [(n + 1) ** (n - 1) for n in range(1, 6)]


def _best(scores, trees):
    return max(trees, key=lambda h: M.tree_score(scores, h))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("single_root", [False, True])
def test_decoders_match_brute_force(n, single_root):
    g = np.random.default_rng(10 * n + single_root)
    trees = [h for h in TREES[n] if not single_root or (h == 0).sum() == 1]
    projective = [h for h in trees if M.is_projective(h)]
    for _ in range(40):
        s = g.normal(size=(n + 1, n + 1)) * g.choice([0.1, 1.0, 10.0])
        s[:, 0] += g.normal() * 2  # root arcs sometimes much better: the root constraint bites
        for fn, pool in ((M.chu_liu_edmonds, trees), (M.eisner, projective)):
            got, want = fn(s, single_root=single_root), _best(s, pool)
            assert M.is_tree(got)
            assert not single_root or (got == 0).sum() == 1
            assert M.tree_score(s, got) == M.tree_score(s, want), (fn.__name__, s, got, want)
            assert np.array_equal(got, want)


def test_eisner_output_is_projective_and_mst_takes_non_projective_trees():
    planted = np.array([3, 0, 2, 2])  # arc 3 -> 1 spans word 2, which heads word 3: crossing
    assert M.is_tree(planted) and not M.is_projective(planted)
    g = np.random.default_rng(0)
    s = g.uniform(0, 0.1, size=(5, 5))
    s[np.arange(1, 5), planted] += 10.0
    assert np.array_equal(M.chu_liu_edmonds(s), planted)
    assert np.array_equal(M.chu_liu_edmonds(s, single_root=True), planted)
    e = M.eisner(s)
    assert M.is_projective(e) and not np.array_equal(e, planted)
    assert M.tree_score(s, e) < M.tree_score(s, planted)
    assert M.tree_score(s, e) == max(M.tree_score(s, h) for h in TREES[4] if M.is_projective(h))


def test_a_row_constant_changes_no_decision():
    """log-softmax over heads shifts each dependent's row by a constant: same trees."""
    g = np.random.default_rng(1)
    s = g.normal(size=(7, 7))
    shifted = s + g.normal(size=(7, 1)) * 5
    for fn in (M.chu_liu_edmonds, M.eisner):
        for single_root in (False, True):
            assert np.array_equal(fn(s, single_root=single_root),
                                  fn(shifted, single_root=single_root))


def test_longer_sentences_give_trees_and_mst_beats_eisner():
    g = np.random.default_rng(2)
    for n in (12, 40):
        s = g.normal(size=(n + 1, n + 1))
        h = M.chu_liu_edmonds(s, single_root=True)
        p = M.eisner(s, single_root=True)
        assert M.is_tree(h) and (h == 0).sum() == 1
        assert M.is_tree(p) and M.is_projective(p) and (p == 0).sum() == 1
        assert M.tree_score(s, h) >= M.tree_score(s, p)
        assert M.tree_score(s, M.chu_liu_edmonds(s)) >= M.tree_score(s, h)


def test_batch_decode_pads_with_minus_one_and_ignores_padding_scores():
    g = np.random.default_rng(3)
    s = g.normal(size=(2, 6, 6))
    s[1, 4:, :] = np.nan  # sentence 1 has 3 words: its padding is never read
    s[1, :, 4:] = np.inf
    out = M.decode(s, [5, 3], algorithm="mst")
    assert out.shape == (2, 5) and out[1, 3:].tolist() == [-1, -1]
    assert np.array_equal(out[1, :3], M.chu_liu_edmonds(s[1, :4, :4], single_root=True))
    assert np.array_equal(M.decode(s, [5, 3], algorithm="eisner")[0],
                          M.eisner(s[0], single_root=True))


def test_checks():
    assert not M.is_tree([2, 1]) and not M.is_tree([1]) and not M.is_tree([0, 5])
    with pytest.raises(ConfigError, match="word 1 is on a cycle"):
        M.check_heads([2, 1, 0])
    with pytest.raises(ConfigError, match="word 2 has head 7, outside 0..3"):
        M.check_heads([0, 7, 1])
    with pytest.raises(ConfigError, match="word 1 is its own head"):
        M.check_heads([1, 0])
    s = np.zeros((3, 3))
    s[2, 1] = np.nan
    with pytest.raises(ConfigError, match=r"arc score \[2, 1\] is nan"):
        M.chu_liu_edmonds(s)
    with pytest.raises(ConfigError, match="square"):
        M.eisner(np.zeros((3, 4)))
    with pytest.raises(ConfigError, match="unknown tree decoding algorithm 'cky'"):
        M.decode(np.zeros((1, 3, 3)), [2], algorithm="cky")
    with pytest.raises(ConfigError, match="lengths must be in 1..2"):
        M.decode(np.zeros((1, 3, 3)), [3])
