"""The result of study 05 (``run_geometry``): DirectProbe summaries, probes, figures, files.

Follows the result protocol of ``studies.base``; holds activation cache keys, never paths.
Arrays are indexed by the analysed layers ``layers`` (0 = embedding output, i = block i).
Figures: Zhou & Srikumar 2022 Fig. 2 (``figure``: minimum distance per label over steps),
Fig. 3 (``paths_figure``), Fig. 4 (``similarity_figure``), Fig. 5 (``displacement_figure``);
``tables()``: Table 2 (train/test similarity), Tables 3-4 (cluster counts), probe accuracy.

A fine-tuning task without class labels (extractive QA) gives a result whose ``no_labels``
says why it has no in-domain geometry: ``layers`` is (), the states are ORIG and FT with
empty per-layer tables, the in-domain findings are UNDEFINED with that reason, and the main
figure is the out-of-domain comparison (or, without one, the cross-task label distances).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ... import plots
from ...errors import ConfigError
from ...measures.probes import ProbeScore
from .. import results
from ..base import StudyResult
from ..common.states import State, trace_keys
from . import findings as fnd
from .dynamics import LayerGeometry, centroid_paths, displacements
from .plots import Path2D, paths_figure, paths_png


@dataclass(frozen=True)
class GeometryResult(StudyResult):
    """Everything one ``run_geometry`` computed.

    Attributes:
        layers: analysed layers; steps: traced checkpoints; states: "orig", "step-S"..., "ft".
        label_names: the k labels (DirectProbe's order); n_points: {"train", "test"} points.
        geometry: state -> one ``LayerGeometry`` per analysed layer (train points).
        test_geometry: "orig"/"ft" -> the same on the test points.
        sim_to_orig: [len(states), len(layers)] spatial similarity to the untuned layer (Fig. 4).
        train_test: "orig"/"ft" -> [len(layers)] train/test spatial similarity (Table 2).
        spatial_why: why spatial similarity is undefined where it is.
        probe: "orig"/"ft" -> [len(layers), 3] MLP probe test accuracy, one ``ProbeScore``
            row (mean, std over restarts, majority baseline) a layer (NaN: not probed /
            undefined); ``probe_score(state, layer)`` reads one.
        fold_geometry, fold_test_geometry: top layer per fold (findings' replicates).
        cross_task: task -> cross-task summary; out_of_domain: the out-of-domain comparison.
        no_labels: "" (the task has class labels), or why the in-domain parts are undefined
            (a task without class labels: module docstring).
    """

    study: ClassVar[str] = "geometry"
    config: Any
    layers: tuple[int, ...]
    steps: tuple[int, ...]
    states: tuple[str, ...]
    label_names: tuple[str, ...]
    n_layers: int
    n_points: dict
    geometry: dict[str, tuple[LayerGeometry, ...]]
    test_geometry: dict[str, tuple[LayerGeometry, ...]]
    sim_to_orig: np.ndarray
    train_test: dict[str, np.ndarray]
    spatial_why: tuple[str, ...] = ()
    probe: dict[str, np.ndarray] = field(default_factory=dict)
    probe_layers: tuple[int, ...] = ()
    probe_why: tuple[str, ...] = ()
    fold_geometry: dict = field(default_factory=dict)
    fold_test_geometry: dict = field(default_factory=dict)
    cross_task: dict = field(default_factory=dict)
    out_of_domain: dict = field(default_factory=dict)
    activation_keys: dict[str, str] = field(default_factory=dict)
    finetune_runs: tuple[dict, ...] = ()
    seconds: float | None = None
    device: dict = field(default_factory=dict)  # where it ran: devices.device_record
    no_labels: str = ""

    # ---- arrays
    def labels_of(self, layer: int) -> str:
        return plots.layer_labels(self.n_layers)[layer]

    def column(self, layer: int) -> int:
        """Position of ``layer`` (negative from the top) in the per-layer arrays."""
        n = self.n_layers + 1
        if not -n <= layer < n:  # no silent wrap-around (13 is not layer 0 of 12 blocks)
            raise ConfigError(f"layer {layer} out of range: this model has layers 0..{n - 1} "
                              "(0 = embedding output, i = output of block i; -1 = top)")
        layer = layer % n
        if layer not in self.layers:
            raise ConfigError(f"layer {layer} was not analysed; analysed: {list(self.layers)}")
        return self.layers.index(layer)

    def step_x(self) -> list[int]:
        """The fine-tuning step of each state (orig: 0, ft: the run's last step)."""
        total = self.config.total_steps()
        seed = next(iter(self.config.seeds), 0)  # "ft" and "step-S" are the first seed's
        return [State.from_key(s, self.config.model, seed).training_step(total)
                for s in self.states]

    def probe_score(self, state: str, layer: int = -1) -> ProbeScore:
        """The MLP probe's test accuracy for "orig"/"ft" at ``layer`` (NaN: not probed)."""
        return ProbeScore.from_row(self.probe[state][self.column(layer)])

    def min_distances(self, layer: int = -1) -> np.ndarray:
        """[len(states), k] each label's minimum distance per state at ``layer`` (Fig. 2)."""
        j = self.column(layer)
        return np.stack([self.geometry[s][j].min_distances for s in self.states])

    def n_clusters(self, state: str = "ft", test: bool = False) -> list[int | None]:
        src = self.test_geometry if test else self.geometry
        return [g.n_clusters for g in src[state]]

    def tables(self) -> dict[str, list[dict]]:
        """Rows per layer: Table 2 (train/test similarity), Tables 3-4 (clusters), probes
        (none without class labels: ``no_labels``)."""
        rows = []
        for j, i in enumerate(self.layers):
            o, f = self.geometry["orig"][j], self.geometry["ft"][j]
            po, pf = (ProbeScore.from_row(self.probe[st][j]) for st in ("orig", "ft"))
            rows.append({"layer": self.labels_of(i), "clusters_orig": o.n_clusters,
                         "clusters_ft": f.n_clusters, "labels": o.n_labels,
                         "test_clusters_orig": self.test_geometry["orig"][j].n_clusters,
                         "test_clusters_ft": self.test_geometry["ft"][j].n_clusters,
                         "train_test_orig": float(self.train_test["orig"][j]),
                         "train_test_ft": float(self.train_test["ft"][j]),
                         "nearest_cluster_acc_orig": o.accuracy,
                         "nearest_cluster_acc_ft": f.accuracy,
                         "probe_orig": po.mean, "probe_orig_std": po.std,
                         "probe_ft": pf.mean, "probe_ft_std": pf.std,
                         "majority": po.majority})
        return {"layers": rows}

    def notes(self) -> list[str]:
        out = [self.no_labels] if self.no_labels else []
        if self.no_labels and len(self.config.seeds) > 1:
            out.append("Seeds after the first add no replicate here: the cross-task intervals "
                       "are over folds of the first seed's model.")
        out += sorted({g.why for gs in self.geometry.values() for g in gs if g.why})
        out += [w for w in self.spatial_why if w not in out]
        if self.config.finetuned:  # the default trace cannot apply: say so, do not fail
            out.append(f"No checkpoint trace: finetuned={list(self.config.finetuned)} were "
                       "fine-tuned elsewhere, with no snapshots of their training, so the "
                       "states are ORIG and FT only (fine-tune here, finetuned=[], to trace).")
        return out + ["Layer 0 = embedding output; layer i = output of block i."]

    # ---- figures
    def title(self) -> str:
        c = self.config
        if self.no_labels:
            read = " and ".join(p for p, on in (("cross-task labels", c.cross_task),
                                                ("out-of-domain change", c.out_of_domain))
                                if on)
            return (f"Geometry of {c.model} fine-tuned on {c.task} ({c.task_spec.kind}: no "
                    f"class labels): {read}")
        return (f"Geometry of {c.pooling} representations: {c.model} fine-tuned on {c.task} "
                f"({self.n_points['train']} train / {self.n_points['test']} test points)")

    def _distance_lines(self, layer: int):
        d = self.min_distances(layer)
        lines = [plots.Line(name, self.step_x(), d[:, c].tolist(),
                            colour=plots.curves.viridis(c, len(self.label_names)))
                 for c, name in enumerate(self.label_names) if np.isfinite(d[:, c]).any()]
        why = "" if lines else f"<br>undefined: {self.geometry['ft'][self.column(layer)].why}"
        return lines, dict(title=f"Each label's minimum distance to the others, layer "
                                 f"{self.labels_of(self.layers[self.column(layer)])} (Zhou & "
                                 f"Srikumar 2022 Fig. 2){why}", x_title="fine-tuning step",
                           y_title="min hull distance")

    def figure(self, layer: int = -1):
        """Fig. 2: each label's minimum distance over the traced steps at ``layer``; without
        class labels (``no_labels``) the out-of-domain comparison, else the cross-task
        label distances."""
        lines, kw = self._main_lines(layer)
        return plots.lines_figure(lines, **kw)

    def png(self, path: Path, layer: int = -1) -> Path:
        lines, kw = self._main_lines(layer)
        return plots.lines_png(lines, path, **kw)

    def _main_lines(self, layer: int):
        if not self.no_labels:
            return self._distance_lines(layer)
        return self._ood_lines() if self.out_of_domain else self._cross_lines()

    def _cross_lines(self):
        """Each cross task's label minimum distances at the top layer, ORIG and FT (Zhou &
        Srikumar 2022 Table 5), one x position per (task, label)."""
        x, ys = [], {"orig": [], "ft": []}
        for b, c in self.cross_task.items():
            x += [f"{b}: {lab}" for lab in c["labels"]]
            for st in ys:
                ys[st] += [np.nan if v is None else v for v in c["min_distances"][st]]
        lines = [plots.Line(st.upper(), x, ys[st], colour=plots.curves.viridis(i, 2))
                 for i, st in enumerate(ys) if x]
        return lines, dict(title=f"Other tasks' labels on the {self.config.task}-fine-tuned "
                                 "model: each label's minimum distance to the others, top layer"
                                 " (Zhou & Srikumar 2022 Table 5)", x_title="task: label",
                           y_title="min hull distance")

    def _undefined_figure(self, what: str):
        """An empty figure whose title says why ``what`` is undefined (``no_labels``)."""
        return plots.lines_figure([], title=f"{what}: undefined<br>"
                                  + plots.layers.wrap_notes([self.no_labels]),
                                  x_title="", y_title="")

    def _similarity_lines(self):
        lines = plots.per_layer_lines(self.step_x(), self._full_layers(self.sim_to_orig))
        kw = dict(title="Spatial similarity of each layer to its untuned self during "
                        "fine-tuning (Zhou & Srikumar 2022 Fig. 4)",
                  x_title="fine-tuning step", y_title="Pearson r of label-distance vectors")
        return lines, kw

    def _full_layers(self, a: np.ndarray) -> np.ndarray:
        """[S, len(layers)] -> [S, L+1] with NaN for layers not analysed."""
        out = np.full((a.shape[0], self.n_layers + 1), np.nan)
        out[:, list(self.layers)] = a
        return out

    def similarity_figure(self):
        if self.no_labels:
            return self._undefined_figure("spatial similarity to the untuned layer")
        lines, kw = self._similarity_lines()
        if not lines:
            raise ConfigError("spatial similarity is undefined at every layer: "
                              + "; ".join(self.spatial_why))
        return plots.lines_figure(lines, **kw)

    def _paths(self, layers) -> list[tuple[str, list[Path2D]]]:
        panels = []
        for i in layers:
            j = self.column(i)
            means = np.stack([self.geometry[s][j].label_means for s in self.states])
            xy = centroid_paths(means)
            panels.append((f"layer {self.labels_of(self.layers[j])}",
                           [Path2D(n, xy[:, c], [f"{s}" for s in self.states])
                            for c, n in enumerate(self.label_names)]))
        return panels

    def default_path_layers(self) -> tuple[int, ...]:
        """The lowest analysed block and the top layer (Fig. 3 shows layers 1 and 12)."""
        blocks = [i for i in self.layers if i > 0] or list(self.layers)
        return tuple(dict.fromkeys((blocks[0], blocks[-1])))

    def paths_figure(self, layers=None):
        """Fig. 3: label-centroid paths over the checkpoints in 2-D PCA (one PCA a layer);
        ``layers`` None: ``default_path_layers()``."""
        if self.no_labels:
            return self._undefined_figure("label centroid paths")
        panels = self._paths(layers or self.default_path_layers())
        return paths_figure(panels, title="Label centroids during fine-tuning, 2-D PCA (Zhou & "
                                          "Srikumar 2022 Fig. 3); the last point is FT")

    def _displacements(self):
        panels = []
        for j, i in enumerate(self.layers):
            d = displacements(self.geometry["orig"][j].label_means,
                              self.geometry["ft"][j].label_means)
            panels.append((f"layer {self.labels_of(i)}",
                           [Path2D(n, np.stack([np.zeros(2), d[c]]))
                            for c, n in enumerate(self.label_names)]))
        return panels

    def displacement_figure(self):
        """Fig. 5: each label's centroid displacement ORIG -> FT per layer, uncentred 2-D PCA
        (the same units as the space: compare the ranges of low and high layers)."""
        if self.no_labels:
            return self._undefined_figure("centroid displacement")
        return paths_figure(self._displacements(), arrows=True,
                            title="Centroid displacement before -> after fine-tuning per layer "
                                  "(Zhou & Srikumar 2022 Fig. 5)")

    def _ood_lines(self):
        o = self.out_of_domain
        lines = []
        for m, dash in (("cka", None), ("rsa", "dot")):
            for c, (name, v) in enumerate(o["diagonal"][m].items()):
                lines.append(plots.Line(f"{name} {m.upper()}", plots.layer_labels(self.n_layers),
                                        v, colour=plots.curves.viridis(c, len(o["sets"])),
                                        dash=dash))
        return lines, dict(title="How much each layer changes: FT vs ORIG on in-domain and "
                                 "out-of-domain sentences (Merchant et al. 2020)",
                           x_title="layer", y_title="similarity FT vs ORIG (lower = more change)")

    def ood_figure(self):
        if not self.out_of_domain:
            raise ConfigError("no out-of-domain sets: set out_of_domain=('tweets', ...)")
        lines, kw = self._ood_lines()
        return plots.lines_figure(lines, **kw)

    def extra_figures(self) -> dict:
        if self.no_labels:  # the main figure is the first of these: the rest has no labels
            out = {}
            for stem, on, lines in (("out_of_domain", self.out_of_domain, self._ood_lines),
                                    ("cross_task", self.cross_task, self._cross_lines)):
                if on:
                    ln, kw = lines()
                    out[stem] = (plots.lines_figure(ln, **kw),
                                 lambda p, ln=ln, kw=kw: plots.lines_png(ln, p, **kw))
            return out
        path_panels = self._paths(self.default_path_layers())
        out = {"paths": (self.paths_figure(), lambda p: paths_png(
                   path_panels, p, title="Label centroids during fine-tuning (PCA)")),
               "displacement": (self.displacement_figure(), lambda p: paths_png(
                   self._displacements(), p, arrows=True, title="Centroid displacement"))}
        lines, kw = self._similarity_lines()
        if lines:
            out["similarity_to_orig"] = (plots.lines_figure(lines, **kw),
                                         lambda p: plots.lines_png(lines, p, **kw))
        if self.out_of_domain:
            ol, okw = self._ood_lines()
            out["out_of_domain"] = (plots.lines_figure(ol, **okw),
                                    lambda p: plots.lines_png(ol, p, **okw))
        return out

    # ---- protocol
    def findings(self) -> dict:
        return fnd.findings(self)

    def headline(self) -> dict:
        out: dict = {"n_layers": self.n_layers, "n_train_points": self.n_points["train"],
                     "n_test_points": self.n_points["test"], "seconds": self.seconds}
        if self.no_labels:
            for m, e in (self.out_of_domain.get("effects") or {}).items():
                out[f"ood_effect_{m}"] = e["estimate"]
            return out
        g0, g1 = self.geometry["orig"][-1], self.geometry["ft"][-1]
        out.update(top_clusters_orig=g0.n_clusters, top_clusters_ft=g1.n_clusters,
                   top_mean_min_distance_orig=float(np.mean(g0.min_distances)),
                   top_mean_min_distance_ft=float(np.mean(g1.min_distances)),
                   top_spatial_similarity=float(self.sim_to_orig[-1, -1]),
                   top_probe_orig=ProbeScore.from_row(self.probe["orig"][-1]).mean,
                   top_probe_ft=ProbeScore.from_row(self.probe["ft"][-1]).mean)
        for m, e in (self.out_of_domain.get("effects") or {}).items():
            out[f"ood_effect_{m}"] = e["estimate"]
        return out

    def to_dict(self) -> dict:
        """JSON-ready: per-layer summaries (each ``LayerGeometry`` with its label centroids
        packed bit for bit, ``results.pack_array``), arrays with NaN as null, tables, notes."""
        return {"config": dataclasses.asdict(self.config), "layers": list(self.layers),
                "steps": list(self.steps), "states": list(self.states),
                "label_names": list(self.label_names), "n_points": self.n_points,
                "geometry": _geometry_dicts(self.geometry),
                "test_geometry": _geometry_dicts(self.test_geometry),
                "sim_to_orig": self.sim_to_orig.tolist(),
                "train_test": {k: v.tolist() for k, v in self.train_test.items()},
                "probe": {k: v.tolist() for k, v in self.probe.items()},
                "tables": self.tables(), "notes": self.notes(),
                "cross_task": self.cross_task, "out_of_domain": self.out_of_domain,
                "activation_keys": self.activation_keys,
                "finetune_runs": list(self.finetune_runs), "seconds": self.seconds,
                "device": self.device,
                # what read() needs beyond the above
                "n_layers": self.n_layers, "spatial_why": list(self.spatial_why),
                "no_labels": self.no_labels,
                "probe_layers": list(self.probe_layers), "probe_why": list(self.probe_why),
                "fold_geometry": _geometry_dicts(self.fold_geometry),
                "fold_test_geometry": _geometry_dicts(self.fold_test_geometry)}

    @classmethod
    def from_dict(cls, saved) -> GeometryResult:
        """The inverse of ``to_dict`` (``saved``: ``studies.results.Saved``)."""
        from .config import GeometryConfig

        def geometry(key: str) -> dict[str, tuple[LayerGeometry, ...]]:
            return {st: tuple(_layer_geometry(saved, g, f"{key}.{st}[{j}]")
                              for j, g in enumerate(v))
                    for st, v in saved.need(key, dict).items()}

        ood = saved.need("out_of_domain", dict)
        if isinstance(ood.get("diagonal"), dict):  # per-layer similarities: NaN was null
            ood = {**ood, "diagonal": {m: {k: results.floats(v) for k, v in d.items()}
                                       for m, d in ood["diagonal"].items()}}
        return cls(
            config=saved.config(GeometryConfig), layers=tuple(saved.need("layers", list)),
            steps=tuple(saved.need("steps", list)), states=tuple(saved.need("states", list)),
            label_names=tuple(saved.need("label_names", list)),
            n_layers=saved.need("n_layers", int), n_points=saved.need("n_points", dict),
            geometry=geometry("geometry"), test_geometry=geometry("test_geometry"),
            sim_to_orig=saved.array(saved.need("sim_to_orig", list), "sim_to_orig", np.float64),
            train_test={k: saved.array(v, f"train_test.{k}", np.float64)
                        for k, v in saved.need("train_test", dict).items()},
            spatial_why=tuple(saved.need("spatial_why", list)),
            probe={k: saved.array(v, f"probe.{k}", np.float64)
                   for k, v in saved.need("probe", dict).items()},
            probe_layers=tuple(saved.need("probe_layers", list)),
            probe_why=tuple(saved.need("probe_why", list)),
            fold_geometry=geometry("fold_geometry"),
            fold_test_geometry=geometry("fold_test_geometry"),
            cross_task=saved.need("cross_task", dict), out_of_domain=ood,
            activation_keys=saved.need("activation_keys", dict),
            finetune_runs=tuple(saved.need("finetune_runs", list)), seconds=saved.need("seconds"),
            device=saved.get("device", {}), no_labels=saved.get("no_labels", ""))

    def problems(self) -> list[str]:
        """States against steps, per-layer arrays against the analysed layers, label counts and
        centroid shapes, NaN without a recorded reason, cache keys."""
        out, J, k = [], len(self.layers), len(self.label_names)
        if self.no_labels:
            return self._label_free_problems()
        if list(self.layers) != sorted(set(self.layers)) or not all(
                0 <= i <= self.n_layers for i in self.layers) or not self.layers:
            return [f"analysed layers {list(self.layers)} are not increasing layers of "
                    f"0..{self.n_layers}"]
        if list(self.states) != trace_keys(self.steps):
            out.append(f"states {list(self.states)} are not orig, the steps "
                       f"{list(self.steps)}, ft")
        if not set(self.probe_layers) <= set(self.layers):
            out.append(f"probe layers {list(self.probe_layers)} are not analysed layers")
        tables = [("geometry", self.geometry, self.states, J),
                  ("test_geometry", self.test_geometry, ("orig", "ft"), J),
                  ("fold_geometry", self.fold_geometry, ("orig", "ft"), None),
                  ("fold_test_geometry", self.fold_test_geometry, ("orig", "ft"), None)]
        for name, table, need, n in tables:
            out += [f"{name} has no {st!r}" for st in need if st not in table]
            sizes = {len(v) for v in table.values()}
            if (n is not None and sizes - {n}) or len(sizes) > 1:
                out.append(f"{name} holds {sorted(sizes)} entries per state, not "
                           f"{n if n is not None else 'one count'}")
            for st, gs in table.items():
                for j, g in enumerate(gs):
                    out += [f"{name}.{st}[{j}]: {p}" for p in _geometry_problems(g, k)]
        dims = {g.label_means.shape[1:] for gs in self.geometry.values() for g in gs}
        if len(dims) > 1:
            out.append(f"label centroids of different dimensions {sorted(dims)}")
        if self.sim_to_orig.shape != (len(self.states), J):
            out.append(f"sim_to_orig is {list(self.sim_to_orig.shape)}, not "
                       f"[{len(self.states)}, {J}] (states, layers)")
        elif not self.spatial_why and np.isnan(self.sim_to_orig).any():
            out.append("sim_to_orig has NaN and no recorded reason (spatial_why)")
        for st in ("orig", "ft"):
            tt, pr = self.train_test.get(st), self.probe.get(st)
            if tt is None or tt.shape != (J,):
                out.append(f"train_test[{st!r}] is not [{J}] (layers)")
            elif st in self.geometry and st in self.test_geometry and any(
                    np.isnan(tt[j]) and not (self.spatial_why or self.geometry[st][j].why
                                             or self.test_geometry[st][j].why)
                    for j in range(min(J, len(self.geometry[st]), len(self.test_geometry[st])))):
                out.append(f"train_test[{st!r}] has NaN and no recorded reason")
            if pr is None or pr.shape != (J, 3):
                out.append(f"probe[{st!r}] is not [{J}, 3] (layers x mean, std, majority)")
            elif self.config.probe_grid != "none" and not self.probe_why and any(
                    np.isnan(pr[j, 0]) for j, i in enumerate(self.layers)
                    if i in self.probe_layers):
                out.append(f"probe[{st!r}] has NaN at a probed layer and no recorded reason "
                           "(probe_why)")
        if set(self.n_points) != {"train", "test"}:
            out.append(f"n_points has {sorted(self.n_points)}, not train and test")
        return out + self.runs_problems(self.finetune_runs, self.config.seeds,
                                        self.activation_keys.values())


    def _label_free_problems(self) -> list[str]:
        """A result without class labels: no in-domain layer, table or label, and what it
        read (cross-task or out-of-domain sets) is there."""
        out = []
        if self.config.has_labels():
            out.append(f"no_labels is set but task {self.config.task!r} has class labels")
        if self.layers or self.label_names or any(self.n_points.values()):
            out.append("a result without class labels has analysed layers, labels or points")
        if list(self.states) != ["orig", "ft"] or self.steps:
            out.append(f"states {list(self.states)} and steps {list(self.steps)} are not orig "
                       "and ft without steps")
        tables = (self.geometry, self.test_geometry, self.fold_geometry,
                  self.fold_test_geometry, self.train_test, self.probe)
        if any(len(v) for t in tables for v in t.values()) or self.sim_to_orig.size:
            out.append("a result without class labels holds in-domain per-layer values")
        if not (self.cross_task or self.out_of_domain):
            out.append("a result without class labels has neither cross-task nor "
                       "out-of-domain parts")
        return out + self.runs_problems(self.finetune_runs, self.config.seeds,
                                        self.activation_keys.values())


def _geometry_dicts(table: dict) -> dict:
    return {st: [{**g.to_dict(), "label_means": results.pack_array(g.label_means)}
                 for g in gs] for st, gs in table.items()}


def _layer_geometry(saved, d, where: str) -> LayerGeometry:
    """One ``LayerGeometry`` from its saved dict (``where``: its place, for errors)."""
    if not isinstance(d, dict):
        raise saved.fail(f"{where} is not a layer summary")
    lacks = [k for k in ("n_clusters", "n_labels", "min_distances", "distance_vector",
                         "label_means", "why", "accuracy") if k not in d]
    if lacks:
        raise saved.fail(f"{where} lacks {lacks} (written by a layerscope that did not save "
                         "them yet: run the notebook again)")
    dv = d["distance_vector"]
    return LayerGeometry(
        n_clusters=d["n_clusters"], n_labels=d["n_labels"],
        min_distances=saved.array(d["min_distances"], f"{where}.min_distances", np.float64),
        distance_vector=None if dv is None else saved.array(dv, f"{where}.distance_vector",
                                                            np.float64),
        label_means=saved.packed(d["label_means"], f"{where}.label_means"), why=d["why"],
        accuracy=math.nan if d["accuracy"] is None else d["accuracy"])


def _geometry_problems(g: LayerGeometry, k: int) -> list[str]:
    out = []
    if g.n_labels != k:
        out.append(f"{g.n_labels} labels, not the {k} label names")
    if g.min_distances.shape != (g.n_labels,):
        out.append(f"min_distances is {list(g.min_distances.shape)}, not [{g.n_labels}]")
    elif np.isnan(g.min_distances).any() and not g.why:
        out.append("NaN minimum distances and no recorded reason (why)")
    if g.label_means.ndim != 2 or g.label_means.shape[0] != g.n_labels:
        out.append(f"label centroids are {list(g.label_means.shape)}, not [{g.n_labels}, d]")
    p = g.n_labels * (g.n_labels - 1) // 2
    if g.distance_vector is not None and g.distance_vector.shape != (p,):
        out.append(f"distance vector is {list(g.distance_vector.shape)}, not [{p}] (pairs)")
    return out
