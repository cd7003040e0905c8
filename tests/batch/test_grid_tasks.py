"""Tasks given as paths in grids and on the sweep command line: a relative path is read from
the grid file's folder (a grid) or the current folder (``--task``), and reaches the notebooks
absolute, since their kernels run elsewhere. Nothing here executes a notebook."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from layerscope.batch import command
from layerscope.batch import grid as g


def _grid_file(folder: Path, data: dict) -> Path:
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_relative_task_path_is_read_from_the_grid_files_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reviews.csv").write_text("text,label\na,0\n")
    (tmp_path / "card.yaml").write_text("name: x\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where the grid is
    grid = g.load_grid(str(_grid_file(tmp_path, {
        "params": {"task": "data/reviews.csv"},
        "notebooks": {"02_similarity": {},
                      "05_geometry": {"grid": {"task": ["card.yaml", "movies"]},
                                      "params": {"out_of_domain": ["data/reviews.csv",
                                                                   "tweets"]}},
                      "03_truncation": {"runs": [{"task": "missing/file.csv"}]}}})))
    by_name = {nb.name: nb for nb in grid.notebooks}
    assert by_name["02_similarity"].params["task"] == str(tmp_path / "data" / "reviews.csv")
    assert by_name["05_geometry"].axes["task"] == [str(tmp_path / "card.yaml"), "movies"]
    assert by_name["05_geometry"].params["out_of_domain"] == [
        str(tmp_path / "data" / "reviews.csv"), "tweets"]
    # a path that is not there stays as written: the config's own check names it
    assert by_name["03_truncation"].runs == ({"task": "missing/file.csv"},)


def test_registry_names_are_never_taken_for_paths(tmp_path):
    (tmp_path / "movies").mkdir()  # a folder that happens to share a task's name
    assert g.local_task("movies", tmp_path) == "movies"
    assert g.local_task("sst2@abc", tmp_path) == "sst2@abc"


def test_sweep_task_option_sets_every_notebook_with_an_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "mine.jsonl").write_text('{"text": "a", "label": 0}\n')
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(task="mine.jsonl", device=None)
    assert command.overrides(args) == {"task": str(tmp_path / "mine.jsonl")}
    grid = g.load_grid("smoke").with_params(command.overrides(args))
    assert {nb.params["task"] for nb in grid.notebooks} == {str(tmp_path / "mine.jsonl")}
    assert all("task" not in nb.axes for nb in grid.notebooks)
    assert command.overrides(argparse.Namespace(task="movies", device="cpu")) == {
        "task": "movies", "device": "cpu"}
