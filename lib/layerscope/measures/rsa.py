"""Representational similarity analysis (RSA) between layer representations. No I/O.

Merchant, Rahimtoroghi, Pavlick & Tenney 2020 ("What Happens To BERT Embeddings During
Fine-tuning?", §4; after Kriegeskorte et al. 2008): for each model and layer, build a
representational dissimilarity matrix (RDM) over the same inputs; the similarity of two
representations is the Spearman correlation of their RDMs' upper triangles.

Shapes: x: [n, d] (examples x features); stacks: [L, n, d] or a sequence of [n, d_l].
Layer index 0 is the embedding output, i the output of block i (HF ``hidden_states[i]``).
Memory: an RDM holds n(n-1)/2 float64 values (n = 5,000: 100 MB per layer); rsa_matrix keeps one
ranked RDM per layer, so subsample with max_examples for large n.
"""

from __future__ import annotations

import numpy as np
import torch

from ..devices import to_numpy
from ..errors import ConfigError
from ._inputs import (
    DEFAULT_RTOL,
    MATRIX_UNDEFINED,
    UNDEFINED,
    as_single,
    as_stack,
    check_choice,
    check_finite,
    constant_error,
    is_constant,
    layer_label,
    same_examples,
    warn_undefined_cells,
)

Tensor = torch.Tensor
F64 = torch.float64
DISSIMILARITIES = ("correlation", "cosine")

__all__ = ["rdm", "rsa", "rsa_matrix", "average_ranks", "DISSIMILARITIES"]


def _upper(n: int) -> Tensor:
    """Flat indices of the upper triangle i < j of an [n, n] matrix, row-major (like pdist)."""
    i, j = torch.triu_indices(n, n, offset=1)
    return i * n + j


def _rdm(x: Tensor, dissimilarity: str, what: str, upper: Tensor | None = None) -> Tensor:
    """x: [n, d] finite -> condensed upper triangle [n(n-1)/2] (row-major i < j, like pdist).
    ``upper``: ``_upper(n)``, shared by the layers of one call."""
    x = x.to(F64)
    scale = torch.linalg.vector_norm(x, dim=1)  # raw row norms: the yardstick for "zero"
    if dissimilarity == "correlation":  # 1 - Pearson r between the feature vectors of two examples
        x = x - x.mean(1, keepdim=True)
    norms = torch.linalg.vector_norm(x, dim=1)
    zero = torch.nonzero((norms <= 1e-10 * scale) | (norms == 0)).flatten().tolist()
    if zero:
        why = ("has constant features, so its Pearson correlation with other examples is"
               " undefined; use dissimilarity='cosine'" if dissimilarity == "correlation" else
               "is an all-zero vector, so its cosine similarity is undefined")
        raise ConfigError(f"example {zero[0]} of {what} {why}")
    u = x / norms[:, None]
    sim = u @ u.T
    return 1.0 - torch.take(sim, upper if upper is not None else _upper(x.shape[0]))


def rdm(x, dissimilarity: str = "correlation") -> Tensor:
    """Representational dissimilarity matrix, condensed. x: [n, d] -> [n(n-1)/2] float64.

    dissimilarity="correlation": 1 - Pearson correlation of two examples' feature vectors;
    dissimilarity="cosine": 1 - cosine similarity. Entry order matches scipy's pdist (i < j,
    row-major).
    """
    check_choice(dissimilarity, DISSIMILARITIES, "dissimilarity")
    x = as_single(x, "x")
    if x.shape[0] < 2:
        raise ConfigError(f"an RDM needs at least 2 examples; got n={x.shape[0]}")
    check_finite(x, "x")
    return _rdm(x, dissimilarity, "x")


def _subsample(n: int, max_examples, seed: int) -> Tensor | None:
    if max_examples is None or max_examples >= n:
        return None
    if not isinstance(max_examples, int) or max_examples < 3:
        raise ConfigError(f"max_examples must be an int >= 3 or None; got {max_examples!r}")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:max_examples].sort().values


def average_ranks(d: np.ndarray) -> np.ndarray:
    """Ranks 1..m of a finite 1-D array, ties sharing their mean rank: the values of
    ``scipy.stats.rankdata(d)`` (method "average") bit for bit, since every rank is an integer
    or a half, exact in float64; ~4x faster on a bootstrap RDM (one argsort, no input checks,
    nothing per tie group in Python). [m] -> [m] float64."""
    order = np.argsort(d)
    s = d[order]
    new = np.empty(len(s), dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)  # first sorted position of each group of equal values
    counts = np.diff(np.append(starts, len(s)))
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(starts + 0.5 * (counts + 1), counts)  # mean of start+1..start+c
    return ranks


def _standard_ranks(d: Tensor) -> Tensor | None:
    """Ranks of d (ties averaged), centred and scaled to unit norm; None if d is constant."""
    r = torch.from_numpy(average_ranks(to_numpy(d))).to(F64)
    r -= r.mean()
    norm = torch.linalg.vector_norm(r)
    return None if norm == 0 else r / norm


def rsa(x, y, *, dissimilarity: str = "correlation", max_examples: int | None = None,
        seed: int = 0) -> float:
    """Spearman correlation of the RDMs of x: [n, dx] and y: [n, dy] over the same examples.

    max_examples: if n is larger, use a seeded random subset of that many examples (the same
    rows of x and y); memory and time grow as n^2.
    """
    check_choice(dissimilarity, DISSIMILARITIES, "dissimilarity")
    x, y = as_single(x, "x"), as_single(y, "y")
    out = _rsa_core([x], [y], ("x", "y"), True, dissimilarity, max_examples, seed, "raise")
    return float(out[0, 0])


def rsa_matrix(a, b=None, *, dissimilarity: str = "correlation", max_examples: int | None = None,
               seed: int = 0, undefined: str = "warn") -> Tensor:
    """RSA between every layer of `a` and every layer of `b` (default: `a` with itself).

    Args:
        a: [La, n, d] tensor/array or a sequence of La arrays [n, d_l].
        b: same for a second model over the same examples; None = self-comparison.
        dissimilarity: "correlation" (1 - Pearson r) or "cosine" (1 - cosine similarity).
        max_examples: subsample this many examples (same rows for every layer) when n is larger.
        seed: seed of that subsample.
        undefined: what to do with a layer constant across examples (its RDM is all zeros, so
            the rank correlation is undefined; e.g. BERT's layer-0 CLS): "warn" (default)
            returns NaN in its row/column, computes the rest and emits an
            ``UndefinedCellsWarning`` naming the layers (as ``cka_matrix`` does); "nan" does
            the same silently; "raise" raises ``UndefinedError`` instead.

    Returns:
        [La, Lb] float64 tensor. Each layer's RDM is built and ranked once.
    """
    check_choice(dissimilarity, DISSIMILARITIES, "dissimilarity")
    la = as_stack(a, "a")
    lb = None if b is None else as_stack(b, "b")
    check_choice(undefined, MATRIX_UNDEFINED, "undefined")
    out = _rsa_core(la, lb, ("a", "b"), False, dissimilarity, max_examples, seed,
                    "nan" if undefined == "warn" else undefined)
    if undefined == "warn":
        warn_undefined_cells(out, la, lb, "RSA")
    return out


def _rsa_core(la, lb, names, single, dissimilarity, max_examples, seed, undefined) -> Tensor:
    check_choice(undefined, UNDEFINED, "undefined")
    n = same_examples(la, lb, names)
    if n < 3:
        raise ConfigError(f"RSA needs at least 3 examples (an RDM with >= 3 entries); got n={n}")
    layers, na = la + (lb or []), len(la)

    def label(i):
        return layer_label(i, na, names, single)

    idx = _subsample(n, max_examples, seed)
    m_ex = n if idx is None else idx.numel()
    upper = _upper(m_ex)  # shared by every layer's RDM
    ranks, undef = [], []
    for i, x in enumerate(layers):
        check_finite(x, label(i))
        x = x if idx is None else x[idx]
        r = (None if is_constant(x, DEFAULT_RTOL)
             else _standard_ranks(_rdm(x, dissimilarity, label(i), upper)))
        if r is None:
            if undefined == "raise":  # its RDM has no variation: no rank correlation
                raise constant_error(label(i), "RSA")
            undef.append(i)
        ranks.append(r)
    m = next(r.shape[0] for r in ranks if r is not None) if len(undef) < len(layers) else 1
    stack = torch.stack([torch.zeros(m, dtype=F64) if r is None else r for r in ranks])
    # Spearman = Pearson correlation of ranks; ranks are centred and unit-norm, so a dot product
    sim = stack[:na] @ (stack[na:] if lb is not None else stack[:na]).T
    if lb is None:
        sim.fill_diagonal_(1.0)
    bad = torch.zeros(len(layers), dtype=torch.bool)
    bad[undef] = True
    sim[bad[:na], :] = float("nan")
    sim[:, bad[na:] if lb is not None else bad[:na]] = float("nan")
    return sim
