"""The main job (README command 1): the ``demo`` sweep, notebooks 01-05, then the gallery.

``run_main_job()`` runs a grid (``demo`` by default) through ``sweep.run_sweep`` and prints
where it is: each run as it starts (k of N, its parameters), a line every ``heartbeat`` seconds
while it works (elapsed time and the last line of its log, e.g. the fine-tuning step), and as
it ends (time, the accuracy against the majority baseline for a fine-tuning run, every finding
with its verdict and interval). Then the table, the gallery and the total time. Finished runs
are skipped, so a second call takes seconds; an interrupted one resumes.

The exit status is 0 only when every run finished and every fine-tuned model beat its
majority-class baseline.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

from ..tasks import get_task
from . import grid as grids
from . import runner
from .sweep import plan, run_sweep


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


DAMAGED = "DAMAGED"


def finding_lines(run_dir: Path) -> list[str]:
    """One line per finding of every study the run saved: id, verdict, estimate [low, high]
    (read by the study's class, ``runner.saved_results``); a damaged or inconsistent file is
    one line "<study>: DAMAGED (<file>: what is wrong)"."""
    lines = []
    for s in runner.saved_results(run_dir):
        if s.problems:
            lines.append(f"{s.study}: {DAMAGED} ({s.damage()})")
            continue
        for cid, f in s.result.findings().items():
            iv = f.get("interval") or {}
            num = (f" {_fmt(iv.get('estimate'))} [{_fmt(iv.get('low'))}, {_fmt(iv.get('high'))}]"
                   if iv.get("estimate") is not None else "")
            why = f" ({f['why']})" if f.get("why") and f["verdict"] == "UNDEFINED" else ""
            lines.append(f"{s.study}.{cid}: {f['verdict']}{num}{why}")
    return lines


_CELL = re.compile(r"^(Executing|Ending) Cell (\d+)-*$")


def log_status(path: Path) -> str:
    """Where a run's log says it is: the cell papermill runs and the last output line (a
    progress bar rewrites its line with \r: its last state)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    cell, last = None, None
    for line in reversed(tail.replace("\r", "\n").splitlines()):
        line = line.strip()
        m = _CELL.match(line)
        if m and cell is None:
            cell = m.group(2)
        elif line and not m and last is None:
            last = line[:110]
        if cell and last:
            break
    return "; ".join(filter(None, [f"cell {cell}" if cell else None, last]))


def run_status(run: runner.Run) -> str:
    """The notebook's own progress line when it reports one (``layerscope.progress``), else
    where its log says it is."""
    try:
        text = run.progress.read_text().strip()
    except OSError:
        text = ""
    return text[:160] if text else log_status(run.log)


class _Printer:
    """Prints the start, the heartbeat and the end of each run (thread-safe)."""

    def __init__(self, total: int, heartbeat: float, out=print):
        self.total, self.heartbeat, self.out = total, heartbeat, out
        self.active: dict[str, tuple[runner.Run, float, int]] = {}
        self.started, self.lock, self.stop = 0, threading.Lock(), threading.Event()
        self.t0 = time.time()

    def on_start(self, run: runner.Run) -> None:
        with self.lock:
            self.started += 1
            self.active[run.label()] = (run, time.time(), self.started)
            varying = {k: run.params[k] for k in run.axes if k in run.params}
            what = " ".join(filter(None, [run.notebook, str(varying) if varying else ""]))
            self.out(f"[{self.started}/{self.total}] {what} started (log: {run.log})",
                     flush=True)

    def on_done(self, outcome: dict) -> None:
        label = f"{outcome['notebook']}/{outcome['key']}"
        with self.lock:
            run, t, k = self.active.pop(label, (None, time.time(), "?"))
            status = ("ok" if outcome["status"] == runner.OK else "interrupted"
                      if outcome["status"] == runner.INTERRUPTED else "FAILED")
            if outcome.get("reused"):
                status += " (run meanwhile by another sweep into this folder)"
            self.out(f"[{k}/{self.total}] {outcome['notebook']} {status} in "
                     f"{outcome['duration_s']:.0f} s" + (f": {outcome['error']}"
                                                         if outcome.get("error") else ""),
                     flush=True)
            for rec in outcome.get("records", []):
                if rec.get("study") == "finetune":
                    self.out(f"      {_quality(rec)}", flush=True)
            if run is not None and outcome["status"] == runner.OK:
                lines = finding_lines(run.run_dir)
                counts = Counter(line.split(": ", 1)[1].split(" ")[0] for line in lines)
                if lines:
                    self.out(f"      {len(lines)} findings: " + ", ".join(
                        f"{v} {k}" for k, v in counts.most_common()), flush=True)

    def beat(self) -> None:
        while not self.stop.wait(self.heartbeat):
            with self.lock:
                for run, t, k in self.active.values():
                    self.out(f"  ... [{k}/{self.total}] {run.notebook} {time.time() - t:.0f} s: "
                             f"{run_status(run)}", flush=True)


def _metric(rec: dict) -> tuple[str, float | None, float | None]:
    """(primary metric, its value, the majority baseline's) of a fine-tuning record."""
    metric = get_task(rec["task"]).primary_metric
    return metric, rec.get(metric), rec.get(f"baseline_{metric}")


def _quality(rec: dict) -> str:
    metric, value, baseline = _metric(rec)
    return f"{metric} {_fmt(value)} vs majority baseline {_fmt(baseline)}"


def training_rows(rows: list[dict]) -> list[dict]:
    """The finished fine-tuning runs' table rows (notebook 01's ``finetune`` records)."""
    return [r for r in rows if r.get("study") == "finetune" and r["status"] == runner.OK]


def run_main_job(grid: str | Path = "demo", *, out: str | Path | None = None,
                 workers: int = 1, only: list[str] | None = None, heartbeat: float = 30.0,
                 out_fn=print, device: str | None = None) -> int:
    """Run the grid's unfinished runs, print where it is, write table + gallery; exit code.
    ``device``: every notebook's ``device`` parameter (None: the grid's, else auto)."""
    g = grids.load_grid(grid).only(only).with_params({"device": device} if device else {})
    n = sum(len(nb.points()) for nb in g.notebooks)
    out_fn(f"layerscope main job: grid {g.name!r}, {n} runs of "
           f"{', '.join(nb.name for nb in g.notebooks)}\n  {g.description}", flush=True)
    printer = _Printer(n, heartbeat, out_fn)
    beat = threading.Thread(target=printer.beat, daemon=True)
    beat.start()
    try:
        report = run_sweep(g, out=out, workers=workers, progress=False,
                           on_start=printer.on_start, on_done=printer.on_done)
    finally:
        printer.stop.set()
    if report.skipped:
        out_fn(f"{len(report.skipped)} runs were finished before and were skipped (delete "
               f"their .run.json under {report.sweep_dir} to redo them)", flush=True)
    out_fn("\nFindings (verdict, estimate [95% interval]; claims and methods in each run's "
           "findings.txt and in the gallery):", flush=True)
    for run in plan(g, report.sweep_dir):
        ended_ok = (runner.read_outcome(run) or {}).get("status") == runner.OK
        lines = finding_lines(run.run_dir) if ended_ok else []  # a damaged file says DAMAGED
        if lines:
            out_fn(f"  {run.label()}", flush=True)
            out_fn("\n".join(f"    {line}" for line in lines), flush=True)
    for row in training_rows(report.rows):
        out_fn(f"{row['model']} on {row['task']}, seed {row.get('seed')}: {_quality(row)}",
               flush=True)
    out_fn(report.summary(), flush=True)
    for kind, path in report.files.items():
        out_fn(f"{kind}: {path}", flush=True)
    out_fn(f"total wall time {time.time() - printer.t0:.0f} s", flush=True)
    bad = [r for r in training_rows(report.rows) if get_task(r["task"]).kind != "regression"
           and None not in _metric(r)[1:] and _metric(r)[1] <= _metric(r)[2]]
    for r in bad:
        out_fn(f"WARNING: seed {r.get('seed')} did not beat the majority baseline", flush=True)
    return 1 if report.failed or bad else 0
