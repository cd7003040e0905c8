#!/usr/bin/env bash
# The main job on the offline default: set up the environment if missing, then run the `demo`
# sweep (notebooks 01-05 on minilm-l6 with the offline tasks; the offline assets are fetched,
# sha256-checked, on first use), printing each run's progress and findings, and write the
# results table and the gallery into data/runs/demo/. Finished runs are skipped: a second call
# takes seconds. Extra arguments go to `layerscope main` (see `layerscope main --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${LAYERSCOPE_VENV:-.venv}/bin/python" -m layerscope.cli main "$@"
