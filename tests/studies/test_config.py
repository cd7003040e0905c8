"""The four study configs share one base (``studies.base.StudyConfig``, issue 15): the shared
fields and their checks, one ``from_params`` for parameters cells and grids, and derived
values (fine-tuning configs, activation specs, traced steps) unchanged by the refactor."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from layerscope import cache
from layerscope.errors import ConfigError
from layerscope.studies.base import StudyConfig
from layerscope.studies.geometry import GeometryConfig
from layerscope.studies.similarity import SimilarityConfig
from layerscope.studies.skipping import SkippingConfig
from layerscope.studies.truncation import TruncationConfig

CONFIGS = (SimilarityConfig, TruncationConfig, SkippingConfig, GeometryConfig)
SHARED = ("task", "model", "preset", "seeds", "finetuned", "max_steps", "max_length", "seed",
          "n_boot", "device")
T = dict(task="tiny-sentiment", model="tiny-bert", preset="smoke")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# a notebook's own parameters (not its config's)
NOTEBOOK_ONLY = {"out_dir", "interactive", "layer", "save_truncated_to", "truncate_at"}


def test_four_configs_share_the_base_fields_and_defaults():
    for cls in CONFIGS:
        assert issubclass(cls, StudyConfig)
        names = [f.name for f in dataclasses.fields(cls)]
        assert tuple(names[:len(SHARED)]) == SHARED, cls.__name__
    # each study keeps its defaults where they differ from the base's
    assert SimilarityConfig().seeds == (0, 1) and TruncationConfig().seeds == (0,)
    assert GeometryConfig().n_boot == 100 and SkippingConfig().n_boot == 200
    assert SimilarityConfig().checkpoint_steps == () and GeometryConfig().checkpoint_steps is None


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("change, match", [
    ({"seeds": ()}, r"seeds=\(\)"),
    ({"seeds": (1, 1)}, "distinct"),
    ({"n_boot": 1}, "n_boot=1 must be an int >= 2"),
    ({"finetuned": ["a", "b"], "seeds": (0,)}, r"finetuned has 2 checkpoint\(s\)"),
    ({"finetuned": ["a"], "seeds": (0,), "max_steps": 30}, r"max_steps=30 need\(s\)"),
    ({"model": "tiny-bret"}, "unknown model 'tiny-bret'"),
    ({"preset": "fast"}, "unknown preset 'fast'"),
])
def test_shared_checks_are_one(cls, change, match):
    with pytest.raises(ValueError, match=match):
        cls(**{**T, **change})


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_lists_become_tuples(cls):
    cfg = cls(**T, seeds=[0, 1])
    assert cfg.seeds == (0, 1) and hash(cfg)


@pytest.mark.parametrize("cls, notebook", [(SimilarityConfig, "02_similarity"),
                                           (TruncationConfig, "03_truncation"),
                                           (SkippingConfig, "04_skipping"),
                                           (GeometryConfig, "05_geometry")])
def test_from_params_reads_a_notebooks_parameters(cls, notebook):
    """The smoke parameters of the notebook give the config its cell builds by keyword, and
    a config's own fields (as saved) give it back."""
    params = yaml.safe_load((NOTEBOOKS / f"{notebook}.yaml").read_text())
    params = {k: v for k, v in params.items() if k not in NOTEBOOK_ONLY}
    cfg = cls.from_params(params)
    assert cfg == cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    assert cls.from_params(json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    # the cells' empty values: 0 steps and "" are None
    assert cls.from_params({**params, "max_steps": 0}).max_steps is None
    assert cls.from_params({**params, "max_length": ""}).max_length is None
    if cls is SimilarityConfig:
        assert cls.from_params({**params, "cross_model": ""}).cross_model is None


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_from_params_names_an_unknown_parameter(cls):
    with pytest.raises(ConfigError, match=r"unknown \w+Config parameter\(s\) \['n_exampels'\]; "
                                          r"valid: task, model, preset, seeds"):
        cls.from_params({**T, "n_exampels": 10})


def test_checkpoint_steps_mean_one_thing():
    """02 and 05: the first seed's snapshot steps, sorted and distinct; None: the main job's
    (``finetune.trace_steps``); refused with checkpoints; the same range check."""
    sim = SimilarityConfig(**T, checkpoint_steps=[30, 0, 30])
    geo = GeometryConfig(**T, checkpoint_steps=[30, 0, 30])
    assert sim.checkpoint_steps == geo.checkpoint_steps == geo.steps() == (0, 30)
    assert sim.finetune_configs()[0].save_steps == geo.finetune_configs()[0].save_steps
    assert SimilarityConfig(**T, checkpoint_steps=None).checkpoint_steps \
        == GeometryConfig(**T).steps() == (0, 15, 30, 45, 60)
    for cls in (SimilarityConfig, GeometryConfig):
        with pytest.raises(ConfigError, match=r"checkpoint_steps \[999\] outside 0..60"):
            cls(**T, checkpoint_steps=(0, 999))
        with pytest.raises(ConfigError, match=r"checkpoint_steps=\(0,\) need\(s\)"):
            cls(**T, seeds=(0,), finetuned=["a"], checkpoint_steps=(0,))
        given = cls(**T, seeds=(0,), finetuned=["org/ft"], checkpoint_steps=None)
        assert given.traced_steps() == ()


def _derived(c) -> dict:
    """Everything the run reads off a config: fine-tuning configs (their cache key's input),
    activation specs, steps; and the config's own values (its record)."""
    def before_device(x) -> dict:  # ``device`` (issue 16) and ``word_vector`` at its
        # default (issue 17) came after these digests
        return {k: v for k, v in dataclasses.asdict(x).items()
                if k != "device" and not (k == "word_vector" and v == "mean")}

    def fts(cs):
        return [cache.canonical_json(before_device(x)) for x in cs]
    d = {"asdict": json.loads(json.dumps(before_device(c), default=str)),
         "ft": fts(c.finetune_configs())}
    if isinstance(c, SimilarityConfig):
        d["spec"] = cache.canonical_json(before_device(c.activation_spec()))
        if c.cross_model:
            d["ft_cross"] = fts(c.finetune_configs(c.cross_model))
        d["label"] = c.measure_label()
    elif isinstance(c, TruncationConfig):
        d["spec"] = cache.canonical_json(before_device(c.activation_spec()))
        d["spec_train"] = cache.canonical_json(before_device(c.activation_spec("train")))
        d["head"], d["ml"] = repr(c.head_training()), c.resolved_max_length()
        d["ft_abl"] = fts(c.finetune_configs(drop_top=1))
    elif isinstance(c, SkippingConfig):
        d["spec"], d["ml"] = (cache.canonical_json(before_device(c.spec())),
                              c.resolved_max_length())
    else:
        d["spec"] = [cache.canonical_json(before_device(c.activation_spec(t, w)))
                     for t in (c.task, "tiny-pos") for w in ("train", "test")]
        d["steps"], d["total"] = list(c.steps()), c.total_steps()
    return d


# sha256 of ``_derived`` (sorted JSON) recorded at a15f88f, before StudyConfig; the
# fine-tuning cache keys (``finetune.cache_key``) were compared in the same run and equal
BEFORE = {
    "sim_default": "dcabf5a3cb487bab",
    "sim_tiny": "43c2198b6df5f027",
    "sim_rsa": "dd6ea4757a7498f7",
    "trunc_default": "013bba411d48ec03",
    "trunc_tiny": "e453d2807413bb4c",
    "skip_default": "56f6a910128029ec",
    "skip_tiny": "8a7532c920a21234",
    "geo_default": "80324dbef8b8933a",
    "geo_tiny": "d3125186ab962481",
    "geo_none": "d68a8a43a7526ffa",
}
CASES = {
    "sim_default": lambda: SimilarityConfig(),
    "sim_tiny": lambda: SimilarityConfig(**T, seeds=[0, 1], max_steps=30, n_examples=64,
                                         cross_model="tiny-roberta", checkpoint_steps=[0, 30],
                                         n_boot=30),
    "sim_rsa": lambda: SimilarityConfig(measure="rsa", pooling="mean", dtype="bfloat16",
                                        max_length=64, seed=3, seeds=(2,)),
    "trunc_default": lambda: TruncationConfig(),
    "trunc_tiny": lambda: TruncationConfig(**T, seeds=[0, 1], max_steps=30, n_examples=32,
                                           n_train=100, freeze_bottom=[1], drop_top=[1]),
    "skip_default": lambda: SkippingConfig(),
    "skip_tiny": lambda: SkippingConfig(**T, seeds=[0], max_steps=30, n_examples=32,
                                        max_length=32, seed=5),
    "geo_default": lambda: GeometryConfig(),
    "geo_tiny": lambda: GeometryConfig(**T, seeds=[0, 1], max_steps=30, n_train=48, n_test=32,
                                       n_folds=2, checkpoint_steps=[30, 0],
                                       cross_task=["tiny-pos"]),
    "geo_none": lambda: GeometryConfig(**T, checkpoint_steps=()),
}


def digest(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", CASES)
def test_derived_values_unchanged(name):
    assert digest(_derived(CASES[name]())) == BEFORE[name]


class _CountingTasks(dict):
    """The task registry, counting lookups by name."""

    lookups = 0

    def __getitem__(self, name):
        type(self).lookups += 1
        return super().__getitem__(name)


@pytest.mark.parametrize("name", ["trunc_tiny", "skip_tiny", "geo_tiny", "sim_tiny"])
def test_task_is_resolved_once_per_config(name, monkeypatch):
    """Issue 15: the task is looked up once, when the config is built (geometry: once per task
    it names); fine-tuning configs, activation specs, replaced copies and cache keys carry the
    resolved spec instead of the name."""
    from layerscope import finetune, tasks

    monkeypatch.setattr(tasks, "TASKS", _CountingTasks(tasks.TASKS))
    _CountingTasks.lookups = 0
    cfg = CASES[name]()
    named = 1 + len(getattr(cfg, "cross_task", ())) + len(getattr(cfg, "out_of_domain", ()))
    assert _CountingTasks.lookups == named
    ft = cfg.finetune_configs()
    keys = [finetune.cache_key(c) for c in ft]
    again = ft[0].replace(seed=7)
    assert again.task_spec is cfg.task_spec and again.task == cfg.task
    _derived(cfg)  # every activation spec of the config
    assert _CountingTasks.lookups == named
    assert keys == [finetune.cache_key(c) for c in cfg.finetune_configs()]


def test_resolved_configs_pickle_and_compare_by_name():
    """The spec is not pickled (its row converters are lambdas) and comes back by name; equal
    configs are equal whether given a name or the spec."""
    import pickle

    from layerscope.tasks import get_task

    cfg = TruncationConfig(**T)
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and back.task_spec is get_task("tiny-sentiment")
    assert TruncationConfig(**{**T, "task": get_task("tiny-sentiment")}) == cfg
    assert dataclasses.asdict(cfg)["task"] == "tiny-sentiment"


def test_checkpoint_steps_means_the_same_in_02_and_05():
    """Issue 15: one meaning (``base.CHECKPOINT_STEPS``): None the main job's snapshots, []
    none. Both notebooks default to None and hand the value to the config unchanged."""
    for stem in ("02_similarity", "05_geometry"):
        text = (NOTEBOOKS.parent.parent / "notebooks" / f"{stem}.py").read_text()
        cell = [ln for ln in text.splitlines() if ln.startswith("checkpoint_steps:")]
        assert len(cell) == 1 and cell[0].split("#")[0].strip() == \
            "checkpoint_steps: list = None", (stem, cell)
        assert "checkpoint_steps=checkpoint_steps," in text or \
            "checkpoint_steps=checkpoint_steps)" in text, stem
    from layerscope.finetune import trace_steps

    main_job = trace_steps(GeometryConfig(**T).finetune_configs()[0])
    assert main_job == (0, 15, 30, 45, 60)  # the smoke preset's 60 steps
    for cls in (SimilarityConfig, GeometryConfig):
        assert cls(**T, checkpoint_steps=None).traced_steps() == main_job, cls
        assert cls(**T, checkpoint_steps=[]).traced_steps() == (), cls


def test_device_is_checked_at_once_passed_on_and_not_in_cache_keys():
    """Issue 16: every config takes ``device``; a typo fails when the config is built (also in a
    sweep's --dry-run), a device this machine lacks only when the run resolves it (a config
    may be written here and run on a GPU worker), and the fine-tuning keys ignore it."""
    from layerscope import finetune

    with pytest.raises(ConfigError, match="device='gpu'"):
        TruncationConfig(**T, device="gpu")
    cfg = SkippingConfig(**T, device="cuda:3")
    assert [c.device for c in cfg.finetune_configs()] == ["cuda:3"]
    with pytest.raises(ConfigError, match="not available"):
        cfg.resolved_device()
    assert str(SkippingConfig(**T).resolved_device()) == "cpu"
    assert finetune.cache_key(cfg.finetune_configs()[0]) == \
        finetune.cache_key(SkippingConfig(**T).finetune_configs()[0])
    with pytest.raises(ConfigError, match="device='tpu'"):
        finetune.FinetuneConfig(**T, device="tpu")


@pytest.mark.parametrize("cls", [SimilarityConfig, GeometryConfig])
def test_pooling_auto_is_the_task_kinds_and_the_config_holds_it(cls):
    """The notebooks' default: a user's CoNLL-U or DEP task runs without naming its pooling;
    the config (its record, its activation specs) holds the pooling used."""
    small = {"n_train": 16, "n_test": 16} if cls is GeometryConfig else {"n_examples": 16}
    for task, want in (("tiny-sentiment", "cls"), ("tiny-pos", "word"), ("tiny-dep", "pair")):
        cfg = cls(task=task, model="tiny-bert", preset="smoke", pooling="auto", **small)
        assert cfg.pooling == want, task
        spec = (cfg.activation_spec() if cls is SimilarityConfig
                else cfg.activation_spec(task, "train"))
        assert spec.pooling == want
    assert cls(task="tiny-pos", model="tiny-bert", preset="smoke", **small).pooling == "word"
    with pytest.raises(ConfigError, match="pooling='pair'"):  # an explicit one is checked
        GeometryConfig(task="tiny-dep", model="tiny-bert", preset="smoke", pooling="cls",
                       n_train=16, n_test=16)


def test_out_of_domain_none_is_merchants_sets_for_sentence_tasks_only():
    def ood(task):
        return GeometryConfig(task=task, model="tiny-bert", preset="smoke", n_train=16,
                              n_test=16, out_of_domain=None).out_of_domain
    assert ood("movies") == ("tweets", "amazon", "nyt")
    assert ood("tweets") == ("amazon", "nyt")  # never the task itself
    assert ood("tiny-dep") == ood("tiny-pos") == ()
