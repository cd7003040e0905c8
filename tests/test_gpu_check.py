"""scripts/gpu_check.sh's CPU dry-run (``--device cpu --small``): the device parity tests and
benchmarks/bench_device.py end to end on tiny-bert, and the report it writes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PHASES = {"finetune": "steps_per_s", "extraction": "tokens_per_s", "truncation": "seconds",
          "skipping": "seconds"}


@pytest.mark.slow
def test_cpu_dry_run_writes_a_complete_report(tmp_path):
    out = tmp_path / "report.json"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--device", "cpu", "--small",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "parity tests passed" in proc.stdout
    assert f"report: {out}" in proc.stdout.splitlines()[-2]  # path printed, then "done"
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["small"] is True
    assert report["model"] == "tiny-bert" and report["n_layers"] == 4
    assert report["torch"] and report["half_dtype"] == "bfloat16"
    for phase, key in PHASES.items():
        numbers = report[phase][key]
        assert set(numbers) == {"float32", "bfloat16"}, (phase, numbers)
        assert all(v > 0 for v in numbers.values()), (phase, numbers)
    assert report["extraction"]["tokens"] > report["extraction"]["n_examples"] > 0
    assert report["skipping"]["n_spans"] == 4 * 5 // 2 - 1  # every span but all four blocks
    assert report["truncation"]["layers"] == 5
    assert 0 < report["extraction"]["half_max_abs_diff"] < 0.1  # bf16 differs, but not much
    assert report["total_s"] > 0 and report["load_s"] >= 0


def test_unknown_arguments_and_devices_are_refused():
    bad = subprocess.run(["bash", "scripts/gpu_check.sh", "--frobnicate"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown argument '--frobnicate'" in bad.stderr
    tpu = subprocess.run(["bash", "scripts/gpu_check.sh", "--device", "tpu"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert tpu.returncode == 1 and "unknown device 'tpu'" in tpu.stderr
