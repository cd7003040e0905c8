"""Turn task rows into model inputs (tokenisation per task kind) and batch them.

Token tasks label the first sub-word of each word and ignore the rest (-100), the usual choice
for BERT-style taggers; Zhou & Srikumar (2022) average sub-words for *representations*, which
is done at extraction time (activations), not here. A tagging word tagged -1 ("not a target
word": STREUSLE's supersense tasks label prepositions only) is ignored (-100) too.

A token_pair task (Zhou & Srikumar's DEP) gives per sentence ``pair_index`` [P, 2]: the token
positions of the head's and the dependent's first sub-word, and ``labels`` [P]; the model
(``finetune.pair_model.TokenPairClassifier``) scores the concatenation of those two states.

Truncation by ``max_length`` is never silent: ``encode_split`` prints one warning line naming
the task, how many examples were cut, what was lost and the fix (raise max_length). A token
task's word cut by it (a sub-word beyond the limit) loses its pairs (token_pair), a tagging
word wholly beyond it its label; a sequence task's text keeps its first ``max_length`` tokens
(as Phang et al. 2021 §3 truncate to 256).

Extractive QA (``extractive_qa``) is windowed, not cut (``qa.windows``, the standard recipe of
Devlin et al. 2019 §4.2): a context longer than ``max_length`` leaves becomes several windows
that overlap by ``qa_stride(max_length) = max_length // 4`` tokens, one encoded row per window:
the model inputs, ``start_positions``/``end_positions`` (the first gold answer's tokens, or the
CLS position when the answer is not wholly inside the window, as the recipe trains "no answer
here"), ``example_index`` (the question's row) and ``window_index`` (the row's place in
``make_windows``' order). A question whose answer lies in no window at all still trains on its
windows with the CLS target (as ``run_qa.py`` does); how many is said in one line.

Dependency parsing (``dependency_parsing``; Merchant et al. 2020 after Dozat & Manning 2017)
gives per sentence ``word_index`` [W] (each word's first sub-word position), ``heads`` [W]
(0 = root, else the 1-based head word) and ``deprels`` [W], plus ``sentence_index`` (the
sentence's row) and ``words`` (the 0-based indices of the words kept). Words cut by
``max_length`` (the end of a long sentence) are dropped when no kept word's head is one of
them (the kept words are then a tree of their own, heads renumbered); otherwise the whole
sentence is dropped. Both are counted and said in one line, never silent.
"""

from __future__ import annotations

import sys

import datasets
import numpy as np
import torch
import transformers as tr

from .errors import ConfigError
from .qa.windows import QAWindows, make_windows
from .tasks import TaskSpec

_CUT = "_cut_words", "_cut_pairs", "_cut"  # per-row counts carried through ``map``
# kinds whose tokenizer reads pre-split words (``models.load_tokenizer(for_words=True)``:
# RoBERTa-style tokenizers need add_prefix_space then)
WORD_KINDS = ("tagging", "token_pair", "dependency_parsing")


def subset(ds: datasets.Dataset, max_examples: int | None, seed: int = 0) -> datasets.Dataset:
    """A seeded random subset of ``max_examples`` rows (all rows when None or larger)."""
    if max_examples is None or max_examples >= len(ds):
        return ds
    if max_examples < 1:
        raise ValueError(f"max_examples={max_examples} must be >= 1")
    return ds.shuffle(seed=seed).select(range(max_examples))


def encode_split(task: TaskSpec, ds: datasets.Dataset, tokenizer, max_length: int,
                 max_examples: int | None = None, seed: int = 0) -> datasets.Dataset:
    """Tokenised rows with a ``labels`` column, ready for the Trainer (extractive QA: one row
    per window with ``start_positions``/``end_positions``; dependency parsing: ``word_index``,
    ``heads``, ``deprels``; the module docstring has both).

    Tagging: ``labels`` [T] per token (the first sub-word of a word tagged t >= 0 gets t, every
    other token -100). token_pair: ``pair_index`` [P, 2] (first sub-word positions of the
    head and the dependent) and ``labels`` [P], the pairs with a word cut by ``max_length``
    dropped. One warning line says how many examples ``max_length`` cut (``report_cut``).
    """
    ds = subset(ds, max_examples, seed)
    kind = task.kind
    if kind == "extractive_qa":
        return qa_dataset(task, qa_windows(ds, tokenizer, max_length), max_length)
    if kind == "dependency_parsing":
        return encode_parsing(task, ds, tokenizer, max_length)

    def cut(*texts) -> list[int]:
        """Per example 1 when ``max_length`` cuts it: one token more allowed gives a longer
        encoding exactly then (and no "sequence too long" warning, as an untruncated call)."""
        short = tokenizer(*texts, truncation=True, max_length=max_length)["input_ids"]
        longer = tokenizer(*texts, truncation=True, max_length=max_length + 1)["input_ids"]
        return [int(len(b) > len(a)) for a, b in zip(short, longer, strict=True)]

    def encode(batch):
        if kind in ("classification", "regression") and "text_pair" not in batch:
            enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
            enc["_cut"] = cut(batch["text"])
        elif kind in ("pair", "regression"):
            enc = tokenizer(batch["text"], batch["text_pair"], truncation=True,
                            max_length=max_length)
            enc["_cut"] = cut(batch["text"], batch["text_pair"])
        elif kind == "multiple_choice":
            firsts = [c for c, ch in zip(batch["context"], batch["choices"], strict=True)
                      for _ in ch]
            seconds = [x for ch in batch["choices"] for x in ch]
            flat = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
            flat["_cut"] = cut(firsts, seconds)
            sizes = [len(ch) for ch in batch["choices"]]
            enc = {}
            for k, v in flat.items():
                out, i = [], 0
                for n in sizes:
                    out.append(v[i:i + n])
                    i += n
                enc[k] = out
            enc["_cut"] = [int(any(c)) for c in enc["_cut"]]  # any choice cut
        elif kind in ("tagging", "token_pair"):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True,
                            max_length=max_length)
            # sub-words per word without truncation: a word cut by max_length is incomplete
            full = tokenizer(batch["tokens"], is_split_into_words=True, add_special_tokens=False)
            complete = [complete_words(enc.word_ids(i), word_sizes(full.word_ids(i), len(t)))
                        for i, t in enumerate(batch["tokens"])]
            enc["_cut"] = [int(not all(c)) for c in complete]
            if kind == "tagging":
                enc["labels"] = [word_labels(enc.word_ids(i), tags)
                                 for i, tags in enumerate(batch["tags"])]
                # words tagged -1 carry no label: losing them loses nothing
                # a word keeps its label while its first sub-word is kept (word_labels); one
                # wholly beyond max_length loses it (words tagged -1 have none to lose)
                enc["_cut_words"] = [
                    sum(1 for w, tag in enumerate(tags)
                        if tag >= 0 and w not in first_subwords(enc.word_ids(i)))
                    for i, tags in enumerate(batch["tags"])]
                enc["_cut_pairs"] = [0] * len(complete)
                return enc
            enc["pair_index"], enc["labels"], enc["_cut_pairs"], enc["_cut_words"] = [], [], [], []
            for i, (pairs, labels) in enumerate(zip(batch["pairs"], batch["pair_labels"],
                                                    strict=True)):
                index, kept = pair_positions(enc.word_ids(i), pairs, labels, complete[i])
                enc["pair_index"].append(index)
                enc["labels"].append(kept)
                enc["_cut_pairs"].append(len(pairs) - len(kept))
                enc["_cut_words"].append(complete[i].count(False))
            return enc
        else:
            raise ValueError(f"unknown task kind {kind!r}")
        enc["labels"] = batch["label"]
        enc["_cut_words"] = enc["_cut_pairs"] = [0] * len(batch["label"])
        return enc

    out = ds.map(encode, batched=True, remove_columns=ds.column_names)
    report_cut(task, max_length, int(np.sum(out["_cut"])), len(out),
               int(np.sum(out["_cut_words"])), int(np.sum(out["_cut_pairs"])))
    return out.remove_columns(list(_CUT))


def word_sizes(word_ids: list[int | None], n_words: int) -> np.ndarray:
    """[n_words] sub-words per word (``word_ids`` of an untruncated encoding)."""
    return np.bincount([w for w in word_ids if w is not None], minlength=n_words)


def complete_words(word_ids: list[int | None], sizes) -> list[bool]:
    """[n_words] whether each word kept all its sub-words in the truncated encoding
    (``word_ids``); ``sizes``: sub-words per word without truncation (``word_sizes``). A word
    with no sub-word at all (an empty string) is not complete: it has no vector."""
    kept = np.bincount([w for w in word_ids if w is not None], minlength=len(sizes))
    return [bool(kept[w]) and kept[w] == sizes[w] for w in range(len(sizes))]


def first_subwords(word_ids: list[int | None]) -> dict[int, int]:
    """Word index -> token position of its first sub-word."""
    out: dict[int, int] = {}
    for t, w in enumerate(word_ids):
        if w is not None and w not in out:
            out[w] = t
    return out


def pair_positions(word_ids: list[int | None], pairs, labels, complete: list[bool]
                   ) -> tuple[list[list[int]], list[int]]:
    """(pair_index [[head pos, dep pos]], their labels) of one sentence: the (head, dependent)
    pairs whose two words are complete, each as its two words' first sub-word positions in
    the encoding (``word_ids``)."""
    first = first_subwords(word_ids)
    index, kept = [], []
    for (h, d), y in zip(pairs, labels, strict=True):
        if complete[h] and complete[d]:
            index.append([first[h], first[d]])
            kept.append(int(y))
    return index, kept


def _say(line: str, say=None) -> None:
    """One line of what encoding lost: to ``say`` (a callable), else stderr."""
    (say or (lambda m: print(m, file=sys.stderr, flush=True)))(line)


def report_cut(task: TaskSpec, max_length: int, n_cut: int, n: int, words: int,
               pairs: int, *, say=None) -> str | None:
    """One warning line (stderr) when ``n_cut`` of ``n`` sentences were cut by
    ``max_length``: how many, what was dropped, the fix. Returns the line (None: none cut)."""
    if not n_cut:
        return None
    lost = (f"{pairs} (head, dependent) pair(s) dropped" if task.kind == "token_pair"
            else f"{words} labelled word(s) dropped" if task.kind == "tagging"
            else "the model sees only their first max_length tokens")
    line = (f"[encoding] warning: task {task.name!r}: {n_cut} of {n} examples are longer "
            f"than max_length={max_length} tokens and were cut ({lost}); raise max_length "
            f"to keep them")
    _say(line, say)
    return line


def word_labels(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """Label the first sub-word of each word; -100 for later sub-words, special tokens and
    words tagged -1 (not a target word)."""
    out, previous = [], None
    for w in word_ids:
        out.append(-100 if w is None or w == previous or tags[w] < 0 else int(tags[w]))
        previous = w
    return out


class PairCollator:
    """Pads a token_pair batch: the tokenizer's inputs to the longest sequence, ``pair_index``
    to [B, P_max, 2] with -1 (padding pairs) and ``labels`` to [B, P_max] with -100."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        pairs = [list(f["pair_index"]) for f in features]
        labels = [list(f["labels"]) for f in features] if "labels" in features[0] else None
        rest = [{k: v for k, v in f.items() if k not in ("pair_index", "labels")}
                for f in features]
        batch = dict(self.tokenizer.pad(rest, return_tensors="pt"))
        p = max(1, max(len(x) for x in pairs))  # at least one (padding) pair: a [B, 1, 2] batch
        index = torch.full((len(features), p, 2), -1, dtype=torch.long)
        for b, x in enumerate(pairs):
            if x:
                index[b, :len(x)] = torch.as_tensor(x, dtype=torch.long)
        batch["pair_index"] = index
        if labels is not None:
            y = torch.full((len(features), p), -100, dtype=torch.long)
            for b, x in enumerate(labels):
                if x:
                    y[b, :len(x)] = torch.as_tensor(x, dtype=torch.long)
            batch["labels"] = y
        return batch


def collator_for(task: TaskSpec, tokenizer):
    """Pads each batch to its own longest sequence (token_pair: ``PairCollator``; extractive
    QA: ``QACollator``; dependency parsing: ``ParseCollator``)."""
    if task.kind == "token_pair":
        return PairCollator(tokenizer)
    if task.kind == "extractive_qa":
        return QACollator(tokenizer)
    if task.kind == "dependency_parsing":
        return ParseCollator(tokenizer)
    if task.kind == "tagging":
        return tr.DataCollatorForTokenClassification(tokenizer)
    if task.kind == "multiple_choice":
        return tr.DataCollatorForMultipleChoice(tokenizer)
    return tr.DataCollatorWithPadding(tokenizer)


# --- extractive QA ----------------------------------------------------------------------------

# columns of an encoded QA or parsing split that say where a row comes from: not model inputs
# (the collators leave them out; read them from the dataset)
BOOKKEEPING = ("example_index", "window_index", "sentence_index", "words")


def qa_stride(max_length: int) -> int:
    """The overlap of consecutive windows: a quarter of ``max_length`` (``run_qa.py`` overlaps
    128 of 384 tokens, a third; no preset sets its own)."""
    return max_length // 4


def qa_windows(ds: datasets.Dataset, tokenizer, max_length: int) -> QAWindows:
    """The windows of the questions of ``ds`` (extractive_qa rows), their gold spans labelled
    from the first answer (``qa.windows.make_windows``, stride ``qa_stride``)."""
    return make_windows(tokenizer, list(ds["question"]), list(ds["context"]),
                        answers=list(ds["answers"]),
                        max_length=max_length, stride=qa_stride(max_length))


def qa_dataset(task: TaskSpec, windows: QAWindows, max_length: int, *,
               say=None) -> datasets.Dataset:
    """One row per window: the model inputs, start/end positions, ``example_index`` and
    ``window_index`` (module docstring); says how many questions have their answer in no
    window (their windows train on CLS, as the recipe does)."""
    cols = {k: list(v) for k, v in windows.features.items()}
    cols["start_positions"] = windows.start_positions.tolist()
    cols["end_positions"] = windows.end_positions.tolist()
    cols["example_index"] = windows.example_index.tolist()
    cols["window_index"] = list(range(len(windows)))
    found = np.bincount(windows.example_index,
                        weights=windows.start_positions != windows.cls_index,
                        minlength=windows.n_examples)
    lost = int((found == 0).sum())
    if lost:
        line = (f"[encoding] note: task {task.name!r}: {lost} of {windows.n_examples} questions "
                f"have their first answer in no window of max_length={max_length}"
                f" tokens (an answer longer than a window's context); their windows train on "
                f"the CLS target, as the standard recipe does; raise max_length to keep them")
        _say(line, say)
    return datasets.Dataset.from_dict(cols)


class QACollator:
    """Pads a QA batch (the tokenizer's inputs to the longest window; ``start_positions`` and
    ``end_positions`` [B] when present); bookkeeping columns (``BOOKKEEPING``) are left out."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        gold = ("start_positions", "end_positions")
        rest = [{k: v for k, v in f.items() if k not in gold + BOOKKEEPING} for f in features]
        batch = dict(self.tokenizer.pad(rest, return_tensors="pt"))
        for k in gold:
            if k in features[0]:
                batch[k] = torch.as_tensor([int(f[k]) for f in features], dtype=torch.long)
        return batch


# --- dependency parsing ------------------------------------------------------------------------

def kept_words(heads: list[int], complete: list[bool]) -> tuple[list[int], list[int]] | None:
    """(the 0-based words kept, their heads renumbered among them) of one sentence whose words
    ``complete`` (not cut by max_length) are kept; None when a kept word's head is cut (the
    sentence is then dropped: its tree cannot be scored without that word)."""
    kept = [w for w, c in enumerate(complete) if c]
    if not kept:
        return None
    new = {old + 1: i + 1 for i, old in enumerate(kept)}  # 1-based old word -> 1-based new
    out = []
    for w in kept:
        h = heads[w]
        if h != 0 and h not in new:
            return None
        out.append(0 if h == 0 else new[h])
    return kept, out


def encode_parsing(task: TaskSpec, ds: datasets.Dataset, tokenizer, max_length: int, *,
                   say=None) -> datasets.Dataset:
    """The parsing rows (module docstring): tokenised words, ``word_index`` [W], ``heads`` [W],
    ``deprels`` [W], ``sentence_index`` and ``words``; one line says what ``max_length`` cut."""
    tokens = [list(t) for t in ds["tokens"]]
    enc = tokenizer(tokens, is_split_into_words=True, truncation=True, max_length=max_length)
    full = tokenizer(tokens, is_split_into_words=True, add_special_tokens=False)
    cols: dict[str, list] = {k: [] for k in list(enc.keys()) + [
        "word_index", "heads", "deprels", "sentence_index", "words"]}
    n_cut = n_shortened = n_dropped = n_words = 0
    for i, (words, heads, rels) in enumerate(zip(tokens, ds["heads"], ds["deprels"],
                                                 strict=True)):
        wid = enc.word_ids(i)
        complete = complete_words(wid, word_sizes(full.word_ids(i), len(words)))
        if all(complete):
            kept, new_heads = list(range(len(words))), [int(h) for h in heads]
        else:
            n_cut += 1
            got = kept_words([int(h) for h in heads], complete)
            if got is None:
                n_dropped += 1
                continue
            kept, new_heads = got
            n_shortened += 1
            n_words += len(words) - len(kept)
        first = first_subwords(wid)
        for k in enc.keys():
            cols[k].append(enc[k][i])
        cols["word_index"].append([first[w] for w in kept])
        cols["heads"].append(new_heads)
        cols["deprels"].append([int(rels[w]) for w in kept])
        cols["sentence_index"].append(i)
        cols["words"].append(kept)
    if n_cut:
        line = (f"[encoding] warning: task {task.name!r}: {n_cut} of {len(tokens)} sentences "
                f"are longer than max_length={max_length} tokens: {n_shortened} lost their last "
                f"{n_words} word(s) in all (no kept word's head among them), {n_dropped} were "
                f"dropped (a kept word's head was cut); raise max_length to keep them")
        _say(line, say)
    if not cols["sentence_index"]:
        raise ConfigError(f"task {task.name!r}: every one of the {len(tokens)} sentences was "
                          f"dropped by max_length={max_length}; raise max_length")
    return datasets.Dataset.from_dict(cols)


class ParseCollator:
    """Pads a parsing batch: the tokenizer's inputs to the longest sequence, ``word_index`` to
    [B, W_max] with -1 (padding words), ``heads`` and ``deprels`` to [B, W_max] with -100;
    bookkeeping columns (``BOOKKEEPING``) are left out."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        own = ("word_index", "heads", "deprels")
        rest = [{k: v for k, v in f.items() if k not in own + BOOKKEEPING} for f in features]
        batch = dict(self.tokenizer.pad(rest, return_tensors="pt"))
        w = max(1, max(len(f["word_index"]) for f in features))
        for key, fill in (("word_index", -1), ("heads", -100), ("deprels", -100)):
            if key not in features[0]:
                continue
            out = torch.full((len(features), w), fill, dtype=torch.long)
            for b, f in enumerate(features):
                if len(f[key]):
                    out[b, :len(f[key])] = torch.as_tensor(list(f[key]), dtype=torch.long)
            batch[key] = out
        return batch
