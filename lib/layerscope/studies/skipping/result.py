"""The result of study 04 (``run_skipping``): logits and scores per span, findings, files.

Follows the result protocol of ``studies.base``; holds fine-tuning cache keys, never paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ... import metrics, plots
from .. import results
from ..base import StudyResult
from ..common import records, structured
from . import findings as fnd
from . import plots as splots


@dataclass(frozen=True)
class SkippingResult(records.ScoredUnits, StudyResult):
    """Everything one ``run_skipping`` call measured.

    Attributes:
        config: the ``SkippingConfig``; n_layers: L blocks.
        metric, higher_is_better: the scored metric (``metrics.headline_metric``).
        rows: [n] split row indices; labels: [U] gold labels of the scored units
            (``studies.common.task_heads``: examples, questions, or the labelled words / word
            pairs of token tasks); groups: [U] the example (position in rows) of each unit;
            reference_rows: [U] each unit's row in ``finetune.predictions`` (both None: one
            unit per example, ``rows``).
        spans: the R spans (i, j), first and last skipped block inclusive
            (``surgery_kernels.spans(L)``: every span but (1, L)).
        span_logits: [S, R, U, C] per seed; full_logits: [S, U, C], nothing skipped.
            Extractive QA and dependency parsing (units: questions, sentences): per-unit
            statistics [.., U, q] instead (``studies.common.structured.STATS``), and
            ``labels`` holds each unit's position in ``finetune.predictions``.
        span_scores, span_bands: [R] metric (mean over seeds) and [R] [low, high] intervals.
        full, baseline: {value, band} (+ baseline prediction).
        by_length: per span length {length, mean_drop, low, high, min_drop, max_drop}.
        effects: claim id -> interval (``findings.effect_intervals``).
        parity: per seed, nothing skipped against ``finetune.predictions``.
    """

    study: ClassVar[str] = "skipping"
    config: Any
    n_layers: int
    metric: str
    higher_is_better: bool
    rows: np.ndarray
    labels: np.ndarray
    spans: tuple[tuple[int, int], ...]
    span_logits: np.ndarray
    full_logits: np.ndarray
    span_scores: list[float]
    span_bands: list[list[float]]
    full: dict
    baseline: dict
    by_length: list[dict] = field(default_factory=list)
    effects: dict[str, dict] = field(default_factory=dict)
    parity: tuple[dict, ...] = ()
    finetune_runs: tuple[dict, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    device: dict = field(default_factory=dict)  # where it ran: devices.device_record
    groups: np.ndarray | None = None
    reference_rows: np.ndarray | None = None

    @property
    def structured(self) -> bool:
        """Extractive QA or dependency parsing: the logits fields hold per-unit statistics."""
        return structured.is_structured(self.config.task_spec)

    def _predict(self, logits: np.ndarray) -> np.ndarray:
        if self.structured:  # already per-unit statistics [..., U, q]
            return np.asarray(logits, dtype=np.float64)
        return metrics.predictions_from_logits(self.config.task_spec, logits)

    def full_predictions(self) -> np.ndarray:
        """[S, U] predictions of the model with nothing skipped."""
        return self._predict(self.full_logits)

    def span_index(self, first: int, last: int) -> int:
        i, j = splots.check_span(self, first, last)
        return self.spans.index((i, j))

    def predictions(self, first: int, last: int) -> np.ndarray:
        """[S, U] predictions with blocks first..last skipped."""
        return self._predict(self.span_logits[:, self.span_index(first, last)])

    def score(self, first: int, last: int) -> float:
        return self.span_scores[self.span_index(first, last)]

    def matrix(self) -> np.ndarray:
        """[L, L] metric with blocks i..j skipped at [i-1, j-1]; NaN where j < i and at
        (1, L)."""
        m = np.full((self.n_layers, self.n_layers), np.nan)
        for (i, j), v in zip(self.spans, self.span_scores, strict=True):
            m[i - 1, j - 1] = v
        return m

    def title(self) -> str:
        c = self.config
        return (f"Skipping (Phang et al. 2021 §4.1): {c.model} on {c.task}, "
                f"{records.evaluated(self)}, {self.metric}")

    def figure(self):
        """The span heatmap after Phang et al. Fig. 4."""
        return plots.panels_figure([splots.heatmap_panel(self)], **splots.heatmap_args(self))

    def png(self, path: Path) -> Path:
        return plots.panels_png([splots.heatmap_panel(self)], path, **splots.heatmap_args(self))

    def curves_figure(self):
        lines, kw = splots.curves(self)
        return plots.lines_figure(lines, **kw)

    def length_figure(self):
        lines, kw = splots.length_curve(self)
        return plots.lines_figure(lines, **kw)

    def span_figure(self, first: int, last: int):
        """One span's predictions against the full model's (``plots.span_figure``)."""
        return splots.span_figure(self, first, last)

    def extra_figures(self) -> dict:
        out = {}
        for stem, make in (("skipping_position", splots.curves),
                           ("skipping_length", splots.length_curve)):
            lines, kw = make(self)
            out[stem] = (plots.lines_figure(lines, **kw),
                         lambda p, lines=lines, kw=kw: plots.lines_png(lines, p, **kw))
        return out

    def findings(self) -> dict:
        return fnd.findings(self)

    def headline(self) -> dict:
        out, parity = records.head_headline(self, "full_parity_max_abs")
        out.update(full=self.full["value"], baseline=self.baseline["value"])
        for (i, j), v in zip(self.spans, self.span_scores, strict=True):
            out[f"skip_{i}_{j}"] = v
        for d in self.by_length:
            out[f"mean_drop_len{d['length']}"] = d["mean_drop"]
        return {**out, **parity}

    def to_dict(self) -> dict:
        """JSON-ready: the matrix (NaN as null), per-span scores, bands and predictions."""
        return records.head_result_dict(
            self, spans=[list(s) for s in self.spans], matrix=self.matrix().tolist(),
            span_scores=self.span_scores, span_bands=self.span_bands,
            span_predictions=np.round(self._predict(self.span_logits), 5).tolist(),
            full_predictions=np.round(self.full_predictions(), 5).tolist(),
            full=self.full, baseline=self.baseline, by_length=self.by_length,
            effects=self.effects,
            # what read() needs beyond the above: the logits bit for bit
            span_logits=results.pack_array(self.span_logits),
            full_logits=results.pack_array(self.full_logits))

    @classmethod
    def from_dict(cls, saved) -> SkippingResult:
        """The inverse of ``to_dict`` (``saved``: ``studies.results.Saved``)."""
        from .run import SkippingConfig  # run imports this module

        return cls(
            **records.head_result_fields(saved, SkippingConfig),
            spans=tuple(tuple(sp) for sp in saved.need("spans", list)),
            span_logits=saved.packed(saved.need("span_logits"), "span_logits"),
            full_logits=saved.packed(saved.need("full_logits"), "full_logits"),
            span_scores=results.floats(saved.need("span_scores", list)),
            span_bands=results.floats(saved.need("span_bands", list)),
            full=saved.need("full", dict), baseline=saved.need("baseline", dict),
            by_length=[{k: results.floats(v) for k, v in d.items()}
                       for d in saved.need("by_length", list)],
            effects=saved.need("effects", dict))

    def problems(self) -> list[str]:
        """Spans against n_layers (every span but (1, L)), logits and scores against seeds x
        spans x units, no NaN (skipping records no undefined spans), cache keys."""
        S, L, out = len(self.config.seeds), self.n_layers, records.unit_problems(self)
        n = len(self.labels)
        every = [(i, j) for j in range(1, L + 1) for i in range(1, j + 1) if (i, j) != (1, L)]
        if sorted(self.spans) != sorted(every):
            out.append(f"{len(self.spans)} spans, not the {len(every)} spans of {L} blocks "
                       "(every (i, j) with 1 <= i <= j <= L but (1, L))")
        R = len(self.spans)
        if self.span_logits.ndim != 4 or self.span_logits.shape[:3] != (S, R, n):
            out.append(f"span logits are {list(self.span_logits.shape)}, not [{S}, {R}, {n}, C]"
                       " (seeds, spans, units)")
        if self.full_logits.shape != (S, n) + self.span_logits.shape[3:]:
            out.append(f"full logits are {list(self.full_logits.shape)}, not [{S}, {n}, C]")
        for name, a in (("span logits", self.span_logits), ("full logits", self.full_logits)):
            if not np.isfinite(a).all():
                out.append(f"{name} have {int((~np.isfinite(a)).sum())} NaN/inf values")
        for name, v in (("span scores", self.span_scores), ("span bands", self.span_bands)):
            if len(v) != R:
                out.append(f"{len(v)} {name} for {R} spans")
        if not np.isfinite(np.asarray(self.span_scores, dtype=float)).all():
            out.append("span scores hold NaN")
        if L >= 2:
            out += [f"no effect {k!r} (the findings read it)" for k in (
                "first_block_hurts_most", "later_single_skips_cheap", "longer_spans_hurt_more")
                if k not in self.effects]
        if len(self.parity) != S:
            out.append(f"{len(self.parity)} parity checks for {S} seed(s)")
        return out + self.key_problems(r.get("key") for r in self.finetune_runs)
