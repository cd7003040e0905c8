"""The task head on layer k's features, and many copies of it trained at once (TUNED,
TUNEDORIG of Phang et al. 2021 §4), for every task kind (``studies.common.task_heads`` gives
the features).

Every supported sequence head is the same two-layer function of the first-token vector x [H]:

    logits = act(x W1 + b1) W2 + b2,  W1 [H, H], W2 [H, C]

* BERT / MiniLM: the pooler (dense + tanh on [CLS]) then ``classifier``;
* ALBERT: ``pooler`` + ``pooler_activation`` (tanh) then ``classifier``;
* RoBERTa: ``classifier.dense`` + tanh + ``classifier.out_proj`` on ``<s>``;
* ELECTRA: ``classifier.dense`` + GELU + ``classifier.out_proj`` on the first token;
* DistilBERT: ``pre_classifier`` + ReLU then ``classifier``
(``EncoderAdapter.first_token_head`` names the two layers for each family).

(dropout sits between them in training; it is the identity in eval mode, and head training
here uses none.) ``head_params`` reads W1, b1, W2, b2 from a task model; tests check that
``apply`` on hidden states equals the model's own head (``EncoderAdapter.head``).

The other kinds' heads:

* multiple choice: the same two-layer form with one output (W2 [H, 1]) applied to each
  choice's first-token vector, x [n, choices, H] -> one score per choice, softmax over the
  choices (``...ForMultipleChoice``; RoBERTa's reads the pooler, ELECTRA's its
  ``sequence_summary``: ``EncoderAdapter.choice_first_token_head``);
* tagging: one linear layer x W2 + b2 (W2 [H, C]) on each word's first sub-word (the token
  classifier; W1 = b1 = None);
* token pair: one linear layer on [h_head; h_dep] (W2 [2H, C]), Zhou & Srikumar 2022's DEP
  probe form and the pair model's ``classifier``.

``train_heads`` trains K heads, one per layer, as one batched model: weights stacked along a
leading K axis, ``torch.baddbmm`` for both layers, one Adam over the stacked tensors. The loss
is the sum over heads of each head's mean loss, so each head's gradient is its own, and Adam is
elementwise: head k follows exactly the trajectory it would follow alone (tests compare with
K = 1). All heads see the same minibatches (one seeded shuffle per epoch). Early stopping per
head on a held-out slice of the training features: after every epoch (and before the first)
each head's held-out loss is measured, its best weights kept; a head stops after ``patience``
epochs without improvement, and the loop ends when every head has stopped.

Standardised coordinates (``HeadTraining.standardize``, on by default): the first-token vector
of low layers barely varies across sentences (minilm-l6 on movies: per-dimension std ~1e-3
against a norm of ~8 in blocks 1-3), so Adam on the raw head learns nothing there in 50 epochs
(TUNED stayed at the majority class). Each head is therefore trained on z-scored features
x' = (x - mu) / sd (training statistics of its own layer) with W1' = diag(sd) W1 and
b1' = b1 + mu W1, which is the *same function* at the start (TUNED still starts from the
fine-tuned head) and the same family of heads; only the optimiser's coordinates change. The
trained weights are mapped back to raw features (W1 = diag(1/sd) W1', b1 = b1' - mu W1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...adapters import EncoderAdapter
from ...devices import to_numpy
from ...errors import ConfigError

ACTIVATIONS = {"tanh": torch.tanh, "gelu": F.gelu,  # ELECTRA: get_activation("gelu") = exact
               "relu": torch.relu}  # DistilBERT's head


@dataclass(frozen=True)
class HeadParams:
    """K stacked heads: two-layer act(x W1 + b1) W2 + b2 with w1 [K, H, H], b1 [K, H],
    w2 [K, H, C], b2 [K, C] and ``activation`` "tanh", "gelu" or "relu"; or one linear layer
    x W2 + b2 (w1 = b1 = None, ``activation`` None: token and token-pair heads)."""

    w1: torch.Tensor | None
    b1: torch.Tensor | None
    w2: torch.Tensor
    b2: torch.Tensor
    activation: str | None

    @property
    def k(self) -> int:
        return self.w2.shape[0]

    @property
    def linear(self) -> bool:
        return self.w1 is None

    def _tensors(self) -> tuple:
        return self.w1, self.b1, self.w2, self.b2

    def repeat(self, k: int) -> HeadParams:
        """K copies of a single head (the common initialisation)."""
        if self.k != 1:
            raise ValueError(f"repeat() needs a single head, got {self.k}")
        return HeadParams(*(None if t is None else t.expand(k, *t.shape[1:]).clone()
                            for t in self._tensors()), self.activation)

    def select(self, i: int) -> HeadParams:
        """Head i alone (K = 1)."""
        return HeadParams(*(None if t is None else t[i:i + 1].clone() for t in self._tensors()),
                          self.activation)


def _linear_pair(model: nn.Module, ad: EncoderAdapter, kind: str
                 ) -> tuple[nn.Linear, str, nn.Linear]:
    if kind == "multiple_choice":
        return ad.choice_first_token_head()
    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise ConfigError(
            f"{type(model).__name__} has no sequence-classification head on the first token, so "
            f"head training (TUNED/TUNEDORIG) is undefined; load a task model (models."
            f"load_for_task or a fine-tuned checkpoint)")
    return ad.first_token_head()


def _copies(*ts) -> list:
    """float32 CPU copies with a leading K = 1 axis, no gradient link (fit where features are)."""
    return [None if t is None else t.detach().float().cpu().clone()[None] for t in ts]


def head_params(model: nn.Module) -> HeadParams:
    """The model's own head as ``HeadParams`` with K = 1 (float32 copies, no gradient link):
    the sequence or multiple-choice head as act(x W1 + b1) W2 + b2, the token classifier or the
    token-pair classifier as x W2 + b2 (the kind from the model, ``EncoderAdapter``)."""
    if not hasattr(model, "classifier"):
        raise ConfigError(f"{type(model).__name__} has no task head; load a task model "
                          f"(models.load_for_task or a fine-tuned checkpoint)")
    ad = EncoderAdapter(model)
    kind = ad.model_head_kind
    if kind in ("token", "token_pair"):
        out = ad.token_classifier() if kind == "token" else model.classifier
        w2, b2 = _copies(out.weight.T, out.bias)  # nn.Linear stores weight [out, in]
        return HeadParams(None, None, w2, b2, None)
    dense, act, out = _linear_pair(model, ad, kind)
    # nn.Linear stores weight [out, in]: x W1 needs its transpose
    w1, b1, w2, b2 = _copies(dense.weight.T, dense.bias, out.weight.T, out.bias)
    return HeadParams(w1, b1, w2, b2, act)


def _features(x) -> torch.Tensor:
    """float32 tensor of features (a copy of read-only arrays such as cached memory maps)."""
    return x.float() if torch.is_tensor(x) else torch.from_numpy(np.array(x, dtype=np.float32))


def _check_shapes(params: HeadParams, x: torch.Tensor) -> None:
    width = (params.w2 if params.linear else params.w1).shape[1]
    if x.ndim not in (3, 4) or x.shape[-1] != width:
        raise ConfigError(f"features {list(x.shape)}: need [K, n, {width}] (multiple choice "
                          f"[K, n, choices, {width}]), {width} the head's input width")
    if x.ndim == 4 and params.w2.shape[-1] != 1:
        raise ConfigError(f"choice features {list(x.shape)} need a head with one output per "
                          f"choice, not {params.w2.shape[-1]}")


def apply(params: HeadParams, x) -> torch.Tensor:
    """Logits of head k on features x[k]: x [K, n, H] -> [K, n, C] (multiple choice: x
    [K, n, choices, H] -> [K, n, choices]; float32, no gradient); a single head (K = 1) is
    applied to every x[k]."""
    x = _features(x)
    if params.k == 1 and x.shape[0] != 1:
        params = params.repeat(x.shape[0])
    _check_shapes(params, x)
    with torch.no_grad():
        return _forward(*params._tensors(), params.activation, x)


def _forward(w1, b1, w2, b2, activation: str | None, x: torch.Tensor) -> torch.Tensor:
    """x [K, n, H] (or [K, n, choices, H]) -> [K, n, C] (or [K, n, choices]: one output)."""
    K, lead = x.shape[0], x.shape[1:-1]
    h = x.reshape(K, -1, x.shape[-1])
    if w1 is not None:
        h = ACTIVATIONS[activation](torch.baddbmm(b1[:, None, :], h, w1))
    out = torch.baddbmm(b2[:, None, :], h, w2)
    out = out.reshape(K, *lead, out.shape[-1])
    return out[..., 0] if x.ndim == 4 else out


@dataclass(frozen=True)
class HeadTraining:
    """Head-training settings: Adam learning rate, minibatch size, at most ``max_epochs`` epochs,
    early stopping after ``patience`` epochs without a lower held-out loss, ``holdout`` fraction
    of the training features held out for it."""

    lr: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 50
    patience: int = 5
    holdout: float = 0.2
    standardize: bool = True

    def __post_init__(self):
        if not (self.lr > 0 and self.batch_size >= 1 and self.max_epochs >= 1
                and self.patience >= 1 and 0 < self.holdout < 1):
            raise ConfigError(f"head training settings {self}: need head_lr > 0, "
                              f"head_batch_size >= 1, head_max_epochs >= 1, head_patience >= 1 "
                              f"and 0 < head_holdout < 1 (defaults 1e-3, 64, 50, 5, 0.2)")


@dataclass(frozen=True)
class HeadFit:
    """Trained heads: ``params`` (best held-out weights per head), ``best_epoch`` [K] (0 = the
    initial weights were best), ``holdout_loss`` [K] at that epoch, ``initial_loss`` [K] held-out
    loss of the initial weights, ``epochs`` run, ``n_fit``/``n_holdout`` examples."""

    params: HeadParams
    best_epoch: np.ndarray
    holdout_loss: np.ndarray
    initial_loss: np.ndarray
    epochs: int
    n_fit: int
    n_holdout: int


def _loss(logits: torch.Tensor, y: torch.Tensor, regression: bool) -> torch.Tensor:
    """Per-head mean loss: logits [K, b, C], y [b] -> [K]."""
    if regression:
        return ((logits[..., 0] - y) ** 2).mean(-1)
    K, b, C = logits.shape
    return F.cross_entropy(logits.reshape(K * b, C), y.repeat(K),
                           reduction="none").reshape(K, b).mean(-1)


def _holdout(n: int, n_hold: int, groups, g: torch.Generator) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
    """(fit, held-out) row indices: a seeded random ``n_hold`` rows, or, with ``groups`` [n]
    (the sentence of each word), whole groups until ``n_hold`` rows are held out (so words of
    one sentence never sit on both sides of the early-stopping split)."""
    if groups is None:
        perm = torch.randperm(n, generator=g)
        return perm[n_hold:], perm[:n_hold]
    groups = torch.as_tensor(np.asarray(groups), dtype=torch.long)
    if groups.shape != (n,):
        raise ConfigError(f"groups: {list(groups.shape)} for {n} training rows")
    ids = torch.unique(groups)
    order = ids[torch.randperm(len(ids), generator=g)]
    sizes = torch.bincount(groups)[order]
    take = order[: int(torch.searchsorted(torch.cumsum(sizes, 0), n_hold)) + 1]
    held = torch.isin(groups, take)
    if held.all() or not held.any():
        raise ConfigError(f"{len(ids)} training sentences cannot be split for early stopping; "
                          f"use n_train >= 10")
    return torch.nonzero(~held)[:, 0], torch.nonzero(held)[:, 0]


def train_heads(init: HeadParams, x, y, *, regression: bool,
                settings: HeadTraining = HeadTraining(), seed: int = 0,
                groups=None) -> HeadFit:
    """Train head k on features x[k], all K at once (see module docstring).

    Args:
        init: K heads, or one head used for every k (``repeat``).
        x: [K, n, H] training features (float32), e.g. layer-k CLS states of n examples
            (multiple choice: [K, n, choices, H], one score per choice, cross-entropy over the
            choices).
        y: [n] class ids (int; multiple choice: the gold choice) or regression targets (float).
        regression: MSE loss on logit 0 (else cross-entropy).
        seed: the holdout split and the minibatch order.
        groups: [n] the sentence of each row (token tasks): the holdout takes whole sentences.
    """
    x = _features(x)
    K, n = x.shape[:2]
    init = init.repeat(K) if init.k == 1 and K != 1 else init
    if init.k != K:
        raise ConfigError(f"{init.k} initial heads for {K} feature sets")
    _check_shapes(init, x)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float32 if regression else torch.long)
    n_hold = int(round(settings.holdout * n))
    if n_hold < 1 or n - n_hold < 1:
        raise ConfigError(f"{n} training examples cannot be split {1 - settings.holdout:.0%} / "
                          f"{settings.holdout:.0%} for early stopping; use n_train >= 10")
    g = torch.Generator().manual_seed(seed)
    fit, hold = _holdout(n, n_hold, groups, g)
    w1, b1, w2, b2 = init._tensors()
    if settings.standardize:  # train in standardised coordinates, same function (see above)
        flat = x[:, fit].reshape(K, -1, x.shape[-1])  # choices pooled with their examples
        mu, sd = flat.mean(1), flat.std(1)  # [K, H]
        sd = torch.where(sd > 0, sd, torch.ones_like(sd))
        shape = (K,) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        x = (x - mu.reshape(shape)) / sd.reshape(shape)
        if init.linear:  # the first (only) layer is W2
            b2 = b2 + torch.bmm(mu[:, None], w2)[:, 0]
            w2 = w2 * sd[:, :, None]
        else:
            b1 = b1 + torch.bmm(mu[:, None], w1)[:, 0]
            w1 = w1 * sd[:, :, None]
    # multiple choice scores each choice with the same head and takes a softmax over the
    # choices: the output bias b2 (one number) shifts every choice's score alike, so it has no
    # gradient in exact arithmetic, and Adam would turn float noise in it into lr-sized steps
    # (Adam normalises the gradient): it stays as it is
    cur = [None if t is None else t.clone() for t in (w1, b1, w2, b2)]
    train = [i for i, t in enumerate(cur) if t is not None and not (x.ndim == 4 and i == 3)]
    for i in train:
        cur[i].requires_grad_(True)
    first = 2 if init.linear else 0  # the layer that reads the (standardised) features

    def forward(rows: torch.Tensor) -> torch.Tensor:
        return _forward(*cur, init.activation, x[:, rows])

    opt = torch.optim.Adam([cur[i] for i in train], lr=settings.lr)

    def held_out() -> torch.Tensor:
        with torch.no_grad():
            return _loss(forward(hold), y[hold], regression)

    best_loss = held_out()
    initial = best_loss.clone()
    best = [None if t is None else t.detach().clone() for t in cur]
    best_epoch = torch.zeros(K, dtype=torch.long)
    wait = torch.zeros(K, dtype=torch.long)
    active = torch.ones(K, dtype=torch.bool)
    epoch = 0
    while epoch < settings.max_epochs and active.any():
        epoch += 1
        order = fit[torch.randperm(len(fit), generator=g)]
        for s in range(0, len(order), settings.batch_size):
            b = order[s:s + settings.batch_size]
            opt.zero_grad(set_to_none=True)
            _loss(forward(b), y[b], regression).sum().backward()
            opt.step()
        loss = held_out()
        better = active & (loss < best_loss)
        for i in train:
            best[i][better] = cur[i].detach()[better]
        best_loss = torch.where(better, loss, best_loss)
        best_epoch[better] = epoch
        wait = torch.where(better, torch.zeros_like(wait), wait + 1)
        active &= wait < settings.patience
    if settings.standardize:  # back to the raw features: x' W' = (x - mu) / sd W'
        best[first] = best[first] / sd[:, :, None]
        best[first + 1] = best[first + 1] - torch.bmm(mu[:, None], best[first])[:, 0]
    params = HeadParams(*best, init.activation)
    return HeadFit(params, to_numpy(best_epoch), to_numpy(best_loss.double()),
                   to_numpy(initial.double()), epoch, len(fit), len(hold))
