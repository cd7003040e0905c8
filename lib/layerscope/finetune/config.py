"""What defines a fine-tuned model, and the cache key that names it.

Presets from the papers (``PRESETS``), ``FinetuneConfig`` (validated on construction),
``cache_key`` for a training run and ``checkpoint_key`` for a model fine-tuned elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import cache, devices, models
from ..errors import ConfigError
from ..tasks import ResolvedTask, TaskSpec, data_identity, key_name

FINETUNE_VERSION = 1  # bump when training semantics change: old cache entries stop matching
CHECKPOINT_VERSION = 1  # bump when how a checkpoint is evaluated changes


@dataclass(frozen=True)
class Preset:
    learning_rate: float
    batch_size: int
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    max_steps: int = -1  # -1: use num_epochs
    num_epochs: float = 3.0
    max_length: int = 128
    eval_every: int = 0  # 0: evaluate at the end only
    checkpoint_every: int = 500
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    group_by_length: bool = False  # batches of similar length: less padding, faster on CPU
    # "bf16": the Trainer's bf16 autocast (weights stay float32). Not used by any preset:
    # benchmarks/bench_bf16.py measured the demo preset 12x slower with it on a CPU without
    # avx512_bf16/AMX (8 steps + evaluation: 239 s vs 19 s), where bf16 matmuls are emulated.
    precision: str = "fp32"


PRESETS: dict[str, Preset] = {
    # Phang et al. 2021 §3: Adam, batch 4, lr 1e-5, 1,000 warm-up steps, up to 10,000 steps.
    "phang2021": Preset(learning_rate=1e-5, batch_size=4, warmup_steps=1000, max_steps=10_000,
                        max_length=256, eval_every=1000, checkpoint_every=1000),
    # Zhou & Srikumar 2022 App. A: Adam, batch 32, linear schedule with 10% warm-up, lr 3e-5,
    # 3 epochs for BERT-base (10 for smaller models: set max_steps or num_epochs).
    "zhou2022": Preset(learning_rate=3e-5, batch_size=32, warmup_ratio=0.1, num_epochs=3.0,
                       max_length=128, checkpoint_every=500),
    # CPU-sized: a few minutes per seed for minilm-l6 on `movies` on 2 cores.
    "demo": Preset(learning_rate=1e-4, batch_size=32, warmup_ratio=0.1, max_steps=150,
                   max_length=64, eval_every=75, checkpoint_every=50, group_by_length=True),
    # For tests and notebook smoke runs on tiny models and fixture tasks.
    "smoke": Preset(learning_rate=3e-3, batch_size=16, warmup_ratio=0.0, max_steps=60,
                    max_length=32, eval_every=20, checkpoint_every=20, group_by_length=True),
}
PRESET_NAMES = tuple(PRESETS)
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class FinetuneConfig(ResolvedTask):
    """Everything that defines a fine-tuned model. ``None`` fields take the preset's value.
    ``task``: a name or a resolved ``TaskSpec`` (``task_spec``; see ``tasks.ResolvedTask``)."""

    task: str | TaskSpec = "movies"
    model: str = "minilm-l6"
    preset: str = "demo"
    seed: int = 0
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    max_train_examples: int | None = None
    save_steps: tuple[int, ...] = ()  # extra model snapshots to trace training (step 0 = start)
    freeze_bottom: int = 0  # Merchant et al. 2020: freeze embeddings + blocks 1..k
    drop_top: int = 0  # Merchant et al. 2020: remove the top k blocks before fine-tuning
    precision: str | None = None  # fp32 | bf16 (autocast); None: the preset's
    # An already fine-tuned model (local folder or hub id) used instead of training; ``model``
    # stays the base model it came from (ORIG). The preset still sets the evaluation encoding.
    checkpoint: str | None = None
    # Where to train (``devices.resolve_device``: auto = CUDA, then MPS, then the CPU). Not part
    # of the cache key: the same settings name the same model wherever it was trained.
    device: str = "auto"

    def __post_init__(self):
        self._resolve_task()
        models.check_model_name(self.model)
        devices.check_device_name(self.device)
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {PRESET_NAMES}")
        for name in ("seed", "freeze_bottom", "drop_top"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: choose from {PRECISIONS}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps} must be >= 1 (or None for the preset)")
        object.__setattr__(self, "save_steps", tuple(sorted(set(int(s) for s in self.save_steps))))
        if self.checkpoint is not None:
            _check_checkpoint_config(self)

    def hyperparameters(self) -> dict:
        """The resolved training settings (preset values with this config's overrides)."""
        p = dataclasses.asdict(PRESETS[self.preset])
        for name in ("max_steps", "learning_rate", "batch_size", "max_train_examples",
                     "precision"):
            if getattr(self, name) is not None:
                p[name] = getattr(self, name)
        if p["precision"] == "fp32":  # left out: models cached before the field existed are
            del p["precision"]         # fp32 runs, and their keys stay what they were
        return p


# Settings that only shape a training run: meaningless for an already fine-tuned checkpoint.
TRAINING_ONLY = ("max_steps", "learning_rate", "batch_size", "precision", "save_steps",
                 "freeze_bottom", "drop_top")


def _check_checkpoint_config(cfg: FinetuneConfig) -> None:
    name = cfg.checkpoint
    if not (Path(name).expanduser().is_dir() or ("/" in name and not name.startswith(
            (".", "/", "~")))):
        raise ConfigError(f"checkpoint={name!r} is neither a local folder nor a hub id written "
                          "'org/name'; give the folder a fine-tuned model was saved to "
                          "(save_pretrained) or its hub id")
    given = [f"{n}={getattr(cfg, n)!r}" for n in TRAINING_ONLY if getattr(cfg, n)]
    if given:
        raise ConfigError(f"{', '.join(given)}: training settings, but checkpoint={name!r} is "
                          "already fine-tuned and nothing is trained (no steps, snapshots or "
                          "ablations); leave them unset, or drop the checkpoint to fine-tune "
                          f"{cfg.model!r} here")


def trace_steps(cfg: FinetuneConfig, n: int = 4) -> tuple[int, ...]:
    """Evenly spaced snapshot steps 0, T/n, ..., T of a run of T steps: the snapshots the main
    job saves for the first seed, so that notebooks 02 (drift) and 05 (geometry over training)
    find them in the cache. () when the run is sized in epochs (T unknown before training)."""
    total = cfg.hyperparameters()["max_steps"]
    if total <= 0:
        return ()
    return tuple(sorted({round(total * i / n) for i in range(n + 1)}))


def cache_key(cfg: FinetuneConfig) -> str:
    """Names the fine-tuned model. ``save_steps`` is left out: snapshots are extra files of the
    same run, not another model, so asking for them never retrains what the cache holds.
    ``precision`` enters through the resolved hyperparameters (there only when not fp32).
    ``checkpoint`` is left out too, so keys made before it existed stay valid; a checkpoint
    config is named by its files instead (``checkpoint_key``)."""
    if cfg.checkpoint is not None:
        return checkpoint_key(cfg, models.local_folder(cfg.checkpoint))
    config = {k: v for k, v in dataclasses.asdict(cfg).items()
              if k not in ("save_steps", "precision", "checkpoint", "device")}
    config["task"] = key_name(cfg.task_spec)  # a file task: by its content (data_identity)
    return cache.content_key({
        "config": config, "hyperparameters": cfg.hyperparameters(),
        "model": models.model_identity(cfg.model), "data": data_identity(cfg.task_spec),
        "code": FINETUNE_VERSION,
    })


def checkpoint_key(cfg: FinetuneConfig, folder: Path) -> str:
    """Names a checkpoint's evaluation: its files (``models.model_identity``), the task data and
    the preset's evaluation settings. Not the base model, the seed (only its place in a study)
    nor any training setting: the same files on the same task are the same entry."""
    hp = cfg.hyperparameters()
    return cache.content_key({
        "checkpoint": models.model_identity(str(folder)), "task": key_name(cfg.task_spec),
        "data": data_identity(cfg.task_spec),
        "evaluation": {k: hp[k] for k in ("max_length", "max_eval_examples",
                                          "max_train_examples")},
        "code": [FINETUNE_VERSION, CHECKPOINT_VERSION],
    })
