"""Study 03 on tiny models: UNTUNED parity, head parity, batched head training, findings,
figures, files, the shallower checkpoint, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from layerscope import activations as acts
from layerscope import finetune, metrics, models
from layerscope.adapters import EncoderAdapter
from layerscope.errors import ConfigError
from layerscope.studies import truncation as trunc
from layerscope.studies.base import VERDICTS
from layerscope.studies.common import evaluation
from layerscope.studies.common.scoring import Scorer
from layerscope.studies.truncation import heads
from layerscope.studies.truncation.findings import droppable, effect_intervals
from layerscope.surgery_kernels import MissingHeadError
from layerscope.tasks import get_task

# 30 smoke steps: the tiny BERT's own head is still at the majority class while a head retrained
# on its features is not, so UNTUNED, TUNED and TUNEDORIG differ.
CFG = trunc.TruncationConfig(task="tiny-sentiment", model="tiny-bert", preset="smoke",
                             max_steps=30, n_examples=64, n_train=200, n_boot=50,
                             drop_top=(2,), freeze_bottom=(2,))

pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def result():
    return trunc.run_truncation(CFG, verbose=False)


@pytest.fixture(scope="module")
def ft_model(result):
    res = finetune.load_or_train(CFG.finetune_configs()[0], verbose=False)
    return res, *acts.encoder_and_tokenizer(res)


def test_shapes_and_undefined_layer0(result):
    """[S, L+1, n, C] logits per line; BERT's layer-0 CLS is constant: NaN with a reason."""
    assert result.n_layers == 4 and len(result.rows) == 64
    for line in trunc.LINES:
        assert result.logits[line].shape == (1, 5, 64, 2)
        assert np.isnan(result.logits[line][:, 0]).all()
        assert np.isfinite(result.logits[line][:, 1:]).all()
        assert result.layers(line) == [1, 2, 3, 4]
        assert "same for every example" in result.undefined[line][0]
        assert np.isnan(result.scores[line][0]) and len(result.bands[line]) == 5


def test_untuned_at_L_equals_finetune_predictions(result, ft_model):
    """Row L of the one-pass kernel is the full model: finetune.predictions' logits."""
    res = ft_model[0]
    pred = finetune.predictions(res)
    np.testing.assert_allclose(result.logits["untuned"][0, 4], pred.logits[result.rows],
                               atol=1e-5)
    assert (result.predictions("untuned")[0, 4] == pred.predictions[result.rows]).all()
    assert (result.labels == pred.labels[result.rows]).all()
    assert result.parity[0]["max_abs_logit_diff"] < 1e-5
    assert result.parity[0]["prediction_agreement"] == 1.0
    fp = result.full_primary  # the task's own metric, with its interval
    assert fp["metric"] == "accuracy" and fp["low"] <= fp["estimate"] <= fp["high"]
    assert fp["estimate"] == pytest.approx(metrics.compute(
        get_task(CFG.task), pred.predictions[result.rows], result.labels)["accuracy"])


def test_untuned_kernel_equals_tuned_head_on_cached_features(result, ft_model):
    """Two routes to UNTUNED: the surgery kernel over encoded batches, and the fine-tuned
    head (heads.head_params) applied to the activation cache's CLS features."""
    _, model, _ = ft_model
    states = np.asarray(acts.load(result.activation_keys["ft0_val"]).states)
    via_features = heads.apply(heads.head_params(model), states[1:]).numpy()
    np.testing.assert_allclose(via_features, result.logits["untuned"][0, 1:], atol=1e-5)


@pytest.mark.parametrize("arch", models.ARCHS)
def test_head_params_equal_the_models_own_head(arch):
    """act(x W1 + b1) W2 + b2 on the first token = EncoderAdapter.head, every architecture."""
    torch.manual_seed(0)
    model = models.load_for_task(f"tiny-{arch}", get_task("tiny-sentiment")).eval()
    hidden = torch.randn(5, 7, model.config.hidden_size)
    with torch.no_grad():
        want = EncoderAdapter(model).head(hidden)
    p = heads.head_params(model)
    assert p.activation == ("gelu" if arch == "electra" else "tanh")
    np.testing.assert_allclose(heads.apply(p, hidden[None, :, 0])[0], want, atol=1e-6)


@pytest.mark.parametrize("regression", [False, True])
def test_batched_head_trainer_equals_training_one_head_alone(regression):
    """Head k of one batched fit follows the trajectory it follows alone (same minibatches):
    same weights, same early-stopping epoch."""
    torch.manual_seed(0)
    model = models.load_for_task("tiny-bert", get_task("tiny-sentiment")).eval()
    init = heads.head_params(model)
    if regression:
        init = heads.HeadParams(init.w1, init.b1, init.w2[..., :1].clone(),
                                init.b2[..., :1].clone(), init.activation)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 120, 32)).astype(np.float32) * np.array([1, 2, 0.5])[:, None, None]
    w = rng.normal(size=32)
    y = (x[0] @ w + rng.normal(size=120)).astype(np.float32)
    y = y if regression else (y > 0).astype(np.int64)
    s = heads.HeadTraining(lr=3e-3, batch_size=16, max_epochs=8, patience=2)
    both = heads.train_heads(init, x, y, regression=regression, settings=s, seed=3)
    assert both.params.k == 3 and both.epochs >= 1
    for k in range(3):
        alone = heads.train_heads(init, x[k:k + 1], y, regression=regression, settings=s,
                                  seed=3)
        assert alone.best_epoch[0] == both.best_epoch[k]
        for a, b in zip((alone.params.w1, alone.params.b1, alone.params.w2, alone.params.b2),
                        (both.params.w1, both.params.b1, both.params.w2, both.params.b2),
                        strict=True):
            np.testing.assert_allclose(a[0], b[k], atol=1e-5)
    assert (both.holdout_loss <= both.initial_loss).all()
    assert (both.best_epoch > 0).any(), "training never improved on the initial head"


def test_standardised_training_starts_from_the_same_function():
    """Training in z-scored coordinates is a reparametrisation: the initial held-out loss is
    the raw head's, and weights mapped back after a negligible step give the raw head back."""
    torch.manual_seed(0)
    init = heads.head_params(models.load_for_task("tiny-bert", get_task("tiny-sentiment")))
    rng = np.random.default_rng(2)
    x = (5 + 1e-3 * rng.normal(size=(2, 50, 32))).astype(np.float32)  # nearly constant, as
    y = rng.integers(0, 2, 50)  # low-layer CLS vectors are
    s = heads.HeadTraining(lr=1e-12, max_epochs=1, holdout=0.2)
    fit = heads.train_heads(init, x, y, regression=False, settings=s)
    np.testing.assert_allclose(heads.apply(fit.params, x), heads.apply(init, x), atol=1e-5)
    hold = torch.randperm(50, generator=torch.Generator().manual_seed(0))[:10]
    raw = torch.nn.functional.cross_entropy(heads.apply(init, x)[:, hold].reshape(-1, 2),
                                            torch.as_tensor(y)[hold].repeat(2),
                                            reduction="none").reshape(2, -1).mean(1)
    np.testing.assert_allclose(fit.initial_loss, raw.numpy(), rtol=1e-5)


def test_tuned_heads_fit_better_than_the_untouched_head(result, ft_model):
    """TUNED at L is at least as good as UNTUNED at L on the training features (it starts
    from that head and keeps its best held-out weights), and far better at some layer."""
    _, model, _ = ft_model
    train = acts.load(result.activation_keys["ft0_train"])
    x, y = np.asarray(train.states)[1:], train.labels
    fit = result.head_fits["tuned"][0]
    assert all(b <= a + 1e-9 for a, b in zip(fit["initial_loss"], fit["holdout_loss"],
                                             strict=True))
    untuned = heads.apply(heads.head_params(model), x).numpy().argmax(-1)  # [4, n]
    s = heads.HeadTraining(lr=CFG.head_lr, batch_size=CFG.head_batch_size,
                           max_epochs=CFG.head_max_epochs, patience=CFG.head_patience)
    refit = heads.train_heads(heads.head_params(model), x, y, regression=False, settings=s,
                              seed=CFG.seed)
    tuned = heads.apply(refit.params, x).numpy().argmax(-1)
    acc_u, acc_t = (untuned == y).mean(1), (tuned == y).mean(1)
    assert acc_t[-1] >= acc_u[-1] - 0.02
    assert (acc_t - acc_u).max() > 0.2
    np.testing.assert_allclose(heads.apply(refit.params, np.asarray(
        acts.load(result.activation_keys["ft0_val"]).states)[1:]).numpy(),
        result.logits["tuned"][0, 1:], atol=1e-5)  # the study's TUNED = this fit


def test_findings_carry_intervals_and_follow_the_verdict_rule(result):
    f = result.findings()
    assert set(f) == {"top_layers_droppable", "tunedorig_below_tuned", "full_beats_baseline"}
    for claim, c in f.items():
        assert c["verdict"] in VERDICTS and c["verdict"] != "UNDEFINED", claim
        iv = c["interval"]
        assert iv["low"] <= iv["estimate"] + 1e-12 or claim != "full_beats_baseline"
        assert iv["low"] <= iv["high"], claim
        expect = ("SUPPORTED" if iv["low"] > c["threshold"] else "NOT SUPPORTED"
                  if iv["high"] < c["threshold"] else "INCONCLUSIVE")
        assert c["verdict"] == expect, claim
    d = f["top_layers_droppable"]
    n = d["numbers"]
    assert d["threshold"] == 0.5 and 0 <= n["n_droppable"] <= 4
    assert n["smallest_depth"] == 4 - n["n_droppable"] == result.smallest_depth
    assert n["n_droppable_conservative"] <= 4
    t = f["tunedorig_below_tuned"]
    assert t["interval"]["estimate"] == pytest.approx(
        t["numbers"]["tuned_mean"] - t["numbers"]["tunedorig_mean"], abs=1e-9)
    text = result.verdict()
    assert "top_layers_droppable" in text and f"{t['interval']['low']:.3f}" in text


def test_droppable_counts_top_blocks_within_tolerance():
    """Counting stops at the first layer (from the top) that falls below -tolerance."""
    L = 6
    d = np.array([np.nan, -0.3, -0.2, 0.0, -0.005, 0.01, 0.0])
    assert droppable(d, [1, 2, 3, 4, 5], L, 0.01) == 3
    assert droppable(d, [1, 2, 3, 4, 5], L, 0.0) == 1
    assert droppable(d, [1, 2, 3, 4, 5], L, 0.5) == 5
    assert droppable(np.array([-1.0, -1, -1, -1]), [0, 1, 2], 3, 0.01) == 0


@pytest.mark.parametrize("metric, classes", [("accuracy", 2), ("f1", 2), ("mcc", 3),
                                             ("macro_f1", 4), ("mcc", 2)])
def test_scorer_equals_metrics_compute_on_every_resample(metric, classes):
    """The one-GEMM bootstrap scores equal metrics.compute on the resampled examples."""
    rng = np.random.default_rng(1)
    task = dataclasses.replace(get_task("tiny-sentiment"), metrics=(metric,),
                               label_names=tuple(str(i) for i in range(classes)))
    y = rng.integers(0, classes, 80)
    p = np.where(rng.random((2, 3, 80)) < 0.6, y, rng.integers(0, classes, (2, 3, 80)))
    sc = Scorer(task, y, n_boot=20, seed=4)
    t = sc.table(p)
    assert t.shape == (2, 21)
    for r in range(2):
        for b in (0, 7, 20):
            ix = np.arange(80) if b == 0 else sc.idx[b - 1]
            want = np.mean([metrics.compute(task, p[r, s, ix], y[ix])[metric] for s in range(3)])
            assert t[r, b] == pytest.approx(want, abs=1e-12)


def test_regression_is_scored_by_mse_against_the_mean_predictor():
    """Regression: the headline is MSE (lower is better), the baseline the mean training
    target, and a model with a lower MSE than the baseline has a positive effect."""
    task = get_task("movies-score")
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    sc = Scorer(task, y, n_boot=30)
    assert sc.metric == "mse" and not sc.higher and sc.sign == -1
    assert metrics.majority_prediction(task, [1.0, 2.0, 6.0]) == 3.0
    good = y + 0.1 * rng.normal(size=200)
    base = sc.table(np.full(200, 0.0))[0]
    rows = sc.table(np.stack([np.full(200, 0.0), good, good])[:, None])  # [L+1=3, 1 + B]
    eff = effect_intervals({"untuned": rows}, base, sign=sc.sign, n_layers=2, tolerance=0.01,
                           method=sc.method(), metric="mse")
    assert eff["full_beats_baseline"]["low"] > 0
    assert eff["top_layers_droppable"]["estimate"] == 1  # layer 1 as good; layer 0 not
    pearson = Scorer(task, y, n_boot=5, metric="pearson")  # the task's own metric
    assert pearson.table(good)[0, 0] == pytest.approx(np.corrcoef(good, y)[0, 1])


def test_ablations_are_scored_at_their_depth(result):
    """drop_top=2 sits at depth L-2 next to UNTUNED there; freeze_bottom=2 at x = 2."""
    by = {a["kind"]: a for a in result.ablations}
    d, fz = by["drop_top"], by["freeze_bottom"]
    assert d["x"] == 2 and fz["x"] == 2 and d["k"] == fz["k"] == 2
    for a in (d, fz):
        assert 0 <= a["value"] <= 1 and a["band"][0] <= a["value"] + 1e-12 <= a["band"][1] + 1e-9
        assert np.asarray(a["predictions"]).shape == (1, 64)
    est, lo, hi = d["minus_untuned"]
    assert est == pytest.approx(d["value"] - result.scores["untuned"][2]) and lo <= hi
    short = finetune.load_or_train(CFG.finetune_configs(drop_top=2)[0], verbose=False)
    assert short.load_model().config.num_hidden_layers == 2


def test_figure_lines_baseline_and_block_boundary(result):
    """Three lines with bands, the full model as the rightmost point, ablations, the
    baseline (hline) and the FT–FT CKA boundary (vline)."""
    fig = result.figure()
    names = [t.name for t in fig.data]
    for n in ("UNTUNED", "TUNED", "TUNEDORIG", "full model"):
        assert n in names
    assert sum(n.endswith(" band") for n in names) >= 3 + 2
    full = next(t for t in fig.data if t.name == "full model")
    assert list(full.x) == [4] and max(max(t.x) for t in fig.data if t.x is not None) == 4
    shapes = [s for s in fig.layout.shapes]
    assert len(shapes) == 1 + (result.blocks is not None)
    assert result.blocks is not None and 1 <= result.blocks["boundary"] <= 4


def test_layer_figure_and_bad_layers(result):
    """A layer shows the confusion matrix of each line; layer out of range: ConfigError."""
    fig = result.layer_figure(2)
    heat = [t for t in fig.data if t.coloraxis == "coloraxis"]
    assert len(heat) == 3 and list(heat[0].x) == ["negative", "positive"]
    z = np.asarray(heat[0].z, dtype=float)
    np.testing.assert_allclose(z.sum(1), 1.0)
    assert result.layer_figure(0).data  # undefined: grey, not an error
    for bad in (5, -1, 2.5):
        with pytest.raises(ConfigError, match="out of range"):
            result.layer_figure(bad)


def test_to_record_is_flat_and_save_writes_files(result, tmp_path):
    rec = result.to_record()
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in rec.values())
    assert rec["study"] == "truncation" and rec["drop_top"] == "2"
    assert rec["verdict.top_layers_droppable"] in VERDICTS and "untuned_4" in rec
    files = result.save(tmp_path)
    for key in ("html", "png", "json", "txt"):
        assert files[key].stat().st_size > 0, key
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    data = json.loads(files["json"].read_text())
    assert data["scores"]["untuned"][0] is None and len(data["predictions"]["tuned"][0]) == 5
    assert str(tmp_path.parent) not in json.dumps(data["activation_keys"])


def test_save_truncated_model_reloads_and_predicts_the_same(result, tmp_path):
    """surgery.save_truncated through the study: a 2-block checkpoint predicting what
    UNTUNED at 2 predicted."""
    out = trunc.save_truncated_model(result, str(tmp_path / "small"), k=2)
    assert out["n_blocks"] == 2 and out["n_parameters"][1] < out["n_parameters"][0]
    assert out["max_abs_logit_diff"] < 1e-5 and out["prediction_agreement"] == 1.0
    with pytest.raises(ConfigError, match="already exists"):
        trunc.save_truncated_model(result, str(tmp_path / "small"), k=2)
    with pytest.raises(ConfigError, match="truncate_at=9 is out of range"):
        trunc.save_truncated_model(result, str(tmp_path / "other"), k=9)


def test_models_without_a_task_head_are_refused(result, ft_model):
    _, _, tok = ft_model
    bare = models.load_encoder("tiny-bert")
    es = evaluation.eval_set("tiny-sentiment", "validation", result.rows[:8], tok, 32)
    with pytest.raises(MissingHeadError, match="no task head"):
        evaluation.untuned_logits(bare, es)
    with pytest.raises(ConfigError, match="no task head"):
        heads.head_params(bare)
    tagger = models.load_for_task("tiny-bert", get_task("tiny-pos"))
    p = heads.head_params(tagger)  # a token head: one linear layer, not the first-token form
    assert p.linear and p.w1 is None and p.w2.shape == (1, 32, 6)


@pytest.mark.parametrize("change, match", [
    ({"task": "sst3"}, "unknown task 'sst3'"),
    ({"model": "tiny-bret"}, "unknown model 'tiny-bret'"),
    ({"seeds": ()}, "seeds=()"),
    ({"n_train": 5}, "n_train=5"),
    ({"n_examples": 3}, "n_examples=3"),
    ({"tolerance": -0.1}, "tolerance=-0.1"),
    ({"drop_top": (0,)}, r"values \[0\]"),
    ({"head_lr": 0.0}, "head_lr > 0"),
    ({"head_holdout": 1.0}, "0 < head_holdout < 1"),
    ({"dtype": "float64"}, "unknown dtype"),
])
def test_bad_config_raises_clear_errors(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CFG, **change)


def test_ablation_out_of_range_is_refused_before_training(result):
    """drop_top must leave a block, freeze_bottom at most L (checked on the loaded model)."""
    with pytest.raises(ConfigError, match=r"ablation k \[4\] out of range .* drop_top k in "
                                          r"1..3"):
        trunc.run_truncation(dataclasses.replace(CFG, drop_top=(4,), freeze_bottom=()),
                             verbose=False)


def test_lists_from_papermill_become_tuples():
    cfg = dataclasses.replace(CFG, seeds=[1], drop_top=[1, 2], freeze_bottom=[])
    assert cfg.seeds == (1,) and cfg.drop_top == (1, 2)
    hash(cfg)


def test_explorer_calls_run_truncation_with_widget_values(result, monkeypatch):
    import plotly.io as pio

    from layerscope.studies.truncation import ui as tui

    seen = []
    monkeypatch.setattr(pio.renderers, "default", "json")
    monkeypatch.setattr(tui.trun, "run_truncation",
                        lambda cfg, verbose=False: seen.append(cfg) or result)
    box = tui.truncation_explorer(CFG, n_layers=4)
    by_name = {c.description: c for c in box.children[0].children if hasattr(c, "value")}
    assert by_name["layer"].max == 4 and by_name["layer"].min == 1
    by_name["seed"].value = 3
    by_name["layer"].value = 2
    box.refresh()
    assert seen and seen[-1].seeds == (3,) and seen[-1].task == CFG.task
    assert seen[-1].drop_top == CFG.drop_top
    box.refresh()  # same config: the kept result, no second run
    assert len(seen) == 1
