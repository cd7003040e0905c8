"""Uniform access to an encoder's parts: embedding output, block i, and the task head.

Layer convention: hidden state 0 is the embedding output and hidden state i (1..L) is the output
of block i — exactly Hugging Face ``hidden_states[i]``. ``block(i)`` maps hidden state i-1 to i.

Per architecture (transformers 5.x module layout):

- BERT (and MiniLM): head = pooler (dense+tanh on [CLS]) -> dropout -> classifier.
- RoBERTa: no pooler in the classifier; head = dense+tanh+out_proj on ``<s>`` (Phang et al.
  2021 feed the layer-k ``<s>`` to this head in their truncation experiments).
- ALBERT: hidden state 0 is *after* ``embedding_hidden_mapping_in`` (E -> H projection), and the
  L blocks are applications of ``num_hidden_groups`` shared layer groups (usually one module
  applied L times). ``block(i)`` therefore returns the same module object for many i: code that
  truncates or skips must work with indices, never with module identity or forward hooks.
- ELECTRA: hidden state 0 is after ``embeddings_project`` when present; head = dense+GELU+
  out_proj on the first token.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

from .errors import MissingHeadError

SUPPORTED = ("bert", "roberta", "albert", "electra")


class EncoderAdapter:
    """Wraps a BERT/RoBERTa/ALBERT/ELECTRA model (bare ``AutoModel`` or a task model)."""

    def __init__(self, model: nn.Module):
        kind = getattr(model.config, "model_type", None)
        if kind not in SUPPORTED:
            raise NotImplementedError(
                f"no layer adapter for model_type {kind!r}; supported: {SUPPORTED}")
        self.model = model
        self.kind = kind
        self.base = model.base_model
        self.config = model.config

    @property
    def n_layers(self) -> int:
        """Blocks L, read live from the config (surgery contexts change it)."""
        return self.config.num_hidden_layers

    @property
    def has_head(self) -> bool:
        """Whether the wrapped model is a task model (has a classifier head)."""
        return hasattr(self.model, "classifier")

    # --- pieces -------------------------------------------------------------------------

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Hidden state 0. input_ids: [B, T] -> [B, T, H]."""
        h = self.base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        if self.kind == "albert":
            h = self.base.encoder.embedding_hidden_mapping_in(h)
        elif self.kind == "electra" and hasattr(self.base, "embeddings_project"):
            h = self.base.embeddings_project(h)
        return h

    def layer_mask(self, attention_mask: torch.Tensor | None, hidden: torch.Tensor):
        """The mask object the blocks expect (depends on the attention implementation)."""
        return create_bidirectional_mask(config=self.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def block(self, i: int) -> nn.Module:
        """Module that maps hidden state i-1 to hidden state i (1 <= i <= L)."""
        self._check_block(i)
        if self.kind == "albert":
            groups = self.base.encoder.albert_layer_groups
            # same grouping rule as AlbertTransformer.forward
            group = int((i - 1) / (self.n_layers / self.config.num_hidden_groups))
            return groups[group]
        return self.base.encoder.layer[i - 1]

    def blocks(self) -> list[nn.Module]:
        """Block i at position i-1 (ALBERT: the shared module, repeated)."""
        return [self.block(i) for i in range(1, self.n_layers + 1)]

    def _check_block(self, i: int) -> None:
        if not 1 <= i <= self.n_layers:
            raise IndexError(f"block index {i} out of range: this model has blocks "
                             f"1..{self.n_layers}"
                             f" (hidden state 0 is the embedding output)")

    def run_blocks(self, hidden: torch.Tensor, mask, blocks: Iterable[int]) -> torch.Tensor:
        """Apply the listed blocks in order. hidden: [B, T, H] -> [B, T, H]."""
        for i in blocks:
            out = self.block(i)(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      token_type_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
        """All L+1 hidden states computed block by block (equals the model's own hidden_states)."""
        h = self.embed(input_ids, token_type_ids)
        mask = self.layer_mask(attention_mask, h)
        states = [h]
        for i in range(1, self.n_layers + 1):
            h = self.run_blocks(h, mask, [i])
            states.append(h)
        return states

    # --- head ---------------------------------------------------------------------------

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The task model's head applied to a full hidden-state sequence [B, T, H].

        Sequence classification / regression / multiple choice: [B, num_labels] (multiple
        choice: [B*C, 1], reshape to [B, C]); token classification: [B, T, num_labels].
        """
        m = self.model
        if not self.has_head:
            raise MissingHeadError(f"{type(m).__name__} has no task head; load it with "
                                   f"models.load_for_task or a fine-tuned checkpoint")
        name = type(m).__name__
        if name.endswith("ForTokenClassification"):
            return m.classifier(m.dropout(hidden))
        if self.kind in ("roberta", "electra") and name.endswith("ForSequenceClassification"):
            return m.classifier(hidden)  # the head itself takes <s> / first token
        pooled = self.pool(hidden)
        if self.kind == "electra":  # ElectraForMultipleChoice: sequence_summary on first token
            return m.classifier(m.sequence_summary(hidden))
        return m.classifier(m.dropout(pooled))

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT/ALBERT pooler (dense+tanh on the first token); others: the first token."""
        if self.kind == "albert" and self.base.pooler is not None:
            return self.base.pooler_activation(self.base.pooler(hidden[:, 0]))
        if self.kind in ("bert", "roberta") and getattr(self.base, "pooler", None) is not None:
            return self.base.pooler(hidden)
        return hidden[:, 0]
