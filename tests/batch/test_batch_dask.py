"""The Dask backend on a LocalCluster: the same table as the local backend; a worker that dies
has its run retried, or recorded failed when it keeps dying; never lost."""

from __future__ import annotations

import pytest

from layerscope.batch import table
from layerscope.batch.grid import load_grid
from layerscope.batch.sweep import run_sweep

pytestmark = pytest.mark.slow

TIMING = ["duration_s", "started", "threads"]  # differ between any two sweeps


def test_dask_gives_the_same_table_as_local(sweep_2x2, grid_2x2, tmp_path):
    local, _ = sweep_2x2
    report = run_sweep(load_grid(grid_2x2), out=tmp_path / "twobytwo", workers=2,
                       backend="dask", progress=False, gallery=False)
    assert len(report.executed) == 4 and not report.failed
    a = table.read_table(local.sweep_dir).drop(columns=TIMING)
    b = table.read_table(report.sweep_dir).drop(columns=TIMING)
    assert list(a.columns) == list(b.columns)
    assert a.equals(b), f"local:\n{a}\ndask:\n{b}"


def test_a_run_whose_worker_dies_is_retried(write_grid, tmp_path):
    flag = tmp_path / "killed-once"
    path = write_grid({"notebooks": {
        "crash": {"params": {"flag": str(flag)}},  # kills its worker on the first try only
        "echo": {"params": {"x": 3}}}})
    report = run_sweep(load_grid(path), out=tmp_path / "once", workers=2, backend="dask",
                       progress=False, gallery=False)
    rows = {r["notebook"]: r for r in report.rows}
    assert flag.exists(), "the worker was never killed: the test tested nothing"
    assert rows["crash"]["status"] == "ok" and rows["crash"]["survived"] is True
    assert rows["echo"]["status"] == "ok" and rows["echo"]["double"] == 6


def test_a_run_that_keeps_killing_workers_is_recorded_failed(write_grid, tmp_path):
    import dask

    path = write_grid({"notebooks": {"crash": {"params": {"always": True}},
                                     "echo": {"grid": {"x": [3, 4, 5]}}}})
    # one retry after a death (the default is 3): keeps the test short, same code path
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        report = run_sweep(load_grid(path), out=tmp_path / "always", workers=2,
                           backend="dask", progress=False, gallery=False)
    (crash,) = [r for r in report.rows if r["notebook"] == "crash"]
    assert crash["status"] == "failed" and "KilledWorker" in crash["error"]
    assert "died, 2 times" in crash["error"]
    # the sweep went on: every other run finished, none was blamed for the deaths
    assert [r["status"] for r in report.rows if r["notebook"] == "echo"] == ["ok"] * 3
    assert len(report.rows) == 4 and sorted(report.executed) == sorted(
        f"{r['notebook']}/{r['key']}" for r in report.rows)
