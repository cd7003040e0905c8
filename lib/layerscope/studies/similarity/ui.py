"""Widget explorer for notebook 02 (layer similarity). Widgets never compute: the render
function calls the same ``run_similarity`` as the static notebook path, on a button press
(a new task, model or seed may fine-tune a model first; everything is cached by content)."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets

from ...activations import POOLINGS, poolings_for
from ...measures import cka
from ...tasks import get_task
from ...ui import View, common_controls, explorer
from ..base import verdict_summary
from . import run as sim
from .comparisons import COMPARISONS


def similarity_controls(default: sim.SimilarityConfig) -> dict[str, widgets.ValueWidget]:
    """Task, model, seed, comparison, measure, kernel and pooling, starting at ``default``."""
    options = [("all four (Phang et al. Fig. 1)", "all")] + [
        (c.title, c.name) for c in COMPARISONS.values()
        if c.phang_panel or (c.name == "cross" and default.cross_model)]
    return {
        **common_controls(default.task, default.model, default.seeds[0]),
        "comparison": widgets.Dropdown(options=options, value="all", description="compare"),
        "measure": widgets.Dropdown(options=sim.MEASURES, value=default.measure,
                                    description="measure"),
        "kernel": widgets.Dropdown(options=cka.KERNELS, value=default.kernel,
                                   description="kernel"),
        "pooling": widgets.Dropdown(options=POOLINGS, value=default.pooling,
                                    description="pooling"),
    }


def config_for(default: sim.SimilarityConfig, *, task: str, model: str, seed: int,
               measure: str, kernel: str, pooling: str) -> sim.SimilarityConfig:
    """``default`` with the widget values; FT[2] is seed + 1 when the default has two seeds;
    a pooling the chosen task's kind does not take (``activations.poolings_for``: "context"
    on a sentence task, "word" on QA) becomes that kind's default ("auto")."""
    seeds = (seed, seed + 1) if len(default.seeds) > 1 else (seed,)
    if pooling not in poolings_for(get_task(task).kind):
        pooling = "auto"
    return dataclasses.replace(default, task=task, model=model, seeds=seeds, measure=measure,
                               kernel=kernel, pooling=pooling)


def similarity_explorer(default: sim.SimilarityConfig) -> widgets.Widget:
    """Controls + a Run button; shows the chosen comparison and the findings for that run."""
    def render(task, model, seed, comparison, measure, kernel, pooling):
        cfg = config_for(default, task=task, model=model, seed=seed, measure=measure,
                         kernel=kernel, pooling=pooling)
        result = sim.run_similarity(cfg, verbose=False)
        return View(result.figure(None if comparison == "all" else comparison),
                    verdict_summary(result.findings()), result.verdict())

    return explorer(render, similarity_controls(default), button="Run / load")
