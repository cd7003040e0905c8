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
   tokens+heads+deprels -> dependency_parsing; tokens+tags -> tagging;
   question+context+answers -> extractive_qa; context+choices+label -> multiple_choice;
   text+label -> regression when the labels are numbers not all whole, else pair (with
   text_pair) or classification. Extractive QA's splits, when made, keep the questions of
   one context together (a paragraph's questions all in one split, as SQuAD's own splits
   keep each article's): a context seen in training would leak into validation otherwise.
4. **Labels.** Words: the classes are the distinct labels sorted, or ``label_names`` as
   declared (a label outside them names its row). Whole numbers: their distinct values sorted
   (0..k-1 gives names "0".."k-1"); with declared names, the numbers are the names if every
   one is, else indices into them. A ``datasets`` ClassLabel column: indices into its names.
   One class in all rows is an error (a wrong column, most likely). Tags of -1 or null mark
   words without a label (STREUSLE's non-prepositions). Multiple choice: the label is the
   index of the right choice (or its text); every row has the same number of choices, >= 2.
   Dependency parsing: the relations (one per word, the root's included) are the labels, so
   the label names are the data's relations sorted (or ``label_names``); heads are whole
   numbers, 0 = root. Extractive QA has no labels: its answers are checked against their
   contexts (``qa.squad_format.check_rows``: each answer's text at its answer_start).

One cell at a time (text, label, number, list, choices, pairs) is read by ``task_cells``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import task_cells as cells
from .errors import ConfigError
from .qa.squad_format import check_rows
from .task_files import RawData, RawSplit
from .tasks import KINDS, SPLITS

SCHEMA = {
    "classification": ("text", "label"),
    "pair": ("text", "text_pair", "label"),
    "regression": ("text", "label"),  # + text_pair when the data has it
    "multiple_choice": ("context", "choices", "label"),
    "tagging": ("tokens", "tags"),
    "token_pair": ("tokens", "pairs", "pair_labels"),
    "extractive_qa": ("id", "question", "context", "answers"),
    "dependency_parsing": ("tokens", "heads", "deprels"),
}
FIELDS = ("text", "text_pair", "label", "context", "choices", "tokens", "tags", "pairs",
          "pair_labels", "id", "question", "answers", "heads", "deprels", "split")
STRATIFIED = ("classification", "pair", "multiple_choice")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation",
                 "valid": "validation", "val": "validation", "dev": "validation",
                 "test": "test"}


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
    if made and kind == "extractive_qa":  # by context (module docstring, step 3)
        chosen = grouped_splits(columns["context"], opts.split_seed, fractions)
        split_map = {s: s for s in chosen}
    elif made:
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
            what = (f"{len(set(columns['context']))} contexts (a context's questions stay "
                    f"in one split)" if kind == "extractive_qa" else f"{len(units)} rows")
            how = (f"made with fractions {'/'.join(f'{f:g}' for f in fractions)} from "
                   f"{what} — give more rows or a larger fraction "
                   f"(split_fractions=)" if made else
                   f"the data's split {split_map[s]!r} has no rows — fill it or map another")
            raise ConfigError(f"{raw.shown}: split {s!r} is empty: {how}")
        data[s] = {f: [columns[f][i] for i in idx] for f in fields}
    return Converted(kind, label_names, split_map, made, fractions, data, len(units))


def make_options(kind, columns, label_names, splits, split_seed, split_fractions) -> Options:
    """``Options`` from the keywords of ``TaskSpec.from_file`` (checked, normalised: the
    mapping without identity entries, in schema order; splits in our order)."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown task kind {kind!r}; valid values: {', '.join(KINDS)}")
    cols = []
    for ours, theirs in (columns or {}).items():
        if ours not in FIELDS:
            raise ConfigError(f"columns=: {ours!r} is not one of our column names "
                              f"({', '.join(FIELDS)}); map ours to yours: "
                              f"{{'text': 'review', 'label': 'stars'}}")
        if isinstance(theirs, list | tuple):
            if ours != "choices" or not all(isinstance(c, str) for c in theirs):
                raise ConfigError(f"columns=: {ours!r} maps to one column name, not "
                                  f"{theirs!r} (only choices may list several columns)")
            theirs = theirs[0] if len(theirs) == 1 else tuple(theirs)
        elif not isinstance(theirs, str):
            raise ConfigError(f"columns=: {ours!r} maps to {theirs!r}; give a column name")
        if theirs != ours:
            cols.append((ours, theirs))
    cols.sort(key=lambda c: FIELDS.index(c[0]))
    names = None
    if label_names is not None:
        names = tuple(str(n) for n in label_names)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or not all(names) or len(names) < 2:
            raise ConfigError(f"label_names={list(names)}: give two or more distinct, "
                              f"non-empty names")
    split_map = None
    if splits is not None:
        if set(splits) & {"seed", "fractions"}:
            raise ConfigError(f"splits={splits}: to make splits give split_seed= and "
                              f"split_fractions=; splits= maps our splits to the data's")
        split_map = tuple(sorted(((str(k), str(v)) for k, v in splits.items()),
                                 key=lambda kv: (SPLITS + (kv[0],)).index(kv[0])))
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise ConfigError(f"split_seed={split_seed!r}: give a whole number")
    fractions = None if split_fractions is None else tuple(float(f) for f in split_fractions)
    return Options(kind, tuple(cols), names, split_map, split_seed, fractions)


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


def grouped_splits(groups: list, seed: int, fractions: tuple[float, ...]) -> dict[str, list[int]]:
    """Row indices of each split with every row of one group (e.g. the questions of one
    context) in the same split: ``made_splits`` over the distinct groups (first-seen order),
    each split's rows in row order."""
    first: dict = {}
    for g in groups:
        first.setdefault(g, len(first))
    by_group = made_splits(len(first), None, seed, fractions)
    where = {i: s for s, idx in by_group.items() for i in idx}
    out: dict[str, list[int]] = {s: [] for s in by_group}
    for r, g in enumerate(groups):
        out[where[first[g]]].append(r)
    return out


# --- kind ---------------------------------------------------------------------------------------

def _infer_kind(raw: RawData, present: dict, units: list[Unit]) -> str:
    has = set(present)
    if {"tokens", "pairs", "pair_labels"} <= has:
        return "token_pair"
    if {"tokens", "heads", "deprels"} <= has:
        return "dependency_parsing"
    if {"tokens", "tags"} <= has:
        return "tagging"
    if {"question", "context", "answers"} <= has:
        return "extractive_qa"
    if {"context", "choices", "label"} <= has:
        return "multiple_choice"
    if {"text", "label"} <= has:
        col = present["label"]
        values = [cells.scalar(rs.rows[i].get(col)) for rs, i in units]
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
        for f in ("text", "text_pair", "context", "question"):
            if f in fields:
                cols[f].append(cells.text(get(f), where, f, present[f]))
        if kind == "extractive_qa":
            qid = cells.scalar(get("id"))
            if qid is None or qid == "":
                raise ConfigError(f"{where}: no question id (column {present['id']!r} is "
                                  f"empty) — give every question a unique id")
            cols["id"].append(str(qid))
            cols["answers"].append(cells.answers(get("answers"), where, present["answers"]))
            continue
        if kind in ("classification", "pair"):
            label_values.append(cells.label(get("label"), where, present["label"]))
            owner.append(u)
        elif kind == "regression":
            cols["label"].append(cells.number(get("label"), where, present["label"]))
        elif kind == "multiple_choice":
            choices = cells.choices(row, present["choices"], where)
            if n_choices is None:
                n_choices, first = len(choices), where
            elif len(choices) != n_choices:
                raise ConfigError(f"{where}: {len(choices)} choices, but {first} has "
                                  f"{n_choices} — every row needs the same number of choices")
            cols["choices"].append(choices)
            cols["label"].append(cells.answer(get("label"), choices, where, present["label"]))
        else:
            tokens = cells.as_list(get("tokens"), where, "tokens", present["tokens"], words=True)
            if not tokens or not all(isinstance(t, str) for t in tokens):
                raise ConfigError(f"{where}: tokens must be a non-empty list of words, not "
                                  f"{str(tokens)[:80]} — one string per word")
            cols["tokens"].append(tokens)
            if kind == "dependency_parsing":
                cols["heads"].append(cells.heads(get("heads"), len(tokens), where,
                                                 present["heads"]))
                kept = [cells.scalar(v) for v in cells.as_list(
                    get("deprels"), where, "deprels", present["deprels"], words=True)]
                if len(kept) != len(tokens):
                    raise ConfigError(f"{where}: {len(tokens)} tokens but {len(kept)} deprels "
                                      f"— one relation per word, the root's included")
                if any(v is None or v == "" for v in kept):
                    raise ConfigError(f"{where}: a relation is empty — give every word its "
                                      f"relation (the root's: root)")
            elif kind == "tagging":
                tags = cells.as_list(get("tags"), where, "tags", present["tags"], words=True)
                if len(tags) != len(tokens):
                    raise ConfigError(f"{where}: {len(tokens)} tokens but {len(tags)} tags — "
                                      f"one tag per word (null or -1 for a word without one)")
                tags = [cells.scalar(t) for t in tags]
                kept = [t for t in tags if t is not None and t != -1]
                cols["tags"].append(tags)
            else:  # token_pair
                pairs = cells.pairs(get("pairs"), len(tokens), where, present["pairs"])
                kept = [cells.scalar(v) for v in cells.as_list(
                    get("pair_labels"), where, "pair_labels", present["pair_labels"], words=True)]
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
    if kind == "extractive_qa":  # each answer's text where its answer_start says
        check_rows([{"id": i, "context": c, "answers": a} for i, c, a in zip(
            cols["id"], cols["context"], cols["answers"], strict=True)], source=raw.shown)
        return cols, ()
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
                        {"tagging": "tags", "token_pair": "pair_labels"}.get(kind, "deprels")]
    what = {"tagging": "tag", "token_pair": "pair label",
            "dependency_parsing": "relation"}.get(kind, "label")
    if not label_values:
        raise ConfigError(f"{raw.shown}: no word has a {what} (all null or -1) — nothing to "
                          f"learn; is column {label_col!r} the right one?")
    indices, names = cells.classes(
        label_values, lambda j: units[owner[j]][0].where(units[owner[j]][1]),
        declared=opts.label_names, feature_names=raw.class_names.get(label_col), what=what)
    if len(set(indices)) < 2 and kind != "dependency_parsing":  # (one relation: a parse
        # of one-word sentences is still a tree to score)
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
    elif kind == "dependency_parsing":
        cols["deprels"] = [[next(it) for _ in range(k)] for k in sizes]
    else:
        cols["pair_labels"] = [[next(it) for _ in range(k)] for k in sizes]
    return cols, names


