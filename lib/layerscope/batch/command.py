"""Command line of sweeps: ``layerscope sweep GRID``, ``layerscope gallery [SWEEP ...]`` and
the main job's parser (``layerscope main``).

``add_parsers(subparsers)`` adds ``sweep`` and ``gallery`` to the main ``layerscope`` parser
(``cli.py``), ``add_main_parser(subparsers)`` adds ``main``; ``python -m layerscope.batch
sweep|gallery|main ...`` runs them on their own (``main``).

Light on purpose: building the parsers imports only argparse and ``paths`` (``layerscope
--help`` must be fast); papermill, pandas, dask, torch and the studies are imported by the
command handlers, when a command runs.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from pathlib import Path

from .. import paths

BACKENDS = ("local", "dask")  # = sweep.BACKENDS (sweep imports tqdm and pandas)
OUT_HELP = "sweep folder (default: runs/GRID_NAME in the layerscope home folder)"
DESCRIPTION = ("Run grids of notebooks x parameters with papermill (sweep), write their "
               "gallery pages (gallery), or run the main job (main).")


def os_error_line(e: OSError) -> str:
    """One line for a failed read or write: the path, the cause and what to do (a full disk,
    a read-only folder, a file where a folder should be)."""
    path = f"{e.filename}" + (f" -> {e.filename2}" if getattr(e, "filename2", None) else "")
    cause = e.strerror or str(e)
    hint = {errno.ENOSPC: "the disk is full: free some space and run the same command again "
                          "(finished work is kept; `layerscope cache --clean` frees damaged "
                          "entries)",
            errno.EDQUOT: "the disk quota is full: free some space and run it again",
            errno.EACCES: "no permission to write there: choose a folder you can write "
                          "(--out, or LAYERSCOPE_HOME for the cache)",
            errno.EROFS: "the folder is on a read-only file system: choose another (--out, "
                         "or LAYERSCOPE_HOME for the cache)",
            errno.ENOTDIR: "a file stands where a folder is needed: choose another path",
            errno.EISDIR: "a folder was given where a file is needed"}.get(e.errno, "")
    hint = hint or ("no permission: choose a folder you can write"
                    if e.errno == errno.EPERM else "")
    return "; ".join(filter(None, [f"{path}: {cause}" if e.filename else cause, hint]))


def _interrupt(signum, frame):  # SIGTERM (a batch system's kill) ends runs like Ctrl-C does
    raise KeyboardInterrupt(f"signal {signum}")


def shipped_grid_names() -> list[str]:
    """Names of the grids that ship with layerscope (= ``grid.shipped_grids()``, no yaml)."""
    return sorted(p.stem for p in (paths.RESOURCES / "grids").glob("*.yaml"))


def print_dry_run(grid, out) -> int:
    """Print what a sweep of ``grid`` would do (finished runs, runs to run); run nothing."""
    from .sweep import dry_run_lines

    print("\n".join(dry_run_lines(grid, out)))
    return 0


def cmd_sweep(args) -> int:
    from . import grid as grids

    grid = grids.load_grid(args.grid, notebooks_dir=args.notebooks).only(args.only)
    grid = grid.with_params(overrides(args))
    if args.dry_run:
        return print_dry_run(grid, args.out)
    from .sweep import run_sweep

    backend = "dask" if args.scheduler else args.backend
    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run_sweep(grid, out=args.out, workers=args.workers, backend=backend,
                           scheduler=args.scheduler, timeout=args.timeout,
                           gallery=not args.no_gallery)
    except KeyboardInterrupt:
        print("interrupted: unfinished runs left no marker; run the same command to resume",
              file=sys.stderr)
        return 130
    print(report.summary())
    for f in report.failed:
        print(f"  failed: {f} (see {report.sweep_dir / f}.ipynb and .log)")
    for kind, path in report.files.items():
        print(f"{kind}: {path}")
    return 1 if report.failed else 0


def cmd_gallery(args) -> int:
    from . import gallery

    root = paths.runs_dir()
    folders = [Path(s) for s in args.sweeps]
    if not folders and root.is_dir():
        folders = sorted(p for p in root.iterdir() if (p / "sweep.json").exists())
    if not folders:
        print(f"no sweep folders given or found under {root}", file=sys.stderr)
        return 2
    for d in folders:
        print(f"gallery: {gallery.write_gallery(d)}")
    for where in sorted({gallery.index_folder(d) for d in folders}):
        print(f"index: {gallery.write_index(where)}")
    return 0


def cmd_main(args) -> int:
    if args.dry_run:
        from . import grid as grids

        grid = grids.load_grid(args.grid).only(args.only)
        return print_dry_run(grid.with_params({"device": args.device} if args.device else {}),
                             args.out)
    from .main_job import run_main_job  # papermill + the gallery: only when it runs

    return run_main_job(args.grid, out=args.out, workers=args.workers, only=args.only,
                        device=args.device)


def overrides(args) -> dict:
    """The parameters the command line sets in every notebook of a grid: ``--device``,
    ``--task`` (a path relative to the current folder made absolute, as the kernels run
    elsewhere)."""
    from .grid import local_task

    out = {}
    if getattr(args, "device", None):
        out["device"] = args.device
    if getattr(args, "task", None):
        out["task"] = local_task(args.task, Path.cwd())
    return out


def add_task_argument(p) -> None:
    """``--task`` of a sweep: one task for every notebook of the grid."""
    p.add_argument("--task", default=None, metavar="TASK",
                   help="run every notebook of the grid on this task instead of the grid's: a "
                        "task name (`layerscope tasks`), the path of your data (CSV, TSV, "
                        "JSONL, Parquet, CoNLL-U, STREUSLE .conllulex, a save_to_disk folder) "
                        "or of a task card (.yaml)")


def add_device_argument(p, *, for_grid: bool = False) -> None:
    """``--device`` (checked here, resolved when the run starts: ``devices.resolve_device``)."""
    def device(value: str) -> str:
        from ..devices import check_device_name  # torch: only when the option is given
        from ..errors import ConfigError

        try:
            return check_device_name(value)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    p.add_argument("--device", type=device, default=None if for_grid else "auto",
                   help="where models run: auto (CUDA, then MPS, then the CPU), cpu, cuda, "
                        "cuda:1, mps" + (" — sets every notebook's device parameter (default: "
                                         "the grid's, else auto)" if for_grid else
                                         " (default: auto)"))


def _dry_run_option(p) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="check the grid and list its runs, each marked finished (it would be "
                        "skipped) or to run (with why: never run, failed before, "
                        "interrupted); runs and writes nothing")


def add_main_parser(sub) -> argparse.ArgumentParser:
    """Add ``main`` (the main job, ``main_job.run_main_job``) to an argparse subparsers
    object."""
    m = sub.add_parser("main", help="the main job: the demo sweep (notebooks 01-05), gallery",
                       description="Runs a grid (default: demo, the offline default: "
                                   "notebooks 01-05 on minilm-l6 and the offline tasks) as a "
                                   "sweep, printing each run's progress and findings, then "
                                   "writes the results table and the gallery. Finished runs "
                                   "are skipped: a second call takes seconds.")
    m.add_argument("--grid", default="demo",
                   help="a shipped grid (" + ", ".join(shipped_grid_names())
                        + ") or the path of a grid YAML file")
    m.add_argument("--out", default=None,
                   help=OUT_HELP)
    m.add_argument("--workers", type=int, default=1,
                   help="runs at once (the demo's notebooks wait on 01's models: keep 1)")
    m.add_argument("--only", nargs="+", default=None, metavar="NOTEBOOK",
                   help="run only these notebooks of the grid")
    add_device_argument(m, for_grid=True)
    _dry_run_option(m)
    m.set_defaults(func=cmd_main)
    return m


def add_parsers(sub) -> None:
    """Add ``sweep`` and ``gallery`` to an argparse subparsers object."""
    s = sub.add_parser("sweep", help="run a grid of notebooks x parameters (papermill)",
                       description="Run every unfinished run of a grid; finished runs are "
                                   "skipped, failures recorded; writes results.csv, "
                                   "results.parquet and gallery.html into the sweep folder.")
    s.add_argument("grid", help="a grid YAML file, or a shipped grid: "
                                + ", ".join(shipped_grid_names()))
    s.add_argument("--workers", type=int, default=1,
                   help="runs at once (the cores are shared out: each run gets cores divided by "
                        "workers torch threads)")
    s.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local processes, or Dask (a LocalCluster unless --scheduler)")
    s.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler, e.g. tcp://host:8786")
    s.add_argument("--out", default=None,
                   help=OUT_HELP)
    s.add_argument("--notebooks", default=None,
                   help="notebooks folder (default: the grid's notebooks_dir, else the "
                        "clone's notebooks folder)")
    s.add_argument("--only", nargs="+", default=None, metavar="NOTEBOOK",
                   help="run only these notebooks of the grid")
    s.add_argument("--timeout", type=float, default=None, help="seconds allowed per run")
    add_device_argument(s, for_grid=True)
    add_task_argument(s)
    _dry_run_option(s)
    s.add_argument("--no-gallery", action="store_true", help="write the table only")
    s.set_defaults(func=cmd_sweep)
    g = sub.add_parser("gallery", help="(re)write the gallery pages of sweep folders",
                       description="Write gallery.html in each sweep folder and index.html "
                                   "beside them, from what the runs left on disk.")
    g.add_argument("sweeps", nargs="*",
                   help="sweep folders (default: every sweep under the runs folder of the "
                        "layerscope home)")
    g.set_defaults(func=cmd_gallery)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m layerscope.batch", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    add_main_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..errors import LayerscopeError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (LayerscopeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder: the path and the cause
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the same command to resume", file=sys.stderr)
        return 130
