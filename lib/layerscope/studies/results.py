"""Reading saved results: the one reader of the ``<study>.json`` files ``StudyResult.save``
writes, for every study (the registry ``STUDIES``), and the pieces each ``from_dict`` uses.

``read(path)`` gives the study's result class's ``read`` (``SimilarityResult.read`` ...); a
study this layerscope has no class for (a notebook of one's own that saves ``{study, record,
findings}`` the way ``save`` does) is read as a ``RecordOnly``: its record and findings as
saved. ``read_file`` / ``read_folder`` never raise for a bad file: they return what was read
with its problems (the file's damage, or ``check()``), which the sweep gallery shows.

Arrays too large for readable JSON lists (logits, label centroids) are written by
``pack_array``: raw bytes (zlib, base64) with dtype and shape, so they come back bit for bit.

Light on purpose: nothing here imports torch or a study until a study's file is read.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LayerscopeError

# study name (``StudyResult.study``, the JSON's "study") -> "module:class" of its result
STUDIES = {
    "finetune": "layerscope.studies.training:TrainingResult",
    "similarity": "layerscope.studies.similarity.result:SimilarityResult",
    "truncation": "layerscope.studies.truncation.result:TruncationResult",
    "skipping": "layerscope.studies.skipping.result:SkippingResult",
    "geometry": "layerscope.studies.geometry.result:GeometryResult",
    "tasks": "layerscope.studies.tasks.result:TasksResult",
}


class ResultFileError(LayerscopeError, ValueError):
    """A saved result file is missing, damaged (e.g. cut short), or lacks what its reader needs;
    the message names the file and what is wrong."""


def result_class(study: str):
    """The result class of ``study`` (imported on first use), or None for a study this
    layerscope does not know."""
    target = STUDIES.get(study)
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


# ---- arrays
def pack_array(a: np.ndarray) -> dict:
    """An array as JSON-ready data that ``unpack_array`` turns back into it bit for bit (NaN
    included): {"dtype", "shape", "zlib_base64"} of its bytes in C order."""
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape),
            "zlib_base64": base64.b64encode(zlib.compress(a.tobytes(), 6)).decode("ascii")}


def unpack_array(d, what: str = "array") -> np.ndarray:
    """The array of ``pack_array(d)``; a ValueError saying what is wrong otherwise."""
    if not isinstance(d, dict) or not {"dtype", "shape", "zlib_base64"} <= set(d):
        raise ValueError(f"{what} is not a packed array ({{dtype, shape, zlib_base64}})")
    dtype = np.dtype(d["dtype"])
    if dtype.kind not in "biuf":
        raise ValueError(f"{what} has dtype {d['dtype']!r}; packed arrays are numbers")
    try:
        raw = zlib.decompress(base64.b64decode(d["zlib_base64"], validate=True))
    except (ValueError, zlib.error) as e:
        raise ValueError(f"{what}: its data does not decode ({e})") from None
    shape = tuple(int(n) for n in d["shape"])
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"{what}: {len(raw)} bytes for shape {list(shape)} of {dtype}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def frozen(v):
    """JSON lists as tuples, all the way down (a frozen config's sequences are tuples)."""
    if isinstance(v, list):
        return tuple(frozen(x) for x in v)
    return v


def floats(v) -> list:
    """A JSON list of numbers with NaN written as null, back to floats with NaN (nested)."""
    if isinstance(v, list):
        return [floats(x) for x in v]
    return math.nan if v is None else v


# ---- one saved file
@dataclass(frozen=True)
class Saved:
    """The parsed JSON of one saved result, with accessors whose errors name the file and the
    key (what ``from_dict`` reads through)."""

    path: Path
    data: dict

    def fail(self, what: str) -> ResultFileError:
        return ResultFileError(f"{self.path}: {what}")

    def need(self, key: str, kind: type | tuple[type, ...] | None = None):
        """``data[key]``; a ``ResultFileError`` naming the file and the key when it is missing
        (or not of ``kind``)."""
        if key not in self.data:
            raise self.missing(key)
        v = self.data[key]
        if kind is not None and not isinstance(v, kind):
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.fail(f"key {key!r} holds {type(v).__name__}, not {names}")
        return v

    def missing(self, key: str) -> ResultFileError:
        return self.fail(f"no key {key!r} (written by a layerscope that did not save it yet, or "
                         "damaged: run the notebook again to rewrite it)")

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def config(self, cls, key: str = "config"):
        """The study's frozen config dataclass ``cls`` rebuilt from its fields as saved (lists
        become tuples). Not re-validated: the registries of the machine that reads it need
        not hold the model or task folder of the machine that ran it."""
        d = self.need(key, dict)
        fields = dataclasses.fields(cls)
        names = [f.name for f in fields]
        # a field added after the file was written takes its default (e.g. ``device``)
        d = {**{f.name: f.default for f in fields
                if f.name not in d and f.default is not dataclasses.MISSING}, **d}
        missing = [n for n in names if n not in d]
        unknown = [k for k in d if k not in names]
        if missing:
            raise self.fail(f"{key} lacks {cls.__name__} field(s) {missing} (written by another "
                            "layerscope version: run the notebook again)")
        if unknown:
            raise self.fail(f"{key} has field(s) {unknown} that {cls.__name__} does not have "
                            "(written by another layerscope version)")
        cfg = object.__new__(cls)
        for n in names:
            object.__setattr__(cfg, n, frozen(d[n]))
        return cfg

    def array(self, value, key: str, dtype=None) -> np.ndarray:
        """A JSON list (NaN as null) as an array of ``dtype`` (the saved ``dtypes[key]`` when
        the file has it)."""
        dtype = (self.get("dtypes") or {}).get(key, dtype)
        try:
            return np.array(floats(value), dtype=dtype)
        except (TypeError, ValueError) as e:
            raise self.fail(f"{key} is not an array of numbers ({e})") from None

    def packed(self, value, key: str) -> np.ndarray:
        try:
            return unpack_array(value, key)
        except ValueError as e:
            raise self.fail(str(e)) from None


def load_json(path: str | Path, study: str | None = None) -> Saved:
    """The JSON of a saved result: ``path`` is the file, or the folder ``save()`` wrote
    (``<study>.json`` in it). A ``ResultFileError`` when it cannot be read, is not JSON (e.g.
    cut short), or is another study's."""
    p = Path(path)
    if p.is_dir():
        if study is None:
            raise ResultFileError(f"{p} is a folder: name the <study>.json in it")
        p = p / f"{study}.json"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ResultFileError(f"{p}: cannot be read ({e.strerror or e})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ResultFileError(f"{p}: damaged, not valid JSON ({e}; {len(text)} characters: "
                              "cut short?)") from None
    if not isinstance(data, dict) or "study" not in data:
        raise ResultFileError(f"{p}: not a saved result (no 'study' key)")
    if study is not None and data["study"] != study:
        raise ResultFileError(f"{p}: a {data['study']!r} result, not {study!r}")
    return Saved(p, data)


def read(path: str | Path):
    """The result saved in ``path`` (a ``<study>.json``), by its study's class; a
    ``RecordOnly`` for a study with no class here. Raises ``ResultFileError``."""
    return read_saved(load_json(path))


def read_saved(saved: Saved):
    cls = result_class(str(saved.data["study"]))
    if cls is None:
        return RecordOnly.from_saved(saved)
    return cls.from_dict(saved)


# ---- what the batch tools read
@dataclass(frozen=True)
class SavedFile:
    """One ``<study>.json`` of a run folder: the result read from it (None when it could not
    be read) and what is wrong (``problems``: empty when nothing)."""

    path: Path
    study: str
    result: Any
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is not None and not self.problems

    def damage(self) -> str:
        """One line for a page or a log: "<file>: problem; problem"."""
        return f"{self.path.name}: " + "; ".join(self.problems)


def read_file(path: str | Path) -> SavedFile:
    """``read(path)`` with what is wrong in it, never raising for a bad file: the file's
    damage, the result's ``check()``, and saved verdicts that the result's own findings
    contradict."""
    p = Path(path)
    try:
        saved = load_json(p)
    except ResultFileError as e:
        return SavedFile(p, p.stem, None, (str(e).removeprefix(f"{p}: "),))
    return _checked(saved)


def _checked(saved: Saved, checked: bool = True) -> SavedFile:
    """``saved`` read by its class; with ``checked``, what ``check()`` and the saved verdicts
    say is wrong with it (without: only whether it reads)."""
    p = saved.path
    try:
        result = read_saved(saved)
    except ResultFileError as e:
        return SavedFile(p, str(saved.data["study"]), None, (str(e).removeprefix(f"{p}: "),))
    except Exception as e:  # damage the reader's own checks did not foresee
        return SavedFile(p, str(saved.data["study"]), None,
                         (f"cannot be read: {type(e).__name__}: {e}",))
    if not checked:
        return SavedFile(p, result.study, result)
    problems = list(result.check())
    if not problems:
        problems += saved_verdict_problems(saved.get("findings"), result.findings())
    return SavedFile(p, result.study, result, tuple(problems))


def saved_verdict_problems(saved, found: dict) -> list[str]:
    """Where the file's saved findings disagree with the findings its result gives."""
    if not isinstance(saved, dict):
        return ["no saved findings (the 'findings' key)"]
    from .base import verdict_mismatches, verdicts_of  # base is the heavier module

    return [f"saved verdict of {cid!r} is {a!r} but the result gives {b!r}"
            for cid, a, b in verdict_mismatches(verdicts_of(saved), verdicts_of(found))]


def read_folder(folder: str | Path, *, checked: bool = True) -> list[SavedFile]:
    """Every saved result in a run folder (its ``*.json``), in name order. A JSON file that
    parses but is no saved result (no "study") is not one of them; one that does not parse
    is, as damaged (save() writes only results there, so it is one cut short). ``checked``
    False: only whether each reads (no ``check()``, findings or verdicts: a runner asking
    whether a run is finished)."""
    folder = Path(folder)
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out.append(read_file(p))  # says what is wrong
            continue
        if isinstance(data, dict) and "study" in data:
            out.append(_checked(Saved(p, data), checked))
    return out


@dataclass(frozen=True)
class RecordOnly:
    """The saved result of a study with no result class here: its ``record`` and ``findings``
    as saved (what a results table and the gallery need), checked like any result's."""

    study: str
    record: dict
    found: dict

    @classmethod
    def from_saved(cls, saved: Saved) -> RecordOnly:
        return cls(study=str(saved.data["study"]), record=saved.need("record", dict),
                   found=saved.need("findings", dict))

    def title(self) -> str:
        return self.study

    def findings(self) -> dict:
        return self.found

    def to_record(self) -> dict:
        return dict(self.record)

    def verdict(self) -> str:
        from .base import verdict_lines

        return verdict_lines(self.title(), self.found)

    def check(self) -> list[str]:
        from .base import StudyResult

        out = StudyResult.findings_problems(self.found)
        if self.record.get("study") != self.study:
            out.append(f"record's study is {self.record.get('study')!r}, not {self.study!r}")
        out += StudyResult.record_problems(self.record, self.found)
        return out
