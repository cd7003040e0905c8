"""Benchmark: extractive QA and dependency parsing, fine-tuning and all-layer (UNTUNED) heads.

Issue 18 asks for the time per 1,000 examples of fine-tuning and of all-layer truncation for
each of the two kinds, tiny and small models. Measured in one run, on the same examples:

* **fine-tuning** (a training step: forward, loss, backward, AdamW), per 1,000 training
  examples (QA: windows; parsing: sentences), batches of ``--batch-size`` padded per batch
  (what ``finetune`` does) against the naive way: one example at a time with the gradient
  accumulated over the same batch (the same update);
* **all-layer heads** (UNTUNED truncation: the fine-tuned head on every layer's states), per
  1,000 evaluation examples: one forward pass with all hidden states per length-sorted batch,
  the head applied to each layer (QA: start/end logits, then the best span per question over
  its windows, ``qa.windows.best_spans``, vectorised; parsing: the biaffine scores and one
  Chu-Liu/Edmonds tree per sentence) against one example at a time through the same steps;
* the parts: QA's span search vectorised against explicit loops over (start, end) on the
  same logits, and parsing's tree decoding alone (its share of the all-layer time);
* **study 03's own UNTUNED pass** (``studies.common.structured``: ``untuned_outputs`` on
  length-sorted batches of 32, then every layer's per-question EM/F1 or per-sentence
  UAS/LAS counts), per 1,000 questions or sentences, against the same code with batches of
  one; both must give the same statistics (asserted).

Examples: tiny-squad's questions with their context followed by other contexts (about
``--context-words`` words, so long contexts give several windows of ``--max-length`` tokens,
stride max_length // 4); tiny-parse's sentences joined three by three into one tree (later
roots attached to the first), about 18 words. Models: tiny-bert and minilm-l6 (offline).

Run: ``python benchmarks/bench_qa_parsing.py [--n 256] [--max-length 128] [--batch-size 16]``;
``--quick`` (tiny-bert, a few examples) only checks that it runs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

import datasets
import numpy as np
import torch
import transformers as tr

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
tr.logging.set_verbosity_error()
tr.logging.disable_progress_bar()
datasets.disable_progress_bars()

from layerscope import encoding, models  # noqa: E402
from layerscope.encoding import BOOKKEEPING  # noqa: E402
from layerscope.parsing.mst import decode as decode_trees  # noqa: E402
from layerscope.qa.windows import best_spans  # noqa: E402
from layerscope.studies.common import structured  # noqa: E402
from layerscope.tasks import get_task, load_split  # noqa: E402

QA, PARSE = get_task("tiny-squad"), get_task("tiny-parse")


# --------------------------------------------------------------------------- examples
def qa_rows(n: int, context_words: int) -> datasets.Dataset:
    """n questions, each context followed by others up to ~context_words words (the answer's
    offsets are unchanged: it stays in the first part)."""
    base = load_split(QA, "train")
    contexts = list(base["context"])
    rows = []
    for i in range(n):
        r = base[i % len(base)]
        ctx, j = r["context"], i + 1
        while len(ctx.split()) < context_words:
            ctx += " " + contexts[j % len(contexts)]
            j += 1
        rows.append({"id": f"{r['id']}-{i}", "question": r["question"], "context": ctx,
                     "answers": r["answers"]})
    return datasets.Dataset.from_list(rows)


def parse_rows(n: int) -> datasets.Dataset:
    """n trees of three tiny-parse sentences each (the 2nd and 3rd roots under the 1st)."""
    base = load_split(PARSE, "train")
    out = {"tokens": [], "heads": [], "deprels": []}
    for i in range(n):
        tokens, heads, rels, root = [], [], [], 0
        for k in range(3):
            r = base[(3 * i + k) % len(base)]
            off = len(tokens)
            if k == 0:
                root = list(r["heads"]).index(0) + 1
            for h, d in zip(r["heads"], r["deprels"], strict=True):
                heads.append(h if k == 0 else (root if h == 0 else h + off))
                rels.append(d)
            tokens += list(r["tokens"])
        out["tokens"].append(tokens)
        out["heads"].append(heads)
        out["deprels"].append(rels)
    return datasets.Dataset.from_dict(out)


def items_of(ds: datasets.Dataset) -> list[dict]:
    keep = [c for c in ds.column_names if c not in BOOKKEEPING]
    return [{c: ds[i][c] for c in keep} for i in range(len(ds))]


# --------------------------------------------------------------------------- fine-tuning
def train_seconds(model, collate, items: list[dict], batch_size: int, steps: int,
                  one_at_a_time: bool) -> float:
    """Seconds per 1,000 training examples over ``steps`` updates (after one warm-up)."""
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def update(batch):
        if one_at_a_time:
            for x in batch:
                (model(**collate([x])).loss / len(batch)).backward()
        else:
            model(**collate(batch)).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    update(items[:batch_size])
    t0 = time.perf_counter()
    for s in range(steps):
        update([items[(s * batch_size + k) % len(items)] for k in range(batch_size)])
    return 1000 * (time.perf_counter() - t0) / (steps * batch_size)


# --------------------------------------------------------------------------- all layers
def batches(items: list[dict], size: int) -> list[list[int]]:
    order = np.argsort([-len(x["input_ids"]) for x in items], kind="stable")
    return [order[s:s + size].tolist() for s in range(0, len(order), size)]


def model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in (
        "start_positions", "end_positions", "heads", "deprels", "word_index")}


@torch.inference_mode()
def qa_all_layers(model, collate, items, windows, size: int, n: int | None = None
                  ) -> tuple[float, float]:
    """(seconds of the forward passes and heads of the first ``n`` windows (all: None), of
    the span search over all windows) for every layer."""
    n_layers = model.config.num_hidden_layers + 1
    t = windows.offsets.shape[1]
    # zeros: windows not run (the naive timing runs a few) still have finite logits
    start = np.zeros((n_layers, len(items), t), dtype=np.float32)
    end = start.copy()
    t0 = time.perf_counter()
    for idx in batches(items[:n] if n else items, size):
        b = collate([items[i] for i in idx])
        hs = model.base_model(**model_inputs(b), output_hidden_states=True).hidden_states
        for k, h in enumerate(hs):
            logits = model.qa_outputs(h)
            start[k, idx, :h.shape[1]] = logits[..., 0].float().numpy()
            end[k, idx, :h.shape[1]] = logits[..., 1].float().numpy()
    t1 = time.perf_counter()
    for k in range(n_layers):
        best_spans(windows, start[k], end[k])
    return t1 - t0, time.perf_counter() - t1


@torch.inference_mode()
def parse_all_layers(model, collate, items, size: int) -> tuple[float, float]:
    """(seconds of the forward passes and biaffine scores, of the tree decoding) per layer."""
    forward = decoding = 0.0
    for idx in batches(items, size):
        t0 = time.perf_counter()
        b = collate([items[i] for i in idx])
        hs = model.base_model(**model_inputs(b), output_hidden_states=True).hidden_states
        scores = [model.parse_head(h, b["word_index"]) for h in hs]
        t1 = time.perf_counter()
        for s in scores:
            decode_trees(s.arc.float().numpy(), s.lengths.numpy())
        forward += t1 - t0
        decoding += time.perf_counter() - t1
    return forward, decoding


def loop_spans(windows, start, end, m: int, max_len: int = 30) -> None:
    """The naive span search: every (start, end) of the first ``m`` windows by Python loops."""
    for i in range(m):
        ctx = np.flatnonzero(windows.context_mask[i])
        best = -np.inf
        for s in ctx:
            for e in ctx[(ctx >= s) & (ctx < s + max_len)]:
                best = max(best, start[i, s] + end[i, e])


def study_pass(model, task, rows, tok, max_length: int, size: int) -> tuple[float,
                                                                            np.ndarray]:
    """(seconds, statistics [L+1, n, q]) of study 03's UNTUNED pass on ``rows`` in batches of
    ``size`` windows or sentences, every layer scored."""
    ss = structured.structured_set(task, "benchmark", np.arange(len(rows)), tok, max_length,
                                   batch_size=size, data=rows)
    t0 = time.perf_counter()
    out = structured.untuned_outputs(model, ss)
    stats = np.stack([ss.stats(x) for x in out])
    return time.perf_counter() - t0, stats


# --------------------------------------------------------------------------- main
def run(name: str, args) -> list[tuple]:
    out = []
    for task in (QA, PARSE):
        tok = models.load_tokenizer(name, for_words=task is PARSE)
        collate = encoding.collator_for(task, tok)
        torch.manual_seed(0)
        model = models.load_for_task(name, task)
        # tiny-bert's position table has 64 rows: each model gets at most what it takes
        max_length = min(args.max_length, models.model_max_length(model, tok))
        if task is QA:
            rows = qa_rows(args.n, args.context_words)
            windows = encoding.qa_windows(rows, tok, max_length)
            ds = encoding.qa_dataset(task, windows, max_length)
            unit = (f"windows of {max_length} tokens, stride {encoding.qa_stride(max_length)} "
                    f"({len(ds) / len(rows):.1f} per question)")
        else:
            ds = encoding.encode_split(task, parse_rows(args.n), tok, max_length)
            unit = f"sentences ({np.mean([len(w) for w in ds['word_index']]):.0f} words)"
        items = items_of(ds)
        steps = max(1, min(args.steps, len(items) // args.batch_size))
        fast = train_seconds(model, collate, items, args.batch_size, steps, False)
        slow = train_seconds(model, collate, items, args.batch_size, steps, True)
        out.append((task.kind, name, f"fine-tuning, per 1,000 {unit}", fast, slow))
        model.eval()
        n_naive = min(len(items), args.naive_n)
        if task is QA:
            f, s = qa_all_layers(model, collate, items, windows, 32)
            one_f = qa_all_layers(model, collate, items, windows, 1, n_naive)[0]
            per = 1000 / len(items)
            out.append((task.kind, name, "all layers: forward + heads, per 1,000 windows",
                        f * per, one_f * 1000 / n_naive))
            n_layers = model.config.num_hidden_layers + 1
            lo = np.random.default_rng(0).standard_normal(
                windows.offsets.shape[:2]).astype(np.float32)
            m = min(len(windows), args.naive_n * 4)
            t0 = time.perf_counter()
            loop_spans(windows, lo, lo, m)
            loops = (time.perf_counter() - t0) * len(windows) / m
            out.append((task.kind, name, f"span search ({n_layers} layers), per 1,000 windows",
                        s * per, loops * per * n_layers))
            data = rows
        else:
            f, d = parse_all_layers(model, collate, items, 32)
            one_f = one_d = 0.0
            for i in range(n_naive):
                a, b = parse_all_layers(model, collate, [items[i]], 1)
                one_f, one_d = one_f + a, one_d + b
            per = 1000 / len(items)
            out.append((task.kind, name, "all layers: forward + biaffine, per 1,000 sentences",
                        f * per, one_f * 1000 / n_naive))
            out.append((task.kind, name, "all layers: tree decoding, per 1,000 sentences",
                        d * per, one_d * 1000 / n_naive))
            data = parse_rows(args.n)
        n_study = min(len(data), args.naive_n)
        fast_s, fast_stats = study_pass(model, task, data, tok, max_length, 32)
        sub = data.select(range(n_study))
        slow_s, slow_stats = study_pass(model, task, sub, tok, max_length, 1)
        # the same units (padding moves a logit by float rounding only): the same scores
        if not np.array_equal(fast_stats[:, :n_study], slow_stats):
            raise AssertionError(f"{task.name}: batched and one-at-a-time study passes "
                                 f"disagree")
        unit = "questions" if task is QA else "sentences"
        out.append((task.kind, name, f"study 03 UNTUNED pass, every layer scored, per 1,000 "
                    f"{unit}", fast_s * 1000 / len(data), slow_s * 1000 / n_study))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256, help="examples per kind")
    ap.add_argument("--naive-n", type=int, default=32, help="examples run one at a time")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--context-words", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8, help="training updates timed")
    ap.add_argument("--models", default=None, help="default tiny-bert,minilm-l6 (--quick: "
                    "tiny-bert)")
    ap.add_argument("--quick", action="store_true", help="tiny-bert, a few examples: a check")
    args = ap.parse_args()
    if args.quick:
        args.n, args.naive_n, args.steps = 24, 4, 1
        args.models = args.models or "tiny-bert"
        args.max_length, args.context_words, args.batch_size = 32, 40, 8
    args.models = args.models or "tiny-bert,minilm-l6"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; max_length "
          f"{args.max_length} or the model's limit, batch "
          f"{args.batch_size}, {args.n} examples per kind, naive on {args.naive_n}\n")
    print("| kind | model | what | batched s | naive s | naive / batched |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        for kind, model, what, fast, slow in run(name, args):
            print(f"| {kind} | {model} | {what} | {fast:.3f} | {slow:.3f} | "
                  f"{slow / fast:.1f}x |")


if __name__ == "__main__":
    main()
