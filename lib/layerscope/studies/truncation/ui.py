"""Widget explorer for notebook 03 (truncation). Widgets never compute: the render function
calls the same ``run_truncation`` as the static notebook path on a button press (a new task,
model or seed may fine-tune first) and shows one layer in detail: the confusion matrix of each
line (classification) or its score distribution (regression). Results are kept per config, so
moving the layer slider does not recompute the study."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets

from ...ui import View, common_controls, explorer, layer_control
from ..base import verdict_summary
from . import run as trun


def config_for(default: trun.TruncationConfig, *, task: str, model: str,
               seed: int) -> trun.TruncationConfig:
    """``default`` with the widget values (one fine-tuning seed)."""
    return dataclasses.replace(default, task=task, model=model, seeds=(seed,))


def truncation_explorer(default: trun.TruncationConfig, n_layers: int,
                        result=None) -> widgets.Widget:
    """Task, model, seed and layer controls + a Run button. ``n_layers``: the slider's top
    (the default model's L); ``result``: an already computed result for ``default``."""
    done = {}
    if result is not None and len(default.seeds) == 1:
        done[default] = result

    def render(task, model, seed, layer):
        cfg = config_for(default, task=task, model=model, seed=seed)
        if cfg not in done:
            done.clear()  # keep one: results hold every layer's logits
            done[cfg] = trun.run_truncation(cfg, verbose=False)
        res = done[cfg]
        return View(res.layer_figure(layer), verdict_summary(res.findings()), res.verdict())

    controls = {**common_controls(default.task, default.model, default.seeds[0]),
                "layer": layer_control(n_layers, n_layers, first=1)}
    return explorer(render, controls, button="Run / load")
