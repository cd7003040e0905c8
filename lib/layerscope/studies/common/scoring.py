"""A task's metric on many prediction rows at once, on all examples and on bootstrap resamples.

Truncation (one row per layer and line) and skipping (one row per span) score every row on the
same validation examples and on the same bootstrap resamples of them, so any difference of two
rows is a *paired* bootstrap (the verdict rule of ``studies.base`` reads its interval).

Metrics that are functions of sums over examples are computed for all rows and all resamples
with one matrix product: the resample weights W [1 + B, n] (row 0 all ones = the estimate,
row b the multiplicity of each example in resample b) times per-example statistics:

* accuracy = Σ correct / n;  mse = Σ (p - y)² / n  (n: the column's total weight);
* f1 (binary, positive class 1) = 2 TP / (2 TP + FP + FN), 0 when undefined (sklearn's
  ``zero_division=0``);
* mcc (sklearn's multi-class form, Gorodkin 2004) from Σ correct, per-class predicted and true
  counts: (c s - Σ p_k t_k) / sqrt((s² - Σ p_k²)(s² - Σ t_k²)), 0 when the denominator is 0;
* macro_f1 = mean over classes present in labels or predictions of 2 TP_k / (P_k + T_k).

Token tasks score many units (words, word pairs) per sentence, and the words of one sentence
are not independent draws: with ``groups`` (the sentence of each unit) a resample draws
*sentences* with replacement and takes every unit of each drawn sentence (the cluster
bootstrap, Davison & Hinkley 1997 §3.8), so the interval respects the dependence between words
of one sentence; the weight of a unit in resample b is the multiplicity of its sentence.

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
from .structured import RATIOS, STATS

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
    """One metric of prediction rows on n labelled units and B shared bootstrap resamples.

    Args:
        task: the task (its kind and number of classes).
        labels: [n] gold labels (class ids; regression: targets) of the units.
        n_boot: bootstrap resamples B (>= 2), drawn once (``seed``) and shared by every row.
        metric: a metric of the task, or None for ``metrics.headline_metric(task)`` (the task's
            primary metric; regression: MSE, the one its mean-predictor baseline has).
        groups: [n] the group (sentence) of each unit, ints in 0..n_groups-1, or None (every
            unit its own example). A resample then draws groups (see the module docstring).
        n_groups: how many groups (default ``groups.max() + 1``; a group may hold no unit).
        group_name, unit_name: how ``method`` names them ("sentences", "words").
    """

    def __init__(self, task: TaskSpec, labels: np.ndarray, *, n_boot: int = 200, seed: int = 0,
                 metric: str | None = None, groups: np.ndarray | None = None,
                 n_groups: int | None = None, group_name: str = "sentences",
                 unit_name: str = "units"):
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
        self.groups = None if groups is None else self._check_groups(groups, n_groups)
        self.n_groups = self.n if self.groups is None else (
            int(n_groups) if n_groups is not None else int(self.groups.max(initial=-1)) + 1)
        self.group_name, self.unit_name = group_name, unit_name
        self.idx = bootstrap_indices(self.n_groups, self.n_boot, seed)  # [B, n or n_groups]
        w = np.zeros((self.n_boot + 1, self.n))
        w[0] = 1.0
        for b, ix in enumerate(self.idx):
            counts = np.bincount(ix, minlength=self.n_groups)
            w[b + 1] = counts if self.groups is None else counts[self.groups]
        self.weights = w  # [1 + B, n]
        self.n_classes = max(task.num_labels, 2)
        self._members = None if self.groups is None else np.split(  # units of each group
            np.argsort(self.groups, kind="stable"),
            np.cumsum(np.bincount(self.groups, minlength=self.n_groups))[:-1])

    def _check_groups(self, groups, n_groups: int | None) -> np.ndarray:
        g = np.asarray(groups)
        top = n_groups if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
        if g.shape != (self.n,) or not np.issubdtype(g.dtype, np.integer) or (
                g.size and (g.min() < 0 or g.max() >= top)):
            raise ConfigError(f"groups: need [{self.n}] ints in 0..{top - 1} (the sentence of "
                              f"each unit), got {g.dtype} {list(g.shape)}")
        return g.astype(np.int64)

    def _resample(self, b: int) -> np.ndarray:
        """Unit indices of column b (0: all units; b >= 1: resample b - 1)."""
        if b == 0:
            return np.arange(self.n)
        ix = self.idx[b - 1]
        if self._members is None:
            return ix
        return np.concatenate([self._members[g] for g in ix])

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
                # each column's own total weight: a resample of sentences holds more or fewer
                # words than n (without groups every column sums to n)
                out[r] = _from_sums(self.metric, sums, self.weights.sum(1), self.n_classes)
            return out.mean(1)
        out = np.empty((p.shape[0], p.shape[1], self.n_boot + 1))
        every = [self._resample(b) for b in range(self.n_boot + 1)]
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
        over = (f"{self.n} examples" if self.groups is None else
                f"{self.n_groups} {self.group_name} ({self.n} {self.unit_name}; whole "
                f"{self.group_name} resampled)")
        return (f"{confidence:.0%} {'paired ' if paired else ''}bootstrap over {over}, "
                f"{self.n_boot} resamples")


class RatioScorer:
    """``Scorer``'s interface for the structured kinds (``structured``): a metric that is a
    ratio of sums of per-unit statistics, 100 Σ num / Σ den (QA: F1 and EM, one question per
    unit, den = 1; parsing: UAS and LAS, one sentence per unit, den = its scored words), on
    all units and on B shared bootstrap resamples of the units (questions or sentences), so
    a sentence's words are resampled together and differences of rows are paired.

    Args:
        task: the task; ``metric``: one of its metrics (None: its primary metric).
        n_units: questions or sentences; unit_name: "questions" / "sentences".
    """

    def __init__(self, task: TaskSpec, n_units: int, *, n_boot: int = 200, seed: int = 0,
                 metric: str | None = None, unit_name: str = "units"):
        self.metric = metric or task.primary_metric
        if self.metric not in task.metrics or self.metric not in RATIOS:
            raise ConfigError(f"metric {self.metric!r} is not one of task {task.name!r}'s "
                              f"metrics {task.metrics}")
        self.higher, self.sign = True, 1.0
        self.task, self.n, self.n_boot, self.unit_name = task, int(n_units), int(n_boot), \
            unit_name
        num, den = RATIOS[self.metric]
        names = STATS[task.kind]
        self.num, self.den = names.index(num), None if den is None else names.index(den)
        self.idx = bootstrap_indices(self.n, self.n_boot, seed)
        w = np.zeros((self.n_boot + 1, self.n))
        w[0] = 1.0
        for b, ix in enumerate(self.idx):
            w[b + 1] = np.bincount(ix, minlength=self.n)
        self.weights = w

    def table(self, stats) -> np.ndarray:
        """stats [R, S, n, q] (or [S, n, q], or [n, q]) -> [R, 1 + B]: the metric in percent
        on all units (column 0) and on each resample, the mean over the S seeds. A resample
        whose denominator is 0 (every drawn sentence is all punctuation) is NaN."""
        x = np.asarray(stats, dtype=np.float64)
        x = x.reshape((1,) * (4 - x.ndim) + x.shape) if x.ndim < 4 else x
        if x.shape[2] != self.n:
            raise ConfigError(f"statistics of {x.shape[2]} units for {self.n}")
        num = np.einsum("bn,rsn->rsb", self.weights, x[..., self.num])
        den = (self.weights.sum(1)[None, None] if self.den is None else
               np.einsum("bn,rsn->rsb", self.weights, x[..., self.den]))
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(den > 0, 100.0 * num / np.where(den > 0, den, 1), np.nan)
        return value.mean(1)

    def interval(self, column: np.ndarray, confidence: float = 0.95) -> tuple[float, float,
                                                                             float]:
        lo, hi = percentile_interval(column[1:], confidence)  # NaN resamples dropped
        return float(column[0]), lo, hi

    def method(self, confidence: float = 0.95, paired: bool = True) -> str:
        return (f"{confidence:.0%} {'paired ' if paired else ''}bootstrap over {self.n} "
                f"{self.unit_name}, {self.n_boot} resamples")
