"""The result of study 06 (``run_tasks``): per-task curves over layers, findings, figures,
files.

Follows the result protocol of ``studies.base``: it holds activation and fine-tuning cache keys,
never paths. The bootstrap replicates and per-sentence UUAS counts are part of it, so that the
findings are recomputed exactly from a saved file (``TasksResult.read``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..base import StudyResult
from ..results import pack_array
from . import findings as fnd
from . import plots as tplots
from .syntax import LayerSyntax


@dataclass(frozen=True)
class TaskCurves:
    """One fine-tuning task read on the probe sentences, per layer 0..L.

    Attributes:
        task, kind: the task and its kind.
        ft_orig: [n_seeds, L+1] linear CKA(FT_s, ORIG) of the same layer, over the probe words.
        ft_ft: [L+1] CKA(FT[1], FT[2]) (None with one seed).
        ft_orig_boot, ft_ft_boot: [B, n_seeds, L+1] and [B, L+1]: the same on each sentence
            resample (``TasksResult.counts``).
        rsa_ft_orig, rsa_ft_ft: RSA of the same pairs ([n_seeds, L+1], [L+1] or None).
        syntax: the structural probe on FT (the first seed), or None (``structural_probe``
            off).
        metrics: validation metrics of each seed's fine-tuned model (task's own metrics).
    """

    task: str
    kind: str
    ft_orig: np.ndarray
    ft_ft: np.ndarray | None
    ft_orig_boot: np.ndarray
    ft_ft_boot: np.ndarray | None
    rsa_ft_orig: np.ndarray
    rsa_ft_ft: np.ndarray | None
    syntax: LayerSyntax | None = None
    metrics: tuple[dict, ...] = ()


def _syntax_dict(s: LayerSyntax | None) -> dict | None:
    if s is None:
        return None
    return {"uuas": s.uuas.tolist(), "dspr": s.dspr.tolist(), "correct": pack_array(s.correct),
            "total": pack_array(s.total), "best_epoch": s.best_epoch.tolist(),
            "undefined": list(s.undefined)}


def _syntax_of(saved, d, key: str) -> LayerSyntax | None:
    if d is None:
        return None
    return LayerSyntax(saved.array(d["uuas"], f"{key}.uuas", np.float64),
                       saved.array(d["dspr"], f"{key}.dspr", np.float64),
                       saved.packed(d["correct"], f"{key}.correct"),
                       saved.packed(d["total"], f"{key}.total"),
                       saved.array(d["best_epoch"], f"{key}.best_epoch", np.int64),
                       tuple(d.get("undefined", ())))


def _maybe(a):
    return None if a is None else np.asarray(a).tolist()


@dataclass(frozen=True)
class TasksResult(StudyResult):
    """Everything one ``run_tasks`` call measured.

    Attributes:
        config: the ``TasksConfig``.
        curves: task -> ``TaskCurves`` (in the order of ``config.tasks``).
        orig_syntax: the structural probe on ORIG (None when off).
        baseline_correct: [S] edges right per probe sentence of the linear baseline.
        counts: [B, S] how often each probe sentence is drawn in each resample (the same
            resamples for every model and task).
        rows: [S] the probe sentences' rows in the probe task's validation split.
        n_words: probe words (rows of every CKA).
        dropped: what was left out and why ({"sentences_cut": k}: sentences that max_length
            cut, so that not all their words have states).
        activation_keys: representation set ("orig", "<task>:<seed>", "train/orig", ...) ->
            activation cache key.
        finetune_runs: task -> per seed {seed, key, metrics, model} (``common.records``).
    """

    study: ClassVar[str] = "tasks"
    config: Any
    curves: dict[str, TaskCurves]
    orig_syntax: LayerSyntax | None
    baseline_correct: np.ndarray | None
    counts: np.ndarray
    rows: np.ndarray
    n_words: int
    dropped: dict = field(default_factory=dict)
    activation_keys: dict[str, str] = field(default_factory=dict)
    finetune_runs: dict[str, tuple[dict, ...]] = field(default_factory=dict)
    seconds: float | None = None
    device: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        """Blocks L (curves have L+1 points: embeddings + blocks)."""
        return next(iter(self.curves.values())).ft_orig.shape[1] - 1

    @property
    def n_sentences(self) -> int:
        return len(self.rows)

    def title(self) -> str:
        c = self.config
        return (f"{c.model} fine-tuned on {', '.join(c.tasks)}, read on {self.n_sentences} "
                f"{c.probe} sentences ({self.n_words} words)")

    # ---- figures (plots.py builds them)
    def figure(self, comparison: str | None = None, task: str | None = None):
        """Plotly figure: the FT–ORIG CKA per layer with the seeds' threshold (left) and the
        structural probe's UUAS per layer, ORIG vs each FT (right); or one ``comparison``
        (``plots.COMPARISONS``) for all tasks or one ``task``."""
        return tplots.figure(self, comparison, task)

    def png(self, path: Path, comparison: str | None = None, task: str | None = None) -> Path:
        return tplots.png(self, path, comparison, task)

    def extra_figures(self) -> dict:
        return {"tasks_excess": (self.figure("excess"), lambda p: self.png(p, "excess")),
                "tasks_rsa": (self.figure("rsa"), lambda p: self.png(p, "rsa"))}

    def notes(self) -> list[str]:
        c, out = self.config, []
        if self.dropped.get("sentences_cut"):
            out.append(f"{self.dropped['sentences_cut']} probe sentences were left out: "
                       f"max_length={c.resolved_max_length()} cut them (raise max_length).")
        if c.task_spec.source == "offline" and c.probe == "brown-parse":
            out.append("brown-parse trees are SILVER parses (spaCy en_core_web_sm, ClearNLP "
                       "labels), not Universal Dependencies.")
        if c.model == "minilm-l6":
            out.append("ORIG for minilm-l6 is all-MiniLM-L6-v2, a sentence-embedding "
                       "fine-tune, not a raw masked-LM checkpoint.")
        out.append("Layer 0 = embedding output; layer i = output of block i.")
        return out

    # ---- protocol
    def findings(self) -> dict:
        return fnd.findings(self)

    def headline(self) -> dict:
        out: dict = {"n_layers": self.n_layers, "n_sentences": self.n_sentences,
                     "n_words": self.n_words, "seconds": self.seconds}
        top = self.n_layers
        for t in self.config.tasks:
            table = fnd.layer_table(self, t)
            cur = self.curves[t]
            out[f"{t}.n_reconfigured"] = table["n_reconfigured"]
            out[f"{t}.lowest_reconfigured"] = table["lowest"]
            out[f"{t}.ft_orig_cka_top"] = float(np.mean(cur.ft_orig[:, top]))
            if cur.ft_ft is not None:
                out[f"{t}.ft1_ft2_cka_top"] = float(cur.ft_ft[top])
            if cur.syntax is not None:
                out[f"{t}.best_uuas"] = float(np.nanmax(cur.syntax.uuas))
            for i, m in enumerate(cur.metrics):
                for k, v in m.items():
                    if isinstance(v, (int, float)):
                        out[f"{t}.ft_seed{self.config.seeds[i]}_{k}"] = v
        if self.orig_syntax is not None:
            out["orig.best_uuas"] = float(np.nanmax(self.orig_syntax.uuas))
        return out

    def to_dict(self) -> dict:
        curves = {}
        for t, c in self.curves.items():
            curves[t] = {"task": c.task, "kind": c.kind, "ft_orig": c.ft_orig.tolist(),
                         "ft_ft": _maybe(c.ft_ft), "ft_orig_boot": pack_array(c.ft_orig_boot),
                         "ft_ft_boot": None if c.ft_ft_boot is None else pack_array(c.ft_ft_boot),
                         "rsa_ft_orig": c.rsa_ft_orig.tolist(), "rsa_ft_ft": _maybe(c.rsa_ft_ft),
                         "syntax": _syntax_dict(c.syntax), "metrics": list(c.metrics)}
        return {"config": dataclasses.asdict(self.config), "curves": curves,
                "orig_syntax": _syntax_dict(self.orig_syntax),
                "baseline_correct": (None if self.baseline_correct is None
                                     else pack_array(self.baseline_correct)),
                "counts": pack_array(self.counts.astype(np.uint16)),
                "rows": pack_array(self.rows.astype(np.int64)), "n_words": self.n_words,
                "dropped": self.dropped, "activation_keys": self.activation_keys,
                "finetune_runs": {t: list(v) for t, v in self.finetune_runs.items()},
                "seconds": self.seconds, "device": self.device}

    @classmethod
    def from_dict(cls, saved) -> TasksResult:
        """The inverse of ``to_dict`` (``saved``: ``studies.results.Saved``)."""
        from .config import TasksConfig  # config imports nothing of the result

        curves = {}
        for t, d in saved.need("curves", dict).items():
            k = f"curves.{t}"
            boot2 = d.get("ft_ft_boot")
            curves[t] = TaskCurves(
                task=d["task"], kind=d["kind"],
                ft_orig=saved.array(d["ft_orig"], f"{k}.ft_orig", np.float64),
                ft_ft=None if d["ft_ft"] is None else saved.array(d["ft_ft"], f"{k}.ft_ft",
                                                                  np.float64),
                ft_orig_boot=saved.packed(d["ft_orig_boot"], f"{k}.ft_orig_boot"),
                ft_ft_boot=None if boot2 is None else saved.packed(boot2, f"{k}.ft_ft_boot"),
                rsa_ft_orig=saved.array(d["rsa_ft_orig"], f"{k}.rsa_ft_orig", np.float64),
                rsa_ft_ft=None if d["rsa_ft_ft"] is None else saved.array(
                    d["rsa_ft_ft"], f"{k}.rsa_ft_ft", np.float64),
                syntax=_syntax_of(saved, d.get("syntax"), f"{k}.syntax"),
                metrics=tuple(d.get("metrics", ())))
        base = saved.need("baseline_correct", (dict, type(None)))
        return cls(config=saved.config(TasksConfig), curves=curves,
                   orig_syntax=_syntax_of(saved, saved.need("orig_syntax", (dict, type(None))),
                                          "orig_syntax"),
                   baseline_correct=None if base is None else saved.packed(base,
                                                                           "baseline_correct"),
                   counts=saved.packed(saved.need("counts", dict), "counts").astype(np.float64),
                   rows=saved.packed(saved.need("rows", dict), "rows"),
                   n_words=saved.need("n_words", int), dropped=saved.need("dropped", dict),
                   activation_keys=saved.need("activation_keys", dict),
                   finetune_runs={t: tuple(v) for t, v in
                                  saved.need("finetune_runs", dict).items()},
                   seconds=saved.need("seconds"), device=saved.get("device", {}))

    def problems(self) -> list[str]:
        """Curves against the tasks, seeds and layers; replicates against the resamples; the
        structural probe's counts against the sentences; cache keys, never paths."""
        c, out = self.config, []
        if list(self.curves) != list(c.tasks):
            return [f"curves for {list(self.curves)}, not the config's tasks {list(c.tasks)}"]
        n, S, B = self.n_layers + 1, self.n_sentences, self.counts.shape[0]
        k = len(c.seeds)
        if self.counts.shape != (c.n_boot, S):
            out.append(f"counts are {list(self.counts.shape)}, not [n_boot {c.n_boot}, {S}]")
        for t, cur in self.curves.items():
            shapes = {"ft_orig": (cur.ft_orig, (k, n)), "rsa_ft_orig": (cur.rsa_ft_orig, (k, n)),
                      "ft_orig_boot": (cur.ft_orig_boot, (B, k, n))}
            if k > 1:
                shapes.update(ft_ft=(cur.ft_ft, (n,)), ft_ft_boot=(cur.ft_ft_boot, (B, n)),
                              rsa_ft_ft=(cur.rsa_ft_ft, (n,)))
            for name, (a, want) in shapes.items():
                if a is None or tuple(np.shape(a)) != want:
                    out.append(f"{t}: {name} is {None if a is None else list(np.shape(a))}, "
                               f"not {list(want)}")
            if np.isnan(cur.ft_orig).any():
                out.append(f"{t}: ft_orig has undefined (NaN) layers")
            for s in (cur.syntax,):
                if c.structural_probe and s is None:
                    out.append(f"{t}: no structural probe, but structural_probe=True")
                elif s is not None and s.correct.shape != (n, S):
                    out.append(f"{t}: UUAS counts are {list(s.correct.shape)}, not [{n}, {S}]")
        if c.structural_probe and (self.orig_syntax is None or self.baseline_correct is None):
            out.append("no structural probe on ORIG, but structural_probe=True")
        runs = [r for v in self.finetune_runs.values() for r in v]
        if set(self.finetune_runs) != set(c.tasks):
            out.append(f"fine-tuning runs for {sorted(self.finetune_runs)}, not the tasks")
        for t, v in self.finetune_runs.items():
            if len(v) != k:
                out.append(f"{t}: {len(v)} fine-tuning runs for seeds {list(c.seeds)}")
        return out + self.key_problems(self.activation_keys.values(),
                                       (r.get("key") for r in runs))
