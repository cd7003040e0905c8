"""Study 06: several tasks' fine-tuned models side by side on the same probe sentences
(Merchant et al. 2020). Notebook ``06_tasks``.

``run_tasks(cfg)``: every task of ``cfg.tasks`` is fine-tuned from ``cfg.model`` per seed (or
found in the cache, e.g. from notebook 01); ORIG and every fine-tuned model are read on the
probe task's validation sentences, one vector per word (the mean of its sub-words); per layer:
linear CKA and RSA of FT with ORIG and of FT[1] with FT[2] (``layer_change``: the bootstrap
over sentences), and the structural probe on ORIG and on each task's first seed (``syntax``).

Probe sentences are used whole: a sentence not every model has all words of (``max_length``
cut it) is left out of every measure and counted (``TasksResult.dropped``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ... import activations as acts
from ... import finetune, progress
from ...errors import ConfigError, UndefinedError
from ...measures import rsa
from ...measures.intervals import bootstrap_indices
from ...tasks import TaskSpec, load_split
from ..common.records import finetune_runs
from . import layer_change as lc
from . import syntax
from .config import TasksConfig
from .result import TaskCurves, TasksResult

ORIG = "orig"


def set_name(task: str, seed: int) -> str:
    """The name of a fine-tuned model's representation set: "<task>:<seed>"."""
    return f"{task}:{seed}"


@dataclass(frozen=True)
class ProbeSentences:
    """The probe sentences every model has all words of, and where their words sit.

    rows: [S] split rows; starts: [S+1] where each sentence's words begin in the aligned word
    order (then n); heads: per sentence [n_s]; keep: per sentence [n_s] bool (not
    punctuation); index: set name -> [n] rows of that set's states, in the aligned order
    (sentence by sentence, words in order); dropped: selected sentences left out."""

    rows: np.ndarray
    starts: np.ndarray
    heads: tuple[np.ndarray, ...]
    keep: tuple[np.ndarray, ...]
    index: dict[str, np.ndarray]
    dropped: int

    @property
    def groups(self) -> np.ndarray:
        """[n] the sentence (0..S-1) of each aligned word."""
        return np.repeat(np.arange(len(self.rows)), np.diff(self.starts))

    @property
    def n_words(self) -> int:
        return int(self.starts[-1])


def punctuation_label(spec: TaskSpec) -> int | None:
    """The index of the "punct" relation (UD, ClearNLP and the fixture all name it so), or None
    when the task has none (then no word is left out of the UUAS trees)."""
    names = [str(n).lower() for n in spec.label_names]
    return names.index("punct") if "punct" in names else None


def probe_sentences(spec: acts.ActivationSpec, sets: dict[str, acts.Activations]
                    ) -> ProbeSentences:
    """Align the word rows of ``sets`` (all of ``spec``'s sentences, read by different models)
    on the sentences that every set has every word of (``ProbeSentences``)."""
    task = spec.task_spec
    _, _, selected = acts.task_inputs(spec, task)
    data = load_split(task, spec.split)
    keys = {k: a.ids[:, 0] * 1_000_003 + a.ids[:, 1] for k, a in sets.items()}
    common = None
    for v in keys.values():
        common = v if common is None else np.intersect1d(common, v)
    rows_of = common // 1_000_003
    punct = punctuation_label(task)
    kept, heads, keep = [], [], []
    for r in np.unique(rows_of):
        ex = data[int(r)]
        if int((rows_of == r).sum()) != len(ex["tokens"]):
            continue  # a word of it is missing in some model (cut by max_length)
        kept.append(int(r))
        heads.append(np.asarray(ex["heads"], dtype=np.int64))
        dep = np.asarray(ex["deprels"], dtype=np.int64)
        keep.append(np.ones(len(dep), bool) if punct is None else dep != punct)
    if len(kept) < 2:
        raise ConfigError(f"{len(kept)} of {len(selected)} probe sentences of {task.name!r} "
                          f"have all their words within max_length={spec.max_length} in every "
                          "model: raise max_length (or n_probe)")
    kept_rows = np.asarray(kept, dtype=np.int64)
    order = common[np.isin(rows_of, kept_rows)]  # sorted: by row, then word
    index = {}
    for k, v in keys.items():
        pos = np.argsort(v, kind="stable")
        index[k] = pos[np.searchsorted(v, order, sorter=pos)]
    lengths = np.array([len(h) for h in heads])
    return ProbeSentences(kept_rows, np.concatenate([[0], np.cumsum(lengths)]), tuple(heads),
                          tuple(keep), index, len(selected) - len(kept))


def _extract(cfg: TasksConfig, sources: dict, split: str, verbose: bool, log
             ) -> dict[str, acts.Activations]:
    spec, device = cfg.activation_spec(split), cfg.resolved_device()
    out = {}
    for i, (name, source) in enumerate(sources.items(), 1):
        log(f"[tasks] {cfg.task} {split} words: {name} ({i} of {len(sources)})")
        model, tok = acts.encoder_and_tokenizer(source, for_words=True, device=device)
        out[name] = acts.load_or_extract(spec, model, tok, progress=verbose,
                                         task=cfg.task_spec)
        del model
    return out


def _layer_similarity(cfg: TasksConfig, sets: dict, probe: ProbeSentences,
                      counts: np.ndarray) -> dict[str, dict]:
    """Per task: CKA (estimate and replicates) and RSA per layer of its pairs."""
    n_layers = next(iter(sets.values())).n_layers
    pairs = []
    for t in cfg.tasks:
        names = [set_name(t, s) for s in cfg.seeds]
        pairs += [(n, ORIG) for n in names]
        if len(names) == 2:
            pairs.append((names[0], names[1]))
    k, B = len(cfg.seeds), counts.shape[0]
    est = {p: np.empty(n_layers + 1) for p in pairs}
    reps = {p: np.empty((B, n_layers + 1)) for p in pairs}
    rs = {p: np.empty(n_layers + 1) for p in pairs}
    groups = probe.groups
    progress.phase(f"tasks: CKA and RSA per layer, {B} sentence resamples")
    for layer in progress.counted(range(n_layers + 1), "tasks: layer", n_layers + 1):
        states = {name: np.asarray(a.states[layer])[probe.index[name]]
                  for name, a in sets.items()}
        e, r = lc.cluster_cka(states, pairs, groups, counts, device=cfg.resolved_device())
        for p in pairs:
            est[p][layer], reps[p][:, layer] = e[p], r[p]
            try:
                rs[p][layer] = rsa.rsa(states[p[0]], states[p[1]],
                                       dissimilarity=cfg.rsa_dissimilarity,
                                       max_examples=cfg.rsa_max_words, seed=cfg.seed)
            except UndefinedError:
                rs[p][layer] = np.nan
    out = {}
    for t in cfg.tasks:
        names = [set_name(t, s) for s in cfg.seeds]
        two = (names[0], names[1]) if k == 2 else None
        out[t] = {"ft_orig": np.stack([est[(n, ORIG)] for n in names]),
                  "ft_orig_boot": np.stack([reps[(n, ORIG)] for n in names], axis=1),
                  "rsa_ft_orig": np.stack([rs[(n, ORIG)] for n in names]),
                  "ft_ft": None if two is None else est[two],
                  "ft_ft_boot": None if two is None else reps[two],
                  "rsa_ft_ft": None if two is None else rs[two]}
    return out


def _structural_probes(cfg: TasksConfig, sources: dict, eval_sets: dict,
                       probe: ProbeSentences, verbose: bool, log) -> tuple[dict, dict]:
    """(name -> ``syntax.LayerSyntax`` for ORIG and each task's first seed, the training
    sets' activation keys)."""
    train_sets = _extract(cfg, sources, "train", verbose, log)
    train = probe_sentences(cfg.activation_spec("train"), train_sets)
    settings = syntax.ProbeSettings(rank=cfg.probe_rank, epochs=cfg.probe_epochs,
                                    learning_rate=cfg.probe_lr, batch_size=cfg.probe_batch,
                                    seed=cfg.seed)
    out = {}
    for name in sources:
        progress.phase(f"tasks: structural probe on {name}")
        log(f"[tasks] structural probe on {name}: {len(train.rows)} training sentences, "
            f"{len(probe.rows)} probe sentences")
        tr, ev = train_sets[name], eval_sets[name]
        out[name] = syntax.probe_layers(
            [np.asarray(tr.states[i])[train.index[name]] for i in range(tr.n_layers + 1)],
            train.starts, train.heads,
            [np.asarray(ev.states[i])[probe.index[name]] for i in range(ev.n_layers + 1)],
            probe.starts, probe.heads, probe.keep, settings, what=name)
    return out, {f"train/{k}": v.key for k, v in train_sets.items()}


def run_tasks(cfg: TasksConfig, *, verbose: bool = True) -> TasksResult:
    """All of ``cfg``'s measures (fine-tuning and extraction come from the cache when there).

    Returns:
        A ``TasksResult``: per task, CKA and RSA of FT with ORIG and of FT[1] with FT[2] per
        layer ([n_seeds, L+1], [L+1]) with their sentence-bootstrap replicates, and the
        structural probe's UUAS/DSpr per layer of ORIG and FT.
    """
    t0 = time.time()
    log = progress.logger(verbose)
    ft = {}
    for t in cfg.tasks:
        progress.phase(f"tasks: fine-tuning {t} (or the cache)")
        ft[t] = [finetune.load_or_train(c, verbose=verbose) for c in cfg.finetune_configs(t)]
    sources = {ORIG: cfg.model, **{set_name(t, c.config.seed): c for t in cfg.tasks
                                   for c in ft[t]}}
    sets = _extract(cfg, sources, "validation", verbose, log)
    probe = probe_sentences(cfg.activation_spec("validation"), sets)
    S = len(probe.rows)
    counts = lc.sentence_counts(bootstrap_indices(S, cfg.n_boot, cfg.seed), S)
    sims = _layer_similarity(cfg, sets, probe, counts)
    keys = {k: v.key for k, v in sets.items()}
    probes, baseline = {}, None
    if cfg.structural_probe:
        first = {ORIG: cfg.model, **{set_name(t, cfg.seeds[0]): ft[t][0] for t in cfg.tasks}}
        probes, train_keys = _structural_probes(cfg, first, {k: sets[k] for k in first}, probe,
                                                verbose, log)
        keys.update(train_keys)
        baseline = syntax.linear_baseline(probe.heads, probe.keep)
    curves = {t: TaskCurves(task=t, kind=cfg.kind_of(t), **sims[t],
                            syntax=probes.get(set_name(t, cfg.seeds[0])),
                            metrics=tuple(r.metrics for r in ft[t])) for t in cfg.tasks}
    result = TasksResult(config=cfg, curves=curves, orig_syntax=probes.get(ORIG),
                         baseline_correct=baseline, counts=counts, rows=probe.rows,
                         n_words=probe.n_words, dropped={"sentences_cut": probe.dropped},
                         activation_keys=keys,
                         finetune_runs={t: finetune_runs(ft[t], baseline=False)
                                        for t in cfg.tasks})
    return result.finished(round(time.time() - t0, 1), cfg.resolved_device(), cfg.dtype)
