"""Per-layer representations of a task split, pooled per example (or per word), and cached.

Layer convention (package-wide): index 0 is the embedding output, index i (1..L) the output of
block i, exactly Hugging Face ``hidden_states[i]``. One forward pass with
``output_hidden_states=True`` gives all L+1 layers.

Poolings (what one row of a layer's [n, d] matrix is):

* ``cls``: the first token (``[CLS]``; RoBERTa's ``<s>``), the vector Phang et al. (2021, §3)
  compare. At layer 0 it is the same for every sentence in BERT-style models (token embedding +
  position 0 + segment 0), so similarity measures with it are undefined (see ``cka``).
* ``mean``: the attention-masked mean over all tokens, special tokens included.
* ``word`` (tagging tasks): one row per word, the word's vector (below); words cut by
  ``max_length`` are dropped (listed in ``ids``), and so are words tagged -1 ("not a target
  word": STREUSLE's PS-role/PS-fxn label single-token prepositions only). A token_pair task
  has no per-word labels: ``word`` pooling on one is refused (use ``pair``).
* ``pair`` on a token_pair task (Zhou & Srikumar 2022's DEP): one row per (head, dependent)
  pair of the sentence whose two words are complete after ``max_length``, the concatenation
  [v_head ; v_dep] (§3.2: "We concatenate their contextualized representations"); label =
  the pair's relation; ids = (row, pair index in the row's ``pairs``).
* ``pair`` on a tagging task: the concatenation [word_i ; word_{i+k}] of two complete words of
  one sentence with ``k = pair_offset`` (default 1: adjacent words), neither tagged -1;
  label = tag_i * n_tags + tag_{i+k}; ids = (row, i).
* dependency_parsing (Merchant et al. 2020's parsing): ``word`` as for tagging, one row per
  complete word, label = the word's relation (its ``deprels`` index, the root's included), so
  probes and DirectProbe read relations per word; ``pair``: one row per non-root arc whose
  two words are complete, [v_head ; v_dependent] as for token_pair, label = the dependent's
  relation; ids = (row, dependent word) for both (a word has one head, so the dependent
  names its arc).
* extractive_qa (Merchant et al. 2020's SQuAD): one row per question, read off the windows
  fine-tuning sees (``qa.windows.make_windows``: ``[CLS] question [SEP] context [SEP]``, only
  the context truncated, consecutive windows overlapping by ``encoding.qa_stride(max_length)``
  tokens). ``cls``: the first token of the question's first window; ``mean``: the mean over
  every token of that window (question, context and special tokens); ``context``: the mean
  over the context tokens of that window (``QAWindows.context_mask``); ``answer``: the mean
  over the gold answer's tokens (the first answer's token span, exactly the start/end targets
  fine-tuning trains on) in the first window that holds the whole span. A question whose answer
  no window holds is dropped from ``answer`` rows and counted (``answers_dropped``), as cut
  words are. Labels -1 (no class); ids = (row, -1).

A word's vector (``word_vector``, used by ``word`` and ``pair``): "mean" of its sub-words (Zhou
& Srikumar 2022, §3; the default) or its "first" sub-word (the usual fine-tuning choice, as
``finetune.pair_model`` reads a pair).

Truncation is never silent: every extraction counts the examples whose tokens were cut by
``max_length`` and the words and pairs dropped with them, prints one line saying how many and
the fix (raise max_length), and keeps the counts in ``Activations.meta["truncation"]`` (and
the cache entry's meta). For extractive QA an example is cut when its context needs more than
one window (its rows read one window: the first, or for ``answer`` the first holding the
answer), and the counts add ``answers_dropped`` and the window ``stride``.

What is encoded per task kind: ``text`` (classification, regression), ``text`` + ``text_pair``
as one segment pair (pair tasks), the pre-split ``tokens`` (tagging, token_pair, dependency
parsing), for multiple choice ``context`` + the *first* choice (label-independent, so every
model sees the same inputs; the row label is the gold choice index), and for extractive QA
``question`` + ``context`` in windows (``QAExample``).

Batches are sorted by length and padded per batch; padding never changes a row (tested across
batch compositions). Results are cached content-addressed under ``<home>/cache/activations/``:
key = weights fingerprint + tokenizer + task data + every ``ActivationSpec`` field + code
version; files are written into a temporary folder and renamed into place, verified against
their sha256 on load (a corrupt entry is quarantined and recomputed) and memory-mapped.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import cache, devices, models
from .encoding import qa_stride
from .errors import CacheError, ConfigError
from .progress import counted
from .qa.windows import make_windows
from .tasks import TOKEN_KINDS, ResolvedTask, TaskSpec, data_identity, key_name, load_split

POOLINGS: tuple[str, ...] = ("cls", "mean", "word", "pair", "context", "answer")
SENTENCE_POOLINGS: tuple[str, ...] = ("cls", "mean")  # one row per example, any kind
WORD_POOLINGS: tuple[str, ...] = ("word", "pair")  # rows on words of pre-split sentences
QA_POOLINGS: tuple[str, ...] = ("cls", "mean", "context", "answer")  # extractive_qa's
# kinds whose examples are pre-split words (their tokenizer: models.load_tokenizer(for_words=))
WORD_KINDS: tuple[str, ...] = (*TOKEN_KINDS, "dependency_parsing")
# a study's pooling "auto": what each kind's labels sit on (Phang et al.'s CLS for sentences,
# Zhou & Srikumar's words for tagging and (head, dependent) pairs for DEP, words for parsing:
# its relations are per word). Extractive QA: the context mean, because the QA head reads
# every context token (a start and an end logit each) and CLS only as "no answer here".
KIND_POOLING = {"tagging": "word", "token_pair": "pair", "dependency_parsing": "word",
                "extractive_qa": "context"}


def pooling_for(pooling: str, kind: str) -> str:
    """``pooling`` as given, or for "auto" the pooling of the task kind: "word" (tagging,
    dependency_parsing), "pair" (token_pair), "context" (extractive_qa), else "cls"."""
    return KIND_POOLING.get(kind, "cls") if pooling == "auto" else pooling


def poolings_for(kind: str) -> tuple[str, ...]:
    """The poolings a task of ``kind`` takes (``ActivationSpec`` refuses the others)."""
    if kind == "extractive_qa":
        return QA_POOLINGS
    if kind == "token_pair":
        return ("cls", "mean", "pair")
    if kind in WORD_KINDS:
        return (*SENTENCE_POOLINGS, *WORD_POOLINGS)
    return SENTENCE_POOLINGS


@dataclass(frozen=True)
class QAExample:
    """One extractive-QA example to encode: its ``question``, ``context`` and ``answers``
    (SQuAD's ``{"text": [...], "answer_start": [...]}``; the first answer gives the ``answer``
    pooling's span; None: no answer, for the other poolings)."""

    question: str
    context: str
    answers: dict | None = None
WORD_VECTORS: tuple[str, ...] = ("mean", "first")  # a word's vector: sub-words' mean, or the first
DTYPES: tuple[str, ...] = ("float32", "bfloat16")
ACTIVATIONS_VERSION = 1  # bump when extraction semantics change: old cache entries stop matching
_FILES = ("states.npy", "labels.npy", "ids.npy")


@dataclass(frozen=True)
class ActivationSpec(ResolvedTask):
    """Which representations to extract (the model is given separately, by its weights).

    Attributes:
        task: a task name (``tasks.TASK_NAMES``) or its ``TaskSpec``, resolved once into
            ``task_spec`` (``tasks.ResolvedTask``).
        split: one of the task's splits; Phang et al. (2021) use validation examples.
        n_examples: seeded random subset of this many examples (None: the whole split).
        pooling: one of ``POOLINGS`` that the task's kind takes (``poolings_for``; see the
            module docstring).
        dtype: compute dtype, one of ``DTYPES`` (``devices.autocast``); stored as float32.
        max_length: tokens per example after truncation, special tokens included.
        seed: seed of the example subset.
        pair_offset: ``pair`` pooling of a tagging task pairs word i with word i + pair_offset
            (a token_pair task's pairs are its own: leave it at 1).
        word_vector: a word's vector for ``word``/``pair`` pooling, one of ``WORD_VECTORS``:
            "mean" of its sub-words (Zhou & Srikumar 2022 §3) or its "first" sub-word. Left
            out of the cache key at "mean" and for sentence poolings (keys made before it
            existed still hold).
    """

    task: str | TaskSpec
    split: str = "validation"
    n_examples: int | None = 1000
    pooling: str = "cls"
    dtype: str = "float32"
    max_length: int = 128
    seed: int = 0
    pair_offset: int = 1
    word_vector: str = "mean"

    def __post_init__(self):
        spec = self._resolve_task()
        if self.split not in spec.splits:
            raise ValueError(f"task {self.task!r} has no split {self.split!r}; "
                             f"use one of {list(spec.splits)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; use one of {POOLINGS}")
        if self.pooling in ("context", "answer") and spec.kind != "extractive_qa":
            raise ValueError(f"pooling {self.pooling!r} reads a question's "
                             f"{'context' if self.pooling == 'context' else 'gold answer'} "
                             f"tokens: it needs an extractive_qa task (e.g. tiny-squad, "
                             f"squad); task {self.task!r} is {spec.kind!r}: use one of "
                             f"{poolings_for(spec.kind)}")
        if spec.kind == "extractive_qa" and self.pooling not in QA_POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} needs pre-split words; task "
                             f"{self.task!r} is extractive_qa (question + context): use one of "
                             f"{QA_POOLINGS} ('context': the mean over the context tokens, "
                             f"'answer': over the gold answer's)")
        if self.pooling in WORD_POOLINGS and spec.kind not in WORD_KINDS:
            raise ValueError(f"pooling {self.pooling!r} needs a token task (kind 'tagging', e.g. "
                             f"brown-pos or tiny-pos, 'dependency_parsing', e.g. tiny-parse, or "
                             f"'token_pair' for 'pair', e.g. tiny-dep); task {self.task!r} is "
                             f"{spec.kind!r}: use pooling 'cls' or 'mean'")
        if self.pooling == "word" and spec.kind == "token_pair":
            raise ValueError(f"pooling 'word' needs per-word labels; task {self.task!r} is "
                             f"token_pair (labels on (head, dependent) pairs): use pooling "
                             f"'pair' (the two words' vectors concatenated)")
        if spec.kind in ("token_pair", "dependency_parsing") and self.pair_offset != 1:
            raise ValueError(f"pair_offset={self.pair_offset!r}: a {spec.kind} task's pairs are "
                             f"its own (head, dependent) arcs, not words k apart; leave "
                             f"pair_offset at 1")
        if self.word_vector not in WORD_VECTORS:
            raise ValueError(f"unknown word_vector {self.word_vector!r}; use one of "
                             f"{WORD_VECTORS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; use one of {DTYPES}")
        if self.n_examples is not None and (not isinstance(self.n_examples, int)
                                            or self.n_examples < 1):
            raise ValueError(f"n_examples={self.n_examples!r} must be a positive int "
                             f"(or None for the whole split)")
        if not isinstance(self.max_length, int) or self.max_length < 3:
            raise ValueError(f"max_length={self.max_length!r} must be an int >= 3 (room for the "
                             f"special tokens and one token of text)")
        if not isinstance(self.pair_offset, int) or self.pair_offset < 1:
            raise ValueError(f"pair_offset={self.pair_offset!r} must be an int >= 1")


@dataclass(frozen=True)
class Activations:
    """Pooled representations at every layer.

    Attributes:
        states: [L+1, n, d] float32 (memory-mapped, read-only, when loaded from the cache).
        labels: [n] task labels (int64; float32 for regression; -1 when the task has none
            at this granularity, e.g. a sentence pooling of a tagging task, or any extractive
            QA pooling; a dependency_parsing word's (or arc's dependent's) relation).
        ids: [n, 2] int64: (row index in the split, word index; the pair index in the row's
            ``pairs`` for ``pair`` pooling of a token_pair task, the dependent word for
            ``pair`` pooling of a dependency_parsing task; -1 for sentence and QA poolings).
        spec: what was extracted.
        key: the cache key (content hash).
        path: the cache folder (None when not cached).
        meta: the cache entry's meta; ``meta["truncation"]`` counts what ``max_length`` cut
            (``TRUNCATION_FIELDS``).
    """

    states: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    spec: ActivationSpec
    key: str
    path: Path | None = None
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_layers(self) -> int:
        """Number of blocks L (``states`` holds L+1 layers)."""
        return self.states.shape[0] - 1

    def layer(self, i: int) -> np.ndarray:
        """Layer i's [n, d] matrix (0 = embedding output, i = output of block i)."""
        if not isinstance(i, (int, np.integer)) or not 0 <= i <= self.n_layers:
            raise ValueError(f"layer index {i!r} out of range: this model has layers "
                             f"0..{self.n_layers} (0 = embedding output, i = output of block i)")
        return self.states[i]


def aligned_rows(x: Activations, y: Activations) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (ix, iy) of ``x`` and ``y`` that hold the same examples: x row ix[k] and
    y row iy[k] are one (split row, word). Sentence poolings of one spec match row for row
    (ix = iy = arange(n)); words can be cut differently by two tokenizers at ``max_length``,
    and then only the shared words are kept (in (row, word) order). Fewer than 4 shared rows
    raise a ``ConfigError``."""
    if x.ids.shape == y.ids.shape and (x.ids == y.ids).all():
        idx = np.arange(len(x.ids))
        return idx, idx
    kx = x.ids[:, 0] * 1_000_003 + x.ids[:, 1]
    ky = y.ids[:, 0] * 1_000_003 + y.ids[:, 1]
    _, ix, iy = np.intersect1d(kx, ky, return_indices=True)
    if len(ix) < 4:
        raise ConfigError("the two models share fewer than 4 rows after truncation; "
                          "raise max_length")
    return ix, iy


# --------------------------------------------------------------------------- inputs
def spec_task(spec: ActivationSpec, task: TaskSpec | None = None) -> TaskSpec:
    """``spec``'s task: ``task`` where the caller resolved it once (it must be the one
    ``spec.task`` names), else the one the spec resolved (``spec.task_spec``)."""
    if task is None:
        return spec.task_spec
    if task.name != spec.task:
        raise ValueError(f"task {task.name!r} given for an ActivationSpec of task {spec.task!r}")
    return task


def task_inputs(spec: ActivationSpec, task: TaskSpec | None = None
                ) -> tuple[list, np.ndarray, np.ndarray]:
    """Examples to encode, their labels and split row indices for ``spec`` (``task``: its
    resolved task, if the caller has it; see ``spec_task``).

    Returns:
        (examples, labels, rows): examples are ``str``, ``(text, text_pair)`` tuples, word
        lists (token tasks, dependency parsing) or ``QAExample``s (extractive QA); labels [n]
        (per example; for tagging, an object array of tag lists; for token_pair, of
        ``{"pairs": [[head, dep]], "pair_labels": [int]}`` dicts; for dependency parsing, of
        ``{"heads": [int], "deprels": [int]}`` dicts (CoNLL-U heads: 0 = root, else 1-based);
        for extractive QA -1, no class); rows [n] int64 indices into the split, ascending.
    """
    examples, labels, rows = _task_inputs(spec, cache.canonical_json(
        data_identity(spec_task(spec, task))))
    return copy.deepcopy(examples), copy.deepcopy(labels), rows.copy()


@functools.lru_cache(maxsize=8)
def _task_inputs(spec: ActivationSpec, data: str) -> tuple[list, np.ndarray, np.ndarray]:
    """``task_inputs`` memoised per process by spec and data identity: the studies ask for the
    same split rows once per model (six models share geometry's training rows), and loading
    a split costs ~0.3 s. Callers get copies."""
    task = spec.task_spec
    ds = load_split(task, spec.split)
    n = len(ds)
    if spec.n_examples is None or spec.n_examples >= n:
        rows = np.arange(n)
    else:  # seeded subset, kept in split order so ids read naturally
        rows = np.sort(np.random.default_rng(spec.seed).permutation(n)[: spec.n_examples])
    ds = ds.select(rows.tolist())
    if task.kind == "tagging":
        examples = [list(t) for t in ds["tokens"]]
        labels = np.empty(len(examples), dtype=object)
        labels[:] = [list(t) for t in ds["tags"]]
    elif task.kind == "token_pair":
        examples = [list(t) for t in ds["tokens"]]
        labels = np.empty(len(examples), dtype=object)
        labels[:] = [{"pairs": [list(p) for p in ps], "pair_labels": list(ys)}
                     for ps, ys in zip(ds["pairs"], ds["pair_labels"], strict=True)]
    elif task.kind == "dependency_parsing":
        examples = [list(t) for t in ds["tokens"]]
        labels = np.empty(len(examples), dtype=object)
        labels[:] = [{"heads": list(h), "deprels": list(d)}
                     for h, d in zip(ds["heads"], ds["deprels"], strict=True)]
    elif task.kind == "extractive_qa":
        examples = [QAExample(q, c, {"text": list(a["text"]),
                                     "answer_start": [int(x) for x in a["answer_start"]]})
                    for q, c, a in zip(ds["question"], ds["context"], ds["answers"],
                                       strict=True)]
        labels = np.full(len(examples), -1, dtype=np.int64)
    elif task.kind == "multiple_choice":  # context + first choice: see module docstring
        examples = [(c, ch[0]) for c, ch in zip(ds["context"], ds["choices"], strict=True)]
        labels = np.asarray(ds["label"], dtype=np.int64)
    else:
        if "text_pair" in ds.column_names:
            examples = list(zip(ds["text"], ds["text_pair"], strict=True))
        else:
            examples = list(ds["text"])
        dtype = np.float32 if task.kind == "regression" else np.int64
        labels = np.asarray(ds["label"], dtype=dtype)
    return examples, labels, rows.astype(np.int64)


def _tokenize(tokenizer, examples: list, max_length: int) -> list[dict]:
    """Per example: input_ids, token_type_ids (or None), word_ids (or None), word sizes (or
    None) and ``cut``: whether ``max_length`` cut the example's tokens."""
    words = bool(examples) and isinstance(examples[0], list)
    if words and getattr(tokenizer, "add_prefix_space", None) is False:
        raise ValueError("this byte-level BPE tokenizer encodes pre-split words without their "
                         "leading space; load it with models.load_tokenizer(name, for_words=True)")
    if words:
        enc = tokenizer(examples, is_split_into_words=True, truncation=True, max_length=max_length)
        # sub-words per word without truncation: a word cut by max_length is incomplete
        full = tokenizer(examples, is_split_into_words=True, add_special_tokens=False)
        longer = None
    else:
        pairs = bool(examples) and isinstance(examples[0], tuple)
        args = ([a for a, _ in examples], [b for _, b in examples]) if pairs else (list(examples),)
        enc = tokenizer(*args, truncation=True, max_length=max_length)
        # one token more than allowed: longer than max_length exactly when the text was cut
        # (and no "sequence too long" warning, which an untruncated call would print)
        longer = tokenizer(*args, truncation=True, max_length=max_length + 1)["input_ids"]
    out = []
    for i in range(len(examples)):
        item = {"input_ids": enc["input_ids"][i],
                "token_type_ids": enc["token_type_ids"][i] if "token_type_ids" in enc else None,
                "word_ids": None, "word_sizes": None}
        if words:
            item["word_ids"] = enc.word_ids(i)
            item["word_sizes"] = np.bincount([w for w in full.word_ids(i) if w is not None],
                                             minlength=len(examples[i]))
            item["complete"] = _complete(item)
            item["cut"] = not all(item["complete"])
        else:
            item["cut"] = len(longer[i]) > len(enc["input_ids"][i])
        out.append(item)
    return out


def _complete(item: dict) -> list[bool]:
    """[n_words] whether each word kept all its sub-words after truncation."""
    kept = np.bincount([w for w in item["word_ids"] if w is not None],
                       minlength=len(item["word_sizes"]))
    return [bool(kept[w]) and kept[w] == item["word_sizes"][w] for w in range(len(kept))]


Row = tuple[int, int, int]  # (word, partner word or -1, id: word index or pair index)


def _rows(item: dict, pooling: str, pair_offset: int, pairs: list | None = None,
          words: set | None = None) -> tuple[list[Row], int, int]:
    """Rows one example contributes, and the words and pairs ``max_length`` dropped from it.

    ``pairs``: the example's (head, dependent) pairs (token_pair tasks; ``pair`` pooling reads
    these instead of offset pairs); ``words``: the words that may give rows (tagging: those not
    tagged -1; None: all)."""
    if pooling in ("cls", "mean"):
        return [(-1, -1, -1)], 0, 0
    complete = item["complete"]
    n = len(complete)
    wanted = [w for w in range(n) if words is None or w in words]
    if pooling == "word":
        rows = [(w, -1, w) for w in wanted if complete[w]]
        return rows, len(wanted) - len(rows), 0
    if pairs is not None:
        candidates = [(h, d, j) for j, (h, d) in enumerate(pairs)]
    else:
        ok = set(wanted)
        candidates = [(w, w + pair_offset, w) for w in wanted if w + pair_offset in ok]
    rows = [r for r in candidates if complete[r[0]] and complete[r[1]]]
    cut_words = sum(1 for w in {w for r in candidates for w in r[:2]} if not complete[w])
    return rows, cut_words, len(candidates) - len(rows)


def _qa_items(tokenizer, examples: list[QAExample], max_length: int, pooling: str
              ) -> tuple[list[dict], list[list[Row]], dict]:
    """One item per question: the window its row reads (``make_windows``' features) and
    ``weights`` [tokens] that pool it (module docstring: 1 at the first token for ``cls``;
    1/n over the window, its context tokens or its gold answer tokens for ``mean``,
    ``context``, ``answer``); the rows it gives (none: its answer is in no window); the
    counts (``TRUNCATION_FIELDS`` + ``QA_TRUNCATION_FIELDS``)."""
    stride = qa_stride(max_length)  # encoding's: the windows fine-tuning trains and predicts on
    answers = None
    if pooling == "answer":
        answers = [e.answers for e in examples]
        for i, (e, a) in enumerate(zip(examples, answers, strict=True)):
            if a is None or not len(a.get("text", ())) or \
                    len(a["text"]) != len(a.get("answer_start", ())):
                raise ValueError(f"question {i} ({e.question[:60]!r}) has answers {a!r}: the "
                                 "answer pooling reads the first gold answer's tokens, so "
                                 "every question needs one (text with its answer_start); use "
                                 "pooling 'context' or 'cls' for questions without answers")
    try:
        win = make_windows(tokenizer, [e.question for e in examples],
                           [e.context for e in examples], answers=answers,
                           max_length=max_length, stride=stride)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    n_windows = np.bincount(win.example_index, minlength=win.n_examples)
    first = np.unique(win.example_index, return_index=True)[1]  # windows are consecutive
    if pooling == "answer":  # the first window whose gold span is not CLS holds the answer
        holds = np.flatnonzero(win.start_positions != win.cls_index)
        chosen = np.full(win.n_examples, -1)
        e_of, at = np.unique(win.example_index[holds], return_index=True)
        chosen[e_of] = holds[at]
    else:
        chosen = first
    ctx = win.context_mask
    items, rows = [], []
    for e, w in enumerate(chosen):
        if w < 0:
            items.append({"input_ids": [], "token_type_ids": None, "weights": None,
                          "cut": True})
            rows.append([])
            continue
        n = int(win.lengths[w])
        weights = np.zeros(n)
        if pooling == "cls":
            weights[0] = 1.0
        elif pooling == "mean":
            weights[:] = 1.0
        elif pooling == "context":
            weights[ctx[w, :n]] = 1.0
        else:
            weights[win.start_positions[w]:win.end_positions[w] + 1] = 1.0
        items.append({"input_ids": win.features["input_ids"][w],
                      "token_type_ids": (win.features["token_type_ids"][w]
                                         if "token_type_ids" in win.features else None),
                      "weights": weights / weights.sum(), "cut": bool(n_windows[e] > 1)})
        rows.append([(-1, -1, -1)])
    counts = {"max_length": int(max_length), "n_examples": len(examples),
              "examples_cut": int((n_windows > 1).sum()), "words_dropped": 0,
              "pairs_dropped": 0, "answers_dropped": int((chosen < 0).sum()),
              "stride": int(stride)}
    return items, rows, counts


TRUNCATION_FIELDS = ("max_length", "n_examples", "examples_cut", "words_dropped",
                     "pairs_dropped")
# extractive QA's counts add these: questions dropped from ``answer`` rows (their answer is in
# no window), and the windows' overlap (``encoding.qa_stride``)
QA_TRUNCATION_FIELDS = ("answers_dropped", "stride")


def truncation_line(counts: dict, what: str = "") -> str | None:
    """The one line saying what ``max_length`` cut (``counts``: ``TRUNCATION_FIELDS``, with
    ``QA_TRUNCATION_FIELDS`` for extractive QA), or None when nothing was cut."""
    if "stride" in counts:
        return _qa_truncation_line(counts, what)
    if not counts.get("examples_cut"):
        return None
    lost = []
    if counts.get("words_dropped"):
        lost.append(f"{counts['words_dropped']} word(s)")
    if counts.get("pairs_dropped"):
        lost.append(f"{counts['pairs_dropped']} pair(s)")
    dropped = (f"; {' and '.join(lost)} dropped" if lost else "; their tail is not represented")
    return (f"[activations] warning: {what + ': ' if what else ''}{counts['examples_cut']} of "
            f"{counts['n_examples']} examples are longer than max_length={counts['max_length']}"
            f" tokens and were cut{dropped}; raise max_length to keep them")


def _qa_truncation_line(counts: dict, what: str) -> str | None:
    if not (counts.get("examples_cut") or counts.get("answers_dropped")):
        return None
    dropped = (f"; {counts['answers_dropped']} question(s) whose answer lies in no window were "
               f"dropped from the answer rows" if counts.get("answers_dropped") else "")
    return (f"[activations] warning: {what + ': ' if what else ''}{counts['examples_cut']} of "
            f"{counts['n_examples']} questions have a context longer than one window of "
            f"max_length={counts['max_length']} tokens (windows overlapping by "
            f"{counts['stride']}); each row reads one window (the first; for the answer "
            f"pooling the first holding the answer), so the rest of the context is not "
            f"represented{dropped}; raise max_length to keep it")


# --------------------------------------------------------------------------- extraction
def _pool(hs: torch.Tensor, mask: torch.Tensor, items: list[dict], rows: list[list[Row]],
          pooling: str, word_vector: str = "mean") -> torch.Tensor:
    """hs: [L+1, B, T, H] float32, mask: [B, T] -> pooled rows of the batch [L+1, R, H or 2H]."""
    if items[0].get("weights") is not None:  # extractive QA: one weighted token sum an item
        w = torch.zeros(mask.shape, dtype=hs.dtype)
        for b, item in enumerate(items):
            w[b, :len(item["weights"])] = torch.from_numpy(item["weights"]).to(hs.dtype)
        return torch.einsum("bt,lbth->lbh", w.to(hs.device), hs)
    if pooling == "cls":
        return hs[:, :, 0]
    if pooling == "mean":
        m = mask.to(hs.dtype)
        return (hs * m[None, :, :, None]).sum(2) / m.sum(1)[None, :, None]
    # word / pair: averaging matrix A [W, B*T] with 1/size at each sub-word of a word (mean),
    # or 1 at its first sub-word (first)
    B, T = mask.shape
    words = sorted({(b, w) for b, r in enumerate(rows) for row in r for w in row[:2] if w >= 0})
    index = {bw: k for k, bw in enumerate(words)}
    a = torch.zeros(len(words), B * T)
    seen: set[int] = set()
    for b, item in enumerate(items):
        for t, w in enumerate(item["word_ids"]):
            k = index.get((b, w)) if w is not None else None
            if k is not None and (word_vector == "mean" or k not in seen):
                a[k, b * T + t] = 1.0
                seen.add(k)
    a /= a.sum(1, keepdim=True)
    flat = hs.reshape(hs.shape[0], B * T, hs.shape[-1])
    wv = torch.einsum("wk,lkh->lwh", a.to(flat.device), flat)  # [L+1, W, H]; a built on the CPU
    first = [index[(b, w)] for b, r in enumerate(rows) for w, _, _ in r]
    if pooling == "word":
        return wv[:, first]
    second = [index[(b, v)] for b, r in enumerate(rows) for _, v, _ in r]
    return torch.cat([wv[:, first], wv[:, second]], dim=-1)


def _batch_tensors(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    T = max(len(x["input_ids"]) for x in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), T), dtype=torch.long)
    tt = torch.zeros((len(items), T), dtype=torch.long)
    for b, x in enumerate(items):
        k = len(x["input_ids"])
        ids[b, :k] = torch.tensor(x["input_ids"])
        mask[b, :k] = 1
        if x["token_type_ids"] is not None:
            tt[b, :k] = torch.tensor(x["token_type_ids"])
    out = {"input_ids": ids, "attention_mask": mask}
    if items[0]["token_type_ids"] is not None:
        out["token_type_ids"] = tt
    return out


def extract(model: torch.nn.Module, tokenizer, examples: list, *, pooling: str = "cls",
            dtype: str = "float32", max_length: int = 128, batch_size: int = 32,
            pair_offset: int = 1, progress: bool = True, word_vector: str = "mean",
            pairs: list | None = None, words: list | None = None,
            return_counts: bool = False):
    """Pooled hidden states of every layer for ``examples`` (no caching).

    Args:
        model: a BERT/RoBERTa/ALBERT/ELECTRA encoder or task model (its ``base_model`` runs).
        tokenizer: the model's (fast) tokenizer.
        examples: ``str`` (one segment), ``(text, text_pair)`` tuples, lists of words
            (pre-split; required by ``word``/``pair`` pooling) or ``QAExample``s (extractive
            QA, windowed as fine-tuning windows them; required by ``context``/``answer``).
        pooling, max_length, pair_offset, word_vector: see ``ActivationSpec``; ``max_length``
            is capped at what the model takes (``models.model_max_length``); for QA it is the
            windows' length (stride ``encoding.qa_stride`` of it).
        pairs: per example, its (head, dependent) word pairs: ``pair`` pooling then gives one
            row per pair whose two words are complete (a token_pair task) instead of offset
            pairs.
        words: per example, the word indices that may give rows (a set or list; tagging: the
            words not tagged -1); None: every word.
        return_counts: also return what ``max_length`` cut (``TRUNCATION_FIELDS``; QA adds
            ``QA_TRUNCATION_FIELDS``); without it, a cut is said on one line (stderr).
        dtype: compute dtype; ``bfloat16`` runs the forward under ``devices.autocast``.
        batch_size: examples per forward pass (sorted by length, padded per batch). On 2 CPU
            cores 16-32 was fastest for minilm-l6; 64 and more ran 10-30% slower (the
            [B*T, 4H] intermediate activations no longer stay in cache).

    Returns:
        (states, ids): states [L+1, n_rows, d] float32 (d doubled for ``pair``); ids
        [n_rows, 2] int64 = (position in ``examples``, word index, pair index with ``pairs``,
        or -1); with ``return_counts``, (states, ids, counts).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {DTYPES}")
    if not examples:
        raise ValueError("no examples to encode")
    if pooling in WORD_POOLINGS and not isinstance(examples[0], list):
        raise ValueError(f"pooling {pooling!r} needs pre-split words (lists of str) per example")
    qa = isinstance(examples[0], QAExample)
    if qa != (pooling in ("context", "answer")) and pooling not in SENTENCE_POOLINGS:
        raise ValueError(f"pooling {pooling!r} needs QAExample examples (extractive QA); "
                         f"these are {type(examples[0]).__name__}")
    if qa and (pairs is not None or words is not None):
        raise ValueError("pairs and words select word rows; QA examples have none")
    if word_vector not in WORD_VECTORS:
        raise ValueError(f"unknown word_vector {word_vector!r}; use one of {WORD_VECTORS}")
    for name, per in (("pairs", pairs), ("words", words)):
        if per is not None and len(per) != len(examples):
            raise ValueError(f"{name}: {len(per)} lists for {len(examples)} examples")
    base = getattr(model, "base_model", model)
    limit = min(max_length, models.model_max_length(base, tokenizer))
    if qa:
        items, rows, counts = _qa_items(tokenizer, examples, limit, pooling)
    else:
        items = _tokenize(tokenizer, examples, limit)
        planned = [_rows(x, pooling, pair_offset, None if pairs is None else pairs[i],
                         None if words is None else set(words[i]))
                   for i, x in enumerate(items)]
        rows = [r for r, _, _ in planned]
        counts = {"max_length": int(limit), "n_examples": len(items),
                  "examples_cut": sum(bool(x["cut"]) for x in items),
                  "words_dropped": sum(w for _, w, _ in planned),
                  "pairs_dropped": sum(p for _, _, p in planned)}
    starts = np.cumsum([0] + [len(r) for r in rows])
    if starts[-1] == 0:
        what = ("every question's answer lies in no window" if qa else
                "every word is cut by max_length (or no word has a label)")
        raise ValueError(f"no complete {pooling} rows: {what} at max_length={max_length}; "
                         "raise max_length")
    n_states = base.config.num_hidden_layers + 1
    width = base.config.hidden_size * (2 if pooling == "pair" else 1)
    states = np.empty((n_states, int(starts[-1]), width), dtype=np.float32)
    # Longest first: less padding per batch, and an out-of-memory error shows up at once.
    # Examples without rows (every word cut, a question whose answer is in no window) are
    # not run at all.
    order = sorted((i for i in range(len(items)) if rows[i]),
                   key=lambda i: -len(items[i]["input_ids"]))
    device = next(base.parameters()).device
    autocast = devices.autocast(device, dtype)  # float32: none (plain fp32 numbers)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = base.training
    base.eval()
    try:
        with torch.inference_mode(), autocast:
            bar = tqdm(range(0, len(order), batch_size), disable=not progress,
                       desc=f"{pooling} states", unit="batch")  # for a terminal
            for s in counted(bar, "extracting: batch"):  # for the explorers' status line
                idx = order[s:s + batch_size]
                batch = {k: v.to(device) for k, v in
                         _batch_tensors([items[i] for i in idx], pad_id).items()}
                out = base(**batch, output_hidden_states=True)
                hs = torch.stack(out.hidden_states).float()  # [L+1, B, T, H]
                pooled = devices.to_numpy(_pool(hs, batch["attention_mask"],
                    [items[i] for i in idx], [rows[i] for i in idx], pooling, word_vector))
                k = 0
                for i in idx:  # scatter the batch's rows back to example order
                    r = len(rows[i])
                    states[:, starts[i]:starts[i] + r] = pooled[:, k:k + r]
                    k += r
    finally:
        base.train(was_training)
    ids = np.asarray([(i, j) for i, r in enumerate(rows) for _, _, j in r],
                     dtype=np.int64).reshape(-1, 2)
    if return_counts:
        return states, ids, counts
    line = truncation_line(counts)
    if line:
        print(line, file=sys.stderr, flush=True)
    return states, ids


# --------------------------------------------------------------------------- cache
def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full definition (fast tokenizers) or vocabulary and settings."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    extra = cache.canonical_json({"class": type(tokenizer).__name__,
                                  "prefix": getattr(tokenizer, "add_prefix_space", None),
                                  "special": tokenizer.special_tokens_map})
    if backend is not None:
        return _backend_fingerprint(backend.to_str(), extra)
    text = cache.canonical_json(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256((text + extra).encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=32)
def _backend_fingerprint(definition: str, extra: str) -> str:
    """Fingerprint of a fast tokenizer's JSON definition, memoised by its text: every load of
    the same tokenizer gives the same text, and the canonical dump of a 30k vocabulary costs
    ~0.1-0.2 s per call (the studies ask for it once per model and snapshot)."""
    # truncation/padding hold the settings of the last call, not the tokenizer: drop them
    text = cache.canonical_json({k: v for k, v in json.loads(definition).items()
                                 if k not in ("truncation", "padding")})
    return hashlib.sha256((text + extra).encode()).hexdigest()[:20]


def activation_key(spec: ActivationSpec, weights: str, tokenizer: str,
                   task: TaskSpec | None = None) -> str:
    """Cache key of ``spec`` extracted with the given weights and tokenizer fingerprints
    (``task``: ``spec``'s resolved task, if the caller has it)."""
    task = spec_task(spec, task)
    fields = {**dataclasses.asdict(spec), "task": key_name(task)}  # a file task: by content
    if spec.word_vector == "mean" or spec.pooling not in WORD_POOLINGS:
        del fields["word_vector"]  # at its default (or unused): the keys made before it existed
    if task.kind == "extractive_qa":  # the windows' overlap is part of what a row reads
        fields["qa_stride"] = qa_stride(spec.max_length)
    return cache.content_key({  # the same data identity fine-tuning keys on
        "spec": fields, "weights": weights, "tokenizer": tokenizer,
        "data": data_identity(task), "code": ACTIVATIONS_VERSION,
    })


def _labels_for(spec: ActivationSpec, labels: np.ndarray, ids: np.ndarray,
                task: TaskSpec | None = None) -> np.ndarray:
    kind = spec_task(spec, task).kind
    if kind == "extractive_qa":  # no class: -1 for every kept question
        return np.full(len(ids), -1, dtype=np.int64)
    if spec.pooling in ("cls", "mean"):
        if labels.dtype == object:  # tagging task pooled per sentence: no sentence label
            return np.full(len(ids), -1, dtype=np.int64)
        return labels
    if kind == "dependency_parsing":  # ids: (position, word; the dependent for pairs)
        return np.asarray([labels[i]["deprels"][w] for i, w in ids], dtype=np.int64)
    if kind == "token_pair":  # ids: (position, pair index)
        return np.asarray([labels[i]["pair_labels"][j] for i, j in ids], dtype=np.int64)
    tags = [labels[i][w] for i, w in ids]
    if spec.pooling == "word":
        return np.asarray(tags, dtype=np.int64)
    n_tags = spec_task(spec, task).num_labels
    return np.asarray([t * n_tags + labels[i][w + spec.pair_offset]
                       for t, (i, w) in zip(tags, ids, strict=True)], dtype=np.int64)


def _open(folder: Path, spec: ActivationSpec, key: str, meta: dict) -> Activations:
    return Activations(states=np.load(folder / "states.npy", mmap_mode="r"),
                       labels=np.load(folder / "labels.npy"), ids=np.load(folder / "ids.npy"),
                       spec=spec, key=key, path=folder, meta=meta)


def load_or_extract(spec: ActivationSpec, model: torch.nn.Module, tokenizer, *,
                    batch_size: int = 32, progress: bool = True,
                    task: TaskSpec | None = None) -> Activations:
    """``spec``'s representations from ``model``: from the cache when intact, else extracted
    (``task``: ``spec``'s resolved task, if the caller has it; else looked up by name).

    The model is identified by its weights (``cache.weights_fingerprint`` of its encoder), so
    the same weights hit the same entry whatever name they were loaded by. A damaged entry
    (files not matching their recorded sha256) is moved aside and recomputed.
    """
    base = getattr(model, "base_model", model)
    weights = cache.weights_fingerprint(base)
    task = spec_task(spec, task)
    key = activation_key(spec, weights, tokenizer_fingerprint(tokenizer), task)

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray, int, dict]:
        examples, labels, rows = task_inputs(spec, task)
        pairs, words = row_filters(task, labels, spec.pooling)
        states, ids, counts = extract(
            model, tokenizer, examples, pooling=spec.pooling, dtype=spec.dtype,
            max_length=spec.max_length, batch_size=batch_size, pair_offset=spec.pair_offset,
            progress=progress, word_vector=spec.word_vector, pairs=pairs, words=words,
            return_counts=True)
        if task.kind == "dependency_parsing" and spec.pooling == "pair":
            # (position, arc index) -> (position, dependent word): the arc's own name
            ids = np.asarray([(i, pairs[i][j][1]) for i, j in ids],
                             dtype=np.int64).reshape(-1, 2)
        labels = _labels_for(spec, labels, ids, task)
        ids = np.stack([rows[ids[:, 0]], ids[:, 1]], axis=1)  # positions -> split row indices
        return states, labels, ids, len(rows), counts

    def write(tmp: Path, value: tuple) -> dict:
        states, labels, ids, n_examples, counts = value
        for name, arr in zip(_FILES, (states, labels, ids), strict=True):
            np.save(tmp / name, arr)
        return {"spec": dataclasses.asdict(spec), "key": key,
                "model_type": base.config.model_type, "n_layers": int(states.shape[0] - 1),
                "shape": list(states.shape), "n_examples": int(n_examples),
                "code": ACTIVATIONS_VERSION, "weights": weights, "truncation": counts}

    # another process may finish first: its entry is kept (cache.atomic_dir)
    out = cache.load_or_compute("activations", key, compute=compute, write=write,
                                read=lambda e: _open(e.folder, spec, key, e.meta))
    line = truncation_line(out.meta.get("truncation", {}), f"task {task.name!r}, "
                           f"{spec.split} split, {spec.pooling} pooling")
    if line:  # on a cache hit too: every run that uses the rows says what they lack
        print(line, file=sys.stderr, flush=True)
    return out


def row_filters(task: TaskSpec, labels: np.ndarray, pooling: str
                ) -> tuple[list | None, list | None]:
    """(pairs, words) for ``extract`` from ``task_inputs``' labels: a token_pair task's
    (head, dependent) pairs per example; a dependency_parsing task's non-root arcs as
    (head, dependent) 0-based word pairs, in dependent order (``pair`` pooling; its ``word``
    rows are every word); a tagging task's words not tagged -1 (Zhou & Srikumar's PS tasks
    label prepositions only). (None, None) for sentence and QA poolings."""
    if pooling not in WORD_POOLINGS:
        return None, None
    if task.kind == "token_pair":
        return [lab["pairs"] for lab in labels], None
    if task.kind == "dependency_parsing":
        return (_arcs(labels) if pooling == "pair" else None), None
    if any(t < 0 for tags in labels for t in tags):
        return None, [[w for w, t in enumerate(tags) if t >= 0] for tags in labels]
    return None, None


def _arcs(labels: np.ndarray) -> list[list[list[int]]]:
    """Per sentence the non-root arcs [head, dependent] (0-based words) of CoNLL-U heads."""
    out = []
    for r, lab in enumerate(labels):
        heads, n = lab["heads"], len(lab["heads"])
        bad = [h for h in heads if not 0 <= h <= n]
        if bad:
            raise ValueError(f"sentence {r} has head {bad[0]!r} for {n} words: CoNLL-U heads "
                             f"are 0 (root) or a 1-based word index; fix the task's rows")
        out.append([[h - 1, d] for d, h in enumerate(heads) if h > 0])
    return out


def load(key: str, task: TaskSpec | None = None) -> Activations:
    """The cached representations with content key ``key``, verified against their sha256
    (``task``: the entry's resolved task, where the caller has it; else looked up by name).

    This is how a study result (which holds keys, never paths) gets back to its arrays, on any
    machine that shares the cache folder. A missing or damaged entry raises ``CacheError``
    saying how to recompute it (rerun the study: extraction is keyed by content, so it
    recomputes exactly this entry).
    """
    folder = cache.entry_dir("activations", key)
    if not folder.exists():
        raise CacheError(f"activation cache entry {key!r} is not in {folder.parent} (a different"
                         " LAYERSCOPE_HOME, or a cleared cache?); rerun the study to recompute it")
    ok, reason = cache.verify(folder)
    if not ok:
        cache.quarantine(folder, reason)
        raise CacheError(f"activation cache entry {key!r} was damaged ({reason}) and has been"
                         " moved aside; rerun the study to recompute it")
    meta = cache.read_meta(folder)
    fields = dict(meta["spec"])
    if task is not None:
        if task.name != fields["task"]:
            raise ValueError(f"task {task.name!r} given for activation entry {key!r} of task "
                             f"{fields['task']!r}")
        fields["task"] = task
    return _open(folder, ActivationSpec(**fields), key, meta)


# --------------------------------------------------------------------------- loading models
@runtime_checkable
class EncoderSource(Protocol):
    """A model that loads itself, e.g. ``finetune.FinetuneResult``: this module takes it through
    this method, so it never imports the fine-tuning code (the arrow points from there to
    here). ``step`` picks a snapshot saved during training; ``for_words``: see
    ``models.load_tokenizer``."""

    def encoder_and_tokenizer(self, *, step: int | None = None,
                              for_words: bool = False) -> tuple[torch.nn.Module, object]: ...


def encoder_and_tokenizer(source, *, step: int | None = None, for_words: bool = False,
                          device=None):
    """(model in eval mode, tokenizer) for a model name or an ``EncoderSource`` (a
    ``finetune.FinetuneResult``), the model moved to ``device`` (a ``torch.device`` or a name
    for ``devices.resolve_device``; None: where it loads, the CPU).

    ``step`` picks a snapshot saved during fine-tuning (``FinetuneConfig.save_steps``); the
    tokenizer of a fine-tuned model is the one saved with it. ``for_words``: see
    ``models.load_tokenizer``.
    """
    if isinstance(source, EncoderSource):
        model, tok = source.encoder_and_tokenizer(step=step, for_words=for_words)
    elif step is not None:
        raise ValueError(f"step={step} needs a fine-tuned model (a FinetuneResult), not {source!r}")
    else:
        model, tok = models.load_encoder(source), models.load_tokenizer(source, for_words=for_words)
    if device is not None:
        model = model.to(devices.resolve_device(device))
    return model, tok
