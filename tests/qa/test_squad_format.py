"""The SQuAD-format reader on the hand-written fixture and on broken files."""

import json
from pathlib import Path

import pytest

from layerscope.errors import ConfigError
from layerscope.qa.squad_format import read_squad, rows_from_squad_json

MINI = Path(__file__).parents[1] / "fixtures" / "squad" / "mini.json"


def test_fixture_rows_have_the_hub_schema():
    rows = read_squad(MINI)
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(1, 10)]
    assert {tuple(sorted(r)) for r in rows} == {
        ("answers", "context", "id", "question", "title")}
    assert len({r["context"] for r in rows}) == 3
    q1 = rows[0]
    assert q1["title"] == "Pride and Prejudice"
    assert q1["answers"] == {"text": ["Jane Austen", "Austen"], "answer_start": [34, 39]}
    assert max(len(r["answers"]["text"]) for r in rows) == 3  # q4: several gold answers
    for r in rows:
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
            assert r["context"][start:start + len(text)] == text


def _file(tmp_path, raw) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return p


def _one(qas, context="Paris is the capital of France."):
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


def test_misplaced_answer_names_the_question_and_the_fix(tmp_path):
    raw = _one([{"id": "x7", "question": "?", "answers": [{"text": "France", "answer_start": 20}]}])
    with pytest.raises(ConfigError, match=r"bad.json: question 'x7' answer 0 'France' is not at"
                       r" answer_start 20 .*' of Fr'.*set answer_start to 24"):
        read_squad(_file(tmp_path, raw))
    raw = _one([{"id": "x8", "question": "?", "answers": [{"text": "Rome", "answer_start": 0}]}])
    with pytest.raises(ConfigError, match="'x8'.*does not occur in the context"):
        read_squad(_file(tmp_path, raw))


@pytest.mark.parametrize("raw, match", [
    (_one([{"id": "a", "question": "?", "answers": [{"text": "Paris", "answer_start": 0}]},
           {"id": "a", "question": "?", "answers": [{"text": "France", "answer_start": 24}]}]),
     "question id 'a' appears twice"),
    ({"data": []}, "no questions"),
    (_one([]), "no questions"),
    ({"version": "1.1"}, "the top level has no 'data' field"),
    (_one([{"id": "a", "question": "?", "answers": []}]), "question 'a' has no answer"),
    (_one([{"id": "a", "question": "?", "answers": [], "is_impossible": True}]), "SQuAD v2"),
    (_one([{"id": "a", "question": "?", "answers": [{"text": "Paris"}]}]),
     "question 'a' answer 0 has no 'answer_start'"),
    (_one([{"id": "a", "question": "?", "answers": [{"text": "Paris", "answer_start": "0"}]}]),
     "'answer_start' is str, expected int"),
    (_one([{"id": "a", "question": "?", "answers": [{"text": " ", "answer_start": 5}]}]),
     "answer 0 is empty"),
    ("{not json", "not valid UTF-8 JSON"),
])
def test_broken_files_are_refused(tmp_path, raw, match):
    with pytest.raises(ConfigError, match=match):
        read_squad(_file(tmp_path, raw))


def test_missing_file_and_integer_ids(tmp_path):
    with pytest.raises(ConfigError, match="no SQuAD file at"):
        read_squad(tmp_path / "nope.json")
    rows = rows_from_squad_json(
        _one([{"id": 5, "question": "?", "answers": [{"text": "Paris", "answer_start": 0}]}]))
    assert rows[0]["id"] == "5"
