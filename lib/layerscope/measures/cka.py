"""Centred kernel alignment (CKA) between layer representations: the public API. No I/O.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019, ICML, "Similarity
of Neural Network Representations Revisited", eq. 4). Two HSIC estimators:

* biased (plug-in, Gretton et al. 2005): HSIC = tr(K H L H) / (n-1)^2 with H = I - 11^T/n;
* debiased (U-statistic, Song et al. 2007/2012 JMLR eq. 5), equivalently the inner product of
  U-centred Gram matrices (Szekely & Rizzo 2014, "Partial distance correlation..."). Its values
  may be negative; they are reported, never clamped.

For the linear kernel both reduce to products of centred features; the identities and their
derivation are in ``_cka_engine``, which computes every layer pair with a few large GEMMs.

Shapes: x: [n, d] (examples x features); a stack of layers: [L, n, d] or a sequence of [n, d_l].
Layer index 0 is the embedding output, i the output of block i (HF ``hidden_states[i]``).
The GEMM engine is ``_cka_engine``; minibatch CKA, bootstrap and permutation: ``cka_stats``.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError, check_choice
from ._cka_engine import DEFAULT_RTOL, KERNELS, METHODS, UNDEFINED, center_gram, cka_core, gram_rbf
from ._inputs import (
    MATRIX_UNDEFINED,
    UndefinedCellsWarning,
    as_single,
    as_stack,
    is_constant,
    warn_undefined_cells,
)

Tensor = torch.Tensor
F64 = torch.float64

__all__ = [
    "KERNELS", "METHODS", "UNDEFINED", "MATRIX_UNDEFINED", "DEFAULT_RTOL", "UndefinedCellsWarning",
    "gram_linear", "gram_rbf", "center_gram", "cka", "linear_cka", "rbf_cka", "cka_matrix",
    "constant_layers",
]

def gram_linear(x) -> Tensor:
    """Linear-kernel Gram matrix K = X X^T in float64. x: [n, d] -> [n, n]."""
    x = as_single(x, "x").to(F64)
    return x @ x.T



def cka(gram_x, gram_y, debiased: bool = False) -> float:
    """CKA from two Gram matrices (float64). gram_x, gram_y: [n, n] over the same examples."""
    kc, lc = center_gram(gram_x, debiased), center_gram(gram_y, debiased)
    if kc.shape != lc.shape:
        raise ConfigError(f"gram_x is {tuple(kc.shape)} but gram_y is {tuple(lc.shape)}; both must"
                         " be over the same examples")
    sxx, syy = (kc * kc).sum(), (lc * lc).sum()
    for name, s in (("gram_x", sxx), ("gram_y", syy)):
        if not s > 0:
            raise ConfigError(f"{name} is constant after centring (all examples look the same to"
                             " the kernel), so CKA is undefined")
    return float((kc * lc).sum() / torch.sqrt(sxx * syy))


def cka_matrix(a, b=None, *, kernel: str = "linear", debiased: bool = False,
               threshold: float = 1.0, method: str = "auto", undefined: str = "warn",
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
        undefined: what to do with a layer constant across examples (e.g. the layer-0 CLS
            vector of BERT-style models), for which CKA is undefined (0/0): "warn" (default)
            returns NaN in its row/column, computes the rest and emits an
            ``UndefinedCellsWarning`` naming the layers; "nan" does the same silently;
            "raise" raises ``UndefinedError`` (a ValueError) instead.
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
    check_choice(undefined, MATRIX_UNDEFINED, "undefined")
    la = as_stack(a, "a")
    lb = None if b is None else as_stack(b, "b")
    out = cka_core(la, lb, names=("a", "b"), single=False, kernel=kernel, debiased=debiased,
                   threshold=threshold, method=method,
                   undefined="nan" if undefined == "warn" else undefined,
                   chunk_size=chunk_size, rtol=rtol)
    if undefined == "warn":
        warn_undefined_cells(out, la, lb, "CKA", rtol)
    return out


def constant_layers(a, rtol: float = DEFAULT_RTOL) -> list[int]:
    """Indices of layers whose features are (numerically) the same for every example.

    A layer X [n, d] counts as constant when ||X - colmean(X)||_F <= rtol * ||X||_F, e.g. the
    layer-0 CLS vector of BERT-style models. CKA/RSA with such a layer are undefined.
    """
    return [i for i, x in enumerate(as_stack(a, "a")) if is_constant(x, rtol)]


def linear_cka(x, y, debiased: bool = False, *, method: str = "feature") -> float:
    """Linear CKA of x: [n, dx] and y: [n, dy], computed in float64.

    Feature-space form ||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F) on centred X, Y (Kornblith et
    al. 2019, §3), debiased via the row-norm identities in the module docstring. A single pair
    is cheap, so it runs in float64 (a reference for cka_matrix, which runs in float32). For
    n << d pass method="auto" (Gram form).
    """
    lx, ly = [as_single(x, "x")], [as_single(y, "y")]
    out = cka_core(lx, ly, names=("x", "y"), single=True, kernel="linear", debiased=debiased,
                   threshold=1.0, method=method, undefined="raise", chunk_size=None,
                   rtol=DEFAULT_RTOL, dtype=F64)
    return float(out[0, 0])


def rbf_cka(x, y, threshold: float = 1.0, debiased: bool = False) -> float:
    """RBF-kernel CKA of x: [n, dx] and y: [n, dy] (Gram form, float64)."""
    lx, ly = [as_single(x, "x")], [as_single(y, "y")]
    out = cka_core(lx, ly, names=("x", "y"), single=True, kernel="rbf", debiased=debiased,
                   threshold=threshold, method="auto", undefined="raise", chunk_size=None,
                   rtol=DEFAULT_RTOL)
    return float(out[0, 0])
