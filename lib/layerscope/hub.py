"""Is the Hugging Face hub reachable? Asked once per process, in milliseconds.

Without a network, transformers and datasets retry every request five times with back-off
(about 25 s, printing each retry) before they fail. Models and tasks that need the hub ask
``offline()`` first: when the hub cannot be reached they load from the local Hugging Face cache
only (``local_files_only`` / offline mode), which either works at once (files fetched before)
or fails at once with our message naming the offline alternatives.

Reachable means: ``HF_HUB_OFFLINE`` is not set, and a TCP connection to the endpoint
(``HF_ENDPOINT``, default huggingface.co:443) opens within ``PROBE_TIMEOUT`` seconds. Behind an
HTTP(S) proxy a direct connection says nothing, so with a proxy configured the hub is assumed
reachable and the libraries' own requests decide.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from urllib.parse import urlparse

PROBE_TIMEOUT = 3.0


def endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _env_offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


@functools.cache
def _probe(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def offline() -> bool:
    """True when the hub cannot be used: offline mode is set, or no connection (no proxy)."""
    if _env_offline():
        return True
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return False
    return not _probe(*endpoint(), PROBE_TIMEOUT)


def why_offline() -> str:
    if _env_offline():
        return "offline mode is set (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE)"
    host, port = endpoint()
    return f"no connection to {host}:{port} within {PROBE_TIMEOUT:g} s"


@contextlib.contextmanager
def datasets_offline():
    """``datasets`` and ``huggingface_hub`` in offline mode for the block (cache only): they read
    the flag from their config modules at call time, so it is set there and restored after."""
    import datasets
    import huggingface_hub

    old = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = old


# --- revisions: which commit of a hub repository a model or dataset is ----------------------

_SHA = frozenset("0123456789abcdef")


def is_commit(revision: str | None) -> bool:
    """A full 40-hex commit sha (fixed for good), as opposed to a branch or tag (which moves)."""
    return revision is not None and len(revision) == 40 and set(revision) <= _SHA


def cache_root() -> str:
    """The Hugging Face hub cache folder, read at call time (``HF_HUB_CACHE`` / ``HF_HOME``)."""
    import huggingface_hub

    return huggingface_hub.constants.HF_HUB_CACHE


def cached_commit(repo_id: str, revision: str | None = None, *,
                  repo_type: str = "model") -> str | None:
    """The commit sha that ``revision`` (default ``main``) of ``repo_id`` resolved to when it
    was last downloaded, read from huggingface_hub's cache layout
    (``<cache>/<type>s--org--name/refs/<revision>`` holds the sha; a commit sha is its own
    ``snapshots/<sha>/`` folder). None when that revision is not in the cache."""
    folder = os.path.join(cache_root(), f"{repo_type}s--{repo_id.replace('/', '--')}")
    if is_commit(revision):
        return revision if os.path.isdir(os.path.join(folder, "snapshots", revision)) else None
    try:
        with open(os.path.join(folder, "refs", revision or "main")) as f:
            sha = f.read().strip()
    except OSError:
        return None
    return sha if is_commit(sha) else None


def resolve_commit(repo_id: str, revision: str | None = None, *,
                   repo_type: str = "model") -> str | None:
    """The commit sha of ``revision`` (default ``main``) of ``repo_id``, i.e. what a load now
    reads: a full sha as given; with the hub reachable, the hub's answer (one metadata request
    per process: a branch that moved upstream is what ``from_pretrained`` downloads next, so
    the local cache's record would be stale), falling back to the cache's record; offline, the
    cache's record (what a load uses then). None when neither knows (offline and never
    downloaded: the load itself then fails with our offline message)."""
    if is_commit(revision):
        return revision
    if not offline():
        sha = _hub_commit(repo_id, revision, repo_type)
        if sha is not None:
            return sha
    return cached_commit(repo_id, revision, repo_type=repo_type)


@functools.lru_cache(maxsize=256)  # one request per repository and revision per process
def _hub_commit(repo_id: str, revision: str | None, repo_type: str) -> str | None:
    try:
        import huggingface_hub

        api = huggingface_hub.HfApi()
        info = (api.dataset_info if repo_type == "dataset" else api.model_info)(
            repo_id, revision=revision)
        return info.sha
    except Exception:  # network, gated or missing repo: the load reports it, with our message
        return None
