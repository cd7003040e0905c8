"""Studies 03 (truncation) and 04 (skipping) on every head beyond sentence tasks (issue 17 §4):
multiple choice (tiny-choice), tagging (tiny-pos) and token pairs (tiny-dep), on tiny BERTs.

Each parity test compares two independent routes: the kind's head on the one-pass (or reused-
prefix) kernels' states (``studies.common.task_heads``) against the model's own forward with
the blocks removed (``surgery.truncated`` / ``surgery.skipped``) and against
``finetune.predictions``, unit by unit (a choice question, a labelled word, a word pair).
The fine-tunes are the notebooks' smoke ones (tests/notebooks/*.yaml: 30 steps), cached once
in the session's home for both.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerscope import activations as acts
from layerscope import adapters, finetune, metrics, models, surgery
from layerscope.errors import ConfigError, UnsupportedModelError
from layerscope.studies import results
from layerscope.studies import skipping as skip
from layerscope.studies import truncation as trunc
from layerscope.studies.common import evaluation, task_heads
from layerscope.studies.common.scoring import Scorer
from layerscope.studies.truncation import heads
from layerscope.surgery_kernels import HeadInputs, spans
from layerscope.tasks import get_task

TASKS = ["tiny-choice", "tiny-pos", "tiny-dep"]
L, ATOL = 4, 1e-5
ROWS = np.arange(0, 100, 4)  # 25 validation examples, several padded batches below


def _finetuned(task: str):
    return finetune.load_or_train(finetune.FinetuneConfig(task=task, model="tiny-bert",
                                                          preset="smoke", max_steps=30),
                                  verbose=False)


@pytest.fixture(scope="module", params=TASKS)
def tuned(request):
    """(task, fine-tuned run, model, its evaluation set on ROWS in batches of 8)."""
    res = _finetuned(request.param)
    model, tok = acts.encoder_and_tokenizer(res)
    es = evaluation.eval_set(request.param, "validation", ROWS, tok, 32, batch_size=8)
    return get_task(request.param), res, model, es


def _model_units(model, es) -> np.ndarray:
    """The model's own forward on every batch, reduced to units and put in unit order."""
    out = None
    for pos, b in es.batches:
        got = _units(model, es, b)
        out = np.empty((es.n_units, *got.shape[1:]), dtype=np.float32) if out is None else out
        out[es.unit_positions(pos)] = got
    return out


def _units(model, es, b) -> np.ndarray:
    with torch.inference_mode():
        logits = model(**{k: v for k, v in b.items() if k in evaluation.MODEL_KEYS}).logits
    return es.head.output_units(logits, HeadInputs(None, None, b.get("labels"),
                                                   b.get("pair_index"))).numpy()


def test_units_follow_the_kind(tuned):
    task, _, _, es = tuned
    kh = task_heads.for_task(task)
    assert es.n == len(ROWS) and len(es.batches) == 4
    if task.kind == "multiple_choice":  # one unit (question) per example, [B, 2, T] inputs
        assert es.n_units == es.n and es.batches[0][1]["input_ids"].dim() == 3
        assert kh.group is None and (es.reference_rows == ROWS).all()
    else:  # several words (pairs) per sentence, each at its row of the split's flat units
        assert es.n_units > 2 * es.n and kh.group == "sentences"
        assert (np.diff(es.groups) >= 0).all() and set(es.groups) == set(range(es.n))
        assert (np.diff(es.reference_rows) > 0).all()  # ascending rows, ascending units


def test_untuned_at_every_layer_is_the_model_cut_there(tuned):
    """Row k of the one-pass kernel with the kind's head = the model truncated to k blocks
    (its own forward); row L = finetune.predictions, logits and predictions, unit by unit."""
    task, res, model, es = tuned
    u = evaluation.untuned_logits(model, es)
    assert u.shape == (L + 1, es.n_units, task.num_labels)
    ref = finetune.predictions(res)
    np.testing.assert_allclose(u[L], ref.logits[es.reference_rows], rtol=0, atol=ATOL)
    assert (metrics.predictions_from_logits(task, u[L]) == ref.predictions[es.reference_rows]
            ).all()
    assert (ref.labels[es.reference_rows] == es.labels).all()
    for k in range(1, L):
        with surgery.truncated(model, k):
            np.testing.assert_allclose(_model_units(model, es), u[k], rtol=0, atol=ATOL,
                                       err_msg=f"layer {k}")
    assert not np.allclose(u[1], u[L])  # the test can tell layers apart
    p = evaluation.parity(task, 0, u[L], ref, es)
    assert p["max_abs_logit_diff"] < ATOL and p["prediction_agreement"] == 1.0


def test_every_span_is_the_model_with_those_blocks_skipped(tuned):
    task, res, model, es = tuned
    full = evaluation.full_logits(model, es)
    np.testing.assert_allclose(full, finetune.predictions(res).logits[es.reference_rows],
                               rtol=0, atol=ATOL)
    by_span = evaluation.span_logits(model, es)
    assert sorted(by_span) == sorted(spans(L))
    for (i, j), v in by_span.items():
        with surgery.skipped(model, range(i, j + 1)):
            np.testing.assert_allclose(_model_units(model, es), v, rtol=0, atol=ATOL,
                                       err_msg=str((i, j)))
    assert model.config.num_hidden_layers == L  # restored


def test_retrained_heads_start_as_the_models_own_head(tuned):
    """heads.head_params on the kind's features (same pass) = UNTUNED at every layer: the
    two-layer choice head (one score per choice), the token or pair classifier (linear)."""
    task, _, model, es = tuned
    u, x = evaluation.untuned_logits(model, es, features=True)
    p = heads.head_params(model)
    if task.kind == "multiple_choice":
        assert not p.linear and p.w2.shape == (1, 32, 1) and x.shape == (L + 1, es.n, 2, 32)
    else:
        width = 32 * (2 if task.kind == "token_pair" else 1)
        assert p.linear and p.w2.shape == (1, width, task.num_labels)
        assert x.shape == (L + 1, es.n_units, width)
    np.testing.assert_allclose(heads.apply(p, x).numpy(), u, rtol=0, atol=ATOL)


@pytest.mark.parametrize("task", ["tiny-choice", "tiny-pos"])
def test_batched_heads_equal_each_trained_alone(task):
    """Head k of one batched fit follows the trajectory it follows alone: choice heads on
    [K, n, choices, H] features, linear token heads with a held-out split of whole sentences
    (25 of 126 rows asked: 4 sentences of 7 words, 28 rows, are held out)."""
    torch.manual_seed(0)
    model = models.load_for_task("tiny-bert", get_task(task)).eval()
    init = heads.head_params(model)
    rng = np.random.default_rng(0)
    if task == "tiny-choice":
        x = rng.normal(size=(3, 60, 2, 32)).astype(np.float32)
        y = (x[0, :, 1, :4].sum(-1) > x[0, :, 0, :4].sum(-1)).astype(np.int64)
        groups, n_hold = None, 12
    else:
        x = rng.normal(size=(3, 126, 32)).astype(np.float32) * np.array([1, 2, .5])[:, None, None]
        y = (x[0, :, :6].argmax(-1)).astype(np.int64)
        groups, n_hold = np.repeat(np.arange(18), 7), 28
    s = heads.HeadTraining(lr=3e-3, batch_size=16, max_epochs=6, patience=2)
    both = heads.train_heads(init, x, y, regression=False, settings=s, seed=3, groups=groups)
    assert both.n_holdout == n_hold and both.n_fit == x.shape[1] - n_hold
    for k in range(3):
        alone = heads.train_heads(init, x[k:k + 1], y, regression=False, settings=s, seed=3,
                                  groups=groups)
        assert alone.best_epoch[0] == both.best_epoch[k]
        for a, b in zip(alone.params._tensors(), both.params._tensors(), strict=True):
            if a is None:
                assert b is None
            else:
                np.testing.assert_allclose(a[0], b[k], atol=1e-5)
    assert (both.best_epoch > 0).any(), "training never improved on the initial head"
    assert (both.holdout_loss <= both.initial_loss).all()


def test_token_intervals_resample_sentences():
    """With groups, resample b draws sentences: its accuracy equals metrics.compute on the
    concatenated words of the drawn sentences (an empty sentence counts, holding nothing)."""
    task = get_task("tiny-pos")
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, 30)
    sizes[4] = 0  # a sentence with no labelled word
    groups = np.repeat(np.arange(30), sizes)
    y = rng.integers(0, 6, len(groups))
    p = np.where(rng.random(len(groups)) < 0.7, y, (y + 1) % 6)
    sc = Scorer(task, y, n_boot=25, seed=1, groups=groups, n_groups=30, unit_name="words")
    t = sc.table(p)[0]
    members = [np.flatnonzero(groups == g) for g in range(30)]
    for b in range(1, 26):
        units = np.concatenate([members[g] for g in sc.idx[b - 1]])
        assert t[b] == pytest.approx(metrics.compute(task, p[units], y[units])["accuracy"])
    assert t[0] == pytest.approx((p == y).mean())
    assert len(set(sc.weights.sum(1))) > 1  # resamples hold different numbers of words
    assert "30 sentences" in sc.method() and f"{len(y)} words" in sc.method()
    with pytest.raises(ConfigError, match="groups"):
        Scorer(task, y, groups=groups[:-1])


@pytest.mark.parametrize("task", TASKS)
def test_studies_run_end_to_end_and_read_back(task, tmp_path):
    """run_truncation and run_skipping on the kind: shapes in units, parity, undefined layers
    with their reason, findings with intervals over sentences (token tasks), figures, and the
    saved results read back unchanged."""
    shared = dict(task=task, model="tiny-bert", preset="smoke", max_steps=30, n_examples=24,
                  n_boot=20)
    r = trunc.run_truncation(trunc.TruncationConfig(**shared, n_train=60), verbose=False)
    U, C = len(r.labels), get_task(task).num_labels
    assert r.check() == [] and r.parity[0]["max_abs_logit_diff"] < ATOL
    assert all(v.shape == (1, L + 1, U, C) for v in r.logits.values())
    assert len(r.rows) == 24 and len(r.unit_groups) == U == len(r.unit_reference_rows)
    if task == "tiny-choice":  # BERT's layer-0 [CLS]: the same for every choice
        assert r.layers("untuned") == [1, 2, 3, 4] and r.groups is None
        assert "same for every question" in r.undefined["tuned"][0]
    else:  # words differ at layer 0 already
        assert r.layers("untuned") == r.layers("tuned") == [0, 1, 2, 3, 4] and U > 24
        assert "24 sentences" in r.findings()["full_beats_baseline"]["interval"]["method"]
        assert f"24 validation sentences ({U} " in r.title()
    assert r.baseline["prediction"] == finetune.predictions(_finetuned(task)).baseline
    small = trunc.save_truncated_model(r, str(tmp_path / "small"), k=2)  # the 2-block model
    assert small["n_blocks"] == 2 and small["max_abs_logit_diff"] < ATOL
    s = skip.run_skipping(skip.SkippingConfig(**shared), verbose=False)
    assert s.check() == [] and s.span_logits.shape == (1, len(spans(L)), U, C)
    assert (s.labels == r.labels).all() and s.parity[0]["prediction_agreement"] == 1.0
    np.testing.assert_allclose(s.full_logits[0], r.logits["untuned"][0, L], atol=ATOL)
    for res, figs in ((r, (r.figure(), r.layer_figure(2))), (s, (s.figure(), s.span_figure(1, 1)))):
        assert all(f.data for f in figs)
        back = results.read(res.save(tmp_path / res.study)["json"])
        for name in ("labels", "rows", "unit_groups", "unit_reference_rows"):
            assert np.array_equal(getattr(back, name), getattr(res, name)), name
        assert back.findings() == res.findings() and back.check() == []
    assert np.array_equal(back.span_logits, s.span_logits)


def test_families_say_which_heads_they_evaluate_and_retrain():
    by_type = {t: row for row in adapters.family_table() for t in row["model_types"]}
    kinds = set(adapters.HEAD_KINDS)
    assert set(by_type["bert"]["tuned_head_kinds"]) == kinds == set(by_type["roberta"]["heads"])
    assert "multiple_choice" not in by_type["deberta"]["heads"]  # no DebertaForMultipleChoice
    assert set(by_type["deberta-v2"]["heads"]) == kinds
    assert by_type["modernbert"]["tuned_head_kinds"] == ("token_pair", "parser")
    assert adapters.head_kind_of("tagging") == "token"
    with pytest.raises(UnsupportedModelError, match=r"the DeBERTa adapter \(model_type "
                                                    r"'deberta'\) has no multiple_choice head"):
        adapters.require_surgery(models.load_config("tiny-deberta"), "the truncation study",
                                 head_kind="multiple_choice")
    with pytest.raises(UnsupportedModelError, match=r"TUNED/TUNEDORIG token heads as one "
                                                    r"linear layer, and the token head of the "
                                                    r"ModernBERT adapter"):
        adapters.require_surgery(models.load_config("tiny-modernbert"), "the truncation study",
                                 tuned_heads=True, head_kind="token")


def test_unsupported_family_and_kind_refused_before_fine_tuning(monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("fine-tuned before checking the family")

    monkeypatch.setattr(finetune, "load_or_train", no_training)
    for study, cfg in ((trunc.run_truncation, trunc.TruncationConfig),
                       (skip.run_skipping, skip.SkippingConfig)):
        with pytest.raises(UnsupportedModelError, match="DeBERTa.*multiple_choice"):
            study(cfg(task="tiny-choice", model="tiny-deberta", preset="smoke"), verbose=False)


@pytest.mark.parametrize("arch, task", [
    ("roberta", "tiny-choice"), ("electra", "tiny-choice"), ("distilbert", "tiny-choice"),
    ("deberta-v2", "tiny-choice"), ("albert", "tiny-pos"), ("modernbert", "tiny-dep")])
def test_head_params_equal_the_familys_own_head(arch, task):
    """The retrained head's form is the family's own head: RoBERTa's multiple choice reads the
    pooler (not the sequence head), ELECTRA's its sequence_summary, DistilBERT's
    pre_classifier + ReLU, DeBERTa-v2's ContextPooler; token and pair heads are linear (pair:
    on ModernBERT's final-normed states)."""
    torch.manual_seed(0)
    model = models.load_for_task(f"tiny-{arch}", get_task(task)).eval()
    ad = adapters.EncoderAdapter(model)
    kh = task_heads.for_task(get_task(task))
    hidden = torch.randn(6, 7, model.config.hidden_size)
    labels = torch.tensor([[-100, 1, 2, -100, 0, 3, 1]] * 6)
    pair_index = torch.tensor([[[1, 2], [4, 5], [-1, -1]]] * 6)
    pair_labels = torch.tensor([[1, 0, -100]] * 6)
    inputs = HeadInputs(torch.ones(6, 7, dtype=torch.long), 2 if task == "tiny-choice" else None,
                        pair_labels if task == "tiny-dep" else labels, pair_index)
    with torch.no_grad():
        want = kh.logits(ad, hidden, inputs)
        x = kh.features(ad, hidden, inputs)
    np.testing.assert_allclose(heads.apply(heads.head_params(model), x[None])[0], want,
                               atol=1e-5)
    assert want.shape[0] == {"tiny-choice": 3, "tiny-pos": 30, "tiny-dep": 12}[task]


def test_modernbert_has_no_retrainable_choice_or_token_head():
    for task in ("tiny-choice", "tiny-pos"):
        model = models.load_for_task("tiny-modernbert", get_task(task))
        with pytest.raises(UnsupportedModelError, match="TUNED/TUNEDORIG"):
            heads.head_params(model)


def test_check_task_names_the_kinds_with_a_head():
    assert evaluation.check_task("tiny-dep", "skipping").kind == "token_pair"
    import dataclasses

    from layerscope.tasks import KINDS

    assert set(task_heads.HEADS) == set(KINDS)  # every kind has a head on layer k's states
    other = dataclasses.replace(get_task("tiny-pos"), kind="clustering", name="clusterish")
    with pytest.raises(ConfigError, match="'clustering' task; the skipping study .* "
                                          "token_pair, extractive_qa, dependency_parsing"):
        evaluation.check_task(other, "skipping")
