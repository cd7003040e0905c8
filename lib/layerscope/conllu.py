"""Read CoNLL-U treebanks (Universal Dependencies) into sentences, and sentences into task rows.

The format (https://universaldependencies.org/format.html): UTF-8 text, one word per line with
10 tab-separated fields ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC (``_`` for an empty
value), comment lines starting with ``#`` (``# sent_id = ...``, ``# text = ...``) before a
sentence, and a blank line after each sentence. Two kinds of line are not syntactic words and
are not returned as words, as the spec says:

- a multi-word token's range line (``3-4  don't``): the surface token, whose words follow
  (``do``, ``n't``). Its surface form is kept in ``multiword_tokens`` for display only;
- an empty node (``8.1``, elided predicates): part of the enhanced graph (DEPS) only, with no
  place in the basic tree (HEAD/DEPREL), so it is skipped.

A sentence is a dict (the schema every reader here returns)::

    {"tokens": [str], "upos": [str], "xpos": [str], "feats": [str], "lemmas": [str],
     "heads": [int | None],   # CoNLL-U's HEAD: 0 = root, else the 1-based index of the head
                              # word; None where HEAD is "_" (a treebank without syntax)
     "deprels": [str], "sent_id": str | None,
     "line": int,             # 1-based line of the sentence's first word
     "multiword_tokens": [[first, last, form]]}   # 1-based word IDs, for display

Checked, each with a ``ConlluError`` ``"<file>:<line>: <what was wrong> — <the fix>"``: 10
fields per line (none empty), IDs that are integers consecutive from 1 (ranges and empty
nodes in their own forms), HEAD an integer in 0..n (not the word itself) or ``_``, a DEPREL
wherever there is a HEAD, a multi-word range starting at the next word and ending inside the
sentence, a file that is UTF-8 and holds at least one sentence. A last sentence without the
trailing blank line is accepted. Structure beyond that (one root, no cycles) is not required:
the rows below do not need a tree.

``sentence_blocks`` and ``parse_block`` are the building blocks for formats that extend
CoNLL-U with more columns (``streusle`` reads STREUSLE's 19-column .conllulex with them).
Standard library only, like every reader (no torch or datasets at import).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, check_choice

FIELDS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
# tagging_rows' columns -> the sentence key holding them
TAG_COLUMNS = {"upos": "upos", "xpos": "xpos", "feats": "feats", "deprel": "deprels"}

_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)")
_COMMENT = re.compile(r"#\s*([^=\s][^=]*?)\s*=\s*(.*?)\s*$")


class ConlluError(ConfigError):
    """A CoNLL-U file that does not parse: ``"<file>:<line>: <what> — <fix>"``."""


@dataclass
class Block:
    """One sentence's lines as read: its ``# key = value`` comments and its token lines
    (``(line number, fields)``, range lines and empty nodes included)."""

    comments: dict[str, str] = field(default_factory=dict)
    lines: list[tuple[int, list[str]]] = field(default_factory=list)


def sentence_blocks(path: Path | str, *, name: str | None = None,
                    columns: tuple[str, ...] = FIELDS,
                    error: type[ConfigError] = ConlluError) -> list[Block]:
    """The sentences of a CoNLL-U-style file as ``Block``s, each token line split into exactly
    ``len(columns)`` tab-separated values, none empty (``columns`` names them in messages).
    ``name`` is how messages call the file (default: the path); ``error`` the exception type
    raised (a ``ConfigError``)."""
    path = Path(path)
    shown = name or str(path)
    width = len(columns)
    what = "CoNLL-U" if columns == FIELDS else f"{width}-column CoNLL-U"
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"{shown}: cannot read the file ({e.strerror or e}) — check the path") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise error(f"{shown}:{line}: byte {raw[e.start:e.start + 1]!r} is not UTF-8 — "
                    f"CoNLL-U files are UTF-8: re-encode the file (e.g. iconv -t UTF-8)") from e
    blocks: list[Block] = []
    current = Block()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():  # a sentence ends (repeated blank lines are tolerated)
            if current.lines:
                blocks.append(current)
                current = Block()
            continue
        if line.startswith("#"):
            m = _COMMENT.match(line)
            if m and not current.lines:  # the header of the sentence that follows
                current.comments.setdefault(m.group(1), m.group(2))
            continue
        values = line.split("\t")
        if len(values) != width:
            spaced = " (spaces where tabs belong?)" if (
                len(values) < width and len(line.split()) >= width) else ""
            raise error(f"{shown}:{n}: {len(values)} tab-separated fields{spaced}, a {what} "
                        f"word line has {width}: {line[:80]!r} — separate the {width} fields "
                        f"with single tabs and write _ for an empty one")
        for i, v in enumerate(values):
            if v == "":
                raise error(f"{shown}:{n}: field {i + 1} ({columns[i]}) is empty — write _ "
                            f"for an empty value")
        current.lines.append((n, values))
    if current.lines:  # the last sentence may lack its trailing blank line
        blocks.append(current)
    if not blocks:
        raise error(f"{shown}: no sentences (no word lines) — is this a {what} file? Each word "
                    f"is a line of {width} tab-separated fields; sentences end with a blank "
                    f"line")
    return blocks


def parse_block(block: Block, *, name: str, error: type[ConfigError] = ConlluError,
                ) -> tuple[dict, list[tuple[int, list[str]]]]:
    """(sentence, its syntactic words' ``(line, fields)``) of one block: range lines and
    empty nodes checked and set aside, IDs, HEAD and DEPREL checked (module docstring)."""
    words: list[tuple[int, list[str]]] = []
    mwts: list[list] = []
    open_range: tuple[int, int, int] | None = None  # (first, last, line)
    for n, f in block.lines:
        ident, expected = f[0], len(words) + 1
        if _WORD_ID.fullmatch(ident):
            if int(ident) != expected:
                raise error(f"{name}:{n}: word ID {ident!r}, expected {expected} — IDs count "
                            f"1, 2, 3, ... within each sentence (is a blank line missing "
                            f"between two sentences, or a word missing?)")
            words.append((n, f))
            continue
        m = _RANGE_ID.fullmatch(ident)
        if m:
            first, last = int(m.group(1)), int(m.group(2))
            if first != expected or last <= first:
                raise error(f"{name}:{n}: multi-word token range {ident!r} must start at the "
                            f"next word ({expected}) and end after it — write it as "
                            f"{expected}-{expected + 1} (or more) right before its words")
            if open_range is not None and expected <= open_range[1]:
                raise error(f"{name}:{n}: multi-word token range {ident!r} overlaps the range "
                            f"on line {open_range[2]} — each word belongs to one token")
            open_range = (first, last, n)
            mwts.append([first, last, f[1]])
            continue
        m = _EMPTY_ID.fullmatch(ident)
        if m:
            if int(m.group(1)) != expected - 1:
                raise error(f"{name}:{n}: empty node {ident!r} follows word {expected - 1} — "
                            f"an empty node is numbered after the word it follows "
                            f"({expected - 1}.1, {expected - 1}.2, ...)")
            continue  # enhanced graph only: not a syntactic word (module docstring)
        raise error(f"{name}:{n}: ID {ident!r} is not a word ID (1, 2, ...), a multi-word "
                    f"range (3-4) or an empty node (8.1) — fix the first field of the line")
    if not words:
        raise error(f"{name}:{block.lines[0][0]}: a sentence with no words (only multi-word "
                    f"ranges or empty nodes) — every sentence needs its word lines")
    count = len(words)
    if open_range is not None and open_range[1] > count:
        raise error(f"{name}:{open_range[2]}: multi-word token range "
                    f"{open_range[0]}-{open_range[1]} ends after the sentence's last word "
                    f"({count}) — give the range its words or correct its end")
    heads: list[int | None] = []
    for n, f in words:
        head, deprel = f[6], f[7]
        if head == "_":
            heads.append(None)
            continue
        if not re.fullmatch(r"0|[1-9][0-9]*", head):
            raise error(f"{name}:{n}: HEAD {head!r} of word {f[0]} is not an integer — write "
                        f"0 for the root, the ID of the head word, or _ when there is no "
                        f"syntax")
        h = int(head)
        if h > count:
            raise error(f"{name}:{n}: HEAD {h} of word {f[0]} is out of range: the sentence "
                        f"has {count} words — HEAD is 0 (root) or a word ID 1..{count}")
        if h == int(f[0]):
            raise error(f"{name}:{n}: word {f[0]} is its own HEAD — a word's head is another "
                        f"word or 0 (root)")
        if deprel == "_":
            raise error(f"{name}:{n}: word {f[0]} has HEAD {h} but DEPREL '_' — give the "
                        f"relation (e.g. nsubj, root), or write _ for both")
        heads.append(h)
    sentence = {
        "tokens": [f[1] for _, f in words],
        "upos": [f[3] for _, f in words],
        "xpos": [f[4] for _, f in words],
        "feats": [f[5] for _, f in words],
        "lemmas": [f[2] for _, f in words],
        "heads": heads,
        "deprels": [f[7] for _, f in words],
        "sent_id": block.comments.get("sent_id"),
        "line": words[0][0],
        "multiword_tokens": mwts,
    }
    return sentence, words


def read(path: Path | str, *, name: str | None = None) -> list[dict]:
    """The sentences of a CoNLL-U file (schema in the module docstring), in file order.
    ``name`` is how error messages call the file (default: the path)."""
    shown = name or str(path)
    return [parse_block(b, name=shown)[0] for b in sentence_blocks(path, name=shown)]


def tagging_rows(sentences: list[dict], column: str = "upos") -> list[dict]:
    """Rows ``{"tokens", "tags": [str]}`` of a word-level task on one column: ``upos``,
    ``xpos``, ``feats`` (the whole FEATS string is the label) or ``deprel``. A column that is
    ``_`` on every word (a treebank without it) is an error, not a one-class task."""
    check_choice(column, TAG_COLUMNS, "CoNLL-U tagging column")
    key = TAG_COLUMNS[column]
    rows = [{"tokens": list(s["tokens"]), "tags": list(s[key])} for s in sentences]
    if rows and all(t == "_" for r in rows for t in r["tags"]):
        raise ConlluError(f"column {column.upper()} is '_' (empty) on every word of the "
                          f"{len(rows)} sentences — this treebank does not annotate it; pick "
                          f"another column ({', '.join(TAG_COLUMNS)})")
    return rows


def pair_rows(sentences: list[dict]) -> list[dict]:
    """Rows ``{"tokens", "pairs": [[head0, dep0]], "pair_labels": [str]}`` of the token-pair
    relation task (Zhou & Srikumar 2022's DEP): one pair per word that has a head word, with
    0-based word indices and the DEPREL as label, in word order. Root arcs have no head word
    and are left out (so a one-word sentence gives no pairs); so are words whose HEAD is
    ``_``. One row per sentence, in order."""
    if sentences and all(h is None for s in sentences for h in s["heads"]):
        raise ConlluError(f"no word of the {len(sentences)} sentences has a HEAD (all '_') — "
                          f"a dependency-pair task needs a treebank with HEAD and DEPREL")
    rows = []
    for s in sentences:
        pairs, labels = [], []
        for dep, (head, rel) in enumerate(zip(s["heads"], s["deprels"], strict=True)):
            if head is None or head == 0:
                continue
            pairs.append([head - 1, dep])
            labels.append(rel)
        rows.append({"tokens": list(s["tokens"]), "pairs": pairs, "pair_labels": labels})
    return rows
