"""Command line: ``python -m layerscope.cli {main,fetch,finetune,tasks,models,sweep,gallery}``.

``main`` is the project's main job on the offline default (README command 1): the ``demo``
sweep, notebooks 01-05 on ``minilm-l6`` with the offline tasks, then the gallery
(``batch/main_job.py``). ``finetune`` fine-tunes (or loads) one configuration per seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# (the imports below read the settings above when they load transformers)
from . import assets  # noqa: E402
from .batch.command import add_parsers as add_batch_parsers  # noqa: E402
from .errors import LayerscopeError  # noqa: E402
from .finetune import (  # noqa: E402
    FinetuneConfig,
    load_or_train,
    summary_line,
    trace_steps,
)
from .models import MODELS  # noqa: E402
from .quiet import quiet_libraries  # noqa: E402
from .tasks import TASKS  # noqa: E402


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
    from .batch.main_job import run_main_job  # papermill + the gallery: only this command

    return run_main_job(args.grid, out=args.out, workers=args.workers, only=args.only)


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

    m = sub.add_parser("main", help="the main job: the demo sweep (notebooks 01-05), gallery",
                       description="Runs the grid (default: demo, the offline default: "
                                   "notebooks 01-05 on minilm-l6 and the offline tasks) as a "
                                   "sweep, printing each run's progress and findings, then "
                                   "writes the results table and the gallery. Finished runs "
                                   "are skipped: a second call takes seconds.")
    m.add_argument("--grid", default="demo", help="a shipped grid or a grid YAML file")
    m.add_argument("--out", default=None, help="sweep folder (default: <home>/runs/<grid>)")
    m.add_argument("--workers", type=int, default=1,
                   help="runs at once (the demo's notebooks wait on 01's models: keep 1)")
    m.add_argument("--only", nargs="+", default=None, metavar="NOTEBOOK",
                   help="run only these notebooks of the grid")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with quiet_libraries():  # the libraries' expected noise; real warnings still show
            return args.func(args)
    except (LayerscopeError, ValueError, RuntimeError, KeyError) as e:
        # our errors name the value and the fix: one clean line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
