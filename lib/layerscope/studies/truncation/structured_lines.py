"""Study 03 for extractive QA and dependency parsing: the lines on questions and sentences.

Merchant et al. 2020 fine-tune on SQuAD and on dependency parsing; Phang et al. 2021 §4's
lines on those heads (``studies.common.structured``):

* UNTUNED: the fine-tuned QA head (``qa_outputs`` on every token, the best span of each
  question over its windows) or biaffine parser (arc and label scores on the words, one tree
  per sentence) on hidden state k, all k from one pass per batch; row L reproduces
  ``finetune.predictions``' answers and trees (``structured.parity``).
* TUNED: that head retrained on layer k's states of the fine-tuned encoder (encoder frozen),
  ``n_train`` training questions (their windows) or sentences, from the fine-tuned head's
  weights (``structured_heads``: start/end cross-entropy; the parser's own loss); TUNEDORIG:
  the same on the untuned encoder's states, from the same start. Held-out slices are whole
  questions or sentences.

Each line holds per-unit statistics [S, L+1, n, q] (``structured.STATS``: QA em and f1,
parsing scored words and right heads / right heads and relations), which the ratio scorer
turns into EM/F1 or UAS/LAS with intervals over questions or sentences. Features are float32
on every device.
"""

from __future__ import annotations

import numpy as np

from ... import activations as acts
from ... import finetune, progress
from ..common import structured
from . import structured_heads
from .lines import Clock, Lines, defined_layers, empty_lines, ft_blocks


def _sets(cfg, tok, rows, train_rows):
    length = cfg.resolved_max_length()
    val = structured.structured_set(cfg.task_spec, cfg.split, rows, tok, length)
    train = (None if train_rows is None else
             structured.structured_set(cfg.task_spec, "train", train_rows, tok, length))
    return val, train


def untuned_features(cfg, rows: np.ndarray, train_rows: np.ndarray) -> dict:
    """The untuned encoder's head inputs (TUNEDORIG): {val, train} feature dicts
    (``structured.gather_features``)."""
    words = cfg.task_spec.kind == "dependency_parsing"
    model, tok = acts.encoder_and_tokenizer(cfg.model, for_words=words,
                                            device=cfg.resolved_device())
    val, train = _sets(cfg, tok, rows, train_rows)
    progress.phase("truncation: untuned encoder features")
    return {"val": structured.layer_features(model, val),
            "train": structured.layer_features(model, train), "n_val": val.n,
            "n_train_items": train.n_items}


def _main(feats: dict) -> np.ndarray:
    """The features whose variation across units defines a layer: QA token states, parsing
    word states ([L+1, items, ..., H])."""
    return feats["x"] if "x" in feats else feats["words"]


def _retrain(line: str, model, train, train_x: dict, val_x: dict, cfg, seed: int,
             L: int) -> tuple[list[int], np.ndarray, dict]:
    """One line's heads for every layer defined in both feature sets -> (layers, outputs
    [K, items, width, 2] as ``structured.StructuredSet.stats`` reads them, record)."""
    both = set(defined_layers(_main(val_x)))
    layers = [k for k in defined_layers(_main(train_x)) if k in both]
    settings = cfg.head_training()
    if train.kind == "extractive_qa":
        w = train.windows
        heads, record = structured_heads.train_qa_heads(
            model.qa_outputs, train_x["x"][layers], w.lengths, w.start_positions,
            w.end_positions, w.example_index, settings=settings, seed=seed)
        start, end = structured_heads.apply_qa_heads(heads, val_x["x"][layers],
                                                     val_x["lengths"])
        out = np.stack([start, end], -1)
    else:
        gold_h = _padded(train.gold_heads, train_x["mask"].shape[1])
        gold_r = _padded(train.gold_labels, train_x["mask"].shape[1])
        heads, record = structured_heads.train_parser_heads(
            model.parser, train_x["words"][layers], train_x["root"][layers], train_x["mask"],
            gold_h, gold_r, settings=settings, seed=seed)
        ph, pl = structured_heads.apply_parser_heads(heads, val_x["words"][layers],
                                                     val_x["root"][layers], val_x["mask"])
        out = np.stack([ph, pl], -1)
    return layers, out, {"line": line, "layers": layers, **record}


def _padded(seqs, width: int) -> np.ndarray:
    out = np.full((len(seqs), width), -100, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def seed_lines(cfg, s: int, res, rows: np.ndarray, train_rows: np.ndarray, orig: dict | None,
               out: Lines | None, clock: Clock, log, n_seeds: int,
               no_heads: str | None) -> Lines:
    """Seed ``s`` (fine-tuned run ``res``) of every line into ``out`` (None for the first
    seed: made here): UNTUNED statistics from one pass with the validation features, the
    parity of row L with the run's predictions, then TUNED and TUNEDORIG of every defined
    layer (``orig``: the untuned features; None with ``no_heads``)."""
    task = cfg.task_spec
    model, tok = acts.encoder_and_tokenizer(res, device=cfg.resolved_device())
    log(f"[truncation] seed {res.config.seed}: UNTUNED, one pass for all layers")
    val, train = _sets(cfg, tok, rows, None if no_heads else train_rows)
    u, val_x = structured.untuned_outputs(model, val, features=True)
    L = u.shape[0] - 1
    ref = finetune.predictions(res, cfg.split)
    ref_rows = structured.reference_rows(val, ref)
    if out is None:
        q = len(structured.STATS[task.kind])
        out = empty_lines(n_seeds, L, val.n, q, dtype=np.float64, labels=ref_rows,
                          groups=None, reference_rows=ref_rows)
        out.unit_rows = val.rows  # parsing: the sentences max_length kept
        out.baseline_stats = structured.baseline_stats(val, ref.baseline)
    if not np.array_equal(out.reference_rows, ref_rows):
        raise RuntimeError(f"seed {res.config.seed} scores other units than the first seed "
                           f"(its tokenizer encodes the split otherwise)")
    out.parity.append(structured.parity(val, res.config.seed, u[L], ref))
    keep = defined_layers(_main(val_x))
    for k in keep:
        out.logits["untuned"][s][k] = val.stats(u[k])
    if s == 0 and cfg.mark_blocks:  # FT–FT linear CKA of the states the head reads
        out.blocks = ft_blocks(_unit_states(val_x))
    clock.lap("untuned")
    if no_heads:
        return out
    progress.phase(f"truncation: seed {res.config.seed}: fine-tuned encoder features")
    train_x = structured.layer_features(model, train)
    if orig["n_val"] != val.n or orig["n_train_items"] != train.n_items:
        raise RuntimeError("the fine-tuned and the untuned encoder's tokenizers encode the "
                           "questions or sentences differently, so TUNED and TUNEDORIG would "
                           "not score the same units")
    clock.lap("features")
    for line, tx, vx in (("tuned", train_x, val_x), ("tunedorig", orig["train"], orig["val"])):
        log(f"[truncation] seed {res.config.seed}: {line.upper()} heads, every layer")
        layers, outputs, record = _retrain(line, model, train, tx, vx, cfg, cfg.seed + s, L)
        for i, k in enumerate(layers):
            out.logits[line][s][k] = val.stats(outputs[i])
        out.fits[line].append({"seed": res.config.seed, **record})
    clock.lap("heads")
    return out


def _unit_states(feats: dict) -> np.ndarray:
    """[L+1, rows, H] for the FT–FT block structure: QA the mean state of each window's real
    tokens (a window's tokens are not independent rows, and all of SQuAD's tokens would make
    the CKA matrix cost O(tokens)), parsing every real word's state."""
    if "x" in feats:
        x, n = feats["x"], feats["lengths"]
        return x.sum(2) / n[None, :, None]  # zero past each window's length
    return feats["words"][:, feats["mask"]]
