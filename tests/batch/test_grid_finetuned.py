"""Grids over models fine-tuned elsewhere: ``finetuned`` is a list parameter of 02-05."""

from __future__ import annotations

import re

import pytest
import yaml

from layerscope.batch import grid as g
from layerscope.errors import ConfigError


def test_the_docstring_example_validates(tmp_path):
    """The example in ``batch.grid``'s docstring: fixed lists and an axis of lists. Its
    folders are made here (validation builds every run's config, which checks that a
    checkpoint is a folder or a hub id); a missing one is refused before anything runs."""
    text = g.__doc__.split("one\ncheckpoint, local folder")[1].split("::\n", 1)[1]
    example = re.split(r"\n\S", text)[0]  # the indented block
    with pytest.raises(ConfigError, match="neither a local folder nor a hub id"):
        g.validate(g.parse_grid(yaml.safe_load(example), g.GRIDS_DIR / "x.yaml"))
    for name in ("movies-a", "movies-b"):
        (tmp_path / "models" / name).mkdir(parents=True)
    example = example.replace("/models/", f"{tmp_path}/models/")
    grid = g.parse_grid(yaml.safe_load(example), g.GRIDS_DIR / "x.yaml")
    g.validate(grid)
    sim, skip = grid.notebooks
    a, b = (f"{tmp_path}/models/movies-{x}" for x in "ab")
    assert sim.points()[0]["finetuned"] == [a, b]
    assert [p["finetuned"] for p in skip.points()] == [[a], [b]]


def test_an_axis_of_paths_is_refused_with_the_hint():
    grid = g.parse_grid({"notebooks": {"03_truncation": {"grid": {"finetuned": ["/m/a"]}}}},
                        g.GRIDS_DIR / "x.yaml")
    with pytest.raises(ConfigError, match=r"'finetuned' is a list.*list of lists"):
        g.validate(grid)
