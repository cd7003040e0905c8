"""Findings of notebook 01 (fine-tuning): the quality claims, as statistics with intervals.

Quality is a finding, not an assert: a papermill sweep over a hard task (RTE, CoLA), where a
seed can land at chance, records INCONCLUSIVE or NOT SUPPORTED instead of failing (README: Layout).

* beats_baseline: the fine-tuned model's validation metric minus the majority-class baseline's
  (regression: the mean predictor's MSE minus the model's), bootstrap over validation examples;
* loss_fell: mean training loss over the first third of the logged steps minus the last third,
  with a Welch t interval over the logged values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import stats

from .. import finetune, metrics, plots
from ..measures.intervals import bootstrap_interval
from .base import Interval, StudyResult, finding, undefined_finding


def finetune_findings(result: finetune.FinetuneResult, *, n_boot: int = 500,
                      seed: int = 0) -> dict:
    """{claim id: {claim, numbers, interval, verdict}} for one fine-tuned model."""
    task = result.config.task_spec
    pred = finetune.predictions(result)
    if task.kind in metrics.STRUCTURED_KINDS:  # scored over spans and trees
        out = {"beats_baseline": _structured_beats_baseline(result, pred, n_boot, seed)}
    else:
        out = {"beats_baseline": _beats_baseline(result, pred, n_boot, seed)}
    loss = np.asarray(result.learning_curve()["train_loss"], dtype=float)
    claim = "training loss fell (first vs last third of the logged steps)"
    if len(loss) < 6:
        out["loss_fell"] = undefined_finding(claim, f"only {len(loss)} logged losses; need 6")
    else:
        k = len(loss) // 3
        first, last = loss[:k], loss[-k:]
        diff = float(first.mean() - last.mean())
        se = float(np.sqrt(first.var(ddof=1) / k + last.var(ddof=1) / k))
        half = float(stats.t.ppf(0.975, 2 * k - 2) * se)
        out["loss_fell"] = finding(claim, {"first_third": float(first.mean()),
                                           "last_third": float(last.mean()), "logged": len(loss)},
                                   Interval(diff, diff - half, diff + half,
                                            "mean loss, first minus last third",
                                            f"95% t interval over {k}+{k} logged steps"))
    return out


def _beats_baseline(result, pred, n_boot: int, seed: int) -> dict:
    """The paired bootstrap of the model's metric minus the majority-class baseline's."""
    task = result.config.task_spec
    metric, higher = metrics.headline_metric(task)
    sign = 1.0 if higher else -1.0
    base = np.full(pred.labels.shape, pred.baseline)

    def effect(idx: np.ndarray) -> float:
        m = metrics.compute(task, pred.predictions[idx], pred.labels[idx])[metric]
        b = metrics.compute(task, base[idx], pred.labels[idx])[metric]
        return sign * (m - b)

    est, lo, hi = bootstrap_interval(effect, len(pred.labels), n_boot=n_boot, seed=seed)
    return finding(
        f"the fine-tuned model beats the majority-class baseline on validation {metric}",
        {"metric": metric, "model": result.metrics.get(metric),
         "baseline": result.baseline.get(metric), "n_examples": len(pred.labels)},
        Interval(est, lo, hi, f"{metric} {'gain' if higher else 'reduction'} over the baseline",
                 f"95% bootstrap over {len(pred.labels)} validation examples, {n_boot} "
                 "resamples"))


def _structured_beats_baseline(result, pred, n_boot: int, seed: int) -> dict:
    """QA (F1 over questions) and parsing (LAS over sentences' scored words): the model's
    metric, bootstrapped over questions or sentences, minus the baseline's (first words of the
    context; a neighbour chain), which is held fixed: its per-example scores are not kept."""
    task = result.config.task_spec
    metric = task.primary_metric
    base = float(result.baseline[metric])
    if task.kind == "extractive_qa":
        per = np.asarray(pred.f1 if metric == "f1" else pred.em, dtype=float)
        n, unit = len(per), "questions"

        def effect(idx: np.ndarray) -> float:
            return 100.0 * float(per[idx].mean()) - base
    else:
        hits = np.asarray(pred.both_correct if metric == "las" else pred.head_correct, float)
        scored = np.asarray(pred.n_scored, dtype=float)
        n, unit = len(scored), "sentences"

        def effect(idx: np.ndarray) -> float:
            return 100.0 * float(hits[idx].sum() / max(scored[idx].sum(), 1.0)) - base

    est, lo, hi = bootstrap_interval(effect, n, n_boot=n_boot, seed=seed)
    return finding(
        f"the fine-tuned model beats the baseline on validation {metric}",
        {"metric": metric, "model": result.metrics.get(metric), "baseline": base,
         "n_examples": n},
        Interval(est, lo, hi, f"{metric} gain over the baseline (points)",
                 f"95% bootstrap over {n} validation {unit}, {n_boot} resamples; the "
                 "baseline's score held fixed"))


@dataclass(frozen=True)
class TrainingResult(StudyResult):
    """Notebook 01's result in the protocol of ``studies.base`` (so sweeps can collect it).

    Holds the fine-tuning cache key (``finetune_key``), never a path; ``run`` is the
    ``FinetuneResult`` it was made from (not saved).
    """

    study: ClassVar[str] = "finetune"
    config: finetune.FinetuneConfig
    finetune_key: str
    metrics: dict
    baseline: dict
    curve: dict
    found: dict = field(default_factory=dict)
    summary: str = ""
    device: dict = field(default_factory=dict)  # where it trained (devices.device_record)

    @classmethod
    def of(cls, run: finetune.FinetuneResult, **kw) -> TrainingResult:
        return cls(config=run.config, finetune_key=run.path.name, metrics=dict(run.metrics),
                   baseline=dict(run.baseline), curve=run.learning_curve(),
                   found=finetune_findings(run, **kw), summary=finetune.summary_line(run),
                   device=dict(run.meta.get("device", {})))

    def title(self) -> str:
        return self.summary

    def findings(self) -> dict:
        return self.found

    def _lines(self):
        c, metric = self.curve, self.config.task_spec.primary_metric
        return ([plots.Line("training loss", c["train_step"], c["train_loss"]),
                 plots.Line(f"validation {metric}", c["eval_step"], c["eval_metric"])],
                dict(title=self.summary[:90], x_title="step", y_title="loss / metric"))

    def figure(self):
        metric = self.config.task_spec.primary_metric
        return plots.learning_curves({f"seed {self.config.seed}": self.curve}, metric=metric,
                                     baseline=self.baseline.get(metric), title=self.summary)

    def png(self, path):
        lines, kw = self._lines()
        return plots.lines_png(lines, path, **kw)

    def headline(self) -> dict:
        return {**self.metrics, **{f"baseline_{k}": v for k, v in self.baseline.items()
                                   if isinstance(v, float)}}

    def to_dict(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "finetune_key": self.finetune_key,
                "metrics": self.metrics, "baseline": self.baseline, "curve": self.curve,
                "summary": self.summary, "device": self.device}  # (findings: save()'s)

    @classmethod
    def from_dict(cls, saved) -> TrainingResult:
        """The inverse of ``save``'s JSON (``saved``: ``studies.results.Saved``)."""
        return cls(config=saved.config(finetune.FinetuneConfig),
                   finetune_key=saved.need("finetune_key", str),
                   metrics=saved.need("metrics", dict), baseline=saved.need("baseline", dict),
                   curve=saved.need("curve", dict), found=saved.need("findings", dict),
                   summary=saved.need("summary", str), device=saved.get("device", {}))

    def problems(self) -> list[str]:
        """The learning curve's steps against its values, the cache key."""
        c, out = self.curve, []
        for steps, values in (("train_step", "train_loss"), ("eval_step", "eval_metric")):
            if not isinstance(c.get(steps), list) or not isinstance(c.get(values), list):
                out.append(f"the learning curve lacks {steps} or {values}")
            elif len(c[steps]) != len(c[values]):
                out.append(f"the learning curve has {len(c[steps])} {steps} for "
                           f"{len(c[values])} {values}")
        return out + self.key_problems([self.finetune_key])
