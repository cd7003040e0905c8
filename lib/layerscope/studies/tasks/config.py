"""The configuration of study 06 (tasks side by side): one frozen dataclass of literals.

Merchant et al. (2020) fine-tune one model on several tasks and read every fine-tuned model on
the same sentences: "dependency parsing reconfigures most of the model, whereas SQuAD and MNLI
appear to involve much shallower processing", and fine-tuning "does not lead to catastrophic
forgetting of linguistic phenomena". Here the common sentences are the *probe task*'s (a
dependency_parsing task: its trees give the structural probe its targets), read per word.

Defaults are the offline version (minilm-l6 on movies, brown-pos and the silver Brown parser,
seeds 0 and 1, demo preset); the hub version (bert-base-uncased on mnli, squad, ud-parse) is the
grid ``merchant2020-tasks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ... import activations as acts
from ... import finetune
from ...errors import ConfigError, check_choice
from ...measures import rsa
from ...tasks import TaskSpec
from ..base import StudyConfig

# the threshold a layer's change must clear (``layer_change.excess``): "seeds": the change
# between two fine-tuning seeds of the same layer (the noise of fine-tuning itself, as Phang et
# al. 2021 Fig. 6 compare FT[1]-FT[2] with FT-ORIG), plus ``margin``; "fixed": ``margin`` alone
THRESHOLDS: tuple[str, ...] = ("seeds", "fixed")
PARSING = "dependency_parsing"


@dataclass(frozen=True)
class TasksConfig(StudyConfig):
    """Several tasks' fine-tuned models on one probe task's sentences; every field a literal.

    Attributes:
        tasks: the fine-tuning tasks (names, or your own data as the other studies take it),
            distinct; each is fine-tuned from ``model`` per seed (``finetune.load_or_train``:
            the models notebook 01 trained with the same settings come from the cache).
        probe: the task whose sentences every model is read on, one vector per word (the mean
            of its sub-words, ``word_vector``), and whose trees the structural probe fits: a
            dependency_parsing task (offline ``brown-parse``, silver ClearNLP parses; hub
            ``ud-parse``; tests ``tiny-parse``). ``task`` (the shared field) is set to it:
            results tables show the probe task there.
        model, preset, seeds, max_steps, seed, n_boot, device: as in ``StudyConfig``. Two
            seeds give the threshold of ``threshold="seeds"`` (FT is the first, FT[2] the
            second); one seed needs ``threshold="fixed"``.
        max_length: tokens per probe sentence (default 128: the probe sentences are read
            whole; a sentence that ``max_length`` cuts is left out of every measure, counted).
        n_probe: probe sentences (a seeded subset of the probe task's validation split): the
            unit of every bootstrap here.
        n_probe_train: sentences of the probe task's train split the structural probe is
            fitted on (the last fifth of them decide its early stop). 2,000 (all of
            brown-parse's): on minilm-l6 layer 3, 400 gave UUAS 0.51 (the linear baseline's),
            2,000 gave 0.63.
        threshold, margin: a layer counts as *reconfigured* by a task when its change from
            ORIG (1 - linear CKA of the same layer, the mean over seeds) exceeds the seeds'
            change (1 - CKA(FT[1], FT[2]); ``threshold="seeds"``) by more than ``margin``, or
            exceeds ``margin`` alone (``"fixed"``), with its whole bootstrap interval.
        confidence: of every interval (percentile bootstrap over probe sentences).
        rsa_dissimilarity, rsa_max_words: RSA (Merchant et al. 2020 §4) per layer of FT vs
            ORIG and FT[1] vs FT[2], on a seeded subset of at most this many words (an RDM has
            n^2/2 entries).
        structural_probe: fit Hewitt & Manning's (2019) distance probe on every layer of ORIG
            and of each task's first seed (UUAS and distance Spearman per layer).
        probe_rank, probe_epochs, probe_lr, probe_batch: the distance probe's rank (0 or None:
            full, the authors'; 64 by default, where their rank study finds UUAS saturating), epochs
            at most (40, the authors'), learning rate and batch (sentences).
        forgetting_margin: "no catastrophic forgetting of syntax" holds for a task when FT's
            best-layer UUAS is at most this much below ORIG's (whole interval; a fraction:
            0.05 = 5 UUAS points; this project's choice, the paper gives none).
        dtype, word_vector: see ``activations.ActivationSpec``.
    """

    task: str | TaskSpec = field(default="brown-parse", init=False)  # = probe (see above)
    tasks: tuple[str, ...] = ("movies", "brown-pos", "brown-parse")
    probe: str | TaskSpec = "brown-parse"
    seeds: tuple[int, ...] = (0, 1)
    max_length: int | None = 128
    n_probe: int = 200
    n_probe_train: int = 2000
    threshold: str = "seeds"
    margin: float = 0.0
    confidence: float = 0.95
    rsa_dissimilarity: str = "correlation"
    rsa_max_words: int = 1000
    structural_probe: bool = True
    probe_rank: int | None = 64
    probe_epochs: int = 40
    probe_lr: float = 1e-3
    probe_batch: int = 20
    forgetting_margin: float = 0.05
    dtype: str = "float32"
    word_vector: str = "mean"

    STR_TUPLES: ClassVar[tuple[str, ...]] = ("tasks",)

    def __post_init__(self):
        object.__setattr__(self, "task", self.probe)  # the probe task is the config's task
        super().__post_init__()
        object.__setattr__(self, "probe", self.task)  # its name, as ``task`` keeps it

    def replace(self, **changes):
        """A copy with ``changes``, the resolved probe task carried over (``task`` follows
        ``probe``)."""
        import dataclasses

        if "task" in changes:
            raise ConfigError("the tasks study's task is its probe: change probe=..., not task")
        changes.setdefault("probe", self.task_spec)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_params(cls, params: dict):
        if "task" in params:
            raise ConfigError("the tasks study has no parameter 'task': name the fine-tuning "
                              "tasks in tasks=[...] and the probe sentences' task in probe=...")
        return super().from_params(params)

    def check(self):
        if self.finetuned:
            raise ConfigError(f"finetuned={list(self.finetuned)!r}: the tasks study fine-tunes "
                              "one model per task and seed (or finds it in the cache); "
                              "checkpoints made elsewhere are not supported here yet")
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks={list(self.tasks)!r} must name one or more distinct "
                              "tasks, e.g. ['movies', 'brown-pos', 'brown-parse']")
        if len(self.seeds) > 2:
            raise ConfigError(f"seeds={list(self.seeds)!r}: the tasks study compares FT with "
                              "FT[2] (two seeds) at most; give one or two seeds")
        check_choice(self.threshold, THRESHOLDS, "threshold")
        if self.threshold == "seeds" and len(self.seeds) < 2:
            raise ConfigError(f"threshold='seeds' needs two fine-tuning seeds (their change is "
                              f"the threshold); seeds={list(self.seeds)!r}: give seeds=[0, 1], "
                              "or threshold='fixed' with a margin (e.g. 0.05)")
        if self.task_spec.kind != PARSING:
            raise ConfigError(f"probe={self.task!r} is a {self.task_spec.kind!r} task; the "
                              "probe sentences need trees (the structural probe's targets): "
                              "use a dependency_parsing task (brown-parse offline, ud-parse "
                              "from the hub, tiny-parse in tests, or your CoNLL-U file)")
        for name, low in (("n_probe", 4), ("n_probe_train", 5), ("rsa_max_words", 4),
                          ("probe_epochs", 1), ("probe_batch", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"{name}={v!r} must be an int >= {low}")
        if self.probe_rank == 0:  # the notebook's "0: full rank"
            object.__setattr__(self, "probe_rank", None)
        if self.probe_rank is not None and (not isinstance(self.probe_rank, int)
                                            or self.probe_rank < 1):
            raise ConfigError(f"probe_rank={self.probe_rank!r} must be an int >= 1, or 0 / "
                              "None (full rank)")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence={self.confidence!r} must be in (0, 1), e.g. 0.95")
        for name in ("margin", "forgetting_margin", "probe_lr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
                raise ConfigError(f"{name}={v!r} must be a number")
        if self.forgetting_margin < 0 or self.margin < 0 or self.probe_lr <= 0:
            raise ConfigError(f"margin={self.margin!r} and forgetting_margin="
                              f"{self.forgetting_margin!r} must be >= 0, probe_lr="
                              f"{self.probe_lr!r} > 0")
        check_choice(self.rsa_dissimilarity, rsa.DISSIMILARITIES, "rsa_dissimilarity")
        for t in self.tasks:
            self.spec_of(t)  # an unknown task is refused here, by name
        try:
            for t in self.tasks:
                self.finetune_configs(t)  # validates model, preset, max_steps
            self.activation_spec("validation")  # validates pooling, dtype, max_length
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def other_tasks(self) -> tuple[str, ...]:
        return tuple(t for t in self.tasks if t != self.task)

    def kind_of(self, task: str) -> str:
        return self.spec_of(task).kind

    def parsing_tasks(self) -> tuple[str, ...]:
        """The fine-tuning tasks of kind dependency_parsing, in the order of ``tasks``."""
        return tuple(t for t in self.tasks if self.kind_of(t) == PARSING)

    def finetune_configs(self, task: str) -> list[finetune.FinetuneConfig]:
        """One ``FinetuneConfig`` per seed of ``task``: the fields notebook 01 sets (task,
        model, preset, seed, max_steps, device), so its cached models are these."""
        return [finetune.FinetuneConfig(task=self.spec_of(task), model=self.model,
                                        preset=self.preset, seed=s, max_steps=self.max_steps,
                                        device=self.device) for s in self.seeds]

    def activation_spec(self, split: str) -> acts.ActivationSpec:
        """The probe task's words of ``split``: "validation" (the ``n_probe`` probe sentences)
        or "train" (the structural probe's ``n_probe_train``)."""
        n = self.n_probe if split == "validation" else self.n_probe_train
        return acts.ActivationSpec(task=self.task_spec, split=split, n_examples=n,
                                   pooling="word", dtype=self.dtype,
                                   max_length=self.resolved_max_length(), seed=self.seed,
                                   word_vector=self.word_vector)

    def threshold_label(self) -> str:
        m = f" + {self.margin:g}" if self.margin else ""
        return ("the seeds' change (1 - CKA(FT[1], FT[2]))" + m if self.threshold == "seeds"
                else f"{self.margin:g}")
