"""Task metrics from scikit-learn / scipy, and the majority-class baseline.

Not ``evaluate``: it downloads metric code from the hub at run time.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from .tasks import TOKEN_KINDS, TaskSpec


def predictions_from_logits(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """Predictions from logits [..., C] -> [...]: class ids (argmax over C; ties go to the
    lowest id) or, for regression (C = 1), the score itself (logit 0). The one place that turns
    logits into predictions (fine-tuning's metrics and cache, every study's scoring)."""
    logits = np.asarray(logits)
    if task.kind == "regression":
        return logits[..., 0]
    return logits.argmax(-1)


def compute(task: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of ``task``. Token tasks: pass flat arrays with ignored positions removed."""
    p, y = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{p.shape[0]} predictions for {y.shape[0]} labels")
    if y.size == 0:
        raise ValueError(f"no labelled examples to score for task {task.name!r}")
    out: dict[str, float] = {}
    for name in task.metrics:
        if name == "accuracy":
            out[name] = float(skm.accuracy_score(y, p))
        elif name == "f1":
            out[name] = float(skm.f1_score(y, p, zero_division=0))
        elif name == "macro_f1":
            out[name] = float(skm.f1_score(y, p, average="macro", zero_division=0))
        elif name == "mcc":
            out[name] = float(skm.matthews_corrcoef(y, p))
        elif name == "mse":
            out[name] = float(skm.mean_squared_error(y, p))
        elif name in ("pearson", "spearman"):
            if np.ptp(p) == 0:
                # a constant prediction has no correlation: say so instead of returning NaN
                out[name] = float("nan")
                out[f"{name}_undefined"] = "constant predictions"  # type: ignore[assignment]
                continue
            fn = stats.pearsonr if name == "pearson" else stats.spearmanr
            out[name] = float(fn(p, y)[0])
        else:
            raise ValueError(f"unknown metric {name!r} for task {task.name!r}")
    return out


def majority_prediction(task: TaskSpec, train_labels):
    """The baseline's one prediction: the most frequent training label (regression: the mean
    training target, the "mean predictor"; its correlation metrics are undefined)."""
    train = np.asarray(train_labels).reshape(-1)
    if task.kind in TOKEN_KINDS:  # -100 (ignored token) and -1 (no target word) are no label
        train = train[train >= 0]
    if task.kind == "regression":
        return float(train.mean())
    values, counts = np.unique(train, return_counts=True)
    return values[counts.argmax()]


def majority_baseline(task: TaskSpec, train_labels, eval_labels) -> dict[str, float]:
    """Metrics of always predicting the most frequent training label (regression: the mean)."""
    evals = np.asarray(eval_labels).reshape(-1)
    if task.kind in TOKEN_KINDS:
        evals = evals[evals >= 0]
    pred = np.full(evals.shape, majority_prediction(task, train_labels))
    if task.kind == "regression":
        return {"mse": float(skm.mean_squared_error(evals, pred)),
                "pearson_undefined": "constant predictions"}  # type: ignore[dict-item]
    return compute(task, pred, evals)


def headline_metric(task: TaskSpec) -> tuple[str, bool]:
    """(metric, higher_is_better) used to compare a model with its baseline: the task's primary
    metric, except regression (the mean predictor has no correlation), which uses MSE."""
    if task.kind == "regression":
        return "mse", False
    return task.primary_metric, True
