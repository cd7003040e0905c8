#!/usr/bin/env bash
# The main job on the offline default: set up the environment if missing, fetch the offline
# assets (sha256-checked), fine-tune minilm-l6 on `movies` (demo preset, seeds 0 and 1), print
# validation metrics next to the majority baseline, and write figures into data/runs/main/.
# Extra arguments go to `layerscope main` (see `layerscope main --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${LAYERSCOPE_VENV:-.venv}/bin/python" -m layerscope.cli main "$@"
