"""Representations of the two task kinds of Merchant et al. 2020 beyond sentence tasks:
extractive QA (one row per question: CLS, the window's mean, the context mean, the gold answer
span's mean) and dependency parsing (one row per word labelled with its relation; arcs as
[head ; dependent] pairs). References are computed here from the model's hidden states on
windows made directly by the tokenizer (not by ``qa.windows``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerscope import activations as acts
from layerscope.encoding import qa_stride
from layerscope.tasks import get_task, load_split

pytestmark = pytest.mark.usefixtures("private_home")

QA_POOLINGS = ("cls", "mean", "context", "answer")


@pytest.fixture(scope="module", params=["tiny-bert", "tiny-roberta"])
def qa_model(request):
    return acts.encoder_and_tokenizer(request.param)


@pytest.fixture(scope="module")
def squad_examples():
    spec = acts.ActivationSpec("tiny-squad", n_examples=12, pooling="context", max_length=16)
    examples, labels, rows = acts.task_inputs(spec)
    return examples


def _reference(model, tok, ex: acts.QAExample, max_length: int) -> dict[str, np.ndarray]:
    """The four QA rows of one question, [L+1, H] each, from windows the tokenizer makes
    itself (question + context, only the context truncated, overlap ``qa_stride``): CLS and
    means of the first window; the answer's tokens (those whose characters overlap the first
    gold answer) in the first window whose context covers the whole answer."""
    enc = tok(ex.question.lstrip(), ex.context, truncation="only_second",
              max_length=max_length, stride=qa_stride(max_length),
              return_overflowing_tokens=True, return_offsets_mapping=True)
    a0 = ex.answers["answer_start"][0]
    a1 = a0 + len(ex.answers["text"][0])
    out, window_of_answer = {}, None
    for w in range(len(enc["input_ids"])):
        ids = torch.tensor([enc["input_ids"][w]])
        kw = {"token_type_ids": torch.tensor([enc["token_type_ids"][w]])} \
            if "token_type_ids" in enc else {}
        with torch.no_grad():
            hs = torch.stack(model(input_ids=ids, **kw,
                                   output_hidden_states=True).hidden_states)[:, 0].numpy()
        seq = enc.sequence_ids(w)
        ctx = [t for t, s in enumerate(seq) if s == 1]
        offs = enc["offset_mapping"][w]
        if w == 0:
            out["cls"], out["mean"] = hs[:, 0], hs.mean(1)
            out["context"] = hs[:, ctx].mean(1)
        if "answer" not in out and offs[ctx[0]][0] <= a0 and offs[ctx[-1]][1] >= a1:
            span = [t for t in ctx if offs[t][0] < a1 and offs[t][1] > a0]
            out["answer"], window_of_answer = hs[:, span].mean(1), w
            out["answer_text"] = tok.decode(enc["input_ids"][w][span[0]:span[-1] + 1])
    out["window"], out["n_windows"] = window_of_answer, len(enc["input_ids"])
    return out


def test_qa_rows_equal_the_windows_hidden_states(qa_model, squad_examples):
    """Every QA pooling equals the reference from the model's hidden states on the windows
    (max_length 16 forces several windows a question; some answers are in a later window)."""
    model, tok = qa_model
    refs = [_reference(model, tok, ex, 16) for ex in squad_examples]
    assert sum(r["window"] > 0 for r in refs) >= 2, "the test needs answers in later windows"
    assert all(r["answer_text"].strip() == ex.answers["text"][0]
               for r, ex in zip(refs, squad_examples, strict=True))
    for pooling in QA_POOLINGS:
        states, ids = acts.extract(model, tok, squad_examples, pooling=pooling, max_length=16,
                                   batch_size=5, progress=False)
        assert ids.tolist() == [[i, -1] for i in range(len(squad_examples))]
        want = np.stack([r[pooling] for r in refs], axis=1)
        np.testing.assert_allclose(states, want, atol=1e-5, rtol=0, err_msg=pooling)


def test_qa_rows_do_not_depend_on_the_batch(qa_model, squad_examples):
    model, tok = qa_model
    perm = np.random.default_rng(0).permutation(len(squad_examples))
    for pooling in QA_POOLINGS:
        alone, _ = acts.extract(model, tok, squad_examples, pooling=pooling, max_length=24,
                                batch_size=1, progress=False)
        together, _ = acts.extract(model, tok, squad_examples, pooling=pooling, max_length=24,
                                   batch_size=len(squad_examples), progress=False)
        mixed, _ = acts.extract(model, tok, [squad_examples[i] for i in perm], pooling=pooling,
                                max_length=24, batch_size=5, progress=False)
        np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
        np.testing.assert_allclose(mixed, together[:, perm], atol=1e-5, rtol=0)


def test_qa_truncation_is_counted_and_said(qa_model, squad_examples, capsys):
    """Questions whose context needs more than one window are counted; a question whose
    answer fits in no window is dropped from the answer rows, counted and said."""
    model, tok = qa_model
    n_windows = [_reference(model, tok, ex, 16)["n_windows"] for ex in squad_examples]
    long_answer = " ".join(["very"] * 14) + " good"
    lost = acts.QAExample("the plot was ?", f"the plot was {long_answer} .",
                          {"text": [long_answer], "answer_start": [13]})
    examples = [*squad_examples, lost]
    _, ids, counts = acts.extract(model, tok, examples, pooling="answer", max_length=16,
                                  progress=False, return_counts=True)
    assert counts == {"max_length": 16, "n_examples": len(examples),
                      "examples_cut": sum(n > 1 for n in n_windows) + 1, "words_dropped": 0,
                      "pairs_dropped": 0, "answers_dropped": 1, "stride": 4}
    assert ids[:, 0].tolist() == list(range(len(squad_examples)))  # the last one is dropped
    acts.extract(model, tok, examples, pooling="answer", max_length=16, progress=False)
    err = capsys.readouterr().err
    assert (f"{counts['examples_cut']} of {len(examples)} questions have a context longer "
            "than one window of max_length=16" in err and "1 question(s) whose answer lies "
            "in no window were dropped" in err and "raise max_length" in err)
    _, _, fits = acts.extract(model, tok, squad_examples, pooling="context", max_length=64,
                              progress=False, return_counts=True)
    assert fits["examples_cut"] == fits["answers_dropped"] == 0
    assert acts.truncation_line(fits) is None


def test_qa_spec_load_or_extract_and_bad_poolings(counted_extract):
    model, tok = acts.encoder_and_tokenizer("tiny-bert")
    spec = acts.ActivationSpec("tiny-squad", n_examples=10, pooling="answer", max_length=16)
    a = acts.load_or_extract(spec, model, tok, progress=False)
    rows = acts.task_inputs(spec)[2]
    assert (a.labels == -1).all() and a.ids[:, 0].tolist() == rows.tolist()
    assert a.meta["truncation"]["stride"] == 4 and "answers_dropped" in a.meta["truncation"]
    again = acts.load_or_extract(spec, model, tok, progress=False)
    assert len(counted_extract) == 1 and again.key == a.key
    ctx = acts.load_or_extract(acts.ActivationSpec("tiny-squad", n_examples=10,
                                                   pooling="context", max_length=16),
                               model, tok, progress=False)
    assert ctx.key != a.key and not np.allclose(ctx.states, a.states)
    assert acts.pooling_for("auto", "extractive_qa") == "context"
    assert acts.pooling_for("auto", "dependency_parsing") == "word"
    with pytest.raises(ValueError, match="pooling 'context' reads.*extractive_qa.*tiny-squad"):
        acts.ActivationSpec("tiny-sentiment", pooling="context")
    with pytest.raises(ValueError, match="pooling 'word'.*extractive_qa.*'context'"):
        acts.ActivationSpec("tiny-squad", pooling="word")
    with pytest.raises(ValueError, match="pair_offset=2.*dependency_parsing"):
        acts.ActivationSpec("tiny-parse", pooling="pair", pair_offset=2)
    with pytest.raises(ValueError, match="question 0.*answer pooling reads the first gold"):
        acts.extract(model, tok, [acts.QAExample("q ?", "a b c")], pooling="answer",
                     progress=False)
    with pytest.raises(ValueError, match="needs QAExample examples"):
        acts.extract(model, tok, ["a sentence"], pooling="context", progress=False)


@pytest.fixture
def counted_extract(monkeypatch):
    calls, real = [], acts.extract

    def wrapper(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(acts, "extract", wrapper)
    return calls


def test_parsing_word_rows_carry_relations_and_pairs_are_arcs():
    """word: one row per word, label = its relation (deprels index); pair: one row per
    non-root arc, [v_head ; v_dep] with the dependent's relation, ids = (row, dependent)."""
    model, tok = acts.encoder_and_tokenizer("tiny-bert", for_words=True)
    task = get_task("tiny-parse")
    ds = load_split(task, "validation")
    word = acts.load_or_extract(acts.ActivationSpec(task, n_examples=8, pooling="word",
                                                    max_length=32), model, tok, progress=False)
    pair = acts.load_or_extract(acts.ActivationSpec(task, n_examples=8, pooling="pair",
                                                    max_length=32), model, tok, progress=False)
    rows = sorted({int(r) for r in word.ids[:, 0]})
    assert len(rows) == 8 and word.meta["truncation"]["examples_cut"] == 0
    assert word.ids.tolist() == [[r, w] for r in rows for w in range(len(ds[r]["tokens"]))]
    assert word.labels.tolist() == [ds[int(r)]["deprels"][w] for r, w in word.ids]
    assert "root" in {task.label_names[y] for y in word.labels}
    arcs = [(r, ds[r]["heads"][d] - 1, d) for r in rows for d in range(len(ds[r]["tokens"]))
            if ds[r]["heads"][d] > 0]
    assert pair.ids.tolist() == [[r, d] for r, _, d in arcs]
    assert pair.labels.tolist() == [ds[r]["deprels"][d] for r, _, d in arcs]
    at = {(int(r), int(w)): k for k, (r, w) in enumerate(word.ids)}
    want = np.concatenate([word.states[:, [at[(r, h)] for r, h, _ in arcs]],
                           word.states[:, [at[(r, d)] for r, _, d in arcs]]], axis=-1)
    np.testing.assert_allclose(pair.states, want, atol=1e-6, rtol=0)
    cut = acts.load_or_extract(acts.ActivationSpec(task, n_examples=8, pooling="word",
                                                   max_length=6), model, tok, progress=False)
    t = cut.meta["truncation"]
    assert t["examples_cut"] > 0 and t["words_dropped"] == len(word.ids) - len(cut.ids) > 0
