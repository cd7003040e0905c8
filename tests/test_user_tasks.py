"""The user's own data as a task (issue 17 §1): every format on a small file written in it,
resolved by path like a registry name, its identity (renaming keeps the cache keys, one
changed row makes new ones), task cards, and every bad input with a message naming the file,
the row or line and the fix."""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest

from layerscope import task_files, task_names, tasks, user_tasks
from layerscope.errors import ConfigError, HubUnavailableError
from layerscope.tasks import TaskSpec, data_identity, get_task, load_split, resolve_task

WORDS = ["good", "bad", "great", "awful", "fine", "dull", "superb", "poor", "nice", "grim"]
COLUMNS_OF = {"classification": {"text", "label"}, "pair": {"text", "text_pair", "label"},
              "regression": {"text", "label"}, "multiple_choice": {"context", "choices", "label"},
              "tagging": {"tokens", "tags"}, "token_pair": {"tokens", "pairs", "pair_labels"}}


def _reviews(n: int = 20) -> list[dict]:
    """n rows, alternating pos/neg, each text distinct."""
    return [{"review": f"a {WORDS[i % 10]} film number {i}", "stars": "pos" if i % 2 else "neg"}
            for i in range(n)]


def _write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _all_rows(spec: TaskSpec) -> dict[str, datasets.Dataset]:
    return {s: load_split(spec, s) for s in spec.splits}


# --- formats --------------------------------------------------------------------------------

def test_csv_with_a_column_mapping_resolves_by_path(tmp_path):
    path = _write_csv(tmp_path / "reviews.csv", _reviews())
    name = f"{path}?columns=text:review,label:stars"
    spec = resolve_task(name)
    assert (spec.kind, spec.source, spec.format) == ("classification", "file", "csv")
    assert spec.label_names == ("neg", "pos") and spec.metrics == ("accuracy",)
    assert spec.name == name and get_task(spec.name) == spec  # the name resolves to it again
    splits = _all_rows(spec)
    assert {s: len(d) for s, d in splits.items()} == {"train": 16, "validation": 2, "test": 2}
    for d in splits.values():
        assert set(d.column_names) == COLUMNS_OF["classification"]
        labels = list(d["label"])
        assert labels.count(0) == labels.count(1)  # stratified: both classes, evenly
    texts = [t for d in splits.values() for t in d["text"]]
    assert sorted(texts) == sorted(r["review"] for r in _reviews())  # every row, once
    first = splits["validation"][0]
    row = next(r for r in _reviews() if r["review"] == first["text"])
    assert spec.label_names[first["label"]] == row["stars"]
    # the same through the library call, from another working directory's point of view
    assert TaskSpec.from_file(path, columns={"text": "review", "label": "stars"}) == spec


def test_tsv_pair_task_with_a_split_column(tmp_path):
    rows = [{"premise": f"p {i}", "hypothesis": f"h \"{i}", "gold": i % 3,
             "fold": ["train", "dev", "test"][i % 5 % 3]} for i in range(30)]
    path = tmp_path / "nli.tsv"  # as GLUE writes them: tabs, no quoting
    path.write_text("\n".join("\t".join(str(v) for v in r.values())
                              for r in [dict(zip(rows[0], rows[0], strict=True))] + rows) + "\n")
    spec = TaskSpec.from_file(path, columns={"text": "premise", "text_pair": "hypothesis",
                                             "label": "gold", "split": "fold"})
    assert spec.kind == "pair" and spec.label_names == ("0", "1", "2")
    assert spec.metrics == ("accuracy", "macro_f1")  # > 2 classes
    assert spec.splits == {"train": "train", "validation": "dev", "test": "test"}
    assert spec.split_seed is None  # as given, not made
    val = load_split(spec, "validation")
    assert set(val.column_names) == COLUMNS_OF["pair"]
    want = [r for r in rows if r["fold"] == "dev"]
    assert val["text_pair"] == [r["hypothesis"] for r in want]  # quotes kept (TSV: no quoting)
    assert val["label"] == [r["gold"] for r in want]


def test_jsonl_regression_tagging_token_pair_and_multiple_choice(tmp_path):
    reg = _write_jsonl(tmp_path / "scores.jsonl",
                       [{"text": f"t{i}", "label": i / 4} for i in range(20)])
    spec = resolve_task(str(reg))
    assert spec.kind == "regression" and spec.label_names == ()
    assert spec.metrics == ("pearson", "spearman", "mse") and spec.num_labels == 1
    assert load_split(spec, "train").features["label"].dtype == "float64"

    tag_rows = [{"tokens": ["the", WORDS[i % 10], "ran"], "tags": ["DET", "NOUN", None]}
                for i in range(20)]
    tag_rows[0]["tags"][2] = "VERB"
    spec = resolve_task(str(_write_jsonl(tmp_path / "pos.jsonl", tag_rows)))
    assert spec.kind == "tagging" and spec.label_names == ("DET", "NOUN", "VERB")
    got = {tuple(t) for s in spec.splits for t in load_split(spec, s)["tags"]}
    assert got == {(0, 1, -1), (0, 1, 2)}  # null: a word without a tag

    pair_rows = [{"tokens": ["a", "cat", "sat"], "pairs": [[1, 0], [2, 1]],
                  "pair_labels": ["det", "nsubj"]} for _ in range(20)]
    spec = resolve_task(str(_write_jsonl(tmp_path / "dep.jsonl", pair_rows)))
    assert spec.kind == "token_pair" and spec.label_names == ("det", "nsubj")
    d = load_split(spec, "train")
    assert set(d.column_names) == COLUMNS_OF["token_pair"]
    assert d[0]["pairs"] == [[1, 0], [2, 1]] and d[0]["pair_labels"] == [0, 1]

    mc = [{"q": f"q{i}", "a": "yes", "b": "no", "c": "maybe", "answer": ["a", "b", "c"][i % 3]}
          for i in range(30)]
    for r in mc:
        r["answer"] = r[r["answer"]]  # the right choice's text
    spec = TaskSpec.from_file(_write_jsonl(tmp_path / "mc.jsonl", mc),
                              columns={"context": "q", "choices": ["a", "b", "c"],
                                       "label": "answer"})
    assert spec.kind == "multiple_choice" and spec.label_names == ("0", "1", "2")
    d = load_split(spec, "validation")
    assert set(d.column_names) == COLUMNS_OF["multiple_choice"]
    assert all(ch == ["yes", "no", "maybe"] for ch in d["choices"])
    assert sorted(d["label"]) == [0, 1, 2]  # stratified on the answer


def test_json_array_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": r["review"], "label": r["stars"]} for r in _reviews()]
    j = tmp_path / "rows.json"
    j.write_text(json.dumps(rows, indent=1))
    spec = resolve_task(str(j))
    assert spec.format == "json" and len(load_split(spec, "train")) == 16
    p = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "split": "validation" if i < 4 else "train"}
                                         for i, r in enumerate(rows)]), p)
    spec = resolve_task(str(p))
    assert spec.format == "parquet" and spec.split_seed is None
    assert load_split(spec, "validation")["text"] == [r["text"] for r in rows[:4]]


def test_save_to_disk_folders_and_a_data_folder(tmp_path):
    names = ["neg", "pos"]
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    part = {"sentence": [r["review"] for r in _reviews()],
            "label": [int(r["stars"] == "pos") for r in _reviews()]}
    dd = datasets.DatasetDict({s: datasets.Dataset.from_dict(part, features=features)
                               for s in ("train", "validation")})
    dd.save_to_disk(str(tmp_path / "saved_dict"))
    spec = resolve_task(str(tmp_path / "saved_dict") + "?columns=text:sentence")
    assert (spec.source, spec.format) == ("dataset", "saved")
    assert spec.label_names == ("neg", "pos") and spec.split_seed is None  # ClassLabel names
    assert load_split(spec, "validation")["label"] == part["label"]
    dd["train"].save_to_disk(str(tmp_path / "saved_one"))  # one Dataset: splits made
    spec = TaskSpec.from_dataset(tmp_path / "saved_one", columns={"text": "sentence"})
    assert spec.split_seed == 0 and len(load_split(spec, "test")) == 2

    folder = tmp_path / "data"  # a folder of data files, read by datasets.load_dataset
    folder.mkdir()
    _write_csv(folder / "train.csv", [{"text": r["review"], "label": r["stars"]}
                                      for r in _reviews()])
    _write_csv(folder / "validation.csv", [{"text": "so good", "label": "pos"},
                                           {"text": "so bad", "label": "neg"}])
    spec = TaskSpec.from_dataset(str(folder))  # given like a hub id
    assert (spec.source, spec.format) == ("dataset", "data_folder")
    assert spec.splits == {"train": "train", "validation": "validation"}
    assert load_split(spec, "validation")["label"] == [1, 0]
    assert resolve_task(str(folder)) == spec


def test_conllu_tagging_and_dependency_pairs_from_a_card_with_split_files(tmp_path):
    (tmp_path / "train.conllu").write_text(CONLLU)
    (tmp_path / "dev.conllu").write_text(CONLLU.split("\n\n")[0] + "\n\n")
    card = tmp_path / "ud.yaml"
    card.write_text("splits: {train: train.conllu, validation: dev.conllu}\n")
    spec = resolve_task(str(card))
    assert spec.kind == "tagging" and spec.column == "upos" and spec.card == str(card)
    assert spec.name == str(card) and get_task(spec.name) == spec
    d = load_split(spec, "validation")
    # the multi-word token "don't" is two words; the empty node is not a word
    assert d[0]["tokens"] == ["I", "do", "n't", "like", "eggs", "."]
    assert [spec.label_names[t] for t in d[0]["tags"]] == ["PRON", "AUX", "PART", "VERB",
                                                           "NOUN", "PUNCT"]
    card.write_text("splits: {train: train.conllu, validation: dev.conllu}\n"
                    "kind: token_pair\n")
    spec = resolve_task(str(card))
    d = load_split(spec, "validation")
    assert d[0]["pairs"] == [[3, 0], [3, 1], [3, 2], [3, 4], [3, 5]]  # root arc left out
    assert [spec.label_names[t] for t in d[0]["pair_labels"]] == ["nsubj", "aux", "advmod",
                                                                  "obj", "punct"]
    xpos = TaskSpec.from_file(tmp_path / "train.conllu", column="xpos",
                              split_fractions=(0.5, 0.5))
    assert "VBP" in xpos.label_names and xpos.name.endswith("?column=xpos&split_fractions="
                                                            "0.5,0.5")


def test_streusle_role_and_function_with_untagged_words(tmp_path):
    mini = Path(__file__).parent / "fixtures" / "streusle" / "mini.conllulex"
    copy = tmp_path / "streusle.conllulex"
    copy.write_bytes(mini.read_bytes())
    role = TaskSpec.from_file(copy, split_fractions=(0.5, 0.5))
    fxn = TaskSpec.from_file(copy, column="fxn", split_fractions=(0.5, 0.5))
    assert role.kind == fxn.kind == "tagging" and role.split_fractions == (0.5, 0.5)
    for spec, to in ((role, "p.Recipient"), (fxn, "p.Goal")):  # "talked to me": a construal
        rows = [r for s in spec.splits for r in load_split(spec, s)]
        talked = next(r for r in rows if r["tokens"][:3] == ["They", "talked", "to"])
        assert [spec.label_names[t] if t >= 0 else None for t in talked["tags"]] == [
            None, None, to, None, "p.Topic", None, None, None]


# --- names, identity, pickling ------------------------------------------------------------------

def test_options_in_the_name_round_trip_with_odd_column_names(tmp_path):
    rows = [{"the text, really": r["review"], "stars:+&?": r["stars"]} for r in _reviews()]
    path = _write_csv(tmp_path / "odd name?.csv", rows)
    spec = TaskSpec.from_file(path, columns={"text": "the text, really", "label": "stars:+&?"},
                              label_names=["pos", "neg"], split_seed=3,
                              split_fractions=(0.6, 0.2, 0.2), metrics=["accuracy", "f1"])
    base, options = task_names.parse_name(spec.name)
    assert base == str(path)
    assert options == {"columns": {"text": "the text, really", "label": "stars:+&?"},
                       "label_names": ["pos", "neg"], "split_seed": 3,
                       "split_fractions": [0.6, 0.2, 0.2], "metrics": ["accuracy", "f1"]}
    again = subprocess.run(  # another process resolves the name to the same spec
        [sys.executable, "-c", "import sys, pickle; from layerscope.tasks import get_task; "
         "sys.stdout.buffer.write(pickle.dumps(get_task(sys.argv[1])))", spec.name],
        capture_output=True, check=True).stdout
    assert pickle.loads(again) == spec
    assert spec.label_names == ("pos", "neg") and spec.split_seed == 3


def test_made_splits_are_seeded_and_recorded(tmp_path):
    path = _write_csv(tmp_path / "r.csv", [{"text": r["review"], "label": r["stars"]}
                                           for r in _reviews(40)])
    a, b = TaskSpec.from_file(path), TaskSpec.from_file(path, split_seed=1)
    assert load_split(a, "test")["text"] == load_split(TaskSpec.from_file(path), "test")["text"]
    assert load_split(a, "test")["text"] != load_split(b, "test")["text"]
    assert data_identity(a)["splits"] == {"seed": 0, "fractions": [0.8, 0.1, 0.1],
                                          "stratified": True}
    assert data_identity(a) != data_identity(b)
    assert (a.split_seed, a.split_fractions) == (0, (0.8, 0.1, 0.1))


def test_identity_follows_content_not_the_file_name(tmp_path):
    """Renaming a CSV keeps the activation and fine-tuning cache keys; one changed row makes
    new ones (tasks.key_name is the source kind; data_identity the content digest)."""
    from layerscope import activations, finetune

    rows = [{"text": r["review"], "label": r["stars"]} for r in _reviews()]
    first = _write_csv(tmp_path / "a.csv", rows)

    def keys(path):
        spec = activations.ActivationSpec(task=str(path), n_examples=None)
        cfg = finetune.FinetuneConfig(task=str(path), model="tiny-bert", preset="smoke")
        return activations.activation_key(spec, "w0", "t0"), finetune.cache_key(cfg)

    before = keys(first)
    renamed = first.rename(tmp_path / "renamed.csv")
    assert keys(renamed) == before
    assert tasks.key_name(get_task(str(renamed))) == "file"
    changed = _write_csv(tmp_path / "changed.csv", rows[:-1] + [{**rows[-1], "text": "new"}])
    after = keys(changed)
    assert after[0] != before[0] and after[1] != before[1]
    remapped = keys(f"{renamed}?label_names=neg,pos&split_seed=5")
    assert remapped[0] != before[0]  # the split rule is part of the identity


def test_file_digests_are_memoised_by_size_and_mtime(tmp_path, monkeypatch):
    path = _write_csv(tmp_path / "a.csv", [{"text": r["review"], "label": r["stars"]}
                                           for r in _reviews()])
    spec = TaskSpec.from_file(path)
    ident = data_identity(spec)

    def no_reading(*a, **k):
        raise AssertionError("the file was read again")
    monkeypatch.setattr(task_files, "open", no_reading, raising=False)
    monkeypatch.setattr(task_files, "read_delimited", no_reading)
    assert data_identity(spec) == ident  # from the memo, not the disk
    assert len(load_split(spec, "train")) == 16 and get_task(spec.name) == spec  # rows too
    monkeypatch.undo()
    _write_csv(path, [{"text": r["review"], "label": r["stars"]} for r in _reviews(22)])
    assert data_identity(spec)["content"] != ident["content"]  # a changed file is hashed anew


def test_pickled_configs_come_back(tmp_path):
    from layerscope import activations

    path = _write_csv(tmp_path / "a.csv", [{"text": r["review"], "label": r["stars"]}
                                           for r in _reviews()])
    spec = activations.ActivationSpec(task=str(path), n_examples=None)
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.task_spec == spec.task_spec and back.task == str(path)
    named = TaskSpec.from_file(path, name="my-reviews")  # a name only this process knows
    assert get_task("my-reviews") == named
    cfg = pickle.loads(pickle.dumps(activations.ActivationSpec(task=named, n_examples=None)))
    assert cfg.task == "my-reviews" and cfg.task_spec == named  # the spec travels with it


def test_a_hub_dataset_offline_says_what_to_do(tmp_path):
    with pytest.raises(HubUnavailableError, match=r"(?s)task 'hub:org/absent'.*needs the "
                                                  r"Hugging Face hub.*save it to a folder"):
        resolve_task("hub:org/absent")
    with pytest.raises(HubUnavailableError, match="revision='v1'"):
        TaskSpec.from_dataset("org/absent", config="x", revision="v1")
    card = tmp_path / "hub.yaml"
    card.write_text("dataset: org/absent\nconfig: x\ncolumns: {text: sentence}\n")
    with pytest.raises(HubUnavailableError, match=r"load_dataset\('org/absent', 'x'"):
        resolve_task(str(card))


def test_splits_and_metrics_agree_with_the_registry_modules():
    """The literal copies here (no torch to list tasks) match what they copy."""
    import dataclasses

    from layerscope import metrics, offline_data

    assert tasks.SPLITS == offline_data.SPLITS
    for m in user_tasks.METRIC_NAMES:
        t = get_task("movies-score" if m in user_tasks.REGRESSION_METRICS else "tiny-sentiment")
        out = metrics.compute(dataclasses.replace(t, metrics=(m,)), [0.0, 1, 1, 0], [0, 1, 0, 0])
        assert m in out


# --- task cards and the command line ------------------------------------------------------------

def test_cards_in_the_user_folder_are_listed_and_resolved(tmp_path, monkeypatch, capsys):
    from layerscope import cli

    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path / "home"))
    cards = tmp_path / "home" / "tasks"
    cards.mkdir(parents=True)
    _write_csv(tmp_path / "reviews.csv", _reviews())
    (cards / "reviews.yaml").write_text(textwrap.dedent("""\
        description: my reviews
        path: ../../reviews.csv
        columns: {text: review, label: stars}
        splits: {seed: 2, fractions: [0.5, 0.25, 0.25]}
        metrics: [accuracy, f1]
    """))
    (cards / "typo.yaml").write_text("pth: reviews.csv\n")
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "reviews         card" in out and "my reviews" in out
    assert "typo            card     ERROR: task card" in out and "did you mean 'path'" in out
    spec = get_task("reviews")
    assert spec.name == "reviews" and spec.description == "my reviews"
    assert (spec.split_seed, spec.split_fractions) == (2, (0.5, 0.25, 0.25))
    assert spec.metrics == ("accuracy", "f1") and len(load_split(spec, "test")) == 6
    assert resolve_task(str(cards / "reviews.yaml")) == spec  # by path: the same task
    assert "tiny-dep" in out  # the registry first


def test_listing_tasks_imports_no_torch(tmp_path):
    code = ("import sys; from layerscope import cli; assert cli.main(['tasks']) == 0; "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**__import__("os").environ, "LAYERSCOPE_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


# --- bad input ---------------------------------------------------------------------------------

def _fails(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError, match=match) as e:
        fn(*args, **kwargs)
    return str(e.value)


def test_missing_file_unknown_extension_and_empty_files(tmp_path):
    msg = _fails("no such file or folder", resolve_task, str(tmp_path / "nope.csv"))
    assert str(tmp_path / "nope.csv") in msg and "check the path" in msg
    with pytest.raises(ConfigError, match="unknown task 'nope'"):  # a bare word: the registry
        get_task("nope")
    (tmp_path / "data.xlsx").write_text("x")
    msg = _fails("unknown file extension '.xlsx'", resolve_task, str(tmp_path / "data.xlsx"))
    assert "data.xlsx" in msg and "format=" in msg
    (tmp_path / "empty.csv").write_text("")
    _fails(r"empty\.csv: the file is empty", TaskSpec.from_file, tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("text,label\n")
    _fails(r"header\.csv: the file is empty but for its header line \(text, label\)",
           TaskSpec.from_file, tmp_path / "header.csv")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    _fails(r"empty\.jsonl: the file is empty", TaskSpec.from_file, tmp_path / "empty.jsonl")


def test_missing_mapped_column_lists_the_columns(tmp_path):
    path = _write_csv(tmp_path / "r.csv", _reviews())
    msg = _fails(r"r\.csv: no column 'body' \(mapped to 'text'\); the data's columns: review, "
                 r"stars", TaskSpec.from_file, path, columns={"text": "body", "label": "stars"})
    assert "columns={'text': <column>}" in msg
    _fails(r"r\.csv: cannot tell the kind of task from its columns \(review, stars; ours found: "
           r"none\) — give kind=", TaskSpec.from_file, path)
    _fails(r"r\.csv: no column for 'text' \(a classification task has text, label\); the "
           r"data's columns: review, stars", TaskSpec.from_file, path, kind="classification",
           columns={"label": "stars"})


def test_label_problems_name_the_row(tmp_path):
    rows = [{"text": r["review"], "label": "pos"} for r in _reviews()]
    path = _write_csv(tmp_path / "one.csv", rows)
    _fails(r"one\.csv: label column 'label' has one value, 'pos', in all 20 rows — a "
           r"classifier needs two classes", TaskSpec.from_file, path)
    rows = [{"text": r["review"], "label": r["stars"]} for r in _reviews()]
    rows[6]["label"] = "meh"
    path = _write_csv(tmp_path / "declared.csv", rows)
    _fails(r"declared\.csv:8: label 'meh' is not one of the declared label_names \(neg, pos\) "
           r"— add it to label_names", TaskSpec.from_file, path, label_names=["neg", "pos"])
    _fails(r"declared\.csv:8: no label", TaskSpec.from_file,
           _write_csv(tmp_path / "declared.csv", rows[:6] + [{**rows[6], "label": ""}]
                      + rows[7:]))


def test_choice_tag_and_pair_problems_name_the_row(tmp_path):
    mc = [{"context": f"q{i}", "choices": ["yes", "no"], "label": i % 2} for i in range(10)]
    mc[3]["choices"] = ["only one"]
    _fails(r"mc\.jsonl:4: 1 choice\(s\) — a multiple-choice row needs at least 2",
           TaskSpec.from_file, _write_jsonl(tmp_path / "mc.jsonl", mc))
    tags = [{"tokens": ["a", "b"], "tags": ["X", "Y"]} for _ in range(10)]
    tags[5]["tags"] = ["X"]
    _fails(r"tg\.jsonl:6: 2 tokens but 1 tags — one tag per word", TaskSpec.from_file,
           _write_jsonl(tmp_path / "tg.jsonl", tags))
    pairs = [{"tokens": ["a", "b"], "pairs": [[1, 0]], "pair_labels": ["det"]} for _ in range(10)]
    pairs[0]["pair_labels"] = ["amod"]
    pairs[2]["pairs"] = [[1, 2]]
    _fails(r"pr\.jsonl:3: pair \[1, 2\] has word index 2, but the sentence has 2 words "
           r"\(0-based indices 0..1\)", TaskSpec.from_file,
           _write_jsonl(tmp_path / "pr.jsonl", pairs))


def test_a_conllu_line_that_does_not_parse_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.conllu"
    bad.write_text(CONLLU.replace("4\tlike\tlike", "4\tlike like", 1))
    msg = _fails(r"bad\.conllu:7: ", resolve_task, str(bad))
    assert "tab" in msg


def test_bad_cards_and_split_mappings(tmp_path):
    card = tmp_path / "c.yaml"
    card.write_text("path: r.csv\ncolumn: {text: review}\nlabel_name: [a, b]\n")
    _fails(r"task card .*c\.yaml: unknown key 'label_name' \(did you mean 'label_names'\?\); "
           r"valid keys: name, description, path", resolve_task, str(card))
    card.write_text("path: r.csv\ncolumns: {text: [unclosed\n")
    _fails(r"task card .*c\.yaml:3: not valid YAML", resolve_task, str(card))
    path = _write_csv(tmp_path / "s.csv", [{"text": r["review"], "label": r["stars"],
                                            "split": "train" if i > 3 else "validation"}
                                           for i, r in enumerate(_reviews())])
    _fails(r"s\.csv: splits= maps 'validation' to 'dev', which the data does not have; its "
           r"splits: validation, train", TaskSpec.from_file, path,
           splits={"train": "train", "validation": "dev"})
    _fails(r"split 'test' is empty: made with fractions 0.9/0.06/0.04 from 20 rows",
           TaskSpec.from_file, _write_csv(tmp_path / "small.csv",
                                          [{"text": r["review"], "label": r["stars"]}
                                           for r in _reviews()]),
           split_fractions=(0.9, 0.06, 0.04))


CONLLU = """\
# sent_id = u-1
# text = I don't like eggs.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tlike\tlike\tVERB\tVB\t_\t0\troot\t_\t_
5\teggs\tegg\tNOUN\tNNS\t_\t4\tobj\t_\t_
6\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = u-2
# text = Mary ate apples and John pears.
1\tMary\tMary\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tate\teat\tVERB\tVBD\t_\t0\troot\t_\t_
3\tapples\tapple\tNOUN\tNNS\t_\t2\tobj\t_\t_
4\tand\tand\tCCONJ\tCC\t_\t5\tcc\t_\t_
5\tJohn\tJohn\tPROPN\tNNP\t_\t2\tconj\t_\t_
5.1\tate\teat\tVERB\tVBD\t_\t_\t_\t2:conj\t_
6\tpears\tpear\tNOUN\tNNS\t_\t5\torphan\t_\t_
7\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

"""
