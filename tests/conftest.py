"""Shared fixtures. Every test session gets its own LAYERSCOPE_HOME (cache, runs), with the
offline assets linked in from the normal location so they are fetched at most once per machine.
The hub is made unreachable on purpose: no test may depend on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # fail fast instead of retrying an unreachable hub
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory) -> Path:
    from layerscope import paths

    real_assets = paths.assets_dir()
    home = tmp_path_factory.mktemp("layerscope-home")
    os.environ["LAYERSCOPE_HOME"] = str(home)
    real_assets.mkdir(parents=True, exist_ok=True)
    (home / "assets").symlink_to(real_assets, target_is_directory=True)
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    return home


@pytest.fixture(scope="session")
def tiny_sentiment_ft(isolated_home):
    """A tiny BERT fine-tuned on the fixture sentiment task (cached for the session)."""
    from layerscope.finetune import FinetuneConfig, load_or_train

    return load_or_train(FinetuneConfig(task="tiny-sentiment", model="tiny-bert", preset="smoke",
                                        seed=0), verbose=False)


@pytest.fixture(scope="module")
def private_home(tmp_path_factory):
    """A cache home private to one test module: its results never touch (or depend on) others'."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAYERSCOPE_HOME", str(tmp_path_factory.mktemp("home")))
        yield
