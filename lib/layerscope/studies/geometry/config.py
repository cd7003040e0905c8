"""The configuration of study 05 (geometry): one frozen dataclass of literals, validated.

Defaults are sized for the main job on 2 CPU cores (minilm-l6, movies, demo preset): 600
training sentences (DirectProbe at n = 600 takes ~0.3 s a layer; n = 2,000 non-separable
points took minutes), the validation rows the similarity study already extracted (1,000,
reused from the cache), the main job's snapshots (``finetune.trace_steps``) as checkpoints, and
a 2-configuration "demo" probe grid; ``probe_grid="zhou"`` is the paper's 16 x 4 grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ... import activations as acts
from ... import finetune
from ...errors import ConfigError, check_choice
from ...measures.directprobe import TESTS
from ...measures.probes import ZHOU_ALPHAS, ZHOU_HIDDEN
from ...tasks import TOKEN_KINDS
from ..base import StudyConfig, seed_configs

# Zhou & Srikumar §2.1: hidden sizes {32..256}^2 x a log L2 grid, 5 restarts of the best.
# kinds with class labels for DirectProbe to cluster (sentence, word or word-pair labels; a
# parser's words carry their relations)
LABELLED_KINDS = ("classification", "pair", "tagging", "token_pair", "dependency_parsing")
# kinds without class labels that geometry still runs on, through other tasks' labels
# (cross_task) and the out-of-domain comparison only (Merchant et al. 2020's SQuAD model)
LABEL_FREE_KINDS = ("extractive_qa",)
# kinds whose rows are not one sentence each: not an out-of-domain set
NO_SENTENCE_KINDS = (*TOKEN_KINDS, "dependency_parsing", "extractive_qa")
# the labels of a token kind sit on words or word pairs: the poolings that read them
TOKEN_POOLINGS = {"tagging": ("word",), "token_pair": ("pair",),
                  "dependency_parsing": ("word", "pair")}
PROBE_GRIDS: dict[str, tuple[tuple, tuple]] = {
    "demo": (((64, 64),), (1e-4, 1e-2)),
    "zhou": (ZHOU_HIDDEN, ZHOU_ALPHAS),
    "none": ((), ()),
}


# the offline sentence sets beside the movies snippets (offline_data's VADER corpora)
OUT_OF_DOMAIN_SETS = ("tweets", "amazon", "nyt")


@dataclass(frozen=True)
class GeometryConfig(StudyConfig):
    """One geometry study: the shared fields (``StudyConfig``: task, model, preset, seeds,
    finetuned, max_steps, max_length, seed, n_boot) and its own; every field is a literal.

    Attributes:
        seeds: fine-tuning seeds; the first gives the checkpoints, tables and probes; every
            seed's top layer adds fold replicates to the findings.
        finetuned: as in ``StudyConfig`` (``model``: ORIG). They have no training snapshots:
            the states are ORIG and FT only (said in ``result.notes()``), and explicit
            ``checkpoint_steps`` are refused.
        pooling: "auto" (the default: the task kind's, resolved at construction: "cls",
            "word", "pair" or "context"), "cls" or "mean" (sentence tasks), "word" (tagging
            tasks such as brown-pos: one point per word, words tagged -1 left out; dependency
            parsing: one point per word labelled with its relation) or "pair" (token_pair
            tasks such as Zhou & Srikumar's DEP: one point per (head, dependent) pair, the two
            words' vectors concatenated, §3.2; a parser's non-root arcs, labelled with the
            dependent's relation). An extractive QA task (no class labels, below) takes its
            kind's poolings (``activations.QA_POOLINGS``); only "cls" and "mean" reach the
            out-of-domain comparison (``ood_pooling``).
        word_vector: a word's vector for word and pair pooling: "mean" of its sub-words (Zhou
            & Srikumar §3) or its "first" sub-word (``activations.WORD_VECTORS``).
        n_train: training examples (sentences) whose points DirectProbe clusters.
        n_test: validation examples: test points (train/test spatial similarity, Table 2;
            nearest-cluster and probe accuracy). 1,000 = the similarity study's rows (cached).
        max_points: at most this many points per set (word pooling gives ~20 per sentence).
        layers: layers to analyse (0 = embeddings, i = block i; negative from the top);
            (): all.
        checkpoint_steps: ``base.CHECKPOINT_STEPS``: here the steps traced (Figures 2-4);
            default None: the main job's snapshots (``finetune.trace_steps``).
        directprobe_test: DirectProbe's separability test ("wolfe" | "lp").
        n_folds: disjoint random folds of the points; each fold's DirectProbe is one replicate
            of a finding's effect (t interval over folds x seeds).
        n_predict: test points for nearest-cluster accuracy (a hull distance per point and
            cluster: ~20 ms a point on 2 cores), at ``probe_layers``.
        probe_grid: "demo" (64x64, 2 L2 weights), "zhou" (16 sizes x 4 L2, §2.1) or "none".
        probe_restarts, probe_max_iter: restarts of the chosen configuration (Zhou: 5) and
            Adam epochs at most (Zhou: 1,000).
        probe_standardize: centre and scale each feature on the probe's training points. The
            paper (sklearn) does not; without it the low-layer CLS vectors of minilm-l6 (spread
            ~1e-2) stall Adam's convergence test and the probe stays at the majority class.
        probe_layers: layers that get the MLP probe and nearest-cluster accuracy; (): all.
        cross_task: other tasks whose labels are read off the fine-tuned model (Zhou §4.4;
            Merchant et al. 2020's "no catastrophic forgetting": e.g. ("brown-pos",) read off
            a QA or parser fine-tune).
        out_of_domain: sentence tasks to compare with in-domain change (Merchant et al. 2020);
            None: ``OUT_OF_DOMAIN_SETS`` (tweets, Amazon, NYT) for a sentence, QA or parsing
            task, none for a tagging or token_pair task (resolved at construction);
            e.g. ("tweets", "amazon", "nyt") for movies. Sentence vectors only: every set,
            the in-domain one included, is pooled by ``ood_pooling()`` ("cls" or "mean"), so
            a QA model is compared on its questions' windows and a parser on its sentences;
            a tagging or token_pair task is refused with it.

    A task without class labels (extractive QA: ``LABEL_FREE_KINDS``) has no in-domain
    geometry: DirectProbe, the probes, the checkpoint trace and their findings are UNDEFINED
    with that reason (``GeometryResult.no_labels``), and the run reads the QA-fine-tuned model
    through ``cross_task`` (other tasks' labels) and ``out_of_domain``, at least one of which
    must be given; ``checkpoint_steps`` (a trace of in-domain geometry) is refused.
        n_ood: examples per set for the out-of-domain comparison (in-domain: test rows).
        n_boot: bootstrap resamples of the out-of-domain effect (each recomputes CKA and RSA of
            the top layers on every set: 100 take ~30 s for 4 sets of ~400 sentences).
        dtype: see ``activations.ActivationSpec`` (with ``max_length`` and ``seed``);
            ``seed`` also seeds folds, subsets and probes.
    """

    pooling: str = "auto"
    n_train: int = 600
    n_test: int = 1000
    max_points: int = 1000
    layers: tuple[int, ...] = ()
    checkpoint_steps: tuple[int, ...] | None = None
    directprobe_test: str = "wolfe"
    n_folds: int = 4
    n_predict: int = 100
    probe_grid: str = "demo"
    probe_restarts: int = 3
    probe_max_iter: int = 300
    probe_standardize: bool = True
    probe_layers: tuple[int, ...] = ()
    cross_task: tuple[str, ...] = ()
    out_of_domain: tuple[str, ...] | None = ()
    n_ood: int = 400
    n_boot: int = 100
    dtype: str = "float32"
    word_vector: str = "mean"

    INT_TUPLES: ClassVar[tuple[str, ...]] = ("layers", "probe_layers")
    STR_TUPLES: ClassVar[tuple[str, ...]] = ("cross_task", "out_of_domain")
    NEEDS_TRAINING: ClassVar[tuple[str, ...]] = ("checkpoint_steps",)

    def check(self):
        check_choice(self.probe_grid, PROBE_GRIDS, "probe_grid")
        check_choice(self.directprobe_test, TESTS, "directprobe_test")
        for name, low in (("n_train", 8), ("n_test", 4), ("max_points", 8), ("n_folds", 2),
                          ("n_predict", 0), ("probe_restarts", 1), ("probe_max_iter", 1),
                          ("n_ood", 4)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < low:
                raise ConfigError(f"{name}={v!r} must be an int >= {low}")
        n_points = min(self.n_train, self.max_points)
        if n_points < 4 * self.n_folds:
            raise ConfigError(f"n_folds={self.n_folds} folds of {n_points} points leave fewer "
                              "than 4 points a fold; lower n_folds or raise n_train")
        spec = self.task_spec
        object.__setattr__(self, "pooling", acts.pooling_for(self.pooling, spec.kind))
        if self.cross_task is None:
            object.__setattr__(self, "cross_task", ())
        if self.out_of_domain is None:  # Merchant et al.'s sets where the task has sentences
            object.__setattr__(self, "out_of_domain", () if spec.kind in TOKEN_KINDS else tuple(
                t for t in OUT_OF_DOMAIN_SETS if t != self.task))
        if spec.kind not in LABELLED_KINDS + LABEL_FREE_KINDS:
            raise ConfigError(f"task {self.task!r} is {spec.kind!r}: geometry needs class "
                              "labels (DirectProbe clusters points by label); use movies, "
                              "brown-genre, brown-pos, a token_pair task such as tiny-dep or "
                              "a parsing task such as tiny-parse")
        if spec.kind in LABEL_FREE_KINDS:
            self._check_label_free()
        token_poolings = TOKEN_POOLINGS.get(spec.kind)
        if token_poolings and self.pooling not in token_poolings:
            where = {"tagging": "words", "token_pair": "(head, dependent) pairs",
                     "dependency_parsing": "words (and arcs)"}[spec.kind]
            raise ConfigError(f"task {self.task!r} is {spec.kind}: its labels are on {where}, "
                              f"so pooling {self.pooling!r} has none to cluster; use "
                              f"pooling={token_poolings[0]!r}")
        try:
            self.finetune_configs()  # validates model, preset, max_steps
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.activation_spec(self.task, "train")  # validates pooling vs task kind, dtype
        for t in self.cross_task:
            if t == self.task:
                raise ConfigError(f"cross_task {t!r} is the fine-tuning task itself; name "
                                  "other tasks (e.g. brown-genre, brown-pos)")
            if self.spec_of(t).kind not in LABELLED_KINDS:
                raise ConfigError(f"cross_task {t!r} has no class labels; use a "
                                  "classification, tagging, token_pair or parsing task")
        for t in self.out_of_domain:
            if t == self.task or self.spec_of(t).kind in NO_SENTENCE_KINDS:
                raise ConfigError(f"out_of_domain {t!r}: name sentence tasks other than "
                                  f"{self.task!r} (e.g. tweets, amazon, nyt for movies)")
        if self.out_of_domain and spec.kind in TOKEN_KINDS:
            raise ConfigError(f"out_of_domain={self.out_of_domain!r}: the out-of-domain "
                              "comparison (Merchant et al. 2020) is of sentence vectors on "
                              f"sentence tasks; task {self.task!r} is {spec.kind} (pooling "
                              f"{self.pooling!r}), which has none: leave out_of_domain empty")
        if self.out_of_domain:  # every set, the in-domain one included, in one pooling
            self.activation_spec(self.task, "test", self.n_ood, pooling=self.ood_pooling())
        self.check_checkpoint_steps()

    def _check_label_free(self) -> None:
        """A task without class labels runs only the parts that read other labels (module
        docstring of ``GeometryConfig``): refuse a config that asks for nothing else."""
        kind = self.task_spec.kind
        if not (self.cross_task or self.out_of_domain):
            raise ConfigError(
                f"task {self.task!r} is {kind}: it has no class labels, so DirectProbe, the "
                "probes and the checkpoint trace have nothing to cluster on its own rows. "
                "Geometry reads a QA-fine-tuned model through other tasks: give cross_task "
                "with a labelled task (e.g. cross_task=('brown-pos',) offline, Merchant et al. "
                "2020's 'no catastrophic forgetting') and/or out_of_domain (e.g. ('tweets', "
                "'amazon', 'nyt'), or None for those)")
        if self.checkpoint_steps:
            raise ConfigError(f"checkpoint_steps={self.checkpoint_steps!r}: the checkpoints "
                              f"trace in-domain label geometry, which a {kind} task lacks; "
                              "leave checkpoint_steps unset")

    def has_labels(self) -> bool:
        """Whether the fine-tuning task has class labels (in-domain geometry is defined)."""
        return self.task_spec.kind in LABELLED_KINDS

    def ood_pooling(self) -> str:
        """The sentence pooling of every out-of-domain set and of the in-domain set beside
        them: this config's pooling where it is "cls" or "mean", else "mean" (a parser's
        words, a QA model's context: the mean over the tokens of the sentence or of the
        question's first window, as the sentences of the other sets are pooled)."""
        return self.pooling if self.pooling in ("cls", "mean") else "mean"

    def other_tasks(self) -> tuple[str, ...]:
        """The cross-task and out-of-domain tasks (``spec_of`` resolves each once)."""
        return (*self.cross_task, *self.out_of_domain)

    def steps(self) -> tuple[int, ...]:
        """The checkpoints traced (``StudyConfig.traced_steps``; none without class labels)."""
        return self.traced_steps() if self.has_labels() else ()

    def finetune_configs(self) -> list[finetune.FinetuneConfig]:
        """One per seed; the first asks for the traced snapshots (not part of the cache key:
        a cached run gets missing snapshots by an exact replay, never a new model)."""
        base = seed_configs(self)
        if self.finetuned or not self.has_labels():
            return base
        steps = self.traced_steps()
        return [c.replace(save_steps=steps if i == 0 else ())
                for i, c in enumerate(base)]

    def pooling_for(self, task: str) -> str:
        """Tagging and parsing tasks are read per word, token_pair tasks per pair; sentence
        tasks with this config's sentence pooling (CLS when it has none)."""
        kind = self.spec_of(task).kind
        if kind in ("tagging", "dependency_parsing"):
            return "word"
        if kind == "token_pair":
            return "pair"
        return self.pooling if self.pooling in ("cls", "mean") else "cls"

    def activation_spec(self, task: str, which: str, n: int | None = None,
                        pooling: str | None = None) -> acts.ActivationSpec:
        """Spec of ``task``'s "train" or "test" (= validation) rows; ``pooling``: this one
        (the out-of-domain sets': ``ood_pooling``) instead of the task's."""
        max_length = self.resolved_max_length()
        if pooling is None:
            pooling = self.pooling if task == self.task else self.pooling_for(task)
        default = self.n_train if which == "train" else self.n_test
        try:
            return acts.ActivationSpec(task=self.spec_of(task), split="train" if which == "train"
                                       else "validation", n_examples=n or default,
                                       pooling=pooling, dtype=self.dtype, max_length=max_length,
                                       seed=self.seed, word_vector=self.word_vector)
        except ValueError as e:
            raise ConfigError(str(e)) from None
