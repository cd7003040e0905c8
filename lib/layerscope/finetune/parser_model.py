"""A dependency parser: any encoder plus Dozat & Manning's (2017) biaffine head, tuned jointly.

Merchant et al. (2020, §3) fine-tune BERT for dependency parsing with "the biaffine parser of
Dozat and Manning" over BERT's word states, encoder and head trained together.
``BiaffineParserModel`` is that on an ``AutoModel`` encoder:

* word states: each word's *first* sub-word's final hidden state (``word_index``; the usual
  fine-tuning choice, as ``encoding`` labels tagging words);
* ROOT: the first token's state ([CLS] / <s>), as SuPar's BERT-based parser uses the encoder's
  BOS state for ROOT (Zhang et al. 2020), so the head on layer k's states reads layer k's ROOT
  too (the parser's own learned root vector stays unused);
* the head: ``parsing.biaffine.BiaffineParser`` (D&M Table 2: arc MLPs 500, label MLPs 100,
  dropout 0.33), its loss = arc cross-entropy over heads + label cross-entropy at the gold head
  (D&M §2.2), each the mean over the batch's words;
* decoding: a tree per sentence by Chu-Liu/Edmonds with one word under ROOT (``parsing.mst``;
  non-projective trees allowed), each word's label the argmax at its chosen head.

transformers has no such class, so this is a plain ``nn.Module`` shaped like its task models
(as ``pair_model.TokenPairClassifier``): ``config`` (the encoder's ``PretrainedConfig`` with
``num_labels``, ``id2label``, ``label2id`` and the head's sizes ``parser_arc_size``,
``parser_label_size``, ``parser_dropout``), ``base_model`` (the encoder: what
``adapters.EncoderAdapter`` and ``activations`` read), ``parser``, a ``forward`` the Trainer
drives, ``save_pretrained``/``from_pretrained`` (``config.json`` with ``architectures =
["BiaffineParserModel"]`` and ``model.safetensors``, this module's state dict).

Shapes: input_ids [B, T]; word_index [B, W] long (each word's first sub-word position; -1 =
padding word, after the real ones); heads [B, W] (0 = ROOT, else the 1-based head word; -100
padding); deprels [B, W] (-100 padding). Outputs: ``arc_scores`` [B, W + 1, W + 1] indexed
[b, dependent, head] (index 0 = ROOT; -inf at padded heads and on the diagonal);
``label_scores`` [B, W + 1, W + 1, C]: label_scores[b, d, h, l] scores relation l for word d
under head h (row 0, ROOT as a dependent, is 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import transformers as tr
from torch import nn
from transformers.utils import ModelOutput

from ..devices import to_numpy
from ..errors import ConfigError
from ..parsing.biaffine import ARC_SIZE, DROPOUT, LABEL_SIZE, BiaffineParser, ParserScores
from ..parsing.mst import decode as decode_trees
from .encoder_head import EncoderHeadModel

ARCHITECTURE = "BiaffineParserModel"  # config.architectures of a saved model
HEAD_PREFIX = "parser."


@dataclass
class ParserOutput(ModelOutput):
    """loss: arc + label cross-entropy (None without gold heads and relations); arc_scores,
    label_scores: see the module docstring; hidden_states: the encoder's L+1 states when
    asked."""

    loss: torch.Tensor | None = None
    arc_scores: torch.Tensor | None = None
    label_scores: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def all_label_scores(parser: BiaffineParser, scores: ParserScores) -> torch.Tensor:
    """[B, W + 1, W + 1, C]: every relation's score for every (dependent, head) pair (D&M eq.
    6 at every head; ``BiaffineParser.label_scores`` is this at given heads), row 0 zero."""
    dep = scores.label_dep  # [B, W + 1, S + 1]
    per_label = torch.einsum("bdi,lij->bdlj", dep, parser.label_weight)  # [B, W + 1, C, S + 1]
    out = torch.einsum("bdlj,bhj->bdhl", per_label, scores.label_head)
    return torch.cat([torch.zeros_like(out[:, :1]), out[:, 1:]], 1)


def decode_outputs(arc_scores: torch.Tensor, label_scores: torch.Tensor, *,
                   algorithm: str = "mst") -> tuple[np.ndarray, np.ndarray]:
    """Trees and labels from a forward pass's outputs: heads [B, W] (tree decoding with one
    word under ROOT) and labels [B, W] (the argmax at each chosen head), int64, -1 at padding.
    A sentence's length is read off its scores: word 1's finite head scores (ROOT and the
    other real words) number n."""
    arc = arc_scores.detach().float()
    lengths = to_numpy(torch.isfinite(arc[:, 1]).sum(-1))
    heads = decode_trees(to_numpy(arc), lengths, algorithm=algorithm, single_root=True)
    h = torch.as_tensor(heads, device=label_scores.device).clamp_min(0)
    b, w = heads.shape
    at = label_scores[:, 1:].gather(2, h[:, :, None, None].expand(b, w, 1,
                                                                  label_scores.shape[-1]))
    labels = to_numpy(at[:, :, 0].argmax(-1))
    labels[heads < 0] = -1
    return heads, labels


class BiaffineParserModel(EncoderHeadModel):
    """Encoder + biaffine arc and label scorer over the words' first sub-word states.

    Args:
        config: the encoder's config, with ``num_labels`` (and ``id2label``/``label2id``).
        encoder: the encoder (``AutoModel``); None builds a randomly initialised one from
            ``config`` (``from_pretrained`` then loads its weights).
    """

    ARCHITECTURE = ARCHITECTURE
    HEAD_PREFIX = HEAD_PREFIX
    HEAD_NAME = "parser"

    def __init__(self, config: tr.PretrainedConfig, encoder: nn.Module | None = None):
        if not getattr(config, "num_labels", 0) or config.num_labels < 1:
            raise ConfigError(f"BiaffineParserModel needs num_labels >= 1 (got "
                              f"{getattr(config, 'num_labels', None)!r}): one per relation")
        for key, default in (("parser_arc_size", ARC_SIZE), ("parser_label_size", LABEL_SIZE),
                             ("parser_dropout", DROPOUT)):
            if getattr(config, key, None) is None:
                setattr(config, key, default)
        super().__init__(config, encoder)
        self.parser = BiaffineParser(config.hidden_size, config.num_labels,
                                     arc_size=config.parser_arc_size,
                                     label_size=config.parser_label_size,
                                     dropout=config.parser_dropout)

    def parse_head(self, hidden: torch.Tensor, word_index: torch.Tensor) -> ParserScores:
        """The head alone on any hidden-state sequence: hidden [B, T, H], word_index [B, W]
        -> ``ParserScores`` (arc [B, W + 1, W + 1] and the label features); ROOT is each
        sequence's first token."""
        if word_index is None or word_index.dim() != 2:
            raise ConfigError("word_index must be [B, W] (each word's first sub-word position,"
                              " -1 for padding words; encoding.encode_split gives it)")
        mask = word_index >= 0
        idx = word_index.clamp(min=0)[..., None].expand(-1, -1, hidden.shape[-1])
        states = torch.gather(hidden, 1, idx)
        return self.parser(states, mask, root_states=hidden[:, 0])

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, word_index=None,
                heads=None, deprels=None, output_hidden_states=False, **kw) -> ParserOutput:
        if word_index is None:
            raise ConfigError("BiaffineParserModel needs word_index [B, W] (encoding."
                              "encode_split of a dependency_parsing task gives it)")
        out = self.encode(input_ids, attention_mask, token_type_ids, output_hidden_states, **kw)
        scores = self.parse_head(out.last_hidden_state, word_index)
        loss = None
        if heads is not None and deprels is not None:
            loss = self.parser.loss(scores, heads, deprels)
        return ParserOutput(loss=loss, arc_scores=scores.arc,
                            label_scores=all_label_scores(self.parser, scores),
                            hidden_states=out.hidden_states if output_hidden_states else None,
                            attentions=getattr(out, "attentions", None))

    @torch.no_grad()
    def decode(self, scores: ParserScores, *, algorithm: str = "mst"
               ) -> tuple[np.ndarray, np.ndarray]:
        """Heads [B, W] and labels [B, W] (int64 numpy, -1 at padding) of ``parse_head``'s
        scores: one tree per sentence, one word under ROOT (``BiaffineParser.decode``)."""
        return self.parser.decode(scores, algorithm=algorithm, single_root=True)
