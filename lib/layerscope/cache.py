"""Content-addressed store: a result's folder is named by a hash of everything that changes it.

Layout: ``<home>/cache/<kind>/<key>/`` holding the result files and ``meta.json``, a readable
sidecar (the config, versions, metrics, and the sha256 of every result file). ``meta.json`` is
written last and atomically, so a folder without it is unfinished work (e.g. an interrupted
fine-tuning run, which then resumes). A folder whose files no longer match their recorded
sha256 is corrupt: it is moved aside and recomputed, never used.

``load_or_compute`` is that life cycle in one place: look the entry up (``lookup``: verified,
or moved aside when damaged), else compute, write into a temporary folder, finish it with
``meta.json`` and rename it into place (``atomic_dir``). A fine-tuning run is the one entry
built in place instead (``lookup(..., keep_unfinished=True)``): its Trainer checkpoints must
survive an interruption inside the entry folder for the rerun to resume from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from . import devices, paths

META = "meta.json"
T = TypeVar("T")
R = TypeVar("R")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace variation (dataclasses become dicts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_key(obj: Any, length: int = 20) -> str:
    """Hex digest naming a result: sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over parameter/buffer names, dtypes, shapes and bytes (order-independent)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(devices.to_numpy(t.view(torch.uint8)).tobytes() if t.numel() else b"")
    return h.hexdigest()[:20]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_dir(dest: Path, *, replace: bool = False):
    """Build a folder under a temporary name beside ``dest``, then rename it into place.

    Readers (other processes, Dask workers sharing the cache) never see half a folder. If
    ``dest`` appeared meanwhile (another process finished first) its copy is kept, or swapped
    for ours with ``replace=True``. On an exception the temporary folder is removed.

        with atomic_dir(folder) as tmp:
            np.save(tmp / "states.npy", states)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; results are meant to be shared
    try:
        yield tmp
        if dest.exists():
            if not replace:
                return
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def entry_dir(kind: str, key: str) -> Path:
    return paths.cache_dir() / kind / key


def read_meta(folder: Path) -> dict | None:
    """The sidecar of a finished entry, or None when the entry is missing or unfinished."""
    try:
        return json.loads((folder / META).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None


def write_meta(folder: Path, meta: dict, files: list[str]) -> dict:
    """Finish an entry: record sha256 of ``files`` (relative to ``folder``), write the sidecar."""
    meta = dict(meta)
    meta["files"] = {f: file_sha256(folder / f) for f in files}
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_text(folder / META, json.dumps(meta, indent=1, sort_keys=True, default=str))
    return meta


def verify(folder: Path) -> tuple[bool, str]:
    """(ok, reason): the entry is finished and every recorded file matches its sha256."""
    meta = read_meta(folder)
    if meta is None:
        return False, "no readable meta.json (unfinished or damaged entry)"
    for rel, digest in meta.get("files", {}).items():
        p = folder / rel
        if not p.exists():
            return False, f"{rel} is missing"
        if file_sha256(p) != digest:
            return False, f"{rel} does not match its recorded sha256"
    return True, "ok"


def quarantine(folder: Path, reason: str) -> Path:
    """Move a corrupt entry aside (kept for inspection) so it is recomputed."""
    dest = folder.with_name(f"{folder.name}.corrupt-{int(time.time())}")
    print(f"[layerscope] cache entry {folder} is corrupt ({reason}); moved to {dest.name}, "
          f"recomputing")
    shutil.move(str(folder), str(dest))
    return dest


def lookup(folder: Path, *, keep_unfinished: bool = False) -> dict | None:
    """The sidecar of the intact entry ``folder``, else None (then compute it).

    A damaged entry (a file missing or not matching its sha256, or no readable ``meta.json``)
    is moved aside first (``quarantine``). ``keep_unfinished=True`` leaves an entry without a
    readable ``meta.json`` where it is: work built in place that a rerun resumes (fine-tuning).
    """
    if not folder.exists():
        return None
    ok, reason = verify(folder)
    if ok:
        return read_meta(folder)
    if not keep_unfinished or read_meta(folder) is not None:
        quarantine(folder, reason)
    return None


def result_files(folder: Path) -> list[str]:
    """Every file under ``folder`` but the sidecar, relative and sorted: what ``meta.json``
    records the sha256 of."""
    return [str(p.relative_to(folder)) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != META]


@dataclass(frozen=True)
class Entry:
    """A finished cache entry as ``load_or_compute``'s ``read`` gets it."""

    folder: Path
    meta: dict
    computed: bool  # True: computed by this call; False: found in the cache


def load_or_compute(kind: str, key: str, *, compute: Callable[[], T],
                    write: Callable[[Path, T], dict], read: Callable[[Entry], R]) -> R:
    """The cache entry ``<cache>/<kind>/<key>``, computed only when it is missing or damaged.

    ``compute()`` makes the value (before any folder exists: a failure leaves nothing behind);
    ``write(tmp, value)`` saves its files into a temporary folder and returns the sidecar's
    fields; the sha256 of every file written is added (``write_meta``) and the folder renamed
    into place (``atomic_dir``: if another process finished first, its entry is kept). ``read``
    turns the finished entry into the result, the same way for a cache hit and a fresh value::

        acts = load_or_compute("activations", key, compute=extract_states,
                               write=save_arrays, read=lambda e: open_arrays(e.folder, e.meta))
    """
    folder = entry_dir(kind, key)
    meta = lookup(folder)
    if meta is not None:
        return read(Entry(folder, meta, computed=False))
    value = compute()
    with atomic_dir(folder) as tmp:
        write_meta(tmp, write(tmp, value), result_files(tmp))
    return read(Entry(folder, read_meta(folder), computed=True))
