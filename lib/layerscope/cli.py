"""Command line: ``layerscope COMMAND`` (or ``python -m layerscope.cli COMMAND``).

``main`` is the project's main job on the offline default (README command 1): the ``demo``
sweep, notebooks 01-05 on ``minilm-l6`` with the offline tasks, then the gallery
(``batch/main_job.py``). ``finetune`` fine-tunes (or loads) one configuration per seed;
``sweep`` and ``gallery`` come from ``batch/command.py``.

Light on purpose: building the parser imports argparse and nothing heavy, so ``layerscope
--help`` and ``--version`` answer at once (tests/test_cli.py checks that torch is not
imported); each command imports torch, transformers, datasets or papermill when it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from . import __version__

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Literal here so that building the parser imports nothing; tests/test_cli.py checks them
# against finetune.PRESET_NAMES and assets.ASSETS.
PRESET_NAMES = ("phang2021", "zhou2022", "demo", "smoke")
ASSET_NAMES = ("brown", "minilm", "vader")  # fetched by default
ON_DEMAND = ("mpnet",)  # fetched when named (or on first use): the 12-layer mpnet-base, 405 MB
# Commands that load no model library: they run without the quiet_libraries() block, which
# itself imports transformers and datasets.
LIGHT_COMMANDS = ("fetch", "tasks", "models", "gallery", "cache")
# Modules that only an extra installs (pyproject.toml), for the message when one is missing.
EXTRA_OF_MODULE = {
    "papermill": "sweep", "ipykernel": "sweep", "dask": "sweep", "distributed": "sweep",
    "dask_jobqueue": "cluster",
    "jupyterlab": "notebooks", "ipywidgets": "notebooks", "IPython": "notebooks",
    "jupytext": "notebooks",
}

DESCRIPTION = "layerscope: how fine-tuning changes transformer encoders, layer by layer."
EPILOG = ("Start with `layerscope main`: the demo on the offline model minilm-l6 (no internet "
          "needed once the offline data is fetched). `layerscope COMMAND --help` explains a "
          "command's options. Layers are numbered as in Hugging Face hidden_states: 0 is the "
          "embedding output, i the output of block i.")


def _cmd_fetch(args) -> int:
    from . import assets
    from .errors import check_choice

    names = [assets.MODEL_ASSETS.get(n, n) for n in args.assets]  # mpnet-base -> mpnet
    for name in names:
        check_choice(name, ASSET_NAMES + ON_DEMAND, "asset")
    for name in names or ASSET_NAMES:  # every extracted file's sha256, damaged ones repaired
        print(f"{name}: {assets.fetch(name)}")
    return 0


def _cmd_tasks(args) -> int:
    # light: the registry and the cards only (no torch; a card's data is not read here)
    from .task_cards import Card, cards_dir, list_cards
    from .tasks import TASKS

    for spec in TASKS.values():
        print(f"{spec.name:15s} {spec.source:8s} {spec.kind:16s} {','.join(spec.metrics):22s} "
              f"{spec.description}")
    cards = list_cards()
    print(f"\nYour task cards ({cards_dir()}):" if cards else
          f"\nNo task cards in {cards_dir()} (a card there, NAME.yaml, is the task NAME). Any "
          "--task / task parameter also takes a path: a .csv, .tsv, .jsonl, .json, .parquet, "
          ".conllu or .conllulex file, a dataset folder, or a card (.yaml).")
    for name, path, card in cards:
        if not isinstance(card, Card):
            print(f"{name:15s} card     ERROR: {card}")
            continue
        kind = card.options.get("kind", "(from data)")
        metrics = ",".join(card.options.get("metrics", ["(default)"]))
        print(f"{name:15s} card     {kind:16s} {metrics:22s} "
              f"{card.description or card.location or path.name}")
    return 0


def _cmd_models(args) -> int:
    from .adapters import family_table
    from .models import MODELS

    for spec in MODELS.values():
        print(f"{spec.name:42s} {spec.source:8s} {spec.arch:8s} {spec.description}")
    print("\nFamilies (any model that returns hidden_states runs fine-tuning, similarity, "
          "probes and geometry;\ntruncation, skipping and the ablations need the family's "
          "adapter, lib/layerscope/adapters/):")
    for row in family_table():
        if not row["surgery"]:
            what = "hidden-state studies only (add an adapter: adapters/base.py)"
        else:  # heads: what truncation/skipping evaluate; tuned: what TUNED/TUNEDORIG retrain
            untuned = [h for h in row["heads"] if h not in row["tuned_head_kinds"]]
            what = f"all studies; heads {', '.join(row['heads'])}" + (
                f" (truncation UNTUNED only for: {', '.join(untuned)})"
                if untuned else "")
        print(f"  {row['family']:11s} {', '.join(row['model_types']):32s} {what}")
    return 0


def _cmd_cache(args) -> int:
    from . import cache

    report = cache.survey()
    print(f"cache: {report['root']}")
    for kind, st in report["kinds"].items():
        print(f"  {kind:12s} {st['entries']:5d} entries  {cache.human_size(st['bytes']):>9s}")
    for label, key in (("corrupt (moved aside, never used)", "corrupt"),
                       ("unfinished (an interrupted run resumes from it)", "unfinished"),
                       ("leftovers of interrupted writes", "leftovers")):
        if report[key]:
            total = sum(size for _, size in report[key])
            print(f"{label}: {len(report[key])}, {cache.human_size(total)}")
            for p, size in report[key]:
                print(f"  {p}  {cache.human_size(size)}")
    if args.clean:
        removed = cache.clean(report)
        print(f"removed {len(removed)} corrupt entries and leftovers, "
              f"{cache.human_size(sum(size for _, size in removed))}")
    elif report["corrupt"] or report["leftovers"]:
        print("`layerscope cache --clean` removes the corrupt entries and leftovers")
    return 0


def _finetune_all(task, model, preset, seeds, max_steps, device="auto") -> list:
    from .finetune import FinetuneConfig, load_or_train, summary_line, trace_steps

    results = []
    for i, seed in enumerate(seeds):
        cfg = FinetuneConfig(task=task, model=model, preset=preset, seed=seed, max_steps=max_steps,
                             device=device)
        if i == 0:  # snapshots of the first seed, for drift (02) and geometry over training (05)
            cfg = dataclasses.replace(cfg, save_steps=trace_steps(cfg))
        res = load_or_train(cfg, verbose=sys.stderr.isatty())
        print(f"  {summary_line(res)}" + (" [from cache]" if res.cached else ""), flush=True)
        results.append(res)
    return results


def _cmd_finetune(args) -> int:
    _finetune_all(args.task, args.model, args.preset, args.seeds, args.max_steps, args.device)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .batch.command import (  # argparse only (see its docstring)
        add_device_argument,
        add_main_parser,
        add_parsers,
    )

    p = argparse.ArgumentParser(prog="layerscope", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"layerscope {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_main_parser(sub)  # `main`: the main job
    f = sub.add_parser(
        "finetune", help="fine-tune a model on a task, one run per seed (cached: a run done "
                         "before is loaded, not trained again)",
        description="Fine-tune a model on a task once per seed and print each run's validation "
                    "scores. Runs are cached by their settings, so asking again loads them. "
                    "The first seed also keeps a few snapshots taken during training (the "
                    "notebooks compare them).")
    f.add_argument("--task", default="movies",
                   help="the task to train on (default: movies, offline): a name from "
                        "`layerscope tasks` (the registry and your task cards), or your own "
                        "data by path: a .csv/.tsv/.jsonl/.json/.parquet/.conllu/.conllulex "
                        "file, a dataset folder, or a task card (.yaml)")
    f.add_argument("--model", default="minilm-l6",
                   help="the model to start from: a name from `layerscope models`, a hub id "
                        "(org/name) or a local folder (default: minilm-l6, offline)")
    f.add_argument("--preset", default="demo", choices=PRESET_NAMES,
                   help="training settings: demo (minutes on a laptop CPU), phang2021 or "
                        "zhou2022 (the papers' settings), smoke (a few steps, for tests); "
                        "default: demo")
    f.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                   help="random seeds, one run each (default: 0)")
    f.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop training after N steps (default: what the preset says)")
    add_device_argument(f)
    f.set_defaults(func=_cmd_finetune)
    fe = sub.add_parser(
        "fetch", help="download the offline model and data and check them",
        description="Download the offline assets (the minilm-l6 model and two corpora) into "
                    "the layerscope home folder and check their sha256. Everything fetches "
                    "itself on first use anyway; this does it up front (e.g. before going "
                    "offline).")
    fe.add_argument("assets", nargs="*", metavar="ASSET",
                    help=f"only these: {', '.join(ASSET_NAMES)}, or {', '.join(ON_DEMAND)} "
                         "(mpnet-base, the 12-layer model, ≈405 MB: only when named; default: "
                         f"{', '.join(ASSET_NAMES)})")
    fe.set_defaults(func=_cmd_fetch)
    sub.add_parser("tasks", help="list the tasks: name, data source, kind, metrics",
                   description="List the tasks by name, with where their data comes from "
                               "(offline, the hub, or a test fixture), their kind, metrics "
                               "and a description; then your task cards in "
                               "$LAYERSCOPE_HOME/tasks (a broken card with its error)."
                   ).set_defaults(func=_cmd_tasks)
    sub.add_parser("models", help="list the models by name: hub, offline and tiny test models",
                   description="List the models layerscope knows by name, with where they "
                               "come from and their architecture. Any hub id (org/name) or "
                               "local model folder works too.").set_defaults(func=_cmd_models)
    c = sub.add_parser(
        "cache", help="what the cache holds: sizes, corrupt entries moved aside, leftovers",
        description="List the cache of the layerscope home: finished entries and their size "
                    "per kind, corrupt entries moved aside (*.corrupt-*, never used again), "
                    "unfinished ones (an interrupted fine-tuning run resumes from them) and "
                    "leftovers of interrupted writes. --clean removes the corrupt entries and "
                    "the leftovers; finished and unfinished entries are kept.")
    c.add_argument("--clean", action="store_true",
                   help="remove the corrupt entries and leftovers listed")
    c.set_defaults(func=_cmd_cache)
    add_parsers(sub)  # `sweep GRID ...` and `gallery [SWEEP ...]`
    return p


def _missing_extra(e: ModuleNotFoundError) -> str | None:
    root = (e.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(root)
    if extra is None:
        return None
    return (f"this command needs {root}, which is not installed; install the {extra!r} "
            f"extra: pip install 'layerscope[{extra}]'")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .batch.command import os_error_line
    from .errors import LayerscopeError  # no third-party imports

    if args.command == "finetune":
        # before torch loads (quiet_libraries imports it): idle OpenMP threads sleep instead
        # of spinning, as in sweeps (runner.run_env); two runs on few cores crawl otherwise
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        if args.command in LIGHT_COMMANDS:
            return args.func(args)
        from .quiet import quiet_libraries

        with quiet_libraries():  # the libraries' expected noise; real warnings still show
            return args.func(args)
    except ModuleNotFoundError as e:
        message = _missing_extra(e)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except (LayerscopeError, ValueError, RuntimeError, KeyError) as e:
        # our errors name the value and the fix: one clean line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder or home: the path and the cause
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: " + (
            "the fine-tuning run keeps its last Trainer checkpoint; the same command resumes "
            "from it" if args.command == "finetune" else "run the same command to resume"),
            file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
