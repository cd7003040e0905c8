"""The results table of a sweep: one row per run, CSV and Parquet.

Columns: the run (``sweep, notebook, key``), how it went (``status`` ok | failed | pending,
``error``, ``note``, ``duration_s``, ``started``, ``threads``), its grid parameters, then the
merged ``to_record()`` of the studies it saved (config fields and headline numbers), with the
findings' ``verdict.<claim>`` columns last. Rows follow the plan (``sweep.json``), so a table
does not depend on the order in which runs finished (the local and Dask backends agree).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..cache import atomic_write
from ..errors import ConfigError
from . import runner

PLAN = "sweep.json"
FRONT = ("sweep", "notebook", "key", "status", "error", "note", "duration_s", "started",
         "threads")
VERDICT_PREFIX = "verdict."


def load_plan(sweep_dir: Path) -> dict:
    path = Path(sweep_dir) / PLAN
    if not path.exists():
        raise ConfigError(f"{path} not found: {sweep_dir} is not a sweep folder (run "
                          "`layerscope sweep GRID` first)")
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(plan, dict) or not isinstance(plan.get("runs"), list):
            raise ValueError("no list of runs")
    except ValueError as e:  # empty, cut short, not UTF-8 or not a plan
        raise ConfigError(f"{path} is damaged ({e}): it is written when a sweep starts; run "
                          "the sweep again (`layerscope sweep GRID --out "
                          f"{Path(sweep_dir)}`) to rewrite it, finished runs are kept") from e
    return plan


def plan_runs(sweep_dir: Path) -> list[runner.Run]:
    """The planned runs, re-rooted at ``sweep_dir`` (a sweep folder may have been moved)."""
    return [runner.Run(**{**r, "axes": tuple(r.get("axes", ())), "sweep_dir": str(sweep_dir)})
            for r in load_plan(sweep_dir)["runs"]]


def scalar(v):
    """Table cell: lists joined with ',' (as ``studies.base.flat_config`` does), dicts as JSON."""
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return v


def merge_records(records: list[dict]) -> dict:
    """One row from the records of a run's studies; a key two studies give different values
    is kept for each as ``<study>.<key>``."""
    row: dict = {}
    for rec in records:
        study = rec.get("study", "study")
        for k, v in rec.items():
            if k == "study":
                row["study"] = ",".join(filter(None, [row.get("study"), str(v)]))
            elif k not in row or row[k] == v:
                row[k] = v
            else:
                row[f"{study}.{k}"] = v
    return row


def row_of(run: runner.Run, outcome: dict | None) -> dict:
    """The table row of one run from its marker (None: not run yet, or killed)."""
    out = outcome or {}
    status = out.get("status", runner.PENDING)
    note = out.get("note", "")
    if status == runner.OK and not run.output.exists():
        status, note = runner.PENDING, "executed notebook deleted: the next sweep redoes it"
    row = {"sweep": run.sweep, "notebook": run.notebook, "key": run.key, "status": status,
           "error": out.get("error"), "note": note or None,
           "duration_s": out.get("duration_s"), "started": out.get("started"),
           "threads": out.get("threads")}
    row.update({k: scalar(v) for k, v in run.params.items()})
    row.update({k: scalar(v) for k, v in merge_records(out.get("records", [])).items()})
    return row


def collect(sweep_dir: Path) -> list[dict]:
    """One row per planned run, in plan order."""
    return [row_of(r, runner.read_outcome(r)) for r in plan_runs(Path(sweep_dir))]


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame: front columns, then the rest in order of appearance, verdicts last;
    a column mixing text and numbers becomes text (Parquet needs one type per column)."""
    cols: dict[str, None] = dict.fromkeys(c for c in FRONT)
    for r in rows:
        cols.update(dict.fromkeys(k for k in r if not k.startswith(VERDICT_PREFIX)))
    for r in rows:
        cols.update(dict.fromkeys(k for k in r if k.startswith(VERDICT_PREFIX)))
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=list(cols))
    for c in df.columns:
        values = [r.get(c) for r in rows]
        kinds = {type(v) for v in values if v is not None and not _isnan(v)}
        if kinds == {int}:  # keep integers integers where some rows lack the column
            df[c] = pd.array(values, dtype="Int64")
        elif len(kinds) > 1 and not kinds <= {int, float}:
            df[c] = [None if v is None or _isnan(v) else str(v) for v in values]
    return df


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


def write_table(rows: list[dict], sweep_dir: Path) -> dict[str, Path]:
    """``results.csv`` and ``results.parquet`` in ``sweep_dir`` (each written atomically)."""
    df = frame(rows)
    d = Path(sweep_dir)
    # atomic_write: mode from the umask (mkstemp's 0600 broke shared folders), no temp file
    # left behind when the disk is full
    return {"csv": atomic_write(d / "results.csv", lambda p: df.to_csv(p, index=False)),
            "parquet": atomic_write(d / "results.parquet",
                                    lambda p: df.to_parquet(p, index=False))}


def read_table(sweep_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(Path(sweep_dir) / "results.parquet")
