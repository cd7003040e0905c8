"""The gallery of the smoke sweep, opened from disk (file://) in headless Chromium with every
network request refused: every figure renders (plotly.js is the sweep folder's local copy),
the table sorts on a header click and filters, a row's key link goes to its own run's card, a
run's own figure file renders on its own, no console errors."""

from __future__ import annotations

import pytest

from layerscope.batch.grid import load_grid
from layerscope.batch.sweep import run_sweep

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def column(page, name: str) -> list[str]:
    """The visible cells of the results table's column ``name``, top to bottom."""
    return page.evaluate("""(name) => {
        const t = document.querySelector('table.results');
        const i = [...t.tHead.rows[0].cells].findIndex(c => c.textContent === name);
        return [...t.tBodies[0].rows].filter(r => r.style.display !== 'none')
            .map(r => r.cells[i].getAttribute('data-v') || r.cells[i].textContent);
    }""", name)


def test_smoke_gallery_renders_sorts_and_filters(browser_page, screenshots, tmp_path):
    # notebooks 01 and 02 of the smoke sweep (2 x 2 runs): lines, heatmaps and the FT–FT grid;
    # the other notebooks' figures are the same plotly figures (tests/test_notebooks.py)
    grid = load_grid("smoke").only(["01_finetune", "02_similarity"])
    report = run_sweep(grid, out=tmp_path / "runs" / "smoke", workers=2, progress=False)
    assert not report.failed, [(r["key"], r["error"]) for r in report.rows if r["error"]]
    n_files = len([p for p in report.sweep_dir.glob("*/*/*.html")])
    page = browser_page
    fetched: list[str] = []  # no CDN, no server: anything but file:// is refused and noted

    def refuse(route):
        fetched.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith("file:"), refuse)
    page.goto(report.files["gallery"].as_uri())
    placeholders = page.locator("div.figure[data-fig]")
    n = placeholders.count()
    assert n == n_files + 1, "one figure per saved figure file + the FT–FT grid"
    for i in range(n):  # figures are drawn as they scroll into view, as a reader would see them
        fig = placeholders.nth(i)
        fig.scroll_into_view_if_needed()
        fig.locator(".main-svg").first.wait_for(timeout=30_000)
    assert page.locator("div.figure.js-plotly-plot").count() == n
    assert page.locator("div.figure .heatmaplayer").count() >= 1  # heatmaps, not empty axes
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshots / "gallery.png"), full_page=True)

    keys = column(page, "key")
    assert len(keys) == len(report.rows)
    header = page.locator("table.results th", has_text="key").first
    header.click()
    assert column(page, "key") == sorted(keys)
    header.click()
    assert column(page, "key") == sorted(keys, reverse=True)
    durations = page.locator("table.results th", has_text="duration_s").first
    durations.click()
    got = [float(x) for x in column(page, "duration_s")]
    assert got == sorted(got), "numbers sort as numbers"
    page.fill("#filter", "tiny-roberta")
    shown = column(page, "model")
    assert shown and set(shown) == {"tiny-roberta"}
    assert page.locator("#shown").text_content() == str(len(shown))
    page.locator("table.results").screenshot(path=str(screenshots / "table-filtered.png"))

    # a row's key link scrolls to that run's own card (notebook and key, not the key alone)
    page.fill("#filter", "")
    row = report.rows[-1]
    tr = page.locator("table.results tbody tr").filter(has_text=row["key"]).filter(
        has_text=row["notebook"])
    tr.locator("a", has_text=row["key"]).click()
    target = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    heading = page.evaluate("(id) => document.getElementById(id).querySelector('h3')"
                            ".textContent", target)
    assert heading.startswith(f"{row['notebook']} · {row['key']} ")

    # a run's own figure file, opened on its own, finds plotly.js by its relative path
    figure_file = sorted(report.sweep_dir.glob("02_similarity/*/similarity.html"))[0]
    page.goto(figure_file.as_uri())
    page.locator(".main-svg").first.wait_for(timeout=30_000)
    assert page.locator(".heatmaplayer").count() >= 1
    assert fetched == [] and page.console_errors == []
