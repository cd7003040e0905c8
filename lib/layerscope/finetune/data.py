"""The data of a run: the encoded train and evaluation splits, their labels, the metrics.

What training and a checkpoint's evaluation share, so that both score the same examples the
same way.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..encoding import encode_split
from ..tasks import TOKEN_KINDS, TaskSpec, load_split
from .config import FinetuneConfig


def train_dataset(cfg: FinetuneConfig, task: TaskSpec, tokenizer):
    """The encoded training split (``max_train_examples``: a seeded subset)."""
    hp = cfg.hyperparameters()
    return encode_split(task, load_split(task, "train"), tokenizer, hp["max_length"],
                        hp["max_train_examples"], seed=0)


def eval_dataset(cfg: FinetuneConfig, task: TaskSpec, tokenizer):
    """The encoded validation split (``max_eval_examples``: a seeded subset), by length."""
    hp = cfg.hyperparameters()
    eval_ds = encode_split(task, load_split(task, "validation"), tokenizer, hp["max_length"],
                           hp["max_eval_examples"], seed=0)
    # Sorting the evaluation set by length changes no metric and cuts padding.
    return (eval_ds.map(lambda r: {"_len": len(r["input_ids"])}).sort("_len")
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
