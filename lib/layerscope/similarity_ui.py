"""Widget explorer for notebook 02 (layer similarity). Widgets never compute: the render
function calls the same ``run_similarity`` as the static notebook path, on a button press
(a new task, model or seed may fine-tune a model first; everything is cached by content)."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets

from . import cka, models, tasks
from .activations import POOLINGS
from .studies import similarity as sim
from .ui import explorer

_COMPARISONS = [("all four (Phang et al. Fig. 1)", "all"), ("ORIG–ORIG", "orig_orig"),
                ("FT–ORIG", "ft_orig"), ("FT–FT", "ft_ft"), ("FT[1]–FT[2]", "ft1_ft2")]


def similarity_controls(default: sim.SimilarityConfig) -> dict[str, widgets.ValueWidget]:
    """Task, model, seed, comparison, metric, kernel and pooling, starting at ``default``."""
    comparisons = _COMPARISONS + ([("cross-model", "cross")] if default.cross_model else [])
    return {
        "task": widgets.Dropdown(options=tasks.TASK_NAMES, value=default.task, description="task"),
        "model": widgets.Combobox(options=models.MODEL_NAMES, value=default.model,
                                  description="model", ensure_option=False),
        "seed": widgets.BoundedIntText(value=default.seeds[0], min=0, max=10_000,
                                       description="seed"),
        "comparison": widgets.Dropdown(options=comparisons, value="all", description="compare"),
        "metric": widgets.Dropdown(options=sim.METRICS, value=default.metric, description="metric"),
        "kernel": widgets.Dropdown(options=cka.KERNELS, value=default.kernel,
                                   description="kernel"),
        "pooling": widgets.Dropdown(options=POOLINGS, value=default.pooling,
                                    description="pooling"),
    }


def config_for(default: sim.SimilarityConfig, *, task: str, model: str, seed: int,
               metric: str, kernel: str, pooling: str) -> sim.SimilarityConfig:
    """``default`` with the widget values; FT[2] is seed + 1 when the default has two seeds."""
    seeds = (seed, seed + 1) if len(default.seeds) > 1 else (seed,)
    return dataclasses.replace(default, task=task, model=model, seeds=seeds, metric=metric,
                               kernel=kernel, pooling=pooling)


def similarity_explorer(default: sim.SimilarityConfig) -> widgets.Widget:
    """Controls + a Run button; shows the chosen comparison and the findings for that run."""
    def render(task, model, seed, comparison, metric, kernel, pooling):
        cfg = config_for(default, task=task, model=model, seed=seed, metric=metric,
                         kernel=kernel, pooling=pooling)
        result = sim.run_similarity(cfg, verbose=False)
        print(result.verdict())
        return result.figure(None if comparison == "all" else comparison)

    return explorer(render, similarity_controls(default), button="Run / load")
