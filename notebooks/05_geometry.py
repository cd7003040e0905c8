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
# # 05 · How does fine-tuning move the geometry of each layer?
# Zhou & Srikumar (2022) probe every layer before, during and after fine-tuning with
# **DirectProbe**: cluster the labelled points so that each cluster holds one label and no two
# clusters' convex hulls overlap. The cluster count measures (non-)linearity (= number of
# labels: linearly separable); the distance between two clusters is the distance between their
# hulls (twice the hard-margin SVM margin); the vector of label-pair distances gives a
# **spatial similarity** (Pearson r) between two representations, or between the train and test
# sets. Next to it, MLP probe classifiers (§2.1), a **cross-task** reading (§4.4: a model tuned
# on one task, read on another task's labels) and the **out-of-domain** comparison of Merchant
# et al. (2020): does fine-tuning change out-of-domain sentences less?
#
# **Layer convention:** layer 0 (`emb`) is the embedding output; layer *i* is the output of
# block *i*. The layer-0 CLS vector of BERT-style models is the same for every sentence, so
# DirectProbe and probes are undefined there (said, never drawn as a number). With two labels
# (movies) there is one label pair, so spatial similarity (a correlation over pairs) is
# undefined: use `brown-genre` or `brown-pos` for it.
#
# Fine-tuned models and their snapshots come from the cache (the main job saves them); a cached
# run that lacks a snapshot gets it by an exact replay, never by training a new model. Your own
# checkpoints (`finetuned`, fine-tuned elsewhere) have no snapshots: only ORIG and FT are shown.

# %% tags=["parameters"]
task: str = "movies"  # a task name (`layerscope tasks`), or your data: a CSV/TSV/JSONL/Parquet/CoNLL-U/.conllulex file, a save_to_disk folder or a task card (.yaml)
model: str = "minilm-l6"  # a model name, hub id ("org/name") or local directory
preset: str = "demo"  # fine-tuning preset: demo | zhou2022 | phang2021 | smoke
seeds: list = [0, 1]  # fine-tuning seeds; the first gives checkpoints, tables and probes
finetuned: list = []  # already fine-tuned checkpoints (local folders or hub ids), one per seed, instead of training; model: the base they came from
max_steps: int = 0  # fine-tuning steps; 0: the preset's number
pooling: str = "auto"  # auto (cls; word: tagging, parsing; pair: token_pair; context: QA) | cls | mean | word | pair | context | answer (QA)
word_vector: str = "mean"  # each word's vector (word/pair pooling): mean of its sub-words (Zhou & Srikumar) | first
n_train: int = 600  # training examples whose points DirectProbe clusters
n_test: int = 1000  # validation examples (test points; 1000: study 02's rows, cached)
max_points: int = 1000  # at most this many points per set (word tasks give ~20 per sentence)
layers: list = []  # layers to analyse; empty: all (0: the embeddings)
checkpoint_steps: list = None  # None: the main job's snapshots (trace_steps); []: none; or steps
n_folds: int = 4  # disjoint folds of the points: the replicates behind the intervals
probe_grid: str = "demo"  # MLP probe grid: demo | zhou (16 sizes x 4 L2, §2.1) | none
probe_restarts: int = 3  # restarts of the chosen probe configuration (Zhou: 5)
probe_layers: list = []  # layers that get the MLP probe; empty: all
cross_task: list = []  # tasks read off the fine-tuned model (Zhou §4.4), e.g. ["brown-genre"]
out_of_domain: list = None  # sentence sets for Merchant et al.'s claim; None: tweets, amazon, nyt (none for tagging/token_pair); a QA task needs this or cross_task
n_ood: int = 400  # sentences per set for the out-of-domain comparison
n_boot: int = 100  # bootstrap resamples of the out-of-domain effect
layer: int = -1  # layer shown in the figures (-1: top)
device: str = "auto"  # where models run: auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps
out_dir: str = ""  # folder for HTML/PNG/JSON copies of the results; empty: none
interactive: bool = True  # False for papermill / nbval runs: skips the widget cell

# %%
import numpy as np
import pandas as pd

from layerscope.studies.geometry import GeometryConfig, run_geometry
from layerscope.studies.geometry.dynamics import spatial

cfg = GeometryConfig(task=task, model=model, preset=preset, seeds=seeds, finetuned=finetuned,
                     max_steps=max_steps or None, pooling=pooling, word_vector=word_vector,
                     n_train=n_train, n_test=n_test, max_points=max_points, layers=layers,
                     checkpoint_steps=checkpoint_steps, n_folds=n_folds,
                     probe_grid=probe_grid, probe_restarts=probe_restarts,
                     probe_layers=probe_layers, cross_task=cross_task,
                     out_of_domain=out_of_domain, n_ood=n_ood, n_boot=n_boot, device=device)
result = run_geometry(cfg)  # fine-tuning, snapshots and representations are cached by content
print(f"{result.n_points} points, layers {result.layers}, states {result.states}, "
      f"{result.seconds} s")

# %% [markdown]
# ## Checks that hold for any model
# One summary per analysed layer and state; the step-0 snapshot is the untuned model (same
# DirectProbe distances); a representation has spatial similarity 1 with itself; every
# undefined number comes with a reason.

# %%
for state, gs in result.geometry.items():
    assert len(gs) == len(result.layers), state
    for g in gs:
        assert np.isnan(g.min_distances).any() == bool(g.why), (state, g.why)
if "step-0" in result.states:
    for a, b in zip(result.geometry["orig"], result.geometry["step-0"], strict=True):
        assert np.array_equal(a.min_distances, b.min_distances, equal_nan=True)
for g in result.geometry["ft"]:
    if g.distance_vector is not None and g.n_labels >= 3:
        assert abs(spatial(g, g)[0] - 1) < 1e-9
assert result.sim_to_orig.shape == (len(result.states), len(result.layers))
print("\n".join(result.notes()))

# %% [markdown]
# ## Figure 2: each label's minimum distance to the others over fine-tuning
# Zhou & Srikumar find every label's minimum distance growing (not always monotonically).

# %%
result.figure(layer)

# %% [markdown]
# ## Tables 2-4 and the probes, per layer
# Cluster counts (train and test points; Tables 3-4), train/test spatial similarity (Table 2),
# nearest-cluster accuracy and MLP probe accuracy (mean ± std over restarts) on test points.

# %%
pd.DataFrame(result.tables()["layers"]).round(3)

# %% [markdown]
# ## Figure 3: label-centroid paths during fine-tuning (2-D PCA)
# Lower-layer centroids move little and alike; top-layer centroids move apart.

# %%
result.paths_figure()

# %% [markdown]
# ## Figure 4: spatial similarity of each layer to its untuned self
# Zhou & Srikumar: even the top layers stay above 0.5 (relative label positions are kept).

# %%
result.similarity_figure() if np.isfinite(result.sim_to_orig).any() else print(
    "undefined here:", "; ".join(result.spatial_why))

# %% [markdown]
# ## Figure 5: centroid displacement before -> after, per layer
# Uncentred 2-D PCA of each label's displacement: compare the ranges of low and high layers.

# %%
result.displacement_figure()

# %% [markdown]
# ## Out-of-domain change (Merchant et al. 2020) and cross-task (Zhou §4.4)

# %%
result.ood_figure() if result.out_of_domain else print("no out_of_domain sets given")

# %%
for name, x in result.cross_task.items():
    print(f"{cfg.task} -> {name}: {x['n_up']} labels apart, {x['n_down']} closer, mean change "
          f"{x['mean_change']:.3f}; probe {x['probe']}" + (f" ({x['why']})" if x["why"] else ""))

# %% [markdown]
# ## Findings
# Each claim as an effect with an interval: DirectProbe effects over disjoint folds of the
# points (and seeds), probe accuracy over restarts, out-of-domain change by bootstrap over
# sentences. SUPPORTED only when the whole interval clears the threshold; UNDEFINED says why.

# %%
print(result.verdict())
for claim, f in result.findings().items():
    iv = f["interval"]
    assert f["verdict"] == "UNDEFINED" or iv["low"] is None or iv["low"] <= iv["high"], claim

# %%
if out_dir:
    print(result.save(out_dir))

# %% [markdown]
# ## Explore
# Pick a task, model, seed, layer, checkpoint and view; **Run / load** computes it with the same
# `run_geometry` (fine-tuning first when that model is not cached).

# %%
if interactive:
    from IPython.display import display

    from layerscope.studies.geometry.ui import geometry_explorer

    display(geometry_explorer(cfg, n_layers=result.n_layers, steps=result.steps))
