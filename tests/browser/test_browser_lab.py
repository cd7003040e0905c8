"""Notebook 02 in JupyterLab in headless Chromium, as a user would: run all cells with smoke
parameters and ``interactive=True``, change the explorer's seed, click its Run button, and see
a new heatmap appear in the widget's output area (computed with that seed)."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
NEW_SEED = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer {url} in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a free local port, rooted at a folder holding notebook 02 prepared with the
    smoke parameters and interactive=True; own config, runtime and settings folders."""
    root = tmp_path / "lab"
    root.mkdir()
    params = yaml.safe_load((ROOT / "tests" / "notebooks" / "02_similarity.yaml").read_text())
    params["interactive"] = True
    subprocess.run([sys.executable, "-m", "papermill", "--prepare-only", "-y", json.dumps(params),
                    str(ROOT / "notebooks" / "02_similarity.ipynb"),
                    str(root / "02_similarity.ipynb")], check=True, capture_output=True)
    port, token = free_port(), secrets.token_hex(16)
    jupyter = {k: str(tmp_path / "jupyter" / k.lower()) for k in (
        "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
        "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR")}
    env = {**os.environ, **jupyter, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "lib"),
                                                       os.environ.get("PYTHONPATH")]))}
    log = tmp_path / "jupyter-lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI machines run as root
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", proc, log)
        yield {"url": f"http://127.0.0.1:{port}/lab/tree/02_similarity.ipynb?token={token}",
               "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def accept_kernel_dialog(page) -> None:
    """JupyterLab may ask which kernel to start (its default, Python 3, is preselected)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.locator(".jp-Dialog .jp-mod-accept").wait_for(timeout=10_000)
    except PlaywrightTimeout:
        return
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached", timeout=10_000)


def finetuned_seeds(home: Path) -> set[int]:
    return {json.loads(p.read_text())["config"]["seed"]
            for p in (home / "cache" / "finetune").glob("*/meta.json")}


def test_notebook_02_widget_runs_a_new_seed(lab, browser_page, screenshots, isolated_home):
    page = browser_page
    page.goto(lab["url"])
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    accept_kernel_dialog(page)
    # the kernel has started (JupyterLab 4's toolbar indicator) before cells are queued
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        timeout=120_000)
    page.locator("li.lm-MenuBar-item", has_text="Run").first.click()
    page.locator("li.lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Run All Cells'))").click()
    button = page.locator(".jp-OutputArea button.widget-button", has_text="Run")
    try:
        button.wait_for(timeout=300_000)  # every cell ran: the explorer is the last output
    except Exception:
        page.screenshot(path=str(screenshots / "run-all-timeout.png"), full_page=True)
        raise
    # a cell that raised would have stopped "run all" before the explorer appeared; the static
    # figures above are not counted: JupyterLab keeps only the cells in view in the page
    explorer = button.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
    output = explorer.locator(".widget-output")
    assert output.locator(".js-plotly-plot").count() == 0  # nothing there before the click
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "lab-before-click.png"))

    seed_box = explorer.locator(".widget-inline-hbox", has=page.locator("label", has_text="seed"))
    seed_input = seed_box.locator("input")
    seed_input.fill(str(NEW_SEED))
    seed_input.press("Enter")
    assert NEW_SEED not in finetuned_seeds(isolated_home)
    # every text the status line shows while the run works (its first HTML widget), as the
    # browser renders it: the kernel's updates must arrive during the click, not after
    explorer.locator(".widget-html").first.evaluate(
        """el => { window.statusLine = [];
                   new MutationObserver(() => window.statusLine.push(el.innerText))
                       .observe(el, {subtree: true, childList: true, characterData: true}); }""")
    button.click()
    heatmap = output.locator(".js-plotly-plot .heatmaplayer").first
    try:
        heatmap.wait_for(timeout=300_000)
    except Exception:
        page.screenshot(path=str(screenshots / "click-timeout.png"), full_page=True)
        raise
    heatmap.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "lab-after-click.png"))
    # the new figure came from a run with the chosen seed (fine-tuned FT and FT[2] = seed + 1)
    assert {NEW_SEED, NEW_SEED + 1} <= finetuned_seeds(isolated_home)
    assert "error" not in output.inner_text().lower()
    shown = page.evaluate("window.statusLine")
    assert any(re.search(r"fine-tuning .*: step \d+ of \d+, \d+ s", t) for t in shown), shown
    assert shown and shown[-1].startswith("done in"), shown
