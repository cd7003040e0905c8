"""The task head on the first-token vector, and many copies of it trained at once (TUNED,
TUNEDORIG of Phang et al. 2021 §4).

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
    """K stacked heads: w1 [K, H, H], b1 [K, H], w2 [K, H, C], b2 [K, C]; ``activation``
    "tanh" or "gelu"."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    activation: str

    @property
    def k(self) -> int:
        return self.w1.shape[0]

    def repeat(self, k: int) -> HeadParams:
        """K copies of a single head (the common initialisation)."""
        if self.k != 1:
            raise ValueError(f"repeat() needs a single head, got {self.k}")
        return HeadParams(*(t.expand(k, *t.shape[1:]).clone() for t in
                            (self.w1, self.b1, self.w2, self.b2)), self.activation)

    def select(self, i: int) -> HeadParams:
        """Head i alone (K = 1)."""
        return HeadParams(*(t[i:i + 1].clone() for t in (self.w1, self.b1, self.w2, self.b2)),
                          self.activation)


def _linear_pair(model: nn.Module, ad: EncoderAdapter) -> tuple[nn.Linear, str, nn.Linear]:
    name = type(model).__name__
    if not name.endswith("ForSequenceClassification"):
        raise ConfigError(
            f"{name} has no sequence-classification head on the first token, so head training "
            f"(TUNED/TUNEDORIG) is undefined; load a sequence task model (models.load_for_task "
            f"on a classification, pair or regression task, or a fine-tuned checkpoint)")
    return ad.first_token_head()


def head_params(model: nn.Module) -> HeadParams:
    """The model's own head as ``HeadParams`` with K = 1 (float32 copies, no gradient link)."""
    if not hasattr(model, "classifier"):
        raise ConfigError(f"{type(model).__name__} has no task head; load a task model "
                          f"(models.load_for_task or a fine-tuned checkpoint)")
    dense, act, out = _linear_pair(model, EncoderAdapter(model))
    # nn.Linear stores weight [out, in]: x W1 needs its transpose
    ts = [dense.weight.T, dense.bias, out.weight.T, out.bias]
    w1, b1, w2, b2 = (t.detach().float().cpu().clone()[None] for t in ts)  # fit where features are
    return HeadParams(w1, b1, w2, b2, act)


def _features(x) -> torch.Tensor:
    """float32 tensor of features (a copy of read-only arrays such as cached memory maps)."""
    return x.float() if torch.is_tensor(x) else torch.from_numpy(np.array(x, dtype=np.float32))


def apply(params: HeadParams, x) -> torch.Tensor:
    """Logits of head k on features x[k]: x [K, n, H] -> [K, n, C] (float32, no gradient);
    a single head (K = 1) is applied to every x[k]."""
    x = _features(x)
    if params.k == 1 and x.shape[0] != 1:
        params = params.repeat(x.shape[0])
    with torch.no_grad():
        return _forward(params.w1, params.b1, params.w2, params.b2, params.activation, x)


def _forward(w1, b1, w2, b2, activation: str, x: torch.Tensor) -> torch.Tensor:
    h = ACTIVATIONS[activation](torch.baddbmm(b1[:, None, :], x, w1))
    return torch.baddbmm(b2[:, None, :], h, w2)


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


def train_heads(init: HeadParams, x, y, *, regression: bool,
                settings: HeadTraining = HeadTraining(), seed: int = 0) -> HeadFit:
    """Train head k on features x[k], all K at once (see module docstring).

    Args:
        init: K heads, or one head used for every k (``repeat``).
        x: [K, n, H] training features (float32), e.g. layer-k CLS states of n examples.
        y: [n] class ids (int) or regression targets (float).
        regression: MSE loss on logit 0 (else cross-entropy).
        seed: the holdout split and the minibatch order.
    """
    x = _features(x)
    K, n, _ = x.shape
    init = init.repeat(K) if init.k == 1 and K != 1 else init
    if init.k != K:
        raise ConfigError(f"{init.k} initial heads for {K} feature sets")
    y = torch.as_tensor(np.asarray(y), dtype=torch.float32 if regression else torch.long)
    n_hold = int(round(settings.holdout * n))
    if n_hold < 1 or n - n_hold < 1:
        raise ConfigError(f"{n} training examples cannot be split {1 - settings.holdout:.0%} / "
                          f"{settings.holdout:.0%} for early stopping; use n_train >= 10")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    fit, hold = perm[n_hold:], perm[:n_hold]
    w1, b1 = init.w1, init.b1
    if settings.standardize:  # train in standardised coordinates, same function (see above)
        mu, sd = x[:, fit].mean(1), x[:, fit].std(1)  # [K, H]
        sd = torch.where(sd > 0, sd, torch.ones_like(sd))
        x = (x - mu[:, None]) / sd[:, None]
        b1 = b1 + torch.bmm(mu[:, None], w1)[:, 0]
        w1 = w1 * sd[:, :, None]
    params = [t.clone().requires_grad_(True) for t in (w1, b1, init.w2, init.b2)]
    opt = torch.optim.Adam(params, lr=settings.lr)

    def held_out() -> torch.Tensor:
        with torch.no_grad():
            return _loss(_forward(*params, init.activation, x[:, hold]), y[hold], regression)

    best_loss = held_out()
    initial = best_loss.clone()
    best = [t.detach().clone() for t in params]
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
            _loss(_forward(*params, init.activation, x[:, b]), y[b], regression).sum().backward()
            opt.step()
        loss = held_out()
        better = active & (loss < best_loss)
        for t, kept in zip(params, best, strict=True):
            kept[better] = t.detach()[better]
        best_loss = torch.where(better, loss, best_loss)
        best_epoch[better] = epoch
        wait = torch.where(better, torch.zeros_like(wait), wait + 1)
        active &= wait < settings.patience
    if settings.standardize:  # back to the raw features: x' W1' = (x - mu) / sd W1'
        best[0] = best[0] / sd[:, :, None]
        best[1] = best[1] - torch.bmm(mu[:, None], best[0])[:, 0]
    return HeadFit(HeadParams(*best, init.activation), to_numpy(best_epoch),
                   to_numpy(best_loss.double()), to_numpy(initial.double()),
                   epoch, len(fit), n_hold)
