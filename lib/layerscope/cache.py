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
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from . import devices, paths
from .files import atomic_write as atomic_write  # re-exported: callers write through cache.*
from .files import atomic_write_bytes as atomic_write_bytes
from .files import atomic_write_text as atomic_write_text
from .files import current_umask as current_umask
from .files import share_tree as share_tree
from .files import shared_mode as shared_mode

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


@contextlib.contextmanager
def locked(lock_file: Path, what: str, *, stop: Callable[[], bool] | None = None,
           poll: float = 0.5):
    """Hold an exclusive lock (``fcntl.flock``) on ``lock_file`` for the ``with`` body.

    Two processes that would build the same thing (one cache entry, one sweep run) take turns:
    the second prints what it waits for, then finds the first one's result. The OS releases
    the lock when its holder exits, also when it is killed, so no lock outlives a run. Lock
    files are left in place (removing one while another process waits on it would let a third
    take a different lock). ``stop()`` true while waiting raises ``InterruptedError``. Where
    ``fcntl`` does not exist (Windows) this lock does nothing.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent runs are not protected
        yield
        return
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    print(f"[layerscope] waiting for {what}: another process is on it (lock "
                          f"{lock_file})", file=sys.stderr, flush=True)
                    told = True
                if stop is not None and stop():
                    raise InterruptedError(f"stopped while waiting for {what}") from None
                time.sleep(poll)
        if told:
            print(f"[layerscope] {what}: the other process is done, going on",
                  file=sys.stderr, flush=True)
        yield
    finally:
        os.close(fd)  # releases the lock


def entry_lock(kind: str, key: str) -> Path:
    """The lock file of cache entry ``<kind>/<key>`` (``locked``): beside the entries, in
    ``<cache>/.locks``, so that listing or cleaning the cache sees entries only."""
    return paths.cache_dir() / ".locks" / f"{kind}-{key}.lock"


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
    shared_mode(tmp, folder=True)
    try:
        yield tmp
        share_tree(tmp)
        if dest.exists() and replace:
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(dest, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError as e:
            # another process renamed its complete copy into place first: keep that one
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not dest.is_dir():
                raise
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


def write_meta(folder: Path, meta: dict, files: list[str] | dict[str, str]) -> dict:
    """Finish an entry: record the sha256 of ``files`` (relative to ``folder``) and write the
    sidecar. ``files`` as a mapping gives the digests already known, taken when the files were
    written (``folder_digests`` of a private temporary folder) or checked: a file is never
    approved by hashing whatever is on disk now, which may be another attempt's damaged copy."""
    meta = dict(meta)
    meta["files"] = (dict(sorted(files.items())) if isinstance(files, dict)
                     else {f: file_sha256(folder / f) for f in files})
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_text(folder / META, json.dumps(meta, indent=1, sort_keys=True, default=str))
    return meta


def folder_digests(folder: Path, prefix: str = "") -> dict[str, str]:
    """``{prefix + relative path: sha256}`` of every file under ``folder`` but the sidecar:
    taken right after writing into a folder only this process uses (``atomic_dir``)."""
    return {prefix + rel: file_sha256(folder / rel) for rel in result_files(folder)}


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
    dest = folder.with_name(f"{folder.name}.corrupt-{int(time.time())}-{uuid.uuid4().hex[:6]}")
    try:
        os.replace(folder, dest)
    except FileNotFoundError:  # another process moved it aside first
        return dest
    print(f"[layerscope] cache entry {folder} is corrupt ({reason}); moved to {dest.name} "
          f"(`layerscope cache --clean` removes it), recomputing", file=sys.stderr)
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


# ---- the cache as a whole: `layerscope cache` ----------------------------------------------

LEFTOVER_AGE_S = 24 * 3600  # a temporary folder this old belongs to no running process


def tree_size(path: Path) -> int:
    """Bytes under ``path`` (a file or a folder; links not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def is_leftover(path: Path, *, now: float | None = None) -> bool:
    """A temporary file or folder of an interrupted write (``.<name>.tmp…``, ``.replay``,
    ``.old-``), old enough (``LEFTOVER_AGE_S``) not to be a running process's work."""
    name = path.name
    temporary = name.startswith(".") and any(t in name for t in (".tmp", ".replay", ".old-"))
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return temporary and age > LEFTOVER_AGE_S


def survey() -> dict:
    """What the cache holds: per kind, finished entries and their bytes; the corrupt entries
    moved aside (``*.corrupt-*``), unfinished entries (no ``meta.json``: an interrupted
    fine-tuning run resumes from it) and leftovers of interrupted writes (``is_leftover``),
    each with its path and bytes."""
    root = paths.cache_dir()
    kinds: dict[str, dict] = {}
    corrupt, unfinished, leftovers = [], [], []
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if kind_dir.name.startswith("."):  # .locks
            continue
        stats = kinds.setdefault(kind_dir.name, {"entries": 0, "bytes": 0})
        for p in sorted(kind_dir.iterdir()):
            size = tree_size(p)
            if ".corrupt-" in p.name:
                corrupt.append((p, size))
            elif is_leftover(p):
                leftovers.append((p, size))
            elif p.name.startswith("."):
                continue  # a write in progress
            elif not (p / META).exists():
                unfinished.append((p, size))
            else:
                stats["entries"] += 1
                stats["bytes"] += size
    return {"root": root, "kinds": kinds, "corrupt": corrupt, "unfinished": unfinished,
            "leftovers": leftovers}


def clean(report: dict | None = None) -> list[tuple[Path, int]]:
    """Remove the corrupt entries moved aside and the leftovers of ``survey``; returns what
    was removed. Finished and unfinished entries are kept (an unfinished one resumes)."""
    report = report or survey()
    removed = []
    for p, size in report["corrupt"] + report["leftovers"]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append((p, size))
    return removed


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
