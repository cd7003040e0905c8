"""Notebooks 03 and 04 on the task kinds beyond sentence tasks (issue 17 §4; extractive QA and
dependency parsing, issue 18): each parameter set
``tests/notebooks/<notebook>.<task>.yaml`` is prepared with papermill and executed by
``pytest --nbval-lax`` (the in-cell asserts are the checks: shapes, every undefined layer with
a reason, and exact parity of UNTUNED at L / nothing skipped with ``finetune.predictions`` unit
by unit). ``03_truncation.yaml`` itself runs on the multiple-choice fixture
(tests/test_notebooks.py); each set is prepared in-process and run by an nbval process of its
own, two at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nbval_process import nbval_all, prepare

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
        folder = tmp_path / f"{stem}-{task}"  # its own cwd: relative paths land there
        folder.mkdir()
        prepared.append(prepare(ROOT / "notebooks" / f"{stem}.ipynb", folder / f"{stem}.ipynb",
                                yaml.safe_load(params.read_text())))
    failed = [f"{p.parent.name}:\n{proc.stdout[-4000:]}"
              for p, proc in zip(prepared, nbval_all(prepared), strict=True)
              if proc.returncode != 0]
    assert not failed, "nbval failed:\n" + "\n".join(failed)
