"""The adapter interface: uniform access to an encoder's embedding output, blocks and head.

Layer convention: hidden state 0 is the embedding output and hidden state i (1..L) is the output
of block i — exactly Hugging Face ``hidden_states[i]``. ``block(i)`` maps hidden state i-1 to i.

Only surgery (truncation, skipping, the drop_top/freeze_bottom ablations) needs an adapter:
studies that read hidden states work for any model that returns ``hidden_states``.

Adding a family (one file, e.g. ``adapters/distilbert.py`` as the worked example)
---------------------------------------------------------------------------------
Subclass :class:`EncoderAdapter` and register the model_type in ``adapters.FAMILIES``
(``"my-type": "my_module:MyAdapter"``). Override what differs from the BERT layout; every
method below has a generic version, and these are the ones a new family usually writes:

- ``block_list() -> (owner, attribute)``: where the block ``nn.ModuleList`` lives
  (BERT: ``(base.encoder, "layer")``; DistilBERT: ``(base.transformer, "layer")``).
- ``embed(input_ids, token_type_ids) -> h0 [B, T, H]``: equal to ``hidden_states[0]``.
- ``block_context(attention_mask [B, T], h0) -> ctx``: everything a block needs besides the
  hidden state, computed once per batch (the mask in the form the blocks take, relative
  position embeddings or biases, rotary tables); opaque to callers.
- ``run_block(i, hidden, ctx) -> hidden``: call block i the way the model's forward does.
- ``sequence_head / token_head / choice_head``: the task model's head on a hidden-state
  sequence, so that ``head(hidden_states[L]) == model(...).logits`` exactly (the token-pair
  head is the task model's own ``pair_head``, the same for every family).
- ``first_token_head`` / ``choice_first_token_head`` / ``token_classifier``: the head's
  layers in the form TUNED/TUNEDORIG retrain (``studies/truncation/heads.py``), where the
  family's head has that form; ``tuned_head_kinds`` lists the kinds that do.
- ``layer_count_fields(n)``: the config fields the encoder's forward reads for its depth.

Then run the parity tests over a tiny random config: add the family to
``models.FAMILY_TINY_ARCHS`` with its classes in ``models._TINY`` (config fields in
``models._tiny_family_config``), and its name to ``FAMILIES`` in
``tests/test_adapter_families.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

from ..errors import ConfigError, MissingHeadError, UnsupportedModelError

# (module that holds the block list, its attribute name, the new list, config fields to set)
Layout = tuple[nn.Module, str, nn.ModuleList, dict[str, int]]

# the task heads an adapter can evaluate on any layer's states (DESIGN §6: "the head for layer
# k is the task kind's business"): sequence (pooled first token), token (every token), multiple
# choice (one pooled state per choice), token_pair (the two words' states, concatenated)
HEAD_KINDS = ("sequence", "token", "multiple_choice", "token_pair", "span", "parser")
# task kind (tasks.KINDS) -> the head kind its task model has
TASK_HEAD_KINDS = {"classification": "sequence", "pair": "sequence", "regression": "sequence",
                   "multiple_choice": "multiple_choice", "tagging": "token",
                   "token_pair": "token_pair", "extractive_qa": "span",
                   "dependency_parsing": "parser"}


def head_kind_of(task_kind: str) -> str:
    """The head kind (``HEAD_KINDS``) of a task kind's model; a ConfigError naming the kinds
    that have one otherwise."""
    try:
        return TASK_HEAD_KINDS[task_kind]
    except KeyError:
        raise ConfigError(
            f"task kind {task_kind!r} has no task head the surgery studies evaluate; kinds "
            f"with one: {', '.join(TASK_HEAD_KINDS)}") from None


class EncoderAdapter:
    """An encoder family's parts by block index (a bare ``AutoModel`` or a task model).

    ``EncoderAdapter(model)`` returns the adapter of the model's family (``adapters.FAMILIES``,
    by ``config.model_type``), or raises ``UnsupportedModelError``. Subclasses set:

    - ``family``: display name (``"BERT"``); ``shared_blocks``: True where one module is applied
      as several blocks (ALBERT: freezing block 1 freezes all, module identity or forward hooks
      cannot tell blocks apart); ``head_kinds``: the task heads ``head`` supports;
      ``tuned_head_kinds``: those whose head has the form TUNED/TUNEDORIG retrain (sequence
      and multiple choice: dense + activation + linear on the pooled first token; token: one
      linear layer on every token; token pair: one linear layer on the two words' states).
    """

    family: str = "generic"
    shared_blocks: bool = False
    head_kinds: tuple[str, ...] = HEAD_KINDS
    tuned_head_kinds: tuple[str, ...] = HEAD_KINDS

    def __new__(cls, model: nn.Module):
        if cls is EncoderAdapter:  # dispatch on the family; subclasses are built directly
            from . import adapter_class

            cls = adapter_class(model)
        return super().__new__(cls)

    def __init__(self, model: nn.Module):
        self.model = model
        self.kind: str = getattr(model.config, "model_type", None)
        self.base: nn.Module = model.base_model
        self.config = model.config

    # --- sizes ----------------------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        """Blocks L, read live from the config (surgery contexts change it)."""
        return self.config.num_hidden_layers

    @property
    def has_head(self) -> bool:
        """Whether the wrapped model is a task model: a classifier head, a QA model's
        ``qa_outputs`` (start/end logits) or a parser's biaffine ``parser``."""
        return any(hasattr(self.model, a) for a in ("classifier", "qa_outputs", "parser"))

    # --- pieces ---------------------------------------------------------------------------

    def embeddings_module(self) -> nn.Module:
        """The embedding layer (what ``freeze_bottom`` freezes with blocks 1..k)."""
        return self.base.embeddings

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Hidden state 0. input_ids, token_type_ids: [B, T] -> [B, T, H]."""
        return self.base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    def block_context(self, attention_mask: torch.Tensor | None, hidden: torch.Tensor):
        """What every block needs besides the hidden state, once per batch (opaque).

        attention_mask [B, T] (1 = token, 0 = padding) or None; hidden [B, T, H] (its dtype,
        device and length shape the mask). Generic: the 4-D mask object of transformers 5's
        attention implementations (None where no position is masked)."""
        return create_bidirectional_mask(config=self.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def block_list(self) -> tuple[nn.Module, str]:
        """(owner module, attribute name) of the encoder's block ``nn.ModuleList``."""
        return self.base.encoder, "layer"

    def block(self, i: int) -> nn.Module:
        """Module that maps hidden state i-1 to hidden state i (1 <= i <= L)."""
        self._check_block(i)
        owner, attr = self.block_list()
        return getattr(owner, attr)[i - 1]

    def blocks(self) -> list[nn.Module]:
        """Block i at position i-1 (ALBERT: the shared module, repeated)."""
        return [self.block(i) for i in range(1, self.n_layers + 1)]

    def _check_block(self, i: int) -> None:
        if not 1 <= i <= self.n_layers:
            raise IndexError(f"block index {i} out of range: this model has blocks "
                             f"1..{self.n_layers}"
                             f" (hidden state 0 is the embedding output)")

    def run_block(self, i: int, hidden: torch.Tensor, ctx) -> torch.Tensor:
        """Block i on hidden state i-1 [B, T, H] with the batch's ``block_context``."""
        out = self.block(i)(hidden, ctx)
        return out[0] if isinstance(out, tuple) else out

    def run_blocks(self, hidden: torch.Tensor, ctx, blocks: Iterable[int]) -> torch.Tensor:
        """Apply the listed blocks in order. hidden: [B, T, H] -> [B, T, H]."""
        for i in blocks:
            hidden = self.run_block(i, hidden, ctx)
        return hidden

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      token_type_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
        """All L+1 hidden states [B, T, H] computed block by block (equal to the model's own
        ``hidden_states``)."""
        h = self.embed(input_ids, token_type_ids)
        ctx = self.block_context(attention_mask, h)
        states = [h]
        for i in range(1, self.n_layers + 1):
            h = self.run_blocks(h, ctx, [i])
            states.append(h)
        return states

    # --- head -----------------------------------------------------------------------------

    def final_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """What the model applies to a hidden state after the last block, before its head
        (identity here: BERT-style encoders end with their last block)."""
        return hidden

    @property
    def model_head_kind(self) -> str:
        """Which head the wrapped task model has (``HEAD_KINDS``), from its class: a
        ``...ForTokenClassification`` (token), ``...ForMultipleChoice``, a model with a
        ``pair_head`` (``finetune.pair_model.TokenPairClassifier``: token_pair), a
        ``...ForQuestionAnswering`` (span: start/end logits per token), a model with a
        ``parse_head`` (``finetune.parser_model.BiaffineParserModel``: parser), else
        sequence."""
        name = type(self.model).__name__
        if callable(getattr(self.model, "pair_head", None)):
            return "token_pair"
        if callable(getattr(self.model, "parse_head", None)):
            return "parser"
        if name.endswith("ForQuestionAnswering"):
            return "span"
        if name.endswith("ForTokenClassification"):
            return "token"
        if name.endswith("ForMultipleChoice"):
            return "multiple_choice"
        return "sequence"

    def head(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
             pair_index: torch.Tensor | None = None) -> torch.Tensor:
        """The task model's head applied to a full hidden-state sequence [B, T, H].

        ``attention_mask`` [B, T]: for heads that pool over the real tokens (ModernBERT's
        ``classifier_pooling="mean"``); the first-token heads here ignore it. ``pair_index``
        [B, P, 2]: token-pair models only (the first sub-word of each pair's head and
        dependent; -1 = padding pair).

        Sequence classification / regression / multiple choice: [B, num_labels] (multiple
        choice: [B*C, 1], reshape to [B, C]); token classification: [B, T, num_labels]; token
        pair: [B, P, num_labels] (padding pairs give zeros); span (extractive QA): [B, T, 2]
        start and end logits. A parser's head needs each word's position and gives scores,
        not one tensor: ``parser_scores``.
        """
        name = type(self.model).__name__
        if not self.has_head:
            raise MissingHeadError(f"{name} has no task head; load it with "
                                   f"models.load_for_task or a fine-tuned checkpoint")
        kind = self.model_head_kind
        if kind not in self.head_kinds:
            raise UnsupportedModelError(
                f"{name}: the {self.family} adapter has no {kind} head (it evaluates "
                f"{', '.join(self.head_kinds)} heads)")
        hidden = self.final_states(hidden)
        if kind == "token_pair":
            if pair_index is None:
                raise ConfigError(f"{name} is a token-pair model: its head needs pair_index "
                                  f"[B, P, 2] (the batch's token positions of each pair)")
            return self.model.pair_head(hidden, pair_index)
        if kind == "parser":
            raise ConfigError(f"{name} is a parser: its head reads each word's position; use "
                              f"parser_scores(hidden, word_index)")
        if kind == "span":
            return self.span_head(hidden)
        return self.task_head(kind, hidden, attention_mask)

    def span_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """ForQuestionAnswering on final states: ``qa_outputs`` on every token, [B, T, 2]
        (start logits [..., 0], end logits [..., 1]; BERT, RoBERTa, ALBERT, ELECTRA,
        DistilBERT, MPNet, DeBERTa: one linear layer, dropout aside)."""
        return self.model.qa_outputs(hidden)

    def parser_scores(self, hidden: torch.Tensor, word_index: torch.Tensor):
        """A ``BiaffineParserModel``'s biaffine head on a hidden-state sequence [B, T, H]
        (``final_states`` applied here): ``parsing.biaffine.ParserScores`` of the words at
        ``word_index`` [B, W] (-1 = padding word), ROOT the first token's state."""
        if self.model_head_kind != "parser":
            raise ConfigError(f"{type(self.model).__name__} is not a parser (no parse_head)")
        return self.model.parse_head(self.final_states(hidden), word_index)

    def task_head(self, kind: str, hidden: torch.Tensor,
                  attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The head of ``kind`` on final states (``final_states`` applied): the family's
        ``token_head`` / ``choice_head`` / ``sequence_head`` (families whose heads read the
        mask override this)."""
        if kind == "token":
            return self.token_head(hidden)
        if kind == "multiple_choice":
            return self.choice_head(hidden)
        return self.sequence_head(hidden)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pooled vector [B, H] the family's heads read; generic: the first token."""
        return hidden[:, 0]

    def sequence_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """ForSequenceClassification: [B, T, H] -> [B, num_labels]."""
        m = self.model
        return m.classifier(m.dropout(self.pool(hidden)))

    def token_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """ForTokenClassification: [B, T, H] -> [B, T, num_labels]."""
        m = self.model
        return m.classifier(m.dropout(hidden))

    def choice_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """ForMultipleChoice: rows [B*C, T, H] -> [B*C, 1]."""
        return self.sequence_head(hidden)

    @classmethod
    def has_first_token_head(cls) -> bool:
        """Whether the family defines ``first_token_head`` (TUNED/TUNEDORIG need it)."""
        return cls.first_token_head is not EncoderAdapter.first_token_head

    @classmethod
    def has_tuned_head(cls, kind: str) -> bool:
        """Whether TUNED/TUNEDORIG heads of ``kind`` (``HEAD_KINDS``) can be trained for the
        family: the kind is in ``head_kinds`` and ``tuned_head_kinds``, and the first-token
        kinds need ``first_token_head``."""
        if kind not in cls.head_kinds or kind not in cls.tuned_head_kinds:
            return False
        return cls.has_first_token_head() if kind in ("sequence", "multiple_choice") else True

    def first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        """The sequence head as act(x W1 + b1) W2 + b2 on the pooled first-token vector x:
        (dense, activation name, output layer), for training many heads at once (TUNED).
        Families whose head is not of that form raise UnsupportedModelError."""
        raise UnsupportedModelError(
            f"{type(self.model).__name__}: the {self.family} adapter has no first-token "
            f"dense+activation+linear head, so TUNED/TUNEDORIG heads are undefined for it")

    def choice_first_token_head(self) -> tuple[nn.Linear, str, nn.Linear]:
        """The multiple-choice head in the same form, with one output per choice row: W2 [H, 1]
        (generic: the sequence head's layers, as BERT, ALBERT, DistilBERT and DeBERTa-v2's
        ``...ForMultipleChoice`` share them)."""
        return self.first_token_head()

    def token_classifier(self) -> nn.Linear:
        """The token head as one linear layer H -> C on every token (dropout aside), which
        TUNED/TUNEDORIG retrain on layer-k states of the words' first sub-words."""
        return self.model.classifier

    # --- surgery --------------------------------------------------------------------------

    def configs(self) -> list:
        """Every distinct config object the model's forward may read (usually one, shared)."""
        owner, _ = self.block_list()
        found = [self.model.config, self.base.config, getattr(owner, "config", self.config)]
        return list({id(c): c for c in found}.values())

    def layer_count_fields(self, n: int) -> dict[str, int]:
        """Config fields that say the encoder has n blocks (only bookkeeping for encoders whose
        forward loops over the block list, as BERT's does)."""
        return {"num_hidden_layers": n}

    def kept_layout(self, kept: list[int]) -> Layout:
        """Run exactly the blocks ``kept`` (1-based, in order) in place of the block list."""
        owner, attr = self.block_list()
        modules = nn.ModuleList([self.block(i) for i in kept])
        return owner, attr, modules, self.layer_count_fields(len(kept))

    def prefix_layout(self, k: int) -> Layout:
        """A genuinely shallower model of blocks 1..k: the layout to save or keep for good."""
        return self.kept_layout(list(range(1, k + 1)))
