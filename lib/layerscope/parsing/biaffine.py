"""The biaffine dependency scorer of Dozat & Manning 2017 over an encoder's word states.

Merchant et al. 2020 (§3) fine-tune BERT for dependency parsing with this head on top of the
encoder's word states, trained jointly. Per word (and for a ROOT prepended at position 0):
four MLPs give arc-dependent, arc-head, label-dependent and label-head vectors (D&M §2.2: arc
size 500, label size 100, dropout 0.33; LeakyReLU(0.1) and orthogonal initialisation as in
SuPar's reimplementation), then
* arc scores (D&M eq. 4-5): s[d, h] = [r_d; 1]^T W r'_h, i.e. a bilinear term plus a prior on
  each word as a head (a bias on the dependent side would cancel in the softmax over heads);
* label scores at a given head (D&M eq. 6): s[d, l] = [q_d; 1]^T U_l [q'_h; 1], a bilinear
  term, both linear terms and a bias per label;
* the loss: cross-entropy over heads for every real word plus cross-entropy over labels at
  the gold head (D&M §2.2), each averaged over the batch's real words;
* decoding: a tree per sentence from the arc scores (``mst.decode``: Chu-Liu/Edmonds or
  Eisner), then each word's label argmax at its chosen head.

ROOT is a learned vector (D&M prepend a ROOT token to the sentence), or pass ``root_states``
(e.g. each sentence's [CLS] state). The biaffine weights start at zero (as SuPar), so the first
arc distribution is uniform over the valid heads.

Shapes: states [B, W, H] word states (padding after the real words), mask [B, W] bool (True for
real words), heads [B, W] in 0..W (0 = ROOT; ignored at padding), labels [B, W] in 0..L-1;
arc scores [B, W + 1, W + 1] indexed [b, dependent, head], -inf at padded heads and self-loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import to_numpy
from ..errors import ConfigError, check_choice
from .mst import ALGORITHMS, decode

Tensor = torch.Tensor

__all__ = ["BiaffineParser", "ParserScores", "ARC_SIZE", "LABEL_SIZE", "DROPOUT"]

ARC_SIZE, LABEL_SIZE, DROPOUT = 500, 100, 0.33  # Dozat & Manning 2017, Table 2


class _MLP(nn.Module):
    def __init__(self, n_in: int, n_out: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        nn.init.orthogonal_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.act = nn.LeakyReLU(0.1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.act(self.linear(x)))


def _ones(x: Tensor) -> Tensor:
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], -1)


@dataclass(frozen=True)
class ParserScores:
    """One forward pass: arc [B, W + 1, W + 1] scores, the label MLP outputs with a 1 appended
    (dep, head: [B, W + 1, label_size + 1]) and the mask [B, W + 1] of ROOT + real words."""
    arc: Tensor
    label_dep: Tensor
    label_head: Tensor
    mask: Tensor

    @property
    def lengths(self) -> Tensor:
        return self.mask[:, 1:].sum(1)


class BiaffineParser(nn.Module):
    """Biaffine arc scorer and label classifier (see the module docstring)."""

    def __init__(self, hidden_size: int, n_labels: int, *, arc_size: int = ARC_SIZE,
                 label_size: int = LABEL_SIZE, dropout: float = DROPOUT):
        super().__init__()
        if n_labels < 1 or hidden_size < 1:
            raise ConfigError(f"hidden_size={hidden_size}, n_labels={n_labels}: both must be"
                              " >= 1")
        self.n_labels = n_labels
        self.root = nn.Parameter(torch.randn(hidden_size) / hidden_size ** 0.5)
        self.arc_dep = _MLP(hidden_size, arc_size, dropout)
        self.arc_head = _MLP(hidden_size, arc_size, dropout)
        self.label_dep = _MLP(hidden_size, label_size, dropout)
        self.label_head = _MLP(hidden_size, label_size, dropout)
        self.arc_weight = nn.Parameter(torch.zeros(arc_size + 1, arc_size))
        self.label_weight = nn.Parameter(torch.zeros(n_labels, label_size + 1, label_size + 1))

    @staticmethod
    def _check(states: Tensor, mask: Tensor) -> Tensor:
        if states.ndim != 3 or mask.shape != states.shape[:2]:
            raise ConfigError(f"states must be [B, W, H] and mask [B, W]; got {tuple(states.shape)}"
                              f" and {tuple(mask.shape)}")
        mask = mask.bool()
        n = mask.sum(1)
        if (n < 1).any():
            raise ConfigError(f"sentence {int(torch.nonzero(n < 1)[0])} has no word (mask all"
                              " False); drop empty sentences")
        prefix = torch.arange(mask.shape[1], device=mask.device)[None, :] < n[:, None]
        if not torch.equal(prefix, mask):
            bad = int(torch.nonzero((prefix != mask).any(1))[0])
            raise ConfigError(f"sentence {bad}'s mask has gaps; padding must come after the"
                              " real words (mask = [True] * n + [False] * rest)")
        return mask

    def forward(self, states: Tensor, mask: Tensor, root_states: Tensor | None = None
                ) -> ParserScores:
        """Arc scores and label features for a batch (shapes in the module docstring)."""
        mask = self._check(states, mask)
        b, w, h = states.shape
        root = (self.root.expand(b, 1, h) if root_states is None
                else root_states.reshape(b, 1, h))
        x = torch.cat([root.to(states.dtype), states], 1)  # [B, W + 1, H]
        full = torch.cat([mask.new_ones(b, 1), mask], 1)  # ROOT + real words
        arc = _ones(self.arc_dep(x)) @ self.arc_weight @ self.arc_head(x).transpose(1, 2)
        invalid = ~full[:, None, :] | torch.eye(w + 1, dtype=torch.bool, device=x.device)
        arc = arc.masked_fill(invalid, float("-inf"))
        return ParserScores(arc, _ones(self.label_dep(x)), _ones(self.label_head(x)), full)

    def label_scores(self, scores: ParserScores, heads: Tensor) -> Tensor:
        """[B, W, L] label scores of each word at the given heads ([B, W] in 0..W)."""
        heads = heads.clamp_min(0) * scores.mask[:, 1:]  # padding's head: anything valid
        head_q = scores.label_head.gather(
            1, heads[..., None].expand(-1, -1, scores.label_head.shape[-1]))
        return torch.einsum("bwi,lij,bwj->bwl", scores.label_dep[:, 1:], self.label_weight,
                            head_q)

    def loss(self, scores: ParserScores, heads: Tensor, labels: Tensor) -> Tensor:
        """Arc cross-entropy over heads + label cross-entropy at the gold heads, each the mean
        over real words (D&M §2.2). heads, labels: [B, W] gold."""
        real = scores.mask[:, 1:]
        gold = heads[real]
        n = scores.lengths[:, None].expand_as(heads)[real]
        position = torch.arange(1, heads.shape[1] + 1, device=heads.device).expand_as(heads)
        wrong = (gold < 0) | (gold > n) | (gold == position[real])
        if wrong.any():
            raise ConfigError(f"gold head {int(gold[wrong][0])} of word"
                              f" {int(position[real][wrong][0])}: heads must be in 0..sentence"
                              " length and not the word itself")
        if ((labels[real] < 0) | (labels[real] >= self.n_labels)).any():
            raise ConfigError(f"gold labels must be in 0..{self.n_labels - 1}")
        arc_loss = F.cross_entropy(scores.arc[:, 1:][real], gold)
        label_loss = F.cross_entropy(self.label_scores(scores, heads)[real], labels[real])
        return arc_loss + label_loss

    @torch.no_grad()
    def decode(self, scores: ParserScores, *, algorithm: str = "mst",
               single_root: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Trees and labels: heads [B, W] and labels [B, W] int64 numpy arrays, -1 at padding."""
        check_choice(algorithm, ALGORITHMS, "tree decoding algorithm")
        lengths = to_numpy(scores.lengths)
        arc = to_numpy(scores.arc.detach().float())
        heads = decode(arc, lengths, algorithm=algorithm, single_root=single_root)
        t = torch.as_tensor(heads, device=scores.arc.device)
        labels = to_numpy(self.label_scores(scores, t).argmax(-1)).copy()
        labels[heads < 0] = -1
        return heads, labels
