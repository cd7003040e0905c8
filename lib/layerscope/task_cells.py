"""One cell of a row read as what our row schema wants (text, a class label, a number, a
list of words, choices, word pairs, a tree's heads, a question's answers), and class labels
made class indices (``classes``).

Every reader names the row (``where``: ``file:line`` or ``file row N``) and the fix in its
error. Table formats hold strings (CSV, TSV): numbers are read from them (``scalar``: "1",
"1.0" and 1 are the class 1; "0.5" the number 0.5), lists as JSON (``["a", "b"]``) or, for
words and tags, separated by spaces.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from .errors import ConfigError

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def scalar(v):
    """A label as read: int for whole numbers (1, 1.0, "1", " 2 "), float for other numbers,
    str for words (a bool: "true"/"false"); None and other types as they are."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        if _NUMBER.fullmatch(s):
            f = float(s)
            return int(f) if f.is_integer() else f
        return s
    return v


def classes(values: list, where: Callable[[int], str], *, declared: tuple[str, ...] | None,
            feature_names: tuple[str, ...] | None, what: str
            ) -> tuple[list[int], tuple[str, ...]]:
    """Class indices of ``values`` (scalars) and the class names (``task_rows``, step 4)."""
    if feature_names is not None:  # a datasets ClassLabel: the values are indices
        names = tuple(declared) if declared is not None else feature_names
        if len(names) != len(feature_names):
            raise ConfigError(f"label_names {names} for a column whose classes are "
                              f"{feature_names} — give {len(feature_names)} names or none")
        for j, v in enumerate(values):
            if not (isinstance(v, int) and 0 <= v < len(names)):
                raise ConfigError(
                    f"{where(j)}: {what} {v!r} is not one of the dataset's classes 0.."
                    f"{len(names) - 1} ({', '.join(names)}) — hidden labels (-1) of a test "
                    f"split? leave that split out: splits={{'train': ..., 'validation': ...}}")
        return list(values), names
    if declared is not None:
        names = tuple(declared)
        pos = {n: i for i, n in enumerate(names)}
        if all(isinstance(v, int) for v in values) and not all(str(v) in pos for v in values):
            for j, v in enumerate(values):  # whole numbers that are not names: indices
                if not 0 <= v < len(names):
                    raise ConfigError(
                        f"{where(j)}: {what} {v} is neither one of the declared label_names "
                        f"({', '.join(names)}) nor an index 0..{len(names) - 1} into them — "
                        f"add it to label_names, or fix the row")
            return list(values), names
        out = []
        for j, v in enumerate(values):
            i = pos.get(str(v))
            if i is None:
                raise ConfigError(f"{where(j)}: {what} {v!r} is not one of the declared "
                                  f"label_names ({', '.join(names)}) — add it to label_names, "
                                  f"or fix the row")
            out.append(i)
        return out, names
    for j, v in enumerate(values):
        if isinstance(v, float):
            raise ConfigError(f"{where(j)}: {what} {v!r} is not a class (classes are words or "
                              f"whole numbers) — for a score, use kind='regression'")
    if all(isinstance(v, int) for v in values):
        distinct = sorted(set(values))
        index = {v: i for i, v in enumerate(distinct)}
        return [index[v] for v in values], tuple(str(v) for v in distinct)
    distinct = sorted({str(v) for v in values})
    index = {v: i for i, v in enumerate(distinct)}
    return [index[str(v)] for v in values], tuple(distinct)


def text(v, where: str, f: str, col: str) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        raise ConfigError(f"{where}: no {f} (column {col!r} is empty) — fill it in or drop "
                          f"the row")
    raise ConfigError(f"{where}: {f} (column {col!r}) is {v!r}, not text — is {col!r} the "
                      f"right column? map another with columns={{{f!r}: <column>}}")


def label(v, where: str, col: str):
    v = scalar(v)
    if v is None or v == "":
        raise ConfigError(f"{where}: no label (column {col!r} is empty) — label the row or "
                          f"drop it")
    if not isinstance(v, str | int | float) or (isinstance(v, float) and not math.isfinite(v)):
        raise ConfigError(f"{where}: label {v!r} (column {col!r}) is not a class name or "
                          f"number — is {col!r} the right column?")
    return v


def number(v, where: str, col: str) -> float:
    x = scalar(v)
    if isinstance(x, int | float) and math.isfinite(x):
        return float(x)
    raise ConfigError(f"{where}: label {v!r} (column {col!r}) is not a number — a regression "
                      f"label is a score like 3.5 (for classes, use kind='classification')")


def as_list(v, where: str, f: str, col: str, *, words: bool = False) -> list:
    if isinstance(v, list | tuple):
        return list(v)
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            try:
                out = json.loads(s)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: {f} (column {col!r}) starts like a JSON list but "
                                  f"does not parse ({e.msg}) — write it as a JSON list") from e
            if isinstance(out, list):
                return out
        elif words:
            return s.split()
    raise ConfigError(f"{where}: {f} (column {col!r}) is {str(v)[:80]!r}, not a list — write "
                      f"a JSON list" + (" or words separated by spaces" if words else ""))


def choices(row: dict, col, where: str) -> list[str]:
    if isinstance(col, str):
        choices = as_list(row.get(col), where, "choices", col)
    else:
        choices = [row.get(c) for c in col]
    if len(choices) < 2:
        raise ConfigError(f"{where}: {len(choices)} choice(s) — a multiple-choice row needs "
                          f"at least 2")
    for c in choices:
        if not isinstance(c, str):
            raise ConfigError(f"{where}: choice {c!r} is not text — every choice is a string")
    return choices


def answer(v, choices: list[str], where: str, col: str) -> int:
    x = scalar(v)
    if isinstance(x, int) and 0 <= x < len(choices):
        return x
    if isinstance(v, str) and v in choices:
        return choices.index(v)
    raise ConfigError(f"{where}: label {v!r} (column {col!r}) is neither the index of a choice "
                      f"(0..{len(choices) - 1}) nor one of the choices' texts")


def pairs(v, n: int, where: str, col: str) -> list[list[int]]:
    out = []
    for p in as_list(v, where, "pairs", col):
        if (not isinstance(p, list | tuple) or len(p) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in p)):
            raise ConfigError(f"{where}: pair {p!r} is not [head, dependent] — two 0-based "
                              f"word indices")
        bad = [x for x in p if not 0 <= x < n]
        if bad:
            raise ConfigError(f"{where}: pair {list(p)} has word index {bad[0]}, but the "
                              f"sentence has {n} words (0-based indices 0..{n - 1}) — fix the "
                              f"pair (indices count from 0)")
        out.append([int(p[0]), int(p[1])])
    return out


def heads(v, n: int, where: str, col: str) -> list[int]:
    """A sentence's heads: one whole number per word, 0 (ROOT) or the 1-based index of another
    word of the ``n`` (CoNLL-U's HEAD)."""
    out = []
    for i, h in enumerate(as_list(v, where, "heads", col, words=True)):
        x = scalar(h)
        if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= n or x == i + 1:
            raise ConfigError(f"{where}: head {h!r} of word {i + 1} (column {col!r}) is not 0 "
                              f"(root) or another word's 1-based index 1..{n} — heads count "
                              f"words from 1, as CoNLL-U's HEAD does")
        out.append(x)
    if len(out) != n:
        raise ConfigError(f"{where}: {n} tokens but {len(out)} heads (column {col!r}) — one "
                          f"head per word")
    return out


def answers(v, where: str, col: str) -> dict:
    """A question's answers as the hub ``squad`` rows hold them: ``{"text": [str],
    "answer_start": [int]}`` (a JSON object in a table cell); the texts' places in the context
    are checked later (``qa.squad_format.check_rows``)."""
    if isinstance(v, str) and v.strip().startswith("{"):
        try:
            v = json.loads(v)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: answers (column {col!r}) starts like a JSON object "
                              f"but does not parse ({e.msg}) — write it as JSON") from e
    if (not isinstance(v, dict) or not isinstance(v.get("text"), list)
            or not isinstance(v.get("answer_start"), list)):
        raise ConfigError(f"{where}: answers (column {col!r}) is {str(v)[:80]!r}; write "
                          f'{{"text": ["..."], "answer_start": [character offset]}} (SQuAD\'s '
                          f"answers, one start per text)")
    return {"text": list(v["text"]), "answer_start": [scalar(a) for a in v["answer_start"]]}
