"""How much a layer changed, with a bootstrap over sentences: linear CKA of the same words in
several models, on the full sample and on resamples of whole sentences; and the rule that
says when a layer counts as reconfigured. Arrays in, arrays out (no I/O).

**Cluster bootstrap.** The rows are words and the unit of resampling is the sentence (words of
one sentence are not independent), so a resample is a count m_s per sentence and each word
weighs w_a = m_{s(a)}. Linear CKA of a weighted sample is the plug-in CKA of the resample
(the words of a sentence drawn twice, counted twice): with Gram matrices K = X X^T, L = Y Y^T
and W = sum_a w_a, the weighted-centred HSIC is

    HSIC_w(K, L) = s - (2 / W) sum_a w_a (Kw)_a (Lw)_a + (w^T K w)(w^T L w) / W^2,
    s = sum_ab w_a w_b K_ab L_ab = m^T P m,   P_st = sum_{a in s, b in t} K_ab L_ab

(tr(D C K C L) with C the weighted centring; the identity of ``cka_stats.bootstrap_cka`` with
its n replaced by W, which a sentence resample needs: its word count varies). P [S, S] and
KG = K G [n, S] (G: word -> sentence) are computed once from the full Grams, so a replicate
costs O(S^2 + n S) per pair instead of the O(n d^2) of recomputing CKA, and the Grams never
have to be held whole (row chunks aligned to sentences). With every m_s = 1 this is plain
linear CKA (``measures.cka.linear_cka``, tested).

**The reconfiguration rule** (``excess``, ``reconfigured``): a layer's change from ORIG is
1 - CKA(FT, ORIG) (the mean over seeds); its threshold is the seeds' change 1 - CKA(FT[1],
FT[2]) of the same layer (the change that fine-tuning's own randomness makes) plus ``margin``,
or ``margin`` alone. Excess = change - threshold; the layer is reconfigured when the whole
bootstrap interval of its excess is above 0 (the verdict rule of ``studies.base``).

Shapes: states [n, d] (one layer, n words); groups [n] the sentence of each word (0..S-1,
non-decreasing); counts [B, S] sentence counts of B resamples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ...devices import to_numpy
from ...errors import ConfigError

F64 = torch.float64
CHUNK_WORDS = 1024  # rows of the Grams held at once (per model): ~n x 1024 floats each


def sentence_counts(indices: np.ndarray, n_sentences: int) -> np.ndarray:
    """[B, S] how often each sentence is drawn, from bootstrap indices [B, S]
    (``measures.intervals.bootstrap_indices``)."""
    idx = np.asarray(indices, dtype=np.int64)
    out = np.zeros((idx.shape[0], n_sentences), dtype=np.float64)
    np.add.at(out, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), 1.0)
    return out


def check_groups(groups, n: int) -> np.ndarray:
    g = np.asarray(groups, dtype=np.int64)
    if g.shape != (n,):
        raise ConfigError(f"groups has shape {g.shape} for {n} words: one sentence index per "
                          "word")
    if n and (g[0] != 0 or (np.diff(g) < 0).any() or (np.diff(g) > 1).any()):
        raise ConfigError("groups must number the sentences 0..S-1 in word order (non-"
                          "decreasing, no sentence skipped)")
    return g


def _segment_sum(x: torch.Tensor, groups: torch.Tensor, n_groups: int, dim: int) -> torch.Tensor:
    """Sums of x over the positions of each group along ``dim`` -> size n_groups there."""
    shape = list(x.shape)
    shape[dim] = n_groups
    return torch.zeros(shape, dtype=x.dtype, device=x.device).index_add_(dim, groups, x)


def cluster_cka(states: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], groups,
                counts: np.ndarray | None = None, *, device=None,
                chunk_words: int = CHUNK_WORDS) -> tuple[dict, dict]:
    """Linear (biased) CKA of each pair of representation sets over the same words, on the
    full sample and on sentence resamples.

    Args:
        states: name -> [n, d_name] (one layer of each model, the same n words in the same
            order).
        pairs: (a, b) names whose CKA is wanted.
        groups: [n] sentence of each word (``check_groups``).
        counts: [B, S] sentence counts of the resamples (``sentence_counts``); None: none.
        device: where the Gram products run (float32 GEMMs of centred states; the sums are
            float64); None: the CPU.

    Returns:
        (estimate, replicates): pair -> float, and pair -> [B] float64 (NaN for a resample
        where a side is constant).
    """
    names = list(dict.fromkeys(n for p in pairs for n in p))
    n = len(groups)
    g = check_groups(groups, n)
    S = int(g[-1]) + 1 if n else 0
    if S < 2:
        raise ConfigError(f"{S} sentence(s): a bootstrap over sentences needs at least 2")
    dev = torch.device("cpu") if device is None else torch.device(device)
    x = {}
    for k in names:
        a = np.asarray(states[k])
        if a.ndim != 2 or a.shape[0] != n:
            raise ConfigError(f"states[{k!r}] has shape {a.shape}, not [{n}, d]")
        t = torch.from_numpy(np.asarray(a, dtype=np.float64))
        if not torch.isfinite(t).all():
            raise ConfigError(f"states[{k!r}] has NaN or infinite values")
        x[k] = (t - t.mean(0)).to(dev, torch.float32)  # centre first (DESIGN §4: exact sums)
    gt = torch.from_numpy(g).to(dev)
    kg = {k: torch.zeros(n, S, dtype=F64, device=dev) for k in names}
    selfs = [(k, k) for k in names]
    wanted = list(dict.fromkeys([*[tuple(p) for p in pairs], *selfs]))
    P = {p: torch.zeros(S, S, dtype=F64, device=dev) for p in wanted}
    starts = np.flatnonzero(np.r_[True, np.diff(g) > 0])
    s0 = 0
    while s0 < S:  # row chunks of whole sentences, about chunk_words words each
        r0 = int(starts[s0])
        s1 = s0 + 1
        while s1 < S and starts[s1] - r0 < chunk_words:
            s1 += 1
        r1 = int(starts[s1]) if s1 < S else n
        rows = gt[r0:r1] - s0
        grams = {k: (x[k][r0:r1] @ x[k].T).to(F64) for k in names}  # [c, n]
        for k in names:
            kg[k][r0:r1] = _segment_sum(grams[k], gt, S, 1)
        for a, b in wanted:
            block = _segment_sum(grams[a] * grams[b], gt, S, 1)  # [c, S]
            P[(a, b)][s0:s1] = _segment_sum(block, rows, s1 - s0, 0)
        s0 = s1
    ones = torch.ones(1, S, dtype=F64, device=dev)
    est = _cka_of(ones, gt, kg, P, pairs)
    reps: dict = {tuple(p): np.zeros(0) for p in pairs}
    if counts is not None:
        m = torch.as_tensor(np.asarray(counts, dtype=np.float64), device=dev)
        if m.ndim != 2 or m.shape[1] != S:
            raise ConfigError(f"counts has shape {tuple(m.shape)}, not [B, {S}]")
        parts = [_cka_of(m[i:i + 256], gt, kg, P, pairs) for i in range(0, m.shape[0], 256)]
        reps = {tuple(p): np.concatenate([q[tuple(p)] for q in parts]) for p in pairs}
    return {tuple(p): float(v[0]) for p, v in est.items()}, reps


def _cka_of(m: torch.Tensor, groups: torch.Tensor, kg: dict, P: dict, pairs) -> dict:
    """CKA of every pair on the resamples m [B, S] (module docstring)."""
    w = m[:, groups]  # [B, n]
    W = w.sum(1)
    kw = {k: m @ v.T for k, v in kg.items()}  # [B, n]: (K w)_a
    wkw = {k: (w * v).sum(1) for k, v in kw.items()}

    def hsic(a, b):
        s = ((m @ P[(a, b)]) * m).sum(1)
        return s - (2.0 / W) * (w * kw[a] * kw[b]).sum(1) + wkw[a] * wkw[b] / W**2

    out = {}
    for a, b in pairs:
        hab, haa, hbb = hsic(a, b), hsic(a, a), hsic(b, b)
        ok = (haa > 0) & (hbb > 0)
        out[(a, b)] = to_numpy(torch.where(ok, hab / torch.sqrt(haa * hbb).clamp_min(1e-300),
                                           torch.full_like(hab, float("nan"))))
    return out


# --------------------------------------------------------------------------- the rule
def change(ft_orig: np.ndarray) -> np.ndarray:
    """A layer's change from ORIG: 1 - CKA(FT, ORIG), the mean over seeds.
    ft_orig [..., n_seeds, L+1] -> [..., L+1]."""
    return 1.0 - np.asarray(ft_orig, dtype=np.float64).mean(-2)


def excess(ft_orig: np.ndarray, ft_ft: np.ndarray | None, threshold: str,
           margin: float = 0.0) -> np.ndarray:
    """The change beyond the threshold (module docstring), per layer.

    ft_orig: [..., n_seeds, L+1] CKA(FT_s, ORIG) of the same layer; ft_ft: [..., L+1]
    CKA(FT[1], FT[2]) (``threshold="seeds"``; None for "fixed"). -> [..., L+1]."""
    out = change(ft_orig) - margin
    if threshold == "seeds":
        if ft_ft is None:
            raise ConfigError("threshold 'seeds' needs CKA(FT[1], FT[2]): two seeds")
        out = out - (1.0 - np.asarray(ft_ft, dtype=np.float64))
    elif threshold != "fixed":
        raise ConfigError(f"unknown threshold {threshold!r}; use 'seeds' or 'fixed'")
    return out


def reconfigured(low: np.ndarray) -> np.ndarray:
    """[L+1] bool: layers whose excess interval lies entirely above 0 (its low end > 0)."""
    lo = np.asarray(low, dtype=np.float64)
    return np.isfinite(lo) & (lo > 0)


def lowest(flags: np.ndarray) -> int | None:
    """The lowest flagged layer, or None when none is."""
    hit = np.flatnonzero(np.asarray(flags, dtype=bool))
    return int(hit[0]) if len(hit) else None


def plugin_counts(excess_replicates: np.ndarray) -> np.ndarray:
    """Layers with a positive excess, per resample: [B, L+1] -> [B] (the statistic whose
    bootstrap interval the cross-task verdict reads; on the full sample it is the number of
    layers whose excess estimate is above 0)."""
    e = np.asarray(excess_replicates, dtype=np.float64)
    counts = (e > 0).sum(-1).astype(np.float64)
    return np.where(np.isnan(e).any(-1), np.nan, counts)


def plugin_lowest(excess_replicates: np.ndarray) -> np.ndarray:
    """The lowest layer with a positive excess, per resample ([B, L+1] -> [B]); L+1 when no
    layer has one (one past the top: "nothing reconfigured" sorts as shallowest)."""
    e = np.asarray(excess_replicates, dtype=np.float64)
    pos = e > 0
    first = np.where(pos.any(-1), pos.argmax(-1), e.shape[-1]).astype(np.float64)
    return np.where(np.isnan(e).any(-1), np.nan, first)
