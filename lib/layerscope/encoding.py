"""Turn task rows into model inputs (tokenisation per task kind) and batch them.

Token tasks label the first sub-word of each word and ignore the rest (-100), the usual choice
for BERT-style taggers; Zhou & Srikumar (2022) average sub-words for *representations*, which
is done at extraction time (activations), not here.
"""

from __future__ import annotations

import datasets
import transformers as tr

from .tasks import TaskSpec


def subset(ds: datasets.Dataset, max_examples: int | None, seed: int = 0) -> datasets.Dataset:
    """A seeded random subset of ``max_examples`` rows (all rows when None or larger)."""
    if max_examples is None or max_examples >= len(ds):
        return ds
    if max_examples < 1:
        raise ValueError(f"max_examples={max_examples} must be >= 1")
    return ds.shuffle(seed=seed).select(range(max_examples))


def encode_split(task: TaskSpec, ds: datasets.Dataset, tokenizer, max_length: int,
                 max_examples: int | None = None, seed: int = 0) -> datasets.Dataset:
    """Tokenised rows with a ``labels`` column, ready for the Trainer."""
    ds = subset(ds, max_examples, seed)
    kind = task.kind

    def encode(batch):
        if kind in ("classification", "regression") and "text_pair" not in batch:
            enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        elif kind in ("pair", "regression"):
            enc = tokenizer(batch["text"], batch["text_pair"], truncation=True,
                            max_length=max_length)
        elif kind == "multiple_choice":
            firsts = [c for c, ch in zip(batch["context"], batch["choices"], strict=True)
                      for _ in ch]
            seconds = [x for ch in batch["choices"] for x in ch]
            flat = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
            sizes = [len(ch) for ch in batch["choices"]]
            enc = {}
            for k, v in flat.items():
                out, i = [], 0
                for n in sizes:
                    out.append(v[i:i + n])
                    i += n
                enc[k] = out
        elif kind == "tagging":
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True,
                            max_length=max_length)
            enc["labels"] = [word_labels(enc.word_ids(i), tags)
                             for i, tags in enumerate(batch["tags"])]
            return enc
        else:
            raise ValueError(f"unknown task kind {kind!r}")
        enc["labels"] = batch["label"]
        return enc

    return ds.map(encode, batched=True, remove_columns=ds.column_names)


def word_labels(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """Label the first sub-word of each word; -100 for later sub-words and special tokens."""
    out, previous = [], None
    for w in word_ids:
        out.append(-100 if w is None or w == previous else int(tags[w]))
        previous = w
    return out


def collator_for(task: TaskSpec, tokenizer):
    """Pads each batch to its own longest sequence."""
    if task.kind == "tagging":
        return tr.DataCollatorForTokenClassification(tokenizer)
    if task.kind == "multiple_choice":
        return tr.DataCollatorForMultipleChoice(tokenizer)
    return tr.DataCollatorWithPadding(tokenizer)
