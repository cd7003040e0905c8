"""Per-layer extraction: padding invariance, parity with HF hidden_states, pooling, cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from layerscope import activations as acts
from layerscope import cache
from layerscope.errors import ConfigError
from layerscope.tasks import get_task

SENTENCES = [
    "the film was good .",
    "a remarkably unconvincing screenplay drags the whole cast into tedium and confusion .",
    "ok",
    "every actor felt awful , and the plot became rather clumsy by the end .",
    "great score",
    "that script seemed very tedious .",
]


pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def bert():
    return acts.encoder_and_tokenizer("tiny-bert", for_words=True)


@pytest.fixture(scope="module")
def roberta():
    return acts.encoder_and_tokenizer("tiny-roberta", for_words=True)


@pytest.fixture
def counted(monkeypatch):
    """Count calls of the uncached extraction behind load_or_extract."""
    calls = []
    real = acts.extract

    def wrapper(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(acts, "extract", wrapper)
    return calls


@pytest.mark.parametrize("arch", ["bert", "roberta"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_never_changes_a_row(arch, pooling, request):
    """A sentence gives the same vectors alone, in a padded batch, and in a shuffled batch."""
    model, tok = request.getfixturevalue(arch)
    alone = np.stack([acts.extract(model, tok, [s], pooling=pooling, progress=False)[0][:, 0]
                      for s in SENTENCES], axis=1)
    together, ids = acts.extract(model, tok, SENTENCES, pooling=pooling, batch_size=len(SENTENCES),
                                 progress=False)
    perm = [3, 0, 5, 2, 4, 1]
    mixed, _ = acts.extract(model, tok, [SENTENCES[i] for i in perm], pooling=pooling,
                            batch_size=4, progress=False)
    assert together.shape == (5, len(SENTENCES), 32)
    assert ids[:, 0].tolist() == list(range(len(SENTENCES)))
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(mixed, together[:, perm], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_equals_model_hidden_states_for_one_sentence(arch, request):
    """Layer i row = HF hidden_states[i] (CLS: first token; mean: over all tokens)."""
    model, tok = request.getfixturevalue(arch)
    s = SENTENCES[5]
    with torch.no_grad():
        hs = model(**tok([s], return_tensors="pt"), output_hidden_states=True).hidden_states
    ref = torch.stack(hs)[:, 0].numpy()  # [L+1, T, H]
    cls, _ = acts.extract(model, tok, [s], pooling="cls", progress=False)
    mean, _ = acts.extract(model, tok, [s], pooling="mean", progress=False)
    np.testing.assert_allclose(cls[:, 0], ref[:, 0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(mean[:, 0], ref.mean(1), atol=1e-6, rtol=0)


def test_word_pooling_averages_sub_words(bert):
    """Each word row is the mean of exactly that word's sub-word vectors."""
    model, tok = bert
    words = [["the", "filmography", "was", "unconvincing", "."], ["ok", "screenplay"]]
    states, ids = acts.extract(model, tok, words, pooling="word", progress=False)
    assert ids.tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [1, 0], [1, 1]]
    multi = 0
    for e, ws in enumerate(words):
        enc = tok([ws], is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            hs = torch.stack(model(**enc, output_hidden_states=True).hidden_states)[:, 0]
        wid = enc.word_ids(0)
        for w in range(len(ws)):
            pos = [t for t, x in enumerate(wid) if x == w]
            multi += len(pos) > 1
            row = int(np.flatnonzero((ids[:, 0] == e) & (ids[:, 1] == w))[0])
            np.testing.assert_allclose(states[:, row], hs[:, pos].mean(1).numpy(), atol=1e-5)
    assert multi >= 2, "the test needs words split into several sub-words"


def test_pair_pooling_concatenates_two_words(bert):
    """pair rows = [word_i ; word_{i+k}] for complete words; labels encode both tags."""
    model, tok = bert
    words = [["the", "filmography", "was", "good", "."]]
    w, _ = acts.extract(model, tok, words, pooling="word", progress=False)
    p, ids = acts.extract(model, tok, words, pooling="pair", pair_offset=2, progress=False)
    assert ids.tolist() == [[0, 0], [0, 1], [0, 2]]
    np.testing.assert_allclose(p, np.concatenate([w[:, 0:3], w[:, 2:5]], axis=-1), atol=1e-6)
    spec = acts.ActivationSpec("tiny-pos", n_examples=5, pooling="pair", max_length=32)
    a = acts.load_or_extract(spec, *bert, progress=False)
    ds = acts.load_split("tiny-pos", "validation")
    r, i = a.ids[0]
    assert a.labels[0] == ds[int(r)]["tags"][i] * 6 + ds[int(r)]["tags"][i + 1]


def test_words_cut_by_max_length_are_dropped(bert):
    """A word whose sub-words do not all fit in max_length gets no row."""
    model, tok = bert
    words = [["a", "filmography", "filmography", "filmography"]]
    full, ids_full = acts.extract(model, tok, words, pooling="word", progress=False)
    cut, ids_cut = acts.extract(model, tok, words, pooling="word", max_length=8, progress=False)
    assert len(ids_cut) < len(ids_full)
    n_sub = len(tok(words, is_split_into_words=True, add_special_tokens=False)["input_ids"][0])
    assert n_sub + 2 > 8


def test_load_or_extract_labels_and_ids():
    """Rows carry the split's labels and row indices; n_examples subsets are seeded."""
    model, tok = acts.encoder_and_tokenizer("tiny-bert")
    spec = acts.ActivationSpec("tiny-sentiment", n_examples=20, max_length=32)
    a = acts.load_or_extract(spec, model, tok, progress=False)
    ds = acts.load_split("tiny-sentiment", "validation")
    assert a.states.shape == (5, 20, 32) and a.n_layers == 4
    assert a.labels.tolist() == [ds[int(r)]["label"] for r in a.ids[:, 0]]
    assert (np.diff(a.ids[:, 0]) > 0).all() and (a.ids[:, 1] == -1).all()
    b = acts.load_or_extract(dataclasses.replace(spec, seed=1), model, tok, progress=False)
    assert a.ids[:, 0].tolist() != b.ids[:, 0].tolist()


def test_cache_hit_is_identical_and_does_not_recompute(bert, counted):
    """The second call loads the memory-mapped entry instead of extracting again."""
    spec = acts.ActivationSpec("tiny-sentiment", n_examples=16, max_length=32, pooling="mean")
    a = acts.load_or_extract(spec, *bert, progress=False)
    b = acts.load_or_extract(spec, *bert, progress=False)
    assert len(counted) == 1
    assert isinstance(b.states, np.memmap)
    np.testing.assert_array_equal(np.asarray(a.states), np.asarray(b.states))
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.key == b.key and (a.path / cache.META).exists()


def test_corrupt_entry_is_detected_and_recomputed(bert, counted):
    """Damaged files fail their sha256 check: the entry is moved aside and recomputed."""
    spec = acts.ActivationSpec("tiny-sentiment", n_examples=12, max_length=32)
    a = acts.load_or_extract(spec, *bert, progress=False)
    good = np.array(a.states)
    path = a.path / "states.npy"
    raw = bytearray(path.read_bytes())
    raw[-16:] = b"\x7f" * 16
    path.write_bytes(bytes(raw))
    assert not cache.verify(a.path)[0]
    b = acts.load_or_extract(spec, *bert, progress=False)
    assert len(counted) == 2
    np.testing.assert_array_equal(np.asarray(b.states), good)
    assert list(a.path.parent.glob(f"{a.key}.corrupt-*"))


SPEC = acts.ActivationSpec("tiny-sentiment", n_examples=16, max_length=32)
CHANGES = {"task": "tiny-pos", "split": "test", "n_examples": 17, "pooling": "mean",
           "dtype": "bfloat16", "max_length": 31, "seed": 1, "pair_offset": 2}


def test_every_key_field_changes_the_key(monkeypatch):
    """Spec fields, weights, tokenizer and code version all enter the cache key
    (``word_vector``, which only word and pair poolings read: test_word_vector_key)."""
    assert set(CHANGES) | {"word_vector"} == {f.name for f in
                                              dataclasses.fields(acts.ActivationSpec)}
    base = acts.activation_key(SPEC, "w", "t")
    assert acts.activation_key(SPEC, "w", "t") == base
    keys = {acts.activation_key(dataclasses.replace(SPEC, **{k: v}), "w", "t")
            for k, v in CHANGES.items()}
    keys |= {acts.activation_key(SPEC, "w2", "t"), acts.activation_key(SPEC, "w", "t2")}
    monkeypatch.setattr(acts, "ACTIVATIONS_VERSION", acts.ACTIVATIONS_VERSION + 1)
    keys.add(acts.activation_key(SPEC, "w", "t"))
    assert base not in keys and len(keys) == len(CHANGES) + 3


# Keys computed before ``word_vector`` existed (commit 9c80449): its default leaves them as
# they were, so caches made then are still found.
PINNED_KEYS = {("tiny-sentiment", "cls"): "a187eda12a133074be48",
               ("tiny-pos", "word"): "4511e52c163564999343"}


def test_word_vector_key():
    """word_vector="mean" (the default) and any word_vector on a sentence pooling leave the
    key as it was before the field existed; "first" on word pooling makes a new key."""
    word = acts.ActivationSpec("tiny-pos", n_examples=16, max_length=32, pooling="word")
    assert acts.activation_key(SPEC, "w", "t") == PINNED_KEYS[("tiny-sentiment", "cls")]
    assert acts.activation_key(word, "w", "t") == PINNED_KEYS[("tiny-pos", "word")]
    assert acts.activation_key(dataclasses.replace(SPEC, word_vector="first"), "w", "t") == \
        PINNED_KEYS[("tiny-sentiment", "cls")]
    first = dataclasses.replace(word, word_vector="first")
    assert acts.activation_key(first, "w", "t") not in PINNED_KEYS.values()


def test_a_resolved_task_is_the_named_one():
    """A run resolves its task once and passes the spec: the same key and rows as by name; a
    spec of another task is refused."""
    task = get_task(SPEC.task)
    assert acts.spec_task(SPEC, task) is task and acts.spec_task(SPEC) is task
    assert acts.activation_key(SPEC, "w", "t", task) == acts.activation_key(SPEC, "w", "t")
    by_spec, by_name = acts.task_inputs(SPEC, task), acts.task_inputs(SPEC)
    assert by_spec[0] == by_name[0] and (by_spec[2] == by_name[2]).all()
    with pytest.raises(ValueError, match="tiny-pos.*tiny-sentiment"):
        acts.spec_task(SPEC, get_task("tiny-pos"))


def test_weights_change_the_key(bert):
    """Fine-tuned weights are a different entry even with the same spec."""
    model, tok = bert
    a = acts.load_or_extract(SPEC, model, tok, progress=False)
    model2, _ = acts.encoder_and_tokenizer("tiny-bert")
    with torch.no_grad():
        model2.encoder.layer[0].output.dense.bias.add_(torch.linspace(-1, 1, 32))
    b = acts.load_or_extract(SPEC, model2, tok, progress=False)
    assert a.key != b.key
    assert not np.allclose(a.states[2], b.states[2])
    np.testing.assert_allclose(a.states[0], b.states[0])  # embeddings untouched


def test_bfloat16_is_close_and_stored_as_float32(bert):
    """bf16 compute gives float32 rows close to the fp32 ones."""
    model, tok = bert
    f32, _ = acts.extract(model, tok, SENTENCES, pooling="mean", progress=False)
    b16, _ = acts.extract(model, tok, SENTENCES, pooling="mean", dtype="bfloat16", progress=False)
    assert b16.dtype == np.float32
    assert np.abs(b16 - f32).max() < 0.1 and not np.array_equal(b16, f32)


@pytest.mark.parametrize("kwargs, match", [
    ({"task": "tiny-sentiment", "pooling": "max"}, "unknown pooling 'max'"),
    ({"task": "no-such-task"}, "unknown task 'no-such-task'"),
    ({"task": "tiny-sentiment", "pooling": "word"}, "pooling 'word' needs a token task"),
    ({"task": "tiny-sentiment", "n_examples": 0}, "n_examples=0"),
    ({"task": "tiny-sentiment", "dtype": "float16"}, "unknown dtype 'float16'"),
    ({"task": "tiny-sentiment", "split": "dev"}, "no split 'dev'"),
    ({"task": "tiny-pos", "pooling": "pair", "pair_offset": 0}, "pair_offset=0"),
    ({"task": "tiny-pos", "pooling": "word", "word_vector": "last"},
     "unknown word_vector 'last'"),
    ({"task": "tiny-dep", "pooling": "word"}, "pooling 'word' needs per-word labels.*'pair'"),
    ({"task": "tiny-dep", "pooling": "pair", "pair_offset": 2}, "pair_offset=2: a token_pair"),
])
def test_bad_specs_raise_clear_errors(kwargs, match):
    """Each bad value is named in the error, with the valid choices."""
    with pytest.raises(ValueError, match=match):
        acts.ActivationSpec(**kwargs)


def test_layer_index_out_of_range(bert):
    """Activations.layer names the bad index and the valid range."""
    a = acts.load_or_extract(SPEC, *bert, progress=False)
    assert a.layer(4).shape == (16, 32)
    with pytest.raises(ValueError, match=r"layer index 5 out of range.*0\.\.4"):
        a.layer(5)


def test_unknown_model_name():
    """A misspelt model lists the valid names."""
    with pytest.raises(ValueError, match="unknown model 'tiny-bret'"):
        acts.encoder_and_tokenizer("tiny-bret")


def test_an_encoder_source_loads_itself(bert):
    """Anything with ``encoder_and_tokenizer(step=, for_words=)`` (``finetune.FinetuneResult``)
    is asked for its model; a model name with a step is refused."""
    asked = []

    class Source:
        def encoder_and_tokenizer(self, *, step=None, for_words=False):
            asked.append((step, for_words))
            return bert

    assert isinstance(Source(), acts.EncoderSource)
    model, tok = acts.encoder_and_tokenizer(Source(), step=3, for_words=True)
    assert model is bert[0] and tok is bert[1] and asked == [(3, True)]
    model, _ = acts.encoder_and_tokenizer(Source(), device="cpu")  # moved there (issue 16)
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ConfigError, match="device='gpu'|unknown device 'gpu'"):
        acts.encoder_and_tokenizer(Source(), device="gpu")
    with pytest.raises(ValueError, match="needs a fine-tuned model"):
        acts.encoder_and_tokenizer("tiny-bert", step=3)


def test_activations_does_not_import_finetune():
    """The arrow points from finetune to activations (``EncoderSource``), not back."""
    import subprocess
    import sys

    code = ("import sys, layerscope.activations; "
            "assert not [m for m in sys.modules if m.startswith('layerscope.finetune')]")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
