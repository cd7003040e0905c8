#!/usr/bin/env bash
# The test suite: ruff, unit tests and notebook tests (papermill --prepare-only + nbval), offline.
# Sets up the environment first if it is missing. Extra arguments go to pytest, e.g.
#   bash scripts/test.sh -m "not slow"     # the fast inner loop (under 3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's chromium + Playwright for the browser tests; if that fails they fail, never skip
bash scripts/install_browser.sh || echo "warning: browser tests will fail: chromium/playwright missing" >&2
VENV="${LAYERSCOPE_VENV:-.venv}"
"$VENV/bin/python" -m ruff check lib tests benchmarks scripts
"$VENV/bin/python" -m layerscope.cli fetch
exec "$VENV/bin/python" -m pytest -q "$@"
