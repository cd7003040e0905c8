"""The gallery: one static HTML page per sweep (``<sweep>/gallery.html``) and an index of the
sweeps beside them (``index.html``).

A sweep's page holds: the findings summarised across the grid ("similarity · block_structure:
SUPPORTED in 5 of 6 runs"), Phang et al. (2021) Fig. 2-style grids of FT–FT heatmaps (models x
tasks) built with ``studies.similarity.grid_figure`` from the runs' ``similarity.json``, the
results table (sortable, filterable), and a card per run with its parameters, status or error,
verdicts and every figure it saved (``<study>.html`` and extras, re-drawn from their plotly JSON;
an iframe of the file where that JSON cannot be read). Results are read by their study's class
(``studies.results``) and checked (``check()``) before anything is drawn from them: a run whose
result file is damaged (cut short, a key missing) or inconsistent is shown as ``damaged`` with
the reasons, and kept out of the summary and the grids. It opens from disk with no server and
no network: plotly.js is the sweep folder's one local copy (``plots.html``), which the runs'
own figure files share. The page is rendered from Jinja2 templates with autoescaping
(``gallery_page``), so a name with ``<`` or ``&`` is shown as text.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import plotly.io as pio

from .. import paths
from ..cache import atomic_write_text
from ..errors import ConfigError
from ..plots.html import write_plotlyjs
from ..studies import results
from ..studies.base import VERDICTS
from ..studies.similarity import SimilarityResult, grid_figure
from . import gallery_page as ui
from . import runner, table

NEWPLOT = "Plotly.newPlot("
DAMAGED = "damaged"  # a run's status on the page when a result it saved fails to read or check


def figure_json(path: Path) -> str | None:
    """``{"data": ..., "layout": ...}`` of the first figure in a plotly HTML file, or None.

    Reads the arguments of ``Plotly.newPlot(id, data, layout, config)`` as written by plotly's
    ``to_html``: JSON values, decoded one after another.
    """
    text = path.read_text(errors="replace")
    at = text.find(NEWPLOT)
    if at < 0:
        return None
    dec, pos, args = json.JSONDecoder(), at + len(NEWPLOT), []
    try:
        for _ in range(3):
            while text[pos] in " \t\r\n,":
                pos += 1
            start = pos
            _, pos = dec.raw_decode(text, pos)
            args.append(text[start:pos])
    except (ValueError, IndexError):
        return None
    return f'{{"data":{args[1]},"layout":{args[2]}}}'



def figure_files(run: runner.Run, studies: list[results.SavedFile]) -> list[Path]:
    """HTML figures of the run: each study's main figure first, then the others by name."""
    if not run.run_dir.is_dir():
        return []
    files = sorted(run.run_dir.glob("*.html"))
    main = [run.run_dir / f"{s.study}.html" for s in studies]
    return [p for p in main if p in files] + [p for p in files if p not in main]


def findings_summary(rows: list[dict], claims: dict[tuple[str, str], str]) -> list[str]:
    """Lines "<study> · <claim>: SUPPORTED in 5 of 6 runs (INCONCLUSIVE 1) — <claim text>"."""
    counts: dict[tuple[str, str], Counter] = {}
    for r in rows:
        if r["status"] != runner.OK:
            continue
        for k, v in r.items():
            if k.startswith(table.VERDICT_PREFIX) and v:
                key = (str(r.get("study") or r["notebook"]), k[len(table.VERDICT_PREFIX):])
                counts.setdefault(key, Counter())[v] += 1
    lines = []
    for (study, claim), c in counts.items():
        n = sum(c.values())
        order = [v for v in VERDICTS if c[v]] + [v for v in c if v not in VERDICTS]
        first, rest = order[0], order[1:]
        text = f"{study} · {claim}: {first} in {c[first]} of {n} run{'s' * (n != 1)}"
        if rest:
            text += " (" + ", ".join(f"{v} {c[v]}" for v in rest) + ")"
        if claims.get((study, claim)):
            text += f" — {claims[(study, claim)]}"
        lines.append(text)
    return lines


def similarity_grids(found: list, comparison: str = "ft_ft") -> list[tuple[str, str]]:
    """(heading, figure JSON) per group of similarity results (``SimilarityResult``, as read
    from the runs) that differ only in model and task."""
    groups: dict[str, list] = {}
    for r in found:
        if not isinstance(r, SimilarityResult) or comparison not in r.matrices:
            continue
        cfg = json.loads(json.dumps(dataclasses.asdict(r.config), default=str))
        rest = {k: v for k, v in cfg.items() if k not in ("model", "task")}
        groups.setdefault(json.dumps(rest, sort_keys=True), []).append((rest, r))
    if not groups:
        return []
    varying = sorted({k for g in groups.values() for k, v in g[0][0].items()
                      if any(h[0][0].get(k) != v for h in groups.values())})
    out = []
    for members in groups.values():
        rest = members[0][0]
        heading = ", ".join(f"{k}={rest.get(k)}" for k in varying) or "all runs"
        fig = grid_figure([m[1] for m in members], comparison)
        out.append((heading, pio.to_json(fig)))
    return out


def run_card(run: runner.Run, row: dict, studies: list[results.SavedFile],
             figures: list[dict], anchor: str) -> dict:
    """The template context of one run's card (``gallery.html.j2``): the verdicts of the
    results that passed their checks (a damaged one's reasons are the row's error)."""
    links = [(ui.href(run.notebook, f"{run.key}.ipynb"), "executed notebook")
             if run.output.exists() else None,
             (ui.href(run.notebook, f"{run.key}.log"), "log") if run.log.exists() else None]
    return {"anchor": anchor, "notebook": run.notebook, "key": run.key,
            "status": row["status"], "params": ui.param_items(run.params),
            "links": [x for x in links if x], "duration": row.get("duration_s"),
            "error": row.get("error"), "note": row.get("note"),
            "verdicts": [s.result.verdict() for s in studies if s.ok],
            "figures": figures}


def write_gallery(sweep_dir: str | Path) -> Path:
    """Write ``<sweep_dir>/gallery.html`` from the sweep's plan, markers and run folders.

    Runs are identified by notebook and key together (two notebooks run with the same
    parameters share a key): each table row links to its own run's card.
    """
    sweep_dir = Path(sweep_dir)
    plan = table.load_plan(sweep_dir)
    runs = table.plan_runs(sweep_dir)
    rows = [table.row_of(r, runner.read_outcome(r)) for r in runs]
    saved = [runner.saved_results(r.run_dir) if row["status"] == runner.OK else []
             for r, row in zip(runs, rows, strict=True)]
    for i, studies in enumerate(saved):
        damage = [s.damage() for s in studies if not s.ok]
        if damage:  # shown with its reasons, and left out of the summary and the grids
            rows[i] = {**rows[i], "status": DAMAGED,
                       "error": "damaged result: " + "\n".join(damage)}
    columns = list(table.frame(rows).columns)
    anchors = ui.run_anchors(runs)
    cards, all_results, claims, n_fig = [], [], {}, 0
    for run, row, studies in zip(runs, rows, saved, strict=True):
        good = [s.result for s in studies if s.ok]
        all_results += good
        for r in good:
            for cid, f in r.findings().items():
                claims.setdefault((r.study, cid), f.get("claim", ""))
        figs = []
        for p in figure_files(run, studies):
            spec = figure_json(p)
            caption = f"{run.notebook}/{run.key}/{p.name}"
            if spec is None:
                figs.append(ui.iframe_figure(ui.href(*p.relative_to(sweep_dir).parts), caption))
            else:
                figs.append(ui.plot_figure(f"fig-{n_fig}", spec, caption))
                n_fig += 1
        cards.append(run_card(run, row, studies, figs, anchors[(run.notebook, run.key)]))
    grids = []
    for heading, spec in similarity_grids(all_results):
        grids.append(ui.plot_figure(f"fig-{n_fig}", spec, f"FT–FT per model and task: "
                                                          f"{heading}"))
        n_fig += 1
    counts = Counter(r["status"] for r in rows)
    src = None
    if n_fig:  # one local copy of plotly.js per sweep folder, shared with the run figures
        src = ui.href(write_plotlyjs(sweep_dir).name)
    page = ui.render("gallery.html.j2", title=f"layerscope sweep {plan['name']}",
                     plotlyjs_src=src, name=plan["name"],
                     description=plan.get("description", ""), counts=sorted(counts.items()),
                     grid=plan.get("grid"), written=time.strftime("%Y-%m-%d %H:%M"),
                     summary=findings_summary(rows, claims), grids=grids, columns=columns,
                     rows=ui.table_rows(rows, columns, anchors), cards=cards)
    path = sweep_dir / "gallery.html"
    refuse_foreign(path)
    atomic_write_text(path, page)
    return path


GENERATOR = '<meta name="generator" content="layerscope">'  # page.html.j2 writes it
# what pages written before GENERATOR existed start their title with
OLD_TITLES = ("<title>layerscope sweep",)


def written_by_layerscope(path: Path) -> bool:
    """True when the page at ``path`` is one layerscope wrote (so it may be replaced)."""
    try:
        head = path.read_text(errors="replace")[:4000]
    except OSError:
        return False
    return GENERATOR in head or any(t in head for t in OLD_TITLES)


def refuse_foreign(path: Path) -> None:
    """A ``ConfigError`` when ``path`` exists and layerscope did not write it: a user's own
    ``index.html`` or ``gallery.html`` is never replaced."""
    if path.exists() and not written_by_layerscope(path):
        raise ConfigError(f"{path} exists and was not written by layerscope: not replacing "
                          "it; move it away, or give the sweep another folder (--out)")


def index_folder(sweep_dir: str | Path) -> Path:
    """Where the index of ``sweep_dir`` goes: the home's runs folder for a sweep in it (one
    index of every sweep there), else the sweep folder itself (never a folder above an
    ``--out`` the user chose: nothing is written outside it)."""
    sweep_dir = Path(sweep_dir).resolve()
    runs = paths.runs_dir().resolve()
    return runs if sweep_dir.parent == runs else sweep_dir


def write_index(root: str | Path) -> Path:
    """``<root>/index.html``: every sweep folder in ``root`` (``root`` itself when it is one)
    with its counts and gallery."""
    root = Path(root)
    sweeps = []
    found = [root] if (root / table.PLAN).exists() else []
    for d in found + sorted(p for p in root.iterdir() if (p / table.PLAN).exists()):
        try:
            rows = table.collect(d)
            plan = table.load_plan(d)
        except (OSError, ValueError, TypeError):
            continue
        sweeps.append({"name": plan["name"], "description": plan.get("description", ""),
                       "href": (ui.href("gallery.html") if d == root else
                                ui.href(d.name, "gallery.html"))
                       if (d / "gallery.html").exists() else None, "n": len(rows),
                       "counts": sorted(Counter(r["status"] for r in rows).items())})
    path = root / "index.html"
    refuse_foreign(path)
    atomic_write_text(path, ui.render("index.html.j2", title="layerscope sweeps", root=str(root),
                                      sweeps=sweeps))
    return path
