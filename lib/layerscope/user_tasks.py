"""The user's own data as a task: a file, a dataset folder, a hub dataset, a task card.

``TaskSpec.from_file(path, ...)`` and ``TaskSpec.from_dataset(path_or_hub_id, ...)`` (here:
``from_file``, ``from_dataset``) read the data once, check it (``task_rows``: column mapping,
kind, labels, splits; every bad row named with its file and line) and return a ``TaskSpec``
that every study, the fine-tuning and the caches take like a registry task. A string works
wherever a task name goes (``get_task``, configs, notebooks' ``task`` parameter, ``--task``,
grids), resolved in this order: a registry name; a card in ``$LAYERSCOPE_HOME/tasks``
(``task_cards``) by name; ``hub:org/name[@revision]``; a path (file, folder or card).

**Names.** The spec's ``name`` is what configs, results and sweeps keep, so it resolves to the
same spec again in any process: the absolute path (``/data/reviews.csv``), with the options
given as a query when there are any (``/data/reviews.csv?kind=regression&columns=text:review``,
each value percent-quoted); ``hub:org/name@rev?config=...``; a user-folder card's name
(``reviews``); another card's absolute path. ``name=`` gives a name only this process knows
(configs pickled to other processes carry the spec itself); write a card to name a task for
good.

**Identity** (``data_identity``; what the activation and fine-tuning caches key on, beside
``tasks.key_name`` = the source kind): the sha256 of the file's content (a folder: of its
files by relative path; per-split files: each), its format, the kind, the column mapping, the
label names and the split rule — not the file's name or place, so a renamed file keeps its
cache entries and a changed row makes new ones. A hub dataset: its id, config, revision and
the commit that revision resolves to (``hub.resolve_commit``), and the same mapping.

Rows are read once per process and kept, converted (by the files' size and mtime and the
options); nothing is written to the cache (a hub or folder dataset goes through ``datasets``'
own cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import hub, task_cards, task_files, task_names
from .errors import ConfigError
from .task_rows import STRATIFIED, Converted, Options, convert, make_options
from .tasks import TASKS, TaskSpec

WHAT_ELSE = ("Or your own data: a task card's name (a card in $LAYERSCOPE_HOME/tasks/NAME.yaml), "
             "hub:org/name (a hub dataset), or the path of a data file (.csv .tsv .jsonl .json "
             ".parquet .conllu .conllulex, SQuAD .json), a dataset folder or a task card (.yaml)")
METRIC_NAMES = ("accuracy", "f1", "macro_f1", "mcc", "mse", "pearson", "spearman")  # metrics.py
REGRESSION_METRICS = ("pearson", "spearman", "mse")
# the kinds scored on spans and trees have their own metrics (metrics.qa_record, parse_record;
# in percent); "f1" there is SQuAD's token F1, not binary F1
KIND_METRICS = {"extractive_qa": ("f1", "exact_match"), "dependency_parsing": ("las", "uas")}
STRUCTURED_METRICS = ("exact_match", "las", "uas")  # those not in METRIC_NAMES
_DEFINED: dict[str, TaskSpec] = {}  # name= specs of this process
# converted rows by content signature and options (the raw rows are not kept: a large file's
# dict rows take several times its size; another set of options reads the file again)
_MEMO: dict[tuple, Converted] = {}
_MEMO_SIZE = 8


@dataclass(frozen=True)
class Source:
    """Where a user task's data is (``TaskSpec`` keeps the same fields)."""

    kind: str  # file | dataset | hub_dataset
    location: str = ""
    format: str = ""
    hub_path: str = ""
    hub_config: str | None = None
    hub_revision: str | None = None
    split_files: tuple[tuple[str, str], ...] = ()


# --- building specs ---------------------------------------------------------------------------

def from_file(path, *, kind=None, columns=None, label_names=None, splits=None, split_seed=0,
              split_fractions=None, name=None, description="", metrics=None, column=None,
              format=None) -> TaskSpec:
    """A task from a data file: CSV, TSV, JSONL (or JSON: lines or one array of records),
    Parquet, CoNLL-U (``.conllu``: tagging on ``column`` upos|xpos|feats|deprel,
    ``kind="token_pair"``: (head, dependent) pairs labelled with DEPREL, or
    ``kind="dependency_parsing"``: every word's HEAD and DEPREL, the relations' names from the
    data), STREUSLE (``.conllulex``: tagging on ``column`` role|fxn; other words -1), SQuAD
    JSON (a ``.json`` whose top level is ``{"data": [...]}``, or ``format="squad"``:
    extractive QA, one row per question; splits made keep a context's questions together).

    ``columns`` maps our row-schema names to the file's (``{"text": "review", "label":
    "stars"}``; ``choices``: a list column, or several columns listed); ``kind`` is read from
    the columns when not given; ``label_names`` declares the classes (else: sorted); ``splits``
    maps train/validation/test to the values of a ``split`` column; without one the splits are
    made: a permutation seeded by ``split_seed``, stratified by label, ``split_fractions``
    (default 0.8/0.1/0.1). ``metrics``: the kind's defaults unless given. ``format`` when the
    extension does not say. ``name``: see the module docstring."""
    p = _path(path)
    if p.is_dir():
        raise ConfigError(f"{p} is a folder — use TaskSpec.from_dataset for a dataset folder")
    fmt = task_files.format_of(p, format)
    src = Source("file", str(p), fmt)
    opts = make_options(kind, columns, label_names, splits, split_seed, split_fractions)
    return _build(src, opts, declared={"format": format, "column": column}, name=name,
                  description=description, metrics=metrics, column=column)


def from_dataset(path_or_hub_id, *, config=None, revision=None, kind=None, columns=None,
                 label_names=None, splits=None, split_seed=0, split_fractions=None, name=None,
                 description="", metrics=None, hub=False) -> TaskSpec:
    """A task from a ``datasets`` dataset: a folder written by ``save_to_disk`` (a Dataset or
    a DatasetDict, whose splits are used), a local folder of data files
    (``datasets.load_dataset(folder)``), or a hub dataset id with ``config`` and ``revision``
    (offline: the Hugging Face cache only; a ``HubUnavailableError`` says what to do). The
    other options are ``from_file``'s; ClassLabel columns give the label names. ``hub=True``:
    ``path_or_hub_id`` is a hub id even where a local folder has that name."""
    text = str(path_or_hub_id)
    local = Path(text).expanduser()
    opts = make_options(kind, columns, label_names, splits, split_seed, split_fractions)
    if not hub and local.exists():
        if config is not None or revision is not None:
            raise ConfigError(f"{local}: config= and revision= are for hub datasets; this is "
                              f"a local folder — leave them out")
        if not local.is_dir():
            raise ConfigError(f"{local} is a file — use TaskSpec.from_file for a data file")
        folder = _path(local)
        fmt = "saved" if task_files.is_saved_dataset(folder) else "data_folder"
        return _build(Source("dataset", str(folder), fmt), opts, declared={}, name=name,
                      description=description, metrics=metrics)
    if not hub and (text.startswith((".", "/", "~")) or text.count("/") > 1):
        raise ConfigError(f"{os.path.abspath(local)}: no such folder — give a dataset folder "
                          f"(save_to_disk, or data files), or a hub id written as org/name")
    src = Source("hub_dataset", "", "hub", hub_path=text, hub_config=config,
                 hub_revision=revision)
    return _build(src, opts, declared={"config": config}, name=name, description=description,
                  metrics=metrics)


def from_card(path) -> TaskSpec:
    """The task a card names (``task_cards``)."""
    card = task_cards.read_card(path)
    o = dict(card.options)
    config, revision, fmt = o.pop("config", None), o.pop("revision", None), o.pop("format", None)
    metrics, column = o.pop("metrics", None), o.pop("column", None)
    opts = make_options(o.get("kind"), o.get("columns"), o.get("label_names"), o.get("splits"),
                    o.get("split_seed", 0), o.get("split_fractions"))
    common = {"name": card.name, "description": card.description, "metrics": metrics,
              "card": str(card.path)}
    if card.data == "split_files":
        files = tuple((s, str(_path(f))) for s, f in card.split_files)
        formats = {task_files.format_of(Path(f), fmt) for _, f in files}
        if len(formats) > 1:
            raise ConfigError(f"task card {card.path}: its split files are of different "
                              f"formats ({', '.join(sorted(formats))}) — use one format")
        src = Source("file", "", formats.pop(), split_files=files)
        return _build(src, opts, declared={}, column=column, **common)
    if card.data == "file":
        p = _path(card.location)
        src = Source("file", str(p), task_files.format_of(p, fmt))
        return _build(src, opts, declared={}, column=column, **common)
    for key, value in (("format", fmt), ("column", column)):
        if value is not None:
            raise ConfigError(f"task card {card.path}: {key}: is for data files (path:); a "
                              f"dataset's columns are mapped with columns: — drop {key}:")
    local = Path(card.location)
    if local.exists():
        folder = _path(local)
        fmt = "saved" if task_files.is_saved_dataset(folder) else "data_folder"
        return _build(Source("dataset", str(folder), fmt), opts, declared={}, **common)
    src = Source("hub_dataset", "", "hub", hub_path=card.location, hub_config=config,
                 hub_revision=revision)
    return _build(src, opts, declared={}, **common)


def resolve(text: str) -> TaskSpec | None:
    """The user task ``text`` names (module docstring: the order), or None when it names
    none and does not look like a path (the caller then lists the registry)."""
    if text in _DEFINED:
        return _DEFINED[text]
    card = task_cards.card_named(text)
    if card is not None:
        return from_card(card)
    base, options = task_names.parse_name(text)
    if base.startswith("hub:"):
        hub_id, _, rev = base[4:].partition("@")
        task_names.check_keys(text, options, task_names.DATASET_KEYS)
        return from_dataset(hub_id, revision=rev or None, hub=True, **options)
    p = Path(base).expanduser()
    if p.exists():
        if p.is_dir():
            task_names.check_keys(text, options, task_names.DATASET_KEYS)
            return from_dataset(p, **options)
        if p.suffix.lower() in task_cards.CARD_SUFFIXES:
            if options:
                raise ConfigError(f"task {text!r}: a card holds its own options — write them "
                                  f"in {p}, not after '?'")
            return from_card(p)
        task_names.check_keys(text, options, task_names.FILE_KEYS)
        return from_file(p, **options)
    if options or _looks_like_path(base):
        raise ConfigError(f"task {text!r}: no such file or folder {os.path.abspath(p)} — check "
                          f"the path (a relative one is read from {os.getcwd()}); a task is "
                          f"also a registry name (`layerscope tasks`) or a card in "
                          f"{task_cards.cards_dir()}")
    return None


def _looks_like_path(text: str) -> bool:
    return ("/" in text or os.sep in text or text.startswith((".", "~"))
            or Path(text).suffix.lower() in (*task_files.EXTENSIONS, *task_cards.CARD_SUFFIXES))


def _path(path) -> Path:
    """Absolute, ``~`` expanded, symlinks kept (a link's name is what the user gave)."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    if not p.exists():
        raise ConfigError(f"{p}: no such file or folder — check the path (a relative one is "
                          f"read from {os.getcwd()})")
    return p


def _build(src: Source, opts: Options, *, declared: dict, name, description, metrics,
           column=None, card="") -> TaskSpec:
    fmt = src.format
    if fmt in task_files.READER_KINDS:
        kind = opts.kind or task_files.READER_KINDS[fmt][0]
        if kind not in task_files.READER_KINDS[fmt]:
            raise ConfigError(f"{src.location or src.split_files[0][1]}: a {fmt} file gives "
                              f"kind {' or '.join(task_files.READER_KINDS[fmt])}, not {kind!r}")
        if kind in task_files.COLUMN_KINDS:
            valid = ("deprel",) if kind == "token_pair" else task_files.TAG_COLUMNS[fmt]
            if column is not None and column not in valid:
                raise ConfigError(f"column={column!r}: a {fmt} {kind} task's column is one of "
                                  f"{', '.join(valid)}")
            column = column or valid[0]
        elif column is not None:
            raise ConfigError(f"column={column!r}: a {fmt} {kind} task reads "
                              f"{'HEAD and DEPREL' if fmt == 'conllu' else 'the whole file'}, "
                              f"not one column — leave column out")
    elif column is not None:
        raise ConfigError(f"column={column!r} is for CoNLL-U and STREUSLE files — map a "
                          f"table's columns with columns=")
    conv = _converted(src, opts, column)
    checked = _metrics(metrics, conv.kind, len(conv.label_names), src)
    if card:
        spec_name = name
    elif name is not None:
        spec_name = _own_name(name)
    else:
        spec_name = task_names.task_name(_base(src), {**declared, **_declared(opts),
                                                      "metrics": metrics})
    spec = TaskSpec(
        name=spec_name, kind=conv.kind, source=src.kind, label_names=conv.label_names,
        metrics=checked, splits=dict(conv.splits),
        description=description or _describe(src, conv), hub_path=src.hub_path,
        hub_config=src.hub_config, hub_revision=src.hub_revision, location=src.location,
        format=fmt, columns=opts.columns, column=column or "", split_files=src.split_files,
        split_seed=opts.split_seed if conv.made else None, split_fractions=conv.fractions,
        card=card)
    _remember(("conv", _raw_key(src, spec.kind, spec.column), options_of(spec)), conv)
    if name is not None and not card:
        _DEFINED[spec_name] = spec
    return spec


def _own_name(name: str) -> str:
    if not name or name in TASKS or any(c in name for c in "/?@") or name.startswith("hub:"):
        raise ConfigError(f"name={name!r}: give a word that is not a registry task's name "
                          f"(and has no / ? @)")
    return name


def _declared(opts: Options) -> dict:
    return {"kind": opts.kind, "columns": opts.columns or None, "label_names": opts.label_names,
            "splits": opts.splits, "split_seed": opts.split_seed or None,
            "split_fractions": opts.split_fractions}


def _base(src: Source) -> str:
    if src.kind == "hub_dataset":
        return f"hub:{src.hub_path}" + (f"@{src.hub_revision}" if src.hub_revision else "")
    return src.location


def _describe(src: Source, conv: Converted) -> str:
    where = (f"hub dataset {src.hub_path}" if src.kind == "hub_dataset" else
             f"{src.format} {Path(src.location).name}" if src.location else
             f"{src.format} files " + ", ".join(Path(f).name for _, f in src.split_files))
    if conv.made:
        how = (f"splits made ({'/'.join(f'{f:g}' for f in conv.fractions)}"
               f"{', stratified' if conv.kind in STRATIFIED else ''})")
    else:
        how = "splits as given"
    classes = f", {len(conv.label_names)} classes" if conv.label_names else ""
    return f"{where}: {conv.n_rows} rows{classes}, {how}"


def default_metrics(kind: str, n_labels: int) -> tuple[str, ...]:
    """Classification and pair: accuracy (+ macro F1 with more than two classes); regression:
    Pearson, Spearman, MSE; tagging, token pairs, multiple choice: accuracy; extractive QA:
    F1 and exact match; dependency parsing: LAS and UAS (``KIND_METRICS``)."""
    if kind in KIND_METRICS:
        return KIND_METRICS[kind]
    if kind == "regression":
        return REGRESSION_METRICS
    if kind in ("classification", "pair") and n_labels > 2:
        return ("accuracy", "macro_f1")
    return ("accuracy",)


def _metrics(metrics, kind: str, n_labels: int, src: Source) -> tuple[str, ...]:
    if metrics is None:
        return default_metrics(kind, n_labels)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    for m in metrics:
        if m not in METRIC_NAMES + STRUCTURED_METRICS:
            raise ConfigError(f"unknown metric {m!r}; valid values: "
                              f"{', '.join(METRIC_NAMES + STRUCTURED_METRICS)}")
        own = KIND_METRICS.get(kind)
        if own is not None or m in STRUCTURED_METRICS:
            if m not in (own or ()):
                fits = own or METRIC_NAMES
                raise ConfigError(f"metric {m!r} does not fit a {kind} task; use "
                                  f"{', '.join(fits)}")
            continue
        if (m in REGRESSION_METRICS) != (kind == "regression"):
            fits = [x for x in METRIC_NAMES if (x in REGRESSION_METRICS) == (kind == "regression")]
            raise ConfigError(f"metric {m!r} does not fit a {kind} task; use {', '.join(fits)}")
        if m == "f1" and n_labels != 2:
            raise ConfigError(f"metric 'f1' is binary F1, and this task has {n_labels} classes "
                              f"— use macro_f1")
    if not metrics:
        raise ConfigError("metrics=[]: give at least one (the first is the headline)")
    return metrics


# --- reading (memoised) -------------------------------------------------------------------------

def _remember(key: tuple, value):
    _MEMO[key] = value
    while len(_MEMO) > _MEMO_SIZE:  # the oldest out (threads may race here: tolerated)
        try:
            _MEMO.pop(next(iter(_MEMO)), None)
        except (StopIteration, RuntimeError):
            break
    return value


def _raw_key(src: Source, kind: str | None, column: str | None) -> tuple:
    reader = src.format in task_files.READER_KINDS
    if src.kind == "hub_dataset":
        sig: tuple = ()
    elif src.split_files:
        sig = tuple(task_files.stat_key(Path(f)) for _, f in src.split_files)
    else:
        sig = task_files.signature(Path(src.location))
    return (src, kind if reader else None, column if reader else None, sig)


def _raw(src: Source, kind: str | None, column: str | None) -> task_files.RawData:
    if src.kind == "hub_dataset":
        name = task_names.task_name(_base(src), {"config": src.hub_config})
        raw = task_files.read_hub(name, src.hub_path, src.hub_config, src.hub_revision)
    elif src.kind == "dataset":
        folder = Path(src.location)
        raw = (task_files.read_saved(folder) if src.format == "saved"
               else task_files.read_data_folder(folder))
    elif src.split_files:
        parts = {s: task_files.read_file(Path(f), task_files.format_of(Path(f), src.format),
                                         kind=kind, column=column)
                 for s, f in src.split_files}
        first = next(iter(parts.values()))
        cols = [c for c in first.columns if all(c in r.columns for r in parts.values())]
        raw = task_files.RawData({s: r.splits[""] for s, r in parts.items()}, tuple(cols),
                                 ", ".join(r.shown for r in parts.values()), kind=first.kind)
    else:
        raw = task_files.read_file(Path(src.location), src.format, kind=kind, column=column)
    return raw


def _converted(src: Source, opts: Options, column: str | None) -> Converted:
    key = ("conv", _raw_key(src, opts.kind, column), opts)
    conv = _MEMO.get(key)
    if conv is None:
        readers = task_files.READER_KINDS
        kind = opts.kind or (readers[src.format][0] if src.format in readers else None)
        conv = _remember(key, convert(_raw(src, kind, column), opts))
    return conv


def source_of(spec: TaskSpec) -> Source:
    return Source(spec.source, spec.location, spec.format, spec.hub_path, spec.hub_config,
                  spec.hub_revision, spec.split_files)


def options_of(spec: TaskSpec) -> Options:
    """The options that read ``spec``'s rows again as the spec has them (its kind, label
    names and splits declared)."""
    made = spec.split_seed is not None
    return Options(spec.kind, spec.columns, spec.label_names or None,
                   None if made else tuple(spec.splits.items()), spec.split_seed or 0,
                   spec.split_fractions if made else None)


def load_split(spec: TaskSpec, split: str):
    """One split of a user task in the row schema of its kind (``tasks`` module docstring)."""
    import datasets

    conv = _converted(source_of(spec), options_of(spec), spec.column or None)
    return datasets.Dataset.from_dict(conv.data[split])


def data_identity(spec: TaskSpec) -> dict:
    """What identifies a user task's data (module docstring): content, not name or place."""
    src = source_of(spec)
    if src.kind == "hub_dataset":
        content: object = {"hub": src.hub_path, "config": src.hub_config,
                           "revision": src.hub_revision,
                           "commit": hub.resolve_commit(src.hub_path, src.hub_revision,
                                                        repo_type="dataset")}
    elif src.split_files:
        content = {s: task_files.file_digest(Path(f)) for s, f in src.split_files}
    elif src.kind == "dataset":
        content = task_files.folder_digest(Path(src.location))
    else:
        content = task_files.file_digest(Path(src.location))
    made = spec.split_seed is not None
    return {
        "source": src.kind, "format": src.format, "content": content, "kind": spec.kind,
        "columns": [[ours, theirs if isinstance(theirs, str) else list(theirs)]
                    for ours, theirs in spec.columns],
        "column": spec.column, "label_names": list(spec.label_names),
        "splits": ({"seed": spec.split_seed, "fractions": list(spec.split_fractions),
                    "stratified": spec.kind in STRATIFIED} if made else dict(spec.splits)),
    }
