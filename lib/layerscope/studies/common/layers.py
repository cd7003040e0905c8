"""Which blocks a finding averages over. Layer 0 is the embedding output, i the output of block
i (README); "the top of the model" is the top third of the blocks, where fine-tuning changes
representations most (Phang et al. 2021 Fig. 5; Merchant et al. 2020 §4)."""

from __future__ import annotations


def thirds(n_layers: int) -> tuple[range, range]:
    """(bottom, top): blocks 1..k and L-k+1..L with k = max(1, L // 3)."""
    k = max(1, n_layers // 3)
    return range(1, k + 1), range(n_layers - k + 1, n_layers + 1)
