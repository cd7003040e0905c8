"""One prepared notebook through ``pytest --nbval-lax`` in a process of its own (the notebook
tests run two at a time: a kernel is one busy core, imports and tiny models)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def nbval(prepared: Path, threads: int) -> subprocess.CompletedProcess:
    """nbval-lax on one prepared notebook, in its folder; torch threads told not to spin, as
    two kernels share the cores."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": "passive"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", str(prepared)],
        capture_output=True, text=True, cwd=prepared.parent, env=env)
