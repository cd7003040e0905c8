"""The same parity tests for every adapter family added in issue 16, on its tiny random model
(``models.FAMILY_TINY_ARCHS``), always on a padded batch (sequences of different lengths).

The reference for surgery is built independently of the adapter: a deep copy of the model
whose block list (found by structure: the one ``nn.ModuleList`` of L modules) has the blocks
deleted and ``num_hidden_layers`` set. One model of each kind per family per module.

Then: a model without an adapter fine-tunes and gives ORIG/FT CKA, and surgery on it names the
supported families and the interface.
"""

import copy

import numpy as np
import pytest
import torch
import transformers as tr
from torch import nn

from layerscope import adapters, models, paths
from layerscope.adapters import EncoderAdapter
from layerscope.errors import ConfigError, UnsupportedModelError
from layerscope.finetune import FinetuneConfig, load_or_train
from layerscope.measures.cka import cka_matrix
from layerscope.quick import sentence_states
from layerscope.studies import skipping as skipping_study
from layerscope.studies import truncation as trunc
from layerscope.studies.truncation import heads
from layerscope.surgery import drop_top_blocks, save_truncated, skipped, truncated
from layerscope.surgery_kernels import (
    all_span_skipping_logits,
    spans,
    untuned_truncation_logits,
)
from layerscope.tasks import get_task
from test_surgery import assert_same_model, model_logits, model_snapshot

# Helper B appends its families here once their adapters pass.
FAMILIES = ["xlm-roberta", "camembert", "distilbert", "mpnet", "deberta", "deberta-v2",
            "modernbert"]

SENTENCES = ["the movie was good .", "a dull film , so boring i think", "that cast felt superb",
             "bad"]
ATOL = 1e-5  # stacked batches change GEMM blocking: float rounding only
L = 4

# Per family, what deleting blocks from a copy needs besides the block list and
# num_hidden_layers: fn(copy, kept block indices 1..L). Families whose forward reads per-layer
# config (e.g. a list of attention types by layer index) register it here.
DELETE_FIXUPS: dict = {  # ModernBERT's forward builds rotary tables for set(config.layer_types)
    "modernbert": lambda m, kept: setattr(m.config, "layer_types",
                                          [m.config.layer_types[i - 1] for i in kept])}


class Family:
    """One family's tiny models (sequence and token heads) and padded batches."""

    def __init__(self, arch: str):
        self.arch, self.name = arch, f"tiny-{arch}"
        self.seq = self.load("tiny-sentiment")
        self.tok = models.load_tokenizer(self.name)
        self.batch = self.tok(SENTENCES, padding=True, return_tensors="pt")
        assert (self.batch["attention_mask"] == 0).any()  # the batch is padded

    def load(self, task: str):
        torch.manual_seed(0)  # the fresh head
        return models.load_for_task(self.name, get_task(task)).eval()

    def word_batch(self):
        tok = models.load_tokenizer(self.name, for_words=True)
        return tok([s.split() for s in SENTENCES], is_split_into_words=True, padding=True,
                   return_tensors="pt")


@pytest.fixture(scope="module", params=FAMILIES)
def fam(request) -> Family:
    return Family(request.param)


def _block_list(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent, attribute) of the one ModuleList of L modules under the base model."""
    n = model.config.num_hidden_layers
    found = []
    for parent in model.base_model.modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n:
                found.append((parent, attr))
    assert len(found) == 1, f"{len(found)} module lists of {n} blocks"
    return found[0]


def _without_blocks(model: nn.Module, drop) -> nn.Module:
    """A deep copy of ``model`` with the blocks in ``drop`` (1-based) deleted for good."""
    cut = copy.deepcopy(model)
    parent, attr = _block_list(cut)
    kept = [i for i in range(1, len(getattr(parent, attr)) + 1) if i not in set(drop)]
    setattr(parent, attr, nn.ModuleList(getattr(parent, attr)[i - 1] for i in kept))
    cut.config.num_hidden_layers = len(kept)
    DELETE_FIXUPS.get(cut.config.model_type, lambda m, k: None)(cut, kept)
    return cut


def _flat_inputs(batch) -> tuple:
    return batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")


def _check_adapter_reproduces(model, batch) -> None:
    ad = EncoderAdapter(model)
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
        states = ad.hidden_states(*_flat_inputs(batch))
        logits = ad.head(states[-1])
        # ModernBERT: the model's hidden_states[L] is final_norm(block L); the adapter's is block L
        # (adapters/modernbert.py). final_states is the identity for every other family.
        states[-1] = ad.final_states(states[-1])
    assert len(states) == len(out.hidden_states) == ad.n_layers + 1 == L + 1
    for mine, theirs in zip(states, out.hidden_states, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, out.logits, rtol=0, atol=1e-6)


# --- the adapter reproduces the model ---------------------------------------------------------

def test_states_and_heads_equal_the_model(fam):
    """Hidden states block by block and every head on h_L equal the model's own outputs."""
    ad = EncoderAdapter(fam.seq)
    assert type(ad) is adapters.adapter_class(fam.seq.config)
    # what freeze_bottom freezes: the embeddings (with the word embeddings) and no block
    frozen = {id(p) for p in ad.embeddings_module().parameters()}
    assert id(fam.seq.get_input_embeddings().weight) in frozen
    assert not frozen & {id(p) for b in ad.blocks() for p in b.parameters()}
    _check_adapter_reproduces(fam.seq, fam.batch)
    _check_adapter_reproduces(fam.load("tiny-pos"), fam.word_batch())
    mc_types = tr.models.auto.modeling_auto.MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES
    if fam.seq.config.model_type in mc_types:  # rows [B*C, T]: the adapter sees flat inputs
        torch.manual_seed(0)
        mc = tr.AutoModelForMultipleChoice.from_pretrained(models.resolve(fam.name)).eval()
        ids = {k: v.reshape(2, 2, -1) for k, v in fam.batch.items()}  # 2 questions x 2 choices
        with torch.inference_mode():
            expected = mc(**ids).logits
        per_layer = untuned_truncation_logits(mc, ids)
        assert per_layer.shape == (L + 1, 2, 2)
        torch.testing.assert_close(per_layer[L], expected, rtol=0, atol=1e-6)


def test_padded_batch_equals_one_sequence_at_a_time(fam):
    """Padding changes nothing on the real tokens: states and logits as for each alone."""
    ad = EncoderAdapter(fam.seq)
    with torch.inference_mode():
        batched = ad.hidden_states(*_flat_inputs(fam.batch))
        batch_logits = untuned_truncation_logits(fam.seq, fam.batch)
        for r, sentence in enumerate(SENTENCES):
            alone = fam.tok([sentence], return_tensors="pt")
            n = alone["input_ids"].shape[1]
            assert torch.equal(alone["input_ids"][0], fam.batch["input_ids"][r, :n])
            states = ad.hidden_states(*_flat_inputs(alone))
            for k, (a, b) in enumerate(zip(states, batched, strict=True)):
                torch.testing.assert_close(a[0], b[r, :n], rtol=0, atol=ATOL, msg=f"layer {k}")
            torch.testing.assert_close(untuned_truncation_logits(fam.seq, alone)[:, 0],
                                       batch_logits[:, r], rtol=0, atol=ATOL)


# --- surgery equals the model with blocks deleted ---------------------------------------------

def test_truncation_equals_the_model_without_its_top_blocks(fam):
    model, batch = fam.seq, fam.batch
    full = model_logits(model, batch)
    per_layer = untuned_truncation_logits(model, batch)
    assert per_layer.shape == (L + 1, len(SENTENCES), 2)
    assert torch.equal(per_layer[L], full)
    for k in range(1, L + 1):
        reference = model_logits(_without_blocks(model, range(k + 1, L + 1)), batch)
        with truncated(model, k):
            got = model_logits(model, batch)
            assert len(model(**batch, output_hidden_states=True).hidden_states) == k + 1
        assert torch.equal(got, reference)
        torch.testing.assert_close(got, per_layer[k], rtol=0, atol=ATOL)
    assert not torch.allclose(per_layer[1], full)  # the test can tell layers apart
    tagger, words = fam.load("tiny-pos"), fam.word_batch()
    tokens = untuned_truncation_logits(tagger, words)
    assert tokens.shape[:3] == (L + 1, *words["input_ids"].shape)
    with truncated(tagger, 2):
        torch.testing.assert_close(model_logits(tagger, words), tokens[2], rtol=0, atol=ATOL)


def test_skipping_equals_the_model_without_those_blocks(fam):
    model, batch = fam.seq, fam.batch
    by_span = all_span_skipping_logits(model, batch)
    assert sorted(by_span) == sorted(spans(L))
    for (i, j), expected in by_span.items():
        reference = model_logits(_without_blocks(model, range(i, j + 1)), batch)
        with skipped(model, range(i, j + 1)):
            got = model_logits(model, batch)
        assert torch.equal(got, reference), (i, j)
        torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
    reference = model_logits(_without_blocks(model, {1, 3}), batch)
    with skipped(model, {1, 3}):  # not a span
        assert torch.equal(model_logits(model, batch), reference)


def test_surgery_restores_the_model_bit_for_bit(fam):
    model, batch = fam.load("tiny-sentiment"), fam.batch  # fresh: no output hooks yet
    snap, full = model_snapshot(model), model_logits(model, batch)
    with pytest.raises(RuntimeError, match="boom"):
        with truncated(model, 2):
            assert len(model(**batch, output_hidden_states=True).hidden_states) == 3
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with skipped(model, {2, 3}):
            raise RuntimeError("boom")
    assert_same_model(model, snap)
    assert torch.equal(model_logits(model, batch), full)
    _check_adapter_reproduces(model, batch)  # every block still reports its hidden state


def test_save_truncated_and_drop_top_blocks(fam, tmp_path):
    model, batch = fam.seq, fam.batch
    snap = model_snapshot(model)
    out = save_truncated(model, 2, tmp_path / "cut", tokenizer=fam.tok)
    assert_same_model(model, snap)
    again, info = tr.AutoModelForSequenceClassification.from_pretrained(
        out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert again.config.num_hidden_layers == 2
    expected = untuned_truncation_logits(model, batch)[2]
    torch.testing.assert_close(model_logits(again.eval(), batch), expected, rtol=0, atol=ATOL)
    cut = drop_top_blocks(copy.deepcopy(model), 1)
    assert cut.config.num_hidden_layers == EncoderAdapter(cut).n_layers == L - 1
    with truncated(model, L - 1):
        assert torch.equal(model_logits(cut, batch), model_logits(model, batch))


def _pair_batch(fam) -> dict:
    """The word batch with two (head, dependent) pairs per sentence by first sub-word position
    (words 1 -> 0 and 0 -> 2; a one-word sentence: 0 -> 0 and a padding pair)."""
    words = fam.word_batch()
    pairs, labels = [], []
    for i in range(len(SENTENCES)):
        first = {}
        for t, w in enumerate(words.word_ids(i)):
            if w is not None:
                first.setdefault(w, t)
        if len(first) >= 3:
            pairs.append([[first[1], first[0]], [first[0], first[2]]])
            labels.append([1, 3])
        else:
            pairs.append([[first[0], first[0]], [-1, -1]])
            labels.append([0, -100])
    return {**words, "pair_index": torch.tensor(pairs), "labels": torch.tensor(labels)}


def test_token_pair_head_on_every_layer_and_span(fam):
    """A token-pair model (finetune.pair_model: one linear layer on [h_head; h_dep]) through the
    family's adapter: the head on hidden state L is the model itself (ModernBERT: its final
    norm included), on state k the model truncated to k blocks, with a span skipped the model
    without those blocks."""
    model, batch = fam.load("tiny-dep"), _pair_batch(fam)
    assert EncoderAdapter(model).model_head_kind == "token_pair"
    per_layer = untuned_truncation_logits(model, batch)
    assert per_layer.shape == (L + 1, len(SENTENCES), 2, 5)
    torch.testing.assert_close(per_layer[L], model_logits(model, batch), rtol=0, atol=1e-6)
    with truncated(model, 2):
        torch.testing.assert_close(model_logits(model, batch), per_layer[2], rtol=0, atol=ATOL)
    by_span = all_span_skipping_logits(model, batch)
    with skipped(model, {2, 3}):
        torch.testing.assert_close(model_logits(model, batch), by_span[(2, 3)], rtol=0,
                                   atol=ATOL)
    assert not torch.allclose(per_layer[1], per_layer[L])


# --- fine-tuning and CKA ----------------------------------------------------------------------

def _orig_ft_cka(name: str, private_home) -> np.ndarray:
    """A few fine-tuning steps, then ORIG vs FT linear CKA of mean-pooled states."""
    result = load_or_train(FinetuneConfig(task="tiny-sentiment", model=name, preset="smoke",
                                          seed=0, max_steps=3), verbose=False)
    assert result.meta["config"]["model"] == name
    orig = sentence_states(name, SENTENCES * 2, pooling="mean")
    ft = sentence_states(result, SENTENCES * 2, pooling="mean")
    assert orig.shape == ft.shape == (L + 1, 2 * len(SENTENCES), orig.shape[2])
    assert not np.allclose(orig[L], ft[L])  # training changed the encoder
    m = cka_matrix(orig, ft)
    assert m.shape == (L + 1, L + 1) and np.isfinite(m).all()
    assert (m > 0).all() and (m <= 1 + 1e-6).all()
    return m


def test_a_few_finetuning_steps_and_orig_ft_cka(fam, private_home):
    _orig_ft_cka(fam.name, private_home)


def _has_first_token_head(model) -> bool:
    return type(EncoderAdapter(model)).has_first_token_head()


def test_truncation_and_skipping_studies_run(fam, private_home):
    """Studies 03 and 04 end to end (the fine-tune above is reused from the cache); the
    drop_top ablation goes through the adapter (freeze_bottom needs only embeddings_module and
    block(i): checked above). UNTUNED at L and nothing skipped reproduce
    finetune.predictions."""
    shared = dict(task="tiny-sentiment", model=fam.name, preset="smoke", max_steps=3,
                  n_boot=10)
    by_span = skipping_study.run_skipping(skipping_study.SkippingConfig(**shared, n_examples=16),
                                          verbose=False)
    assert list(by_span.spans) == spans(L) and by_span.parity[0]["max_abs_logit_diff"] < 1e-5
    assert np.isfinite(by_span.span_logits).all()
    truncation = trunc.TruncationConfig(**shared, n_examples=16, n_train=40, drop_top=(1,))
    cut = trunc.run_truncation(truncation, verbose=False)
    assert cut.n_layers == L and cut.parity[0]["max_abs_logit_diff"] < 1e-5
    assert [(a["kind"], a["k"]) for a in cut.ablations] == [("drop_top", 1)]
    assert np.isfinite(cut.logits["untuned"][:, 1:]).all() and cut.check() == []
    if not _has_first_token_head(fam.seq):  # TUNED/TUNEDORIG need one: UNTUNED only, saying so
        for line in ("tuned", "tunedorig"):
            assert np.isnan(cut.logits[line]).all() and sorted(cut.undefined[line]) == \
                list(range(L + 1))
            assert all("TUNED/TUNEDORIG are undefined" in w for w in cut.undefined[line].values())
        assert cut.findings()["tunedorig_below_tuned"]["verdict"] == "UNDEFINED"
        assert cut.figure() is not None and "UNDEFINED" in cut.verdict()
        return
    for line in trunc.LINES:
        assert np.isfinite(cut.logits[line][:, 1:]).all()


def test_tuned_head_params_equal_the_models_own_head(fam):
    """TUNED/TUNEDORIG train act(x W1 + b1) W2 + b2 on the first token: the family's
    first_token_head gives the same function as its head (or the family says it has none)."""
    hidden = torch.randn(5, 7, fam.seq.config.hidden_size)
    with torch.no_grad():
        want = EncoderAdapter(fam.seq).head(hidden)
    if not _has_first_token_head(fam.seq):
        with pytest.raises(UnsupportedModelError, match="TUNED/TUNEDORIG"):
            heads.head_params(fam.seq)
        return
    p = heads.head_params(fam.seq)
    np.testing.assert_allclose(heads.apply(p, hidden[None, :, 0])[0], want, atol=1e-6)


# --- models without an adapter ----------------------------------------------------------------

@pytest.fixture(scope="module")
def roformer_dir(tmp_path_factory):
    """A tiny RoFormer (rotary BERT; no layerscope adapter), saved and loaded by path."""
    folder = tmp_path_factory.mktemp("tiny-roformer")
    tok = tr.BertTokenizer(vocab=str(paths.RESOURCES / "tiny_vocab" / "vocab.txt"),
                           do_lower_case=True)
    cfg = tr.RoFormerConfig(vocab_size=len(tok), hidden_size=32, embedding_size=32,
                            num_hidden_layers=L, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tr.RoFormerModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_model_without_adapter_finetunes_and_gives_cka(roformer_dir, private_home):
    assert not adapters.supports_surgery(models.load_config(roformer_dir))
    _orig_ft_cka(roformer_dir, private_home)


def test_surgery_without_adapter_says_what_is_supported(roformer_dir):
    torch.manual_seed(0)
    model = models.load_for_task(roformer_dir, get_task("tiny-sentiment"))
    batch = models.load_tokenizer(roformer_dir)(SENTENCES, padding=True, return_tensors="pt")
    message = (r"(?s)no layer adapter for model_type 'roformer'.*Supported families:.*"
               r"DistilBERT \(distilbert\).*only read hidden states.*work without an adapter.*"
               r"adapters/base.py.*adapters/distilbert.py.*FAMILIES")
    for surgery in (lambda: truncated(model, 2), lambda: skipped(model, {1}),
                    lambda: untuned_truncation_logits(model, batch),
                    lambda: drop_top_blocks(model, 1), lambda: EncoderAdapter(model)):
        with pytest.raises(UnsupportedModelError, match=message):
            surgery()
    assert issubclass(UnsupportedModelError, ConfigError)
    assert model.config.num_hidden_layers == L


def test_truncation_study_without_adapter_fails_before_fine_tuning(roformer_dir, monkeypatch):
    monkeypatch.setattr(load_or_train.__module__ + ".train",
                        lambda *a, **k: pytest.fail("fine-tuned before the adapter check"))
    cfg = trunc.TruncationConfig(task="tiny-sentiment", model=roformer_dir, preset="smoke",
                                 max_steps=3, n_examples=16, n_train=40)
    with pytest.raises(UnsupportedModelError, match="the truncation study needs one"):
        trunc.run_truncation(cfg, verbose=False)


def test_family_table_lists_every_family():
    rows = adapters.family_table()
    by_type = {t: row for row in rows for t in row["model_types"]}
    assert set(adapters.FAMILIES) | {"*"} == set(by_type)
    for arch in models.ARCHS + tuple(FAMILIES):
        row = by_type[arch]
        assert row["surgery"] and row["hidden_states"] and "sequence" in row["heads"], row
        assert models.check_model_name(f"tiny-{arch}") == f"tiny-{arch}"
    assert by_type["roberta"] is by_type["xlm-roberta"] is by_type["camembert"]
    assert by_type["albert"]["freeze_bottom"] is False and by_type["bert"]["freeze_bottom"]
    assert by_type["distilbert"]["tuned_heads"] and by_type["distilbert"]["module"] == \
        "adapters/distilbert.py"
    assert by_type["*"] == {"family": "any other", "model_types": ("*",), "module": "",
                            "hidden_states": True, "surgery": False, "freeze_bottom": False,
                            "heads": (), "tuned_heads": False, "tuned_head_kinds": ()}


# === helper B: family-specific checks for the relative-position families ======================
# (MPNet, DeBERTa, DeBERTa-v2/v3, ModernBERT: adapters/mpnet.py, deberta.py, modernbert.py)

def _b_padded(n_rows=3, length=12, vocab=99, pad=0, seed=0):
    """Random ids [n_rows, length] with right padding of different lengths (row 0 unpadded)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n_rows, length), generator=g)
    mask = torch.ones_like(ids)
    for r in range(1, n_rows):
        mask[r, length - 3 * r:] = 0
    ids[mask == 0] = pad
    return {"input_ids": ids, "attention_mask": mask}


# --- DeBERTa-v2: the convolution after block 1 (deberta-v2-xlarge's conv_kernel_size=3) ------

@pytest.fixture(scope="module")
def deberta_v2_conv():
    """A tiny DeBERTa-v2 WITH the convolution (the tiny-deberta-v2 model is v3-like: none)."""
    torch.manual_seed(0)
    cfg = tr.DebertaV2Config(
        vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, relative_attention=True,
        pos_att_type=["p2c", "c2p"], position_buckets=8, max_relative_positions=32,
        share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False,
        conv_kernel_size=3, conv_act="gelu", num_labels=2)
    return tr.DebertaV2ForSequenceClassification(cfg).eval()


def test_deberta_v2_conv_parity_padded_and_alone(deberta_v2_conv):
    """The convolution reads block 1's input, whose padding rows the embeddings zero: a padded
    batch equals each sequence alone on its real tokens (Conv1d's own zero padding at the end)."""
    model, batch = deberta_v2_conv, _b_padded()
    ad = EncoderAdapter(model)
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
        mine = ad.hidden_states(batch["input_ids"], batch["attention_mask"])
        assert len(mine) == len(out.hidden_states) == 5
        for a, b in zip(mine, out.hidden_states, strict=True):
            assert torch.equal(a, b)
        assert torch.equal(ad.head(mine[-1]), out.logits)
        for r in range(3):
            n = int(batch["attention_mask"][r].sum())
            alone = model(input_ids=batch["input_ids"][r:r + 1, :n], output_hidden_states=True)
            for a, b in zip(alone.hidden_states, out.hidden_states, strict=True):
                torch.testing.assert_close(a[0], b[r, :n], rtol=0, atol=1e-5)
        # the convolution is really there: without it block 1's output differs
        conv, model.deberta.encoder.conv = model.deberta.encoder.conv, None
        try:
            assert not torch.allclose(model(**batch, output_hidden_states=True).hidden_states[1],
                                      out.hidden_states[1])
        finally:
            model.deberta.encoder.conv = conv


def test_deberta_v2_conv_belongs_to_block_1(deberta_v2_conv):
    """Skipping block 1 removes its convolution too (the identity for all of block 1); skipping
    another block keeps it after block 1. The model's forward alone would apply the
    convolution after whichever layer came first: the hand-built copy shows the difference."""
    model, batch = deberta_v2_conv, _b_padded()
    enc = model.deberta.encoder
    layers = list(enc.layer)
    before = model_logits(model, batch)
    by_span = all_span_skipping_logits(model, batch)
    for drop in ({1}, {1, 2}, {2}, {3, 4}):
        kept = [i for i in range(1, 5) if i not in drop]
        no_conv = 1 not in kept
        cut = _without_blocks(model, drop)
        if no_conv:
            cut.deberta.encoder.conv = None  # it goes with block 1
        want = model_logits(cut, batch)
        with skipped(model, drop):
            got = model_logits(model, batch)
            assert (model.deberta.encoder.conv is None) == no_conv
            assert list(model.deberta.encoder.layer) == [layers[i - 1] for i in kept]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        if drop == set(range(min(drop), max(drop) + 1)):
            torch.testing.assert_close(by_span[(min(drop), max(drop))], want, rtol=0, atol=1e-5)
        if no_conv:  # keeping the conv after the new first layer is a different model
            naive = model_logits(_without_blocks(model, drop), batch)
            assert not torch.allclose(naive, want)
    assert model.deberta.encoder is enc and enc.conv is not None  # restored
    assert torch.equal(model_logits(model, batch), before)
    frozen = {id(p) for p in EncoderAdapter(model).embeddings_module().parameters()}
    assert all(id(p) in frozen for p in enc.conv.parameters())  # freeze_bottom takes it


def test_deberta_v2_conv_save_truncated(deberta_v2_conv, tmp_path):
    model, batch = deberta_v2_conv, _b_padded()
    path = save_truncated(model, 2, tmp_path / "k2")
    again = tr.AutoModelForSequenceClassification.from_pretrained(path).eval()
    assert again.deberta.encoder.conv is not None and again.config.num_hidden_layers == 2
    with truncated(model, 2):
        torch.testing.assert_close(model_logits(again, batch), model_logits(model, batch), rtol=0,
                                   atol=0)


# --- ModernBERT: local windows, own attention types, final_norm, pooling ---------------------

def _b_modernbert(cls=tr.ModernBertForSequenceClassification, **kw):
    torch.manual_seed(0)
    cfg = tr.ModernBertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
        eos_token_id=3, cls_token_id=2, sep_token_id=3, global_attn_every_n_layers=2,
        local_attention=4, num_labels=2, **kw)
    return cls(cfg).eval()


def test_modernbert_local_window_masks():
    """The sliding-window blocks (2 and 4 here) see keys within |q - k| <= local_attention // 2
    only: a change at distance 3 reaches a query through a global block, never through a local
    one (exactly); at distance 2 it does. The tiny model's window matters at its test lengths."""
    model = _b_modernbert()
    ad = EncoderAdapter(model)
    assert [ad.block(i).attention_type for i in range(1, 5)] == [
        "full_attention", "sliding_attention", "full_attention", "sliding_attention"]
    w = model.config.sliding_window
    assert w == 2
    batch = _b_padded(n_rows=1, length=10)
    with torch.inference_mode():
        h = ad.embed(batch["input_ids"])
        ctx = ad.block_context(batch["attention_mask"], h)
        for i, local in ((1, False), (2, True)):
            base = ad.run_block(i, h, ctx)
            for dist in (w, w + 1):
                h2 = h.clone()
                h2[0, dist] += torch.randn(h.shape[-1], generator=torch.Generator().manual_seed(1))
                change = (ad.run_block(i, h2, ctx)[0, 0] - base[0, 0]).abs().max().item()
                if local and dist > w:
                    assert change == 0.0, (i, dist)  # masked out exactly
                else:
                    assert change > 1e-4, (i, dist, change)
    tiny = models.load_for_task("tiny-modernbert", get_task("tiny-sentiment")).eval()
    tok = models.load_tokenizer("tiny-modernbert")
    b = tok(SENTENCES, padding=True, return_tensors="pt")
    assert b["input_ids"].shape[1] > tiny.config.sliding_window + 1  # windows cut something
    wide = copy.deepcopy(tiny)
    wide.config.local_attention = 4 * b["input_ids"].shape[1]
    assert not torch.allclose(model_logits(wide, b), model_logits(tiny, b))


def test_modernbert_kept_blocks_keep_their_attention_type():
    """Skipping block 1 puts local block 2 first: it keeps its sliding window and local rotary
    base (the model's forward picks both by the block's own attention_type) and its attention
    LayerNorm (block 1's is the identity); config.layer_types names the kept blocks' types."""
    model = _b_modernbert(global_rope_theta=160_000.0, local_rope_theta=10.0)
    batch = _b_padded()
    for drop in ({1}, {2}, {1, 3}, {4}):
        kept = [i for i in range(1, 5) if i not in drop]
        types = [model.config.layer_types[i - 1] for i in kept]
        want = model_logits(_without_blocks(model, drop), batch)  # DELETE_FIXUPS: layer_types
        with skipped(model, drop):
            assert model.config.layer_types == types
            got = model_logits(model, batch)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert model.config.layer_types == ["full_attention", "sliding_attention"] * 2  # restored
    # a block under the other type's mask and rotary base is a different function
    ad = EncoderAdapter(model)
    with torch.inference_mode():
        h = ad.embed(batch["input_ids"])
        ctx = ad.block_context(batch["attention_mask"], h)
        own = ad.run_block(2, h, ctx)
        other = ad.block(2)(h, attention_mask=ctx.masks["full_attention"],
                            position_embeddings=ctx.rotary["full_attention"])
    assert not torch.allclose(own, other)


def test_modernbert_final_norm_and_hidden_states():
    """transformers 5 replaces hidden_states[L] by final_norm(block L output); the adapter's
    state L is block L's output (what every truncation depth needs) and final_states gives the
    model's value back. head(state k) applies final_norm, as a k-block ModernBERT does."""
    model, batch = _b_modernbert(), _b_padded()
    ad = EncoderAdapter(model)
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
        mine = ad.hidden_states(batch["input_ids"], batch["attention_mask"])
        for a, b in zip(mine[:-1], out.hidden_states[:-1], strict=True):
            assert torch.equal(a, b)
        assert not torch.allclose(mine[-1], out.hidden_states[-1])  # the norm is real
        assert torch.equal(ad.final_states(mine[-1]), out.hidden_states[-1])
        assert torch.equal(ad.head(mine[-1]), out.logits)
        with truncated(model, 2):
            two = model(**batch, output_hidden_states=True)
        assert torch.equal(two.hidden_states[2], ad.final_states(mine[2]))
        assert torch.equal(two.logits, ad.head(mine[2]))


@pytest.mark.parametrize("cls", [tr.ModernBertForSequenceClassification,
                                 tr.ModernBertForMultipleChoice])
def test_modernbert_mean_pooling_reads_the_mask(cls):
    """classifier_pooling="mean" (ModernBERT-base's setting) averages the real tokens: the head
    takes attention_mask=, and refuses to guess without one."""
    model, batch = _b_modernbert(cls, classifier_pooling="mean"), _b_padded(n_rows=4)
    ad = EncoderAdapter(model)
    if cls is tr.ModernBertForMultipleChoice:
        batch = {k: v.reshape(2, 2, -1) for k, v in batch.items()}
    flat = {k: v.reshape(-1, v.shape[-1]) for k, v in batch.items()}
    with torch.inference_mode():
        want = model_logits(model, batch)
        h = ad.hidden_states(flat["input_ids"], flat["attention_mask"])[-1]
        got = ad.head(h, attention_mask=flat["attention_mask"])
        assert torch.equal(got.reshape(want.shape), want)
        assert not torch.allclose(ad.head(h, attention_mask=torch.ones_like(flat["input_ids"]))
                                  .reshape(want.shape), want)
        with pytest.raises(ConfigError, match="attention_mask"):
            ad.head(h)


def test_modernbert_eager_attention_parity():
    """The eager attention path (additive float masks) gives what SDPA gives (boolean masks)."""
    sdpa = _b_modernbert()
    eager = _b_modernbert(attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    batch = _b_padded()
    for model in (sdpa, eager):
        ad = EncoderAdapter(model)
        with torch.inference_mode():
            out = model(**batch, output_hidden_states=True)
            mine = ad.hidden_states(batch["input_ids"], batch["attention_mask"])
            assert torch.equal(ad.head(mine[-1]), out.logits)
    torch.testing.assert_close(model_logits(eager, batch), model_logits(sdpa, batch), rtol=0,
                               atol=1e-5)


# --- multiple choice ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [tr.MPNetForMultipleChoice, tr.DebertaV2ForMultipleChoice])
def test_multiple_choice_head(cls):
    torch.manual_seed(0)
    kw = dict(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
              intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    if cls is tr.DebertaV2ForMultipleChoice:
        cfg = tr.DebertaV2Config(**kw, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                 position_buckets=8, share_att_key=True,
                                 norm_rel_ebd="layer_norm")
    else:
        cfg = tr.MPNetConfig(**kw)
    model = cls(cfg).eval()
    batch = {k: v.reshape(2, 2, -1) for k, v in _b_padded(n_rows=4).items()}
    per_layer = untuned_truncation_logits(model, batch)
    assert torch.equal(per_layer[-1], model_logits(model, batch))
    with truncated(model, 2):
        torch.testing.assert_close(model_logits(model, batch), per_layer[2], rtol=0, atol=1e-6)


# --- relative-position inputs: built once per batch, and they matter -------------------------

_B_ONCE = {  # family -> (object, method) that the model's forward calls once per forward
    "mpnet": (lambda m: m.mpnet.encoder, "compute_position_bias"),
    "deberta": (lambda m: m.deberta.encoder, "get_rel_embedding"),
    "deberta-v2": (lambda m: m.deberta.encoder, "get_rel_pos"),
    "modernbert": (lambda m: m.model.rotary_emb, "forward"),  # once per attention type
}


@pytest.mark.parametrize("arch", list(_B_ONCE))
def test_relative_inputs_built_once_per_batch_and_used(arch, monkeypatch):
    """block_context builds the relative-position input once per batch, as the model's forward
    does (ModernBERT: one rotary table per attention type), and the blocks really use it.

    At the tiny models' initialisation (std 0.02) attention is nearly uniform, so positions
    move the states by only ~1e-5 (DeBERTa) to ~1e-3 (MPNet): too close to the parity
    tolerances to prove that the relative input is passed right. Here every Linear weight is
    scaled by 4 (sharper attention): an altered relative input then moves the states by > 1e-3,
    and the adapter still equals the model exactly, the span kernel the skipping contexts."""
    torch.manual_seed(0)
    model = models.load_for_task(f"tiny-{arch}", get_task("tiny-sentiment")).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.mul_(4.0)
    batch = models.load_tokenizer(f"tiny-{arch}")(SENTENCES, padding=True, return_tensors="pt")
    ad = EncoderAdapter(model)
    owner, name = _B_ONCE[arch]
    target, calls = owner(model), []
    original = getattr(target, name)
    monkeypatch.setattr(target, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    with torch.inference_mode():
        states = ad.hidden_states(*_flat_inputs(batch))
    assert len(calls) == (len(set(model.config.layer_types)) if arch == "modernbert" else 1)
    monkeypatch.undo()
    _check_adapter_reproduces(model, batch)
    for (i, j), expected in all_span_skipping_logits(model, batch).items():
        with skipped(model, range(i, j + 1)):
            torch.testing.assert_close(model_logits(model, batch), expected, rtol=1e-5,
                                       atol=1e-5)
    with torch.inference_mode():
        ctx = ad.block_context(batch["attention_mask"], states[0])
        if arch == "mpnet":
            ctx = ctx._replace(position_bias=ctx.position_bias.flip(-1))
        elif arch == "modernbert":
            ctx = ctx._replace(rotary={t: (c.flip(1), s.flip(1)) for t, (c, s) in
                                       ctx.rotary.items()})
        else:
            ctx = ctx._replace(rel_embeddings=ctx.rel_embeddings.flip(0))
        altered = ad.run_blocks(states[0], ctx, range(1, L + 1))
    real = batch["attention_mask"].bool()
    assert (altered[real] - states[L][real]).abs().max() > 1e-3
    if arch != "modernbert":  # freeze_bottom freezes the shared table (rotary has no weights)
        enc = model.base_model.encoder
        table = enc.relative_attention_bias if arch == "mpnet" else enc.rel_embeddings
        frozen = {id(p) for p in ad.embeddings_module().parameters()}
        assert id(table.weight) in frozen
