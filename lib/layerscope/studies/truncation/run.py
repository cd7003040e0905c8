"""Study 03: truncation (Phang et al. 2021 §4, Fig. 3) and Merchant et al. 2020's ablations.

For every layer k (hidden state k fed to the task head; layer 0 only where the first-token
vector varies across examples, which it does not in BERT-style models):

* UNTUNED: the fine-tuned head applied as is to hidden state k, all k from one forward pass
  per batch (``surgery_kernels.untuned_truncation_logits``); row L is the full model and
  reproduces ``finetune.predictions`` (asserted in tests and notebook 03).
* TUNED: the head retrained on layer-k CLS features of the fine-tuned encoder (encoder frozen,
  features from the activation cache on ``n_train`` training examples), starting from the
  fine-tuned head's weights (``heads.train_heads``: all layers as one batched model).
* TUNEDORIG: the same, on layer-k CLS features of the untuned encoder, starting from the *same*
  fine-tuned head weights (Phang et al. do not say how their TUNEDORIG head starts; the same
  start makes the encoder the only difference between TUNED and TUNEDORIG).
* the majority-class baseline (regression: the mean training target, scored by MSE).
* ablations (Merchant et al. 2020): fine-tunes with blocks 1..k frozen (``freeze_bottom``) or
  the top k blocks removed before fine-tuning (``drop_top``), scored on the same examples;
  drop_top k is drawn at depth L - k, next to UNTUNED truncation at L - k.

Every task kind with a head on states (``studies.common.task_heads``): sequence tasks read
the cached CLS features; multiple choice (one pooled state per choice, accuracy over choices),
tagging (per labelled word) and token pairs (the two words) score their units with features
from the passes of ``units``. Token tasks' intervals resample sentences, not words.

Seeds: every line is the mean over ``seeds`` of each fine-tuned model's metric on the same
examples (bootstrap intervals over examples; one seed by default). The figure marks the FT–FT
block boundary (linear CKA of the cached fine-tuned validation CLS states, first seed,
``measures.blocks.block_structure``, as study 02 marks it) when ``mark_blocks``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ... import activations as acts
from ... import adapters, finetune, metrics, models, progress
from ...errors import ConfigError
from ...tasks import TOKEN_KINDS
from ..base import StudyConfig, seed_configs
from ..common import evaluation, structured, task_heads
from ..common.records import finetune_runs
from ..common.scoring import RatioScorer, Scorer
from . import heads, structured_lines, units
from .findings import effect_intervals
from .lines import LINES, Clock, Lines, defined_layers, empty_lines, ft_blocks, retrain
from .result import TruncationResult


@dataclass(frozen=True)
class TruncationConfig(StudyConfig):
    """One truncation study: the shared fields (``StudyConfig``: task, model, preset, seeds,
    finetuned, max_steps, max_length, seed, n_boot) and its own; every field is a literal.

    Attributes:
        seeds: fine-tuning seeds; each line is the mean over them (one line, not one per seed).
        finetuned: as in ``StudyConfig`` (``model``: TUNEDORIG's encoder). The ablations need
            training runs: refused with them.
        n_examples, split, dtype: the evaluation rows and CLS features
            (``activations.ActivationSpec``, with ``max_length`` and ``seed``; token tasks:
            sentences, multiple choice: questions). ``dtype`` applies to the cached features
            of sequence tasks only (and is what the result records with its device); the
            UNTUNED pass and the other kinds' features run in float32 on every device.
            ``seed`` also seeds the bootstrap and head training.
        n_train: training examples (sentences, questions) whose features train the
            TUNED/TUNEDORIG heads.
        head_lr, head_batch_size, head_max_epochs, head_patience, head_holdout: Adam learning
            rate, minibatch, epochs, early-stopping patience and held-out fraction
            (``heads.HeadTraining``).
        n_boot: bootstrap resamples behind every band and finding.
        tolerance: "within 1 point": how far below the full model (in metric units) a truncated
            model may be and still count as keeping its performance.
        freeze_bottom, drop_top: Merchant et al. 2020 ablations, lists of k (empty: none).
        mark_blocks: mark the FT–FT CKA block boundary on the figure.
    """

    n_examples: int | None = 1000
    n_train: int = 2000
    split: str = "validation"
    dtype: str = "float32"
    head_lr: float = 1e-3
    head_batch_size: int = 128
    head_max_epochs: int = 50
    head_patience: int = 5
    head_holdout: float = 0.2
    tolerance: float = 0.01
    freeze_bottom: tuple[int, ...] = ()
    drop_top: tuple[int, ...] = ()
    mark_blocks: bool = True

    INT_TUPLES: ClassVar[tuple[str, ...]] = ("freeze_bottom", "drop_top")
    NEEDS_TRAINING: ClassVar[tuple[str, ...]] = ("freeze_bottom", "drop_top")

    def check(self):
        evaluation.check_task(self.task_spec, "truncation")
        if self.n_examples is not None and self.n_examples < 10:
            raise ConfigError(f"n_examples={self.n_examples}: use at least 10 validation "
                              f"examples (1000 is the default), or None for the whole split")
        if self.n_train < 10:
            raise ConfigError(f"n_train={self.n_train}: head training needs at least 10 "
                              f"training examples (2000 is the default)")
        if not self.tolerance >= 0:
            raise ConfigError(f"tolerance={self.tolerance!r} must be >= 0 (metric units, "
                              f"0.01 = 1 point of accuracy)")
        bad = [k for k in self.freeze_bottom + self.drop_top if k < 1]
        if bad:
            raise ConfigError(f"freeze_bottom/drop_top values {bad}: each k is a number of "
                              f"blocks >= 1 (empty list: no ablation)")
        self.head_training()
        self.finetune_configs()  # validates task, model, preset, steps
        self.activation_spec()
        self.activation_spec("train")

    def head_training(self) -> heads.HeadTraining:
        return heads.HeadTraining(lr=self.head_lr, batch_size=self.head_batch_size,
                                  max_epochs=self.head_max_epochs, patience=self.head_patience,
                                  holdout=self.head_holdout)

    def activation_spec(self, split: str | None = None) -> acts.ActivationSpec:
        """CLS features: evaluation rows (``split``) or, with "train", the head-training rows."""
        train = split == "train"
        return acts.ActivationSpec(task=self.task_spec, split=split or self.split,
                                   n_examples=self.n_train if train else self.n_examples,
                                   pooling="cls", dtype=self.dtype,
                                   max_length=self.resolved_max_length(), seed=self.seed)

    def finetune_configs(self, **ablation) -> list[finetune.FinetuneConfig]:
        return seed_configs(self, **ablation)


def check_ablations(cfg: TruncationConfig, model_config) -> None:
    """freeze_bottom/drop_top against the model's L blocks (``model_config``: the base model's
    config; checked before anything trains)."""
    if not (cfg.freeze_bottom or cfg.drop_top):
        return  # no ablation: no adapter needed here
    ad = adapters.adapter_class(model_config)
    L = int(model_config.num_hidden_layers)
    if cfg.freeze_bottom and ad.shared_blocks:
        raise ConfigError(f"freeze_bottom is undefined for {ad.family} (all its blocks share "
                          f"one layer's weights); use drop_top, or an unshared model")
    bad = [k for k in cfg.freeze_bottom if k > L] + [k for k in cfg.drop_top if k >= L]
    if bad:
        raise ConfigError(f"ablation k {bad} out of range for this {L}-block model: "
                          f"freeze_bottom k in 1..{L}, drop_top k in 1..{L - 1}")


def _ablations(cfg: TruncationConfig, rows: np.ndarray, n_layers: int,
               verbose: bool) -> list[dict]:
    """Merchant et al. 2020: one fine-tune per (kind, k, seed), predictions [S, U] on ``rows``
    of ``finetune.predictions`` (the units' reference rows)."""
    out, log = [], progress.logger(verbose)
    for kind, ks in (("drop_top", cfg.drop_top), ("freeze_bottom", cfg.freeze_bottom)):
        for k in ks:
            log(f"[truncation] ablation {kind}={k}")
            runs = [finetune.load_or_train(c, verbose=verbose)
                    for c in cfg.finetune_configs(**{kind: k})]
            preds = np.stack([_unit_predictions(cfg.task_spec,
                                                finetune.predictions(r, cfg.split), rows)
                              for r in runs])
            out.append({"kind": kind, "k": k, "x": n_layers - k if kind == "drop_top" else k,
                        "keys": [r.path.name for r in runs], "predictions": preds})
    return out


def _unit_predictions(task, reference, rows: np.ndarray) -> np.ndarray:
    """A run's predictions of the units at ``rows`` of ``finetune.predictions``: classes or
    scores [n], or for QA and parsing their per-unit statistics [n, q] (``structured``)."""
    if structured.is_structured(task):
        return structured.reference_stats(task, reference)[rows]
    return reference.predictions[rows]


def _untuned_features(cfg: TruncationConfig, specs: tuple, verbose: bool
                      ) -> tuple[acts.Activations, acts.Activations]:
    """The untuned encoder's first-token features (cached when there) for ``specs`` (validation,
    train): validation [L+1, n, D] and train [L+1, n_train, D]."""
    val_spec, train_spec = specs
    orig_model, orig_tok = acts.encoder_and_tokenizer(cfg.model, device=cfg.resolved_device())
    orig_val = acts.load_or_extract(val_spec, orig_model, orig_tok, progress=verbose)
    orig_train = acts.load_or_extract(train_spec, orig_model, orig_tok, progress=verbose)
    return orig_val, orig_train


def _sequence_lines(n_seeds: int, orig: tuple, task) -> Lines:
    """All-NaN logits [S, L+1, n, C] for each line; the untuned features' keys."""
    orig_val, orig_train = orig
    return empty_lines(n_seeds, orig_val.n_layers, orig_val.ids.shape[0], task.num_labels,
                       keys={"orig_val": orig_val.key, "orig_train": orig_train.key},
                       labels=np.asarray(orig_val.labels))


def _seed_lines(cfg: TruncationConfig, task, specs: tuple, s: int, res, orig: tuple,
                rows: np.ndarray, labels: np.ndarray, out: Lines, clock: Clock, log,
                verbose: bool, tuned_heads: bool = True) -> None:
    """Seed ``s`` (fine-tuned run ``res``) of every line into ``out``: UNTUNED logits
    [L+1, n, C] from one pass (parity of row L with the run's predictions), the fine-tuned
    features (validation rows checked against ``rows``/``labels``), then the TUNED and
    TUNEDORIG heads of every defined layer."""
    (orig_val, orig_train), (val_spec, train_spec) = orig, specs
    L = orig_val.n_layers
    model, tok = acts.encoder_and_tokenizer(res, device=cfg.resolved_device())
    log(f"[truncation] seed {res.config.seed}: UNTUNED, one pass for all layers")
    es = evaluation.eval_set(task, cfg.split, rows, tok, cfg.resolved_max_length())
    u = evaluation.untuned_logits(model, es)  # [L+1, n, C], float32 on every device
    ref = finetune.predictions(res, cfg.split)
    out.parity.append(evaluation.parity(task, res.config.seed, u[L], ref, es))
    clock.lap("untuned")
    progress.phase(f"truncation: seed {res.config.seed}: fine-tuned encoder features")
    ft_val = acts.load_or_extract(val_spec, model, tok, progress=verbose)
    ft_train = acts.load_or_extract(train_spec, model, tok, progress=verbose)
    out.keys.update({f"ft{s}_val": ft_val.key, f"ft{s}_train": ft_train.key})
    if not (ft_val.ids[:, 0] == rows).all() or not (labels == ref.labels[rows]).all():
        raise RuntimeError("validation rows of the features and of the predictions differ "
                           "(unexpected: both come from the same split and subset)")
    keep = defined_layers(ft_val.states)
    out.logits["untuned"][s][keep] = u[keep]
    if s == 0 and cfg.mark_blocks:  # FT–FT linear CKA of the same CLS states (study 02)
        out.blocks = ft_blocks(ft_val.states)
    clock.lap("features")
    if not tuned_heads:
        return
    init = heads.head_params(model)  # TUNED and TUNEDORIG both start from it
    for line, train, val in (("tuned", ft_train, ft_val),
                             ("tunedorig", orig_train, orig_val)):
        log(f"[truncation] seed {res.config.seed}: {line.upper()} heads, all layers at once")
        layers, lg, record = retrain(line, init, train.states, train.labels, val.states,
                                     cfg.head_training(), cfg.seed + s,
                                     task.kind == "regression")
        out.logits[line][s][layers] = lg
        out.fits[line].append({"seed": res.config.seed, **record})
    clock.lap("heads")


def _undefined(logits: dict[str, np.ndarray], no_heads: str | None = None,
               why: str = "the first-token vector is the same for every example"
               ) -> dict[str, dict[int, str]]:
    """Line -> {layer: why} for the layers whose logits [S, L+1, n, C] are not all finite
    (``no_heads``: why TUNED/TUNEDORIG were not trained at all, for every layer)."""
    n_layers = next(iter(logits.values())).shape[1]
    return {k: {i: (no_heads if no_heads and k != "untuned" else why)
                for i in range(n_layers) if not np.isfinite(v[:, i]).all()}
            for k, v in logits.items()}


def scorer_for(cfg, task, labels: np.ndarray, groups: np.ndarray | None, n_rows: int,
               metric: str | None = None) -> Scorer | RatioScorer:
    """The task's scorer on the units' ``labels``: token tasks resample whole sentences
    (``groups``: the sentence of each unit), so the intervals respect the dependence between
    the words of one sentence; QA and parsing score per-unit statistics (questions,
    sentences: ``RatioScorer``); every other kind resamples examples."""
    if structured.is_structured(task):
        return RatioScorer(task, len(labels), n_boot=cfg.n_boot, seed=cfg.seed, metric=metric,
                           unit_name=task_heads.for_task(task).units)
    if task.kind not in TOKEN_KINDS:
        return Scorer(task, labels, n_boot=cfg.n_boot, seed=cfg.seed, metric=metric)
    return Scorer(task, labels, n_boot=cfg.n_boot, seed=cfg.seed, metric=metric, groups=groups,
                  n_groups=n_rows, unit_name=task_heads.for_task(task).units)


def _scored_result(cfg: TruncationConfig, task, ft: list, out: Lines, rows: np.ndarray,
                   undefined: dict, ablations: list[dict], clock: Clock) -> TruncationResult:
    """Scores with bootstrap bands over examples ([L+1, 1 + B] tables per line), the baseline,
    the findings' effects, the ablations' scores (added to ``ablations``) and the full model's
    primary metric -> the result (its timings from ``clock``, statistics lapped)."""
    logits, L = out.logits, next(iter(out.logits.values())).shape[1] - 1
    labels = out.labels
    n = len(labels)
    scorer = scorer_for(cfg, task, labels, out.groups, len(rows))
    # the baseline: train majority/mean; QA and parsing: the run's rule (first words, chain)
    baseline_value = finetune.predictions(ft[0], cfg.split).baseline
    if structured.is_structured(task):  # per-unit statistics [S, L+1, n, q]
        pred = dict(logits)
        base = scorer.table(out.baseline_stats)[0]
    else:
        pred = {k: metrics.predictions_from_logits(task, np.nan_to_num(v))
                for k, v in logits.items()}  # [S, L+1, n]
        base = scorer.table(np.full((len(ft), n), baseline_value))[0]
    tables = {}
    for line in LINES:
        t = scorer.table(np.moveaxis(pred[line], 1, 0))  # [L+1, 1 + B]
        t[list(undefined[line])] = np.nan
        tables[line] = t
    effects = effect_intervals(tables, base, sign=scorer.sign, n_layers=L,
                               tolerance=cfg.tolerance * structured.metric_scale(task),
                               method=scorer.method(), metric=scorer.metric)
    for a in ablations:
        t = scorer.table(a["predictions"])[0]
        a.update(value=float(t[0]), band=list(scorer.interval(t)[1:]),
                 metrics=_metrics(task, a["predictions"], labels),
                 predictions=a["predictions"].tolist())
        if a["kind"] == "drop_top" and a["x"] not in undefined["untuned"]:
            a["minus_untuned"] = list(scorer.interval(scorer.sign
                                                      * (t - tables["untuned"][a["x"]])))
    primary = task.primary_metric  # the task's own metric (regression: pearson, not MSE)
    ps = scorer if primary == scorer.metric else scorer_for(cfg, task, labels, out.groups,
                                                            len(rows), metric=primary)
    full_primary = dict(zip(("estimate", "low", "high"),
                            ps.interval(ps.table(pred["untuned"][:, L])[0]), strict=True))
    clock.lap("statistics")
    return TruncationResult(
        config=cfg, n_layers=L, metric=scorer.metric, higher_is_better=scorer.higher,
        rows=rows, labels=labels, logits=logits,
        scores={k: v[:, 0].tolist() for k, v in tables.items()},
        bands={k: [list(scorer.interval(r)[1:]) if np.isfinite(r).all() else [None, None]
                   for r in v] for k, v in tables.items()},
        layer_metrics={k: [{} if i in undefined[k] else _metrics(task, pred[k][:, i], labels)
                           for i in range(L + 1)] for k in LINES},
        baseline={"prediction": baseline_value, "value": float(base[0]),
                  "band": list(scorer.interval(base)[1:])},
        full_primary={"metric": primary, **full_primary}, ablations=tuple(ablations),
        blocks=out.blocks, effects=effects, undefined=undefined, head_fits=out.fits,
        parity=tuple(out.parity), activation_keys=out.keys,
        finetune_runs=finetune_runs(ft, baseline=True), groups=out.groups,
        reference_rows=out.reference_rows,
        timings={k: round(v, 1) for k, v in clock.times.items()})


def run_truncation(cfg: TruncationConfig, *, verbose: bool = True) -> TruncationResult:
    """UNTUNED, TUNED, TUNEDORIG at every layer, the baseline and the ablations of ``cfg``
    (fine-tuning and features come from the cache when there). Returns a ``TruncationResult``
    whose ``logits[line]`` are [S, L+1, U, C] (U units: examples, questions, words or pairs;
    NaN rows where undefined)."""
    t0 = time.time()
    clock, log = Clock(t0), progress.logger(verbose)
    task = cfg.task_spec  # a kind with a head on states: TruncationConfig.check
    kind = adapters.head_kind_of(task.kind)
    model_config = models.load_config(cfg.model)
    family = adapters.require_surgery(model_config, "the truncation study",
                                      head_kind=kind)  # before any fine-tuning
    # TUNED/TUNEDORIG retrain the head in its own form (first-token dense + activation +
    # linear; token and pair classifiers: one linear layer); a family whose head of this kind
    # is not of that form (ModernBERT: final norm and a LayerNorm inside) runs UNTUNED only,
    # and its two other lines are undefined, saying why
    form = ("first-token dense + activation + linear" if kind in ("sequence", "multiple_choice")
            else "biaffine" if kind == "parser" else "linear")
    no_heads = None if family.has_tuned_head(kind) else (
        f"TUNED/TUNEDORIG are undefined for {family.family}: its {kind} head is not a {form} "
        f"head that can be retrained on layer k's features")
    check_ablations(cfg, model_config)
    ft = [finetune.load_or_train(c, verbose=verbose) for c in cfg.finetune_configs()]
    clock.lap("finetune")
    if task.kind in evaluation.SEQUENCE_KINDS:
        out, rows = _sequence_run(cfg, task, ft, clock, log, verbose, no_heads)
        undefined = _undefined(out.logits, no_heads)
    elif structured.is_structured(task):
        out, rows = _structured_run(cfg, ft, clock, log, no_heads)
        undefined = _undefined(out.logits, no_heads, f"the head's input is the same for every "
                                                     f"{task_heads.for_task(task).unit}")
    else:
        rows, train_rows = units.unit_rows(cfg)
        orig = None
        if no_heads is None:
            log("[truncation] untuned encoder features")
            orig = units.untuned_features(cfg, rows, train_rows, verbose)
            clock.lap("features")
        out = None
        for s, res in enumerate(ft):
            out = units.seed_lines(cfg, s, res, rows, train_rows, orig, out, clock, log,
                                   len(ft), no_heads)
        kh = task_heads.for_task(task)
        undefined = _undefined(out.logits, no_heads, f"the head's input is the same for every "
                                                     f"{kh.unit}")
    ref_rows = rows if out.reference_rows is None else out.reference_rows
    ablations = _ablations(cfg, ref_rows, next(iter(out.logits.values())).shape[1] - 1,
                           verbose)
    clock.lap("ablations")
    progress.phase("truncation: statistics (bootstrap over examples)")
    result = _scored_result(cfg, task, ft, out, rows, undefined, ablations, clock)
    return result.finished(round(time.time() - t0, 1), cfg.resolved_device(), cfg.dtype)


def _sequence_run(cfg: TruncationConfig, task, ft: list, clock: Clock, log, verbose: bool,
                  no_heads: str | None) -> tuple[Lines, np.ndarray]:
    """Every seed's lines of a sequence task from the cached CLS features -> (lines, rows)."""
    specs = cfg.activation_spec(), cfg.activation_spec("train")  # validation, train
    log("[truncation] untuned encoder features")
    orig = _untuned_features(cfg, specs, verbose)
    rows, labels = orig[0].ids[:, 0].copy(), np.asarray(orig[0].labels)
    out = _sequence_lines(len(ft), orig, task)
    clock.lap("features")
    for s, res in enumerate(ft):
        _seed_lines(cfg, task, specs, s, res, orig, rows, labels, out, clock, log, verbose,
                    tuned_heads=no_heads is None)
    return out, rows


def _structured_run(cfg: TruncationConfig, ft: list, clock: Clock, log, no_heads: str | None
                    ) -> tuple[Lines, np.ndarray]:
    """Every seed's lines of a QA or parsing task (``structured_lines``) -> (lines, the
    units' split rows)."""
    rows, train_rows = units.unit_rows(cfg)
    orig = None
    if no_heads is None:
        log("[truncation] untuned encoder features")
        orig = structured_lines.untuned_features(cfg, rows, train_rows)
        clock.lap("features")
    out = None
    for s, res in enumerate(ft):
        out = structured_lines.seed_lines(cfg, s, res, rows, train_rows, orig, out, clock, log,
                                          len(ft), no_heads)
    return out, out.unit_rows


def _metrics(task, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of the task, mean over seeds (preds [S, n]; QA and parsing: per-unit
    statistics [S, n, q])."""
    if structured.is_structured(task):
        return structured.unit_metrics(task, preds)
    per = [metrics.compute(task, p, labels) for p in np.atleast_2d(preds)]
    return {m: float(np.mean([d[m] for d in per])) for m in per[0]
            if isinstance(per[0][m], float)}
