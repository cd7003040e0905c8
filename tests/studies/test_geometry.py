"""Study 05 on tiny models: shapes, invariants, findings, figures, files, bad input, widgets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from layerscope import activations as acts
from layerscope import paths
from layerscope.errors import ConfigError
from layerscope.studies import geometry as geo
from layerscope.studies.base import VERDICTS
from layerscope.studies.geometry import dynamics, ui

CFG = geo.GeometryConfig(task="tiny-sentiment", model="tiny-bert", preset="smoke", seeds=(0, 1),
                         max_steps=30, n_train=64, n_test=48, checkpoint_steps=(0, 15, 30),
                         n_folds=2, n_predict=8, probe_max_iter=40, cross_task=("tiny-pos",),
                         out_of_domain=("tweets",), n_ood=32, n_boot=20)
POS = geo.GeometryConfig(task="tiny-pos", model="tiny-bert", preset="smoke", pooling="word",
                         max_steps=30, n_train=40, n_test=24, max_points=200,
                         checkpoint_steps=(0, 30), n_folds=2, n_predict=0, probe_grid="none")

pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def result():
    return geo.run_geometry(CFG, verbose=False)


@pytest.fixture(scope="module")
def pos():
    return geo.run_geometry(POS, verbose=False)


def test_shapes(result):
    """Every analysed layer (emb, 1..4) of orig, each checkpoint and ft; one table row each."""
    assert result.layers == (0, 1, 2, 3, 4) and result.n_layers == 4
    assert result.states == ("orig", "step-0", "step-15", "step-30", "ft")
    assert result.sim_to_orig.shape == (5, 5)
    assert all(len(v) == 5 for v in result.geometry.values())
    assert result.probe["ft"].shape == (5, 3) and len(result.tables()["layers"]) == 5
    assert result.min_distances(-1).shape == (5, 2)
    assert result.step_x() == [0, 0, 15, 30, 30]


def test_layer0_cls_is_undefined_with_a_reason(result):
    """BERT's layer-0 CLS is one vector under both labels: no clustering, distances NaN, said."""
    g = result.geometry["orig"][0]
    assert g.n_clusters is None and np.isnan(g.min_distances).all()
    assert "two or more labels" in g.why
    assert np.isnan(result.probe["orig"][0]).all() and result.probe_why
    top = result.geometry["ft"][-1]
    assert top.separable and np.isfinite(top.min_distances).all()


def test_step0_snapshot_is_the_untuned_model(pos):
    """The step-0 snapshot has the untuned weights: the same activation key, the same DirectProbe
    distances, spatial similarity 1 with the untuned layer; later steps differ."""
    j = pos.states.index("step-0")
    for layer in range(len(pos.layers)):
        a, b = pos.geometry["orig"][layer], pos.geometry["step-0"][layer]
        assert a.n_clusters == b.n_clusters
        np.testing.assert_array_equal(a.min_distances, b.min_distances)
    defined = np.isfinite(pos.sim_to_orig[j])
    assert defined.any()
    np.testing.assert_allclose(pos.sim_to_orig[j][defined], 1.0, atol=1e-12)
    assert pos.geometry["ft"][-1].n_labels == len(pos.label_names) >= 3


def test_spatial_similarity_of_a_representation_with_itself_is_one(pos):
    g = next(g for g in pos.geometry["ft"] if g.distance_vector is not None)
    assert dynamics.spatial(g, g) == (pytest.approx(1.0), "")


def test_findings_carry_intervals_and_verdicts_by_the_rule(result, pos):
    """Verdicts follow the interval; undefined ones say why (2 labels: no spatial similarity)."""
    for r in (result, pos):
        for cid, f in r.findings().items():
            assert f["verdict"] in VERDICTS, cid
            iv = f["interval"]
            if f["verdict"] == "UNDEFINED":
                assert f.get("why"), cid
                continue
            if iv["low"] is None:
                assert f["verdict"] == "INCONCLUSIVE", cid
                continue
            assert iv["low"] <= iv["estimate"] + 1e-12 <= iv["high"] + 2e-12, cid
            expect = ("SUPPORTED" if iv["low"] > f["threshold"] else "NOT SUPPORTED"
                      if iv["high"] < f["threshold"] else "INCONCLUSIVE")
            assert f["verdict"] == expect, cid
    f = result.findings()
    assert {"distances_increase", "clusters_fall_or_stay", "probe_improves", "cross_tiny-pos",
            "ood_changes_less_cka", "ood_changes_less_rsa"} <= set(f)
    assert f["top_similarity_high"]["verdict"] == "UNDEFINED"
    assert "at least 3 labels" in f["top_similarity_high"]["why"]
    assert f["clusters_fall_or_stay"]["threshold"] == -0.5
    assert "disjoint folds" in f["distances_increase"]["interval"]["method"]
    assert "distances_increase" in result.verdict()


def test_cross_task_and_out_of_domain(result):
    x = result.cross_task["tiny-pos"]
    assert x["layer"] == 4 and len(x["labels"]) >= 3 and len(x["fold_changes"]) == 2
    o = result.out_of_domain
    assert o["sets"] == ["tiny-sentiment", "tweets"] and o["n"] == 32
    for m in ("cka", "rsa"):
        d = o["diagonal"][m]["tweets"]
        assert len(d) == 5 and np.isnan(d[0]) and np.isfinite(d[1:]).all()
        e = o["effects"][m]
        assert e["low"] <= e["high"]
    assert result.ood_figure().data


def test_pca_paths_have_one_point_per_checkpoint(result):
    fig = result.paths_figure()
    assert len(fig.data) == 2 * 2  # 2 layers x 2 labels
    assert all(len(t.x) == len(result.states) for t in fig.data)
    assert len(result.displacement_figure().data) == 5 * 2
    assert len(result.figure().data) == 2


def test_to_record_is_flat_and_holds_no_paths(result):
    rec = result.to_record()
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in rec.values())
    assert rec["study"] == "geometry" and rec["cross_task"] == "tiny-pos"
    assert rec["verdict.distances_increase"] in VERDICTS
    assert str(paths.home()) not in json.dumps(result.to_dict(), default=str)


def test_save_writes_html_png_json(result, tmp_path):
    files = result.save(tmp_path)
    for key in ("html", "png", "json", "txt", "paths_png", "displacement_html",
                "out_of_domain_png"):
        assert files[key].exists() and files[key].stat().st_size > 0, key
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    data = json.loads(files["json"].read_text())
    assert data["geometry"]["orig"][0]["n_clusters"] is None
    assert data["tables"]["layers"][-1]["clusters_ft"] == 2


def test_dynamics_helpers():
    f = dynamics.folds(10, 3, seed=1)
    assert sorted(np.concatenate(f).tolist()) == list(range(10))
    assert not (f[0] == np.arange(len(f[0]))).all() or len(f[0]) < 2
    xy = dynamics.pca_2d(np.array([[0.0, 0, 0], [2, 0, 0]]))
    assert xy.shape == (2, 2) and np.allclose(xy[:, 1], 0) and abs(xy[1, 0] - xy[0, 0]) == 2
    d = dynamics.displacements(np.zeros((2, 3)), np.array([[3.0, 0, 0], [0, 4, 0]]))
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), [3, 4])  # uncentred: lengths kept
    # two separable blobs: 2 clusters, distance between the hulls' nearest points
    x = np.array([[0.0, 0], [0, 1], [3, 0], [3, 1]])
    g = dynamics.layer_geometry(x, np.array([0, 0, 1, 1]), 2)
    assert g.separable and np.allclose(g.min_distances, 3.0)


@pytest.mark.parametrize("change, match", [
    ({"task": "sst3"}, "unknown task 'sst3'"),
    ({"model": "tiny-bret"}, "unknown model 'tiny-bret'"),
    ({"probe_grid": "huge"}, "unknown probe_grid 'huge'"),
    ({"directprobe_test": "svm"}, "unknown directprobe_test 'svm'"),
    ({"seeds": ()}, r"seeds=\(\)"),
    ({"n_folds": 1}, "n_folds=1"),
    ({"n_train": 10, "n_folds": 4}, "n_folds=4 folds of 10 points"),
    ({"checkpoint_steps": (0, 999)}, r"checkpoint_steps \[999\]"),
    ({"cross_task": ("tiny-sentiment",)}, "cross_task 'tiny-sentiment' is the fine-tuning"),
    ({"out_of_domain": ("tiny-pos",)}, "out_of_domain 'tiny-pos'"),
    ({"pooling": "word"}, "pooling 'word' needs a token task"),
    ({"task": "movies-score"}, "'regression': geometry needs class labels"),
    ({"preset": "fast"}, "unknown preset 'fast'"),
])
def test_bad_config_raises_clear_errors(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CFG, **change)


def test_layer_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match=r"layers \[9\] out of range: this model has layers 0..4"):
        geo.run.resolve_layers((9,), 4, "layers")
    assert geo.run.resolve_layers((-1, 1), 4, "layers") == (1, 4)


@pytest.mark.parametrize("layer", [5, 9, -6, -10])
def test_result_layer_out_of_range_raises_instead_of_wrapping(result, layer):
    """Layer 5 of a 4-block model is not layer 0 (5 % 5): the accessors name the layer and the
    valid range; -1 is still the top."""
    with pytest.raises(ConfigError, match=rf"layer {layer} out of range: this model has "
                                          r"layers 0\.\.4"):
        result.column(layer)
    with pytest.raises(ConfigError, match=rf"layer {layer} out of range"):
        result.min_distances(layer)
    with pytest.raises(ConfigError, match=rf"layer {layer} out of range"):
        result.figure(layer)
    assert result.column(-1) == result.column(4) == len(result.layers) - 1
    assert result.column(-5) == result.column(0) == 0


def test_explorer_calls_run_geometry_with_widget_values(result, monkeypatch):
    seen = []

    def fake(cfg, verbose=True):
        seen.append(cfg)
        return result

    monkeypatch.setattr(ui, "run_geometry", fake)
    box = ui.geometry_explorer(CFG, n_layers=4, steps=result.steps)
    c = box.controls
    c["task"].value, c["seed"].value, c["layer"].value = "tiny-pos", 3, 2
    c["checkpoint"].value, c["view"].value = "step-15", "paths"
    box.refresh()
    cfg = seen[-1]
    assert (cfg.task, cfg.model, cfg.seeds[0], cfg.pooling) == ("tiny-pos", "tiny-bert", 3,
                                                                 "word")


def test_cluster_counts_that_cannot_vary_are_undefined(result):
    """Issue 14: '0 [0, 0]' is no evidence. 32 points a fold in 32 dimensions are separable under
    any labelling (Cover 1965), so every fold has one cluster per label before and after."""
    f = result.findings()["clusters_fall_or_stay"]
    reps = f["numbers"]["fold_effects"]
    assert len(reps) == 2 * 2 and len(set(reps)) == 1
    assert f["verdict"] == "UNDEFINED" and "cannot vary" in f["why"] and "Cover 1965" in f["why"]


# --------------------------------------------------------------------------- issue 18's kinds
QA = geo.GeometryConfig(task="tiny-squad", model="tiny-bert", preset="smoke", max_steps=20,
                        n_train=40, n_test=24, max_points=200, n_folds=2, probe_max_iter=30,
                        cross_task=("tiny-pos",), out_of_domain=("tweets",), n_ood=24,
                        n_boot=10)
PARSE = geo.GeometryConfig(task="tiny-parse", model="tiny-bert", preset="smoke", max_steps=20,
                           n_train=30, n_test=16, max_points=150, checkpoint_steps=(0, 20),
                           n_folds=2, n_predict=4, probe_max_iter=30, layers=(0, 2, 4),
                           out_of_domain=("tweets",), n_ood=24, n_boot=10)


@pytest.fixture(scope="module")
def qa():
    return geo.run_geometry(QA, verbose=False)


def test_qa_fine_tune_is_read_through_other_labels_and_out_of_domain(qa, tmp_path):
    """A QA task has no class labels: no in-domain layer is analysed, the in-domain findings
    are UNDEFINED with that reason; tiny-pos's labels are read off the QA-fine-tuned encoder
    and its question windows are compared with tweets (Merchant et al. 2020)."""
    assert QA.pooling == "context" and QA.ood_pooling() == "mean" and QA.steps() == ()
    assert dataclasses.replace(QA, out_of_domain=None).out_of_domain == ("tweets", "amazon",
                                                                          "nyt")
    assert dataclasses.replace(PARSE, out_of_domain=None).out_of_domain == ("tweets", "amazon",
                                                                             "nyt")
    assert "no class labels" in qa.no_labels and qa.layers == () and qa.label_names == ()
    assert qa.states == ("orig", "ft") and qa.n_layers == 4
    f = qa.findings()
    for claim in ("distances_increase", "clusters_fall_or_stay", "top_similarity_high",
                  "train_test_diverge", "probe_improves"):
        assert f[claim]["verdict"] == "UNDEFINED" and f[claim]["why"] == qa.no_labels, claim
    assert f["cross_tiny-pos"]["verdict"] in VERDICTS
    assert {"ood_changes_less_cka", "ood_changes_less_rsa"} <= set(f)
    x = qa.cross_task["tiny-pos"]
    assert x["layer"] == 4 and x["n_points"] > 40 and set(x["probe"]) == {"orig", "ft"}
    assert x["min_distances"]["orig"] != x["min_distances"]["ft"]  # the QA encoder moved
    o = qa.out_of_domain
    assert o["sets"] == ["tiny-squad", "tweets"] and o["pooling"] == "mean" and o["n"] == 24
    for m in ("cka", "rsa"):
        assert np.isfinite(o["diagonal"][m]["tiny-squad"][1:]).all()
        assert o["effects"][m]["low"] <= o["effects"][m]["high"]
    windows = acts.load(qa.activation_keys["ood:ft"])  # the in-domain question windows
    assert windows.spec.task == "tiny-squad" and windows.spec.pooling == "mean"
    assert windows.states.shape[1] == 24 and (windows.labels == -1).all()
    assert qa.check() == [] and qa.tables() == {"layers": []} and qa.notes()[0] == qa.no_labels
    assert len(qa.figure().data) == len(qa._ood_lines()[0])
    assert "undefined" in qa.paths_figure().layout.title.text
    files = qa.save(tmp_path)
    for key in ("html", "png", "json", "out_of_domain_png", "cross_task_png"):
        assert files[key].exists() and files[key].stat().st_size > 0, key
    back = geo.GeometryResult.read(files["json"])
    assert back.no_labels == qa.no_labels and back.check() == []
    assert back.findings()["cross_tiny-pos"]["verdict"] == f["cross_tiny-pos"]["verdict"]


def test_parser_fine_tune_clusters_relations_and_compares_out_of_domain():
    """tiny-parse: one point per word labelled with its relation (probes and DirectProbe as for
    tagging); out-of-domain on the parser's sentences and tweets, both mean-pooled."""
    r = geo.run_geometry(PARSE, verbose=False)
    assert PARSE.pooling == "word" and r.states == ("orig", "step-0", "step-20", "ft")
    assert not r.no_labels and r.layers == (0, 2, 4)
    assert "root" in r.label_names and set(r.label_names) <= set(PARSE.task_spec.label_names)
    assert r.n_points["train"] > 30  # several words a sentence
    assert np.isfinite(r.probe["ft"][-1, 0]) and r.geometry["ft"][-1].n_labels >= 4
    o = r.out_of_domain
    assert o["sets"] == ["tiny-parse", "tweets"] and o["pooling"] == "mean" and o["n"] == 24
    assert np.isfinite(o["diagonal"]["cka"]["tiny-parse"][1:]).all()
    assert r.check() == [] and set(r.findings()) >= {"distances_increase", "probe_improves",
                                                      "ood_changes_less_cka"}


@pytest.mark.parametrize("cfg, match", [
    (dict(task="tiny-squad"), r"no class labels.*cross_task=\('brown-pos',\)"),
    (dict(task="tiny-squad", cross_task=("tiny-pos",), checkpoint_steps=(0, 10)),
     "checkpoints trace in-domain label geometry"),
    (dict(task="tiny-sentiment", cross_task=("tiny-squad",)), "cross_task 'tiny-squad' has no "
                                                              "class labels"),
    (dict(task="tiny-parse", pooling="cls"), "labels are on words.*pooling='word'"),
    (dict(task="tiny-sentiment", out_of_domain=("tiny-parse",)), "out_of_domain 'tiny-parse'"),
    (dict(task="tiny-squad", pooling="word", cross_task=("tiny-pos",)), "pooling 'word'"),
])
def test_qa_and_parsing_configs_refused_clearly(cfg, match):
    with pytest.raises(ValueError, match=match):
        geo.GeometryConfig(model="tiny-bert", preset="smoke", n_train=16, n_test=16, **cfg)


def test_explorer_switches_to_qa_and_parsing_tasks():
    """A QA task keeps Merchant et al.'s sets and no trace; a parser reads words."""
    q = ui.config_for(CFG, task="tiny-squad", model="tiny-bert", seed=0)
    assert (q.pooling, q.checkpoint_steps, q.cross_task) == ("context", None, ("tiny-pos",))
    p = ui.config_for(CFG, task="tiny-parse", model="tiny-bert", seed=0)
    assert p.pooling == "word" and p.out_of_domain == ("tweets",)
