"""Long contexts as overlapping windows, answers to tokens and back (extractive QA).

The standard recipe (Devlin et al. 2019, §4.2; the Hugging Face ``question-answering`` example,
``run_qa.py``): each (question, context) pair is tokenised as ``[CLS] question [SEP] context
[SEP]`` with only the context truncated; a context longer than the room left becomes several
windows, consecutive windows sharing ``stride`` context tokens (the tokenizers' meaning of
stride, which ``run_qa.py`` passes its ``doc_stride`` as: an overlap, not a step). Defaults are
``run_qa.py``'s: max_length 384, stride 128, max_answer_length 30.

* Training labels: a window's gold span is the token range covering the first gold answer's
  characters when the answer lies wholly inside the window's context, else (start, end) = the
  CLS position, as the recipe does, so the head learns "not in this window".
* Prediction: over all windows of an example, the span (s, e) with s <= e, e - s + 1 <=
  max_answer_length and both in the context part that maximises start_logit[s] + end_logit[e]
  (raw logits compared across windows, as the recipe); its characters come from the tokens'
  offsets. This searches every valid span exactly (max_answer_length shifted vector sums per
  batch of windows), where the recipe searches only the top-20 starts x top-20 ends.

Shapes: N windows, E examples, T = the longest window's token count; offsets [N, T, 2] character
offsets into the example's context, (-1, -1) for tokens that are not context (question,
special tokens, padding); logits [N, T'] with T' >= each window's length (a model's padded
output), or one 1-D array per window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["QAWindows", "make_windows", "SpanPredictions", "best_spans",
           "MAX_LENGTH", "STRIDE", "MAX_ANSWER_LENGTH"]

MAX_LENGTH, STRIDE, MAX_ANSWER_LENGTH = 384, 128, 30  # run_qa.py's defaults


@dataclass(frozen=True)
class QAWindows:
    """The windows of E examples.

    features: the tokenizer's unpadded per-window lists (input_ids, attention_mask and
    token_type_ids where the model takes them): what a padding collator batches.
    example_index [N]: the example each window comes from (windows of one example are
    consecutive, in context order). offsets [N, T, 2] (see the module docstring); lengths [N]
    tokens per window; cls_index [N]: the CLS position (the "no answer here" label).
    start_positions / end_positions [N]: gold token span per window (None without answers).
    contexts [E]: the example contexts the offsets index.
    """
    features: dict[str, list[list[int]]]
    example_index: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    cls_index: np.ndarray
    contexts: tuple[str, ...]
    start_positions: np.ndarray | None = None
    end_positions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def n_examples(self) -> int:
        return len(self.contexts)

    @property
    def context_mask(self) -> np.ndarray:
        """[N, T] bool: the token is part of the context."""
        return self.offsets[..., 0] >= 0

    def training_features(self) -> list[dict]:
        """One dict per window (input ids etc. and the gold start/end positions), the rows a
        ``Trainer`` with a padding collator takes for ``AutoModelForQuestionAnswering``."""
        if self.start_positions is None:
            raise ConfigError("these windows were made without answers; pass answers= to"
                              " make_windows for training features")
        keys = list(self.features)
        return [dict({k: self.features[k][i] for k in keys},
                     start_positions=int(self.start_positions[i]),
                     end_positions=int(self.end_positions[i])) for i in range(len(self))]


def _check_room(tokenizer, questions: list[str], max_length: int, stride: int) -> None:
    """The tokenizers library panics (an uncatchable Rust abort) when the room left for the
    context is not more than ``stride``: refuse that here, naming the question."""
    if stride < 0 or max_length <= 0:
        raise ConfigError(f"max_length={max_length} and stride={stride}: need max_length > 0"
                          " and stride >= 0")
    special = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for i, n in enumerate(lengths):
        room = max_length - n - special
        if room <= stride:
            raise ConfigError(
                f"question {i} ({questions[i][:60]!r}...) takes {n} tokens, which leaves {room}"
                f" of max_length={max_length} for its context, not more than stride={stride};"
                " raise max_length, lower stride or shorten the question")


def make_windows(tokenizer, questions: Sequence[str], contexts: Sequence[str], *,
                 answers: Sequence[Mapping] | None = None, max_length: int = MAX_LENGTH,
                 stride: int = STRIDE) -> QAWindows:
    """Tokenise E (question, context) pairs into overlapping windows (see the module docstring).

    tokenizer: a fast Hugging Face tokenizer (offsets need one). answers: per example
    ``{"text": [...], "answer_start": [...]}`` (SQuAD rows' ``answers``); the first answer
    labels the windows, as in training. Questions are left-stripped as ``run_qa.py`` does (some
    SQuAD questions start with runs of spaces that would eat the window).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{type(tokenizer).__name__} is a slow tokenizer; windows need"
                          " character offsets, which only fast tokenizers give (load it with"
                          " use_fast=True)")
    if len(questions) != len(contexts) or (answers is not None and len(answers) != len(contexts)):
        raise ConfigError(f"{len(questions)} questions, {len(contexts)} contexts and"
                          f" {'no' if answers is None else len(answers)} answers: give one of"
                          " each per example")
    if not len(questions):
        raise ConfigError("no examples to window (questions and contexts are empty)")
    questions = [q.lstrip() for q in questions]
    contexts = list(contexts)
    question_first = tokenizer.padding_side == "right"  # run_qa.py's pad_on_right
    empty = [i for i, c in enumerate(contexts) if not c.strip()]
    if empty:
        raise ConfigError(f"example {empty[0]} has an empty context; every question needs the"
                          " passage its answer is taken from")
    _check_room(tokenizer, questions, max_length, stride)
    pair = (questions, contexts) if question_first else (contexts, questions)
    enc = tokenizer(*pair, truncation="only_second" if question_first else "only_first",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=False)
    example = np.asarray(enc.pop("overflow_to_sample_mapping"), dtype=np.int64)
    raw_offsets = enc.pop("offset_mapping")
    context_id = 1 if question_first else 0
    n, t = len(example), max(len(ids) for ids in enc["input_ids"])
    offsets = np.full((n, t, 2), -1, dtype=np.int64)
    lengths = np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)
    for i in range(n):  # one small array per window: the tokenizer's output is per window
        seq = np.array([s if s is not None else -1 for s in enc.sequence_ids(i)])
        off = np.asarray(raw_offsets[i], dtype=np.int64).reshape(-1, 2)
        offsets[i, :len(seq)][seq == context_id] = off[seq == context_id]
    cls_id = tokenizer.cls_token_id
    cls_index = np.array([ids.index(cls_id) if cls_id in ids else 0 for ids in enc["input_ids"]],
                         dtype=np.int64)
    features = {k: list(v) for k, v in enc.items()}
    starts = ends = None
    if answers is not None:
        starts, ends = _gold_positions(answers, example, offsets, cls_index)
    return QAWindows(features, example, offsets, lengths, cls_index, tuple(contexts),
                     starts, ends)


def _gold_positions(answers, example: np.ndarray, offsets: np.ndarray,
                    cls_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N] start and end token of the first gold answer in each window (CLS when the answer is
    not wholly inside the window's context). Vectorised over windows and tokens."""
    first = []
    for e, a in enumerate(answers):
        if not len(a["text"]) or len(a["text"]) != len(a["answer_start"]):
            raise ConfigError(f"example {e} has answers {dict(a)!r}; training needs at least one"
                              " answer text with its answer_start")
        first.append((int(a["answer_start"][0]), int(a["answer_start"][0]) + len(a["text"][0])))
    char = np.asarray(first, dtype=np.int64)[example]  # [N, 2] the window's example's answer
    sc, ec = char[:, :1], char[:, 1:]
    ctx = offsets[..., 0] >= 0
    pos = np.arange(offsets.shape[1])
    big = offsets.shape[1]
    first_ctx = np.where(ctx, pos, big).min(1)
    last_ctx = np.where(ctx, pos, -1).max(1)
    rows = np.arange(len(example))
    inside = (offsets[rows, first_ctx, 0] <= sc[:, 0]) & (offsets[rows, last_ctx, 1] >= ec[:, 0])
    # the recipe's two scans: start = the last context token starting at or before the answer,
    # end = the first context token ending at or after it
    start = np.where(ctx & (offsets[..., 0] <= sc), pos, -1).max(1)
    end = np.where(ctx & (offsets[..., 1] >= ec), pos, big).min(1)
    return np.where(inside, start, cls_index), np.where(inside, end, cls_index)


@dataclass(frozen=True)
class SpanPredictions:
    """The best span per example ([E] arrays, example order): its text (``contexts[e]
    [char_start:char_end]``), characters (end exclusive), window, tokens in that window
    (inclusive) and score (start_logit + end_logit)."""
    text: tuple[str, ...]
    char_start: np.ndarray
    char_end: np.ndarray
    window: np.ndarray
    token_start: np.ndarray
    token_end: np.ndarray
    score: np.ndarray


def _as_padded(logits, windows: QAWindows, what: str) -> np.ndarray:
    """[N, T] float64 logits from a [N, T'] array or N 1-D arrays (T' >= each window's length)."""
    n, t = windows.offsets.shape[:2]
    if getattr(logits, "ndim", None) == 2:  # numpy, or a CPU torch tensor without grad
        rows = list(np.asarray(logits, dtype=np.float64))
    else:
        rows = [np.asarray(r, dtype=np.float64).reshape(-1) for r in logits]
    if len(rows) != n:
        raise ConfigError(f"{what} has {len(rows)} rows but there are {n} windows; give one row"
                          " of logits per window, in window order")
    out = np.full((n, t), -np.inf)
    for i, r in enumerate(rows):
        if len(r) < windows.lengths[i]:
            raise ConfigError(f"{what} row {i} has {len(r)} logits but window {i} has"
                              f" {windows.lengths[i]} tokens; pass the model's logits unsliced")
        if not np.isfinite(r[:windows.lengths[i]]).all():
            raise ConfigError(f"{what} row {i} has NaN or infinite logits; check the model")
        out[i, :windows.lengths[i]] = r[:windows.lengths[i]]
    return out


def best_spans(windows: QAWindows, start_logits, end_logits, *,
               max_answer_length: int = MAX_ANSWER_LENGTH) -> SpanPredictions:
    """The highest-scoring valid span of each example over all its windows (module docstring).

    start_logits, end_logits: [N, T'] (or N 1-D arrays), the QA head's outputs per window.
    """
    if max_answer_length < 1:
        raise ConfigError(f"max_answer_length={max_answer_length}; it must be >= 1 token")
    ctx = windows.context_mask
    start = np.where(ctx, _as_padded(start_logits, windows, "start_logits"), -np.inf)
    end = np.where(ctx, _as_padded(end_logits, windows, "end_logits"), -np.inf)
    n, t = start.shape
    # best[w, s] = max over k < max_answer_length of start[w, s] + end[w, s + k]: one shifted
    # sum per span length, vectorised over windows and starts (ties keep the shorter span)
    end_pad = np.concatenate([end, np.full((n, max_answer_length), -np.inf)], axis=1)
    best = np.full((n, t), -np.inf)
    best_k = np.zeros((n, t), dtype=np.int64)
    for k in range(max_answer_length):
        cand = start + end_pad[:, k:k + t]
        better = cand > best
        best[better], best_k[better] = cand[better], k
    s = best.argmax(1)
    rows = np.arange(n)
    score = best[rows, s]
    # per example, the window with the highest score (first such window on ties)
    order = np.lexsort((np.arange(n), -score, windows.example_index))
    ex_sorted = windows.example_index[order]
    firsts = order[np.r_[True, ex_sorted[1:] != ex_sorted[:-1]]]
    if len(firsts) != windows.n_examples:
        raise ConfigError(f"{windows.n_examples - len(firsts)} examples have no window")
    w = firsts[np.argsort(windows.example_index[firsts])]
    if not np.isfinite(score[w]).all():
        bad = int(windows.example_index[w][~np.isfinite(score[w])][0])
        raise ConfigError(f"example {bad} has no context token in any window; check its"
                          " context is not empty")
    ts, te = s[w], s[w] + best_k[w, s[w]]
    cs, ce = windows.offsets[w, ts, 0], windows.offsets[w, te, 1]
    text = tuple(windows.contexts[e][a:b]
                 for e, a, b in zip(windows.example_index[w], cs, ce, strict=True))
    return SpanPredictions(text, cs, ce, w, ts, te, score[w])
