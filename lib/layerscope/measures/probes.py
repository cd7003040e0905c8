"""Probe classifiers on frozen representations (Zhou & Srikumar 2022, §2.1). No I/O.

The paper's protocol: a two-layer ReLU MLP probe (Adam, at most 1,000 iterations) with hidden
sizes from {32, 64, 128, 256} x {32, 64, 128, 256} and an L2 weight from a log grid, chosen by
grid search on validation accuracy; the best configuration is then trained five times with
different initialisations and reported as mean ± std. They used scikit-learn's MLPClassifier in
a loop; here the whole grid (and then the restarts) is one batched fit (``batched_mlp``), which
is scikit-learn's algorithm per configuration (tests compare the two).

Features are used as given (``standardize=False``), as in the paper and sklearn; pass
``standardize=True`` to centre and scale each feature on the training set.

Shapes: x_*: [n, d] (examples x features, e.g. one layer's CLS vectors); y_*: [n] class ids.
Restarts use seeds grid_seed + 1 ... grid_seed + n_restarts, so the reported mean is not the
grid winner's own (selected, hence optimistic) validation score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, UndefinedError
from ._inputs import as_labels, as_single, check_finite, is_constant
from .batched_mlp import ProbeConfig, ProbeFit, fit_probes

__all__ = ["ZHOU_HIDDEN", "ZHOU_ALPHAS", "ProbeConfig", "GridResult", "ProbeResult", "ProbeScore",
           "grid",
           "probe_grid", "select_and_restart", "linear_probe"]

SIZES = (32, 64, 128, 256)
ZHOU_HIDDEN = tuple((a, b) for a in SIZES for b in SIZES)  # §2.1: {32..256} x {32..256}
ZHOU_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1)  # log-spaced L2 weights (sklearn's default is 1e-4)


def grid(hidden=ZHOU_HIDDEN, alphas=ZHOU_ALPHAS, seeds=(0,)) -> tuple[ProbeConfig, ...]:
    """Every (hidden, alpha, seed) combination, hidden-major (the order results are listed)."""
    hidden, alphas, seeds = tuple(hidden), tuple(alphas), tuple(seeds)
    for what, v in (("hidden", hidden), ("alphas", alphas), ("seeds", seeds)):
        if not v:
            raise ConfigError(f"the probe grid is empty: {what} has no values")
    hs = [tuple(int(s) for s in (h if isinstance(h, (tuple, list)) else (h,))) for h in hidden]
    return tuple(ProbeConfig(h, float(a), int(s)) for h in hs for a in alphas for s in seeds)


def _data(x_train, y_train, x_eval: dict):
    """Checked train features/labels and evaluation sets {name: (x, y)}."""
    xt = as_single(x_train, "x_train")
    check_finite(xt, "x_train")
    yt = as_labels(y_train, xt.shape[0], "y_train", min_classes=2)
    if is_constant(xt):
        raise UndefinedError("x_train is constant across examples (e.g. the layer-0 CLS vector"
                             " of BERT-style models): every probe predicts one class there, so"
                             " probe accuracy is undefined; drop that layer")
    out = {}
    for name, (x, y) in x_eval.items():
        if x is None and y is None:
            continue
        if x is None or y is None:
            raise ConfigError(f"give both x_{name} and y_{name}, or neither")
        xe = as_single(x, f"x_{name}")
        if xe.shape[1] != xt.shape[1]:
            raise ConfigError(f"x_{name} has {xe.shape[1]} features but x_train has"
                              f" {xt.shape[1]}; use the same layer/pooling for both")
        check_finite(xe, f"x_{name}")
        out[name] = (xe, as_labels(y, xe.shape[0], f"y_{name}", min_classes=1))
    return xt, yt, out


@dataclass(frozen=True)
class GridResult:
    """Grid search: one entry per configuration ([C] arrays, in ``configs`` order)."""
    configs: tuple[ProbeConfig, ...]
    val_accuracy: np.ndarray
    train_accuracy: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    seconds: float

    @property
    def best_index(self) -> int:
        """Highest validation accuracy; ties go to the first in grid order (deterministic)."""
        return int(np.argmax(self.val_accuracy))

    @property
    def best(self) -> ProbeConfig:
        return self.configs[self.best_index]

    def records(self) -> list[dict]:
        """One flat dict per configuration (for a results table)."""
        return [{"hidden": "x".join(map(str, c.hidden)) or "linear", "alpha": c.alpha,
                 "seed": c.seed, "val_accuracy": float(v), "train_accuracy": float(t),
                 "n_iter": int(k), "converged": bool(ok)}
                for c, v, t, k, ok in zip(self.configs, self.val_accuracy, self.train_accuracy,
                                          self.n_iter, self.converged, strict=True)]


def probe_grid(x_train, y_train, x_val, y_val, *, hidden=ZHOU_HIDDEN, alphas=ZHOU_ALPHAS,
               seed: int = 0, **fit_options) -> GridResult:
    """Fit every (hidden, alpha) configuration at once; score each on (x_val, y_val).

    x_train: [n, d], y_train: [n], x_val: [m, d], y_val: [m]. ``fit_options`` go to
    ``batched_mlp.fit_probes`` (max_iter=1000, tol=1e-4, n_iter_no_change=10, batch_size,
    learning_rate=1e-3, standardize=False, dtype, shuffle_seed, ...).
    """
    xt, yt, ev = _data(x_train, y_train, {"val": (x_val, y_val)})
    if "val" not in ev:
        raise ConfigError("probe_grid needs validation data (x_val, y_val) to choose on")
    fit = fit_probes(xt, yt, grid(hidden, alphas, (seed,)), **fit_options)
    return GridResult(fit.configs, fit.accuracy(*ev["val"]), fit.accuracy(xt, yt), fit.n_iter,
                      fit.converged, fit.seconds)


@dataclass(frozen=True)
class ProbeScore:
    """A probe's accuracy on one evaluation set: ``mean`` and ``std`` over restarts (ddof=1;
    NaN with one restart, or all NaN where the probe is undefined) and ``majority``, the
    accuracy of always predicting the training set's majority class."""
    mean: float
    std: float
    majority: float

    FIELDS = ("mean", "std", "majority")  # the order of ``row()`` (a saved [.., 3] array)

    @classmethod
    def undefined(cls) -> ProbeScore:
        return cls(float("nan"), float("nan"), float("nan"))

    @classmethod
    def from_row(cls, row) -> ProbeScore:
        """From a [3] row (mean, std, majority), as results store them."""
        mean, std, majority = (float(v) for v in row)
        return cls(mean, std, majority)

    def row(self) -> tuple[float, float, float]:
        return (self.mean, self.std, self.majority)


@dataclass(frozen=True)
class ProbeResult:
    """The selected configuration retrained with several seeds ([R] arrays over restarts).

    ``baseline_*``: accuracy of always predicting the training set's majority class.
    Standard deviations are over restarts with ddof=1 (NaN with a single restart).
    """
    config: ProbeConfig
    seeds: tuple[int, ...]
    val_accuracy: np.ndarray
    test_accuracy: np.ndarray | None
    baseline_val: float
    baseline_test: float | None
    grid: GridResult
    seconds: float

    @staticmethod
    def _ms(a) -> tuple[float, float]:
        if a is None:
            return float("nan"), float("nan")
        return float(np.mean(a)), float(np.std(a, ddof=1)) if len(a) > 1 else float("nan")

    @property
    def val_mean_std(self) -> tuple[float, float]:
        return self._ms(self.val_accuracy)

    @property
    def test_mean_std(self) -> tuple[float, float]:
        """(mean, std) test accuracy; raises if no test set was given."""
        if self.test_accuracy is None:
            raise ConfigError("no test set was given (pass x_test, y_test)")
        return self._ms(self.test_accuracy)

    def val_score(self) -> ProbeScore:
        return ProbeScore(*self.val_mean_std, self.baseline_val)

    def test_score(self) -> ProbeScore:
        """Test accuracy over restarts and the majority baseline; raises if no test set."""
        return ProbeScore(*self.test_mean_std, self.baseline_test)

    def to_record(self) -> dict:
        """Flat scalars: the chosen configuration and the headline numbers."""
        vm, vs = self.val_mean_std
        rec = {"hidden": "x".join(map(str, self.config.hidden)) or "linear",
               "alpha": self.config.alpha, "n_restarts": len(self.seeds),
               "val_mean": vm, "val_std": vs, "baseline_val": self.baseline_val,
               "grid_best_val": float(self.grid.val_accuracy[self.grid.best_index])}
        if self.test_accuracy is not None:
            tm, ts = self.test_mean_std
            rec.update(test_mean=tm, test_std=ts, baseline_test=self.baseline_test)
        return rec


def select_and_restart(x_train, y_train, x_val, y_val, x_test=None, y_test=None, *,
                       hidden=ZHOU_HIDDEN, alphas=ZHOU_ALPHAS, n_restarts: int = 5,
                       seed: int = 0, grid_result: GridResult | None = None,
                       **fit_options) -> ProbeResult:
    """Grid search on validation accuracy (or reuse ``grid_result``), then the best
    configuration retrained with ``n_restarts`` new seeds in one batched fit (§2.1).

    x_*: [n_*, d], y_*: [n_*]. Returns validation (and test) accuracy per restart.
    """
    if not isinstance(n_restarts, (int, np.integer)) or n_restarts < 1:
        raise ConfigError(f"n_restarts must be an int >= 1; got {n_restarts!r}")
    xt, yt, ev = _data(x_train, y_train, {"val": (x_val, y_val), "test": (x_test, y_test)})
    if "val" not in ev:
        raise ConfigError("select_and_restart needs validation data (x_val, y_val)")
    g = grid_result or probe_grid(xt, yt, *ev["val"], hidden=hidden, alphas=alphas, seed=seed,
                                  **fit_options)
    best = g.best
    seeds = tuple(best.seed + 1 + r for r in range(n_restarts))
    fit: ProbeFit = fit_probes(xt, yt, [ProbeConfig(best.hidden, best.alpha, s) for s in seeds],
                               **fit_options)
    values, counts = np.unique(yt, return_counts=True)
    major = values[np.argmax(counts)]

    def base(name):
        return float(np.mean(ev[name][1] == major)) if name in ev else None

    test = fit.accuracy(*ev["test"]) if "test" in ev else None
    return ProbeResult(ProbeConfig(best.hidden, best.alpha, seeds[0]), seeds,
                       fit.accuracy(*ev["val"]), test, base("val"), base("test"), g,
                       g.seconds + fit.seconds)


def linear_probe(x_train, y_train, x_val, y_val, x_test=None, y_test=None, *,
                 alphas=ZHOU_ALPHAS, n_restarts: int = 5, **fit_options) -> ProbeResult:
    """The same protocol with no hidden layer: softmax (or logistic) regression, alpha on the
    validation set, then restarts. x_*: [n_*, d], y_*: [n_*]."""
    return select_and_restart(x_train, y_train, x_val, y_val, x_test, y_test, hidden=((),),
                              alphas=alphas, n_restarts=n_restarts, **fit_options)
