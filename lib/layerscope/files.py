"""Writing files so that nothing half-written is ever read and every file is shareable.

One atomic write for every file layerscope writes outside a temporary folder (results tables,
cache metadata, pages, plotly.js): a temp file beside the target, renamed into place, with the
mode a plain ``open`` would give (0666 less the umask: ``mkstemp`` alone makes 0600, which a
multi-user or Dask cache cannot read), and no temp file left when a write fails (a full disk).
Standard library only: every floor may import it (``cache`` re-exports it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (``os.umask`` sets
    it, so reading it that way briefly gives other threads' new files mode 0666)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def shared_mode(path: Path | str, *, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would (0666/0777 less the umask):
    ``mkstemp``/``mkdtemp`` make 0600/0700, and results are meant to be shared (a multi-user
    or Dask cache)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def share_tree(folder: Path) -> None:
    """``shared_mode`` for every file and folder under ``folder``: libraries that save through
    their own temp files (transformers' ``save_pretrained`` writes ``model.safetensors`` 0600)
    would otherwise leave a cache entry other users of a shared cache cannot read."""
    for p in Path(folder).rglob("*"):
        if not p.is_symlink():
            shared_mode(p, folder=p.is_dir())


def atomic_write(path: Path | str, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` through ``write(tmp)`` into a temp file beside it, then rename: readers
    never see half a file, the mode honours the umask, and when ``write`` fails (a full disk,
    ``ENOSPC``) the temp file is removed and ``path`` keeps what it had. Every file layerscope
    writes outside a temporary folder goes through here.

        atomic_write(folder / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        shared_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path | str, data: bytes) -> str:
    """``atomic_write`` of ``data``; returns the sha256 of the bytes written (hashed from
    memory as they are written, never re-read from disk: what is recorded is what was meant)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return hashlib.sha256(data).hexdigest()


def atomic_write_text(path: Path | str, text: str) -> str:
    """``atomic_write`` of ``text`` (UTF-8); returns its sha256 (``atomic_write_bytes``)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
