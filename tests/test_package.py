"""The house rules of DESIGN §3 that a machine can check: every module imports on its own (no
import cycle hidden by import order), no module reaches into another module's underscore names,
measures/ stays pure (no disk, no transformers, no plotly), arrows point down only."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
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
    """Arrays in, arrays out: no model library, no figures, no files (DESIGN §3)."""
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


FLOORS = {"measures": 0, "plots": 0, "errors": 0, "studies": 2, "batch": 3, "cli": 3, "ui": 1}


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
