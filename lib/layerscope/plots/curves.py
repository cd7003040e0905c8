"""Curves: a value per layer or per step, with optional bands (intervals) and reference lines.

Used for learning curves (notebook 01), drift over fine-tuning (02), metric vs layer with the
three truncation lines and their bootstrap bands (03, after Phang et al. 2021 Fig. 3) and
distances over training (05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure

from .layers import layer_labels, save_png


@dataclass(frozen=True)
class Line:
    """One curve: y over x, optionally with a band [low, high] (e.g. a 95% interval)."""

    name: str
    x: Sequence
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    colour: str | None = None
    dash: str | None = None  # plotly dash name: "dot", "dash", ...


def _rgb(c) -> str:
    r, g, b = (int(255 * v) for v in matplotlib.colors.to_rgb(c))
    return f"rgb({r},{g},{b})"


def viridis(i: int, n: int) -> str:
    """The i-th of n colours along viridis, as 'rgb(r,g,b)' (plotly and matplotlib read it)."""
    return _rgb(matplotlib.colormaps["viridis"](i / max(1, n - 1)))


def per_layer_lines(x: Sequence, values: np.ndarray, *, prefix: str = "layer ") -> list[Line]:
    """One line per layer from values [S, L+1] over S x positions (all-NaN layers left out)."""
    v = np.asarray(values, dtype=float)
    labels = layer_labels(v.shape[1] - 1)
    return [Line(f"{prefix}{lab}", list(x), v[:, i].tolist(), colour=viridis(i, len(labels)))
            for i, lab in enumerate(labels) if not np.isnan(v[:, i]).all()]


def lines_figure(lines: Sequence[Line], *, title: str, x_title: str, y_title: str,
                 hlines: Sequence[tuple[float, str]] = (),
                 vlines: Sequence[tuple[float, str]] = (),
                 y_range: tuple[float, float] | None = None) -> go.Figure:
    """Lines with shaded bands; ``hlines``/``vlines``: (position, label) reference lines."""
    fig = go.Figure()
    for ln in lines:
        colour = ln.colour
        if ln.low is not None and ln.high is not None:
            x = list(ln.x)
            fig.add_trace(go.Scatter(x=x + x[::-1], y=list(ln.high) + list(ln.low)[::-1],
                                     fill="toself", line=dict(width=0), hoverinfo="skip",
                                     fillcolor=(colour or "rgb(99,110,250)").replace(
                                         "rgb(", "rgba(").replace(")", ",0.18)"),
                                     showlegend=False, name=f"{ln.name} band"))
        fig.add_trace(go.Scatter(x=list(ln.x), y=list(ln.y), name=ln.name, mode="lines+markers",
                                 line=dict(color=colour, dash=ln.dash)))
    for y, text in hlines:
        fig.add_hline(y=y, line_dash="dot", annotation_text=text)
    for x, text in vlines:
        fig.add_vline(x=x, line_dash="dash", line_color="#888", annotation_text=text)
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title,
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


def lines_png(lines: Sequence[Line], path: str | Path, *, title: str, x_title: str,
              y_title: str, hlines: Sequence[tuple[float, str]] = (),
              vlines: Sequence[tuple[float, str]] = (),
              y_range: tuple[float, float] | None = None) -> Path:
    """The PNG twin of ``lines_figure``."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    dashes = {None: "-", "dot": ":", "dash": "--", "dashdot": "-."}
    for ln in lines:
        x = list(range(len(ln.x))) if isinstance(ln.x[0], str) else list(ln.x)
        c = ln.colour
        c = tuple(int(v) / 255 for v in c[4:-1].split(",")) if c and c.startswith("rgb(") else c
        ax.plot(x, ln.y, marker="o", ms=3, label=ln.name, color=c, ls=dashes.get(ln.dash, "-"))
        if ln.low is not None and ln.high is not None:
            ax.fill_between(x, ln.low, ln.high, alpha=0.18, color=ax.lines[-1].get_color())
        if isinstance(ln.x[0], str):
            ax.set_xticks(x, list(ln.x), fontsize=7)
    for y, text in hlines:
        ax.axhline(y, ls=":", color="#555", lw=1)
        ax.annotate(text, (1, y), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=7, color="#555")
    for x, text in vlines:
        ax.axvline(x, ls="--", color="#888", lw=1)
        ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"), ha="left", va="top",
                    fontsize=7, color="#555")
    if y_range is not None:
        ax.set_ylim(*y_range)
    ax.set_xlabel(x_title)
    ax.set_ylabel(y_title)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return save_png(fig, path)


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
    fig.update_layout(title=title, yaxis_title=metric,
                      yaxis_range=[0, 1] if metric != "mse" else None, template="plotly_white")
    return fig
