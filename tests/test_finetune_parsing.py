"""Dependency parsing through fine-tuning (Merchant et al. 2020, Dozat & Manning 2017's biaffine
head trained with the encoder): the model, the encoding of words and cut sentences, UAS/LAS
after training, predictions, the baseline and checkpoints, on tiny models and tiny-parse."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
import transformers as tr

from layerscope import adapters, encoding, finetune, models
from layerscope.errors import MissingHeadError
from layerscope.finetune import BiaffineParserModel, FinetuneConfig, decode_outputs
from layerscope.parsing import mst
from layerscope.tasks import get_task, load_split

pytestmark = pytest.mark.usefixtures("private_home")

PARSE = get_task("tiny-parse")
FT = FinetuneConfig(task="tiny-parse", model="tiny-bert", preset="smoke")  # 60 steps


@pytest.fixture(scope="module")
def tuned():
    return finetune.load_or_train(FT, verbose=False)


def _batch(name: str, n: int = 6, max_length: int = 32):
    tok = models.load_tokenizer(name, for_words=True)
    rows = load_split(PARSE, "validation").select(range(n))
    enc = encoding.encode_split(PARSE, rows, tok, max_length)
    return tok, rows, enc, encoding.collator_for(PARSE, tok)(list(enc))


def _reference_loss(arc, label_scores, heads, rels) -> torch.Tensor:
    """D&M's loss by explicit loops: per real word, -log softmax over its heads at the gold
    head, and -log softmax over relations at the gold head; each averaged over all words."""
    arc_terms, label_terms = [], []
    for b in range(len(heads)):
        n = int((heads[b] != -100).sum())
        for d in range(1, n + 1):
            g = int(heads[b, d - 1])
            arc_terms.append(-torch.log_softmax(arc[b, d, :n + 1], 0)[g])
            label_terms.append(-torch.log_softmax(label_scores[b, d, g], 0)[int(rels[b, d - 1])])
    return torch.stack(arc_terms).mean() + torch.stack(label_terms).mean()


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
def test_parser_model_scores_loss_decoding_and_adapter(name):
    """load_for_task gives a BiaffineParserModel (config: labels, base_model: the encoder the
    adapter reads); word_index is each word's first sub-word (the tokenizer's word_ids); the
    head on the encoder's last state is the model's scores; padded heads and self-loops are
    -inf; the loss is D&M's by explicit loops; decoding the outputs gives the parser's own
    trees, each a tree with one word under ROOT; a sentence alone parses as in the batch."""
    model = models.load_for_task(name, PARSE).eval()
    assert isinstance(model, BiaffineParserModel)
    assert model.config.num_labels == 6 and model.config.id2label[0] == "root"
    assert adapters.EncoderAdapter(model).n_layers == 4
    tok, rows, enc, batch = _batch(name)
    for i, words in enumerate(rows["tokens"]):
        wid = tok(list(words), is_split_into_words=True).word_ids()
        assert enc[i]["word_index"] == [wid.index(w) for w in range(len(words))]
    assert not set(batch) & set(encoding.BOOKKEEPING)
    with torch.no_grad():
        out = model(**batch)
        inputs = {k: v for k, v in batch.items() if k not in ("word_index", "heads", "deprels")}
        hidden = model.base_model(**inputs).last_hidden_state
        scores = model.parse_head(hidden, batch["word_index"])
    assert torch.equal(scores.arc, out.arc_scores)
    b, w = batch["word_index"].shape
    assert out.arc_scores.shape == (b, w + 1, w + 1) and out.label_scores.shape == (
        b, w + 1, w + 1, 6)
    n = (batch["word_index"] >= 0).sum(1)
    for s in range(b):
        assert torch.isneginf(out.arc_scores[s, :, n[s] + 1:]).all()
        assert torch.isneginf(out.arc_scores[s].diagonal()).all()
    at_gold = model.parser.label_scores(scores, batch["heads"])
    gathered = out.label_scores[:, 1:].gather(
        2, batch["heads"].clamp_min(0)[:, :, None, None].expand(b, w, 1, 6))[:, :, 0]
    real = batch["heads"] != -100
    torch.testing.assert_close(gathered[real], at_gold[real])
    torch.testing.assert_close(out.loss, _reference_loss(out.arc_scores, out.label_scores,
                                                         batch["heads"], batch["deprels"]))
    heads, labels = decode_outputs(out.arc_scores, out.label_scores)
    own_heads, own_labels = model.decode(scores)
    np.testing.assert_array_equal(heads, own_heads)
    np.testing.assert_array_equal(labels, own_labels)
    for s in range(b):
        assert mst.is_tree(heads[s, :n[s]]) and (heads[s, :n[s]] == 0).sum() == 1
        assert (heads[s, n[s]:] == -1).all()
    alone = encoding.collator_for(PARSE, tok)([enc[b - 1]])
    with torch.no_grad():
        one = model(**alone)
    k = int(n[b - 1])
    torch.testing.assert_close(one.arc_scores[0, :k + 1, :k + 1],
                               out.arc_scores[b - 1, :k + 1, :k + 1], atol=1e-5, rtol=1e-5)


def test_kept_words_renumber_heads_or_refuse():
    """Words dropped from a sentence keep the others' heads (renumbered) unless a kept word's
    head is dropped."""
    assert encoding.kept_words([2, 0, 2, 2], [True, True, False, True]) == ([0, 1, 3],
                                                                            [2, 0, 2])
    assert encoding.kept_words([2, 0, 2, 3], [True, True, False, True]) is None
    assert encoding.kept_words([0], [False]) is None


def test_sentences_cut_by_max_length_are_shortened_or_dropped_and_said(capsys):
    """max_length=6 keeps 4 one-token words: a sentence whose cut word heads no kept word loses
    it; one whose cut word heads a kept word is dropped; a short one is untouched; one line
    says so."""
    tok = models.load_tokenizer("tiny-bert", for_words=True)
    ds = datasets.Dataset.from_dict({
        "tokens": [["the", "movie", "was", "good", "."], ["a", "film"],
                   ["every", "film", "became", "very", "good"]],
        "heads": [[2, 3, 0, 3, 3], [2, 0], [2, 3, 0, 5, 3]],
        "deprels": [[1, 2, 0, 4, 5], [1, 0], [1, 2, 0, 3, 4]]})
    assert all(len(tok(t, is_split_into_words=True)["input_ids"]) == len(t) + 2
               for t in ds["tokens"])  # one token per word
    enc = encoding.encode_split(PARSE, ds, tok, 6)
    assert enc["sentence_index"] == [0, 1]
    assert enc["heads"] == [[2, 3, 0, 3], [2, 0]] and enc["deprels"] == [[1, 2, 0, 4], [1, 0]]
    assert enc["words"] == [[0, 1, 2, 3], [0, 1]] and enc["word_index"][0] == [1, 2, 3, 4]
    err = capsys.readouterr().err
    assert ("2 of 3 sentences are longer than max_length=6 tokens: 1 lost their last 1 word(s)"
            " in all (no kept word's head among them), 1 were dropped") in err


def _attachment_by_hand(p, names) -> tuple[float, float]:
    """UAS/LAS from the predictions by explicit counting, gold punct relations left out."""
    scored = right = both = 0
    for ph, gh, pl, gl in zip(*(p.per_sentence(k) for k in (
            "pred_heads", "gold_heads", "pred_labels", "gold_labels")), strict=True):
        for a, b, c, d in zip(ph, gh, pl, gl, strict=True):
            if names[d] == "punct":
                continue
            scored += 1
            right += a == b
            both += a == b and c == d
    return 100.0 * right / scored, 100.0 * both / scored


def test_finetune_metrics_predictions_and_baseline(tuned):
    """A tiny BERT fine-tunes on tiny-parse: UAS/LAS in percent, above the chain baseline;
    every predicted tree is a tree with one root; UAS/LAS counted by hand from the predictions
    are the recorded ones; per-sentence counts add up; the baseline recomputed by hand;
    predictions come back from the cache."""
    r = tuned
    m = r.metrics
    assert set(m) == {"las", "uas"} and 0 <= m["las"] <= m["uas"] <= 100
    assert m["las"] > r.baseline["las"] and m["uas"] > r.baseline["uas"]
    p = finetune.predictions(r)
    val = load_split(PARSE, "validation")
    assert p.sentence_index.tolist() == list(range(len(val)))
    assert [h.tolist() for h in p.per_sentence("gold_heads")] == [list(h) for h in val["heads"]]
    for h in p.per_sentence("pred_heads"):
        assert mst.is_tree(h) and (h == 0).sum() == 1
    uas, las = _attachment_by_hand(p, PARSE.label_names)
    assert uas == pytest.approx(m["uas"], abs=1e-9) and las == pytest.approx(m["las"], abs=1e-9)
    assert p.metrics == m and p.head_correct.sum() * 100.0 / p.n_scored.sum() == p.uas
    # the chain baseline: the better direction on the training trees, the commonest relation
    train = load_split(PARSE, "train")
    left = sum(sum(int(h == i) for i, h in enumerate(hs)) for hs in train["heads"])
    right = sum(sum(int(h == (i + 2 if i + 1 < len(hs) else 0)) for i, h in enumerate(hs))
                for hs in train["heads"])
    assert r.baseline["direction"] == ("left" if left >= right else "right")
    rels = np.concatenate([np.asarray(x) for x in train["deprels"]])
    assert r.baseline["label"] == PARSE.label_names[np.bincount(rels).argmax()]
    again = finetune.predictions(r)
    assert np.array_equal(again.pred_heads, p.pred_heads) and again.las == p.las


def test_checkpoint_round_trip_and_a_bare_encoder_refused(tuned, tmp_path):
    """The saved parser reloads bit-exactly (state dict and scores); its folder evaluates as a
    checkpoint to the same metrics; a bare encoder is refused as a checkpoint without a
    parser."""
    r = tuned
    a, b = finetune.load_finetuned(r), finetune.load_finetuned(r)
    assert isinstance(a, BiaffineParserModel) and not a.training
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    tok = models.load_tokenizer(str(r.model_dir), for_words=True)
    enc = encoding.encode_split(PARSE, load_split(PARSE, "validation").select(range(5)), tok, 32)
    batch = encoding.collator_for(PARSE, tok)(list(enc))
    with torch.no_grad():
        oa, ob = a(**batch), b(**batch)
    assert torch.equal(oa.arc_scores, ob.arc_scores)
    assert torch.equal(oa.label_scores, ob.label_scores)
    ck = finetune.load_or_train(FinetuneConfig(task="tiny-parse", model="tiny-bert",
                                               preset="smoke", checkpoint=str(r.model_dir)),
                                verbose=False)
    assert ck.metrics == r.metrics
    bare = tmp_path / "bare"
    tr.AutoModel.from_pretrained(models.resolve("tiny-bert"), num_labels=6).save_pretrained(bare)
    models.load_tokenizer("tiny-bert").save_pretrained(bare)
    with pytest.raises(MissingHeadError, match="has no trained dependency_parsing head"):
        finetune.load_or_train(FinetuneConfig(task="tiny-parse", model="tiny-bert",
                                              preset="smoke", checkpoint=str(bare)),
                               verbose=False)


def test_a_roberta_parser_fine_tunes_and_predicts():
    """Byte-level BPE words (add_prefix_space) and no token_type_ids: a few steps of
    tiny-roberta; its predictions reproduce the recorded metrics."""
    r = finetune.load_or_train(FinetuneConfig(task="tiny-parse", model="tiny-roberta",
                                              preset="smoke", max_steps=6), verbose=False)
    p = finetune.predictions(r)
    assert p.metrics == r.metrics and p.n_sentences == len(load_split(PARSE, "validation"))
