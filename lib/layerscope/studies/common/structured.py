"""Studies 03 and 04 on the structured kinds: extractive QA and dependency parsing.

Merchant et al. 2020 fine-tune on SQuAD and on dependency parsing next to MNLI; truncation and
skipping (Phang et al. 2021 §4) evaluate the fine-tuned head on other states. These two kinds'
heads do not give one class per unit, so they are scored through what their metrics sum:

=====================  =========  =========================================================
kind                   unit       per-unit statistics (``STATS``) and metrics (``RATIOS``)
=====================  =========  =========================================================
extractive_qa          question   ``em`` (0/1) and ``f1`` ([0, 1]) of the best span over the
                                  question's windows (``finetune.qa.evaluate``: SQuAD v1.1's
                                  definitions); EM = 100 mean em, F1 = 100 mean f1
dependency_parsing     sentence   ``n_scored`` words (punctuation by the rule), ``head_correct``,
                                  ``both_correct`` of the tree decoded from the biaffine
                                  head's scores (Chu-Liu/Edmonds, one word under ROOT);
                                  UAS = 100 Σ head_correct / Σ n_scored, LAS likewise
=====================  =========  =========================================================

The head on a layer's states is the fine-tuned model's own (``task_heads``): QA ``qa_outputs``
on every token of each window (start and end logits), the parser's biaffine arc and label
scorer on the words' first sub-words with ROOT the first token's state. The windows and
sentences are encoded as fine-tuning's evaluation encodes them (``encoding``), in
length-sorted batches; QA logits come back in window order (a question's windows together)
and every question takes its best span over its windows, so the full model reproduces
``finetune.predictions`` (``parity``). The bootstrap resamples questions or sentences
(``scoring.RatioScorer``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ... import devices, metrics, surgery, surgery_kernels
from ...encoding import collator_for, encode_split, qa_dataset, qa_windows
from ...errors import ConfigError
from ...finetune import qa as finetune_qa
from ...finetune.parser_model import decode_outputs
from ...progress import counted
from ...qa.windows import QAWindows
from ...tasks import TaskSpec, load_split
from . import task_heads

KINDS = metrics.STRUCTURED_KINDS
STATS = {"extractive_qa": ("em", "f1"),
         "dependency_parsing": ("n_scored", "head_correct", "both_correct")}
# metric -> (numerator statistic, denominator statistic or None: one per unit), in percent
RATIOS = {"f1": ("f1", None), "exact_match": ("em", None),
          "uas": ("head_correct", "n_scored"), "las": ("both_correct", "n_scored")}
MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "word_index")


def is_structured(task: TaskSpec) -> bool:
    return task.kind in KINDS


def metric_scale(task: TaskSpec) -> float:
    """Metric units per "point": 1 for fractions (accuracy 0.01 = 1 point), 100 for the
    percent metrics of QA and parsing (EM/F1, UAS/LAS), so a study's ``tolerance`` (0.01 = 1
    point) means the same for every kind."""
    return 100.0 if is_structured(task) else 1.0


def unit_scores(task: TaskSpec, metric: str, stats) -> np.ndarray:
    """Each unit's own score in percent from statistics [..., n, q]: a question's F1 or EM,
    a sentence's UAS or LAS (NaN for a sentence with no scored word)."""
    x = np.asarray(stats, dtype=np.float64)
    names = STATS[task.kind]
    num, den = RATIOS[metric]
    top = x[..., names.index(num)]
    if den is None:
        return 100.0 * top
    bottom = x[..., names.index(den)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, 100.0 * top / np.where(bottom > 0, bottom, 1), np.nan)


def unit_metrics(task: TaskSpec, stats) -> dict[str, float]:
    """Every metric of the task in percent from per-unit statistics [S, n, q] (or [n, q]),
    the mean over the S seeds (``RATIOS``)."""
    x = np.asarray(stats, dtype=np.float64)
    x = x[None] if x.ndim == 2 else x
    names, out = STATS[task.kind], {}
    for m in task.metrics:
        num, den = RATIOS[m]
        total = x[..., names.index(num)].sum(-1)
        count = x.shape[1] if den is None else x[..., names.index(den)].sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[m] = float(np.mean(100.0 * total / count))
    return out


@dataclass(frozen=True)
class StructuredSet:
    """n units (questions or sentences) of one split, encoded and batched.

    rows: [n] the units' split rows (parsing: the sentences ``max_length`` kept); batches:
    (positions [b], model inputs) sorted by length, positions into the windows (QA) or into
    the units (parsing); windows: QA's windows of the questions (``example_index`` = unit);
    golds: QA's gold answer texts per question; ids: QA's question ids; gold_heads /
    gold_labels: parsing's gold tree per sentence ([n_s] each, renumbered among kept words).
    """

    task: TaskSpec
    split: str
    rows: np.ndarray
    batches: tuple[tuple[np.ndarray, dict], ...]
    windows: QAWindows | None = None
    golds: tuple[tuple[str, ...], ...] = ()
    ids: tuple[str, ...] = ()
    gold_heads: tuple[np.ndarray, ...] = ()
    gold_labels: tuple[np.ndarray, ...] = ()

    @property
    def kind(self) -> str:
        return self.task.kind

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def n_items(self) -> int:
        """Rows of the batched arrays: windows (QA) or sentences (parsing)."""
        return len(self.windows) if self.windows is not None else self.n

    @property
    def width(self) -> int:
        """The longest window (QA, tokens) or sentence (parsing, words)."""
        if self.windows is not None:
            return int(self.windows.offsets.shape[1])
        return max(1, max(len(h) for h in self.gold_heads))

    @property
    def head(self) -> task_heads.KindHead:
        return task_heads.HEADS[self.kind]

    # --- from the head's outputs to per-unit statistics -----------------------------------

    def stats(self, outputs: np.ndarray) -> np.ndarray:
        """Per-unit statistics [n, q] (``STATS``) of one model's outputs on every item: QA
        start/end logits [N, T, 2] in window order (-inf past a window); parsing decoded
        trees [n, W, 2] (head, relation; -1 past a sentence)."""
        if self.kind == "extractive_qa":
            _, scores = finetune_qa.evaluate(self.windows, self.golds, outputs[..., 0],
                                             outputs[..., 1])
            return np.stack([scores.em_per_question, scores.f1_per_question], -1)
        heads = [outputs[i, :len(g), 0] for i, g in enumerate(self.gold_heads)]
        rels = [outputs[i, :len(g), 1] for i, g in enumerate(self.gold_heads)]
        s = metrics.parse_scores(self.task, heads, list(self.gold_heads), rels,
                                 list(self.gold_labels))
        return np.stack([s.n_scored, s.head_correct, s.both_correct], -1).astype(np.float64)

    def answers(self, outputs: np.ndarray) -> tuple[str, ...]:
        """QA: the predicted answer text of every question."""
        return finetune_qa.evaluate(self.windows, self.golds, outputs[..., 0],
                                    outputs[..., 1])[0].text

    def _fill(self) -> float:
        return -np.inf if self.kind == "extractive_qa" else -1

    def scatter(self, chunks: list[tuple[np.ndarray, np.ndarray]], axis: int) -> np.ndarray:
        """Per-batch outputs [..., b, T_b, 2] (axis: the batch axis) into item order, padded
        to ``width`` along the axis after it (-inf for QA logits, -1 for trees)."""
        first = chunks[0][1]
        shape = list(first.shape)
        shape[axis], shape[axis + 1] = self.n_items, self.width
        out = np.full(shape, self._fill(), dtype=np.float32)
        for pos, arr in chunks:
            index = [slice(None)] * len(shape)
            index[axis], index[axis + 1] = pos, slice(0, arr.shape[axis + 1])
            out[tuple(index)] = arr
        return out


def structured_set(task: TaskSpec, split: str, rows: np.ndarray, tokenizer, max_length: int,
                   *, batch_size: int = 32, data=None) -> StructuredSet:
    """Encode ``rows`` of ``split`` as fine-tuning's evaluation does (QA: windows of
    ``max_length`` tokens with the recipe's stride; parsing: sentences, the words
    ``max_length`` cuts said and their sentences kept or dropped as there), in length-sorted
    batches of ``batch_size`` windows or sentences (32: the extraction sweet spot on 2 CPU
    cores, ``activations.extract``). ``data``: those rows themselves (a ``datasets.Dataset``
    in the task's columns) instead of reading them from the split."""
    rows = np.asarray(rows, dtype=np.int64)
    if data is None:
        data = load_split(task, split).select([int(r) for r in rows])
    elif len(data) != len(rows):
        raise ConfigError(f"{len(data)} rows of data for {len(rows)} row indices")
    collate = collator_for(task, tokenizer)
    if task.kind == "extractive_qa":
        windows = qa_windows(data, tokenizer, max_length)
        ds = qa_dataset(task, windows, max_length)
        keep = [c for c in ("input_ids", "attention_mask", "token_type_ids")
                if c in ds.column_names]
        items = [{c: ds[i][c] for c in keep} for i in range(len(ds))]
        lengths = windows.lengths
        extra = {"windows": windows, "golds": tuple(tuple(a["text"]) for a in data["answers"]),
                 "ids": tuple(str(i) for i in data["id"])}
    else:
        ds = encode_split(task, data, tokenizer, max_length)
        keep = [c for c in ("input_ids", "attention_mask", "token_type_ids", "word_index")
                if c in ds.column_names]
        items = [{c: ds[i][c] for c in keep} for i in range(len(ds))]
        lengths = np.asarray([len(x["input_ids"]) for x in items])
        rows = rows[np.asarray(ds["sentence_index"], dtype=np.int64)]
        extra = {"gold_heads": tuple(np.asarray(h, dtype=np.int64) for h in ds["heads"]),
                 "gold_labels": tuple(np.asarray(d, dtype=np.int64) for d in ds["deprels"])}
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches = []
    for s in range(0, len(order), batch_size):
        pos = order[s:s + batch_size]
        b = dict(collate([items[i] for i in pos]))
        batches.append((pos, {k: v for k, v in b.items() if k in MODEL_KEYS}))
    return StructuredSet(task, split, rows, tuple(batches), **extra)


# --- passes ---------------------------------------------------------------------------------

def untuned_outputs(model: nn.Module, ss: StructuredSet, *, features: bool = False):
    """The fine-tuned head on every hidden state 0..L from one pass per batch: [L+1, N, T, 2]
    QA logits or [L+1, n, W, 2] trees (``StructuredSet.stats`` of row k scores layer k).
    ``features``: also the head's inputs of every layer from the same pass (``features``)."""
    dev, kh = devices.model_device(model), ss.head
    outs, feats = [], []
    for pos, b in counted(ss.batches, "batch"):
        got = surgery_kernels.untuned_truncation_logits(
            model, devices.to_device(b, dev), head=kh.logits,
            features=kh.features if features else None)
        lg, ft = got if features else (got, None)
        outs.append((pos, devices.to_numpy(lg.float())))
        if features:
            feats.append((pos, devices.to_numpy(ft.float())))
    out = ss.scatter(outs, axis=1)
    return (out, gather_features(ss, feats)) if features else out


def layer_features(model: nn.Module, ss: StructuredSet) -> dict:
    """The head's inputs of every layer (``features``), any model with an adapter (the
    untuned encoder too: TUNEDORIG)."""
    dev, kh = devices.model_device(model), ss.head
    chunks = [(pos, devices.to_numpy(surgery_kernels.layer_features(
        model, devices.to_device(b, dev), kh.features).float()))
        for pos, b in counted(ss.batches, "batch")]
    return gather_features(ss, chunks)


def gather_features(ss: StructuredSet, chunks: list) -> dict:
    """Per-batch features [L+1, b, T_b (+1), H] in item order: QA {"x" [L+1, N, T, H] (zero
    past each window), "lengths" [N]}; parsing {"words" [L+1, n, W, H] (zero at padding
    words), "root" [L+1, n, H], "mask" [n, W]}."""
    L1, H = chunks[0][1].shape[0], chunks[0][1].shape[-1]
    if ss.kind == "extractive_qa":
        x = np.zeros((L1, ss.n_items, ss.width, H), dtype=np.float32)
        for pos, arr in chunks:
            x[:, pos, :arr.shape[2]] = arr
        real = np.arange(ss.width)[None, :] < ss.windows.lengths[:, None]  # [N, T]
        x *= real[None, :, :, None]
        return {"x": x, "lengths": ss.windows.lengths.copy()}
    W = ss.width
    words = np.zeros((L1, ss.n, W, H), dtype=np.float32)
    root = np.zeros((L1, ss.n, H), dtype=np.float32)
    for pos, arr in chunks:  # arr [L+1, b, 1 + W_b, H]: ROOT then the words
        root[:, pos] = arr[:, :, 0]
        words[:, pos, :arr.shape[2] - 1] = arr[:, :, 1:]
    mask = np.zeros((ss.n, W), dtype=bool)
    for i, g in enumerate(ss.gold_heads):
        mask[i, :len(g)] = True
    words *= mask[None, :, :, None]
    return {"words": words, "root": root, "mask": mask}


def span_outputs(model: nn.Module, ss: StructuredSet) -> dict[tuple[int, int], np.ndarray]:
    """Every contiguous span skipped (``surgery_kernels.spans(L)``), the fine-tuned head on
    the final state: {(i, j): QA logits [N, T, 2] or trees [n, W, 2]}."""
    dev, kh = devices.model_device(model), ss.head
    per_batch = [(pos, surgery_kernels.all_span_skipping_logits(
        model, devices.to_device(b, dev), head=kh.logits))
        for pos, b in counted(ss.batches, "batch")]
    keys = list(per_batch[0][1])
    return {k: ss.scatter([(pos, devices.to_numpy(d[k].float())) for pos, d in per_batch],
                          axis=0) for k in keys}


@torch.inference_mode()
def full_outputs(model: nn.Module, ss: StructuredSet) -> np.ndarray:
    """The model itself (``surgery.skipped(model, ())``: nothing skipped), its own forward:
    QA start/end logits [N, T, 2], parsing the trees its outputs decode to [n, W, 2] (as
    ``finetune.predictions`` decodes them). Eval mode, restored afterwards."""
    was = model.training
    model.eval()
    try:
        dev, chunks = devices.model_device(model), []
        with surgery.skipped(model, ()):
            for pos, b in ss.batches:
                out = model(**devices.to_device(b, dev))
                if ss.kind == "extractive_qa":
                    arr = torch.stack([out.start_logits, out.end_logits], -1)
                else:
                    heads, rels = decode_outputs(out.arc_scores, out.label_scores)
                    arr = torch.as_tensor(np.stack([heads, rels], -1))
                chunks.append((pos, devices.to_numpy(arr.float())))
    finally:
        model.train(was)
    return ss.scatter(chunks, axis=0)


# --- the cached predictions -----------------------------------------------------------------

def reference_rows(ss: StructuredSet, reference) -> np.ndarray:
    """[n] each unit's position in ``finetune.predictions``' questions (by id) or sentences
    (by split row); a unit the predictions do not hold (the run evaluated a subset of the
    split: ``max_eval_examples``) is a RuntimeError naming it."""
    if ss.kind == "extractive_qa":
        where = {q: i for i, q in enumerate(reference.ids)}
        keys = ss.ids
    else:
        where = {int(r): i for i, r in enumerate(reference.sentence_index)}
        keys = [int(r) for r in ss.rows]
    missing = [k for k in keys if k not in where]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of the {ss.n} evaluation units (e.g. {missing[0]!r}) are not in "
            f"the fine-tuned run's cached predictions of {ss.split!r}: its evaluation covered "
            f"a subset (max_eval_examples); use n_examples within it, or the whole split")
    return np.asarray([where[k] for k in keys], dtype=np.int64)


def reference_stats(task: TaskSpec, reference) -> np.ndarray:
    """[E or S, q] per-unit statistics of ``finetune.predictions``' own answers or trees."""
    if task.kind == "extractive_qa":
        return np.stack([reference.em, reference.f1], -1).astype(np.float64)
    return np.stack([reference.n_scored, reference.head_correct, reference.both_correct],
                    -1).astype(np.float64)


def parity(ss: StructuredSet, seed: int, full: np.ndarray, reference) -> dict:
    """The model itself here (``full_outputs``) against ``finetune.predictions``: QA the
    largest start/end logit difference over every real token of the units' windows and the
    share of questions with the same answer; parsing the share of words with the same head
    and relation (the predictions keep trees, not scores: no logit difference)."""
    ref_rows = reference_rows(ss, reference)
    if ss.kind == "extractive_qa":
        w = ss.windows
        diffs, mine = [], ss.answers(full)
        for e, p in enumerate(ref_rows):
            ours = np.flatnonzero(w.example_index == e)
            theirs = np.flatnonzero(reference.example_index == p)
            if len(ours) != len(theirs) or not (w.lengths[ours]
                                                == reference.lengths[theirs]).all():
                raise RuntimeError(f"question {ss.ids[e]!r}: {len(ours)} windows here, "
                                   f"{len(theirs)} in the predictions (encoded otherwise: "
                                   f"max_length?)")
            for a, b in zip(ours, theirs, strict=True):
                n = w.lengths[a]
                diffs.append(max(np.abs(full[a, :n, 0] - reference.start_logits[b, :n]).max(),
                                 np.abs(full[a, :n, 1] - reference.end_logits[b, :n]).max()))
        agree = np.mean([m == reference.text[p] for m, p in zip(mine, ref_rows, strict=True)])
        return {"seed": seed, "max_abs_logit_diff": float(max(diffs)),
                "prediction_agreement": float(agree)}
    heads = reference.per_sentence("pred_heads")
    rels = reference.per_sentence("pred_labels")
    same, total = 0, 0
    for i, p in enumerate(ref_rows):
        n = len(ss.gold_heads[i])
        if len(heads[p]) != n:
            raise RuntimeError(f"sentence {int(ss.rows[i])}: {n} words here, {len(heads[p])} "
                               f"in the predictions (encoded otherwise: max_length?)")
        same += int(((full[i, :n, 0] == heads[p]) & (full[i, :n, 1] == rels[p])).sum())
        total += n
    return {"seed": seed, "max_abs_logit_diff": None,
            "prediction_agreement": float(same / max(total, 1))}


def baseline_stats(ss: StructuredSet, rule: dict) -> np.ndarray:
    """[n, q] statistics of the run's baseline (``finetune.predictions(...).baseline``: its
    rule) on these units: QA the context's first k words, parsing the chain in the recorded
    direction with the recorded relation everywhere (``metrics``)."""
    if ss.kind == "extractive_qa":
        k = int(rule["k"])
        contexts = ss.windows.contexts
        s = metrics.qa_scores([metrics.first_words(c, k) for c in contexts],
                              [list(g) for g in ss.golds])
        return np.stack([s.em_per_question, s.f1_per_question], -1)
    label = list(ss.task.label_names).index(rule["label"])
    heads = [metrics.chain_heads(len(g), rule["direction"]) for g in ss.gold_heads]
    s = metrics.parse_scores(ss.task, heads, list(ss.gold_heads),
                             [np.full(len(g), label) for g in ss.gold_heads],
                             list(ss.gold_labels))
    return np.stack([s.n_scored, s.head_correct, s.both_correct], -1).astype(np.float64)
