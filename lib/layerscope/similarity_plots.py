"""Figures for layer-by-layer similarity: plotly for notebooks/HTML, matplotlib for PNG.

Every plotly function returns a ``go.Figure`` and never calls ``.show()``. Layer axes follow the
package convention ("emb" = hidden state 0, "i" = output of block i); rows run top to bottom.
Undefined cells (NaN, e.g. the layer-0 CLS of BERT-style models, constant across sentences) are
drawn grey, never as a number, with the reason in a note under the figure. One colour scale,
0 to 1, is shared by every panel so that panels can be compared (Phang et al. 2021, Fig. 1).
PNG copies use matplotlib because plotly's image export (kaleido) needs a Chrome browser.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plots import layer_labels

UNDEFINED_GREY = "#d9d9d9"
COLORSCALE = "Viridis"


@dataclass(frozen=True)
class Panel:
    """One layer-by-layer matrix to draw: rows are ``y_title`` layers, columns ``x_title``."""

    matrix: np.ndarray  # [La, Lb]
    title: str
    y_title: str
    x_title: str


def _wrap(lines: Sequence[str], width: int = 150) -> str:
    return "<br>".join("<br>".join(textwrap.wrap(x, width)) for x in lines)


def _panel_traces(p: Panel, coloraxis: str) -> list[go.Heatmap]:
    m = np.asarray(p.matrix, dtype=float)
    ys, xs = layer_labels(m.shape[0] - 1), layer_labels(m.shape[1] - 1)
    nan = np.isnan(m)
    traces = []
    if nan.any():  # grey underlay shows through the NaN gaps of the value heatmap
        traces.append(go.Heatmap(z=np.where(nan, 0.0, np.nan), x=xs, y=ys, showscale=False,
                                 colorscale=[[0, UNDEFINED_GREY], [1, UNDEFINED_GREY]],
                                 hovertemplate=f"{p.y_title} %{{y}}, {p.x_title} %{{x}}: "
                                               "undefined<extra></extra>"))
    traces.append(go.Heatmap(z=m, x=xs, y=ys, coloraxis=coloraxis, hoverongaps=False,
                             hovertemplate=f"{p.y_title} %{{y}}, {p.x_title} %{{x}}: "
                                           "%{z:.3f}<extra></extra>"))
    return traces


def panels_figure(panels: Sequence[Panel], *, title: str, metric: str = "CKA",
                  notes: Sequence[str] = (), cols: int | None = None) -> go.Figure:
    """Heatmaps side by side with one shared 0–1 colour scale (Phang et al. 2021, Fig. 1).

    Args:
        panels: the matrices with their titles and axis names.
        title: figure title.
        metric: colour-bar title.
        notes: lines printed under the figure (e.g. why grey cells are undefined).
        cols: panels per row (default: all in one row).
    """
    cols = cols or len(panels)
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p.title for p in panels],
                        horizontal_spacing=0.06, vertical_spacing=0.16)
    for k, p in enumerate(panels):
        r, c = k // cols + 1, k % cols + 1
        for t in _panel_traces(p, "coloraxis"):
            fig.add_trace(t, row=r, col=c)
        fig.update_xaxes(title_text=f"{p.x_title} layer", row=r, col=c, tickangle=0)
        fig.update_yaxes(title_text=f"{p.y_title} layer", row=r, col=c, autorange="reversed",
                         scaleanchor=f"x{k + 1 if k else ''}", constrain="domain")
    width = max(460, 340 * cols + 140)
    note = _wrap(notes, width=int(width / 6.5))  # ~6.5 px per character at font size 11
    n_lines = note.count("<br>") + 1 if notes else 0
    fig.update_layout(title=title, template="plotly_white",
                      coloraxis=dict(colorscale=COLORSCALE, cmin=0.0, cmax=1.0,
                                     colorbar=dict(title=metric)),
                      width=width, height=360 * rows + 100 + 15 * n_lines,
                      margin=dict(b=70 + 15 * n_lines))
    if notes:  # below the bottom axis title, in pixels, whatever the figure height
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=0, yshift=-55,
                           showarrow=False, align="left", xanchor="left", yanchor="top",
                           font=dict(size=11, color="#555"))
    return fig


def grid_figure(cells: Mapping[tuple[str, str], np.ndarray], *, row_names: Sequence[str],
                col_names: Sequence[str], title: str, metric: str = "CKA") -> go.Figure:
    """A grid of layer-by-layer heatmaps, e.g. models (rows) x tasks (columns) as in Phang
    et al. (2021), Fig. 2. ``cells[(row, col)]`` is a [La, Lb] matrix; missing cells stay empty.
    """
    fig = make_subplots(rows=len(row_names), cols=len(col_names),
                        subplot_titles=[f"{r} · {c}" for r in row_names for c in col_names],
                        horizontal_spacing=0.04, vertical_spacing=0.08)
    for i, r in enumerate(row_names):
        for j, c in enumerate(col_names):
            if (r, c) not in cells:
                continue
            for t in _panel_traces(Panel(cells[(r, c)], "", "", ""), "coloraxis"):
                fig.add_trace(t, row=i + 1, col=j + 1)
            fig.update_yaxes(autorange="reversed", row=i + 1, col=j + 1)
    fig.update_layout(title=title, template="plotly_white",
                      coloraxis=dict(colorscale=COLORSCALE, cmin=0.0, cmax=1.0,
                                     colorbar=dict(title=metric)),
                      width=260 * len(col_names) + 140, height=240 * len(row_names) + 100)
    return fig


def drift_figure(steps: Sequence[int], drift: np.ndarray, *, title: str,
                 metric: str = "CKA") -> go.Figure:
    """How far each layer moves from the untuned model during fine-tuning.

    Args:
        steps: S training steps.
        drift: [S, L+1]: similarity of layer l at each step with layer l of the untuned model.
    """
    d = np.asarray(drift, dtype=float)
    labels = layer_labels(d.shape[1] - 1)
    fig = go.Figure()
    for i, lab in enumerate(labels):
        if np.isnan(d[:, i]).all():
            continue  # an undefined layer (e.g. layer-0 CLS) has no line
        fig.add_trace(go.Scatter(x=list(steps), y=d[:, i], mode="lines+markers",
                                 name=f"layer {lab}",
                                 line=dict(color=_mpl_colour(i, len(labels)))))
    fig.update_layout(title=title, xaxis_title="fine-tuning step",
                      yaxis_title=f"{metric}(layer at step, same layer untuned)",
                      yaxis_range=[min(0.0, float(np.nanmin(d)) - 0.02), 1.02],
                      template="plotly_white")
    return fig


def _mpl_colour(i: int, n: int) -> str:
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["viridis"](i / max(1, n - 1))
    return f"rgb({int(255 * r)},{int(255 * g)},{int(255 * b)})"


# --------------------------------------------------------------------------- PNG (matplotlib)
def panels_png(panels: Sequence[Panel], path: str | Path, *, title: str, metric: str = "CKA",
               notes: Sequence[str] = (), cols: int | None = None) -> Path:
    """The PNG twin of ``panels_figure`` (same shared 0–1 scale; undefined cells grey)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = cols or len(panels)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols + 1.2, 3.3 * rows + 0.5
                                                  + 0.22 * len(notes)), squeeze=False,
                             layout="constrained")
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=UNDEFINED_GREY)
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.axis("off")
            continue
        p = panels[k]
        m = np.ma.masked_invalid(np.asarray(p.matrix, dtype=float))
        im = ax.imshow(m, cmap=cmap, vmin=0.0, vmax=1.0, origin="upper", aspect="equal")
        step = max(1, (max(m.shape) - 1) // 12 + 1)  # at most ~13 tick labels per axis
        for axis, n in ((ax.set_yticks, m.shape[0]), (ax.set_xticks, m.shape[1])):
            axis(range(0, n, step), layer_labels(n - 1)[::step], fontsize=7)
        ax.set_title(p.title, fontsize=10)
        ax.set_ylabel(f"{p.y_title} layer", fontsize=8)
        ax.set_xlabel(f"{p.x_title} layer", fontsize=8)
    fig.suptitle(title, fontsize=11)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=metric)
    if notes:
        fig.supxlabel("\n".join(line for x in notes for line in textwrap.wrap(x, 130)),
                      fontsize=7, color="#555", ha="left", x=0.02)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def drift_png(steps: Sequence[int], drift: np.ndarray, path: str | Path, *, title: str,
              metric: str = "CKA") -> Path:
    """The PNG twin of ``drift_figure``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d = np.asarray(drift, dtype=float)
    labels = layer_labels(d.shape[1] - 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    cmap = matplotlib.colormaps["viridis"]
    for i, lab in enumerate(labels):
        if not np.isnan(d[:, i]).all():
            ax.plot(list(steps), d[:, i], marker="o", color=cmap(i / max(1, len(labels) - 1)),
                    label=f"layer {lab}")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel(f"{metric} with the untuned layer")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
