"""Fine-tuning with transformers' Trainer: presets from the papers, seeds, checkpoints, resume.

``load_or_train(cfg)`` returns the cached fine-tuned model for a config, training only when it is
missing; an interrupted run resumes from its last Trainer checkpoint (optimizer, scheduler, RNG
and data order included). Merchant et al. (2020) ablations are options: ``freeze_bottom=k``
freezes the embeddings and blocks 1..k; ``drop_top=k`` removes the top k blocks before tuning.

``checkpoint=`` names a model fine-tuned elsewhere (a local folder or a hub id) to use instead
of training: ``load_or_train`` then checks it against the task and the base model
(``model``, which stays ORIG), evaluates it once like a trained run and caches only that.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import transformers as tr
from safetensors.numpy import load_file

from . import cache, metrics, models, progress, surgery
from .adapters import EncoderAdapter
from .encoding import collator_for, encode_split, subset
from .errors import ConfigError, MissingHeadError
from .tasks import TaskSpec, data_identity, get_task, load_split

FINETUNE_VERSION = 1  # bump when training semantics change: old cache entries stop matching


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
class FinetuneConfig:
    """Everything that defines a fine-tuned model. ``None`` fields take the preset's value."""

    task: str = "movies"
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

    def __post_init__(self):
        get_task(self.task)
        models.check_model_name(self.model)
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


@dataclass
class FinetuneResult:
    config: FinetuneConfig
    path: Path  # cache entry folder; a trained model is in path / "model"
    meta: dict = field(repr=False)
    cached: bool = False  # True when load_or_train found it in the cache (no training ran)
    checkpoint_dir: Path | None = None  # config.checkpoint's folder (hub id: its HF snapshot)

    @property
    def model_dir(self) -> Path:
        return self.checkpoint_dir or self.path / "model"

    @property
    def metrics(self) -> dict:
        return self.meta["metrics"]

    @property
    def baseline(self) -> dict:
        return self.meta["baseline"]

    def snapshot_dir(self, step: int) -> Path:
        if self.config.checkpoint is not None:
            raise ConfigError(f"no snapshot at step {step}: checkpoint "
                              f"{self.config.checkpoint!r} was fine-tuned elsewhere, so there "
                              "are no snapshots from its training")
        d = self.path / "steps" / f"step-{step}"
        if not d.exists():
            raise FileNotFoundError(f"no snapshot at step {step}; saved steps: "
                                    f"{self.meta.get('saved_steps')} (set save_steps=...)")
        return d

    def learning_curve(self) -> dict[str, list]:
        """Training loss and validation metric by step, from the Trainer's log history."""
        hist = self.meta.get("log_history", [])
        key = "eval_" + get_task(self.config.task).primary_metric
        return {
            "train_step": [h["step"] for h in hist if "loss" in h],
            "train_loss": [h["loss"] for h in hist if "loss" in h],
            "eval_step": [h["step"] for h in hist if key in h],
            "eval_metric": [h[key] for h in hist if key in h],
        }

    def load_model(self) -> tr.PreTrainedModel:
        return load_finetuned(self)


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
              if k not in ("save_steps", "precision", "checkpoint")}
    return cache.content_key({
        "config": config, "hyperparameters": cfg.hyperparameters(),
        "model": models.model_identity(cfg.model), "data": data_identity(get_task(cfg.task)),
        "code": FINETUNE_VERSION,
    })


def load_or_train(cfg: FinetuneConfig, *, callbacks: list | None = None,
                  verbose: bool = True) -> FinetuneResult:
    """The fine-tuned model for ``cfg``: from the cache when present and intact, else trained;
    with ``cfg.checkpoint``, that model (``load_checkpoint``: never trained, so ``callbacks``,
    which watch training, go unused)."""
    if cfg.checkpoint is not None:
        return load_checkpoint(cfg, verbose=verbose)
    folder = cache.entry_dir("finetune", cache_key(cfg))
    if folder.exists():
        ok, reason = cache.verify(folder)
        if ok:
            result = FinetuneResult(cfg, folder, cache.read_meta(folder), cached=True)
            missing = sorted(set(cfg.save_steps) - set(result.meta.get("saved_steps", [])))
            return add_snapshots(result, missing, verbose=verbose) if missing else result
        if cache.read_meta(folder) is not None:  # finished once, damaged since: recompute
            cache.quarantine(folder, reason)
    return train(cfg, folder, callbacks=callbacks, verbose=verbose)


def max_weight_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between the weights of two saved models (same layout)."""
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    if wa.keys() != wb.keys():
        return float("inf")
    return max((float(np.abs(wa[k].astype(np.float64) - wb[k]).max()) for k in wa
                if wa[k].size), default=0.0)


def add_snapshots(result: FinetuneResult, steps: list[int], *,
                  verbose: bool = True) -> FinetuneResult:
    """Add snapshots at ``steps`` to a cached run without touching its final model.

    Training is seeded (model head, data order, dropout), so replaying the same configuration
    retraces the same trajectory; the replay runs to the end (stopping early changes the
    Trainer's bookkeeping and with it the trajectory), its snapshots are moved into the entry,
    and how far it strayed is recorded: the largest difference of the logged losses and of the
    final weights from the cached run (``meta["snapshot_replay"]``; 0 on the same machine and
    thread count). It costs one training run; ask for snapshots up front to avoid it.
    """
    folder, cfg = result.path, result.config
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.replay") as tmp:
        scratch = Path(tmp) / "run"
        replay = train(dataclasses.replace(cfg, save_steps=tuple(steps)), scratch,
                       verbose=verbose)
        weight_diff = max_weight_difference(result.model_dir, scratch / "model")
        (folder / "steps").mkdir(exist_ok=True)
        for s in steps:
            dest = folder / "steps" / f"step-{s}"
            if not dest.exists():
                (scratch / "steps" / f"step-{s}").rename(dest)
    old = {h["step"]: h["loss"] for h in result.meta.get("log_history", []) if "loss" in h}
    new = {h["step"]: h["loss"] for h in replay.meta["log_history"] if "loss" in h}
    diffs = [abs(old[s] - new[s]) for s in old.keys() & new.keys()]
    meta = dict(result.meta)
    meta["saved_steps"] = sorted(int(p.name[5:]) for p in (folder / "steps").glob("step-*"))
    meta["snapshot_replay"] = {"steps": list(steps), "max_loss_diff": max(diffs) if diffs
                               else None, "max_weight_diff": weight_diff}
    files = [str(p.relative_to(folder)) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != cache.META]
    return FinetuneResult(cfg, folder, cache.write_meta(folder, meta, files), cached=True)


def _apply_ablations(model: tr.PreTrainedModel, cfg: FinetuneConfig) -> None:
    if cfg.drop_top:  # by block index through the adapter (exact for ALBERT's shared blocks)
        surgery.drop_top_blocks(model, cfg.drop_top)
    ad = EncoderAdapter(model)
    if cfg.freeze_bottom:
        if ad.kind == "albert":
            raise ValueError("freeze_bottom is undefined for ALBERT: all its blocks share one "
                             "layer's weights, so freezing block 1 freezes every block")
        if cfg.freeze_bottom > model.config.num_hidden_layers:
            raise ValueError(f"freeze_bottom={cfg.freeze_bottom} exceeds the "
                             f"{model.config.num_hidden_layers} blocks")
        for p in ad.base.embeddings.parameters():
            p.requires_grad_(False)
        for i in range(1, cfg.freeze_bottom + 1):
            for p in ad.block(i).parameters():
                p.requires_grad_(False)


class _Snapshots(tr.TrainerCallback):
    """Save the model at chosen steps, to trace representations during fine-tuning."""

    def __init__(self, folder: Path, steps: tuple[int, ...]):
        self.folder, self.steps = folder, set(steps)

    def _save(self, model, step):
        out = self.folder / f"step-{step}"
        if not out.exists():
            with cache.atomic_dir(out) as tmp:
                model.save_pretrained(tmp)

    def on_train_begin(self, args, state, control, model=None, **kw):
        if 0 in self.steps and state.global_step == 0:
            self._save(model, 0)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step in self.steps:
            self._save(model, state.global_step)


def _predict_metrics(task: TaskSpec, logits: np.ndarray, labels: np.ndarray) -> dict:
    preds = metrics.predictions_from_logits(task, logits)
    if task.kind == "tagging":
        keep = labels != -100
        return metrics.compute(task, preds[keep], labels[keep])
    return metrics.compute(task, preds, labels)


def train(cfg: FinetuneConfig, folder: Path, *, callbacks=None, verbose=True) -> FinetuneResult:
    """Fine-tune into ``folder`` (resuming from its checkpoints if any). See load_or_train."""
    task = get_task(cfg.task)
    hp = cfg.hyperparameters()
    t0 = time.time()
    tr.set_seed(cfg.seed)  # before loading: the new head's initialisation depends on the seed
    tokenizer = models.load_tokenizer(cfg.model, for_words=task.kind == "tagging")
    model = models.load_for_task(cfg.model, task)
    _apply_ablations(model, cfg)
    train_ds = encode_split(task, load_split(cfg.task, "train"), tokenizer, hp["max_length"],
                            hp["max_train_examples"], seed=0)
    eval_ds = _eval_dataset(cfg, task, tokenizer)
    # the entry folder only now: a model or task that cannot load (no hub) leaves no folder
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_dir = folder / "checkpoints"
    resume = ckpt_dir.exists() and any(ckpt_dir.glob("checkpoint-*"))
    args = tr.TrainingArguments(
        output_dir=str(ckpt_dir), per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=max(32, hp["batch_size"]), learning_rate=hp["learning_rate"],
        weight_decay=0.0, optim="adamw_torch",  # weight_decay 0 makes AdamW plain Adam
        lr_scheduler_type="linear", warmup_steps=hp["warmup_steps"] or hp["warmup_ratio"],
        max_steps=hp["max_steps"], num_train_epochs=hp["num_epochs"], seed=cfg.seed,
        data_seed=cfg.seed, logging_steps=max(1, min(10, hp["eval_every"] or 10)),
        eval_strategy="steps" if hp["eval_every"] else "no", eval_steps=hp["eval_every"] or None,
        save_strategy="steps", save_steps=hp["checkpoint_every"], save_total_limit=1,
        report_to=[], disable_tqdm=not verbose, dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if hp["group_by_length"] else "random",
        # bf16 autocast; transformers refuses bf16 without a GPU unless use_cpu says CPU
        bf16=hp.get("precision") == "bf16",
        use_cpu=hp.get("precision") == "bf16" and not torch.cuda.is_available(),
    )
    trainer = tr.Trainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        data_collator=collator_for(task, tokenizer),
        compute_metrics=lambda p: _predict_metrics(task, p.predictions, p.label_ids),
        callbacks=[_Snapshots(folder / "steps", cfg.save_steps), progress.TrainerSteps(
            f"fine-tuning {cfg.model} on {cfg.task}, seed {cfg.seed}" + "".join(
                f", {k}={getattr(cfg, k)}" for k in ("freeze_bottom", "drop_top")
                if getattr(cfg, k)))] + list(callbacks or []),
    )
    if not verbose:  # with tqdm off the Trainer prints every log dict instead; keep output clean
        trainer.remove_callback(tr.trainer_callback.PrinterCallback)
    trainer.train(resume_from_checkpoint=True if resume else None)
    last = trainer.state.log_history[-2:] if trainer.state.log_history else []
    done = [h for h in last if h.get("step") == trainer.state.global_step and "eval_loss" in h]
    final = done[-1] if done else trainer.evaluate()  # reuse an evaluation at the last step
    out_metrics = {k[5:]: v for k, v in final.items() if k[5:] in task.metrics}
    baseline = metrics.majority_baseline(task, _labels(train_ds), _labels(eval_ds))
    with cache.atomic_dir(folder / "model", replace=True) as tmp_model:
        trainer.save_model(str(tmp_model))
        tokenizer.save_pretrained(str(tmp_model))
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # resume state is no longer needed
    files = [str(p.relative_to(folder)) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != cache.META]
    meta = {
        "config": dataclasses.asdict(cfg), "hyperparameters": hp, "key": folder.name,
        "metrics": out_metrics, "baseline": baseline, "resumed": resume,
        "n_train": len(train_ds), "n_eval": len(eval_ds),
        "global_step": trainer.state.global_step, "log_history": trainer.state.log_history,
        "saved_steps": sorted(int(p.name[5:]) for p in (folder / "steps").glob("step-*"))
        if (folder / "steps").exists() else [],
        "wall_seconds": round(time.time() - t0, 1), "versions": _versions(),
    }
    meta = cache.write_meta(folder, meta, files)
    return FinetuneResult(cfg, folder, meta)


def _eval_dataset(cfg: FinetuneConfig, task: TaskSpec, tokenizer):
    hp = cfg.hyperparameters()
    eval_ds = encode_split(task, load_split(cfg.task, "validation"), tokenizer, hp["max_length"],
                           hp["max_eval_examples"], seed=0)
    # Sorting the evaluation set by length changes no metric and cuts padding.
    return (eval_ds.map(lambda r: {"_len": len(r["input_ids"])}).sort("_len")
            .remove_columns("_len"))


# --- models fine-tuned elsewhere ------------------------------------------------------------
CHECKPOINT_VERSION = 1  # bump when how a checkpoint is evaluated changes
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "spiece.model", "sentencepiece.bpe.model")


def checkpoint_key(cfg: FinetuneConfig, folder: Path) -> str:
    """Names a checkpoint's evaluation: its files (``models.model_identity``), the task data and
    the preset's evaluation settings. Not the base model, the seed (only its place in a study)
    nor any training setting: the same files on the same task are the same entry."""
    hp = cfg.hyperparameters()
    return cache.content_key({
        "checkpoint": models.model_identity(str(folder)), "task": cfg.task,
        "data": data_identity(get_task(cfg.task)),
        "evaluation": {k: hp[k] for k in ("max_length", "max_eval_examples",
                                          "max_train_examples")},
        "code": [FINETUNE_VERSION, CHECKPOINT_VERSION],
    })


def check_against_base(cfg: FinetuneConfig, folder: Path) -> None:
    """The checkpoint must be the base model fine-tuned: ORIG is compared with it layer by
    layer, so architecture, width and depth have to match (configs only, no weights)."""
    ck, base = tr.AutoConfig.from_pretrained(str(folder)), models.load_config(cfg.model)
    diff = [f"{k} {getattr(ck, k, None)!r} vs {getattr(base, k, None)!r}"
            for k in ("model_type", "hidden_size", "num_hidden_layers")
            if getattr(ck, k, None) != getattr(base, k, None)]
    if diff:
        raise ConfigError(f"checkpoint {cfg.checkpoint!r} does not match the base model "
                          f"{cfg.model!r} ({'; '.join(diff)}): ORIG must be the model it was "
                          "fine-tuned from; set model= to that base model")


def _checkpoint_model(cfg: FinetuneConfig, folder: Path, task: TaskSpec) -> tr.PreTrainedModel:
    """The checkpoint with its own head, refused when the head does not fit the task."""
    name, ck = cfg.checkpoint, tr.AutoConfig.from_pretrained(str(folder))
    if task.kind != "multiple_choice":  # a multiple-choice head scores each choice: 1 output
        if ck.num_labels != task.num_labels:
            raise ConfigError(f"checkpoint {name!r} has {ck.num_labels} output labels, task "
                              f"{task.name!r} has {task.num_labels} ({', '.join(task.label_names)}"
                              f"): give a checkpoint fine-tuned on {task.name!r}, or set task= "
                              "to the task it was fine-tuned on")
        regression = ck.problem_type == "regression" or ck.num_labels == 1
        if regression != (task.kind == "regression"):
            raise ConfigError(f"checkpoint {name!r} has a "
                              f"{'regression' if regression else 'classification'} head "
                              f"(problem_type {ck.problem_type!r}), task {task.name!r} is "
                              f"{task.kind}: give a checkpoint fine-tuned on {task.name!r}")
    model, info = models.task_model_class(task).from_pretrained(str(folder),
                                                                output_loading_info=True)
    if info["missing_keys"]:  # transformers would start these from random weights
        missing = sorted(info["missing_keys"])
        raise MissingHeadError(
            f"checkpoint {name!r} has no trained {task.kind} head: {', '.join(missing[:4])} "
            f"{'are' if len(missing) > 1 else 'is'} not in its weights (saved as "
            f"{ck.architectures}). A bare encoder is a base model: use it as model= and let "
            "layerscope fine-tune it, or save the fine-tuned model with its head (e.g. "
            "AutoModelForSequenceClassification ... .save_pretrained(folder))")
    return model.eval()


def load_checkpoint(cfg: FinetuneConfig, *, verbose: bool = True) -> FinetuneResult:
    """``cfg.checkpoint`` in place of a training run: checked against the base model and the
    task (``check_against_base``, ``_checkpoint_model``), evaluated once on the validation split
    as ``train`` evaluates (metrics and majority baseline), and that cached under
    ``checkpoint_key``. The result's ``model_dir`` is the checkpoint's own folder."""
    task = get_task(cfg.task)
    folder = models.local_folder(cfg.checkpoint, models.task_model_class(task))
    check_against_base(cfg, folder)
    entry = cache.entry_dir("finetune", checkpoint_key(cfg, folder))
    if entry.exists():
        ok, reason = cache.verify(entry)
        if ok:
            return FinetuneResult(cfg, entry, cache.read_meta(entry), cached=True,
                                  checkpoint_dir=folder)
        cache.quarantine(entry, reason)
    # Without tokenizer files transformers builds an empty tokenizer instead of failing.
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise ConfigError(f"checkpoint {cfg.checkpoint!r} has no tokenizer files ({folder}); "
                          "save the tokenizer it was fine-tuned with beside the weights: "
                          f"AutoTokenizer.from_pretrained({cfg.model!r}).save_pretrained(folder)")
    t0, hp = time.time(), cfg.hyperparameters()
    model = _checkpoint_model(cfg, folder, task)
    tokenizer = models.load_tokenizer(str(folder), for_words=task.kind == "tagging")
    if verbose:
        print(f"[finetune] evaluating checkpoint {cfg.checkpoint} on {cfg.task} (no training)")
    train_ds = encode_split(task, load_split(cfg.task, "train"), tokenizer, hp["max_length"],
                            hp["max_train_examples"], seed=0)
    eval_ds = _eval_dataset(cfg, task, tokenizer)
    with tempfile.TemporaryDirectory() as tmp:  # the same evaluation as the end of ``train``
        args = tr.TrainingArguments(output_dir=tmp, report_to=[], disable_tqdm=not verbose,
                                    per_device_eval_batch_size=max(32, hp["batch_size"]),
                                    dataloader_num_workers=0,
                                    dataloader_pin_memory=torch.cuda.is_available())
        final = tr.Trainer(model=model, args=args, eval_dataset=eval_ds,
                           data_collator=collator_for(task, tokenizer),
                           compute_metrics=lambda p: _predict_metrics(task, p.predictions,
                                                                      p.label_ids)).evaluate()
    meta = {
        "config": dataclasses.asdict(cfg), "key": entry.name, "checkpoint": cfg.checkpoint,
        "checkpoint_dir": str(folder), "identity": models.model_identity(str(folder)),
        "metrics": {k[5:]: v for k, v in final.items() if k[5:] in task.metrics},
        "baseline": metrics.majority_baseline(task, _labels(train_ds), _labels(eval_ds)),
        "n_train": len(train_ds), "n_eval": len(eval_ds), "global_step": None,
        "log_history": [], "saved_steps": [], "wall_seconds": round(time.time() - t0, 1),
        "versions": _versions(),
    }
    with cache.atomic_dir(entry) as tmp_entry:  # no files of its own: the model stays put
        meta = cache.write_meta(tmp_entry, meta, [])
    return FinetuneResult(cfg, entry, cache.read_meta(entry) or meta, checkpoint_dir=folder)


def _labels(ds) -> np.ndarray:
    labels = ds["labels"]
    if isinstance(labels[0], list):
        return np.concatenate([np.asarray(x) for x in labels])
    return np.asarray(labels)


def _versions() -> dict:
    import layerscope

    return {"layerscope": layerscope.__version__, "torch": torch.__version__,
            "transformers": tr.__version__, "finetune_code": FINETUNE_VERSION}


def load_finetuned(result: FinetuneResult, step: int | None = None) -> tr.PreTrainedModel:
    """The fine-tuned task model (eval mode); ``step`` picks a snapshot saved during training."""
    task = get_task(result.config.task)
    folder = result.model_dir if step is None else result.snapshot_dir(step)
    return models.task_model_class(task).from_pretrained(str(folder)).eval()


PREDICTIONS_VERSION = 1


@dataclass(frozen=True)
class Predictions:
    """Per-example outputs of a fine-tuned model on one split (tagging: one row per word).

    predictions: [n] class ids (regression: scores); labels: [n]; logits: [n, C] (regression:
    [n, 1]); baseline: the majority-class (regression: mean) prediction of the training labels.
    """

    predictions: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    baseline: float | int


def predictions(result: FinetuneResult, split: str = "validation") -> Predictions:
    """The fine-tuned model's predictions on ``split`` (cached under ``predictions/``).

    On the validation split these reproduce ``result.metrics`` exactly (same examples, same
    encoding as training's evaluation), which notebook 01 asserts.
    """
    cfg, task = result.config, get_task(result.config.task)
    key = cache.content_key({"finetune": result.path.name, "split": split,
                             "code": PREDICTIONS_VERSION})
    folder = cache.entry_dir("predictions", key)
    names = ("predictions.npy", "labels.npy", "logits.npy")
    if folder.exists():
        ok, reason = cache.verify(folder)
        if ok:
            arrays = [np.load(folder / n) for n in names]
            return Predictions(*arrays, baseline=cache.read_meta(folder)["baseline"])
        cache.quarantine(folder, reason)
    hp = cfg.hyperparameters()
    tokenizer = tr.AutoTokenizer.from_pretrained(str(result.model_dir))
    ds = encode_split(task, load_split(cfg.task, split), tokenizer, hp["max_length"],
                      hp["max_eval_examples"] if split == "validation" else None, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        args = tr.TrainingArguments(output_dir=tmp, per_device_eval_batch_size=64, report_to=[],
                                    disable_tqdm=True, dataloader_num_workers=0,
                                    dataloader_pin_memory=torch.cuda.is_available())
        out = tr.Trainer(model=load_finetuned(result), args=args,
                         data_collator=collator_for(task, tokenizer)).predict(ds)
    logits, labels = np.asarray(out.predictions), np.asarray(out.label_ids)
    if task.kind == "tagging":  # one row per labelled word (first sub-word)
        keep = labels != -100
        logits, labels = logits[keep], labels[keep]
    logits = logits.reshape(len(labels), -1)
    preds = metrics.predictions_from_logits(task, logits)
    train_rows = subset(load_split(cfg.task, "train"), hp["max_train_examples"], seed=0)
    train_labels = (np.concatenate([np.asarray(t) for t in train_rows["tags"]])
                    if task.kind == "tagging" else np.asarray(train_rows["label"]))
    baseline = metrics.majority_prediction(task, train_labels)
    baseline = float(baseline) if task.kind == "regression" else int(baseline)
    with cache.atomic_dir(folder) as tmp:
        for n, arr in zip(names, (preds, labels, logits), strict=True):
            np.save(tmp / n, arr)
        cache.write_meta(tmp, {"finetune": result.path.name, "split": split, "key": key,
                               "baseline": baseline}, list(names))
    return Predictions(preds, labels, logits, baseline)


def summary_line(result: FinetuneResult) -> str:
    task = get_task(result.config.task)
    m, b = result.metrics, result.baseline
    main = task.primary_metric
    base = b.get(main, b.get("mse"))
    c = result.config
    who = (f"checkpoint {c.checkpoint} (from {c.model})" if c.checkpoint else c.model)
    tail = ("fine-tuned elsewhere, not trained here" if c.checkpoint else
            f"{result.meta['wall_seconds']}s, {result.meta['global_step']} steps")
    return (f"{who} on {task.name} (seed {c.seed}): {main} = "
            f"{m.get(main):.4f} vs majority baseline {base:.4f}; "
            f"{json.dumps({k: round(v, 4) for k, v in m.items() if isinstance(v, float)})}; "
            f"{tail}")
