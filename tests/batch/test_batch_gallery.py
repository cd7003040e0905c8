"""The gallery page as HTML (the browser tests open it): every figure embedded once, one local
plotly.js for the whole sweep folder, the table, the findings summary; the FT–FT grid from a
real notebook-02 run; two notebooks that share a run key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from layerscope.batch import gallery, gallery_page, table
from layerscope.batch.grid import load_grid
from layerscope.batch.sweep import run_sweep
from layerscope.plots.html import plotlyjs_name

ROOT = Path(__file__).resolve().parents[2]


def figure_files(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.glob("*/*/*.html") if ".partial" not in str(p))


@pytest.mark.slow
def test_gallery_of_a_sweep(sweep_2x2):
    report, _ = sweep_2x2
    d = report.sweep_dir
    page = report.files["gallery"].read_text()
    assert page.count('class="figure" data-fig=') == len(figure_files(d)) == 4
    assert "<iframe" not in page  # every saved figure was read back as plotly JSON
    body = page.split('<table class="results">')[1].split("</table>")[0]
    assert body.count("<tr>") == 1 + 4  # header + one row per run
    assert "echo · positive: SUPPORTED in 2 of 2 runs — x is positive" in page
    assert "square · big: SUPPORTED in 1 of 2 runs (INCONCLUSIVE 1)" in page
    assert gallery.DAMAGED not in page  # every saved result read back and passed its checks
    # nothing to fetch from a server: one script file, local, beside the page
    assert re.findall(r'<script[^>]*src="([^"]+)"', page) == [plotlyjs_name()]
    assert "<link " not in page
    js = d / plotlyjs_name()
    assert list(d.rglob("*.js")) == [js] and js.stat().st_size > 1_000_000
    # the runs' own figure files (saved in their kernels) reference that same copy
    for p in figure_files(d):
        html = p.read_text()
        assert re.findall(r'<script[^>]*src="([^"]+)"', html) == [f"../../{js.name}"]
        assert (p.parent / f"../../{js.name}").resolve() == js and len(html) < 100_000
    assert sum(p.stat().st_size for p in d.rglob("*.html")) < 1_000_000
    index = report.files["index"].read_text()
    # in the chosen folder (--out), linking its own page (issue 19, item 4)
    assert report.files["index"].parent == report.sweep_dir
    assert 'href="gallery.html"' in index and "4 runs (4 ok)" in index


def test_figure_json_reads_plotly_html(tmp_path):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=[[1, 2], [3, None]]), layout={"title": "t </script> x"})
    for include in (True, False):
        p = tmp_path / f"f{include}.html"
        p.write_text(fig.to_html(include_plotlyjs=include))
        spec = json.loads(gallery.figure_json(p))
        assert spec["data"][0]["type"] == "heatmap" and spec["data"][0]["z"][1] == [3, None]
        assert spec["layout"]["title"]["text"] == "t </script> x"
    block = gallery_page.environment().from_string(
        '{% from "macros.html.j2" import figure %}{{ figure(f) }}').render(
        f=gallery_page.plot_figure("f1", '{"data":[],"layout":{"title":"</script>"}}', "c"))
    assert block.count("</script>") == 1  # only the tag's own end: the JSON cannot close it
    (tmp_path / "plain.html").write_text("<p>no figure</p>")
    assert gallery.figure_json(tmp_path / "plain.html") is None


def test_findings_summary_counts_only_finished_runs():
    rows = [{"status": "ok", "study": "s", "notebook": "n", "verdict.a": "SUPPORTED"},
            {"status": "ok", "study": "s", "notebook": "n", "verdict.a": "NOT SUPPORTED"},
            {"status": "ok", "study": "s", "notebook": "n", "verdict.a": "SUPPORTED"},
            {"status": "failed", "study": None, "notebook": "n", "verdict.a": None}]
    assert gallery.findings_summary(rows, {("s", "a"): "claim"}) == [
        "s · a: SUPPORTED in 2 of 3 runs (NOT SUPPORTED 1) — claim"]


@pytest.mark.slow
def test_a_real_similarity_run_feeds_table_and_ft_ft_grid(write_grid, tmp_path):
    """One real smoke run of notebook 02: its to_record() becomes the row; its matrices the grid."""
    smoke = yaml.safe_load((ROOT / "tests" / "notebooks" / "02_similarity.yaml").read_text())
    smoke.pop("interactive")
    path = write_grid({"notebooks_dir": str(ROOT / "notebooks"),
                       "notebooks": {"02_similarity": {"params": smoke}}})
    report = run_sweep(load_grid(path), out=tmp_path / "real", progress=False)
    (row,) = report.rows
    assert row["status"] == "ok", row["error"]
    assert row["study"] == "similarity" and row["n_layers"] == 4 and row["seeds"] == "0,1"
    verdicts = [k for k in row if k.startswith("verdict.")]
    assert "verdict.block_structure" in verdicts and all(row[k] for k in verdicts)
    df = table.read_table(report.sweep_dir)
    assert df.loc[0, "ft_ft_block_score"] == pytest.approx(row["ft_ft_block_score"])
    page = report.files["gallery"].read_text()
    n = len(figure_files(report.sweep_dir))
    assert n >= 3  # similarity, cross, drift
    js = report.sweep_dir / plotlyjs_name()  # StudyResult.save in the kernel used the sweep's
    for p in figure_files(report.sweep_dir):
        assert re.findall(r'<script[^>]*src="([^"]+)"', p.read_text()) == [f"../../{js.name}"]
        assert (p.parent / f"../../{js.name}").resolve() == js and p.stat().st_size < 200_000
    assert list(report.sweep_dir.rglob("*.js")) == [js]
    assert page.count('class="figure" data-fig=') == n + 1  # + the FT–FT grid
    assert "FT–FT per model and task" in page and "<iframe" not in page
    assert gallery.DAMAGED not in page  # the real result read back by its class, consistent
    grid_json = re.findall(r'<script type="application/json" id="fig-(\d+)">', page)
    assert len(grid_json) == n + 1


@pytest.mark.slow
def test_gallery_command_rewrites_pages(sweep_2x2, tmp_path):
    import shutil

    from layerscope.batch.command import main

    report, _ = sweep_2x2
    d = tmp_path / "copy" / "twobytwo"
    shutil.copytree(report.sweep_dir, d)
    (d / "gallery.html").unlink()
    assert main(["gallery", str(d)]) == 0
    # the index goes into the chosen folder, never the folder above it (issue 19, item 4)
    assert (d / "gallery.html").exists() and (d / "index.html").exists()
    assert not (d.parent / "index.html").exists()


@pytest.mark.slow
def test_two_notebooks_with_the_same_run_key_keep_their_own_cards(write_grid, tmp_path):
    """Like notebooks 03 and 04 run with the same parameters: echo and echo@twin share a key."""
    path = write_grid({"notebooks": {"echo": {"params": {"x": 1, "label": "first"}},
                                     "echo@twin": {"params": {"x": 1, "label": "first"}}}})
    report = run_sweep(load_grid(path), out=tmp_path / "twins", progress=False)
    a, b = report.rows
    assert a["key"] == b["key"] and (a["notebook"], b["notebook"]) == ("echo", "echo@twin")
    assert a["status"] == b["status"] == "ok"
    page = report.files["gallery"].read_text()
    ids = re.findall(r'<article class="run" id="([^"]+)"><h3>([^<]*) · ', page)
    assert [n for _, n in ids] == ["echo", "echo@twin"] and ids[0][0] != ids[1][0]
    body = page.split('<table class="results">')[1].split("</table>")[0].split("<tbody>")[1]
    links = re.findall(r'<a href="#([^"]+)">' + re.escape(a["key"]) + "</a>", body)
    assert links == [ids[0][0], ids[1][0]]  # row 1 -> echo's card, row 2 -> echo@twin's
    for anchor, name in ids:  # each card shows its own run's figure file
        card = page.split(f'id="{anchor}"')[1].split("</article>")[0]
        assert f"{name}/{a['key']}/echo.html" in card
