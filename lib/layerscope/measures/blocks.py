"""Block-diagonal structure in a layer x layer similarity matrix. Pure tensor code, no I/O.

Phang, Liu & Bowman 2021 ("Fine-Tuned Transformers Show Clusters of Similar Representations
Across Layers") observe that after fine-tuning, CKA between layers of RoBERTa/ALBERT splits into
an early and a late cluster. We quantify that with one boundary b: blocks [0, b) and [b, L), and
the contrast (mean within-block similarity) - (mean between-block similarity). This is our
summary statistic, not a procedure from the paper.

Layer index 0 is the embedding output, i the output of block i (HF ``hidden_states[i]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["BlockStructure", "find_block_boundary", "block_scores", "block_structure"]


@dataclass(frozen=True)
class BlockStructure:
    """Best two-block split of a layer x layer similarity matrix.

    boundary: b in 1..L-1; the blocks are layers [0, b) and [b, L).
    score: within - between (higher = stronger block structure).
    within: mean similarity of off-diagonal cells inside either block (NaN cells ignored).
    between: mean similarity of cells linking the two blocks (both triangles, NaN ignored).
    """

    boundary: int
    score: float
    within: float
    between: float


def _as_square(matrix) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix)
    m = m.to(torch.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ConfigError(f"matrix must be a square layer x layer similarity matrix; got shape"
                         f" {tuple(m.shape)}")
    if m.shape[0] < 3:
        raise ConfigError(f"a block boundary needs at least 3 layers (so that some block has"
                         f" off-diagonal cells); got {m.shape[0]}")
    if torch.isinf(m).any():
        raise ConfigError("matrix contains inf values")
    return m


def _contrast(m: torch.Tensor, b: int) -> tuple[float, float]:
    """(within, between) means for boundary b, NaN cells and the diagonal excluded."""
    n = m.shape[0]
    side = torch.arange(n) >= b
    same = side[:, None] == side[None, :]
    off_diag = ~torch.eye(n, dtype=torch.bool)
    ok = ~torch.isnan(m)
    w, bt = m[same & off_diag & ok], m[~same & ok]
    nan = float("nan")
    return (float(w.mean()) if w.numel() else nan, float(bt.mean()) if bt.numel() else nan)


def block_scores(matrix) -> torch.Tensor:
    """Contrast within - between for every boundary b = 1..L-1. matrix: [L, L] -> [L-1].

    Entry b-1 is NaN where one of the two means has no defined cells (e.g. b = 1 with an
    undefined layer 0).
    """
    m = _as_square(matrix)
    out = []
    for b in range(1, m.shape[0]):
        w, bt = _contrast(m, b)
        out.append(w - bt)
    return torch.tensor(out, dtype=torch.float64)


def find_block_boundary(matrix) -> BlockStructure:
    """Boundary b maximising mean within-block minus mean between-block similarity.

    Args:
        matrix: [L, L] similarity of a model's layers with themselves (e.g. FT-FT CKA). NaN cells
            (e.g. an undefined layer 0) are ignored; the diagonal is excluded from within means.

    Returns:
        BlockStructure; ties go to the smallest b.
    """
    scores = block_scores(matrix)
    if torch.isnan(scores).all():
        raise ConfigError("no boundary has defined within- and between-block cells (too many NaN"
                         " cells in the matrix)")
    b = int(torch.argmax(torch.nan_to_num(scores, nan=-float("inf")))) + 1
    within, between = _contrast(_as_square(matrix), b)
    return BlockStructure(boundary=b, score=within - between, within=within, between=between)


def block_structure(matrix: np.ndarray) -> dict | None:
    """``find_block_boundary`` on the defined part of a symmetric layer x layer matrix.

    Args:
        matrix: [L+1, L+1] similarity with NaN rows/columns at undefined layers (e.g. layer 0
            of BERT-style CLS vectors).
    Returns:
        {boundary, score, within, between} with the boundary as a layer index of ``matrix``
        (undefined layers skipped, not renumbered), or None when fewer than 3 layers are
        defined.
    """
    keep = np.flatnonzero(np.isfinite(np.diag(matrix)))
    if len(keep) < 3:
        return None
    b = find_block_boundary(matrix[np.ix_(keep, keep)])
    return {"boundary": int(keep[b.boundary]), "score": float(b.score),
            "within": float(b.within), "between": float(b.between)}
