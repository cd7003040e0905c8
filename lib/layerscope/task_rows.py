"""Raw rows (``task_files``) -> a task's splits in the row schema of its kind.

The steps, each with an error that names the file, the row and the fix:

1. **Columns.** ``columns`` maps our schema names to the data's (``{"text": "review",
   "label": "stars"}``; ``choices`` may list several columns, one choice each); unmapped names
   are looked for as they are. A mapped column the data lacks lists the data's columns.
2. **Splits.** As given — a ``split`` column, a DatasetDict's splits, a card's per-split
   files — named train/validation/test (dev, valid, val mean validation; ``splits=`` maps
   them otherwise); the studies need train and validation. Data without splits gets them
   made: a permutation seeded by ``split_seed``, stratified by label for the label kinds
   (each class cut in the same fractions, so small classes reach every split), fractions
   0.8/0.1/0.1 unless given, each split in file order. An empty split is an error.
3. **Kind.** Given, or read from the columns found: tokens+pairs+pair_labels -> token_pair;
   tokens+tags -> tagging; context+choices+label -> multiple_choice; text+label ->
   regression when the labels are numbers not all whole, else pair (with text_pair) or
   classification.
4. **Labels.** Words: the classes are the distinct labels sorted, or ``label_names`` as
   declared (a label outside them names its row). Whole numbers: their distinct values sorted
   (0..k-1 gives names "0".."k-1"); with declared names, the numbers are the names if every
   one is, else indices into them. A ``datasets`` ClassLabel column: indices into its names.
   One class in all rows is an error (a wrong column, most likely). Tags of -1 or null mark
   words without a label (STREUSLE's non-prepositions). Multiple choice: the label is the
   index of the right choice (or its text); every row has the same number of choices, >= 2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError
from .task_files import RawData, RawSplit
from .tasks import SPLITS

SCHEMA = {
    "classification": ("text", "label"),
    "pair": ("text", "text_pair", "label"),
    "regression": ("text", "label"),  # + text_pair when the data has it
    "multiple_choice": ("context", "choices", "label"),
    "tagging": ("tokens", "tags"),
    "token_pair": ("tokens", "pairs", "pair_labels"),
}
FIELDS = ("text", "text_pair", "label", "context", "choices", "tokens", "tags", "pairs",
          "pair_labels", "split")
STRATIFIED = ("classification", "pair", "multiple_choice")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation",
                 "valid": "validation", "val": "validation", "dev": "validation",
                 "test": "test"}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Options:
    """What the user declared about the data (None: read it from the data)."""

    kind: str | None = None
    columns: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    label_names: tuple[str, ...] | None = None
    splits: tuple[tuple[str, str], ...] | None = None  # our split -> the data's split
    split_seed: int = 0
    split_fractions: tuple[float, ...] | None = None


@dataclass
class Converted:
    kind: str
    label_names: tuple[str, ...]
    splits: dict[str, str]  # our split -> the data's split (made ones: itself)
    made: bool  # splits made by us (split_seed, fractions)
    fractions: tuple[float, ...]
    data: dict[str, dict[str, list]]  # our split -> columns of the kind's schema
    n_rows: int


Unit = tuple[RawSplit, int]  # a row: its split as read and its index there


def convert(raw: RawData, opts: Options) -> Converted:
    mapping = dict(opts.columns)
    if raw.kind is not None and mapping:
        raise ConfigError(f"{raw.shown}: columns= does not apply to this format (its rows "
                          f"come as tokens and tags or pairs) — leave columns out; choose the "
                          f"annotation with column=")
    present = _present(raw, mapping)
    parts, split_map = _parts(raw, present, opts)
    units = [u for us in parts.values() for u in us]
    kind = raw.kind or opts.kind or _infer_kind(raw, present, units)
    fields = SCHEMA[kind] + (("text_pair",) if kind == "regression" and "text_pair" in present
                             else ())
    missing = [f for f in fields if f not in present]
    if missing:
        raise ConfigError(
            f"{raw.shown}: no column for {', '.join(map(repr, missing))} (a {kind} task has "
            f"{', '.join(SCHEMA[kind])}); the data's columns: {', '.join(raw.columns)} — map "
            f"ours to yours: columns={{{', '.join(f'{f!r}: <column>' for f in missing)}}}")
    columns, label_names = _rows(kind, fields, present, units, raw, opts)
    made = not split_map
    fractions = _fractions(opts.split_fractions) if made else ()
    if made:
        strata = columns["label"] if kind in STRATIFIED else None
        chosen = made_splits(len(units), strata, opts.split_seed, fractions)
        split_map = {s: s for s in chosen}
    else:
        offsets, chosen = 0, {}
        for s, us in parts.items():
            chosen[s] = list(range(offsets, offsets + len(us)))
            offsets += len(us)
    data = {}
    for s, idx in chosen.items():
        if not idx:
            how = (f"made with fractions {'/'.join(f'{f:g}' for f in fractions)} from "
                   f"{len(units)} rows — give more rows or a larger fraction "
                   f"(split_fractions=)" if made else
                   f"the data's split {split_map[s]!r} has no rows — fill it or map another")
            raise ConfigError(f"{raw.shown}: split {s!r} is empty: {how}")
        data[s] = {f: [columns[f][i] for i in idx] for f in fields}
    return Converted(kind, label_names, split_map, made, fractions, data, len(units))


# --- columns and splits ---------------------------------------------------------------------

def _theirs(value) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _present(raw: RawData, mapping: dict) -> dict[str, str | tuple[str, ...]]:
    """Our field -> the data's column(s), for the fields the data has."""
    present = {}
    for f in FIELDS:
        value = mapping.get(f, f)
        lacking = [c for c in _theirs(value) if c not in raw.columns]
        if not lacking:
            present[f] = value
        elif f in mapping:
            raise ConfigError(f"{raw.shown}: no column {lacking[0]!r} (mapped to {f!r}); the "
                              f"data's columns: {', '.join(raw.columns)} — map {f!r} to one "
                              f"of them: columns={{{f!r}: <column>}}")
    return present


def _parts(raw: RawData, present: dict, opts: Options
           ) -> tuple[dict[str, list[Unit]], dict[str, str]]:
    """The rows of each of our splits when the data has splits (and the map our split -> the
    data's), else ``{"": all rows}, {}``."""
    given: dict[str, list[Unit]] | None = None
    if "split" in present and len(raw.splits) == 1:
        (rs,) = raw.splits.values()
        col, given = present["split"], {}
        for i, r in enumerate(rs.rows):
            v = r.get(col)
            if v is None or not str(v).strip():
                raise ConfigError(f"{rs.where(i)}: no split (column {col!r} is empty) — "
                                  f"write train, validation or test there")
            given.setdefault(str(v).strip(), []).append((rs, i))
    elif len(raw.splits) > 1:
        given = {name: [(rs, i) for i in range(len(rs.rows))] for name, rs in raw.splits.items()}
    if given is None:
        if opts.splits is not None:
            raise ConfigError(
                f"{raw.shown}: splits= maps {dict(opts.splits)} but the data has no splits "
                f"(no 'split' column, one part) — leave splits out to have them made "
                f"(seeded: split_seed=, split_fractions=), or add a split column")
        return {"": [(rs, i) for rs in raw.splits.values() for i in range(len(rs.rows))]}, {}
    names = list(given)
    if opts.split_fractions is not None:
        raise ConfigError(f"{raw.shown}: the data has its own splits ({', '.join(names)}); "
                          f"split_fractions= is for data without splits — leave it out, or "
                          f"choose the data's splits with splits=")
    if opts.splits is not None:
        split_map = dict(opts.splits)
        for ours, theirs in split_map.items():
            if ours not in SPLITS:
                raise ConfigError(f"{raw.shown}: split {ours!r} in splits=: our splits are "
                                  f"{', '.join(SPLITS)} — map those, e.g. splits="
                                  f"{{'validation': {theirs!r}}}")
            if theirs not in given:
                raise ConfigError(f"{raw.shown}: splits= maps {ours!r} to {theirs!r}, which "
                                  f"the data does not have; its splits: {', '.join(names)} — "
                                  f"map {ours!r} to one of those")
    else:
        split_map = {}
        for n in names:
            ours = SPLIT_ALIASES.get(n.lower())
            if ours is not None and ours not in split_map:
                split_map[ours] = n
    lacking = [s for s in ("train", "validation") if s not in split_map]
    if lacking:
        raise ConfigError(f"{raw.shown}: no {' or '.join(lacking)} split; the data's splits "
                          f"are {', '.join(names)} and the studies need train and validation "
                          f"— name them: splits={{'train': <split>, 'validation': <split>}}")
    split_map = {s: split_map[s] for s in SPLITS if s in split_map}
    return {s: given[split_map[s]] for s in split_map}, split_map


def _fractions(fractions: tuple[float, ...] | None) -> tuple[float, ...]:
    fr = tuple(float(f) for f in (fractions or DEFAULT_FRACTIONS))
    if len(fr) not in (2, 3) or any(not f > 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise ConfigError(f"split_fractions={fractions}: give 2 or 3 positive fractions "
                          f"(train, validation[, test]) that sum to 1, e.g. (0.8, 0.1, 0.1)")
    return fr


def made_splits(n: int, strata: list[int] | None, seed: int,
                fractions: tuple[float, ...]) -> dict[str, list[int]]:
    """Row indices of each split: per stratum (all rows when ``strata`` is None) a seeded
    permutation cut in ``fractions`` (validation and test rounded, train the rest), each split
    in row order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = SPLITS[: len(fractions)]
    out: dict[str, list[int]] = {s: [] for s in names}
    if strata is None:
        groups = [np.arange(n)]
    else:
        labels = np.asarray(strata)
        groups = [np.flatnonzero(labels == c) for c in sorted(set(strata))]
    for g in groups:
        g = g[rng.permutation(len(g))]
        counts = [int(f * len(g) + 0.5) for f in fractions[1:]]
        while sum(counts) > len(g):  # a stratum smaller than its rounded shares
            counts[counts.index(max(counts))] -= 1
        cuts = np.cumsum([len(g) - sum(counts)] + counts)[:-1]
        for s, part in zip(names, np.split(g, cuts), strict=True):
            out[s] += part.tolist()
    return {s: sorted(v) for s, v in out.items()}


# --- kind ---------------------------------------------------------------------------------------

def _infer_kind(raw: RawData, present: dict, units: list[Unit]) -> str:
    has = set(present)
    if {"tokens", "pairs", "pair_labels"} <= has:
        return "token_pair"
    if {"tokens", "tags"} <= has:
        return "tagging"
    if {"context", "choices", "label"} <= has:
        return "multiple_choice"
    if {"text", "label"} <= has:
        col = present["label"]
        values = [scalar(rs.rows[i].get(col)) for rs, i in units]
        if all(isinstance(v, int | float) for v in values) and any(
                isinstance(v, float) for v in values):
            return "regression"
        return "pair" if "text_pair" in has else "classification"
    found = sorted(has - {"split"})
    raise ConfigError(
        f"{raw.shown}: cannot tell the kind of task from its columns "
        f"({', '.join(raw.columns)}; ours found: {', '.join(found) or 'none'}) — give kind= "
        f"(one of {', '.join(SCHEMA)}) and map our column names to yours with columns=: "
        + "; ".join(f"{k}: {', '.join(v)}" for k, v in SCHEMA.items()))


# --- rows ---------------------------------------------------------------------------------------

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


def _rows(kind: str, fields: tuple[str, ...], present: dict, units: list[Unit],
          raw: RawData, opts: Options) -> tuple[dict[str, list], tuple[str, ...]]:
    """Our columns over ``units`` (labels as class indices) and the label names."""
    cols: dict[str, list] = {f: [] for f in fields}
    label_values: list = []  # flat class labels, resolved to indices once all are seen
    owner: list[int] = []  # the unit of each label value (for messages)
    sizes: list[int] = []  # per unit: how many of the flat labels are its own
    n_choices = None
    for u, (rs, i) in enumerate(units):
        row, where = rs.rows[i], rs.where(i)

        def get(f, row=row):
            return row.get(present[f])
        for f in ("text", "text_pair", "context"):
            if f in fields:
                cols[f].append(_text(get(f), where, f, present[f]))
        if kind in ("classification", "pair"):
            label_values.append(_label(get("label"), where, present["label"]))
            owner.append(u)
        elif kind == "regression":
            cols["label"].append(_number(get("label"), where, present["label"]))
        elif kind == "multiple_choice":
            choices = _choices(row, present["choices"], where)
            if n_choices is None:
                n_choices, first = len(choices), where
            elif len(choices) != n_choices:
                raise ConfigError(f"{where}: {len(choices)} choices, but {first} has "
                                  f"{n_choices} — every row needs the same number of choices")
            cols["choices"].append(choices)
            cols["label"].append(_answer(get("label"), choices, where, present["label"]))
        else:
            tokens = _list(get("tokens"), where, "tokens", present["tokens"], words=True)
            if not tokens or not all(isinstance(t, str) for t in tokens):
                raise ConfigError(f"{where}: tokens must be a non-empty list of words, not "
                                  f"{str(tokens)[:80]} — one string per word")
            cols["tokens"].append(tokens)
            if kind == "tagging":
                tags = _list(get("tags"), where, "tags", present["tags"], words=True)
                if len(tags) != len(tokens):
                    raise ConfigError(f"{where}: {len(tokens)} tokens but {len(tags)} tags — "
                                      f"one tag per word (null or -1 for a word without one)")
                tags = [scalar(t) for t in tags]
                kept = [t for t in tags if t is not None and t != -1]
                cols["tags"].append(tags)
            else:
                pairs = _pairs(get("pairs"), len(tokens), where, present["pairs"])
                kept = [scalar(v) for v in _list(get("pair_labels"), where, "pair_labels",
                                                  present["pair_labels"], words=True)]
                if len(kept) != len(pairs):
                    raise ConfigError(f"{where}: {len(pairs)} pairs but {len(kept)} "
                                      f"pair_labels — one label per pair")
                cols["pairs"].append(pairs)
            if any(v is None for v in kept):
                raise ConfigError(f"{where}: a pair label is empty (null) — give every pair "
                                  f"its relation")
            label_values += kept
            owner += [u] * len(kept)
            sizes.append(len(kept))
    if kind == "regression":
        if len(set(cols["label"])) < 2:
            raise ConfigError(f"{raw.shown}: label column {present['label']!r} is "
                              f"{cols['label'][0]!r} on all {len(units)} rows — nothing to "
                              f"learn; is it the right column (columns={{'label': ...}})?")
        return cols, ()
    if kind == "multiple_choice":
        names = tuple(str(i) for i in range(n_choices or 0))
        if opts.label_names is not None and len(opts.label_names) != len(names):
            raise ConfigError(f"{raw.shown}: label_names {opts.label_names} for rows of "
                              f"{n_choices} choices — a multiple-choice label is the index of "
                              f"the right choice: leave label_names out")
        return cols, tuple(opts.label_names or names)
    label_col = present["label" if kind in ("classification", "pair") else
                        ("tags" if kind == "tagging" else "pair_labels")]
    what = {"tagging": "tag", "token_pair": "pair label"}.get(kind, "label")
    if not label_values:
        raise ConfigError(f"{raw.shown}: no word has a {what} (all null or -1) — nothing to "
                          f"learn; is column {label_col!r} the right one?")
    indices, names = classes(
        label_values, lambda j: units[owner[j]][0].where(units[owner[j]][1]),
        declared=opts.label_names, feature_names=raw.class_names.get(label_col), what=what)
    if len(set(indices)) < 2:
        field = {"tagging": "tags", "token_pair": "pair_labels"}.get(kind, "label")
        raise ConfigError(f"{raw.shown}: {what} column {label_col!r} has one value, "
                          f"{names[indices[0]]!r}, in all {len(units)} rows — a classifier "
                          f"needs two classes or more; is it the right column "
                          f"(columns={{{field!r}: <column>}})?")
    if kind in ("classification", "pair"):
        cols["label"] = indices
        return cols, names
    it = iter(indices)
    if kind == "tagging":
        cols["tags"] = [[-1 if t is None or t == -1 else next(it) for t in tags]
                        for tags in cols["tags"]]
    else:
        cols["pair_labels"] = [[next(it) for _ in range(k)] for k in sizes]
    return cols, names


def classes(values: list, where: Callable[[int], str], *, declared: tuple[str, ...] | None,
            feature_names: tuple[str, ...] | None, what: str
            ) -> tuple[list[int], tuple[str, ...]]:
    """Class indices of ``values`` (scalars) and the class names (module docstring, step 4)."""
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


def _text(v, where: str, f: str, col: str) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        raise ConfigError(f"{where}: no {f} (column {col!r} is empty) — fill it in or drop "
                          f"the row")
    raise ConfigError(f"{where}: {f} (column {col!r}) is {v!r}, not text — is {col!r} the "
                      f"right column? map another with columns={{{f!r}: <column>}}")


def _label(v, where: str, col: str):
    v = scalar(v)
    if v is None or v == "":
        raise ConfigError(f"{where}: no label (column {col!r} is empty) — label the row or "
                          f"drop it")
    if not isinstance(v, str | int | float) or (isinstance(v, float) and not math.isfinite(v)):
        raise ConfigError(f"{where}: label {v!r} (column {col!r}) is not a class name or "
                          f"number — is {col!r} the right column?")
    return v


def _number(v, where: str, col: str) -> float:
    x = scalar(v)
    if isinstance(x, int | float) and math.isfinite(x):
        return float(x)
    raise ConfigError(f"{where}: label {v!r} (column {col!r}) is not a number — a regression "
                      f"label is a score like 3.5 (for classes, use kind='classification')")


def _list(v, where: str, f: str, col: str, *, words: bool = False) -> list:
    if isinstance(v, list | tuple):
        return list(v)
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            import json

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


def _choices(row: dict, col, where: str) -> list[str]:
    if isinstance(col, str):
        choices = _list(row.get(col), where, "choices", col)
    else:
        choices = [row.get(c) for c in col]
    if len(choices) < 2:
        raise ConfigError(f"{where}: {len(choices)} choice(s) — a multiple-choice row needs "
                          f"at least 2")
    for c in choices:
        if not isinstance(c, str):
            raise ConfigError(f"{where}: choice {c!r} is not text — every choice is a string")
    return choices


def _answer(v, choices: list[str], where: str, col: str) -> int:
    x = scalar(v)
    if isinstance(x, int) and 0 <= x < len(choices):
        return x
    if isinstance(v, str) and v in choices:
        return choices.index(v)
    raise ConfigError(f"{where}: label {v!r} (column {col!r}) is neither the index of a choice "
                      f"(0..{len(choices) - 1}) nor one of the choices' texts")


def _pairs(v, n: int, where: str, col: str) -> list[list[int]]:
    out = []
    for p in _list(v, where, "pairs", col):
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
