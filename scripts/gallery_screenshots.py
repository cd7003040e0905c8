"""README pictures of a sweep's gallery: ``python scripts/gallery_screenshots.py [SWEEP_DIR]``.

Opens ``<sweep>/gallery.html`` from disk in headless Chromium (Debian's ``chromium`` through
Playwright, as the browser tests do; ``scripts/install_browser.sh`` installs both), lets every
figure draw, and writes ``docs/gallery_top.png`` (the top of the page: the findings summed over
the grid) and ``docs/gallery_runs.png`` (the card of the similarity run, or the first run: its
parameters, verdicts and figures).
Default sweep: ``<home>/runs/demo`` (the main job's).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from layerscope import paths  # noqa: E402


def main(argv: list[str]) -> int:
    sweep = Path(argv[0]) if argv else paths.runs_dir() / "demo"
    page_file = sweep / "gallery.html"
    if not page_file.exists():
        print(f"{page_file} not found: run `layerscope main` (or a sweep) first", file=sys.stderr)
        return 2
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        print("chromium not found: bash scripts/install_browser.sh", file=sys.stderr)
        return 2
    out = ROOT / "docs"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.as_uri())
        figures = page.locator("div.figure[data-fig]")
        for i in range(figures.count()):  # drawn as they scroll into view
            figures.nth(i).scroll_into_view_if_needed()
            figures.nth(i).locator(".main-svg").first.wait_for(timeout=30_000)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(out / "gallery_top.png"))
        print(out / "gallery_top.png")
        card = page.locator("article.run", has_text="02_similarity").first
        if not card.count():
            card = page.locator("article.run").first
        card.screenshot(path=str(out / "gallery_runs.png"))
        print(out / "gallery_runs.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
