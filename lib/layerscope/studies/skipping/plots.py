"""Figures of study 04: the span heatmap (Phang et al. 2021 Fig. 4), drops by span length and
position, and one span against the full model.

Heatmap axes: rows = first skipped block i, columns = last skipped block j (inclusive), colour
= the task metric on one scale [zmin, zmax] spanning the cells, the full model and the baseline.
Grey cells: j < i (no such span) and (1, L) (skipping every block leaves no model).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ... import plots
from ...errors import ConfigError
from ...plots.curves import viridis
from ...surgery import check_skip
from ..common import records
from ..common.structured import unit_scores
from ..common.task_heads import for_task


def check_span(result, first: int, last: int) -> tuple[int, int]:
    """(first, last) if they name a span of skipped blocks the study computed, else a
    ConfigError naming the value and the valid range."""
    L = result.n_layers
    for name, v in (("first", first), ("last", last)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"{name} skipped block {v!r}: use an int in 1..{L}")
    if first > last:
        raise ConfigError(f"span [{first}..{last}] is empty: the first skipped block must not "
                          f"come after the last (use first <= last, both in 1..{L})")
    check_skip(range(first, last + 1), L)  # out of range / every block: ConfigError
    return int(first), int(last)


def heatmap_panel(result) -> plots.Panel:
    labels = tuple(str(i) for i in range(1, result.n_layers + 1))
    return plots.Panel(result.matrix(), f"{result.metric} with blocks i..j skipped",
                       "first skipped", "last skipped", y_labels=labels, x_labels=labels,
                       axis_suffix=" block")


def heatmap_args(result) -> dict:
    c, m = result.config, result.matrix()
    base = "mean predictor" if c.task_spec.kind == "regression" else "majority baseline"
    values = [v for v in (np.nanmin(m), np.nanmax(m), result.full["value"],
                          result.baseline["value"]) if np.isfinite(v)]
    worse = "" if result.higher_is_better else " (lower is better)"
    notes = [f"Full model (nothing skipped): {result.metric} {result.full['value']:.4f}; "
             f"{base} {result.baseline['value']:.4f}.",
             "Grey: no such span (last < first), or blocks 1..L (skipping every block leaves "
             "no model). Block i maps hidden state i-1 to i; no further tuning."]
    return dict(title=f"Skipping spans (Phang et al. 2021 §4.1): {c.model} on {c.task}, "
                      f"{records.evaluated(result)}", metric=result.metric + worse,
                notes=notes, zmin=float(min(values)), zmax=float(max(values)))


def curves(result) -> tuple[list[plots.Line], dict]:
    """Drop from the full model (higher = worse) by first skipped block, one line per span
    length, plus the mean over positions by length (with its bootstrap band) at x = 0."""
    L, lines = result.n_layers, []
    by_span = dict(zip(result.spans, result.span_scores, strict=True))
    sign = 1.0 if result.higher_is_better else -1.0
    for n_skip in range(1, L):
        xs = [i for i in range(1, L - n_skip + 2) if (i, i + n_skip - 1) in by_span]
        ys = [sign * (result.full["value"] - by_span[(i, i + n_skip - 1)]) for i in xs]
        lines.append(plots.Line(f"{n_skip} block{'s' if n_skip > 1 else ''} skipped", xs, ys,
                                colour=viridis(n_skip - 1, max(L - 1, 1))))
    kw = dict(title=f"Drop from the full model's {result.metric} by position "
                    f"({result.config.model} on {result.config.task})",
              x_title="first skipped block", y_title=f"drop in {result.metric} (higher = worse)",
              hlines=[(0.0, "full model")])
    return lines, kw


def length_curve(result) -> tuple[list[plots.Line], dict]:
    """Mean drop by span length, with its 95% bootstrap band and the min/max over positions."""
    d = result.by_length
    x = [r["length"] for r in d]
    lines = [plots.Line("mean over positions", x, [r["mean_drop"] for r in d],
                        [r["low"] for r in d], [r["high"] for r in d]),
             plots.Line("largest drop", x, [r["max_drop"] for r in d], dash="dot"),
             plots.Line("smallest drop", x, [r["min_drop"] for r in d], dash="dot")]
    kw = dict(title=f"Drop from the full model's {result.metric} by span length",
              x_title="blocks skipped", y_title=f"drop in {result.metric} (higher = worse)",
              hlines=[(0.0, "full model")])
    return lines, kw


def span_figure(result, first: int, last: int) -> go.Figure:
    """One span against the full model. Classification: a 2x2 table (full model right/wrong x
    skipped model right/wrong) and the agreement of their predictions, as fractions of
    examples (seeds pooled). Regression: skipped vs full predictions, one point per example."""
    i, j = check_span(result, first, last)
    task = result.config.task_spec
    full, span = result.full_predictions(), result.predictions(i, j)  # [S, n]
    score = result.score(i, j)
    title = (f"Blocks {i}..{j} skipped ({result.metric} {score:.4f}) vs the full model "
             f"({result.full['value']:.4f})")
    if result.structured:  # QA / parsing: each question's (sentence's) own score
        full, span = (unit_scores(task, result.metric, x) for x in (full, span))
        units = for_task(task).units
        fig = go.Figure([go.Scatter(x=full.ravel().tolist(), y=span.ravel().tolist(),
                                    mode="markers", marker=dict(size=5, opacity=0.4),
                                    name=units),
                         go.Scatter(x=[0, 100], y=[0, 100], mode="lines", name="equal",
                                    line=dict(dash="dot", color="#888"))])
        fig.update_layout(title=title, xaxis_title=f"{result.metric} per {units[:-1]}, full "
                          f"model (%)", yaxis_title=f"with blocks {i}..{j} skipped (%)",
                          template="plotly_white")
        return fig
    if task.kind == "regression":
        lo, hi = float(min(full.min(), span.min())), float(max(full.max(), span.max()))
        fig = go.Figure([go.Scatter(x=full.ravel().tolist(), y=span.ravel().tolist(),
                                    mode="markers", marker=dict(size=4, opacity=0.5),
                                    name="examples"),
                         go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="equal",
                                    line=dict(dash="dot", color="#888"))])
        fig.update_layout(title=title, xaxis_title="full model prediction",
                          yaxis_title=f"prediction with blocks {i}..{j} skipped",
                          template="plotly_white")
        return fig
    y = np.broadcast_to(result.labels, full.shape)
    right = np.zeros((2, 2))
    np.add.at(right, ((full != y).ravel().astype(int), (span != y).ravel().astype(int)), 1)
    C, names = task.num_labels, tuple(task.label_names)
    agree = np.zeros((C, C))
    np.add.at(agree, (full.ravel().astype(int), span.ravel().astype(int)), 1)
    panels = [plots.Panel(right / right.sum(), "right / wrong", "full model", "skipped",
                          y_labels=("right", "wrong"), x_labels=("right", "wrong"),
                          axis_suffix=""),
              plots.Panel(agree / agree.sum(), "predicted label", "full model", "skipped",
                          y_labels=names, x_labels=names, axis_suffix="")]
    notes = [f"Same predictions on {float((full == span).mean()):.1%} of examples; "
             f"full model right, skipped wrong: {right[0, 1] / right.sum():.1%}; "
             f"the reverse: {right[1, 0] / right.sum():.1%}."]
    return plots.panels_figure(panels, title=title, metric="fraction of examples",
                               notes=notes, zmin=0.0, zmax=1.0)
