"""The gallery pages from sweep folders written here by hand (no kernel runs): each table row
links to its own run's card when two notebooks share a run key, names with ``<`` and ``&``
stay text, figures share one local plotly.js; and the dry run of a sweep."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import numpy as np
import plotly.graph_objects as go
import pytest

from layerscope.batch import gallery, gallery_page, runner, sweep
from layerscope.batch.command import main as batch_main
from layerscope.batch.grid import run_key
from layerscope.plots.html import PLOTLYJS_DIR_ENV, plotlyjs_name, write_figure_html


class Page(HTMLParser):
    """What a browser's parser makes of a page: elements with attributes, the text inside
    them, and the raw text of each <script>."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self.texts: list[str] = []
        self._stack: list[tuple[str, dict, list[str]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag not in ("meta", "input", "br", "img", "link"):
            self._stack.append((tag, a, []))

    def handle_endtag(self, tag):
        while self._stack:
            t, a, text = self._stack.pop()
            joined = "".join(text)
            if self._stack:
                self._stack[-1][2].append(joined)
            if t == "script":
                self.scripts.append((a, joined))
            if t == tag:
                self.texts.append(joined)
                break

    def handle_data(self, data):
        if self._stack:
            self._stack[-1][2].append(data)

    def tags(self, name: str) -> list[dict]:
        return [a for t, a in self.elements if t == name]


def table_rows(text: str) -> list[dict]:
    """Results table rows of a gallery page: {column: (cell text, link or None)}."""
    table = text.split('<table class="results">')[1].split("</table>")[0]
    header = re.findall(r"<th>(.*?)</th>", table)
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], flags=re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, flags=re.S)
        row = {}
        for name, cell in zip(header, cells, strict=True):
            m = re.fullmatch(r'<a href="([^"]*)">(.*)</a>', cell)
            row[name] = (m.group(2), m.group(1)) if m else (cell, None)
        rows.append(row)
    return rows


def cards(text: str) -> dict[str, str]:
    """Card id -> the card's heading (``notebook · key status``)."""
    return dict(re.findall(r'<article class="run" id="([^"]+)"><h3>(.*?)</h3>', text))


def fake_sweep(folder: Path, runs: list[dict], monkeypatch, name="fake") -> list[runner.Run]:
    """A sweep folder as a sweep leaves it, written directly: the plan, and per run its
    marker, executed notebook, study JSON and figure (saved as a run's notebook saves it).

    ``runs``: {notebook, params, axes, status="ok", studies=[{study, record, findings, ...}],
    figure=go.Figure | None, error=None}."""
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv(PLOTLYJS_DIR_ENV, str(folder))  # as runner.execute sets it for a run
    planned = []
    for spec in runs:
        params, axes = spec["params"], tuple(spec.get("axes", ()))
        planned.append(runner.Run(sweep=name, notebook=spec["notebook"],
                                  key=run_key(params, list(axes)), params=params,
                                  notebook_path=f"/nowhere/{spec['notebook']}.ipynb",
                                  sweep_dir=str(folder), home=str(folder / "home"), axes=axes))
    grid = SimpleNamespace(name=name, description=f"a {name} sweep", source="grid.yaml")
    sweep.write_plan(grid, folder, planned)
    for run, spec in zip(planned, runs, strict=True):
        run.run_dir.mkdir(parents=True)
        status = spec.get("status", runner.OK)
        studies = spec.get("studies", []) if status == runner.OK else []
        for s in studies:
            (run.run_dir / f"{s['study']}.json").write_text(json.dumps(s))
            if spec.get("figure") is not None:
                write_figure_html(spec["figure"], run.run_dir / f"{s['study']}.html")
        run.output.write_text("{}")
        run.marker.write_text(json.dumps({
            "status": status, "error": spec.get("error"), "note": "", "duration_s": 1.5,
            "started": "2024-01-01T00:00:00", "threads": 1,
            "records": [s["record"] for s in studies]}))
    monkeypatch.delenv(PLOTLYJS_DIR_ENV)
    return planned


def study(name: str, **record) -> dict:
    """The saved JSON of a study with no result class here (read as its record and findings):
    one SUPPORTED finding, its interval above the threshold."""
    verdict = "SUPPORTED"
    return {"study": name, "record": {"study": name, **record, f"verdict.{name}_claim": verdict},
            "findings": {f"{name}_claim": {"claim": f"{name} holds", "numbers": {},
                                           "interval": {"estimate": 1.0, "low": 0.5,
                                                        "high": 1.5, "of": "effect",
                                                        "method": "exact"},
                                           "threshold": 0, "verdict": verdict}}}


def similarity_json(model: str, task: str, **change) -> dict:
    """What ``SimilarityResult.save`` writes for a small hand-made result (2 blocks, FT–FT with
    an undefined layer 0, a block structure SUPPORTED), under any model and task names: the
    reader does not re-validate a saved config against this machine's registries."""
    from layerscope.studies.base import Interval
    from layerscope.studies.similarity import SimilarityConfig, SimilarityResult

    m = np.array([[np.nan, np.nan, np.nan], [np.nan, 1.0, 0.5], [np.nan, 0.5, 1.0]])
    block = {"boundary": 1, "score": 0.5, "within": 1.0, "between": 0.5}
    r = SimilarityResult(
        config=SimilarityConfig(task="tiny-sentiment", model="tiny-bert", preset="smoke"),
        matrices={"orig_orig": m, "ft_ft": m.copy()},
        undefined={"orig_orig": ("layer emb: constant",), "ft_ft": ("layer emb: constant",)},
        blocks={"orig_orig": block, "ft_ft": block},
        effects={"block_structure": Interval(0.2, 0.1, 0.3, "block score",
                                             "by hand").to_dict()},
        activation_keys={"orig": "k0", "ft": "k1"},
        finetune_runs=tuple({"seed": s, "key": f"f{s}", "metrics": {"accuracy": 0.9},
                             "baseline": {"accuracy": 0.5}} for s in (0, 1)), n_rows=8,
        seconds=1.0, **change)
    data = json.loads(json.dumps({"study": r.study, "record": r.to_record(),
                                  "findings": r.findings(), **r.to_dict()}, default=str))
    for d in (data["config"], data["record"]):
        d.update(model=model, task=task)
    return data


def test_two_notebooks_sharing_a_run_key_each_link_to_their_own_card(tmp_path, monkeypatch):
    # notebooks 03 and 04 with the same parameters: the same run key, in different folders
    params = {"task": "movies", "model": "minilm-l6", "seeds": [0]}
    runs = fake_sweep(tmp_path / "demo", [
        {"notebook": "03_truncation", "params": params, "studies": [study("cut")],
         "figure": go.Figure(go.Bar(y=[3]))},
        {"notebook": "04_skipping", "params": params, "studies": [study("skip")],
         "figure": go.Figure(go.Bar(y=[4]))},
        {"notebook": "04_skipping", "params": {**params, "seeds": [1]}, "axes": ["seeds"],
         "status": runner.FAILED, "error": "ValueError: boom"}], monkeypatch)
    assert runs[0].key == runs[1].key  # the situation of the issue
    page = gallery.write_gallery(tmp_path / "demo").read_text()
    by_id = cards(page)
    assert len(by_id) == 3  # one card per run, ids distinct
    rows = table_rows(page)
    assert [r["notebook"][0] for r in rows] == ["03_truncation", "04_skipping", "04_skipping"]
    for row, run in zip(rows, runs, strict=True):
        text, link = row["key"]
        assert text == run.key and link.startswith("#")
        heading = by_id[link[1:]]  # the card the row links to ...
        assert heading.startswith(f"{run.notebook} · {run.key} ")  # ... is this run's own
        assert row["notebook"][1] == link
    assert len({r["key"][1] for r in rows}) == 3
    # each card holds its own study's verdicts and figure
    body = page.split("<article")[1:]
    assert "cut holds" in body[0] and "skip holds" not in body[0]
    assert "skip holds" in body[1] and "cut holds" not in body[1]
    assert "03_truncation/" + runs[0].key + "/cut.html" in body[0]
    assert "ValueError: boom" in body[2]


def test_names_with_markup_characters_stay_text(tmp_path, monkeypatch):
    model, task = "<b>bert</b> & co", "t<1>&amp;"
    nasty = "</script><script>alert(1)</script>"
    sim = similarity_json(model, task)
    fig = go.Figure(go.Bar(x=[model, task], y=[1, 2]), layout={"title": nasty})
    fake_sweep(tmp_path / "s&<x>", [
        {"notebook": "02_similarity", "params": {"model": model, "task": task, "label": nasty},
         "axes": ["model"], "studies": [sim], "figure": fig},
        {"notebook": "02_similarity@<i>", "params": {"model": model}, "status": runner.FAILED,
         "error": f"ConfigError: unknown model {model!r} {nasty}"}], monkeypatch,
        name="<sweep & co>")
    text = gallery.write_gallery(tmp_path / "s&<x>").read_text()
    page = Page(text)
    # no element came from the data: only the page's own tags
    assert not page.tags("b") and not page.tags("i")
    scripts = [a for t, a in page.elements if t == "script"]
    n_figures = text.count('class="figure" data-fig=')
    assert n_figures == 2  # the run's figure + the FT–FT grid
    assert len(scripts) == n_figures + 2  # + plotly.js + the page's script; no alert(1)
    assert all(a.get("type") == "application/json" for a in scripts[:n_figures])
    shown = "".join(page.texts)
    assert model in shown and task in shown and nasty in shown and "<sweep & co>" in shown
    assert f"unknown model {model!r}" in shown
    # the figure JSON parses (as the page script reads it) back to the same names
    specs = {a["id"]: json.loads(body) for a, body in page.scripts
             if a.get("type") == "application/json"}
    assert specs["fig-0"]["data"][0]["x"] == [model, task]  # the run's figure
    assert specs["fig-0"]["layout"]["title"]["text"] == nasty
    grid_text = json.dumps(specs["fig-1"])  # the FT–FT grid
    assert json.dumps(model)[1:-1] in grid_text and json.dumps(task)[1:-1] in grid_text
    # the table and the summary show the names as text
    row = table_rows(text)[0]
    assert row["model"][0] == "&lt;b&gt;bert&lt;/b&gt; &amp; co"
    assert "similarity · block_structure: SUPPORTED in 1 of 1 run" in shown
    # the failed run's card (notebook entry with markup in its name) links its own files
    card_links = [a["href"] for a in page.tags("a") if a["href"].endswith(".ipynb")]
    assert len(card_links) == 2 and card_links[1].startswith("02_similarity@%3Ci%3E/")
    for h in card_links:  # percent-encoded, each link finds its file
        assert (tmp_path / "s&<x>" / unquote(h)).is_file(), h
    index = Page(gallery.write_index(tmp_path).read_text())
    assert not index.tags("sweep") and "<sweep & co>" in "".join(index.texts)


def test_a_damaged_or_inconsistent_result_is_shown_as_damaged(tmp_path, monkeypatch):
    """Runs whose saved result is cut short, lacks a key, breaks the verdict rule or fails its
    class's check() get a card that says so and why; they stay out of the summary and the
    FT–FT grid; the good run beside them is drawn as before."""
    from layerscope.batch import main_job

    wrong = study("echo")
    wrong["findings"]["echo_claim"]["interval"].update(low=-1.0)  # straddles 0: INCONCLUSIVE
    no_reason = similarity_json("other-model", "tiny-sentiment")
    no_reason["undefined"]["ft_ft"] = []
    no_key = similarity_json("tiny-bert", "tiny-sentiment")
    del no_key["matrices"]
    specs = {"good": [similarity_json("tiny-bert", "tiny-sentiment")], "cut": [study("echo")],
             "wrong": [wrong], "no_reason": [no_reason], "no_key": [no_key]}
    runs = fake_sweep(tmp_path / "d", [
        {"notebook": "02_similarity", "params": {"x": name}, "axes": ["x"], "studies": studies,
         "figure": go.Figure(go.Bar(y=[1]))} for name, studies in specs.items()], monkeypatch)
    cut = runs[1].run_dir / "echo.json"
    cut.write_text(cut.read_text()[:40])  # a file cut short, e.g. a full disk
    text = gallery.write_gallery(tmp_path / "d").read_text()
    page = Page(text)
    shown = "".join(page.texts)
    rows = {r["x"][0]: r for r in table_rows(text)}
    assert rows["good"]["status"][0] == "ok"
    assert {k: rows[k]["status"][0] for k in specs if k != "good"} == dict.fromkeys(
        ["cut", "wrong", "no_reason", "no_key"], gallery.DAMAGED)
    for reason in ("damaged result: echo.json: damaged, not valid JSON",
                   "damaged result: echo.json: finding 'echo_claim' is SUPPORTED but its "
                   "interval [-1.0, 1.5] against threshold 0 gives INCONCLUSIVE",
                   "damaged result: similarity.json: matrix ft_ft has 5 undefined (NaN) cells "
                   "and no recorded reason", "damaged result: similarity.json: no key "
                   "'matrices'"):
        assert reason in shown, reason
    # the summary counts only the good run; the grid draws only its matrix
    assert "similarity · block_structure: SUPPORTED in 1 of 1 run" in shown
    assert "echo · echo_claim" not in shown
    assert text.count("FT–FT per model and task: ") == 1
    specs = {a["id"]: body for a, body in page.scripts if a.get("type") == "application/json"}
    grid = specs[f"fig-{len(specs) - 1}"]  # numbered after the runs' figures
    assert "tiny-bert" in grid and "other-model" not in grid
    assert all("tiny-bert" not in specs[f"fig-{i}"] for i in range(len(specs) - 1))
    # the table, the main job's lines and the runner read the same way
    assert main_job.finding_lines(runs[2].run_dir) == [
        "echo: DAMAGED (echo.json: finding 'echo_claim' is SUPPORTED but its interval "
        "[-1.0, 1.5] against threshold 0 gives INCONCLUSIVE)"]
    assert main_job.finding_lines(runs[0].run_dir) == [
        "similarity.block_structure: SUPPORTED 0.200 [0.100, 0.300]"]
    records, damaged = runner.collect_records(runs[4].run_dir)
    assert records == [] and damaged == ["similarity.json: no key 'matrices' (written by a "
                                         "layerscope that did not save it yet, or damaged: run "
                                         "the notebook again to rewrite it)"]
    records, damaged = runner.collect_records(runs[0].run_dir)
    assert damaged == [] and records[0]["verdict.block_structure"] == "SUPPORTED"


def test_script_json_cannot_close_its_script_element():
    spec = json.dumps({"t": "a</script><!-- & \u2028 >"})
    safe = str(gallery_page.script_json(spec))
    assert "<" not in safe and ">" not in safe and "&" not in safe and "\u2028" not in safe
    assert json.loads(safe) == json.loads(spec)


def test_figures_and_gallery_share_one_local_plotlyjs(tmp_path, monkeypatch):
    d = tmp_path / "sweep"
    runs = fake_sweep(d, [
        {"notebook": "echo", "params": {"x": x}, "axes": ["x"], "studies": [study("echo")],
         "figure": go.Figure(go.Heatmap(z=[[x, 1], [2, 3]]))} for x in range(3)], monkeypatch)
    gallery.write_gallery(d)
    js = d / plotlyjs_name()
    assert js.is_file() and js.stat().st_size > 1_000_000  # the real plotly.js, once
    assert list(d.rglob("plotly*.js")) == [js]
    for run in runs:
        html = (run.run_dir / "echo.html").read_text()
        assert len(html) < 100_000  # not 4.8 MB: plotly.js is referenced, not inlined
        (src,) = re.findall(r'<script[^>]*src="([^"]+)"', html)
        assert src == f"../../{plotlyjs_name()}" and (run.run_dir / src).resolve() == js
        assert "cdn" not in src and "://" not in src
    page = (d / "gallery.html").read_text()
    (src,) = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert (d / src).resolve() == js
    total = sum(p.stat().st_size for p in d.rglob("*.html"))
    assert total < 1_000_000, total
    # the folder still works when moved: every reference is relative
    moved = tmp_path / "elsewhere" / "sweep"
    moved.parent.mkdir()
    d.rename(moved)
    for p in moved.rglob("*.html"):
        for src in re.findall(r'<script[^>]*src="([^"]+)"', p.read_text()):
            assert (p.parent / src).is_file(), (p, src)


def test_dry_run_says_which_runs_are_finished_and_which_would_run(write_grid, tmp_path,
                                                                  capsys):
    """A tiny grid: one run finished (marker ok, notebook there), one failed before, one that
    was interrupted, one never run. Nothing runs, nothing is written."""
    path = write_grid({"notebooks": {"echo": {"grid": {"x": [1, 2, 3, 4]}}}})
    d = tmp_path / "dry"
    from layerscope.batch.grid import load_grid

    runs = sweep.plan(load_grid(path), d)
    for r in runs[:3]:
        r.folder.mkdir(parents=True, exist_ok=True)
    sweep.write_plan(load_grid(path), d, runs)  # a sweep folder (another folder is refused)
    runs[0].output.write_text("{}")
    runs[0].marker.write_text(json.dumps({"status": "ok", "started": "2024-01-01T10:00:00",
                                          "duration_s": 12.0}))
    runs[1].output.write_text("{}")
    runs[1].marker.write_text(json.dumps({"status": "failed", "error": "ValueError: boom"}))
    runs[2].log.write_text("Executing Cell 1")  # killed before its marker was written
    before = sorted((p, p.stat().st_mtime_ns) for p in d.rglob("*"))
    assert batch_main(["sweep", str(path), "--out", str(d), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"grid 'g': 4 runs in {d} (dry run: nothing runs)"
    assert lines[1] == f"finished  echo/{runs[0].key}  x=1  (ok 2024-01-01T10:00:00, took 12 s)"
    assert lines[2] == f"to run    echo/{runs[1].key}  x=2  (failed before: ValueError: boom)"
    assert lines[3].startswith(f"to run    echo/{runs[2].key}  x=3  (started before but never")
    assert lines[4] == f"to run    echo/{runs[3].key}  x=4  (never run)"
    assert lines[5] == "4 runs: 1 finished (skipped), 3 to run"
    assert sorted((p, p.stat().st_mtime_ns) for p in d.rglob("*")) == before  # wrote nothing
    # `main --dry-run` lists the same
    assert batch_main(["main", "--grid", str(path), "--out", str(d), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    # an ok marker whose saved result cannot be read (cut short, or written by a layerscope
    # that did not save what this one reads): to run again, saying why, never skipped
    runs[0].run_dir.mkdir(parents=True, exist_ok=True)
    (runs[0].run_dir / "echo.json").write_text('{"study": "echo", "rec')
    state = sweep.run_state(runs[0])
    assert state.state == sweep.TO_RUN and not runner.is_finished(runs[0])
    assert "its saved result cannot be read (echo.json: damaged, not valid JSON" in state.why
    (runs[0].run_dir / "echo.json").unlink()
    assert runner.is_finished(runs[0])
    # an ok marker whose executed notebook is gone: to run again
    runs[0].output.unlink()
    assert sweep.run_state(runs[0]).state == sweep.TO_RUN
    assert sweep.run_state(runs[0]).why == "its executed notebook was deleted"


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"], ["main", "--help"],
                                  ["gallery", "--help"]])
def test_help_is_plain_words(argv, capsys):
    with pytest.raises(SystemExit):
        batch_main(argv)
    text = capsys.readouterr().out
    assert "usage:" in text
    assert "``" not in text and ":func:" not in text and ":mod:" not in text
    assert not re.search(r":\w+:`", text)


def test_command_module_imports_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, layerscope.batch.command as c; c.build_parser(); "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('papermill','pandas','dask','distributed','torch','transformers','plotly',"
            "'numpy','yaml','tqdm','jinja2') or m.startswith('layerscope.studies'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", out


def test_command_backends_match_the_sweep():
    from layerscope.batch import command

    assert command.BACKENDS == sweep.BACKENDS
    from layerscope.batch.grid import shipped_grids

    assert command.shipped_grid_names() == sorted(shipped_grids())
    assert runner.PLOTLYJS_DIR_ENV == PLOTLYJS_DIR_ENV
