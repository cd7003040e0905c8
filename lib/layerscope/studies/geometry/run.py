"""Study 05: how fine-tuning moves the geometry of each layer (Zhou & Srikumar 2022 §4;
Merchant et al. 2020 for probing and out-of-domain). Notebook ``05_geometry``.

``run_geometry(cfg)``: fine-tuned models and their snapshots come from the cache (a cached run
gets missing snapshots by an exact replay, never a new model); representations come from the
activation cache, so notebook 05 after the main job only runs DirectProbe and the probes.

Per analysed layer, for the untuned model ("orig"), each checkpoint ("step-S") and the
fine-tuned model ("ft"): DirectProbe on the training points; for orig and ft also on the test
points (train/test spatial similarity, Table 2), nearest-cluster and MLP-probe accuracy on
test points (``probe_layers``). The top layer is also clustered on disjoint folds (and for
every seed): the replicates behind the findings' intervals.

A fine-tuning task without class labels (extractive QA) has none of that: the run reads the
fine-tuned model through other tasks' labels (``cross_task``, at the top layer) and the
out-of-domain comparison only, and the result says why the rest is undefined
(``GeometryResult.no_labels``).
"""

from __future__ import annotations

import time

import numpy as np

from ... import activations as acts
from ... import devices, finetune, progress
from ...errors import ConfigError, UndefinedError
from ...measures.probes import select_and_restart
from ...tasks import TaskSpec
from ..common.layers import thirds
from ..common.records import finetune_runs
from ..common.states import State, trace
from . import cross_task as xt
from . import out_of_domain as ood
from .config import PROBE_GRIDS, GeometryConfig
from .dynamics import LayerGeometry, folds, keep_labels, layer_geometry, spatial
from .result import GeometryResult

MIN_POINTS = 5  # a label needs this many points in a set (rarer tags are left out, and said)


def resolve_layers(wanted: tuple[int, ...], n_layers: int, what: str) -> tuple[int, ...]:
    """Layer indices (negative from the top) -> sorted 0..L; () = all; clear error if out."""
    if not wanted:
        return tuple(range(n_layers + 1))
    bad = [i for i in wanted if not -(n_layers + 1) <= i <= n_layers]
    if bad:
        raise ConfigError(f"{what} {bad} out of range: this model has layers 0..{n_layers} "
                          "(0 = embedding output, i = output of block i; -1 = top)")
    return tuple(sorted({i % (n_layers + 1) for i in wanted}))


class _Points:
    """The rows of one representation set used as points: a seeded subset of at most
    ``max_points`` rows whose label has >= MIN_POINTS rows, label values mapped to 0..k-1."""

    def __init__(self, a: acts.Activations, values: np.ndarray | None, max_points: int,
                 seed: int):
        y = np.asarray(a.labels)
        keep = np.flatnonzero(keep_labels(y, MIN_POINTS) if values is None
                              else np.isin(y, values))
        if len(keep) > max_points:
            keep = np.sort(np.random.default_rng(seed).choice(keep, max_points, replace=False))
        self.rows, self.act = keep, a
        self.values = np.unique(y[keep]) if values is None else values
        self.y = np.searchsorted(self.values, y[keep])

    def x(self, layer: int) -> np.ndarray:
        return np.asarray(self.act.states[layer])[self.rows]

    def like(self, other: acts.Activations) -> _Points:
        """The same rows (same examples) of another model's set."""
        ia, ib = acts.aligned_rows(self.act, other)
        pos = {int(r): int(j) for r, j in zip(ia, ib, strict=True)}
        new = object.__new__(_Points)
        new.rows = np.array([pos[int(r)] for r in self.rows if int(r) in pos], dtype=np.int64)
        new.act, new.values = other, self.values
        new.y = self.y[[int(r) in pos for r in self.rows]]
        return new


class _Extractor:
    """``extract(task, which, state, n=None)``: the cached (or extracted) representations of
    ``task``'s ``which`` split ("train" | "test", n examples) from the model in ``state``
    (the untuned model, or a fine-tuned run / its snapshot), [L+1, N, D]."""

    def __init__(self, cfg: GeometryConfig, runs: dict, verbose: bool):
        self.cfg, self.runs, self.verbose = cfg, runs, verbose

    def __call__(self, task: str, which: str, state: State, n: int | None = None,
                 pooling: str | None = None):
        spec = self.cfg.activation_spec(task, which, n, pooling)
        source = self.cfg.model if state.weights == "orig" else self.runs[state.seed]
        model, tok = acts.encoder_and_tokenizer(  # pre-split words, whatever the pooling
            source, step=state.step, for_words=spec.task_spec.kind in acts.WORD_KINDS,
            device=self.cfg.resolved_device())
        return acts.load_or_extract(spec, model, tok, progress=self.verbose)  # spec.task_spec


class _Geometry:
    """``geo(points, layer, rows=None, ev=None)``: DirectProbe of one set at one layer,
    memoised by activation key (the step-0 snapshot and the untuned model share weights, hence
    key and result)."""

    def __init__(self, cfg: GeometryConfig):
        self.cfg, self.memo = cfg, {}

    def __call__(self, p: _Points, layer: int, rows=None, ev: tuple | None = None
                 ) -> LayerGeometry:
        k = (p.act.key, layer, None if rows is None else rows.tobytes(), ev is not None)
        if k not in self.memo:
            x, y = p.x(layer), p.y
            if rows is not None:
                x, y = x[rows], y[rows]
            self.memo[k] = layer_geometry(x, y, len(p.values), test=self.cfg.directprobe_test,
                                          x_eval=None if ev is None else ev[0],
                                          y_eval=None if ev is None else ev[1])
        return self.memo[k]


def _representations(cfg: GeometryConfig, extract: _Extractor, states: list[State],
                     replicates: list[State]) -> tuple[dict, dict]:
    """Train sets of every traced state and replicate, test sets of the untuned and the
    fine-tuned model: State -> Activations [L+1, N, D]."""
    orig, ftd = states[0], states[-1]
    raw = {st: extract(cfg.task, "train", st) for st in (orig, ftd, *states[1:-1], *replicates)}
    raw_test = {st: extract(cfg.task, "test", st) for st in (orig, ftd)}
    return raw, raw_test


def _analysed_layers(cfg: GeometryConfig, n_layers: int
                     ) -> tuple[tuple[int, ...], list[int]]:
    """(layers analysed, sorted 0..L; the probed ones among them)."""
    layers = resolve_layers(cfg.layers, n_layers, "layers")
    probe_layers = [i for i in resolve_layers(cfg.probe_layers, n_layers, "probe_layers")
                    if i in layers]
    return layers, probe_layers


def _point_sets(cfg: GeometryConfig, raw: dict, raw_test: dict, pair: tuple[State, State]
                ) -> tuple[dict, dict, np.ndarray]:
    """State -> train points (the untuned model's rows and label values for every state),
    State -> test points (untuned, fine-tuned), and the sorted test rows [n_predict] whose
    predictions DirectProbe evaluates."""
    orig, ftd = pair
    base = _Points(raw[orig], None, cfg.max_points, cfg.seed)
    pts = {k: base if k == orig else base.like(v) for k, v in raw.items()}
    tbase = _Points(raw_test[orig], base.values, cfg.max_points, cfg.seed)
    tpts = {orig: tbase, ftd: tbase.like(raw_test[ftd])}
    pred = np.sort(np.random.default_rng(cfg.seed).permutation(len(tbase.y))[:cfg.n_predict])
    return pts, tpts, pred


def _directprobe_tables(geo: _Geometry, states: list[State], pts: dict, tpts: dict,
                        layers: tuple[int, ...], probe_layers: list[int], pred: np.ndarray
                        ) -> tuple[dict, dict]:
    """State -> [len(layers)] LayerGeometry on the train points (with the test predictions at
    the probed layers where the state has test points), and the same on the test points of
    the untuned and the fine-tuned model."""
    table: dict[State, list[LayerGeometry]] = {}
    for st in states:
        table[st] = []
        for i in progress.counted(layers, f"{st.key}: layer"):
            ev = None
            if st in tpts and i in probe_layers and len(pred):
                ev = (tpts[st].x(i)[pred], tpts[st].y[pred])
            table[st].append(geo(pts[st], i, ev=ev))
    test_table = {st: [geo(tpts[st], i) for i in layers] for st in (states[0], states[-1])}
    return table, test_table


def _spatial_similarities(states: list[State], table: dict, test_table: dict
                          ) -> tuple[np.ndarray, dict, list[str]]:
    """Spatial similarity per layer: every state with the untuned model [states, len(layers)],
    train with test (untuned, fine-tuned: key -> [len(layers)]), and why it is undefined
    where it is (sorted)."""
    orig, ftd, n = states[0], states[-1], len(table[states[0]])
    sim_to_orig = np.array([[spatial(table[st][j], table[orig][j])[0]
                             for j in range(n)] for st in states])
    train_test = {st.key: np.array([spatial(table[st][j], test_table[st][j])[0]
                                    for j in range(n)]) for st in (orig, ftd)}
    why_spatial = sorted({w for st in states for j in range(n)
                          for w in [spatial(table[st][j], table[orig][j])[1]] if w})
    return sim_to_orig, train_test, why_spatial


def _mlp_probes(cfg: GeometryConfig, pair: tuple[State, State], pts: dict, tpts: dict,
                layers: tuple[int, ...], probe_layers: list[int]
                ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per state key [len(layers), 3]: ProbeScore rows (mean, std, majority) of the MLP probe
    (grid chosen on 1/5 of the train points), NaN where not probed; why, where undefined."""
    probe = {st.key: np.full((len(layers), 3), np.nan) for st in pair}
    probe_why: list[str] = []
    if cfg.probe_grid == "none":
        return probe, probe_why
    hidden, alphas = PROBE_GRIDS[cfg.probe_grid]
    y0 = pts[pair[0]].y
    split = folds(len(y0), 5, cfg.seed, y0)  # 1/5 of the points choose the grid
    val, fit = split[0], np.sort(np.concatenate(split[1:]))
    for st in pair:
        for j, i in enumerate(progress.counted(layers, f"{st.key}: layer")):
            if i not in probe_layers:
                continue
            x, y = pts[st].x(i), pts[st].y
            try:
                r = select_and_restart(x[fit], y[fit], x[val], y[val], tpts[st].x(i),
                                       tpts[st].y, hidden=hidden, alphas=alphas,
                                       n_restarts=cfg.probe_restarts, seed=cfg.seed,
                                       max_iter=cfg.probe_max_iter,
                                       standardize=cfg.probe_standardize)
                probe[st.key][j] = r.test_score().row()
            except UndefinedError as e:
                probe_why.append(f"{st.key} layer {i}: {e}")
    return probe, probe_why


def _fold_replicates(cfg: GeometryConfig, geo: _Geometry, pair: tuple[State, State],
                     replicates: list[State], pts: dict, tpts: dict, top: int
                     ) -> tuple[dict, dict]:
    """Replicates of the findings: the top layer's LayerGeometry on ``n_folds`` disjoint folds,
    of the train points of every seed (key -> [n_folds]) and of the test points (untuned,
    fine-tuned)."""
    orig, ftd = pair
    base, tbase = pts[orig], tpts[orig]
    fidx = folds(len(base.y), cfg.n_folds, cfg.seed, base.y)
    tidx = folds(len(tbase.y), cfg.n_folds, cfg.seed + 1, tbase.y)
    fold_geo = {k.key: [geo(pts[k], top, rows=f) for f in fidx]
                for k in (orig, ftd, *replicates)}
    fold_test = {k.key: [geo(tpts[k], top, rows=f) for f in tidx] for k in (orig, ftd)}
    return fold_geo, fold_test


def _cross_tasks(cfg: GeometryConfig, specs: dict[str, TaskSpec], pair: tuple[State, State],
                 extract: _Extractor, geo: _Geometry, top: int, log) -> dict:
    """Task B -> its labels on the untuned and the fine-tuned model at the top layer."""
    cross = {}
    for task_b in cfg.cross_task:
        log(f"[geometry] cross-task: {cfg.task}-fine-tuned model on {task_b}'s labels")
        cross[task_b] = _cross_task(cfg, specs[task_b], pair, extract, geo, top)
    return cross


def run_geometry(cfg: GeometryConfig, *, verbose: bool = True) -> GeometryResult:
    """Everything of ``cfg``; see the module docstring. Arrays in the result are per analysed
    layer (``result.layers``), NaN where undefined (reasons in ``result.undefined``)."""
    t0 = time.time()
    log = progress.logger(verbose)
    ft = [finetune.load_or_train(c, verbose=verbose) for c in cfg.finetune_configs()]
    if not cfg.has_labels():
        return _without_labels(cfg, ft, verbose, log, t0)
    steps = cfg.steps()
    states = trace(cfg.model, ft[0].config.seed, steps)  # orig, step-S..., ft
    pair = orig, ftd = states[0], states[-1]
    replicates = [State.ft(cfg.model, r.config.seed, replicate=True) for r in ft[1:]]
    specs = {t: cfg.spec_of(t) for t in (cfg.task, *cfg.other_tasks())}
    extract = _Extractor(cfg, {r.config.seed: r for r in ft}, verbose)
    geo = _Geometry(cfg)

    log("[geometry] representations: train and test points of the untuned and fine-tuned "
        "models, and checkpoints")
    raw, raw_test = _representations(cfg, extract, states, replicates)
    n_layers = raw[orig].n_layers
    layers, probe_layers = _analysed_layers(cfg, n_layers)
    pts, tpts, pred = _point_sets(cfg, raw, raw_test, pair)
    log(f"[geometry] DirectProbe on {len(pts[orig].y)} train / {len(tpts[orig].y)} test points, "
        f"{len(layers)} layers, {len(steps)} checkpoints")
    table, test_table = _directprobe_tables(geo, states, pts, tpts, layers, probe_layers, pred)
    sim_to_orig, train_test, why_spatial = _spatial_similarities(states, table, test_table)
    log("[geometry] MLP probes" if cfg.probe_grid != "none" else "[geometry] no MLP probes")
    probe, probe_why = _mlp_probes(cfg, pair, pts, tpts, layers, probe_layers)
    fold_geo, fold_test = _fold_replicates(cfg, geo, pair, replicates, pts, tpts, layers[-1])
    cross = _cross_tasks(cfg, specs, pair, extract, geo, layers[-1], log)
    ood_out = {}
    if cfg.out_of_domain:
        log(f"[geometry] out-of-domain change: {cfg.task} vs {', '.join(cfg.out_of_domain)}")
        in_domain = ((raw_test[ftd], raw_test[orig]) if cfg.ood_pooling() == cfg.pooling
                     else _in_domain_sentences(cfg, pair, extract))
        ood_out = _out_of_domain(cfg, pair, extract, in_domain, n_layers)

    return GeometryResult(
        config=cfg, layers=layers, steps=tuple(steps), states=tuple(st.key for st in states),
        label_names=tuple(str(v) for v in _names(specs[cfg.task], pts[orig].values)),
        n_layers=n_layers, n_points={"train": len(pts[orig].y), "test": len(tpts[orig].y)},
        geometry={st.key: tuple(v) for st, v in table.items()},
        test_geometry={st.key: tuple(v) for st, v in test_table.items()},
        sim_to_orig=sim_to_orig, train_test=train_test, spatial_why=tuple(why_spatial),
        probe=probe, probe_layers=tuple(probe_layers), probe_why=tuple(probe_why),
        fold_geometry={k: tuple(v) for k, v in fold_geo.items()},
        fold_test_geometry={k: tuple(v) for k, v in fold_test.items()},
        cross_task=cross, out_of_domain=ood_out,
        activation_keys={**{f"train:{k.key}": v.key for k, v in raw.items()},
                         **{f"test:{k.key}": v.key for k, v in raw_test.items()}},
        finetune_runs=finetune_runs(ft, baseline=False),
        seconds=round(time.time() - t0, 1),
        device=devices.device_record(cfg.resolved_device(), cfg.dtype))


def _names(task: TaskSpec, values: np.ndarray) -> list[str]:
    names = task.label_names
    return [names[int(v)] if 0 <= int(v) < len(names) else str(v) for v in values]


def _cross_task(cfg, spec_b: TaskSpec, pair: tuple[State, State], extract, geo, top) -> dict:
    """Task B's labels on the untuned and the A-fine-tuned model (``pair``: their states), at
    the top layer."""
    orig, ftd, task_b = *pair, spec_b.name
    tr = {"orig": extract(task_b, "train", orig), "ft": extract(task_b, "train", ftd)}
    te = {"orig": extract(task_b, "test", orig), "ft": extract(task_b, "test", ftd)}
    p0 = _Points(tr["orig"], None, cfg.max_points, cfg.seed)
    p = {"orig": p0, "ft": p0.like(tr["ft"])}
    t0 = _Points(te["orig"], p0.values, cfg.max_points, cfg.seed)
    t = {"orig": t0, "ft": t0.like(te["ft"])}
    g = {k: geo(v, top) for k, v in p.items()}
    fidx = folds(len(p0.y), cfg.n_folds, cfg.seed, p0.y)
    fg = {k: [geo(v, top, rows=f) for f in fidx] for k, v in p.items()}
    fold_why = next((g.why for gs in fg.values() for g in gs if g.why), "")
    out = {"layer": top, "fold_why": fold_why,
           "labels": [str(v) for v in _names(spec_b, p0.values)],
           "n_points": len(p0.y), **xt.distance_change(g["orig"], g["ft"]),
           "min_distances": {k: v.min_distances.tolist() for k, v in g.items()},
           "n_clusters": {k: v.n_clusters for k, v in g.items()},
           "spatial_similarity": spatial(g["ft"], g["orig"])[0],
           "fold_changes": xt.fold_changes(fg["orig"], fg["ft"]), "probe": {}}
    if cfg.probe_grid != "none":
        hidden, alphas = PROBE_GRIDS[cfg.probe_grid]
        split = folds(len(p0.y), 5, cfg.seed, p0.y)
        val, fit = split[0], np.sort(np.concatenate(split[1:]))
        for k in ("orig", "ft"):
            x, y = p[k].x(top), p[k].y
            try:
                r = select_and_restart(x[fit], y[fit], x[val], y[val], t[k].x(top), t[k].y,
                                       hidden=hidden, alphas=alphas, seed=cfg.seed,
                                       n_restarts=cfg.probe_restarts, max_iter=cfg.probe_max_iter,
                                           standardize=cfg.probe_standardize)
                score = r.test_score()
                out["probe"][k] = {"mean": score.mean, "std": score.std}
            except (UndefinedError, ConfigError) as e:
                out["probe"][k] = {"mean": float("nan"), "std": float("nan"), "why": str(e)}
    return out


def _in_domain_sentences(cfg, pair: tuple[State, State], extract) -> tuple:
    """(FT, ORIG) representations of the fine-tuning task's test rows pooled as the
    out-of-domain sets are (``ood_pooling``: a parser's sentences, a QA model's question
    windows), n_ood rows."""
    orig, ftd = pair
    return tuple(extract(cfg.task, "test", st, n=cfg.n_ood, pooling=cfg.ood_pooling())
                 for st in (ftd, orig))


def _out_of_domain(cfg, pair: tuple[State, State], extract, in_domain: tuple,
                   n_layers) -> dict:
    """Per layer FT-vs-ORIG similarity (CKA, RSA) on in-domain test rows (``in_domain``:
    their FT and ORIG representations) and on each out-of-domain set, n_ood sentences each,
    every set pooled by ``cfg.ood_pooling()``; bootstrap effect over the top third."""
    orig, ftd = pair
    sets = {cfg.task: in_domain}
    pooling = cfg.ood_pooling()
    for t in cfg.out_of_domain:
        sets[t] = (extract(t, "test", ftd, n=cfg.n_ood, pooling=pooling),
                   extract(t, "test", orig, n=cfg.n_ood, pooling=pooling))
    n = min(cfg.n_ood, *(f.states.shape[1] for f, _ in sets.values()))
    arrays = {}
    for i, (k, (f, o)) in enumerate(sets.items()):
        rows = np.sort(np.random.default_rng(cfg.seed + i).permutation(f.states.shape[1])[:n])
        arrays[k] = (np.asarray(f.states)[:, rows], np.asarray(o.states)[:, rows])
    top = list(thirds(n_layers)[1])  # the top third of the blocks, as in study 02
    out = {"n": n, "top_layers": top, "sets": list(sets), "pooling": pooling,
           "diagonal": {m: {k: ood.diagonal(f, o, m, cfg.seed).tolist()
                            for k, (f, o) in arrays.items()} for m in ood.MEASURES},
           "effects": {}}
    for m in ood.MEASURES:
        out["effects"][m] = ood.ood_effect({k: (f[top], o[top]) for k, (f, o) in arrays.items()},
                                           cfg.task, m, n_boot=cfg.n_boot, seed=cfg.seed)
    return out


def _without_labels(cfg: GeometryConfig, ft: list, verbose: bool, log, t0: float
                    ) -> GeometryResult:
    """A fine-tuning task without class labels (``config.LABEL_FREE_KINDS``): the cross-task
    labels at the top layer and the out-of-domain comparison, read off the fine-tuned model;
    no in-domain layer is analysed (``layers`` (), states ORIG and FT), and ``no_labels``
    says why."""
    kind = cfg.task_spec.kind
    parts = " and ".join(p for p, on in (("other tasks' labels (cross_task)", cfg.cross_task),
                                         ("the out-of-domain comparison", cfg.out_of_domain))
                         if on)
    why = (f"task {cfg.task!r} is {kind}: it has no class labels, so DirectProbe, the MLP "
           f"probes, the checkpoint trace and their findings are undefined on its own rows; "
           f"the {cfg.task}-fine-tuned model is read through {parts}")
    pair = orig, ftd = State.orig(cfg.model), State.ft(cfg.model, ft[0].config.seed)
    specs = {t: cfg.spec_of(t) for t in cfg.other_tasks()}
    extract = _Extractor(cfg, {r.config.seed: r for r in ft}, verbose)
    keys, in_domain = {}, None
    if cfg.out_of_domain:
        in_domain = _in_domain_sentences(cfg, pair, extract)
        keys = {"ood:ft": in_domain[0].key, "ood:orig": in_domain[1].key}
        n_layers = in_domain[0].n_layers
    else:
        n_layers = extract(cfg.cross_task[0], "train", orig).n_layers
    top = resolve_layers(cfg.layers, n_layers, "layers")[-1]
    cross = _cross_tasks(cfg, specs, pair, extract, _Geometry(cfg), top, log)
    ood_out = {}
    if cfg.out_of_domain:
        log(f"[geometry] out-of-domain change: {cfg.task} vs {', '.join(cfg.out_of_domain)}")
        ood_out = _out_of_domain(cfg, pair, extract, in_domain, n_layers)
    none = {orig.key: (), ftd.key: ()}
    return GeometryResult(
        config=cfg, layers=(), steps=(), states=(orig.key, ftd.key), label_names=(),
        n_layers=n_layers, n_points={"train": 0, "test": 0}, geometry=dict(none),
        test_geometry=dict(none), sim_to_orig=np.empty((2, 0)), spatial_why=(why,),
        probe_why=(why,),
        train_test={orig.key: np.empty(0), ftd.key: np.empty(0)},
        probe={orig.key: np.empty((0, 3)), ftd.key: np.empty((0, 3))},
        fold_geometry=dict(none), fold_test_geometry=dict(none), cross_task=cross,
        out_of_domain=ood_out, no_labels=why, activation_keys=keys,
        finetune_runs=finetune_runs(ft, baseline=False), seconds=round(time.time() - t0, 1),
        device=devices.device_record(cfg.resolved_device(), cfg.dtype))
