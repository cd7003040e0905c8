"""Devices: resolving a device name, the one tensor -> numpy conversion, autocast, batch sizes,
a check over the source that nothing else converts tensors to numpy, and parity of extraction
and the surgery kernels on a device against the CPU.

The parity tests run on ``LAYERSCOPE_TEST_DEVICE`` (default ``cpu``, where they compare the CPU
with itself and still exercise every moving part); ``scripts/gpu_check.sh`` sets it to ``cuda``.
"""

from __future__ import annotations

import ast
import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from layerscope import activations as acts
from layerscope import devices, models, surgery
from layerscope.errors import ConfigError
from layerscope.studies.common import evaluation
from layerscope.surgery_kernels import all_span_skipping_logits, untuned_truncation_logits
from layerscope.tasks import get_task

LIB = Path(devices.__file__).resolve().parent
SENTENCES = ["the film was good .", "a remarkably unconvincing screenplay drags the cast into "
             "tedium .", "ok", "every actor felt awful , and the plot became clumsy ."]
DEVICE_ATOL = 1e-4  # fp32 on another device: a different GEMM order, float rounding only
# On the CPU the kernel parity below runs for tiny-bert only (tests/test_adapter_families.py
# covers every family there); on another device every tiny family, adapters included.
ON_CPU = os.environ.get("LAYERSCOPE_TEST_DEVICE", "cpu") == "cpu"
FAMILY_MODELS = (["tiny-bert"] if ON_CPU
                 else [n for n in models.MODELS if n.startswith("tiny-")])


@pytest.fixture(scope="module")
def test_device() -> torch.device:
    """The device the parity tests run on: ``LAYERSCOPE_TEST_DEVICE`` (default cpu)."""
    return devices.resolve_device(os.environ.get("LAYERSCOPE_TEST_DEVICE", "cpu"))


# --------------------------------------------------------------------------- resolve_device
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert devices.resolve_device() == torch.device("cpu")
    assert devices.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert devices.resolve_device("auto") == torch.device("cuda", 0)


def test_auto_on_this_machine():
    want = ("cuda" if torch.cuda.is_available()
            else "mps" if devices._mps_available() else "cpu")
    assert devices.resolve_device("auto").type == want
    if want == "cpu":
        assert devices.available_devices() == ("cpu",)


@pytest.mark.parametrize("name", ["cpu", "CPU", "cpu:0", torch.device("cpu")])
def test_cpu_spellings(name):
    assert devices.resolve_device(name) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "", "xla"])
def test_unknown_device_names_the_value_and_the_choices(name):
    with pytest.raises(ConfigError, match="unknown device") as e:
        devices.resolve_device(name)
    assert repr(name) in str(e.value) and "available here: cpu" in str(e.value)


def test_non_string_device_is_refused():
    with pytest.raises(ConfigError, match="device=3"):
        devices.resolve_device(3)


def test_unavailable_cuda_names_it_and_what_is_available():
    if torch.cuda.is_available():
        name = f"cuda:{torch.cuda.device_count()}"
        with pytest.raises(ConfigError, match=f"'{name}' is not available"):
            devices.resolve_device(name)
        return
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"'{name}' is not available") as e:
            devices.resolve_device(name)
        assert "available here: cpu" in str(e.value)


def test_unavailable_mps(monkeypatch):
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(ConfigError, match="'mps' is not available"):
        devices.resolve_device("mps")


# --------------------------------------------------------------------------- to_numpy
def test_to_numpy_float32_is_the_tensor_itself():
    t = torch.randn(3, 5)
    a = devices.to_numpy(t)
    assert a.dtype == np.float32 and np.array_equal(a, t.numpy())
    assert np.shares_memory(a, t.numpy())  # no copy on the CPU, like t.numpy()
    f64 = torch.randn(4, dtype=torch.float64)
    assert devices.to_numpy(f64).dtype == np.float64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_to_numpy_upcasts_half_precision_exactly(dtype):
    t = (torch.randn(4, 6) * 100).to(dtype)
    a = devices.to_numpy(t)
    assert a.dtype == np.float32
    assert np.array_equal(a, t.float().numpy())  # every bf16/fp16 value is a float32 value
    assert torch.equal(torch.from_numpy(a).to(dtype), t)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_to_numpy_keeps_integer_and_bool_dtypes(dtype):
    t = torch.tensor([0, 1, 1, 0, 1]).to(dtype)
    a = devices.to_numpy(t)
    assert a.dtype == t.numpy().dtype and np.array_equal(a, t.numpy())


def test_to_numpy_detaches_a_tensor_that_requires_grad():
    w = torch.randn(3, requires_grad=True)
    y = w * 2
    with pytest.raises(RuntimeError):  # what the helper exists for
        y.numpy()
    np.testing.assert_array_equal(devices.to_numpy(y), (w.detach() * 2).numpy())
    np.testing.assert_array_equal(devices.to_numpy(w.to(torch.bfloat16)),
                                  w.detach().to(torch.bfloat16).float().numpy())


def test_to_numpy_of_views_and_non_tensors():
    t = torch.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(devices.to_numpy(t.T), t.numpy().T)
    np.testing.assert_array_equal(devices.to_numpy(t.conj()), t.numpy())
    np.testing.assert_array_equal(devices.to_numpy(-t[1:]), -t.numpy()[1:])
    arr = np.arange(3)
    assert devices.to_numpy(arr) is arr
    np.testing.assert_array_equal(devices.to_numpy([1, 2]), [1, 2])


def test_to_numpy_from_the_test_device(test_device):
    t = torch.randn(5, 3).to(test_device)
    np.testing.assert_array_equal(devices.to_numpy(t), t.cpu().numpy())
    b = t.to(torch.bfloat16)
    np.testing.assert_array_equal(devices.to_numpy(b), b.cpu().float().numpy())


# --------------------------------------------------------------------------- precision
def test_compute_dtype_rules(monkeypatch):
    assert devices.compute_dtype("cpu") == "float32"
    assert devices.compute_dtype("mps", "auto") == "float32"
    assert devices.compute_dtype("cpu", "bf16") == "bfloat16"
    assert devices.compute_dtype("cpu", torch.float16) == "float16"
    assert devices.compute_dtype("cpu", None) == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert devices.compute_dtype(torch.device("cuda", 0)) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    assert devices.compute_dtype(torch.device("cuda", 0)) == "float16"
    with pytest.raises(ConfigError, match="not supported by Tesla V100"):
        devices.compute_dtype(torch.device("cuda", 0), "bfloat16")
    with pytest.raises(ConfigError, match="unknown compute dtype 'int8'"):
        devices.compute_dtype("cpu", "int8")


def test_autocast_does_nothing_on_the_cpu_by_default():
    assert isinstance(devices.autocast("cpu"), contextlib.nullcontext)
    assert isinstance(devices.autocast("cpu", "float32"), contextlib.nullcontext)
    torch.manual_seed(0)
    lin, x = torch.nn.Linear(16, 8), torch.randn(4, 16)
    with devices.autocast("cpu"):
        y = lin(x)
    assert y.dtype == torch.float32 and torch.equal(y, lin(x))
    with devices.autocast("cpu", "bfloat16"):
        assert lin(x).dtype == torch.bfloat16


def test_activation_dtypes_are_compute_dtypes():
    assert set(acts.DTYPES) <= set(devices.COMPUTE_DTYPES) - {"auto"}


# --------------------------------------------------------------------------- batch sizes
def test_batch_size_for(monkeypatch):
    assert devices.batch_size_for("cpu", 32) == 32
    assert devices.batch_size_for("mps", 7) == 7
    cuda = torch.device("cuda", 0)
    for free_gib, want in [(0.5, 32), (3, 32), (4, 64), (8, 128), (16, 256), (32, 512),
                           (139, 512)]:
        monkeypatch.setattr(torch.cuda, "mem_get_info",
                            lambda dev, f=free_gib: (int(f * 2**30), 140 * 2**30))
        assert devices.batch_size_for(cuda, 32) == want, free_gib
    with pytest.raises(ConfigError, match="default batch size 0"):
        devices.batch_size_for("cpu", 0)


def test_device_record():
    rec = devices.device_record("cpu")
    assert rec["device"] == "cpu" and rec["device_type"] == "cpu"
    assert rec["compute_dtype"] == "float32" and rec["torch"] == torch.__version__
    assert rec["cuda"] is None and rec["device_name"]
    assert all(v is None or isinstance(v, str) for v in rec.values())  # flat, table-ready
    assert devices.device_record("cpu", "bf16")["compute_dtype"] == "bfloat16"


def test_to_device_moves_tensors_only(test_device):
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "note": "kept"}
    out = devices.to_device(batch, test_device)
    assert out["input_ids"].device.type == test_device.type and out["note"] == "kept"
    assert batch["input_ids"].device.type == "cpu"  # a copy: the caller's dict is unchanged


# --------------------------------------------------------------------------- source check
def _bare_conversions(path: Path, root: Path = LIB.parent) -> list[str]:
    """``file:line`` (relative to ``root``) of every ``.numpy()`` call, and of
    ``np.asarray``/``np.array`` applied to a ``.cpu()``/``.detach()`` chain, in one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "numpy":
            found.append(f"{path.relative_to(root)}:{node.lineno}: .numpy()")
        elif (node.func.attr in ("asarray", "array") and node.args
              and any(isinstance(n, ast.Attribute) and n.attr in ("cpu", "detach")
                      for n in ast.walk(node.args[0]))):
            found.append(f"{path.relative_to(root)}:{node.lineno}: "
                         f"np.{node.func.attr}(<tensor>)")
    return found


def test_no_tensor_to_numpy_conversion_outside_devices():
    """Every tensor -> numpy conversion goes through ``devices.to_numpy`` (issue 16 §3):
    ``Tensor.numpy()`` fails on CUDA tensors, on tensors requiring grad and on bfloat16."""
    files = sorted(LIB.rglob("*.py"))
    assert len(files) > 20  # the package, not an empty folder
    bad = [hit for f in files if f.name != "devices.py" or f.parent != LIB
           for hit in _bare_conversions(f)]
    assert not bad, ("convert with layerscope.devices.to_numpy instead:\n" + "\n".join(bad))


def test_the_source_check_finds_conversions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy as np\n\ndef f(t):\n    a = t.float().numpy()\n"
                     "    return np.asarray(t.detach().cpu()), np.asarray(a), a.tolist()\n")
    assert _bare_conversions(probe, tmp_path) == ["probe.py:4: .numpy()",
                                                  "probe.py:5: np.asarray(<tensor>)"]


# --------------------------------------------------------------------------- device parity
def _task_model(name: str):
    torch.manual_seed(0)
    task = get_task("tiny-sentiment")
    return models.load_for_task(name, task).eval(), models.load_tokenizer(name), task


@pytest.fixture(scope="module")
def tiny_task_model():
    return _task_model("tiny-bert")


def _padded_batch(tok, device):
    return devices.to_device(dict(tok(SENTENCES, padding=True, return_tensors="pt")), device)


def test_word_pooling_on_the_device(test_device):
    """Sub-word averaging (``word`` and ``pair`` pooling) with the model on the device."""
    model, tok = acts.encoder_and_tokenizer("tiny-bert", for_words=True)
    words = [s.split() for s in SENTENCES]
    cpu = {p: acts.extract(model, tok, words, pooling=p, batch_size=3, progress=False)
           for p in ("word", "pair")}
    model.to(test_device)
    try:
        got = {p: acts.extract(model, tok, words, pooling=p, batch_size=3, progress=False)
               for p in ("word", "pair")}
    finally:
        model.to("cpu")
    for p in cpu:
        np.testing.assert_array_equal(got[p][1], cpu[p][1])
        np.testing.assert_allclose(got[p][0], cpu[p][0], atol=DEVICE_ATOL, err_msg=p)


def test_extraction_on_the_device_matches_the_cpu(test_device):
    model, tok = acts.encoder_and_tokenizer("tiny-bert")
    cpu, ids = acts.extract(model, tok, SENTENCES, pooling="mean", batch_size=3, progress=False)
    dev_model = model.to(test_device)
    try:
        got, got_ids = acts.extract(dev_model, tok, SENTENCES, pooling="mean", batch_size=3,
                                    progress=False)
        alone = np.stack([acts.extract(dev_model, tok, [s], pooling="mean", progress=False)[0][:, 0]
                          for s in SENTENCES], axis=1)  # one at a time: no padding at all
        half, _ = acts.extract(dev_model, tok, SENTENCES, pooling="mean", dtype="bfloat16",
                               batch_size=3, progress=False)
    finally:
        model.to("cpu")
    assert got.dtype == np.float32 and np.array_equal(ids, got_ids)
    np.testing.assert_allclose(got, cpu, atol=DEVICE_ATOL)
    np.testing.assert_allclose(alone, got, atol=DEVICE_ATOL)
    assert half.dtype == np.float32 and np.abs(half - cpu).max() < 0.1  # bf16: ~3 digits
    if test_device.type == "cpu":
        assert np.array_equal(got, cpu)  # the same device: bit for bit


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_surgery_kernels_on_the_device_match_the_model(name, test_device):
    model, tok, _ = _task_model(name)
    cpu_batch = _padded_batch(tok, "cpu")
    cpu_untuned = devices.to_numpy(untuned_truncation_logits(model, cpu_batch))
    cpu_spans = {k: devices.to_numpy(v) for k, v in
                 all_span_skipping_logits(model, cpu_batch).items()}
    model.to(test_device)
    try:
        batch = _padded_batch(tok, test_device)
        untuned = untuned_truncation_logits(model, batch)
        span = all_span_skipping_logits(model, batch, max_rows=5)
        assert untuned.device.type == test_device.type
        with torch.inference_mode(), surgery.truncated(model, 2):
            trunc2 = devices.to_numpy(model(**batch).logits)
        with torch.inference_mode(), surgery.skipped(model, (2, 3)):
            skip23 = devices.to_numpy(model(**batch).logits)
        with torch.inference_mode():
            full = devices.to_numpy(model(**batch).logits)
    finally:
        model.to("cpu")
    untuned = devices.to_numpy(untuned)
    np.testing.assert_allclose(untuned, cpu_untuned, atol=DEVICE_ATOL)
    np.testing.assert_allclose(untuned[-1], full, atol=DEVICE_ATOL)
    np.testing.assert_allclose(untuned[2], trunc2, atol=DEVICE_ATOL)
    np.testing.assert_allclose(devices.to_numpy(span[(2, 3)]), skip23, atol=DEVICE_ATOL)
    for k, v in cpu_spans.items():
        np.testing.assert_allclose(devices.to_numpy(span[k]), v, atol=DEVICE_ATOL, err_msg=str(k))


def test_evaluation_on_the_device(tiny_task_model, test_device):
    """``studies.common.evaluation`` with the batches moved: float32 equals the CPU; ``auto``
    is float32 on the CPU (bit-identical) and bf16/fp16 on CUDA (close)."""
    model, tok, task = tiny_task_model
    es = evaluation.eval_set(task, "validation", np.arange(6), tok, 32, batch_size=4)
    cpu = {"untuned": evaluation.untuned_logits(model, es, dtype="float32"),
           "full": evaluation.full_logits(model, es, dtype="float32")}
    assert np.array_equal(evaluation.untuned_logits(model, es), cpu["untuned"])  # cpu auto = fp32
    moved = evaluation.EvalSet(es.task, es.split, es.rows, tuple(
        (pos, devices.to_device(b, test_device)) for pos, b in es.batches))
    model.to(test_device)
    try:
        got = {"untuned": evaluation.untuned_logits(model, moved, dtype="float32"),
               "full": evaluation.full_logits(model, moved, dtype="float32")}
        auto = evaluation.untuned_logits(model, moved)
        spans = evaluation.span_logits(model, moved)
    finally:
        model.to("cpu")
    for k in cpu:
        np.testing.assert_allclose(got[k], cpu[k], atol=DEVICE_ATOL, err_msg=k)
    np.testing.assert_allclose(got["untuned"][-1], got["full"], atol=DEVICE_ATOL)
    tol = 0 if test_device.type == "cpu" else 0.1  # bf16 keeps ~3 significant digits
    assert np.abs(auto - cpu["untuned"]).max() <= tol
    assert all(v.shape == (6, task.num_labels) and v.dtype == np.float32 for v in spans.values())


def test_truncation_heads_start_on_the_cpu_from_a_model_on_the_device(test_device):
    """TUNED/TUNEDORIG heads are fitted on the cached (CPU) features: their initial weights
    come to the CPU whatever device the fine-tuned model is on."""
    from layerscope.studies.truncation import heads

    model, _, _ = _task_model("tiny-bert")
    cpu = heads.head_params(model)
    got = heads.head_params(model.to(test_device))
    assert all(t.device.type == "cpu" for t in (got.w1, got.b1, got.w2, got.b2))
    np.testing.assert_allclose(devices.to_numpy(got.w1), devices.to_numpy(cpu.w1),
                               atol=DEVICE_ATOL)
    x = np.random.default_rng(0).standard_normal((2, 24, cpu.w1.shape[1]), dtype=np.float32)
    fit = heads.train_heads(got.repeat(2), x, np.arange(24) % 2, regression=False,
                            settings=heads.HeadTraining(max_epochs=2), seed=0)
    assert fit.holdout_loss.shape == (2,) and np.isfinite(fit.holdout_loss).all()


def test_a_training_step_on_the_device(tiny_task_model, test_device):
    """Forward, backward and an AdamW step with ``devices.autocast``: finite loss, weights
    moved (a fine-tuning step works there)."""
    import copy

    model, tok, _ = tiny_task_model
    m = copy.deepcopy(model).to(test_device).train()
    batch = _padded_batch(tok, test_device)
    batch["labels"] = torch.tensor([1, 0, 1, 0], device=test_device)
    before = m.classifier.weight.detach().clone()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    with devices.autocast(test_device):
        loss = m(**batch).loss
    loss.backward()
    opt.step()
    assert np.isfinite(float(loss.detach()))
    assert not torch.equal(before, m.classifier.weight.detach())
