"""The streamed GEMM engine behind ``cka``: all-pairs HSIC from a few large matrix products.

Moved here from ``cka.py`` unchanged in its numerics: every layer is centred once,
layers are stacked side by side, and the L x L HSIC matrix comes either from streamed row panels
of the Gram matrices (sample space, cheaper below n ~ L d) or from X^T Y products (feature
space), in float32 with float64 accumulation of every reduction. ``cka_core`` is the one entry
point; ``cka`` and ``cka_stats`` call it. Definitions (CKA, biased and debiased HSIC) are in
``cka``. For the linear kernel with column-centred features X, Y ([n, d]):
  tr(K H L H)            = ||X^T Y||_F^2                  (Kornblith et al. 2019, eq. 7 / §3)
  HSIC_u * n(n-3)        = ||X^T Y||_F^2 + t_x t_y / ((n-1)(n-2)) - n/(n-2) * sum_a k_aa l_aa
with k_aa = ||x_a||^2, t_x = sum_a k_aa. Derivation: with centred X, K1 = 0, so for K~ = K with
its diagonal zeroed, K~1 = -k, 1^T K~ 1 = -t_x, tr(K~L~) = tr(KL) - k.l and 1^T K~ L~ 1 = k.l;
substituting into Song et al.'s formula gives the line above. The debiased estimator is
translation invariant (U-centring removes any a_i + a_j + c), so centring first is exact.

Shapes: x: [n, d] (examples x features); a stack of layers: [L, n, d] or a sequence of [n, d_l].
Layer index 0 is the embedding output, i the output of block i (HF ``hidden_states[i]``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from ._inputs import (
    DEFAULT_RTOL,
    UNDEFINED,
    as_single,
    check_choice,
    check_finite,
    constant_error,
    layer_label,
    same_examples,
    to_tensor,
)

Tensor = torch.Tensor
F64 = torch.float64
KERNELS = ("linear", "rbf")
METHODS = ("auto", "gram", "feature")
_INNER_CHUNK = 8192  # float32 partial dot products this long, then summed in float64
_FEATURE_ROWS = 2048  # feature form: rows per chunk centred into a reusable buffer

__all__ = ["KERNELS", "METHODS", "UNDEFINED", "DEFAULT_RTOL", "check_inputs", "gram_rbf",
           "center_gram", "cka_core", "auto_method"]


def check_inputs(la, lb, names, single, debiased, finite=True) -> int:
    """Example counts, n limits and (if `finite`) finiteness of la (+ lb); returns n."""
    n = same_examples(la, lb, names)
    if n < 2:
        raise ConfigError(f"CKA needs at least 2 examples; got n={n}")
    if debiased and n <= 3:
        raise ConfigError(f"debiased CKA (unbiased HSIC, Song et al. 2012) needs n >= 4"
                          f" examples; got n={n}. Use more examples or debiased=False")
    for i, x in enumerate(la + (lb or []) if finite else []):
        check_finite(x, layer_label(i, len(la), names, single))
    return n


def gram_rbf(x, threshold: float = 1.0) -> Tensor:
    """RBF Gram matrix exp(-||x_i - x_j||^2 / (2 sigma^2)), float64. x: [n, d] -> [n, n].

    sigma = threshold * median Euclidean distance between distinct examples (the bandwidth rule of
    Kornblith et al. 2019, §4; we take the lower median over i < j, excluding the zero diagonal).
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ConfigError(f"threshold must be a positive number; got {threshold!r}")
    x = as_single(x, "x").to(F64)
    if x.shape[0] < 2:
        raise ConfigError(f"gram_rbf needs at least 2 examples; got n={x.shape[0]}")
    x = x - x.mean(0)  # distances are translation invariant; centring keeps the products small
    sq = x.square().sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    upper = torch.ones_like(d2, dtype=torch.bool).triu_(1)
    med = d2[upper].median()
    if not med > 0:
        raise ConfigError("median pairwise distance is 0 (at least half of the example pairs"
                         " coincide, e.g. a constant layer), so the RBF bandwidth is undefined;"
                         " drop that layer or use the linear kernel")
    return torch.exp(d2 / (-2.0 * threshold**2 * med))


def center_gram(gram, unbiased: bool = False) -> Tensor:
    """Centre a symmetric Gram matrix, float64. gram: [n, n] -> [n, n].

    unbiased=False: H K H (H = I - 11^T/n). unbiased=True: U-centring (Szekely & Rizzo 2014,
    §3.2): zero the diagonal, subtract row/column sums / (n-2), add total / ((n-1)(n-2)), zero
    the diagonal again; <K_U, L_U> / (n(n-3)) is Song et al.'s unbiased HSIC.
    """
    k = to_tensor(gram, "gram").to(F64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ConfigError(f"gram must be a square [n, n] matrix; got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise ConfigError("gram contains NaN/inf values")
    if not torch.allclose(k, k.T, rtol=1e-5, atol=1e-8 * float(k.abs().max())):
        raise ConfigError("gram must be symmetric (a kernel matrix)")
    n = k.shape[0]
    if not unbiased:
        return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    if n < 4:
        raise ConfigError(f"U-centring (unbiased HSIC) needs n >= 4 examples; got n={n}")
    k = k.clone()
    k.fill_diagonal_(0.0)
    means = k.sum(0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None] + means[None, :]
    k.fill_diagonal_(0.0)
    return k




# ----------------------------------------------------------------------------- linear core
def _layer_means(layers):
    """Column means [d_l] float64 per layer, finite [T] bool, offset [T] = n ||mean_l||^2.

    A NaN/inf entry makes its column sum non-finite, so finiteness costs no extra pass.
    """
    n = layers[0].shape[0]
    means = [_column_mean64(x) for x in layers]
    finite = torch.tensor([bool(torch.isfinite(m).all()) for m in means])
    offset = torch.tensor([n * float(m.square().sum()) for m in means], dtype=F64)
    return means, finite, offset


def _centre_layers(layers, means, dtype, with_rows):
    """Centre each layer once into z [n, sum d_l] (layers side by side, `dtype`).

    Column means are accumulated in float64: float32 sums of uncentred BERT-like states (offset
    ~10x the spread) lose ~1e-2. The mean is then rounded to `dtype` and subtracted
    in `dtype`; for entries near the mean that subtraction is exact (Sterbenz), so z differs from
    the exactly centred values by a per-column constant <= 2^-24 |mean|, whose effect on CKA is
    O((n * 2^-24 |mean| / spread)^2 / d) -- far below 1e-10 here.

    Returns z and, if with_rows, rows [T, n] = ||z_l[a]||^2 in float64 (the Gram path reads
    them off the Gram diagonals instead).
    """
    n, widths = layers[0].shape[0], [int(x.shape[1]) for x in layers]
    z = torch.empty(n, sum(widths), dtype=dtype, device=layers[0].device)
    rows = torch.empty(len(layers), n, dtype=F64) if with_rows else None
    off = 0
    for i, x in enumerate(layers):
        zi = z[:, off:off + widths[i]]
        torch.sub(x, means[i].to(dtype), out=zi)
        if with_rows:
            rows[i] = torch.linalg.vector_norm(zi, dim=1).to(F64).square().cpu()
        off += widths[i]
    return z, rows


def _column_mean64(x: Tensor) -> Tensor:
    """Column means of x [n, d] -> [d] float64: float32 partial sums of 32 rows, then float64."""
    n, k = x.shape[0], 32
    q = n // k
    total = torch.zeros(x.shape[1], dtype=F64, device=x.device)
    if q:
        total += x[:q * k].reshape(q, k, -1).sum(1).sum(0, dtype=F64)
    if q * k < n:
        total += x[q * k:].sum(0, dtype=F64)
    return total / n


def _rows_gram(f: Tensor) -> Tensor:
    """f f^T for f [T, m] (float32 ok) with float64 accumulation over chunks of the inner dim."""
    t, m = f.shape
    q = m // _INNER_CHUNK
    out = torch.zeros(t, t, dtype=F64, device=f.device)
    if q:
        g = f[:, :q * _INNER_CHUNK].view(t, q, _INNER_CHUNK).transpose(0, 1)  # [q, T, k]
        out += torch.bmm(g, g.transpose(1, 2)).sum(0, dtype=F64)
    if q * _INNER_CHUNK < m:
        rest = f[:, q * _INNER_CHUNK:]
        out += (rest @ rest.T).to(F64)
    return out


def _auto_panel_rows(n: int) -> int:
    # Rows per panel. The diagonal r x r square of each panel is formed in full (overhead ~r/n);
    # panels of 192-256 rows keep the GEMMs near the square-matrix rate on this kind of CPU.
    return int(min(256, max(32, 64 * round(n / 5 / 64))))


_PANEL_COLS = 2048  # columns per GEMM of a panel: T tiles of r x 2048 floats stay in cache


def _gram_products(z, widths, chunk_size) -> tuple[Tensor, Tensor]:
    """P~[i, j] = <K~_i, K~_j>_F, K~_i = z_i z_i^T with zero diagonal, by row panels. -> [T, T].

    The diagonal is returned separately (rows [T, n] = k_aa = ||z_i[a]||^2) and added back in
    float64 by the caller: for n << d the Gram's diagonal dominates <K_i, K_j>, and the debiased
    estimator subtracts exactly that part again, so keeping it out of the float32 sums avoids a
    large cancellation (tr(K~ L~) is what Song et al.'s formula needs anyway).

    Each K_i is symmetric, so a panel of rows [s, e) is formed only from column s on (a
    syrk-like half): its diagonal square [s, e) x [s, e) counts once, the columns beyond e count
    twice. Each step forms the same tile of all T Grams (one bmm per group of equal-width layers)
    and reduces it with a batched GEMM (float32 partial sums of length <= 8192, accumulated in
    float64). Memory: T tiles of r x 2048, never T full n x n Grams (13 at n = 20,000: 21 GB).
    """
    n, t = z.shape[0], len(widths)
    rows = int(chunk_size) if chunk_size is not None else _auto_panel_rows(n)
    if rows < 1:
        raise ConfigError(f"chunk_size must be a positive number of rows; got {chunk_size!r}")
    rows = min(rows, n)
    cols = max(rows, _PANEL_COLS)
    # layers of equal width side by side in z are one strided [g, n, w] batch: one bmm per tile
    groups = [(i0, g, z[:, off:off + g * w].view(n, g, w).transpose(0, 1))
              for i0, g, w, off in _width_groups(widths)]
    buf = torch.empty(t * rows * cols, dtype=z.dtype, device=z.device)
    p = torch.zeros(t, t, dtype=F64, device=z.device)
    diag = torch.empty(t, n, dtype=F64, device=z.device)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        for rs, re, cs, ce, weight in _panel_tiles(s, e, n, cols):
            blk = buf[:t * (re - rs) * (ce - cs)].view(t, re - rs, ce - cs)
            for i0, g, v in groups:
                torch.bmm(v[:, rs:re], v[:, cs:ce].transpose(1, 2), out=blk[i0:i0 + g])
            if cs == rs:  # diagonal square: keep k_aa, then drop it from the inner product
                d = blk.diagonal(dim1=1, dim2=2)
                diag[:, rs:re] = d
                d.zero_()
            p += weight * _rows_gram(blk.view(t, -1))
    return p.cpu(), diag.cpu()


def _panel_tiles(s, e, n, cols):
    """Tiles (row start, row end, col start, col end, weight) covering panel [s, e) x [s, n).

    The diagonal square is split once into two half-size diagonal squares (weight 1) and the
    rectangle between them (weight 2), halving the redundant lower-triangle work there.
    """
    h = (e - s) // 2 if e - s >= 64 else 0
    diag = ([(s, s + h, s, s + h, 1.0), (s, s + h, s + h, e, 2.0), (s + h, e, s + h, e, 1.0)]
            if h else [(s, e, s, e, 1.0)])
    return diag + [(s, e, c, min(n, c + cols), 2.0) for c in range(e, n, cols)]


def _width_groups(widths):
    """Runs of consecutive equal widths: [(first layer, count, width, column offset)]."""
    out, off = [], 0
    for i, w in enumerate(widths):
        if out and out[-1][2] == w:
            out[-1][1] += 1
        else:
            out.append([i, 1, w, off])
        off += w
    return [tuple(g) for g in out]


def _feature_products(layers, means, widths, na, cross, dtype) -> tuple[Tensor, Tensor]:
    """P[i, j] = ||z_i^T z_j||_F^2 (Kornblith et al. 2019 feature-space form). -> [T, T], rows.

    Streams over row chunks: each chunk of every layer is centred once into a reusable buffer
    and z_i^T z_j is accumulated in place (addmm), so no centred copy of the whole input is
    held. Self: layer i against all layers j >= i in one GEMM per chunk (symmetry halves the
    work). Cross: layers of a against all of b, plus each layer's own term. Unneeded entries
    stay NaN. Also returns rows [T, n] = ||z_i[a]||^2 (float64).
    """
    n, t = layers[0].shape[0], len(widths)
    offs = np.cumsum([0] + widths).tolist()
    dev = layers[0].device
    spans = [(i, j0, j1) for i in range(t) for j0, j1 in
             ([(i, t)] if not cross else ([(na, t)] if i < na else []) + [(i, i + 1)])]
    accs = [torch.zeros(widths[i], offs[j1] - offs[j0], dtype=dtype, device=dev)
            for i, j0, j1 in spans]
    step = min(n, _FEATURE_ROWS)
    buf = torch.empty(step, offs[-1], dtype=dtype, device=dev)
    rows = torch.empty(t, n, dtype=F64)
    mu = [m.to(dtype) for m in means]
    for s in range(0, n, step):
        c = buf[:min(step, n - s)]
        for i, x in enumerate(layers):
            zi = c[:, offs[i]:offs[i + 1]]
            torch.sub(x[s:s + step], mu[i], out=zi)
            rows[i, s:s + step] = torch.linalg.vector_norm(zi, dim=1).to(F64).square().cpu()
        for (i, j0, j1), acc in zip(spans, accs, strict=True):
            acc.addmm_(c[:, offs[i]:offs[i + 1]].T, c[:, offs[j0]:offs[j1]])
    p = torch.full((t, t), float("nan"), dtype=F64)
    for (i, j0, j1), acc in zip(spans, accs, strict=True):
        vals = []
        for _, g, w, off in _width_groups(widths[j0:j1]):
            # per-row partial norms over w entries, then float64 accumulation over rows
            part = torch.linalg.vector_norm(acc[:, off:off + g * w].view(-1, g, w), dim=2)
            vals.append(part.to(F64).square().sum(0).cpu())
        p[i, j0:j1] = p[j0:j1, i] = torch.cat(vals)
    return p, rows


def _choose_method(n, widths, na, cross, rows) -> str:
    """Pick the formulation with fewer multiply-adds (Gram space below n ~ L d)."""
    t, d = len(widths), sum(widths)
    gram = n * (n + rows) / 2 * (d + t * t)
    if cross:
        feat = n * (sum(widths[:na]) * sum(widths[na:]) + sum(w * w for w in widths))
    else:
        feat = n * (d * d + sum(w * w for w in widths)) / 2
    return "gram" if gram < feat else "feature"


def auto_method(n: int, widths: list[int]) -> str:
    """The formulation ``method="auto"`` picks for a self-comparison of layers of these widths
    over n examples (default panel rows)."""
    return _choose_method(n, widths, len(widths), False, _auto_panel_rows(n))


def _hsic(p, sq, rows, n, debiased, offdiag=False) -> Tensor:
    """Biased HSIC = P / (n-1)^2, or Song et al.'s unbiased HSIC via the row-norm identities.

    p = <K, L> = ||X^T Y||_F^2, or with offdiag=True p = <K~, L~> (zero diagonals); sq = traces,
    rows = Gram diagonals [T, n]. With centred X: K~1 = -k, 1^T K~ 1 = -t, so
    n(n-3) HSIC_u = tr(K~L~) + t_K t_L / ((n-1)(n-2)) - 2/(n-2) k.l  (Song et al. 2012, eq. 5).
    """
    kl = rows @ rows.T
    if not debiased:
        return (p + kl if offdiag else p) / (n - 1) ** 2
    tr = p if offdiag else p - kl
    u = tr + torch.outer(sq, sq) / ((n - 1) * (n - 2)) - (2.0 / (n - 2)) * kl
    return u / (n * (n - 3))


def _rbf_products(z, widths, const, threshold, debiased) -> Tensor:
    """<K_i, K_j> of centred (or U-centred) RBF Grams; one n x n float64 Gram per layer."""
    n, t = z.shape[0], len(widths)
    offs = np.cumsum([0] + widths).tolist()
    flat = torch.zeros(t, n * n, dtype=F64)
    for i in range(t):
        if not const[i]:
            flat[i] = center_gram(gram_rbf(z[:, offs[i]:offs[i + 1]], threshold), debiased).view(-1)
    return flat @ flat.T


def cka_core(la, lb, *, names, single, kernel, debiased, threshold, method, undefined,
             chunk_size, rtol, return_hsic=False, dtype=None):
    check_choice(kernel, KERNELS, "kernel")
    check_choice(method, METHODS, "method")
    check_choice(undefined, UNDEFINED, "undefined")
    if kernel == "rbf" and method == "feature":
        raise ConfigError("method='feature' exists only for kernel='linear'; use method='auto'")
    n = check_inputs(la, lb, names, single, debiased, finite=False)
    layers, na, cross = la + (lb or []), len(la), lb is not None
    widths = [int(x.shape[1]) for x in layers]
    if kernel == "linear" and method == "auto":
        method = _choose_method(n, widths, na, cross, chunk_size or _auto_panel_rows(n))
    if dtype is None:
        dtype = F64 if all(x.dtype == F64 for x in layers) else torch.float32
    means, finite, offset = _layer_means(layers)
    for i in torch.nonzero(~finite).flatten().tolist()[:1]:
        check_finite(layers[i], layer_label(i, na, names, single))
    if kernel == "linear" and method == "feature":
        p, rows = _feature_products(layers, means, widths, na, cross, dtype)
    else:
        z, rows = _centre_layers(layers, means, dtype, with_rows=kernel == "rbf")
        if kernel == "linear":
            p, rows = _gram_products(z, widths, chunk_size)
    sq = rows.sum(1)  # ||X_c||^2; ||X||^2 = ||X_c||^2 + n ||mean||^2
    const = sq <= rtol**2 * (sq + offset)
    bad = torch.nonzero(const).flatten().tolist()
    if bad and undefined == "raise":
        raise constant_error(layer_label(bad[0], na, names, single), "CKA")
    if kernel == "rbf":
        h = _rbf_products(z, widths, const, threshold, debiased)
    else:
        h = _hsic(p, sq, rows, n, debiased, offdiag=method == "gram")
    if return_hsic:
        return h, const
    diag = h.diagonal()
    for i in range(len(layers)):
        if not const[i] and not diag[i] > 0:
            raise ConfigError(f"{'debiased' if debiased else 'biased'} self-HSIC of"
                              f" {layer_label(i, na, names, single)} is"
                              f" {float(diag[i]):.3g} <= 0, so"
                             " CKA is undefined; use more examples (or debiased=False)")
    da, db = diag[:na], (diag[na:] if cross else diag[:na])
    num = h[:na, na:] if cross else h[:na, :na].clone()
    out = num / torch.sqrt(torch.outer(da, db))
    if not cross:
        out.fill_diagonal_(1.0)  # CKA(X, X) = 1 exactly; rows of constant layers reset below
    out[const[:na], :] = float("nan")
    out[:, const[na:] if cross else const[:na]] = float("nan")
    return out

