"""SQuAD-format JSON (Rajpurkar et al. 2016; the v1.1 release files) to flat rows.

The file: ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}, ...]}]}]}]}``. A row is what the hub ``squad`` dataset
holds: ``{"id", "title", "context", "question", "answers": {"text": [...], "answer_start":
[...]}}``, one per question, in file order.

Checked, each error naming the file, the question id and the fix: the JSON parses and has the
structure above; every answer's ``answer_start`` points at its ``text`` in the context
(``context[start:start + len(text)] == text``, the invariant every span-mapping step relies
on); ids are unique; there is at least one question; every question has an answer (SQuAD v2's
unanswerable questions, ``is_impossible``, are not part of v1.1 and are refused).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from ..errors import ConfigError

__all__ = ["read_squad", "check_rows", "rows_from_squad_json"]


def read_squad(path: str | os.PathLike) -> list[dict]:
    """The questions of the SQuAD-format JSON file at ``path`` as flat rows (checked)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no SQuAD file at {path!r}; give the path of a SQuAD-format .json"
                          " file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid UTF-8 JSON ({e}); a SQuAD file is one JSON object"
                          ' {"data": [...]}') from None
    return rows_from_squad_json(raw, source=path)


def _need(obj, key: str, kind, where: str, source: str):
    if not isinstance(obj, Mapping) or key not in obj:
        raise ConfigError(f"{source}: {where} has no {key!r} field; SQuAD format is"
                          ' {"data": [{"title", "paragraphs": [{"context", "qas": [{"id",'
                          ' "question", "answers": [{"text", "answer_start"}]}]}]}]}')
    value = obj[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{source}: {where}'s {key!r} is {type(value).__name__}, expected"
                          f" {kind.__name__}")
    return value


def rows_from_squad_json(raw, *, source: str = "<json>") -> list[dict]:
    """Flat rows from the parsed JSON object of a SQuAD file (``source`` names it in errors)."""
    rows = []
    for a, article in enumerate(_need(raw, "data", list, "the top level", source)):
        title = article.get("title", "") if isinstance(article, Mapping) else ""
        for p, para in enumerate(_need(article, "paragraphs", list, f"data[{a}]", source)):
            where = f"data[{a}].paragraphs[{p}]"
            context = _need(para, "context", str, where, source)
            for q, qa in enumerate(_need(para, "qas", list, where, source)):
                qwhere = f"{where}.qas[{q}]"
                qid = str(_need(qa, "id", object, qwhere, source))
                answers = _need(qa, "answers", list, f"question {qid!r}", source)
                if qa.get("is_impossible"):
                    raise ConfigError(f"{source}: question {qid!r} is marked is_impossible (a"
                                      " SQuAD v2 unanswerable question); extractive QA here is"
                                      " SQuAD v1.1: drop such questions from the file")
                texts, starts = [], []
                for k, ans in enumerate(answers):
                    awhere = f"question {qid!r} answer {k}"
                    texts.append(_need(ans, "text", str, awhere, source))
                    starts.append(_need(ans, "answer_start", int, awhere, source))
                rows.append({"id": qid, "title": title, "context": context,
                             "question": _need(qa, "question", str, f"question {qid!r}", source),
                             "answers": {"text": texts, "answer_start": starts}})
    check_rows(rows, source=source)
    return rows


def _where_instead(context: str, text: str, start: int) -> str:
    """The fix for a misplaced answer: the nearest place ``text`` does occur, if any."""
    found, i = [], context.find(text)
    while i != -1 and text:
        found.append(i)
        i = context.find(text, i + 1)
    if not found:
        return "the text does not occur in the context at all; correct the answer text"
    best = min(found, key=lambda j: abs(j - start))
    return f"the text occurs at character {best}: set answer_start to {best}"


def check_rows(rows: Iterable[Mapping], *, source: str = "<rows>") -> None:
    """Refuse rows that break SQuAD's invariants (see the module docstring); ``source`` names
    the file or dataset in the message. Works on the hub ``squad`` rows as well."""
    seen: dict[str, int] = {}
    n = 0
    for n, row in enumerate(rows, 1):
        qid, context = row["id"], row["context"]
        if qid in seen:
            raise ConfigError(f"{source}: question id {qid!r} appears twice (questions {seen[qid]}"
                              f" and {n}); ids must be unique: rename one")
        seen[qid] = n
        texts, starts = row["answers"]["text"], row["answers"]["answer_start"]
        if len(texts) != len(starts):
            raise ConfigError(f"{source}: question {qid!r} has {len(texts)} answer texts but"
                              f" {len(starts)} answer_start values; give one start per text")
        if not texts:
            raise ConfigError(f"{source}: question {qid!r} has no answer; SQuAD v1.1 questions"
                              " all have at least one (add it, or drop the question)")
        for k, (text, start) in enumerate(zip(texts, starts, strict=True)):
            if not text.strip():
                raise ConfigError(f"{source}: question {qid!r} answer {k} is empty; give the"
                                  " answer's text")
            if isinstance(start, bool) or not isinstance(start, int) or start < 0:
                raise ConfigError(f"{source}: question {qid!r} answer {k} has answer_start"
                                  f" {start!r}; it must be a character offset >= 0")
            there = context[start:start + len(text)]
            if there != text:
                raise ConfigError(
                    f"{source}: question {qid!r} answer {k} {text!r} is not at answer_start"
                    f" {start} (the context has {there!r} there); "
                    + _where_instead(context, text, start))
    if n == 0:
        raise ConfigError(f"{source}: no questions; a SQuAD file needs at least one question"
                          " with an answer")
