"""Command line of sweeps: ``layerscope sweep GRID`` and ``layerscope gallery [SWEEP ...]``.

``add_parsers(subparsers)`` adds both to the main ``layerscope`` parser (``cli.py``);
``python -m layerscope.batch sweep|gallery ...`` runs them on their own (``main``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .. import paths
from ..errors import LayerscopeError
from . import grid as grids
from .runner import is_finished
from .sweep import BACKENDS, plan, run_sweep, sweep_dir_for


def _interrupt(signum, frame):  # SIGTERM (a batch system's kill) ends runs like Ctrl-C does
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_sweep(args) -> int:
    grid = grids.load_grid(args.grid, notebooks_dir=args.notebooks).only(args.only)
    backend = "dask" if args.scheduler else args.backend
    if args.dry_run:
        sweep_dir = sweep_dir_for(grid, args.out)
        runs = plan(grid, sweep_dir)
        for r in runs:
            print(f"{'finished' if is_finished(r) else 'to run  '}  {r.label()}  {r.params}")
        print(f"{len(runs)} runs in {sweep_dir}")
        return 0
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
    for parent in sorted({d.resolve().parent for d in folders}):
        print(f"index: {gallery.write_index(parent)}")
    return 0


def add_parsers(sub) -> None:
    """Add ``sweep`` and ``gallery`` to an argparse subparsers object."""
    s = sub.add_parser("sweep", help="run a grid of notebooks x parameters (papermill)",
                       description="Run every unfinished run of a grid; finished runs are "
                                   "skipped, failures recorded; writes results.csv/.parquet "
                                   "and gallery.html into the sweep folder.")
    s.add_argument("grid", help="a grid YAML file, or a shipped grid: "
                                + ", ".join(grids.shipped_grids()))
    s.add_argument("--workers", type=int, default=1,
                   help="runs at once (each gets cores // workers torch threads)")
    s.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local processes, or Dask (a LocalCluster unless --scheduler)")
    s.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler, e.g. tcp://host:8786")
    s.add_argument("--out", default=None, help="sweep folder (default: <home>/runs/<grid name>)")
    s.add_argument("--notebooks", default=None,
                   help="notebooks folder (default: the grid's notebooks_dir, else "
                        "<repo>/notebooks)")
    s.add_argument("--only", nargs="+", default=None, metavar="NOTEBOOK",
                   help="run only these notebooks of the grid")
    s.add_argument("--timeout", type=float, default=None, help="seconds allowed per run")
    s.add_argument("--dry-run", action="store_true",
                   help="validate the grid and list its runs; run nothing")
    s.add_argument("--no-gallery", action="store_true", help="write the table only")
    s.set_defaults(func=cmd_sweep)
    g = sub.add_parser("gallery", help="(re)write the gallery pages of sweep folders")
    g.add_argument("sweeps", nargs="*", help="sweep folders (default: all under <home>/runs)")
    g.set_defaults(func=cmd_gallery)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m layerscope.batch", description=__doc__)
    add_parsers(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (LayerscopeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
