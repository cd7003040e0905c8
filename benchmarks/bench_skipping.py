"""Benchmark: skipping every contiguous span of blocks, the study kernel vs the naive passes.

Study 04 (Phang et al. 2021 §4.1) needs the model's logits with each span [i..j] of blocks
replaced by the identity: L(L+1)/2 - 1 spans (77 for L = 12; skipping all L blocks leaves no
model). The naive way is one full pass per span through the public context manager
(``with surgery.skipped(model, range(i, j + 1)): model(**batch)``), plus one plain pass for the
model itself: 78 passes for L = 12. ``surgery_kernels.all_span_skipping_logits`` saves twice:

1. Reuse of the hidden state entering the span. The model without blocks i..j maps hidden
   state i-1 through blocks j+1..L, and hidden state i-1 is already in the one base pass (which
   is also the model's own pass). Blocks 1..i-1 are not run again for every span: for L = 12,
   Σ (L - j) = 286 block evaluations after the base pass instead of Σ (L - (j - i + 1)) = 572
   (L = 6: 35 instead of 70). A block evaluation = one block applied to one batch of B rows.
   Exact: the same operations on the same inputs and shapes, so the logits are bit for bit
   those of the naive passes (asserted).
2. Spans that end at the same j run the same blocks j+1..L, so their inputs are stacked along
   the batch dimension and each of those blocks runs once per j on one larger batch: 66 block
   calls for L = 12 instead of 286 (L = 6: 15 instead of 35), the same block evaluations in
   larger GEMMs and fewer dispatches. Exact in arithmetic, but a GEMM with more rows may be
   blocked differently by MKL: bit-identical at the shapes below (asserted), not at every
   shape (8 rows x 24 tokens: up to 3e-7; in study 04 its last batch, 8 rows x 7 tokens: 7e-7,
   see ``--demo``). (Spans ending at L need no block: the head reads hidden state i-1.)

Rows measured in the same run, on the same model and batch: (naive) the 78 passes; (1 only)
the kernel with ``max_rows=B``, i.e. one block call per span; (1 + 2) the kernel as the study
runs it. Block evaluations are counted by a forward hook on every block (rows it was given / B),
next to the closed forms of ``surgery_kernels.span_block_evaluations``. Times are the best of
``--repeat`` rounds, the methods interleaved so that load drifting on shared cores hits them
alike; the ratios come from the same run.

Model: ``BertForSequenceClassification`` from a config (random weights, seed 0), MiniLM's width
(H = 384, 12 heads, FFN 1536) with ``--layers`` blocks (default 12; the demo's minilm-l6 has 6),
one batch of ``--batch`` sequences of up to ``--seq`` tokens with random lengths (padding is
exercised), eval mode, ``torch.inference_mode``.

``--demo``: instead, the study's own case: the demo's fine-tuned minilm-l6 (seed 0, from the
cache: run ``layerscope main --only 01_finetune`` first) on study 04's 1,000 movies validation
rows in its length-sorted batches of 32 (the last one 8), all three methods once, compared batch
by batch.

Run: ``python benchmarks/bench_skipping.py [--layers 12] [--batch 32] [--seq 48] [--repeat 3]``
(about a minute on 2 cores; ``--quick``: 6 layers, batch 16 x 24, seconds; ``--demo``: ~3 min).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import transformers as tr

from layerscope.adapters import EncoderAdapter
from layerscope.surgery import skipped
from layerscope.surgery_kernels import all_span_skipping_logits, span_block_evaluations, spans


def count_blocks(model, batch_rows: int):
    """Forward hooks on every block: returns (counter dict, remove function). counter["evals"]
    adds rows / batch_rows per block call, counter["calls"] adds 1."""
    counter = {"evals": 0.0, "calls": 0}

    def hook(_module, args):
        counter["evals"] += args[0].shape[0] / batch_rows
        counter["calls"] += 1

    handles = [b.register_forward_pre_hook(hook) for b in EncoderAdapter(model).blocks()]
    return counter, lambda: [h.remove() for h in handles]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=None, help="blocks L (default 12; quick 6)")
    p.add_argument("--batch", type=int, default=None, help="sequences (default 32; quick 8)")
    p.add_argument("--seq", type=int, default=None, help="tokens at most (default 48; quick 24)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds, best kept")
    p.add_argument("--quick", action="store_true", help="6 layers, batch 16 x 24")
    p.add_argument("--demo", action="store_true", help="the demo's fine-tuned minilm-l6 on "
                   "study 04's validation batches")
    args = p.parse_args()
    if args.demo:
        return demo()
    L = args.layers or (6 if args.quick else 12)
    B, T = args.batch or (16 if args.quick else 32), args.seq or (24 if args.quick else 48)
    cfg = tr.BertConfig(hidden_size=384, num_hidden_layers=L, num_attention_heads=12,
                        intermediate_size=1536, num_labels=2)
    torch.manual_seed(0)
    model = tr.BertForSequenceClassification(cfg).eval()
    ids = torch.randint(1000, cfg.vocab_size, (B, T))
    lengths = torch.randint(T // 2, T + 1, (B,))
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}

    def naive():
        out = {(0, 0): model(**batch).logits}  # the model itself: the 78th pass for L = 12
        for i, j in spans(L):
            with skipped(model, range(i, j + 1)):
                out[(i, j)] = model(**batch).logits
        return out

    def reuse_only():
        return all_span_skipping_logits(model, batch, max_rows=B)

    def kernel():
        return all_span_skipping_logits(model, batch)

    methods = {"naive": naive, "reuse_only": reuse_only, "kernel": kernel}
    load0 = os.getloadavg()
    best, res, counts = dict.fromkeys(methods, float("inf")), {}, {}
    with torch.inference_mode():
        model(**batch)  # warm-up (first-call allocations, mask path, output hooks)
        for name, fn in methods.items():  # one counted round (hooks cost a little: not timed)
            counter, remove = count_blocks(model, B)
            res[name] = fn()
            remove()
            counts[name] = counter
        for _ in range(args.repeat):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                out = fn()
                best[name] = min(best[name], time.perf_counter() - t0)
                assert all(torch.equal(out[s], res[name][s]) for s in res[name]), name

    # the same numbers bit for bit: every span's logits, and the model's own from the base pass
    ref, diff = res["naive"], {}
    for name in ("reuse_only", "kernel"):
        assert set(res[name]) == set(ref) - {(0, 0)}, name
        bad = [s for s in res[name] if not torch.equal(res[name][s], ref[s])]
        if bad:
            diff[name] = (len(bad), max(float((res[name][s] - ref[s]).abs().max()) for s in bad))
    with torch.inference_mode():
        base = EncoderAdapter(model)
        states = base.hidden_states(ids, mask, batch["token_type_ids"])
        assert torch.equal(base.head(states[L]), ref[(0, 0)]), "base pass != the model's pass"

    cost = span_block_evaluations(L)
    expect = {"naive": cost.base + cost.separate, "reuse_only": cost.base + cost.reused,
              "kernel": cost.base + cost.reused}
    calls = {"naive": cost.base + cost.separate, "reuse_only": cost.base + cost.reused,
             "kernel": cost.base + sum(L - j for j in range(1, L))}
    for name in methods:
        assert round(counts[name]["evals"]) == expect[name], (name, counts[name], expect[name])
        assert counts[name]["calls"] == calls[name], (name, counts[name], calls[name])

    print(f"BertForSequenceClassification, L={L} blocks, H=384, 12 heads, FFN 1536, random "
          f"weights; batch {B} x {T} tokens ({int(mask.sum())} unpadded); "
          f"{torch.get_num_threads()} threads; load average {load0[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after ({os.cpu_count()} cores); best of {args.repeat} "
          f"interleaved rounds; {len(spans(L))} spans + the model itself")
    print("\n| method | block calls | block evaluations (counted) | seconds | naive / this |")
    print("|---|---:|---:|---:|---:|")
    rows = [("naive: the model + one pass per span (surgery.skipped)", "naive"),
            ("saving 1: reused hidden state entering the span, one call per span", "reuse_only"),
            ("savings 1 + 2: ... and spans ending at j stacked (the study's kernel)", "kernel")]
    for label, name in rows:
        print(f"| {label} | {counts[name]['calls']} | {counts[name]['evals']:.0f} | "
              f"{best[name]:.2f} | {best['naive'] / best[name]:.2f}x |")
    share = expect["kernel"] / expect["naive"]
    print(f"\nblock evaluations: {expect['naive']} naive ({cost.base} + {cost.separate}) vs "
          f"{expect['kernel']} ({cost.base} + {cost.reused}): {share:.0%} of the work, "
          f"{1 - share:.0%} less")
    print(f"time: kernel / naive = {best['kernel'] / best['naive']:.3f} "
          f"({best['naive'] / best['kernel']:.2f}x faster); saving 1 alone "
          f"{best['naive'] / best['reuse_only']:.2f}x, saving 2 on top of it "
          f"{best['reuse_only'] / best['kernel']:.2f}x")
    for name in ("reuse_only", "kernel"):
        if name in diff:
            print(f"logits, {name}: {diff[name][0]} of {len(ref) - 1} spans differ from the "
                  f"naive passes by up to {diff[name][1]:.1e} (float rounding)")
        else:
            print(f"logits, {name}: all {len(ref) - 1} spans bit-identical to the naive passes")
    print("the base pass's head output is bit-identical to the model's own pass")
    assert not diff, f"not bit-identical at this shape: {diff}"


def demo() -> None:
    """Study 04's own model and batches: kernel vs reuse-only vs naive, batch by batch."""
    from layerscope import activations as acts
    from layerscope import cache, finetune
    from layerscope.studies.common import evaluation
    from layerscope.studies.skipping.run import SkippingConfig

    cfg = SkippingConfig()
    fcfg = cfg.finetune_configs()[0]
    if not cache.entry_dir("finetune", finetune.cache_key(fcfg)).exists():
        raise SystemExit("the demo's fine-tuned model is not cached: run "
                         "`layerscope main --only 01_finetune` first")
    model, tok = acts.encoder_and_tokenizer(finetune.load_or_train(fcfg, verbose=False))
    _, _, rows = acts.task_inputs(cfg.spec())
    es = evaluation.eval_set(cfg.task, cfg.split, rows, tok, cfg.resolved_max_length())
    L = EncoderAdapter(model).n_layers
    seconds = {"naive": 0.0, "reuse_only": 0.0, "kernel": 0.0}
    evals = dict.fromkeys(seconds, 0.0)
    differ = {"reuse_only": [], "kernel": []}
    load0 = os.getloadavg()
    with torch.inference_mode():
        for pos, b in es.batches:
            n = len(pos)
            methods = {
                "naive": lambda b=b: {s: _skip_pass(model, b, s) for s in spans(L)},
                "reuse_only": lambda b=b, n=n: all_span_skipping_logits(model, b, max_rows=n),
                "kernel": lambda b=b: all_span_skipping_logits(model, b)}
            out = {}
            for name, fn in methods.items():
                counter, remove = count_blocks(model, n)
                t0 = time.perf_counter()
                out[name] = fn()
                seconds[name] += time.perf_counter() - t0
                remove()
                evals[name] += counter["evals"]
            for name in differ:
                d = max(float((out[name][s] - out["naive"][s]).abs().max()) for s in spans(L))
                if d:
                    differ[name].append((n, int(b["input_ids"].shape[1]), d))
    cost = span_block_evaluations(L)
    print(f"study 04: minilm-l6 fine-tuned on movies (seed 0), {es.n} validation rows in "
          f"{len(es.batches)} batches, L={L}, {len(spans(L))} spans; {torch.get_num_threads()} "
          f"threads; load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after; one "
          f"round (hooks counting block calls on)")
    print(f"block evaluations per batch: naive {cost.separate}, kernel {cost.base} + "
          f"{cost.reused} (the base pass is also the model's own pass, which the naive way "
          f"adds as one more pass of {cost.base})")
    for name in seconds:
        print(f"  {name:10s} {seconds[name]:6.1f} s  {evals[name] / len(es.batches):5.1f} block "
              f"evaluations a batch  {seconds['naive'] / seconds[name]:.2f}x vs naive")
    for name, bad in differ.items():
        if not bad:
            print(f"{name}: every span of every batch bit-identical to the naive passes")
        else:
            print(f"{name}: {len(bad)} of {len(es.batches)} batches differ from the naive passes "
                  f"(rows, tokens, max |diff|): {bad[:6]}")


def _skip_pass(model, batch, span):
    i, j = span
    with skipped(model, range(i, j + 1)):
        return model(**batch).logits


if __name__ == "__main__":
    main()
