"""The biaffine parser head (Dozat & Manning 2017): shapes, masking, learning a planted toy
problem, decoding to trees."""

import numpy as np
import pytest
import torch

from layerscope.errors import ConfigError
from layerscope.parsing.biaffine import BiaffineParser
from layerscope.parsing.metrics import attachment_scores
from layerscope.parsing.mst import is_projective, is_tree


def _parser(h=12, labels=3, seed=0, **kw):
    torch.manual_seed(seed)
    return BiaffineParser(h, labels, arc_size=16, label_size=8, **kw)


def _batch(seed=0, b=3, w=6, h=12):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(b, w, h, generator=g)
    lengths = torch.tensor([w, w - 2, 2][:b])
    mask = torch.arange(w)[None, :] < lengths[:, None]
    return states, mask


def test_shapes_and_masked_scores():
    p = _parser().eval()
    with torch.no_grad():  # zero biaffine weights would make every arc score 0: randomise them
        p.arc_weight.normal_()
        p.label_weight.normal_()
    states, mask = _batch()
    s = p(states, mask)
    assert s.arc.shape == (3, 7, 7) and s.mask.shape == (3, 7)
    assert s.label_dep.shape == s.label_head.shape == (3, 7, 9)
    assert torch.isneginf(s.arc[1, :, 5:]).all()  # sentence 1 has 4 words: heads 5, 6 padded
    assert torch.isneginf(torch.diagonal(s.arc, dim1=1, dim2=2)).all()  # no self-loops
    assert torch.isfinite(s.arc[1, 1:5, :5][~torch.eye(5, dtype=bool)[1:]]).all()
    heads = torch.zeros(3, 6, dtype=torch.long)
    assert p.label_scores(s, heads).shape == (3, 6, 3)
    # a padded position's states change nothing for the real words
    changed = states.clone()
    changed[1, 4:] = 1e3 * torch.randn(2, 12)
    s2 = p(changed, mask)
    assert torch.equal(s.arc[1, :5, :5], s2.arc[1, :5, :5])
    assert torch.equal(p.label_scores(s, heads)[1, :4], p.label_scores(s2, heads)[1, :4])
    h, lab = p.decode(s)
    assert h.shape == lab.shape == (3, 6)
    assert h[1, 4:].tolist() == [-1, -1] and lab[1, 4:].tolist() == [-1, -1]
    assert h[2, 2:].tolist() == [-1] * 4
    for b, n in enumerate([6, 4, 2]):
        assert is_tree(h[b, :n]) and (h[b, :n] == 0).sum() == 1 and (h[b, :n] <= n).all()
    root_cls = p(states, mask, root_states=states[:, 0])  # e.g. the [CLS] state as ROOT
    assert not torch.equal(root_cls.arc, s.arc)


def _planted(seed=0, b=16, w=7, n_labels=3):
    """Random trees; each word's state holds one-hot codes of its own position, its head's
    position and its label (plus noise), so a biaffine scorer can learn to read the tree off."""
    g = np.random.default_rng(seed)
    heads = np.zeros((b, w), dtype=np.int64)
    for i in range(b):  # random single-root trees, non-projective ones included: in a random
        order = g.permutation(w) + 1  # order, the first word under ROOT, each next word under
        heads[i, order[0] - 1] = 0  # a word placed before it
        for k in range(1, w):
            heads[i, order[k] - 1] = order[g.integers(0, k)]
    labels = g.integers(0, n_labels, size=(b, w))
    eye = np.eye(w + 1)
    states = np.concatenate([eye[1:][None].repeat(b, 0), eye[heads], np.eye(n_labels)[labels]],
                            -1)
    states = states + 0.05 * g.normal(size=states.shape)
    return (torch.tensor(states, dtype=torch.float32), torch.ones(b, w, dtype=torch.bool),
            torch.tensor(heads), torch.tensor(labels))


def test_loss_falls_and_the_planted_trees_are_recovered():
    states, mask, heads, labels = _planted()
    assert not all(is_projective(t) for t in heads.numpy())  # MST, not Eisner, can get them
    p = _parser(h=states.shape[-1], dropout=0.0)
    opt = torch.optim.Adam(p.parameters(), lr=2e-2)
    losses = []
    for _ in range(80):
        opt.zero_grad()
        loss = p.loss(p(states, mask), heads, labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # zero biaffine weights: uniform over the 7 possible heads and the 3 labels at first
    assert losses[0] == pytest.approx(np.log(7) + np.log(3), abs=1e-5)
    assert losses[-1] < 0.1 * losses[0], losses[::10]
    p.eval()
    pred_h, pred_l = p.decode(p(states, mask))
    s = attachment_scores(list(pred_h), list(heads.numpy()), list(pred_l), list(labels.numpy()),
                          punctuation="none")
    assert s.uas == 100.0 and s.las == 100.0


def test_bad_inputs():
    p = _parser()
    states, mask = _batch()
    with pytest.raises(ConfigError, match="padding must come after"):
        p(states, torch.tensor([[True, False, True, False, False, False]] * 3))
    with pytest.raises(ConfigError, match="sentence 0 has no word"):
        p(states, torch.zeros(3, 6, dtype=torch.bool))
    with pytest.raises(ConfigError, match=r"states must be \[B, W, H\]"):
        p(states[0], mask[0])
    s = p(states, mask)
    heads = torch.zeros(3, 6, dtype=torch.long)
    bad = heads.clone()
    bad[2, 1] = 2  # word 2 of sentence 2 headed by itself
    with pytest.raises(ConfigError, match="gold head 2 of word 2"):
        p.loss(s, bad, torch.zeros(3, 6, dtype=torch.long))
    bad[2, 1] = 5  # beyond the sentence's 2 words
    with pytest.raises(ConfigError, match="gold head 5 of word 2"):
        p.loss(s, bad, torch.zeros(3, 6, dtype=torch.long))
    with pytest.raises(ConfigError, match="gold labels must be in 0..2"):
        p.loss(s, heads, torch.full((3, 6), 3))
    with pytest.raises(ConfigError, match="unknown tree decoding algorithm"):
        p.decode(s, algorithm="greedy")
