"""Attachment scores: UAS (the head is right) and LAS (head and relation label are right).

Scores are word-level over the whole corpus (micro-averaged: correct words / scored words, in
percent, as every parser paper and the CoNLL scripts report them), with per-sentence counts so
a bootstrap over sentences can resample them (the ratio of resampled sums).

Which words are scored is a parameter, ``punctuation``, since the conventions differ:
* "deprel" (the default): leave out words whose gold relation is ``punct`` (subtypes like
  ``punct:x`` too). Available wherever labels are (UD treebanks, a user's CoNLL-U, the silver
  ClearNLP-labelled Brown parses, which have no gold UPOS) and, in UD, the same words as gold
  UPOS PUNCT up to annotation slips;
* "upos": leave out words whose gold UPOS is ``PUNCT``: the UD form of the Penn Treebank
  convention of excluding punctuation by gold tag (Chen & Manning 2014; Dozat & Manning 2017
  report PTB scores this way);
* "none": score every word, as the CoNLL 2017 and 2018 UD shared tasks' official LAS does
  (``conll18_ud_eval.py`` scores all words).

Shapes: a corpus is a sequence of S sentences; each sentence's heads/labels/upos are [n_s]
(heads: 0 = ROOT, word i's head at position i - 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, UndefinedError, check_choice

__all__ = ["PUNCTUATION_RULES", "AttachmentScores", "scored_words", "attachment_scores"]

PUNCTUATION_RULES = ("deprel", "upos", "none")


def scored_words(punctuation: str, *, lengths: Sequence[int], gold_labels=None,
                 gold_upos=None) -> list[np.ndarray]:
    """Per sentence, the [n_s] bool mask of words that count under the ``punctuation`` rule."""
    check_choice(punctuation, PUNCTUATION_RULES, "punctuation rule",
                 "deprel: skip gold punct relations; upos: skip gold PUNCT; none: score all")
    if punctuation == "none":
        return [np.ones(n, dtype=bool) for n in lengths]
    tags, name = ((gold_labels, "gold_labels") if punctuation == "deprel"
                  else (gold_upos, "gold_upos"))
    if tags is None:
        raise ConfigError(f"punctuation={punctuation!r} needs {name}; pass it, or choose"
                          f" another rule from {PUNCTUATION_RULES}")
    _same_lengths(tags, lengths, name)
    if punctuation == "deprel":
        return [np.array([str(t).split(":")[0] != "punct" for t in sent], dtype=bool)
                for sent in tags]
    return [np.array([str(t) != "PUNCT" for t in sent], dtype=bool) for sent in tags]


def _same_lengths(seqs, lengths, name: str) -> None:
    if len(seqs) != len(lengths):
        raise ConfigError(f"{name} has {len(seqs)} sentences but gold_heads has {len(lengths)}")
    for i, (s, n) in enumerate(zip(seqs, lengths, strict=True)):
        if len(s) != n:
            raise ConfigError(f"sentence {i}: {name} has {len(s)} words but gold_heads has {n}")


@dataclass(frozen=True)
class AttachmentScores:
    """UAS and LAS in percent (LAS NaN when no labels were given) and the per-sentence counts
    behind them ([S] int64): scored words, right heads, right heads with right labels."""
    uas: float
    las: float
    n_scored: np.ndarray
    head_correct: np.ndarray
    both_correct: np.ndarray
    punctuation: str

    def to_record(self) -> dict:
        return {"uas": self.uas, "las": self.las, "n_words_scored": int(self.n_scored.sum()),
                "n_sentences": len(self.n_scored), "punctuation": self.punctuation}


def attachment_scores(pred_heads, gold_heads, pred_labels=None, gold_labels=None, *,
                      punctuation: str = "deprel", gold_upos=None) -> AttachmentScores:
    """UAS/LAS of predicted against gold trees (one [n_s] array per sentence in each list)."""
    if not len(gold_heads):
        raise ConfigError("no sentences to score (gold_heads is empty)")
    lengths = [len(h) for h in gold_heads]
    _same_lengths(pred_heads, lengths, "pred_heads")
    labelled = pred_labels is not None
    if labelled:
        if gold_labels is None:
            raise ConfigError("pred_labels given without gold_labels; LAS needs both")
        _same_lengths(pred_labels, lengths, "pred_labels")
        _same_lengths(gold_labels, lengths, "gold_labels")
    keep = scored_words(punctuation, lengths=lengths, gold_labels=gold_labels,
                        gold_upos=gold_upos)
    n, heads_ok, both_ok = (np.zeros(len(lengths), dtype=np.int64) for _ in range(3))
    for i, (p, g, k) in enumerate(zip(pred_heads, gold_heads, keep, strict=True)):
        right = np.asarray(p) == np.asarray(g)
        n[i], heads_ok[i] = k.sum(), (right & k).sum()
        if labelled:
            same = np.array([a == b for a, b in zip(pred_labels[i], gold_labels[i],
                                                       strict=True)], dtype=bool)
            both_ok[i] = (right & same & k).sum()
    total = int(n.sum())
    if total == 0:
        raise UndefinedError(f"no word is scored under punctuation={punctuation!r} (every word"
                             " is punctuation); attachment scores are undefined")
    las = 100.0 * both_ok.sum() / total if labelled else float("nan")
    return AttachmentScores(100.0 * heads_ok.sum() / total, float(las), n, heads_ok, both_ok,
                            punctuation)
