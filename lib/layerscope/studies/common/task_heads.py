"""The fine-tuned head on layer k's states, one function per task kind (DESIGN §6: "the head
for layer k is the task kind's business"), and the features the retrained heads read.

Studies 03 (truncation: the head on hidden state k, UNTUNED) and 04 (skipping: the head on the
final state of a model without blocks i..j) both score *units*:

=================  ==========  ============================================================
task kind          unit        head on a batch's hidden states [N, T, H] -> logits [U_b, C]
=================  ==========  ============================================================
classification,    example     the sequence head on the pooled first token: [B, C]
pair, regression
multiple_choice    question    the choice head on each choice's pooled state (context +
                               choice encoded as ``...ForMultipleChoice`` takes them, N = B*C
                               rows), one score per choice: [B, n_choices]; accuracy over
                               choices (Phang et al. 2021 §4 run HellaSwag and CosmosQA)
tagging            word        the token head on every token, kept at the first sub-word of
                               each labelled word, as fine-tuning labels it
                               (``encoding.word_labels``; -100 elsewhere): [W_b, C]
token_pair         pair        the pair model's ``pair_head`` on the first sub-words of the
                               head and dependent words (Zhou & Srikumar 2022's DEP):
                               [P_b, C]
extractive_qa      question    ``qa_outputs`` on every token of each window: start and end
                               logits [N_b, T_b, 2]; a question takes its best span over
                               its windows (``structured``: EM/F1 per question)
dependency_parsing sentence    the biaffine arc and label scorer on the words' first
                               sub-words (ROOT: the first token's state), decoded to one
                               tree per sentence: [B, W_b, 2] (head, relation; -1 padding)
                               (``structured``: UAS/LAS counts per sentence)
=================  ==========  ============================================================

Units come in batch-row order and, within a row, in token (or pair) order: the row-major
flatten ``finetune.predictions`` makes of ``Trainer.predict``'s output (positions whose label
is -100 dropped), so row L of UNTUNED and the model with nothing skipped reproduce its rows.
Every head goes through the family's own head path (``EncoderAdapter.head``: pooler,
``final_states`` such as ModernBERT's final norm, ...), so the head on hidden state L is the
model itself.

``features`` functions give what TUNED/TUNEDORIG heads are trained on (studies/truncation/
heads.py): the first-token vector of each example ([B, H]) or of each choice ([B, C, H]); the
final states of the labelled words' first sub-words ([W, H]); the concatenated first-sub-word
states of each pair's head and dependent ([P, 2H]). They read states only, so they also run on
the untuned encoder (no task head: TUNEDORIG).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ...adapters import EncoderAdapter
from ...errors import ConfigError
from ...finetune.parser_model import all_label_scores, decode_outputs
from ...surgery_kernels import HeadInputs, model_head
from ...tasks import TaskSpec

IGNORE = -100  # the label of tokens (or padding pairs) that are not scored (encoding, Trainer)


def _scored(inputs: HeadInputs, kind: str) -> torch.Tensor:
    """[B, T] (tagging) or [B, P] (token pairs) bool: the positions that are units."""
    if inputs.labels is None:
        raise ConfigError(f"a {kind} batch needs its 'labels' ([B, T] or [B, P], {IGNORE} where "
                          f"nothing is scored) to know which tokens or pairs are units")
    return inputs.labels != IGNORE


# --- heads: (adapter, hidden [N, T, H], inputs) -> logits of the batch's units ---------------

def sequence_logits(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                    ) -> torch.Tensor:
    """Sequence head (classification, pair, regression): [B, C] (regression C = 1)."""
    return model_head(ad, hidden, inputs)


def choice_logits(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                  ) -> torch.Tensor:
    """Multiple choice: rows [B*C, T, H] -> one score per choice, [B, C]."""
    if inputs.n_choices is None:
        raise ConfigError("a multiple-choice batch has input_ids [B, n_choices, T]; got [B, T]")
    return model_head(ad, hidden, inputs)


def tagging_logits(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                   ) -> torch.Tensor:
    """Tagging: the token head at the labelled words' first sub-words, [W_b, C]."""
    return model_head(ad, hidden, inputs)[_scored(inputs, "tagging")]


def pair_logits(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs) -> torch.Tensor:
    """Token pairs: ``pair_head`` on (head, dependent) first sub-words, [P_b, C]."""
    if inputs.pair_index is None:
        raise ConfigError("a token_pair batch needs 'pair_index' [B, P, 2] (first sub-word "
                          "positions of each pair's head and dependent; -1 = padding)")
    return model_head(ad, hidden, inputs)[_scored(inputs, "token_pair")]


def qa_logits(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs) -> torch.Tensor:
    """Extractive QA: start and end logits of every token of each window, [N_b, T_b, 2]."""
    return ad.span_head(ad.final_states(hidden))


def parse_trees(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs) -> torch.Tensor:
    """Dependency parsing: the parser's biaffine scores on the words' states decoded as the
    model's own predictions decode them (``parser_model.decode_outputs``: Chu-Liu/Edmonds,
    one word under ROOT, each relation the argmax at the chosen head): [B, W_b, 2] long."""
    if inputs.word_index is None:
        raise ConfigError("a dependency_parsing batch needs 'word_index' [B, W] (each word's "
                          "first sub-word position; -1 = padding word)")
    scores = ad.parser_scores(hidden, inputs.word_index.to(hidden.device))
    heads, rels = decode_outputs(scores.arc, all_label_scores(ad.model.parser, scores))
    return torch.as_tensor(np.stack([heads, rels], -1), device=hidden.device)


# --- features: what TUNED/TUNEDORIG heads read ----------------------------------------------

def first_token_features(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                         ) -> torch.Tensor:
    """The first-token vector [B, H] (multiple choice: of each choice, [B, C, H]) that the
    first-token heads pool (pooler or dense layer: part of the retrained head)."""
    x = hidden[:, 0]
    return x if inputs.n_choices is None else x.reshape(-1, inputs.n_choices, x.shape[-1])


def word_features(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                  ) -> torch.Tensor:
    """The labelled words' first-sub-word states after ``final_states``, [W, H]: what the
    token classifier reads (dropout aside)."""
    return ad.final_states(hidden)[_scored(inputs, "tagging")]


def pair_features(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                  ) -> torch.Tensor:
    """[h_head; h_dep] of each scored pair after ``final_states``, [P, 2H] (Zhou & Srikumar
    2022: "pair tasks concatenate two token vectors"): what ``pair_head``'s linear layer
    reads."""
    if inputs.pair_index is None:
        raise ConfigError("a token_pair batch needs 'pair_index' [B, P, 2]")
    h = ad.final_states(hidden)
    keep = _scored(inputs, "token_pair")
    index = inputs.pair_index.to(h.device)[keep]  # [P, 2] token positions
    rows = torch.arange(h.shape[0], device=h.device)[:, None].expand(keep.shape)[keep]
    return torch.cat([h[rows, index[:, 0]], h[rows, index[:, 1]]], dim=-1)


def token_features(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                   ) -> torch.Tensor:
    """Extractive QA: every token's state after ``final_states``, [N_b, T_b, H]: what
    ``qa_outputs`` reads."""
    return ad.final_states(hidden)


def root_and_word_features(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs
                           ) -> torch.Tensor:
    """Dependency parsing: [B, 1 + W_b, H], the first token's state (the parser's ROOT)
    then each word's first sub-word state (zero at padding words), after ``final_states``:
    what the biaffine head reads."""
    if inputs.word_index is None:
        raise ConfigError("a dependency_parsing batch needs 'word_index' [B, W]")
    h = ad.final_states(hidden)
    index = inputs.word_index.to(h.device)
    words = torch.gather(h, 1, index.clamp(min=0)[..., None].expand(-1, -1, h.shape[-1]))
    words = words * (index >= 0)[..., None]
    return torch.cat([h[:, :1], words], 1)


# --- per kind ------------------------------------------------------------------------------

Fn = Callable[[EncoderAdapter, torch.Tensor, HeadInputs], torch.Tensor]


@dataclass(frozen=True)
class KindHead:
    """A task kind's head on states: ``logits`` and ``features`` (see above), the ``unit`` it
    scores and the ``group`` a bootstrap resamples (None: units are independent examples;
    "sentences": the words or pairs of one sentence are resampled together)."""

    kind: str
    logits: Fn
    features: Fn
    unit: str
    units: str
    group: str | None = None

    def units_per_example(self, labels) -> int:
        """How many units one encoded example scores: 1, or its labels that are not -100."""
        if self.group is None:
            return 1
        return int((np.asarray(labels) != IGNORE).sum())

    def output_units(self, logits: torch.Tensor, inputs: HeadInputs) -> torch.Tensor:
        """The model's own ``logits`` (``model(**batch).logits``) reduced to the batch's units
        as ``logits`` reduces the head's: [B, C] as is; tagging [B, T, C] and token pairs
        [B, P, C] kept where the label is not -100 (the parity reference of the kernels)."""
        return logits if self.group is None else logits[_scored(inputs, self.kind)]

    def unit_labels(self, labels) -> list:
        """The gold labels of one encoded example's units."""
        if self.group is None:
            return [labels]
        return [int(y) for y in np.asarray(labels).reshape(-1) if y != IGNORE]


_SEQUENCE = KindHead("sequence", sequence_logits, first_token_features, "example", "examples")
HEADS: dict[str, KindHead] = {
    "classification": _SEQUENCE, "pair": _SEQUENCE, "regression": _SEQUENCE,
    "multiple_choice": KindHead("multiple_choice", choice_logits, first_token_features,
                                "question", "questions"),
    "tagging": KindHead("tagging", tagging_logits, word_features, "word", "words",
                        group="sentences"),
    "token_pair": KindHead("token_pair", pair_logits, pair_features, "pair", "pairs",
                           group="sentences"),
    # scored through per-unit statistics, not logits per unit (``structured``)
    "extractive_qa": KindHead("extractive_qa", qa_logits, token_features, "question",
                              "questions"),
    "dependency_parsing": KindHead("dependency_parsing", parse_trees, root_and_word_features,
                                   "sentence", "sentences"),
}


def for_task(task: TaskSpec) -> KindHead:
    """The head on states for ``task``'s kind."""
    if task.kind not in HEADS:
        raise ConfigError(f"task {task.name!r} is a {task.kind!r} task: no head on layer k's "
                          f"states is defined for it (kinds: {', '.join(HEADS)})")
    return HEADS[task.kind]
