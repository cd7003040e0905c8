"""Plotly figures. Every function returns a ``go.Figure``; none calls ``.show()``.

Layer axes follow the package convention: "emb" is hidden state 0 (embedding output) and
"i" is the output of block i.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go


def layer_labels(n_layers: int) -> list[str]:
    """Axis labels for hidden states 0..n_layers: ["emb", "1", ..., "L"]."""
    return ["emb"] + [str(i) for i in range(1, n_layers + 1)]


def learning_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], *, metric: str,
                    baseline: float | None = None, title: str = "Fine-tuning") -> go.Figure:
    """Training loss (left axis) and validation ``metric`` (right axis) per run.

    curves: run name -> {"train_step", "train_loss", "eval_step", "eval_metric"} lists.
    """
    fig = go.Figure()
    for name, c in curves.items():
        fig.add_trace(go.Scatter(x=list(c["train_step"]), y=list(c["train_loss"]),
                                 name=f"{name}: train loss", mode="lines"))
        fig.add_trace(go.Scatter(x=list(c["eval_step"]), y=list(c["eval_metric"]),
                                 name=f"{name}: validation {metric}", mode="lines+markers",
                                 yaxis="y2"))
    if baseline is not None:
        fig.add_hline(y=baseline, line_dash="dot", yref="y2",
                      annotation_text=f"majority baseline {baseline:.3f}")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="training loss",
                      yaxis2=dict(title=f"validation {metric}", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.25), template="plotly_white")
    return fig


def metric_bars(values: Mapping[str, float], *, metric: str, baseline: float | None = None,
                title: str = "") -> go.Figure:
    """One bar per run (e.g. per seed), with the majority baseline as a line."""
    fig = go.Figure(go.Bar(x=list(values), y=[float(v) for v in values.values()],
                           text=[f"{float(v):.3f}" for v in values.values()]))
    if baseline is not None:
        fig.add_hline(y=baseline, line_dash="dot", annotation_text="majority baseline")
    fig.update_layout(title=title, yaxis_title=metric, yaxis_range=[0, 1] if metric != "mse" else None,
                      template="plotly_white")
    return fig


def heatmap(matrix, *, x_title: str, y_title: str, title: str, zmin: float = 0.0,
            zmax: float = 1.0, n_layers: int | None = None) -> go.Figure:
    """A layer x layer heatmap; NaN cells (undefined) are left blank."""
    m = np.asarray(matrix, dtype=float)
    labels_y = layer_labels(m.shape[0] - 1) if n_layers is None else layer_labels(n_layers)
    labels_x = layer_labels(m.shape[1] - 1)
    fig = go.Figure(go.Heatmap(z=m, x=labels_x, y=labels_y[: m.shape[0]], zmin=zmin, zmax=zmax,
                               colorscale="Viridis", hoverongaps=False))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title,
                      yaxis=dict(autorange="reversed"), template="plotly_white")
    return fig
