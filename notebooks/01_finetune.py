# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Fine-tune an encoder
# Fine-tunes (or loads from the content-addressed cache) one model on one task with one seed,
# then shows the learning curve and the validation metric next to the majority-class baseline.
# Later notebooks get their fine-tuned checkpoints through the same `load_or_train` call.
#
# Presets: `demo` (CPU-sized), `phang2021` (Adam, batch 4, lr 1e-5, 1,000 warm-up steps, up to
# 10,000 steps — Phang et al. 2021 §3), `zhou2022` (batch 32, linear schedule, 10% warm-up —
# Zhou & Srikumar 2022 App. A), `smoke` (tiny models, tests).

# %% tags=["parameters"]
task: str = "movies"  # a task name (`layerscope tasks`), or your data: a file, a save_to_disk folder or a task card (.yaml)
model: str = "minilm-l6"  # a model name, hub id ("org/name") or local directory
preset: str = "demo"  # demo | phang2021 | zhou2022 | smoke
seed: int = 0  # fine-tuning seed (head initialisation and data order)
max_steps: int = 0  # 0: the preset's number of steps
trace: bool = False  # also save snapshots at steps 0, T/4, ..., T (drift in 02, geometry in 05)
device: str = "auto"  # where models run: auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps
out_dir: str = ""  # folder for finetune.json + figures (sweeps set it); empty: none
interactive: bool = True  # False for papermill / nbval runs: skips the widget cell

# %%
import dataclasses

import numpy as np

from layerscope import finetune, metrics, plots
from layerscope.finetune import FinetuneConfig, load_or_train, summary_line, trace_steps
from layerscope.studies.training import TrainingResult
from layerscope.tasks import get_task

cfg = FinetuneConfig(task=task, model=model, preset=preset, seed=seed,
                     max_steps=max_steps or None, device=device)
if trace:  # snapshots are extra files of the same run: a cached model gets them by exact replay
    cfg = dataclasses.replace(cfg, save_steps=trace_steps(cfg))
spec = get_task(task)
result = load_or_train(cfg)  # trains only when this exact configuration is not cached
print(summary_line(result))

# %% [markdown]
# ## Checks that hold for any model and task
# The run logged its training loss; the cached predictions on the validation split reproduce
# the metrics recorded at training time exactly; every metric is a number (no silent NaN).

# %%
curve = result.learning_curve()
assert curve["train_loss"] and np.isfinite(curve["train_loss"]).all(), "no or non-finite loss"
pred = finetune.predictions(result)
# QA and parsing predictions score themselves (EM/F1 over spans; UAS/LAS over trees)
again = pred.metrics if hasattr(pred, "metrics") else metrics.compute(spec, pred.predictions,
                                                                       pred.labels)
for name, value in result.metrics.items():
    assert np.isfinite(value), f"{name} is {value}"
    assert abs(again[name] - value) < 1e-6, (name, again[name], value)

# %% [markdown]
# ## Learning curve
# Training loss (left axis) and the validation metric (right axis) over optimisation steps.

# %%
metric = spec.primary_metric
baseline = result.baseline.get(metric)
plots.learning_curves({f"seed {seed}": curve}, metric=metric, baseline=baseline,
                      title=f"{model} on {task} ({preset})")

# %% [markdown]
# ## Validation metrics vs the majority-class baseline
# The baseline always predicts the most frequent training label; for regression tasks it
# predicts the training mean (its correlation is undefined, so only its MSE is shown).

# %%
value = result.metrics[metric]
plots.metric_bars({f"seed {seed}": value, **({"majority": baseline} if baseline is not None else {})},
                  metric=metric, title=f"validation {metric}")

# %% [markdown]
# ## Findings
# Quality is a finding, not an assert: does the model beat the baseline (a bootstrap interval
# of the gain over validation examples) and did the training loss fall? A verdict is SUPPORTED
# only when the whole interval clears zero, INCONCLUSIVE when it straddles it.

# %%
study = TrainingResult.of(result)
findings = study.findings()
print(study.verdict())
if out_dir:
    print(study.save(out_dir))

# %% [markdown]
# ## Explore
# Pick another task, model or seed; **Train / load** fine-tunes it (or reads it from the cache).

# %%
if interactive:
    from IPython.display import display

    from layerscope.ui import finetune_explorer

    display(finetune_explorer(cfg))
