"""Widget explorers for JupyterLab: the shared explorer and the task/model/seed/layer controls.

Widgets never compute: each run calls a ``render(**values) -> go.Figure`` function that uses
the same ``run_*`` / ``load_or_train`` calls as the static notebook path, so the interactive
and batch paths cannot diverge. Anything that may train runs on a button press. Study-specific
explorers (``studies/<name>/ui.py``) build on ``explorer`` and ``common_controls``.
"""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
from IPython.display import HTML, display

from . import finetune, models, plots, progress, tasks
from .errors import LayerscopeError
from .quiet import quiet_libraries

_WRAP = widgets.Layout(display="flex", flex_flow="row wrap", align_items="center")


def task_control(value: str) -> widgets.Dropdown:
    """The registry's tasks, and ``value`` itself when it is not one of them (the user's own
    data: a file, a task card), so a notebook on a user task opens its explorer on it."""
    options = tasks.TASK_NAMES if value in tasks.TASK_NAMES else (value, *tasks.TASK_NAMES)
    return widgets.Dropdown(options=options, value=value, description="task")


def model_control(value: str) -> widgets.Combobox:
    """Registry names offered; any hub id or local folder can be typed."""
    return widgets.Combobox(options=models.MODEL_NAMES, value=value, description="model",
                            ensure_option=False)


def seed_control(value: int) -> widgets.BoundedIntText:
    return widgets.BoundedIntText(value=value, min=0, max=10_000, description="seed")


def layer_control(value: int, n_layers: int, *, first: int = 0,
                  description: str = "layer") -> widgets.IntSlider:
    """Layers first..n_layers (0 = embedding output, i = output of block i)."""
    return widgets.IntSlider(value=value, min=first, max=n_layers, description=description,
                             continuous_update=False)


def common_controls(task: str, model: str, seed: int) -> dict[str, widgets.ValueWidget]:
    """The task, model and seed controls every study explorer starts with."""
    return {"task": task_control(task), "model": model_control(model), "seed": seed_control(seed)}


@dataclass(frozen=True)
class View:
    """What one run shows, top down: a one-line verdict, the figure, then the details (e.g.
    every finding with its interval), so that the answer sits right under the controls."""

    figure: go.Figure
    verdict: str = ""
    details: str = ""


def explorer(render: Callable[..., go.Figure | View], controls: Mapping[str, widgets.ValueWidget],
             *, button: str | None = "Run") -> widgets.Widget:
    """Controls (wrapped over several rows when narrow) + a status line + an output area.

    ``render(**{name: control.value})`` returns a figure or a ``View``. With ``button`` set,
    rendering waits for a click (for work that may fine-tune a model); while it works the
    button is disabled and the status line follows it live (``progress`` reports: what runs,
    step k of N, seconds so far). The libraries' expected noise is kept out of the output
    (``quiet.quiet_libraries``); real warnings still show. Errors of ours show as one line.
    """
    out = widgets.Output()
    status = widgets.HTML(value="")
    run = widgets.Button(description=button, button_style="primary") if button else None

    def refresh(*_):
        values = {k: c.value for k, c in controls.items()}
        if run is not None:
            run.disabled = True
        t0 = last = time.time()
        status.value = f"<i>running with {html.escape(str(values))} …</i>"

        def show(line: str, k: int | None, n: int | None) -> None:
            # each value change is one message to the browser: at most ~5 a second, but
            # always a new phase (k None) and a finished count
            nonlocal last
            now = time.time()
            if k is not None and k != n and now - last < 0.2:
                return
            last = now
            status.value = f"<i>{html.escape(line)}, {now - t0:.0f} s</i>"

        out.clear_output(wait=True)
        with out:
            try:
                with progress.reporting(show), quiet_libraries():
                    view = render(**values)
                if not isinstance(view, View):
                    view = View(view)
                if view.verdict:
                    display(HTML(f"<b>{html.escape(view.verdict)}</b>"))
                view.figure.show()
                if view.details:
                    print(view.details)
                status.value = f"done in {time.time() - t0:.1f} s"
            except (LayerscopeError, ValueError, RuntimeError) as e:  # keep the widget alive
                print(f"{type(e).__name__}: {e}")
                status.value = "<b>failed</b> (message below)"
            finally:
                if run is not None:
                    run.disabled = False

    items = list(controls.values())
    if run is not None:
        run.on_click(refresh)
        items.append(run)
    else:
        for c in controls.values():
            c.observe(refresh, names="value")
    box = widgets.VBox([widgets.Box(items, layout=_WRAP), status, out])
    box.refresh = refresh  # type: ignore[attr-defined]  # lets tests and notebooks trigger it
    box.controls = dict(controls)  # type: ignore[attr-defined]
    return box


def finetune_explorer(default: finetune.FinetuneConfig) -> widgets.Widget:
    """Pick task, model and seed; train (or load from the cache) and plot the learning curve."""

    def render(task: str, model: str, seed: int) -> go.Figure:
        cfg = dataclasses.replace(default, task=task, model=model, seed=seed)
        result = finetune.load_or_train(cfg, verbose=False)  # progress: the status line
        spec = tasks.get_task(task)
        return plots.learning_curves({f"seed {seed}": result.learning_curve()},
                                     metric=spec.primary_metric,
                                     baseline=result.baseline.get(spec.primary_metric),
                                     title=finetune.summary_line(result))

    return explorer(render, common_controls(default.task, default.model, default.seed),
                    button="Train / load")
