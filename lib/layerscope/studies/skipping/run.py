"""Study 04: skipping contiguous spans of blocks (Phang et al. 2021 §4.1, Fig. 4).

The fine-tuned model is evaluated with every contiguous span of blocks [i..j] (first and last
skipped block, inclusive) replaced by the identity, no further tuning, on the same validation
examples as study 03 (``common.evaluation``; scored as there, ``common.scoring``). All spans
come from one base pass per batch plus blocks j+1..L applied once per j to the stacked inputs
of the spans ending at j (``surgery_kernels``: for L = 6, 35 block evaluations + 6 for the base
pass instead of 70 + 6 for separate passes). Skipping blocks 1..L leaves no model: that cell is
undefined (grey). "Skipping nothing" is the model itself, run inside
``surgery.skipped(model, ())``; it must equal ``finetune.predictions`` (notebook 04 asserts
it; ``common.evaluation.parity``).

Every task kind with a head on states (``studies.common.task_heads``): the task's own head
reads the final state (a sequence's first token; each choice's pooled state, accuracy over
choices; each labelled word; each (head, dependent) word pair). Token tasks' intervals resample
sentences, not words.

Seeds: every cell is the mean over ``seeds`` of each fine-tuned model's metric on the same
examples (bootstrap intervals over examples; one seed by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ... import activations as acts
from ... import adapters, finetune, metrics, models, progress
from ...errors import ConfigError
from ...tasks import TOKEN_KINDS
from ..base import StudyConfig, seed_configs
from ..common import evaluation, structured, task_heads
from ..common.records import finetune_runs
from ..common.scoring import RatioScorer, Scorer
from .findings import effect_intervals
from .result import SkippingResult


@dataclass(frozen=True)
class SkippingConfig(StudyConfig):
    """One skipping study: the shared fields (``StudyConfig``: task, model, preset, seeds,
    finetuned, max_steps, max_length, seed, n_boot; each cell is the mean over seeds) and its
    own; every field is a literal.

    Attributes:
        n_examples, split: evaluation rows (examples; token tasks: sentences, multiple choice:
            questions; the seeded subset ``activations.task_inputs``
            picks, as in studies 02 and 03, with ``max_length`` and ``seed``; ``max_length``
            None makes "skip nothing" reproduce ``finetune.predictions``). ``seed`` also seeds
            the bootstrap.
        tolerance: how far below the full model (metric units) a skip may be and still count
            as costing nothing (0.01 = 1 point of accuracy).
    """

    n_examples: int | None = 1000
    split: str = "validation"
    tolerance: float = 0.01

    def check(self):
        evaluation.check_task(self.task_spec, "skipping")
        if self.n_examples is not None and self.n_examples < 10:
            raise ConfigError(f"n_examples={self.n_examples}: use at least 10 validation "
                              f"examples (1000 is the default), or None for the whole split")
        if not self.tolerance >= 0:
            raise ConfigError(f"tolerance={self.tolerance!r} must be >= 0 (metric units)")
        self.finetune_configs()
        self.spec()

    def spec(self) -> acts.ActivationSpec:
        """The rows' definition (the same subset as studies 02/03 with the same values)."""
        return acts.ActivationSpec(task=self.task_spec, split=self.split,
                                   n_examples=self.n_examples, pooling="cls",
                                   max_length=self.resolved_max_length(), seed=self.seed)

    def finetune_configs(self) -> list[finetune.FinetuneConfig]:
        return seed_configs(self)


def _seed_logits(cfg: SkippingConfig, task, ft: list, rows: np.ndarray, log
                 ) -> tuple[list, np.ndarray, np.ndarray, list, int, evaluation.EvalSet]:
    """Every seed's model as is and with each contiguous span skipped, on the units of
    ``rows``: (spans in the first seed's order, span logits [S, R, U, C], full logits
    [S, U, C], parity of the full logits with each run's predictions, L blocks, the first
    seed's evaluation set: its units' labels, sentences and prediction rows)."""
    spans, span_logits, full, parity, first = None, [], [], [], None
    for res in ft:
        model, tok = acts.encoder_and_tokenizer(res, device=cfg.resolved_device())
        es = evaluation.eval_set(task, cfg.split, rows, tok, cfg.resolved_max_length())
        if first is not None and not np.array_equal(es.labels, first.labels):
            raise RuntimeError(f"seed {res.config.seed} scores other units than seed "
                               f"{ft[0].config.seed} (its tokenizer splits the words otherwise)")
        first = first or es
        log(f"[skipping] seed {res.config.seed}: the model as is, then every span")
        f = evaluation.full_logits(model, es)
        s = evaluation.span_logits(model, es)
        spans = spans or list(s)
        ref = finetune.predictions(res, cfg.split)
        parity.append(evaluation.parity(task, res.config.seed, f, ref, es))
        full.append(f)
        span_logits.append(np.stack([s[k] for k in spans]))
    n_layers = int(model.config.num_hidden_layers)
    return spans, np.stack(span_logits), np.stack(full), parity, n_layers, first


def _structured_seed_stats(cfg: SkippingConfig, task, ft: list, rows: np.ndarray, log
                           ) -> tuple[list, np.ndarray, np.ndarray, list, int, Units]:
    """``_seed_logits`` for extractive QA and parsing (``studies.common.structured``): per-unit
    statistics (spans [S, R, n, q], the model as is [S, n, q]) of the best span per question
    or the tree per sentence, the parity of the model as is with each run's predictions, L,
    and the units (their rows, reference rows and the baseline's statistics)."""
    spans, span_stats, full, parity, units = None, [], [], [], None
    for res in ft:
        model, tok = acts.encoder_and_tokenizer(res, device=cfg.resolved_device())
        ss = structured.structured_set(task, cfg.split, rows, tok, cfg.resolved_max_length())
        ref = finetune.predictions(res, cfg.split)
        ref_rows = structured.reference_rows(ss, ref)
        if units is not None and not np.array_equal(units.reference_rows, ref_rows):
            raise RuntimeError(f"seed {res.config.seed} scores other units than seed "
                               f"{ft[0].config.seed} (its tokenizer encodes them otherwise)")
        units = units or Units(ss.rows, ref_rows, structured.baseline_stats(ss, ref.baseline),
                               ss.n)
        log(f"[skipping] seed {res.config.seed}: the model as is, then every span")
        f = structured.full_outputs(model, ss)
        out = structured.span_outputs(model, ss)
        spans = spans or list(out)
        parity.append(structured.parity(ss, res.config.seed, f, ref))
        full.append(ss.stats(f))
        span_stats.append(np.stack([ss.stats(out[k]) for k in spans]))
    n_layers = int(model.config.num_hidden_layers)
    return spans, np.stack(span_stats), np.stack(full), parity, n_layers, units


@dataclass(frozen=True)
class Units:
    """QA questions or parsing sentences scored by 04: split ``rows`` [n], their positions in
    ``finetune.predictions`` (``reference_rows`` [n], also the result's ``labels``: no class
    per unit), the baseline's statistics [n, q] and ``n``."""

    rows: np.ndarray
    reference_rows: np.ndarray
    baseline: np.ndarray
    n: int

    @property
    def labels(self) -> np.ndarray:
        return self.reference_rows

    @property
    def n_units(self) -> int:
        return self.n

    groups = None


def scorer_for(cfg, task, es) -> Scorer | RatioScorer:
    """The task's scorer on the units of ``es``: token tasks resample whole sentences (the
    words of one sentence are not independent); QA and parsing score per-unit statistics of
    questions or sentences (``RatioScorer``); every other kind resamples examples."""
    if structured.is_structured(task):
        return RatioScorer(task, es.n, n_boot=cfg.n_boot, seed=cfg.seed,
                           unit_name=task_heads.for_task(task).units)
    if task.kind not in TOKEN_KINDS:
        return Scorer(task, es.labels, n_boot=cfg.n_boot, seed=cfg.seed)
    return Scorer(task, es.labels, n_boot=cfg.n_boot, seed=cfg.seed, groups=es.groups,
                  n_groups=es.n, unit_name=task_heads.for_task(task).units)


def _scored_result(cfg: SkippingConfig, task, ft: list, es: evaluation.EvalSet,
                   spans: list, span_logits: np.ndarray, full: np.ndarray, parity: list,
                   n_layers: int, times: dict[str, float]) -> SkippingResult:
    """Scores with bootstrap bands over examples (full [1 + B], spans [R, 1 + B]), the
    baseline, the findings' effects and the drop by span length -> the result (``times`` gets
    the statistics' seconds)."""
    t1 = time.time()
    scorer = scorer_for(cfg, task, es)
    # the baseline: train majority/mean; QA and parsing: the run's rule (first words, chain)
    baseline = finetune.predictions(ft[0], cfg.split).baseline
    if structured.is_structured(task):  # per-unit statistics: [S, R, n, q], [S, n, q]
        span_p, full_p, base_t = span_logits, full, scorer.table(es.baseline)[0]
    else:
        span_p = metrics.predictions_from_logits(task, span_logits)  # [S, R, U]
        full_p = metrics.predictions_from_logits(task, full)
        base_t = scorer.table(np.full((len(ft), es.n_units), baseline))[0]
    full_t = scorer.table(full_p)[0]
    span_t = scorer.table(np.moveaxis(span_p, 1, 0))  # [R, 1 + B]
    effects = effect_intervals(spans, span_t, full_t, sign=scorer.sign, n_layers=n_layers,
                               tolerance=cfg.tolerance * structured.metric_scale(task),
                               method=scorer.method(), metric=scorer.metric)
    times["statistics"] = time.time() - t1
    return SkippingResult(
        config=cfg, n_layers=n_layers, metric=scorer.metric, higher_is_better=scorer.higher,
        rows=es.rows, labels=es.labels, spans=tuple(spans), span_logits=span_logits,
        full_logits=full, span_scores=span_t[:, 0].tolist(),
        span_bands=[list(scorer.interval(r)[1:]) for r in span_t],
        full={"value": float(full_t[0]), "band": list(scorer.interval(full_t)[1:])},
        baseline={"prediction": baseline, "value": float(base_t[0]),
                  "band": list(scorer.interval(base_t)[1:])},
        by_length=_by_length(spans, span_t, full_t, scorer), effects=effects,
        parity=tuple(parity),
        finetune_runs=finetune_runs(ft, baseline=False),
        timings={k: round(v, 1) for k, v in times.items()},
        groups=es.groups if task.kind in TOKEN_KINDS else None,
        reference_rows=(es.reference_rows if task.kind in TOKEN_KINDS
                        or structured.is_structured(task) else None))


def run_skipping(cfg: SkippingConfig, *, verbose: bool = True) -> SkippingResult:
    """Every contiguous span skipped, for every seed of ``cfg`` (fine-tuning from the cache
    when there). ``result.span_logits`` is [S, n_spans, U, C] in ``result.spans`` order (U
    units: examples, questions, words or word pairs)."""
    t0, times = time.time(), {}
    log = progress.logger(verbose)
    task = cfg.task_spec  # a kind with a head on states: SkippingConfig.check
    adapters.require_surgery(models.load_config(cfg.model), "the skipping study",
                             head_kind=adapters.head_kind_of(task.kind))  # before
    ft = [finetune.load_or_train(c, verbose=verbose) for c in cfg.finetune_configs()]  # training
    times["finetune"] = time.time() - t0
    rows = acts.task_inputs(cfg.spec())[2]
    t1 = time.time()
    seed_outputs = (_structured_seed_stats if structured.is_structured(task) else
                    _seed_logits)
    spans, span_logits, full, parity, n_layers, es = seed_outputs(cfg, task, ft, rows, log)
    times["spans"] = time.time() - t1
    progress.phase("skipping: statistics (bootstrap over examples)")
    result = _scored_result(cfg, task, ft, es, spans, span_logits, full, parity, n_layers,
                            times)
    return result.finished(round(time.time() - t0, 1), cfg.resolved_device(), "float32")


def _by_length(spans, span_t: np.ndarray, full_t: np.ndarray, scorer: Scorer) -> list[dict]:
    """Per span length: mean drop (sign (full - span), so higher = worse) over positions, with
    its bootstrap interval, and the smallest and largest drop."""
    out = []
    for n_skip in sorted({j - i + 1 for i, j in spans}):
        idx = [r for r, (i, j) in enumerate(spans) if j - i + 1 == n_skip]
        drops = scorer.sign * (full_t - span_t[idx])  # [m, 1 + B]
        est, lo, hi = scorer.interval(drops.mean(0))
        out.append({"length": n_skip, "mean_drop": est, "low": lo, "high": hi,
                    "min_drop": float(drops[:, 0].min()), "max_drop": float(drops[:, 0].max()),
                    "n_spans": len(idx)})
    return out
