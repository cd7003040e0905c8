"""The official SQuAD v1.1 metrics (evaluate-v1.1.py) on hand-made cases worked out by hand."""

import numpy as np
import pytest

from layerscope.errors import ConfigError
from layerscope.qa import squad_eval as S


@pytest.mark.parametrize("raw, want", [
    ("The  Quick, brown fox!", "quick brown fox"),  # articles, punctuation, whitespace
    ("U.S.A.", "usa"),                              # punctuation removed, not replaced
    ("the-end", "theend"),                          # punctuation first: no article is left
    ("An apple a day", "apple day"),
    ("Theatre anthem", "theatre anthem"),           # articles only as whole words
    ("  a  ", ""),
    ("Café – “déjà”", "café – “déjà”"),             # non-ASCII punctuation stays (ASCII set)
])
def test_normalize_answer(raw, want):
    assert S.normalize_answer(raw) == want


def test_exact_match_after_normalisation():
    assert S.exact_match("the Eiffel Tower", "Eiffel tower.") == 1.0
    assert S.exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert S.exact_match("The", "a") == 1.0  # both normalise to "": the script says equal


@pytest.mark.parametrize("pred, gold, want", [
    ("Jane Austen wrote it", "Austen", 2 * (1 / 4) * 1 / (1 / 4 + 1)),  # P 1/4, R 1: 0.4
    ("1813 by Thomas", "1813", 0.5),                                   # P 1/3, R 1
    ("the the cat cat", "cat", 2 / 3),      # bags: "cat cat" vs "cat" share 1; P 1/2, R 1
    ("Thomas Egerton", "Egerton, Thomas", 1.0),  # order does not matter
    ("London", "Paris", 0.0),               # no overlap
    ("", "Paris", 0.0),                     # empty prediction
    ("The", "a", 0.0),                      # both empty after normalisation: F1 is 0
])
def test_f1(pred, gold, want):
    assert S.f1(pred, gold) == pytest.approx(want, abs=1e-15)


def test_a_question_scores_its_best_gold_answer():
    golds = ["1813", "in 1813", "published in 1813"]
    assert S.max_over_golds(S.exact_match, "in 1813", golds) == 1.0
    assert S.max_over_golds(S.f1, "1813 edition", golds) == pytest.approx(2 / 3)  # vs "1813"
    with pytest.raises(ConfigError, match="non-empty list"):
        S.max_over_golds(S.f1, "x", "1813")


def test_corpus_scores_in_percent_and_per_question_arrays():
    s = S.squad_scores(["in 1813", "Jane Austen wrote it", "London"],
                       [["1813", "in 1813"], ["Austen"], ["Paris"]])
    assert s.em_per_question.tolist() == [1.0, 0.0, 0.0]
    assert np.allclose(s.f1_per_question, [1.0, 0.4, 0.0])
    assert s.exact_match == pytest.approx(100 / 3)
    assert s.f1 == pytest.approx(140 / 3)
    assert s.to_record() == {"exact_match": s.exact_match, "f1": s.f1, "n_questions": 3}


def test_evaluate_predictions_by_id_and_missing_questions():
    rows = [{"id": "a", "answers": {"text": ["Paris"], "answer_start": [0]}},
            {"id": "b", "answers": {"text": ["The"], "answer_start": [0]}}]
    with pytest.raises(ConfigError, match=r"1 of 2 questions have no prediction.*'b'"):
        S.evaluate_predictions(rows, {"a": "paris"})
    s = S.evaluate_predictions(rows, {"a": "paris"}, missing="zero")
    # "b" scores 0 outright, even though "" would equal its gold "The" after normalisation
    assert s.em_per_question.tolist() == [1.0, 0.0] and s.exact_match == 50.0
    assert S.evaluate_predictions(rows, {"a": "x", "b": "a"}).em_per_question.tolist() == [0, 1]


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="2 predictions but 1 gold"):
        S.squad_scores(["a", "b"], [["a"]])
    with pytest.raises(ConfigError, match="no questions"):
        S.squad_scores([], [])
    with pytest.raises(ConfigError, match="prediction 0 is NoneType"):
        S.squad_scores([None], [["a"]])
    with pytest.raises(ConfigError, match="unknown missing 'skip'"):
        S.evaluate_predictions([], {}, missing="skip")
