"""``StudyResult.save(dir)`` figure files: plotly.js is one local file referenced by a relative
path (the sweep folder's inside a sweep, else written once into ``dir``), never inlined per
figure and never a CDN, so the folder opens from disk offline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import pytest

from layerscope.plots.html import PLOTLYJS_DIR_ENV, plotlyjs_name, plotlyjs_src
from layerscope.studies.base import StudyResult, finding


@dataclass(frozen=True)
class Cfg:
    task: str = "tiny-sentiment"
    model: str = "tiny-bert"


@dataclass(frozen=True)
class Toy(StudyResult):
    """The smallest study result: one figure and one extra figure."""

    config: Cfg
    study = "toy"

    def figure(self):
        return go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]), layout={"title": "toy"})

    def extra_figures(self) -> dict:
        return {"toy_extra": (go.Figure(go.Bar(y=[1, 2])), None)}

    def findings(self) -> dict:
        return {"c": finding("a claim", {}, None)}

    def title(self) -> str:
        return "toy study"

    def png(self, path: Path) -> Path:
        path.write_bytes(b"\x89PNG\r\n\x1a\n")
        return path

    def to_dict(self) -> dict:
        return {}


def script_srcs(path: Path) -> list[str]:
    return re.findall(r'<script[^>]*\ssrc="([^"]+)"', path.read_text())


def test_save_outside_a_sweep_writes_plotlyjs_once_into_the_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(PLOTLYJS_DIR_ENV, raising=False)
    d = tmp_path / "alone"
    files = Toy(Cfg()).save(d)
    js = d / plotlyjs_name()
    assert files["plotlyjs"] == js.resolve() and js.stat().st_size > 1_000_000
    for key in ("html", "toy_extra_html"):
        assert script_srcs(files[key]) == [js.name]  # relative, beside the figure
        assert files[key].stat().st_size < 100_000  # plotly.js is not inlined
        assert "Plotly.newPlot(" in files[key].read_text()
    first = js.stat().st_mtime_ns
    Toy(Cfg(task="other")).save(d)  # a second result into the same folder: still one copy
    assert list(d.glob("*.js")) == [js] and js.stat().st_mtime_ns == first


def test_save_under_the_shared_folder_references_its_copy(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    monkeypatch.setenv(PLOTLYJS_DIR_ENV, str(sweep))
    run_dir = sweep / "03_truncation" / "default-5cf52afb"
    files = Toy(Cfg()).save(run_dir)
    assert script_srcs(files["html"]) == [f"../../{plotlyjs_name()}"]
    assert (run_dir / f"../../{plotlyjs_name()}").resolve() == (sweep / plotlyjs_name())
    assert (sweep / plotlyjs_name()).is_file() and not list(run_dir.glob("*.js"))


def test_a_shared_folder_elsewhere_is_not_used(tmp_path, monkeypatch):
    """Only a folder above the figures: a reference out of the folder would break on a copy."""
    monkeypatch.setenv(PLOTLYJS_DIR_ENV, str(tmp_path / "some-sweep"))
    d = tmp_path / "mine"
    assert plotlyjs_src(d) == plotlyjs_name() and (d / plotlyjs_name()).is_file()
    assert not (tmp_path / "some-sweep").exists()


@pytest.mark.parametrize("damaged", [b"", b"truncated"])
def test_a_damaged_copy_is_rewritten(tmp_path, monkeypatch, damaged):
    monkeypatch.delenv(PLOTLYJS_DIR_ENV, raising=False)
    (tmp_path / plotlyjs_name()).write_bytes(damaged)
    plotlyjs_src(tmp_path)
    assert (tmp_path / plotlyjs_name()).stat().st_size > 1_000_000
