"""Headless Chromium for the end-to-end tests: Debian's ``chromium`` driven by Playwright for
Python (never Playwright's own browser download). ``scripts/install_browser.sh`` installs
either where missing; when that fails the tests FAIL with the reason (a skipped browser test
would look green while testing nothing).

Each test gets a fresh browser profile under its tmp folder, a list of console errors, and a
``screenshots`` folder beside them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install_browser.sh"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage"]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: end-to-end tests in headless Chromium")


def find_chromium() -> str | None:
    for c in (os.environ.get("LAYERSCOPE_CHROMIUM"), "chromium", "chromium-browser",
              "/usr/bin/chromium"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


def _playwright_ok() -> bool:
    importlib.invalidate_caches()  # it may have been installed a moment ago
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the Chromium executable, installed by ``install_browser.sh`` if missing."""
    if find_chromium() is None or not _playwright_ok():
        venv = Path(sys.executable).parent.parent  # the venv running these tests
        proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "LAYERSCOPE_VENV": str(venv)})
        exe = find_chromium()
        if exe is None or not _playwright_ok():
            pytest.fail(f"the browser tests need Debian's chromium and Playwright for Python; "
                        f"{INSTALL.name} could not install them (exit {proc.returncode}):\n"
                        f"{proc.stderr[-2000:]}\nInstall by hand: apt-get install -y chromium; "
                        f".venv/bin/pip install playwright (or set LAYERSCOPE_CHROMIUM)",
                        pytrace=False)
    return find_chromium()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    d = tmp_path / "screenshots"
    d.mkdir()
    return d


@pytest.fixture
def browser_page(chromium, tmp_path):
    """A page of a fresh headless Chromium (own profile), 1280 x 900, plus its console errors
    (``page.console_errors``: console.error messages and uncaught exceptions)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 900})
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.console_errors = errors
        try:
            yield page
        finally:
            ctx.close()
