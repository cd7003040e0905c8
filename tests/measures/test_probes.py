"""Batched MLP probes (Zhou & Srikumar 2022 §2.1) against scikit-learn's MLPClassifier."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from layerscope.errors import ConfigError, UndefinedError
from layerscope.measures.batched_mlp import ProbeConfig, fit_probes
from layerscope.measures.probes import (
    ZHOU_HIDDEN,
    ProbeScore,
    grid,
    linear_probe,
    probe_grid,
    select_and_restart,
)


def blobs(n, d=24, k=3, per_label=2, noise=1.0, seed=0):
    """Labels as unions of Gaussian blobs in a random 6-d subspace: not linearly trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.5, size=(k * per_label, 6))
    which = rng.integers(0, k * per_label, n)
    z = centres[which] + noise * rng.normal(size=(n, 6))
    x = z @ rng.normal(size=(6, d)) / np.sqrt(6) + 0.3 * rng.normal(size=(n, d))
    return x, which % k


def sk_params(m):
    return [w for pair in zip(m.coefs_, m.intercepts_, strict=True) for w in pair]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("k", [2, 4])
def test_one_configuration_is_sklearn_step_for_step(k):
    # shuffle=False on both sides: same init (RandomState(seed)), same batches, so any
    # difference in loss, L2 scaling, Adam or the stopping rule shows up in the weights.
    x, y = blobs(240, k=k)
    configs = [ProbeConfig((16, 8), 1e-4, 3), ProbeConfig((), 0.1, 1), ProbeConfig((12,), 1.0, 2)]
    fit = fit_probes(x, y, configs, max_iter=400, shuffle=False, learning_rate=1e-2,
                     dtype=torch.float64)
    for c, ours, n_iter, curve in zip(configs, fit.params, fit.n_iter, fit.loss_curves,
                                      strict=True):
        m = MLPClassifier(c.hidden, alpha=c.alpha, max_iter=400, shuffle=False,
                          learning_rate_init=1e-2, random_state=c.seed).fit(x, y)
        assert n_iter == m.n_iter_  # the tol / n_iter_no_change rule stops at the same epoch
        np.testing.assert_allclose(curve, m.loss_curve_, rtol=1e-9, atol=1e-12)
        for a, b in zip(ours, sk_params(m), strict=True):
            np.testing.assert_allclose(a.numpy(), b, rtol=1e-7, atol=1e-9)
    assert fit.converged.any()
    np.testing.assert_array_equal(fit.predict(x)[-1], m.predict(x))  # m: the last config


def test_same_validation_accuracy_as_sklearn_with_shuffling():
    x, y = blobs(1200, k=3, seed=1)
    xt, yt, xv, yv = x[:800], y[:800], x[800:], y[800:]
    ours = probe_grid(xt, yt, xv, yv, hidden=[(32, 32)], alphas=[1e-3], seed=0)
    theirs = [MLPClassifier((32, 32), alpha=1e-3, max_iter=1000, random_state=s)
              .fit(xt, yt).score(xv, yv) for s in (0, 1, 2)]
    restarts = select_and_restart(xt, yt, xv, yv, grid_result=ours, n_restarts=3)
    mean_ours = np.mean(restarts.val_accuracy)
    assert 0.6 < np.mean(theirs) < 0.97  # non-trivial task
    assert abs(mean_ours - np.mean(theirs)) < 0.03


def test_batching_changes_nothing():
    x, y = blobs(200, k=3, seed=2)
    configs = grid([(8, 8), (16, 4), (), (8,)], [1e-4, 1.0], [0, 1])
    kw = dict(max_iter=150, tol=1e-3, learning_rate=1e-2, dtype=torch.float64)
    together = fit_probes(x, y, configs, **kw)
    assert len(set(together.n_iter)) > 1  # configurations stop at different epochs (repacking)
    for i, c in enumerate(configs):
        alone = fit_probes(x, y, [c], **kw)
        assert alone.n_iter[0] == together.n_iter[i]
        for a, b in zip(alone.params[0], together.params[i], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_separable_reaches_one_and_shuffled_labels_chance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(800, 16)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    x[:, :2] += np.where(y[:, None] == 1, 0.5, -0.5)  # a margin
    cfg = dict(hidden=[(32, 32)], alphas=[1e-4], max_iter=200)
    sep = probe_grid(x[:400], y[:400], x[400:], y[400:], **cfg)
    assert sep.val_accuracy[0] == 1.0
    ys = rng.permutation(y)
    shuf = probe_grid(x[:400], ys[:400], x[400:], ys[400:], **cfg)
    assert abs(shuf.val_accuracy[0] - 0.5) < 0.1
    assert shuf.train_accuracy[0] > 0.9  # it memorises, but learns nothing that transfers


def test_restarts_and_linear_probe_are_deterministic():
    x, y = blobs(300, k=3, seed=4)
    kw = dict(hidden=[(16, 16), (32, 16)], alphas=[1e-3, 1e-1], n_restarts=3, max_iter=50)
    a = select_and_restart(x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:], **kw)
    b = select_and_restart(x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:], **kw)
    assert a.seeds == (1, 2, 3) and a.config.hidden == a.grid.best.hidden
    np.testing.assert_array_equal(a.val_accuracy, b.val_accuracy)
    np.testing.assert_array_equal(a.test_accuracy, b.test_accuracy)
    np.testing.assert_array_equal(a.grid.val_accuracy, b.grid.val_accuracy)
    assert len(a.grid.configs) == 4 and a.to_record()["n_restarts"] == 3
    lin = linear_probe(x[:200], y[:200], x[200:], y[200:], n_restarts=2, max_iter=50)
    assert lin.config.hidden == () and lin.to_record()["hidden"] == "linear"
    assert 0 < lin.baseline_val < 1 and len(ZHOU_HIDDEN) == 16
    score = a.test_score()  # named fields, and the [3] row results store, both ways
    assert (score.mean, score.std) == a.test_mean_std and score.majority == a.baseline_test
    assert ProbeScore.from_row(np.array(score.row())) == score
    assert a.val_score().majority == a.baseline_val
    assert np.isnan(ProbeScore.undefined().row()).all()


def test_bad_input_is_refused_with_the_reason():
    x, y = blobs(60, k=2)
    with pytest.raises(ConfigError, match="59 entries"):
        probe_grid(x, y[:59], x, y)
    with pytest.raises(ConfigError, match="1 distinct class"):
        probe_grid(x, np.zeros(60, int), x, y)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        probe_grid(bad, y, x, y)
    with pytest.raises(ConfigError, match="empty"):
        probe_grid(x, y, x, y, hidden=())
    with pytest.raises(ConfigError, match="empty"):
        fit_probes(x, y, [])
    with pytest.raises(ConfigError, match="features"):
        probe_grid(x, y, x[:, :5], y)
    with pytest.raises(UndefinedError, match="constant"):
        probe_grid(np.ones((60, 4)), y, x[:, :4], y)
    with pytest.raises(ConfigError, match="GiB"):
        fit_probes(x, y, grid(ZHOU_HIDDEN), max_memory_bytes=10_000)
    with pytest.raises(ConfigError, match="alpha"):
        fit_probes(x, y, [ProbeConfig((4,), -1.0)])
