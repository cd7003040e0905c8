"""The result of study 02 (``run_similarity``): matrices, findings, figures, files.

Follows the result protocol of ``studies.base``. Holds activation cache keys, never paths:
``cell_bootstrap``/``cell_permutation`` reload the arrays through ``activations.load(key)``
(verified against their sha256), on any machine that shares the cache.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ... import activations as acts
from ... import plots
from ...devices import to_numpy
from ...errors import ConfigError
from ...measures import cka_stats
from ..base import StudyResult
from . import findings as fnd
from .comparisons import COMPARISONS, PHANG_PANELS


def layer_index(i: int, n: int, what: str) -> int:
    """Layer i of n (negative counts from the top), or a clear error."""
    if not -n <= i < n:
        raise ConfigError(f"{what} layer index {i} out of range: use 0..{n - 1} (or -1 for the"
                          " top)")
    return i % n


@dataclass(frozen=True)
class SimilarityResult(StudyResult):
    """Matrices and metadata of one ``run_similarity`` call.

    Attributes:
        config: the ``SimilarityConfig``.
        matrices: comparison name (``COMPARISONS``) -> [La, Lb] float64, NaN where undefined.
        undefined: comparison -> reasons for its NaN cells (empty when none).
        blocks: "orig_orig"/"ft_ft" -> {boundary, score, within, between} or None.
        drift_steps, drift: [S] steps and [S, L+1] similarity of each layer with itself untuned.
        effects: claim id -> bootstrap interval of its effect (``findings.effect_intervals``).
        cell: bootstrap interval and permutation baseline of ``config.ci_cell``.
        activation_keys: representation set ("orig", "ft", ...) -> activation cache key.
        finetune_runs: per seed {seed, key, metrics, baseline} of the fine-tuned models used.
        n_rows: examples (rows) compared.
    """

    study: ClassVar[str] = "similarity"
    config: Any
    matrices: dict[str, np.ndarray]
    undefined: dict[str, tuple[str, ...]]
    blocks: dict[str, dict | None] = field(default_factory=dict)
    drift_steps: tuple[int, ...] = ()
    drift: np.ndarray | None = None
    effects: dict[str, dict] = field(default_factory=dict)
    cell: dict = field(default_factory=dict)
    activation_keys: dict[str, str] = field(default_factory=dict)
    finetune_runs: tuple[dict, ...] = ()
    n_rows: int = 0
    seconds: float | None = None
    device: dict = field(default_factory=dict)  # where it ran: devices.device_record

    @property
    def n_layers(self) -> int:
        """Blocks L of the model (matrices have L+1 rows: embeddings + blocks)."""
        return self.matrices["orig_orig"].shape[0] - 1

    def with_cell(self, cell: dict) -> SimilarityResult:
        return dataclasses.replace(self, cell=cell)

    def title(self) -> str:
        c = self.config
        return (f"{c.measure_label()} of {c.pooling} representations: {c.model} on {c.task} "
                f"({self.n_rows} {c.split} rows)")

    def panels(self, comps) -> list[plots.Panel]:
        return [plots.Panel(self.matrices[k], COMPARISONS[k].title,
                            *COMPARISONS[k].axes(self.config)) for k in comps]

    def undefined_notes(self, comps=PHANG_PANELS) -> list[str]:
        """Undefined-cell reasons of ``comps`` grouped by cause ("A layer emb: why" + "B layer
        emb: why" -> "A, B layer emb: why"), then the layer convention."""
        groups: dict[str, list[str]] = {}
        for r in sorted({x for k in comps for x in self.undefined.get(k, ())}):
            who, _, why = r.partition(": ")
            name, _, layer = who.rpartition(" layer ")
            groups.setdefault(f"layer {layer}: {why}" if name else r, []).append(name)
        notes = [f"Grey = undefined: {', '.join(n for n in names if n)} {why}."
                 for why, names in groups.items()]
        return notes + ["Layer 0 = embedding output; layer i = output of block i."]

    def _comps(self, comparison: str | None) -> list[str]:
        comps = ([k for k in PHANG_PANELS if k in self.matrices] if comparison is None
                 else [comparison])
        for k in comps:
            if k not in self.matrices:
                raise ConfigError(f"comparison {k!r} was not computed; available: "
                                  f"{list(self.matrices)} (cross needs cross_model=...)")
        return comps

    def _panel_args(self, comps) -> dict:
        return dict(title=self.title(), metric=self.config.measure.upper(),
                    notes=self.undefined_notes(comps), cols=2 if len(comps) == 4 else None)

    def figure(self, comparison: str | None = None):
        """Plotly figure: Phang et al.'s Fig. 1 panels (one 0–1 scale), or one comparison."""
        comps = self._comps(comparison)
        return plots.panels_figure(self.panels(comps), **self._panel_args(comps))

    def png(self, path: Path, comparison: str | None = None) -> Path:
        comps = self._comps(comparison)
        return plots.panels_png(self.panels(comps), path, **self._panel_args(comps))

    def _drift_lines(self) -> tuple[list[plots.Line], dict]:
        if self.drift is None:
            raise ConfigError("no drift computed: set checkpoint_steps=(0, ...) in the config")
        m = self.config.measure.upper()
        return (plots.per_layer_lines(self.drift_steps, self.drift),
                dict(title=f"Drift from the untuned layer during fine-tuning "
                           f"({self.config.model} on {self.config.task})",
                     x_title="fine-tuning step", y_title=f"{m}(layer at step, same layer untuned)"))

    def drift_figure(self):
        lines, kw = self._drift_lines()
        return plots.lines_figure(lines, **kw)

    def extra_figures(self) -> dict:
        out = {}
        if "cross" in self.matrices:
            out["cross"] = (self.figure("cross"), lambda p: self.png(p, "cross"))
        if self.drift is not None:
            lines, kw = self._drift_lines()
            out["drift"] = (plots.lines_figure(lines, **kw),
                            lambda p: plots.lines_png(lines, p, **kw))
        return out

    # ---- single cells
    def _cell_data(self, comp: str, i: int, j: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        if comp not in self.matrices:
            raise ConfigError(f"comparison {comp!r} was not computed; "
                              f"available: {list(self.matrices)}")
        m = self.matrices[comp]
        i, j = layer_index(i, m.shape[0], "row"), layer_index(j, m.shape[1], "column")
        if not np.isfinite(m[i, j]):
            raise ConfigError(f"{COMPARISONS[comp].title} cell ({i}, {j}) is undefined: "
                              f"{'; '.join(self.undefined.get(comp, ()))}")
        if self.config.measure != "cka" or self.config.kernel != "linear":
            raise ConfigError("cell intervals and baselines exist for linear CKA only; "
                              "use measure='cka', kernel='linear'")
        task = self.config.task_spec
        xa = acts.load(self.activation_keys[COMPARISONS[comp].rows], task)
        xb = acts.load(self.activation_keys[COMPARISONS[comp].cols], task)
        ia, ib = acts.aligned_rows(xa, xb)
        return np.asarray(xa.states[i])[ia], np.asarray(xb.states[j])[ib], i, j

    def cell_bootstrap(self, comparison: str, row: int, col: int, *, n_boot: int = 200,
                       confidence: float = 0.95, seed: int = 0) -> dict:
        """Percentile bootstrap interval over examples of one cell (``bootstrap_cka``)."""
        x, y, i, j = self._cell_data(comparison, row, col)
        est, lo, hi = cka_stats.bootstrap_cka(x, y, n_boot=n_boot, confidence=confidence,
                                              seed=seed, debiased=self.config.debiased)
        return {"comparison": comparison, "row": i, "col": j, "estimate": est, "low": lo,
                "high": hi, "confidence": confidence, "n_boot": n_boot}

    def cell_permutation(self, comparison: str, row: int, col: int, *, n_perm: int = 100,
                         seed: int = 0) -> dict:
        """The cell's value against CKA with examples shuffled (no-similarity baseline at n)."""
        x, y, i, j = self._cell_data(comparison, row, col)
        null = to_numpy(cka_stats.permutation_cka(x, y, n_perm=n_perm, seed=seed,
                                                  debiased=self.config.debiased))
        value = float(self.matrices[comparison][i, j])
        return {"comparison": comparison, "row": i, "col": j, "value": value,
                "perm_mean": float(null.mean()), "perm_q99": float(np.quantile(null, 0.99)),
                "n_reached": int((null >= value).sum()),
                "p_value": float((1 + (null >= value).sum()) / (1 + len(null))),
                "n_perm": n_perm}

    # ---- protocol
    def findings(self) -> dict:
        return fnd.findings(self)

    def headline(self) -> dict:
        bottom, top = fnd.thirds(self.n_layers)
        out: dict = {"n_layers": self.n_layers, "n_rows": self.n_rows, "seconds": self.seconds}
        for k, b in self.blocks.items():
            if b:
                out[f"{k}_block_boundary"], out[f"{k}_block_score"] = b["boundary"], b["score"]
        for k in ("ft_orig", "ft1_ft2"):
            if k in self.matrices:
                out[f"{k}_diag_top"] = fnd.diagonal_mean(self.matrices[k], top)
                out[f"{k}_diag_bottom"] = fnd.diagonal_mean(self.matrices[k], bottom)
        for r in self.finetune_runs:
            for name, v in r["metrics"].items():
                out[f"ft_seed{r['seed']}_{name}"] = v
        return out

    def to_dict(self) -> dict:
        """JSON-ready: matrices as nested lists with NaN as null."""
        return {"config": dataclasses.asdict(self.config),
                "layer_labels": plots.layer_labels(self.n_layers),
                "matrices": {k: v.tolist() for k, v in self.matrices.items()},
                "undefined": {k: list(v) for k, v in self.undefined.items()},
                "blocks": self.blocks, "drift_steps": list(self.drift_steps),
                "drift": None if self.drift is None else self.drift.tolist(),
                "effects": self.effects, "cell": self.cell,
                "activation_keys": self.activation_keys,
                "finetune_runs": list(self.finetune_runs), "n_rows": self.n_rows,
                "seconds": self.seconds, "device": self.device}

    @classmethod
    def from_dict(cls, saved) -> SimilarityResult:
        """The inverse of ``to_dict`` (``saved``: ``studies.results.Saved``)."""
        from .run import SimilarityConfig  # run imports this module

        matrices = saved.need("matrices", dict)
        drift = saved.need("drift", (list, type(None)))
        return cls(config=saved.config(SimilarityConfig),
                   matrices={k: saved.array(v, f"matrices.{k}", np.float64)
                             for k, v in matrices.items()},
                   undefined={k: tuple(v) for k, v in saved.need("undefined", dict).items()},
                   blocks=saved.need("blocks", dict),
                   drift_steps=tuple(saved.need("drift_steps", list)),
                   drift=None if drift is None else saved.array(drift, "drift", np.float64),
                   effects=saved.need("effects", dict), cell=saved.need("cell", dict),
                   activation_keys=saved.need("activation_keys", dict),
                   finetune_runs=tuple(saved.need("finetune_runs", list)),
                   n_rows=saved.need("n_rows", int), seconds=saved.need("seconds"),
                   device=saved.get("device", {}))

    def problems(self) -> list[str]:
        """Matrices against n_layers and the comparisons' table, NaN cells without a reason,
        drift against its steps, the representation sets' cache keys."""
        if "orig_orig" not in self.matrices:
            return ["no orig_orig matrix (it gives n_layers)"]
        n, out = self.n_layers + 1, []
        for k, m in self.matrices.items():
            if k not in COMPARISONS:
                out.append(f"matrix {k!r} is no comparison; known: {list(COMPARISONS)}")
                continue
            if m.ndim != 2 or m.shape[0] != n or (k != "cross" and m.shape[1] != n):
                out.append(f"matrix {k} is {list(m.shape)}, not [{n}, {n}] (n_layers "
                           f"{self.n_layers})" if k != "cross" else
                           f"matrix cross is {list(m.shape)}: its rows are not the {n} layers")
            elif np.isnan(m).any() and not self.undefined.get(k):
                out.append(f"matrix {k} has {int(np.isnan(m).sum())} undefined (NaN) cells and "
                           "no recorded reason (undefined)")
            for side in (COMPARISONS[k].rows, COMPARISONS[k].cols):
                if side not in self.activation_keys:
                    out.append(f"matrix {k}: no activation key for its {side!r} representations")
        out += [f"undefined reasons for {k!r}, which has no matrix" for k in self.undefined
                if k not in self.matrices]
        if tuple(self.drift_steps) != tuple(self.config.checkpoint_steps):
            out.append(f"drift steps {list(self.drift_steps)} are not the config's "
                       f"checkpoint_steps {list(self.config.checkpoint_steps)}")
        if (self.drift is None) != (not self.drift_steps):
            out.append("drift " + ("missing for" if self.drift is None else "without")
                       + " checkpoint steps")
        elif self.drift is not None and self.drift.shape != (len(self.drift_steps), n):
            out.append(f"drift is {list(self.drift.shape)}, not [{len(self.drift_steps)}, {n}]")
        return out + self.runs_problems(self.finetune_runs, self.config.seeds,
                                        self.activation_keys.values())


def grid_figure(results, comparison: str = "ft_ft"):
    """Phang et al. (2021) Fig. 2-style grid: one ``comparison`` heatmap per result, models as
    rows and tasks as columns, one 0–1 colour scale."""
    rows = list(dict.fromkeys(r.config.model for r in results))
    cols = list(dict.fromkeys(r.config.task for r in results))
    cells = {(r.config.model, r.config.task): r.matrices[comparison] for r in results}
    metric = results[0].config.measure_label() if results else "CKA"
    return plots.grid_figure(cells, row_names=rows, col_names=cols,
                             title=f"{COMPARISONS[comparison].title} {metric} per model and task")
