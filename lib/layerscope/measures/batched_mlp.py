"""Many small MLP classifiers trained at once as one batched model (the probes' engine). No I/O.

Zhou & Srikumar 2022 (§2.1) fit two-layer ReLU probes with scikit-learn's ``MLPClassifier``
(Adam, at most 1,000 iterations) over a grid of hidden sizes and L2 weights: thousands of small
fits per study. Here every configuration of a call is trained in the same loop, on the same
minibatches: the first layer of all configurations is one GEMM ([B, d] x [d, sum of widths]),
deeper layers one ``bmm`` per distinct hidden-size tuple, and Adam runs on the packed tensors.
A configuration that stops (its own convergence rule) leaves the pack, so it costs nothing more.

Per configuration this is scikit-learn's algorithm (``sklearn.neural_network.MLPClassifier``,
solver="adam", v1.x source), step for step:
* init: Glorot-uniform, bound sqrt(6 / (fan_in + fan_out)) for weights and biases, drawn from
  ``np.random.RandomState(seed)`` in sklearn's order (so the initial weights are sklearn's);
* loss: mean cross-entropy over the minibatch (logistic output with one unit for 2 classes,
  softmax otherwise; probabilities clipped to [eps, 1 - eps] in the loss value only) plus
  alpha / (2 B) * sum ||W||^2 over weight matrices (not biases), B = minibatch size;
* Adam with sklearn's step: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), W -= lr_t m / (sqrt(v) + eps);
* an epoch = one pass in minibatches of min(200, n); stop when the epoch's training loss has not
  fallen by more than ``tol`` for more than ``n_iter_no_change`` epochs, or after ``max_iter``.
One deliberate difference: the minibatch order is shared by all configurations (seeded by
``shuffle_seed``), while sklearn draws it from each model's own random state. That is what lets
the first layer be one GEMM; the seed then varies the initialisation only, as in the paper's
"trained five times with different initializations". With ``shuffle=False`` (sklearn's
``shuffle=False``) a configuration reproduces ``MLPClassifier`` to rounding (tests check it).

Shapes: x: [n, d]; y: [n] integer class ids; a configuration's weights W_l: [f_{l-1}, f_l].
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import to_numpy
from ..errors import ConfigError
from ._inputs import as_labels, as_single, check_finite

Tensor = torch.Tensor
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # sklearn's Adam defaults
# Below this many multiply-adds per minibatch in the first layer (B x d x F) the fit runs on one
# thread: its products are too small to share (the demo grid, 200 x 384 x 128, trained 1.7x
# faster on one of 2 cores than on both with OMP_WAIT_POLICY=passive, as sweeps set it). The
# split of a product over threads does not change its per-element sums here: the weights, and
# the demo's probe accuracies, came out bit-identical on 1 and 2 threads.
_ONE_THREAD_MACS = 1 << 24

__all__ = ["ProbeConfig", "ProbeFit", "fit_probes", "memory_needed", "available_bytes"]


@dataclass(frozen=True)
class ProbeConfig:
    """One probe: hidden sizes (() = linear probe), L2 weight ``alpha`` and init seed."""
    hidden: tuple[int, ...]
    alpha: float
    seed: int = 0


def _check_configs(configs) -> tuple[ProbeConfig, ...]:
    configs = tuple(configs)
    if not configs:
        raise ConfigError("the probe grid is empty: give at least one configuration (hidden"
                          " sizes x alphas x seeds)")
    for c in configs:
        if not isinstance(c, ProbeConfig):
            raise ConfigError(f"expected ProbeConfig entries; got {c!r}")
        if not all(isinstance(h, (int, np.integer)) and h >= 1 for h in c.hidden):
            raise ConfigError(f"hidden sizes must be positive ints; got {c.hidden!r}")
        if not (np.isfinite(c.alpha) and c.alpha >= 0):
            raise ConfigError(f"alpha (L2 weight) must be finite and >= 0; got {c.alpha!r}")
        if not isinstance(c.seed, (int, np.integer)) or not 0 <= c.seed < 2**32:
            raise ConfigError(f"seed must be an int in [0, 2**32); got {c.seed!r}")
    return configs


def _init(c: ProbeConfig, d: int, out: int, dtype) -> list[Tensor]:
    """sklearn's ``_init_coef`` for every layer, in its draw order: [W1, b1, W2, b2, ...]."""
    rs, units, p = np.random.RandomState(c.seed), (d, *c.hidden, out), []
    for fi, fo in zip(units[:-1], units[1:], strict=True):
        bound = math.sqrt(6.0 / (fi + fo))
        p.append(torch.from_numpy(rs.uniform(-bound, bound, (fi, fo))).to(dtype))
        p.append(torch.from_numpy(rs.uniform(-bound, bound, fo)).to(dtype))
    return p


class _Pack:
    """Parameters of several configurations packed in one flat buffer for batched products.

    Views of the buffer: layer 1 of every configuration side by side, W1: [d, F] (F = sum of
    first widths), b1: [F]; then, per group of configurations sharing a hidden tuple, the deeper
    layers stacked, W_l: [c_g, f_{l-1}, f_l], b_l: [c_g, f_l]. ``groups`` = (hidden, c_g, layer-1
    column slice, stacked views, alphas [c_g]); ``members`` maps a packed position to the index
    of its configuration in the input list. Gradients live in a twin buffer (``grad``), so one
    fused Adam step updates everything.
    """

    def __init__(self, params: list[list[Tensor]], configs, out: int):
        self.configs, self.out = list(configs), out
        order: dict[tuple, list[int]] = {}
        for i, c in enumerate(configs):
            order.setdefault(c.hidden, []).append(i)
        self.members = [i for idx in order.values() for i in idx]
        self.layout = list(order.items())
        dtype = params[0][0].dtype
        self.alpha = torch.tensor([configs[i].alpha for i in self.members], dtype=dtype)
        self.alpha_cols = torch.cat([torch.full((params[i][0].shape[1],), configs[i].alpha,
                                                dtype=dtype) for i in self.members])
        self.d, self.width = params[0][0].shape[0], len(self.alpha_cols)
        self.flat = self.pack(params)
        self.grad = torch.zeros_like(self.flat)
        self.tensors = self.views(self.flat)
        self.w1, self.b1 = self.tensors[:2]
        self.g_tensors = self.views(self.grad)
        self.groups, start, k, pos = [], 0, 2, 0
        for hidden, idx in self.layout:
            n, f1 = len(idx), hidden[0] if hidden else out
            self.groups.append((hidden, n, slice(start, start + f1 * n),
                                self.tensors[k:k + 2 * len(hidden)], self.alpha[pos:pos + n],
                                self.g_tensors[k:k + 2 * len(hidden)]))
            start, k, pos = start + f1 * n, k + 2 * len(hidden), pos + n

    def pack(self, params: list[list[Tensor]]) -> Tensor:
        """Per-configuration tensors [W1, b1, W2, b2, ...] -> one flat buffer in this layout."""
        parts = [torch.cat([params[i][0] for i in self.members], 1).reshape(-1),
                 torch.cat([params[i][1] for i in self.members])]
        parts += [torch.stack([params[i][k] for i in idx]).reshape(-1)
                  for h, idx in self.layout for k in range(2, 2 * len(h) + 2)]
        return torch.cat(parts)

    def views(self, buf: Tensor) -> list[Tensor]:
        """[W1 [d, F], b1 [F], then each group's W_l [c_g, f, f'], b_l [c_g, f']] over buf."""
        shapes = [(self.d, self.width), (self.width,)]
        for hidden, idx in self.layout:
            units = (*hidden, self.out)
            for fi, fo in zip(units[:-1], units[1:], strict=True):
                shapes += [(len(idx), fi, fo), (len(idx), fo)]
        res, o = [], 0
        for sh in shapes:
            size = math.prod(sh)
            res.append(buf[o:o + size].view(sh))
            o += size
        return res

    def unpack(self, buf: Tensor | None = None) -> list[list[Tensor]]:
        """Per input configuration [W1, b1, W2, b2, ...] (copies) from a buffer laid out like
        ``self.flat`` (default: the parameters; Adam's moments work too)."""
        tensors = self.views(self.flat if buf is None else buf)
        res: list[list[Tensor]] = [[] for _ in self.configs]
        start, k = 0, 2
        for hidden, idx in self.layout:
            n, f1 = len(idx), hidden[0] if hidden else self.out
            w1 = tensors[0][:, start:start + f1 * n].reshape(-1, n, f1)
            b1 = tensors[1][start:start + f1 * n].reshape(n, f1)
            stacked = tensors[k:k + 2 * len(hidden)]
            for j, i in enumerate(idx):
                res[i] = [w1[:, j].clone(), b1[j].clone()] + [t[j].clone() for t in stacked]
            start, k = start + f1 * n, k + 2 * len(hidden)
        return res

    def forward(self, xb: Tensor, keep: bool):
        """Per group the logits [c_g, B, out]; with ``keep`` also the post-ReLU activations."""
        z1 = torch.addmm(self.b1, xb, self.w1)
        res = []
        for hidden, n, cols, stacked, _, _ in self.groups:
            a = z1[:, cols].reshape(len(xb), n, -1).transpose(0, 1)  # [c_g, B, f1]
            acts = []
            for li in range(len(hidden)):
                a = torch.relu(a)
                acts.append(a)
                a = torch.baddbmm(stacked[2 * li + 1].unsqueeze(1), a, stacked[2 * li])
            res.append((a, acts) if keep else a)
        return res


def _loss_delta(logits: Tensor, yb: Tensor, onehot: Tensor):
    """Per-configuration mean log-loss [c] and d loss / d logits * B: [c, B, out] (sklearn)."""
    eps = torch.finfo(logits.dtype).eps
    if logits.shape[-1] == 1:  # binary: one logistic unit, y in {0, 1}
        p = torch.sigmoid(logits)
        pc = p.clamp(eps, 1 - eps)
        t = yb.to(p.dtype).view(1, -1, 1)
        loss = -(t * pc.log() + (1 - t) * (1 - pc).log()).mean((1, 2))
        return loss, p - t
    p = torch.softmax(logits, -1)
    loss = -p.gather(-1, yb.view(1, -1, 1).expand(p.shape[0], -1, 1)).clamp(eps, 1 - eps).log()
    return loss.mean((1, 2)), p - onehot


def _step(pack: _Pack, xb, yb, onehot, adam) -> Tensor:
    """One minibatch: forward, sklearn's backward (+ L2), one Adam step. Batch losses [C]."""
    bsz = len(xb)
    d1 = torch.empty(bsz, pack.width, dtype=xb.dtype)
    losses = []
    sq1 = (pack.w1 * pack.w1).sum(0)  # [F] ||column||^2 for the L2 term (4x vector_norm's speed)
    for (hidden, n, cols, stacked, alpha, grads), (logits, acts) in zip(
            pack.groups, pack.forward(xb, True), strict=True):
        loss, delta = _loss_delta(logits, yb, onehot)
        l2 = sq1[cols].view(n, -1).sum(1)
        for li in range(len(hidden) - 1, -1, -1):  # layers 2.. top, walking down
            w, a = stacked[2 * li], acts[li]
            l2 = l2 + torch.linalg.vector_norm(w, dim=(1, 2)).square()
            torch.bmm(a.transpose(1, 2), delta, out=grads[2 * li])
            grads[2 * li].addcmul_(w, alpha.view(-1, 1, 1))  # (A^T delta + alpha W) / B
            torch.sum(delta, 1, out=grads[2 * li + 1])
            delta = torch.bmm(delta, w.transpose(1, 2)) * (a > 0)  # ReLU'(z) = [a > 0]
        d1[:, cols] = delta.transpose(0, 1).reshape(bsz, -1)
        losses.append(loss + 0.5 * alpha * l2 / bsz)
    gw1, gb1 = pack.g_tensors[:2]
    torch.mm(xb.T, d1, out=gw1)
    gw1.addcmul_(pack.w1, pack.alpha_cols)
    torch.sum(d1, 0, out=gb1)
    pack.grad.div_(bsz)
    adam.step(pack.flat, pack.grad)
    return torch.cat(losses)


class _Adam:
    """sklearn's Adam on one flat buffer: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),
    W -= lr_t m / (sqrt(v) + eps). Uses torch's fused kernel where it exists: torch divides
    sqrt(v) by sqrt(1 - b2^t) before adding eps, so eps / sqrt(1 - b2^t) there is sklearn's eps."""

    def __init__(self, flat: Tensor, lr: float, t: int = 0, m=None, v=None):
        self.lr, self.t = lr, t
        self.m = torch.zeros_like(flat) if m is None else m
        self.v = torch.zeros_like(flat) if v is None else v
        self.opt = None
        try:
            self.opt = torch.optim.Adam([flat], lr=lr, betas=(BETA1, BETA2), fused=True)
            self.opt.state[flat] = {"step": torch.tensor(float(t)), "exp_avg": self.m,
                                    "exp_avg_sq": self.v}
        except (RuntimeError, ValueError):
            self.opt = None

    def step(self, flat: Tensor, grad: Tensor) -> None:
        self.t += 1
        if self.opt is not None:
            flat.grad = grad
            self.opt.param_groups[0]["eps"] = EPS / math.sqrt(1 - BETA2 ** self.t)
            self.opt.step()
            return
        lr_t = self.lr * math.sqrt(1 - BETA2 ** self.t) / (1 - BETA1 ** self.t)
        self.m.mul_(BETA1).add_(grad, alpha=1 - BETA1)
        self.v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
        flat.addcdiv_(self.m, self.v.sqrt().add_(EPS), value=-lr_t)


def memory_needed(n_features: int, n_outputs: int, configs, batch_size: int,
                  itemsize: int = 4) -> int:
    """Bytes the batched fit needs for these configurations (parameters, Adam state, grads,
    activations of one minibatch), excluding the features themselves."""
    params = acts = 0
    for c in configs:
        units = (n_features, *c.hidden, n_outputs)
        params += sum(a * b + b for a, b in zip(units[:-1], units[1:], strict=True))
        acts += sum(units[1:])
    return itemsize * (4 * params + 4 * batch_size * acts)


def available_bytes() -> int:
    """Memory the OS reports as free (huge if unknown)."""
    try:  # sysconf, not a file: measures/ stays free of I/O
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


@dataclass(frozen=True)
class ProbeFit:
    """Trained probes, one per configuration (in the order given).

    params[i]: [W1 [d, f1], b1 [f1], W2, b2, ...]; loss_curves[i]: [n_iter[i]] training loss per
    epoch (incl. the L2 term, as sklearn's ``loss_curve_``); converged[i]: stopped by the tol
    rule before max_iter; classes: [k] the label values (sorted, as sklearn's ``classes_``);
    mean/scale: [d] the standardisation applied to inputs (zeros/ones when off).
    """
    configs: tuple[ProbeConfig, ...]
    params: tuple[tuple[Tensor, ...], ...]
    n_iter: np.ndarray
    converged: np.ndarray
    loss_curves: tuple[np.ndarray, ...]
    classes: np.ndarray
    mean: Tensor
    scale: Tensor
    seconds: float

    def logits(self, x) -> list[Tensor]:
        """Per configuration the output scores [m, out] (out = 1 for two classes, else k)."""
        x = as_single(x, "x").to(self.mean.dtype)
        if x.shape[1] != self.mean.shape[0]:
            raise ConfigError(f"x has {x.shape[1]} features but the probes were trained on"
                              f" {self.mean.shape[0]}")
        check_finite(x, "x")
        x = (x - self.mean) / self.scale
        out = self.params[0][-1].shape[0]
        pack = _Pack([list(p) for p in self.params], self.configs, out)
        res: list[Tensor] = [None] * len(self.configs)
        with torch.inference_mode():
            chunks = [pack.forward(x[s:s + 4096], False) for s in range(0, len(x), 4096)]
            k = 0
            for gi, (_, n, *_) in enumerate(pack.groups):
                g = torch.cat([c[gi] for c in chunks], 1)
                for j in range(n):
                    res[pack.members[k + j]] = g[j]
                k += n
        return res

    def predict(self, x) -> np.ndarray:
        """Predicted label values [C, m] (argmax; for two classes logit > 0, as sklearn)."""
        idx = [(z[:, 0] > 0).long() if z.shape[1] == 1 else z.argmax(1) for z in self.logits(x)]
        return self.classes[to_numpy(torch.stack(idx))]

    def accuracy(self, x, y) -> np.ndarray:
        """Accuracy of every configuration on (x, y): [C]."""
        y = as_labels(y, len(as_single(x, "x")), "y", min_classes=1)
        return (self.predict(x) == y[None, :]).mean(1)


def fit_probes(x, y, configs, *, max_iter: int = 1000, tol: float = 1e-4,
               n_iter_no_change: int = 10, learning_rate: float = 1e-3, batch_size=None,
               shuffle: bool = True, shuffle_seed: int = 0, standardize: bool = False,
               dtype: torch.dtype = torch.float32, max_memory_bytes: int | None = None
               ) -> ProbeFit:
    """Train every configuration on (x [n, d], y [n]) at once; see the module docstring.

    ``standardize`` centres and scales each feature by its training mean/std (off by default:
    sklearn does not scale, nor did the paper). ``max_memory_bytes`` defaults to 80% of the
    available memory; a grid needing more is refused with the amount it needs.
    """
    x = as_single(x, "x_train")
    n, d = x.shape
    check_finite(x, "x_train")
    y = as_labels(y, n, "y_train", min_classes=2)
    configs = _check_configs(configs)
    if max_iter < 1 or n_iter_no_change < 1 or not learning_rate > 0:
        raise ConfigError(f"need max_iter >= 1, n_iter_no_change >= 1, learning_rate > 0; got"
                          f" {max_iter}, {n_iter_no_change}, {learning_rate}")
    classes, yi = np.unique(y, return_inverse=True)
    out = 1 if len(classes) == 2 else len(classes)
    bsz = min(200, n) if batch_size is None else int(np.clip(batch_size, 1, n))
    need = memory_needed(d, out, configs, bsz, torch.finfo(dtype).bits // 8)
    limit = int(0.8 * available_bytes()) if max_memory_bytes is None else max_memory_bytes
    if need > limit:
        raise ConfigError(f"training these {len(configs)} probe configurations at once needs"
                          f" ~{need / 2**30:.2f} GiB but {limit / 2**30:.2f} GiB is allowed;"
                          " split the grid into several calls (fewer hidden sizes, alphas or"
                          " seeds per call) or use smaller hidden sizes")
    x = x.to(dtype)
    mean, scale = torch.zeros(d, dtype=dtype), torch.ones(d, dtype=dtype)
    if standardize:
        mean, sd = x.mean(0), x.std(0, unbiased=False)
        scale = torch.where(sd > 0, sd, torch.ones_like(sd))
        x = (x - mean) / scale
    yt = torch.from_numpy(yi)
    onehot = torch.nn.functional.one_hot(yt, len(classes)).to(dtype)
    t0 = time.perf_counter()
    params = [_init(c, d, out, dtype) for c in configs]
    active = list(range(len(configs)))
    curves: list[list[float]] = [[] for _ in configs]
    best = np.full(len(configs), np.inf)
    stall = np.zeros(len(configs), dtype=int)
    converged = np.zeros(len(configs), dtype=bool)
    rng = np.random.RandomState(shuffle_seed)
    width = sum((c.hidden[0] if c.hidden else out) for c in configs)
    with torch.inference_mode(), _threads(1 if bsz * d * width < _ONE_THREAD_MACS else None):
        pack = _Pack([params[i] for i in active], [configs[i] for i in active], out)
        adam = _Adam(pack.flat, learning_rate)
        for epoch in range(1, max_iter + 1):
            order = torch.from_numpy(rng.permutation(n) if shuffle else np.arange(n))
            total = torch.zeros(len(active), dtype=torch.float64)
            for s in range(0, n, bsz):
                idx = order[s:s + bsz]
                bl = _step(pack, x[idx], yt[idx], onehot[idx], adam)
                total += bl.to(torch.float64) * len(idx)
            loss = np.empty(len(active))
            loss[pack.members] = to_numpy(total / n)  # packed order -> order of `active`
            stop = []
            for j, i in enumerate(active):  # sklearn's _update_no_improvement_count
                curves[i].append(float(loss[j]))
                stall[i] = stall[i] + 1 if loss[j] > best[i] - tol else 0
                best[i] = min(best[i], loss[j])
                if stall[i] > n_iter_no_change:
                    converged[i] = True
                    stop.append(j)
            if stop or epoch == max_iter:
                pack, adam, active = _shrink(pack, adam, active, set(stop), params, out,
                                             last=epoch == max_iter)
            if not active:
                break
    return ProbeFit(configs, tuple(tuple(p) for p in params),
                    np.array([len(c) for c in curves]), converged,
                    tuple(np.array(c) for c in curves), classes, mean, scale,
                    time.perf_counter() - t0)


@contextlib.contextmanager
def _threads(n: int | None):
    """torch's intra-op threads set to ``n`` (None: unchanged) inside, restored afterwards."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _shrink(pack: _Pack, adam: _Adam, active, stop: set, params, out: int, last: bool):
    """Write stopped configurations' weights back; repack the rest with their Adam moments."""
    cur, mom, vel = pack.unpack(), pack.unpack(adam.m), pack.unpack(adam.v)
    for j, i in enumerate(active):
        params[i] = cur[j]
    keep = [] if last else [j for j in range(len(active)) if j not in stop]
    if not keep:
        return pack, adam, []
    sub = [pack.configs[j] for j in keep]
    new = _Pack([cur[j] for j in keep], sub, out)
    adam = _Adam(new.flat, adam.lr, adam.t, new.pack([mom[j] for j in keep]),
                 new.pack([vel[j] for j in keep]))
    return new, adam, [active[j] for j in keep]
