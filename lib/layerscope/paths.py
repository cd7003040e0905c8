"""Where layerscope keeps downloaded assets, checkpoints and cached activations.

Everything generated lives under one home folder so a user can see (and delete) it:
``$LAYERSCOPE_HOME`` if set, else ``<repo>/data`` when running from a clone, else
``~/.cache/layerscope``. Sub-folders: ``assets/`` (archives + extracted), ``cache/``
(content-addressed
results), ``runs/`` (main-job and papermill outputs).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCES = PACKAGE_DIR / "resources"
_REPO_ROOT = PACKAGE_DIR.parent.parent


def repo_root() -> Path | None:
    """The clone this package runs from (``<clone>/lib/layerscope`` beside ``pyproject.toml``),
    else None. Not judged by ``data/``: a user may delete it, and ``home()`` then remakes it."""
    if (_REPO_ROOT / "pyproject.toml").exists() and (_REPO_ROOT / "lib") == PACKAGE_DIR.parent:
        return _REPO_ROOT
    return None


def home() -> Path:
    """Root folder for generated files (see module docstring)."""
    env = os.environ.get("LAYERSCOPE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is not None:
        return root / "data"
    return Path.home() / ".cache" / "layerscope"


def assets_dir() -> Path:
    return home() / "assets"


def cache_dir() -> Path:
    return home() / "cache"


def runs_dir() -> Path:
    return home() / "runs"
