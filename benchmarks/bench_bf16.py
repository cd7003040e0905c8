"""Benchmark: bf16 autocast vs float32 for the demo preset's fine-tuning (issue 9).

Fine-tuning is most of the main job's time. This trains ``minilm-l6`` on ``movies`` with the
``demo`` preset twice per seed, in one run, into temporary folders (the cache is not touched):
once in float32 and once with the Trainer's bf16 autocast (``precision="bf16"``: matmuls in
bfloat16, weights and optimizer state in float32). It prints seconds, seconds per step,
validation accuracy and the difference, and the CPU's bf16 support (``avx512_bf16``/``amx_bf16``
in /proc/cpuinfo: without them PyTorch emulates bf16 matmuls with float32 instructions plus
conversions, which is expected to be slower, not faster).

Decision rule (issue 9): use bf16 for the demo preset only if it is faster AND every seed's
accuracy is within 1 point of float32's.

Run: ``OMP_WAIT_POLICY=passive python benchmarks/bench_bf16.py [--seeds 0 1] [--max-steps N]``
(about 2 x 100 s per seed on 2 idle cores at the preset's 150 steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from layerscope.finetune import FinetuneConfig, train
from layerscope.quiet import quiet_libraries
from machine import other_load


def cpu_bf16_flags() -> list[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [f for f in flags if "bf16" in f]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--max-steps", type=int, default=None, help="default: the preset's 150")
    args = ap.parse_args()
    with quiet_libraries():
        run(args)


def run(args) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU bf16 flags: "
          f"{cpu_bf16_flags() or 'none (bf16 matmuls are emulated)'}")
    print("| seed | precision | s | s/step | accuracy | vs fp32 | other load |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for seed in args.seeds:
        base = FinetuneConfig(task="movies", model="minilm-l6", preset="demo", seed=seed,
                              max_steps=args.max_steps)
        ref = None
        for precision in ("fp32", "bf16"):
            cfg = dataclasses.replace(base, precision=precision)
            load = other_load()
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                res = train(cfg, Path(tmp) / "run", verbose=False)
                sec = time.perf_counter() - t0
            acc = res.metrics["accuracy"]
            ref = acc if ref is None else ref
            steps = res.meta["global_step"]
            print(f"| {seed} | {precision} | {sec:.1f} | {sec / steps:.3f} | {acc:.4f} | "
                  f"{100 * (acc - ref):+.2f} pt | {load:.2f} |", flush=True)


if __name__ == "__main__":
    main()
