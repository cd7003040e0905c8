"""Benchmark: truncation and skipping kernels vs the naive passes (issue 7).

On a BERT-base-sized model built from a config (``BertForSequenceClassification(BertConfig())``,
random weights, 2 labels; 12 blocks, 768 wide), one batch of random token ids, eval mode,
``torch.inference_mode``, all measured in one run:

(a) UNTUNED truncation at every depth (Phang et al. 2021 §4):
    ``surgery_kernels.untuned_truncation_logits`` (one pass with all hidden states, the head on
    each) vs one plain forward pass (target <= 1.1x) and vs one pass per depth
    (``with surgery.truncated(model, k): model(**batch)`` for k = 1..L).
(b) Skipping every contiguous span (§4.1): ``all_span_skipping_logits`` (one base pass, then
    blocks j+1..L once per j on the stacked inputs of the spans ending at j) vs a base pass plus
    one pass per span with the span left out (``with surgery.skipped(model, range(i, j+1))``)
    (target >= 1.8x; block evaluations 12 + 286 = 298 vs 12 + 572 = 584 for L = 12).

"GFLOP/s" counts the block FLOPs (2 x weights x tokens + attention scores) actually evaluated,
so rows doing more block evaluations are not credited for them; "of GEMM" divides by the
machine's fp32 GEMM rate measured here on the model's own shapes. Padding tokens are counted
(they are computed). Prints a markdown table. ``--quick``: a 6-block, 256-wide model on a small
batch (a smoke run, seconds). On shared cores the load drifts during the run: the plain pass and
the (a) kernel are alternated, (b)'s kernel runs before and after the separate passes, and the
GEMM rate is measured before and after, so that drift shows in the table.

Run: ``python benchmarks/bench_surgery.py [--quick] [--batch 32] [--seq 128] [--repeat 3]``.
The full run evaluates ~1,330 BERT-base blocks on 32 x 128 tokens: ~20 min on 2 idle cores.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import transformers as tr

from layerscope.surgery import skipped, truncated
from layerscope.surgery_kernels import (
    all_span_skipping_logits,
    span_block_evaluations,
    spans,
    untuned_truncation_logits,
)


def gemm_rate(shapes, repeat: int = 5, trials: int = 3) -> float:
    """Best fp32 FLOP/s of ``x @ y`` over ``shapes`` (m, k, n): the machine's rate, best of a
    few timings so that other work on shared cores counts as little as possible."""
    best = 0.0
    for m, k, n in shapes:
        x, y = torch.randn(m, k), torch.randn(k, n)
        x @ y
        for _ in range(trials):
            t0 = time.perf_counter()
            for _ in range(repeat):
                x @ y
            best = max(best, 2 * m * k * n * repeat / (time.perf_counter() - t0))
    return best


def interleaved(fns: dict, repeat: int) -> tuple[dict, dict]:
    """({name: best seconds}, {name: last result}) running ``fns`` in turn, ``repeat`` rounds:
    on shared cores the load drifts, and alternating exposes every method to the same drift."""
    best, res = dict.fromkeys(fns, float("inf")), {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            res[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="6 blocks, 256 wide, batch 8 x 32")
    p.add_argument("--batch", type=int, default=None, help="sequences (default 32; quick 8)")
    p.add_argument("--seq", type=int, default=None, help="tokens each (default 128; quick 32)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of the plain pass and the "
                   "truncation kernel, alternated, best kept (the long rows: once; (b)'s kernel "
                   "before and after the separate passes)")
    args = p.parse_args()
    q = args.quick
    B, T = args.batch or (8 if q else 32), args.seq or (32 if q else 128)
    repeat = args.repeat
    cfg = (tr.BertConfig(hidden_size=256, num_hidden_layers=6, num_attention_heads=4,
                         intermediate_size=1024, num_labels=2) if q
           else tr.BertConfig(num_labels=2))
    torch.manual_seed(0)
    model = tr.BertForSequenceClassification(cfg).eval()
    L, H, F = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size
    ids = torch.randint(1000, cfg.vocab_size, (B, T))
    lengths = torch.randint(T // 2, T + 1, (B,))
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    # FLOPs of one block on the batch: 4 H x H projections + the 2-layer MLP, plus QK^T and AV
    block_flops = 2 * B * T * (4 * H * H + 2 * H * F) + 4 * B * T * T * H
    load0 = os.getloadavg()
    rate = gemm_rate([(B * T, H, H), (B * T, H, F), (B * T, F, H)])

    def forward():
        return model(**batch).logits

    def per_depth():
        out = []
        for k in range(1, L + 1):
            with truncated(model, k):
                out.append(forward())
        return torch.stack(out)

    def separate_spans():
        out = {(0, 0): forward()}  # the full model's score: the base pass of the naive way
        for i, j in spans(L):
            with skipped(model, range(i, j + 1)):
                out[(i, j)] = forward()
        return out

    def kernel_a():
        return untuned_truncation_logits(model, batch)

    def kernel_b():
        return all_span_skipping_logits(model, batch)

    cost = span_block_evaluations(L)
    with torch.inference_mode():
        forward()  # warm-up: first-call allocations and the mask path are not what we measure
        t, res = interleaved({"plain": forward, "kernel_a": kernel_a}, repeat)
        t1, res1 = interleaved({"per_depth": per_depth, "kernel_b": kernel_b,
                                "separate": separate_spans}, 1)
        t2, _ = interleaved({"kernel_b": kernel_b}, 1)  # A-B-A: kernel_b around the separate run
    t.update(t1, kernel_b=min(t1["kernel_b"], t2["kernel_b"]))
    res.update(res1)
    rate_after = gemm_rate([(B * T, H, H), (B * T, H, F), (B * T, F, H)])
    rows = [("one plain forward pass", L, t["plain"]),
            ("(a) UNTUNED, all depths: one pass + head per layer [kernel]", L, t["kernel_a"]),
            ("(a) UNTUNED, one truncated pass per depth", L * (L + 1) // 2, t["per_depth"]),
            ("(b) all spans, reused prefix, spans stacked per j [kernel]",
             cost.base + cost.reused, t["kernel_b"]),
            ("(b) all spans, base pass + one pass per span", cost.base + cost.separate,
             t["separate"])]
    per_layer = res["kernel_a"]
    err_a = max(float((per_layer[1:] - res["per_depth"]).abs().max()),
                float((per_layer[L] - res["plain"]).abs().max()))
    err_b = max(float((v - res["separate"][span]).abs().max())
                for span, v in res["kernel_b"].items())

    print(f"BertForSequenceClassification from BertConfig({'quick' if q else 'base'}): L={L}, "
          f"H={H}, FFN={F}, random weights; batch {B} x {T} tokens "
          f"({int(mask.sum())} unpadded); {torch.get_num_threads()} threads; "
          f"load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} cores); plain pass and (a) kernel alternated, best of {repeat}; "
          f"(b) kernel run before and after the separate passes, best of 2")
    print(f"fp32 GEMM rate, model shapes: {rate / 1e9:.1f} GFLOP/s before, "
          f"{rate_after / 1e9:.1f} after (the 'of GEMM' column uses the first); one block: "
          f"{block_flops / 1e9:.1f} GFLOP; {len(spans(L))} spans (all but [1..{L}])\n")
    print("| method | block evaluations | seconds | vs one forward | GFLOP/s | of GEMM |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, evals, sec in rows:
        gf = evals * block_flops / sec
        print(f"| {name} | {evals} | {sec:.2f} | {sec / t['plain']:.2f}x | {gf / 1e9:.1f} | "
              f"{gf / rate:.0%} |")
    print(f"\n(a) kernel / one forward pass: {t['kernel_a'] / t['plain']:.3f}x (target <= 1.1); "
          f"one pass per depth / kernel: {t['per_depth'] / t['kernel_a']:.2f}x faster "
          f"(block evaluations {L * (L + 1) // 2} vs {L})")
    print(f"(b) separate passes / reused prefix: {t['separate'] / t['kernel_b']:.2f}x faster "
          f"(target >= 1.8; "
          f"block evaluations {cost.base + cost.separate} vs {cost.base + cost.reused}, "
          f"ratio {(cost.base + cost.separate) / (cost.base + cost.reused):.2f})")
    print(f"max |logit difference| kernel vs context-manager passes: (a) {err_a:.1e}, "
          f"(b) {err_b:.1e} (float rounding only)")


if __name__ == "__main__":
    main()
