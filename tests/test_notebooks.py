"""Notebook tests: every notebook runs top to bottom with smoke parameters, and is tidy.

Each ``notebooks/NN_name.ipynb`` is prepared with papermill's ``prepare_only`` and the
parameters of ``tests/notebooks/NN_name.yaml`` (tiny model, fixture task, interactive=False)
and then executed by ``pytest --nbval-lax``: the in-cell asserts are the checks (stripped
notebooks have no stored outputs to compare). The runs are one nbval process per notebook, two
at a time (a kernel is one busy core: imports, tiny models), started once per module for the
tests selected; each test reads its own notebook's outcome.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jupytext
import pytest
import yaml

from nbval_process import nbval_all, prepare

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SMOKE = ROOT / "tests" / "notebooks"
# notebooks 02 and 04 on a checkpoint fine-tuned elsewhere (the study whose record they save)
ELSEWHERE = [("02_similarity", "similarity"), ("04_skipping", "skipping")]


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


def _smoke_params(stem: str) -> dict:
    return yaml.safe_load((SMOKE / f"{stem}.yaml").read_text())


def _elsewhere_params(stem: str, checkpoint: Path, out: Path) -> dict:
    """The smoke parameters with ``finetuned=[checkpoint]`` instead of training."""
    params = _smoke_params(stem)
    params.update(finetuned=[str(checkpoint)], seeds=[0], max_steps=0, out_dir=str(out))
    if "checkpoint_steps" in params:  # drift needs training snapshots: refused with checkpoints
        params["checkpoint_steps"] = []
    return params


@pytest.fixture(scope="module")
def nbval_runs(request, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict]]:
    """{run: (its nbval process, its parameters)} for the runs whose tests this session selected:
    a smoke run by its notebook's stem, a fine-tuned-elsewhere run as ``elsewhere-<stem>``.
    Each is prepared in a folder of its own (its cwd: relative paths in the smoke parameters
    land there) and executed by its own nbval process, two at a time (nbval_process.nbval_all)."""
    import shutil

    runs: dict[str, tuple[Path, dict]] = {}
    for item in request.session.items:
        if item.module is not request.module or "nbval_runs" not in item.fixturenames:
            continue
        if item.originalname == "test_notebook_runs_with_smoke_parameters":
            stem = item.callspec.params["nb"].stem
            runs[stem] = (ROOT / "notebooks" / f"{stem}.ipynb", _smoke_params(stem))
        else:
            stem = item.callspec.params["stem"]
            folder = tmp_path_factory.mktemp(f"elsewhere-{stem}")
            checkpoint = folder / "my-fine-tune"
            shutil.copytree(request.getfixturevalue("tiny_sentiment_ft").model_dir, checkpoint)
            runs[f"elsewhere-{stem}"] = (ROOT / "notebooks" / f"{stem}.ipynb",
                                         _elsewhere_params(stem, checkpoint, folder / "out"))
    prepared = {run: prepare(nb, tmp_path_factory.mktemp(run) / nb.name, params)
                for run, (nb, params) in runs.items()}
    # the smoke runs first, elsewhere ones last (they are shorter: no fine-tuning), so that
    # the two processes end at about the same time
    order = sorted(prepared, key=lambda r: (r.startswith("elsewhere-"), r))
    procs = dict(zip(order, nbval_all([prepared[r] for r in order]), strict=True))
    return {run: (procs[run], runs[run][1]) for run in prepared}


@pytest.mark.slow
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_smoke_parameters(nb: Path, nbval_runs):
    """Prepared with the smoke parameters, then nbval-lax on the prepared copy."""
    proc, _ = nbval_runs[nb.stem]
    assert proc.returncode == 0, f"{nb.name} failed under nbval:\n{proc.stdout[-6000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("stem,study", ELSEWHERE)
def test_notebook_runs_on_a_model_fine_tuned_elsewhere(stem, study, nbval_runs):
    """``finetuned=[folder]`` instead of training: the notebook's asserts (in 04, parity with
    ``finetune.predictions`` through ``cfg.finetune_configs()``) hold for the checkpoint."""
    proc, params = nbval_runs[f"elsewhere-{stem}"]
    assert proc.returncode == 0, f"{stem} failed under nbval:\n{proc.stdout[-6000:]}"
    record = json.loads((Path(params["out_dir"]) / f"{study}.json").read_text())["record"]
    assert record["finetuned"] == params["finetuned"][0]  # the copied checkpoint's folder
