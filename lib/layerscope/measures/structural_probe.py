"""The structural probe of Hewitt & Manning 2019 (distance probe). No I/O.

A linear map B [r, d] is trained so that squared distances between projected word vectors match
the parse tree's path lengths, d_B(h_i, h_j) = ||B (h_i - h_j)||^2 ~ d_T(i, j) (§2, eq. 1-2),
by the paper's loss: per sentence the L1 error over all n^2 word pairs divided by n^2, averaged
over the sentences of a batch (§2). Training follows the authors' released regimen
(structural-probes ``regimen.py``): B initialised uniform in [-0.05, 0.05], Adam at lr 1e-3, the
learning rate x0.1 whenever the validation loss stops improving (``ReduceLROnPlateau``, patience
0), batches of 20 sentences, the parameters of the best validation loss kept, and a stop after 5
epochs without an improvement of more than 1e-4, or after ``max_epochs`` (40 in the authors'
configs, with full rank: the defaults here). Without validation data the training loss plays
its part. The plateau rule assumes large epochs (PTB: ~2,000 batches): on a few hundred
sentences it can cut the learning rate before the probe has learned, so use smaller batches or
a larger learning rate there (the tests do). For BERT-style models the authors' word vectors
are the mean of each word's sub-word states (their ``data.py``).

Evaluation (§3, the authors' ``reporter.py``):
* UUAS: the minimum spanning tree of the predicted distances against the gold tree's undirected
  edges, punctuation words left out of both trees (``keep`` masks: the authors drop words whose
  PTB tag is punctuation); gold edges are likewise the minimum spanning tree of the gold
  distances over the kept words, which are the tree's own edges when punctuation are leaves.
  Corpus UUAS = correct edges / gold edges, summed over sentences (a fraction in [0, 1]).
* Distance Spearman (DSpr.): for each word, the Spearman correlation between its row of
  predicted and gold distances (all words of the sentence, itself included); averaged within each
  sentence length, then across the lengths 5-50 (a macro average over lengths).

Shapes: a sentence's states [n, d] (one vector per word, one layer); heads [n] ints (word i's head
at position i - 1, 0 = ROOT, as CoNLL-U); distances [n, n].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from ..devices import to_numpy
from ..errors import ConfigError, UndefinedError
from ._inputs import check_finite

__all__ = ["tree_distances", "DistanceProbe", "fit_distance_probe", "UUASScores", "uuas",
           "SpearmanScores", "distance_spearman", "StructuralProbeScores", "evaluate_probe",
           "INIT_RANGE", "LEARNING_RATE", "BATCH_SIZE", "SPEARMAN_LENGTHS"]

INIT_RANGE = 0.05  # uniform(-0.05, 0.05), as the authors' TwoWordPSDProbe
LEARNING_RATE, BATCH_SIZE = 1e-3, 20  # the authors' regimen
SPEARMAN_LENGTHS = (5, 50)  # DSpr. averages the sentence lengths 5..50 (§3)


def tree_distances(heads) -> np.ndarray:
    """All-pairs path lengths between the words of a tree. heads [n] -> [n, n] int64.

    Exact: with A[i, k] = 1 when node k is word i or one of its ancestors (ROOT included), the
    number of common ancestors of i and j is depth(lca) + 1, so
    d(i, j) = depth(i) + depth(j) - 2 depth(lca(i, j)), one integer matrix product. Two words
    under ROOT (a multi-rooted tree) are 2 apart, through ROOT.
    """
    h = np.asarray(heads)
    if h.ndim != 1 or not len(h) or not np.issubdtype(h.dtype, np.integer):
        raise ConfigError(f"heads must be a non-empty 1-D integer array; got {h!r}")
    n = len(h)
    if ((h < 0) | (h > n) | (h == np.arange(1, n + 1))).any():
        bad = int(np.flatnonzero((h < 0) | (h > n) | (h == np.arange(1, n + 1)))[0])
        raise ConfigError(f"word {bad + 1} has head {h[bad]}: heads must be in 0..{n} and not"
                          " the word itself")
    parent = np.concatenate([[0], h]).astype(np.int64)
    anc = np.zeros((n, n + 1), dtype=np.int64)  # [word, node]: node is word or an ancestor
    node = np.arange(1, n + 1)
    rows = np.arange(n)
    for _ in range(n + 1):  # a tree reaches ROOT from every word within n steps
        anc[rows, node] = 1
        node = parent[node]
    if (node != 0).any():
        raise ConfigError(f"heads {h.tolist()} contain a cycle (word"
                          f" {int(np.flatnonzero(node != 0)[0]) + 1} never reaches ROOT)")
    depth = anc.sum(1) - 1  # ROOT is depth 0
    common = anc @ anc.T
    return depth[:, None] + depth[None, :] - 2 * (common - 1)


def _as_sentences(states, what: str) -> list[np.ndarray]:
    out = []
    for i, x in enumerate(states):
        a = np.asarray(to_numpy(x), dtype=np.float64)
        if a.ndim != 2 or not len(a):
            raise ConfigError(f"{what}[{i}] must be [n_words, d]; got shape {a.shape}")
        check_finite(torch.from_numpy(a), f"{what}[{i}]")
        out.append(a)
    if not out:
        raise ConfigError(f"{what} has no sentences")
    if len({a.shape[1] for a in out}) != 1:
        raise ConfigError(f"{what}: sentences have different widths"
                          f" {sorted({a.shape[1] for a in out})}; use one layer's states")
    return out


def _gold(states: list[np.ndarray], heads, what: str) -> list[np.ndarray]:
    if len(heads) != len(states):
        raise ConfigError(f"{len(states)} sentences of {what} states but {len(heads)} of heads")
    out = []
    for i, (x, h) in enumerate(zip(states, heads, strict=True)):
        if len(h) != len(x):
            raise ConfigError(f"{what} sentence {i}: {len(x)} word vectors but {len(h)} heads")
        out.append(tree_distances(h))
    return out


@dataclass(frozen=True)
class DistanceProbe:
    """A trained distance probe: B [r, d] and how training went (per-epoch losses)."""
    B: np.ndarray
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    best_epoch: int
    seed: int

    @property
    def rank(self) -> int:
        return self.B.shape[0]

    def distances(self, states) -> np.ndarray:
        """Predicted squared distances of one sentence: [n, d] -> [n, n] float64."""
        x = np.asarray(to_numpy(states), dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.B.shape[1]:
            raise ConfigError(f"states must be [n, {self.B.shape[1]}]; got shape {x.shape}")
        t = x @ self.B.T
        diff = t[:, None, :] - t[None, :, :]
        return np.einsum("ijr,ijr->ij", diff, diff)


def _batch_loss(B: torch.Tensor, x: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor,
                n: torch.Tensor) -> torch.Tensor:
    """Mean over sentences of sum |d_B - d_T| / n^2. x [b, N, d], gold/mask [b, N, N], n [b]."""
    t = x @ B.T
    sq = (t * t).sum(-1)
    pred = sq[:, :, None] + sq[:, None, :] - 2 * t @ t.transpose(1, 2)
    err = ((pred - gold).abs() * mask).sum((1, 2)) / n.to(x.dtype) ** 2
    return err.mean()


def _pad(states: list[np.ndarray], gold: list[np.ndarray], idx, dtype):
    n = torch.tensor([len(states[i]) for i in idx])
    big, d = int(n.max()), states[0].shape[1]
    x = torch.zeros(len(idx), big, d, dtype=dtype)
    g = torch.zeros(len(idx), big, big, dtype=dtype)
    m = torch.zeros(len(idx), big, big, dtype=dtype)
    for k, i in enumerate(idx):
        L = len(states[i])
        x[k, :L] = torch.from_numpy(states[i])
        g[k, :L, :L] = torch.from_numpy(gold[i])
        m[k, :L, :L] = 1
    return x, g, m, n


def _mean_loss(B, batches) -> float:
    with torch.no_grad():
        total = sum(_batch_loss(B, *b).item() * len(b[3]) for b in batches)
    return total / sum(len(b[3]) for b in batches)


def fit_distance_probe(states: Sequence, heads: Sequence, states_val: Sequence | None = None,
                       heads_val: Sequence | None = None, *, rank: int | None = None,
                       learning_rate: float = LEARNING_RATE, batch_size: int = BATCH_SIZE,
                       max_epochs: int = 40, patience: int = 5, seed: int = 0,
                       dtype: torch.dtype = torch.float32) -> DistanceProbe:
    """Train B on sentences (states [n_s, d], heads [n_s] each); see the module docstring.

    rank: r, the rows of B (default d, full rank; the paper's rank study finds UUAS saturating
    near 64). Deterministic for a given seed (initialisation and batch order).
    """
    xs = _as_sentences(states, "states")
    gold = _gold(xs, heads, "training")
    d = xs[0].shape[1]
    r = d if rank is None else int(rank)
    if not 1 <= r:
        raise ConfigError(f"rank={rank}; the probe's rank must be >= 1")
    if (states_val is None) != (heads_val is None):
        raise ConfigError("give both states_val and heads_val, or neither")
    val = None
    if states_val is not None:
        xv = _as_sentences(states_val, "states_val")
        if xv[0].shape[1] != d:
            raise ConfigError(f"states_val has width {xv[0].shape[1]} but states has {d}")
        gv = _gold(xv, heads_val, "validation")
        val = [_pad(xv, gv, list(range(i, min(i + batch_size, len(xv)))), dtype)
               for i in range(0, len(xv), batch_size)]
    gen = torch.Generator().manual_seed(seed)
    B = (torch.rand(r, d, generator=gen, dtype=dtype) * 2 - 1) * INIT_RANGE
    B.requires_grad_(True)
    opt = torch.optim.Adam([B], lr=learning_rate)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=0)
    train_curve, val_curve = [], []
    best, best_epoch, best_B = float("inf"), -1, B.detach().clone()
    rng = np.random.default_rng(seed)
    all_train = None
    for epoch in range(max_epochs):
        order = rng.permutation(len(xs))
        seen, total = 0, 0.0
        for i in range(0, len(xs), batch_size):
            batch = _pad(xs, gold, order[i:i + batch_size], dtype)
            opt.zero_grad()
            loss = _batch_loss(B, *batch)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch[3])
            seen += len(batch[3])
        train_curve.append(total / seen)
        if val is None:  # no validation data: the training loss after the epoch decides
            all_train = all_train or [_pad(xs, gold, list(range(i, min(i + batch_size, len(xs)))),
                                           dtype) for i in range(0, len(xs), batch_size)]
            score = _mean_loss(B, all_train)
        else:
            score = _mean_loss(B, val)
        val_curve.append(score)
        sched.step(score)
        if score < best - 1e-4:
            best, best_epoch, best_B = score, epoch, B.detach().clone()
        elif best_epoch < epoch - (patience - 1):
            break
    return DistanceProbe(to_numpy(best_B.to(torch.float64)), tuple(train_curve), tuple(val_curve),
                         best_epoch, seed)


def _mst_edges(dist: np.ndarray) -> set[tuple[int, int]]:
    """Kruskal's minimum spanning tree of a symmetric [k, k] matrix: edges (i, j), i < j. Ties go
    to the earlier pair in row-major order (the authors' stable sort)."""
    k = len(dist)
    iu, ju = np.triu_indices(k, 1)
    parent = list(range(k))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    edges = set()
    for e in np.argsort(dist[iu, ju], kind="stable"):
        a, b = find(int(iu[e])), find(int(ju[e]))
        if a != b:
            parent[a] = b
            edges.add((int(iu[e]), int(ju[e])))
            if len(edges) == k - 1:
                break
    return edges


@dataclass(frozen=True)
class UUASScores:
    """Corpus UUAS (a fraction) and per-sentence counts [S]: right edges, gold edges."""
    uuas: float
    correct: np.ndarray
    total: np.ndarray


def _keep_masks(keep, lengths, what="keep") -> list[np.ndarray]:
    if keep is None:
        return [np.ones(n, dtype=bool) for n in lengths]
    if len(keep) != len(lengths):
        raise ConfigError(f"{what} has {len(keep)} sentences but there are {len(lengths)}")
    out = []
    for i, (k, n) in enumerate(zip(keep, lengths, strict=True)):
        k = np.asarray(k, dtype=bool)
        if k.shape != (n,):
            raise ConfigError(f"{what}[{i}] has shape {k.shape} but sentence {i} has {n} words")
        out.append(k)
    return out


def uuas(pred_distances: Sequence, heads: Sequence, *, keep: Sequence | None = None
         ) -> UUASScores:
    """UUAS of predicted distance matrices ([n_s, n_s] each) against gold trees (heads [n_s]).

    keep: per sentence, [n_s] bool, the words in the trees (False for punctuation; None: all)."""
    if len(pred_distances) != len(heads) or not len(heads):
        raise ConfigError(f"{len(pred_distances)} predicted distance matrices and {len(heads)}"
                          " trees: give one of each per sentence (at least one)")
    masks = _keep_masks(keep, [len(h) for h in heads])
    correct, total = np.zeros(len(heads), np.int64), np.zeros(len(heads), np.int64)
    for s, (p, h, k) in enumerate(zip(pred_distances, heads, masks, strict=True)):
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (len(h), len(h)) or not np.isfinite(p).all():
            raise ConfigError(f"predicted distances of sentence {s} must be a finite"
                              f" [{len(h)}, {len(h)}] matrix; got shape {p.shape}")
        idx = np.flatnonzero(k)
        gold = _mst_edges(tree_distances(h)[np.ix_(idx, idx)].astype(np.float64))
        pred = _mst_edges(p[np.ix_(idx, idx)])
        correct[s], total[s] = len(gold & pred), len(gold)
    if total.sum() == 0:
        raise UndefinedError("no sentence has two kept words, so there is no edge to score;"
                             " UUAS is undefined")
    return UUASScores(float(correct.sum() / total.sum()), correct, total)


@dataclass(frozen=True)
class SpearmanScores:
    """DSpr.: ``mean`` over lengths of the mean per length; the sentences it averages
    (``sentence_index`` [K], their ``lengths`` [K] and ``per_sentence`` [K] mean row
    correlations) and ``per_length`` {length: mean}."""
    mean: float
    per_length: dict
    sentence_index: np.ndarray
    lengths: np.ndarray
    per_sentence: np.ndarray


def _row_spearman(p: np.ndarray, g: np.ndarray, s: int) -> np.ndarray:
    rp, rg = rankdata(p, axis=1), rankdata(g, axis=1)
    rp -= rp.mean(1, keepdims=True)
    rg -= rg.mean(1, keepdims=True)
    norm = np.linalg.norm(rp, axis=1) * np.linalg.norm(rg, axis=1)
    if (norm == 0).any():
        w = int(np.flatnonzero(norm == 0)[0])
        raise UndefinedError(f"sentence {s} word {w + 1}: its predicted distances to the other"
                             " words are all equal, so their Spearman correlation is undefined")
    return (rp * rg).sum(1) / norm


def distance_spearman(pred_distances: Sequence, heads: Sequence, *,
                      lengths: tuple[int, int] = SPEARMAN_LENGTHS) -> SpearmanScores:
    """DSpr. of predicted distance matrices against gold trees (module docstring)."""
    if len(pred_distances) != len(heads):
        raise ConfigError(f"{len(pred_distances)} predicted distance matrices and {len(heads)}"
                          " trees: give one of each per sentence")
    lo, hi = lengths
    chosen = [s for s, h in enumerate(heads) if lo <= len(h) <= hi]
    if not chosen:
        raise UndefinedError(f"no sentence has {lo}-{hi} words; the distance Spearman averages"
                             " those lengths (pass lengths=(min, max) to change the range)")
    per = np.empty(len(chosen))
    for k, s in enumerate(chosen):
        p = np.asarray(pred_distances[s], dtype=np.float64)
        n = len(heads[s])
        if p.shape != (n, n) or not np.isfinite(p).all():
            raise ConfigError(f"predicted distances of sentence {s} must be a finite [{n}, {n}]"
                              f" matrix; got shape {p.shape}")
        per[k] = _row_spearman(p, tree_distances(heads[s]).astype(np.float64), s).mean()
    ns = np.array([len(heads[s]) for s in chosen])
    # every sentence of one length has the same number of rows, so the mean of its sentences'
    # row means is the authors' mean over all rows of that length
    per_length = {int(n): float(per[ns == n].mean()) for n in np.unique(ns)}
    return SpearmanScores(float(np.mean(list(per_length.values()))), per_length,
                          np.array(chosen), ns, per)


@dataclass(frozen=True)
class StructuralProbeScores:
    uuas: UUASScores
    spearman: SpearmanScores

    def to_record(self) -> dict:
        return {"uuas": self.uuas.uuas, "dspr": self.spearman.mean,
                "n_sentences": len(self.uuas.total)}


def evaluate_probe(probe: DistanceProbe, states: Sequence, heads: Sequence, *,
                   keep: Sequence | None = None,
                   lengths: tuple[int, int] = SPEARMAN_LENGTHS) -> StructuralProbeScores:
    """UUAS (punctuation left out through ``keep``) and DSpr. of ``probe`` on sentences."""
    xs = _as_sentences(states, "states")
    pred = [probe.distances(x) for x in xs]
    return StructuralProbeScores(uuas(pred, heads, keep=keep),
                                 distance_spearman(pred, heads, lengths=lengths))
