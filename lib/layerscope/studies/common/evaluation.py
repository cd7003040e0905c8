"""Validation examples as the fine-tuned model saw them, the surgery kernels run over them, and
the parity of the model itself with ``finetune.predictions``.

Both study 03 (truncation) and 04 (skipping) evaluate a fine-tuned model on the same rows of a
split: the seeded subset ``activations.task_inputs`` picks (so that the cached CLS features of
the same ``ActivationSpec`` line up row for row), encoded exactly as fine-tuning's evaluation
and ``finetune.predictions`` encode them (``encoding.encode_split`` at the preset's
``max_length``). Batches are sorted by length and padded per batch (less padding); padding does
not change a row beyond float rounding, so the full model's logits here reproduce
``finetune.predictions`` (``parity``; asserted by both notebooks).

Every task kind is scored in *units* (``task_heads``): one per example (sequence tasks), per
question (multiple choice: one score per choice), per labelled word (tagging) or per (head,
dependent) pair (token_pair). Arrays of units are in example order (``rows``), and within an
example in word (or pair) order; ``EvalSet.groups`` says which example each unit belongs to
(the bootstrap resamples sentences, not words) and ``EvalSet.reference_rows`` where each unit
sits in ``finetune.predictions``' arrays (one row per example, or per labelled word or pair of
the whole split).
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
from ...surgery_kernels import HeadInputs
from ...tasks import TOKEN_KINDS, TaskSpec, load_split, resolve_task
from . import task_heads

SEQUENCE_KINDS = ("classification", "pair", "regression")
MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "pair_index")  # model(**...)


def check_task(task: str | TaskSpec, study: str) -> TaskSpec:
    """The task's spec (``task``: its name or spec) if its kind has a head on layer k's states
    (``task_heads.HEADS``), else a ConfigError naming the kinds that do."""
    spec = resolve_task(task)
    if spec.kind not in task_heads.HEADS:
        raise ConfigError(
            f"task {spec.name!r} is a {spec.kind!r} task; the {study} study evaluates the "
            f"fine-tuned head on layer k's states, defined for {', '.join(task_heads.HEADS)} "
            f"tasks (studies/common/task_heads.py)")
    return spec


@dataclass(frozen=True)
class EvalSet:
    """n examples of one split, encoded and batched, and the units they score.

    rows: [n] split row indices (ascending); batches: (positions [b] into rows, model inputs
    ``input_ids``/``attention_mask``/``token_type_ids`` [b, T_batch] (multiple choice
    [b, C, T_batch]), ``labels`` ([b]; tagging [b, T], -100 where no word starts; token pairs
    [b, P]) and ``pair_index`` [b, P, 2] (token pairs)) sorted by length. ``kind``: the task
    kind; ``units`` [n]: units per example (None: one each); ``labels`` [U]: gold label of each
    unit; ``reference_rows`` [U]: each unit's row in ``finetune.predictions`` (None:
    ``rows``).
    """

    task: str
    split: str
    rows: np.ndarray
    batches: tuple[tuple[np.ndarray, dict], ...]
    kind: str = "classification"
    units: np.ndarray | None = None
    labels: np.ndarray | None = None
    reference_rows: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def head(self) -> task_heads.KindHead:
        return task_heads.HEADS[self.kind]

    @property
    def unit_counts(self) -> np.ndarray:
        """[n] units of each example."""
        return np.ones(self.n, dtype=np.int64) if self.units is None else self.units

    @property
    def n_units(self) -> int:
        return int(self.unit_counts.sum())

    @property
    def groups(self) -> np.ndarray:
        """[U] the example (position in ``rows``) each unit belongs to."""
        return np.repeat(np.arange(self.n), self.unit_counts)

    def unit_positions(self, positions: np.ndarray) -> np.ndarray:
        """Unit indices [U_b] of the examples at ``positions`` (a batch), in that order."""
        counts = self.unit_counts
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        if not len(positions):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(start[p], start[p] + counts[p]) for p in positions])


def _length(item: dict) -> int:
    ids = item["input_ids"]
    return max(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)


def _split_units(spec: TaskSpec, split: str, tokenizer, max_length: int) -> np.ndarray:
    """[N] units of every row of the split, encoded as ``finetune.predictions`` encodes it."""
    kh = task_heads.for_task(spec)
    ds = encode_split(spec, load_split(spec, split), tokenizer, max_length)
    return np.asarray([kh.units_per_example(y) for y in ds["labels"]], dtype=np.int64)


def _reference_rows(spec: TaskSpec, split: str, rows: np.ndarray, units: np.ndarray,
                    tokenizer, max_length: int) -> np.ndarray:
    """[U] rows of ``finetune.predictions``' arrays for the units of ``rows``: the rows
    themselves (one prediction per example), or, for token tasks, the positions of their
    words (pairs) in the split's flattened units."""
    if spec.kind not in TOKEN_KINDS:
        return rows.copy()
    n_split = len(load_split(spec, split))
    every = units if len(rows) == n_split else _split_units(spec, split, tokenizer, max_length)
    start = np.concatenate([[0], np.cumsum(every)[:-1]])
    return np.concatenate([np.arange(start[r], start[r] + every[r]) for r in rows]
                          ).astype(np.int64)


def eval_set(task: str | TaskSpec, split: str, rows: np.ndarray, tokenizer, max_length: int, *,
             batch_size: int = 32) -> EvalSet:
    """Encode ``rows`` of ``split`` of ``task`` (its name or resolved spec) as
    ``finetune.predictions`` does, in length-sorted batches.

    batch_size 32: the extraction sweet spot on 2 CPU cores (see ``activations.extract``)."""
    spec = check_task(task, "evaluation")
    kh = task_heads.for_task(spec)
    rows = np.asarray(rows, dtype=np.int64)
    ds = encode_split(spec, load_split(spec, split).select([int(r) for r in rows]), tokenizer,
                      max_length)
    # labels too: which tokens or pairs are units (token tasks); the multiple-choice collator
    # needs them; the model itself is called without them (``MODEL_KEYS``)
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids", "pair_index",
                        "labels") if c in ds.column_names]
    gold = ds["labels"]
    items = [{c: ds[i][c] for c in keep} for i in range(len(ds))]
    order = np.argsort([-_length(x) for x in items], kind="stable")
    collate = collator_for(spec, tokenizer)
    batches = []
    for s in range(0, len(order), batch_size):
        pos = order[s:s + batch_size]
        batches.append((pos, dict(collate([items[i] for i in pos]))))
    units = np.asarray([kh.units_per_example(y) for y in gold], dtype=np.int64)
    labels = np.asarray([u for y in gold for u in kh.unit_labels(y)],
                        dtype=np.float32 if spec.kind == "regression" else np.int64)
    return EvalSet(spec.name, split, rows, tuple(batches), kind=spec.kind, units=units,
                   labels=labels,
                   reference_rows=_reference_rows(spec, split, rows, units, tokenizer,
                                                  max_length))


def _scatter(es: EvalSet, chunks: list[tuple[np.ndarray, np.ndarray]], axis: int) -> np.ndarray:
    """Put per-batch arrays of units back in unit order along ``axis``."""
    first = chunks[0][1]
    shape = list(first.shape)
    shape[axis] = es.n_units
    out = np.empty(shape, dtype=np.float32)
    for pos, arr in chunks:
        index = [slice(None)] * len(shape)
        index[axis] = es.unit_positions(pos)
        out[tuple(index)] = arr
    return out


def untuned_logits(model: nn.Module, es: EvalSet, *, dtype: str = "float32",
                   features: bool = False):
    """UNTUNED truncation at every depth: [L+1, U, C] (``untuned_truncation_logits`` per batch
    with the task kind's head, ``task_heads``; one forward pass for all layers). A model
    without a task head raises ``MissingHeadError``. dtype: compute dtype
    (``devices.autocast``): float32 (the default: the parity with ``finetune.predictions``
    stays exact on every device), bfloat16/float16, or auto (bf16/fp16 on CUDA, float32 on the
    CPU). ``features``: also return the kind's features of every layer from the same pass,
    (logits, features [L+1, U, ...])."""
    dev, kh = devices.model_device(model), es.head
    logits, feats = [], []
    with devices.autocast(dev, dtype):
        for pos, b in counted(es.batches, "batch"):
            out = surgery_kernels.untuned_truncation_logits(
                model, devices.to_device(b, dev), head=kh.logits,
                features=kh.features if features else None)
            lg, ft = out if features else (out, None)
            logits.append((pos, devices.to_numpy(lg)))
            if features:
                feats.append((pos, devices.to_numpy(ft.float())))
    if features:
        return _scatter(es, logits, axis=1), _scatter(es, feats, axis=1)
    return _scatter(es, logits, axis=1)


def layer_features(model: nn.Module, es: EvalSet, *, dtype: str = "float32") -> np.ndarray:
    """The kind's features (``task_heads``) of every layer, [L+1, U, ...] float32: one pass
    per batch, any model with an adapter (the untuned encoder included)."""
    dev, kh = devices.model_device(model), es.head
    with devices.autocast(dev, dtype):
        chunks = [(pos, devices.to_numpy(surgery_kernels.layer_features(
            model, devices.to_device(b, dev), kh.features).float()))
            for pos, b in counted(es.batches, "batch")]
    return _scatter(es, chunks, axis=1)


def span_logits(model: nn.Module, es: EvalSet, *, dtype: str = "float32"
                ) -> dict[tuple[int, int], np.ndarray]:
    """Every contiguous span skipped (``surgery_kernels.spans(L)``), the task kind's head on
    the final state: {(i, j): [U, C]}. dtype: compute dtype, as in ``untuned_logits``."""
    dev, kh = devices.model_device(model), es.head
    with devices.autocast(dev, dtype):
        per_batch = [(pos, surgery_kernels.all_span_skipping_logits(
            model, devices.to_device(b, dev), head=kh.logits))
            for pos, b in counted(es.batches, "batch")]
    keys = list(per_batch[0][1])
    return {k: _scatter(es, [(pos, devices.to_numpy(d[k])) for pos, d in per_batch], axis=0)
            for k in keys}


@torch.inference_mode()
def full_logits(model: nn.Module, es: EvalSet, *, dtype: str = "float32") -> np.ndarray:
    """The model itself with the empty set of blocks skipped (``surgery.skipped(model, ())``,
    i.e. nothing changed), its logits reduced to units (``KindHead.output_units``): [U, C].
    Eval mode, restored afterwards. dtype: compute dtype, as in ``untuned_logits``."""
    if not hasattr(model, "classifier"):
        raise surgery_kernels.MissingHeadError(
            f"{type(model).__name__} has no task head; load a task model (models.load_for_task "
            f"or a fine-tuned checkpoint)")
    was, kh = model.training, es.head
    model.eval()
    try:
        dev = devices.model_device(model)
        chunks = []
        with surgery.skipped(model, ()), devices.autocast(dev, dtype):
            for pos, b in es.batches:
                b = devices.to_device(b, dev)
                logits = model(**{k: v for k, v in b.items() if k in MODEL_KEYS}).logits
                inputs = HeadInputs(b.get("attention_mask"), None, b.get("labels"),
                                    b.get("pair_index"))
                chunks.append((pos, devices.to_numpy(kh.output_units(logits, inputs))))
    finally:
        model.train(was)
    return _scatter(es, chunks, axis=0)


def parity(task: TaskSpec, seed: int, logits: np.ndarray, reference, es: EvalSet) -> dict:
    """The model itself here against ``finetune.predictions`` (``reference``) on the units of
    ``es``.

    logits: [U, C] of the full model on ``es``'s units (in that order); reference: the
    ``finetune.Predictions`` of the whole split. Returns {seed, max_abs_logit_diff,
    prediction_agreement} (one entry of a result's ``parity``). The gold labels must agree
    (else the two encodings differ: a RuntimeError says so).
    """
    ref_rows = es.rows if es.reference_rows is None else es.reference_rows
    if len(ref_rows) != len(logits):
        raise RuntimeError(f"{len(logits)} units here, {len(ref_rows)} reference rows")
    if es.labels is not None and not np.array_equal(np.asarray(reference.labels)[ref_rows],
                                                    es.labels):
        raise RuntimeError(
            f"the gold labels of the {len(ref_rows)} evaluation units differ from those "
            f"finetune.predictions holds for them: the study encoded {es.task!r} otherwise "
            f"(max_length?) than fine-tuning's evaluation")
    agree = metrics.predictions_from_logits(task, logits) == reference.predictions[ref_rows]
    return {"seed": seed,
            "max_abs_logit_diff": float(np.abs(logits - reference.logits[ref_rows]).max()),
            "prediction_agreement": float(np.mean(agree))}
