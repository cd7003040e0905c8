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
