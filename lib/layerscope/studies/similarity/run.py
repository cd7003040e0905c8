"""Study 02: how similar are layers before and after fine-tuning? (notebook 02_similarity)

``run_similarity(cfg)`` computes, in one call, the comparisons of Phang et al. (2021, §3 and
Fig. 1): ORIG–ORIG (the untuned encoder with itself), FT–ORIG (fine-tuned layers as rows,
untuned as columns), FT–FT, FT[1]–FT[2] (two fine-tuning seeds), optionally a cross-model
comparison (their Fig. 7) and the drift of every layer over fine-tuning checkpoints (similarity
of layer l at step s with layer l untuned). The measure is CKA (Kornblith et al. 2019; linear
as in Phang et al., or RBF; biased or debiased) or RSA (Merchant et al. 2020, §4), over the
pooled representations of validation examples (``activations``; Phang et al. use the CLS
token). Layer convention: 0 = embeddings, i = block i.

Beyond the papers: the block structure of FT–FT vs ORIG–ORIG (``measures.blocks``), and
findings whose verdicts rest on bootstrap intervals over examples (``findings``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ... import activations as acts
from ... import finetune, models, progress
from ...errors import ConfigError, check_choice
from ...measures import cka, cka_stats, rsa
from ...measures.blocks import block_structure
from ...plots import layer_labels
from ..base import StudyConfig, seed_configs
from ..common.layers import thirds
from ..common.records import finetune_runs
from ..common.states import State
from .comparisons import COMPARISON_NAMES, COMPARISONS
from .findings import drift_snapshots, effect_intervals
from .result import SimilarityResult

MEASURES: tuple[str, ...] = ("cka", "rsa")
CROSS_STATES: tuple[str, ...] = ("orig", "ft")


@dataclass(frozen=True)
class SimilarityConfig(StudyConfig):
    """One similarity study: the shared fields (``StudyConfig``: task, model, preset, seeds,
    finetuned, max_steps, max_length, seed, n_boot) and its own; every field is a literal.

    Attributes:
        seeds: fine-tuning seeds; the first is "FT", the second (if any) "FT[2]".
        finetuned: as in ``StudyConfig`` (``model`` is ORIG); drift (``checkpoint_steps``) and a
            fine-tuned cross model need training runs and are refused with them.
        pooling: "auto" (the default: ``activations.pooling_for``: "cls" for sentence tasks,
            "word" for tagging and dependency parsing, "pair" for token_pair, "context" for
            extractive QA; resolved at construction, so the config holds the pooling used) or
            one of the task kind's ``activations.poolings_for``.
        n_examples, split, dtype, word_vector: see ``activations.ActivationSpec``
            (with ``max_length``, ``seed``). Phang et al. use CLS on validation examples; a
            token_pair task (Zhou & Srikumar's DEP) compares its pair vectors with "pair"
            (one row per (head, dependent) pair), a tagging or parsing task its words with
            "word" (or a parser's arcs with "pair"); an extractive QA task (Merchant et al.
            2020's SQuAD) one row per question: "cls" (the first token of question + context),
            "context" (the mean over the context tokens of the question's first window),
            "answer" (the mean over the gold answer's tokens) or "mean" (over the window).
        measure: "cka" (Kornblith et al. 2019) or "rsa" (Merchant et al. 2020).
        kernel, debiased: CKA kernel ("linear" | "rbf") and unbiased HSIC estimator.
        rsa_dissimilarity: how RSA compares two examples ("correlation": 1 - Pearson r,
            "cosine": 1 - cosine similarity; ``measures.rsa.rsa_matrix(dissimilarity=...)``).
        cross_model: another model to compare with (Phang et al. Fig. 7); None: none.
        cross_state: compare both models "orig" (untuned) or "ft" (fine-tuned, first seed).
        checkpoint_steps: ``base.CHECKPOINT_STEPS``: here each layer's drift from the untuned
            layer at every step (default (): no drift; None is resolved here to the main job's
            steps, so that the run reads a tuple).
        ci_cell: (comparison, row layer, column layer) that gets a bootstrap interval and a
            permutation baseline (negative layers count from the top); None: skip.
        n_boot, n_perm: bootstrap resamples (of ``ci_cell`` and of every finding's effect) and
            permutations for ``ci_cell``.
    """

    seeds: tuple[int, ...] = (0, 1)
    pooling: str = "auto"
    measure: str = "cka"
    kernel: str = "linear"
    debiased: bool = False
    rsa_dissimilarity: str = "correlation"
    n_examples: int | None = 1000
    split: str = "validation"
    dtype: str = "float32"
    cross_model: str | None = None
    cross_state: str = "orig"
    checkpoint_steps: tuple[int, ...] | None = ()
    ci_cell: tuple[str, int, int] | None = ("ft_orig", -1, -1)
    n_perm: int = 100
    word_vector: str = "mean"

    NEEDS_TRAINING: ClassVar[tuple[str, ...]] = ("checkpoint_steps",)

    def check(self):
        object.__setattr__(self, "pooling", acts.pooling_for(self.pooling, self.task_spec.kind))
        if self.ci_cell is not None:
            object.__setattr__(self, "ci_cell", (str(self.ci_cell[0]), int(self.ci_cell[1]),
                                                 int(self.ci_cell[2])))
        if self.finetuned and self.cross_model is not None and self.cross_state == "ft":
            raise ConfigError(f"cross_model={self.cross_model!r} with cross_state='ft' "
                              "fine-tunes that model, but finetuned= gives checkpoints and "
                              "nothing is trained; use cross_state='orig' (the untuned "
                              "cross model), or drop finetuned")
        check_choice(self.measure, MEASURES, "measure")
        check_choice(self.rsa_dissimilarity, rsa.DISSIMILARITIES, "rsa_dissimilarity")
        check_choice(self.kernel, cka.KERNELS, "kernel")
        if self.n_examples is not None and self.n_examples < 4:
            raise ConfigError(f"n_examples={self.n_examples} is too small: similarity needs at "
                              f"least 4 examples (debiased HSIC needs n >= 4); use 100 or more")
        if self.cross_model is not None:
            models.check_model_name(self.cross_model)
        check_choice(self.cross_state, CROSS_STATES, "cross_state")
        if self.ci_cell is not None:
            check_choice(self.ci_cell[0], COMPARISON_NAMES, "ci_cell comparison")
        if self.n_perm < 1:
            raise ConfigError(f"n_perm={self.n_perm}: need n_perm >= 1 (100 is the default)")
        if self.checkpoint_steps is None:  # the main job's snapshots: the run reads a tuple
            object.__setattr__(self, "checkpoint_steps", self.traced_steps())
        self.finetune_configs()  # validates task, model, preset (and steps below)
        self.activation_spec()  # validates pooling, split, dtype, ...
        self.check_checkpoint_steps()

    def activation_spec(self) -> acts.ActivationSpec:
        return acts.ActivationSpec(task=self.task_spec, split=self.split,
                                   n_examples=self.n_examples, pooling=self.pooling,
                                   dtype=self.dtype, max_length=self.resolved_max_length(),
                                   seed=self.seed, word_vector=self.word_vector)

    def finetune_configs(self, model: str | None = None) -> list[finetune.FinetuneConfig]:
        """One config per seed; the first seed carries ``checkpoint_steps`` as snapshots.
        ``model``: the cross model's (always trained: ``finetuned`` is this model's)."""
        configs = seed_configs(self, model=model)
        if not model:
            configs[0] = configs[0].replace(save_steps=self.checkpoint_steps)
        return configs

    def measure_label(self) -> str:
        if self.measure == "rsa":
            return f"RSA ({self.rsa_dissimilarity})"
        return f"{'debiased ' if self.debiased else ''}{self.kernel} CKA"


# --------------------------------------------------------------------------- computing
def similarity_matrix(cfg: SimilarityConfig, a, b=None, *, keep=None) -> np.ndarray:
    """[La, Lb] similarity of two stacks [L, n, d] (b None: a with itself, symmetrised);
    constant layers give NaN rows/columns. ``keep`` (self-comparison only): compute just the
    cells between these layers of ``a`` (each as the full call computes it,
    ``cka_stats.cka_submatrix``); the other cells are NaN."""
    if keep is not None:
        keep = np.asarray(keep, dtype=np.int64)
        if cfg.measure == "rsa":
            m = rsa.rsa_matrix(np.asarray(a)[keep], dissimilarity=cfg.rsa_dissimilarity,
                               seed=cfg.seed, undefined="nan")
        else:
            m = cka_stats.cka_submatrix(np.asarray(a), keep, kernel=cfg.kernel,
                                        debiased=cfg.debiased, undefined="nan")
        m = np.asarray(m, dtype=np.float64)
        out = np.full((len(a), len(a)), np.nan)
        out[np.ix_(keep, keep)] = (m + m.T) / 2
        return out
    if cfg.measure == "rsa":
        m = rsa.rsa_matrix(a, b, dissimilarity=cfg.rsa_dissimilarity, seed=cfg.seed,
                           undefined="nan")
    else:
        m = cka.cka_matrix(a, b, kernel=cfg.kernel, debiased=cfg.debiased, undefined="nan")
    m = np.asarray(m, dtype=np.float64)
    if b is None:  # symmetric by construction; float32 sums leave ~1e-7 between (i,j), (j,i)
        m = (m + m.T) / 2
    return m


def bootstrap_layers(sizes: dict[str, int], n_layers: int) -> np.ndarray:
    """Rows of the stacked sets (``findings.effect_intervals``: "orig", "ft", "ft2",
    "first_step", "last_step" one after the other) whose cells the findings read: every layer
    of ORIG and FT (the block structure of ORIG–ORIG and FT–FT, the FT–ORIG diagonal), and only
    the top third (``common.layers.thirds``) of FT[2] and of the drift snapshots, which enter
    through their top diagonal with FT or ORIG. Checked against the findings on every run
    (``_bootstrap_matrix``)."""
    _, top = thirds(n_layers)
    rows, start = [], 0
    for name, size in sizes.items():
        rows += (range(start, start + size) if name in ("orig", "ft")
                 else [start + i for i in top if i < size])
        start += size
    return np.asarray(rows, dtype=np.int64)


def _same_bits(x: np.ndarray, y: np.ndarray) -> bool:
    """Equal bit for bit, NaN where NaN."""
    nx, ny = np.isnan(x), np.isnan(y)
    return x.shape == y.shape and bool((nx == ny).all()) and \
        x[~nx].tobytes() == y[~ny].tobytes()


def _estimates(effects: dict) -> dict:
    return {k: (v["estimate"].hex() if isinstance(v["estimate"], float) else v["estimate"])
            for k, v in effects.items()}


def _bootstrap_matrix(cfg: SimilarityConfig, stacks: dict[str, np.ndarray], log):
    """The matrix function the findings' bootstrap recomputes per resample.

    Each resample recomputes the similarity of all stacked sets ([T, T], T = 35 for the demo:
    five sets of 7 layers), but the findings read only the cells among ``bootstrap_layers``
    (20 of the 35 there). Those cells alone are computed when two checks on the full sample
    pass, so that no reported number changes: (1) they are bit-identical to the same cells of
    the full computation (the resamples have the same shapes, hence the same kernels), and
    (2) the findings' estimates are the same when every other cell is NaN (the findings read
    nothing else). Otherwise every cell is computed, as before.
    """
    sizes = {k: v.shape[0] for k, v in stacks.items()}
    keep = bootstrap_layers(sizes, sizes["orig"] - 1)
    total = sum(sizes.values())

    def full(a):
        return similarity_matrix(cfg, a)

    if len(keep) == total:
        return full
    allstack = np.concatenate(list(stacks.values()), axis=0)
    whole = full(allstack)
    poisoned = np.full_like(whole, np.nan)
    poisoned[np.ix_(keep, keep)] = whole[np.ix_(keep, keep)]
    same = _same_bits(poisoned, similarity_matrix(cfg, allstack, keep=keep))
    if same:  # the findings' own code on the two matrices (2 resamples: estimates only matter)
        est = [_estimates(effect_intervals(stacks, lambda _a, m=m: m, 2, seed=cfg.seed))
               for m in (whole, poisoned)]
        same = est[0] == est[1]
    if not same:
        log("[similarity] bootstrap: all cells are recomputed (the kept cells alone would "
            "change a number here)")
        return full
    return lambda a: similarity_matrix(cfg, a, keep=keep)


def undefined_reasons(name: str, states: np.ndarray, cfg: SimilarityConfig) -> dict[int, str]:
    """Layer -> why similarity with it is undefined (constant across examples)."""
    out = {}
    for layer in cka.constant_layers(states):
        why = (" (BERT-style models: the first token at layer 0 is its token embedding + "
               "position 0 + segment 0 only, before any attention)"
               if layer == 0 and cfg.pooling == "cls" else "")
        out[layer] = (f"{name} layer {layer_labels(states.shape[0] - 1)[layer]}: the "
                      f"{cfg.pooling} vector is the same for every example{why}, so "
                      f"{cfg.measure.upper()} with it is undefined")
    return out


def _snapshot_states(cfg: SimilarityConfig, first) -> dict[int, State]:
    """Step -> the State of the first fine-tuned seed's snapshot at that step (drift)."""
    return {s: State.ft(cfg.model, first.config.seed, step=s) for s in cfg.checkpoint_steps}


def _representations(cfg: SimilarityConfig, ft: list, snapshots: dict[int, State],
                     verbose: bool, log) -> dict[str, acts.Activations]:
    """Every set the comparisons read, by name: "orig", "ft", "ft2" (a second seed), "self" and
    "cross" (a cross model), and each drift snapshot under its State key; each set's states are
    [L+1, N, D] (the cross model: its own L' and D'). Cached extractions are loaded."""
    spec = cfg.activation_spec()
    device = cfg.resolved_device()
    words = spec.task_spec.kind in acts.WORD_KINDS  # pre-split words, whatever the pooling
    sets: dict[str, acts.Activations] = {}
    n_sets = 2 + (len(ft) > 1) + (cfg.cross_model is not None) + len(cfg.checkpoint_steps)
    count = iter(range(1, n_sets + 1))

    def extract(name: str, source, step: int | None = None) -> acts.Activations:
        log(f"[similarity] representations: {name} ({next(count)} of {n_sets})")
        model, tok = acts.encoder_and_tokenizer(source, step=step, for_words=words,
                                                device=device)
        return acts.load_or_extract(spec, model, tok, progress=verbose)  # spec.task_spec

    sets["orig"] = extract("orig", cfg.model)
    sets["ft"] = extract("ft", ft[0])
    if len(ft) > 1:
        sets["ft2"] = extract("ft2", ft[1])
    if cfg.cross_model is not None:
        sets["self"] = sets["orig"] if cfg.cross_state == "orig" else sets["ft"]
        progress.phase(f"similarity: the cross model {cfg.cross_model}")
        src = (cfg.cross_model if cfg.cross_state == "orig" else
               finetune.load_or_train(cfg.finetune_configs(cfg.cross_model)[0], verbose=verbose))
        sets["cross"] = extract("cross", src)
    for s in cfg.checkpoint_steps:
        sets[snapshots[s].key] = extract(f"step {s}", ft[0], step=snapshots[s].step)
    return sets


def _comparison_matrices(cfg: SimilarityConfig, sets: dict[str, acts.Activations]
                         ) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]]]:
    """Each comparison of ``COMPARISONS`` whose two sets are there: its matrix ([L+1, L+1] or
    [L+1, L'+1], float64, NaN where undefined, on the examples both sets hold) and the reasons
    for its undefined cells (sorted, one line each)."""
    names = {"orig": f"ORIG {cfg.model}", "ft": "FT", "ft2": "FT[2]",
             "cross": f"{cfg.cross_state.upper()} {cfg.cross_model}",
             "self": f"{cfg.cross_state.upper()} {cfg.model}"}
    reasons = {k: undefined_reasons(names.get(k, k), np.asarray(v.states), cfg)
               for k, v in sets.items()}
    matrices, undefined = {}, {}
    progress.phase(f"similarity: {cfg.measure_label()} matrices")
    for comp in COMPARISONS.values():
        if comp.rows not in sets or comp.cols not in sets:
            continue
        ra, rb = sets[comp.rows], sets[comp.cols]
        ia, ib = acts.aligned_rows(ra, rb)
        a = ra.states if len(ia) == len(ra.ids) else ra.states[:, ia]
        b = None if comp.symmetric else (rb.states if len(ib) == len(rb.ids)
                                         else rb.states[:, ib])
        m = similarity_matrix(cfg, a, b)
        matrices[comp.name] = m
        why = sorted(set(reasons[comp.rows].values()) | set(reasons[comp.cols].values()))
        if np.isnan(m).sum() > 0 and not why:
            why = ["NaN from the similarity kernel on layers that are not constant (unexpected)"]
        undefined[comp.name] = tuple(why)
    return matrices, undefined


def _drift(cfg: SimilarityConfig, sets: dict[str, acts.Activations],
           snapshots: dict[int, State]) -> np.ndarray | None:
    """[steps, L+1]: similarity of layer l at each snapshot step with layer l untuned; None
    without snapshots."""
    if not cfg.checkpoint_steps:
        return None
    orig = sets["orig"].states
    return np.array([[similarity_matrix(cfg, sets[snapshots[s].key].states[i:i + 1],
                                        orig[i:i + 1])[0, 0]
                      for i in range(orig.shape[0])] for s in cfg.checkpoint_steps])


def _bootstrap_effects(cfg: SimilarityConfig, sets: dict[str, acts.Activations],
                       snapshots: dict[int, State], log) -> dict:
    """The findings' effects with bootstrap intervals over examples, from the stacked sets
    "orig", "ft", "ft2" and (drift) the first snapshot after step 0 and the last, each
    [L+1, N, D]."""
    stacks = {k: np.asarray(v.states) for k, v in sets.items() if k in ("orig", "ft", "ft2")}
    if cfg.checkpoint_steps:  # drift: the first snapshot after step 0 against the last
        stacks.update({f"{k}_step": np.asarray(sets[snapshots[s].key].states)
                       for k, s in drift_snapshots(cfg.checkpoint_steps).items()})
    return effect_intervals(stacks, _bootstrap_matrix(cfg, stacks, log), cfg.n_boot,
                            seed=cfg.seed, measure=cfg.measure_label())


def _with_cell_bootstrap(cfg: SimilarityConfig, result: SimilarityResult) -> SimilarityResult:
    """``result`` with the bootstrap and permutation test of ``cfg.ci_cell`` (linear CKA
    only; otherwise ``result`` unchanged); an undefined cell records its error instead."""
    if not (cfg.ci_cell is not None and cfg.measure == "cka" and cfg.kernel == "linear"
            and cfg.ci_cell[0] in result.matrices):
        return result
    comp, i, j = cfg.ci_cell
    progress.phase(f"similarity: bootstrap and permutations of the {comp} cell")
    try:
        cell = {**result.cell_bootstrap(comp, i, j, n_boot=cfg.n_boot),
                **result.cell_permutation(comp, i, j, n_perm=cfg.n_perm)}
    except ValueError as e:  # e.g. the chosen cell is undefined: say so, keep the rest
        cell = {"comparison": comp, "row": i, "col": j, "error": str(e)}
    return result.with_cell(cell)


def run_similarity(cfg: SimilarityConfig, *, verbose: bool = True) -> SimilarityResult:
    """All comparisons of ``cfg`` (fine-tuning and extraction come from the cache when there).

    Returns:
        A ``SimilarityResult``; each matrix is [L+1, L+1] (cross-model: [L+1, L'+1]), float64,
        rows = first-named set, NaN where undefined (reason in ``result.undefined``).
    """
    t0 = time.time()
    log = progress.logger(verbose)
    ft = [finetune.load_or_train(c, verbose=verbose) for c in cfg.finetune_configs()]
    snapshots = _snapshot_states(cfg, ft[0])
    sets = _representations(cfg, ft, snapshots, verbose, log)
    matrices, undefined = _comparison_matrices(cfg, sets)
    drift = _drift(cfg, sets, snapshots)
    log("[similarity] bootstrap intervals of the findings")
    effects = _bootstrap_effects(cfg, sets, snapshots, log)
    result = SimilarityResult(
        config=cfg, matrices=matrices, undefined=undefined,
        blocks={k: block_structure(matrices[k]) for k in ("orig_orig", "ft_ft") if k in matrices},
        drift_steps=cfg.checkpoint_steps, drift=drift, effects=effects,
        activation_keys={k: v.key for k, v in sets.items()},
        finetune_runs=finetune_runs(ft, baseline=True),
        n_rows=int(sets["orig"].states.shape[1]))
    result = _with_cell_bootstrap(cfg, result)
    return result.finished(round(time.time() - t0, 1), cfg.resolved_device(), cfg.dtype)
