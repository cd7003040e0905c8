"""Extractive QA through fine-tuning (Merchant et al. 2020's SQuAD): windows, the start/end
model, EM/F1 after training, predictions, the baseline and checkpoints, on tiny models and the
tiny-squad fixture."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
import transformers as tr

from layerscope import adapters, encoding, finetune, metrics, models
from layerscope.errors import ConfigError, MissingHeadError
from layerscope.finetune import FinetuneConfig, QAPredictions
from layerscope.qa import squad_eval
from layerscope.tasks import get_task, load_split

pytestmark = pytest.mark.usefixtures("private_home")

SQUAD = get_task("tiny-squad")
FT = FinetuneConfig(task="tiny-squad", model="tiny-bert", preset="smoke")  # 60 steps


@pytest.fixture(scope="module")
def tuned():
    return finetune.load_or_train(FT, verbose=False)


def _long_rows(n_filler: int = 6):
    """Two validation questions whose contexts are padded with other sentences before and
    after, so that they span several windows of 32 tokens and the answer sits in a middle one."""
    ds = load_split(SQUAD, "validation").select(range(2))
    filler = " ".join(["a plot seemed awful ."] * n_filler)
    rows = []
    for r in ds:
        starts = [a + len(filler) + 1 for a in r["answers"]["answer_start"]]
        rows.append({"id": r["id"], "question": r["question"],
                     "context": f"{filler} {r['context']} {filler}",
                     "answers": {"text": list(r["answers"]["text"]), "answer_start": starts}})
    return datasets.Dataset.from_list(rows)


def test_model_class_adapter_and_collator():
    """load_for_task gives the start/end model (two outputs per token); the adapter reads its
    encoder; the collator pads windows and leaves the bookkeeping columns out."""
    for name in ("tiny-bert", "tiny-roberta"):
        model = models.load_for_task(name, SQUAD).eval()
        assert type(model).__name__.endswith("ForQuestionAnswering")
        assert model.qa_outputs.out_features == 2
        assert adapters.EncoderAdapter(model).n_layers == 4
        tok = models.load_tokenizer(name)
        ds = encoding.encode_split(SQUAD, load_split(SQUAD, "validation").select(range(5)), tok,
                                   32)
        assert {"start_positions", "end_positions", "example_index", "window_index"} <= set(
            ds.column_names)
        batch = encoding.collator_for(SQUAD, tok)(list(ds))
        assert not set(batch) & set(encoding.BOOKKEEPING)
        assert batch["input_ids"].shape[0] == len(ds) and batch["start_positions"].shape == (
            len(ds),)
        with torch.no_grad():
            out = model(**batch)
        assert out.start_logits.shape == batch["input_ids"].shape and out.loss is not None


def test_long_context_windows_and_the_answer_in_the_right_one():
    """A long context gives several overlapping windows (stride max_length // 4); the windows
    wholly holding the answer label its tokens (their characters are the answer), the others
    CLS; logits planted at the gold tokens of the right window find the answer there, against
    higher logits outside the context and on tokens past a shorter window."""
    tok = models.load_tokenizer("tiny-bert")
    rows = _long_rows()
    w = encoding.qa_windows(rows, tok, 32)
    assert encoding.qa_stride(32) == 8
    counts = np.bincount(w.example_index)
    assert (counts >= 3).all()  # several windows per question
    for e in range(2):
        mine = np.flatnonzero(w.example_index == e)
        answer = rows[e]["answers"]["text"][0]
        holding = [i for i in mine if w.start_positions[i] != w.cls_index[i]]
        assert holding and holding[0] != mine[0] and mine[-1] not in holding  # a middle one
        for i in holding:
            s, t = w.start_positions[i], w.end_positions[i]
            assert w.contexts[e][w.offsets[i, s, 0]:w.offsets[i, t, 1]] == answer
        # consecutive windows overlap by the stride's tokens of context
        a, b = mine[0], mine[1]
        ctx_a, ctx_b = w.offsets[a][w.context_mask[a]], w.offsets[b][w.context_mask[b]]
        assert (ctx_a[-8:] == ctx_b[:8]).all()
    start = np.full(w.offsets.shape[:2], -5.0)
    end = np.full(w.offsets.shape[:2], -5.0)
    start[:, 0] = end[:, 0] = 50.0  # CLS is never a span
    for e in range(2):
        i = [i for i in np.flatnonzero(w.example_index == e)
             if w.start_positions[i] != w.cls_index[i]][0]
        start[i, w.start_positions[i]] = end[i, w.end_positions[i]] = 4.0
    spans = finetune.qa.evaluate(w, [r["answers"]["text"] for r in rows], start, end)[0]
    assert list(spans.text) == [r["answers"]["text"][0] for r in rows]


def test_a_question_whose_answer_is_in_no_window_trains_on_cls(capsys):
    """An answer longer than a window's context: every window of it is labelled CLS, and the
    encoding says how many such questions there are."""
    tok = models.load_tokenizer("tiny-bert")
    context = " ".join(["the movie was good ."] * 12)
    answer = context[:100]  # ~25 tokens: more than the 16 a window of 24 leaves for context
    ds = datasets.Dataset.from_list([{"id": "x", "question": "the movie was ?",
                                      "context": context,
                                      "answers": {"text": [answer], "answer_start": [0]}}])
    enc = encoding.encode_split(SQUAD, ds, tok, 24)
    assert len(enc) > 1
    assert enc["start_positions"] == [0] * len(enc) == enc["end_positions"]
    assert "1 of 1 questions have their first answer in no window" in capsys.readouterr().err


def _brute_force_spans(p: QAPredictions, max_len: int = 30) -> list[str]:
    """Per question, the best valid span over its windows by explicit loops (an independent
    formulation of qa.windows.best_spans)."""
    out = []
    for e in range(p.n_questions):
        best, text = -np.inf, None
        for i in np.flatnonzero(p.example_index == e):
            ctx = np.flatnonzero(p.offsets[i, :, 0] >= 0)
            for s in ctx:
                for t in ctx:
                    if s <= t < s + max_len:
                        score = p.start_logits[i, s] + p.end_logits[i, t]
                        if score > best:
                            best = score
                            text = p.contexts[e][p.offsets[i, s, 0]:p.offsets[i, t, 1]]
        out.append(text)
    return out


def test_finetune_metrics_predictions_and_baseline(tuned):
    """A tiny BERT fine-tunes on tiny-squad: EM and F1 recorded in percent, F1 above the
    first-words baseline; the predictions' answers are the best spans by brute force, and the
    official definitions recomputed from them (squad_eval on {id: text}) give the recorded
    metrics exactly; the baseline recomputed by hand; predictions come back from the cache."""
    r = tuned
    m = r.metrics
    assert set(m) == {"f1", "exact_match"} and 0 <= m["exact_match"] <= m["f1"] <= 100
    assert m["f1"] > r.baseline["f1"]
    p = finetune.predictions(r)
    val = load_split(SQUAD, "validation")
    assert p.ids == tuple(val["id"]) and p.n_questions == len(val) == r.meta["n_eval_questions"]
    assert p.start_logits.shape == p.end_logits.shape == p.offsets.shape[:2]
    assert np.isneginf(p.start_logits[np.arange(p.offsets.shape[1])[None] >= p.lengths[:, None]]
                       ).all()
    assert list(p.text) == _brute_force_spans(p)
    rows = [{"id": i, "answers": {"text": list(a["text"])}} for i, a in
            zip(val["id"], val["answers"], strict=True)]
    official = squad_eval.evaluate_predictions(rows, dict(zip(p.ids, p.text, strict=True)))
    assert official.exact_match == m["exact_match"] and official.f1 == m["f1"]
    assert p.metrics == m
    np.testing.assert_array_equal(official.f1_per_question, p.f1)
    # the baseline: the context's first k words, k the median first-answer length in training
    k = int(np.floor(np.median([len(a["text"][0].split()) for a in
                                load_split(SQUAD, "train")["answers"]]) + 0.5))
    first = {i: " ".join(c.split()[:k]) for i, c in zip(val["id"], val["context"], strict=True)}
    b = squad_eval.evaluate_predictions(rows, first)
    assert r.baseline["k"] == k and r.baseline["f1"] == b.f1
    again = finetune.predictions(r)
    assert again.text == p.text and np.array_equal(again.start_logits, p.start_logits)
    assert "vs baseline" in finetune.summary_line(r)


def test_checkpoint_round_trip_and_a_bare_encoder_refused(tuned, tmp_path):
    """The saved model reloads bit-exactly; its folder evaluates as a checkpoint to the same
    metrics; a bare encoder is refused as a checkpoint without a QA head."""
    r = tuned
    a, b = finetune.load_finetuned(r), finetune.load_finetuned(r)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    tok = models.load_tokenizer(str(r.model_dir))
    ds = encoding.encode_split(SQUAD, load_split(SQUAD, "validation").select(range(6)), tok, 32)
    batch = encoding.collator_for(SQUAD, tok)(list(ds))
    with torch.no_grad():
        assert torch.equal(a(**batch).start_logits, b(**batch).start_logits)
    ck = finetune.load_or_train(FinetuneConfig(task="tiny-squad", model="tiny-bert",
                                               preset="smoke", checkpoint=str(r.model_dir)),
                                verbose=False)
    assert ck.metrics == r.metrics
    bare = tmp_path / "bare"
    tr.AutoModel.from_pretrained(models.resolve("tiny-bert")).save_pretrained(bare)
    models.load_tokenizer("tiny-bert").save_pretrained(bare)
    with pytest.raises(MissingHeadError, match="has no trained extractive_qa head"):
        finetune.load_or_train(FinetuneConfig(task="tiny-squad", model="tiny-bert",
                                              preset="smoke", checkpoint=str(bare)),
                               verbose=False)


def test_label_metrics_refuse_the_structured_kinds():
    """metrics.compute would score QA or parsing rows as classes: it refuses, naming the
    functions that score them."""
    with pytest.raises(ConfigError, match="qa_scores"):
        metrics.compute(SQUAD, np.zeros(3), np.zeros(3))
    with pytest.raises(ConfigError, match="parse_scores"):
        metrics.majority_baseline(get_task("tiny-parse"), np.zeros(3), np.zeros(3))
