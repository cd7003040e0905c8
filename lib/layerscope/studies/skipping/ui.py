"""Widget explorer for notebook 04 (skipping). Widgets never compute: the render function
calls the same ``run_skipping`` as the static notebook path on a button press and shows one
span's predictions against the full model's. Results are kept per config, so picking another
span does not recompute the study."""

from __future__ import annotations

import dataclasses

import ipywidgets as widgets

from ...ui import View, common_controls, explorer, layer_control
from ..base import verdict_summary
from . import run as srun


def config_for(default: srun.SkippingConfig, *, task: str, model: str,
               seed: int) -> srun.SkippingConfig:
    """``default`` with the widget values (one fine-tuning seed)."""
    return dataclasses.replace(default, task=task, model=model, seeds=(seed,))


def skipping_explorer(default: srun.SkippingConfig, n_layers: int,
                      result=None) -> widgets.Widget:
    """Task, model, seed, first and last skipped block + a Run button. ``n_layers``: the
    sliders' top (the default model's L); ``result``: an already computed result for
    ``default``."""
    done = {}
    if result is not None and len(default.seeds) == 1:
        done[default] = result

    def render(task, model, seed, first, last):
        cfg = config_for(default, task=task, model=model, seed=seed)
        if cfg not in done:
            done.clear()
            done[cfg] = srun.run_skipping(cfg, verbose=False)
        res = done[cfg]
        return View(res.span_figure(first, last), verdict_summary(res.findings()),
                    res.verdict())

    controls = {**common_controls(default.task, default.model, default.seeds[0]),
                "first": layer_control(1, n_layers, first=1, description="first"),
                "last": layer_control(1, n_layers, first=1, description="last")}
    return explorer(render, controls, button="Run / load")
