"""Tree decoders for arc scores: Chu-Liu/Edmonds (any tree) and Eisner (projective trees).

Scores: [n + 1, n + 1] indexed [dependent, head], index 0 the ROOT (row 0 and the diagonal are
ignored); a tree's score is the sum of its arcs' scores. Heads: [n] ints, heads[i - 1] the head
of word i, 0 for ROOT. Both decoders are exact:

* ``chu_liu_edmonds``: the maximum spanning arborescence rooted at 0 (Chu & Liu 1965; Edmonds
  1967), by the recursive contraction formulation (McDonald et al. 2005, §3): every word takes
  its best head; a cycle is contracted to one node whose incoming arc (h -> cycle) scores
  max over v in the cycle of s[v, h] - s[v, head(v)], and whose outgoing arcs take the best
  cycle member as head; the contracted problem is solved and expanded. O(n^3) at worst.
* ``eisner``: the best projective tree (Eisner 1996), O(n^3) dynamic programme over spans,
  vectorised over all spans of one width.

``single_root=True`` allows one word only under ROOT, as UD trees have (Dozat & Manning's
parser and SuPar enforce it; Zmigrod et al. 2020, "Please Mind the Root", on why it matters).
SuPar re-runs the decoder once per root child of the unconstrained tree, with that child forced;
here it is one call: every root arc is lowered by a constant M larger than the score range of
any two trees (n x (max - min) + 1), so each extra root child costs more than any tree can gain
and the best penalised tree is exactly the best single-root tree (tests check it against
brute force). For Eisner the root's complete span may stop only at the sentence end (as in
SuPar's ``eisner``), so ROOT takes one child.

Adding a constant to all scores of one dependent (a row) changes no decoder's choice, since
every tree has exactly one arc into each word: raw biaffine scores and their log-softmax over
heads decode to the same tree.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_choice

__all__ = ["check_heads", "is_tree", "is_projective", "tree_score", "chu_liu_edmonds",
           "eisner", "decode", "ALGORITHMS"]

ALGORITHMS = ("mst", "eisner")


def _tree_problem(heads: np.ndarray) -> str | None:
    """None if ``heads`` is a tree rooted at 0, else what is wrong."""
    n = len(heads)
    if not np.issubdtype(heads.dtype, np.integer):
        return f"heads must be integers; got dtype {heads.dtype}"
    bad = np.flatnonzero((heads < 0) | (heads > n))
    if len(bad):
        return f"word {bad[0] + 1} has head {heads[bad[0]]}, outside 0..{n}"
    self_loop = np.flatnonzero(heads == np.arange(1, n + 1))
    if len(self_loop):
        return f"word {self_loop[0] + 1} is its own head"
    # follow heads n times from every word at once: a tree leaves them all at ROOT
    parent = np.concatenate([[0], heads])
    node = np.arange(1, n + 1)
    for _ in range(n):
        node = parent[node]
    stuck = np.flatnonzero(node != 0)
    if len(stuck):
        return f"word {stuck[0] + 1} is on a cycle or below one (it never reaches ROOT)"
    return None


def check_heads(heads, what: str = "heads") -> np.ndarray:
    """``heads`` as an int64 [n] array, or an error saying why it is not a tree."""
    h = np.asarray(heads)
    if h.ndim != 1:
        raise ConfigError(f"{what} must be a 1-D array of heads (one per word); got shape"
                          f" {h.shape}")
    h = h.astype(np.int64) if h.dtype == bool else h
    problem = _tree_problem(h)
    if problem:
        raise ConfigError(f"{what} is not a dependency tree: {problem}")
    return h.astype(np.int64)


def is_tree(heads) -> bool:
    """Every word reaches ROOT (0) through its heads, with no cycle."""
    h = np.asarray(heads)
    return h.ndim == 1 and _tree_problem(h) is None


def is_projective(heads) -> bool:
    """No two arcs cross, ROOT's arcs included (ROOT sits left of word 1): for each arc, every
    word strictly between its ends descends from its head. ``heads`` must be a tree."""
    h = check_heads(heads)
    n = len(h)
    arcs = np.stack([np.minimum(h, np.arange(1, n + 1)), np.maximum(h, np.arange(1, n + 1))], 1)
    lo, hi = arcs[:, 0], arcs[:, 1]
    # arcs (a, b) and (c, d) cross when a < c < b < d
    a, b = lo[:, None], hi[:, None]
    c, d = lo[None, :], hi[None, :]
    return not bool(((a < c) & (c < b) & (b < d)).any())


def _check_scores(scores, n: int | None = None) -> np.ndarray:
    s = np.array(scores, dtype=np.float64)  # a copy: the decoders write into it
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 2:
        raise ConfigError(f"arc scores must be a square [n + 1, n + 1] matrix ([dependent, head],"
                          f" row/column 0 = ROOT) with n >= 1; got shape {s.shape}")
    used = s[1:].copy()
    np.fill_diagonal(used[:, 1:], 0.0)
    if not np.isfinite(used).all():
        d, h = np.argwhere(~np.isfinite(used))[0]
        raise ConfigError(f"arc score [{d + 1}, {h}] is {used[d, h]}; the scores of real words"
                          " must be finite (slice padding off before decoding)")
    return s


def tree_score(scores, heads) -> float:
    """Sum of the tree's arc scores: sum over words i of scores[i, heads[i - 1]]."""
    s = np.asarray(scores, dtype=np.float64)
    h = np.asarray(heads, dtype=np.int64)
    return float(s[np.arange(1, len(h) + 1), h].sum())


def _find_cycle(heads: np.ndarray) -> np.ndarray | None:
    """The nodes of one cycle of the head graph (node 0 = ROOT has none), or None."""
    m = len(heads)
    state = np.zeros(m, dtype=np.int8)  # 0 new, 1 on the current path, 2 done
    state[0] = 2
    for start in range(1, m):
        path, v = [], start
        while state[v] == 0:
            state[v] = 1
            path.append(v)
            v = heads[v]
        if state[v] == 1:  # the walk came back onto itself: v starts the cycle
            return np.array(path[path.index(v):])
        state[path] = 2
    return None


def _cle(s: np.ndarray) -> np.ndarray:
    """Heads [m] (heads[0] unused) of the maximum arborescence of s [m, m] (-inf on the
    diagonal and row 0)."""
    heads = s.argmax(1)
    heads[0] = 0
    cycle = _find_cycle(heads)
    if cycle is None:
        return heads
    inside = np.zeros(len(s), dtype=bool)
    inside[cycle] = True
    rest = np.flatnonzero(~inside)  # rest[0] == 0, ROOT
    k = len(rest)
    s2 = np.full((k + 1, k + 1), -np.inf)
    s2[:k, :k] = s[np.ix_(rest, rest)]
    # the cycle as a dependent: head h outside enters at v, breaking v's arc in the cycle
    enter = s[np.ix_(cycle, rest)] - s[cycle, heads[cycle]][:, None]  # [|C|, k]
    v_best = enter.argmax(0)
    s2[k, :k] = enter[v_best, np.arange(k)]
    # the cycle as a head: each outside dependent takes its best head inside the cycle
    leave = s[np.ix_(rest, cycle)]  # [k, |C|]
    u_best = leave.argmax(1)
    s2[:k, k] = leave[np.arange(k), u_best]
    h2 = _cle(s2)
    out = heads.copy()
    hr = h2[1:k]
    out[rest[1:]] = np.where(hr == k, cycle[u_best[1:]], rest[np.minimum(hr, k - 1)])
    out[cycle[v_best[h2[k]]]] = rest[h2[k]]
    return out


def _root_penalty(s: np.ndarray) -> float:
    n = len(s) - 1
    used = s[1:].copy()
    np.fill_diagonal(used[:, 1:], np.nan)
    return n * float(np.nanmax(used) - np.nanmin(used)) + 1.0


def chu_liu_edmonds(scores, *, single_root: bool = False) -> np.ndarray:
    """The highest-scoring dependency tree (any, non-projective allowed). [n + 1, n + 1] -> [n]."""
    s = _check_scores(scores)
    np.fill_diagonal(s, -np.inf)
    s[0] = -np.inf
    if single_root and len(s) > 2:
        s[1:, 0] -= _root_penalty(s)
    return _cle(s)[1:].astype(np.int64)


def eisner(scores, *, single_root: bool = False) -> np.ndarray:
    """The highest-scoring projective dependency tree. [n + 1, n + 1] -> [n]."""
    s = _check_scores(scores)
    n = len(s) - 1
    neg = -np.inf
    # [i, j] spans over positions 0..n; R: headed at the left end i, L: headed at the right end j
    CR, CL = np.full((n + 1, n + 1), neg), np.full((n + 1, n + 1), neg)
    IR, IL = np.full((n + 1, n + 1), neg), np.full((n + 1, n + 1), neg)
    bCR, bCL, bIR, bIL = (np.zeros((n + 1, n + 1), dtype=np.int64) for _ in range(4))
    diag = np.arange(n + 1)
    CR[diag, diag] = CL[diag, diag] = 0.0
    for w in range(1, n + 1):
        i = np.arange(0, n + 1 - w)
        j = i + w
        t = np.arange(w)
        k = i[:, None] + t[None, :]  # split points i <= k < j: [spans, w]
        inner = CR[i[:, None], k] + CL[k + 1, j[:, None]]
        best = inner.argmax(1)
        top = inner[np.arange(len(i)), best]
        IR[i, j], bIR[i, j] = top + s[j, i], i + best  # arc i -> j
        IL[i, j], bIL[i, j] = top + s[i, j], i + best  # arc j -> i
        IL[0, w] = neg  # ROOT is nobody's dependent
        cand = CL[i[:, None], k] + IL[k, j[:, None]]  # CL[i, j]: head j, split i <= k < j
        best = cand.argmax(1)
        CL[i, j], bCL[i, j] = cand[np.arange(len(i)), best], i + best
        k2 = k + 1  # CR[i, j]: head i, split i < k <= j
        cand = IR[i[:, None], k2] + CR[k2, j[:, None]]
        best = cand.argmax(1)
        CR[i, j], bCR[i, j] = cand[np.arange(len(i)), best], i + 1 + best
        if single_root and w < n:
            CR[0, w] = neg  # ROOT's complete span may only end at the sentence end
    heads = np.zeros(n + 1, dtype=np.int64)
    stack = [("C>", 0, n)]
    while stack:
        kind, i, j = stack.pop()
        if i == j:
            continue
        if kind == "C>":
            k = bCR[i, j]
            stack += [("I>", i, k), ("C>", k, j)]
        elif kind == "C<":
            k = bCL[i, j]
            stack += [("C<", i, k), ("I<", k, j)]
        elif kind == "I>":
            heads[j] = i
            k = bIR[i, j]
            stack += [("C>", i, k), ("C<", k + 1, j)]
        else:
            heads[i] = j
            k = bIL[i, j]
            stack += [("C>", i, k), ("C<", k + 1, j)]
    return heads[1:]


def decode(scores, lengths, *, algorithm: str = "mst", single_root: bool = True) -> np.ndarray:
    """Trees for a padded batch: scores [B, W + 1, W + 1], lengths [B] words per sentence ->
    heads [B, W] (-1 at padding). One decoder call per sentence (the decoders are per tree)."""
    check_choice(algorithm, ALGORITHMS, "tree decoding algorithm")
    s = np.asarray(scores, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if s.ndim != 3 or s.shape[1] != s.shape[2] or len(lengths) != len(s):
        raise ConfigError(f"batch scores must be [B, W + 1, W + 1] with one length per"
                          f" sentence; got scores {s.shape} and {len(lengths)} lengths")
    width = s.shape[1] - 1
    if (lengths < 1).any() or (lengths > width).any():
        raise ConfigError(f"sentence lengths must be in 1..{width}; got {lengths.tolist()}")
    fn = chu_liu_edmonds if algorithm == "mst" else eisner
    out = np.full((len(s), width), -1, dtype=np.int64)
    for b, n in enumerate(lengths):
        out[b, :n] = fn(s[b, :n + 1, :n + 1], single_root=single_root)
    return out
