"""BERT-layout families: BERT (and MiniLM), RoBERTa (and XLM-RoBERTa, CamemBERT), ALBERT, ELECTRA.

All keep their blocks in ``base.encoder.layer`` (ALBERT: ``albert_layer_groups``, below), take
the 4-D mask of ``create_bidirectional_mask`` as the block's second argument, and loop over the
block list in their forward. Heads (transformers 5.x):

- BERT: head = pooler (dense+tanh on [CLS]) -> dropout -> classifier.
- RoBERTa / XLM-RoBERTa / CamemBERT (the latter two are RoBERTa's code under another name): no
  pooler in the sequence classifier; head = dense+tanh+out_proj on ``<s>`` (Phang et al. 2021
  feed the layer-k ``<s>`` to this head in their truncation experiments). Multiple choice uses
  the pooler, like BERT.
- ALBERT: hidden state 0 is *after* ``embedding_hidden_mapping_in`` (E -> H projection), and the
  L blocks are applications of ``num_hidden_groups`` shared layer groups (usually one module
  applied L times). ``block(i)`` therefore returns the same module object for many i: code that
  truncates or skips must work with indices, never with module identity or forward hooks.
- ELECTRA: hidden state 0 is after ``embeddings_project`` when present; head = dense+GELU+
  out_proj on the first token (multiple choice: ``sequence_summary``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, UnsupportedModelError
from .base import EncoderAdapter, Layout


class BertAdapter(EncoderAdapter):
    """BERT and MiniLM: ``bert.encoder.layer``; pooler + classifier."""

    family = "BERT"

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pooler (dense+tanh on [CLS]) where the model has one; else the first token."""
        pooler = getattr(self.base, "pooler", None)
        return hidden[:, 0] if pooler is None else pooler(hidden)

    def first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        pooler = self.base.pooler
        if pooler is None:
            raise ConfigError(f"this {self.kind} model has no pooler (add_pooling_layer=False), "
                              f"so its head is not dense+tanh+classifier; load it with a pooler")
        return self._pooler_dense(pooler), "tanh", self.model.classifier

    def _pooler_dense(self, pooler: nn.Module) -> nn.Linear:
        return pooler.dense


class RobertaAdapter(BertAdapter):
    """RoBERTa, XLM-RoBERTa, CamemBERT: ``<model>.encoder.layer``; the sequence head is
    ``classifier`` (dense+tanh+out_proj on ``<s>``); multiple choice reads the pooler."""

    family = "RoBERTa"

    def sequence_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.classifier(hidden)  # the head itself takes <s>

    def choice_head(self, hidden: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.classifier(m.dropout(self.pool(hidden)))

    def first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        head = self.model.classifier
        return head.dense, "tanh", head.out_proj

    def choice_first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        """``...ForMultipleChoice``: the base model's pooler (dense + tanh on ``<s>``), then
        ``classifier`` (H -> 1), as BERT's; not the sequence head's dense/out_proj."""
        pooler = self.base.pooler
        if pooler is None:
            raise UnsupportedModelError(f"this {self.kind} multiple-choice model has no pooler, "
                                        f"so its head is not dense+tanh+classifier")
        return pooler.dense, "tanh", self.model.classifier


class ElectraAdapter(EncoderAdapter):
    """ELECTRA: optional ``embeddings_project`` after the embeddings; head on the first token."""

    family = "ELECTRA"

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
        h = super().embed(input_ids, token_type_ids)
        if hasattr(self.base, "embeddings_project"):
            h = self.base.embeddings_project(h)
        return h

    def sequence_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.classifier(hidden)  # dense+GELU+out_proj on the first token

    def choice_head(self, hidden: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.classifier(m.sequence_summary(hidden))

    def first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        head = self.model.classifier
        if type(head.activation).__name__ != "GELUActivation":
            raise UnsupportedModelError(
                f"ELECTRA head activation {type(head.activation).__name__} is not supported "
                f"(expected GELU)")
        return head.dense, "gelu", head.out_proj

    def choice_first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        """``ElectraForMultipleChoice``: ``sequence_summary`` (its ``summary`` projection and
        ``summary_activation`` on the first token, transformers' default config) then
        ``classifier`` (H -> 1). Other summary settings are not of that form."""
        summary, c = self.model.sequence_summary, self.config
        act = getattr(c, "summary_activation", None)
        if (summary.summary_type != "first" or not isinstance(summary.summary, nn.Linear)
                or act not in ("gelu", "tanh", "relu")):
            raise UnsupportedModelError(
                f"ELECTRA multiple-choice summary (summary_type={summary.summary_type!r}, "
                f"summary_use_proj={getattr(c, 'summary_use_proj', None)!r}, "
                f"summary_activation={act!r}) is not a first-token dense + gelu/tanh/relu "
                f"layer, so TUNED/TUNEDORIG heads are undefined for it")
        return summary.summary, act, self.model.classifier


class AlbertAdapter(BertAdapter):
    """ALBERT: blocks are applications of shared layer groups (see the module docstring)."""

    family = "ALBERT"
    shared_blocks = True

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
        h = super().embed(input_ids, token_type_ids)
        return self.base.encoder.embedding_hidden_mapping_in(h)

    def block(self, i: int) -> nn.Module:
        self._check_block(i)
        groups = self.base.encoder.albert_layer_groups
        # same grouping rule as AlbertTransformer.forward
        group = int((i - 1) / (self.n_layers / self.config.num_hidden_groups))
        return groups[group]

    def block_list(self) -> tuple[nn.Module, str]:
        return self.base.encoder, "albert_layer_groups"

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.base.pooler is not None:
            return self.base.pooler_activation(self.base.pooler(hidden[:, 0]))
        return hidden[:, 0]

    def _pooler_dense(self, pooler: nn.Module) -> nn.Linear:
        return pooler  # ALBERT's pooler is the Linear itself (tanh is pooler_activation)

    def layer_count_fields(self, n: int) -> dict[str, int]:
        """``AlbertTransformer.forward`` applies ``albert_layer_groups[int(i / (L / G))]`` for
        i < L = ``num_hidden_layers``, G = ``num_hidden_groups``. Groups = [group applied by
        each kept block] (``kept_layout``) and L = G = n make the rule ``int(i / 1.0) = i``:
        exactly the kept blocks, in order, for any G."""
        return {"num_hidden_layers": n, "num_hidden_groups": n}

    def prefix_layout(self, k: int) -> Layout:
        """``num_hidden_layers = k`` over the groups that blocks 1..k use. With one group (every
        released ALBERT) that is always exact; with G > 1 groups only where ALBERT's grouping
        rule for k layers assigns blocks 1..k the same groups as before, else a ConfigError."""
        L, G = self.n_layers, self.config.num_hidden_groups
        before = [int(i / (L / G)) for i in range(k)]  # AlbertTransformer.forward's rule
        used = max(before) + 1
        after = [int(i / (k / used)) for i in range(k)]
        if after != before:
            raise ConfigError(
                f"cannot cut this ALBERT ({L} layers in {G} groups) to k={k} layers as a "
                f"standalone model: ALBERT's grouping rule would assign blocks 1..{k} the groups "
                f"{after} instead of {before}. Use truncated(model, {k}) (exact for any k), or a "
                f"k where {k} layers over {used} group(s) keep the same assignment")
        groups = self.base.encoder.albert_layer_groups
        return (self.base.encoder, "albert_layer_groups",
                nn.ModuleList(groups[g] for g in range(used)),
                {"num_hidden_layers": k, "num_hidden_groups": used})
