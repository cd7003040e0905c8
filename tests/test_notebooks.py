"""Notebook tests: every notebook runs top to bottom with smoke parameters, and is tidy.

Each ``notebooks/NN_name.ipynb`` is prepared with ``papermill --prepare-only -f
tests/notebooks/NN_name.yaml`` (tiny model, fixture task, interactive=False) and then executed
by ``pytest --nbval-lax``: the in-cell asserts are the checks (stripped notebooks have no stored
outputs to compare).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMOKE = ROOT / "tests" / "notebooks"


def test_every_notebook_has_smoke_parameters():
    """A notebook without smoke parameters would not be tested."""
    assert NOTEBOOKS, "no notebooks found"
    missing = [nb.name for nb in NOTEBOOKS if not (SMOKE / f"{nb.stem}.yaml").exists()]
    assert not missing, f"add tests/notebooks/<name>.yaml for {missing}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_paired(nb: Path):
    """Committed without outputs; the paired .py has the same cells; one parameters cell."""
    data = json.loads(nb.read_text())
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, \
                f"{nb.name} has outputs: run nbstripout {nb}"
    tagged = [c for c in data["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name} needs exactly one cell tagged 'parameters'"
    assert "interactive: bool = True" in "".join(tagged[0]["source"])
    paired = nb.with_suffix(".py")
    assert paired.exists(), f"missing paired {paired.name}: jupytext --set-formats ipynb,py:percent"
    a = [c.source for c in jupytext.read(nb).cells]
    b = [c.source for c in jupytext.read(paired).cells]
    assert a == b, f"{nb.name} and {paired.name} differ: run jupytext --sync {paired}"


@pytest.mark.slow
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_smoke_parameters(nb: Path, tmp_path: Path):
    """papermill --prepare-only with smoke parameters, then nbval-lax on the prepared copy."""
    prepared = tmp_path / nb.name
    subprocess.run([sys.executable, "-m", "papermill", "--prepare-only", "-f",
                    str(SMOKE / f"{nb.stem}.yaml"), str(nb), str(prepared)],
                   check=True, capture_output=True, cwd=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", str(prepared)],
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, f"{nb.name} failed under nbval:\n{proc.stdout[-6000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("stem,study", [("02_similarity", "similarity"),
                                        ("04_skipping", "skipping")])
def test_notebook_runs_on_a_model_fine_tuned_elsewhere(stem, study, tiny_sentiment_ft,
                                                      tmp_path: Path):
    """``finetuned=[folder]`` instead of training: the notebook's asserts (in 04, parity with
    ``finetune.predictions`` through ``cfg.finetune_configs()``) hold for the checkpoint."""
    import shutil

    import yaml

    folder = tmp_path / "my-fine-tune"
    shutil.copytree(tiny_sentiment_ft.model_dir, folder)
    params = yaml.safe_load((SMOKE / f"{stem}.yaml").read_text())
    params.update(finetuned=[str(folder)], seeds=[0], max_steps=0, out_dir=str(tmp_path / "out"))
    if "checkpoint_steps" in params:  # drift needs training snapshots: refused with checkpoints
        params["checkpoint_steps"] = []
    prepared = tmp_path / f"{stem}.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", "--prepare-only", "-y",
                    yaml.safe_dump(params), str(ROOT / "notebooks" / f"{stem}.ipynb"),
                    str(prepared)], check=True, capture_output=True, cwd=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", str(prepared)],
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, f"{stem} failed under nbval:\n{proc.stdout[-6000:]}"
    record = json.loads((tmp_path / "out" / f"{study}.json").read_text())["record"]
    assert record["finetuned"] == str(folder)
