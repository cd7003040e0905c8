"""Hub provenance (issue 16 §4): a hub model or dataset pinned to a revision loads that
revision, and the commit it resolves to is part of its identity, so the fine-tuning and
activation cache keys move when the revision moves, and only then.

Every test writes a fake Hugging Face cache in huggingface_hub's layout
(``models--org--name/snapshots/<sha>/``, ``refs/<branch>`` holding the sha) and runs with
``HF_HUB_OFFLINE=1``: the hub is never asked."""

from __future__ import annotations

import shutil

import huggingface_hub
import pytest
import torch

from layerscope import hub, models, tasks
from layerscope.errors import ConfigError, HubUnavailableError
from layerscope.finetune import FinetuneConfig, cache_key

SHA1 = "1" * 40
SHA2 = "2" * 40
REPO = "org/tiny"


def _snapshot(root, repo, sha, source, *, bump=0.0, kind="models"):
    folder = root / f"{kind}--{repo.replace('/', '--')}" / "snapshots" / sha
    folder.mkdir(parents=True)
    if source is not None:
        model = models.load_encoder(str(source))
        if bump:
            with torch.no_grad():
                model.embeddings.word_embeddings.weight.add_(bump)
        model.save_pretrained(folder)
        models.load_tokenizer(str(source)).save_pretrained(folder)
    return folder


def _ref(root, repo, branch, sha, kind="models"):
    refs = root / f"{kind}--{repo.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / branch).write_text(sha)  # huggingface_hub writes the bare sha, no newline


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A HF cache with org/tiny at two commits: main -> SHA1, v2 -> SHA2 (other weights)."""
    root = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LAYERSCOPE_HUB_DATA", raising=False)
    tiny = models.tiny_model_dir("bert")
    _snapshot(root, REPO, SHA1, tiny)
    _snapshot(root, REPO, SHA2, tiny, bump=0.5)
    _ref(root, REPO, "main", SHA1)
    _ref(root, REPO, "v2", SHA2)
    return root


def _embedding(model) -> torch.Tensor:
    return model.embeddings.word_embeddings.weight.detach()


def test_a_revision_loads_its_own_snapshot(fake_hub):
    main = _embedding(models.load_encoder(REPO))
    v2 = _embedding(models.load_encoder(f"{REPO}@v2"))
    by_sha = _embedding(models.load_encoder(REPO, revision=SHA2))
    tiny = _embedding(models.load_encoder("tiny-bert"))
    assert torch.equal(main, tiny)
    assert torch.equal(v2, tiny + 0.5) and torch.equal(by_sha, v2)
    assert models.load_tokenizer(f"{REPO}@v2")("a b")["input_ids"] == \
        models.load_tokenizer("tiny-bert")("a b")["input_ids"]
    assert models.local_folder(f"{REPO}@v2").name == SHA2
    assert models.local_folder(REPO).name == SHA1


def test_identity_holds_the_resolved_commit(fake_hub):
    assert models.model_identity(REPO) == {"name": REPO, "commit": SHA1}
    assert models.model_identity(f"{REPO}@v2") == {"name": REPO, "revision": "v2",
                                                    "commit": SHA2}
    assert models.model_identity(REPO, revision="v2") == models.model_identity(f"{REPO}@v2")
    assert models.model_identity(f"{REPO}@{SHA2}")["commit"] == SHA2


def test_cache_keys_move_with_the_revision_and_only_then(fake_hub):
    def key(model):
        return cache_key(FinetuneConfig(task="tiny-sentiment", model=model, preset="smoke"))

    before = key(REPO)
    assert key(REPO) == before  # stable while main stays
    assert key(f"{REPO}@v2") != before
    _ref(fake_hub, REPO, "main", SHA2)  # the branch moves upstream and is downloaded again
    moved = key(REPO)
    assert moved != before
    _ref(fake_hub, REPO, "main", SHA1)
    assert key(REPO) == before


def test_fixed_models_keep_their_identity(fake_hub, tmp_path):
    """Offline, tiny and local models have fixed files: their identity (and so every key made
    before revisions existed, the demo's among them) is what it was."""
    assert models.model_identity("minilm-l6") == {"name": "minilm-l6"}
    assert models.model_identity("mpnet-base") == {"name": "mpnet-base"}
    assert models.model_identity("tiny-bert") == {
        "name": "tiny-bert", "tiny_config": models.TINY_CONFIG, "torch": torch.__version__}
    local = tmp_path / "my@model"  # an "@" in a folder's name is not a revision
    shutil.copytree(models.tiny_model_dir("bert"), local)
    ident = models.model_identity(str(local))
    assert set(ident) == {"local"} and "model.safetensors" in ident["local"]
    assert models.resolve(str(local)) == str(local.resolve())


def test_revision_errors_name_the_fix(fake_hub):
    for name in ("minilm-l6@v1", "tiny-bert@main"):
        with pytest.raises(ConfigError, match=r"only hub models have revisions.*Drop '@"):
            models.check_model_name(name)
    with pytest.raises(ConfigError, match="org/name@revision"):
        models.check_model_name("org/tiny@")
    with pytest.raises(ConfigError, match="pinned to 'v2' but revision='main'"):
        models.load_encoder(f"{REPO}@v2", revision="main")
    with pytest.raises(HubUnavailableError, match="not in the local Hugging Face cache"):
        models.load_encoder(f"{REPO}@v3")  # a revision never downloaded, offline
    assert models.model_identity(f"{REPO}@v3") == {"name": REPO, "revision": "v3"}


def test_hub_dataset_revision_and_commit(fake_hub, monkeypatch):
    spec = tasks.get_task("sst2")
    repo = spec.hub_path
    assert tasks.data_identity(spec) == {"source": "hub", "hub": repo, "config": "sst2"}
    _snapshot(fake_hub, repo, SHA1, None, kind="datasets")
    _ref(fake_hub, repo, "main", SHA1, kind="datasets")
    assert tasks.data_identity(spec)["commit"] == SHA1
    pinned = tasks.get_task(f"sst2@{SHA2}")
    assert pinned.name == f"sst2@{SHA2}" and pinned.hub_revision == SHA2
    assert tasks.data_identity(pinned) == {"source": "hub", "hub": repo, "config": "sst2",
                                           "revision": SHA2, "commit": SHA2}
    assert tasks.resolve_task(f"sst2@{SHA2}").hub_revision == SHA2
    with pytest.raises(ConfigError, match="only hub tasks have revisions"):
        tasks.get_task("movies@v1")

    seen = {}

    def fake_load_dataset(path, name=None, **kw):
        seen.update(path=path, name=name, **kw)
        raise ConnectionError("no hub in tests")

    monkeypatch.setattr(tasks.datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(HubUnavailableError, match="'movies'"):  # offline analogue still named
        tasks.load_split(f"sst2@{SHA2}", "validation")
    assert seen["path"] == repo and seen["revision"] == SHA2


def test_cached_commit_reads_the_hf_layout(fake_hub):
    assert hub.cached_commit(REPO) == SHA1
    assert hub.cached_commit(REPO, "v2") == SHA2
    assert hub.cached_commit(REPO, SHA2) == SHA2 and hub.cached_commit(REPO, "3" * 40) is None
    assert hub.cached_commit("org/absent") is None
    assert hub.resolve_commit("org/absent", "7" * 40) == "7" * 40  # a full sha is itself


def test_online_the_hub_answer_wins_over_a_stale_cache(fake_hub, monkeypatch):
    """Reachable hub: main moved upstream to SHA2 while the cache still says SHA1; the next
    load downloads SHA2, so the identity must say SHA2. No request is made: the hub's answer
    is faked; when it fails, the cache's record is used."""
    asked = []

    def fake_hub_commit(repo_id, revision, repo_type):
        asked.append((repo_id, revision, repo_type))
        return SHA2 if repo_id == REPO else None

    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "_hub_commit", fake_hub_commit)
    assert models.model_identity(REPO) == {"name": REPO, "commit": SHA2}
    assert asked == [(REPO, None, "model")]
    assert hub.resolve_commit("org/other") is None
    _ref(fake_hub, "org/other", "main", SHA1)
    assert hub.resolve_commit("org/other") == SHA1  # the hub did not answer: the cache's record
    assert hub.resolve_commit(REPO, SHA1) == SHA1 and len(asked) == 3  # a sha asks nobody
