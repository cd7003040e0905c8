"""The pinned environment: constraints, environment.yml, scripts and README agree."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert _constraints()["torch"] == "2.13.0"


def test_environment_yml_installs_the_same_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = {}
    for line in pip_section:
        name, version = line.split("==")
        conda_pins[name.lower().replace("_", "-")] = version
    assert conda_pins == _constraints(), "run python scripts/sync_environment.py"
    assert "python=3.11" in env["dependencies"]


def test_every_declared_dependency_is_pinned():
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.findall(r'^\s+"([A-Za-z0-9_.\-]+)[<>=!~ ]', text, flags=re.M)
    pins = _constraints()
    missing = [d for d in deps if d.lower().replace("_", "-") not in pins]
    assert not missing, f"not pinned in requirements/constraints.txt: {missing}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/test.sh" in ci
    assert "bash scripts/main.sh" in readme
