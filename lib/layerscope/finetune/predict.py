"""Per-example predictions of a fine-tuned model on a split (cached under ``predictions/``).

``predictions(result, split)`` returns ``Predictions`` for the kinds with one class (or score)
per example, word or pair; ``qa.QAPredictions`` for extractive QA (per-window logits, per
question the answer and its EM/F1) and ``parsing.ParsePredictions`` for dependency parsing
(per sentence the predicted and gold trees and the counts behind UAS/LAS). Those two are
computed exactly as the run's evaluation computes its metrics (same encoding, length order
and batches), so on the validation split their scores are the recorded metrics bit for bit.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import transformers as tr

from .. import cache, metrics
from ..encoding import collator_for, encode_split, subset
from ..tasks import TOKEN_KINDS, load_split
from . import parsing, qa
from .data import (
    check_order,
    eval_batch_size,
    evaluation,
    label_names,
    train_dataset,
    trainer_class,
)
from .record import FinetuneResult, load_finetuned

PREDICTIONS_VERSION = 1
STRUCTURED = {"extractive_qa": qa.QAPredictions, "dependency_parsing": parsing.ParsePredictions}
FILES = ("predictions.npy", "labels.npy", "logits.npy")


@dataclass(frozen=True)
class Predictions:
    """Per-example outputs of a fine-tuned model on one split (tagging: one row per labelled
    word; token_pair: one row per (head, dependent) pair kept after ``max_length``, in split
    order, each sentence's pairs in their order).

    predictions: [n] class ids (regression: scores); labels: [n]; logits: [n, C] (regression:
    [n, 1]); baseline: the majority-class (regression: mean) prediction of the training labels.
    """

    predictions: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    baseline: float | int


def predictions(result: FinetuneResult, split: str = "validation"
                ) -> Predictions | qa.QAPredictions | parsing.ParsePredictions:
    """The fine-tuned model's predictions on ``split`` (cached under ``predictions/``).

    On the validation split these reproduce ``result.metrics`` exactly (same examples, same
    encoding as training's evaluation), which notebook 01 asserts. Extractive QA and
    dependency parsing: ``qa.QAPredictions`` / ``parsing.ParsePredictions`` (module docstring).
    """
    key = cache.content_key({"finetune": result.path.name, "split": split,
                             "code": PREDICTIONS_VERSION})
    kind = result.config.task_spec.kind
    if kind in STRUCTURED:
        def write_structured(tmp, p) -> dict:
            p.save(tmp)
            return {"finetune": result.path.name, "split": split, "key": key, "kind": kind,
                    "baseline": p.baseline}

        return cache.load_or_compute(
            "predictions", key, compute=lambda: _predict_structured(result, split),
            write=write_structured,
            read=lambda e: STRUCTURED[kind].load(e.folder, e.meta["baseline"]))

    def write(tmp, p: Predictions) -> dict:
        for n, arr in zip(FILES, (p.predictions, p.labels, p.logits), strict=True):
            np.save(tmp / n, arr)
        return {"finetune": result.path.name, "split": split, "key": key,
                "baseline": p.baseline}

    return cache.load_or_compute(
        "predictions", key, compute=lambda: _predict(result, split), write=write,
        read=lambda e: Predictions(*[np.load(e.folder / n) for n in FILES],
                                   baseline=e.meta["baseline"]))


def _predict(result: FinetuneResult, split: str) -> Predictions:
    cfg = result.config
    task = cfg.task_spec
    hp = cfg.hyperparameters()
    tokenizer = tr.AutoTokenizer.from_pretrained(str(result.model_dir))
    ds = encode_split(task, load_split(task, split), tokenizer, hp["max_length"],
                      hp["max_eval_examples"] if split == "validation" else None, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        args = tr.TrainingArguments(output_dir=tmp, per_device_eval_batch_size=64, report_to=[],
                                    disable_tqdm=True, dataloader_num_workers=0,
                                    dataloader_pin_memory=torch.cuda.is_available())
        out = tr.Trainer(model=load_finetuned(result), args=args,
                         data_collator=collator_for(task, tokenizer)).predict(ds)
    logits, labels = np.asarray(out.predictions), np.asarray(out.label_ids)
    if task.kind in TOKEN_KINDS:  # one row per labelled word (first sub-word) or pair
        keep = labels != -100
        logits, labels = logits[keep], labels[keep]
    logits = logits.reshape(len(labels), -1)
    preds = metrics.predictions_from_logits(task, logits)
    train_rows = subset(load_split(task, "train"), hp["max_train_examples"], seed=0)
    column = {"tagging": "tags", "token_pair": "pair_labels"}.get(task.kind, "label")
    train_labels = (np.concatenate([np.asarray(t, dtype=np.int64) for t in train_rows[column]])
                    if task.kind in TOKEN_KINDS else np.asarray(train_rows[column]))
    baseline = metrics.majority_prediction(task, train_labels)
    baseline = float(baseline) if task.kind == "regression" else int(baseline)
    return Predictions(preds, labels, logits, baseline)


def _predict_structured(result: FinetuneResult, split: str):
    """QA or parsing predictions: the run's own evaluation (``data.evaluation``) of ``split``
    through ``Trainer.predict`` in the same batches, put back in split order."""
    cfg = result.config
    task = cfg.task_spec
    tokenizer = tr.AutoTokenizer.from_pretrained(str(result.model_dir))
    ev = evaluation(cfg, task, tokenizer, split)
    with tempfile.TemporaryDirectory() as tmp:
        args = tr.TrainingArguments(output_dir=tmp, report_to=[], disable_tqdm=True,
                                    dataloader_num_workers=0,
                                    dataloader_pin_memory=torch.cuda.is_available(),
                                    per_device_eval_batch_size=eval_batch_size(cfg),
                                    label_names=label_names(task))
        out = trainer_class(task)(model=load_finetuned(result), args=args,
                                  data_collator=collator_for(task, tokenizer),
                                  preprocess_logits_for_metrics=ev.preprocess
                                  ).predict(ev.dataset)
    check_order(task, ev.dataset, out.label_ids)
    baseline = result.baseline if split == "validation" else _baseline(result, ev, tokenizer)
    if task.kind == "extractive_qa":
        start, end = qa.window_order_logits(out.predictions, ev.dataset["window_index"],
                                            ev.windows)
        return qa.predictions_record(ev.windows, ev.rows, start, end, baseline)
    return parsing.predictions_record(task, ev.dataset, out.predictions, baseline)


def _baseline(result: FinetuneResult, ev, tokenizer) -> dict:
    return ev.baseline(result.config, train_dataset(result.config, result.config.task_spec,
                                                    tokenizer))
