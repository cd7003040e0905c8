"""Prepared notebooks through ``pytest --nbval-lax``, one process each, two at a time (a kernel
is one busy core: imports and tiny models), for the notebook tests."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PARALLEL = 2  # nbval processes at once; each kernel gets cores // PARALLEL torch threads


def prepare(notebook: Path, out: Path, params: dict) -> Path:
    """``notebook`` with ``params`` injected (papermill's prepare_only, in-process) at ``out``."""
    import papermill

    papermill.execute_notebook(str(notebook), str(out), parameters=params, prepare_only=True,
                               progress_bar=False)
    return out


def nbval(prepared: Path, threads: int) -> subprocess.CompletedProcess:
    """nbval-lax on one prepared notebook, in its folder; torch threads told not to spin, as
    two kernels share the cores."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": "passive"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", str(prepared)],
        capture_output=True, text=True, cwd=prepared.parent, env=env)


def nbval_all(prepared: list[Path]) -> list[subprocess.CompletedProcess]:
    """Each prepared notebook by its own nbval process, PARALLEL at a time, in the given order
    (put the longest first so that the processes end at about the same time)."""
    from layerscope.batch.runner import available_cores, threads_per_run

    parallel = max(1, min(PARALLEL, available_cores()))
    threads = threads_per_run(parallel)
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda p: nbval(p, threads), prepared))
