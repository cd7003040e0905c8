"""DistilBERT (Sanh et al. 2019): the short worked example of a family adapter.

What differs from the BERT layout (``adapters/base.py`` has the generic versions), read from
transformers 5's ``modeling_distilbert``:

- the blocks are ``distilbert.transformer.layer`` (``Transformer.forward`` loops over that list;
  its ``n_layers`` attribute is bookkeeping) and the depth field is ``config.n_layers``
  (``num_hidden_layers`` is an alias of it);
- no token types: ``Embeddings.forward(input_ids)`` adds word and absolute position embeddings,
  so ``embed`` ignores ``token_type_ids``;
- each ``TransformerBlock(hidden, mask)`` takes the 4-D mask of ``create_bidirectional_mask``,
  as BERT's blocks do (the generic ``block_context`` and ``run_block``);
- the sequence and multiple-choice heads read the first token through ``pre_classifier`` (a
  dense layer), ReLU and dropout, then ``classifier``; there is no pooler.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import EncoderAdapter


class DistilBertAdapter(EncoderAdapter):
    """DistilBERT: ``distilbert.transformer.layer``; pre_classifier + ReLU head on [CLS]."""

    family = "DistilBERT"

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Hidden state 0 [B, T, H]; ``token_type_ids`` is ignored (DistilBERT has none)."""
        return self.base.embeddings(input_ids)

    def block_list(self) -> tuple[nn.Module, str]:
        return self.base.transformer, "layer"

    def layer_count_fields(self, n: int) -> dict[str, int]:
        return {"n_layers": n}

    def sequence_head(self, hidden: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.classifier(m.dropout(torch.relu(m.pre_classifier(self.pool(hidden)))))

    def first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        return self.model.pre_classifier, "relu", self.model.classifier
