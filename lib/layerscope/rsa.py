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

import torch
from scipy.stats import rankdata

from .cka import DEFAULT_RTOL, UNDEFINED, _as_single, _as_stack, _choice, same_examples

Tensor = torch.Tensor
F64 = torch.float64
METRICS = ("correlation", "cosine")

__all__ = ["rdm", "rsa", "rsa_matrix", "METRICS"]


def _check_finite(x: Tensor, what: str) -> None:
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{what} contains {bad} NaN/inf values; check the extraction or drop it")


def _rdm(x: Tensor, metric: str, what: str,
         upper: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """x: [n, d] finite -> condensed upper triangle [n(n-1)/2] (row-major i < j, like pdist)."""
    x = x.to(F64)
    scale = torch.linalg.vector_norm(x, dim=1)  # raw row norms: the yardstick for "zero"
    if metric == "correlation":  # 1 - Pearson r between the feature vectors of two examples
        x = x - x.mean(1, keepdim=True)
    norms = torch.linalg.vector_norm(x, dim=1)
    zero = torch.nonzero((norms <= 1e-10 * scale) | (norms == 0)).flatten().tolist()
    if zero:
        why = ("has constant features, so its Pearson correlation with other examples is"
               " undefined; use metric='cosine'" if metric == "correlation" else
               "is an all-zero vector, so its cosine similarity is undefined")
        raise ValueError(f"example {zero[0]} of {what} {why}")
    u = x / norms[:, None]
    sim = u @ u.T
    i, j = upper if upper is not None else torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    return 1.0 - sim[i, j]


def rdm(x, metric: str = "correlation") -> Tensor:
    """Representational dissimilarity matrix, condensed. x: [n, d] -> [n(n-1)/2] float64.

    metric="correlation": 1 - Pearson correlation of two examples' feature vectors;
    metric="cosine": 1 - cosine similarity. Entry order matches scipy's pdist (i < j, row-major).
    """
    _choice(metric, METRICS, "metric")
    x = _as_single(x, "x")
    if x.shape[0] < 2:
        raise ValueError(f"an RDM needs at least 2 examples; got n={x.shape[0]}")
    _check_finite(x, "x")
    return _rdm(x, metric, "x")


def _subsample(n: int, max_examples, seed: int) -> Tensor | None:
    if max_examples is None or max_examples >= n:
        return None
    if not isinstance(max_examples, int) or max_examples < 3:
        raise ValueError(f"max_examples must be an int >= 3 or None; got {max_examples!r}")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:max_examples].sort().values


def _standard_ranks(d: Tensor) -> Tensor | None:
    """Ranks of d (ties averaged), centred and scaled to unit norm; None if d is constant."""
    r = torch.from_numpy(rankdata(d.numpy())).to(F64)
    r -= r.mean()
    norm = torch.linalg.vector_norm(r)
    return None if norm == 0 else r / norm


def _constant(x: Tensor, rtol: float) -> bool:
    x = x.to(F64)
    return bool(torch.linalg.vector_norm(x - x.mean(0)) <= rtol * torch.linalg.vector_norm(x))


def rsa(x, y, *, metric: str = "correlation", max_examples: int | None = None,
        seed: int = 0) -> float:
    """Spearman correlation of the RDMs of x: [n, dx] and y: [n, dy] over the same examples.

    max_examples: if n is larger, use a seeded random subset of that many examples (the same
    rows of x and y); memory and time grow as n^2.
    """
    _choice(metric, METRICS, "metric")
    x, y = _as_single(x, "x"), _as_single(y, "y")
    out = _rsa_core([x], [y], ("x", "y"), True, metric, max_examples, seed, "raise")
    return float(out[0, 0])


def rsa_matrix(a, b=None, *, metric: str = "correlation", max_examples: int | None = None,
               seed: int = 0, undefined: str = "raise") -> Tensor:
    """RSA between every layer of `a` and every layer of `b` (default: `a` with itself).

    Args:
        a: [La, n, d] tensor/array or a sequence of La arrays [n, d_l].
        b: same for a second model over the same examples; None = self-comparison.
        metric: "correlation" or "cosine" dissimilarity.
        max_examples: subsample this many examples (same rows for every layer) when n is larger.
        seed: seed of that subsample.
        undefined: "raise" for a layer constant across examples (its RDM is all zeros, so the
            rank correlation is undefined), or "nan" to return NaN in its row/column.

    Returns:
        [La, Lb] float64 tensor. Each layer's RDM is built and ranked once.
    """
    _choice(metric, METRICS, "metric")
    la = _as_stack(a, "a")
    lb = None if b is None else _as_stack(b, "b")
    return _rsa_core(la, lb, ("a", "b"), False, metric, max_examples, seed, undefined)


def _rsa_core(la, lb, names, single, metric, max_examples, seed, undefined) -> Tensor:
    _choice(undefined, UNDEFINED, "undefined")
    n = same_examples(la, lb, names)
    if n < 3:
        raise ValueError(f"RSA needs at least 3 examples (an RDM with >= 3 entries); got n={n}")
    layers, na = la + (lb or []), len(la)

    def label(i):
        name, j = (names[0], i) if i < na else (names[1], i - na)
        return name if single else f"layer {j} of {name}"

    idx = _subsample(n, max_examples, seed)
    m_ex = n if idx is None else idx.numel()
    upper = tuple(torch.triu_indices(m_ex, m_ex, offset=1))  # shared by every layer's RDM
    ranks, undef = [], []
    for i, x in enumerate(layers):
        _check_finite(x, label(i))
        x = x if idx is None else x[idx]
        r = (None if _constant(x, DEFAULT_RTOL)
             else _standard_ranks(_rdm(x, metric, label(i), upper)))
        if r is None:
            if undefined == "raise":
                raise ValueError(f"{label(i)} is constant across examples (e.g. the layer-0 CLS"
                                 " vector of BERT-style models): its RDM has no variation, so"
                                 " RSA with it is undefined. Drop it or pass undefined='nan'")
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
