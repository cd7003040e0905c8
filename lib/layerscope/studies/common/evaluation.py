"""Validation examples as the fine-tuned model saw them, the surgery kernels run over them, and
the parity of the model itself with ``finetune.predictions``.

Both study 03 (truncation) and 04 (skipping) evaluate a fine-tuned model on the same rows of a
split: the seeded subset ``activations.task_inputs`` picks (so that the cached CLS features of
the same ``ActivationSpec`` line up row for row), encoded exactly as fine-tuning's evaluation
and ``finetune.predictions`` encode them (``encoding.encode_split`` at the preset's
``max_length``). Batches are sorted by length and padded per batch (less padding); padding does
not change a row beyond float rounding, so the full model's logits here reproduce
``finetune.predictions`` (``parity``; asserted by both notebooks).

Sequence tasks only (classification, pair, regression): token tasks (tagging) and multiple
choice are refused by the study configs (``check_sequence_task``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ... import devices, metrics, surgery, surgery_kernels
from ...encoding import collator_for, encode_split
from ...errors import ConfigError
from ...progress import counted
from ...tasks import TaskSpec, load_split, resolve_task

SEQUENCE_KINDS = ("classification", "pair", "regression")


def check_sequence_task(task: str | TaskSpec, study: str) -> TaskSpec:
    """The task's spec (``task``: its name or spec) if it is a sequence task, else a
    ConfigError naming the fix."""
    spec = resolve_task(task)
    if spec.kind not in SEQUENCE_KINDS:
        raise ConfigError(
            f"task {spec.name!r} is a {spec.kind!r} task; the {study} study feeds the first-token "
            f"(CLS) vector to a sequence head (Phang et al. 2021 §4), so it supports "
            f"{', '.join(SEQUENCE_KINDS)} tasks only. Use e.g. 'movies', 'movies-score' or "
            f"'brown-genre' (per-token truncation of taggers is not implemented)")
    return spec


@dataclass(frozen=True)
class EvalSet:
    """n examples of one split, encoded and batched.

    rows: [n] split row indices (ascending); batches: (positions [b] into rows, model inputs
    ``input_ids``/``attention_mask``/``token_type_ids`` [b, T_batch]) sorted by length.
    """

    task: str
    split: str
    rows: np.ndarray
    batches: tuple[tuple[np.ndarray, dict], ...]

    @property
    def n(self) -> int:
        return len(self.rows)


def eval_set(task: str | TaskSpec, split: str, rows: np.ndarray, tokenizer, max_length: int, *,
             batch_size: int = 32) -> EvalSet:
    """Encode ``rows`` of ``split`` of ``task`` (its name or resolved spec) as
    ``finetune.predictions`` does, in length-sorted batches.

    batch_size 32: the extraction sweet spot on 2 CPU cores (see ``activations.extract``)."""
    spec = resolve_task(task)
    ds = encode_split(spec, load_split(spec, split).select([int(r) for r in rows]), tokenizer,
                      max_length)
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in ds.column_names]
    items = [{c: ds[i][c] for c in keep} for i in range(len(ds))]
    order = np.argsort([-len(x["input_ids"]) for x in items], kind="stable")
    collate = collator_for(spec, tokenizer)
    batches = []
    for s in range(0, len(order), batch_size):
        pos = order[s:s + batch_size]
        batches.append((pos, dict(collate([items[i] for i in pos]))))
    return EvalSet(spec.name, split, np.asarray(rows, dtype=np.int64), tuple(batches))


def _scatter(chunks: list[tuple[np.ndarray, np.ndarray]], n: int, axis: int) -> np.ndarray:
    """Put per-batch arrays back in example order along ``axis``."""
    first = chunks[0][1]
    shape = list(first.shape)
    shape[axis] = n
    out = np.empty(shape, dtype=np.float32)
    for pos, arr in chunks:
        index = [slice(None)] * len(shape)
        index[axis] = pos
        out[tuple(index)] = arr
    return out


def untuned_logits(model: nn.Module, es: EvalSet, *, dtype: str = "float32") -> np.ndarray:
    """UNTUNED truncation at every depth: [L+1, n, C] (``untuned_truncation_logits`` per batch,
    one forward pass for all layers). A model without a task head raises ``MissingHeadError``.
    dtype: compute dtype (``devices.autocast``): float32 (the default: the parity with
    ``finetune.predictions`` stays exact on every device), bfloat16/float16, or auto (bf16/fp16
    on CUDA, float32 on the CPU)."""
    dev = devices.model_device(model)
    with devices.autocast(dev, dtype):
        chunks = [(pos, devices.to_numpy(surgery_kernels.untuned_truncation_logits(
            model, devices.to_device(b, dev)))) for pos, b in counted(es.batches, "batch")]
    return _scatter(chunks, es.n, axis=1)


def span_logits(model: nn.Module, es: EvalSet, *, dtype: str = "float32"
                ) -> dict[tuple[int, int], np.ndarray]:
    """Every contiguous span skipped (``surgery_kernels.spans(L)``): {(i, j): [n, C]}.
    dtype: compute dtype, as in ``untuned_logits``."""
    dev = devices.model_device(model)
    with devices.autocast(dev, dtype):
        per_batch = [(pos, surgery_kernels.all_span_skipping_logits(model,
                                                                    devices.to_device(b, dev)))
                     for pos, b in counted(es.batches, "batch")]
    keys = list(per_batch[0][1])
    return {k: _scatter([(pos, devices.to_numpy(d[k])) for pos, d in per_batch], es.n, axis=0)
            for k in keys}


@torch.inference_mode()
def full_logits(model: nn.Module, es: EvalSet, *, dtype: str = "float32") -> np.ndarray:
    """The model itself with the empty set of blocks skipped (``surgery.skipped(model, ())``,
    i.e. nothing changed): [n, C]. Eval mode, restored afterwards. dtype: compute dtype, as in
    ``untuned_logits``."""
    if not hasattr(model, "classifier"):
        raise surgery_kernels.MissingHeadError(
            f"{type(model).__name__} has no task head; load a task model (models.load_for_task "
            f"or a fine-tuned checkpoint)")
    was = model.training
    model.eval()
    try:
        dev = devices.model_device(model)
        with surgery.skipped(model, ()), devices.autocast(dev, dtype):
            chunks = [(pos, devices.to_numpy(model(**devices.to_device(b, dev)).logits))
                      for pos, b in es.batches]
    finally:
        model.train(was)
    return _scatter(chunks, es.n, axis=0)


def parity(task: TaskSpec, seed: int, logits: np.ndarray, reference, rows: np.ndarray) -> dict:
    """The model itself here against ``finetune.predictions`` (``reference``) on ``rows``.

    logits: [n, C] of the full model on ``rows`` (in that order); reference: the
    ``finetune.Predictions`` of the whole split. Returns {seed, max_abs_logit_diff,
    prediction_agreement} (one entry of a result's ``parity``).
    """
    agree = metrics.predictions_from_logits(task, logits) == reference.predictions[rows]
    return {"seed": seed,
            "max_abs_logit_diff": float(np.abs(logits - reference.logits[rows]).max()),
            "prediction_agreement": float(np.mean(agree))}
