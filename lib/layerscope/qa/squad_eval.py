"""The official SQuAD v1.1 evaluation (Rajpurkar et al. 2016, ``evaluate-v1.1.py``), re-stated.

Definitions, exactly as the official script has them:
* normalisation: lower-case, then drop every ASCII punctuation character (``string.punctuation``;
  so "U.S." -> "us" and "well-known" -> "wellknown", and non-ASCII dashes or quotes stay), then
  replace the whole words a / an / the by a space, then collapse runs of whitespace to one space
  and strip the ends;
* exact match: the normalised strings are equal (1 or 0);
* F1: over the bags of whitespace tokens of the normalised strings; 0 when they share no token
  (in particular when either side normalises to nothing), else 2PR / (P + R) with
  P = shared / |prediction tokens| and R = shared / |gold tokens|;
* each question scores the maximum over all its gold answers (SQuAD dev has up to 3+);
* the corpus scores are 100 x the mean over questions.

One deliberate difference: the official script gives a question that has no prediction 0 and
goes on (printing a message); here a missing prediction is an error unless ``missing="zero"``
(the house rule: never a silently lower number).

Shapes: per-question arrays are [n] float64 in question order; EM values are 0/1 and F1 values
fractions in [0, 1] (so a bootstrap over questions resamples them and multiplies the mean by 100).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, check_choice

__all__ = ["normalize_answer", "exact_match", "f1", "max_over_golds", "SquadScores",
           "squad_scores", "evaluate_predictions", "MISSING"]

_PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as the official script
_ARTICLES = re.compile(r"\b(a|an|the)\b")  # whole words; \b is Unicode-aware in Python 3
MISSING = ("raise", "zero")


def normalize_answer(s: str) -> str:
    """The official normalisation: lower -> remove punctuation -> remove articles -> whitespace.

    The order matters and is the script's: punctuation goes before articles, so "the-end"
    becomes "theend" (no article left) while "the end" becomes "end"."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token F1 of the normalised strings (bags of whitespace tokens), in [0, 1]."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    shared = sum((Counter(pred) & Counter(ref)).values())
    if shared == 0:  # also covers an empty prediction or gold: the script returns 0 there
        return 0.0
    precision, recall = shared / len(pred), shared / len(ref)
    return 2 * precision * recall / (precision + recall)


def max_over_golds(metric, prediction: str, golds: Sequence[str]) -> float:
    """``max(metric(prediction, g) for g in golds)``: a question scores its best gold answer."""
    if isinstance(golds, str) or not len(golds):
        raise ConfigError(f"golds must be a non-empty list of answer strings; got {golds!r}")
    return max(metric(prediction, g) for g in golds)


@dataclass(frozen=True)
class SquadScores:
    """Corpus EM and F1 in percent (the official script's numbers) and the per-question values
    behind them ([n] float64: EM 0/1, F1 in [0, 1]) for bootstrap intervals over questions."""
    exact_match: float
    f1: float
    em_per_question: np.ndarray
    f1_per_question: np.ndarray

    @property
    def n(self) -> int:
        return len(self.em_per_question)

    def to_record(self) -> dict:
        return {"exact_match": self.exact_match, "f1": self.f1, "n_questions": self.n}


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> SquadScores:
    """EM and F1 of aligned lists: predictions [n] strings, golds [n] lists of gold answers."""
    if len(predictions) != len(golds):
        raise ConfigError(f"{len(predictions)} predictions but {len(golds)} gold answer lists;"
                          " give one prediction per question, in the same order")
    if not len(predictions):
        raise ConfigError("no questions to score (empty predictions and golds)")
    for i, p in enumerate(predictions):
        if not isinstance(p, str):
            raise ConfigError(f"prediction {i} is {type(p).__name__} {p!r}, not a string")
    pairs = list(zip(predictions, golds, strict=True))
    em = np.array([max_over_golds(exact_match, p, g) for p, g in pairs])
    f = np.array([max_over_golds(f1, p, g) for p, g in pairs])
    return SquadScores(100.0 * float(em.mean()), 100.0 * float(f.mean()), em, f)


def evaluate_predictions(rows: Sequence[Mapping], predictions: Mapping[str, str], *,
                         missing: str = "raise") -> SquadScores:
    """The official script's ``evaluate(dataset, predictions)`` on flat rows.

    rows: the questions, each with ``id`` and ``answers["text"]`` (``squad_format`` rows, or
    the hub ``squad`` dataset's); predictions: {question id: answer text}. Per-question arrays
    follow ``rows``' order. ``missing="zero"`` scores a question with no prediction 0, as the
    official script does; the default raises naming the first missing ids."""
    check_choice(missing, MISSING, "missing")
    absent = [r["id"] for r in rows if r["id"] not in predictions]
    if absent and missing == "raise":
        raise ConfigError(f"{len(absent)} of {len(rows)} questions have no prediction (first:"
                          f" {absent[:3]}); predict every question, or pass missing='zero' to"
                          " score them 0 as the official script does")
    if not len(rows):
        raise ConfigError("no questions to score (rows is empty)")
    # a missing question scores 0 outright (not "" scored: "" matches a gold like "The" exactly)
    found = [i for i, r in enumerate(rows) if r["id"] in predictions]
    em, f = np.zeros(len(rows)), np.zeros(len(rows))
    if found:
        s = squad_scores([predictions[rows[i]["id"]] for i in found],
                         [list(rows[i]["answers"]["text"]) for i in found])
        em[found], f[found] = s.em_per_question, s.f1_per_question
    return SquadScores(100.0 * float(em.mean()), 100.0 * float(f.mean()), em, f)
