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
# # 02 · How similar are layers before and after fine-tuning?
# CKA (Kornblith et al. 2019) between the CLS representations of every pair of layers, over a
# task's validation examples, in the four comparisons of Phang et al. (2021, §3, Fig. 1):
# **ORIG–ORIG** (the untuned encoder with itself), **FT–ORIG** (fine-tuned layers as rows,
# untuned as columns), **FT–FT** and **FT[1]–FT[2]** (two fine-tuning seeds). RSA (Merchant et
# al. 2020) is available as `measure="rsa"`.
#
# **Layer convention:** layer 0 (`emb`) is the embedding output; layer *i* is the output of
# block *i* (Hugging Face `hidden_states[i]`). In BERT-style models the layer-0 CLS vector is
# the same for every sentence, so every similarity with it is undefined: it is drawn grey,
# with the reason underneath, never as a number.
#
# Fine-tuned models come from the cache (or are trained, as in notebook 01), or are your own:
# `finetuned` lists checkpoints fine-tuned elsewhere, `model` the base they came from. With
# the offline default `minilm-l6`, "ORIG" is all-MiniLM-L6-v2, a sentence-embedding fine-tune.

# %% tags=["parameters"]
task: str = "movies"  # a task name (`layerscope tasks`), or your data: a CSV/TSV/JSONL/Parquet/CoNLL-U/.conllulex file, a save_to_disk folder or a task card (.yaml)
model: str = "minilm-l6"  # a model name, hub id ("org/name") or local directory
preset: str = "demo"  # fine-tuning preset: demo | phang2021 | zhou2022 | smoke
seeds: list = [0, 1]  # fine-tuning seeds: FT is the first, FT[2] the second
finetuned: list = []  # already fine-tuned checkpoints (local folders or hub ids), one per seed, instead of training; model: the base they came from
max_steps: int = 0  # fine-tuning steps; 0: the preset's number
pooling: str = "auto"  # auto (cls; word: tagging, parsing; pair: token_pair; context: QA) | cls | mean | word | pair | context | answer (QA)
word_vector: str = "mean"  # each word's vector (word/pair pooling): mean of its sub-words (Zhou & Srikumar) | first
measure: str = "cka"  # cka (Kornblith et al. 2019) | rsa (Merchant et al. 2020)
kernel: str = "linear"  # CKA kernel: linear | rbf
debiased: bool = False  # unbiased HSIC estimator (Song et al. 2012)
rsa_dissimilarity: str = "correlation"  # RSA only: correlation | cosine
n_examples: int = 1000  # validation examples (random, seeded) fed to every model
n_boot: int = 200  # bootstrap resamples behind every finding's interval
cross_model: str = ""  # another model to compare with (Phang et al. Fig. 7); empty: none
checkpoint_steps: list = None  # None: the main job's snapshots (trace_steps); []: no drift; or steps
device: str = "auto"  # where models run: auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps
out_dir: str = ""  # folder for HTML/PNG/JSON copies of the results; empty: none
interactive: bool = True  # False for papermill / nbval runs: skips the widget cell

# %%
import numpy as np

from layerscope.studies.similarity import SimilarityConfig, run_similarity

cfg = SimilarityConfig(task=task, model=model, preset=preset, seeds=seeds, max_steps=max_steps or None,
                       finetuned=finetuned, pooling=pooling, word_vector=word_vector,
                       measure=measure, kernel=kernel, debiased=debiased, rsa_dissimilarity=rsa_dissimilarity, n_examples=n_examples,
                       n_boot=n_boot, cross_model=cross_model or None,
                       checkpoint_steps=checkpoint_steps, device=device)
result = run_similarity(cfg)  # fine-tuning and representations are cached by content
print(f"{result.n_rows} rows, {result.n_layers} blocks, {result.seconds} s")

# %% [markdown]
# ## Checks that hold for any model
# Shapes follow the layer convention; self-comparisons are symmetric with 1 on the diagonal;
# every NaN cell comes with a reason.

# %%
L = result.n_layers
for name, m in result.matrices.items():
    assert m.shape[0] == L + 1, (name, m.shape)
    assert np.isnan(m).any() == bool(result.undefined[name]), f"{name}: NaN cells need a reason"
for name in ("orig_orig", "ft_ft"):
    m = result.matrices[name]
    assert np.allclose(m, m.T, equal_nan=True), f"{name} is not symmetric"
    d = np.diag(m)
    assert np.allclose(d[np.isfinite(d)], 1.0), f"{name} diagonal is not 1"
for name, m in result.matrices.items():
    print(f"{name}: {int(np.isnan(m).sum())} undefined cells")
print("\n".join(result.undefined_notes()))

# %% [markdown]
# ## The four comparisons (one colour scale, 0–1)
# Phang et al. find early and late clusters in fine-tuned RoBERTa and ALBERT (FT–FT), top
# fine-tuned layers unlike any untuned layer (FT–ORIG), and the clusters again across seeds.

# %%
result.figure()

# %% [markdown]
# ## Findings
# The papers' claims tested on this run, each as an effect with a bootstrap interval over
# examples: block structure of FT–FT against ORIG–ORIG (difference of within-minus-between
# scores), the FT–ORIG diagonal in the bottom vs the top third of the blocks, agreement of two
# seeds on the top layers, drift, and the top FT–ORIG cell against a permutation baseline.
# SUPPORTED only when the whole interval clears the threshold; INCONCLUSIVE when it straddles.

# %%
print(result.verdict())
findings = result.findings()
for claim, f in findings.items():
    iv = f["interval"]
    assert iv is None or iv["low"] is None or iv["low"] <= iv["high"], claim

# %% [markdown]
# ## Drift over fine-tuning and the cross-model comparison (when requested)

# %%
result.drift_figure() if result.drift is not None else print("no checkpoint_steps given")

# %%
result.figure("cross") if cross_model else print("no cross_model given")

# %%
if out_dir:
    print(result.save(out_dir))

# %% [markdown]
# ## Explore
# Pick a task, model, seed, comparison, measure, kernel or pooling; **Run / load** computes it
# with the same `run_similarity` (fine-tuning first when that model is not cached).

# %%
if interactive:
    from IPython.display import display

    from layerscope.studies.similarity.ui import similarity_explorer

    display(similarity_explorer(cfg))
