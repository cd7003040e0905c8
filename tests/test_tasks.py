import json
from collections import Counter

import pytest

from layerscope import offline_data, tasks
from layerscope.tasks import HubUnavailableError, get_task, load_split


def test_registry_names_and_kinds():
    """Every paper task is registered with a valid kind, metrics and splits."""
    for name in ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "boolq",
                 "yelp_polarity", "hellaswag", "cosmos_qa", "trec-coarse", "trec-fine", "ud-pos",
                 "ud-dep", "brown-dep", "movies", "movies-score", "tweets", "amazon", "nyt",
                 "brown-pos", "brown-genre"]:
        spec = get_task(name)
        assert spec.kind in tasks.KINDS and spec.metrics and "train" in spec.splits
        assert (spec.kind == "regression") == (spec.num_labels == 1)
    assert get_task("cola").primary_metric == "mcc"
    assert get_task("stsb").metrics[:2] == ("pearson", "spearman")
    assert "validation_mismatched" in get_task("mnli").splits


def test_offline_corpus_is_a_spec_property():
    """Which offline corpus a task reads (and whose pinned splits key its data) is a field of
    its spec, not a rule on its name."""
    pinned = offline_data.pinned_splits()
    for name in tasks.OFFLINE_TASK_NAMES:
        spec = get_task(name)
        assert tasks.offline_source(spec) == spec.corpus
        # brown-dep reads Brown's pinned split through its parses (silver_parses)
        assert spec.corpus in pinned or spec.corpus == tasks.SILVER_CORPUS
    assert get_task("movies-score").corpus == "movies"
    assert {get_task(n).corpus for n in ("brown-pos", "brown-genre")} == {"brown"}
    assert all(get_task(n).corpus == "" for n in tasks.TASK_NAMES
               if get_task(n).source != "offline")


def test_a_resolved_spec_is_used_as_it_is():
    spec = get_task("tiny-sentiment")
    assert tasks.resolve_task(spec) is spec and tasks.resolve_task("tiny-sentiment") is spec
    assert load_split(spec, "validation")["text"] == load_split(spec.name, "validation")["text"]


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown task 'sst-2'.*sst2.*offline.*movies"):
        get_task("sst-2")
    with pytest.raises(ValueError, match=r"no split 'dev'.*train"):
        load_split("movies", "dev")


@pytest.mark.parametrize("name,sizes", [
    ("movies", (8389, 1104, 1075)), ("movies-score", (8418, 1109, 1078)),
    ("tweets", None), ("amazon", None), ("nyt", None),
    ("brown-pos", (45890, 5661, 5789)), ("brown-genre", (45890, 5661, 5789)),
])
def test_offline_splits_sizes_labels_disjoint(name, sizes):
    """Sizes are pinned; splits are disjoint; labels are within the label set."""
    spec = get_task(name)
    splits = {s: load_split(name, s) for s in ("train", "validation", "test")}
    if sizes:
        assert tuple(len(splits[s]) for s in ("train", "validation", "test")) == sizes
    total = sum(len(d) for d in splits.values())
    assert 0.09 < len(splits["validation"]) / total < 0.11
    if spec.kind == "tagging":
        tags = {t for row in splits["validation"]["tags"] for t in row}
        assert tags <= set(range(spec.num_labels)) and len(tags) == 12
    elif spec.kind == "regression":
        labels = splits["train"]["label"]
        assert -4 <= min(labels) < 0 < max(labels) <= 4
    else:
        assert set(splits["train"]["label"]) == set(range(spec.num_labels))
    if "text" in splits["train"].column_names:
        a, b = set(splits["train"]["text"]), set(splits["test"]["text"])
        assert not a & b, "a sentence is in both train and test"


def test_split_is_deterministic_and_pinned(monkeypatch):
    """The same split every time; a changed split is an error, not silently different data."""
    assert offline_data.split_of("movies", "a b") == offline_data.split_of("movies", "a b")
    first = load_split("movies", "validation")["text"]
    assert load_split("movies", "validation")["text"] == first
    pins = json.loads(json.dumps(offline_data.pinned_splits()))
    pins["movies"]["validation"]["n"] += 1
    monkeypatch.setattr(offline_data, "pinned_splits", lambda: pins)
    with pytest.raises(RuntimeError, match="pins"):
        load_split("movies", "validation")


def test_movies_drops_neutral_and_is_balanced():
    ds = load_split("movies", "train")
    counts = Counter(ds["label"])
    assert abs(counts[0] - counts[1]) / len(ds) < 0.05


def test_fixture_tasks():
    ds = load_split("tiny-sentiment", "train")
    assert len(ds) == 600 and set(ds["label"]) == {0, 1}
    pos = load_split("tiny-pos", "validation")
    assert all(len(t) == len(g) for t, g in zip(pos["tokens"], pos["tags"], strict=True))


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


HUB_ROWS = {
    ("sst2", "nyu-mll__glue/sst2/validation"): [{"sentence": "a fine film", "label": 1, "idx": 0}],
    ("mrpc", "nyu-mll__glue/mrpc/train"): [
        {"sentence1": "He left.", "sentence2": "He went away.", "label": 1, "idx": 0}],
    ("stsb", "nyu-mll__glue/stsb/validation"): [
        {"sentence1": "A man.", "sentence2": "A person.", "label": 3.8, "idx": 0}],
    ("mnli", "nyu-mll__glue/mnli/validation_matched"): [
        {"premise": "P", "hypothesis": "H", "label": 2, "idx": 0}],
    ("boolq", "google__boolq/default/validation"): [
        {"question": "is it?", "answer": True, "passage": "It is."}],
    ("hellaswag", "Rowan__hellaswag/default/validation"): [
        {"ctx": "She opens", "endings": ["a", "b", "c", "d"], "label": "2"}],
    ("cosmos_qa", "allenai__cosmos_qa/default/train"): [
        {"context": "C", "question": "Q?", "answer0": "a", "answer1": "b", "answer2": "c",
         "answer3": "d", "label": 1}],
    ("trec-fine", "CogComp__trec/default/test"): [
        {"text": "Who?", "coarse_label": 3, "fine_label": 29}],
    ("ud-pos", "universal_dependencies/en_ewt/validation"): [
        {"tokens": ["I", "ran", "."], "upos": [11, 16, 1]}],
    ("ud-dep", "universal_dependencies/en_ewt/train"): [  # the hub's columns: heads as strings
        {"idx": "s1", "tokens": ["My", "dog", "ran", "."], "upos": [11, 0, 16, 1],
         "head": ["2", "3", "0", "3"], "deprel": ["nmod:poss", "nsubj", "root", "punct"]}],
}


@pytest.mark.parametrize("task,rel", list(HUB_ROWS), ids=[t for t, _ in HUB_ROWS])
def test_hub_loading_code_on_local_files(tmp_path, task, rel):
    """The hub path (datasets.load_dataset + conversion) on local files in the hub's format."""
    _write_jsonl(tmp_path / f"{rel}.jsonl", HUB_ROWS[(task, rel)])
    split = {"validation_matched": "validation", "test": "validation"}.get(
        rel.rsplit("/", 1)[1], rel.rsplit("/", 1)[1])
    ds = load_split(task, split, hub_data_dir=tmp_path)
    spec = get_task(task)
    row = ds[0]
    expected_cols = {"classification": {"text", "label"}, "pair": {"text", "text_pair", "label"},
                     "regression": {"text", "text_pair", "label"},
                     "multiple_choice": {"context", "choices", "label"},
                     "tagging": {"tokens", "tags"},
                     "token_pair": {"tokens", "pairs", "pair_labels"}}[spec.kind]
    assert set(ds.column_names) == expected_cols
    if task == "hellaswag":
        assert row["label"] == 2 and len(row["choices"]) == 4
    if task == "boolq":
        assert row["label"] == 1 and row["text_pair"] == "It is."
    if task == "trec-fine":
        assert row["label"] == 29
    if task == "ud-dep":  # root arc left out, 0-based, subtype folded into its relation
        assert row["pairs"] == [[1, 0], [2, 1], [2, 3]]
        assert [spec.label_names[i] for i in row["pair_labels"]] == ["nmod", "nsubj", "punct"]


def test_ud_dep_names_a_relation_that_is_not_ud(tmp_path):
    _write_jsonl(tmp_path / "universal_dependencies/en_ewt/train.jsonl", [
        {"idx": "s9", "tokens": ["a", "b"], "head": ["2", "0"], "deprel": ["pobj", "root"]}])
    with pytest.raises(ValueError, match=r"s9.*word 1 \('a'\).*'pobj'.*UD treebank"):
        load_split("ud-dep", "train", hub_data_dir=tmp_path)


def test_brown_dep_is_silver_and_says_so():
    """The offline DEP task: its labels are the parser's ClearNLP set, and its description
    says silver and not UD wherever the task is listed."""
    from layerscope import silver_parses

    spec = get_task("brown-dep")
    assert spec.kind == "token_pair" and spec.label_names == silver_parses.DEP_LABELS
    assert "SILVER" in spec.description and "not Universal Dependencies" in spec.description
    ident = tasks.data_identity(spec)  # the parses' keys: another parser, another key
    assert set(ident["parses"]) == {"train", "validation", "test"}


def test_hub_hidden_labels_are_rejected(tmp_path):
    _write_jsonl(tmp_path / "nyu-mll__glue/sst2/validation.jsonl",
                 [{"sentence": "x", "label": -1, "idx": 0}])
    with pytest.raises(ValueError, match="hidden labels"):
        load_split("sst2", "validation", hub_data_dir=tmp_path)


def test_missing_local_hub_file_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="nyu-mll__glue/rte/train.jsonl"):
        load_split("rte", "train", hub_data_dir=tmp_path)


def test_unreachable_hub_names_offline_alternatives(monkeypatch):
    monkeypatch.delenv("LAYERSCOPE_HUB_DATA", raising=False)
    with pytest.raises(HubUnavailableError, match=r"(?s)needs the Hugging Face hub.*'movies'"):
        load_split("sst2", "validation")
