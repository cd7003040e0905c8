"""Tests for layerscope.blocks (two-block structure of a layer x layer matrix)."""

import dataclasses

import numpy as np
import pytest
import torch

from layerscope.measures.blocks import BlockStructure, block_scores, find_block_boundary


def _two_blocks(n=12, b=5, within=0.9, between=0.3, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    side = torch.arange(n) >= b
    m = torch.where(side[:, None] == side[None, :], within, between).to(torch.float64)
    e = noise * torch.randn(n, n, generator=g, dtype=torch.float64)
    m = m + (e + e.T) / 2
    m.fill_diagonal_(1.0)
    return m


@pytest.mark.parametrize("b", [1, 4, 7, 11])
def test_finds_true_boundary(b):
    res = find_block_boundary(_two_blocks(b=b, seed=b))
    assert isinstance(res, BlockStructure) and res.boundary == b
    assert res.score == pytest.approx(res.within - res.between)
    assert res.within == pytest.approx(0.9, abs=0.05)
    assert res.between == pytest.approx(0.3, abs=0.05)


def test_nan_cells_are_ignored_and_diagonal_excluded():
    m = _two_blocks(b=6)
    m[0, :] = float("nan")
    m[:, 0] = float("nan")  # an undefined layer 0
    res = find_block_boundary(m)
    assert res.boundary == 6
    ok = ~torch.isnan(m)
    side = torch.arange(12) >= 6
    same = (side[:, None] == side[None, :]) & ~torch.eye(12, dtype=torch.bool)
    assert res.within == pytest.approx(float(m[same & ok].mean()))
    assert res.between == pytest.approx(float(m[~(side[:, None] == side[None, :]) & ok].mean()))
    scores = block_scores(m.numpy())
    assert scores.shape == (11,) and torch.isnan(scores[0])  # b=1: block {0} has no cells


def test_no_structure_scores_low():
    flat = _two_blocks(within=0.6, between=0.6, noise=0.02)
    assert find_block_boundary(flat).score < 0.05
    assert find_block_boundary(_two_blocks()).score > 0.5


def test_frozen_and_bad_inputs():
    res = find_block_boundary(_two_blocks())
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.boundary = 3
    with pytest.raises(ValueError, match="at least 3 layers"):
        find_block_boundary(np.eye(2))
    with pytest.raises(ValueError, match="must be a square"):
        find_block_boundary(np.ones((3, 4)))
    with pytest.raises(ValueError, match="too many NaN"):
        find_block_boundary(np.full((4, 4), np.nan))
