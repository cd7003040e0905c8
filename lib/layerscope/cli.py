"""Command line: ``python -m layerscope.cli {main,fetch,finetune,tasks,models,sweep,gallery}``.

``main`` is the project's main job on the offline default (README): fine-tune ``minilm-l6`` on
``movies`` with the ``demo`` preset for two seeds, print validation metrics next to the
majority-class baseline and the time taken, and write a summary into ``<home>/runs/main/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import datasets  # noqa: E402  (after the environment settings above, which they read)
import transformers  # noqa: E402

from . import assets  # noqa: E402
from .batch.command import add_parsers as add_batch_parsers  # noqa: E402
from .errors import LayerscopeError  # noqa: E402
from .finetune import (  # noqa: E402
    PRESETS,
    FinetuneConfig,
    cache_key,
    load_or_train,
    summary_line,
    trace_steps,
)
from .models import MODELS  # noqa: E402
from .paths import runs_dir  # noqa: E402
from .studies.geometry import GeometryConfig, run_geometry  # noqa: E402
from .studies.similarity import SimilarityConfig, run_similarity  # noqa: E402
from .studies.skipping import SkippingConfig, run_skipping  # noqa: E402
from .studies.truncation import TruncationConfig, run_truncation  # noqa: E402
from .tasks import TASKS, get_task  # noqa: E402


def _cmd_fetch(args) -> int:
    for name in args.assets or sorted(assets.ASSETS):
        print(f"{name}: {assets.extracted(name)}")
    return 0


def _cmd_tasks(args) -> int:
    for spec in TASKS.values():
        print(f"{spec.name:15s} {spec.source:8s} {spec.kind:16s} {','.join(spec.metrics):22s} "
              f"{spec.description}")
    return 0


def _cmd_models(args) -> int:
    for spec in MODELS.values():
        print(f"{spec.name:42s} {spec.source:8s} {spec.arch:8s} {spec.description}")
    return 0


def _finetune_all(task, model, preset, seeds, max_steps) -> list:
    results = []
    for i, seed in enumerate(seeds):
        cfg = FinetuneConfig(task=task, model=model, preset=preset, seed=seed, max_steps=max_steps)
        if i == 0:  # snapshots of the first seed, for drift (02) and geometry over training (05)
            cfg = dataclasses.replace(cfg, save_steps=trace_steps(cfg))
        res = load_or_train(cfg, verbose=sys.stderr.isatty())
        print(f"  {summary_line(res)}" + (" [from cache]" if res.cached else ""), flush=True)
        results.append(res)
    return results


def _cmd_finetune(args) -> int:
    _finetune_all(args.task, args.model, args.preset, args.seeds, args.max_steps)
    return 0


def _cmd_main(args) -> int:
    t_start = time.time()
    task = get_task(args.task)
    print(f"layerscope main job: {args.model} on {args.task}, preset {args.preset}, "
          f"seeds {args.seeds} (steps: {args.max_steps or PRESETS[args.preset].max_steps})",
          flush=True)
    wanted = [n for n in args.studies if n in STUDY_STEPS]
    print(f"1/{len(wanted) + 1} fine-tuning (cached runs are reused; an interrupted run "
          "resumes)", flush=True)
    results = _finetune_all(args.task, args.model, args.preset, args.seeds, args.max_steps)
    out = (Path(args.out) if args.out else
           runs_dir() / "main" / f"{args.task}-{args.model.replace('/', '_')}-{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    main_metric = task.primary_metric
    rows = [{"seed": r.config.seed, **r.metrics, "baseline_" + main_metric:
             r.baseline.get(main_metric), "train_seconds": r.meta["wall_seconds"],
             "checkpoint": str(r.model_dir), "key": cache_key(r.config)} for r in results]
    print("\n" + _table(rows, ["seed", *task.metrics, "baseline_" + main_metric,
                               "train_seconds"]), flush=True)
    studies = {}
    wanted = [n for n in args.studies if n in STUDY_STEPS]
    for k, name in enumerate(wanted, start=2):
        title, step = STUDY_STEPS[name]
        print(f"\n{k}/{len(wanted) + 1} {title}", flush=True)
        t0 = time.time()
        result = step(args)
        if result is None:
            print("  skipped (not defined for this task or seed count)", flush=True)
            continue
        files = result.save(out / name)
        print(result.verdict(), flush=True)
        print(f"  figures: {out / name} ({time.time() - t0:.0f} s)", flush=True)
        studies[name] = {"findings": result.findings(), "record": result.to_record(),
                         "files": {kk: str(v) for kk, v in files.items()}}
    total = time.time() - t_start
    summary = {"task": args.task, "model": args.model, "preset": args.preset, "runs": rows,
               **studies, "wall_seconds": round(total, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"\nwrote {out}/summary.json; total wall time {total:.0f}s", flush=True)
    bad = [r for r in rows if task.kind != "regression"
           and r[main_metric] <= (r["baseline_" + main_metric] or 0)]
    if bad:
        print(f"WARNING: seeds {[r['seed'] for r in bad]} did not beat the majority baseline")
        return 1
    return 0


def _similarity_step(args):
    """Phang et al.'s four comparisons (linear CKA of CLS) on the main job's two seeds."""
    if len(args.seeds) < 2:
        return None
    return run_similarity(SimilarityConfig(
        task=args.task, model=args.model, preset=args.preset, seeds=tuple(args.seeds[:2]),
        n_examples=args.n_examples, max_steps=args.max_steps), verbose=sys.stderr.isatty())


def _truncation_step(args):
    """UNTUNED / TUNED / TUNEDORIG truncation of the first seed (+ Merchant ablations)."""
    return run_truncation(TruncationConfig(
        task=args.task, model=args.model, preset=args.preset, seeds=(args.seeds[0],),
        max_steps=args.max_steps, n_examples=args.n_examples, drop_top=tuple(args.drop_top),
        freeze_bottom=tuple(args.freeze_bottom)), verbose=sys.stderr.isatty())


def _skipping_step(args):
    """Every contiguous span of blocks skipped, first seed (same validation examples)."""
    return run_skipping(SkippingConfig(
        task=args.task, model=args.model, preset=args.preset, seeds=(args.seeds[0],),
        max_steps=args.max_steps, n_examples=args.n_examples), verbose=sys.stderr.isatty())


OUT_OF_DOMAIN = {"movies": ("tweets", "amazon", "nyt")}  # Merchant et al.: same labels, new text


def _geometry_step(args):
    """DirectProbe, probes and out-of-domain change before/during/after fine-tuning; the
    checkpoints are the first seed's trace snapshots (saved by the fine-tuning step)."""
    kind = get_task(args.task).kind
    if kind not in ("classification", "pair", "tagging"):
        return None
    return run_geometry(GeometryConfig(
        task=args.task, model=args.model, preset=args.preset, seeds=tuple(args.seeds[:2]),
        max_steps=args.max_steps, n_test=args.n_examples,
        pooling="word" if kind == "tagging" else "cls",
        out_of_domain=OUT_OF_DOMAIN.get(args.task, ())), verbose=sys.stderr.isatty())


# study name -> (what the step prints, function(args) -> StudyResult or None). The steps share
# the validation examples (n_examples), so their representations come from one cache entry.
STUDY_STEPS = {
    "similarity": ("layer similarity (CKA) of the untuned and fine-tuned models",
                   _similarity_step),
    "truncation": ("truncation: the task head on each layer (UNTUNED, TUNED, TUNEDORIG)",
                   _truncation_step),
    "skipping": ("skipping every contiguous span of blocks", _skipping_step),
    "geometry": ("geometry: DirectProbe, probes, out-of-domain change over fine-tuning",
                 _geometry_step),
}


def _table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    rows = [{k: (f"{v:.1f}" if k.endswith("seconds") and isinstance(v, float) else v)
             for k, v in r.items()} for r in rows]

    widths = [max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in cols]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)),
             "-|-".join("-" * w for w in widths)]
    lines += [" | ".join(fmt(r.get(c)).ljust(w) for c, w in zip(cols, widths, strict=True))
              for r in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="layerscope", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, task="movies", model="minilm-l6", preset="demo", seeds=(0, 1)):
        sp.add_argument("--task", default=task, help="task name (see `layerscope tasks`)")
        sp.add_argument("--model", default=model,
                        help="model name, hub id or local directory (see `layerscope models`)")
        sp.add_argument("--preset", default=preset, help="demo | phang2021 | zhou2022 | smoke")
        sp.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
        sp.add_argument("--max-steps", type=int, default=None, help="override the preset")

    m = sub.add_parser("main", help="the main job on the offline default")
    common(m)
    m.add_argument("--out", default=None, help="run folder (default: <home>/runs/main/...)")
    m.add_argument("--studies", nargs="*", default=list(STUDY_STEPS),
                   help=f"studies after fine-tuning (default: all of {list(STUDY_STEPS)}; "
                        "none: fine-tune only)")
    m.add_argument("--drop-top", type=int, nargs="*", default=[],
                   help="truncation: Merchant et al. ablation fine-tunes with the top k blocks "
                        "removed (e.g. 2 4)")
    m.add_argument("--freeze-bottom", type=int, nargs="*", default=[],
                   help="truncation: ablation fine-tunes with blocks 1..k frozen (e.g. 2 4)")
    m.add_argument("--n-examples", type=int, default=1000,
                   help="validation sentences for the similarity step (Phang et al. use all)")
    m.set_defaults(func=_cmd_main)
    f = sub.add_parser("finetune", help="fine-tune (or load from the cache)")
    common(f, seeds=(0,))
    f.set_defaults(func=_cmd_finetune)
    fe = sub.add_parser("fetch", help="fetch + verify the offline assets")
    fe.add_argument("assets", nargs="*", help="subset of: minilm vader brown")
    fe.set_defaults(func=_cmd_fetch)
    sub.add_parser("tasks", help="list tasks").set_defaults(func=_cmd_tasks)
    sub.add_parser("models", help="list models").set_defaults(func=_cmd_models)
    add_batch_parsers(sub)  # `sweep GRID ...` and `gallery [SWEEP ...]`
    return p


def quiet_libraries() -> None:
    """Silence load reports and progress bars of transformers/datasets (keeps output readable)."""
    # datasets' sort() trips a pyarrow deprecation notice that says nothing about our results
    warnings.filterwarnings("ignore", category=FutureWarning, module="pyarrow")
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        return args.func(args)
    except (LayerscopeError, ValueError, RuntimeError, KeyError) as e:
        # our errors name the value and the fix: one clean line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
