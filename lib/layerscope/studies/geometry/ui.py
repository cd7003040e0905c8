"""Widget explorer for notebook 05 (geometry). Widgets never compute: the render function calls
the same ``run_geometry`` as the static path, on a button press (a new task or model may
fine-tune first; everything is cached by content, so switching the layer or checkpoint of a
computed run only reloads it)."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets

from ...tasks import TOKEN_KINDS, get_task
from ...ui import View, common_controls, explorer, layer_control
from ..base import verdict_summary
from .config import LABEL_FREE_KINDS, OUT_OF_DOMAIN_SETS, GeometryConfig
from .run import run_geometry

VIEWS = (("label distances over steps (Fig. 2)", "distances"),
         ("centroid paths (Fig. 3)", "paths"),
         ("similarity to the untuned layer (Fig. 4)", "similarity"),
         ("centroid displacement (Fig. 5)", "displacement"))


def geometry_controls(default: GeometryConfig, n_layers: int,
                      steps: tuple[int, ...]) -> dict[str, widgets.ValueWidget]:
    """Task, model, seed, layer, checkpoint (the step whose clusters are printed) and view."""
    return {**common_controls(default.task, default.model, default.seeds[0]),
            "layer": layer_control(n_layers, n_layers),
            "checkpoint": widgets.Dropdown(options=["orig", *[f"step-{s}" for s in steps], "ft"],
                                           value="ft", description="checkpoint"),
            "view": widgets.Dropdown(options=VIEWS, value="distances", description="view")}


def config_for(default: GeometryConfig, *, task: str, model: str, seed: int) -> GeometryConfig:
    """``default`` with the widget values (tagging and parsing tasks read per word, token_pair
    tasks per pair, QA tasks by the context mean, sentence tasks by CLS); cross-task and
    out-of-domain sets that the new task rules out are dropped (a QA task keeps or gets
    Merchant et al.'s out-of-domain sets: it has no labels of its own)."""
    kind = get_task(task).kind
    token = {"tagging": "word", "token_pair": "pair", "dependency_parsing": "word",
             "extractive_qa": "context"}.get(kind)
    pooling = token or (default.pooling if default.pooling in ("cls", "mean") else "cls")
    seeds = (seed, *[s for s in default.seeds[1:] if s != seed])
    ood = () if kind in TOKEN_KINDS else tuple(t for t in default.out_of_domain if t != task)
    if kind in LABEL_FREE_KINDS and not ood and not default.cross_task:
        ood = tuple(t for t in OUT_OF_DOMAIN_SETS if t != task)
    steps = None if kind in LABEL_FREE_KINDS else default.checkpoint_steps  # no trace there
    return dataclasses.replace(default, task=task, model=model, seeds=seeds, pooling=pooling,
                               cross_task=tuple(t for t in default.cross_task if t != task),
                               out_of_domain=ood, checkpoint_steps=steps)


def geometry_explorer(default: GeometryConfig, *, n_layers: int = 6,
                      steps: tuple[int, ...] = ()) -> widgets.Widget:
    """Controls + a Run button; shows the verdicts, the chosen view at the chosen layer, then
    the chosen checkpoint's cluster count and distances and the findings."""
    def render(task, model, seed, layer, checkpoint, view):
        result = run_geometry(config_for(default, task=task, model=model, seed=seed),
                              verbose=False)
        if result.no_labels:  # no in-domain geometry: the main figure and the findings
            return View(result.figure(), verdict_summary(result.findings()),
                        result.no_labels + "\n\n" + result.verdict())
        layer = min(layer, result.n_layers)
        state = checkpoint if checkpoint in result.states else "ft"
        g = result.geometry[state][result.column(layer)]
        dist = dict(zip(result.label_names, g.min_distances.round(3).tolist(), strict=True))
        clusters = (f"{state}, layer {layer}: {g.n_clusters} clusters for {g.n_labels} labels; "
                    f"min distances {dist}" + (f" ({g.why})" if g.why else ""))
        if view == "paths":
            figure = result.paths_figure((layer,))
        elif view == "similarity":
            figure = result.similarity_figure()
        elif view == "displacement":
            figure = result.displacement_figure()
        else:
            figure = result.figure(layer)
        return View(figure, verdict_summary(result.findings()),
                    clusters + "\n\n" + result.verdict())

    return explorer(render, geometry_controls(default, n_layers, steps), button="Run / load")
