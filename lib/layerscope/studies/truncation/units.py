"""Study 03 for multiple-choice, tagging and token-pair tasks: the lines on scored units.

Sequence tasks read cached CLS features (``run``); the other kinds score units that the
activation cache does not hold in the head's form (``studies.common.task_heads``): each
choice's first token (multiple choice), the first sub-word of each labelled word (tagging, as
fine-tuning labels it), the two words' first sub-words (token pairs). So their features come
from the passes here, every layer at once:

* UNTUNED: the fine-tuned head on layer k's states, all k and the validation features of the
  fine-tuned encoder from one forward pass per batch (``evaluation.untuned_logits(...,
  features=True)``); row L reproduces ``finetune.predictions``.
* TUNED: the head (``heads.head_params``: the choice head's two layers; the token or pair
  classifier's one linear layer) retrained on the fine-tuned encoder's layer-k features of
  ``n_train`` training examples (sentences, questions), starting from its fine-tuned weights,
  all layers as one batched model; TUNEDORIG: the same on the untuned encoder's features,
  from the same start. Token tasks hold out whole sentences for early stopping.

Features are float32 (as the UNTUNED pass that gives the validation ones), whatever ``dtype``.
"""

from __future__ import annotations

import numpy as np

from ... import activations as acts
from ... import finetune, progress
from ...tasks import TOKEN_KINDS
from ..common import evaluation
from . import heads
from .lines import Clock, Lines, defined_layers, empty_lines, ft_blocks, retrain


def unit_rows(cfg) -> tuple[np.ndarray, np.ndarray]:
    """(validation rows [n], training rows [n_train]): the seeded subsets
    ``activations.task_inputs`` picks for the config's ``activation_spec``s (the rows studies
    02 and 05 read with the same values)."""
    return (acts.task_inputs(cfg.activation_spec(), cfg.task_spec)[2],
            acts.task_inputs(cfg.activation_spec("train"), cfg.task_spec)[2])


def _eval_sets(cfg, tok, rows: np.ndarray, train_rows: np.ndarray | None):
    length = cfg.resolved_max_length()
    val = evaluation.eval_set(cfg.task_spec, cfg.split, rows, tok, length)
    train = (None if train_rows is None else
             evaluation.eval_set(cfg.task_spec, "train", train_rows, tok, length))
    return val, train


def untuned_features(cfg, rows: np.ndarray, train_rows: np.ndarray, verbose: bool) -> dict:
    """The untuned encoder's unit features (TUNEDORIG): {val [L+1, U, ...], train
    [L+1, U_train, ...], train_labels, train_groups, val_labels}."""
    words = cfg.task_spec.kind in TOKEN_KINDS
    model, tok = acts.encoder_and_tokenizer(cfg.model, for_words=words,
                                            device=cfg.resolved_device())
    val, train = _eval_sets(cfg, tok, rows, train_rows)
    progress.phase("truncation: untuned encoder features")
    return {"val": evaluation.layer_features(model, val),
            "train": evaluation.layer_features(model, train), "train_labels": train.labels,
            "train_groups": train.groups, "val_labels": val.labels}


def _check_same_units(what: str, a: np.ndarray, b: np.ndarray) -> None:
    if not np.array_equal(a, b):
        raise RuntimeError(f"the {what} units of the fine-tuned and the untuned encoder differ "
                           f"({len(a)} vs {len(b)}): their tokenizers split the words "
                           f"differently, so TUNED and TUNEDORIG would not score the same units")


def seed_lines(cfg, s: int, res, rows: np.ndarray, train_rows: np.ndarray, orig: dict | None,
               out: Lines | None, clock: Clock, log, n_seeds: int,
               no_heads: str | None) -> Lines:
    """Seed ``s`` (fine-tuned run ``res``) of every line: UNTUNED logits [L+1, U, C] and the
    validation features from one pass (parity of row L with the run's predictions), then the
    TUNED and TUNEDORIG heads of every defined layer (``orig``: the untuned features; None
    with ``no_heads``, why they are undefined). ``out``: the lines so far (None for the first
    seed: made here, sized by its logits)."""
    task = cfg.task_spec
    model, tok = acts.encoder_and_tokenizer(res, device=cfg.resolved_device())
    log(f"[truncation] seed {res.config.seed}: UNTUNED, one pass for all layers")
    val, train = _eval_sets(cfg, tok, rows, None if no_heads else train_rows)
    u, val_x = evaluation.untuned_logits(model, val, features=True)  # float32, every device
    if out is None:  # units: token tasks' words (pairs) of each sentence, at their own rows
        words = task.kind in TOKEN_KINDS
        out = empty_lines(n_seeds, u.shape[0] - 1, u.shape[1], u.shape[2], labels=val.labels,
                          groups=val.groups if words else None,
                          reference_rows=val.reference_rows if words else None)
    _check_same_units("validation", out.labels, val.labels)
    ref = finetune.predictions(res, cfg.split)
    out.parity.append(evaluation.parity(task, res.config.seed, u[-1], ref, val))
    keep = defined_layers(val_x)
    out.logits["untuned"][s][keep] = u[keep]
    if s == 0 and cfg.mark_blocks:  # FT–FT linear CKA of the features the head reads
        out.blocks = ft_blocks(val_x)
    clock.lap("untuned")
    if no_heads:
        return out
    progress.phase(f"truncation: seed {res.config.seed}: fine-tuned encoder features")
    train_x = evaluation.layer_features(model, train)
    _check_same_units("validation", orig["val_labels"], val.labels)
    _check_same_units("training", orig["train_labels"], train.labels)
    clock.lap("features")
    init = heads.head_params(model)  # TUNED and TUNEDORIG both start from it
    groups = train.groups if task.kind in TOKEN_KINDS else None
    for line, tx, vx in (("tuned", train_x, val_x), ("tunedorig", orig["train"], orig["val"])):
        log(f"[truncation] seed {res.config.seed}: {line.upper()} heads, all layers at once")
        layers, lg, record = retrain(line, init, tx, train.labels, vx, cfg.head_training(),
                                     cfg.seed + s, task.kind == "regression", groups)
        out.logits[line][s][layers] = lg
        out.fits[line].append({"seed": res.config.seed, **record})
    clock.lap("heads")
    return out
