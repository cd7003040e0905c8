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
# # 04 · Skipping spans of layers
# Phang et al. (2021, §4.1, Fig. 4) evaluate a fine-tuned model with every contiguous span of
# blocks *i..j* skipped (replaced by the identity), with no further tuning: "skipping any single
# layer seems to make little to no impact to performance", except the very first, and longer
# spans hurt more.
#
# **Layer convention:** block *i* maps hidden state *i − 1* to *i*; rows of the heatmap are the
# first skipped block, columns the last (inclusive). Skipping blocks 1..*L* leaves no model, so
# that cell is grey, as are the impossible cells below the diagonal. Every span comes from one
# base pass plus the blocks after the span, run once per last block on the stacked inputs of
# all spans that end there. Every task kind is scored through its own head on the final state:
# a sentence task's first token, each choice's pooled state (multiple choice: accuracy over
# choices), each labelled word (tagging), each word pair (token pairs; token tasks' intervals
# resample whole sentences), each question's best span over its windows (extractive QA: EM/F1)
# or each sentence's tree from the biaffine parser (dependency parsing: UAS/LAS).

# %% tags=["parameters"]
task: str = "movies"  # a task of any kind (sentence, multiple choice, tagging, token pair, extractive QA, parsing): `python -m layerscope.cli tasks` lists them
model: str = "minilm-l6"  # a model name, hub id ("org/name") or local directory
preset: str = "demo"  # fine-tuning preset: demo | phang2021 | zhou2022 | smoke
seeds: list = [0]  # fine-tuning seeds; each cell is the mean over them
finetuned: list = []  # already fine-tuned checkpoints (local folders or hub ids), one per seed, instead of training; model: the base they came from
max_steps: int = 0  # fine-tuning steps; 0: the preset's number
n_examples: int = 1000  # validation examples, sentences or questions (seeded subset, the same rows as notebooks 02, 03)
n_boot: int = 200  # bootstrap resamples behind every interval
tolerance: float = 0.01  # how far below the full model a single skip may be and still cost nothing
device: str = "auto"  # where models run: auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps
out_dir: str = ""  # folder for HTML/PNG/JSON copies of the results; empty: none
interactive: bool = True  # False for papermill / nbval runs: skips the widget cell

# %%
import numpy as np

from layerscope import finetune
from layerscope.studies.common.structured import reference_stats
from layerscope.studies.skipping import SkippingConfig, run_skipping
from layerscope.surgery_kernels import spans

cfg = SkippingConfig(task=task, model=model, preset=preset, seeds=seeds, finetuned=finetuned,
                     max_steps=max_steps or None, n_examples=n_examples, n_boot=n_boot,
                     tolerance=tolerance, device=device)
result = run_skipping(cfg)  # fine-tuning is cached by content
print(f"{len(result.spans)} spans, {len(result.rows)} examples, {result.seconds} s")
print("seconds by step:", result.timings)

# %% [markdown]
# ## Checks that hold for any model
# Every span but 1..*L* is there and every logit is a number; the heatmap is grey exactly
# where no span exists; skipping nothing is the fine-tuned model itself: it reproduces the
# cached predictions of notebook 01 (each scored unit at its row of those predictions).

# %%
L, n = result.n_layers, len(result.labels)  # n scored units
rows = result.unit_reference_rows  # each unit's row in finetune.predictions
assert list(result.spans) == spans(L) and (1, L) not in result.spans
assert result.span_logits.shape[:3] == (len(cfg.seeds), len(result.spans), n)
assert np.isfinite(result.span_logits).all() and np.isfinite(result.span_scores).all()
m = result.matrix()
assert m.shape == (L, L) and np.isnan(m[np.tril_indices(L, -1)]).all() and np.isnan(m[0, L - 1])
assert np.isfinite(m).sum() == len(result.spans)
for s, fc in enumerate(cfg.finetune_configs()):
    ref = finetune.predictions(finetune.load_or_train(fc, verbose=False), cfg.split)
    if result.structured:  # QA / parsing: the same answers and trees, per-unit statistics
        assert np.array_equal(result.full_logits[s], reference_stats(cfg.task_spec, ref)[rows]), s
        continue
    assert np.allclose(result.full_logits[s], ref.logits[rows], atol=1e-4), s
    assert np.allclose(result.full_predictions()[s], ref.predictions[rows]), s

# %% [markdown]
# ## Every span skipped (after Phang et al. Fig. 4)
# Colour = the task metric with blocks *i..j* skipped; the full model's score and the baseline
# are noted under the figure.

# %%
result.figure()

# %% [markdown]
# ## The drop by span length and by position
# Drop from the full model (higher = worse): by first skipped block, one line per span length;
# and the mean over positions by span length, with its 95% bootstrap band and the extremes.

# %%
result.curves_figure()

# %%
result.length_figure()

# %% [markdown]
# ## Findings
# Skipping block 1 against skipping any single later block (the smallest gap, recomputed on
# every resample), the single later skips against the full model (within `tolerance`), and
# one-block spans against longer ones. Paired bootstrap over validation examples.

# %%
print(result.verdict())
findings = result.findings()
for claim, f in findings.items():
    iv = f["interval"]
    assert iv is None or iv["low"] is None or iv["low"] <= iv["high"], claim

# %% [markdown]
# ## One span against the full model
# Skipping block 1 alone: how often the two models agree, and which of them is right.

# %%
result.span_figure(1, 1)

# %%
if out_dir:
    print(result.save(out_dir))

# %% [markdown]
# ## Explore
# Pick a task, model, seed and a span (first and last skipped block); **Run / load** computes
# the study with the same `run_skipping` and shows that span against the full model.

# %%
if interactive:
    from IPython.display import display

    from layerscope.studies.skipping.ui import skipping_explorer

    display(skipping_explorer(cfg, result.n_layers, result))
