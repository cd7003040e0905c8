"""Tests for layerscope.cka against textbook float64 references written out here."""

import numpy as np
import pytest
import torch

from layerscope.measures import _cka_engine as E
from layerscope.measures import cka as C
from layerscope.measures import cka_stats as S

F64 = torch.float64


# ----------------------------------------------------------------------------- references
def _hsic_biased_ref(k, l):
    """Gretton et al. 2005: tr(K H L H) / (n-1)^2 with the explicit centring matrix."""
    n = k.shape[0]
    h = torch.eye(n, dtype=F64) - torch.full((n, n), 1.0 / n, dtype=F64)
    return torch.trace(k @ h @ l @ h) / (n - 1) ** 2


def _hsic_unbiased_ref(k, l):
    """Song et al. 2012 (JMLR) eq. 5, written literally with n x n matrices."""
    n = k.shape[0]
    kt, lt = k.clone(), l.clone()
    kt.fill_diagonal_(0.0)
    lt.fill_diagonal_(0.0)
    one = torch.ones(n, dtype=F64)
    return (torch.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)) / (n * (n - 3))


def _cka_ref(x, y, debiased=False):
    x, y = torch.as_tensor(x).to(F64), torch.as_tensor(y).to(F64)
    k, l = x @ x.T, y @ y.T
    h = _hsic_unbiased_ref if debiased else _hsic_biased_ref
    return float(h(k, l) / torch.sqrt(h(k, k) * h(l, l)))


def _matrix_ref(a, b, debiased=False):
    return torch.tensor([[_cka_ref(x, y, debiased) for y in b] for x in a], dtype=F64)


def _data(n=40, widths=(5, 17, 40), seed=0, dtype=F64, offset=0.0):
    """Correlated layers of different widths (a random walk through random projections)."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 8, generator=g, dtype=F64)
    out = []
    for w in widths:
        h = h + 0.7 * torch.randn(n, 8, generator=g, dtype=F64)
        x = h @ torch.randn(8, w, generator=g, dtype=F64) + 0.5 * torch.randn(n, w, generator=g,
                                                                             dtype=F64)
        out.append((x + offset).to(dtype))
    return out


# ----------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_is_one(debiased):
    x = _data()[1]
    assert C.linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-12)
    assert C.cka(C.gram_linear(x), C.gram_linear(x), debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_symmetric(debiased):
    x, y, _ = _data()
    assert C.linear_cka(x, y, debiased) == pytest.approx(C.linear_cka(y, x, debiased), abs=1e-12)
    m = C.cka_matrix(_data(), debiased=debiased)
    assert torch.allclose(m, m.T, atol=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_and_isotropic_scaling(debiased):
    x, y, _ = _data()
    q, _ = torch.linalg.qr(torch.randn(y.shape[1], y.shape[1], dtype=F64,
                                       generator=torch.Generator().manual_seed(3)))
    base = C.linear_cka(x, y, debiased)
    assert C.linear_cka(x, 7.5 * y @ q, debiased) == pytest.approx(base, abs=1e-10)
    assert C.linear_cka(0.01 * x, y + 3.0, debiased) == pytest.approx(base, abs=1e-10)


def test_not_invariant_to_general_linear_map():
    x, y, _ = _data()
    a = torch.diag(torch.logspace(-2, 2, y.shape[1], dtype=F64))  # invertible, not orthogonal
    assert abs(C.linear_cka(x, y @ a) - C.linear_cka(x, y)) > 0.05


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize("debiased", [False, True])
def test_feature_form_matches_textbook(debiased):
    x, y, _ = _data(n=30)
    assert C.linear_cka(x, y, debiased) == pytest.approx(_cka_ref(x, y, debiased), abs=1e-10)
    assert C.cka(C.gram_linear(x), C.gram_linear(y), debiased) == pytest.approx(
        _cka_ref(x, y, debiased), abs=1e-10)


def test_unbiased_centring_is_song_hsic():
    """<K_U, L_U> / (n(n-3)) (Szekely & Rizzo 2014) equals Song et al.'s unbiased HSIC."""
    x, y, _ = _data(n=25)
    k, l = C.gram_linear(x), C.gram_rbf(y)
    ku, lu = C.center_gram(k, unbiased=True), C.center_gram(l, unbiased=True)
    n = k.shape[0]
    assert float((ku * lu).sum() / (n * (n - 3))) == pytest.approx(
        float(_hsic_unbiased_ref(k, l)), rel=1e-10)
    kc = C.center_gram(k)
    assert float((kc * C.center_gram(l)).sum()) / (n - 1) ** 2 == pytest.approx(
        float(_hsic_biased_ref(k, l)), rel=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_gram_and_feature_forms_agree_float32(debiased):
    x, y, _ = _data(n=200, dtype=torch.float32, offset=5.0)
    ref = _cka_ref(x, y, debiased)
    assert C.linear_cka(x, y, debiased) == pytest.approx(ref, abs=1e-6)
    assert C.cka(C.gram_linear(x), C.gram_linear(y), debiased) == pytest.approx(ref, abs=1e-6)
    for method in ("gram", "feature"):  # float32 compute
        got = float(C.cka_matrix([x], [y], method=method, debiased=debiased)[0, 0])
        assert got == pytest.approx(ref, abs=1e-6), method


def test_debiased_float32_accurate_when_n_much_smaller_than_d():
    """n << d: the Gram diagonal dominates <K, L> and the U-statistic removes it again; the
    Gram path keeps the diagonal out of the float32 sums, so no catastrophic cancellation."""
    g = torch.Generator().manual_seed(0)
    offset = 10.0 * (0.5 + torch.rand(768, generator=g))
    h, layers = torch.randn(40, 768, generator=g), []
    for _ in range(3):
        h = 0.9 * h + 0.45 * torch.randn(40, 768, generator=g)
        layers.append(h * (0.5 + torch.rand(768, generator=g)) + offset)
    ref = _matrix_ref([x.double() for x in layers], [x.double() for x in layers], True)
    got = C.cka_matrix(layers, method="gram", debiased=True)
    assert torch.allclose(got, ref, atol=5e-7, rtol=0)  # was 2e-6 with the diagonal kept in


# ----------------------------------------------------------------------------- cka_matrix
@pytest.mark.parametrize("method", ["gram", "feature", "auto"])
@pytest.mark.parametrize("debiased", [False, True])
def test_matrix_matches_per_pair_reference(method, debiased):
    a = _data(n=37, widths=(5, 17, 40))
    b = _data(n=37, widths=(8, 30), seed=1)
    self_m = C.cka_matrix(a, method=method, debiased=debiased)
    cross = C.cka_matrix(a, b, method=method, debiased=debiased)
    assert self_m.dtype == F64 and self_m.shape == (3, 3) and cross.shape == (3, 2)
    assert torch.allclose(self_m, _matrix_ref(a, a, debiased), atol=1e-10, rtol=0)
    assert torch.allclose(cross, _matrix_ref(a, b, debiased), atol=1e-10, rtol=0)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("chunk", [5, 16, 300])
def test_streamed_gram_tiles_agree(debiased, chunk):
    a = _data(n=53, widths=(6, 6, 30, 11), dtype=torch.float32)
    b = _data(n=53, widths=(9, 4), seed=5, dtype=torch.float32)
    ref_self, ref_cross = _matrix_ref(a, a, debiased), _matrix_ref(a, b, debiased)
    got = C.cka_matrix(a, method="gram", chunk_size=chunk, debiased=debiased)
    assert torch.allclose(got, ref_self, atol=1e-6, rtol=0)
    got = C.cka_matrix(a, b, method="gram", chunk_size=chunk, debiased=debiased)
    assert torch.allclose(got, ref_cross, atol=1e-6, rtol=0)


@pytest.mark.parametrize("debiased", [False, True])
def test_chunked_accumulation_paths_agree(debiased, monkeypatch):
    """Row-chunked float64 accumulation (feature form, large n) and chunked inner products."""
    a = _data(n=101, widths=(7, 7, 12), dtype=torch.float32)
    b = _data(n=101, widths=(5,), seed=9, dtype=torch.float32)
    ref_self, ref_cross = _matrix_ref(a, a, debiased), _matrix_ref(a, b, debiased)
    monkeypatch.setattr(E, "_FEATURE_ROWS", 16)
    monkeypatch.setattr(E, "_INNER_CHUNK", 64)
    monkeypatch.setattr(E, "_PANEL_COLS", 24)
    for method in ("feature", "gram"):
        got = C.cka_matrix(a, method=method, debiased=debiased, chunk_size=10)
        assert torch.allclose(got, ref_self, atol=1e-6, rtol=0), method
        got = C.cka_matrix(a, b, method=method, debiased=debiased, chunk_size=10)
        assert torch.allclose(got, ref_cross, atol=1e-6, rtol=0), method


@pytest.mark.parametrize("debiased", [False, True])
def test_methods_agree_on_stacked_tensor_and_numpy(debiased):
    a = torch.stack(_data(n=120, widths=(24,) * 5, dtype=torch.float32, offset=3.0))
    outs = [C.cka_matrix(a, method=m, debiased=debiased) for m in C.METHODS]
    outs.append(C.cka_matrix(a.numpy(), debiased=debiased))
    for o in outs[1:]:
        assert torch.allclose(o, outs[0], atol=1e-6, rtol=0)


def test_uncentred_bert_like_float32_is_accurate():
    """Offset ~10x the spread (like BERT hidden states): centring first keeps 1e-6 accuracy."""
    g = torch.Generator().manual_seed(0)
    n, d = 2000, 48
    offset = 10.0 * (1.0 + torch.rand(d, generator=g, dtype=F64))
    h, layers = torch.randn(n, d, generator=g, dtype=F64), []
    for _ in range(4):
        h = 0.8 * h + 0.6 * torch.randn(n, d, generator=g, dtype=F64)
        layers.append((h + offset).float())
    z = [x.double() - x.double().mean(0) for x in layers]  # float64 reference, same floats
    p = torch.tensor([[float(torch.linalg.matrix_norm(u.T @ v)) ** 2 for v in z] for u in z],
                     dtype=F64)
    ref = p / torch.sqrt(torch.outer(p.diagonal(), p.diagonal()))
    for method in ("gram", "feature"):
        got = C.cka_matrix(layers, method=method)
        assert torch.allclose(got, ref, atol=1e-6, rtol=0), method


# ----------------------------------------------------------------------------- estimators
def test_debiased_can_be_negative_and_is_not_clamped():
    g = torch.Generator().manual_seed(0)
    vals = [C.linear_cka(torch.randn(10, 50, generator=g), torch.randn(10, 50, generator=g),
                         debiased=True) for _ in range(20)]
    assert min(vals) < 0
    x, y = torch.randn(10, 50, generator=g), torch.randn(10, 50, generator=g)
    assert C.linear_cka(x, y) > 0.3  # the biased estimator is inflated at small n, high d
    neg = next(i for i, v in enumerate(vals) if v < 0)
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(10, 50, generator=g), torch.randn(10, 50, generator=g))
             for _ in range(neg + 1)]
    m = C.cka_matrix([pairs[neg][0]], [pairs[neg][1]], debiased=True)
    assert float(m[0, 0]) == pytest.approx(vals[neg], abs=1e-6) and float(m[0, 0]) < 0


def test_minibatch_cka_approaches_full_data_as_batches_grow():
    x, y, _ = _data(n=512, widths=(10, 30, 20), seed=2)
    full = C.linear_cka(x, y, debiased=True)
    errs = [np.mean([abs(S.minibatch_cka(x, y, bs, seed=s) - full) for s in range(5)])
            for bs in (8, 32, 128)]
    assert errs[0] > errs[1] > errs[2]
    assert S.minibatch_cka(x, y, 512) == pytest.approx(full, abs=1e-10)


def test_minibatch_accumulator_stacks_and_small_batches():
    a, b = _data(n=64, widths=(5, 9)), _data(n=64, widths=(7,), seed=4)
    acc = S.MinibatchCKA()
    for s in range(0, 64, 16):
        acc.update([x[s:s + 16] for x in a], [y[s:s + 16] for y in b])
    m = acc.compute()
    assert m.shape == (2, 1) and acc.n_batches == 4 and acc.n_examples == 64
    one = S.MinibatchCKA()
    for s in range(0, 64, 16):
        one.update(a[1][s:s + 16], b[0][s:s + 16])
    assert one.compute() == pytest.approx(float(m[1, 0]), abs=1e-10)
    with pytest.raises(ValueError, match="needs >= 4 examples per batch"):
        one.update(a[1][:3], b[0][:3])
    with pytest.raises(ValueError, match="call update"):
        S.MinibatchCKA().compute()
    assert isinstance(S.minibatch_cka(a[0][:63], b[0][:63], 20), float)  # remainder 3 merged


def test_rbf_kernel():
    x, y, _ = _data(n=60)
    assert C.rbf_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert C.rbf_cka(x, y, threshold=1e3) == pytest.approx(C.linear_cka(x, y), abs=1e-4)
    assert abs(C.rbf_cka(x, y, threshold=0.5) - C.linear_cka(x, y)) > 1e-3
    a = _data(n=60)
    m = C.cka_matrix(a, kernel="rbf", debiased=True, threshold=0.8)
    assert float(m[0, 2]) == pytest.approx(C.rbf_cka(a[0], a[2], 0.8, debiased=True), abs=1e-12)
    assert float(m[0, 2]) == pytest.approx(C.cka(C.gram_rbf(a[0], 0.8), C.gram_rbf(a[2], 0.8),
                                                 debiased=True), abs=1e-12)


def test_permutation_baseline():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 30, generator=g), torch.randn(40, 20, generator=g)
    deb = S.permutation_cka(x, y, n_perm=200, debiased=True)
    bia = S.permutation_cka(x, y, n_perm=50)
    assert deb.shape == (200,) and abs(float(deb.mean())) < 0.01
    assert float(bia.mean()) > 0.2  # what "no similarity" looks like for biased CKA at n=40
    # the feature path (large n) gives the same values for the same permutations
    ref = S.permutation_cka(x, y, n_perm=5, debiased=True)
    old, S._BOOT_GRAM_MAX_N = S._BOOT_GRAM_MAX_N, 0
    try:
        assert torch.allclose(S.permutation_cka(x, y, n_perm=5, debiased=True), ref, atol=1e-6)
    finally:
        S._BOOT_GRAM_MAX_N = old


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("gram_path", [True, False])
def test_bootstrap_replicates_equal_explicit_resamples(debiased, gram_path, monkeypatch):
    x, y, _ = _data(n=30, seed=7)
    xc, yc = S._centred64(x, y)
    idx = torch.randint(0, 30, (3, 30), generator=torch.Generator().manual_seed(0))
    w = torch.zeros(3, 30, dtype=F64).scatter_add_(1, idx, torch.ones(3, 30, dtype=F64))
    monkeypatch.setattr(S, "_BOOT_GRAM_MAX_N", 10**9 if gram_path else 0)
    got = S._bootstrap_replicates(xc, yc, w, debiased)
    want = [C.linear_cka(x[i], y[i], debiased) for i in idx]  # duplicates kept as positions
    assert torch.allclose(got, torch.tensor(want, dtype=F64), atol=1e-6)


def test_bootstrap_interval():
    x, y, _ = _data(n=200, seed=3)
    for debiased in (False, True):
        est, lo, hi = S.bootstrap_cka(x, y, n_boot=100, debiased=debiased)
        assert est == pytest.approx(C.linear_cka(x, y, debiased))
        assert lo < est < hi and hi - lo < 0.3
    # the width tracks real sampling variability: independent datasets of the same size
    spread = np.std([C.linear_cka(*_data(n=200, seed=s)[:2]) for s in range(100, 130)])
    _, lo, hi = S.bootstrap_cka(*_data(n=200, seed=100)[:2], n_boot=200)
    assert 0.4 < (hi - lo) / (2 * 1.96 * spread) < 2.5


# ----------------------------------------------------------------------------- undefined layers
def _with_constant_layer0(n=30, widths=(6, 12, 9), seed=0):
    a = _data(n=n, widths=widths, seed=seed)
    a[0] = torch.ones(n, widths[0], dtype=F64) * torch.arange(widths[0], dtype=F64)  # same row
    return a


def test_constant_layer_nan_and_strict_raise():
    a = _with_constant_layer0()
    assert C.constant_layers(a) == [0]
    with pytest.raises(ValueError, match="layer 0 of a is constant across examples"):
        C.cka_matrix(a, undefined="raise")
    for method in ("gram", "feature"):
        for debiased in (False, True):
            m = C.cka_matrix(a, undefined="nan", method=method, debiased=debiased)
            assert torch.isnan(m[0]).all() and torch.isnan(m[:, 0]).all()
            assert torch.allclose(m[1:, 1:], _matrix_ref(a[1:], a[1:], debiased), atol=1e-10)
            c = C.cka_matrix(a[1:], a, undefined="nan", method=method, debiased=debiased)
            assert torch.isnan(c[:, 0]).all() and not torch.isnan(c[:, 1:]).any()
    m = C.cka_matrix(a, kernel="rbf", undefined="nan")
    assert torch.isnan(m[0]).all() and not torch.isnan(m[1:, 1:]).any()


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_default_gives_nan_cells_and_a_warning_naming_the_layers(kernel):
    """The public call works on every layer of a real model, whose layer-0 CLS is constant:
    NaN where undefined, the rest as with undefined="nan", and the reason in a warning."""
    a = _with_constant_layer0()
    with pytest.warns(C.UndefinedCellsWarning) as rec:
        m = C.cka_matrix(a, kernel=kernel)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "layer 0 of a:" in msg and "constant across examples" in msg and " of b" not in msg
    assert rec[0].filename == __file__  # points at the caller's line, not at layerscope
    assert torch.equal(torch.isnan(m), torch.isnan(C.cka_matrix(a, kernel=kernel,
                                                               undefined="nan")))
    assert torch.allclose(m[1:, 1:], C.cka_matrix(a[1:], kernel=kernel), atol=1e-12)
    # two models, each with its own constant layers: both are named, by model
    b = _with_constant_layer0(widths=(4, 7, 5, 8), seed=1)
    b[2] = torch.full_like(b[2], 3.0)
    with pytest.warns(C.UndefinedCellsWarning, match=r"layer 0 of a and layers 0, 2 of b:"):
        c = C.cka_matrix(a, b, kernel=kernel)
    assert c.shape == (3, 4) and torch.isnan(c[0]).all() and torch.isnan(c[:, [0, 2]]).all()
    assert not torch.isnan(c[1:][:, [1, 3]]).any()


def test_all_cells_undefined_still_names_the_right_model():
    """Every cell is NaN when one model's layers are all constant: the warning must not blame
    the other model."""
    a = _data(n=20)
    b = [torch.ones(20, 3, dtype=F64), torch.full((20, 5), 2.0, dtype=F64)]
    with pytest.warns(C.UndefinedCellsWarning, match=r"CKA is undefined for layers 0, 1 of b:"):
        m = C.cka_matrix(a, b)
    assert torch.isnan(m).all()


def test_no_warning_when_defined_or_when_silenced():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C.cka_matrix(_data())  # no constant layer: no warning
        C.cka_matrix(_with_constant_layer0(), undefined="nan")
    with pytest.raises(ValueError, match="unknown undefined 'skip'; valid values: 'warn', 'raise',"
                                         " 'nan'"):
        C.cka_matrix(_data(), undefined="skip")


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_informative_errors():
    a = _data(n=20)
    nan_a = [x.clone() for x in a]
    nan_a[2][3, 1] = float("nan")
    with pytest.raises(ValueError, match="layer 2 of a contains 1 NaN/inf"):
        C.cka_matrix(nan_a)
    with pytest.raises(ValueError, match="x contains 1 NaN/inf"):
        C.linear_cka(nan_a[2], a[0])
    with pytest.raises(ValueError, match="a has 20 examples but b has 19"):
        C.cka_matrix(a, [x[:19] for x in a])
    with pytest.raises(ValueError, match="layer 1 of a has 19 examples but layer 0 has 20"):
        C.cka_matrix([a[0], a[1][:19]])
    with pytest.raises(ValueError, match="needs n >= 4 examples; got n=3"):
        C.cka_matrix([x[:3] for x in a], debiased=True)
    with pytest.raises(ValueError, match="needs n >= 4"):
        C.linear_cka(a[0][:3], a[1][:3], debiased=True)
    with pytest.raises(ValueError, match="at least 2 examples; got n=1"):
        C.linear_cka(a[0][:1], a[1][:1])
    with pytest.raises(ValueError, match=r"a must be a stack of layers \[L, n, d\]"):
        C.cka_matrix(a[0])
    with pytest.raises(ValueError, match=r"x must be \[n, d\]"):
        C.linear_cka(torch.stack([a[0], a[0]]), a[0])
    with pytest.raises(ValueError, match=r"unknown kernel 'cosine'; valid values: 'linear', 'rbf'"):
        C.cka_matrix(a, kernel="cosine")
    with pytest.raises(ValueError, match="unknown method 'fast'; valid values: 'auto'"):
        C.cka_matrix(a, method="fast")
    with pytest.raises(ValueError, match="unknown undefined 'zero'"):
        C.cka_matrix(a, undefined="zero")
    with pytest.raises(ValueError, match="only for kernel='linear'"):
        C.cka_matrix(a, kernel="rbf", method="feature")
    const = torch.ones(20, 4)
    with pytest.raises(ValueError, match="y is constant across examples"):
        C.linear_cka(a[0], const)
    with pytest.raises(ValueError, match="gram_y is constant after centring"):
        C.cka(C.gram_linear(a[0]), C.gram_linear(const))
    with pytest.raises(ValueError, match="median pairwise distance is 0"):
        C.gram_rbf(const)
    with pytest.raises(ValueError, match="chunk_size must be a positive"):
        C.cka_matrix(a, method="gram", chunk_size=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 4"):
        S.minibatch_cka(a[0], a[1], 2)
    with pytest.raises(ValueError, match="confidence must be in"):
        S.bootstrap_cka(a[0], a[1], confidence=95)
    with pytest.raises(ValueError, match="gram must be symmetric"):
        C.center_gram(torch.randn(5, 5))
