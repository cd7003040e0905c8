"""The result of study 03 (``run_truncation``): per-layer logits and scores, findings, files.

Follows the result protocol of ``studies.base``; holds cache keys (activations, fine-tuning
runs), never paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ... import metrics, plots
from .. import results
from ..base import StudyResult
from ..common import records, structured
from . import findings as fnd
from . import plots as tplots


@dataclass(frozen=True)
class TruncationResult(records.ScoredUnits, StudyResult):
    """Everything one ``run_truncation`` call measured.

    Attributes:
        config: the ``TruncationConfig``; n_layers: L.
        metric, higher_is_better: the scored metric (``metrics.headline_metric``).
        rows: [n] split row indices of the evaluation examples; labels: [U] gold labels of
            the scored units (``studies.common.task_heads``: one per example or question, or
            per labelled word / word pair of token tasks); groups: [U] the example (position
            in rows) of each unit; reference_rows: [U] each unit's row in
            ``finetune.predictions`` (both None: one unit per example, ``rows``).
        logits: line ("untuned", "tuned", "tunedorig") -> [S, L+1, U, C] float32 per seed and
            layer (multiple choice: C choices); NaN rows where a layer is undefined (reason in
            ``undefined``). Extractive QA and dependency parsing (units: questions,
            sentences): per-unit statistics [S, L+1, U, q] instead (``studies.common.
            structured.STATS``: em, f1; scored words, right heads, right heads and
            relations), and ``labels`` holds each unit's position in
            ``finetune.predictions`` (there is no class per unit).
        scores: line -> [L+1] metric (mean over seeds; NaN undefined); bands: line -> [L+1]
            [low, high] 95% bootstrap intervals.
        layer_metrics: line -> [L+1] {metric: value} for every metric of the task.
        baseline: {prediction, value, band} of the majority-class (regression: mean) baseline.
        full_primary: the full model on the task's own (primary) metric {metric, estimate,
            low, high} (differs from ``metric`` for regression: pearson vs MSE).
        ablations: per ablation {kind, k, x, value, band, metrics, minus_untuned (drop_top:
            [estimate, low, high] of ablation minus UNTUNED at L-k), keys, predictions [S, n]}.
        blocks: FT–FT CKA block structure {boundary, score, ...} or None.
        effects: claim id -> interval (``findings.effect_intervals``).
        undefined: line -> {layer: why}; head_fits: line -> per seed training record.
        parity: per seed, UNTUNED at L against ``finetune.predictions`` (max |logit diff|,
            agreement of predictions).
    """

    study: ClassVar[str] = "truncation"
    config: Any
    n_layers: int
    metric: str
    higher_is_better: bool
    rows: np.ndarray
    labels: np.ndarray
    logits: dict[str, np.ndarray]
    scores: dict[str, list[float]]
    bands: dict[str, list]
    layer_metrics: dict[str, list[dict]]
    baseline: dict
    full_primary: dict = field(default_factory=dict)
    ablations: tuple[dict, ...] = ()
    blocks: dict | None = None
    effects: dict[str, dict] = field(default_factory=dict)
    undefined: dict[str, dict[int, str]] = field(default_factory=dict)
    head_fits: dict[str, list[dict]] = field(default_factory=dict)
    parity: tuple[dict, ...] = ()
    activation_keys: dict[str, str] = field(default_factory=dict)
    finetune_runs: tuple[dict, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    device: dict = field(default_factory=dict)  # where it ran: devices.device_record
    groups: np.ndarray | None = None
    reference_rows: np.ndarray | None = None

    def layers(self, line: str) -> list[int]:
        """Layers where ``line`` is defined (all seeds)."""
        return [k for k in range(self.n_layers + 1)
                if np.isfinite(self.logits[line][:, k]).all()]

    @property
    def structured(self) -> bool:
        """Extractive QA or dependency parsing: ``logits`` hold per-unit statistics."""
        return structured.is_structured(self.config.task_spec)

    def predictions(self, line: str) -> np.ndarray:
        """[S, L+1, U] class ids (regression: scores); undefined layers hold NaN. Extractive
        QA and parsing: the per-unit statistics [S, L+1, U, q] (``structured.STATS``)."""
        lg = self.logits[line]
        if self.structured:
            return lg.astype(np.float64)
        p = metrics.predictions_from_logits(self.config.task_spec, np.nan_to_num(lg))
        p = p.astype(np.float64)
        p[~np.isfinite(lg).all(-1)] = np.nan
        return p

    @property
    def smallest_depth(self) -> int:
        """The fewest blocks UNTUNED keeps within tolerance (L - top_layers_droppable)."""
        return self.n_layers - int(self.effects["top_layers_droppable"]["estimate"])

    def title(self) -> str:
        c = self.config
        return (f"Truncation (Phang et al. 2021 §4): {c.model} on {c.task}, "
                f"{records.evaluated(self)}, {self.metric}")

    def figure(self):
        """Plotly figure after Phang et al. Fig. 3 (see ``plots``)."""
        return plots.lines_figure(tplots.lines(self), **tplots.figure_args(self))

    def png(self, path: Path) -> Path:
        return plots.lines_png(tplots.lines(self), path, **tplots.figure_args(self))

    def layer_figure(self, layer: int):
        """Confusion matrices (classification) or score distributions (regression) at one
        layer, for the three lines."""
        return tplots.layer_figure(self, layer)

    def findings(self) -> dict:
        return fnd.findings(self)

    def headline(self) -> dict:
        L, (out, parity) = self.n_layers, records.head_headline(self, "untuned_parity_max_abs")
        for line, s in self.scores.items():
            for k in self.layers(line):
                out[f"{line}_{k}"] = s[k]
        e = self.effects["top_layers_droppable"]
        out.update(full=self.scores["untuned"][L], baseline=self.baseline["value"],
                   n_droppable=e["estimate"], n_droppable_low=e["low"],
                   n_droppable_high=e["high"], smallest_depth=self.smallest_depth)
        if self.full_primary:
            out[f"full_{self.full_primary['metric']}"] = self.full_primary["estimate"]
        if "tunedorig_below_tuned" in self.effects:
            out["tuned_minus_tunedorig"] = self.effects["tunedorig_below_tuned"]["estimate"]
        if self.blocks:
            out["ft_ft_block_boundary"] = self.blocks["boundary"]
        for a in self.ablations:
            out[f"{a['kind']}_{a['k']}"] = a["value"]
        return {**out, **parity}

    def to_dict(self) -> dict:
        """JSON-ready: scores, bands, metrics, predictions (not logits), NaN as null."""
        return records.head_result_dict(
            self, layer_labels=plots.layer_labels(self.n_layers), scores=self.scores,
            bands=self.bands, layer_metrics=self.layer_metrics, baseline=self.baseline,
            full_primary=self.full_primary,
            predictions={k: np.round(self.predictions(k), 5).tolist() for k in self.logits},
            ablations=list(self.ablations), blocks=self.blocks, effects=self.effects,
            undefined={k: {str(i): w for i, w in v.items()} for k, v in self.undefined.items()},
            head_fits=self.head_fits, activation_keys=self.activation_keys,
            # what read() needs beyond the above: the logits bit for bit
            logits={k: results.pack_array(v) for k, v in self.logits.items()})

    @classmethod
    def from_dict(cls, saved) -> TruncationResult:
        """The inverse of ``to_dict`` (``saved``: ``studies.results.Saved``)."""
        from .run import TruncationConfig  # run imports this module

        def metrics(d: dict) -> dict:
            return {k: math.nan if v is None else v for k, v in d.items()}

        effects = saved.need("effects", dict)
        for e in effects.values():  # JSON made the layers of "differences" strings
            if isinstance(e, dict) and isinstance(e.get("differences"), dict):
                e["differences"] = {int(k): v for k, v in e["differences"].items()}
        return cls(
            **records.head_result_fields(saved, TruncationConfig),
            logits={k: saved.packed(v, f"logits.{k}")
                    for k, v in saved.need("logits", dict).items()},
            scores={k: results.floats(v) for k, v in saved.need("scores", dict).items()},
            bands=saved.need("bands", dict),
            layer_metrics={k: [metrics(d) for d in v]
                           for k, v in saved.need("layer_metrics", dict).items()},
            baseline=saved.need("baseline", dict), full_primary=saved.need("full_primary", dict),
            ablations=tuple(saved.need("ablations", list)), blocks=saved.need("blocks"),
            effects=effects,
            undefined={k: {int(i): w for i, w in v.items()}
                       for k, v in saved.need("undefined", dict).items()},
            head_fits=saved.need("head_fits", dict),
            activation_keys=saved.need("activation_keys", dict))

    def problems(self) -> list[str]:
        """Logits, scores and bands against seeds x (n_layers + 1) x units; undefined
        layers with a reason and no score; the effects the findings read; cache keys."""
        S, L, out = len(self.config.seeds), self.n_layers, records.unit_problems(self)
        n = len(self.labels)
        for line, lg in self.logits.items():
            if lg.ndim != 4 or lg.shape[:3] != (S, L + 1, n):
                out.append(f"{line} logits are {list(lg.shape)}, not [{S}, {L + 1}, {n}, C] "
                           f"(seeds, n_layers + 1, units)")
                continue
            why = self.undefined.get(line, {})
            for k in range(L + 1):
                defined = bool(np.isfinite(lg[:, k]).all())
                if not defined and k not in why:
                    out.append(f"{line} layer {k} has NaN logits and no recorded reason")
                elif defined and k in why:
                    out.append(f"{line} layer {k} has logits but is recorded undefined")
            for name, v in (("scores", self.scores), ("bands", self.bands),
                            ("layer_metrics", self.layer_metrics)):
                if len(v.get(line, ())) != L + 1:
                    out.append(f"{name} of {line} has {len(v.get(line, ()))} layers, not "
                               f"{L + 1}")
            s = self.scores.get(line, [])
            out += [f"{line} layer {k} is defined but its score is NaN"
                    for k in self.layers(line) if k < len(s) and not np.isfinite(s[k])]
        out += [f"no logits of the {line} line" for line in ("untuned", "tuned", "tunedorig")
                if line not in self.logits]
        out += [f"no effect {k!r} (the findings read it)"
                for k in ("top_layers_droppable", "full_beats_baseline") if k not in self.effects]
        if len(self.parity) != S:
            out.append(f"{len(self.parity)} parity checks for {S} seed(s)")
        return out + self.key_problems(self.activation_keys.values(),
                                       (r.get("key") for r in self.finetune_runs))
