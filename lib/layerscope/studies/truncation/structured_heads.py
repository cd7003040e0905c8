"""TUNED and TUNEDORIG heads for the structured kinds: the extractive-QA start/end head and the
biaffine parser, retrained on layer k's states (Phang et al. 2021 §4).

Phang et al.'s TUNED line retrains the task head on layer k's states of the fine-tuned encoder
(the encoder frozen), TUNEDORIG the same on the pre-trained encoder's states, both starting
from the fine-tuned head's weights. ``heads.train_heads`` does it for the first-token, tagging
and token-pair heads; this module does it for

* extractive QA (``train_qa_heads``): ``AutoModelForQuestionAnswering``'s ``qa_outputs``,
  one Linear(H, 2) on every token of a window: start logits [..., 0], end logits [..., 1].
  Loss = (CE(start logits, gold start) + CE(end logits, gold end)) / 2, the mean over windows
  (transformers' ``BertForQuestionAnswering`` loss), each softmax over the window's real tokens
  (windows are padded to a common T here, so padding is masked out rather than scored);
* dependency parsing (``train_parser_heads``): ``parsing.biaffine.BiaffineParser`` on each
  word's (first sub-word's) state with ROOT = the sentence's first-token state at the same layer,
  as ``BiaffineParserModel.parse_head`` reads it; loss = the parser's own ``loss`` (arc CE over
  heads + label CE at the gold head, Dozat & Manning 2017 §2.2). Training runs with the head's
  dropout on, as fine-tuning trained it; held-out losses and ``apply_parser_heads`` run in eval
  mode, and decoding is the parser's own (Chu-Liu/Edmonds, one word under ROOT, each label the
  argmax at the chosen head: ``BiaffineParser.decode``, what ``BiaffineParserModel`` does).

The optimisation is ``heads.train_heads``'s (settings ``heads.HeadTraining``): Adam at
``lr``, minibatches of ``batch_size`` windows / sentences in a seeded shuffle per epoch
(``torch.Generator().manual_seed(seed)``, first drawn for the held-out split), a held-out
fraction ``holdout`` of whole questions / sentences (``holdout_rows``: no question's windows on
both sides), its loss measured before the first epoch and after each, the best weights kept,
a head stopped after ``patience`` epochs without a lower held-out loss, at most
``max_epochs``.

The K heads are trained one after another (each a small module; minibatches are whole tensors,
no per-example loops). Each head starts from a fresh generator with the same seed, and the
parser's dropout draws from the global generator re-seeded with ``seed`` per head (inside
``torch.random.fork_rng``, so the caller's random state is untouched): head k's trajectory is
exactly the one it follows when trained alone (tests compare K = 2 with K = 1).

Standardised coordinates (``HeadTraining.standardize``, see ``heads``' docstring for why: low
layers' states barely vary, and Adam on the raw head learns nothing there): each head trains
on z-scored features x' = (x - mu) / sd, mu and sd per dimension from the training split
(QA: the fit windows' real tokens; parser: the fit sentences' real words and ROOT states
together, as both pass through the same MLPs), sd 0 -> 1. The statistics are folded into the
first Linear that reads the features (QA: ``qa_outputs``; parser: the first Linear of each of
the four MLPs), W' = W diag(sd), b' = b + W mu, so every head starts as exactly the fine-tuned
function, and the trained weights are mapped back (W = W' diag(1/sd), b = b' - W mu): the
returned heads read raw features.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...devices import to_numpy
from ...errors import ConfigError
from ...parsing.biaffine import BiaffineParser
from .heads import HeadTraining

__all__ = ["train_qa_heads", "apply_qa_heads", "train_parser_heads", "apply_parser_heads",
           "holdout_rows"]

CHUNK = 256  # windows / sentences per forward pass outside training (bounds the memory)


# --------------------------------------------------------------------------- shared pieces

def holdout_rows(groups, holdout: float, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, held-out) row indices for early stopping: whole groups (``groups`` [n]: the
    question of each window, or one id per sentence) in a random order drawn from
    ``generator``, the smallest prefix of that order holding at least round(holdout * n)
    rows."""
    groups = np.asarray(groups)
    n = len(groups)
    n_hold = int(round(holdout * n))
    if n_hold < 1 or n - n_hold < 1:
        raise ConfigError(f"{n} training rows cannot be split {1 - holdout:.0%} / "
                          f"{holdout:.0%} for early stopping; use n_train >= 10")
    _, inverse = np.unique(groups, return_inverse=True)
    inverse = torch.as_tensor(inverse.reshape(-1), dtype=torch.long)
    n_groups = int(inverse.max()) + 1
    order = torch.randperm(n_groups, generator=generator)
    reached = torch.cumsum(torch.bincount(inverse, minlength=n_groups)[order], 0) >= n_hold
    taken = order[: int(torch.nonzero(reached)[0, 0]) + 1]
    held = torch.isin(inverse, taken)
    if held.all():
        raise ConfigError(f"{n} training rows in {n_groups} questions/sentences cannot be "
                          f"split for early stopping (one group holds most rows); use more "
                          f"training examples")
    return torch.nonzero(~held)[:, 0], torch.nonzero(held)[:, 0]


def _layer(x, k: int) -> torch.Tensor:
    """Layer k's features as a float32 CPU tensor (a copy of numpy arrays, which may be
    read-only memory maps)."""
    v = x[k]
    if torch.is_tensor(v):
        return v.detach().float().cpu()
    return torch.from_numpy(np.array(v, dtype=np.float32))


def _finite(v: torch.Tensor, what: str, k: int) -> torch.Tensor:
    if not torch.isfinite(v).all():
        raise ConfigError(f"{what} of layer {k} hold NaN or inf; recompute the states "
                          f"(a model in half precision may overflow: use float32)")
    return v


def _ints(a, name: str, shape: tuple) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a))
    if tuple(t.shape) != shape:
        raise ConfigError(f"{name} {list(t.shape)}: need {list(shape)}, one per row of the "
                          f"features")
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise ConfigError(f"{name} must be whole numbers, got {t.dtype} values such as "
                          f"{float(t[t != t.round()][0])}")
    return t.long()


def _check_settings(settings) -> None:
    if not isinstance(settings, HeadTraining):
        raise ConfigError(f"settings must be a heads.HeadTraining, got {type(settings).__name__}")


def _mean_sd(blocks: Callable[[], Iterator[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and sd (float64 sums, two passes) of the rows of ``blocks()``'s [m, H]
    tensors; sd 0 (a constant dimension) -> 1."""
    total, s = 0, None
    for v in blocks():
        v = v.double()
        s = v.sum(0) if s is None else s + v.sum(0)
        total += len(v)
    mu = s / total
    ss = sum(((v.double() - mu) ** 2).sum(0) for v in blocks())
    sd = (ss / max(total - 1, 1)).sqrt()  # the unbiased sd, as heads.train_heads
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    return mu.float(), sd.float()


def _fold(linears: list[nn.Linear], mu: torch.Tensor, sd: torch.Tensor) -> None:
    """Read z = (x - mu) / sd instead of x, same function: W' = W diag(sd), b' = b + W mu."""
    with torch.no_grad():
        for lin in linears:
            lin.bias += lin.weight @ mu
            lin.weight *= sd


def _unfold(linears: list[nn.Linear], mu: torch.Tensor, sd: torch.Tensor) -> None:
    """Back to raw features: W = W' diag(1/sd), b = b' - W mu."""
    with torch.no_grad():
        for lin in linears:
            lin.weight /= sd
            lin.bias -= lin.weight @ mu


def _z(v: torch.Tensor, stats) -> torch.Tensor:
    return v if stats is None else (v - stats[0]) / stats[1]


def _fit_head(head: nn.Module, params: list[nn.Parameter],
              loss_of: Callable[[torch.Tensor], tuple[torch.Tensor, int]],
              fit: torch.Tensor, hold: torch.Tensor, settings: HeadTraining,
              g: torch.Generator) -> dict:
    """Adam with early stopping on the held-out rows (see the module docstring); leaves the
    best held-out weights in ``head`` (eval mode). ``loss_of(rows)`` -> (mean loss over the
    rows' units, number of units: windows or real words), so the held-out loss, computed in
    chunks, is the mean over all held-out units."""

    def held_out() -> float:
        head.eval()
        with torch.no_grad():
            parts = [loss_of(hold[s:s + CHUNK]) for s in range(0, len(hold), CHUNK)]
        return float(sum(loss.double() * n for loss, n in parts) / sum(n for _, n in parts))

    opt = torch.optim.Adam(params, lr=settings.lr)
    best = initial = held_out()
    best_state = copy.deepcopy(head.state_dict())
    best_epoch = wait = epoch = 0
    while epoch < settings.max_epochs and wait < settings.patience:
        epoch += 1
        head.train()
        order = fit[torch.randperm(len(fit), generator=g)]
        for s in range(0, len(order), settings.batch_size):
            opt.zero_grad(set_to_none=True)
            loss_of(order[s:s + settings.batch_size])[0].backward()
            opt.step()
        loss = held_out()
        if loss < best:  # NaN never counts as better
            best, best_epoch, wait = loss, epoch, 0
            best_state = copy.deepcopy(head.state_dict())
        else:
            wait += 1
    head.load_state_dict(best_state)
    head.eval()
    return {"best_epoch": best_epoch, "epochs": epoch, "holdout_loss": best,
            "initial_loss": initial}


def _record(per_head: list[dict], n_fit: int, n_hold: int) -> dict:
    return {"best_epoch": [int(r["best_epoch"]) for r in per_head],
            "epochs": max(int(r["epochs"]) for r in per_head),
            "holdout_loss": [float(r["holdout_loss"]) for r in per_head],
            "initial_loss": [float(r["initial_loss"]) for r in per_head],
            "n_fit": int(n_fit), "n_holdout": int(n_hold)}


# --------------------------------------------------------------------------- extractive QA

def _check_qa_head(head, width: int | None, what: str) -> None:
    if not isinstance(head, nn.Linear) or head.out_features != 2:
        raise ConfigError(f"{what}: need the QA model's qa_outputs, an nn.Linear(H, 2) (start, "
                          f"end logits), got {head!r}")
    if width is not None and head.in_features != width:
        raise ConfigError(f"{what} reads {head.in_features}-dimensional states but the "
                          f"features are {width}-dimensional; pass the states of the model the "
                          f"head belongs to")


def _qa_shapes(x, lengths) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor]:
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ConfigError(f"QA features {list(shape)}: need [K, N, T, H] (layer k's final "
                          f"states of N windows of T tokens)")
    K, N, T, _ = shape
    if K < 1 or N < 1:
        raise ConfigError(f"QA features {list(shape)}: need at least one layer and one window")
    lengths = _ints(lengths, "lengths", (N,))
    if ((lengths < 1) | (lengths > T)).any():
        bad = int(torch.nonzero((lengths < 1) | (lengths > T))[0, 0])
        raise ConfigError(f"window {bad} has length {int(lengths[bad])}; lengths must be in "
                          f"1..T = {T} (the features' token axis)")
    real = torch.arange(T)[None, :] < lengths[:, None]
    return shape, lengths, real


def _qa_loss(logits: torch.Tensor, real: torch.Tensor, start: torch.Tensor,
             end: torch.Tensor) -> torch.Tensor:
    """BertForQuestionAnswering's loss, each softmax over the window's real tokens."""
    logits = logits.masked_fill(~real[..., None], float("-inf"))
    return (F.cross_entropy(logits[..., 0], start) + F.cross_entropy(logits[..., 1], end)) / 2


def train_qa_heads(init: nn.Linear, x, lengths, start, end, questions, *,
                   settings: HeadTraining, seed: int) -> tuple[list[nn.Linear], dict]:
    """Retrain the QA head ``init`` on each of K layers' states (module docstring).

    Args:
        init: the fine-tuned ``qa_outputs`` Linear(H, 2); left untouched.
        x: [K, N, T, H] layer k's final states of N training windows (zero past each window's
            ``lengths[n]`` tokens).
        lengths: [N] tokens per window.
        start, end: [N] gold token positions per window (the CLS position when the answer is
            not in the window: the recipe's target).
        questions: [N] the question of each window (ids or strings): the held-out slice takes
            whole questions.
        settings: Adam, minibatch and early-stopping settings (``heads.HeadTraining``).
        seed: the held-out split and the minibatch order.

    Returns:
        K trained copies (best held-out weights each, eval mode) and a JSON-ready record
        {"best_epoch": [K], "epochs", "holdout_loss": [K], "initial_loss": [K], "n_fit",
        "n_holdout"} (``epochs``: the most any head ran; losses per window).
    """
    _check_settings(settings)
    (K, N, T, H), lengths, real = _qa_shapes(x, lengths)
    _check_qa_head(init, H, "init")
    start, end = _ints(start, "start", (N,)), _ints(end, "end", (N,))
    for name, pos in (("start", start), ("end", end)):
        out = (pos < 0) | (pos >= lengths)
        if out.any():
            bad = int(torch.nonzero(out)[0, 0])
            raise ConfigError(f"{name}[{bad}] = {int(pos[bad])} is outside window {bad}'s "
                              f"{int(lengths[bad])} tokens; gold positions must index the "
                              f"window's tokens (the CLS position when the answer is elsewhere)")
    if len(np.asarray(questions)) != N or np.asarray(questions).ndim != 1:
        raise ConfigError(f"questions {list(np.asarray(questions).shape)}: need [{N}], the "
                          f"question of each window")
    heads, per_head = [], []
    for k in range(K):
        xk = _finite(_layer(x, k), "QA features", k)
        g = torch.Generator().manual_seed(seed)
        fit, hold = holdout_rows(questions, settings.holdout, g)
        head = copy.deepcopy(init).float().cpu().requires_grad_(True)
        stats = None
        if settings.standardize:
            def blocks(xk=xk, fit=fit):
                for s in range(0, len(fit), CHUNK):
                    r = fit[s:s + CHUNK]
                    yield xk[r][real[r]]
            stats = _mean_sd(blocks)
            _fold([head], *stats)

        def loss_of(rows, xk=xk, head=head, stats=stats):
            t = int(lengths[rows].max())  # the minibatch's longest window: padding adds nothing
            logits = head(_z(xk[rows, :t], stats))
            return _qa_loss(logits, real[rows, :t], start[rows], end[rows]), len(rows)

        per_head.append(_fit_head(head, list(head.parameters()), loss_of, fit, hold,
                                  settings, g))
        if stats is not None:
            _unfold([head], *stats)
        heads.append(head)
    return heads, _record(per_head, len(fit), len(hold))  # the same split for every k


def _layer_heads(heads, K: int) -> list:
    heads = list(heads)
    if len(heads) == 1:
        heads = heads * K
    if len(heads) != K:
        raise ConfigError(f"{len(heads)} heads for {K} layers of features; pass one head per "
                          f"layer (or one head for every layer)")
    return heads


def apply_qa_heads(heads: list[nn.Linear], x, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits [K, N, T] (float32) of head k on x[k] [K, N, T, H], -inf past each
    window's ``lengths[n]`` tokens. One head is applied to every layer (UNTUNED)."""
    (K, N, T, H), lengths, real = _qa_shapes(x, lengths)
    heads = _layer_heads(heads, K)
    start = np.full((K, N, T), -np.inf, dtype=np.float32)
    end = start.copy()
    for k, head in enumerate(heads):
        _check_qa_head(head, H, f"head {k}")
        xk = _layer(x, k)
        w, b = head.weight.detach().float().cpu(), head.bias.detach().float().cpu()
        with torch.no_grad():
            logits = F.linear(xk, w, b).masked_fill(~real[..., None], float("-inf"))
        start[k], end[k] = to_numpy(logits[..., 0]), to_numpy(logits[..., 1])
    return start, end


# --------------------------------------------------------------------------- dependency parsing

def _first_linears(parser: BiaffineParser) -> list[nn.Linear]:
    """The layers that read the word (and ROOT) states: each MLP's Linear."""
    return [parser.arc_dep.linear, parser.arc_head.linear, parser.label_dep.linear,
            parser.label_head.linear]


def _check_parser(parser, width: int, what: str) -> None:
    if not isinstance(parser, BiaffineParser):
        raise ConfigError(f"{what}: need a parsing.biaffine.BiaffineParser (the model's "
                          f".parser), got {type(parser).__name__}")
    if parser.arc_dep.linear.in_features != width:
        raise ConfigError(f"{what} reads {parser.arc_dep.linear.in_features}-dimensional "
                          f"states but the word states are {width}-dimensional; pass the "
                          f"states of the model the parser belongs to")


def _parser_shapes(words, root, mask) -> tuple[tuple[int, ...], torch.Tensor]:
    shape, rshape = tuple(words.shape), tuple(root.shape)
    if len(shape) != 4:
        raise ConfigError(f"word states {list(shape)}: need [K, S, W, H] (layer k's states of "
                          f"S sentences' W words)")
    K, S, W, H = shape
    if K < 1 or S < 1:
        raise ConfigError(f"word states {list(shape)}: need at least one layer and one sentence")
    if rshape != (K, S, H):
        raise ConfigError(f"root states {list(rshape)} for word states {list(shape)}: need "
                          f"[{K}, {S}, {H}], each sentence's first-token state per layer")
    mask = torch.as_tensor(np.asarray(mask))
    if tuple(mask.shape) != (S, W):
        raise ConfigError(f"mask {list(mask.shape)} for word states {list(shape)}: need "
                          f"[{S}, {W}], True at each sentence's real words")
    mask = mask.bool()
    n = mask.sum(1)
    if (n < 1).any():
        raise ConfigError(f"sentence {int(torch.nonzero(n < 1)[0, 0])} has no word (mask all "
                          f"False); drop empty sentences")
    prefix = torch.arange(W)[None, :] < n[:, None]
    if not torch.equal(prefix, mask):
        bad = int(torch.nonzero((prefix != mask).any(1))[0, 0])
        raise ConfigError(f"sentence {bad}'s mask has gaps; padding must come after the real "
                          f"words (mask = [True] * n + [False] * rest)")
    return shape, mask


def _parser_rows(parser: BiaffineParser, words_k: torch.Tensor, root_k: torch.Tensor,
                 mask: torch.Tensor, rows: torch.Tensor, stats):
    """The parser's scores on the given sentences, trimmed to their longest (padding words
    change no real word's scores: they are masked as heads and never dependents)."""
    w = int(mask[rows].sum(1).max())
    m = mask[rows, :w]
    return parser(_z(words_k[rows, :w], stats), m, root_states=_z(root_k[rows], stats)), w


def train_parser_heads(init: BiaffineParser, words, root, mask, heads, deprels, *,
                       settings: HeadTraining, seed: int) -> tuple[list[BiaffineParser], dict]:
    """Retrain the biaffine parser ``init`` on each of K layers' word states (module docstring).

    Args:
        init: the fine-tuned ``BiaffineParser`` (``BiaffineParserModel.parser``); untouched.
        words: [K, S, W, H] layer k's states of each sentence's words (each word's first
            sub-word, after the family's final_states), zero at padding words.
        root: [K, S, H] each sentence's first-token state at layer k (the parser's ROOT).
        mask: [S, W] bool, True at real words (padding after them).
        heads: [S, W] gold heads (0 = ROOT, else 1-based), anything at padding.
        deprels: [S, W] gold relation ids (-100 at padding).
        settings, seed: as ``train_qa_heads``; the held-out slice takes whole sentences.

    Returns:
        K trained copies (best held-out weights each, eval mode) and the record of
        ``train_qa_heads`` (losses: the parser's loss over the held-out sentences' words).
    """
    _check_settings(settings)
    (K, S, W, H), mask = _parser_shapes(words, root, mask)
    _check_parser(init, H, "init")
    gold = _ints(heads, "heads", (S, W))
    labels = _ints(deprels, "deprels", (S, W))
    n = mask.sum(1, keepdim=True)
    position = torch.arange(1, W + 1)[None, :]
    for name, wrong, need in (
            ("gold head", mask & ((gold < 0) | (gold > n) | (gold == position)),
             "0 (ROOT) .. the sentence's length, not the word itself"),
            ("relation", mask & ((labels < 0) | (labels >= init.n_labels)),
             f"0..{init.n_labels - 1} (the parser's relations)")):
        if wrong.any():
            s, w = (int(i) for i in torch.nonzero(wrong)[0])
            value = int((gold if name == "gold head" else labels)[s, w])
            raise ConfigError(f"sentence {s}, word {w + 1}: {name} {value}; need {need}")
    out, per_head = [], []
    for k in range(K):
        words_k = _finite(_layer(words, k), "word states", k)
        root_k = _finite(_layer(root, k), "root states", k)
        g = torch.Generator().manual_seed(seed)
        fit, hold = holdout_rows(np.arange(S), settings.holdout, g)
        parser = copy.deepcopy(init).float().cpu().requires_grad_(True)
        stats = None
        if settings.standardize:  # real words and ROOTs pass through the same MLPs
            def blocks(words_k=words_k, root_k=root_k, fit=fit):
                yield words_k[fit][mask[fit]]
                yield root_k[fit]
            stats = _mean_sd(blocks)
            _fold(_first_linears(parser), *stats)

        def loss_of(rows, parser=parser, words_k=words_k, root_k=root_k, stats=stats):
            scores, w = _parser_rows(parser, words_k, root_k, mask, rows, stats)
            return (parser.loss(scores, gold[rows, :w], labels[rows, :w]),
                    int(mask[rows].sum()))

        # the learned root vector is unused: ROOT is layer k's first-token state
        params = [p for name, p in parser.named_parameters() if name != "root"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # dropout: the same draws whether trained alone or not
            per_head.append(_fit_head(parser, params, loss_of, fit, hold, settings, g))
        if stats is not None:
            _unfold(_first_linears(parser), *stats)
        out.append(parser)
    return out, _record(per_head, len(fit), len(hold))  # the same split for every k


def apply_parser_heads(heads: list[BiaffineParser], words, root, mask
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Decoded trees of parser k on layer k (eval mode): pred_heads [K, S, W] and pred_labels
    [K, S, W] int64, -1 at padding words (``BiaffineParser.decode``: Chu-Liu/Edmonds with one
    word under ROOT, each label the argmax at the chosen head). One parser is applied to every
    layer (UNTUNED)."""
    (K, S, W, H), mask = _parser_shapes(words, root, mask)
    parsers = _layer_heads(heads, K)
    pred_heads = np.full((K, S, W), -1, dtype=np.int64)
    pred_labels = pred_heads.copy()
    for k, parser in enumerate(parsers):
        _check_parser(parser, H, f"head {k}")
        words_k, root_k = _layer(words, k), _layer(root, k)
        was_training = parser.training
        parser.eval()
        try:
            for s in range(0, S, CHUNK):
                rows = torch.arange(s, min(s + CHUNK, S))
                with torch.no_grad():
                    scores, w = _parser_rows(parser, words_k, root_k, mask, rows, None)
                h, lab = parser.decode(scores, algorithm="mst", single_root=True)
                pred_heads[k, s:s + len(rows), :w], pred_labels[k, s:s + len(rows), :w] = h, lab
        finally:
            parser.train(was_training)
    return pred_heads, pred_labels
