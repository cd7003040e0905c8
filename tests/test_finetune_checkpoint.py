"""Models fine-tuned elsewhere (issue 9): ``FinetuneConfig(checkpoint=...)`` instead of training.

The "elsewhere" checkpoint is the session's tiny fine-tune copied out of the cache, so the
external model must reproduce the trained run exactly (metrics, predictions) without training.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import transformers as tr

from layerscope import cache, finetune, models
from layerscope.errors import ConfigError, MissingHeadError
from layerscope.finetune import FinetuneConfig, cache_key, load_finetuned, load_or_train, training

SMOKE = dict(task="tiny-sentiment", model="tiny-bert", preset="smoke")


@pytest.fixture(scope="module")
def elsewhere(tiny_sentiment_ft, tmp_path_factory):
    """The session's tiny fine-tune copied to a plain folder: a model 'fine-tuned elsewhere'."""
    dest = tmp_path_factory.mktemp("elsewhere") / "my-model"
    shutil.copytree(tiny_sentiment_ft.model_dir, dest)
    return dest


def _no_training(monkeypatch):
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained a checkpoint"))


def test_checkpoint_is_evaluated_like_the_trained_run(tiny_sentiment_ft, elsewhere, monkeypatch):
    _no_training(monkeypatch)
    cfg = FinetuneConfig(**SMOKE, checkpoint=str(elsewhere))
    r = load_or_train(cfg, verbose=False)
    assert r.model_dir == elsewhere and not r.cached and r.path != tiny_sentiment_ft.path
    assert r.metrics == pytest.approx(tiny_sentiment_ft.metrics, abs=1e-12)
    assert r.baseline == pytest.approx(tiny_sentiment_ft.baseline, abs=1e-12)
    assert r.meta["n_eval"] == tiny_sentiment_ft.meta["n_eval"]
    p, q = finetune.predictions(r), finetune.predictions(tiny_sentiment_ft)
    np.testing.assert_array_equal(p.predictions, q.predictions)
    np.testing.assert_allclose(p.logits, q.logits, atol=1e-5)
    assert p.baseline == q.baseline
    assert set(load_finetuned(r).state_dict()) == set(load_finetuned(tiny_sentiment_ft)
                                                      .state_dict())
    assert "checkpoint" in finetune.summary_line(r)
    again = load_or_train(cfg, verbose=False)
    assert again.cached and again.path == r.path and again.metrics == r.metrics


def test_checkpoint_key_follows_its_files_not_seed_or_base(elsewhere, tmp_path):
    cfg = FinetuneConfig(**SMOKE, checkpoint=str(elsewhere))
    assert cache_key(dataclasses.replace(cfg, seed=3)) == cache_key(cfg)
    changed = tmp_path / "changed"
    shutil.copytree(elsewhere, changed)
    cfg_json = changed / "config.json"
    cfg_json.write_text(cfg_json.read_text().replace('"hidden_act"', '"_note": 1, "hidden_act"'))
    assert cache_key(dataclasses.replace(cfg, checkpoint=str(changed))) != cache_key(cfg)
    assert cache_key(dataclasses.replace(cfg, preset="demo")) != cache_key(cfg)  # max_length


def test_keys_without_checkpoint_leave_it_out(monkeypatch):
    """Existing cache entries stay valid: a config without a checkpoint hashes as before."""
    seen = []
    monkeypatch.setattr(cache, "content_key", lambda obj, **k: seen.append(obj) or "key")
    cache_key(FinetuneConfig(**SMOKE))
    assert "checkpoint" not in seen[0]["config"]


def test_snapshots_and_training_settings_are_refused(elsewhere):
    for bad in ({"save_steps": (0, 10)}, {"max_steps": 5}, {"freeze_bottom": 1},
                {"drop_top": 1}, {"learning_rate": 1e-4}, {"precision": "bf16"}):
        name = next(iter(bad))
        with pytest.raises(ConfigError, match=rf"{name}=.*already fine-tuned"):
            FinetuneConfig(**SMOKE, checkpoint=str(elsewhere), **bad)
    with pytest.raises(ConfigError, match="neither a local folder nor a hub id"):
        FinetuneConfig(**SMOKE, checkpoint="./no-such-folder")


def test_snapshot_of_a_checkpoint_is_refused(elsewhere):
    r = load_or_train(FinetuneConfig(**SMOKE, checkpoint=str(elsewhere)), verbose=False)
    with pytest.raises(ConfigError, match="fine-tuned elsewhere"):
        load_finetuned(r, step=0)


def _save(model, folder, tokenizer_from=None):
    model.save_pretrained(folder)
    if tokenizer_from is not None:
        tr.AutoTokenizer.from_pretrained(str(tokenizer_from)).save_pretrained(folder)
    return str(folder)


def test_head_with_wrong_number_of_labels_is_refused(elsewhere, tmp_path):
    three = tr.AutoModelForSequenceClassification.from_pretrained(str(elsewhere), num_labels=3,
                                                                  ignore_mismatched_sizes=True)
    path = _save(three, tmp_path / "three-labels", elsewhere)
    with pytest.raises(ConfigError, match=r"three-labels.*3 output labels.*has 2"):
        load_or_train(FinetuneConfig(**SMOKE, checkpoint=path), verbose=False)


def test_bare_encoder_is_refused_as_missing_head(tmp_path):
    path = _save(tr.AutoModel.from_pretrained(str(models.tiny_model_dir("bert"))),
                 tmp_path / "bare", models.tiny_model_dir("bert"))
    with pytest.raises(MissingHeadError, match=r"bare.*no trained classification head.*"
                                               r"classifier\.weight.*model="):
        load_or_train(FinetuneConfig(**SMOKE, checkpoint=path), verbose=False)


def test_base_model_of_another_size_or_kind_is_refused(elsewhere, tmp_path):
    base = tmp_path / "two-layer-base"
    base.mkdir()
    c = tr.AutoConfig.from_pretrained(str(elsewhere))
    c.num_hidden_layers = 2
    c.save_pretrained(base)
    with pytest.raises(ConfigError, match=r"my-model.*num_hidden_layers 4 vs 2.*ORIG must be"):
        load_or_train(FinetuneConfig(**{**SMOKE, "model": str(base)}, checkpoint=str(elsewhere)),
                      verbose=False)
    with pytest.raises(ConfigError, match=r"model_type 'bert' vs 'roberta'"):
        load_or_train(FinetuneConfig(**{**SMOKE, "model": "tiny-roberta"},
                                     checkpoint=str(elsewhere)), verbose=False)


def test_checkpoint_without_tokenizer_is_refused(elsewhere, tmp_path):
    bare = tmp_path / "weights-only"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(elsewhere / f, bare / f)
    with pytest.raises(ConfigError, match="no tokenizer files.*save_pretrained"):
        load_or_train(FinetuneConfig(**SMOKE, checkpoint=str(bare)), verbose=False)


def test_hub_id_goes_through_the_hub_loading_code(tiny_sentiment_ft, elsewhere, tmp_path,
                                                  monkeypatch):
    """A hub id is fetched by transformers (here from an offline Hugging Face cache laid out as
    the hub leaves it) and its snapshot folder is the model folder."""
    import huggingface_hub.constants as hub

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-sentiment-ft"
    shutil.copytree(elsewhere, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _no_training(monkeypatch)
    r = load_or_train(FinetuneConfig(**SMOKE, checkpoint="someone/tiny-sentiment-ft"),
                      verbose=False)
    assert r.model_dir == repo / "snapshots" / revision
    assert r.metrics == pytest.approx(tiny_sentiment_ft.metrics, abs=1e-12)
