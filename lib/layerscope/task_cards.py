"""Task cards: a small YAML file that names the user's data and says how to read it.

A card in ``$LAYERSCOPE_HOME/tasks/`` is a task by its file name (``reviews.yaml`` is the
task ``reviews``, listed by ``layerscope tasks``); a card anywhere else is a task by its path.
Paths in a card are relative to the card's folder::

    name: reviews                 # optional; in the user folder it must be the file's name
    description: product reviews, 1-5 stars
    path: data/reviews.csv        # or dataset: (a hub id, or a save_to_disk / data folder)
    # config: ..., revision: ...  # a hub dataset's config and revision (branch, tag, commit)
    # format: csv                 # when the extension does not say
    kind: classification          # optional: read from the columns
    columns: {text: review, label: stars}   # our names -> the file's; choices: [a, b, c]
    label_names: ["1", "2", "3", "4", "5"]  # optional: the classes, in order
    splits: {seed: 0, fractions: [0.8, 0.1, 0.1]}   # made (the default when the data has
    #   none); or the data's own: {train: train, validation: dev}; or, with no path/dataset,
    #   one file per split: {train: train.conllu, validation: dev.conllu}
    metrics: [accuracy, macro_f1]  # optional: the kind's defaults
    # column: upos                # CoNLL-U: upos|xpos|feats|deprel; STREUSLE: role|fxn

A SQuAD-format JSON file (``path: train-v1.1.json``, or one file per split: ``splits: {train:
train-v1.1.json, validation: dev-v1.1.json}``) is an extractive_qa task (``format: squad``
when its top level is not ``{"data": [...]}``); a CoNLL-U file with ``kind:
dependency_parsing`` a parsing task (every word's HEAD and DEPREL; no ``column:``).

Reading a card checks its keys (an unknown one lists the valid ones, with the closest) and
their types; the data itself is read when the task is resolved (``user_tasks.from_card``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .errors import ConfigError

CARD_KEYS = ("name", "description", "path", "dataset", "config", "revision", "format", "kind",
             "columns", "label_names", "splits", "metrics", "column")
CARD_SUFFIXES = (".yaml", ".yml")
_TEXT_KEYS = ("name", "description", "path", "dataset", "config", "revision", "format", "kind",
              "column")


@dataclass(frozen=True)
class Card:
    path: Path  # the card file, absolute
    name: str  # the task's name: the file's stem in the user folder, else the card's path
    description: str
    data: str  # "file", "dataset" (a local folder or a hub id) or "split_files"
    location: str  # the data file or folder (absolute), or the hub id
    options: dict = field(default_factory=dict)  # from_file/from_dataset keywords
    split_files: tuple[tuple[str, str], ...] = ()  # (split, absolute path) when data is per split


def cards_dir() -> Path:
    """The user's folder of task cards: ``$LAYERSCOPE_HOME/tasks``."""
    return paths.home() / "tasks"


def card_files() -> list[Path]:
    folder = cards_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in CARD_SUFFIXES and p.is_file() and not p.name.startswith("."))


def card_named(name: str) -> Path | None:
    """The card in the user folder for task ``name`` (``<name>.yaml`` or ``.yml``), if any."""
    if not name or "/" in name or os.sep in name or name.startswith((".", "~")):
        return None
    for suffix in CARD_SUFFIXES:
        p = cards_dir() / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def in_user_folder(path: Path) -> bool:
    return path.parent == cards_dir().resolve() or path.parent == cards_dir()


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"task card {path}: {what}")


def read_card(path: Path | str) -> Card:
    """The card at ``path``, checked (module docstring)."""
    import yaml

    path = Path(os.path.abspath(Path(path).expanduser()))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"task card {path}: no such file — check the path") from e
    except UnicodeDecodeError as e:
        raise _fail(path, "not UTF-8 text — save it as UTF-8") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"task card {where}: not valid YAML "
                          f"({getattr(e, 'problem', None) or e}) — fix that line") from e
    if not isinstance(doc, dict):
        raise _fail(path, f"holds {type(doc).__name__ if doc is not None else 'nothing'}, not "
                          f"a mapping of keys — write 'path: data.csv' and the other keys "
                          f"({', '.join(CARD_KEYS)})")
    unknown = [k for k in doc if k not in CARD_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), CARD_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _fail(path, f"unknown key {unknown[0]!r}{hint}; valid keys: "
                          f"{', '.join(CARD_KEYS)}")
    for k in _TEXT_KEYS:
        if k in doc and not isinstance(doc[k], str):
            raise _fail(path, f"{k}: {doc[k]!r} is not text — quote it: {k}: \"{doc[k]}\"")
    stem_name = in_user_folder(path)
    if stem_name and doc.get("name") not in (None, path.stem):
        raise _fail(path, f"name: {doc['name']!r}, but a card in {cards_dir()} is named by its "
                          f"file ({path.stem!r}) — rename the file to {doc['name']}.yaml or "
                          f"drop the name key")
    options = _options(path, doc)
    folder = path.parent
    split_files: tuple[tuple[str, str], ...] = ()
    splits = options.pop("splits", None)
    has_path, has_dataset = "path" in doc, "dataset" in doc
    if has_path and has_dataset:
        raise _fail(path, "give path: (a file) or dataset: (a dataset), not both")
    if not has_path and not has_dataset:
        if splits is None:
            raise _fail(path, "no data: give path: (a data file, relative to the card), "
                              "dataset: (a hub id or a dataset folder), or one file per split "
                              "in splits: {train: train.csv, validation: dev.csv}")
        if not isinstance(splits, dict):
            raise _fail(path, "splits: must map splits to files: {train: train.csv, ...}")
        split_files = tuple((s, _local(folder, f)) for s, f in splits.items())
        data, location, splits = "split_files", "", None
    elif has_path:
        data, location = "file", _local(folder, doc["path"])
    else:
        local = Path(_local(folder, doc["dataset"]))
        data, location = "dataset", str(local) if local.exists() else doc["dataset"]
    if data != "dataset" or Path(location).exists():
        for k in ("config", "revision"):
            if k in doc:
                raise _fail(path, f"{k}: is for a hub dataset (dataset: org/name); this card's "
                                  f"data is local — drop {k}:")
    if isinstance(splits, dict) and set(splits) <= {"seed", "fractions"}:
        if "seed" in splits:
            options["split_seed"] = splits["seed"]
        if "fractions" in splits:
            options["split_fractions"] = splits["fractions"]
    elif splits is not None:
        options["splits"] = splits
    name = path.stem if stem_name else str(path)
    return Card(path, name, doc.get("description", ""), data, location, options, split_files)


def _local(folder: Path, value: str) -> str:
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else folder / p)


def _options(path: Path, doc: dict) -> dict:
    out: dict = {}
    for k in ("kind", "format", "column", "config", "revision"):
        if k in doc:
            out[k] = doc[k]
    if "columns" in doc:
        cols = doc["columns"]
        if not isinstance(cols, dict) or not all(
                isinstance(v, str) or (isinstance(v, list) and all(isinstance(c, str) for c in v))
                for v in cols.values()):
            raise _fail(path, f"columns: {cols!r} must map our names to the data's columns, "
                              f"e.g. {{text: review, label: stars}} (choices: a list)")
        out["columns"] = dict(cols)
    for k in ("label_names", "metrics"):
        if k in doc:
            v = doc[k]
            if isinstance(v, str) and k == "metrics":
                v = [v]
            if not isinstance(v, list) or not all(isinstance(x, str | int) for x in v):
                raise _fail(path, f"{k}: {v!r} must be a list, e.g. [negative, positive]")
            out[k] = [str(x) for x in v]
    if "splits" in doc:
        s = doc["splits"]
        if not isinstance(s, dict) or not all(isinstance(k, str) for k in s):
            raise _fail(path, f"splits: {s!r} must be a mapping: {{train: train, validation: "
                              f"dev}}, {{seed: 0, fractions: [0.8, 0.1, 0.1]}}, or one file "
                              f"per split")
        if "seed" in s and not (isinstance(s["seed"], int) and not isinstance(s["seed"], bool)):
            raise _fail(path, f"splits: seed: {s['seed']!r} must be a whole number")
        if "fractions" in s and not (isinstance(s["fractions"], list) and all(
                isinstance(f, int | float) for f in s["fractions"])):
            raise _fail(path, f"splits: fractions: {s['fractions']!r} must be a list of "
                              f"numbers, e.g. [0.8, 0.1, 0.1]")
        if set(s) & {"seed", "fractions"} and not set(s) <= {"seed", "fractions"}:
            raise _fail(path, "splits: holds seed/fractions (made splits) and split names; "
                              "give one or the other")
        if not set(s) & {"seed", "fractions"} and not all(isinstance(v, str) for v in s.values()):
            raise _fail(path, f"splits: {s!r}: each split maps to a split name or a file")
        out["splits"] = dict(s)
    return out


def list_cards() -> list[tuple[str, Path, Card | str]]:
    """Each card of the user folder: (task name, file, the card or its one-line error). Only
    the cards are read (and their data's presence checked), not the data."""
    from .tasks import TASKS

    out: list[tuple[str, Path, Card | str]] = []
    for p in card_files():
        try:
            card = read_card(p)
            if p.stem in TASKS:
                raise ConfigError(f"{p.stem!r} is a registry task's name, which wins — rename "
                                  f"the card")
            for loc in [card.location] + [f for _, f in card.split_files]:
                if (card.data != "dataset" or os.path.isabs(loc)) and not Path(loc).exists():
                    raise ConfigError(f"its data {loc} does not exist — fix path: in the card")
        except ConfigError as e:
            out.append((p.stem, p, " ".join(str(e).split())))
            continue
        out.append((card.name, p, card))
    return out
