"""Figures of study 05 that the generic ``plots`` builders do not cover: 2-D paths and arrows
(Zhou & Srikumar 2022 Figures 3 and 5), each with a matplotlib PNG twin. Never ``.show()``.

A ``Path2D`` is one label's sequence of 2-D points (a centroid over checkpoints, or the origin
and one displacement); panels share nothing but the title.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from ... import plots


@dataclass(frozen=True)
class Path2D:
    name: str
    xy: np.ndarray  # [m, 2]
    text: Sequence[str] = ()  # one hover label per point (e.g. "step 38")


def paths_figure(panels: Sequence[tuple[str, Sequence[Path2D]]], *, title: str,
                 arrows: bool = False, note: str = "") -> go.Figure:
    """One subplot per (panel title, paths); markers at every point, the last one larger
    (the end of a path, or an arrow head when ``arrows``)."""
    cols = min(3, max(1, len(panels)))
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels])
    names = sorted({p.name for _, ps in panels for p in ps})
    colour = {n: plots.curves.viridis(i, len(names)) for i, n in enumerate(names)}
    for k, (_, ps) in enumerate(panels):
        r, c = k // cols + 1, k % cols + 1
        for p in ps:
            size = [6] * (len(p.xy) - 1) + [12]
            fig.add_trace(go.Scatter(
                x=p.xy[:, 0], y=p.xy[:, 1], mode="lines+markers", name=p.name,
                legendgroup=p.name, showlegend=k == 0, text=list(p.text) or None,
                line=dict(color=colour[p.name]),
                marker=dict(size=size, color=colour[p.name],
                            symbol=["circle"] * (len(p.xy) - 1)
                            + ["triangle-up" if arrows else "circle"])), row=r, col=c)
    fig.update_layout(title=title, height=320 * rows + 80, template="plotly_white")
    if note:
        fig.add_annotation(text=plots.layers.wrap_notes([note]), xref="paper", yref="paper",
                           x=0, y=-0.12, showarrow=False, align="left", font=dict(size=11))
    return fig


def paths_png(panels: Sequence[tuple[str, Sequence[Path2D]]], path: str | Path, *, title: str,
              arrows: bool = False, note: str = "") -> Path:
    cols = min(3, max(1, len(panels)))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows + 0.6))
    names = sorted({p.name for _, ps in panels for p in ps})
    for k, (sub, ps) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        for p in ps:
            col = plots.curves.viridis(names.index(p.name), len(names))
            rgb = tuple(int(v) / 255 for v in col[4:-1].split(","))
            ax.plot(p.xy[:, 0], p.xy[:, 1], "-o", color=rgb, ms=3, label=p.name)
            if arrows and len(p.xy) >= 2:
                ax.annotate("", p.xy[-1], p.xy[-2], arrowprops=dict(arrowstyle="->", color=rgb))
        ax.set_title(sub, fontsize=9)
        if k == 0 and len(names) <= 15:
            ax.legend(fontsize=7)
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    return plots.layers.save_png(fig, path)
