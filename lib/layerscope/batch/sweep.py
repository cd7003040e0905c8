"""A sweep: plan the runs of a grid, run the unfinished ones, write the table and the gallery.

``run_sweep(grid)`` validates the grid (before anything runs), writes ``sweep.json`` (the plan),
skips finished runs (``runner.is_finished``), runs the rest on the local backend (N worker
threads, each waiting on one run's process) or on Dask, shows a tqdm bar over runs, records
failures and goes on, then writes ``results.csv``/``results.parquet`` and ``gallery.html``.
Rerunning the same grid resumes: only unfinished or failed runs are executed again.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .. import paths
from ..cache import atomic_write_text
from ..errors import ConfigError, check_choice
from . import runner, table
from .grid import Grid, run_key, validate

BACKENDS = ("local", "dask")


@dataclass
class SweepReport:
    """What a sweep did: runs executed now, skipped (finished before), failed; output files."""

    sweep_dir: Path
    rows: list[dict]
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        done = sum(r["status"] == runner.OK for r in self.rows)
        return (f"{len(self.rows)} runs: {done} ok, {len(self.failed)} failed "
                f"({len(self.executed)} executed now, {len(self.skipped)} already finished)")


def sweep_dir_for(grid: Grid, out: str | Path | None = None) -> Path:
    """``out`` or ``<home>/runs/<grid name>``."""
    return Path(out).resolve() if out else paths.runs_dir() / grid.name


def check_out(sweep_dir: Path, *, gallery: bool = True) -> None:
    """Refuse, before anything runs, a sweep folder that cannot be one: a file, a folder under
    a file, a folder of other things (no ``sweep.json``: results.csv and the pages would land
    among the user's files), or one whose pages layerscope would have to overwrite."""
    for p in [sweep_dir, *sweep_dir.parents]:
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"sweep folder {sweep_dir}: {p} is a file, not a folder; "
                                  "give --out a folder (a new one is made)")
            break
    if (sweep_dir.is_dir() and not (sweep_dir / table.PLAN).exists()
            and any(sweep_dir.iterdir())):
        raise ConfigError(f"sweep folder {sweep_dir} already holds other files and is not a "
                          f"sweep folder (no {table.PLAN}): results.csv, gallery.html and the "
                          "run folders would land among them; give --out a new or empty folder")
    if gallery:
        from .gallery import index_folder, refuse_foreign  # light: no plotting here

        refuse_foreign(sweep_dir / "gallery.html")
        refuse_foreign(index_folder(sweep_dir) / "index.html")


def plan(grid: Grid, sweep_dir: Path,
         parameters: dict[str, dict] | None = None) -> list[runner.Run]:
    """Every run of the grid, in grid order (``parameters``: from ``validate``)."""
    parameters = parameters if parameters is not None else validate(grid)
    runs, seen = [], set()
    for nb in grid.notebooks:
        for params in nb.points():
            key = run_key(params, nb.varying)
            if (nb.name, key) in seen:
                raise ConfigError(f"notebook {nb.name!r}: the grid has the run {params} twice "
                                  "(a repeated value in an axis)")
            seen.add((nb.name, key))
            runs.append(runner.Run(
                sweep=grid.name, notebook=nb.name, key=key, params=params,
                notebook_path=str(nb.path), sweep_dir=str(sweep_dir), home=str(paths.home()),
                has_out_dir="out_dir" in parameters[nb.name], axes=tuple(nb.varying)))
    return runs

FINISHED, TO_RUN = "finished", "to run"


@dataclass(frozen=True)
class PlannedRun:
    """A run of a dry run: ``state`` finished (a sweep skips it) or to run, and why."""

    run: runner.Run
    state: str
    why: str

    def line(self) -> str:
        """"finished  03_truncation/default-5cf52afb  seed=0  (ok 2024-05-01T10:00:00, 41 s)"."""
        varying = " ".join(f"{k}={self.run.params[k]}" for k in self.run.axes
                           if k in self.run.params)
        return "  ".join(filter(None, [f"{self.state:8s}", self.run.label(), varying,
                                        f"({self.why})"]))


def run_state(run: runner.Run) -> PlannedRun:
    """Whether ``run`` is finished (a sweep skips it) or would run, and why (read only)."""
    out = runner.read_outcome(run)
    if runner.is_finished(run):
        when, took = out.get("started"), out.get("duration_s")
        return PlannedRun(run, FINISHED, "ok" + (f" {when}" if when else "") + (
            f", took {took:.0f} s" if isinstance(took, (int, float)) else ""))
    if out and out.get("status") == runner.FAILED:
        why = f"failed before: {out.get('error')}"
    elif out and out.get("status") == runner.OK and not run.output.exists():
        why = "its executed notebook was deleted"
    elif out and out.get("status") == runner.OK:
        why = ("its saved result cannot be read (" + "; ".join(runner.unreadable_results(run))
               + "), so it runs again")
    elif run.log.exists() or list(run.folder.glob(f"{run.key}.*.partial*")):
        why = "started before but never finished (killed or interrupted)"
    else:
        why = "never run"
    return PlannedRun(run, TO_RUN, why)


def dry_run(grid: Grid, out: str | Path | None = None) -> tuple[Path, list[PlannedRun]]:
    """Validate the grid and say what a sweep would do, running and writing nothing: the
    sweep folder and every run with its state (``run_state``), in grid order."""
    sweep_dir = sweep_dir_for(grid, out)
    check_out(sweep_dir)
    return sweep_dir, [run_state(r) for r in plan(grid, sweep_dir)]


def dry_run_lines(grid: Grid, out: str | Path | None = None) -> list[str]:
    """``dry_run`` as the lines ``layerscope sweep|main --dry-run`` prints."""
    sweep_dir, planned = dry_run(grid, out)
    done = sum(p.state == FINISHED for p in planned)
    return [f"grid {grid.name!r}: {len(planned)} runs in {sweep_dir} (dry run: nothing runs)",
            *(p.line() for p in planned),
            f"{len(planned)} runs: {done} finished (skipped), {len(planned) - done} to run"]


def write_plan(grid: Grid, sweep_dir: Path, runs: list[runner.Run]) -> Path:
    """``sweep.json``: the grid's name, description and source, and every planned run."""
    path = sweep_dir / table.PLAN
    atomic_write_text(path, json.dumps({
        "name": grid.name, "description": grid.description, "grid": grid.source,
        "runs": [dataclasses.asdict(r) for r in runs]}, indent=1, default=str))
    return path


def run_local(runs: list[runner.Run], *, workers: int, threads: int,
              on_done: Callable[[dict], None], timeout: float | None = None,
              on_start: Callable[[runner.Run], None] | None = None) -> None:
    """Run on ``workers`` threads here; each waits on one run's process."""
    runner.allow_runs()

    def start(run: runner.Run) -> None:
        if on_start is not None:
            on_start(run)
        try:
            out = runner.execute(run, threads, timeout=timeout)
        except OSError as e:  # the disk failed under execute(): record, go on
            out = runner.record_failure(run, f"{type(e).__name__}: {e}")
        on_done(out)  # in this thread: a run's end is reported before the next one starts

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(start, r): r for r in runs}
        try:
            for f in as_completed(futures):
                f.result()
        except BaseException:  # Ctrl-C or SIGTERM: stop the runs (they will be redone)
            for f in futures:
                f.cancel()
            runner.kill_active()
            raise


def run_sweep(grid: Grid, *, out: str | Path | None = None, workers: int = 1,
              backend: str = "local", scheduler: str | None = None, client=None,
              timeout: float | None = None, progress: bool = True,
              gallery: bool = True, on_start: Callable[[runner.Run], None] | None = None,
              on_done: Callable[[dict], None] | None = None) -> SweepReport:
    """Run every unfinished run of ``grid``; see the module docstring.

    ``scheduler``: address of a running Dask scheduler (backend "dask"); ``client``: a
    ``distributed.Client`` to use instead (e.g. on a ``dask_jobqueue`` cluster).
    ``on_start(run)`` (local backend) and ``on_done(marker)`` are called as runs start and end
    (the main job prints from them).
    """
    check_choice(backend, BACKENDS, "backend")
    if workers < 1:
        raise ConfigError(f"workers={workers}: use 1 or more")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout={timeout}: give the seconds allowed per run, more than 0 "
                          "(or no --timeout for no limit)")
    parameters = validate(grid)  # before anything runs or any folder is made
    sweep_dir = sweep_dir_for(grid, out)
    check_out(sweep_dir, gallery=gallery)
    runs = plan(grid, sweep_dir, parameters)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_plan(grid, sweep_dir, runs)
    report = SweepReport(sweep_dir=sweep_dir, rows=[])
    todo = []
    for r in runs:
        (report.skipped if runner.is_finished(r) else todo).append(r)
    report.skipped = [r.label() for r in report.skipped]
    cores = runner.available_cores()
    if backend == "local" and workers > cores:
        print(f"warning: {workers} workers on {cores} cores: each gets 1 torch thread, but "
              f"workers x threads > cores slows every run down; use --workers {cores}",
              file=sys.stderr)
    bar = tqdm(total=len(runs), initial=len(report.skipped), unit="run", desc=grid.name,
               disable=not progress, file=sys.stderr)

    def done(outcome: dict) -> None:
        if on_done is not None:
            on_done(outcome)
        label = f"{outcome['notebook']}/{outcome['key']}"
        if outcome.get("reused"):  # another sweep into this folder ran it meanwhile
            report.skipped.append(label)
            bar.update(1)
            return
        if outcome["status"] == runner.INTERRUPTED:  # no marker: the next sweep redoes it
            return
        report.executed.append(label)
        if outcome["status"] != runner.OK:
            report.failed.append(label)
            bar.write(f"FAILED {label}: {outcome['error']}", file=sys.stderr)
        bar.update(1)
        bar.set_postfix(failed=len(report.failed))

    try:
        if todo and backend == "local":
            run_local(todo, workers=workers, threads=runner.threads_per_run(workers, cores),
                      on_done=done, timeout=timeout, on_start=on_start)
        elif todo:
            from . import dask_backend  # dask is only needed for this backend

            dask_backend.run_dask(todo, workers=workers, scheduler=scheduler, client=client,
                                  on_done=done, timeout=timeout)
    finally:
        bar.close()
    report.rows = table.collect(sweep_dir)
    report.failed = [f"{r['notebook']}/{r['key']}" for r in report.rows
                     if r["status"] == runner.FAILED]
    report.files.update(table.write_table(report.rows, sweep_dir))
    if gallery:
        from . import gallery as gal  # plotly + the similarity study: only for the page

        report.files["gallery"] = gal.write_gallery(sweep_dir)
        report.files["index"] = gal.write_index(gal.index_folder(sweep_dir))
    return report
