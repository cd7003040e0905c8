"""Sweeps on the local backend with the synthetic notebooks (tests/batch/notebooks): executed
notebooks, the table, resuming, failures, a run killed halfway, torch threads per run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from layerscope.batch import runner, table
from layerscope.batch.command import main as batch_main
from layerscope.batch.grid import load_grid
from layerscope.batch.sweep import plan, run_sweep

pytestmark = pytest.mark.slow


def outputs(sweep_dir: Path) -> dict[str, float]:
    """Executed notebook -> mtime (ns) for every run of a sweep folder."""
    return {str(p.relative_to(sweep_dir)): p.stat().st_mtime_ns
            for p in sorted(sweep_dir.glob("*/*.ipynb")) if ".partial" not in p.name}


def test_two_notebooks_by_two_parameter_sets(sweep_2x2):
    report, seconds = sweep_2x2
    d = report.sweep_dir
    assert set(outputs(d)) == {f"{r['notebook']}/{r['key']}.ipynb" for r in report.rows}
    assert len(outputs(d)) == 4 and len(report.executed) == 4 and not report.failed
    df = pd.read_csv(d / "results.csv")
    assert len(df) == 4 and list(df["status"]) == ["ok"] * 4
    for col in ("status", "error", "duration_s", "verdict.positive", "verdict.big", "x", "n"):
        assert col in df.columns, col
    assert df["duration_s"].gt(0).all()
    echo = df[df["notebook"] == "echo"].sort_values("x")
    assert list(echo["double"]) == [2, 4] and list(echo["verdict.positive"]) == ["SUPPORTED"] * 2
    square = df[df["notebook"] == "square"].sort_values("n")
    assert list(square["verdict.big"]) == ["INCONCLUSIVE", "SUPPORTED"]
    pq = table.read_table(d)  # the Parquet twin holds the same rows
    assert list(pq["key"]) == list(df["key"]) and list(pq["x"].astype("float")[:2]) == [1.0, 2.0]
    # each kernel got its share of the cores and passive OpenMP waiting
    assert set(echo["omp_threads"]) == {runner.threads_per_run(2)}
    assert set(echo["omp_wait_policy"]) == {"passive"}
    print(f"2x2 sweep on 2 workers: {seconds:.1f} s")


def test_rerun_does_no_work_and_deleting_one_output_redoes_only_it(sweep_2x2, tmp_path):
    report, _ = sweep_2x2
    d = tmp_path / "twobytwo"
    shutil.copytree(report.sweep_dir, d)
    grid = load_grid(table.load_plan(d)["grid"])
    before = outputs(d)
    again = run_sweep(grid, out=d, workers=2, progress=False)
    assert again.executed == [] and len(again.skipped) == 4 and outputs(d) == before
    gone = sorted(before)[1]
    (d / gone).unlink()
    assert table.collect(d)[1]["status"] == "pending"  # the table says so before the rerun
    third = run_sweep(grid, out=d, workers=2, progress=False)
    assert third.executed == [gone.removesuffix(".ipynb")]
    after = outputs(d)
    assert after.keys() == before.keys() and after[gone] != before[gone]
    assert all(after[k] == before[k] for k in before if k != gone)
    assert [r["status"] for r in third.rows] == ["ok"] * 4


def test_a_notebook_that_raises_is_recorded_and_the_others_finish(write_grid, tmp_path, capsys):
    path = write_grid({"notebooks": {"echo": {"grid": {"x": [1, 2], "fail": [False, True]}}}})
    d = tmp_path / "fails"
    assert batch_main(["sweep", str(path), "--out", str(d), "--workers", "2"]) == 1
    printed = capsys.readouterr()
    rows = table.collect(d)
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "failed"]
    bad = [r for r in rows if r["status"] == "failed"]
    assert all(r["error"].startswith("ValueError: boom: x=") for r in bad)
    assert "failed:" in printed.out and "FAILED echo/" in printed.err
    runs = plan(load_grid(path), d)
    for run, row in zip(runs, rows, strict=True):
        assert runner.is_finished(run) == (row["status"] == "ok")
        assert run.output.exists()  # the failed notebook is kept: it shows the traceback
    df = pd.read_parquet(d / "results.parquet")
    assert df["error"].notna().sum() == 2 and df["verdict.positive"].notna().sum() == 2
    # the next sweep retries only the failed runs
    again = run_sweep(load_grid(path), out=d, workers=2, progress=False)
    assert sorted(again.executed) == sorted(f"echo/{r['key']}" for r in bad)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text in (p / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(p.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_run_killed_halfway_is_not_taken_as_finished(write_grid, tmp_path):
    # killed 2 s after it starts, while its 6 s cell (after the kernel's start) still runs
    path = write_grid({"notebooks": {"echo": {"params": {"x": 5, "sleep": 6.0}}}})
    d = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "layerscope.batch", "sweep", str(path),
                             "--out", str(d), "--no-gallery"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (run,) = plan(load_grid(path), d)
    deadline = time.time() + 120
    while time.time() < deadline and not list(run.folder.glob("*.partial.ipynb")):
        time.sleep(0.3)
    assert list(run.folder.glob("*.partial.ipynb")), "the run never started"
    time.sleep(2)
    assert run.marker.exists() is False
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no handler: as a power cut would
    proc.wait()
    # the run's own process dies with the sweep (and its kernel with it): nothing left running
    deadline = time.time() + 30
    while time.time() < deadline and _processes_mentioning(str(run.folder)):
        time.sleep(0.5)
    assert not _processes_mentioning(str(run.folder)), "the killed sweep left its run going"
    assert not runner.is_finished(run) and not run.output.exists()
    assert table.collect(d)[0]["status"] == "pending"
    report = run_sweep(load_grid(path), out=d, progress=False, gallery=False)
    assert report.executed == [run.label()] and runner.is_finished(run)
    assert not list(run.folder.glob("*.partial*")), "leftovers of the killed attempt remain"
    assert report.rows[0]["double"] == 10


def test_a_run_over_its_time_limit_is_stopped_and_recorded(write_grid, tmp_path):
    path = write_grid({"notebooks": {"echo": {"params": {"sleep": 120.0}}}})
    t0 = time.time()
    report = run_sweep(load_grid(path), out=tmp_path / "slow", timeout=8, progress=False,
                       gallery=False)
    assert time.time() - t0 < 90
    (row,) = report.rows
    assert row["status"] == "failed" and row["error"].startswith("timed out")
    assert not _processes_mentioning(str(tmp_path / "slow")), "the stopped run kept going"
