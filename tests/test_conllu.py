"""The CoNLL-U reader on a hand-written fixture in the real format (a multi-word token, an
empty node, comments), its task rows, and each malformed input with its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerscope import conllu
from layerscope.errors import ConfigError

MINI = Path(__file__).parent / "fixtures" / "conllu" / "mini.conllu"


def test_the_fixture_parses_exactly():
    sents = conllu.read(MINI)
    assert [s["sent_id"] for s in sents] == ["mini-1", "mini-2", "mini-3"]
    first = sents[0]
    # "don't" (range 2-3) is a token, not a word: its words do + n't are
    assert first["tokens"] == ["I", "do", "n't", "like", "green", "eggs", "."]
    assert first["heads"] == [4, 4, 4, 0, 6, 4, 4]
    assert first["deprels"] == ["nsubj", "aux", "advmod", "root", "amod", "obj", "punct"]
    assert first["upos"] == ["PRON", "AUX", "PART", "VERB", "ADJ", "NOUN", "PUNCT"]
    assert first["xpos"][1:3] == ["VBP", "RB"]
    assert first["lemmas"][1:3] == ["do", "not"]
    assert first["feats"][0] == "Case=Nom|Number=Sing|Person=1|PronType=Prs"
    assert first["feats"][-1] == "_"
    assert first["line"] == 4  # the first word line (after 3 comment lines)
    assert first["multiword_tokens"] == [[2, 3, "don't"]]
    assert sents[2]["tokens"] == ["You", "can", "not", "sit", "there", "."]
    assert sents[2]["multiword_tokens"] == [[2, 3, "cannot"]]
    assert sents[2]["line"] == 26


def test_empty_nodes_are_skipped():
    gapping = conllu.read(MINI)[1]
    # the elided "ate" (5.1) belongs to the enhanced graph only
    assert gapping["tokens"] == ["Mary", "ate", "apples", "and", "John", "pears", "."]
    assert gapping["heads"] == [2, 0, 2, 5, 2, 5, 2]
    assert gapping["deprels"][5] == "orphan"
    assert gapping["multiword_tokens"] == []


def test_pair_rows_are_0_based_and_leave_out_the_root():
    rows = conllu.pair_rows(conllu.read(MINI))
    assert rows[0]["tokens"][3] == "like"
    # word i (0-based) with head h (1-based) gives [h - 1, i]; "like" (the root) gives none
    assert rows[0]["pairs"] == [[3, 0], [3, 1], [3, 2], [5, 4], [3, 5], [3, 6]]
    assert rows[0]["pair_labels"] == ["nsubj", "aux", "advmod", "amod", "obj", "punct"]
    assert "root" not in {lab for r in rows for lab in r["pair_labels"]}
    assert [len(r["pairs"]) for r in rows] == [len(r["tokens"]) - 1 for r in rows]


def test_tagging_rows_from_each_column():
    sents = conllu.read(MINI)
    assert conllu.tagging_rows(sents)[0]["tags"] == sents[0]["upos"]
    assert conllu.tagging_rows(sents, "xpos")[1]["tags"][:2] == ["NNP", "VBD"]
    assert conllu.tagging_rows(sents, "deprel")[2]["tags"][0] == "nsubj"
    assert conllu.tagging_rows(sents, "feats")[0]["tags"][3] == "VerbForm=Inf"
    with pytest.raises(ConfigError, match="unknown CoNLL-U tagging column 'lemma'"):
        conllu.tagging_rows(sents, "lemma")


def _write(tmp_path: Path, text: str, name: str = "bad.conllu") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line(i, form, head, rel, upos="NOUN"):
    return "\t".join([str(i), form, form.lower(), upos, "NN", "_", str(head), rel, "_", "_"])


GOOD = "\n".join(["# sent_id = a", _line(1, "Dogs", 2, "nsubj"), _line(2, "bark", 0, "root"),
                  ""])


def test_a_last_sentence_without_its_blank_line_and_windows_endings(tmp_path):
    path = _write(tmp_path, GOOD.rstrip("\n").replace("\n", "\r\n"))
    (sent,) = conllu.read(path)
    assert sent["tokens"] == ["Dogs", "bark"] and sent["heads"] == [2, 0]


@pytest.mark.parametrize("text, line, what", [
    # a word line with 9 fields (DEPS missing)
    ("# c\n1\tDogs\tdog\tNOUN\tNN\t_\t2\tnsubj\t_\n", 2, "9 tab-separated fields"),
    # spaces instead of tabs
    ("1 Dogs dog NOUN NN _ 0 root _ _\n", 1, "1 tab-separated fields (spaces where tabs"),
    ("\n".join([_line(1, "Dogs", 2, "nsubj"), _line("x", "bark", 0, "root")]), 2,
     "ID 'x' is not a word ID"),
    ("\n".join([_line(1, "Dogs", 2, "nsubj"), _line(3, "bark", 0, "root")]), 2,
     "word ID '3', expected 2"),
    ("\n".join([_line(1, "Dogs", 5, "nsubj"), _line(2, "bark", 0, "root")]), 1,
     "HEAD 5 of word 1 is out of range: the sentence has 2 words"),
    ("\n".join([_line(1, "Dogs", "two", "nsubj"), _line(2, "bark", 0, "root")]), 1,
     "HEAD 'two' of word 1 is not an integer"),
    ("\n".join([_line(1, "Dogs", 1, "nsubj"), _line(2, "bark", 0, "root")]), 1,
     "word 1 is its own HEAD"),
    ("\n".join([_line(1, "Dogs", 2, "_"), _line(2, "bark", 0, "root")]), 1,
     "has HEAD 2 but DEPREL '_'"),
    ("\n".join([_line(1, "Dogs", 2, "nsubj"), "\t".join(["2", "bark", "", "VERB", "VB", "_",
                                                         "0", "root", "_", "_"])]), 2,
     "field 3 (LEMMA) is empty"),
    ("\n".join([_line(1, "Dogs", 2, "nsubj"), "3-4\tcannot" + "\t_" * 8,
                _line(2, "bark", 0, "root")]), 2, "range '3-4' must start at the next word (2)"),
    ("\n".join([_line(1, "Dogs", 0, "root"), "2-3\tcan't" + "\t_" * 8,
                _line(2, "ca", 1, "aux")]), 2, "range 2-3 ends after the sentence's last word"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, text, line, what):
    path = _write(tmp_path, text)
    with pytest.raises(conllu.ConlluError) as err:
        conllu.read(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert what in message, message
    assert " — " in message  # and the fix follows


def test_the_file_name_shown_is_the_one_given(tmp_path):
    path = _write(tmp_path, "1\tDogs\tdog\tNOUN\n")
    with pytest.raises(conllu.ConlluError, match=r"^treebank\.conllu:1: 4 tab-separated"):
        conllu.read(path, name="treebank.conllu")


@pytest.mark.parametrize("text", ["", "\n\n", "# sent_id = only-a-comment\n\n"])
def test_a_file_with_no_sentences_is_an_error(tmp_path, text):
    path = _write(tmp_path, text, "empty.conllu")
    with pytest.raises(conllu.ConlluError, match=rf"^{path}: no sentences"):
        conllu.read(path)


def test_not_utf8_and_missing_files(tmp_path):
    path = tmp_path / "latin1.conllu"
    path.write_bytes((GOOD + "\n" + _line(1, "Caf\u00e9", 0, "root") + "\n").encode("latin-1"))
    with pytest.raises(conllu.ConlluError, match=rf"^{path}:5: byte b'\\xe9' is not UTF-8"):
        conllu.read(path)
    with pytest.raises(conllu.ConlluError, match="cannot read the file"):
        conllu.read(tmp_path / "nope.conllu")


def test_pair_rows_need_heads(tmp_path):
    no_syntax = "\n".join(["1\tDogs\tdog\tNOUN\tNNS\t_\t_\t_\t_\t_",
                           "2\tbark\tbark\tVERB\tVBP\t_\t_\t_\t_\t_", ""])
    sents = conllu.read(_write(tmp_path, no_syntax))
    assert sents[0]["heads"] == [None, None]
    with pytest.raises(conllu.ConlluError, match="needs a treebank with HEAD and DEPREL"):
        conllu.pair_rows(sents)
    with pytest.raises(conllu.ConlluError, match="column DEPREL is '_'"):
        conllu.tagging_rows(sents, "deprel")
    assert conllu.tagging_rows(sents, "xpos")[0]["tags"] == ["NNS", "VBP"]
