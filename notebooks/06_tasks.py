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
# # 06 · Which tasks reconfigure how much of the model?
# Merchant et al. (2020) fine-tune BERT on MNLI, SQuAD and dependency parsing and read every
# model on the same sentences: "dependency parsing reconfigures most of the model, whereas SQuAD
# and MNLI appear to involve much shallower processing", and fine-tuning "does not lead to
# catastrophic forgetting of linguistic phenomena". Here every task's fine-tuned models (two
# seeds) and the untuned ORIG are read on the **probe task**'s sentences, one vector per word
# (the mean of its sub-words). Per layer:
#
# * **change**: 1 − linear CKA of FT with ORIG (the same layer, the mean over seeds), against
#   the **threshold**: the seeds' own change, 1 − CKA(FT[1], FT[2]). A layer is *reconfigured*
#   when the whole bootstrap interval (over probe sentences) of its change beyond the threshold
#   is above 0; RSA of the same pairs is shown beside it;
# * **syntax**: the structural probe (Hewitt & Manning 2019) fitted on each layer of ORIG and of
#   each task's model: UUAS and distance Spearman of the probe task's trees, so "no catastrophic
#   forgetting" is measured after every task, not only after parsing.
#
# Offline the tasks are movies (sentiment), brown-pos (tagging) and brown-parse, a parser
# trained on **silver** parses of Brown (spaCy, ClearNLP labels, not Universal Dependencies);
# with the hub, the grid `merchant2020-tasks` runs bert-base-uncased on mnli, squad and
# ud-parse. Fine-tuned models come from the cache (notebook 01 trains the same ones) or are
# trained here. **Layer convention:** layer 0 (`emb`) is the embedding output, layer *i* the
# output of block *i*.

# %% tags=["parameters"]
tasks: list = ["movies", "brown-pos", "brown-parse"]  # fine-tuning tasks, each its models per seed (names or your data files)
model: str = "minilm-l6"  # a model name, hub id ("org/name") or local directory
preset: str = "demo"  # fine-tuning preset: demo | phang2021 | zhou2022 | smoke
seeds: list = [0, 1]  # fine-tuning seeds: FT is the first, FT[2] the second (their change is the threshold)
max_steps: int = 0  # fine-tuning steps; 0: the preset's number
probe: str = "brown-parse"  # the dependency-parsing task whose sentences (and trees) every model is read on: brown-parse | ud-parse | tiny-parse | your CoNLL-U file
n_probe: int = 200  # probe sentences (validation split, seeded): the unit of every bootstrap
n_probe_train: int = 2000  # training sentences of the structural probe (train split; brown-parse has 2000)
max_length: int = 128  # tokens per probe sentence; a sentence cut by it is left out (counted)
threshold: str = "seeds"  # seeds: change must beat 1 - CKA(FT[1], FT[2]) (+ margin) | fixed: beat the margin alone
margin: float = 0.0  # added to the threshold
n_boot: int = 200  # bootstrap resamples of the probe sentences behind every interval
rsa_max_words: int = 1000  # RSA on a seeded subset of at most this many words
structural_probe: bool = True  # fit the structural probe on every layer of ORIG and each task's first seed
probe_rank: int = 64  # the structural probe's rank; 0: full rank (the authors')
probe_epochs: int = 40  # the structural probe's epochs at most (the authors': 40)
probe_lr: float = 0.001  # the structural probe's learning rate (the authors': 0.001)
forgetting_margin: float = 0.05  # "no catastrophic forgetting": best-layer UUAS at most this much below ORIG's
device: str = "auto"  # where models run: auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps
out_dir: str = ""  # folder for HTML/PNG/JSON copies of the results; empty: none
interactive: bool = True  # False for papermill / nbval runs: skips the widget cell

# %%
import numpy as np

from layerscope.studies.tasks import TasksConfig, run_tasks

cfg = TasksConfig(tasks=tasks, model=model, preset=preset, seeds=seeds, max_steps=max_steps or None,
                  probe=probe, n_probe=n_probe, n_probe_train=n_probe_train, max_length=max_length,
                  threshold=threshold, margin=margin, n_boot=n_boot, rsa_max_words=rsa_max_words,
                  structural_probe=structural_probe, probe_rank=probe_rank, probe_epochs=probe_epochs,
                  probe_lr=probe_lr, forgetting_margin=forgetting_margin, device=device)
result = run_tasks(cfg)  # fine-tuning and word states are cached by content
print(f"{result.n_sentences} probe sentences ({result.n_words} words), {result.n_layers} blocks, "
      f"{result.seconds} s; left out: {result.dropped}")

# %% [markdown]
# ## Checks that hold for any model and task
# One curve point per layer and seed; CKA within [0, 1] and defined everywhere (word vectors
# differ between words at every layer); each resample draws as many sentences as there are;
# UUAS within [0, 1]; the result's own consistency checks pass.

# %%
L, S = result.n_layers, result.n_sentences
assert result.counts.shape == (n_boot, S) and (result.counts.sum(1) == S).all()
for t, cur in result.curves.items():
    assert cur.ft_orig.shape == (len(seeds), L + 1), (t, cur.ft_orig.shape)
    assert cur.ft_orig_boot.shape == (n_boot, len(seeds), L + 1)
    assert np.isfinite(cur.ft_orig).all() and (cur.ft_orig > -1e-9).all() and (cur.ft_orig < 1 + 1e-9).all(), t
    if cur.syntax is not None:
        assert cur.syntax.correct.shape == (L + 1, S) and ((0 <= cur.syntax.uuas) & (cur.syntax.uuas <= 1)).all()
assert result.check() == [], result.check()

# %% [markdown]
# ## FT–ORIG similarity per layer, the seeds' threshold, and syntax per layer
# Left: each task's CKA(FT, ORIG) (solid) and its threshold CKA(FT[1], FT[2]) (dashed, with its
# band over sentence resamples); a star marks a reconfigured layer. Right: the structural
# probe's UUAS per layer, ORIG (dotted) against each task's fine-tuned model.

# %%
result.figure()

# %% [markdown]
# ## Findings
# Per task: is its top layer reconfigured, which layers are, the lowest one. Across tasks: does
# the parsing task reconfigure more layers than each other task (the difference in the number
# of layers whose change beats the threshold, bootstrapped over sentences)? Per task: does the
# best layer's UUAS stay within `forgetting_margin` of ORIG's? SUPPORTED only when the whole
# interval clears the threshold; INCONCLUSIVE when it straddles; UNDEFINED with the reason.

# %%
print(result.verdict())
for claim, f in result.findings().items():
    iv = f["interval"]
    assert iv is None or iv["low"] is None or iv["low"] <= iv["high"], claim

# %% [markdown]
# ## The change beyond the threshold, and RSA

# %%
result.figure("excess")

# %%
result.figure("rsa")

# %%
if out_dir:
    print(result.save(out_dir))

# %% [markdown]
# ## Explore
# Pick a model, one task or all, and a comparison; **Run / load** computes it with the same
# `run_tasks` (fine-tuning first when a model is not cached); switching task or comparison of a
# computed run only redraws.

# %%
if interactive:
    from IPython.display import display

    from layerscope.studies.tasks.ui import tasks_explorer

    display(tasks_explorer(cfg))
