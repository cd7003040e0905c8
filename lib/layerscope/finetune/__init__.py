"""Fine-tuning with transformers' Trainer: presets from the papers, seeds, checkpoints, resume.

``load_or_train(cfg)`` returns the cached fine-tuned model for a config, training only when it is
missing; an interrupted run resumes from its last Trainer checkpoint (optimizer, scheduler, RNG
and data order included). Merchant et al. (2020) ablations are options: ``freeze_bottom=k``
freezes the embeddings and blocks 1..k; ``drop_top=k`` removes the top k blocks before tuning.

``checkpoint=`` names a model fine-tuned elsewhere (a local folder or a hub id) to use instead
of training: ``load_or_train`` then checks it against the task and the base model
(``model``, which stays ORIG), evaluates it once like a trained run and caches only that.

Modules, each importing only those above it in this list (and the plumbing below the package:
``cache``, ``models``, ``tasks``, ``encoding``, ``metrics``, ...; never ``activations`` or a
study):

* ``config``: ``Preset``/``PRESETS``, ``FinetuneConfig``, ``trace_steps``; the cache keys
  (``cache_key``, ``checkpoint_key``) and the code versions they hold.
* ``pair_model``, ``parser_model``: the task models transformers has none of,
  ``TokenPairClassifier`` (token_pair) and ``BiaffineParserModel`` (dependency_parsing: Dozat
  & Manning 2017's biaffine head on the encoder, Merchant et al. 2020), imported by
  ``models.load_for_task`` (they import nothing of this package above them).
* ``qa``, ``parsing``: how extractive QA (best span per question over its windows -> EM/F1) and
  dependency parsing (a tree per sentence -> UAS/LAS) are evaluated, and their predictions
  (``QAPredictions``, ``ParsePredictions``).
* ``data``: data collation of a run: the encoded train and evaluation splits, their labels,
  the metrics of the Trainer's predictions (``evaluation``: the evaluated split per kind).
* ``record``: the run record, ``FinetuneResult`` (an encoder source for ``activations``),
  ``load_finetuned``, ``summary_line``.
* ``checkpoint``: a model fine-tuned elsewhere, checked and evaluated (``load_checkpoint``).
* ``training``: the training loop, ``load_or_train``, ``train``, ``add_snapshots``.
* ``predict``: per-example ``predictions`` of a fine-tuned model (``Predictions``;
  ``QAPredictions`` and ``ParsePredictions`` for the two structured kinds).

The names below are the package's interface (``from layerscope import finetune;
finetune.load_or_train(...)``); callers outside the package use them, not the modules.
"""

from __future__ import annotations

from .checkpoint import TOKENIZER_FILES, check_against_base, load_checkpoint
from .config import (
    CHECKPOINT_VERSION,
    FINETUNE_VERSION,
    PRECISIONS,
    PRESET_NAMES,
    PRESETS,
    TRAINING_ONLY,
    FinetuneConfig,
    Preset,
    cache_key,
    checkpoint_key,
    trace_steps,
)
from .pair_model import TokenPairClassifier
from .parser_model import BiaffineParserModel, decode_outputs
from .parsing import ParsePredictions
from .predict import PREDICTIONS_VERSION, Predictions, predictions
from .qa import QAPredictions
from .record import FinetuneResult, load_finetuned, summary_line
from .training import add_snapshots, load_or_train, max_weight_difference, train

__all__ = [
    "CHECKPOINT_VERSION", "FINETUNE_VERSION", "PRECISIONS", "PREDICTIONS_VERSION",
    "PRESET_NAMES", "PRESETS", "TOKENIZER_FILES", "TRAINING_ONLY", "FinetuneConfig",
    "TokenPairClassifier", "BiaffineParserModel", "decode_outputs", "QAPredictions",
    "ParsePredictions",
    "FinetuneResult", "Predictions", "Preset", "add_snapshots", "cache_key",
    "check_against_base", "checkpoint_key", "load_checkpoint", "load_finetuned",
    "load_or_train", "max_weight_difference", "predictions", "summary_line", "trace_steps",
    "train",
]
