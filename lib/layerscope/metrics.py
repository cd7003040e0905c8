"""Task metrics from scikit-learn / scipy, and the majority-class baseline.

Not ``evaluate``: it downloads metric code from the hub at run time.

Extractive QA and dependency parsing are scored on spans and trees, not on one class per
example, so they have their own functions (``compute`` refuses them, naming these):

* ``qa_scores``: SQuAD v1.1's EM and F1 in percent (``qa.squad_eval``: the official
  normalisation, each question's best gold answer); ``qa_baseline``: the first k words of the
  context, k the median length in words of the training questions' first gold answers (a
  stated, simple floor: it scores above 0 only where answers open their paragraph).
* ``parse_scores``: UAS and LAS in percent (``parsing.metrics.attachment_scores``) with
  punctuation left out by its default rule, ``PUNCTUATION = "deprel"``: a word whose gold
  relation is ``punct`` (or ``punct:*``) is not scored (the convention of the PTB/UD parsing
  papers; CoNLL 2018's official LAS scores every word: pass ``punctuation="none"``);
  ``parse_baseline``: a chain, every word headed by its left or its right neighbour
  (whichever attaches more training words right; the end of the chain under ROOT), each
  labelled with the commonest training relation.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from .errors import ConfigError
from .parsing.metrics import AttachmentScores, attachment_scores
from .qa.squad_eval import SquadScores, squad_scores
from .tasks import TOKEN_KINDS, TaskSpec

# kinds scored on spans or trees (their own functions below), not by ``compute``
STRUCTURED_KINDS = ("extractive_qa", "dependency_parsing")
PUNCTUATION = "deprel"  # parsing: gold punct relations are not scored (module docstring)


def _not_structured(task: TaskSpec, what: str) -> None:
    if task.kind in STRUCTURED_KINDS:
        fix = ("qa_scores / qa_baseline" if task.kind == "extractive_qa"
               else "parse_scores / parse_baseline")
        raise ConfigError(f"task {task.name!r} is {task.kind}: it is scored on "
                          f"{'spans' if task.kind == 'extractive_qa' else 'trees'}, not by "
                          f"{what}; use metrics.{fix}")


def predictions_from_logits(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """Predictions from logits [..., C] -> [...]: class ids (argmax over C; ties go to the
    lowest id) or, for regression (C = 1), the score itself (logit 0). The one place that turns
    logits into predictions (fine-tuning's metrics and cache, every study's scoring)."""
    _not_structured(task, "predictions_from_logits")
    logits = np.asarray(logits)
    if task.kind == "regression":
        return logits[..., 0]
    return logits.argmax(-1)


def compute(task: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of ``task``. Token tasks: pass flat arrays with ignored positions removed."""
    _not_structured(task, "metrics.compute")
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
    _not_structured(task, "majority_prediction")
    train = np.asarray(train_labels).reshape(-1)
    if task.kind in TOKEN_KINDS:  # -100 (ignored token) and -1 (no target word) are no label
        train = train[train >= 0]
    if task.kind == "regression":
        return float(train.mean())
    values, counts = np.unique(train, return_counts=True)
    return values[counts.argmax()]


def majority_baseline(task: TaskSpec, train_labels, eval_labels) -> dict[str, float]:
    """Metrics of always predicting the most frequent training label (regression: the mean)."""
    _not_structured(task, "majority_baseline")
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


# --- extractive QA ----------------------------------------------------------------------------

def qa_scores(predicted: list[str], golds: list[list[str]]) -> SquadScores:
    """EM and F1 (percent; per-question arrays for the bootstrap) of one predicted answer text
    per question against all its gold answer texts (``qa.squad_eval.squad_scores``)."""
    return squad_scores(list(predicted), [list(g) for g in golds])


def qa_record(scores: SquadScores) -> dict[str, float]:
    """The task metrics of QA scores: ``{"f1", "exact_match"}`` in percent."""
    return {"f1": float(scores.f1), "exact_match": float(scores.exact_match)}


def first_words(context: str, k: int) -> str:
    """The context's first ``k`` whitespace words, joined by single spaces."""
    return " ".join(context.split()[:k])


def qa_baseline(train_answers: list[list[str]], contexts: list[str],
                golds: list[list[str]]) -> dict:
    """The first-k-words baseline (module docstring): ``train_answers`` per training question
    its gold answer texts (the first one counts), ``contexts`` and ``golds`` those of the
    evaluated questions. Returns the metrics, ``k`` and the rule in words."""
    lengths = [len(a[0].split()) for a in train_answers if len(a)]
    if not lengths:
        raise ConfigError("no training answers to size the first-words baseline on")
    k = max(1, int(np.floor(np.median(lengths) + 0.5)))
    scores = qa_scores([first_words(c, k) for c in contexts], golds)
    return {**qa_record(scores), "k": k,
            "rule": f"the context's first {k} words (k = the median training answer length)"}


# --- dependency parsing -----------------------------------------------------------------------

def parse_scores(task: TaskSpec, pred_heads, gold_heads, pred_labels, gold_labels, *,
                 punctuation: str = PUNCTUATION) -> AttachmentScores:
    """UAS/LAS (percent; per-sentence counts for the bootstrap) of predicted trees: one [n_s]
    array per sentence of heads (0 = ROOT, 1-based) and of relation indices into
    ``task.label_names`` (which the ``deprel`` punctuation rule reads)."""
    names = np.asarray(task.label_names, dtype=object)

    def named(seqs):
        return [names[np.asarray(x, dtype=np.int64)] for x in seqs]

    return attachment_scores([np.asarray(h) for h in pred_heads],
                             [np.asarray(h) for h in gold_heads], named(pred_labels),
                             named(gold_labels), punctuation=punctuation)


def parse_record(scores: AttachmentScores) -> dict[str, float]:
    """The task metrics of attachment scores: ``{"las", "uas"}`` in percent."""
    return {"las": float(scores.las), "uas": float(scores.uas)}


def chain_heads(n: int, direction: str) -> np.ndarray:
    """[n] heads of a chain: ``"left"`` heads word i by word i - 1 (word 1 under ROOT),
    ``"right"`` by word i + 1 (word n under ROOT)."""
    if direction == "left":
        return np.arange(n, dtype=np.int64)
    return np.r_[np.arange(2, n + 1), 0].astype(np.int64)


def parse_baseline(task: TaskSpec, train_heads, train_labels, gold_heads, gold_labels, *,
                   punctuation: str = PUNCTUATION) -> dict:
    """The chain baseline (module docstring): the direction that attaches more training words
    right, the commonest training relation as every label; its UAS/LAS on the gold trees."""
    right = {d: sum(int((chain_heads(len(h), d) == np.asarray(h)).sum()) for h in train_heads)
             for d in ("left", "right")}
    direction = max(("left", "right"), key=lambda d: right[d])  # ties: left
    flat = np.concatenate([np.asarray(y, dtype=np.int64) for y in train_labels])
    label = int(np.bincount(flat).argmax())
    pred = [chain_heads(len(h), direction) for h in gold_heads]
    scores = parse_scores(task, pred, gold_heads, [np.full(len(h), label) for h in gold_heads],
                          gold_labels, punctuation=punctuation)
    return {**parse_record(scores), "direction": direction,
            "label": task.label_names[label],
            "rule": f"every word headed by its {direction} neighbour, labelled "
                    f"{task.label_names[label]!r} (the commonest training relation)"}
