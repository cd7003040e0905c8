#!/usr/bin/env bash
# What the browser tests (tests/browser) need, installed where missing:
#   - Debian's chromium (apt-get, as root; sudo if available), the browser Playwright drives;
#   - Playwright for Python in the venv (pip, with the project's pins).
# Never runs `playwright install`: that downloads a browser build of its own, which machines
# without general internet access cannot fetch. Idempotent; exits non-zero with a message that
# says what to install by hand when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LAYERSCOPE_VENV:-.venv}"
PY="$VENV/bin/python"

find_chromium() {
  for c in "${LAYERSCOPE_CHROMIUM:-}" chromium chromium-browser /usr/bin/chromium; do
    if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}

if ! find_chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"
  else
    echo "install_browser: chromium is missing and this user cannot install packages;" >&2
    echo "  run as root: apt-get install -y chromium (or set LAYERSCOPE_CHROMIUM=/path)" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: chromium is missing and there is no apt-get here; install" >&2
    echo "  Chromium with your package manager and set LAYERSCOPE_CHROMIUM=/path/to/it" >&2
    exit 1
  fi
  echo "install_browser: installing Debian's chromium" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "install_browser: chromium: $(find_chromium)" >&2

if ! "$PY" -c "import playwright.sync_api" >/dev/null 2>&1; then
  echo "install_browser: installing Playwright for Python into $VENV" >&2
  "$PY" -m pip install -q -c requirements/constraints.txt playwright
fi
echo "install_browser: playwright $("$PY" -c 'from importlib.metadata import version; print(version("playwright"))')" >&2
