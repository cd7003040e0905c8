import dataclasses
import json
import random

import pytest
import torch
import transformers as tr

from layerscope import cache, finetune
from layerscope.finetune import FinetuneConfig, cache_key, load_finetuned, load_or_train, training
from layerscope.finetune import config as ft_config
from layerscope.tasks import get_task

SMOKE = dict(task="tiny-sentiment", model="tiny-bert", preset="smoke")


def test_tiny_finetune_beats_chance(tiny_sentiment_ft):
    """Accuracy well above the majority baseline; the learning curve goes down."""
    r = tiny_sentiment_ft
    assert r.metrics["accuracy"] > r.baseline["accuracy"] + 0.2
    assert 0.4 < r.baseline["accuracy"] < 0.6
    curve = r.learning_curve()
    assert curve["train_loss"][-1] < curve["train_loss"][0]
    meta = json.loads((r.path / "meta.json").read_text())
    assert meta["config"]["task"] == "tiny-sentiment" and meta["files"]


def test_cache_hit_does_not_train(tiny_sentiment_ft, monkeypatch):
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("retrained a cached run"))
    again = load_or_train(tiny_sentiment_ft.config)
    assert again.path == tiny_sentiment_ft.path and again.metrics == tiny_sentiment_ft.metrics


@pytest.mark.parametrize("change", [
    {"task": "tiny-pos"}, {"model": "tiny-roberta"}, {"preset": "demo"}, {"seed": 1},
    {"max_steps": 7}, {"learning_rate": 1e-4}, {"batch_size": 8}, {"max_train_examples": 50},
    {"freeze_bottom": 1}, {"drop_top": 1},
])
def test_cache_key_changes_with_every_input(change):
    base = FinetuneConfig(**SMOKE)
    assert cache_key(dataclasses.replace(base, **change)) != cache_key(base)
    assert cache_key(FinetuneConfig(**SMOKE)) == cache_key(base)


def test_snapshots_are_not_part_of_the_key_and_are_added_without_retraining(monkeypatch,
                                                                           tmp_path):
    """Asking a cached run for snapshots adds them to the same entry (issue 8: notebook 05
    reuses the main job's runs); the final model is untouched, the replay retraces the run."""
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    base = FinetuneConfig(**SMOKE, max_steps=12)
    assert cache_key(dataclasses.replace(base, save_steps=(5,))) == cache_key(base)
    first = load_or_train(base, verbose=False)
    weights = (first.model_dir / "model.safetensors").read_bytes()
    more = load_or_train(dataclasses.replace(base, save_steps=(0, 10)), verbose=False)
    assert more.path == first.path and more.meta["saved_steps"] == [0, 10]
    assert (first.model_dir / "model.safetensors").read_bytes() == weights
    replay = more.meta["snapshot_replay"]
    assert replay["max_loss_diff"] < 1e-6 and replay["max_weight_diff"] < 1e-6, replay
    assert load_finetuned(more, step=10) is not None
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("retrained"))
    again = load_or_train(dataclasses.replace(base, save_steps=(10,)), verbose=False)
    assert again.meta["saved_steps"] == [0, 10]


def test_cache_key_changes_with_code_version(monkeypatch):
    base = FinetuneConfig(**SMOKE)
    before = cache_key(base)
    monkeypatch.setattr(ft_config, "FINETUNE_VERSION", finetune.FINETUNE_VERSION + 1)
    assert cache_key(base) != before


@pytest.mark.parametrize("bad,match", [
    ({"preset": "fast"}, "unknown preset 'fast'"), ({"seed": -1}, "seed=-1"),
    ({"max_steps": 0}, "max_steps=0"), ({"task": "glue"}, "unknown task 'glue'"),
    ({"model": "bertt"}, "unknown model 'bertt'"),
])
def test_bad_config_values(bad, match):
    with pytest.raises(ValueError, match=match):
        FinetuneConfig(**{**SMOKE, **bad})


class _Interrupt(tr.TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 30:
            raise KeyboardInterrupt("simulated interruption at step 30")


def _weights(result):
    return {k: v.clone() for k, v in load_finetuned(result).state_dict().items()}


@pytest.mark.slow
def test_interrupted_run_resumes(tmp_path, monkeypatch):
    """Stopped at step 30 (checkpoint at 20), a rerun resumes and ends where an uninterrupted
    run ends."""
    cfg = FinetuneConfig(**SMOKE, seed=3)
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path / "a"))
    with pytest.raises(KeyboardInterrupt):
        load_or_train(cfg, callbacks=[_Interrupt()], verbose=False)
    folder = cache.entry_dir("finetune", cache_key(cfg))
    assert (folder / "checkpoints" / "checkpoint-20").exists()
    assert not (folder / "meta.json").exists()
    resumed = load_or_train(cfg, verbose=False)
    assert resumed.meta["resumed"] and resumed.meta["global_step"] == 60
    assert not (folder / "checkpoints").exists()
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path / "b"))
    straight = load_or_train(cfg, verbose=False)
    assert not straight.meta["resumed"]
    a, b = _weights(resumed), _weights(straight)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_corrupt_cache_entry_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    cfg = FinetuneConfig(**SMOKE, max_steps=5)
    first = load_or_train(cfg, verbose=False)
    weights = first.model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    calls = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    again = load_or_train(cfg, verbose=False)
    assert calls == [1]
    assert cache.verify(again.path)[0]
    assert list(tmp_path.glob("cache/finetune/*.corrupt-*"))  # kept aside for inspection


def test_freeze_bottom_keeps_bottom_weights(tmp_path, monkeypatch):
    """Merchant et al. ablation: embeddings and blocks 1..k stay at their pre-trained values."""
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    from layerscope import models

    start = models.load_encoder("tiny-bert").state_dict()
    tuned = load_finetuned(load_or_train(FinetuneConfig(**SMOKE, max_steps=10, freeze_bottom=2),
                                         verbose=False)).bert.state_dict()
    for name, value in start.items():
        if name.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1.")):
            torch.testing.assert_close(tuned[name], value, rtol=0, atol=0, msg=name)
    moved = [n for n in start if n.startswith("encoder.layer.3.")
             and not torch.equal(tuned[n], start[n])]
    assert moved, "block 4 did not train"


def test_drop_top_removes_blocks(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    model = load_finetuned(load_or_train(FinetuneConfig(**SMOKE, max_steps=5, drop_top=1),
                                         verbose=False))
    assert model.config.num_hidden_layers == 3 and len(model.bert.encoder.layer) == 3


def test_albert_freeze_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="undefined for ALBERT"):
        load_or_train(FinetuneConfig(task="tiny-sentiment", model="tiny-albert", preset="smoke",
                                     freeze_bottom=1), verbose=False)


def test_snapshots_at_chosen_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    r = load_or_train(FinetuneConfig(**SMOKE, max_steps=10, save_steps=(0, 5)), verbose=False)
    assert r.meta["saved_steps"] == [0, 5]
    m0, m5 = load_finetuned(r, step=0), load_finetuned(r, step=5)
    assert not torch.equal(m0.classifier.weight, m5.classifier.weight)
    with pytest.raises(FileNotFoundError, match="saved steps"):
        r.snapshot_dir(7)


def _rows(kind, n, rng):
    if kind == "mrpc":
        return [{"sentence1": f"the movie was {w}", "sentence2": f"a film so {w}", "label": i % 2,
                 "idx": i} for i, w in enumerate(rng.choices(["good", "bad", "dull"], k=n))]
    if kind == "stsb":
        return [{"sentence1": "the movie was good", "sentence2": "the film was great",
                 "label": float(i % 5), "idx": i} for i in range(n)]
    return [{"ctx": "the movie was", "endings": ["good", "bad", "dull", "great"],
             "label": str(i % 4)} for i in range(n)]


@pytest.mark.parametrize("task,folder,kind", [
    ("mrpc", "nyu-mll__glue/mrpc", "mrpc"), ("stsb", "nyu-mll__glue/stsb", "stsb"),
    ("hellaswag", "Rowan__hellaswag/default", "hellaswag"),
])
def test_pair_regression_multiple_choice_paths(task, folder, kind, tmp_path, monkeypatch):
    """Each task kind trains end to end (on local files in the hub's format) and is scored."""
    rng = random.Random(0)
    for split in ("train", "validation"):
        path = tmp_path / "hub" / folder / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(json.dumps(r) for r in _rows(kind, 24, rng)))
    monkeypatch.setenv("LAYERSCOPE_HUB_DATA", str(tmp_path / "hub"))
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path / "home"))
    r = load_or_train(FinetuneConfig(task=task, model="tiny-roberta", preset="smoke",
                                     max_steps=4), verbose=False)
    spec = get_task(task)
    assert set(spec.metrics) <= set(r.metrics)
    assert r.meta["n_eval"] == 24


def test_result_is_an_encoder_source(tiny_sentiment_ft):
    """``activations`` takes a fine-tuned model through ``EncoderSource`` (it does not import
    finetune): the result loads its own model and the tokenizer saved with it."""
    from layerscope import activations as acts

    assert isinstance(tiny_sentiment_ft, acts.EncoderSource)
    model, tok = acts.encoder_and_tokenizer(tiny_sentiment_ft)
    want = load_finetuned(tiny_sentiment_ft).state_dict()
    assert not model.training and model.state_dict().keys() == want.keys()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    assert tok.vocab == tr.AutoTokenizer.from_pretrained(str(tiny_sentiment_ft.model_dir)).vocab


def test_inputs_longer_than_the_position_table_are_refused_naming_max_length(tmp_path,
                                                                             monkeypatch):
    """tiny-bert has 64 positions; the zhou2022 preset encodes up to 128 tokens. A sentence of
    120 words is refused before training (no cache folder), naming the preset, max_length,
    the model's limit and the presets that fit, not torch's shape error."""
    from layerscope.errors import ConfigError
    from layerscope.tasks import TaskSpec

    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path / "home"))
    rows = [{"text": f"a short review number {i}", "label": i % 2} for i in range(40)]
    rows[3]["text"] = " ".join(["good"] * 120)
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FinetuneConfig(task=TaskSpec.from_file(data), model="tiny-bert", preset="zhou2022",
                         max_steps=1)
    with pytest.raises(ConfigError, match=r"preset 'zhou2022' encodes max_length=128\), but "
                       r"tiny-bert takes at most 64 .*at most 64 \(demo, smoke\)"):
        load_or_train(cfg, verbose=False)
    assert not list((tmp_path / "home").glob("cache/finetune/*"))


def test_short_inputs_train_under_a_longer_max_length():
    """max_length above the position table refuses nothing while every input fits."""
    import datasets

    from layerscope import models

    cfg = FinetuneConfig(task="tiny-sentiment", model="tiny-bert", preset="zhou2022")
    model = models.load_for_task("tiny-bert", cfg.task_spec)
    tok = models.load_tokenizer("tiny-bert")
    assert models.model_max_length(model, tok) == 64
    fits = datasets.Dataset.from_dict({"input_ids": [[1] * 64, [1] * 3]})
    training.check_inputs_fit(cfg, model, tok, fits, fits)  # nothing raised
    with pytest.raises(Exception, match="inputs of up to 65 tokens"):
        training.check_inputs_fit(cfg, model, tok, fits,
                                  datasets.Dataset.from_dict({"input_ids": [[1] * 65]}))
