import pytest
import yaml

from layerscope import cli
from layerscope.batch import runner
from layerscope.batch.main_job import run_main_job

# the main job's path on tiny models: two fine-tuning seeds (one with the trace snapshots, as
# in the demo grid) and the similarity notebook on them
TINY_MAIN = {
    "name": "tinymain",
    "params": {"task": "tiny-sentiment", "model": "tiny-bert", "preset": "smoke",
               "max_steps": 40},
    "notebooks": {
        "01_finetune": {"runs": [{"seed": 0, "trace": True}, {"seed": 1}]},
        "02_similarity": {"params": {"seeds": [0, 1], "n_examples": 64, "n_boot": 20,
                                     "checkpoint_steps": [0, 40]}},
    },
}


@pytest.mark.slow
def test_main_job_runs_the_grid_prints_where_it_is_and_resumes(tmp_path, capsys):
    grid = tmp_path / "tinymain.yaml"
    grid.write_text(yaml.safe_dump(TINY_MAIN))
    lines: list[str] = []
    code = run_main_job(grid, out=tmp_path / "runs", heartbeat=0.5,
                        out_fn=lambda s, flush=True: lines.append(s))
    text = "\n".join(lines)
    assert code == 0, text
    assert "[1/3] 01_finetune {'seed': 0, 'trace': True} started" in text
    assert "[3/3] 02_similarity ok in" in text
    assert "  ... [1/3] 01_finetune" in text  # the heartbeat while a run works
    # ... with the notebook's own progress line (layerscope.progress, through the run's file)
    assert "fine-tuning tiny-bert on tiny-sentiment, seed 0: step" in text, text
    assert not list((tmp_path / "runs").glob("*/*.progress"))  # removed when a run ends
    assert text.count("accuracy") >= 2 and "vs majority baseline" in text
    assert "similarity.block_structure: " in text and "similarity.drift" in text
    assert "3 runs: 3 ok, 0 failed (3 executed now, 0 already finished)" in text
    gallery = tmp_path / "runs" / "gallery.html"
    assert f"gallery: {gallery}" in text and gallery.stat().st_size > 10_000
    # the seed-0 run saved the snapshots 02 needed, so 02 replayed nothing
    log = next((tmp_path / "runs" / "02_similarity").glob("*.log")).read_text()
    assert "replay" not in log.lower(), log[-2000:]

    # again: everything is finished, nothing runs (the CLI path)
    assert cli.main(["main", "--grid", str(grid), "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "3 runs were finished before and were skipped" in out and "started" not in out
    assert "(0 executed now, 3 already finished)" in out
    assert "tiny-bert on tiny-sentiment, seed 1: accuracy" in out

    # a deleted marker redoes that run only
    marker = next((tmp_path / "runs" / "02_similarity").glob("*.run.json"))
    marker.unlink()
    assert cli.main(["main", "--grid", str(grid), "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "(1 executed now, 2 already finished)" in out
    assert runner.OK in marker.read_text()


def test_main_job_refuses_a_bad_grid_before_running(tmp_path, capsys):
    grid = tmp_path / "bad.yaml"
    grid.write_text(yaml.safe_dump({"notebooks": {"02_similarity": {"params": {"seed": 1}}}}))
    assert cli.main(["main", "--grid", str(grid), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "'seed'" in err and "'seeds'" in err
    assert not (tmp_path / "runs").exists()


def test_bad_names_exit_2_with_message(capsys):
    assert cli.main(["finetune", "--task", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert cli.main(["finetune", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
