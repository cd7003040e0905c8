"""A token-pair relation classifier: any encoder plus a linear layer on [h_head ; h_dep].

Zhou & Srikumar (2022, §3.2) represent a dependency arc (DEP) by "concatenat[ing] the
contextualized representations" of its two words; fine-tuning them needs a head that scores
that same concatenation. ``TokenPairClassifier`` is that head on an ``AutoModel`` encoder: for
each (head word, dependent word) pair of a sentence it gathers the final hidden state of each
word's *first* sub-word (the usual fine-tuning choice, as ``encoding`` labels tagging words),
concatenates them ([B, P, 2H]) and applies dropout and one ``nn.Linear(2H, C)``.

transformers has no such class, so this is a plain ``nn.Module`` shaped like its task models:
``config`` (the encoder's ``PretrainedConfig`` with ``num_labels``, ``id2label``,
``label2id``), ``base_model`` (the encoder, which ``adapters.EncoderAdapter`` and
``activations`` read), ``classifier``, a ``forward`` the Trainer drives (loss = mean cross
entropy over labelled pairs) and ``save_pretrained``/``from_pretrained`` with a folder holding
``config.json`` (``architectures = ["TokenPairClassifier"]``) and ``model.safetensors`` (this
module's state dict: ``base_model.*`` and ``classifier.*``).

Shapes: input_ids [B, T]; pair_index [B, P, 2] long (token positions of the head's and the
dependent's first sub-word; -1 = a padding pair); labels [B, P] (-100 = padding); logits
[B, P, C].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers as tr
from torch import nn
from transformers.utils import ModelOutput

from ..errors import ConfigError
from .encoder_head import EncoderHeadModel

ARCHITECTURE = "TokenPairClassifier"  # config.architectures of a saved model


@dataclass
class TokenPairOutput(ModelOutput):
    """loss: mean cross entropy over labelled pairs (None without labels); logits [B, P, C]
    (0 at padding pairs); hidden_states: the encoder's L+1 states when asked."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class TokenPairClassifier(EncoderHeadModel):
    """Encoder + linear head on the two words' concatenated first-sub-word states.

    Args:
        config: the encoder's config, with ``num_labels`` (and ``id2label``/``label2id``).
        encoder: the encoder (``AutoModel``); None builds a randomly initialised one from
            ``config`` (``from_pretrained`` then loads its weights).
    """

    ARCHITECTURE = ARCHITECTURE
    HEAD_PREFIX = "classifier."
    HEAD_NAME = "token-pair head"

    def __init__(self, config: tr.PretrainedConfig, encoder: nn.Module | None = None):
        if not getattr(config, "num_labels", 0) or config.num_labels < 2:
            raise ConfigError(f"TokenPairClassifier needs num_labels >= 2 (got "
                              f"{getattr(config, 'num_labels', None)!r}): one class per relation")
        super().__init__(config, encoder)
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", None) or 0.1)
        self.classifier = nn.Linear(2 * config.hidden_size, config.num_labels)
        # as transformers initialises its classifier heads (BERT's _init_weights)
        std = getattr(config, "initializer_range", 0.02)
        nn.init.normal_(self.classifier.weight, mean=0.0, std=std)
        nn.init.zeros_(self.classifier.bias)

    def pair_head(self, hidden: torch.Tensor, pair_index: torch.Tensor) -> torch.Tensor:
        """The head alone on any hidden-state sequence: hidden [B, T, H], pair_index [B, P, 2]
        -> logits [B, P, C] (zeros at padding pairs, index -1)."""
        if pair_index.dim() != 3 or pair_index.shape[-1] != 2:
            raise ValueError(f"pair_index must be [B, P, 2] (head, dependent token positions); "
                             f"got shape {tuple(pair_index.shape)}")
        b, p, _ = pair_index.shape
        valid = (pair_index >= 0).all(-1)  # [B, P]
        idx = pair_index.clamp(min=0).reshape(b, p * 2, 1).expand(-1, -1, hidden.shape[-1])
        pairs = torch.gather(hidden, 1, idx).reshape(b, p, 2 * hidden.shape[-1])  # [h_h; h_d]
        logits = self.classifier(self.dropout(pairs))
        return logits.masked_fill(~valid[..., None], 0.0)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, pair_index=None,
                labels=None, output_hidden_states=False, **kw) -> TokenPairOutput:
        if pair_index is None:
            raise ValueError("TokenPairClassifier needs pair_index [B, P, 2] (encoding."
                             "encode_split of a token_pair task gives it)")
        out = self.encode(input_ids, attention_mask, token_type_ids, output_hidden_states, **kw)
        logits = self.pair_head(out.last_hidden_state, pair_index)
        loss = None
        if labels is not None:
            keep = labels != -100
            if keep.any():
                loss = nn.functional.cross_entropy(logits[keep], labels[keep])
            else:  # a batch without a labelled pair: no signal, but a loss the Trainer can log
                loss = logits.sum() * 0.0
        return TokenPairOutput(loss=loss, logits=logits,
                               hidden_states=out.hidden_states if output_hidden_states else None,
                               attentions=getattr(out, "attentions", None))
