"""UAS/LAS on hand-made trees, counted by hand, under each punctuation rule."""

import numpy as np
import pytest

from layerscope.errors import ConfigError, UndefinedError
from layerscope.parsing.metrics import attachment_scores, scored_words

# "The cat sat ." / "Dogs bark !" (gold); predictions below
GOLD_HEADS = [[2, 3, 0, 3], [2, 0, 2]]
GOLD_LABELS = [["det", "nsubj", "root", "punct"], ["nsubj", "root", "punct"]]
GOLD_UPOS = [["DET", "NOUN", "VERB", "PUNCT"], ["NOUN", "VERB", "PUNCT"]]
PRED_HEADS = [[2, 3, 0, 2], [0, 0, 2]]  # wrong: the '.' head; "Dogs" head
PRED_LABELS = [["det", "obj", "root", "punct"], ["root", "root", "punct"]]


def test_scores_without_punctuation_by_deprel_and_by_upos():
    # scored: The cat sat | Dogs bark -> 5 words; heads right: The cat sat bark = 4;
    # labels also right: The sat bark = 3 ("cat" is obj, not nsubj)
    for rule, kw in (("deprel", {}), ("upos", {"gold_upos": GOLD_UPOS})):
        s = attachment_scores(PRED_HEADS, GOLD_HEADS, PRED_LABELS, GOLD_LABELS,
                              punctuation=rule, **kw)
        assert s.uas == pytest.approx(80.0) and s.las == pytest.approx(60.0)
        assert s.n_scored.tolist() == [3, 2] and s.head_correct.tolist() == [3, 1]
        assert s.both_correct.tolist() == [2, 1]


def test_scoring_every_word():
    # 7 words; heads right: The cat sat | bark ! = 5; with labels: The sat | bark ! = 4
    s = attachment_scores(PRED_HEADS, GOLD_HEADS, PRED_LABELS, GOLD_LABELS, punctuation="none")
    assert s.uas == pytest.approx(500 / 7) and s.las == pytest.approx(400 / 7)
    assert s.to_record() == {"uas": s.uas, "las": s.las, "n_words_scored": 7,
                             "n_sentences": 2, "punctuation": "none"}


def test_unlabelled_and_subtyped_punct():
    s = attachment_scores(PRED_HEADS, GOLD_HEADS, punctuation="upos", gold_upos=GOLD_UPOS)
    assert s.uas == pytest.approx(80.0) and np.isnan(s.las)
    keep = scored_words("deprel", lengths=[2], gold_labels=[["punct:x", "nsubj:pass"]])
    assert keep[0].tolist() == [False, True]


def test_bad_inputs():
    with pytest.raises(ConfigError, match="sentence 1: pred_heads has 2 words but gold_heads"
                       " has 3"):
        attachment_scores([[2, 3, 0, 2], [0, 0]], GOLD_HEADS, punctuation="none")
    with pytest.raises(ConfigError, match="punctuation='upos' needs gold_upos"):
        attachment_scores(PRED_HEADS, GOLD_HEADS, punctuation="upos")
    with pytest.raises(ConfigError, match="unknown punctuation rule 'pos'"):
        attachment_scores(PRED_HEADS, GOLD_HEADS, punctuation="pos")
    with pytest.raises(ConfigError, match="pred_labels given without gold_labels"):
        attachment_scores(PRED_HEADS, GOLD_HEADS, PRED_LABELS, punctuation="none")
    with pytest.raises(UndefinedError, match="no word is scored"):
        attachment_scores([[0]], [[0]], [["punct"]], [["punct"]])
    with pytest.raises(ConfigError, match="no sentences"):
        attachment_scores([], [])
