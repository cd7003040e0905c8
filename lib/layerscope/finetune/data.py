"""The data of a run: the encoded train and evaluation splits, their labels, the metrics.

What training, a checkpoint's evaluation and ``predictions`` share, so that all three score the
same examples the same way. ``evaluation(cfg, task, tokenizer)`` is the evaluated split of a run
(``Evaluation``): its rows, the encoded dataset the Trainer evaluates (sorted by length), the
Trainer's ``compute_metrics`` and ``preprocess_logits_for_metrics`` for the kind, and the
baseline. Extractive QA scores the best span per question over its windows (``qa``);
dependency parsing decodes a tree per sentence in each evaluation batch (so the Trainer gathers
[B, W, 2] heads and labels, not [B, W + 1, W + 1, C] scores) and scores UAS/LAS (``parsing``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
import transformers as tr

from .. import metrics
from ..encoding import encode_split, qa_dataset, qa_windows, subset
from ..qa.windows import QAWindows
from ..tasks import TOKEN_KINDS, TaskSpec, load_split
from . import parsing, qa
from .config import FinetuneConfig


def train_dataset(cfg: FinetuneConfig, task: TaskSpec, tokenizer):
    """The encoded training split (``max_train_examples``: a seeded subset)."""
    hp = cfg.hyperparameters()
    return encode_split(task, load_split(task, "train"), tokenizer, hp["max_length"],
                        hp["max_train_examples"], seed=0)


def train_rows(cfg: FinetuneConfig, task: TaskSpec) -> datasets.Dataset:
    """The training rows a run trains on (the same seeded subset as ``train_dataset``)."""
    return subset(load_split(task, "train"), cfg.hyperparameters()["max_train_examples"], seed=0)


def eval_dataset(cfg: FinetuneConfig, task: TaskSpec, tokenizer):
    """The encoded validation split (``max_eval_examples``: a seeded subset), by length."""
    return evaluation(cfg, task, tokenizer).dataset


def by_length(ds: datasets.Dataset) -> datasets.Dataset:
    # Sorting the evaluation set by length changes no metric and cuts padding.
    return (ds.map(lambda r: {"_len": len(r["input_ids"])}).sort("_len")
            .remove_columns("_len"))


def predict_metrics(task: TaskSpec, logits: np.ndarray, labels: np.ndarray) -> dict:
    """The task's metrics of the Trainer's logits (tagging: labelled sub-words only;
    token_pair: labelled pairs only, logits [N, P, C] against labels [N, P], -100 = padding)."""
    preds = metrics.predictions_from_logits(task, logits)
    if task.kind in TOKEN_KINDS:
        keep = labels != -100
        return metrics.compute(task, preds[keep], labels[keep])
    return metrics.compute(task, preds, labels)


def label_array(ds) -> np.ndarray:
    """An encoded split's labels as one array (tagging: every token's, -100 included;
    token_pair: every pair's)."""
    labels = ds["labels"]
    if isinstance(labels[0], list):
        return np.concatenate([np.asarray(x, dtype=np.int64) for x in labels])
    return np.asarray(labels)


def label_names(task: TaskSpec) -> list[str] | None:
    """The Trainer's ``label_names`` (the inputs that are gold labels) where it cannot find
    them itself: a parser's ``heads`` and ``deprels``. None: the Trainer's own choice."""
    return ["heads", "deprels"] if task.kind == "dependency_parsing" else None


class OrderedEvalTrainer(tr.Trainer):
    """A ``Trainer`` whose evaluation visits the dataset in its own order. QA and parsing
    metrics map each prediction row back to its window or sentence by position, and
    transformers 5 samples evaluation batches by length, shuffled, whenever training does
    (``train_sampling_strategy="group_by_length"``). ``Evaluation.compute_metrics`` checks the
    order against the gold labels, so a Trainer that stops honouring this fails loudly."""

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None:
            return None
        return torch.utils.data.SequentialSampler(eval_dataset)


def trainer_class(task: TaskSpec) -> type[tr.Trainer]:
    """``OrderedEvalTrainer`` for the kinds scored by position (QA, parsing), else the
    Trainer itself (those metrics do not depend on the order)."""
    return OrderedEvalTrainer if task.kind in metrics.STRUCTURED_KINDS else tr.Trainer


def padded(rows, fill: int = -100) -> np.ndarray:
    """[N, W_max] int64 of N int sequences, ``fill`` after each."""
    out = np.full((len(rows), max(1, max(len(r) for r in rows))), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def check_order(task: TaskSpec, dataset, label_ids) -> None:
    """The Trainer's gathered gold labels must be the dataset's, row for row (QA: start and end
    positions; parsing: heads and relations): else predictions are not where the metrics
    look for them."""
    if label_ids is None:
        return
    if task.kind == "extractive_qa":
        ours = [np.asarray(dataset[k]) for k in ("start_positions", "end_positions")]
        theirs = [np.asarray(x).reshape(-1) for x in label_ids]
    else:
        ours = [padded(dataset[k]) for k in ("heads", "deprels")]
        theirs = [np.asarray(x) for x in label_ids]
        theirs = [t[:, :o.shape[1]] if t.shape[1] >= o.shape[1] else t for t, o in
                  zip(theirs, ours, strict=True)]
    if any(a.shape != b.shape or not np.array_equal(a, b)
           for a, b in zip(ours, theirs, strict=True)):
        raise RuntimeError(f"task {task.name!r}: the Trainer evaluated the rows out of the "
                           "dataset's order (its gold labels do not match row for row), so "
                           "predictions cannot be mapped to their questions or sentences; "
                           "evaluate with finetune.data.trainer_class(task)")


@dataclass
class Evaluation:
    """One split as a run evaluates it (module docstring).

    rows: the split's rows evaluated (a seeded subset for validation with
    ``max_eval_examples``); dataset: their encoding sorted by length (what the Trainer sees);
    windows: extractive QA's windows of ``rows`` (``dataset``'s ``window_index`` points into
    them)."""

    task: TaskSpec
    rows: datasets.Dataset
    dataset: datasets.Dataset
    windows: QAWindows | None = field(default=None, repr=False)

    def compute_metrics(self, p) -> dict:
        """The Trainer's ``compute_metrics``: the task's metrics of an ``EvalPrediction``."""
        kind = self.task.kind
        if kind in metrics.STRUCTURED_KINDS:
            check_order(self.task, self.dataset, p.label_ids)
        if kind == "extractive_qa":
            start, end = qa.window_order_logits(p.predictions, self.dataset["window_index"],
                                                self.windows)
            golds = [a["text"] for a in self.rows["answers"]]
            return metrics.qa_record(qa.evaluate(self.windows, golds, start, end)[1])
        if kind == "dependency_parsing":
            return metrics.parse_record(parsing.evaluate(self.task, self.dataset,
                                                         p.predictions).scores)
        return predict_metrics(self.task, p.predictions, p.label_ids)

    @property
    def preprocess(self):
        """The Trainer's ``preprocess_logits_for_metrics``: parsing decodes each batch's trees
        (``parsing.decode_batch``); None for the other kinds."""
        return parsing.decode_batch if self.task.kind == "dependency_parsing" else None

    def baseline(self, cfg: FinetuneConfig, train_ds) -> dict:
        """The kind's baseline on this split: the majority class (regression: the mean);
        QA: the first k context words; parsing: the better chain (``metrics``)."""
        task, kind = self.task, self.task.kind
        if kind == "extractive_qa":
            train = train_rows(cfg, task)
            return metrics.qa_baseline([a["text"] for a in train["answers"]],
                                       self.rows["context"],
                                       [a["text"] for a in self.rows["answers"]])
        if kind == "dependency_parsing":  # the encoded trees (words cut by max_length out)
            return metrics.parse_baseline(task, train_ds["heads"], train_ds["deprels"],
                                          self.dataset["heads"], self.dataset["deprels"])
        return metrics.majority_baseline(task, label_array(train_ds), label_array(self.dataset))


def evaluation(cfg: FinetuneConfig, task: TaskSpec, tokenizer,
               split: str = "validation") -> Evaluation:
    """The evaluated ``split`` of a run (validation: ``max_eval_examples``, a seeded subset;
    another split: all its rows), encoded at the preset's ``max_length``, sorted by length."""
    hp = cfg.hyperparameters()
    rows = subset(load_split(task, split),
                  hp["max_eval_examples"] if split == "validation" else None, seed=0)
    windows = None
    if task.kind == "extractive_qa":
        windows = qa_windows(rows, tokenizer, hp["max_length"])
        ds = qa_dataset(task, windows, hp["max_length"])
    else:
        ds = encode_split(task, rows, tokenizer, hp["max_length"])
    return Evaluation(task, rows, by_length(ds), windows)


def eval_batch_size(cfg: FinetuneConfig) -> int:
    """The evaluation batch of training's evaluation (predictions of QA and parsing use it too,
    in the same order, so they reproduce the recorded metrics bit for bit)."""
    return max(32, cfg.hyperparameters()["batch_size"])

