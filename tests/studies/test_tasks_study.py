"""Study 06 (tasks side by side): the sentence bootstrap of CKA against an independent
formulation, the reconfiguration rule and the verdicts on synthetic curves whose answer is
known (SUPPORTED, NOT SUPPORTED, INCONCLUSIVE, UNDEFINED), then end to end on tiny models
(parity with the cached arrays, files read back, widgets, bad input)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerscope import activations as acts
from layerscope.errors import ConfigError
from layerscope.measures import structural_probe as sp
from layerscope.measures.cka import linear_cka
from layerscope.measures.intervals import bootstrap_indices
from layerscope.studies import results
from layerscope.studies.base import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    UNDEFINED,
    StudyResult,
)
from layerscope.studies.tasks import TaskCurves, TasksConfig, TasksResult, run_tasks, syntax
from layerscope.studies.tasks import findings as fnd
from layerscope.studies.tasks import layer_change as lc
from layerscope.studies.tasks import run as trun
from layerscope.studies.tasks.syntax import LayerSyntax

TINY = dict(model="tiny-bert", preset="smoke", max_steps=30, probe="tiny-parse", n_probe=40,
            n_probe_train=40, max_length=32, probe_epochs=5, probe_lr=1e-2, rsa_max_words=200)


# --------------------------------------------------------------------------- the bootstrap
def test_cluster_cka_is_linear_cka_on_the_sample_and_on_resampled_sentences():
    """Full sample: ``measures.cka.linear_cka``. A resample: linear CKA of the words of the
    drawn sentences written out, a sentence drawn twice written twice (the independent
    formulation); the Gram row chunks change nothing."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, size=25)
    groups = np.repeat(np.arange(25), lengths)
    n = len(groups)
    x = rng.normal(size=(n, 7)) + 5.0  # far from centred: the centring must be exact
    y = x @ rng.normal(size=(7, 5)) + rng.normal(size=(n, 5))
    z = rng.normal(size=(n, 4))
    idx = bootstrap_indices(25, 6, seed=3)
    counts = lc.sentence_counts(idx, 25)
    assert (counts.sum(1) == 25).all()
    pairs = [("x", "y"), ("y", "z")]
    est, reps = lc.cluster_cka({"x": x, "y": y, "z": z}, pairs, groups, counts, chunk_words=9)
    est2, reps2 = lc.cluster_cka({"x": x, "y": y, "z": z}, pairs, groups, counts)
    for (a, b), arr in (("x", "y"), (x, y)), (("y", "z"), (y, z)):
        assert est[(a, b)] == pytest.approx(linear_cka(*arr), abs=1e-6)
        assert est2[(a, b)] == pytest.approx(est[(a, b)], abs=1e-7)
        for k in range(6):
            rows = np.concatenate([np.flatnonzero(groups == s) for s in idx[k]])
            want = linear_cka(arr[0][rows], arr[1][rows])
            assert reps[(a, b)][k] == pytest.approx(want, abs=1e-6)
            assert reps2[(a, b)][k] == pytest.approx(want, abs=1e-6)
    with pytest.raises(ConfigError, match="groups must number the sentences"):
        lc.cluster_cka({"x": x, "y": y}, [("x", "y")], groups[::-1])


def test_corpus_uuas_of_resamples_is_uuas_of_the_drawn_sentences():
    """``syntax.corpus_uuas`` and ``best_layer_uuas`` against ``structural_probe.uuas`` on the
    resampled sentences written out."""
    rng = np.random.default_rng(1)
    heads = [np.array([2, 0, 2, 3]), np.array([0, 1, 1]), np.array([3, 3, 0, 3, 4]),
             np.array([0, 1])]
    preds = [[rng.random((len(h), len(h))) for h in heads] for _ in range(3)]  # 3 "layers"
    preds = [[(p + p.T) / 2 for p in layer] for layer in preds]
    keep = [np.ones(len(h), bool) for h in heads]
    keep[2][1] = False  # a punctuation word
    scores = [sp.uuas(p, heads, keep=keep) for p in preds]
    correct = np.stack([s.correct for s in scores])
    idx = np.array([[0, 0, 2, 3], [1, 2, 2, 2]])
    got = syntax.corpus_uuas(correct, scores[0].total, lc.sentence_counts(idx, 4))
    for b in range(2):
        for layer in range(3):
            want = sp.uuas([preds[layer][i] for i in idx[b]], [heads[i] for i in idx[b]],
                           keep=[keep[i] for i in idx[b]]).uuas
            assert got[b, layer] == pytest.approx(want)
        assert syntax.best_layer_uuas(correct, scores[0].total, lc.sentence_counts(
            idx, 4))[b] == pytest.approx(got[b].max())
    # the linear baseline: each kept word joined to the next
    assert syntax.linear_baseline([np.array([0, 1, 2])], [np.ones(3, bool)]).tolist() == [2]


# --------------------------------------------------------------------------- the rule
def test_excess_is_the_change_beyond_the_seeds_change():
    ft_orig = np.array([[0.99, 0.95, 0.70, 0.50], [0.97, 0.95, 0.72, 0.52]])  # 2 seeds
    ft_ft = np.array([0.99, 0.96, 0.95, 0.90])
    # change: 1 - mean CKA = [0.02, 0.05, 0.29, 0.49]; seeds' change [0.01, 0.04, 0.05, 0.10]
    np.testing.assert_allclose(lc.excess(ft_orig, ft_ft, "seeds"), [0.01, 0.01, 0.24, 0.39])
    np.testing.assert_allclose(lc.excess(ft_orig, ft_ft, "seeds", margin=0.1),
                               [-0.09, -0.09, 0.14, 0.29])
    np.testing.assert_allclose(lc.excess(ft_orig, None, "fixed", margin=0.1),
                               [-0.08, -0.05, 0.19, 0.39])
    assert lc.reconfigured([-0.1, 0.0, 0.02, np.nan, 0.3]).tolist() == [False, False, True,
                                                                      False, True]
    assert lc.lowest([False, False, True, True]) == 2 and lc.lowest([False]) is None
    reps = np.array([[-0.1, 0.2, 0.3], [0.1, -0.2, 0.3], [-1, -1, -1]])
    assert lc.plugin_counts(reps).tolist() == [2, 2, 0]
    assert lc.plugin_lowest(reps).tolist() == [1, 0, 3]  # none: one past the top
    with pytest.raises(ConfigError, match="two seeds"):
        lc.excess(ft_orig, None, "seeds")


SYN_CFG = dict(model="tiny-bert", preset="smoke", probe="tiny-parse", n_boot=200)


def _curves(task: str, kind: str, excess: list[float], noise: float, rng, n_boot: int,
            syntax_fraction: float | None = None, sentences: int = 30) -> TaskCurves:
    """Synthetic CKA curves whose excess (seeds rule, margin 0) is ``excess`` per layer: the
    seeds agree at 0.95 and FT–ORIG sits ``excess`` below that; each resample adds the same
    noise to every CKA of a layer pair, per layer."""
    e = np.asarray(excess, dtype=float)
    ft_ft = np.full(len(e), 0.95)
    ft_orig = np.stack([ft_ft - e, ft_ft - e])
    shift = rng.normal(0, noise, size=(n_boot, len(e)))
    syn = None
    if syntax_fraction is not None:
        total = np.full(sentences, 10)
        correct = np.tile(np.round(total * syntax_fraction).astype(np.int64), (len(e), 1))
        syn = LayerSyntax(correct[:, 0] / 10.0, np.full(len(e), 0.5), correct, total,
                          np.zeros(len(e), np.int64))
    return TaskCurves(task, kind, ft_orig, ft_ft, ft_orig[None] - shift[:, None], None if
                      ft_ft is None else ft_ft[None] + 0 * shift, ft_orig.copy(), ft_ft.copy(),
                      syntax=syn)


def _result(tasks: dict, *, structural=True, orig_fraction=0.8, n_boot=200, sentences=30,
            seed=0) -> TasksResult:
    """A result over synthetic curves (tasks: name -> (excess, noise, syntax fraction))."""
    rng = np.random.default_rng(seed)
    cfg = TasksConfig(tasks=tuple(tasks), structural_probe=structural, **SYN_CFG)
    curves = {t: _curves(t, cfg.kind_of(t), e, s, rng, n_boot,
                         f if structural else None, sentences)
              for t, (e, s, f) in tasks.items()}
    counts = lc.sentence_counts(bootstrap_indices(sentences, n_boot, 0), sentences)
    orig = None
    if structural:
        total = np.full(sentences, 10)
        c = np.tile(np.full(sentences, int(10 * orig_fraction)), (5, 1))
        orig = LayerSyntax(c[:, 0] / 10.0, np.full(5, 0.5), c, total, np.zeros(5, np.int64))
    return TasksResult(config=cfg, curves=curves, orig_syntax=orig,
                       baseline_correct=np.full(sentences, 4) if structural else None,
                       counts=counts, rows=np.arange(sentences), n_words=10 * sentences,
                       finetune_runs={t: ({"seed": 0, "key": "k0"}, {"seed": 1, "key": "k1"})
                                      for t in tasks})


DEEP = [-0.2, 0.05, 0.1, 0.2, 0.3]   # parsing: layers 1-4 reconfigured
SHALLOW = [-0.3, -0.2, -0.1, -0.05, 0.1]  # the top layer only


@pytest.mark.parametrize("parse, other, verdict", [
    (DEEP, SHALLOW, SUPPORTED),          # 4 layers against 1, on every resample
    (SHALLOW, DEEP, NOT_SUPPORTED),      # the parser is the shallow one
    ([0.5] * 5, [0.5] * 5, NOT_SUPPORTED),  # both at the ceiling: not "more"
])
def test_cross_task_verdicts_on_synthetic_curves(parse, other, verdict):
    r = _result({"tiny-parse": (parse, 0.002, 0.8), "tiny-sentiment": (other, 0.002, 0.8)})
    f = r.findings()
    assert f["parsing_vs.tiny-sentiment"]["verdict"] == verdict
    assert "parsing_reconfigures_most" not in f  # one other task: the pairwise claim says it
    table = fnd.layer_table(r, "tiny-parse")
    assert table["layers"] == [i for i, e in enumerate(parse) if e > 0]
    assert table["lowest"] == next((i for i, e in enumerate(parse) if e > 0), None)
    assert f["reconfigured.tiny-parse"]["verdict"] == SUPPORTED  # top layer: 0.3 / 0.1 / 0.5
    assert StudyResult.findings_problems(f) == [] and r.check() == []


def test_inconclusive_when_the_layer_counts_vary_over_resamples():
    """Two layers of the parser sit at the threshold with noise: its count varies by
    resample between 1 and 3 against the other task's 2, so the interval straddles 0.5."""
    r = _result({"tiny-parse": ([-0.3, 0.0, 0.0, 0.2, 0.3], 0.05, 0.8),
                 "tiny-sentiment": ([-0.3, -0.3, -0.3, 0.2, 0.3], 0.001, 0.8),
                 "tiny-pos": ([-0.3, -0.3, -0.3, -0.3, 0.3], 0.001, 0.8)})
    f = r.findings()
    assert f["parsing_vs.tiny-sentiment"]["verdict"] == INCONCLUSIVE
    iv = f["parsing_vs.tiny-sentiment"]["interval"]
    assert iv["low"] < 0.5 < iv["high"]
    # against the task with one layer, and against the most of both
    assert f["parsing_vs.tiny-pos"]["verdict"] in (SUPPORTED, INCONCLUSIVE)
    assert f["parsing_reconfigures_most"]["verdict"] == INCONCLUSIVE
    assert StudyResult.findings_problems(f) == []


def test_undefined_without_a_parsing_task_or_without_another_task():
    f = _result({"tiny-sentiment": (DEEP, 0.002, 0.8), "tiny-pos": (SHALLOW, 0.002, 0.8)}
                ).findings()
    assert f["parsing_reconfigures_most"]["verdict"] == UNDEFINED
    assert "no dependency_parsing task" in f["parsing_reconfigures_most"]["why"]
    f = _result({"tiny-parse": (DEEP, 0.002, 0.8)}).findings()
    assert f["parsing_reconfigures_most"]["verdict"] == UNDEFINED
    assert "all dependency parsing" in f["parsing_reconfigures_most"]["why"]
    f = _result({"tiny-parse": (DEEP, 0.002, None)}, structural=False).findings()
    assert f["no_forgetting"]["verdict"] == UNDEFINED and "structural_probe" in \
        f["no_forgetting"]["why"]
    assert StudyResult.findings_problems(f) == []


def test_forgetting_verdicts():
    """ORIG's best UUAS 0.8: FT at 0.8 keeps it (difference 0 > -0.05), FT at 0.5 forgets."""
    f = _result({"tiny-parse": (DEEP, 0.002, 0.8), "tiny-sentiment": (SHALLOW, 0.002, 0.5)}
                ).findings()
    assert f["no_forgetting.tiny-parse"]["verdict"] == SUPPORTED
    assert f["no_forgetting.tiny-sentiment"]["verdict"] == NOT_SUPPORTED
    assert f["no_forgetting.tiny-sentiment"]["interval"]["estimate"] == pytest.approx(-0.3)
    assert f["no_forgetting.tiny-sentiment"]["threshold"] == -0.05


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw, match", [
    (dict(probe="tiny-pos"), "need trees"),
    (dict(seeds=(0,)), "threshold='seeds' needs two"),
    (dict(seeds=(0, 1, 2)), "two seeds\\) at most"),
    (dict(tasks=("tiny-pos", "tiny-pos")), "distinct"),
    (dict(tasks=("nope",)), "nope"),
    (dict(threshold="median"), "threshold"),
    (dict(finetuned=("a/b", "c/d")), "not supported here"),
    (dict(n_probe=2), "n_probe"),
])
def test_bad_config_is_refused_by_name(kw, match):
    base = dict(tasks=("tiny-pos",), **SYN_CFG)
    with pytest.raises((ConfigError, ValueError), match=match):
        TasksConfig(**{**base, **kw})


def test_the_probe_is_the_configs_task_and_task_is_no_parameter():
    cfg = TasksConfig(tasks=["tiny-pos"], seeds=[0], threshold="fixed", probe_rank=0,
                      **SYN_CFG)
    assert cfg.task == cfg.probe == "tiny-parse" and cfg.tasks == ("tiny-pos",)
    assert cfg.probe_rank is None  # 0: full rank
    assert cfg.replace(n_probe=10).task == "tiny-parse"
    with pytest.raises(ConfigError, match="no parameter 'task'"):
        TasksConfig.from_params({"task": "tiny-parse"})
    assert TasksConfig.from_params({"tasks": ["tiny-pos"], "seeds": [0], "threshold": "fixed",
                                    **SYN_CFG}).tasks == ("tiny-pos",)


def test_probe_sentences_leave_out_a_sentence_a_model_lacks_a_word_of():
    spec = acts.ActivationSpec(task="tiny-parse", n_examples=5, pooling="word")
    _, _, rows = acts.task_inputs(spec)
    from layerscope.tasks import load_split

    data = load_split("tiny-parse", "validation")
    ids = np.array([(r, w) for r in rows for w in range(len(data[int(r)]["tokens"]))])

    def fake(keep):
        return acts.Activations(np.zeros((2, len(keep), 3), np.float32), np.zeros(len(keep)),
                                ids[keep], spec, "k")
    every = np.ones(len(ids), bool)
    cut = every.copy()
    cut[np.flatnonzero(ids[:, 0] == rows[1])[-1]] = False  # the last word of sentence 2
    ps = trun.probe_sentences(spec, {"a": fake(every), "b": fake(cut)})
    assert ps.dropped == 1 and list(ps.rows) == [r for r in rows if r != rows[1]]
    assert ps.n_words == sum(len(data[int(r)]["tokens"]) for r in ps.rows)
    np.testing.assert_array_equal(ids[ps.index["a"]], ids[cut][ps.index["b"]])
    # tiny-parse's relation 5 is punct: those words are left out of the UUAS trees
    assert all((~k).sum() == (np.asarray(data[int(r)]["deprels"]) == 5).sum()
               for k, r in zip(ps.keep, ps.rows, strict=True))


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny():
    cfg = TasksConfig(tasks=("tiny-sentiment", "tiny-parse"), seeds=(0, 1), n_boot=30, **TINY)
    return run_tasks(cfg, verbose=False)


def test_end_to_end_on_tiny_models(tiny):
    r, c = tiny, tiny.config
    assert r.check() == []
    L, S = r.n_layers, r.n_sentences
    assert L == 4 and S + r.dropped["sentences_cut"] == c.n_probe
    f = r.findings()
    assert {"reconfigured.tiny-sentiment", "reconfigured.tiny-parse",
            "parsing_vs.tiny-sentiment", "no_forgetting.tiny-sentiment",
            "no_forgetting.tiny-parse"} == set(f)
    assert StudyResult.findings_problems(f) == []
    rec = r.to_record()
    assert rec["study"] == "tasks" and rec["task"] == "tiny-parse"
    assert rec["tasks"] == "tiny-sentiment,tiny-parse"
    # the parser's own training moved its top layer; the parser's probe reads its trees well
    assert r.curves["tiny-parse"].ft_orig[0, L] < 0.99
    assert np.nanmax(r.curves["tiny-parse"].syntax.uuas) >= np.nanmax(r.orig_syntax.uuas) - 0.05


def test_cka_and_uuas_recomputed_from_the_cached_arrays(tiny):
    """One task's FT–ORIG CKA of every layer from the cached word states (``acts.load`` by
    the result's keys, aligned again), with ``measures.cka.linear_cka``; ORIG's structural probe
    of one layer refitted from the cached training states: the same UUAS."""
    r, c = tiny, tiny.config
    sets = {k: acts.load(v) for k, v in r.activation_keys.items() if not k.startswith("train/")}
    ps = trun.probe_sentences(c.activation_spec("validation"), sets)
    np.testing.assert_array_equal(ps.rows, r.rows)
    a, b = sets["tiny-sentiment:1"], sets["orig"]
    for layer in range(r.n_layers + 1):
        want = linear_cka(np.asarray(a.states[layer])[ps.index["tiny-sentiment:1"]],
                          np.asarray(b.states[layer])[ps.index["orig"]])
        assert r.curves["tiny-sentiment"].ft_orig[1, layer] == pytest.approx(want, abs=1e-6)
    train = {k[len("train/"):]: acts.load(v) for k, v in r.activation_keys.items()
             if k.startswith("train/")}
    tp = trun.probe_sentences(c.activation_spec("train"), train)
    layer, n_fit = 2, len(tp.rows) - len(tp.rows) // 5
    xs = syntax.split_sentences(np.asarray(train["orig"].states[layer], np.float64)[
        tp.index["orig"]], tp.starts)
    probe = sp.fit_distance_probe(xs[:n_fit], list(tp.heads[:n_fit]), xs[n_fit:],
                                  list(tp.heads[n_fit:]), rank=c.probe_rank,
                                  learning_rate=c.probe_lr, batch_size=c.probe_batch,
                                  max_epochs=c.probe_epochs, seed=c.seed)
    ev = syntax.split_sentences(np.asarray(b.states[layer], np.float64)[ps.index["orig"]],
                                ps.starts)
    u = sp.uuas([probe.distances(x) for x in ev], list(ps.heads), keep=list(ps.keep))
    assert r.orig_syntax.uuas[layer] == pytest.approx(u.uuas)


def test_saved_files_read_back(tiny, tmp_path):
    files = tiny.save(tmp_path)
    for k in ("html", "png", "json", "txt", "tasks_excess_png", "tasks_rsa_html"):
        assert files[k].exists(), k
    data = json.loads(files["json"].read_text())
    assert str(tmp_path) not in json.dumps({k: data[k] for k in ("activation_keys",
                                                                "finetune_runs")})
    back = TasksResult.read(tmp_path)
    assert back.check() == [] and back.verdict() == tiny.verdict()
    # the generic reader (the gallery's) rebuilds the study's own class, not a RecordOnly
    generic = results.read(files["json"])
    assert isinstance(generic, TasksResult) and generic.to_dict() == tiny.to_dict()
    assert back.to_dict() == tiny.to_dict() and back.to_record() == tiny.to_record()
    for comp in ("cka", "excess", "rsa", "uuas", "dspr"):
        assert back.figure(comp, "tiny-parse").data
    with pytest.raises(ConfigError, match="not in this result"):
        back.figure("cka", "movies")


def test_explorer_redraws_a_kept_run(tiny, monkeypatch):
    import plotly.io as pio

    from layerscope.studies.tasks import ui as tasks_ui

    seen = []
    monkeypatch.setattr(pio.renderers, "default", "json")
    monkeypatch.setattr(tasks_ui, "run_tasks", lambda cfg, verbose=False: seen.append(cfg)
                        or tiny)
    box = tasks_ui.tasks_explorer(tiny.config)
    by_name = {c.description: c for c in box.children[0].children if hasattr(c, "value")}
    by_name["task"].value = "tiny-parse"
    by_name["compare"].value = "uuas"
    box.refresh()
    by_name["compare"].value = "excess"
    box.refresh()
    assert len(seen) == 1 and seen[0].model == "tiny-bert"
    found = tasks_ui.task_findings(tiny.findings(), "tiny-sentiment")
    assert "parsing_vs.tiny-sentiment" in found and "reconfigured.tiny-parse" not in found
