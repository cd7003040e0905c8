"""A task's metric on many prediction rows at once, on all examples and on bootstrap resamples.

Truncation (one row per layer and line) and skipping (one row per span) score every row on the
same validation examples and on the same bootstrap resamples of them, so any difference of two
rows is a *paired* bootstrap (the verdict rule of ``studies.base`` reads its interval).

Metrics that are functions of sums over examples are computed for all rows and all resamples
with one matrix product: the resample weights W [1 + B, n] (row 0 all ones = the estimate,
row b the multiplicity of each example in resample b) times per-example statistics:

* accuracy = Σ correct / n;  mse = Σ (p - y)² / n;
* f1 (binary, positive class 1) = 2 TP / (2 TP + FP + FN), 0 when undefined (sklearn's
  ``zero_division=0``);
* mcc (sklearn's multi-class form, Gorodkin 2004) from Σ correct, per-class predicted and true
  counts: (c s - Σ p_k t_k) / sqrt((s² - Σ p_k²)(s² - Σ t_k²)), 0 when the denominator is 0;
* macro_f1 = mean over classes present in labels or predictions of 2 TP_k / (P_k + T_k).

Correlations (pearson, spearman) are computed resample by resample with ``metrics.compute``.
With several fine-tuning seeds a row holds one prediction per seed: its metric is the mean
over seeds of each seed's metric, on the same examples (the interval is over examples only).
Shapes: predictions [R, S, n] (R rows, S seeds, n examples; ``metrics.predictions_from_logits``
makes them from logits); labels [n].
"""

from __future__ import annotations

import numpy as np

from ... import metrics
from ...errors import ConfigError
from ...measures.intervals import bootstrap_indices, percentile_interval
from ...tasks import TaskSpec

SUM_METRICS = ("accuracy", "mse", "f1", "mcc", "macro_f1")


def _stats(metric: str, p: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-example statistics whose sums give ``metric``: p [..., n], y [n] -> [..., n, q]."""
    if metric == "accuracy":
        return (p == y)[..., None].astype(np.float64)
    if metric == "mse":
        return ((p - y) ** 2)[..., None].astype(np.float64)
    if metric == "f1":
        pos, true = p == 1, np.broadcast_to(y == 1, p.shape)
        return np.stack([pos & true, pos & ~true, ~pos & true], -1).astype(np.float64)
    classes = np.arange(n_classes)
    pk = (p[..., None] == classes).astype(np.float64)  # [..., n, C]
    tk = np.broadcast_to((y[:, None] == classes).astype(np.float64), pk.shape)
    if metric == "mcc":
        return np.concatenate([(p == y)[..., None].astype(np.float64), pk, tk], -1)
    return np.concatenate([pk * tk, pk, tk], -1)  # macro_f1


def _from_sums(metric: str, s: np.ndarray, n: np.ndarray, n_classes: int) -> np.ndarray:
    """Metric from summed statistics s [..., q] and total weights n (broadcastable)."""
    if metric in ("accuracy", "mse"):
        return s[..., 0] / n
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "f1":
            tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
            den = 2 * tp + fp + fn
            return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)
        C = n_classes
        if metric == "mcc":
            c, pk, tk = s[..., 0], s[..., 1:1 + C], s[..., 1 + C:]
            tot = np.broadcast_to(n, c.shape)
            num = c * tot - (pk * tk).sum(-1)
            den = np.sqrt((tot ** 2 - (pk ** 2).sum(-1)) * (tot ** 2 - (tk ** 2).sum(-1)))
            return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        tp, pk, tk = s[..., :C], s[..., C:2 * C], s[..., 2 * C:]
        present = (pk + tk) > 0
        f1 = np.where(present, 2 * tp / np.where(present, pk + tk, 1), 0.0)
        return f1.sum(-1) / np.maximum(present.sum(-1), 1)


class Scorer:
    """One metric of prediction rows on n labelled examples and B shared bootstrap resamples.

    Args:
        task: the task (its kind and number of classes).
        labels: [n] gold labels (class ids; regression: targets).
        n_boot: bootstrap resamples B (>= 2), drawn once (``seed``) and shared by every row.
        metric: a metric of the task, or None for ``metrics.headline_metric(task)`` (the task's
            primary metric; regression: MSE, the one its mean-predictor baseline has).
    """

    def __init__(self, task: TaskSpec, labels: np.ndarray, *, n_boot: int = 200, seed: int = 0,
                 metric: str | None = None):
        head, higher = metrics.headline_metric(task)
        self.metric = metric or head
        if self.metric not in (*task.metrics, "mse"):
            raise ConfigError(f"metric {self.metric!r} is not one of task {task.name!r}'s "
                              f"metrics {task.metrics}")
        self.higher = higher if metric in (None, head) else self.metric != "mse"
        self.sign = 1.0 if self.higher else -1.0
        self.task = task
        self.labels = np.asarray(labels)
        self.n = len(self.labels)
        self.n_boot = int(n_boot)
        self.idx = bootstrap_indices(self.n, self.n_boot, seed)  # [B, n]
        w = np.zeros((self.n_boot + 1, self.n))
        w[0] = 1.0
        for b, ix in enumerate(self.idx):
            w[b + 1] = np.bincount(ix, minlength=self.n)
        self.weights = w  # [1 + B, n]
        self.n_classes = max(task.num_labels, 2)

    def table(self, predictions) -> np.ndarray:
        """predictions [R, S, n] (or [S, n], or [n]) -> [R, 1 + B]: column 0 the metric on all
        examples, column b its value on resample b; each the mean over the S seeds."""
        p = np.asarray(predictions)
        p = p.reshape((1,) * (3 - p.ndim) + p.shape) if p.ndim < 3 else p
        if p.shape[-1] != self.n:
            raise ConfigError(f"{p.shape[-1]} predictions per row for {self.n} labels")
        if self.metric in SUM_METRICS:
            out = np.empty((p.shape[0], p.shape[1], self.n_boot + 1))
            for r in range(p.shape[0]):  # one row at a time bounds memory ([S, n, q])
                st = _stats(self.metric, p[r], self.labels, self.n_classes)
                sums = np.einsum("bn,snq->sbq", self.weights, st)
                out[r] = _from_sums(self.metric, sums, self.n, self.n_classes)
            return out.mean(1)
        out = np.empty((p.shape[0], p.shape[1], self.n_boot + 1))
        every = np.vstack([np.arange(self.n)[None], self.idx])
        for r in range(p.shape[0]):
            for s in range(p.shape[1]):
                for b, ix in enumerate(every):
                    out[r, s, b] = metrics.compute(self.task, p[r, s, ix],
                                                   self.labels[ix])[self.metric]
        return out.mean(1)

    def interval(self, column: np.ndarray, confidence: float = 0.95) -> tuple[float, float,
                                                                             float]:
        """(estimate, low, high) from one row of ``table`` (or of a difference of rows)."""
        lo, hi = percentile_interval(column[1:], confidence)
        return float(column[0]), lo, hi

    def method(self, confidence: float = 0.95, paired: bool = True) -> str:
        return (f"{confidence:.0%} {'paired ' if paired else ''}bootstrap over {self.n} "
                f"examples, {self.n_boot} resamples")
