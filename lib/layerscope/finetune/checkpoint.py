"""Models fine-tuned elsewhere (``FinetuneConfig(checkpoint=...)``): checked, evaluated once.

Nothing is trained: the checkpoint is checked against the base model and the task, evaluated
on the validation split as a training run is at its end, and only that evaluation is cached.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import transformers as tr

from .. import cache, models
from ..encoding import WORD_KINDS, collator_for
from ..errors import ConfigError, MissingHeadError
from ..tasks import TaskSpec
from .config import FinetuneConfig, checkpoint_key
from .data import (
    eval_batch_size,
    evaluation,
    label_names,
    train_dataset,
    trainer_class,
)
from .record import FinetuneResult, versions

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "spiece.model", "sentencepiece.bpe.model")


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
    # a multiple-choice head scores each choice (1 output), a QA head each token's start and
    # end (2): neither has one output per label
    if task.kind not in ("multiple_choice", "extractive_qa"):
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
    task = cfg.task_spec
    folder = models.local_folder(cfg.checkpoint, models.task_model_class(task))
    check_against_base(cfg, folder)
    key = checkpoint_key(cfg, folder)
    return cache.load_or_compute(  # no files of its own: the model stays put
        "finetune", key, compute=lambda: _evaluate(cfg, folder, task, key, verbose=verbose),
        write=lambda tmp, meta: meta,
        read=lambda e: FinetuneResult(cfg, e.folder, e.meta, cached=not e.computed,
                                      checkpoint_dir=folder))


def _evaluate(cfg: FinetuneConfig, folder: Path, task: TaskSpec, key: str, *,
              verbose: bool) -> dict:
    """The entry's sidecar: the checkpoint's metrics and the majority baseline."""
    # Without tokenizer files transformers builds an empty tokenizer instead of failing.
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise ConfigError(f"checkpoint {cfg.checkpoint!r} has no tokenizer files ({folder}); "
                          "save the tokenizer it was fine-tuned with beside the weights: "
                          f"AutoTokenizer.from_pretrained({cfg.model!r}).save_pretrained(folder)")
    t0 = time.time()
    model = _checkpoint_model(cfg, folder, task)
    tokenizer = models.load_tokenizer(str(folder), for_words=task.kind in WORD_KINDS)
    if verbose:
        print(f"[finetune] evaluating checkpoint {cfg.checkpoint} on {cfg.task} (no training)")
    train_ds = train_dataset(cfg, task, tokenizer)
    ev = evaluation(cfg, task, tokenizer)
    with tempfile.TemporaryDirectory() as tmp:  # the same evaluation as the end of ``train``
        args = tr.TrainingArguments(output_dir=tmp, report_to=[], disable_tqdm=not verbose,
                                    per_device_eval_batch_size=eval_batch_size(cfg),
                                    dataloader_num_workers=0,
                                    dataloader_pin_memory=torch.cuda.is_available(),
                                    label_names=label_names(task))
        final = trainer_class(task)(model=model, args=args, eval_dataset=ev.dataset,
                           data_collator=collator_for(task, tokenizer),
                           compute_metrics=ev.compute_metrics,
                           preprocess_logits_for_metrics=ev.preprocess).evaluate()
    return {
        "config": dataclasses.asdict(cfg), "key": key, "checkpoint": cfg.checkpoint,
        "checkpoint_dir": str(folder), "identity": models.model_identity(str(folder)),
        "metrics": {k[5:]: v for k, v in final.items() if k[5:] in task.metrics},
        "baseline": ev.baseline(cfg, train_ds),
        "n_train": len(train_ds), "n_eval": len(ev.dataset), "global_step": None,
        "log_history": [], "saved_steps": [], "wall_seconds": round(time.time() - t0, 1),
        "versions": versions(),
    }


# What a Trainer checkpoint needs to resume (transformers ``Trainer._save_checkpoint``): the
# weights, the optimizer and scheduler, and ``trainer_state.json``, which it writes last.
RESUME_FILES = ("optimizer.pt", "scheduler.pt", "trainer_state.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def trainer_checkpoint_problem(folder: Path) -> str | None:
    """Why the Trainer checkpoint ``folder`` (``checkpoint-N``) cannot be resumed from, or
    None: a file missing, or ``trainer_state.json`` unreadable (a kill or a full disk while it
    was saved)."""
    missing = [f for f in RESUME_FILES if not (folder / f).is_file()]
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        missing.insert(0, WEIGHT_FILES[0])
    if missing:
        return f"{', '.join(missing)} missing"
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
        int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"trainer_state.json unreadable ({type(e).__name__}: {e})"
    return None


def resumable_checkpoint(ckpt_dir: Path, *, say=print) -> Path | None:
    """The newest complete Trainer checkpoint under ``ckpt_dir`` to resume from, or None.

    Incomplete ones (``trainer_checkpoint_problem``) are removed, each said so: left in place,
    the Trainer would pick the newest by its step number and fail on the missing file on every
    later run of the config. Any complete one older than the newest is kept: it is the fallback
    when the newest turns out incomplete.
    """
    if not ckpt_dir.is_dir():
        return None

    def step(p: Path) -> int:
        tail = p.name.rpartition("-")[2]
        return int(tail) if tail.isdigit() else -1

    found = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir()), key=step)
    newest = None
    for p in found:
        problem = trainer_checkpoint_problem(p)
        if problem is None:
            newest = p
            continue
        say(f"[finetune] removing incomplete Trainer checkpoint {p} ({problem})")
        shutil.rmtree(p, ignore_errors=True)
        if p == found[-1]:
            say(f"[finetune] resuming from {newest.name}" if newest is not None else
                "[finetune] no complete checkpoint left: training from the start")
    return newest
