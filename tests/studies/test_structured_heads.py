"""TUNED / TUNEDORIG heads for extractive QA and dependency parsing
(``studies.truncation.structured_heads``): the untrained head is the fine-tuned function
(standardisation folded in), training learns planted structure, early stopping on whole
questions / sentences, K heads jointly = each alone, bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.errors import ConfigError
from layerscope.finetune.parser_model import all_label_scores, decode_outputs
from layerscope.parsing.biaffine import BiaffineParser
from layerscope.studies.truncation import structured_heads as sh
from layerscope.studies.truncation.heads import HeadTraining

H, T, W = 12, 12, 6
QA_FIT = HeadTraining(lr=0.05, batch_size=16, max_epochs=60, patience=6)
PARSE_FIT = HeadTraining(lr=0.01, batch_size=8, max_epochs=60, patience=6)
# a learning rate this large makes the first epoch's head worse than the initial one, so the
# initial weights are kept (best_epoch 0): what comes back is the fold/unfold of the start
WORSE = HeadTraining(lr=50.0, batch_size=16, max_epochs=1, patience=1)


# --------------------------------------------------------------------------- planted data

def qa_data(rng, n: int, u: np.ndarray, *, offset: float = 3.0, scale: float = 0.1):
    """n windows; the gold start / end tokens carry directions u[0] / u[1] on top of noise
    (a quarter have no answer: start = end = 0, the CLS position, which carries both);
    layer 0 is noise alone. States sit at ``offset`` with spread ``scale`` (a low layer's
    geometry), zero past each window's length. Two or three windows per question."""
    lengths = rng.integers(6, T + 1, n)
    start = rng.integers(1, lengths - 2)
    end = start + rng.integers(0, 3, n)
    none = rng.random(n) < 0.25
    start[none], end[none] = 0, 0
    noise = rng.normal(size=(2, n, T, H))
    rows = np.arange(n)
    noise[1, rows, start] += 4 * u[0]
    noise[1, rows, end] += 4 * u[1]
    x = offset + scale * noise
    x[:, np.arange(T)[None, :] >= lengths[:, None]] = 0
    questions = np.cumsum(rng.random(n) < 0.45)
    return x.astype(np.float32), lengths, start, end, questions


def random_tree(rng, n: int) -> np.ndarray:
    """Heads (0 = ROOT, 1-based) of a random tree over n words, one word under ROOT."""
    order = rng.permutation(n) + 1
    heads = np.zeros(n, dtype=np.int64)
    for j in range(1, n):
        heads[order[j] - 1] = order[rng.integers(0, j)]
    return heads


def parse_data(rng, s: int, emb: np.ndarray):
    """s sentences of 2..W words in random trees. Layer 1: word i's state = own[i] +
    of_head[head(i)] (its own position and its head's, so arcs are readable) at offset 2, ROOT
    = own[0]; layer 0: noise. Relation: 0 under ROOT, 1 head to the left, 2 to the right."""
    own, of_head = emb
    lengths = rng.integers(2, W + 1, s)
    mask = np.arange(W)[None, :] < lengths[:, None]
    heads = np.full((s, W), -100, dtype=np.int64)
    for i, n in enumerate(lengths):
        heads[i, :n] = random_tree(rng, n)
    pos = np.arange(1, W + 1)[None, :]
    deprels = np.where(heads == 0, 0, np.where(heads < pos, 1, 2))
    deprels[~mask] = -100
    words = np.zeros((2, s, W, H), dtype=np.float32)
    words[1] = 2 + own[1:W + 1][None] + of_head[heads.clip(0)]
    words[0] = rng.normal(size=(s, W, H))
    words[:, ~mask] = 0
    root = np.stack([rng.normal(size=(s, H)), np.repeat(2 + own[:1], s, 0)]).astype(np.float32)
    return words, root, mask, heads, deprels


def make_parser(seed: int, *, dropout: float = 0.33, random_biaffine: bool = False):
    torch.manual_seed(seed)
    p = BiaffineParser(H, 3, arc_size=16, label_size=8, dropout=dropout)
    if random_biaffine:  # a "fine-tuned" parser: zero biaffine weights would score arcs alike
        with torch.no_grad():
            p.arc_weight.normal_()
            p.label_weight.normal_()
    return p


def state(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a: dict, b: nn.Module, atol: float = 0.0) -> bool:
    return all(torch.allclose(v, b.state_dict()[k], atol=atol, rtol=0) for k, v in a.items())


# --------------------------------------------------------------------------- references

def qa_logits_by_hand(head: nn.Linear, x, lengths):
    w = head.weight.detach().double().numpy()
    b = head.bias.detach().double().numpy()
    logits = x.astype(np.float64) @ w.T + b  # [K, N, T, 2]
    logits[:, np.arange(x.shape[2])[None, :] >= np.asarray(lengths)[:, None]] = -np.inf
    return logits[..., 0], logits[..., 1]


def qa_loss_by_hand(start_logits, end_logits, start, end, rows):
    """(CE(start) + CE(end)) / 2 over the rows' windows, softmax over real tokens (float64)."""
    def ce(logits, gold):
        lg = logits[rows]
        m = lg.max(-1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(lg - m).sum(-1))
        return (lse - lg[np.arange(len(rows)), gold[rows]]).mean()
    return (ce(start_logits, start) + ce(end_logits, end)) / 2


def parse_by_hand(parser: BiaffineParser, words, root, mask):
    """BiaffineParserModel's path: the parser's forward, then all_label_scores +
    decode_outputs, per layer (eval mode)."""
    parser.eval()
    out = []
    with torch.no_grad():
        for k in range(words.shape[0]):
            scores = parser(torch.as_tensor(words[k]), torch.as_tensor(mask),
                            root_states=torch.as_tensor(root[k]))
            out.append(decode_outputs(scores.arc, all_label_scores(parser, scores)))
    return np.stack([h for h, _ in out]), np.stack([lab for _, lab in out])


def parser_loss_by_hand(parser, words_k, root_k, mask, heads, deprels, rows):
    parser.eval()
    rows = torch.as_tensor(rows)
    with torch.no_grad():
        scores = parser(torch.as_tensor(words_k)[rows], torch.as_tensor(mask)[rows],
                        root_states=torch.as_tensor(root_k)[rows])
        return float(parser.loss(scores, torch.as_tensor(heads)[rows],
                                 torch.as_tensor(deprels)[rows]))


def holdout_of(groups, seed: int):
    return sh.holdout_rows(groups, 0.2, torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def qa():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(2, H))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    train = qa_data(rng, 80, u)
    test = qa_data(rng, 200, u)
    torch.manual_seed(1)
    init = nn.Linear(H, 2)  # a random head: nothing about the answer directions in it
    before = state(init)
    heads, record = sh.train_qa_heads(init, *train, settings=QA_FIT, seed=3)
    return dict(train=train, test=test, init=init, before=before, heads=heads, record=record)


@pytest.fixture(scope="module")
def parse():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(2, W + 1, H))
    train = parse_data(rng, 40, emb)
    test = parse_data(rng, 100, emb)
    init = make_parser(0)
    before = state(init)
    heads, record = sh.train_parser_heads(init, *train, settings=PARSE_FIT, seed=5)
    return dict(train=train, test=test, init=init, before=before, heads=heads, record=record)


# --------------------------------------------------------------------------- (1) the start

def test_qa_untrained_head_is_the_fine_tuned_function(qa):
    x, lengths, start, end, questions = qa["train"]
    init = qa["init"]
    ref_s, ref_e = qa_logits_by_hand(init, x, lengths)
    got_s, got_e = sh.apply_qa_heads([init], x, lengths)
    assert got_s.dtype == np.float32 and got_s.shape == (2, len(lengths), T)
    for got, ref in ((got_s, ref_s), (got_e, ref_e)):
        assert np.array_equal(np.isinf(got), np.isinf(ref))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # kept initial weights come back as the same function through the standardised coordinates
    kept, record = sh.train_qa_heads(init, x, lengths, start, end, questions, settings=WORSE,
                                     seed=3)
    assert record["best_epoch"] == [0, 0] and record["epochs"] == 1
    for got, ref in zip(sh.apply_qa_heads(kept, x, lengths), (ref_s, ref_e), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    # the initial held-out loss is the fine-tuned head's, whichever coordinates it trains in
    fit, hold = holdout_of(questions, 3)
    by_hand = qa_loss_by_hand(ref_s[1], ref_e[1], start, end, hold.numpy())
    raw = sh.train_qa_heads(init, x, lengths, start, end, questions, seed=3,
                            settings=HeadTraining(lr=50.0, max_epochs=1, standardize=False))[1]
    assert record["initial_loss"][1] == pytest.approx(by_hand, rel=1e-5)
    np.testing.assert_allclose(raw["initial_loss"], record["initial_loss"], rtol=1e-5)


def test_parser_untrained_head_is_the_fine_tuned_function(parse):
    words, root, mask, heads, deprels = parse["train"]
    init = make_parser(2, random_biaffine=True)
    ref_h, ref_l = parse_by_hand(copy.deepcopy(init), words, root, mask)
    init.train()  # apply decodes in eval mode and leaves the module's mode as it found it
    got_h, got_l = sh.apply_parser_heads([init], words, root, mask)
    assert init.training
    assert got_h.dtype == np.int64 and got_h.shape == (2, len(mask), W)
    assert np.array_equal(got_h, ref_h) and np.array_equal(got_l, ref_l)
    assert (got_h[:, ~mask] == -1).all() and (got_h[:, mask] >= 0).all()
    kept, record = sh.train_parser_heads(init, words, root, mask, heads, deprels,
                                         settings=WORSE, seed=5)
    assert record["best_epoch"] == [0, 0]
    init.eval()
    for k in range(2):
        with torch.no_grad():
            a = init(torch.as_tensor(words[k]), torch.as_tensor(mask),
                     root_states=torch.as_tensor(root[k]))
            b = kept[k](torch.as_tensor(words[k]), torch.as_tensor(mask),
                        root_states=torch.as_tensor(root[k]))
        fin = torch.isfinite(a.arc)
        assert torch.equal(fin, torch.isfinite(b.arc))
        torch.testing.assert_close(b.arc[fin], a.arc[fin], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b.label_dep, a.label_dep, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b.label_head, a.label_head, rtol=1e-4, atol=1e-4)
    got_h, got_l = sh.apply_parser_heads(kept, words, root, mask)
    assert np.array_equal(got_h, ref_h) and np.array_equal(got_l, ref_l)
    fit, hold = holdout_of(np.arange(len(mask)), 5)
    by_hand = parser_loss_by_hand(init, words[1], root[1], mask, heads, deprels, hold)
    raw = sh.train_parser_heads(init, words, root, mask, heads, deprels, seed=5,
                                settings=HeadTraining(lr=50.0, max_epochs=1,
                                                      standardize=False))[1]
    assert record["initial_loss"][1] == pytest.approx(by_hand, rel=1e-5)
    np.testing.assert_allclose(raw["initial_loss"], record["initial_loss"], rtol=1e-5)


# --------------------------------------------------------------------------- (2) learning

def test_qa_heads_learn_the_planted_answer_direction(qa):
    x, lengths, start, end, _ = qa["test"]
    s, e = sh.apply_qa_heads(qa["heads"], x, lengths)
    acc_start, acc_end = (s.argmax(-1) == start).mean(1), (e.argmax(-1) == end).mean(1)
    assert acc_start[1] >= 0.95 and acc_end[1] >= 0.95, (acc_start, acc_end)
    assert acc_start[0] < 0.5 and acc_end[0] < 0.5  # layer 0 carries no answer
    s0, e0 = sh.apply_qa_heads([qa["init"]], x, lengths)
    assert (s0.argmax(-1) == start).mean(1)[1] < 0.5  # the random start knew nothing
    rec = qa["record"]
    assert rec["best_epoch"][1] > 0 and rec["holdout_loss"][1] < 0.3 * rec["initial_loss"][1]


def test_qa_trained_heads_read_raw_features(qa):
    """The recorded held-out loss is the returned head's on raw features: the trained weights
    were mapped back out of the standardised coordinates."""
    x, lengths, start, end, questions = qa["train"]
    fit, hold = holdout_of(questions, 3)
    s, e = sh.apply_qa_heads(qa["heads"], x, lengths)
    for k in range(2):
        by_hand = qa_loss_by_hand(s[k].astype(np.float64), e[k].astype(np.float64), start, end,
                                  hold.numpy())
        assert qa["record"]["holdout_loss"][k] == pytest.approx(by_hand, rel=1e-4, abs=1e-5)


def test_parser_heads_learn_the_planted_trees(parse):
    words, root, mask, heads, deprels = parse["test"]
    pred_h, pred_l = sh.apply_parser_heads(parse["heads"], words, root, mask)
    uas = (pred_h == heads[None])[:, mask].mean(1)
    las = ((pred_h == heads[None]) & (pred_l == deprels[None]))[:, mask].mean(1)
    chain = (heads == np.arange(W)[None, :])[mask].mean()  # every word under its left neighbour
    assert uas[1] >= 0.9 and uas[1] > chain + 0.4, (uas, chain)
    assert las[1] >= 0.85, las
    assert uas[0] < chain + 0.2  # layer 0 is noise
    rec = parse["record"]
    assert rec["best_epoch"][1] > 0 and rec["holdout_loss"][1] < 0.5 * rec["initial_loss"][1]
    # the recorded held-out loss is the returned parser's on raw features
    words, root, mask, heads, deprels = parse["train"]
    fit, hold = holdout_of(np.arange(len(mask)), 5)
    by_hand = parser_loss_by_hand(parse["heads"][1], words[1], root[1], mask, heads, deprels,
                                  hold)
    assert rec["holdout_loss"][1] == pytest.approx(by_hand, rel=1e-4)


# --------------------------------------------------------------------------- (3) early stopping

def test_holdout_takes_whole_questions(qa):
    *_, questions = qa["train"]
    fit, hold = holdout_of(questions, 3)
    assert not set(questions[fit.numpy()]) & set(questions[hold.numpy()])
    assert sorted(fit.tolist() + hold.tolist()) == list(range(len(questions)))
    assert len(hold) >= round(0.2 * len(questions))
    assert (qa["record"]["n_fit"], qa["record"]["n_holdout"]) == (len(fit), len(hold))
    other = holdout_of(questions, 4)[1]
    assert not torch.equal(other, hold)  # the seed draws the split
    with pytest.raises(ConfigError, match="cannot be split"):
        sh.holdout_rows(np.zeros(20), 0.2, torch.Generator().manual_seed(0))


def test_records_and_init_untouched(qa, parse):
    for case, n in ((qa, 80), (parse, 40)):
        rec = case["record"]
        assert json.loads(json.dumps(rec)) == rec
        assert set(rec) == {"best_epoch", "epochs", "holdout_loss", "initial_loss", "n_fit",
                            "n_holdout"}
        assert rec["n_fit"] + rec["n_holdout"] == n
        assert all(0 <= b <= rec["epochs"] <= 60 for b in rec["best_epoch"])
        assert same_state(case["before"], case["init"])
        assert all(h is not case["init"] for h in case["heads"])
        assert case["heads"][0] is not case["heads"][1]
        assert not case["heads"][1].training  # returned for applying


def test_a_head_stops_patience_epochs_after_its_best(qa):
    x, lengths, start, end, questions = qa["train"]
    settings = HeadTraining(lr=0.05, batch_size=16, max_epochs=200, patience=3)
    _, rec = sh.train_qa_heads(qa["init"], x[:1], lengths, start, end, questions,
                               settings=settings, seed=3)
    assert rec["epochs"] < 200  # layer 0 is noise: its held-out loss stops falling
    assert rec["epochs"] == rec["best_epoch"][0] + 3


# --------------------------------------------------------------------------- (5) K heads

def test_qa_heads_jointly_equal_each_alone(qa):
    x, lengths, start, end, questions = qa["train"]
    for k in range(2):
        alone, rec = sh.train_qa_heads(qa["init"], x[k:k + 1], lengths, start, end, questions,
                                       settings=QA_FIT, seed=3)
        assert same_state(state(alone[0]), qa["heads"][k], atol=1e-6)
        assert rec["best_epoch"] == [qa["record"]["best_epoch"][k]]
        assert rec["holdout_loss"][0] == pytest.approx(qa["record"]["holdout_loss"][k],
                                                       rel=1e-6)


def test_parser_heads_jointly_equal_each_alone(parse):
    """Dropout included: each head's draws are seeded by ``seed``, not by its place in K."""
    words, root, mask, heads, deprels = parse["train"]
    alone, rec = sh.train_parser_heads(parse["init"], words[1:], root[1:], mask, heads,
                                       deprels, settings=PARSE_FIT, seed=5)
    assert same_state(state(alone[0]), parse["heads"][1], atol=1e-6)
    assert rec["best_epoch"] == [parse["record"]["best_epoch"][1]]
    state_before = torch.get_rng_state()
    sh.train_parser_heads(parse["init"], words[:1], root[:1], mask, heads, deprels,
                          settings=HeadTraining(max_epochs=1), seed=5)
    assert torch.equal(torch.get_rng_state(), state_before)  # the caller's RNG untouched


# --------------------------------------------------------------------------- (4) bad input

def test_qa_bad_input_names_the_shapes(qa):
    x, lengths, start, end, questions = qa["train"]
    init, fit = qa["init"], dict(settings=QA_FIT, seed=0)
    cases = [
        ((init, x[0], lengths, start, end, questions), r"\[80, 12, 12\]: need \[K, N, T, H\]"),
        ((init, x, lengths[:-1], start, end, questions), r"lengths \[79\]: need \[80\]"),
        ((init, x, lengths, start[:5], end, questions), r"start \[5\]: need \[80\]"),
        ((init, x, lengths, start, end, questions[:3]), r"questions \[3\]: need \[80\]"),
        ((init, x, lengths, lengths, end, questions), r"start\[0\] = \d+ is outside window 0"),
        ((init, x, lengths + 20, start, end, questions), r"lengths must be in 1..T = 12"),
        ((nn.Linear(H + 1, 2), x, lengths, start, end, questions), r"reads 13-dimensional"),
        ((nn.Linear(H, 3), x, lengths, start, end, questions), r"nn.Linear\(H, 2\)"),
    ]
    for args, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            sh.train_qa_heads(*args, **fit)
    bad = x.copy()
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN or inf; recompute"):
        sh.train_qa_heads(init, bad, lengths, start, end, questions, **fit)
    with pytest.raises(ConfigError, match="3 heads for 2 layers"):
        sh.apply_qa_heads([init] * 3, x, lengths)
    with pytest.raises(ConfigError, match="heads.HeadTraining"):
        sh.train_qa_heads(init, x, lengths, start, end, questions, settings={}, seed=0)


def test_parser_bad_input_names_the_shapes(parse):
    words, root, mask, heads, deprels = parse["train"]
    init, fit = parse["init"], dict(settings=PARSE_FIT, seed=0)
    gaps = mask.copy()
    gaps[0, 0] = False
    bad_head = heads.copy()
    bad_head[3, 0] = 1  # word 1 under itself
    bad_rel = deprels.copy()
    bad_rel[2, 1] = 7
    cases = [
        ((init, words[0], root, mask, heads, deprels), r"\[40, 6, 12\]: need \[K, S, W, H\]"),
        ((init, words, root[:, :5], mask, heads, deprels),
         r"root states \[2, 5, 12\] for word states \[2, 40, 6, 12\]: need \[2, 40, 12\]"),
        ((init, words, root, mask[:, :4], heads, deprels), r"mask \[40, 4\] .* need \[40, 6\]"),
        ((init, words, root, mask, heads[:3], deprels), r"heads \[3, 6\]: need \[40, 6\]"),
        ((init, words, root, gaps, heads, deprels), "sentence 0's mask has gaps"),
        ((init, words, root, mask, bad_head, deprels), "sentence 3, word 1: gold head 1"),
        ((init, words, root, mask, heads, bad_rel), r"sentence 2, word 2: relation 7; need 0..2"),
        ((make_parser(0).__class__(H + 2, 3, arc_size=16, label_size=8), words, root, mask,
          heads, deprels), "reads 14-dimensional"),
        ((nn.Linear(H, 2), words, root, mask, heads, deprels), "need a parsing.biaffine"),
    ]
    for args, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            sh.train_parser_heads(*args, **fit)
    with pytest.raises(ConfigError, match="3 heads for 2 layers"):
        sh.apply_parser_heads([init] * 3, words, root, mask)
