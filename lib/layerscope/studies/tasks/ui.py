"""Widget explorer for notebook 06 (tasks side by side). Widgets never compute: the render
function calls the same ``run_tasks`` as the static notebook path, on a button press (a new
model fine-tunes every task first; fine-tuning and states are cached by content, and a run
already made in this explorer is kept, so switching the task or the comparison only redraws)."""

from __future__ import annotations

import ipywidgets as widgets

from ...ui import View, explorer, model_control
from ..base import verdict_lines, verdict_summary
from .config import TasksConfig
from .plots import COMPARISONS
from .run import run_tasks


def tasks_controls(default: TasksConfig) -> dict[str, widgets.ValueWidget]:
    """Model, task (all, or one of the config's) and comparison (``plots.COMPARISONS``)."""
    comps = [(title, name) for name, title in COMPARISONS.items()
             if default.structural_probe or name not in ("uuas", "dspr")]
    return {"model": model_control(default.model),
            "task": widgets.Dropdown(options=[("all tasks", "all"),
                                              *((t, t) for t in default.tasks)],
                                     value="all", description="task"),
            "comparison": widgets.Dropdown(options=[("CKA + UUAS (both panels)", "main"),
                                                    *comps], value="main",
                                           description="compare")}


def task_findings(findings: dict, task: str) -> dict:
    """The findings about ``task`` (all of them for "all"): its own claims and the cross-task
    claims that compare it."""
    if task == "all":
        return findings
    return {cid: f for cid, f in findings.items()
            if cid.endswith(f".{task}") or task in str(f["numbers"].get("parsing_task", ""))
            or task in f["numbers"].get("against", ())}


def tasks_explorer(default: TasksConfig) -> widgets.Widget:
    """Controls + a Run button; shows the verdicts, the chosen comparison for all tasks or one,
    then the findings with their intervals."""
    done: dict[str, object] = {}

    def render(model, task, comparison):
        if model not in done:
            done[model] = run_tasks(default.replace(model=model), verbose=False)
        result = done[model]
        found = task_findings(result.findings(), task)
        fig = result.figure(None if comparison == "main" else comparison,
                            None if task == "all" else task)
        return View(fig, verdict_summary(found), verdict_lines(result.title(), found))

    return explorer(render, tasks_controls(default), button="Run / load")
