"""ModernBERT (Warner et al. 2024): pre-norm blocks with rotary embeddings, alternating global and
sliding-window (local) attention, and a final LayerNorm after the last block.

Read from transformers 5's ``modeling_modernbert`` (5.x pads and masks on every attention
implementation: the old unpadded path, which packed the real tokens of a batch into one row
for flash attention, is gone; eager and SDPA on CPU take the masks below):

- **Hidden state 0** is ``embeddings(input_ids)``: token embeddings, LayerNorm, dropout. No
  absolute positions (those are rotary, inside attention) and no token types
  (``token_type_ids`` is ignored).
- **block_context** = what ``ModernBertModel.forward`` computes once and hands to every layer:
  two masks, ``full_attention`` (``create_bidirectional_mask``: padding keys masked) and
  ``sliding_attention`` (``create_bidirectional_sliding_window_mask``: also keys with
  |q - k| > ``config.sliding_window`` = ``local_attention // 2``), and the rotary cos/sin
  tables per attention type for positions 0..T-1 (``rotary_emb``; the global and local types
  have their own ``rope_theta``, 160k and 10k in the released model). Each block picks the mask
  and the rotary table of **its own** ``attention_type`` (set when it was built, from
  ``config.layer_types[layer_idx]``: every ``global_attn_every_n_layers``-th layer global, the
  others local, Warner et al. 2024 "Alternating Attention"), never that of its position in the
  list, so a kept block keeps its attention type and rotary base in a truncated or skipped
  model. Rotary phases and the window depend on position differences only, so with right
  padding a padded batch gives each sequence's real tokens what it gets alone.
- **Final norm.** The forward applies ``final_norm`` after the last block, and transformers 5's
  output capture replaces ``hidden_states[L]`` with that normed ``last_hidden_state``
  (``tie_last_hidden_states``, default on): the model's ``hidden_states[1..L-1]`` are raw block
  outputs (the pre-norm residual stream), its ``hidden_states[L]`` is normed. Here **hidden
  state i is the output of block i for every i, L included** (``hidden_states()``), and
  ``final_states`` = ``final_norm``, applied by ``head`` to any layer. So ``head(state k)`` is
  what a k-block ModernBERT predicts (it too applies ``final_norm`` to block k's output) for
  every k, and ``final_states(hidden_states()[L])`` equals the model's ``hidden_states[L]``.
- **Head**: ``classifier_pooling`` ``"cls"`` (first token; multiple choice: the first non-pad
  token, ``attention_mask.argmax``) or ``"mean"`` (mean over the real tokens: needs the
  attention mask, so ``head``/``pool`` take ``attention_mask=``; the released ModernBERT-base
  config uses "mean"), then ``ModernBertPredictionHead`` (dense, activation, LayerNorm),
  dropout, ``classifier``; token classification: prediction head, dropout, ``classifier`` on
  every token. The LayerNorm inside the head makes it no dense+activation+linear pair, so
  TUNED sequence, choice and token heads are not available (``first_token_head`` and
  ``token_classifier`` raise); a token-pair model's head (``pair_head``, one linear layer on
  the two words' final states) is, since ``head`` gives it ``final_norm``-ed states.
- **Surgery** swaps ``model.layers`` (the block list sits on the base model itself) and sets
  ``num_hidden_layers`` and ``layer_types`` = the kept blocks' own types: the forward builds
  rotary tables for ``set(config.layer_types)``, so the list must name exactly the types the
  kept blocks use. Block 1 (``layer_idx`` 0) has no attention LayerNorm (``attn_norm`` is the
  identity); a kept block keeps its own, so skipping block 1 leaves block 2 with its norm.
  ``save_truncated`` keeps a prefix, which a fresh model built from the saved config matches
  layer for layer.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from transformers.masking_utils import (
    create_bidirectional_mask,
    create_bidirectional_sliding_window_mask,
)

from ..errors import ConfigError, UnsupportedModelError
from .base import EncoderAdapter, Layout

# ModernBertModel.forward's mask builder per attention type
_MASKS = {"full_attention": create_bidirectional_mask,
          "sliding_attention": create_bidirectional_sliding_window_mask}


class ModernBertContext(NamedTuple):
    """What every ModernBERT block takes besides the hidden state, by attention type."""

    masks: dict  # attention type -> 4-D mask (or None where nothing is masked)
    rotary: dict  # attention type -> (cos, sin), each [1, T, head_dim]


class ModernBertAdapter(EncoderAdapter):
    """ModernBERT: ``model.layers``; global/local masks and rotary tables once per batch;
    ``final_norm`` before the head."""

    family = "ModernBERT"
    # the sequence, choice and token heads hold a LayerNorm (ModernBertPredictionHead): not a
    # form the TUNED trainer retrains; the token-pair head is one linear layer on final states
    # the parser's biaffine head reads the final states as in every family (TUNED retrains it)
    tuned_head_kinds = ("token_pair", "parser")

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Hidden state 0 [B, T, H]; ``token_type_ids`` is ignored (ModernBERT has none)."""
        return self.base.embeddings(input_ids=input_ids)

    def block_list(self) -> tuple[nn.Module, str]:
        return self.base, "layers"

    def _types(self) -> set[str]:
        """Attention types of the blocks now in the list."""
        owner, attr = self.block_list()
        return {layer.attention_type for layer in getattr(owner, attr)}

    def block_context(self, attention_mask: torch.Tensor | None, hidden: torch.Tensor
                      ) -> ModernBertContext:
        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        types = self._types()
        masks = {t: _MASKS[t](config=self.config, inputs_embeds=hidden,
                              attention_mask=attention_mask) for t in types}
        rotary = {t: self.base.rotary_emb(hidden, positions, t) for t in types}
        return ModernBertContext(masks, rotary)

    def run_block(self, i: int, hidden: torch.Tensor, ctx: ModernBertContext) -> torch.Tensor:
        layer = self.block(i)
        t = layer.attention_type  # the block's own type, wherever it sits in the list
        return layer(hidden, attention_mask=ctx.masks[t], position_embeddings=ctx.rotary[t])

    # --- head -------------------------------------------------------------------------------

    def final_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """``final_norm``: what ModernBertModel.forward applies after its last block."""
        return self.base.final_norm(hidden)

    def task_head(self, kind: str, hidden: torch.Tensor,
                  attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The task head on final states (``head`` applies ``final_norm`` first, as a k-block
        model does). ``attention_mask`` [B, T]: needed for "mean" pooling (and for the first
        non-pad token of multiple choice). Shapes as ``EncoderAdapter.head``."""
        m = self.model
        if kind == "token":
            return m.classifier(m.drop(m.head(hidden)))
        pooled = self.pool(hidden, attention_mask, choices=kind == "multiple_choice")
        return m.classifier(m.drop(m.head(pooled)))

    def span_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """ModernBertForQuestionAnswering: the prediction head (dense + activation + norm),
        dropout, then its ``classifier`` (H -> 2; no ``qa_outputs`` in this family): [B, T, 2]."""
        m = self.model
        return m.classifier(m.drop(m.head(hidden)))

    def token_classifier(self) -> nn.Linear:
        raise UnsupportedModelError(
            f"{type(self.model).__name__}: the ModernBERT token head is dense + activation + "
            f"LayerNorm + classifier, not one linear layer, so TUNED/TUNEDORIG token heads are "
            f"undefined for it")

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
             *, choices: bool = False) -> torch.Tensor:
        """[B, T, H] -> [B, H] by ``config.classifier_pooling`` (before the prediction head)."""
        how, mask = self.config.classifier_pooling, attention_mask
        if how == "cls":
            if choices and mask is not None:  # ModernBertForMultipleChoice: first non-pad token
                return hidden[torch.arange(hidden.shape[0], device=hidden.device),
                              mask.argmax(dim=-1).to(hidden.device)]
            return hidden[:, 0]
        if how == "mean":
            if mask is None:
                raise ConfigError(
                    "ModernBERT with classifier_pooling='mean' averages over the real tokens: "
                    "pass attention_mask= to head()/pool() (all ones only if no row is padded)")
            mask = mask.to(hidden.device)
            return (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)
        raise ConfigError(f"ModernBERT classifier_pooling={how!r} is not supported: "
                          f"use 'cls' or 'mean' (transformers' two)")

    # --- surgery ----------------------------------------------------------------------------

    def kept_layout(self, kept: list[int]) -> Layout:
        """Each kept block keeps its own attention type: ``layer_types`` follows the blocks."""
        owner, attr, modules, fields = super().kept_layout(kept)
        return owner, attr, modules, {**fields,
                                      "layer_types": [m.attention_type for m in modules]}
