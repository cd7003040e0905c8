"""Saved results read back (issue 15): every study's ``read(path)`` is the inverse of its
``save(dir)`` (arrays bit for bit, the config as the study's frozen Config), ``check()`` says
what is inconsistent in a result, and a damaged or incomplete file is a clear error naming the
file and what is wrong. The studies run on tiny models sharing one set of fine-tuning runs."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from layerscope import finetune
from layerscope.studies import geometry as geo
from layerscope.studies import results
from layerscope.studies import similarity as sim
from layerscope.studies import skipping as skip
from layerscope.studies import truncation as trunc
from layerscope.studies.base import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, UNDEFINED, StudyResult
from layerscope.studies.results import ResultFileError
from layerscope.studies.training import TrainingResult

BASE = dict(task="tiny-sentiment", model="tiny-bert", preset="smoke", max_steps=30)
RUNS = {  # study -> (its run_* on a small config): every run shares the seed-0/1 fine-tunes
    "finetune": lambda: TrainingResult.of(finetune.load_or_train(
        finetune.FinetuneConfig(**BASE, seed=0), verbose=False), n_boot=50),
    "similarity": lambda: sim.run_similarity(sim.SimilarityConfig(
        **BASE, seeds=(0, 1), n_examples=32, checkpoint_steps=(0, 30), n_boot=20, n_perm=10),
        verbose=False),
    "truncation": lambda: trunc.run_truncation(trunc.TruncationConfig(
        **BASE, n_examples=32, n_train=100, n_boot=20, head_max_epochs=5, drop_top=(2,)),
        verbose=False),
    "skipping": lambda: skip.run_skipping(skip.SkippingConfig(**BASE, n_examples=32,
                                                              n_boot=20), verbose=False),
    "geometry": lambda: geo.run_geometry(geo.GeometryConfig(
        **BASE, seeds=(0, 1), n_train=48, n_test=32, checkpoint_steps=(0, 30), n_folds=2,
        n_predict=8, probe_max_iter=20, cross_task=("tiny-pos",), out_of_domain=("tweets",),
        n_ood=16, n_boot=10), verbose=False),
}
NEEDED = {"finetune": "summary", "similarity": "matrices", "truncation": "logits",
          "skipping": "span_logits", "geometry": "fold_geometry"}  # a key only read() needs


@pytest.fixture(scope="module", params=list(RUNS))
def made(request, private_home, tmp_path_factory):
    """(result, the JSON its save() wrote) per study."""
    result = RUNS[request.param]()
    return result, result.save(tmp_path_factory.mktemp(request.param))["json"]


def plain(v):
    """JSON's view of a value (NaN and None alike, tuples as lists, keys as strings)."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def same_array(a, b) -> bool:
    return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
            and a.tobytes() == b.tobytes())


def differences(a, b, where: str = "") -> list[str]:
    """Where b is not a: arrays bit for bit (dtype, shape, bytes), everything else by type and
    value, all the way down (NaN equals NaN; a numpy scalar equals its Python number)."""
    if isinstance(a, np.ndarray):
        return [] if same_array(a, b) else [f"{where}: array"]
    if dataclasses.is_dataclass(a):
        if type(b) is not type(a):
            return [f"{where}: {type(b).__name__}, not {type(a).__name__}"]
        return [d for f in dataclasses.fields(a)
                for d in differences(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")]
    if type(a) is not type(b) and hasattr(a, "item"):
        a = a.item()
    if type(a) is not type(b):
        return [f"{where}: {type(b).__name__}, not {type(a).__name__}"]
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(b)}, not {list(a)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(b)} items, not {len(a)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and math.isnan(a):
        return [] if math.isnan(b) else [f"{where}: {b!r}, not NaN"]
    return [] if a == b else [f"{where}: {b!r}, not {a!r}"]


def test_read_is_the_inverse_of_save(made):
    a, path = made
    b = type(a).read(path)
    assert type(b) is type(a)
    assert type(b.config) is type(a.config) and b.config == a.config  # frozen Config, rebuilt
    assert differences(a, b, a.study) == []  # every field, types and arrays included
    assert plain(b.to_dict()) == plain(a.to_dict())
    saved = json.loads(path.read_text())  # what save() wrote, and what the read result gives
    assert plain(b.findings()) == saved["findings"] and plain(b.to_record()) == saved["record"]
    assert b.verdict() == a.verdict()
    assert b.figure().to_json() == a.figure().to_json()
    extra_a, extra_b = a.extra_figures(), b.extra_figures()
    assert extra_a.keys() == extra_b.keys()
    for k, (fig, _) in extra_a.items():
        assert extra_b[k][0].to_json() == fig.to_json(), k
    # the folder save() wrote reads the same, and so does the registry's reader
    assert plain(type(a).read(path.parent).to_dict()) == plain(a.to_dict())
    assert type(results.read(path)) is type(a)


def test_big_arrays_come_back_bit_for_bit():
    x = np.array([[1.5, np.nan], [-0.0, np.float32(1 / 3)]], dtype=np.float32)
    packed = json.loads(json.dumps(results.pack_array(x)))
    y = results.unpack_array(packed)
    assert same_array(x, y) and y.flags.writeable
    with pytest.raises(ValueError, match="bytes for shape"):
        results.unpack_array({**packed, "shape": [3, 2]})


def test_a_saved_result_is_consistent(made):
    a, path = made
    assert a.check() == []
    assert type(a).read(path).check() == []
    file = results.read_file(path)
    assert file.ok and file.study == a.study and file.problems == ()


def test_a_file_cut_short_is_a_clear_error(made, tmp_path):
    _, path = made
    text = path.read_text()
    bad = tmp_path / path.name
    bad.write_text(text[:len(text) // 2])
    with pytest.raises(ResultFileError, match=rf"{bad.name}: damaged, not valid JSON"):
        results.read(bad)
    file = results.read_file(bad)
    assert file.result is None and not file.ok and "not valid JSON" in file.damage()
    assert [f.path for f in results.read_folder(tmp_path)] == [bad]  # damaged: not left out


def test_a_missing_key_is_named_with_the_file(made, tmp_path):
    a, path = made
    data = json.loads(path.read_text())
    key = NEEDED[a.study]
    del data[key]  # e.g. a file written before read() needed it
    bad = tmp_path / path.name
    bad.write_text(json.dumps(data))
    with pytest.raises(ResultFileError, match=rf"{bad.name}: no key '{key}'"):
        type(a).read(bad)
    assert f"no key '{key}'" in results.read_file(bad).damage()
    with pytest.raises(ResultFileError, match="not 'other'"):
        results.load_json(path, "other")


def test_the_config_is_rebuilt_as_saved_not_revalidated(made, tmp_path):
    """A model folder of the machine that ran it need not exist on the one that reads it."""
    a, path = made
    data = json.loads(path.read_text())
    data["config"]["model"] = "/elsewhere/my-model"
    (tmp_path / path.name).write_text(json.dumps(data))
    b = type(a).read(tmp_path / path.name)
    assert type(b.config) is type(a.config) and b.config.model == "/elsewhere/my-model"
    assert {**dataclasses.asdict(b.config), "model": a.config.model} == \
        dataclasses.asdict(a.config)
    data["config"]["no_such_field"] = 1
    (tmp_path / path.name).write_text(json.dumps(data))
    with pytest.raises(ResultFileError, match="no_such_field"):
        type(a).read(tmp_path / path.name)


def test_finished_is_the_protocols(made):
    """``finished`` sets the wall time and the device record (issue 16: every result records
    where it ran); the runs here ran on the CPU and say so."""
    a, _ = made
    assert a.device["device"] == "cpu" and a.device["device_type"] == "cpu", a.device
    if a.study == "finetune":  # the one result without a wall time
        with pytest.raises(TypeError, match="seconds"):
            a.finished(12.5, "cpu")
        return
    b = a.finished(12.5, "cpu", "bfloat16")
    assert type(b) is type(a) and b.seconds == 12.5 and type(a).finished is \
        StudyResult.finished
    assert differences(a, b) == [f".seconds: 12.5, not {a.seconds!r}",
                                 ".device['compute_dtype']: 'bfloat16', not "
                                 f"{a.device['compute_dtype']!r}"]


def break_file(a, data: dict) -> tuple[str, ...]:
    """Make the saved JSON of ``a`` inconsistent (it still reads); the words its check says."""
    if a.study == "finetune":  # its findings are data, so one verdict is edited
        cid = next(iter(data["findings"]))
        wrong = SUPPORTED if data["findings"][cid]["verdict"] != SUPPORTED else NOT_SUPPORTED
        data["findings"][cid]["verdict"] = wrong
        return (f"finding '{cid}' is {wrong}",)
    if a.study == "similarity":  # layer-0 CLS is NaN: its reason dropped
        data["undefined"]["ft_ft"] = []
        return "matrix ft_ft has", "undefined (NaN) cells and no recorded reason"
    if a.study == "truncation":
        data["undefined"] = {k: {} for k in data["undefined"]}
        return ("untuned layer 0 has NaN logits and no recorded reason",)
    if a.study == "skipping":
        data["spans"] = data["spans"][:-1]
        return (f"{len(a.spans) - 1} spans, not the {len(a.spans)} spans of {a.n_layers}",)
    data["sim_to_orig"] = [row[1:] for row in data["sim_to_orig"]]
    return (f"sim_to_orig is [{len(a.states)}, {len(a.layers) - 1}], not",)


def test_check_says_what_is_inconsistent(made, tmp_path):
    a, path = made
    data = json.loads(path.read_text())
    words = break_file(a, data)
    bad = tmp_path / path.name
    bad.write_text(json.dumps(data))
    problems = type(a).read(bad).check()  # it reads: what is wrong is its consistency
    assert any(all(w in p for w in words) for p in problems), problems
    file = results.read_file(bad)
    assert not file.ok and file.result is not None and list(file.problems) == problems
    assert file.damage().startswith(f"{bad.name}: ")


def test_a_saved_verdict_the_result_contradicts_is_reported(made, tmp_path):
    a, path = made
    data = json.loads(path.read_text())
    cid = next(iter(data["findings"]))
    was = data["findings"][cid]["verdict"]
    data["findings"][cid]["verdict"] = INCONCLUSIVE if was != INCONCLUSIVE else SUPPORTED
    (tmp_path / path.name).write_text(json.dumps(data))
    file = results.read_file(tmp_path / path.name)
    if a.study == "finetune":  # its findings are data: the verdict rule itself catches it
        assert any(f"finding '{cid}' is {data['findings'][cid]['verdict']}" in p
                   for p in file.problems), file.problems
    else:
        assert file.problems == (f"saved verdict of '{cid}' is "
                                 f"'{data['findings'][cid]['verdict']}' but the result gives "
                                 f"'{was}'",)


@pytest.mark.parametrize("finding, words", [
    ({"verdict": SUPPORTED, "interval": {"low": -1.0, "high": 1.0}, "threshold": 0},
     "is SUPPORTED but its interval [-1.0, 1.0] against threshold 0 gives INCONCLUSIVE"),
    ({"verdict": NOT_SUPPORTED, "interval": {"low": 0.5, "high": 1.0}, "threshold": 0.6},
     "gives INCONCLUSIVE"),
    ({"verdict": INCONCLUSIVE, "interval": {"low": 0.1, "high": 1.0}, "threshold": 0},
     "gives SUPPORTED"),
    ({"verdict": UNDEFINED, "interval": {"low": 0.1, "high": 1.0}, "threshold": 0},
     "gives SUPPORTED"),  # UNDEFINED over a defined interval needs its reason
    ({"verdict": SUPPORTED, "interval": None, "threshold": 0}, "is SUPPORTED with no interval"),
    ({"verdict": UNDEFINED, "interval": None, "threshold": 0}, "UNDEFINED with no reason"),
    ({"verdict": "LIKELY", "interval": None, "threshold": 0}, "has verdict 'LIKELY'"),
    ({"interval": None, "threshold": 0}, "lacks verdict"),
])
def test_findings_problems_apply_the_verdict_rule(finding, words):
    f = {"claim": "c", "numbers": {}, **finding}
    (problem,) = StudyResult.findings_problems({"c": f})
    assert words in problem


@pytest.mark.parametrize("finding", [
    {"verdict": SUPPORTED, "interval": {"low": 0.1, "high": 1.0}, "threshold": 0},
    {"verdict": NOT_SUPPORTED, "interval": {"low": -2.0, "high": -1.0}, "threshold": 0},
    {"verdict": INCONCLUSIVE, "interval": {"low": -1.0, "high": 1.0}, "threshold": 0},
    {"verdict": UNDEFINED, "interval": {"low": None, "high": None}, "threshold": 0},
    {"verdict": UNDEFINED, "interval": {"low": 0.1, "high": 0.1}, "threshold": 0, "why": "w"},
    {"verdict": UNDEFINED, "interval": None, "threshold": 0, "why": "one seed"},
])
def test_findings_that_follow_the_rule_pass(finding):
    assert StudyResult.findings_problems({"c": {"claim": "c", "numbers": {}, **finding}}) == []


def test_a_study_without_a_class_is_read_as_its_record(tmp_path):
    f = {"claim": "x is positive", "numbers": {}, "threshold": 0, "verdict": SUPPORTED,
         "interval": {"estimate": 1, "low": 1, "high": 1, "of": "x", "method": "exact"}}
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"study": "mine", "record": {"study": "mine", "x": 1,
                                                         "verdict.pos": SUPPORTED},
                             "findings": {"pos": f}}))
    r = results.read(p)
    assert isinstance(r, results.RecordOnly) and r.to_record()["x"] == 1 and r.check() == []
    assert "pos: SUPPORTED. x is positive." in r.verdict()
    p.write_text(json.dumps({"study": "mine", "record": {"study": "mine", "verdict.pos": "NO"},
                             "findings": {"pos": f}}))
    assert "record column verdict.pos is 'NO' but the finding's verdict is 'SUPPORTED'" in \
        results.read_file(p).problems
