"""Windows over long contexts, gold spans to tokens and back, and the best-span search
(the Hugging Face question-answering recipe), with tiny-bert's tokenizer on the SQuAD fixture."""

from pathlib import Path

import numpy as np
import pytest

from layerscope.errors import ConfigError
from layerscope.models import load_tokenizer
from layerscope.qa.squad_format import read_squad
from layerscope.qa.windows import best_spans, make_windows

MINI = Path(__file__).parents[1] / "fixtures" / "squad" / "mini.json"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny-bert")


@pytest.fixture(scope="module")
def rows():
    return read_squad(MINI)


def _windows(tok, rows, **kw):
    return make_windows(tok, [r["question"] for r in rows], [r["context"] for r in rows],
                        answers=[r["answers"] for r in rows], **kw)


def _gold_text(w, rows, i):
    e, s, t = w.example_index[i], w.start_positions[i], w.end_positions[i]
    return rows[e]["context"][w.offsets[i, s, 0]:w.offsets[i, t, 1]]


def _planted(w, big=10.0):
    """Logits 0 everywhere but ``big`` at each window's gold start and end (CLS where the answer
    is not inside): the best span must then be the gold one."""
    start, end = np.zeros(w.offsets.shape[:2]), np.zeros(w.offsets.shape[:2])
    rows = np.arange(len(w))
    start[rows, w.start_positions] = big
    end[rows, w.end_positions] = big
    return start, end


def test_one_window_per_short_example_and_gold_spans_round_trip(tok, rows):
    w = _windows(tok, rows)  # run_qa.py's 384 / 128: every fixture context fits
    assert len(w) == len(rows) and w.example_index.tolist() == list(range(len(rows)))
    assert (w.start_positions != w.cls_index).all()
    for i in range(len(w)):
        assert _gold_text(w, rows, i) == rows[i]["answers"]["text"][0]
    p = best_spans(w, *_planted(w))
    assert list(p.text) == [r["answers"]["text"][0] for r in rows]
    assert (p.score == 20.0).all()
    feats = w.training_features()
    assert feats[0]["start_positions"] == w.start_positions[0]
    assert set(feats[0]) == {"input_ids", "token_type_ids", "attention_mask", "start_positions",
                             "end_positions"}


def test_windows_overlap_by_stride_and_cover_the_context(tok, rows):
    stride = 16
    w = _windows(tok, rows, max_length=64, stride=stride)
    assert len(w) > 2 * len(rows) and w.lengths.max() <= 64
    assert (np.diff(w.example_index) >= 0).all()  # an example's windows are consecutive
    ctx = w.context_mask
    for i in range(len(w) - 1):
        if w.example_index[i] != w.example_index[i + 1]:
            continue
        tail = w.offsets[i][ctx[i]][-stride:]
        head = w.offsets[i + 1][ctx[i + 1]][:stride]
        assert np.array_equal(tail, head)  # the last `stride` context tokens start the next
    for i in np.flatnonzero(w.start_positions != w.cls_index):  # every labelled window maps back
        assert _gold_text(w, rows, i) == rows[w.example_index[i]]["answers"]["text"][0]
    for e, r in enumerate(rows):  # together the windows reach the end of every context
        assert w.offsets[w.example_index == e][..., 1].max() == len(r["context"])


def test_an_answer_across_a_window_boundary_is_found_in_the_next_window(tok, rows):
    """For some window sizes an answer starts in window i's context and ends after it: window i
    is labelled CLS, a later window holds the whole answer (the overlap is longer than any
    answer), and the planted-logit search finds it there."""
    found = 0
    for max_length in range(72, 120, 4):  # the overlap (24) is longer than any answer
        w = _windows(tok, rows, max_length=max_length, stride=24)
        ctx = w.context_mask
        for i in range(len(w) - 1):
            e = w.example_index[i]
            a0 = rows[e]["answers"]["answer_start"][0]
            a1 = a0 + len(rows[e]["answers"]["text"][0])
            last_end = w.offsets[i][ctx[i]][-1, 1]
            if not (a0 < last_end < a1) or w.example_index[i + 1] != e:
                continue
            found += 1
            assert w.start_positions[i] == w.end_positions[i] == w.cls_index[i]
            later = [j for j in range(i + 1, len(w))
                     if w.example_index[j] == e and w.start_positions[j] != w.cls_index[j]]
            assert later, "the answer is wholly inside no later window"
            assert _gold_text(w, rows, later[0]) == rows[e]["answers"]["text"][0]
            p = best_spans(w, *_planted(w))  # ties between windows go to the first
            assert p.window[e] == later[0] and p.text[e] == rows[e]["answers"]["text"][0]
    assert found >= 3


def _brute_force(w, start, end, max_answer_length):
    """Every (window, s, e) with s <= e < s + L inside the context, one by one."""
    best = {}
    ctx = w.context_mask
    for i in range(len(w)):
        for s in np.flatnonzero(ctx[i]):
            for t in range(s, min(s + max_answer_length, w.offsets.shape[1])):
                if ctx[i, t]:
                    sc = start[i, s] + end[i, t]
                    e = w.example_index[i]
                    if e not in best or sc > best[e][0]:
                        best[e] = (sc, i, s, t)
    return [best[e] for e in range(w.n_examples)]


@pytest.mark.parametrize("max_answer_length", [1, 3, 30])
def test_best_spans_is_the_exact_search_and_respects_max_answer_length(tok, rows,
                                                                       max_answer_length):
    w = _windows(tok, rows, max_length=64, stride=16)
    g = np.random.default_rng(max_answer_length)
    start, end = g.normal(size=(2, len(w), 70))  # wider than any window: the model's padding
    p = best_spans(w, start, end, max_answer_length=max_answer_length)
    assert ((p.token_end - p.token_start + 1) <= max_answer_length).all()
    assert (p.token_end >= p.token_start).all()
    ref = _brute_force(w, start, end, max_answer_length)
    assert np.allclose(p.score, [r[0] for r in ref], rtol=0, atol=1e-12)
    assert p.window.tolist() == [r[1] for r in ref]
    assert p.token_start.tolist() == [r[2] for r in ref]
    for e in range(w.n_examples):
        assert p.text[e] == rows[e]["context"][p.char_start[e]:p.char_end[e]]


def test_a_planted_long_span_is_not_taken_beyond_max_answer_length(tok, rows):
    w = _windows(tok, rows[:1])
    start, end = np.zeros((2, 1, w.offsets.shape[1]))
    s = int(np.flatnonzero(w.context_mask[0])[0])
    start[0, s], end[0, s + 5] = 10.0, 10.0  # a 6-token span is the best if allowed
    assert best_spans(w, start, end).token_end[0] == s + 5
    p = best_spans(w, start, end, max_answer_length=3)
    assert p.token_end[0] - p.token_start[0] + 1 <= 3 and p.score[0] < 20.0
    # logits outside the context never win, however large (here: the question and CLS)
    start[0, :s], end[0, :s] = 100.0, 100.0
    assert best_spans(w, start, end).token_start[0] >= s


def test_bad_inputs_are_refused(tok, rows):
    q, c = [r["question"] for r in rows], [r["context"] for r in rows]
    with pytest.raises(ConfigError, match=r"question 0 .* leaves .* not more than stride=16"):
        make_windows(tok, q, c, max_length=30, stride=16)  # the tokenizers library would panic
    with pytest.raises(ConfigError, match="9 questions, 8 contexts"):
        make_windows(tok, q, c[:8])
    with pytest.raises(ConfigError, match="example 1 has an empty context"):
        make_windows(tok, q[:2], [c[0], " "])
    w = make_windows(tok, q, c)
    with pytest.raises(ConfigError, match="made without answers"):
        w.training_features()
    z = np.zeros((len(w), w.offsets.shape[1]))
    with pytest.raises(ConfigError, match="start_logits has 8 rows but there are 9 windows"):
        best_spans(w, z[:8], z)
    with pytest.raises(ConfigError, match="row 0 has 5 logits but window 0 has"):
        best_spans(w, [np.zeros(5)] * len(w), z)
    z2 = z.copy()
    z2[3, 1] = np.nan
    with pytest.raises(ConfigError, match="end_logits row 3 has NaN"):
        best_spans(w, z, z2)
    with pytest.raises(ConfigError, match="max_answer_length=0"):
        best_spans(w, z, z, max_answer_length=0)
