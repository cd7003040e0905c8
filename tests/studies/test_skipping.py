"""Study 04 on a tiny model: every span against the model run with those blocks removed,
"skip nothing" against the cached predictions, findings, figures, files, bad spans."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from layerscope import activations as acts
from layerscope import finetune, surgery
from layerscope.errors import ConfigError
from layerscope.studies import skipping as skip
from layerscope.studies.base import VERDICTS
from layerscope.studies.common import evaluation
from layerscope.surgery_kernels import spans

CFG = skip.SkippingConfig(task="tiny-sentiment", model="tiny-bert", preset="smoke",
                          max_steps=40, n_examples=64, n_boot=50)

pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def result():
    return skip.run_skipping(CFG, verbose=False)


@pytest.fixture(scope="module")
def ft_model(result):
    res = finetune.load_or_train(CFG.finetune_configs()[0], verbose=False)
    return res, *acts.encoder_and_tokenizer(res)


def test_shapes_and_matrix(result):
    """All L(L+1)/2 - 1 spans; the matrix is [L, L], grey below the diagonal and at (1, L)."""
    assert result.n_layers == 4 and result.spans == tuple(spans(4)) and len(result.spans) == 9
    assert result.span_logits.shape == (1, 9, 64, 2) and result.full_logits.shape == (1, 64, 2)
    assert np.isfinite(result.span_logits).all()
    m = result.matrix()
    assert m.shape == (4, 4)
    assert np.isnan(m[np.tril_indices(4, -1)]).all() and np.isnan(m[0, 3])
    assert np.isfinite(m[np.triu_indices(4)]).sum() == 9


def test_skipping_nothing_equals_the_fine_tuned_predictions(result, ft_model):
    """The model inside surgery.skipped(model, ()) is the full model: finetune.predictions."""
    pred = finetune.predictions(ft_model[0])
    np.testing.assert_allclose(result.full_logits[0], pred.logits[result.rows], atol=1e-5)
    assert (result.full_predictions()[0] == pred.predictions[result.rows]).all()
    assert result.parity[0]["prediction_agreement"] == 1.0


def test_each_span_equals_the_model_run_with_those_blocks_skipped(result, ft_model):
    """Span (i, j) of the reused-prefix kernel = the model called inside
    surgery.skipped(model, range(i, j + 1)), batch by batch, for every span."""
    _, model, tok = ft_model
    es = evaluation.eval_set(CFG.task, CFG.split, result.rows, tok, CFG.resolved_max_length())
    for r, (i, j) in enumerate(result.spans):
        got = np.empty((64, 2), dtype=np.float32)
        with surgery.skipped(model, range(i, j + 1)), torch.inference_mode():
            for pos, b in es.batches:
                got[pos] = model(**b).logits.numpy()
        np.testing.assert_allclose(result.span_logits[0, r], got, atol=1e-5, err_msg=str((i, j)))
    assert model.config.num_hidden_layers == 4  # restored


def test_findings_carry_intervals_and_follow_the_verdict_rule(result):
    f = result.findings()
    assert set(f) == {"first_block_hurts_most", "later_single_skips_cheap",
                      "longer_spans_hurt_more"}
    for claim, c in f.items():
        assert c["verdict"] in VERDICTS and c["verdict"] != "UNDEFINED", claim
        iv = c["interval"]
        assert iv["low"] <= iv["high"], claim
        expect = ("SUPPORTED" if iv["low"] > c["threshold"] else "NOT SUPPORTED"
                  if iv["high"] < c["threshold"] else "INCONCLUSIVE")
        assert c["verdict"] == expect, claim
    assert f["later_single_skips_cheap"]["threshold"] == -CFG.tolerance
    singles = f["first_block_hurts_most"]["numbers"]["single_skips"]
    w = f["first_block_hurts_most"]["numbers"]["worst_later_block"]
    assert f["first_block_hurts_most"]["interval"]["estimate"] == pytest.approx(
        singles[w] - singles[1])
    assert "first_block_hurts_most" in result.verdict()


def test_by_length_summarises_the_matrix(result):
    """Mean drop per span length = full minus the mean of that length's cells."""
    m, full = result.matrix(), result.full["value"]
    for d in result.by_length:
        cells = [m[i - 1, i + d["length"] - 2] for i in range(1, 6 - d["length"])
                 if np.isfinite(m[i - 1, i + d["length"] - 2])]
        assert d["mean_drop"] == pytest.approx(full - np.mean(cells))
        assert d["min_drop"] <= d["mean_drop"] <= d["max_drop"]


def test_heatmap_uses_block_labels_and_the_metric_scale(result):
    fig = result.figure()
    heat = [t for t in fig.data if t.coloraxis == "coloraxis"]
    assert len(heat) == 1 and list(heat[0].x) == ["1", "2", "3", "4"]
    assert len(fig.data) == 2  # a grey underlay for the undefined cells
    lo, hi = fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax
    m = result.matrix()
    assert lo <= min(result.baseline["value"], np.nanmin(m)) + 1e-12
    assert hi >= max(result.full["value"], np.nanmax(m)) - 1e-12
    assert "Full model (nothing skipped)" in fig.layout.annotations[-1].text
    assert result.curves_figure().data and result.length_figure().data


def test_span_figure_and_bad_spans(result):
    """A span shows the 2x2 right/wrong table against the full model; bad spans are named."""
    fig = result.span_figure(2, 3)
    heat = [t for t in fig.data if t.coloraxis == "coloraxis"]
    assert len(heat) == 2 and list(heat[0].x) == ["right", "wrong"]
    assert np.asarray(heat[0].z, dtype=float).sum() == pytest.approx(1.0)
    for (i, j), match in [((3, 2), "is empty"), ((0, 2), "cannot be skipped"),
                          ((1, 4), "every block"), ((5, 5), "cannot be skipped"),
                          ((1.5, 2), "use an int")]:
        with pytest.raises(ConfigError, match=match):
            result.span_figure(i, j)


def test_to_record_is_flat_and_save_writes_files(result, tmp_path):
    rec = result.to_record()
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in rec.values())
    assert rec["study"] == "skipping" and "skip_2_3" in rec and "skip_1_4" not in rec
    files = result.save(tmp_path)
    for key in ("html", "png", "json", "txt", "skipping_position_png", "skipping_length_html"):
        assert files[key].stat().st_size > 0, key
    data = json.loads(files["json"].read_text())
    assert data["matrix"][1][0] is None and data["matrix"][0][3] is None
    assert data["matrix"][1][2] == pytest.approx(result.score(2, 3))


@pytest.mark.parametrize("change, match", [
    ({"model": "tiny-bret"}, "unknown model 'tiny-bret'"),
    ({"seeds": (1, 1)}, "distinct"),
    ({"n_examples": 2}, "n_examples=2"),
    ({"n_boot": 1}, "n_boot=1"),
])
def test_bad_config_raises_clear_errors(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CFG, **change)


def test_explorer_calls_run_skipping_with_widget_values(result, monkeypatch):
    import plotly.io as pio

    from layerscope.studies.skipping import ui as sui

    seen = []
    monkeypatch.setattr(pio.renderers, "default", "json")
    monkeypatch.setattr(sui.srun, "run_skipping",
                        lambda cfg, verbose=False: seen.append(cfg) or result)
    box = sui.skipping_explorer(CFG, n_layers=4)
    by_name = {c.description: c for c in box.children[0].children if hasattr(c, "value")}
    by_name["seed"].value = 2
    by_name["first"].value = 2
    by_name["last"].value = 3
    box.refresh()
    assert seen and seen[-1].seeds == (2,) and seen[-1].n_examples == CFG.n_examples
    by_name["last"].value = 1  # an empty span: one readable error line, the widget lives on
    box.refresh()
    assert "failed" in box.children[1].value and len(seen) == 1


def test_several_seeds_average_each_seeds_metric(result):
    """With seeds (0, 1) every cell is the mean of the two models' metrics on the same rows;
    seed 0's logits are those of the one-seed run."""
    from layerscope import metrics
    from layerscope.tasks import get_task

    r = skip.run_skipping(dataclasses.replace(CFG, seeds=(0, 1)), verbose=False)
    assert r.span_logits.shape == (2, 9, 64, 2) and len(r.parity) == 2
    np.testing.assert_allclose(r.span_logits[0], result.span_logits[0], atol=1e-6)
    task = get_task(CFG.task)
    for k, (i, j) in enumerate(r.spans):
        p = r.predictions(i, j)
        want = np.mean([metrics.compute(task, p[s], r.labels)["accuracy"] for s in range(2)])
        assert r.span_scores[k] == pytest.approx(want)
