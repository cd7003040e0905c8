"""Tests for layerscope.rsa (Merchant et al. 2020 RSA) against scipy."""

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from layerscope.measures import rsa as R
from layerscope.measures.cka import UndefinedCellsWarning

F64 = torch.float64


def _data(n=60, widths=(6, 20, 11), seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 5, generator=g, dtype=F64)
    out = []
    for w in widths:
        h = h + 0.8 * torch.randn(n, 5, generator=g, dtype=F64)
        out.append(h @ torch.randn(5, w, generator=g, dtype=F64)
                   + 0.3 * torch.randn(n, w, generator=g, dtype=F64))
    return out


@pytest.mark.parametrize("metric", R.DISSIMILARITIES)
def test_rdm_matches_scipy_pdist(metric):
    x = _data()[1]
    assert np.allclose(R.rdm(x, metric).numpy(), pdist(x.numpy(), metric), atol=1e-12)


def test_rsa_is_spearman_of_rdms():
    x, y, _ = _data()
    want = spearmanr(pdist(x.numpy(), "correlation"), pdist(y.numpy(), "correlation"))[0]
    assert R.rsa(x, y) == pytest.approx(want, abs=1e-12)


def test_identical_and_scaled_inputs_give_one():
    x, y, _ = _data()
    assert R.rsa(x, x) == pytest.approx(1.0, abs=1e-12)
    assert R.rsa(x, 3.0 * x, dissimilarity="cosine") == pytest.approx(1.0, abs=1e-12)
    assert R.rsa(x, y) == pytest.approx(R.rsa(0.2 * x, 50.0 * y), abs=1e-12)
    assert R.rsa(x, y) < 0.99


def test_unrelated_random_data_near_zero():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(150, 20, generator=g), torch.randn(150, 30, generator=g)
    assert abs(R.rsa(x, y)) < 0.05


def test_matrix_matches_pairs_and_subsampling():
    a, b = _data(), _data(widths=(9, 4), seed=2)
    m = R.rsa_matrix(a, b)
    assert m.shape == (3, 2) and m.dtype == F64
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            assert float(m[i, j]) == pytest.approx(R.rsa(x, y), abs=1e-12)
    s = R.rsa_matrix(a)
    assert torch.allclose(s, s.T) and torch.all(s.diagonal() == 1.0)
    sub = R.rsa_matrix(a, b, max_examples=25, seed=3)
    idx = torch.randperm(60, generator=torch.Generator().manual_seed(3))[:25].sort().values
    assert float(sub[2, 1]) == pytest.approx(R.rsa(a[2][idx], b[1][idx]), abs=1e-12)
    assert float(sub[2, 1]) == pytest.approx(R.rsa(a[2], b[1], max_examples=25, seed=3), abs=1e-12)
    same = R.rsa_matrix(torch.stack([a[0], a[0]]).numpy())
    assert torch.allclose(same, torch.ones(2, 2, dtype=F64))


def test_constant_layer_warn_raise_or_nan():
    """Default: NaN row/column and one warning naming the layer (as cka_matrix), the rest
    computed; "raise" is strict; "nan" is silent."""
    a = _data()
    a[0] = torch.arange(6.0, dtype=F64).repeat(60, 1)  # same vector for every example
    with pytest.raises(ValueError, match="layer 0 of a is constant across examples"):
        R.rsa_matrix(a, undefined="raise")
    with pytest.warns(UndefinedCellsWarning, match="RSA is undefined for layer 0 of a"):
        w = R.rsa_matrix(a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = R.rsa_matrix(a, undefined="nan")
    assert torch.isnan(m[0]).all() and torch.isnan(m[:, 0]).all()
    assert torch.allclose(m[1:, 1:], R.rsa_matrix(a[1:]))
    assert torch.equal(torch.isnan(w), torch.isnan(m)) and torch.equal(w[1:, 1:], m[1:, 1:])


def test_bad_inputs():
    x, y, _ = _data()
    bad = x.clone()
    bad[4, 2] = float("inf")
    with pytest.raises(ValueError, match="x contains 1 NaN/inf"):
        R.rsa(bad, y)
    with pytest.raises(ValueError, match="layer 1 of b contains 1 NaN/inf"):
        R.rsa_matrix([x], [y, bad])
    with pytest.raises(ValueError, match="x has 60 examples but y has 59"):
        R.rsa(x, y[:59])
    flat = x.clone()
    flat[3] = 2.0  # one example with all features equal: Pearson correlation undefined
    with pytest.raises(ValueError, match="example 3 of x has constant features"):
        R.rsa(flat, y)
    assert np.isfinite(R.rsa(flat, y, dissimilarity="cosine"))
    with pytest.raises(ValueError, match="example 0 of x is an all-zero vector"):
        R.rdm(torch.zeros(5, 3), dissimilarity="cosine")
    with pytest.raises(ValueError, match="unknown dissimilarity 'euclid'; valid values"):
        R.rsa(x, y, dissimilarity="euclid")
    with pytest.raises(ValueError, match="at least 3 examples"):
        R.rsa(x[:2], y[:2])
    with pytest.raises(ValueError, match=r"must be \[n, d\]"):
        R.rdm(torch.zeros(4))
    with pytest.raises(ValueError, match="max_examples must be an int >= 3"):
        R.rsa(x, y, max_examples=2)
    with pytest.raises(ValueError, match="y is constant across examples"):
        R.rsa(x, torch.ones(60, 3) * torch.tensor([1.0, 2.0, 3.0]))
