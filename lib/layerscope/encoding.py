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
"""

from __future__ import annotations

import sys

import datasets
import numpy as np
import torch
import transformers as tr

from .tasks import TaskSpec

_CUT = "_cut_words", "_cut_pairs", "_cut"  # per-row counts carried through ``map``


def subset(ds: datasets.Dataset, max_examples: int | None, seed: int = 0) -> datasets.Dataset:
    """A seeded random subset of ``max_examples`` rows (all rows when None or larger)."""
    if max_examples is None or max_examples >= len(ds):
        return ds
    if max_examples < 1:
        raise ValueError(f"max_examples={max_examples} must be >= 1")
    return ds.shuffle(seed=seed).select(range(max_examples))


def encode_split(task: TaskSpec, ds: datasets.Dataset, tokenizer, max_length: int,
                 max_examples: int | None = None, seed: int = 0) -> datasets.Dataset:
    """Tokenised rows with a ``labels`` column, ready for the Trainer.

    Tagging: ``labels`` [T] per token (the first sub-word of a word tagged t >= 0 gets t, every
    other token -100). token_pair: ``pair_index`` [P, 2] (first sub-word positions of the
    head and the dependent) and ``labels`` [P], the pairs with a word cut by ``max_length``
    dropped. One warning line says how many examples ``max_length`` cut (``report_cut``).
    """
    ds = subset(ds, max_examples, seed)
    kind = task.kind

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
    (say or (lambda m: print(m, file=sys.stderr, flush=True)))(line)
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
    """Pads each batch to its own longest sequence (token_pair: ``PairCollator``)."""
    if task.kind == "token_pair":
        return PairCollator(tokenizer)
    if task.kind == "tagging":
        return tr.DataCollatorForTokenClassification(tokenizer)
    if task.kind == "multiple_choice":
        return tr.DataCollatorForMultipleChoice(tokenizer)
    return tr.DataCollatorWithPadding(tokenizer)
