"""Without the hub, models and tasks that need it fail within seconds (not after five retries,
~25 s) with our message, and leave no folder in the cache."""

from __future__ import annotations

import socket
import time

import pytest

from layerscope import cache, hub, models
from layerscope.errors import HubUnavailableError
from layerscope.finetune import FinetuneConfig, cache_key, load_or_train
from layerscope.tasks import load_split

PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def _closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_hub(monkeypatch):
    for k in PROXIES + OFFLINE_FLAGS + ("LAYERSCOPE_HUB_DATA",):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")


def test_probe_says_offline_and_why(no_hub):
    assert hub.offline()
    assert "no connection to 127.0.0.1:" in hub.why_offline()


def test_probe_sees_a_listening_endpoint(monkeypatch):
    for k in PROXIES + OFFLINE_FLAGS:
        monkeypatch.delenv(k, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
        assert not hub.offline()


def test_offline_flags_and_proxies(monkeypatch, no_hub):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.offline() and "offline mode is set" in hub.why_offline()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not hub.offline()  # a direct connection says nothing behind a proxy


def test_hub_model_fails_fast_and_leaves_no_cache_folder(no_hub):
    cfg = FinetuneConfig(task="tiny-sentiment", model="roberta-base", preset="smoke")
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailableError, match=r"(?s)no connection to 127\.0\.0\.1.*minilm-l6"):
        load_or_train(cfg, verbose=False)
    assert time.perf_counter() - t0 < 5
    assert not cache.entry_dir("finetune", cache_key(cfg)).exists()
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailableError):
        models.load_tokenizer("bert-base-uncased")
    assert time.perf_counter() - t0 < 5


def test_hub_task_fails_fast(no_hub):
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailableError, match=r"(?s)no connection to 127\.0\.0\.1.*'movies'"):
        load_split("sst2", "validation")
    assert time.perf_counter() - t0 < 5
