import json

import pytest

from layerscope import cli


@pytest.mark.slow
def test_main_job_on_tiny_model(tmp_path, capsys):
    """The main job's code path end to end on a tiny model: table, summary, exit 0."""
    code = cli.main(["main", "--task", "tiny-sentiment", "--model", "tiny-bert", "--preset",
                     "smoke", "--seeds", "0", "1", "--out", str(tmp_path), "--n-examples", "100"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "baseline_accuracy" in out and "total wall time" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["seed"] for r in summary["runs"]] == [0, 1]
    assert all(r["accuracy"] > r["baseline_accuracy"] for r in summary["runs"])
    assert "block_structure" in out  # the similarity step's verdict
    assert (tmp_path / "similarity" / "similarity.png").stat().st_size > 10_000
    assert summary["similarity"]["findings"]


def test_bad_names_exit_2_with_message(capsys):
    assert cli.main(["finetune", "--task", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert cli.main(["finetune", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
