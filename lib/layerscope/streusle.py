"""Read STREUSLE 4.x (Schneider et al. 2018) into the preposition-supersense tasks PS-role and
PS-fxn (Liu et al. 2019; Zhou & Srikumar 2022).

STREUSLE's data is not on a registry: the user points at a copy (``git clone
https://github.com/nert-nlp/streusle``; ``streusle.conllulex``, or the split files
``train/streusle.ud_train.conllulex`` ... and their ``.json`` twins).

**.conllulex** (STREUSLE's CONLLULEX.md): the 10 CoNLL-U columns, then 9 lexical ones:
SMWE, LEXCAT, LEXLEMMA, SS, SS2, WMWE, WCAT, WLEMMA, LEXTAG (the order of the data and of
STREUSLE's own reader; the prose of CONLLULEX.md lists WLEMMA before WCAT). SMWE is ``_``
for a word that is not part of a strong multiword expression, else ``group:position``.
Supersenses sit on the first word of a strong expression; an adpositional expression always
carries two: the *role* in SS and the *function* in SS2 (the construal "role ~> function",
e.g. ``p.Recipient`` ~> ``p.Goal`` for "talked *to* me"), and when there is no construal
SS2 repeats SS (``p.Locus``, ``p.Locus``), never ``_``.

**Targets** are what Liu et al. (2019) classify, and Zhou & Srikumar (2022) after them
(their reader keeps every single-word expression whose label starts with ``p.``): words
with SMWE ``_`` whose SS is an adposition supersense (``p.*``). By the format those are the
lexical categories that take adposition supersenses, ``P`` (single-word adposition),
``INF.P`` (infinitival *to* with a supersense), ``POSS`` (possessive *'s*) and
``PRON.POSS`` (*my*, *whose*); ``PP`` never qualifies: it is only ever a strong MWE.
``read(..., lexcats=("P",))`` keeps prepositions proper and leaves possessives out.
Multiword prepositions (*in front of*, SMWE ``1:1 1:2 1:3``) are left out, as in the papers;
a single-word preposition inside a *weak* MWE (*have experience with*) is a target. Noun
and verb supersenses (``n.*``, ``v.*``), ``??`` (unintelligible) and `` `$ `` (idiomatic
possessive slot) are not targets. Empty nodes (``8.1``) are skipped as in CoNLL-U.

**.json** (STREUSLE's conllulex2json.py output: a list of sentences with ``toks`` and
``swes``, the single-word expressions) is read too, with the same targets.

Standard library only (no torch or datasets at import), like every reader.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import conllu
from .errors import ConfigError, check_choice

COLUMNS = conllu.FIELDS + ("SMWE", "LEXCAT", "LEXLEMMA", "SS", "SS2", "WMWE", "WCAT", "WLEMMA",
                           "LEXTAG")
# the lexical categories whose supersenses are adposition supersenses (CONLLULEX.md, SS)
ADPOSITION_LEXCATS = ("P", "INF.P", "POSS", "PRON.POSS", "PP")
# single-word adpositional expressions: Liu et al. 2019's targets (PP is multiword only)
TARGET_LEXCATS = ("P", "INF.P", "POSS", "PRON.POSS")
LABELS = {"role": 1, "fxn": 2}  # position in a target (word_index0, role, fxn)


class StreusleError(ConfigError):
    """A STREUSLE file that does not parse: ``"<file>:<line>: <what> — <fix>"``."""


def _target(name: str, where: str, lexcat: str, ss: str, ss2: str | None,
            lexcats: tuple[str, ...]) -> bool:
    """Whether a single-word expression is a target; malformed adposition labels raise."""
    if not ss.startswith("p."):
        return False
    if lexcat not in ADPOSITION_LEXCATS:
        raise StreusleError(f"{name}:{where}: SS {ss!r} is an adposition supersense but "
                            f"LEXCAT is {lexcat!r} — p.* labels go with LEXCAT "
                            f"{', '.join(ADPOSITION_LEXCATS)}; fix the LEXCAT or the SS")
    if not (ss2 or "").startswith("p."):
        raise StreusleError(f"{name}:{where}: SS {ss!r} with SS2 {ss2 or '_'!r} — an "
                            f"adposition has a role (SS) and a function (SS2), the same label "
                            f"twice when there is no construal: write SS2 {ss!r} or the "
                            f"function")
    return lexcat in lexcats


def _read_conllulex(path: Path, name: str, lexcats: tuple[str, ...]) -> list[dict]:
    sentences = []
    for block in conllu.sentence_blocks(path, name=name, columns=COLUMNS, error=StreusleError):
        sent, words = conllu.parse_block(block, name=name, error=StreusleError)
        targets = []
        for i, (n, f) in enumerate(words):
            smwe, lexcat, ss, ss2 = f[10], f[11], f[13], f[14]
            if smwe != "_":
                if ":" not in smwe or not all(p.isdigit() for p in smwe.split(":")):
                    raise StreusleError(f"{name}:{n}: SMWE {smwe!r} of word {f[0]} — write "
                                        f"group:position (e.g. 1:2) for a word of a strong "
                                        f"MWE, _ for any other word")
                continue  # part of a strong MWE: not a single-token preposition
            if _target(name, str(n), lexcat, ss, None if ss2 == "_" else ss2, lexcats):
                targets.append((i, ss, ss2))
        sentences.append({"tokens": sent["tokens"], "targets": targets,
                          "sent_id": sent["sent_id"], "line": sent["line"]})
    return sentences


def _read_json(path: Path, name: str, lexcats: tuple[str, ...]) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise StreusleError(f"{name}: cannot read the file ({e.strerror or e}) — check the "
                            f"path") from e
    except json.JSONDecodeError as e:
        raise StreusleError(f"{name}:{e.lineno}: not JSON ({e.msg}) — give STREUSLE's .json "
                            f"(conllulex2json.py output) or the .conllulex file") from e
    if not isinstance(data, list) or not data:
        raise StreusleError(f"{name}: expected a non-empty list of sentences (STREUSLE's JSON "
                            f"format) — give streusle.json or the .conllulex file")
    sentences = []
    for k, sent in enumerate(data):
        sid = sent.get("sent_id") if isinstance(sent, dict) else None
        where = f"sentence {k + 1}" + (f" ({sid})" if sid else "")
        try:
            toks = [t for t in sent["toks"] if isinstance(t["#"], int)]  # ellipsis: skipped
            tokens = [t["word"] for t in toks]
            swes = list(sent["swes"].values())
        except (KeyError, TypeError, AttributeError) as e:
            raise StreusleError(f"{name}: {where} lacks {e} — each sentence needs 'toks' "
                                f"(with '#' and 'word') and 'swes', as conllulex2json.py "
                                f"writes them") from e
        targets = []
        for swe in swes:
            nums = swe.get("toknums") if isinstance(swe, dict) else None
            if not (isinstance(nums, list) and len(nums) == 1 and isinstance(nums[0], int)):
                raise StreusleError(f"{name}: {where}: a single-word expression with toknums "
                                    f"{nums!r} — 'swes' entries have one token number; "
                                    f"regenerate the file with conllulex2json.py")
            num = nums[0]
            if not 1 <= num <= len(tokens):
                raise StreusleError(f"{name}: {where}: a single-word expression on token "
                                    f"{num}, the sentence has {len(tokens)} — the file is "
                                    f"damaged; regenerate it with conllulex2json.py")
            ss = swe.get("ss") or "_"
            if _target(name, where, swe.get("lexcat") or "_", ss, swe.get("ss2"), lexcats):
                targets.append((num - 1, ss, swe["ss2"]))
        sentences.append({"tokens": tokens, "targets": sorted(targets), "sent_id": sid,
                          "line": None})
    return sentences


def read(path: Path | str, *, name: str | None = None,
         lexcats: tuple[str, ...] = TARGET_LEXCATS) -> list[dict]:
    """Sentences ``{"tokens", "targets": [(word_index0, role, fxn)], "sent_id", "line"}`` of
    a STREUSLE ``.conllulex`` (or ``.json``) file, in file order (``line``: the first word's
    line; None for JSON). Targets as in the module docstring; ``lexcats`` narrows them (e.g.
    ``("P",)``: prepositions without the possessives)."""
    path, shown = Path(path), name or str(path)
    bad = sorted(set(lexcats) - set(TARGET_LEXCATS))
    if bad:
        raise ConfigError(f"lexcats {bad} have no single-token adposition supersenses; choose "
                          f"from {TARGET_LEXCATS}")
    if path.suffix == ".json":
        return _read_json(path, shown, tuple(lexcats))
    return _read_conllulex(path, shown, tuple(lexcats))


def tagging_rows(sentences: list[dict], label: str = "role") -> list[dict]:
    """Rows ``{"tokens", "tags": [str | None]}`` of PS-role (``label="role"``, SS) or PS-fxn
    (``"fxn"``, SS2): the supersense on each target word, None on every other word (no
    label: the task loader makes it -1, skipped by pooling and fine-tuning). Sentences
    without a target are left out, as in Liu et al.'s reader."""
    check_choice(label, LABELS, "STREUSLE label")
    at = LABELS[label]
    rows = []
    for s in sentences:
        if not s["targets"]:
            continue
        tags: list[str | None] = [None] * len(s["tokens"])
        for target in s["targets"]:
            tags[target[0]] = target[at]
        rows.append({"tokens": list(s["tokens"]), "tags": tags})
    if not rows:
        raise StreusleError(f"none of the {len(sentences)} sentences has a single-token "
                            f"preposition with a p.* supersense — is this STREUSLE 4.x data?")
    return rows
