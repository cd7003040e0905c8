import subprocess
import sys
import textwrap

import pytest
import yaml

import layerscope
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
def test_main_job_runs_the_grid_prints_where_it_is_and_resumes(tmp_path, capsys, private_home):
    """Its own cache home: a fine-tune of the same settings cached by another test would leave
    no training progress line to see."""
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


# ----------------------------------------------------------------------------- light parser
def test_version_prints_the_package_version(capsys):
    import layerscope

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"layerscope {layerscope.__version__}"


HEAVY = ("torch", "transformers", "datasets", "numpy", "pandas", "papermill", "plotly", "yaml")


def test_help_of_every_command_imports_nothing_heavy():
    """`layerscope --help` (and each command's --help) builds the parser without torch &
    co.: judged by sys.modules, not by the clock."""
    code = textwrap.dedent(f"""
        import sys
        from layerscope import cli
        parser = cli.build_parser()
        commands = parser._subparsers._group_actions[0].choices
        for argv in [["--help"]] + [[c, "--help"] for c in commands]:
            try:
                parser.parse_args(argv)
            except SystemExit as e:
                assert e.code == 0, argv
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        assert not heavy, heavy
        print(sorted(commands))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(sorted(
        ["main", "finetune", "fetch", "tasks", "models", "cache", "sweep", "gallery"]))
    r = subprocess.run([sys.executable, "-m", "layerscope.cli", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "usage: layerscope" in r.stdout and "finetune" in r.stdout


def test_literal_choices_match_the_registries():
    from layerscope import assets, finetune

    assert cli.PRESET_NAMES == finetune.PRESET_NAMES
    assert cli.ASSET_NAMES == tuple(sorted(assets.ASSETS))
    assert cli.ON_DEMAND == tuple(sorted(assets.ON_DEMAND_ASSETS))


def test_bad_asset_exits_2_with_message(capsys):
    assert cli.main(["fetch", "nope"]) == 2
    assert "unknown asset 'nope'; valid values: 'brown', 'minilm', 'vader', 'mpnet'" in (
        capsys.readouterr().err)


def test_device_option_of_finetune_sweep_and_main(capsys):
    """Issue 16: --device on every command that runs models; a typo is refused by the parser
    (exit 2, naming the value and the choices) before anything loads; a grid's notebooks all
    get the device as a parameter, checked like any grid value."""
    from layerscope.batch import grid as grids

    for argv in (["finetune", "--device", "gpu"], ["sweep", "smoke", "--device", "gpu"],
                 ["main", "--device", "gpu", "--dry-run"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        assert "device='gpu': use one of auto, cpu, cuda, cuda:<index>, mps" in \
            capsys.readouterr().err, argv
    g = grids.load_grid("smoke").with_params({"device": "cuda:1"})
    points = [p for nb in g.notebooks for p in nb.points()]
    assert points and all(p["device"] == "cuda:1" for p in points)
    grids.validate(g)  # every notebook takes it (a device this machine lacks: at run time)
    assert cli.main(["sweep", "smoke", "--device", "cpu", "--dry-run"]) == 0
    assert "7 runs:" in capsys.readouterr().out


def test_models_lists_the_families(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for family in ("DistilBERT", "DeBERTa-v2", "ModernBERT", "MPNet"):
        assert family in out
    # ModernBERT's parser and pair heads retrain; its LayerNorm'd dense heads do not
    assert "ModernBERT  modernbert" in out and ("truncation UNTUNED only for: sequence, token, "
                                                "multiple_choice, span)") in out
    every = "heads sequence, token, multiple_choice, token_pair, span, parser\n"
    assert "BERT        bert                             all studies; " + every in out
    # DeBERTa v1 has no multiple-choice model
    assert "DeBERTa     deberta " in out and "DeBERTa     deberta                          all " \
        "studies; heads sequence, token, token_pair, span, parser\n" in out
    assert "hidden-state studies only (add an adapter: adapters/base.py)" in out


def test_missing_extra_says_which_to_install(monkeypatch, capsys):
    """A core-only install has no papermill: the sweep command names the extra to install."""
    monkeypatch.setitem(sys.modules, "papermill", None)  # `import papermill` now fails
    assert cli.main(["sweep", "demo", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "needs papermill" in err and "pip install 'layerscope[sweep]'" in err


def test_extra_of_module_matches_pyproject():
    """The modules the CLI's hint maps to an extra are installed by that extra."""
    import tomllib
    from importlib import metadata
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    root = Path(__file__).resolve().parent.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    dists = metadata.packages_distributions()
    for module, extra in cli.EXTRA_OF_MODULE.items():
        wanted = {canonicalize_name(Requirement(r).name) for r in extras[extra]}
        assert {canonicalize_name(d) for d in dists[module]} & wanted, (module, extra)


def test_python_dash_m_layerscope_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "layerscope", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"layerscope {layerscope.__version__}"
