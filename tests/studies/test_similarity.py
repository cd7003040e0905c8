"""Study 02 on tiny models: matrices, undefined cells, findings, figures, files, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from layerscope import activations as acts
from layerscope import paths, plots
from layerscope.errors import CacheError
from layerscope.studies import similarity as sim
from layerscope.studies.base import VERDICTS

CFG = sim.SimilarityConfig(task="tiny-sentiment", model="tiny-bert", preset="smoke", seeds=(0, 1),
                           max_steps=30, n_examples=48, checkpoint_steps=(0, 15, 30), n_boot=50,
                           n_perm=30)


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def result():
    return sim.run_similarity(CFG, verbose=False)


def test_shapes_and_comparisons(result):
    """Four Phang et al. comparisons, each [L+1, L+1] for the 4-block tiny model."""
    assert set(result.matrices) == {"orig_orig", "ft_orig", "ft_ft", "ft1_ft2"}
    assert result.n_layers == 4
    for m in result.matrices.values():
        assert m.shape == (5, 5) and m.dtype == np.float64


def test_self_comparisons_are_symmetric_with_unit_diagonal(result):
    """ORIG–ORIG and FT–FT are symmetric with 1 on the diagonal wherever defined."""
    for name in ("orig_orig", "ft_ft"):
        m = result.matrices[name]
        np.testing.assert_allclose(m, m.T, atol=1e-12, equal_nan=True)
        d = np.diag(m)
        np.testing.assert_allclose(d[np.isfinite(d)], 1.0, atol=1e-9)
        assert np.isfinite(d).sum() == 4


def test_layer0_cls_is_undefined_with_a_reason(result):
    """BERT's layer-0 CLS is the same for every sentence: NaN row/column, never 1 or 0."""
    for name, m in result.matrices.items():
        assert np.isnan(m[0]).all() and np.isnan(m[:, 0]).all(), name
        assert np.isfinite(m[1:, 1:]).all(), name
        assert any("layer emb" in r and "same for every example" in r
                   for r in result.undefined[name]), name
    assert "Grey = undefined" in " ".join(result.undefined_notes())


def test_fine_tuning_changes_the_matrices(result):
    """FT–FT differs from ORIG–ORIG, and FT–ORIG is not the identity comparison."""
    assert np.nanmax(np.abs(result.matrices["ft_ft"] - result.matrices["orig_orig"])) > 0.05
    assert np.nanmax(np.abs(np.diag(result.matrices["ft_orig"])[1:] - 1)) > 0.05


def test_drift_starts_at_one(result):
    """The step-0 snapshot is the untuned encoder: similarity 1 with itself at every layer."""
    assert result.drift.shape == (3, 5) and result.drift_steps == (0, 15, 30)
    np.testing.assert_allclose(result.drift[0, 1:], 1.0, atol=1e-6)
    assert np.isnan(result.drift[:, 0]).all()
    assert result.drift[-1, 1:].min() < 0.99


def test_drift_reads_the_snapshots_not_the_end_point(result):
    """drift = top third's similarity to untuned at the first snapshot after 0 minus at the last;
    it is not the FT–ORIG statistic of top_layers_change_most (issue 14: both printed 0.867)."""
    f = result.findings()
    d, t = f["drift"], f["top_layers_change_most"]
    top = range(4 - 4 // 3 + 1, 5)
    first, last = result.drift[1], result.drift[2]
    expect = np.mean([first[i] for i in top]) - np.mean([last[i] for i in top])
    assert d["interval"]["estimate"] == pytest.approx(expect, abs=1e-6)  # fp32 GEMMs
    assert d["numbers"]["first_step"] == 15 and d["numbers"]["last_step"] == 30
    assert d["interval"]["estimate"] != pytest.approx(t["interval"]["estimate"], abs=1e-6)


def test_drift_with_one_snapshot_after_step_0_is_undefined(result):
    """(0, 30): no change over training to measure between snapshots -> UNDEFINED with why."""
    one = dataclasses.replace(result, drift_steps=(0, 30), drift=result.drift[[0, 2]],
                              effects={k: v for k, v in result.effects.items() if k != "drift"})
    d = one.findings()["drift"]
    assert d["verdict"] == "UNDEFINED" and "fewer than two after step 0" in d["why"]


def test_findings_carry_numbers_intervals_and_verdicts(result):
    """Every claim has finite numbers, a bootstrap interval around its estimate and a verdict
    that follows the interval (README: Layout); the verdict text quotes the interval."""
    f = result.findings()
    for claim in ("block_structure", "top_layers_change_most", "seeds_agree_on_top", "drift",
                  "cell"):
        c = f[claim]
        assert c["verdict"] in VERDICTS and c["verdict"] != "UNDEFINED", claim
        iv = c["interval"]
        assert iv["low"] <= iv["high"], claim
        expect = ("SUPPORTED" if iv["low"] > c["threshold"] else "NOT SUPPORTED"
                  if iv["high"] < c["threshold"] else "INCONCLUSIVE")
        assert c["verdict"] == expect, claim
    t = f["top_layers_change_most"]["numbers"]
    assert np.isfinite([t["diag_top"], t["diag_bottom"], t["top_best_match_any_orig"]]).all()
    iv = f["top_layers_change_most"]["interval"]
    assert iv["estimate"] == pytest.approx(t["diag_bottom"] - t["diag_top"], abs=1e-6)
    b = f["block_structure"]["numbers"]
    assert 1 <= b["ft_ft_boundary"] <= 4 and np.isfinite(b["ft_ft_score"])
    assert f["block_structure"]["interval"]["estimate"] == pytest.approx(
        b["ft_ft_score"] - b["orig_orig_score"], abs=1e-6)
    c = f["cell"]
    assert 0 < c["numbers"]["p_value"] <= 1 and c["threshold"] == c["numbers"]["perm_q99"]
    text = result.verdict()
    assert f"{iv['low']:.3f}" in text and "block_structure" in text


def test_result_holds_keys_and_reloads_through_the_cache(result):
    """No absolute path in the result; activations.load(key) verifies and returns the arrays;
    a damaged entry is refused with how to recompute it."""
    home = str(paths.home())
    assert home not in json.dumps(result.to_dict(), default=str)
    key = result.activation_keys["ft"]
    a = acts.load(key)
    assert a.states.shape[0] == 5 and a.key == key
    with pytest.raises(CacheError, match="rerun the study"):
        acts.load("0" * 20)


def test_to_record_is_flat(result):
    """One row of scalars for a sweep's results table, with a verdict column per claim."""
    rec = result.to_record()
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in rec.values())
    assert rec["study"] == "similarity" and rec["task"] == "tiny-sentiment"
    assert rec["verdict.block_structure"] in VERDICTS and rec["seeds"] == "0,1"


def test_cell_statistics(result):
    """Bootstrap interval and permutation baseline for a chosen cell; undefined cells refuse."""
    boot = result.cell_bootstrap("ft_ft", 1, 4, n_boot=40)
    assert boot["estimate"] == pytest.approx(result.matrices["ft_ft"][1, 4], abs=1e-6)
    perm = result.cell_permutation("orig_orig", 1, 2, n_perm=30)
    assert perm["perm_mean"] < perm["value"]
    with pytest.raises(ValueError, match="undefined"):
        result.cell_bootstrap("ft_orig", 0, 2)
    with pytest.raises(ValueError, match="layer index 9 out of range"):
        result.cell_bootstrap("ft_orig", 9, 2)
    with pytest.raises(ValueError, match="'cross' was not computed"):
        result.cell_permutation("cross", 1, 1)


def test_figure_has_one_scale_and_labels(result):
    """Four panels share one 0–1 colour axis; layer labels run emb, 1..L."""
    fig = result.figure()
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
    heat = [t for t in fig.data if t.coloraxis == "coloraxis"]
    assert len(heat) == 4 and list(heat[0].x) == ["emb", "1", "2", "3", "4"]
    assert [a.text for a in fig.layout.annotations][:4] == ["ORIG–ORIG", "FT–ORIG", "FT–FT",
                                                            "FT[1]–FT[2]"]
    assert result.drift_figure().data


def test_save_writes_html_png_json(result, tmp_path):
    """save() writes the figures (HTML, PNG) and the matrices as JSON, NaN as null."""
    files = result.save(tmp_path)
    for key in ("html", "png", "json", "txt", "drift_html", "drift_png"):
        assert files[key].exists() and files[key].stat().st_size > 0, key
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    data = json.loads(files["json"].read_text())
    assert data["matrices"]["orig_orig"][0][0] is None
    assert data["matrices"]["orig_orig"][1][1] == pytest.approx(1.0)
    assert data["layer_labels"] == ["emb", "1", "2", "3", "4"]


def test_rsa_and_cross_model_with_mean_pooling(result):
    """RSA (Merchant et al.) and a cross-model comparison run on the cached fine-tuned models."""
    cfg = dataclasses.replace(CFG, measure="rsa", pooling="mean", cross_model="tiny-roberta",
                              ci_cell=None)
    r = sim.run_similarity(cfg, verbose=False)
    assert set(r.matrices) == {"orig_orig", "ft_orig", "ft_ft", "ft1_ft2", "cross"}
    assert r.matrices["cross"].shape == (5, 5)
    assert all(np.isfinite(m).all() for m in r.matrices.values())  # mean pooling: all defined
    np.testing.assert_allclose(np.diag(r.matrices["orig_orig"]), 1.0, atol=1e-9)
    assert not any(r.undefined.values())
    assert r.figure("cross").data
    np.testing.assert_allclose(r.drift[0], 1.0, atol=1e-9)  # step 0 = untuned, every layer


def test_grid_figure(result):
    """Fig. 2-style grid: one panel per (model, task)."""
    fig = sim.grid_figure([result], "ft_ft")
    assert fig.layout.coloraxis.cmax == 1.0 and len(fig.layout.annotations) == 1


def test_plot_nan_cells_are_grey_not_numbers():
    """An all-NaN row is drawn by the grey underlay only."""
    m = np.full((3, 3), 0.5)
    m[0] = np.nan
    fig = plots.panels_figure([plots.Panel(m, "t", "A", "B")], title="x")
    under, values = fig.data
    assert np.isnan(np.asarray(values.z, dtype=float)[0]).all()
    assert np.isfinite(np.asarray(under.z, dtype=float)[0]).all()


@pytest.mark.parametrize("change, match", [
    ({"measure": "svcca"}, "unknown measure 'svcca'"),
    ({"kernel": "poly"}, "unknown kernel 'poly'"),
    ({"pooling": "max"}, "unknown pooling 'max'"),
    ({"task": "sst3"}, "unknown task 'sst3'"),
    ({"model": "tiny-bret"}, "unknown model 'tiny-bret'"),
    ({"n_examples": 3}, "n_examples=3 is too small"),
    ({"seeds": ()}, "seeds=()"),
    ({"checkpoint_steps": (0, 999)}, r"checkpoint_steps \[999\]"),
    ({"ci_cell": ("ft_xx", 1, 1)}, "ci_cell comparison 'ft_xx'"),
    ({"rsa_dissimilarity": "euclid"}, "unknown rsa_dissimilarity 'euclid'"),
])
def test_bad_config_raises_clear_errors(change, match):
    """Each bad value is named, with the valid choices or the fix."""
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CFG, **change)


def test_lists_from_papermill_become_tuples():
    """Parameters arrive as lists from papermill/YAML; the config stays hashable."""
    cfg = dataclasses.replace(CFG, seeds=[2, 3], checkpoint_steps=[0], ci_cell=["ft_ft", 1, 2])
    assert cfg.seeds == (2, 3) and cfg.ci_cell == ("ft_ft", 1, 2)
    hash(cfg)


def test_explorer_calls_run_similarity_with_widget_values(result, monkeypatch):
    """The widget maps its controls onto the config and renders through run_similarity."""
    import plotly.io as pio

    from layerscope.studies.similarity import ui as similarity_ui

    seen = []
    monkeypatch.setattr(pio.renderers, "default", "json")
    monkeypatch.setattr(similarity_ui.sim, "run_similarity",
                        lambda cfg, verbose=False: seen.append(cfg) or result)
    box = similarity_ui.similarity_explorer(CFG)
    controls = box.children[0].children
    by_name = {c.description: c for c in controls if hasattr(c, "value")}
    by_name["seed"].value = 5
    by_name["pooling"].value = "mean"
    by_name["compare"].value = "ft_orig"
    box.refresh()
    assert seen and seen[-1].seeds == (5, 6) and seen[-1].pooling == "mean"
    assert seen[-1].task == CFG.task and seen[-1].checkpoint_steps == CFG.checkpoint_steps


# --------------------------------------------------------------------------- issue 18's kinds
@pytest.mark.parametrize("task, pooling, measure", [
    ("tiny-squad", "auto", "cka"),     # auto: the context mean of each question's first window
    ("tiny-squad", "answer", "rsa"),   # the gold answer span's mean
    ("tiny-parse", "auto", "rsa"),     # auto: one row per word
])
def test_qa_and_parsing_end_to_end(task, pooling, measure):
    """Study 02 on a tiny QA fine-tune and a tiny biaffine-parser fine-tune: every comparison
    on the rows the activations hold (the FT–ORIG cell recomputed from the cached arrays), the
    fine-tuned encoder differs from the untuned one, the findings have verdicts."""
    from layerscope.measures import cka, rsa

    cfg = sim.SimilarityConfig(task=task, model="tiny-bert", preset="smoke", seeds=(0, 1),
                               max_steps=20, n_examples=40, pooling=pooling, measure=measure,
                               n_boot=10, n_perm=10)
    auto = {"tiny-squad": "context", "tiny-parse": "word"}[task]
    assert cfg.pooling == (auto if pooling == "auto" else pooling)
    r = sim.run_similarity(cfg, verbose=False)
    assert set(r.matrices) == {"orig_orig", "ft_orig", "ft_ft", "ft1_ft2"}
    orig, ft = acts.load(r.activation_keys["orig"]), acts.load(r.activation_keys["ft"])
    assert orig.spec.pooling == cfg.pooling and r.n_rows == orig.states.shape[1]
    if task == "tiny-squad":
        assert (orig.labels == -1).all() and r.n_rows == len(set(orig.ids[:, 0])) <= 40
    else:
        assert r.n_rows > 40 and set(orig.labels) <= set(range(6))  # words, with relations
    a, b = np.asarray(ft.states[3:4]), np.asarray(orig.states[3:4])
    cell = (rsa.rsa_matrix(a, b, seed=cfg.seed) if measure == "rsa" else cka.cka_matrix(a, b))
    assert r.matrices["ft_orig"][3, 3] == pytest.approx(float(np.asarray(cell)[0, 0]), abs=1e-6)
    assert np.nanmax(np.abs(np.asarray(ft.states) - np.asarray(orig.states))) > 1e-3
    assert np.isfinite(r.matrices["ft_orig"][1:, 1:]).all()
    f = r.findings()
    assert f and all(c["verdict"] in VERDICTS for c in f.values())


def test_explorer_keeps_a_pooling_only_where_the_task_takes_it():
    """Switching the explorer's task to one whose kind lacks the pooling gives that kind's."""
    from layerscope.studies.similarity import ui as similarity_ui

    qa = similarity_ui.config_for(CFG, task="tiny-squad", model="tiny-bert", seed=0,
                                  measure="cka", kernel="linear", pooling="cls")
    assert qa.pooling == "cls"
    back = similarity_ui.config_for(qa, task="tiny-sentiment", model="tiny-bert", seed=0,
                                    measure="cka", kernel="linear", pooling="context")
    assert back.pooling == "cls"
    parse = similarity_ui.config_for(CFG, task="tiny-parse", model="tiny-bert", seed=0,
                                     measure="cka", kernel="linear", pooling="answer")
    assert parse.pooling == "word"
