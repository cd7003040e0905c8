"""Dependency parsing through fine-tuning: trees decoded per batch, UAS/LAS, the predictions.

The model is ``parser_model.BiaffineParserModel``. In the Trainer's evaluation each batch's
trees are decoded at once (``decode_batch``, its ``preprocess_logits_for_metrics``:
Chu-Liu/Edmonds with one word under ROOT, labels the argmax at the chosen heads), so what the
Trainer gathers is [B, W, 2] (head, label) per word, padded with -100 across batches; then
UAS and LAS are computed over the whole split (``metrics.parse_scores``: micro-averaged over
words, gold ``punct`` relations not scored, ``metrics.PUNCTUATION``), recorded in percent as
``"las"`` and ``"uas"``.

``ParsePredictions`` (what ``finetune.predictions`` returns for a parsing task) holds, for the
S sentences evaluated (those ``max_length`` did not drop; split order) with n_s words each
(those it kept), flat word arrays of sum(n_s) entries (``per_sentence(name)`` splits one):

===============  ==============================================================================
sentence_index   [S] int64 the sentence's row in the split
lengths          [S] int64 words per sentence (n_s)
words            [sum n_s] int64 each word's 0-based index in its row's tokens
pred_heads       [sum n_s] int64 predicted heads (0 = ROOT, else 1-based among the kept words)
pred_labels      [sum n_s] int64 predicted relations (indices into the task's label_names)
gold_heads       [sum n_s] int64 gold heads, numbered as pred_heads
gold_labels      [sum n_s] int64 gold relations
scored           [sum n_s] bool the word counts (not punctuation by the rule)
n_scored         [S] int64 per sentence: words scored,
head_correct     [S] int64 ... of them with the right head,
both_correct     [S] int64 ... with the right head and relation (the bootstrap's arrays)
uas, las         percent over the split (what the run records); punctuation: the rule
baseline         the chain baseline's metrics and rule (``metrics.parse_baseline``)
===============  ==============================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..errors import ConfigError
from ..parsing.metrics import AttachmentScores, scored_words
from ..tasks import TaskSpec
from .parser_model import decode_outputs

ARRAYS = ("sentence_index", "lengths", "words", "pred_heads", "pred_labels", "gold_heads",
          "gold_labels", "scored", "n_scored", "head_correct", "both_correct")


def decode_batch(logits, labels=None) -> torch.Tensor:
    """The Trainer's ``preprocess_logits_for_metrics`` for a parser: its outputs (arc_scores,
    label_scores) -> [B, W, 2] long (predicted head, label; -1 at padding words)."""
    arc, label_scores = logits[0], logits[1]
    heads, rels = decode_outputs(arc, label_scores)
    return torch.as_tensor(np.stack([heads, rels], -1), device=arc.device)


@dataclass(frozen=True)
class ParseEval:
    """The decoded trees of an encoded split (its row order) and their scores."""

    pred_heads: list[np.ndarray]
    pred_labels: list[np.ndarray]
    scores: AttachmentScores


def evaluate(task: TaskSpec, dataset, decoded) -> ParseEval:
    """UAS/LAS of ``decoded`` [N, W', 2] (``decode_batch``'s, gathered: one row per row of the
    encoded ``dataset``, in its order) against the dataset's gold trees."""
    decoded = np.asarray(decoded)
    gold_heads, gold_labels = dataset["heads"], dataset["deprels"]
    if decoded.ndim != 3 or len(decoded) != len(gold_heads):
        raise ConfigError(f"decoded trees {decoded.shape} for {len(gold_heads)} sentences; "
                          "evaluate the dataset they were decoded from")
    heads, rels = [], []
    for i, g in enumerate(gold_heads):
        h, r = decoded[i, :len(g), 0], decoded[i, :len(g), 1]
        if len(h) < len(g) or (h < 0).any() or (r < 0).any():
            raise ConfigError(f"sentence {i}: {len(g)} words but the decoded tree has "
                              f"{int((h >= 0).sum())}; evaluate the dataset it was decoded from")
        heads.append(h.astype(np.int64))
        rels.append(r.astype(np.int64))
    return ParseEval(heads, rels, metrics.parse_scores(task, heads, gold_heads, rels,
                                                        gold_labels))


@dataclass(frozen=True)
class ParsePredictions:
    """Predicted and gold trees per sentence and their scores (module docstring)."""

    sentence_index: np.ndarray
    lengths: np.ndarray
    words: np.ndarray
    pred_heads: np.ndarray
    pred_labels: np.ndarray
    gold_heads: np.ndarray
    gold_labels: np.ndarray
    scored: np.ndarray
    n_scored: np.ndarray
    head_correct: np.ndarray
    both_correct: np.ndarray
    uas: float
    las: float
    punctuation: str
    baseline: dict

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_index)

    @property
    def metrics(self) -> dict[str, float]:
        return {"las": self.las, "uas": self.uas}

    def per_sentence(self, name: str) -> list[np.ndarray]:
        """A flat word array (``words``, ``pred_heads``, ...) as one [n_s] array per sentence."""
        return np.split(getattr(self, name), np.cumsum(self.lengths)[:-1])

    def save(self, folder: Path) -> None:
        for name in ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        (folder / "scores.json").write_text(json.dumps(
            {"uas": self.uas, "las": self.las, "punctuation": self.punctuation}))

    @classmethod
    def load(cls, folder: Path, baseline: dict) -> ParsePredictions:
        s = json.loads((folder / "scores.json").read_text())
        return cls(**{k: np.load(folder / f"{k}.npy") for k in ARRAYS}, uas=s["uas"],
                   las=s["las"], punctuation=s["punctuation"], baseline=baseline)


def predictions_record(task: TaskSpec, dataset, decoded, baseline: dict) -> ParsePredictions:
    """``ParsePredictions`` of ``decoded`` trees (``evaluate``'s input) in split order."""
    ev = evaluate(task, dataset, decoded)
    order = np.argsort(np.asarray(dataset["sentence_index"]), kind="stable")
    gold_heads, gold_labels, words = dataset["heads"], dataset["deprels"], dataset["words"]
    names = np.asarray(task.label_names, dtype=object)
    lengths = np.array([len(gold_heads[i]) for i in order], dtype=np.int64)
    keep = scored_words(ev.scores.punctuation, lengths=lengths.tolist(),
                        gold_labels=[names[np.asarray(gold_labels[i], dtype=np.int64)]
                                     for i in order])

    def flat(seqs) -> np.ndarray:
        return np.concatenate([np.asarray(seqs[i], dtype=np.int64) for i in order])

    s = ev.scores
    return ParsePredictions(
        sentence_index=np.asarray(dataset["sentence_index"], dtype=np.int64)[order],
        lengths=lengths, words=flat(words), pred_heads=flat(ev.pred_heads),
        pred_labels=flat(ev.pred_labels), gold_heads=flat(gold_heads),
        gold_labels=flat(gold_labels), scored=np.concatenate(keep),
        n_scored=s.n_scored[order], head_correct=s.head_correct[order],
        both_correct=s.both_correct[order], uas=float(s.uas), las=float(s.las),
        punctuation=s.punctuation, baseline=baseline)
