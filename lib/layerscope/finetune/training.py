"""The training loop: transformers' Trainer with the papers' presets, snapshots and resume.

``load_or_train(cfg)`` returns the cached fine-tuned model for a config, training only when it is
missing; an interrupted run resumes from its last Trainer checkpoint (optimizer, scheduler, RNG
and data order included). Merchant et al. (2020) ablations are options: ``freeze_bottom=k``
freezes the embeddings and blocks 1..k; ``drop_top=k`` removes the top k blocks before tuning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers as tr
from safetensors.numpy import load_file

from .. import cache, devices, models, progress, surgery
from ..adapters import EncoderAdapter
from ..encoding import WORD_KINDS, collator_for
from ..errors import ConfigError
from .checkpoint import load_checkpoint, resumable_checkpoint
from .config import PRESETS, FinetuneConfig, cache_key
from .data import (
    eval_batch_size,
    evaluation,
    label_names,
    train_dataset,
    trainer_class,
)
from .record import FinetuneResult, versions


def load_or_train(cfg: FinetuneConfig, *, callbacks: list | None = None,
                  verbose: bool = True) -> FinetuneResult:
    """The fine-tuned model for ``cfg``: from the cache when present and intact, else trained;
    with ``cfg.checkpoint``, that model (``load_checkpoint``: never trained, so ``callbacks``,
    which watch training, go unused)."""
    if cfg.checkpoint is not None:
        return load_checkpoint(cfg, verbose=verbose)
    # Not cache.load_or_compute: a run is built in its entry folder, not in a temporary one, so
    # that an interrupted run leaves its Trainer checkpoints where the rerun resumes from them
    # (``meta.json``, written last, marks it finished). An unfinished entry is therefore kept;
    # one finished once and damaged since is moved aside and retrained. Building in place is
    # safe with two processes on one cache (two sweeps, Dask workers) because the entry is
    # locked: the second waits, saying so, then finds the first one's finished model.
    key = cache_key(cfg)
    folder = cache.entry_dir("finetune", key)
    with cache.locked(cache.entry_lock("finetune", key),
                      f"fine-tuning {cfg.model} on {cfg.task}, seed {cfg.seed} ({folder})"):
        meta = cache.lookup(folder, keep_unfinished=True)
        if meta is None:
            result = train(cfg, folder, callbacks=callbacks, verbose=verbose)
        else:
            result = FinetuneResult(cfg, folder, meta, cached=True)
        # snapshots asked for but not there: never saved, or removed by train as unchecked
        missing = sorted(set(cfg.save_steps) - set(result.meta.get("saved_steps", [])))
        return add_snapshots(result, missing, verbose=verbose) if missing else result


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
        replay = train(cfg.replace(save_steps=tuple(steps)), scratch,
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
    # the entry's files were verified by lookup (their recorded digests), the new snapshots
    # carry the digests taken when they were written: nothing is approved unchecked
    digests = {f: d for f, d in result.meta.get("files", {}).items() if (folder / f).is_file()}
    digests.update(snapshot_digests(folder / "steps", verified=digests))
    meta["saved_steps"] = saved_steps(digests)
    meta["snapshot_replay"] = {"steps": list(steps), "max_loss_diff": max(diffs) if diffs
                               else None, "max_weight_diff": weight_diff}
    return FinetuneResult(cfg, folder, cache.write_meta(folder, meta, digests), cached=True)


def _apply_ablations(model: tr.PreTrainedModel, cfg: FinetuneConfig) -> None:
    """Merchant et al. 2020's ablations, through the family's adapter; without an ablation no
    adapter is built, so any model that returns hidden states fine-tunes."""
    if cfg.drop_top:  # by block index through the adapter (exact for ALBERT's shared blocks)
        surgery.drop_top_blocks(model, cfg.drop_top)
    if cfg.freeze_bottom:
        ad = EncoderAdapter(model)
        if ad.shared_blocks:
            raise ValueError(f"freeze_bottom is undefined for {ad.family}: all its blocks share "
                             f"one layer's weights, so freezing block 1 freezes every block")
        if cfg.freeze_bottom > ad.n_layers:
            raise ValueError(f"freeze_bottom={cfg.freeze_bottom} exceeds the "
                             f"{ad.n_layers} blocks")
        for p in ad.embeddings_module().parameters():
            p.requires_grad_(False)
        for i in range(1, cfg.freeze_bottom + 1):
            for p in ad.block(i).parameters():
                p.requires_grad_(False)


SNAPSHOT_DIGESTS = "sha256.json"  # in each steps/step-N: its files' sha256, taken at saving


def check_snapshots(steps_dir: Path, *, say=print) -> None:
    """Remove the snapshots under ``steps_dir`` that cannot be trusted: no digest file (saved
    by an older layerscope, or cut short) or a file not matching it (damaged), and leftover
    temporary folders of a save that was killed. Each removal is said; the run saves them
    again (or ``add_snapshots`` replays them)."""
    if not steps_dir.is_dir():
        return
    for p in sorted(steps_dir.iterdir()):
        if p.name.startswith("."):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            continue
        problem = snapshot_problem(p)
        if problem:
            say(f"[finetune] removing snapshot {p} ({problem}); it is saved again")
            shutil.rmtree(p, ignore_errors=True)


def snapshot_problem(folder: Path) -> str | None:
    """Why snapshot ``folder`` does not match the digests recorded when it was saved, or None."""
    try:
        recorded = json.loads((folder / SNAPSHOT_DIGESTS).read_text())
    except (OSError, ValueError):
        return f"no readable {SNAPSHOT_DIGESTS}"
    if not isinstance(recorded, dict) or not recorded:
        return f"{SNAPSHOT_DIGESTS} lists no files"
    for rel, digest in recorded.items():
        if not (folder / rel).is_file():
            return f"{rel} is missing"
        if cache.file_sha256(folder / rel) != digest:
            return f"{rel} does not match the sha256 recorded when it was saved"
    return None


def snapshot_digests(steps_dir: Path, *, verified: dict[str, str] | None = None) -> dict:
    """``{"steps/step-N/<file>": sha256}`` of the snapshots under ``steps_dir``, from the
    digests recorded when each was saved (``SNAPSHOT_DIGESTS``, itself hashed as it is read)
    or ``verified`` (an entry's digests checked by ``cache.lookup``)."""
    verified, out = verified or {}, {}
    if not steps_dir.is_dir():
        return out
    for p in sorted(steps_dir.glob("step-*")):
        base = f"steps/{p.name}/"
        known = {f: d for f, d in verified.items() if f.startswith(base)}
        if known:
            out.update(known)
            continue
        data = (p / SNAPSHOT_DIGESTS).read_bytes()
        out.update({base + rel: d for rel, d in json.loads(data).items()})
        out[base + SNAPSHOT_DIGESTS] = hashlib.sha256(data).hexdigest()
    return out


def saved_steps(digests: dict[str, str]) -> list[int]:
    """Steps of the snapshots listed in an entry's digests."""
    return sorted({int(f.split("/")[1][5:]) for f in digests if f.startswith("steps/step-")})


class _Snapshots(tr.TrainerCallback):
    """Save the model at chosen steps, to trace representations during fine-tuning."""

    def __init__(self, folder: Path, steps: tuple[int, ...]):
        self.folder, self.steps = folder, set(steps)

    def _save(self, model, step):
        out = self.folder / f"step-{step}"
        if not out.exists():
            with cache.atomic_dir(out) as tmp:
                model.save_pretrained(tmp)
                # digests taken now, in the private folder: the entry's meta.json records
                # these, never a later re-hash of what is on disk (issue 19, item 3)
                cache.atomic_write_text(tmp / SNAPSHOT_DIGESTS,
                                        json.dumps(cache.folder_digests(tmp), indent=1))

    def on_train_begin(self, args, state, control, model=None, **kw):
        if 0 in self.steps and state.global_step == 0:
            self._save(model, 0)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step in self.steps:
            self._save(model, state.global_step)


def check_inputs_fit(cfg: FinetuneConfig, model, tokenizer, *encoded) -> None:
    """Refuse, before training, inputs longer than the model's position table: the preset's
    ``max_length`` cuts inputs, but a model with fewer positions (tiny-bert: 64) would fail
    deep inside its embeddings with a shape error that names neither."""
    max_length, limit = cfg.hyperparameters()["max_length"], models.model_max_length(model,
                                                                                     tokenizer)
    if max_length <= limit:  # the common case: nothing to read
        return
    longest = max((len(x) for ds in encoded for x in ds["input_ids"]), default=0)
    if longest > limit:
        fits = [n for n, p in PRESETS.items() if p.max_length <= limit]
        raise ConfigError(
            f"{cfg.task}: inputs of up to {longest} tokens (preset {cfg.preset!r} encodes "
            f"max_length={max_length}), but {cfg.model} takes at most {limit} (its position "
            f"table); choose a preset whose max_length is at most {limit} "
            f"({', '.join(fits) or 'none fits'}) or a model with more positions")


def train(cfg: FinetuneConfig, folder: Path, *, callbacks=None, verbose=True) -> FinetuneResult:
    """Fine-tune into ``folder`` (resuming from its checkpoints if any). See load_or_train."""
    task = cfg.task_spec
    hp = cfg.hyperparameters()
    t0 = time.time()
    tr.set_seed(cfg.seed)  # before loading: the new head's initialisation depends on the seed
    tokenizer = models.load_tokenizer(cfg.model, for_words=task.kind in WORD_KINDS)
    model = models.load_for_task(cfg.model, task)
    _apply_ablations(model, cfg)
    train_ds = train_dataset(cfg, task, tokenizer)
    ev = evaluation(cfg, task, tokenizer)
    eval_ds = ev.dataset
    check_inputs_fit(cfg, model, tokenizer, train_ds, eval_ds)
    # the entry folder only now: a model or task that cannot load (no hub) leaves no folder
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_dir = folder / "checkpoints"
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if verbose else (lambda m: None)
    resume_from = resumable_checkpoint(ckpt_dir, say=say)  # incomplete ones removed
    resume = resume_from is not None
    check_snapshots(folder / "steps", say=say)  # an earlier attempt's: checked before reuse
    device = devices.resolve_device(cfg.device)
    if device.type == "cuda":  # the Trainer trains on the current CUDA device
        torch.cuda.set_device(device)
    args = tr.TrainingArguments(
        output_dir=str(ckpt_dir), per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=eval_batch_size(cfg), learning_rate=hp["learning_rate"],
        weight_decay=0.0, optim="adamw_torch",  # weight_decay 0 makes AdamW plain Adam
        lr_scheduler_type="linear", warmup_steps=hp["warmup_steps"] or hp["warmup_ratio"],
        max_steps=hp["max_steps"], num_train_epochs=hp["num_epochs"], seed=cfg.seed,
        # log the loss at least once: a run shorter than 10 steps logged none (notebook 01's
        # learning curve was then empty)
        data_seed=cfg.seed, logging_steps=max(1, min(10, hp["eval_every"] or 10,
                                                     hp["max_steps"] if hp["max_steps"] > 0
                                                     else 10)),
        eval_strategy="steps" if hp["eval_every"] else "no", eval_steps=hp["eval_every"] or None,
        save_strategy="steps", save_steps=hp["checkpoint_every"], save_total_limit=1,
        report_to=[], disable_tqdm=not verbose, dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if hp["group_by_length"] else "random",
        # bf16 autocast; transformers refuses bf16 without a GPU unless use_cpu says CPU
        bf16=hp.get("precision") == "bf16",
        # device="cpu" on a machine with a GPU: say so (else the Trainer takes the GPU)
        use_cpu=device.type == "cpu" and (hp.get("precision") == "bf16"
                                          or devices.available_devices() != ("cpu",)),
        label_names=label_names(task),
    )
    trainer = trainer_class(task)(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        data_collator=collator_for(task, tokenizer),
        compute_metrics=ev.compute_metrics, preprocess_logits_for_metrics=ev.preprocess,
        callbacks=[_Snapshots(folder / "steps", cfg.save_steps), progress.TrainerSteps(
            f"fine-tuning {cfg.model} on {cfg.task}, seed {cfg.seed}" + "".join(
                f", {k}={getattr(cfg, k)}" for k in ("freeze_bottom", "drop_top")
                if getattr(cfg, k)))] + list(callbacks or []),
    )
    if not verbose:  # with tqdm off the Trainer prints every log dict instead; keep output clean
        trainer.remove_callback(tr.trainer_callback.PrinterCallback)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume else None)
    last = trainer.state.log_history[-2:] if trainer.state.log_history else []
    done = [h for h in last if h.get("step") == trainer.state.global_step and "eval_loss" in h]
    final = done[-1] if done else trainer.evaluate()  # reuse an evaluation at the last step
    out_metrics = {k[5:]: v for k, v in final.items() if k[5:] in task.metrics}
    baseline = ev.baseline(cfg, train_ds)
    with cache.atomic_dir(folder / "model", replace=True) as tmp_model:
        if isinstance(trainer.model, tr.PreTrainedModel):
            trainer.save_model(str(tmp_model))
        else:  # TokenPairClassifier, BiaffineParserModel: the Trainer would save its
            # weights without a config
            trainer.model.save_pretrained(str(tmp_model))
        tokenizer.save_pretrained(str(tmp_model))
        digests = cache.folder_digests(tmp_model, prefix="model/")  # as written, privately
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # resume state is no longer needed
    digests.update(snapshot_digests(folder / "steps"))
    meta = {
        "config": dataclasses.asdict(cfg), "hyperparameters": hp, "key": folder.name,
        "metrics": out_metrics, "baseline": baseline, "resumed": resume,
        "n_train": len(train_ds), "n_eval": len(eval_ds),  # QA: windows
        **({"n_eval_questions": len(ev.rows)} if task.kind == "extractive_qa" else {}),
        "global_step": trainer.state.global_step, "log_history": trainer.state.log_history,
        "saved_steps": saved_steps(digests),
        "wall_seconds": round(time.time() - t0, 1), "versions": versions(),
        "device": devices.device_record(device, "bfloat16" if hp.get("precision") == "bf16"
                                        else "float32"),
    }
    meta = cache.write_meta(folder, meta, digests)
    return FinetuneResult(cfg, folder, meta)
