"""Grid files: parsing, validation against the notebooks' parameters cells (before anything
runs), run keys, the shipped grids. Nothing here executes a notebook."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from layerscope.batch import grid as g
from layerscope.batch.runner import threads_per_run
from layerscope.batch.sweep import plan, run_sweep
from layerscope.errors import ConfigError
from layerscope.tasks import TASKS

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("0*.ipynb"))


@pytest.mark.parametrize("name", sorted(g.shipped_grids()))
def test_shipped_grid_validates_against_the_notebooks(name):
    grid = g.load_grid(name)
    missing = [nb.notebook for nb in grid.notebooks if not nb.path.exists()]
    assert not missing, f"grid {name} names notebooks that do not exist: {missing}"
    params = g.validate(grid)
    for nb in grid.notebooks:  # every run gets task, model and preset from the grid
        for point in nb.points():
            # 06_tasks names its tasks in `tasks` and its probe sentences in `probe`
            tasks = {"task"} if nb.notebook != "06_tasks" else {"tasks", "probe"}
            assert tasks | {"model", "preset"} <= set(point), (name, nb.name)
            assert set(point) <= set(params[nb.name])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(path):
    """A comment papermill cannot parse (e.g. one with "=" in it) drops that parameter from
    inspect_notebook, and grid validation would then refuse a valid name."""
    cell = next(c for c in nbformat.read(path, as_version=4).cells
                if "parameters" in c.metadata.get("tags", []))
    names = [m.group(1) for m in re.finditer(r"^(\w+)\s*:.*?=", cell.source, re.M)]
    assert names and sorted(names) == sorted(g.notebook_parameters(path)), path.stem


def test_runs_are_explicit_parameter_sets(tmp_path):
    def real(data):  # a grid over the real notebooks (the default notebooks folder)
        return g.parse_grid(data, g.GRIDS_DIR / "x.yaml")

    grid = real({"params": {"task": "tiny-sentiment", "preset": "smoke", "max_steps": 10},
                 "notebooks": {"01_finetune": {
                     "grid": {"model": ["tiny-bert", "tiny-roberta"]},
                     "runs": [{"seed": 0, "trace": True}, {"seed": 1}]}}})
    points = grid.notebooks[0].points()
    assert [(p["model"], p["seed"], p.get("trace")) for p in points] == [
        ("tiny-bert", 0, True), ("tiny-bert", 1, None),
        ("tiny-roberta", 0, True), ("tiny-roberta", 1, None)]
    assert all(p["max_steps"] == 10 for p in points)  # fixed values reach every run
    keys = [r.key for r in plan(grid, tmp_path)]
    assert keys[0].startswith("model=tiny-bert_seed=0_trace=True-") and len(set(keys)) == 4
    with pytest.raises(ConfigError, match="'seed' is both an axis and set by runs"):
        real({"notebooks": {"01_finetune": {"grid": {"seed": [0, 1]}, "runs": [{"seed": 2}]}}})
    with pytest.raises(ConfigError, match="runs must be a non-empty list"):
        real({"notebooks": {"01_finetune": {"runs": {"seed": 2}}}})
    with pytest.raises(ConfigError, match="parameter 'trace' is a bool"):
        g.validate(real({"notebooks": {"01_finetune": {"runs": [{"trace": "yes"}]}}}))
    with pytest.raises(ConfigError, match="parameter of notebook '01_finetune'.*'nope'"):
        g.validate(real({"notebooks": {"01_finetune": {"runs": [{"nope": 1}]}}}))


def test_the_six_grids_ship():
    assert set(g.shipped_grids()) == {"demo", "smoke", "phang2021", "zhou2022", "merchant2020",
                                      "merchant2020-tasks", "offline-12layer"}


def test_demo_is_offline_and_covers_every_notebook():
    grid = g.load_grid("demo")
    assert [nb.notebook for nb in grid.notebooks] == [
        "01_finetune", "02_similarity", "03_truncation", "04_skipping", "05_geometry"]
    for nb in grid.notebooks:
        for point in nb.points():
            assert point["model"] == "minilm-l6"
            assert TASKS[point["task"]].source == "offline", point


def test_phang2021_is_the_papers_grid():
    grid = g.load_grid("phang2021")
    ft = next(nb for nb in grid.notebooks if nb.name == "01_finetune")
    assert len(ft.points()) == 3 * 12 * 2  # models x tasks x seeds
    assert "wnli" not in ft.axes["task"] and ft.params["preset"] == "phang2021"


def test_unknown_notebook_is_named_with_the_valid_ones(write_grid):
    path = write_grid({"notebooks": {"echoo": {}}})
    with pytest.raises(ConfigError) as e:
        g.validate(g.load_grid(path))
    assert "'echoo'" in str(e.value) and "'echo'" in str(e.value) and "'square'" in str(e.value)


def test_unknown_parameter_is_named_with_the_valid_ones(write_grid):
    path = write_grid({"notebooks": {"echo": {"grid": {"y": [1, 2]}}}})
    with pytest.raises(ConfigError) as e:
        g.validate(g.load_grid(path))
    msg = str(e.value)
    assert "'y'" in msg and "'x'" in msg and "'label'" in msg and "'sleep'" in msg
    assert "'out_dir'" not in msg  # the runner's own parameters are not offered


def test_unknown_parameter_of_a_real_notebook():
    grid = g.parse_grid({"notebooks": {"02_similarity": {"params": {"seed": 3}}}},
                        g.GRIDS_DIR / "x.yaml")
    with pytest.raises(ConfigError, match="'seed'.*'seeds'"):
        g.validate(grid)


def test_a_list_parameter_as_an_axis_needs_a_list_of_lists():
    grid = g.parse_grid({"notebooks": {"02_similarity": {"grid": {"seeds": [0, 1]}}}},
                        g.GRIDS_DIR / "x.yaml")
    with pytest.raises(ConfigError, match=r"'seeds' is a list.*seeds: \[\[0, 1\]\]"):
        g.validate(grid)
    ok = g.parse_grid({"notebooks": {"02_similarity": {"grid": {"seeds": [[0, 1], [2, 3]]}}}},
                      g.GRIDS_DIR / "x.yaml")
    g.validate(ok)
    assert [p["seeds"] for p in ok.notebooks[0].points()] == [[0, 1], [2, 3]]


@pytest.mark.parametrize("params", [{"x": "one"}, {"fail": 1}, {"x": True}])
def test_wrong_value_types_are_refused(write_grid, params):
    with pytest.raises(ConfigError, match="parameter"):
        g.validate(g.load_grid(write_grid({"notebooks": {"echo": {"params": params}}})))


@pytest.mark.parametrize("name", ["interactive", "out_dir"])
def test_parameters_the_runner_sets_are_refused(write_grid, name):
    path = write_grid({"notebooks": {"echo": {"params": {name: "x"}}}})
    with pytest.raises(ConfigError, match="set by the sweep runner"):
        g.validate(g.load_grid(path))


def test_unknown_keys_and_bad_axes_are_refused(write_grid):
    with pytest.raises(ConfigError, match="'notebook'.*'notebooks'"):
        g.load_grid(write_grid({"notebook": {"echo": {}}}))
    with pytest.raises(ConfigError, match="'grids'.*'grid'"):
        g.load_grid(write_grid({"notebooks": {"echo": {"grids": {"x": [1]}}}}))
    with pytest.raises(ConfigError, match="non-empty list"):
        g.load_grid(write_grid({"notebooks": {"echo": {"grid": {"x": 1}}}}))
    with pytest.raises(ConfigError, match="unknown grid 'nope'.*'demo'"):
        g.load_grid("nope")


def test_a_bad_grid_fails_before_anything_runs(write_grid, tmp_path):
    path = write_grid({"notebooks": {"echo": {"grid": {"x": [1]}}, "square": {"grid": {"m": [1]}}}})
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match="'m'"):
        run_sweep(g.load_grid(path), out=out, progress=False)
    assert not out.exists()


def test_product_fixed_parameters_and_overrides(write_grid):
    path = write_grid({"params": {"label": "common", "x": 9},
                       "notebooks": {"echo": {"params": {"label": "own"},
                                              "grid": {"x": [1, 2, 3], "sleep": [0.0, 0.5]}},
                                     "square": {"params": {"n": 4}}}})
    grid = g.load_grid(path)
    g.validate(grid.only(["echo"]))
    echo, square = grid.notebooks
    points = echo.points()
    assert len(points) == 6 and {p["label"] for p in points} == {"own"}
    assert sorted({p["x"] for p in points}) == [1, 2, 3]  # the axis wins over the common value
    assert square.points() == [{"label": "common", "x": 9, "n": 4}]


def test_run_keys_are_readable_unique_and_stable(write_grid, tmp_path):
    path = write_grid({"notebooks": {"echo": {"params": {"label": "a/b c"},
                                              "grid": {"x": [1, 2], "sleep": [0.0, 0.5]}}}})
    runs = plan(g.load_grid(path), tmp_path / "s")
    keys = [r.key for r in runs]
    assert len(set(keys)) == 4 and keys == [r.key for r in plan(g.load_grid(path), tmp_path)]
    assert keys[0].startswith("x=1_sleep=0.0-") and all("/" not in k and " " not in k
                                                         for k in keys)
    # a fixed value is in the hash: changing it makes new runs, not a reuse of the old ones
    other = write_grid({"notebooks": {"echo": {"params": {"label": "z"},
                                               "grid": {"x": [1, 2], "sleep": [0.0, 0.5]}}}})
    assert not set(keys) & {r.key for r in plan(g.load_grid(other), tmp_path / "s")}
    assert g.run_key({"model": "google/electra-base-discriminator"}, ["model"]).startswith(
        "model=google-electra-base-discriminator-")


def test_repeated_axis_values_are_refused(write_grid, tmp_path):
    path = write_grid({"notebooks": {"echo": {"grid": {"x": [1, 1]}}}})
    with pytest.raises(ConfigError, match="twice"):
        plan(g.load_grid(path), tmp_path)


def test_variants_and_only(write_grid, tmp_path):
    path = write_grid({"notebooks": {"echo": {"grid": {"x": [1]}},
                                     "echo@big": {"params": {"x": 100}}, "square": {}}})
    grid = g.load_grid(path)
    assert [nb.notebook for nb in grid.notebooks] == ["echo", "echo", "square"]
    assert [nb.name for nb in grid.only(["echo"]).notebooks] == ["echo", "echo@big"]
    assert [nb.name for nb in grid.only(["echo@big"]).notebooks] == ["echo@big"]
    runs = plan(grid, tmp_path)
    assert {r.folder.name for r in runs} == {"echo", "echo@big", "square"}
    with pytest.raises(ConfigError, match="'cube'.*'square'"):
        grid.only(["cube"])


@pytest.mark.parametrize("cores, workers, threads", [(2, 1, 2), (2, 2, 1), (2, 4, 1),
                                                     (16, 3, 5), (1, 1, 1)])
def test_workers_times_threads_fit_the_cores(cores, workers, threads):
    assert threads_per_run(workers, cores) == threads


def test_dry_run_lists_the_runs_and_runs_nothing(write_grid, tmp_path, capsys):
    from layerscope.batch.command import main

    path = write_grid({"notebooks": {"echo": {"grid": {"x": [1, 2, 3]}}, "square": {}}})
    out = tmp_path / "dry"
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([x for x in lines if x.startswith("to run")]) == 4 and lines[-1].startswith("4 runs")
    assert not out.exists()
    assert main(["sweep", str(path), "--only", "cube", "--dry-run"]) == 2  # one clean line
    assert "unknown notebook 'cube'" in capsys.readouterr().err
