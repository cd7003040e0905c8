"""Figures of study 03: metric vs layer (Phang et al. 2021 Fig. 3) and one layer in detail.

Fig. 3 colours: UNTUNED green, TUNED blue, TUNEDORIG yellow, the majority-class baseline as a
dotted line, the full model as the rightmost point. Bands are 95% bootstrap intervals over
validation examples. Ablations (Merchant et al. 2020) are extra points: a model fine-tuned with
the top k blocks removed sits at depth L - k, next to UNTUNED truncation at L - k; one
fine-tuned with blocks 1..k frozen (full depth) sits at x = k.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ... import plots
from ...errors import ConfigError
from ..common import records
from ..common.structured import unit_scores
from ..common.task_heads import for_task

COLOURS = {"untuned": "rgb(44,160,44)", "tuned": "rgb(31,119,180)",
           "tunedorig": "rgb(230,171,2)", "full": "rgb(20,20,20)",
           "drop_top": "rgb(214,39,40)", "freeze_bottom": "rgb(148,103,189)"}
NAMES = {"untuned": "UNTUNED", "tuned": "TUNED", "tunedorig": "TUNEDORIG"}


def lines(result) -> list[plots.Line]:
    """The three truncation lines, the full model and the ablations as ``plots.Line``s."""
    out = []
    for line, name in NAMES.items():
        ks = result.layers(line)
        y, band = result.scores[line], result.bands[line]
        out.append(plots.Line(name, ks, [y[k] for k in ks], [band[k][0] for k in ks],
                              [band[k][1] for k in ks], colour=COLOURS[line]))
    L = result.n_layers
    out.append(plots.Line("full model", [L], [result.scores["untuned"][L]],
                          colour=COLOURS["full"]))
    for kind, label in (("drop_top", "fine-tuned with top k blocks dropped (x = L-k)"),
                        ("freeze_bottom", "fine-tuned with blocks 1..k frozen (x = k)")):
        ab = sorted((a for a in result.ablations if a["kind"] == kind), key=lambda a: a["x"])
        if ab:
            out.append(plots.Line(label, [a["x"] for a in ab], [a["value"] for a in ab],
                                  [a["band"][0] for a in ab], [a["band"][1] for a in ab],
                                  colour=COLOURS[kind], dash="dash"))
    return out


def figure_args(result) -> dict:
    """Titles and reference lines shared by the plotly figure and its PNG twin."""
    c, L = result.config, result.n_layers
    base = "mean predictor" if c.task_spec.kind == "regression" else "majority baseline"
    vlines = []
    if result.blocks:
        b = result.blocks["boundary"]
        vlines.append((b - 0.5, f"FT–FT CKA blocks split before layer {b}"))
    worse = "" if result.higher_is_better else " (lower is better)"
    return dict(title=f"Truncation: {c.model} on {c.task}, {records.evaluated(result)}, "
                      f"seeds {','.join(map(str, c.seeds))} (full model = layer {L})",
                x_title="layer k fed to the task head (0 = embeddings, L = full model)",
                y_title=f"{c.split} {result.metric}{worse}",
                hlines=[(result.baseline["value"], f"{base} {result.baseline['value']:.3f}")],
                vlines=vlines)


def check_layer(result, layer) -> int:
    """``layer`` if it is 0..L, else a ConfigError naming the range."""
    L = result.n_layers
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer <= L:
        raise ConfigError(f"layer {layer!r} out of range: this {L}-block model has layers "
                          f"0..{L} (0 = embedding output, i = output of block i; L = full model)")
    return int(layer)


def layer_figure(result, layer: int) -> go.Figure:
    """One layer in detail: per line, the confusion matrix (classification; rows = gold,
    normalised) or the distribution of predicted scores against the gold ones (regression)."""
    k = check_layer(result, layer)
    task = result.config.task_spec
    title = f"Layer {k} of {result.n_layers}: {result.config.model} on {result.config.task}"
    if result.structured:  # QA / parsing: each question's F1 or sentence's UAS/LAS
        return _unit_score_figure(result, k, title)
    if task.kind == "regression":
        fig = go.Figure(go.Histogram(x=result.labels.tolist(), name="gold", opacity=0.5,
                                     marker_color="#777"))
        for line, name in NAMES.items():
            if k in result.layers(line):
                fig.add_trace(go.Histogram(x=result.predictions(line)[:, k].ravel().tolist(),
                                           name=f"{name} {result.scores[line][k]:.3f}",
                                           opacity=0.5, marker_color=COLOURS[line]))
        fig.update_layout(barmode="overlay", title=title, xaxis_title="score",
                          yaxis_title="examples", template="plotly_white")
        return fig
    C, names, panels = task.num_labels, list(task.label_names), []
    for line, name in NAMES.items():
        m = np.full((C, C), np.nan)
        if k in result.layers(line):
            p = result.predictions(line)[:, k]  # [S, n]
            y = np.broadcast_to(result.labels, p.shape)
            counts = np.zeros((C, C))
            np.add.at(counts, (y.ravel(), p.ravel().astype(int)), 1)
            m = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        score = result.scores[line][k]
        sub = f"{result.metric} {score:.3f}" if np.isfinite(score) else "undefined"
        panels.append(plots.Panel(m, f"{name} ({sub})", "gold", "predicted",
                                  y_labels=tuple(names), x_labels=tuple(names), axis_suffix=""))
    notes = [f"{line.upper()} layer {k}: {why}" for line, d in result.undefined.items()
             for kk, why in d.items() if kk == k]
    return plots.panels_figure(panels, title=title, metric="fraction of gold row",
                               notes=notes, zmin=0.0, zmax=1.0)


def _unit_score_figure(result, k: int, title: str) -> go.Figure:
    """Extractive QA / parsing at one layer: the distribution over questions (sentences) of
    each unit's own score under each line (QA: F1; parsing: the share of its scored words
    with the right head, and relation for LAS), seeds pooled."""
    task = result.config.task_spec
    fig = go.Figure()
    for line, name in NAMES.items():
        if k not in result.layers(line):
            continue
        per_unit = unit_scores(task, result.metric, result.predictions(line)[:, k])  # [S, n]
        fig.add_trace(go.Histogram(x=per_unit[np.isfinite(per_unit)].tolist(),
                                   name=f"{name} {result.scores[line][k]:.1f}", opacity=0.5,
                                   marker_color=COLOURS[line], xbins={"start": 0, "end": 100,
                                                                      "size": 10}))
    unit = for_task(task).units
    fig.update_layout(barmode="overlay", title=title, xaxis_title=f"{result.metric} per "
                      f"{unit[:-1]} (%)", yaxis_title=unit, template="plotly_white")
    return fig
