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
# # 03 · Truncation: can the top layers go?
# Phang et al. (2021, §4, Fig. 3) feed the representation of an intermediate layer *k* straight
# to the task head, discarding the blocks above it, in three configurations:
# **UNTUNED** (the fine-tuned head as is, no further tuning), **TUNED** (the head retrained on
# layer-*k* features of the fine-tuned encoder) and **TUNEDORIG** (the head retrained on
# layer-*k* features of the untuned encoder), against the majority-class baseline. Merchant et
# al. (2020) ablations are available: fine-tuning with the bottom *k* blocks frozen
# (`freeze_bottom`) or with the top *k* blocks removed (`drop_top`).
#
# **Layer convention:** layer 0 is the embedding output, layer *i* the output of block *i*; layer
# *L* is the full model (the rightmost point). UNTUNED for every layer comes from one forward
# pass. TUNED and TUNEDORIG heads (same architecture as the model's own head, both starting
# from the fine-tuned head's weights) are trained on layer-*k* features of `n_train` training
# examples, all layers at once, with early stopping on a held-out fifth. In BERT-style models
# the layer-0 CLS vector is the same for every sentence, so layer 0 is left out there (with
# the reason).
#
# **Every head.** What the head reads at layer *k* depends on the task kind: a sentence task's
# first token (cached CLS features); a multiple-choice task's pooled state of each choice
# (context + choice, one score per choice, accuracy over choices); a tagging task's first
# sub-word of each labelled word; a token-pair task's two words (head and dependent,
# concatenated). Token tasks are scored per word (pair), and their intervals resample whole
# sentences. Extractive QA (Merchant et al. 2020's SQuAD): the QA head on every token of each
# window, each question's best span over its windows, EM/F1; dependency parsing: the biaffine
# parser on the words' states, one tree per sentence, UAS/LAS; their intervals resample
# questions or sentences.

# %% tags=["parameters"]
task: str = "movies"  # a task of any kind (sentence, multiple choice, tagging, token pair, extractive QA, parsing): `python -m layerscope.cli tasks` lists them
model: str = "minilm-l6"  # a model name, hub id ("org/name") or local directory
preset: str = "demo"  # fine-tuning preset: demo | phang2021 | zhou2022 | smoke
seeds: list = [0]  # fine-tuning seeds; each line is the mean over them
finetuned: list = []  # already fine-tuned checkpoints (local folders or hub ids), one per seed, instead of training; model: the base they came from
max_steps: int = 0  # fine-tuning steps; 0: the preset's number
n_examples: int = 1000  # validation examples, sentences or questions (seeded subset, the same rows as notebook 02)
n_train: int = 2000  # training examples (sentences, questions) whose features train the TUNED/TUNEDORIG heads
head_lr: float = 0.001  # Adam learning rate of the retrained heads
head_max_epochs: int = 50  # at most this many epochs (early stopping on held-out examples)
n_boot: int = 200  # bootstrap resamples behind every band and finding
tolerance: float = 0.01  # "within 1 point": how far below the full model still counts as equal
freeze_bottom: list = []  # Merchant et al.: fine-tune with blocks 1..k frozen, e.g. [2, 4]
drop_top: list = []  # Merchant et al.: fine-tune with the top k blocks removed, e.g. [2, 4]
mark_blocks: bool = True  # mark the FT–FT CKA block boundary (notebook 02) on the figure
save_truncated_to: str = ""  # folder for a shallower checkpoint (top blocks removed); empty: none
truncate_at: int = 0  # blocks that checkpoint keeps; 0: the fewest that stay within tolerance
device: str = "auto"  # where models run: auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps
out_dir: str = ""  # folder for HTML/PNG/JSON copies of the results; empty: none
interactive: bool = True  # False for papermill / nbval runs: skips the widget cell

# %%
import numpy as np

from layerscope import finetune
from layerscope.studies.common.structured import reference_stats
from layerscope.studies.truncation import TruncationConfig, run_truncation, save_truncated_model

cfg = TruncationConfig(task=task, model=model, preset=preset, seeds=seeds, finetuned=finetuned,
                       max_steps=max_steps or None, n_examples=n_examples, n_train=n_train,
                       head_lr=head_lr, head_max_epochs=head_max_epochs, n_boot=n_boot,
                       tolerance=tolerance, freeze_bottom=freeze_bottom, drop_top=drop_top,
                       mark_blocks=mark_blocks, device=device)
result = run_truncation(cfg)  # fine-tuning and features are cached by content
print(f"{len(result.rows)} examples, {result.n_layers} blocks, {result.seconds} s")
print("seconds by step:", result.timings)

# %% [markdown]
# ## Checks that hold for any model
# Shapes follow the layer convention; every undefined layer has a reason and no defined layer
# holds a NaN; UNTUNED at layer *L* (the head on the last hidden state) is the fine-tuned model
# itself: it reproduces the cached predictions of notebook 01 on the same examples (units:
# examples, questions, words or word pairs, each at its row of those predictions; QA and
# parsing: each question's EM/F1 and each sentence's scored words, right heads and right
# relations, which their lines hold in place of logits).

# %%
L, n = result.n_layers, len(result.labels)  # n scored units
rows = result.unit_reference_rows  # each unit's row in finetune.predictions
for line, logits in result.logits.items():
    assert logits.shape[:3] == (len(cfg.seeds), L + 1, n), (line, logits.shape)
    defined = result.layers(line)
    assert L in defined and np.isfinite(logits[:, defined]).all(), f"{line}: NaN in a defined layer"
    assert set(range(L + 1)) - set(defined) == set(result.undefined[line]), f"{line}: no reason"
    assert all(np.isfinite(result.scores[line][k]) for k in defined), line
for s, fc in enumerate(cfg.finetune_configs()):
    ref = finetune.predictions(finetune.load_or_train(fc, verbose=False), cfg.split)
    if result.structured:  # the same answers and trees: the same per-unit statistics
        assert np.array_equal(result.logits["untuned"][s, L], reference_stats(cfg.task_spec, ref)[rows]), s
        continue
    assert np.allclose(result.logits["untuned"][s, L], ref.logits[rows], atol=1e-4), s
    assert np.allclose(result.predictions("untuned")[s, L], ref.predictions[rows]), s
print({line: sorted(why.items()) for line, why in result.undefined.items() if why})

# %% [markdown]
# ## Metric vs layer (after Phang et al. Fig. 3)
# Bands are 95% bootstrap intervals over validation examples (token tasks: over sentences);
# the dotted line is the majority-class baseline (regression: the mean predictor, scored by
# MSE; tagging: the most frequent tag; multiple choice: the most frequent gold choice); the
# dashed vertical line is where the fine-tuned model's CKA matrix (of the states the head
# reads) splits into its two blocks. Ablation points:
# a model fine-tuned with the top *k* blocks dropped sits at depth *L − k*, next to UNTUNED
# truncation there; one fine-tuned with blocks 1..*k* frozen (full depth) at *x = k*.

# %%
result.figure()

# %%
for line in ("untuned", "tuned", "tunedorig"):
    print(f"{line:9s}", " ".join(f"{k}:{result.scores[line][k]:.3f}" for k in result.layers(line)))
for a in result.ablations:
    extra = (f"; minus UNTUNED at depth {a['x']}: {a['minus_untuned'][0]:+.3f}"
             if "minus_untuned" in a else "")
    print(f"{a['kind']}={a['k']}: {result.metric} {a['value']:.4f} "
          f"[{a['band'][0]:.4f}, {a['band'][1]:.4f}]{extra}")

# %% [markdown]
# ## Findings
# How many top blocks UNTUNED truncation drops while staying within `tolerance` of the full
# model (the count recomputed on every bootstrap resample: SUPPORTED when at least one block can
# go in 97.5% of them), TUNEDORIG below TUNED on average over layers, and the full model against
# the baseline. Paired bootstrap over validation examples; INCONCLUSIVE when the interval
# straddles the threshold.

# %%
print(result.verdict())
findings = result.findings()
for claim, f in findings.items():
    iv = f["interval"]
    assert iv is None or iv["low"] is None or iv["low"] <= iv["high"], claim

# %% [markdown]
# ## The shallowest model that keeps its performance, in detail
# Per line, the confusion matrix at that depth (rows: gold label; regression: the distribution
# of predicted scores; QA and parsing: the distribution of each question's F1 or each
# sentence's LAS).

# %%
result.layer_figure(max(1, result.smallest_depth))

# %% [markdown]
# ## Keep the smaller model
# With `save_truncated_to` set, the fine-tuned model (first seed) is written as a real
# Hugging Face checkpoint with only blocks 1..`truncate_at` (0: the fewest within tolerance);
# it is reloaded and must predict exactly what UNTUNED truncation at that depth predicted.

# %%
if save_truncated_to:
    saved = save_truncated_model(result, save_truncated_to, truncate_at)
    print(saved)
    assert saved["n_blocks"] == saved["k"] and saved["max_abs_logit_diff"] < 1e-4, saved
    assert saved["prediction_agreement"] == 1.0, saved

# %%
if out_dir:
    print(result.save(out_dir))

# %% [markdown]
# ## Explore
# Pick a task, model, seed and layer; **Run / load** computes the study with the same
# `run_truncation` (fine-tuning first when that model is not cached) and shows the layer.

# %%
if interactive:
    from IPython.display import display

    from layerscope.studies.truncation.ui import truncation_explorer

    display(truncation_explorer(cfg, result.n_layers, result))
