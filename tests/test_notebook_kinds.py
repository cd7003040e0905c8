"""Notebooks 03 and 04 on the task kinds beyond sentence tasks (issue 17 §4; extractive QA and
dependency parsing, issue 18): each parameter set
``tests/notebooks/<notebook>.<task>.yaml`` is prepared with papermill and executed by
``pytest --nbval-lax`` (the in-cell asserts are the checks: shapes, every undefined layer with
a reason, and exact parity of UNTUNED at L / nothing skipped with ``finetune.predictions`` unit
by unit). ``03_truncation.yaml`` itself runs on the multiple-choice fixture
(tests/test_notebooks.py); all sets here run in one nbval session (one kernel start each).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETS = sorted((ROOT / "tests" / "notebooks").glob("0[34]_*.*.yaml"))


def test_the_parameter_sets_cover_the_new_kinds_in_both_notebooks():
    """03 and 04 on tagging, multiple choice (03: its own smoke set), extractive QA and
    dependency parsing."""
    names = {p.name for p in SETS}
    assert names == {"03_truncation.tiny-pos.yaml", "04_skipping.tiny-pos.yaml",
                     "04_skipping.tiny-choice.yaml"} | {
        f"{nb}.{t}.yaml" for nb in ("03_truncation", "04_skipping")
        for t in ("tiny-squad", "tiny-parse")}, names
    assert "task: tiny-choice" in (ROOT / "tests" / "notebooks" / "03_truncation.yaml").read_text()


@pytest.mark.slow
def test_notebooks_03_and_04_run_on_every_kind(tmp_path: Path):
    prepared = []
    for params in SETS:
        stem, task = params.name.split(".")[:2]
        out = tmp_path / f"{stem}-{task}.ipynb"
        subprocess.run([sys.executable, "-m", "papermill", "--prepare-only", "-f", str(params),
                        str(ROOT / "notebooks" / f"{stem}.ipynb"), str(out)],
                       check=True, capture_output=True, cwd=ROOT)
        prepared.append(str(out))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", *prepared],
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, f"nbval failed:\n{proc.stdout[-6000:]}"
