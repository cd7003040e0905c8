"""The user's own data for the two structured kinds (issue 18): SQuAD-format JSON by path or
card (extractive_qa) and CoNLL-U with kind=dependency_parsing, each written here in its real
format, fine-tuned on by a tiny model; identity by content; bad input named."""

from __future__ import annotations

import json

import pytest

from layerscope import finetune, user_tasks
from layerscope.errors import ConfigError
from layerscope.finetune import FinetuneConfig
from layerscope.tasks import TaskSpec, data_identity, get_task, load_split

pytestmark = pytest.mark.usefixtures("private_home")


def _squad_json(rows, title="tiny") -> dict:
    """SQuAD v1.1 JSON of flat rows: questions with the same context share a paragraph."""
    paragraphs: dict[str, list] = {}
    for r in rows:
        paragraphs.setdefault(r["context"], []).append(
            {"id": r["id"], "question": r["question"],
             "answers": [{"text": t, "answer_start": s} for t, s in
                         zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True)]})
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [
        {"context": c, "qas": q} for c, q in paragraphs.items()]}]}


def _write_squad(path, split: str, n: int, *, extra_questions: bool = False):
    rows = [dict(r) for r in load_split(get_task("tiny-squad"), split).select(range(n))]
    if extra_questions:  # a second question on some contexts: paragraphs with several
        for r in rows[: n // 2]:
            rows.append({**r, "id": r["id"] + "b"})
    path.write_text(json.dumps(_squad_json(rows)))
    return rows


def _conllu(sentences, label_names) -> str:
    """CoNLL-U text of tiny-parse rows (10 fields, comments, one multi-word token line)."""
    out = []
    for k, (tokens, heads, rels) in enumerate(sentences):
        out += [f"# sent_id = s{k}", f"# text = {' '.join(tokens)}"]
        if k == 0:
            out.append(f"1-2\t{tokens[0]}{tokens[1]}\t_\t_\t_\t_\t_\t_\t_\t_")
        for i, (t, h, r) in enumerate(zip(tokens, heads, rels, strict=True)):
            out.append(f"{i + 1}\t{t}\t{t}\tX\tX\t_\t{h}\t{label_names[r]}\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


def _write_conllu(path, split: str, n: int):
    spec = get_task("tiny-parse")
    ds = load_split(spec, split).select(range(n))
    sents = list(zip(ds["tokens"], ds["heads"], ds["deprels"], strict=True))
    path.write_text(_conllu(sents, spec.label_names))
    return sents


# ------------------------------------------------------------------------------ SQuAD JSON
def test_squad_json_by_path_splits_by_context_and_identity(tmp_path):
    """A .json whose top level is {"data": [...]} is SQuAD: one extractive_qa row per
    question, F1/EM, splits made by context (seeded; a context's questions in one split); the
    name resolves again; identity follows the content, not the file name."""
    path = tmp_path / "mine.json"
    _write_squad(path, "train", 40, extra_questions=True)
    spec = TaskSpec.from_file(path)
    assert spec.kind == "extractive_qa" and spec.format == "squad"
    assert spec.metrics == ("f1", "exact_match") and spec.label_names == ()
    splits = {s: load_split(spec, s) for s in ("train", "validation", "test")}
    assert sum(len(d) for d in splits.values()) == 60
    contexts = [set(d["context"]) for d in splits.values()]
    assert not (contexts[0] & contexts[1] or contexts[0] & contexts[2] or contexts[1] & contexts[2])
    assert [len(c) for c in contexts] == [32, 4, 4]  # 40 contexts cut 0.8/0.1/0.1
    assert get_task(spec.name) == spec
    assert TaskSpec.from_file(path, split_seed=1).name != spec.name
    row = splits["train"][0]
    assert set(row) == {"id", "question", "context", "answers"}
    assert row["context"][row["answers"]["answer_start"][0]:].startswith(
        row["answers"]["text"][0])
    renamed = tmp_path / "other.json"
    renamed.write_bytes(path.read_bytes())
    assert data_identity(TaskSpec.from_file(renamed)) == data_identity(spec)
    raw = json.loads(path.read_text())
    raw["data"][0]["paragraphs"][0]["qas"][0]["id"] = "changed"
    renamed.write_text(json.dumps(raw))
    assert data_identity(TaskSpec.from_file(renamed)) != data_identity(spec)


def test_squad_card_with_split_files_fine_tunes(tmp_path):
    """A card naming train-v1.1.json and dev-v1.1.json: the splits are those files; a tiny BERT
    fine-tunes on it; its predictions reproduce the recorded EM/F1."""
    _write_squad(tmp_path / "train-v1.1.json", "train", 120)
    dev = _write_squad(tmp_path / "dev-v1.1.json", "validation", 30)
    card = tmp_path / "qa.yaml"
    card.write_text("description: my SQuAD\nsplits: {train: train-v1.1.json, validation: "
                    "dev-v1.1.json}\n")
    spec = get_task(str(card))
    assert spec.kind == "extractive_qa" and spec.split_seed is None
    assert load_split(spec, "validation")["id"] == [r["id"] for r in dev]
    r = finetune.load_or_train(FinetuneConfig(task=str(card), model="tiny-bert",
                                              preset="smoke", max_steps=12), verbose=False)
    assert set(r.metrics) == {"f1", "exact_match"}
    assert 0 <= r.metrics["exact_match"] <= r.metrics["f1"] <= 100
    assert finetune.predictions(r).metrics == r.metrics


def test_flat_squad_rows_in_jsonl_are_extractive_qa(tmp_path):
    """Rows as the hub squad dataset has them (answers as an object) in a JSONL file: the kind
    is read from the columns, the answers checked against the contexts."""
    rows = [dict(r) for r in load_split(get_task("tiny-squad"), "train").select(range(30))]
    path = tmp_path / "flat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = TaskSpec.from_file(path)
    assert spec.kind == "extractive_qa"
    assert sorted(sum((list(load_split(spec, s)["id"]) for s in spec.splits), [])) == sorted(
        r["id"] for r in rows)
    rows[3]["answers"] = {"text": ["nowhere"], "answer_start": [0]}
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ConfigError, match="'nowhere' is not at answer_start 0.*does not occur"):
        TaskSpec.from_file(path)


def test_bad_squad_files_are_named(tmp_path):
    """A SQuAD answer_start off: the reader's message (file, question, where the text is)
    passes through; format="squad" on a file that is not SQuAD says what is missing."""
    path = tmp_path / "bad.json"
    rows = _write_squad(path, "train", 10)
    raw = json.loads(path.read_text())
    qa = raw["data"][0]["paragraphs"][2]["qas"][0]
    qa["answers"][0]["answer_start"] += 1
    path.write_text(json.dumps(raw))
    start = rows[2]["answers"]["answer_start"][0]
    with pytest.raises(ConfigError, match=rf"{path}: question '{qa['id']}' answer 0 .* is not "
                                          rf"at answer_start {start + 1}.*set answer_start to "
                                          rf"{start}"):
        TaskSpec.from_file(path)
    lines = tmp_path / "lines.json"
    lines.write_text("".join(f'{{"text": "t{i}", "label": {i % 2}}}\n' for i in range(8)))
    assert TaskSpec.from_file(lines, split_fractions=(0.5, 0.5)).kind == "classification"
    with pytest.raises(ConfigError, match="not valid UTF-8 JSON.*one JSON object"):
        TaskSpec.from_file(lines, format="squad")


# ------------------------------------------------------------------------------ CoNLL-U
def test_conllu_for_parsing_by_path_and_card_fine_tunes(tmp_path):
    """A CoNLL-U file with kind=dependency_parsing: every word's head and relation, the label
    names the data's relations sorted (root's included), LAS/UAS; by a card with split files a
    tiny BERT fine-tunes on it and its predictions reproduce the recorded UAS/LAS."""
    train = _write_conllu(tmp_path / "train.conllu", "train", 150)
    _write_conllu(tmp_path / "dev.conllu", "validation", 40)
    spec = TaskSpec.from_file(tmp_path / "train.conllu", kind="dependency_parsing")
    assert spec.kind == "dependency_parsing" and spec.metrics == ("las", "uas")
    names = get_task("tiny-parse").label_names
    assert spec.label_names == tuple(sorted(names)) and "root" in spec.label_names
    assert spec.column == "" and get_task(spec.name) == spec
    every = [r for s in spec.splits for r in zip(*(load_split(spec, s)[k] for k in (
        "tokens", "heads", "deprels")), strict=True)]
    ours = {tuple(t): (list(h), [spec.label_names[x] for x in d]) for t, h, d in every}
    assert all(ours[tuple(t)] == (list(h), [names[x] for x in d]) for t, h, d in train)
    card = tmp_path / "parse.yaml"
    card.write_text("kind: dependency_parsing\nsplits: {train: train.conllu, validation: "
                    "dev.conllu}\n")
    r = finetune.load_or_train(FinetuneConfig(task=str(card), model="tiny-bert",
                                              preset="smoke", max_steps=20), verbose=False)
    assert set(r.metrics) == {"las", "uas"} and 0 <= r.metrics["las"] <= r.metrics["uas"] <= 100
    p = finetune.predictions(r)
    assert p.metrics == r.metrics and p.n_sentences == 40


def test_bad_parsing_input_is_named(tmp_path):
    """A CoNLL-U word without a HEAD, column= on a parsing task, a head out of range in a
    JSONL, a metric of another kind: each refused with the value and the fix."""
    path = tmp_path / "nohead.conllu"
    _write_conllu(path, "train", 12)
    lines = path.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("2\t") and k > 10)
    f = lines[i].split("\t")
    f[6] = f[7] = "_"
    lines[i] = "\t".join(f)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"word 2 \(.*\) of the sentence starting on this line "
                                          r"has no HEAD"):
        TaskSpec.from_file(path, kind="dependency_parsing")
    assert TaskSpec.from_file(path, column="deprel").kind == "tagging"  # tags need no heads
    ok = tmp_path / "ok.conllu"
    _write_conllu(ok, "train", 20)
    with pytest.raises(ConfigError, match="column='deprel'.*reads HEAD and DEPREL"):
        TaskSpec.from_file(ok, kind="dependency_parsing", column="deprel")
    with pytest.raises(ConfigError, match="metric 'accuracy' does not fit a dependency_parsing"):
        TaskSpec.from_file(ok, kind="dependency_parsing", metrics=["accuracy"])
    with pytest.raises(ConfigError, match="metric 'las' does not fit a tagging task"):
        TaskSpec.from_file(ok, column="deprel", metrics=["las"])
    rows = [{"tokens": ["a", "film", "."], "heads": [2, 0, 2], "deprels": ["det", "root",
                                                                           "punct"]}] * 10
    jl = tmp_path / "trees.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = TaskSpec.from_file(jl)
    assert spec.kind == "dependency_parsing" and spec.label_names == ("det", "punct", "root")
    rows[4] = {**rows[4], "heads": [2, 0, 4]}
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ConfigError, match=r"trees.jsonl:5: head 4 of word 3 .* not 0 \(root\) "
                                          r"or another word's 1-based index 1..3"):
        TaskSpec.from_file(jl)


def test_the_kinds_metrics_and_formats_are_declared():
    """The structured kinds' metrics (literal copies: no torch to list tasks) are what
    metrics.py records for them and what the registry tasks have; SQuAD is a file format."""
    from layerscope import metrics, task_files
    from layerscope.qa.squad_eval import squad_scores

    qa = metrics.qa_record(squad_scores(["a"], [["a"]]))
    assert set(user_tasks.KIND_METRICS["extractive_qa"]) == set(qa)
    assert user_tasks.KIND_METRICS["extractive_qa"] == get_task("squad").metrics
    assert user_tasks.KIND_METRICS["dependency_parsing"] == get_task("ud-parse").metrics
    assert user_tasks.default_metrics("dependency_parsing", 5) == ("las", "uas")
    assert set(user_tasks.STRUCTURED_METRICS) == (
        set(sum(user_tasks.KIND_METRICS.values(), ())) - set(user_tasks.METRIC_NAMES))
    assert "squad" in task_files.FILE_FORMATS
