"""Figures of study 06: per-layer curves of every task side by side, each with a matplotlib
PNG twin. Never ``.show()``.

The main figure has two panels: (left) linear CKA of each task's FT with ORIG, the same layer,
with its threshold drawn dashed in the same colour (1 - threshold: the seeds' CKA(FT[1],
FT[2]), minus ``margin``) and the band of the seeds' CKA over sentence resamples; a star marks
each reconfigured layer (the whole interval of its excess above 0). (right) the structural
probe's UUAS per layer, ORIG in black and each task's FT, with the linear baseline.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from ... import plots
from ...errors import ConfigError
from ...measures.intervals import percentile_interval
from . import findings as fnd
from .syntax import corpus_uuas

COMPARISONS = {
    "cka": "FT–ORIG linear CKA and the seeds' threshold",
    "excess": "change beyond the threshold (reconfigured: interval above 0)",
    "rsa": "FT–ORIG RSA (solid) and FT[1]–FT[2] RSA (dashed)",
    "uuas": "structural probe UUAS (ORIG vs FT)",
    "dspr": "structural probe distance Spearman (ORIG vs FT)",
}
ORIG_COLOUR = "rgb(0,0,0)"


def _colour(result, task: str) -> str:
    names = list(result.config.tasks)
    return plots.curves.viridis(names.index(task), len(names) + 1)


def _band(reps: np.ndarray, conf: float, centre: np.ndarray) -> tuple[list, list]:
    b = [percentile_interval(reps[:, i], conf, recentre_on=float(centre[i]))
         for i in range(reps.shape[1])]
    return [x[0] for x in b], [x[1] for x in b]


def lines(result, comparison: str, tasks: list[str]) -> tuple[list[plots.Line], dict, list]:
    """(lines, axis titles and reference lines, [(task, layers)] of stars) of one panel."""
    c, x = result.config, plots.layer_labels(result.n_layers)
    out, stars = [], []
    if comparison == "cka":
        for t in tasks:
            cur, col = result.curves[t], _colour(result, t)
            out.append(plots.Line(f"{t}: CKA(FT, ORIG)", x, cur.ft_orig.mean(0).tolist(),
                                  colour=col))
            table = fnd.layer_table(result, t)
            if c.threshold == "seeds":
                thr = cur.ft_ft - c.margin
                lo, hi = _band(cur.ft_ft_boot - c.margin, c.confidence, thr)
                out.append(plots.Line(f"{t}: threshold, CKA(FT[1], FT[2]) - margin", x,
                                      thr.tolist(), lo, hi, colour=col, dash="dash"))
            stars.append((t, table["layers"]))
        kw = dict(y_title="linear CKA, same layer", hlines=(
            [(1 - c.margin, f"threshold 1 - {c.margin:g}")] if c.threshold == "fixed" else []))
    elif comparison == "excess":
        for t in tasks:
            table = fnd.layer_table(result, t)
            out.append(plots.Line(t, x, table["excess"].tolist(), table["low"].tolist(),
                                  table["high"].tolist(), colour=_colour(result, t)))
            stars.append((t, table["layers"]))
        kw = dict(y_title="change beyond the threshold", hlines=[(0.0, "threshold")])
    elif comparison == "rsa":
        for t in tasks:
            cur, col = result.curves[t], _colour(result, t)
            out.append(plots.Line(f"{t}: RSA(FT, ORIG)", x, cur.rsa_ft_orig.mean(0).tolist(),
                                  colour=col))
            if cur.rsa_ft_ft is not None:
                out.append(plots.Line(f"{t}: RSA(FT[1], FT[2])", x, cur.rsa_ft_ft.tolist(),
                                      colour=col, dash="dash"))
        kw = dict(y_title=f"RSA ({c.rsa_dissimilarity}), same layer", hlines=[])
    elif comparison in ("uuas", "dspr"):
        if result.orig_syntax is None:
            raise ConfigError("no structural probe in this result: run with "
                              "structural_probe=True")
        o = result.orig_syntax
        counts = np.asarray(result.counts, dtype=np.float64)

        def line(name, s, col, dash=None):
            if comparison == "dspr":
                return plots.Line(name, x, s.dspr.tolist(), colour=col, dash=dash)
            lo, hi = _band(corpus_uuas(s.correct, s.total, counts), c.confidence, s.uuas)
            return plots.Line(name, x, s.uuas.tolist(), lo, hi, colour=col, dash=dash)

        out.append(line("ORIG", o, ORIG_COLOUR, "dot"))
        out += [line(f"FT {t}", result.curves[t].syntax, _colour(result, t)) for t in tasks]
        ones = np.ones((1, counts.shape[1]))
        base = float(corpus_uuas(result.baseline_correct, o.total, ones)[0])
        kw = dict(y_title="UUAS" if comparison == "uuas" else "distance Spearman",
                  hlines=[(base, f"linear baseline {base:.3f}")] if comparison == "uuas"
                  else [])
    else:
        raise ConfigError(f"unknown comparison {comparison!r}; use one of {list(COMPARISONS)}")
    return out, kw, stars


def _tasks(result, task: str | None) -> list[str]:
    if task is None or task == "all":
        return list(result.config.tasks)
    if task not in result.curves:
        raise ConfigError(f"task {task!r} is not in this result; its tasks: "
                          f"{list(result.curves)}")
    return [task]


def _panels(result, comparison, task) -> list[tuple[str, str]]:
    if comparison is not None:
        return [(comparison, COMPARISONS.get(comparison, comparison))]
    out = [("cka", COMPARISONS["cka"])]
    if result.orig_syntax is not None:
        out.append(("uuas", COMPARISONS["uuas"]))
    return out


def figure(result, comparison: str | None = None, task: str | None = None) -> go.Figure:
    names = _tasks(result, task)
    panels = _panels(result, comparison, task)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[1] for p in panels])
    for k, (comp, _) in enumerate(panels):
        ls, kw, stars = lines(result, comp, names)
        sub = plots.lines_figure(ls, title="", x_title="layer", y_title=kw["y_title"])
        for tr in sub.data:
            tr.legendgroup = tr.name
            fig.add_trace(tr, row=1, col=k + 1)
        for t, layers in stars:
            y = (result.curves[t].ft_orig.mean(0) if comp == "cka"
                 else fnd.layer_table(result, t)["excess"])
            x = plots.layer_labels(result.n_layers)
            fig.add_trace(go.Scatter(x=[x[i] for i in layers], y=[float(y[i]) for i in layers],
                                     mode="markers", name=f"{t}: reconfigured",
                                     marker=dict(symbol="star", size=12,
                                                 color=_colour(result, t))), row=1, col=k + 1)
        for y, text in kw["hlines"]:
            fig.add_hline(y=y, line_dash="dot", annotation_text=text, row=1, col=k + 1)
        fig.update_xaxes(title_text="layer", row=1, col=k + 1)
        fig.update_yaxes(title_text=kw["y_title"], row=1, col=k + 1)
    fig.update_layout(title=result.title(), template="plotly_white", height=480,
                      legend=dict(orientation="h", y=-0.25))
    fig.add_annotation(text=plots.layers.wrap_notes(result.notes()), xref="paper",
                       yref="paper", x=0, y=-0.45, showarrow=False, align="left",
                       font=dict(size=11))
    return fig


def _rgb(c: str | None):
    return tuple(int(v) / 255 for v in c[4:-1].split(",")) if c and c.startswith("rgb(") else c


def png(result, path: str | Path, comparison: str | None = None,
        task: str | None = None) -> Path:
    """The PNG twin of ``figure``."""
    names = _tasks(result, task)
    panels = _panels(result, comparison, task)
    fig = Figure(figsize=(6.2 * len(panels), 4.8), layout="constrained")
    dashes = {None: "-", "dot": ":", "dash": "--"}
    x = np.arange(result.n_layers + 1)
    labels = plots.layer_labels(result.n_layers)
    for k, (comp, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ls, kw, stars = lines(result, comp, names)
        for ln in ls:
            ax.plot(x, ln.y, marker="o", ms=3, label=ln.name, color=_rgb(ln.colour),
                    ls=dashes.get(ln.dash, "-"))
            if ln.low is not None and ln.high is not None:
                ax.fill_between(x, ln.low, ln.high, alpha=0.15, color=_rgb(ln.colour))
        for t, layers in stars:
            y = (result.curves[t].ft_orig.mean(0) if comp == "cka"
                 else fnd.layer_table(result, t)["excess"])
            if layers:
                ax.plot(layers, [y[i] for i in layers], "*", ms=11, color=_rgb(_colour(result, t)))
        for y, text in kw["hlines"]:
            ax.axhline(y, ls=":", color="#555", lw=1)
            ax.annotate(text, (1, y), xycoords=("axes fraction", "data"), ha="right",
                        va="bottom", fontsize=7, color="#555")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlabel("layer")
        ax.set_ylabel(kw["y_title"])
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, ncol=1)
    notes = textwrap.fill(" ".join(result.notes()), width=90 * len(panels))
    fig.suptitle(result.title() + "\n" + notes, fontsize=8)
    return plots.layers.save_png(fig, path)
