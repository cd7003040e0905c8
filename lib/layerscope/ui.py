"""Widget explorers for JupyterLab. The only module that imports ipywidgets.

Widgets never compute: each control change calls a ``render(**values) -> go.Figure`` function
that uses the same ``run_*`` / ``load_or_train`` calls as the static notebook path, so the
interactive and batch paths cannot diverge. Anything that may train runs on a button press.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import ipywidgets as widgets
import plotly.graph_objects as go

from . import finetune, models, plots, tasks


def explorer(render: Callable[..., go.Figure], controls: Mapping[str, widgets.ValueWidget],
             *, button: str | None = "Run") -> widgets.Widget:
    """Controls + an output area; ``render(**{name: control.value})`` fills it.

    With ``button`` set, rendering waits for a click (for work that may fine-tune a model).
    """
    out = widgets.Output()

    def refresh(*_):
        values = {k: c.value for k, c in controls.items()}
        out.clear_output(wait=True)
        with out:
            try:
                render(**values).show()
            except (ValueError, RuntimeError) as e:  # show the message, keep the widget alive
                print(f"{type(e).__name__}: {e}")

    items = list(controls.values())
    if button:
        run = widgets.Button(description=button, button_style="primary")
        run.on_click(refresh)
        items.append(run)
    else:
        for c in controls.values():
            c.observe(refresh, names="value")
    box = widgets.VBox([widgets.HBox(items), out])
    box.refresh = refresh  # type: ignore[attr-defined]  # lets tests and notebooks trigger it
    return box


def finetune_explorer(default: finetune.FinetuneConfig) -> widgets.Widget:
    """Pick task, model and seed; train (or load from the cache) and plot the learning curve."""
    controls = {
        "task": widgets.Dropdown(options=tasks.TASK_NAMES, value=default.task, description="task"),
        "model": widgets.Combobox(options=models.MODEL_NAMES, value=default.model,
                                  description="model", ensure_option=False),
        "seed": widgets.BoundedIntText(value=default.seed, min=0, max=10_000, description="seed"),
    }

    def render(task: str, model: str, seed: int) -> go.Figure:
        import dataclasses

        cfg = dataclasses.replace(default, task=task, model=model, seed=seed)
        result = finetune.load_or_train(cfg)
        spec = tasks.get_task(task)
        return plots.learning_curves({f"seed {seed}": result.learning_curve()},
                                     metric=spec.primary_metric,
                                     baseline=result.baseline.get(spec.primary_metric),
                                     title=finetune.summary_line(result))

    return explorer(render, controls, button="Train / load")
