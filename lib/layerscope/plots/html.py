"""Figure HTML files that share one copy of plotly.js, referenced by a relative path.

plotly's ``to_html(include_plotlyjs=True)`` inlines plotly.js (~4.8 MB) into every file, so a
sweep of a dozen runs held ~60 MB of copies of the same script. Here a figure file loads
``plotly-<version>.min.js`` with ``<script src="../../plotly-<version>.min.js">`` instead:

* inside a sweep, the runner sets ``$LAYERSCOPE_PLOTLYJS_DIR`` to the sweep folder, and every
  figure saved below it references the one copy there;
* anywhere else (``result.save(dir)`` in a notebook or a script), the copy is written once
  into ``dir`` itself, beside the figures.

Either way the reference is relative and the file is local: a folder opens from disk (file://)
with no server and no network (no CDN), also after being moved or copied as a whole. The
version is in the file name, so a folder written with another plotly keeps its own script.
"""

from __future__ import annotations

import os
from pathlib import Path

PLOTLYJS_DIR_ENV = "LAYERSCOPE_PLOTLYJS_DIR"  # set by batch.runner for a sweep's runs


def plotlyjs_name() -> str:
    """``plotly-<plotly.js version>.min.js``: the file name of the shared copy."""
    from plotly.offline import get_plotlyjs_version

    return f"plotly-{get_plotlyjs_version()}.min.js"


def _atomic_write(path: Path, data: bytes) -> None:
    from ..files import atomic_write_bytes  # the one atomic write: umask mode, no temp left

    atomic_write_bytes(path, data)


def write_plotlyjs(folder: str | Path) -> Path:
    """``<folder>/plotly-<version>.min.js`` (plotly's bundled copy), written once: a file of
    the right size already there is kept (it is the same file; writes are atomic, so two runs
    writing it at once both leave a complete copy)."""
    from plotly.offline import get_plotlyjs

    folder = Path(folder)
    path = folder / plotlyjs_name()
    data = get_plotlyjs().encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, data)
    return path


def plotlyjs_folder(out_dir: str | Path) -> Path:
    """Where the figures of ``out_dir`` find plotly.js: ``$LAYERSCOPE_PLOTLYJS_DIR`` when it
    is ``out_dir`` or a folder above it, else ``out_dir`` itself."""
    out = Path(out_dir).resolve()
    shared = os.environ.get(PLOTLYJS_DIR_ENV)
    if shared:
        s = Path(shared).resolve()
        if s == out or s in out.parents:
            return s
    return out


def plotlyjs_src(out_dir: str | Path) -> str:
    """The ``src`` that figures in ``out_dir`` use for plotly.js (written if missing), e.g.
    ``plotly-<version>.min.js`` or ``../../plotly-<version>.min.js``."""
    out = Path(out_dir).resolve()
    js = write_plotlyjs(plotlyjs_folder(out))
    return Path(os.path.relpath(js, out)).as_posix()


def figure_html(fig, out_dir: str | Path) -> str:
    """The full HTML page of plotly figure ``fig`` for a file in ``out_dir``: the figure's
    JSON inline, plotly.js by its relative ``src`` (``plotlyjs_src``)."""
    return fig.to_html(include_plotlyjs=plotlyjs_src(out_dir), full_html=True)


def write_figure_html(fig, path: str | Path) -> Path:
    """Write ``figure_html(fig, path.parent)`` to ``path`` (atomically); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, figure_html(fig, path.parent).encode("utf-8"))
    return path
