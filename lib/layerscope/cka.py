"""Centred kernel alignment (CKA) between layer representations. Pure tensor code, no I/O.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019, ICML, "Similarity
of Neural Network Representations Revisited", eq. 4). Two HSIC estimators:

* biased (plug-in, Gretton et al. 2005): HSIC = tr(K H L H) / (n-1)^2 with H = I - 11^T/n;
* debiased (U-statistic, Song et al. 2007/2012 JMLR eq. 5), equivalently the inner product of
  U-centred Gram matrices (Szekely & Rizzo 2014, "Partial distance correlation..."). Its values
  may be negative; they are reported, never clamped.

For the linear kernel with column-centred features X, Y ([n, d]):
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
from collections.abc import Sequence

import numpy as np
import torch

Tensor = torch.Tensor
F64 = torch.float64
KERNELS = ("linear", "rbf")
METHODS = ("auto", "gram", "feature")
UNDEFINED = ("raise", "nan")
DEFAULT_RTOL = 1e-5  # a layer is "constant" when ||X - mean||_F <= rtol * ||X||_F
_INNER_CHUNK = 8192  # float32 partial dot products this long, then summed in float64
_FEATURE_ROWS = 2048  # feature form: rows per chunk centred into a reusable buffer
_BOOT_GRAM_MAX_N = 2048  # bootstrap/permutation: Gram form (n x n products) up to this n

__all__ = [
    "gram_linear", "gram_rbf", "center_gram", "cka", "linear_cka", "rbf_cka", "cka_matrix",
    "constant_layers", "MinibatchCKA", "minibatch_cka", "bootstrap_cka", "permutation_cka",
]


# ----------------------------------------------------------------------------- input checks
def _choice(value, valid, what):
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid values: {', '.join(map(repr, valid))}")


def _to_tensor(x, what: str) -> Tensor:
    """numpy/torch/array-like -> float32 or float64 tensor (other float types become float32)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{what} has dtype {t.dtype}; expected real-valued features")
    return t if t.dtype in (torch.float32, F64) else t.to(torch.float32)


def _as_single(x, name: str) -> Tensor:
    t = _to_tensor(x, name)
    if t.ndim != 2:
        raise ValueError(f"{name} must be [n, d] (examples x features); got shape {tuple(t.shape)}."
                         " Pool tokens first (e.g. CLS or masked mean).")
    return t


def _as_stack(a, name: str) -> list[Tensor]:
    """[L, n, d] tensor/array or a sequence of [n, d_l] arrays -> list of L tensors [n, d_l]."""
    if isinstance(a, (Tensor, np.ndarray)):
        t = _to_tensor(a, name)
        if t.ndim != 3:
            raise ValueError(f"{name} must be a stack of layers [L, n, d] or a sequence of [n, d]"
                             f" arrays; got shape {tuple(t.shape)}. For a single layer pass [x]"
                             " or use linear_cka(x, y).")
        layers = list(t.unbind(0))
    elif isinstance(a, Sequence) and not isinstance(a, (str, bytes)):
        layers = [_to_tensor(x, f"layer {i} of {name}") for i, x in enumerate(a)]
    else:
        raise ValueError(f"{name} must be a [L, n, d] tensor/array or a sequence of [n, d] arrays;"
                         f" got {type(a).__name__}")
    if not layers:
        raise ValueError(f"{name} holds no layers")
    for i, x in enumerate(layers):
        if x.ndim != 2 or x.shape[1] == 0:
            raise ValueError(f"layer {i} of {name} must be [n, d] with d >= 1; got shape"
                             f" {tuple(x.shape)}. Pool tokens first (e.g. CLS or masked mean).")
        if x.shape[0] != layers[0].shape[0]:
            raise ValueError(f"layer {i} of {name} has {x.shape[0]} examples but layer 0 has"
                             f" {layers[0].shape[0]}; every layer must hold the same examples")
    return layers


def _label(i: int, na: int, names: tuple[str, str], single: bool) -> str:
    name, j = (names[0], i) if i < na else (names[1], i - na)
    return name if single else f"layer {j} of {name}"


def same_examples(la, lb, names) -> int:
    """The number of examples n, checking that `lb` (if given) has the same n as `la`."""
    n = la[0].shape[0]
    if lb is not None and lb[0].shape[0] != n:
        raise ValueError(f"{names[0]} has {n} examples but {names[1]} has {lb[0].shape[0]}; both"
                         " must hold representations of the same examples, in the same order")
    return n


def _check_inputs(la, lb, names, single, debiased, finite=True) -> int:
    """Example counts, n limits and (if `finite`) finiteness; returns n."""
    n = same_examples(la, lb, names)
    if n < 2:
        raise ValueError(f"CKA needs at least 2 examples; got n={n}")
    if debiased and n <= 3:
        raise ValueError(f"debiased CKA (unbiased HSIC, Song et al. 2012) needs n >= 4 examples;"
                         f" got n={n}. Use more examples or debiased=False")
    for i, x in enumerate(la + (lb or []) if finite else []):
        _check_finite(x, i, len(la), names, single)
    return n


def _check_finite(x, i, na, names, single):
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{_label(i, na, names, single)} contains {bad} NaN/inf values; check"
                         " the extraction (fp16 overflow?) or drop that layer")


def _constant_msg(i, na, names, single) -> str:
    return (f"{_label(i, na, names, single)} is constant across examples (every example has the"
            " same representation, e.g. the layer-0 CLS vector of BERT-style models), so CKA"
            " with it is undefined. Drop it (constant_layers() lists such layers) or pass"
            " undefined='nan' to get NaN in its row/column")


# ----------------------------------------------------------------------------- Gram form
def gram_linear(x) -> Tensor:
    """Linear-kernel Gram matrix K = X X^T in float64. x: [n, d] -> [n, n]."""
    x = _as_single(x, "x").to(F64)
    return x @ x.T


def gram_rbf(x, threshold: float = 1.0) -> Tensor:
    """RBF Gram matrix exp(-||x_i - x_j||^2 / (2 sigma^2)), float64. x: [n, d] -> [n, n].

    sigma = threshold * median Euclidean distance between distinct examples (the bandwidth rule of
    Kornblith et al. 2019, §4; we take the lower median over i < j, excluding the zero diagonal).
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive number; got {threshold!r}")
    x = _as_single(x, "x").to(F64)
    if x.shape[0] < 2:
        raise ValueError(f"gram_rbf needs at least 2 examples; got n={x.shape[0]}")
    x = x - x.mean(0)  # distances are translation invariant; centring keeps the products small
    sq = x.square().sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    upper = torch.ones_like(d2, dtype=torch.bool).triu_(1)
    med = d2[upper].median()
    if not med > 0:
        raise ValueError("median pairwise distance is 0 (at least half of the example pairs"
                         " coincide, e.g. a constant layer), so the RBF bandwidth is undefined;"
                         " drop that layer or use the linear kernel")
    return torch.exp(d2 / (-2.0 * threshold**2 * med))


def center_gram(gram, unbiased: bool = False) -> Tensor:
    """Centre a symmetric Gram matrix, float64. gram: [n, n] -> [n, n].

    unbiased=False: H K H (H = I - 11^T/n). unbiased=True: U-centring (Szekely & Rizzo 2014,
    §3.2): zero the diagonal, subtract row/column sums / (n-2), add total / ((n-1)(n-2)), zero
    the diagonal again; <K_U, L_U> / (n(n-3)) is Song et al.'s unbiased HSIC.
    """
    k = _to_tensor(gram, "gram").to(F64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"gram must be a square [n, n] matrix; got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise ValueError("gram contains NaN/inf values")
    if not torch.allclose(k, k.T, rtol=1e-5, atol=1e-8 * float(k.abs().max())):
        raise ValueError("gram must be symmetric (a kernel matrix)")
    n = k.shape[0]
    if not unbiased:
        return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    if n < 4:
        raise ValueError(f"U-centring (unbiased HSIC) needs n >= 4 examples; got n={n}")
    k = k.clone()
    k.fill_diagonal_(0.0)
    means = k.sum(0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None] + means[None, :]
    k.fill_diagonal_(0.0)
    return k


def cka(gram_x, gram_y, debiased: bool = False) -> float:
    """CKA from two Gram matrices (float64). gram_x, gram_y: [n, n] over the same examples."""
    kc, lc = center_gram(gram_x, debiased), center_gram(gram_y, debiased)
    if kc.shape != lc.shape:
        raise ValueError(f"gram_x is {tuple(kc.shape)} but gram_y is {tuple(lc.shape)}; both must"
                         " be over the same examples")
    sxx, syy = (kc * kc).sum(), (lc * lc).sum()
    for name, s in (("gram_x", sxx), ("gram_y", syy)):
        if not s > 0:
            raise ValueError(f"{name} is constant after centring (all examples look the same to"
                             " the kernel), so CKA is undefined")
    return float((kc * lc).sum() / torch.sqrt(sxx * syy))


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
    ~10x the spread) lose ~1e-2 (DESIGN §4). The mean is then rounded to `dtype` and subtracted
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
        raise ValueError(f"chunk_size must be a positive number of rows; got {chunk_size!r}")
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
        for (i, j0, j1), acc in zip(spans, accs):
            acc.addmm_(c[:, offs[i]:offs[i + 1]].T, c[:, offs[j0]:offs[j1]])
    p = torch.full((t, t), float("nan"), dtype=F64)
    for (i, j0, j1), acc in zip(spans, accs):
        vals = []
        for _, g, w, off in _width_groups(widths[j0:j1]):
            # per-row partial norms over w entries, then float64 accumulation over rows
            part = torch.linalg.vector_norm(acc[:, off:off + g * w].view(-1, g, w), dim=2)
            vals.append(part.to(F64).square().sum(0).cpu())
        p[i, j0:j1] = p[j0:j1, i] = torch.cat(vals)
    return p, rows


def _choose_method(n, widths, na, cross, rows) -> str:
    """Pick the formulation with fewer multiply-adds (DESIGN §4: Gram below n ~ L d)."""
    t, d = len(widths), sum(widths)
    gram = n * (n + rows) / 2 * (d + t * t)
    if cross:
        feat = n * (sum(widths[:na]) * sum(widths[na:]) + sum(w * w for w in widths))
    else:
        feat = n * (d * d + sum(w * w for w in widths)) / 2
    return "gram" if gram < feat else "feature"


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


def _cka_core(la, lb, *, names, single, kernel, debiased, threshold, method, undefined,
              chunk_size, rtol, return_hsic=False, dtype=None):
    _choice(kernel, KERNELS, "kernel")
    _choice(method, METHODS, "method")
    _choice(undefined, UNDEFINED, "undefined")
    if kernel == "rbf" and method == "feature":
        raise ValueError("method='feature' exists only for kernel='linear'; use method='auto'")
    n = _check_inputs(la, lb, names, single, debiased, finite=False)
    layers, na, cross = la + (lb or []), len(la), lb is not None
    widths = [int(x.shape[1]) for x in layers]
    if kernel == "linear" and method == "auto":
        method = _choose_method(n, widths, na, cross, chunk_size or _auto_panel_rows(n))
    if dtype is None:
        dtype = F64 if all(x.dtype == F64 for x in layers) else torch.float32
    means, finite, offset = _layer_means(layers)
    for i in torch.nonzero(~finite).flatten().tolist()[:1]:
        _check_finite(layers[i], i, na, names, single)
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
        raise ValueError(_constant_msg(bad[0], na, names, single))
    if kernel == "rbf":
        h = _rbf_products(z, widths, const, threshold, debiased)
    else:
        h = _hsic(p, sq, rows, n, debiased, offdiag=method == "gram")
    if return_hsic:
        return h, const
    diag = h.diagonal()
    for i in range(len(layers)):
        if not const[i] and not diag[i] > 0:
            raise ValueError(f"{'debiased' if debiased else 'biased'} self-HSIC of"
                             f" {_label(i, na, names, single)} is {float(diag[i]):.3g} <= 0, so"
                             " CKA is undefined; use more examples (or debiased=False)")
    da, db = diag[:na], (diag[na:] if cross else diag[:na])
    num = h[:na, na:] if cross else h[:na, :na].clone()
    out = num / torch.sqrt(torch.outer(da, db))
    if not cross:
        out.fill_diagonal_(1.0)  # CKA(X, X) = 1 exactly; rows of constant layers reset below
    out[const[:na], :] = float("nan")
    out[:, const[na:] if cross else const[:na]] = float("nan")
    return out


def cka_matrix(a, b=None, *, kernel: str = "linear", debiased: bool = False,
               threshold: float = 1.0, method: str = "auto", undefined: str = "raise",
               chunk_size: int | None = None, rtol: float = DEFAULT_RTOL) -> Tensor:
    """CKA between every layer of `a` and every layer of `b` (default: `a` with itself).

    Args:
        a: [La, n, d] tensor/array or a sequence of La arrays [n, d_l] (widths may differ).
        b: same for a second model over the same n examples; None = self-comparison (symmetric).
        kernel: "linear" or "rbf" (RBF: one float64 n x n Gram per layer, memory T n^2 8 bytes).
        debiased: unbiased HSIC (Song et al. 2012); values may be negative and are not clamped.
        threshold: RBF bandwidth as a multiple of the median distance (see gram_rbf).
        method: "gram" (sample space, streamed row panels), "feature" (||X^T Y||_F^2), or
            "auto": whichever needs fewer multiply-adds (Gram below n ~ L d).
        undefined: "raise" a ValueError for a layer constant across examples, or "nan" to
            return NaN in its row/column (the rest is computed normally).
        chunk_size: rows per panel of the streamed Gram form (default 192-256; buffer
            T x rows x 2048 floats, 27 MB for 13 layers).
        rtol: constant-layer tolerance, see constant_layers.

    Returns:
        [La, Lb] float64 tensor. Computation is float32 (float64 if every input is float64) on
        layers centred once (column means accumulated in float64), with float64 accumulation of
        all reductions. Cost: Gram form ~ n^2/2 (sum_l d_l + T^2) multiply-adds, feature form
        ~ n sum_{l<=m} d_l d_m (self). Extra memory: Gram form, a centred float32 copy of the
        inputs plus ~30 MB; feature form, the d_l x d_m accumulators (~(sum d)^2/2 floats) plus
        a 2048-row chunk. Debiased costs the same as biased.
    """
    la = _as_stack(a, "a")
    lb = None if b is None else _as_stack(b, "b")
    return _cka_core(la, lb, names=("a", "b"), single=False, kernel=kernel, debiased=debiased,
                     threshold=threshold, method=method, undefined=undefined,
                     chunk_size=chunk_size, rtol=rtol)


def constant_layers(a, rtol: float = DEFAULT_RTOL) -> list[int]:
    """Indices of layers whose features are (numerically) the same for every example.

    A layer X [n, d] counts as constant when ||X - colmean(X)||_F <= rtol * ||X||_F, e.g. the
    layer-0 CLS vector of BERT-style models. CKA/RSA with such a layer are undefined.
    """
    out = []
    for i, x in enumerate(_as_stack(a, "a")):
        x64 = x.to(F64)
        if torch.linalg.vector_norm(x64 - x64.mean(0)) <= rtol * torch.linalg.vector_norm(x64):
            out.append(i)
    return out


def linear_cka(x, y, debiased: bool = False, *, method: str = "feature") -> float:
    """Linear CKA of x: [n, dx] and y: [n, dy], computed in float64.

    Feature-space form ||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F) on centred X, Y (Kornblith et
    al. 2019, §3), debiased via the row-norm identities in the module docstring. A single pair
    is cheap, so it runs in float64 (a reference for cka_matrix, which runs in float32). For
    n << d pass method="auto" (Gram form).
    """
    lx, ly = [_as_single(x, "x")], [_as_single(y, "y")]
    out = _cka_core(lx, ly, names=("x", "y"), single=True, kernel="linear", debiased=debiased,
                    threshold=1.0, method=method, undefined="raise", chunk_size=None,
                    rtol=DEFAULT_RTOL, dtype=F64)
    return float(out[0, 0])


def rbf_cka(x, y, threshold: float = 1.0, debiased: bool = False) -> float:
    """RBF-kernel CKA of x: [n, dx] and y: [n, dy] (Gram form, float64)."""
    lx, ly = [_as_single(x, "x")], [_as_single(y, "y")]
    out = _cka_core(lx, ly, names=("x", "y"), single=True, kernel="rbf", debiased=debiased,
                    threshold=threshold, method="auto", undefined="raise", chunk_size=None,
                    rtol=DEFAULT_RTOL)
    return float(out[0, 0])


# ----------------------------------------------------------------------------- minibatch CKA
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
        lx = [_as_single(x_batch, "x_batch")] if pair else _as_stack(x_batch, "x_batch")
        ly = [_as_single(y_batch, "y_batch")] if pair else _as_stack(y_batch, "y_batch")
        if self._pair is not None and pair != self._pair:
            raise ValueError("mixing single-layer and stacked batches in one MinibatchCKA")
        n = lx[0].shape[0]
        if n <= 3:
            raise ValueError(f"batch of {n} examples: minibatch CKA uses the unbiased HSIC_1,"
                             " which needs >= 4 examples per batch; merge the last small batch"
                             " into the previous one")
        h, _ = _cka_core(lx, ly, names=("x_batch", "y_batch"), single=pair, kernel="linear",
                         debiased=True, threshold=1.0, method="auto", undefined="nan",
                         chunk_size=None, rtol=DEFAULT_RTOL, return_hsic=True, dtype=F64)
        na = len(lx)
        xy, xx, yy = h[:na, na:], h.diagonal()[:na], h.diagonal()[na:]
        if self._xy is None:
            self._xy, self._xx, self._yy = xy.clone(), xx.clone(), yy.clone()
        elif self._xy.shape != xy.shape:
            raise ValueError(f"batch has {tuple(xy.shape)} layer pairs but earlier batches had"
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
            raise ValueError("no batches: call update() before compute()")
        for name, d in (("x", self._xx), ("y", self._yy)):
            for i, v in enumerate(d.tolist()):
                if not v > 0:
                    where = name if self._pair else f"layer {i} of {name}"
                    raise ValueError(f"mean unbiased self-HSIC of {where} is {v:.3g} <= 0 (constant"
                                     " across examples?), so minibatch CKA is undefined")
        out = self._xy / torch.sqrt(torch.outer(self._xx, self._yy))
        return float(out[0, 0]) if self._pair else out


def minibatch_cka(x, y, batch_size: int, seed: int = 0) -> float:
    """Minibatch CKA of x: [n, dx], y: [n, dy] over seeded shuffled batches of `batch_size`.

    A last batch of fewer than 4 examples is merged into the previous one. Not the same estimator
    as linear_cka: see MinibatchCKA.
    """
    x, y = _as_single(x, "x"), _as_single(y, "y")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x has {n} examples but y has {y.shape[0]}")
    if not isinstance(batch_size, int) or batch_size < 4:
        raise ValueError(f"batch_size must be an int >= 4 (unbiased HSIC); got {batch_size!r}")
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
    x, y = _as_single(x, "x"), _as_single(y, "y")
    _check_inputs([x], [y], ("x", "y"), True, False)
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
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    if not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2; got {n_boot!r}")
    xc, yc = _centred64(x, y)
    estimate = linear_cka(xc, yc, debiased=debiased)
    n = xc.shape[0]
    gen = torch.Generator().manual_seed(seed)
    reps = []
    for start in range(0, n_boot, 64):  # bounded memory: [64, n] counts at a time
        idx = torch.randint(0, n, (min(64, n_boot - start), n), generator=gen)
        w = torch.zeros(idx.shape, dtype=F64).scatter_add_(1, idx, torch.ones(idx.shape, dtype=F64))
        reps.append(_bootstrap_replicates(xc, yc, w, debiased))
    reps = torch.cat(reps)
    if torch.isnan(reps).float().mean() > 0.5:
        raise ValueError("most bootstrap resamples have a constant x or y; CKA undefined")
    alpha = (1 - confidence) / 2
    q = torch.nanquantile(reps, torch.tensor([alpha, 0.5, 1 - alpha], dtype=F64)).tolist()
    return estimate, estimate + q[0] - q[1], estimate + q[2] - q[1]


def permutation_cka(x, y, *, n_perm: int = 100, seed: int = 0, debiased: bool = False) -> Tensor:
    """Linear CKA with the rows of y shuffled n_perm times: the "no similarity" baseline at n.

    x: [n, dx], y: [n, dy] -> [n_perm] float64. Self terms do not change under permutation and
    are computed once; each permutation costs one n x n gather (n <= 2048) or one GEMM.
    """
    if not isinstance(n_perm, int) or n_perm < 1:
        raise ValueError(f"n_perm must be a positive int; got {n_perm!r}")
    xc, yc = _centred64(x, y)
    n = xc.shape[0]
    if debiased and n <= 3:
        raise ValueError(f"debiased CKA needs n >= 4 examples; got n={n}")
    kd, ld = xc.square().sum(1), yc.square().sum(1)

    def finish(p, ldp):  # p = ||X^T Y_pi||^2, ldp = permuted row norms of y
        if not debiased:
            return p
        return p + kd.sum() * ld.sum() / ((n - 1) * (n - 2)) - n / (n - 2) * (kd @ ldp)

    hxx = finish(torch.linalg.vector_norm(xc.T @ xc) ** 2, kd)
    hyy = finish(torch.linalg.vector_norm(yc.T @ yc) ** 2, ld)
    if not (hxx > 0 and hyy > 0):
        raise ValueError("x or y is constant across examples (self-HSIC <= 0); CKA undefined")
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
