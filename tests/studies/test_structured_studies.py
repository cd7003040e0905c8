"""Studies 03 and 04 on extractive QA and dependency parsing (Merchant et al. 2020's SQuAD and
parsing): the head on every layer and with every span skipped against the model itself cut or
skipped by ``surgery`` (an independent formulation: the model's own forward), the ratio
bootstrap against explicit resamples, the parity with ``finetune.predictions``, and both
studies end to end, read back."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope import activations as acts
from layerscope import finetune, surgery, surgery_kernels
from layerscope.finetune import FinetuneConfig
from layerscope.models import TINY_ARCHS
from layerscope.studies import results
from layerscope.studies import skipping as skip
from layerscope.studies import truncation as trunc
from layerscope.studies.common import structured
from layerscope.studies.common.scoring import RatioScorer
from layerscope.tasks import get_task, load_split

pytestmark = pytest.mark.usefixtures("private_home")

# few steps: tiny-parse is learned to 100% by the smoke preset's 60, where no layer differs
STEPS = {"tiny-squad": 60, "tiny-parse": 3}
TASKS = tuple(STEPS)


def _run(task: str) -> finetune.FinetuneResult:
    return finetune.load_or_train(FinetuneConfig(task=task, model="tiny-bert", preset="smoke",
                                                 max_steps=STEPS[task]), verbose=False)


def _set(task: str, res, n: int = 30):
    model, tok = acts.encoder_and_tokenizer(res)
    spec = get_task(task)
    ss = structured.structured_set(spec, "validation", np.arange(n), tok,
                                   res.config.hyperparameters()["max_length"], batch_size=8)
    return model, ss


@pytest.mark.parametrize("task", TASKS)
def test_every_layer_and_span_is_the_model_cut_or_skipped_by_surgery(task):
    """UNTUNED row k = the model truncated to k blocks (its own forward, ``surgery.truncated``)
    and span (i, j) = the model with blocks i..j skipped (``surgery.skipped``): the same
    answers and trees, so the same statistics; row L and "nothing skipped" are the model
    itself. Small batches make the windows of one question land in different batches."""
    res = _run(task)
    model, ss = _set(task, res)
    L = model.config.num_hidden_layers
    u = structured.untuned_outputs(model, ss)
    full = structured.full_outputs(model, ss)
    for k in range(1, L + 1):
        with surgery.truncated(model, k):
            want = structured.full_outputs(model, ss)
        if ss.kind == "extractive_qa":
            np.testing.assert_allclose(u[k], want, atol=1e-5)
        else:
            assert np.array_equal(u[k], want), k
        assert np.array_equal(ss.stats(u[k]), ss.stats(want)), k
    assert np.array_equal(ss.stats(u[L]), ss.stats(full))
    spans = structured.span_outputs(model, ss)
    assert list(spans) == surgery_kernels.spans(L)
    for (i, j), got in spans.items():
        with surgery.skipped(model, range(i, j + 1)):
            want = structured.full_outputs(model, ss)
        assert np.array_equal(ss.stats(got), ss.stats(want)), (i, j)
    # not all layers alike: the test would pass vacuously otherwise
    assert len({tuple(ss.stats(x)[:, -1]) for x in u}) > 1


@pytest.mark.parametrize("task", TASKS)
def test_the_model_itself_reproduces_its_cached_predictions(task):
    """The full model here scores every question or sentence exactly as
    ``finetune.predictions`` did (same answers, same trees; QA logits to float rounding), and
    the baseline's statistics are its recorded rule applied to these units."""
    res = _run(task)
    model, ss = _set(task, res, n=len(load_split(get_task(task), "validation")))
    ref = finetune.predictions(res, "validation")
    full = structured.full_outputs(model, ss)
    p = structured.parity(ss, 0, full, ref)
    assert p["prediction_agreement"] == 1.0
    rows = structured.reference_rows(ss, ref)
    assert np.array_equal(ss.stats(full), structured.reference_stats(ss.task, ref)[rows])
    if ss.kind == "extractive_qa":
        assert p["max_abs_logit_diff"] < 1e-5
        assert [ref.ids[r] for r in rows] == list(ss.ids)
    else:
        assert p["max_abs_logit_diff"] is None
        assert np.array_equal(ref.sentence_index[rows], ss.rows)
    # on every unit the run evaluated, the baseline's rule gives its recorded metrics
    assert ss.n == (len(ref.ids) if ss.kind == "extractive_qa" else ref.n_sentences)
    m = structured.unit_metrics(ss.task, structured.baseline_stats(ss, ref.baseline))
    assert m == pytest.approx({k: ref.baseline[k] for k in ss.task.metrics})


def test_ratio_scorer_is_the_metric_on_explicit_resamples():
    """RatioScorer's column b is 100 Σ num / Σ den over the units drawn in resample b (an
    explicit loop), for UAS (sentences of unequal size) and F1 (one question each); a
    resample whose sentences have no scored word is NaN and left out of the interval."""
    rng = np.random.default_rng(0)
    parse, squad = get_task("tiny-parse"), get_task("tiny-squad")
    n = 25
    scored = rng.integers(0, 6, n)
    heads = np.minimum(scored, rng.integers(0, 7, n))
    stats = np.stack([scored, heads, np.minimum(heads, rng.integers(0, 7, n))], -1)
    sc = RatioScorer(parse, n, n_boot=30, seed=3, metric="uas", unit_name="sentences")
    t = sc.table(stats)[0]
    assert t[0] == pytest.approx(100 * heads.sum() / scored.sum())
    for b, ix in enumerate(sc.idx, start=1):
        assert t[b] == pytest.approx(100 * heads[ix].sum() / scored[ix].sum())
    f1 = rng.random(n)
    qs = RatioScorer(squad, n, n_boot=10, seed=1, unit_name="questions")
    assert qs.metric == "f1"
    tq = qs.table(np.stack([(f1 > 0.9).astype(float), f1], -1))[0]
    assert tq[0] == pytest.approx(100 * f1.mean())
    assert all(tq[b] == pytest.approx(100 * f1[ix].mean()) for b, ix in enumerate(qs.idx, 1))
    empty = RatioScorer(parse, 2, n_boot=40, seed=0, metric="las")
    te = empty.table(np.array([[0, 0, 0], [3, 2, 1]]))[0]
    assert np.isnan(te[1:]).any() and np.isfinite(te[1:]).any()
    est, lo, hi = empty.interval(te)
    assert est == pytest.approx(100 / 3) and np.isfinite([lo, hi]).all()
    assert "25 questions" in qs.method()


@pytest.mark.parametrize("task", TASKS)
def test_truncation_and_skipping_run_end_to_end_and_read_back(task, tmp_path):
    """Both studies on the kind: statistics [S, L+1, n, q], every line defined (token states
    differ at layer 0 already), the parity recorded, UNTUNED at L and the model with nothing
    skipped agree, intervals over questions or sentences, findings and figures, the
    shallower checkpoint predicting what UNTUNED at k did, and the saved results read back
    unchanged."""
    spec = get_task(task)
    shared = dict(task=task, model="tiny-bert", preset="smoke", max_steps=STEPS[task],
                  n_examples=24, n_boot=20)
    r = trunc.run_truncation(trunc.TruncationConfig(**shared, n_train=40, head_max_epochs=4),
                             verbose=False)
    L, n, q = r.n_layers, len(r.rows), len(structured.STATS[spec.kind])
    assert r.check() == [] and r.metric == spec.primary_metric and r.higher_is_better
    assert all(v.shape == (1, L + 1, n, q) for v in r.logits.values())
    assert r.layers("untuned") == r.layers("tuned") == r.layers("tunedorig") == list(
        range(L + 1))
    assert r.parity[0]["prediction_agreement"] == 1.0
    unit = "questions" if spec.kind == "extractive_qa" else "sentences"
    assert f"{n} {unit}" in r.findings()["full_beats_baseline"]["interval"]["method"]
    for line in ("tuned", "tunedorig"):
        fit = r.head_fits[line][0]
        assert fit["layers"] == list(range(L + 1)) and fit["n_fit"] > 0 < fit["n_holdout"]
    ref = finetune.predictions(_run(task))
    want = structured.reference_stats(spec, ref)[r.unit_reference_rows]
    assert np.array_equal(r.logits["untuned"][0, L], want)
    assert r.scores["untuned"][L] == pytest.approx(structured.unit_metrics(spec, want)[r.metric])
    assert set(r.layer_metrics["untuned"][L]) == set(spec.metrics)
    small = trunc.save_truncated_model(r, str(tmp_path / "small"), k=2)
    assert small["n_blocks"] == 2 and small["prediction_agreement"] == 1.0
    s = skip.run_skipping(skip.SkippingConfig(**shared), verbose=False)
    assert s.check() == [] and s.span_logits.shape == (1, len(surgery_kernels.spans(L)), n, q)
    assert np.array_equal(s.full_logits[0], r.logits["untuned"][0, L])
    assert np.array_equal(s.labels, r.labels) and s.parity[0]["prediction_agreement"] == 1.0
    # skipping the top j blocks (i..L) is UNTUNED truncation at i - 1
    for i in range(2, L + 1):
        assert np.array_equal(s.span_logits[0, s.spans.index((i, L))],
                              r.logits["untuned"][0, i - 1]), i
    for res, figs in ((r, (r.figure(), r.layer_figure(2))), (s, (s.figure(), s.span_figure(1, 1)))):
        assert all(f.data for f in figs)
        back = results.read(res.save(tmp_path / res.study)["json"])
        assert np.array_equal(back.unit_reference_rows, res.unit_reference_rows)
        assert back.findings() == res.findings() and back.check() == []


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_every_family_heads_reproduce_the_model_on_qa_and_parsing(arch):
    """Each family's QA head (``EncoderAdapter.span_head``: ``qa_outputs``, ModernBERT's
    prediction head + ``classifier``) and parser on layer k: row L is the task model's own
    forward and row 2 the model cut to 2 blocks (``surgery.truncated``), on an untrained task
    model (no fine-tuning needed for the identity), padded batches of several lengths."""
    from layerscope import models

    for task in TASKS:
        spec = get_task(task)
        model = models.load_for_task(f"tiny-{arch}", spec).eval()
        tok = models.load_tokenizer(f"tiny-{arch}", for_words=task == "tiny-parse")
        ss = structured.structured_set(spec, "validation", np.arange(12), tok, 64, batch_size=5)
        u = structured.untuned_outputs(model, ss)
        with surgery.truncated(model, 2):
            two = structured.full_outputs(model, ss)
        for got, want in ((u[-1], structured.full_outputs(model, ss)), (u[2], two)):
            if ss.kind == "extractive_qa":
                real = np.isfinite(want)
                assert np.array_equal(real, np.isfinite(got))
                np.testing.assert_allclose(got[real], want[real], atol=1e-5)
            else:
                assert np.array_equal(got, want), arch
