"""CKA estimators and uncertainty beyond the plain matrix: minibatch CKA, bootstrap, permutation.

* ``MinibatchCKA`` / ``minibatch_cka``: Nguyen, Raghu & Kornblith 2021 (ICLR, eq. 3), a
  DIFFERENT estimator from full-data CKA (named so in every docstring).
* ``bootstrap_cka``: percentile interval of one cell over examples.
* ``permutation_cka``: CKA with examples shuffled, the "no similarity" baseline at n.
* ``cka_submatrix``: the cells of ``cka_matrix(stack)`` between chosen layers, computed from
  those layers alone (a bootstrap that reads a few cells need not recompute all of them).

Shapes: x: [n, dx], y: [n, dy]; stacks [L, n, d]. Pure tensor code, no I/O.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ._cka_engine import DEFAULT_RTOL, auto_method, check_inputs, cka_core
from ._inputs import as_single, as_stack

Tensor = torch.Tensor
F64 = torch.float64
_BOOT_GRAM_MAX_N = 2048  # bootstrap/permutation: Gram form (n x n products) up to this n

__all__ = ["MinibatchCKA", "minibatch_cka", "bootstrap_cka", "permutation_cka", "cka_submatrix"]


def _linear_cka64(x: Tensor, y: Tensor, debiased: bool) -> float:
    """Float64 feature-form linear CKA of one pair (the same as ``cka.linear_cka``)."""
    out = cka_core([x], [y], names=("x", "y"), single=True, kernel="linear", debiased=debiased,
                   threshold=1.0, method="feature", undefined="raise", chunk_size=None,
                   rtol=DEFAULT_RTOL, dtype=F64)
    return float(out[0, 0])


class MinibatchCKA:
    """Minibatch CKA (Nguyen, Raghu & Kornblith 2021, ICLR, eq. 3): a DIFFERENT estimator.

    Each batch contributes its unbiased HSIC_1 (Song et al. 2012) of (x, y), (x, x) and (y, y);
    compute() returns mean HSIC(x, y) / sqrt(mean HSIC(x, x) mean HSIC(y, y)). Its value depends
    on the batch size and on how examples are split into batches; as the batch grows it tends to
    full-data debiased CKA. Use it when all examples do not fit in memory at once.

    update() takes x_batch: [b, dx], y_batch: [b, dy] (compute() -> float), or stacks
    [La, b, d] / sequences of [b, d_l] (compute() -> [La, Lb] tensor). Batches need b >= 4.
    Each batch is computed in float64: with small batches and b << d the unbiased HSIC cancels
    most of its terms, which float32 would not survive.
    """

    def __init__(self):
        self._xy = self._xx = self._yy = None
        self._pair = None
        self.n_batches = 0
        self.n_examples = 0

    def update(self, x_batch, y_batch) -> None:
        """Add one batch; rows of x_batch and y_batch are the same examples."""
        pair = all(isinstance(v, (Tensor, np.ndarray)) and v.ndim == 2 for v in (x_batch, y_batch))
        lx = [as_single(x_batch, "x_batch")] if pair else as_stack(x_batch, "x_batch")
        ly = [as_single(y_batch, "y_batch")] if pair else as_stack(y_batch, "y_batch")
        if self._pair is not None and pair != self._pair:
            raise ConfigError("mixing single-layer and stacked batches in one MinibatchCKA")
        n = lx[0].shape[0]
        if n <= 3:
            raise ConfigError(f"batch of {n} examples: minibatch CKA uses the unbiased HSIC_1,"
                             " which needs >= 4 examples per batch; merge the last small batch"
                             " into the previous one")
        h, _ = cka_core(lx, ly, names=("x_batch", "y_batch"), single=pair, kernel="linear",
                        debiased=True, threshold=1.0, method="auto", undefined="nan",
                        chunk_size=None, rtol=DEFAULT_RTOL, return_hsic=True, dtype=F64)
        na = len(lx)
        xy, xx, yy = h[:na, na:], h.diagonal()[:na], h.diagonal()[na:]
        if self._xy is None:
            self._xy, self._xx, self._yy = xy.clone(), xx.clone(), yy.clone()
        elif self._xy.shape != xy.shape:
            raise ConfigError(f"batch has {tuple(xy.shape)} layer pairs but earlier batches had"
                             f" {tuple(self._xy.shape)}")
        else:
            self._xy += xy
            self._xx += xx
            self._yy += yy
        self._pair = pair
        self.n_batches += 1
        self.n_examples += n

    def compute(self):
        """Minibatch CKA: float for single-layer batches, else a [La, Lb] float64 tensor."""
        if self._xy is None:
            raise ConfigError("no batches: call update() before compute()")
        for name, d in (("x", self._xx), ("y", self._yy)):
            for i, v in enumerate(d.tolist()):
                if not v > 0:
                    where = name if self._pair else f"layer {i} of {name}"
                    raise ConfigError(f"mean unbiased self-HSIC of {where} is {v:.3g} <= 0"
                                      " (constant"
                                     " across examples?), so minibatch CKA is undefined")
        out = self._xy / torch.sqrt(torch.outer(self._xx, self._yy))
        return float(out[0, 0]) if self._pair else out


def minibatch_cka(x, y, batch_size: int, seed: int = 0) -> float:
    """Minibatch CKA of x: [n, dx], y: [n, dy] over seeded shuffled batches of `batch_size`.

    A last batch of fewer than 4 examples is merged into the previous one. Not the same estimator
    as linear_cka: see MinibatchCKA.
    """
    x, y = as_single(x, "x"), as_single(y, "y")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ConfigError(f"x has {n} examples but y has {y.shape[0]}")
    if not isinstance(batch_size, int) or batch_size < 4:
        raise ConfigError(f"batch_size must be an int >= 4 (unbiased HSIC); got {batch_size!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 4:
        starts.pop()
    acc = MinibatchCKA()
    for k, s in enumerate(starts):
        idx = order[s:(starts[k + 1] if k + 1 < len(starts) else n)]
        acc.update(x[idx], y[idx])
    return acc.compute()


# ----------------------------------------------------------------------------- uncertainty
def _centred64(x, y):
    x, y = as_single(x, "x"), as_single(y, "y")
    check_inputs([x], [y], ("x", "y"), True, False)
    x, y = x.to(F64), y.to(F64)
    return x - x.mean(0), y - y.mean(0)


def _weighted_hsic(kw, lw, kd, ld, s, w, n, debiased):
    """Unnormalised HSIC of a resample given by counts w ([B, n], sum n), float64.

    s = sum_ab w_a w_b K_ab L_ab; kw = K w, lw = L w ([B, n]); kd, ld = diag(K), diag(L).
    Biased: plug-in HSIC of the weighted empirical distribution (weighted centring).
    Debiased: Song et al.'s formula applied to the resample as n positions (see bootstrap_cka).
    """
    wkw, wlw = (w * kw).sum(1), (w * lw).sum(1)
    if not debiased:
        return s - (2.0 / n) * (w * kw * lw).sum(1) + wkw * wlw / n**2
    tr = s - (w * kd * ld).sum(1)
    sk, sl = wkw - w @ kd, wlw - w @ ld
    cross = (w * (kw - kd) * (lw - ld)).sum(1)
    return tr + sk * sl / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross


def _bootstrap_replicates(x, y, w, debiased) -> Tensor:
    """CKA of each resample given as counts w: [B, n] (x, y centred float64). -> [B]."""
    n = x.shape[0]
    k_diag, l_diag = x.square().sum(1), y.square().sum(1)
    if n <= _BOOT_GRAM_MAX_N:  # Gram form: O(n^2) per replicate from precomputed n x n products
        k, l = x @ x.T, y @ y.T
        kw, lw = w @ k, w @ l
        sxy, sxx, syy = (((w @ (k * l)) * w).sum(1), ((w @ (k * k)) * w).sum(1),
                         ((w @ (l * l)) * w).sum(1))
    else:  # feature form: ||X^T W Y||_F^2 per replicate, float32 GEMMs, float64 sums
        x32, y32 = x.float(), y.float()
        kw, lw = (x @ (x.T @ w.T)).T, (y @ (y.T @ w.T)).T
        sxy, sxx, syy = (torch.empty(w.shape[0], dtype=F64) for _ in range(3))
        for b in range(w.shape[0]):
            wb = w[b].float()[:, None]
            xw, yw = x32 * wb, y32 * wb
            sxy[b] = torch.linalg.vector_norm(x32.T @ yw, dtype=F64) ** 2
            sxx[b] = torch.linalg.vector_norm(x32.T @ xw, dtype=F64) ** 2
            syy[b] = torch.linalg.vector_norm(y32.T @ yw, dtype=F64) ** 2
    hxy = _weighted_hsic(kw, lw, k_diag, l_diag, sxy, w, n, debiased)
    hxx = _weighted_hsic(kw, kw, k_diag, k_diag, sxx, w, n, debiased)
    hyy = _weighted_hsic(lw, lw, l_diag, l_diag, syy, w, n, debiased)
    ok = (hxx > 0) & (hyy > 0)  # a resample can be degenerate (e.g. one example drawn n times)
    return torch.where(ok, hxy / torch.sqrt(hxx * hyy).clamp_min(1e-300), float("nan"))


def bootstrap_cka(x, y, *, n_boot: int = 200, confidence: float = 0.95, seed: int = 0,
                  debiased: bool = False) -> tuple[float, float, float]:
    """Percentile bootstrap interval of linear CKA, resampling examples. x: [n, dx], y: [n, dy].

    Resamples are represented as counts w (how often each example was drawn), so a replicate
    costs O(n^2) from precomputed Gram products (n <= 2048) or three weighted GEMMs, with no
    copies of the data. Duplicated rows: a resample holds only ~63% distinct examples, which
    inflates the biased (plug-in) estimator, and the debiased U-statistic treats copies of one
    example as distinct positions, which re-admits exactly the diagonal terms it removes (on a
    resample it estimates the *plug-in* CKA of the sample, not the population value). Both shift
    the replicates away from the estimate without changing their spread much, so we report the
    percentile interval of the replicates recentred on the estimate (replicate median moved to
    the estimate). The interval describes sampling variability over examples; it does not
    remove the finite-sample bias of the biased estimator (use debiased=True for that).

    Returns:
        (estimate, low, high) as floats; estimate = linear_cka(x, y, debiased).
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1); got {confidence!r}")
    if not isinstance(n_boot, int) or n_boot < 2:
        raise ConfigError(f"n_boot must be an int >= 2; got {n_boot!r}")
    xc, yc = _centred64(x, y)
    estimate = _linear_cka64(xc, yc, debiased)
    n = xc.shape[0]
    gen = torch.Generator().manual_seed(seed)
    reps = []
    for start in range(0, n_boot, 64):  # bounded memory: [64, n] counts at a time
        idx = torch.randint(0, n, (min(64, n_boot - start), n), generator=gen)
        w = torch.zeros(idx.shape, dtype=F64).scatter_add_(1, idx, torch.ones(idx.shape, dtype=F64))
        reps.append(_bootstrap_replicates(xc, yc, w, debiased))
    reps = torch.cat(reps)
    if torch.isnan(reps).float().mean() > 0.5:
        raise ConfigError("most bootstrap resamples have a constant x or y; CKA undefined")
    alpha = (1 - confidence) / 2
    q = torch.nanquantile(reps, torch.tensor([alpha, 0.5, 1 - alpha], dtype=F64)).tolist()
    return estimate, estimate + q[0] - q[1], estimate + q[2] - q[1]


def permutation_cka(x, y, *, n_perm: int = 100, seed: int = 0, debiased: bool = False) -> Tensor:
    """Linear CKA with the rows of y shuffled n_perm times: the "no similarity" baseline at n.

    x: [n, dx], y: [n, dy] -> [n_perm] float64. Self terms do not change under permutation and
    are computed once; each permutation costs one n x n gather (n <= 2048) or one GEMM.
    """
    if not isinstance(n_perm, int) or n_perm < 1:
        raise ConfigError(f"n_perm must be a positive int; got {n_perm!r}")
    xc, yc = _centred64(x, y)
    n = xc.shape[0]
    if debiased and n <= 3:
        raise ConfigError(f"debiased CKA needs n >= 4 examples; got n={n}")
    kd, ld = xc.square().sum(1), yc.square().sum(1)

    def finish(p, ldp):  # p = ||X^T Y_pi||^2, ldp = permuted row norms of y
        if not debiased:
            return p
        return p + kd.sum() * ld.sum() / ((n - 1) * (n - 2)) - n / (n - 2) * (kd @ ldp)

    hxx = finish(torch.linalg.vector_norm(xc.T @ xc) ** 2, kd)
    hyy = finish(torch.linalg.vector_norm(yc.T @ yc) ** 2, ld)
    if not (hxx > 0 and hyy > 0):
        raise ConfigError("x or y is constant across examples (self-HSIC <= 0); CKA undefined")
    gen = torch.Generator().manual_seed(seed)
    gram = n <= _BOOT_GRAM_MAX_N and 8 * n < xc.shape[1] * yc.shape[1]
    if gram:
        k, l = xc @ xc.T, yc @ yc.T
    else:
        x32, y32 = xc.float(), yc.float()
    out = torch.empty(n_perm, dtype=F64)
    for b in range(n_perm):
        pi = torch.randperm(n, generator=gen)
        if gram:
            p = (k * l[pi][:, pi]).sum()
        else:
            p = torch.linalg.vector_norm(x32.T @ y32[pi], dtype=F64) ** 2
        out[b] = finish(p, ld[pi]) / torch.sqrt(hxx * hyy)
    return out


def cka_submatrix(a, keep, *, kernel: str = "linear", debiased: bool = False,
                  threshold: float = 1.0, undefined: str = "raise",
                  rtol: float = DEFAULT_RTOL) -> Tensor:
    """``cka_matrix(a)[keep][:, keep]`` from the kept layers alone. a: [T, n, d] (or a sequence
    of [n, d_l]), keep: K layer indices -> [K, K] float64.

    Each cell of the streamed engine is reduced from its own two layers only (per-layer centring
    and Gram tiles, one inner product per pair), so leaving other layers out does not change it,
    provided the formulation and the compute dtype are the ones the whole stack would get:
    both are chosen here for all T layers (``method="auto"`` weighs every width) and then applied
    to the K kept ones. On the study-02 shapes the cells come out bit-identical to the full call
    (``run_similarity`` checks that on its own data before relying on it). Layers outside
    ``keep`` are not read, so their NaN/inf or constant checks do not happen here.
    """
    layers = as_stack(a, "a")
    idx = [int(i) for i in keep]
    if not idx or any(not 0 <= i < len(layers) for i in idx):
        raise ConfigError(f"keep must list layer indices in 0..{len(layers) - 1}; got {keep!r}")
    n = check_inputs(layers, None, ("a", "b"), False, debiased, finite=False)
    dtype = F64 if all(x.dtype == F64 for x in layers) else torch.float32
    method = auto_method(n, [int(x.shape[1]) for x in layers]) if kernel == "linear" else "auto"
    return cka_core([layers[i] for i in idx], None, names=("a", "b"), single=False,
                    kernel=kernel, debiased=debiased, threshold=threshold, method=method,
                    undefined=undefined, chunk_size=None, rtol=rtol, dtype=dtype)
