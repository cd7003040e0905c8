"""Layer x layer panels: heatmaps side by side on one colour scale, undefined cells grey.

Undefined cells (NaN, e.g. the layer-0 CLS of BERT-style models, constant across sentences) are
drawn grey, never as a number, with the reason in a note under the figure. Panels share one
colour scale so that they can be compared (Phang et al. 2021, Fig. 1: 0 to 1 for CKA; the
skipping heatmap of Fig. 4 uses the task metric's range).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

UNDEFINED_GREY = "#d9d9d9"
COLORSCALE = "Viridis"


def layer_labels(n_layers: int) -> list[str]:
    """Axis labels for hidden states 0..n_layers: ["emb", "1", ..., "L"]."""
    return ["emb"] + [str(i) for i in range(1, n_layers + 1)]


@dataclass(frozen=True)
class Panel:
    """One matrix to draw: rows are ``y_title`` layers, columns ``x_title`` layers.

    ``y_labels``/``x_labels`` default to the layer labels emb, 1..L (a matrix of L+1 rows);
    give them for other axes (e.g. blocks 1..L of the skipping heatmap).
    """

    matrix: np.ndarray  # [rows, cols]
    title: str
    y_title: str
    x_title: str
    y_labels: tuple[str, ...] | None = None
    x_labels: tuple[str, ...] | None = None
    axis_suffix: str = " layer"

    def labels(self) -> tuple[list[str], list[str]]:
        m = np.asarray(self.matrix)
        ys = list(self.y_labels) if self.y_labels else layer_labels(m.shape[0] - 1)
        xs = list(self.x_labels) if self.x_labels else layer_labels(m.shape[1] - 1)
        return ys, xs


def wrap_notes(lines: Sequence[str], width: int = 150, sep: str = "<br>") -> str:
    return sep.join(sep.join(textwrap.wrap(x, width)) for x in lines)


def _panel_traces(p: Panel, coloraxis: str, fmt: str = ".3f") -> list[go.Heatmap]:
    m = np.asarray(p.matrix, dtype=float)
    ys, xs = p.labels()
    nan = np.isnan(m)
    traces = []
    where = f"{p.y_title} %{{y}}, {p.x_title} %{{x}}"
    if nan.any():  # grey underlay shows through the NaN gaps of the value heatmap
        traces.append(go.Heatmap(z=np.where(nan, 0.0, np.nan), x=xs, y=ys, showscale=False,
                                 colorscale=[[0, UNDEFINED_GREY], [1, UNDEFINED_GREY]],
                                 hovertemplate=f"{where}: undefined<extra></extra>"))
    traces.append(go.Heatmap(z=m, x=xs, y=ys, coloraxis=coloraxis, hoverongaps=False,
                             hovertemplate=f"{where}: %{{z:{fmt}}}<extra></extra>"))
    return traces


def panels_figure(panels: Sequence[Panel], *, title: str, metric: str = "CKA",
                  notes: Sequence[str] = (), cols: int | None = None, zmin: float = 0.0,
                  zmax: float = 1.0, colorscale: str = COLORSCALE) -> go.Figure:
    """Heatmaps side by side with one shared colour scale [zmin, zmax].

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
        fig.update_xaxes(title_text=f"{p.x_title}{p.axis_suffix}", row=r, col=c, tickangle=0)
        fig.update_yaxes(title_text=f"{p.y_title}{p.axis_suffix}", row=r, col=c,
                         autorange="reversed", scaleanchor=f"x{k + 1 if k else ''}",
                         constrain="domain")
    width = max(460, 340 * cols + 140)
    note = wrap_notes(notes, width=int(width / 6.5))  # ~6.5 px per character at font size 11
    n_lines = note.count("<br>") + 1 if notes else 0
    fig.update_layout(title=title, template="plotly_white",
                      coloraxis=dict(colorscale=colorscale, cmin=zmin, cmax=zmax,
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


def panels_png(panels: Sequence[Panel], path: str | Path, *, title: str, metric: str = "CKA",
               notes: Sequence[str] = (), cols: int | None = None, zmin: float = 0.0,
               zmax: float = 1.0) -> Path:
    """The PNG twin of ``panels_figure`` (same shared scale; undefined cells grey)."""
    cols = cols or len(panels)
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.4 * cols + 1.2, 3.3 * rows + 0.5 + 0.22 * len(notes)),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=UNDEFINED_GREY)
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.axis("off")
            continue
        p = panels[k]
        ys, xs = p.labels()
        m = np.ma.masked_invalid(np.asarray(p.matrix, dtype=float))
        im = ax.imshow(m, cmap=cmap, vmin=zmin, vmax=zmax, origin="upper", aspect="equal")
        step = max(1, (max(m.shape) - 1) // 12 + 1)  # at most ~13 tick labels per axis
        ax.set_yticks(range(0, m.shape[0], step), ys[::step], fontsize=7)
        ax.set_xticks(range(0, m.shape[1], step), xs[::step], fontsize=7)
        ax.set_title(p.title, fontsize=10)
        ax.set_ylabel(f"{p.y_title}{p.axis_suffix}", fontsize=8)
        ax.set_xlabel(f"{p.x_title}{p.axis_suffix}", fontsize=8)
    fig.suptitle(title, fontsize=11)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=metric)
    if notes:
        fig.supxlabel(wrap_notes(notes, 130, "\n"), fontsize=7, color="#555", ha="left", x=0.02)
    return save_png(fig, path)


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write a matplotlib Figure (no pyplot) as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
