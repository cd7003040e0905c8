"""The pinned environment: pyproject, constraints, environment.yml, scripts and README agree."""

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEV_ONLY = ("pytest", "ruff", "playwright", "coverage", "nbval", "nbstripout", "pluggy")


def _sync():
    spec = importlib.util.spec_from_file_location("sync_environment",
                                                  ROOT / "scripts" / "sync_environment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in pip_section}


def _declared(extras=None) -> list[Requirement]:
    extras = PROJECT["optional-dependencies"] if extras is None else extras
    reqs = list(PROJECT["dependencies"])
    for extra in extras:
        reqs += PROJECT["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert _constraints()["torch"] == "2.13.0"


def test_every_declared_dependency_is_pinned_and_satisfied_by_its_pin():
    pins = _constraints()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in requirements/constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"pyproject asks {req} but requirements/constraints.txt pins {pins[name]}")


def test_environment_yml_is_what_sync_environment_writes():
    text = (ROOT / "environment.yml").read_text()
    assert text == _sync().render(), "run .venv/bin/python scripts/sync_environment.py"


def test_environment_yml_holds_the_user_extras_without_the_test_tools():
    conda, pins = _conda_pins(), _constraints()
    assert all(pins.get(n) == v for n, v in conda.items()), "a pin differs from the constraints"
    for name in ("torch", "transformers", "datasets", "jinja2",  # core
                 "jupyterlab", "ipywidgets", "jupytext",  # notebooks
                 "papermill", "ipykernel", "dask", "distributed",  # sweep
                 "dask-jobqueue"):  # cluster
        assert name in conda, f"environment.yml lacks {name}"
    assert not set(DEV_ONLY) & set(conda), f"dev-only tools in environment.yml: {DEV_ONLY}"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def _floor(specifiers: list[str]) -> tuple[int, int, int]:
    """The oldest Python 3.x.y that satisfies every specifier."""
    for minor in range(8, 20):
        for patch in range(0, 30):
            if all(SpecifierSet(s).contains(f"3.{minor}.{patch}") for s in specifiers):
                return (3, minor, patch)
    raise AssertionError(f"no Python satisfies {specifiers}")


def _python_floor(extras) -> tuple[int, int, int]:
    names = _sync().needed(_declared(extras))
    return _floor([s for n in names if (s := metadata.metadata(n).get("Requires-Python"))])


def test_requires_python_is_what_the_pins_need():
    """requires-python is the oldest Python every pinned core package installs on: not older
    (the pins would not install), not newer (it would turn users away for nothing). The pinned
    extras may need a later patch release (soupsieve: 3.11.5); setup.sh checks for that one."""
    core = _python_floor([])
    assert _floor([PROJECT["requires-python"]]) == core, (
        f"requires-python is {PROJECT['requires-python']!r}; the pinned core needs {core}")
    full = _python_floor(None)
    assert full[:2] == core[:2], f"the pinned extras need Python {full}, the core {core}"
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert f"sys.version_info < {full}" in setup, f"setup.sh must check for Python {full}"


def test_transformers_lower_bound_is_the_major_the_code_uses():
    req = next(r for r in _declared([]) if r.name == "transformers")
    assert not req.specifier.contains("4.57.0") and req.specifier.contains("5.0.0")


def test_setup_installs_every_extra_with_the_constraints():
    """README commands (scripts/main.sh, scripts/test.sh) set up through scripts/setup.sh: it
    must install every extra, exactly pinned."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    extras = re.search(r'EXTRAS="\.\[([a-z,]+)\]"', setup).group(1).split(",")
    assert sorted(extras) == sorted(PROJECT["optional-dependencies"])
    assert '-c requirements/constraints.txt -e "$EXTRAS"' in setup
    for script in ("main.sh", "test.sh"):
        assert "bash scripts/setup.sh" in (ROOT / "scripts" / script).read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/test.sh" in ci
    assert "bash scripts/main.sh" in readme
