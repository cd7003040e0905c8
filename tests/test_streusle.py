"""The STREUSLE reader on a hand-written .conllulex fixture in the real 19-column layout: the
single-token preposition targets of PS-role / PS-fxn, and malformed input with its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layerscope import streusle
from layerscope.errors import ConfigError

MINI = Path(__file__).parent / "fixtures" / "streusle" / "mini.conllulex"


def test_targets_are_the_single_token_prepositions():
    sents = streusle.read(MINI)
    assert [s["sent_id"] for s in sents] == [f"reviews-000001-000{i}" for i in range(1, 6)]
    assert [s["line"] for s in sents] == [6, 19, 32, 45, 58]
    # "to" construes a Recipient as a Goal (role != function); "about" has no construal (the
    # label twice); the verb and noun supersenses are no targets
    assert sents[0]["targets"] == [(2, "p.Recipient", "p.Goal"), (4, "p.Topic", "p.Topic")]
    # "in front of" is a multiword preposition (SMWE 1:1 1:2 1:3): left out
    assert sents[1]["tokens"][2:5] == ["in", "front", "of"] and sents[1]["targets"] == []
    # the possessive "my" (PRON.POSS) is a single-word adposition target, as in Liu et al.
    assert sents[2]["targets"] == [(0, "p.Possessor", "p.Possessor"), (2, "p.Locus", "p.Locus")]
    # "with" continues a weak MWE (have experience ~ with) but is its own strong expression
    assert sents[3]["targets"] == [(5, "p.Topic", "p.Topic")]
    # "??" (an unclear usage, SS2 "_") is no target; "my" construes a SocialRel as a Possessor
    assert sents[4]["targets"] == [(3, "p.SocialRel", "p.Possessor")]


def test_prepositions_only():
    sents = streusle.read(MINI, lexcats=("P",))
    assert sents[2]["targets"] == [(2, "p.Locus", "p.Locus")]
    assert sents[4]["targets"] == []
    with pytest.raises(ConfigError, match=r"lexcats \['PP'\] have no single-token"):
        streusle.read(MINI, lexcats=("P", "PP"))


def test_role_and_function_rows():
    sents = streusle.read(MINI)
    role = streusle.tagging_rows(sents, "role")
    fxn = streusle.tagging_rows(sents, label="fxn")
    assert len(role) == len(fxn) == 4  # the sentence without a target is left out
    assert role[0]["tokens"] == ["They", "talked", "to", "me", "about", "the", "price", "."]
    assert role[0]["tags"] == [None, None, "p.Recipient", None, "p.Topic", None, None, None]
    assert fxn[0]["tags"] == [None, None, "p.Goal", None, "p.Topic", None, None, None]
    assert role[1]["tags"][:3] == ["p.Possessor", None, "p.Locus"]
    assert [r["tags"] for r in role[1:3]] == [r["tags"] for r in fxn[1:3]]
    assert (role[3]["tags"][3], fxn[3]["tags"][3]) == ("p.SocialRel", "p.Possessor")
    with pytest.raises(ConfigError, match="unknown STREUSLE label 'function'"):
        streusle.tagging_rows(sents, "function")


def _lines() -> list[str]:
    return MINI.read_text().splitlines()


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.conllulex"
    path.write_text("\n".join(lines) + "\n")
    return path


def _edit(line: str, column: str, value: str) -> str:
    fields = line.split("\t")
    fields[streusle.COLUMNS.index(column)] = value
    return "\t".join(fields)


def test_a_plain_conllu_line_is_refused_with_file_and_line(tmp_path):
    lines = _lines()
    lines[7] = "\t".join(lines[7].split("\t")[:10])  # line 8: "to" without its 9 lex columns
    path = _write(tmp_path, lines)
    with pytest.raises(streusle.StreusleError,
                       match=rf"^{path}:8: 10 tab-separated fields, a 19-column CoNLL-U word "
                             r"line has 19"):
        streusle.read(path)


@pytest.mark.parametrize("column, value, what", [
    ("SS2", "_", "SS 'p.Recipient' with SS2 '_'"),
    ("LEXCAT", "N", "is an adposition supersense but LEXCAT is 'N'"),
    ("SMWE", "one", "SMWE 'one' of word 3"),
    ("HEAD", "12", "HEAD 12 of word 3 is out of range"),
    ("SS", "", "field 14 (SS) is empty"),
])
def test_malformed_lexical_columns(tmp_path, column, value, what):
    lines = _lines()
    lines[7] = _edit(lines[7], column, value)
    path = _write(tmp_path, lines)
    with pytest.raises(streusle.StreusleError) as err:
        streusle.read(path)
    assert str(err.value).startswith(f"{path}:8: ") and what in str(err.value), str(err.value)


def test_empty_file_and_no_targets(tmp_path):
    empty = tmp_path / "empty.conllulex"
    empty.write_text("# newdoc id = x\n")
    with pytest.raises(streusle.StreusleError, match="no sentences"):
        streusle.read(empty)
    no_p = streusle.read(MINI)[1:2]
    with pytest.raises(streusle.StreusleError, match="none of the 1 sentences"):
        streusle.tagging_rows(no_p)


def _as_json(sentences_lines: list[list[list[str]]]) -> list[dict]:
    """The fixture's sentences in the layout of STREUSLE's conllulex2json.py (toks, swes)."""
    out = []
    for k, words in enumerate(sentences_lines):
        toks = [{"#": int(f[0]), "word": f[1], "lemma": f[2], "upos": f[3], "xpos": f[4]}
                for f in words]
        swes = {f[0]: {"lexlemma": f[12], "lexcat": f[11],
                       "ss": None if f[13] == "_" else f[13],
                       "ss2": None if f[14] == "_" else f[14], "toknums": [int(f[0])]}
                for f in words if f[10] == "_"}
        out.append({"sent_id": f"reviews-000001-000{k + 1}", "toks": toks, "swes": swes,
                    "smwes": {}, "wmwes": {}})
    return out


def test_the_json_format_gives_the_same_targets(tmp_path):
    blocks, current = [], []
    for line in _lines() + [""]:
        if not line:
            if current:
                blocks.append(current)
            current = []
        elif not line.startswith("#"):
            current.append(line.split("\t"))
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(_as_json(blocks)))
    from_json = streusle.read(path)
    from_conllulex = streusle.read(MINI)
    assert [s["targets"] for s in from_json] == [s["targets"] for s in from_conllulex]
    assert [s["tokens"] for s in from_json] == [s["tokens"] for s in from_conllulex]
    assert from_json[0]["line"] is None
    broken = tmp_path / "broken.json"
    broken.write_text('[{"sent_id": "a",\n "toks": [}]')
    with pytest.raises(streusle.StreusleError, match=rf"^{broken}:2: not JSON"):
        streusle.read(broken)
    nothing = tmp_path / "nothing.json"
    nothing.write_text('[{"sent_id": "a"}]')
    with pytest.raises(streusle.StreusleError, match=r"sentence 1 \(a\) lacks 'toks'"):
        streusle.read(nothing)
