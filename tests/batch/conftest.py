"""Fixtures of the sweep tests: synthetic notebooks (``notebooks/``: echo, square, crash), a
helper that writes grid files pointing at them, and one local sweep of two notebooks x two
parameter sets shared by the tests that only read it (others copy its folder first).

Runs share a core or two with other work, so torch/BLAS threads are told not to spin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
TWO_BY_TWO = {"description": "two synthetic notebooks x two parameter sets",
              "notebooks": {"echo": {"params": {"label": "hi"}, "grid": {"x": [1, 2]}},
                            "square": {"grid": {"n": [2, 3]}}}}


def grid_file(folder: Path, data: dict, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "notebooks_dir": str(NOTEBOOKS), **data},
                                  sort_keys=False))
    return path


@pytest.fixture
def write_grid(tmp_path):
    """``write_grid({"notebooks": {...}}, name="g")`` -> a grid file whose ``notebooks_dir`` is
    the synthetic notebooks' folder."""
    return lambda data, name="g": grid_file(tmp_path, data, name)


@pytest.fixture(scope="session")
def grid_2x2(tmp_path_factory) -> Path:
    return grid_file(tmp_path_factory.mktemp("grids"), TWO_BY_TWO, "twobytwo")


@pytest.fixture(scope="session")
def sweep_2x2(grid_2x2, tmp_path_factory):
    """The 2x2 grid swept once on 2 local workers: (report, seconds). Read it, don't change it."""
    import time

    from layerscope.batch.grid import load_grid
    from layerscope.batch.sweep import run_sweep

    t0 = time.time()
    report = run_sweep(load_grid(grid_2x2), out=tmp_path_factory.mktemp("runs") / "twobytwo",
                       workers=2, progress=False)
    return report, time.time() - t0
