"""Surgery (truncation, skipping, shallower checkpoints) and its kernels, on every tiny
architecture. Each parity test compares two independent routes: the model's own forward with
blocks swapped out (surgery) vs the adapter's block-by-block kernels or a manual computation."""

import copy

import pytest
import torch
import transformers as tr

from layerscope import models
from layerscope.adapters import EncoderAdapter
from layerscope.errors import ConfigError
from layerscope.surgery import drop_top_blocks, save_truncated, skipped, truncated
from layerscope.surgery_kernels import (
    MissingHeadError,
    all_span_skipping_logits,
    span_block_evaluations,
    spans,
    untuned_truncation_logits,
)
from layerscope.tasks import get_task

SENTENCES = ["the movie was good .", "a dull film , so boring i think", "that cast felt superb",
             "bad"]
ATOL = 1e-5  # stacked batches change GEMM blocking: float rounding only
L = 4


def _load(arch, task="tiny-sentiment"):
    torch.manual_seed(0)  # the fresh head
    return models.load_for_task(f"tiny-{arch}", get_task(task)).eval()


def _batch(arch, for_words=False):
    tok = models.load_tokenizer(f"tiny-{arch}", for_words=for_words)
    return tok(SENTENCES, padding=True, return_tensors="pt")


@pytest.fixture(scope="module")
def tiny():
    """{arch: (model, batch)}: shared by the tests that leave the model as they found it."""
    return {a: (_load(a), _batch(a)) for a in models.ARCHS}


# model_logits, model_snapshot, assert_same_model: shared with tests/test_adapter_families.py

def model_logits(model, batch, **kw):
    with torch.inference_mode():
        return model(**batch, **kw).logits


def _manual(model, batch, kept):
    """The adapter's own blocks, run by hand: embed -> kept blocks in order -> head."""
    ad = EncoderAdapter(model)
    with torch.inference_mode():
        h = ad.embed(batch["input_ids"], batch.get("token_type_ids"))
        h = ad.run_blocks(h, ad.block_context(batch["attention_mask"], h), kept)
        return ad.head(h)


def model_snapshot(model):
    return dict(params={k: v.detach().clone() for k, v in model.state_dict().items()},
                modules=[(n, id(m)) for n, m in model.named_modules()],
                config=model.config.to_dict())


def assert_same_model(model, snap):
    now = model_snapshot(model)
    assert now["modules"] == snap["modules"]
    assert now["config"] == snap["config"]
    assert now["params"].keys() == snap["params"].keys()
    for k, v in snap["params"].items():
        assert torch.equal(now["params"][k], v), k


# --- truncation -------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", models.ARCHS)
def test_truncation_context_equals_one_pass_kernel(tiny, arch):
    model, batch = tiny[arch]
    full = model_logits(model, batch)
    per_layer = untuned_truncation_logits(model, batch)
    assert per_layer.shape == (L + 1, len(SENTENCES), 2)
    assert torch.equal(per_layer[L], full)  # the head path is the model's own, exactly
    with truncated(model, L):
        assert torch.equal(model_logits(model, batch), full)
    for k in range(1, L + 1):
        with truncated(model, k):
            got = model_logits(model, batch)
            assert model.config.num_hidden_layers == k
            assert len(model(**batch, output_hidden_states=True).hidden_states) == k + 1
        torch.testing.assert_close(got, per_layer[k], rtol=0, atol=ATOL)
        torch.testing.assert_close(got, _manual(model, batch, range(1, k + 1)), rtol=0,
                                   atol=ATOL)
    assert not torch.allclose(per_layer[1], full)  # the test can tell layers apart


def test_token_task_truncation():
    """A tagging head reads every token: [L+1, B, T, labels]."""
    model, batch = _load("roberta", "tiny-pos"), _batch("roberta", for_words=True)
    per_layer = untuned_truncation_logits(model, batch)
    assert per_layer.shape[:3] == (L + 1, *batch["input_ids"].shape)
    with truncated(model, 2):
        torch.testing.assert_close(model_logits(model, batch), per_layer[2], rtol=0, atol=ATOL)


def test_multiple_choice_kernels():
    """input_ids [B, C, T] are flattened to B*C rows and the logits come back as [B, C]."""
    torch.manual_seed(0)
    cfg = tr.ElectraConfig(vocab_size=99, embedding_size=8, hidden_size=16, num_hidden_layers=3,
                           num_attention_heads=2, intermediate_size=32, max_position_embeddings=16)
    model = tr.ElectraForMultipleChoice(cfg).eval()
    ids = torch.randint(5, 99, (2, 3, 7))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    per_layer = untuned_truncation_logits(model, batch)
    by_span = all_span_skipping_logits(model, batch)
    assert per_layer.shape == (4, 2, 3) and by_span[(2, 2)].shape == (2, 3)
    with truncated(model, 2):
        torch.testing.assert_close(model_logits(model, batch), per_layer[2], rtol=0, atol=ATOL)
    with skipped(model, {2}):
        torch.testing.assert_close(model_logits(model, batch), by_span[(2, 2)], rtol=0, atol=ATOL)


# --- skipping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", models.ARCHS)
def test_skipping_context_equals_span_kernel(tiny, arch):
    model, batch = tiny[arch]
    full = model_logits(model, batch)
    with skipped(model, set()):
        assert torch.equal(model_logits(model, batch), full)
    by_span = all_span_skipping_logits(model, batch)
    assert sorted(by_span) == sorted(spans(L)) and len(by_span) == L * (L + 1) // 2 - 1
    for (i, j), expected in by_span.items():
        with skipped(model, range(i, j + 1)):
            torch.testing.assert_close(model_logits(model, batch), expected, rtol=0, atol=ATOL)
    # a subset that is not a span, checked against the adapter run by hand
    by_hand = _manual(model, batch, [2, 4])
    with skipped(model, {1, 3}):
        torch.testing.assert_close(model_logits(model, batch), by_hand, rtol=0, atol=ATOL)
    assert not torch.allclose(by_span[(2, 3)], full)


def test_span_kernel_chunked_and_token_task():
    model, batch = _load("bert", "tiny-pos"), _batch("bert", for_words=True)
    whole = all_span_skipping_logits(model, batch)
    chunked = all_span_skipping_logits(model, batch, max_rows=3)  # chunks cut across spans
    for span, v in whole.items():
        assert v.shape[:2] == batch["input_ids"].shape
        torch.testing.assert_close(chunked[span], v, rtol=0, atol=ATOL)
        with skipped(model, range(span[0], span[1] + 1)):
            torch.testing.assert_close(model_logits(model, batch), v, rtol=0, atol=ATOL)


def test_span_kernel_counts_block_evaluations(tiny):
    """The reuse is real: count the rows each (distinct, BERT) block module processes."""
    assert span_block_evaluations(12) == (12, 286, 572) and len(spans(12)) == 77
    assert span_block_evaluations(4) == (4, 10, 20)
    model, batch = tiny["bert"]
    rows = []
    handles = [b.register_forward_hook(lambda m, a, o: rows.append(a[0].shape[0]))
               for b in EncoderAdapter(model).blocks()]
    try:
        all_span_skipping_logits(model, batch)
    finally:
        for h in handles:
            h.remove()
    cost = span_block_evaluations(L)
    assert sum(rows) == (cost.base + cost.reused) * len(SENTENCES)
    assert len(rows) == L + sum(1 for j in range(1, L) for _ in range(L - j))  # one call per j


def _state(model, batch):
    """The encoder output [B, T, H] (O(1) values; the random tiny heads squash logits)."""
    with torch.inference_mode():
        return model.base_model(**batch).last_hidden_state


def _manual_state(model, batch, kept):
    ad = EncoderAdapter(model)
    with torch.inference_mode():
        h = ad.embed(batch["input_ids"], batch.get("token_type_ids"))
        return ad.run_blocks(h, ad.block_context(batch["attention_mask"], h), kept)


def test_albert_skips_one_application_of_the_shared_module(tiny):
    """Block 2 of 4 is one of four applications of one module: skipping it runs that module
    three times. A hook or a module-identity swap would drop all four applications."""
    model, batch = tiny["albert"]
    ad = EncoderAdapter(model)
    assert all(b is ad.block(1) for b in ad.blocks())
    by_hand, full = _manual_state(model, batch, [1, 3, 4]), _state(model, batch)
    every_application = _manual_state(model, batch, [])  # the shared module skipped 4 times
    with skipped(model, {2}):
        got, logits = _state(model, batch), model_logits(model, batch)
        assert len(model(**batch, output_hidden_states=True).hidden_states) == L
    torch.testing.assert_close(got, by_hand, rtol=0, atol=ATOL)
    torch.testing.assert_close(logits, _manual(model, batch, [1, 3, 4]), rtol=0, atol=ATOL)
    assert (got - every_application).abs().max() > 0.1
    assert (got - full).abs().max() > 1e-2  # random tiny blocks add little, but >> ATOL


def test_albert_with_two_groups():
    """G > 1 layer groups: the index-based swap stays exact; a standalone cut only where
    ALBERT's grouping rule keeps each block's group (6 layers, 2 groups: blocks 1-3 use group
    0, blocks 4-6 group 1; 4 layers over 2 groups would be [0, 0, 1, 1], not [0, 0, 0, 1])."""
    torch.manual_seed(0)
    cfg = tr.AlbertConfig(vocab_size=99, embedding_size=8, hidden_size=16, num_hidden_layers=6,
                          num_hidden_groups=2, num_attention_heads=2, intermediate_size=32,
                          max_position_embeddings=16, num_labels=2)
    model = tr.AlbertForSequenceClassification(cfg).eval()
    ids = torch.randint(5, 99, (3, 7))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    per_layer = untuned_truncation_logits(model, batch)
    by_hand = _manual_state(model, batch, [2, 4, 5])
    for k in (4, 5):
        with truncated(model, k):
            torch.testing.assert_close(model_logits(model, batch), per_layer[k], rtol=0, atol=ATOL)
            torch.testing.assert_close(_state(model, batch),
                                       _manual_state(model, batch, range(1, k + 1)),
                                       rtol=0, atol=ATOL)
    with skipped(model, {1, 3, 6}):  # group 0, group 1, group 1
        torch.testing.assert_close(_state(model, batch), by_hand, rtol=0, atol=ATOL)
    with pytest.raises(ConfigError, match=r"cannot cut this ALBERT \(6 layers in 2 groups\) to "
                       r"k=4.*groups \[0, 0, 1, 1\] instead of \[0, 0, 0, 1\].*truncated"):
        drop_top_blocks(copy.deepcopy(model), 2)
    for n, groups in ((1, 2), (3, 1)):
        cut = drop_top_blocks(copy.deepcopy(model), n)
        assert cut.config.num_hidden_groups == groups
        assert len(cut.albert.encoder.albert_layer_groups) == groups
        torch.testing.assert_close(_state(cut, batch), _manual_state(model, batch,
                                                                     range(1, 7 - n)),
                                   rtol=0, atol=ATOL)
        torch.testing.assert_close(model_logits(cut, batch), per_layer[6 - n], rtol=0, atol=ATOL)


# --- restoration ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", models.ARCHS)
def test_contexts_restore_the_model_even_after_an_exception(arch):
    model, batch = _load(arch), _batch(arch)  # fresh: no output hooks installed yet
    snap, full = model_snapshot(model), model_logits(model, batch)
    with pytest.raises(RuntimeError, match="boom"):
        with truncated(model, 2):
            # first output_hidden_states call ever, inside the context: transformers installs
            # its capturing hooks lazily, on the modules present now
            assert len(model(**batch, output_hidden_states=True).hidden_states) == 3
            raise RuntimeError("boom")
    with skipped(model, range(2, 4)):
        pass
    assert_same_model(model, snap)
    assert torch.equal(model_logits(model, batch), full)
    with torch.inference_mode():
        states = model(**batch, output_hidden_states=True).hidden_states
        mine = EncoderAdapter(model).hidden_states(batch["input_ids"], batch["attention_mask"],
                                                   batch.get("token_type_ids"))
    assert len(states) == L + 1  # every block still reports its hidden state
    for a, b in zip(states, mine, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_contexts_nest_with_indices_of_the_model_on_entry(tiny, arch):
    """Inside skipped({1}) the model has 3 blocks (old 2, 3, 4): truncating it to 2 keeps old
    blocks 2 and 3. Both contexts unwind in order."""
    model, batch = tiny[arch]
    by_hand, full = _manual(model, batch, [2, 3]), model_logits(model, batch)
    with skipped(model, {1}):
        with truncated(model, 2):
            torch.testing.assert_close(model_logits(model, batch), by_hand, rtol=0, atol=ATOL)
        assert model.config.num_hidden_layers == L - 1
    assert torch.equal(model_logits(model, batch), full)


def test_kernels_run_in_eval_mode_and_restore_the_mode():
    model, batch = _load("electra"), _batch("electra")
    expected = untuned_truncation_logits(model, batch)
    model.train()
    model.electra.encoder.layer[0].eval()  # mixed flags come back as they were
    got = untuned_truncation_logits(model, batch)
    all_span_skipping_logits(model, batch)
    assert torch.equal(got, expected)
    assert model.training and not model.electra.encoder.layer[0].training
    assert model.electra.encoder.layer[1].training


# --- shallower models -------------------------------------------------------------------------

@pytest.mark.parametrize("arch", models.ARCHS)
def test_save_truncated_reloads_as_the_truncated_model(tiny, arch, tmp_path):
    model, batch = tiny[arch]
    snap = model_snapshot(model)
    tok = models.load_tokenizer(f"tiny-{arch}")
    out = save_truncated(model, 2, tmp_path / "cut", tokenizer=tok)
    assert_same_model(model, snap)  # saving does not change the model
    again, info = tr.AutoModelForSequenceClassification.from_pretrained(
        out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert again.config.num_hidden_layers == 2
    assert sum(p.numel() for p in again.parameters()) < sum(p.numel() for p in model.parameters()) \
        or arch == "albert"  # ALBERT's blocks share one layer: same weights, fewer applications
    with truncated(model, 2):
        assert torch.equal(model_logits(again.eval(), batch), model_logits(model, batch))
    torch.testing.assert_close(model_logits(again, batch),
                               untuned_truncation_logits(model, batch)[2], rtol=0, atol=ATOL)
    assert tr.AutoTokenizer.from_pretrained(out)("good")["input_ids"] == tok("good")["input_ids"]
    with pytest.raises(ConfigError, match="already exists"):
        save_truncated(model, 2, out)


@pytest.mark.parametrize("arch", models.ARCHS)
def test_drop_top_blocks_equals_truncation(tiny, arch):
    model, batch = tiny[arch]
    cut = drop_top_blocks(copy.deepcopy(model), 1)
    assert cut.config.num_hidden_layers == EncoderAdapter(cut).n_layers == L - 1
    with truncated(model, L - 1):
        assert torch.equal(model_logits(cut, batch), model_logits(model, batch))
    assert len(cut(**batch, output_hidden_states=True).hidden_states) == L
    assert drop_top_blocks(cut, 0) is cut and cut.config.num_hidden_layers == L - 1


# --- bad input --------------------------------------------------------------------------------

def test_bad_depths_and_spans_name_the_value_and_the_range(tiny, tmp_path):
    model, batch = tiny["roberta"]
    for k in (0, 5, 2.5, True):
        with pytest.raises(ConfigError, match=rf"k={k!r} is out of range.*use 1\.\.4"):
            truncated(model, k)
    with pytest.raises(ConfigError, match=r"k=9 is out of range.*1\.\.4"):
        save_truncated(model, 9, tmp_path / "x")
    for bad in ({0}, {2, 5}, [-1]):
        with pytest.raises(ConfigError, match=r"cannot be skipped: this model has blocks 1\.\.4"):
            skipped(model, bad)
    for every in (range(1, 5), {4, 3, 2, 1}):
        with pytest.raises(ConfigError, match=r"\[1, 2, 3, 4\] would skip every block.*keep at"):
            skipped(model, every)
    with pytest.raises(ConfigError, match="iterable of block indices"):
        skipped(model, 2)
    with pytest.raises(ConfigError, match=r"drop_top=4 is out of range.*0\.\.3"):
        drop_top_blocks(model, 4)
    with pytest.raises(ConfigError, match="unsupported: \\['position_ids'\\]"):
        untuned_truncation_logits(model, {**batch, "position_ids": batch["input_ids"]})
    with pytest.raises(ConfigError, match="max_rows=0"):
        all_span_skipping_logits(model, batch, max_rows=0)
    assert model.config.num_hidden_layers == L  # no failed call changed anything


def test_model_without_head(tiny):
    bare, batch = models.load_encoder("tiny-bert"), tiny["bert"][1]
    for kernel in (untuned_truncation_logits, all_span_skipping_logits):
        with pytest.raises(MissingHeadError, match="BertModel has no task head.*load_for_task"):
            kernel(bare, batch)
    assert issubclass(MissingHeadError, TypeError) and issubclass(MissingHeadError, ValueError)
    with truncated(bare, 2):  # the encoder itself can still be cut (representations)
        with torch.inference_mode():
            assert len(bare(**batch, output_hidden_states=True).hidden_states) == 3
