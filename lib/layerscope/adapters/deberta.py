"""DeBERTa (He et al. 2021) and DeBERTa-v2 / v3 (He et al. 2023): disentangled attention over
relative position embeddings built once per forward and passed to every block.

Read from transformers 5's ``modeling_deberta`` and ``modeling_deberta_v2`` (model types
``deberta`` and ``deberta-v2``; v3 checkpoints are ``deberta-v2`` with ``position_buckets=256``,
``share_att_key``, ``norm_rel_ebd="layer_norm"``, ``position_biased_input=False``):

- **Hidden state 0** is ``embeddings(input_ids, token_type_ids, mask=attention_mask)``: word
  (+ absolute position where ``position_biased_input``) (+ token type) embeddings, optional
  ``embed_proj``, LayerNorm, then **multiplied by the attention mask**, so padding rows of
  hidden state 0 are zero. ``embed`` therefore takes ``attention_mask`` as an extra keyword
  (without it, all ones, as ``DebertaModel.forward`` does). The zero rows matter for v2's
  convolution (below): a real token next to padding then sees zeros there, as it sees Conv1d's
  zero padding at the end of the same sequence alone.
- **block_context** = what ``DebertaEncoder.forward`` computes once and passes to every layer:
  ``get_attention_mask``: the pairwise mask [B, 1, T, T] = m_i * m_j (1 = may attend; the
  blocks ``masked_fill`` the rest, so padding queries attend to nothing and stay out of every
  real token's result); ``get_rel_pos``: relative positions q - k [1, T, T] (v2: log-bucketed
  beyond ``position_buckets / 2``, transformers' ``make_log_bucket_position``);
  ``get_rel_embedding``: the encoder's ``rel_embeddings`` table (v2 with
  ``norm_rel_ebd="layer_norm"``: through the encoder's ``LayerNorm``, once per forward). Plus
  the 2-D mask for v2's convolution. Everything depends on T alone, not on padding (v1's
  ``att_span = min(T, max_relative_positions)`` slices the table by T, but the gathered entries
  are those of the offsets, whatever T), so a padded batch gives each sequence's real tokens
  what it gets alone.
- **DeBERTa-v2's convolution** (``conv_kernel_size > 0``, e.g. deberta-v2-xlarge; v3 has
  none): ``DebertaV2Encoder.forward`` applies ``encoder.conv(h0, out, input_mask)`` to the
  output of the first layer (LayerNorm(out + act(conv(h0))), then times the mask): nGiE, "an
  additional convolution layer aside with the first transformer layer" (the DeBERTa-v2 notes in
  the microsoft/DeBERTa README).
  Here it is **part of block 1**: ``run_block(1)`` applies it to block 1's input, and a layout
  that leaves block 1 out also leaves the convolution out (``kept_layout``): skipping block 1
  is the identity for all of it. The model's forward would otherwise apply the convolution
  after whichever layer comes first in the list. ``freeze_bottom`` (k >= 1 always includes
  block 1) freezes it with the embeddings.
- **Head** (``ContextPooler``, on the task model): dropout, dense, ``pooler_hidden_act`` on the
  first token, then dropout and ``classifier``; multiple choice (v2 only) the same with one
  output per choice; token classification dropout + ``classifier`` on every token. No final
  norm (``final_states`` is the identity). ``z_steps`` (a loop in the forward that re-applies the
  last layer) is 0 in transformers and never set; the adapter refuses a model with z_steps > 1.
- **Surgery** swaps ``deberta.encoder.layer`` (the forward loops over it); the relative
  embedding table and its LayerNorm are on the encoder, so every kept block keeps them;
  ``num_hidden_layers`` follows as bookkeeping. ``freeze_bottom`` freezes the embeddings and the
  relative embedding table (+ its LayerNorm): every block's attention reads them, so leaving
  them trainable would change the frozen blocks' function.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .base import EncoderAdapter, Layout

# ContextPooler activations whose function the TUNED head trainer implements
# (studies/truncation/heads.ACTIVATIONS; transformers' "gelu" is the exact erf GELU)
_FIRST_TOKEN_ACTIVATIONS = ("gelu", "tanh", "relu")


class DebertaContext(NamedTuple):
    """What every DeBERTa block takes besides the hidden state."""

    attention_mask: torch.Tensor  # [B, 1, T, T], 1 where query i may attend to key j
    relative_pos: torch.Tensor | None  # [1, T, T] (None without relative attention)
    rel_embeddings: torch.Tensor | None  # [2 * span, H] (v2: LayerNorm-ed if configured)
    input_mask: torch.Tensor  # [B, T] as given (v2's convolution reads it)


class DebertaAdapter(EncoderAdapter):
    """DeBERTa (v1): ``deberta.encoder.layer``; relative embeddings once per batch;
    ``ContextPooler`` head."""

    family = "DeBERTa"
    # transformers has no DebertaForMultipleChoice; the token-pair model is any encoder's
    head_kinds = ("sequence", "token", "token_pair", "span", "parser")

    def __init__(self, model: nn.Module):
        super().__init__(model)
        if getattr(self.base, "z_steps", 0) > 1:  # re-runs the last layer: no block structure
            raise UnsupportedModelError(
                f"{type(model).__name__} has z_steps={self.base.z_steps}: its forward applies "
                f"the last layer again {self.base.z_steps - 1} time(s), which the {self.family} "
                f"adapter does not model; set model.{self.base.base_model_prefix}.z_steps = 0")

    @staticmethod
    def _mask(attention_mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """DebertaModel.forward's default: all ones where no mask is given."""
        if attention_mask is not None:
            return attention_mask
        return torch.ones(like.shape[:2], device=like.device)

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
              attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden state 0 [B, T, H], padding rows zeroed by ``attention_mask`` [B, T]."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                                    mask=self._mask(attention_mask, input_ids))

    def embeddings_module(self) -> nn.Module:
        """Embeddings + the relative position table (and its LayerNorm, v2) + v2's convolution
        (part of block 1): everything ``freeze_bottom`` freezes besides blocks 1..k."""
        enc = self.base.encoder
        parts = [self.base.embeddings]
        for name in ("rel_embeddings", "LayerNorm", "conv"):
            if getattr(enc, name, None) is not None:
                parts.append(getattr(enc, name))
        return nn.ModuleList(parts)

    def block_context(self, attention_mask: torch.Tensor | None, hidden: torch.Tensor
                      ) -> DebertaContext:
        enc = self.base.encoder
        mask = self._mask(attention_mask, hidden)
        return DebertaContext(enc.get_attention_mask(mask), enc.get_rel_pos(hidden),
                              enc.get_rel_embedding(), mask)

    def run_block(self, i: int, hidden: torch.Tensor, ctx: DebertaContext) -> torch.Tensor:
        # DebertaEncoder.forward: layer(next_kv, attention_mask, query_states=None,
        # relative_pos=..., rel_embeddings=...)
        out, _ = self.block(i)(hidden, ctx.attention_mask, relative_pos=ctx.relative_pos,
                               rel_embeddings=ctx.rel_embeddings)
        return out

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      token_type_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
        h = self.embed(input_ids, token_type_ids, attention_mask)
        ctx = self.block_context(attention_mask, h)
        states = [h]
        for i in range(1, self.n_layers + 1):
            h = self.run_block(i, h, ctx)
            states.append(h)
        return states

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """``ContextPooler`` (dropout, dense, activation on the first token) where the task
        model has one; else the first token."""
        pooler = getattr(self.model, "pooler", None)
        return hidden[:, 0] if pooler is None else pooler(hidden)

    def first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        act = self.model.pooler.config.pooler_hidden_act
        if act not in _FIRST_TOKEN_ACTIVATIONS:
            raise UnsupportedModelError(
                f"{self.family} pooler_hidden_act={act!r} is not supported for TUNED heads "
                f"(supported: {_FIRST_TOKEN_ACTIVATIONS})")
        return self.model.pooler.dense, act, self.model.classifier


class DebertaV2Adapter(DebertaAdapter):
    """DeBERTa-v2 / v3: v1's layout plus bucketed relative positions, the LayerNorm on the
    relative embeddings, and the optional convolution that belongs to block 1."""

    family = "DeBERTa-v2"
    head_kinds = ("sequence", "token", "multiple_choice", "token_pair", "span", "parser")

    def run_block(self, i: int, hidden: torch.Tensor, ctx: DebertaContext) -> torch.Tensor:
        out = super().run_block(i, hidden, ctx)
        conv = self.base.encoder.conv  # the live encoder: None inside a layout without block 1
        if i == 1 and conv is not None:
            # DebertaV2Encoder.forward: conv(hidden_states, output_states, input_mask) after
            # layer 0, where hidden_states is hidden state 0 (padding rows already zero there;
            # zeroing them again here keeps hand-made inputs from leaking into real tokens)
            mask = ctx.input_mask.unsqueeze(-1).to(hidden.dtype)
            out = conv(hidden * mask, out, ctx.input_mask)
        return out

    def kept_layout(self, kept: list[int]) -> Layout:
        """Without block 1, its convolution goes too (see the module docstring): the encoder
        is replaced by a view that shares every submodule but holds the kept blocks and no
        ``conv``. With block 1 (every prefix): the plain block-list swap."""
        enc = self.base.encoder
        layout = super().kept_layout(kept)
        if enc.conv is None or 1 in kept:
            return layout
        _, _, modules, fields = layout
        view = copy.copy(enc)  # shallow: parameters and buffers are the same tensors
        view._modules = dict(enc._modules, layer=modules, conv=None)
        return self.base, "encoder", view, fields
