"""The user's own data read into raw rows, and the content digests that identify it.

Every reader gives a ``RawData``: the data's own splits (``{"": rows}`` when it has none),
each a list of plain dict rows with where each row came from (``file:line`` for text formats,
``row N`` otherwise) so that ``task_rows`` can name the row in its messages; the column names;
and the class names ``datasets`` features carry (``ClassLabel``). Formats:

=========  ===============================================================================
csv, tsv   a header line, then one row per record; TSV is read without quote handling (a
           tab cannot be in a field; GLUE's TSVs hold unbalanced quotes)
jsonl      one JSON object per line (blank lines skipped); ``.json``: that, or one JSON array
           of objects
parquet    any Parquet file (pyarrow)
saved      a folder written by ``datasets.Dataset(Dict).save_to_disk``
data       a folder of data files, read by ``datasets.load_dataset(folder)`` (its split
           names come from the file names: train.csv, validation.jsonl, ...)
hub        a hub dataset id (``tasks.load_hub_dataset``: offline handling, clear error)
conllu     CoNLL-U (``conllu``): rows already in our schema (tagging on a column,
           token_pair with DEPREL labels, or dependency_parsing: every word's HEAD and
           DEPREL, refused where a word has no HEAD)
squad      SQuAD-format JSON (``qa.squad_format.read_squad``: ``{"data": [{"paragraphs":
           [{"context", "qas": [...]}]}]}``), one extractive_qa row per question. A ``.json``
           whose top level is such an object is read as SQuAD (``format="squad"`` says so
           outright)
conllulex  STREUSLE 4.x (``streusle``): tagging on the role or function supersense of
           single-token prepositions; other words have no tag (-1). STREUSLE's ``.json``
           is read with ``format="conllulex"``
=========  ===============================================================================

Digests (``file_digest``, ``folder_digest``) are sha256 of the content, never of the name, and
are memoised per process by (path, size, mtime_ns): a 100 MB file is hashed once, not per
cache lookup. No torch here (``layerscope tasks`` lists cards without it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

# file extension -> format
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".conllu": "conllu",
              ".conllulex": "conllulex"}
FILE_FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl", "json", "parquet", "conllu", "conllulex",
                                 "squad")
# what a tag is in the formats whose rows come in our schema (first: the default)
TAG_COLUMNS = {"conllu": ("upos", "xpos", "feats", "deprel"), "conllulex": ("role", "fxn")}
# the kinds of the formats whose rows come in our schema (first: the default)
READER_KINDS = {"conllu": ("tagging", "token_pair", "dependency_parsing"),
                "conllulex": ("tagging",), "squad": ("extractive_qa",)}
# the kinds whose rows are read on a column (``column=``) of such a format
COLUMN_KINDS = ("tagging", "token_pair")
_SQUAD_HEAD = re.compile(r'\s*\{\s*"(data|version)"\s*:')


@dataclass
class RawSplit:
    """Rows of one split as read, and where each came from (for messages)."""

    rows: list[dict]
    shown: str  # the file (or dataset and split) the rows are in
    lines: list[int] | None = None  # 1-based line of each row (text formats)
    unit: str = "row"  # what a row is called in messages when there are no lines

    def where(self, i: int) -> str:
        if self.lines is not None:
            return f"{self.shown}:{self.lines[i]}"
        return f"{self.shown} {self.unit} {i + 1}"


@dataclass
class RawData:
    splits: dict[str, RawSplit]  # the data's split name -> rows; {"": rows} when it has none
    columns: tuple[str, ...]
    shown: str  # how messages name the data
    class_names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # ClassLabel names
    kind: str | None = None  # readers whose rows are in our schema already (CoNLL-U, STREUSLE)


def format_of(path: Path, fmt: str | None = None) -> str:
    """The format of a data file: ``fmt`` when given, else from its extension."""
    if fmt is not None:
        if fmt not in FILE_FORMATS:
            raise ConfigError(f"{path}: unknown format {fmt!r}; valid values: "
                              f"{', '.join(FILE_FORMATS)}")
        return fmt
    found = EXTENSIONS.get(path.suffix.lower())
    if found == "json" and is_squad_file(path):
        return "squad"
    if found is None:
        raise ConfigError(
            f"{path}: unknown file extension {path.suffix or '(none)'!r}; task files are "
            f"{', '.join(sorted(EXTENSIONS))} — rename the file, or give its format "
            f"(format='csv' | 'tsv' | 'jsonl' | ...; a card's format: key)")
    return found


_SQUAD_MEMO: dict[tuple, bool] = {}


def is_squad_file(path: Path) -> bool:
    """Whether a .json file is SQuAD-format: one JSON object whose ``data`` is a list (its
    opening looks so, then the whole parses so; once per process per size and mtime)."""
    try:
        key = stat_key(path)
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    if not _SQUAD_HEAD.match(head):
        return False
    if key not in _SQUAD_MEMO:
        try:
            doc = json.loads(read_text(path))
        except (ValueError, ConfigError):
            doc = None
        _SQUAD_MEMO[key] = isinstance(doc, dict) and isinstance(doc.get("data"), list)
    return _SQUAD_MEMO[key]


# --- text files -------------------------------------------------------------------------------

def read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM dropped); not UTF-8 -> an error naming the line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: byte {raw[e.start:e.start + 1]!r} is not UTF-8 — "
                          f"save the file as UTF-8 (e.g. iconv -t UTF-8)") from e


def _empty(path: Path, what: str = "") -> ConfigError:
    return ConfigError(f"{path}: the file is empty{what} — a task file needs rows "
                       f"(is it the right file, or still being written?)")


def read_delimited(path: Path, fmt: str) -> RawData:
    text = read_text(path)
    if not text.strip():
        raise _empty(path)
    tsv = fmt == "tsv"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tsv else ",",
                        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    header: list[str] | None = None
    rows, lines = [], []
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record or all(not v.strip() for v in record):
                continue  # blank line
            if header is None:
                header = [h.strip() for h in record]
                dup = sorted({h for h in header if header.count(h) > 1})
                if dup:
                    raise ConfigError(f"{path}:{start}: the header names column(s) {dup} "
                                      f"twice — give every column its own name")
                continue
            if len(record) != len(header):
                hint = ("" if tsv else "; quote fields that contain a comma (\"a, b\")")
                raise ConfigError(f"{path}:{start}: {len(record)} fields, the header has "
                                  f"{len(header)} ({', '.join(header)}){hint}")
            rows.append(dict(zip(header, record, strict=True)))
            lines.append(start)
    except csv.Error as e:
        raise ConfigError(f"{path}:{reader.line_num}: not valid {fmt.upper()} ({e}) — check "
                          f"the quoting on that line") from e
    if not rows:
        raise _empty(path, f" but for its header line ({', '.join(header or [])})")
    return RawData({"": RawSplit(rows, str(path), lines)}, tuple(header or ()), str(path))


def read_json(path: Path, fmt: str) -> RawData:
    text = read_text(path)
    if not text.strip():
        raise _empty(path)
    if fmt == "json" and text.lstrip().startswith("["):  # one array of records
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: not valid JSON ({e.msg}) — fix that "
                              f"line") from e
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise ConfigError(f"{path} record {i + 1}: {type(r).__name__}, not an object "
                                  f"— a JSON task file is an array of objects (one per row)")
        if not records:
            raise _empty(path, " (an empty array)")
        split = RawSplit(records, str(path), unit="record")
        return RawData({"": split}, _keys(records), str(path))
    rows, lines = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno}) — a "
                              f"JSON-lines file holds one JSON object per line") from e
        if not isinstance(r, dict):
            raise ConfigError(f"{path}:{n}: a JSON {type(r).__name__}, not an object — each "
                              f"line is one row: {{\"text\": ..., \"label\": ...}}")
        rows.append(r)
        lines.append(n)
    return RawData({"": RawSplit(rows, str(path), lines)}, _keys(rows), str(path))


def _keys(rows: list[dict]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    return tuple(seen)


def read_parquet(path: Path) -> RawData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise _empty(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ConfigError(f"{path}: not a Parquet file ({e}) — give its format (format=...) "
                          f"or the right file") from e
    rows = table.to_pylist()
    if not rows:
        raise _empty(path, f" (a Parquet table with columns {table.column_names} but no rows)")
    return RawData({"": RawSplit(rows, str(path))}, tuple(table.column_names), str(path))


# --- CoNLL-U and STREUSLE: rows in our schema --------------------------------------------------

def read_treebank(path: Path, fmt: str, kind: str, column: str) -> RawData:
    """CoNLL-U (``conllu``) or STREUSLE (``streusle``) sentences as rows of ``kind``; the
    readers check the format and name ``file:line`` in their errors."""
    if fmt == "conllu":
        from . import conllu

        sentences = conllu.read(path, name=str(path))
        if kind == "token_pair":
            rows, cols = conllu.pair_rows(sentences), ("tokens", "pairs", "pair_labels")
        elif kind == "dependency_parsing":
            rows, cols = parse_rows(sentences, str(path)), ("tokens", "heads", "deprels")
        else:
            rows, cols = conllu.tagging_rows(sentences, column), ("tokens", "tags")
    else:
        from . import streusle

        sentences = streusle.read(path, name=str(path))
        rows, cols = streusle.tagging_rows(sentences, column), ("tokens", "tags")
        sentences = [s for s in sentences if s["targets"]]  # the rows: those with a target
    lines = [s["line"] for s in sentences]
    if len(lines) != len(rows) or None in lines:  # (STREUSLE's JSON has no lines)
        lines = None
    return RawData({"": RawSplit(rows, str(path), lines, unit="sentence")}, cols, str(path),
                   kind=kind)


def parse_rows(sentences: list[dict], shown: str) -> list[dict]:
    """Rows ``{"tokens", "heads", "deprels"}`` of a parsing task (every word's HEAD, 0 = root,
    and DEPREL as written); a word without a HEAD (``_``) is an error naming its line."""
    rows = []
    for s in sentences:
        missing = [i for i, h in enumerate(s["heads"]) if h is None]
        if missing:
            raise ConfigError(
                f"{shown}:{s['line']}: word {missing[0] + 1} ({s['tokens'][missing[0]]!r}) of "
                f"the sentence starting on this line has no HEAD ('_') — dependency parsing needs "
                f"every word's head and relation: use a treebank with syntax (HEAD and "
                f"DEPREL), or another kind (tagging on a column)")
        rows.append({"tokens": list(s["tokens"]), "heads": list(s["heads"]),
                     "deprels": list(s["deprels"])})
    return rows


def read_squad_file(path: Path) -> RawData:
    """A SQuAD-format JSON file: one extractive_qa row per question (``read_squad`` checks
    the format and every answer's place, naming the file and question)."""
    from .qa.squad_format import read_squad

    rows = read_squad(path)
    return RawData({"": RawSplit(rows, str(path), unit="question")},
                   ("id", "title", "context", "question", "answers"), str(path),
                   kind="extractive_qa")


def read_file(path: Path, fmt: str, *, kind: str | None = None,
              column: str | None = None) -> RawData:
    if not path.is_file():
        raise ConfigError(f"{path}: {'a folder' if path.is_dir() else 'no such file'} — give "
                          f"the path of a data file ({', '.join(sorted(EXTENSIONS))})")
    if fmt in ("csv", "tsv"):
        return read_delimited(path, fmt)
    if fmt in ("jsonl", "json"):
        return read_json(path, fmt)
    if fmt == "parquet":
        return read_parquet(path)
    if fmt == "squad":
        return read_squad_file(path)
    return read_treebank(path, fmt, kind or "tagging", column or TAG_COLUMNS[fmt][0])


# --- datasets: saved folders, data folders, the hub -------------------------------------------

def is_saved_dataset(folder: Path) -> bool:
    """A folder ``save_to_disk`` wrote (a Dataset: state.json; a DatasetDict: dataset_dict.json)."""
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def from_datasets(ds, shown: str) -> RawData:
    """RawData of a ``datasets.Dataset`` (no splits) or ``DatasetDict``."""
    import datasets

    parts = dict(ds) if isinstance(ds, datasets.DatasetDict) else {"": ds}
    if not parts:
        raise ConfigError(f"{shown}: the dataset has no splits — is it the right dataset?")
    splits, columns, names = {}, {}, {}
    for split, d in parts.items():
        where = f"{shown} split {split!r}" if split else shown
        splits[split] = RawSplit(d.to_list(), where)
        columns.update(dict.fromkeys(d.column_names))
        for col, feature in d.features.items():
            for f in (feature, getattr(feature, "feature", None)):  # a column or a list of
                if isinstance(f, datasets.ClassLabel):
                    names[col] = tuple(f.names)
    if not any(s.rows for s in splits.values()):
        raise ConfigError(f"{shown}: the dataset has no rows — is it the right dataset?")
    return RawData(splits, tuple(columns), shown, class_names=names)


def read_saved(folder: Path) -> RawData:
    import datasets

    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as e:  # datasets raises FileNotFoundError or its own errors
        raise ConfigError(f"{folder}: not a dataset folder written by save_to_disk ({e}) — "
                          f"save it with Dataset.save_to_disk(folder)") from e
    return from_datasets(ds, str(folder))


def read_data_folder(folder: Path) -> RawData:
    import datasets

    if not any(p.is_file() for p in data_files(folder)):
        raise ConfigError(f"{folder}: the folder holds no data files — put the task's files "
                          f"there (train.csv, validation.csv, ...), or give a file's path")
    try:
        ds = datasets.load_dataset(str(folder))
    except Exception as e:
        raise ConfigError(f"{folder}: datasets.load_dataset could not read the folder "
                          f"({type(e).__name__}: {str(e)[:300]}) — give one file's path, or "
                          f"write a task card naming each split's file") from e
    return from_datasets(ds, str(folder))


def read_hub(task: str, hub_id: str, config: str | None, revision: str | None) -> RawData:
    from .tasks import load_hub_dataset

    ds = load_hub_dataset(
        task, hub_id, config, revision=revision,
        fix="Download it once while online (it is then read from the Hugging Face cache), or "
            "save it to a folder (save_to_disk) or to files and give their path.")
    shown = f"hub dataset {hub_id!r}" + (f" ({config})" if config else "")
    return from_datasets(ds, shown)


# --- content digests ----------------------------------------------------------------------------

_DIGESTS: dict[tuple, str] = {}


def stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes, once per process per (path, size, mtime_ns)."""
    key = stat_key(path)
    digest = _DIGESTS.get(key)
    if digest is None:
        if path.name == "state.json":  # save_to_disk's: its _fingerprint is random per save
            state = json.loads(path.read_text())
            state.pop("_fingerprint", None)
            h = hashlib.sha256(json.dumps(state, sort_keys=True).encode())
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def data_files(folder: Path) -> list[Path]:
    """The files of a folder, sorted by relative path; hidden ones (.cache, .DS_Store) left
    out, as ``datasets`` leaves them out."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / f for f in files if not f.startswith(".")]
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def folder_digest(folder: Path) -> str:
    """sha256 over the folder's files (relative path and content digest each): the folder's
    own name and place are not part of it."""
    h = hashlib.sha256()
    for p in data_files(folder):
        h.update(f"{p.relative_to(folder).as_posix()}\0{file_digest(p)}\n".encode())
    return h.hexdigest()


def signature(path: Path) -> tuple:
    """What changes when a file or folder's content may have: (path, size, mtime_ns) of each
    file (memo keys; cheap, no reading)."""
    if path.is_dir():
        return tuple(stat_key(p) for p in data_files(path))
    return (stat_key(path),)
