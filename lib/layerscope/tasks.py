"""Task registry: the papers' hub tasks and the offline tasks, loaded into one row schema.

Every split comes back as a ``datasets.Dataset`` whose columns depend only on the task kind:

=================  =========================================================
kind               columns
=================  =========================================================
classification     text, label (int)
pair               text, text_pair, label (int)
regression         text, label (float)          [+ text_pair for pair regression]
multiple_choice    context, choices (list[str]), label (int)
tagging            tokens (list[str]), tags (list[int])
token_pair         tokens (list[str]), pairs (list[[head, dependent]] word indices, 0-based),
                   pair_labels (list[int]); Zhou & Srikumar 2022's DEP: one example per pair,
                   represented by the two words' vectors concatenated
extractive_qa      id, question, context, answers {text: [str], answer_start: [int]} (the hub
                   ``squad`` rows; Merchant et al. 2020's SQuAD)
dependency_parsing tokens (list[str]), heads (list[int]: CoNLL-U's HEAD, 0 = root, else the
                   1-based index of the head word), deprels (list[int], the root arc's label
                   included); Merchant et al. 2020's parsing
=================  =========================================================

Hub tasks (Phang et al. 2021 §2; Merchant et al. 2020; Zhou & Srikumar 2022) are loaded with
``datasets.load_dataset``. To run them without the hub — and in our tests — point
``LAYERSCOPE_HUB_DATA`` (or ``hub_data_dir=``) at a folder laid out as
``<hub path with "/" as "__">/<config or "default">/<hub split>.{jsonl,json,csv,parquet}``
holding rows in the hub's own format.

A task is also the user's own data (``user_tasks``): ``get_task``/``resolve_task`` take, in
this order, a registry name (``sst2``, ``sst2@<revision>``), the name of a task card in
``$LAYERSCOPE_HOME/tasks/*.yaml``, ``hub:org/name`` (a hub dataset), or the path of a file
(CSV, TSV, JSONL, JSON, Parquet, CoNLL-U, STREUSLE .conllulex), a folder (``save_to_disk``, or
data files) or a card (.yaml); ``TaskSpec.from_file``/``from_dataset`` build one in code. Such
a spec's ``name`` resolves to it again in any process (configs keep only the name). This module
only dispatches to ``user_tasks``; nothing here imports torch (``layerscope tasks`` is light).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets

from . import conllu, hub, silver_parses
from .brown_tags import UNIVERSAL_TAGS
from .errors import ConfigError, HubUnavailableError, unknown

Kind = Literal["classification", "pair", "regression", "multiple_choice", "tagging",
               "token_pair", "extractive_qa", "dependency_parsing"]
KINDS: tuple[str, ...] = ("classification", "pair", "regression", "multiple_choice", "tagging",
                          "token_pair", "extractive_qa", "dependency_parsing")
# kinds whose rows carry one class label in a "label" column
LABEL_KINDS: tuple[str, ...] = ("classification", "pair", "multiple_choice")
# kinds whose examples are words (tagging) or pairs of words (token_pair) of a sentence
TOKEN_KINDS: tuple[str, ...] = ("tagging", "token_pair")
# our split names (= offline_data.SPLITS; literal here so that listing tasks imports no torch
# through offline_data -> assets -> cache; tests/test_user_tasks.py checks they agree)
SPLITS: tuple[str, ...] = ("train", "validation", "test")
REGISTRY_SOURCES = ("hub", "offline", "fixture")
# the user's own data (user_tasks): a file, a local dataset folder, a hub dataset by id
USER_SOURCES = ("file", "dataset", "hub_dataset")


@dataclass(frozen=True)
class TaskSpec:
    """What a task is and where its data comes from."""

    name: str
    kind: Kind
    source: Literal["hub", "offline", "fixture", "file", "dataset", "hub_dataset"]
    label_names: tuple[str, ...]  # empty for regression
    metrics: tuple[str, ...]  # first one is the headline metric
    splits: dict[str, str]  # our split name -> source split name
    description: str
    hub_path: str = ""
    hub_config: str | None = None
    # hub tasks: the dataset revision (branch, tag or commit sha) asked for as "name@revision"
    hub_revision: str | None = None
    convert: Callable[[dict], dict] | None = field(default=None, compare=False, repr=False)
    # offline tasks: the ``offline_data`` corpus whose rows (and pinned split digests) the task
    # reads; several tasks can share one (movies and movies-score; brown-pos and brown-genre)
    corpus: str = ""
    # --- the user's own data (source file / dataset / hub_dataset; ``user_tasks``); hub
    # datasets keep their id, config and revision in hub_path, hub_config and hub_revision
    location: str = ""  # absolute path of the file or folder ("" for a hub dataset)
    # csv, tsv, jsonl, json, parquet, conllu, conllulex, saved (save_to_disk), data_folder, hub
    format: str = ""
    # our row-schema names -> the data's column names (a tuple of them for several choice
    # columns); only the entries that differ, in schema order
    columns: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    column: str = ""  # CoNLL-U: upos/xpos/feats/deprel; STREUSLE: role/fxn (what a tag is)
    split_files: tuple[tuple[str, str], ...] = ()  # a card's per-split files: (split, path)
    # splits made by us (the data has none): the seeded permutation, stratified by label for
    # the label kinds; None when the splits are the data's own (``splits`` maps them)
    split_seed: int | None = None
    split_fractions: tuple[float, ...] = ()
    card: str = ""  # the task card it was read from (absolute path), if any

    @classmethod
    def from_file(cls, path, *, kind=None, columns=None, label_names=None, splits=None,
                  split_seed=0, split_fractions=None, name=None, description="", metrics=None,
                  column=None, format=None) -> TaskSpec:
        """A task from a data file: CSV, TSV, JSONL/JSON, Parquet, CoNLL-U, STREUSLE
        .conllulex (``user_tasks.from_file`` documents the options)::

            TaskSpec.from_file("reviews.csv", columns={"text": "review", "label": "stars"})
        """
        from . import user_tasks

        return user_tasks.from_file(
            path, kind=kind, columns=columns, label_names=label_names, splits=splits,
            split_seed=split_seed, split_fractions=split_fractions, name=name,
            description=description, metrics=metrics, column=column, format=format)

    @classmethod
    def from_dataset(cls, path_or_hub_id, *, config=None, revision=None, kind=None,
                     columns=None, label_names=None, splits=None, split_seed=0,
                     split_fractions=None, name=None, description="", metrics=None,
                     hub=False) -> TaskSpec:
        """A task from a ``datasets`` dataset: a ``save_to_disk`` folder, a folder of data
        files, or a hub id with ``config=`` and ``revision=`` (``user_tasks.from_dataset``)::

            TaskSpec.from_dataset("nyu-mll/glue", config="sst2", columns={"text": "sentence"},
                                  splits={"train": "train", "validation": "validation"})
        """
        from . import user_tasks

        return user_tasks.from_dataset(
            path_or_hub_id, config=config, revision=revision, kind=kind, columns=columns,
            label_names=label_names, splits=splits, split_seed=split_seed,
            split_fractions=split_fractions, name=name, description=description,
            metrics=metrics, hub=hub)

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.label_names)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


# --- row converters: hub format -> our schema ------------------------------------------------

def _single(field_name: str, label: str = "label") -> Callable[[dict], dict]:
    return lambda r: {"text": r[field_name], "label": r[label]}


def _pair(a: str, b: str, label: str = "label") -> Callable[[dict], dict]:
    return lambda r: {"text": r[a], "text_pair": r[b], "label": r[label]}


def _boolq(r: dict) -> dict:
    return {"text": r["question"], "text_pair": r["passage"], "label": int(bool(r["answer"]))}


def _hellaswag(r: dict) -> dict:
    # Zellers et al. 2019: ctx is the context, endings the four candidate continuations.
    return {"context": r["ctx"], "choices": list(r["endings"]), "label": int(r["label"])}


def _cosmos(r: dict) -> dict:
    return {"context": f"{r['context']} {r['question']}",
            "choices": [r[f"answer{i}"] for i in range(4)], "label": int(r["label"])}


# Universal Dependencies v2's 37 universal relations less root (a root arc has no head word,
# so it is no (head, dependent) pair); language subtypes (nmod:poss, obl:tmod) are read as
# their universal relation, so one label set serves every UD treebank
UD_DEPRELS = ("acl", "advcl", "advmod", "amod", "appos", "aux", "case", "cc", "ccomp", "clf",
              "compound", "conj", "cop", "csubj", "dep", "det", "discourse", "dislocated",
              "expl", "fixed", "flat", "goeswith", "iobj", "list", "mark", "nmod", "nsubj",
              "nummod", "obj", "obl", "orphan", "parataxis", "punct", "reparandum", "vocative",
              "xcomp")


def _universal(rel: str, where: str) -> str:
    """A UD relation as its universal part (nmod:poss -> nmod); anything else is named."""
    universal = str(rel).split(":")[0]
    if universal not in UD_DEPRELS + ("root",):
        raise ConfigError(f"{where}: relation {rel!r} is not a Universal Dependencies v2 "
                          f"relation ({', '.join(UD_DEPRELS)}, root); is this a UD treebank?")
    return universal


UD_PARSE_LABELS = ("root", *UD_DEPRELS)  # dependency parsing labels every arc, root's too


def _ud_dep(r: dict) -> dict:
    """Zhou & Srikumar 2022's DEP from a hub UD row (HEAD and DEPREL columns as strings, 1-based
    heads, 0 = root): one (head, dependent) pair per non-root arc, 0-based word indices."""
    pairs, labels = [], []
    for dep, (head, rel) in enumerate(zip(r["head"], r["deprel"], strict=True)):
        if head in (None, "None", "_") or int(head) == 0:
            continue
        universal = _universal(rel, f"UD row {r.get('idx', '?')!r}, word {dep + 1} "
                                    f"({r['tokens'][dep]!r})")
        pairs.append([int(head) - 1, dep])
        labels.append(UD_DEPRELS.index(universal))
    return {"tokens": list(r["tokens"]), "pairs": pairs, "pair_labels": labels}


def _ud_parse(r: dict) -> dict:
    """Merchant et al. 2020's parsing rows from a hub UD row: every word's head (1-based, 0 =
    root) and universal relation (subtypes folded in), indices into ``UD_PARSE_LABELS``."""
    heads, rels = [], []
    for w, (head, rel) in enumerate(zip(r["head"], r["deprel"], strict=True)):
        if head in (None, "None", "_"):
            raise ConfigError(f"UD row {r.get('idx', '?')!r}, word {w + 1}: no head; "
                              "dependency parsing needs every word's head")
        heads.append(int(head))
        rels.append(UD_PARSE_LABELS.index(_universal(rel, f"UD row {r.get('idx', '?')!r}, "
                                                          f"word {w + 1}")))
    return {"tokens": list(r["tokens"]), "heads": heads, "deprels": rels}


def _squad(r: dict) -> dict:
    return {"id": r["id"], "question": r["question"], "context": r["context"],
            "answers": {"text": list(r["answers"]["text"]),
                        "answer_start": [int(a) for a in r["answers"]["answer_start"]]}}


def _ud_pos(r: dict) -> dict:
    return {"tokens": list(r["tokens"]), "tags": [int(t) for t in r["upos"]]}


GLUE = "nyu-mll/glue"
_TRAIN_VAL = {"train": "train", "validation": "validation"}
UD_UPOS = ("NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN",
           "PRON", "X", "_", "ADV", "INTJ", "VERB", "AUX")  # order of the hub's ClassLabel
GENRES = ("adventure", "belles_lettres", "editorial", "fiction", "government", "hobbies", "humor",
          "learned", "lore", "mystery", "news", "religion", "reviews", "romance",
          "science_fiction")
SENTIMENT = ("negative", "positive")
_OFFLINE_SPLITS = {s: s for s in SPLITS}


def _hub(name, kind, labels, metrics, path, config, convert, description, splits=_TRAIN_VAL):
    return TaskSpec(name=name, kind=kind, source="hub", label_names=tuple(labels),
                    metrics=tuple(metrics), splits=dict(splits), description=description,
                    hub_path=path, hub_config=config, convert=convert)


SILVER_CORPUS = "brown-silver"  # Brown's split, parsed (silver_parses.brown_sentences)


def _offline(name, kind, labels, metrics, description, corpus=None):
    return TaskSpec(name=name, kind=kind, source="offline", label_names=tuple(labels),
                    metrics=tuple(metrics), splits=dict(_OFFLINE_SPLITS), description=description,
                    corpus=corpus or name)


_SPECS = [
    _hub("cola", "classification", ("unacceptable", "acceptable"), ("mcc", "accuracy"), GLUE,
         "cola", _single("sentence"), "GLUE CoLA: grammatical acceptability"),
    _hub("sst2", "classification", SENTIMENT, ("accuracy",), GLUE, "sst2", _single("sentence"),
         "GLUE SST-2: movie-review sentiment"),
    _hub("mrpc", "pair", ("not_equivalent", "equivalent"), ("accuracy", "f1"), GLUE, "mrpc",
         _pair("sentence1", "sentence2"), "GLUE MRPC: paraphrase"),
    _hub("qqp", "pair", ("not_duplicate", "duplicate"), ("accuracy", "f1"), GLUE, "qqp",
         _pair("question1", "question2"), "GLUE QQP: duplicate questions"),
    _hub("stsb", "regression", (), ("pearson", "spearman", "mse"), GLUE, "stsb",
         _pair("sentence1", "sentence2"), "GLUE STS-B: similarity score 0-5"),
    _hub("mnli", "pair", ("entailment", "neutral", "contradiction"), ("accuracy",), GLUE, "mnli",
         _pair("premise", "hypothesis"), "GLUE MNLI (validation = matched)",
         splits={"train": "train", "validation": "validation_matched",
                 "validation_mismatched": "validation_mismatched"}),
    _hub("qnli", "pair", ("entailment", "not_entailment"), ("accuracy",), GLUE, "qnli",
         _pair("question", "sentence"), "GLUE QNLI"),
    _hub("rte", "pair", ("entailment", "not_entailment"), ("accuracy",), GLUE, "rte",
         _pair("sentence1", "sentence2"), "GLUE RTE"),
    _hub("boolq", "pair", ("false", "true"), ("accuracy",), "google/boolq", None, _boolq,
         "BoolQ: yes/no question + passage"),
    _hub("yelp_polarity", "classification", SENTIMENT, ("accuracy",), "fancyzhx/yelp_polarity",
         None, _single("text"), "Yelp review polarity",
         splits={"train": "train", "validation": "test"}),
    _hub("hellaswag", "multiple_choice", ("0", "1", "2", "3"), ("accuracy",), "Rowan/hellaswag",
         None, _hellaswag, "HellaSwag: commonsense continuation (4 choices)"),
    _hub("cosmos_qa", "multiple_choice", ("0", "1", "2", "3"), ("accuracy",), "allenai/cosmos_qa",
         None, _cosmos, "CosmosQA: reading comprehension (4 choices)"),
    _hub("trec-coarse", "classification", ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"),
         ("accuracy",), "CogComp/trec", None, _single("text", "coarse_label"),
         "TREC question type, 6 coarse classes", splits={"train": "train", "validation": "test"}),
    _hub("trec-fine", "classification", tuple(str(i) for i in range(50)), ("accuracy",),
         "CogComp/trec", None, _single("text", "fine_label"),
         "TREC question type, 50 fine classes", splits={"train": "train", "validation": "test"}),
    _hub("ud-pos", "tagging", UD_UPOS, ("accuracy",), "universal_dependencies", "en_ewt", _ud_pos,
         "Universal Dependencies English EWT, UPOS tags",
         splits={"train": "train", "validation": "validation", "test": "test"}),
    _hub("squad", "extractive_qa", (), ("f1", "exact_match"), "rajpurkar/squad", None, _squad,
         "SQuAD v1.1: extractive question answering over Wikipedia paragraphs (Merchant et "
         "al. 2020); EM and F1 as the official evaluation, every gold answer counted"),
    _hub("ud-parse", "dependency_parsing", UD_PARSE_LABELS, ("las", "uas"),
         "universal_dependencies", "en_ewt", _ud_parse,
         "Universal Dependencies English EWT: dependency parsing (Merchant et al. 2020), "
         "universal relations (subtypes folded in)",
         splits={"train": "train", "validation": "validation", "test": "test"}),
    _hub("ud-dep", "token_pair", UD_DEPRELS, ("accuracy",), "universal_dependencies", "en_ewt",
         _ud_dep, "Universal Dependencies English EWT, (head, dependent) word pairs labelled "
         "with their universal relation (Zhou & Srikumar 2022's DEP; subtypes folded in)",
         splits={"train": "train", "validation": "validation", "test": "test"}),
    _offline("movies", "classification", SENTIMENT, ("accuracy", "f1"),
             "Rotten Tomatoes snippets (SST-2 source), mean human rating > 0 -> positive; "
             "rating exactly 0 dropped"),
    _offline("movies-score", "regression", (), ("pearson", "spearman", "mse"),
             "Rotten Tomatoes snippets, regression on the mean rating in [-4, 4] (STS-B analogue)",
             corpus="movies"),
    _offline("tweets", "classification", SENTIMENT, ("accuracy", "f1"),
             "tweets, rating > 0 -> positive (out-of-domain for movies)"),
    _offline("amazon", "classification", SENTIMENT, ("accuracy", "f1"),
             "Amazon review snippets, rating > 0 -> positive (out-of-domain for movies)"),
    _offline("nyt", "classification", SENTIMENT, ("accuracy", "f1"),
             "NYT editorial snippets, rating > 0 -> positive (out-of-domain for movies)"),
    _offline("brown-pos", "tagging", UNIVERSAL_TAGS, ("accuracy",),
             "Brown corpus words, 12 universal POS tags (Petrov et al. 2012 map, shipped)",
             corpus="brown"),
    _offline("brown-genre", "classification", GENRES, ("accuracy", "macro_f1"),
             "Brown corpus sentences, 15-way genre (TREC-like multi-class sentence task)",
             corpus="brown"),
    # Zhou & Srikumar 2022's DEP offline: no treebank is on a registry, so Brown parsed by
    # spaCy's small English model (silver_parses; needs the `silver` extra to parse, once)
    _offline("brown-dep", "token_pair", silver_parses.DEP_LABELS, ("accuracy",),
             "Brown sentences, (head, dependent) word pairs labelled with their relation: "
             "SILVER parses by spaCy en_core_web_sm 3.8 with ClearNLP labels (nsubj, dobj, "
             "prep, pobj, ...), not Universal Dependencies; the first 2000/500/500 sentences "
             "of the train/validation/test splits", corpus=SILVER_CORPUS),
    _offline("brown-parse", "dependency_parsing", ("ROOT", *silver_parses.DEP_LABELS),
             ("las", "uas"),
             "Brown sentences, dependency parsing on SILVER parses by spaCy en_core_web_sm "
             "3.8 (ClearNLP labels, not Universal Dependencies; the sentences of brown-dep)",
             corpus=SILVER_CORPUS),
]
_FIXTURE_DIR = Path(__file__).resolve().parent / "resources" / "fixtures"
_SPECS += [
    TaskSpec(name="tiny-sentiment", kind="classification", source="fixture", label_names=SENTIMENT,
             metrics=("accuracy", "f1"), splits=dict(_OFFLINE_SPLITS),
             description="committed template sentences (tests and smoke runs with tiny models)"),
    TaskSpec(name="tiny-pos", kind="tagging", source="fixture",
             label_names=("DET", "NOUN", "VERB", "ADV", "ADJ", "."), metrics=("accuracy",),
             splits=dict(_OFFLINE_SPLITS),
             description="committed template sentences with POS tags (tests, smoke runs)"),
    TaskSpec(name="tiny-choice", kind="multiple_choice", source="fixture",
             label_names=("0", "1"), metrics=("accuracy",), splits=dict(_OFFLINE_SPLITS),
             description="committed template sentences, the continuation of the same sentiment "
                         "out of two (tests, smoke runs)"),
    TaskSpec(name="tiny-squad", kind="extractive_qa", source="fixture", label_names=(),
             metrics=("f1", "exact_match"), splits=dict(_OFFLINE_SPLITS),
             description="committed template paragraphs, 'the <noun> was ?' answered by the "
                         "adjective said of it (tests, smoke runs)"),
    TaskSpec(name="tiny-parse", kind="dependency_parsing", source="fixture",
             label_names=("root", "det", "nsubj", "advmod", "acomp", "punct"),
             metrics=("las", "uas"), splits=dict(_OFFLINE_SPLITS),
             description="tiny-dep's template sentences as trees: every word's head and "
                         "relation (tests, smoke runs)"),
    TaskSpec(name="tiny-dep", kind="token_pair", source="fixture",
             label_names=("det", "nsubj", "advmod", "acomp", "punct"), metrics=("accuracy",),
             splits=dict(_OFFLINE_SPLITS),
             description="committed template sentences, (head, dependent) word pairs labelled "
                         "with their relation (tests, smoke runs)"),
]
TASKS: dict[str, TaskSpec] = {s.name: s for s in _SPECS}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
OFFLINE_TASK_NAMES: tuple[str, ...] = tuple(n for n, s in TASKS.items() if s.source == "offline")
# Offline stand-ins to suggest when a hub task can't be loaded.
OFFLINE_ALTERNATIVES = {"sst2": "movies", "yelp_polarity": "movies", "stsb": "movies-score",
                        "ud-pos": "brown-pos", "ud-dep": "brown-dep", "ud-parse": "brown-parse",
                        "trec-coarse": "brown-genre", "trec-fine": "brown-genre",
                        "squad": "tiny-squad"}


def get_task(name: str) -> TaskSpec:
    """The spec for ``name``: a registry task; else the user's own data (``user_tasks``: a
    task card's name, ``hub:org/name``, a path); an unknown name lists the valid ones. A hub
    task may be pinned to a dataset revision as ``name@revision`` (``sst2@<commit sha>``): the
    spec then carries ``hub_revision`` and keeps the pinned name (so configs, results and
    cache keys hold it)."""
    base, _, rev = name.partition("@")
    if rev and base in TASKS:
        if TASKS[base].source != "hub":
            raise ConfigError(f"task {name!r}: only hub tasks have revisions; {base!r} is "
                              f"{TASKS[base].source} data, fixed by its pinned digests. Drop "
                              f"'@{rev}'")
        return dataclasses.replace(TASKS[base], name=name, hub_revision=rev)
    if name in TASKS:
        return TASKS[name]
    from . import user_tasks

    spec = user_tasks.resolve(name)
    if spec is None:
        raise unknown("task", name, TASK_NAMES,
                      f"offline tasks (no hub needed): {', '.join(OFFLINE_TASK_NAMES)}. "
                      f"{user_tasks.WHAT_ELSE}")
    return spec


def resolve_task(task: str | TaskSpec) -> TaskSpec:
    """A ``TaskSpec`` as it is; a name looked up (``get_task``). Lets a run resolve its task
    once and hand the spec to helpers that also accept a name."""
    return task if isinstance(task, TaskSpec) else get_task(task)


_RESOLVED = ("_task_spec", "_other_tasks")  # resolved specs: not pickled, resolved again


class ResolvedTask:
    """Mixin for the frozen config dataclasses that have a ``task`` field (the fine-tuning,
    activation and study configs). The field takes a name or a ``TaskSpec``; it is resolved
    once, at construction: the field keeps the task's name (what JSON, results tables and
    cache keys hold, unchanged), and ``task_spec`` the resolved spec that a run passes on —
    nothing downstream looks the name up again. ``replace`` hands the spec on to the new
    config (``dataclasses.replace`` would start from the name)."""

    def _resolve_task(self) -> TaskSpec:
        spec = resolve_task(self.task)
        object.__setattr__(self, "task", spec.name)
        object.__setattr__(self, "_task_spec", spec)
        return spec

    @property
    def task_spec(self) -> TaskSpec:
        spec = self.__dict__.get("_task_spec")
        # after unpickling (a spec's row converters are lambdas, which don't pickle): by name
        return spec if spec is not None else self._resolve_task()

    def __getstate__(self):
        # a user task's spec is plain data: it travels (a spec built with TaskSpec.from_file(
        # name=...) has a name only this process knows); a registry spec comes back by name
        state = {k: v for k, v in self.__dict__.items() if k not in _RESOLVED}
        spec = self.__dict__.get("_task_spec")
        if spec is not None and spec.source in USER_SOURCES:
            state["_task_spec"] = spec
        return state

    def spec_of(self, task: str) -> TaskSpec:
        """The spec of ``task``: this config's own task, or another one (the ones it names,
        ``other_tasks()``, are resolved at construction), each resolved once and kept."""
        if task == self.task:
            return self.task_spec
        specs = self.__dict__.get("_other_tasks")
        if specs is None:
            specs = {t: resolve_task(t) for t in self.other_tasks()}
            object.__setattr__(self, "_other_tasks", specs)
        if task not in specs:
            specs[task] = resolve_task(task)
        return specs[task]

    def other_tasks(self) -> tuple[str, ...]:
        """Names of further tasks the config uses besides ``task`` (none here)."""
        return ()

    def replace(self, **changes):
        """A copy with ``changes`` (``dataclasses.replace``), the resolved task carried over."""
        changes.setdefault("task", self.task_spec)
        return dataclasses.replace(self, **changes)


def load_split(name: str | TaskSpec, split: str, *,
               hub_data_dir: str | Path | None = None) -> datasets.Dataset:
    """One split of a task (a name or its resolved spec) in the schema of its kind (see
    module docstring)."""
    spec = resolve_task(name)
    if split not in spec.splits:
        raise ConfigError(f"task {spec.name!r} has no split {split!r}; its splits: "
                          f"{list(spec.splits)}")
    if spec.source == "offline":
        return _load_offline(spec, split)
    if spec.source == "fixture":
        return _load_fixture(spec, split)
    if spec.source in USER_SOURCES:
        from . import user_tasks

        return user_tasks.load_split(spec, split)
    return _load_hub(spec, split, hub_data_dir)


def offline_source(spec: TaskSpec) -> str:
    """The offline_data corpus an offline task reads (``spec.corpus``)."""
    return spec.corpus


def key_name(task: TaskSpec) -> str:
    """What cache keys hold in place of the task's name: the name of a registry task (so keys
    made before user tasks existed stay valid), the bare source kind for a user task (file,
    saved dataset, task card), whose ``data_identity`` — content digest plus column mapping —
    identifies it: the same rows under another file name are the same entry."""
    return task.name if task.source in REGISTRY_SOURCES else task.source


def data_identity(task: TaskSpec) -> dict:
    """What identifies a task's data in cache keys: pinned split digests, or the hub source.

    A hub task adds the revision asked for (``name@revision``) and the dataset commit it
    resolves to (``hub.resolve_commit``: the HF cache's record, else the hub's answer), so a
    moved dataset makes new keys; with neither known (offline, never downloaded) or the rows
    read from ``LAYERSCOPE_HUB_DATA`` files, the identity is the source alone, as before."""
    if task.source == "offline":
        from . import offline_data

        if task.corpus == SILVER_CORPUS:  # the parses: Brown's split + parser + sizes
            return {"splits": offline_data.pinned_splits().get("brown"),
                    "parses": {s: silver_parses.cache_key(s) for s in silver_parses.SPLITS}}
        return {"splits": offline_data.pinned_splits().get(offline_source(task))}
    if task.source in USER_SOURCES:  # content digest + mapping (user_tasks.data_identity)
        from . import user_tasks

        return user_tasks.data_identity(task)
    ident: dict = {"source": task.source, "hub": task.hub_path, "config": task.hub_config}
    if task.source != "hub":
        return ident
    if task.hub_revision is not None:
        ident["revision"] = task.hub_revision
    if not os.environ.get("LAYERSCOPE_HUB_DATA"):
        commit = hub.resolve_commit(task.hub_path, task.hub_revision, repo_type="dataset")
        if commit is not None:
            ident["commit"] = commit
    return ident


def _load_offline(spec: TaskSpec, split: str) -> datasets.Dataset:
    from . import offline_data

    source = spec.corpus
    if source == SILVER_CORPUS and spec.kind == "dependency_parsing":
        sentences = silver_parses.brown_sentences(split)
        return datasets.Dataset.from_dict({
            "tokens": [s["tokens"] for s in sentences], "heads": [s["heads"] for s in sentences],
            "deprels": [[spec.label_names.index(d) for d in s["deprels"]] for s in sentences]})
    if source == SILVER_CORPUS:
        rows = conllu.pair_rows(silver_parses.brown_sentences(split))
        return datasets.Dataset.from_dict({
            "tokens": [r["tokens"] for r in rows], "pairs": [r["pairs"] for r in rows],
            "pair_labels": [[spec.label_names.index(t) for t in r["pair_labels"]]
                            for r in rows]})
    if source == "brown":
        rows = offline_data.split_rows("brown", offline_data.brown_rows(), split)
        if spec.kind == "tagging":
            return datasets.Dataset.from_dict({"tokens": [r["tokens"] for r in rows],
                                               "tags": [r["upos"] for r in rows]})
        return datasets.Dataset.from_dict({"text": [" ".join(r["tokens"]) for r in rows],
                                           "label": [GENRES.index(r["genre"]) for r in rows]})
    rows = offline_data.split_rows(source, offline_data.vader_rows(source), split)
    if spec.kind == "regression":
        return datasets.Dataset.from_dict({"text": [r["text"] for r in rows],
                                           "label": [r["score"] for r in rows]})
    rows = [r for r in rows if r["score"] != 0.0]  # neutral: no binary label (as SST-2 does)
    return datasets.Dataset.from_dict({"text": [r["text"] for r in rows],
                                       "label": [int(r["score"] > 0) for r in rows]})


def _load_fixture(spec: TaskSpec, split: str) -> datasets.Dataset:
    stem = "tiny_dep" if spec.kind == "dependency_parsing" else spec.name.replace("-", "_")
    path = _FIXTURE_DIR / f"{stem}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.pop("split") == split]
    if spec.kind == "dependency_parsing":  # tiny-dep's arcs, and the word without one: root
        out = {"tokens": [], "heads": [], "deprels": []}
        for r in rows:
            arcs = {d: (h + 1, rel) for (h, d), rel in zip(r["pairs"], r["pair_labels"],
                                                           strict=True)}
            tree = [arcs.get(w, (0, "root")) for w in range(len(r["tokens"]))]
            out["tokens"].append(r["tokens"])
            out["heads"].append([h for h, _ in tree])
            out["deprels"].append([spec.label_names.index(rel) for _, rel in tree])
        return datasets.Dataset.from_dict(out)
    if spec.kind == "extractive_qa":
        return datasets.Dataset.from_list(rows)
    if spec.kind == "tagging":
        return datasets.Dataset.from_dict({
            "tokens": [r["tokens"] for r in rows],
            "tags": [[spec.label_names.index(t) for t in r["tags"]] for r in rows]})
    if spec.kind == "token_pair":
        return datasets.Dataset.from_dict({
            "tokens": [r["tokens"] for r in rows], "pairs": [r["pairs"] for r in rows],
            "pair_labels": [[spec.label_names.index(t) for t in r["pair_labels"]]
                            for r in rows]})
    if spec.kind == "multiple_choice":
        return datasets.Dataset.from_dict({k: [r[k] for r in rows]
                                           for k in ("context", "choices", "label")})
    return datasets.Dataset.from_dict({"text": [r["text"] for r in rows],
                                       "label": [r["label"] for r in rows]})


def _local_hub_file(spec: TaskSpec, hub_split: str, root: Path) -> Path | None:
    folder = root / spec.hub_path.replace("/", "__") / (spec.hub_config or "default")
    for ext in ("jsonl", "json", "csv", "parquet"):
        if (folder / f"{hub_split}.{ext}").exists():
            return folder / f"{hub_split}.{ext}"
    return None


def _load_hub(spec: TaskSpec, split: str, hub_data_dir) -> datasets.Dataset:
    hub_split = spec.splits[split]
    root = hub_data_dir or os.environ.get("LAYERSCOPE_HUB_DATA")
    if root:
        local = _local_hub_file(spec, hub_split, Path(root))
        if local is None:
            raise FileNotFoundError(
                f"task {spec.name!r}: no local file for hub split {hub_split!r} under {root} "
                f"(expected {spec.hub_path.replace('/', '__')}/{spec.hub_config or 'default'}/"
                f"{hub_split}.jsonl|json|csv|parquet)")
        builder = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}
        raw = datasets.load_dataset(builder[local.suffix[1:]], data_files=str(local),
                                    split="train")
    else:
        alt = OFFLINE_ALTERNATIVES.get(spec.name.partition("@")[0])
        hint = f"the offline analogue {alt!r}, or " if alt else ""
        raw = load_hub_dataset(
            spec.name, spec.hub_path, spec.hub_config, split=hub_split,
            revision=spec.hub_revision,
            fix=f"Use {hint}one of the offline tasks {', '.join(OFFLINE_TASK_NAMES)}; or put the "
                f"split in a local folder and set LAYERSCOPE_HUB_DATA (see layerscope.tasks).")
    return _convert(spec, raw)


def load_hub_dataset(task: str, path: str, config: str | None, *, split: str | None = None,
                     revision: str | None = None, fix: str):
    """``datasets.load_dataset(path, config, split=, revision=)`` for task ``task``: with the
    hub unreachable, datasets' local cache only (at once, not after 5 retries); any failure
    (network, offline mode, missing repo) is a ``HubUnavailableError`` naming the call and
    ``fix`` (what to use instead). ``split=None`` gives the ``DatasetDict``."""
    offline = hub.offline()
    try:
        with hub.datasets_offline() if offline else contextlib.nullcontext():
            return datasets.load_dataset(path, config, split=split, revision=revision)
    except Exception as e:  # network, offline mode, missing repo: all mean "no hub"
        cause = ConnectionError(f"{hub.why_offline()}, and the dataset is not in the local "
                                "cache") if offline else e
        asked = f", split={split!r}" if split is not None else ""
        asked += f", revision={revision!r}" if revision is not None else ""
        raise HubUnavailableError(
            f"task {task!r} needs the Hugging Face hub "
            f"(datasets.load_dataset({path!r}, {config!r}{asked})), which failed: "
            f"{type(cause).__name__}: {str(cause)[:300]}\n{fix}") from e


def _convert(spec: TaskSpec, raw: datasets.Dataset) -> datasets.Dataset:
    assert spec.convert is not None
    converted = raw.map(spec.convert, remove_columns=raw.column_names)
    if spec.kind in LABEL_KINDS:
        labels = set(converted["label"])
        bad = labels - set(range(spec.num_labels))
        if bad:  # e.g. GLUE test splits carry label -1 (hidden)
            raise ConfigError(f"task {spec.name!r}: labels {sorted(bad)} outside "
                              f"0..{spec.num_labels - 1}"
                              f"; is this a split with hidden labels?")
    return converted
