"""MPNet (Song et al. 2020): BERT-shaped blocks plus a relative position bias shared by all.

What differs from the BERT layout (``adapters/base.py``), read from transformers 5's
``modeling_mpnet``:

- **Hidden state 0** is ``MPNetEmbeddings(input_ids)``: word + absolute position embeddings,
  LayerNorm, dropout. Position ids come from the input ids RoBERTa-style (cumulative count of
  non-padding tokens, offset by the padding index), and that padding index is hard-coded to 1
  (MPNet's ``<pad>``), not read from the config. No token types: ``token_type_ids`` is ignored.
- **block_context** = (the 4-D mask of ``create_bidirectional_mask``, the relative position
  bias [B, heads, T, T]). ``MPNetEncoder.forward`` computes the bias once per forward from the
  encoder's own ``relative_attention_bias`` table (log buckets of key - query offsets, as in
  T5, Raffel et al. 2020) and passes the same tensor to every block, so it is
  computed once per batch here too (``encoder.compute_position_bias``). It depends on T only,
  not on padding: a padded batch gives each sequence's real tokens the values it gets alone.
- **Quirk**: ``compute_position_bias`` buckets with its default ``num_buckets=32`` whatever
  ``config.relative_attention_num_buckets`` says (the table has that many rows). Released
  checkpoints use 32; a config with fewer rows fails inside transformers itself.
- **Head**: the sequence classifier is RoBERTa's (dropout, dense, tanh, dropout, out_proj on
  ``<s>``); multiple choice reads the base model's pooler (dense + tanh on ``<s>``), dropout,
  ``classifier``; token classification is dropout + ``classifier`` on every token. No final
  norm after the last block (``final_states`` is the identity).
- **Surgery** swaps ``mpnet.encoder.layer`` (the forward loops over that list);
  ``num_hidden_layers`` follows as bookkeeping. The bias table lives on the encoder, not in a
  block, so truncated and skipped models keep it; it is computed from T alone, so a kept block
  sees exactly the bias it saw in the full model.
- ``freeze_bottom`` freezes the embeddings and the shared bias table with blocks 1..k: the
  table feeds every block's attention, so leaving it trainable would change the frozen blocks'
  function (Merchant et al. 2020 freeze the bottom of the network to keep it as pre-trained).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .bert import RobertaAdapter


class MPNetContext(NamedTuple):
    """What every MPNet block takes besides the hidden state."""

    mask: torch.Tensor | None  # [B, 1, T, T] additive (eager attention) or None (no padding)
    position_bias: torch.Tensor  # [B, heads, T, T], from encoder.relative_attention_bias


class MPNetAdapter(RobertaAdapter):
    """MPNet: ``mpnet.encoder.layer``; relative position bias once per batch; RoBERTa-style
    sequence head on ``<s>``."""
    # pooling and heads are RoBERTa's, module for module (the pooler where the model has one,
    # MPNetClassificationHead on <s>, multiple choice on the pooled state): inherited

    family = "MPNet"

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Hidden state 0 [B, T, H]; ``token_type_ids`` is ignored (MPNet has none)."""
        return self.base.embeddings(input_ids=input_ids)

    def embeddings_module(self) -> nn.Module:
        """Embeddings and the relative position bias table every block reads (see above)."""
        return nn.ModuleList([self.base.embeddings, self.base.encoder.relative_attention_bias])

    def block_context(self, attention_mask: torch.Tensor | None, hidden: torch.Tensor
                      ) -> MPNetContext:
        mask = super().block_context(attention_mask, hidden)
        return MPNetContext(mask, self.base.encoder.compute_position_bias(hidden))

    def run_block(self, i: int, hidden: torch.Tensor, ctx: MPNetContext) -> torch.Tensor:
        # MPNetEncoder.forward: layer_module(hidden_states, attention_mask, position_bias)
        return self.block(i)(hidden, ctx.mask, ctx.position_bias)[0]
