"""Study kernels for truncation and skipping: every layer, or every span, from shared work.

Both kernels start from one base pass that computes hidden states 0..L block by block through
:class:`~layerscope.adapters.EncoderAdapter` (equal to the model's own ``hidden_states``):

- UNTUNED truncation (Phang et al. 2021 §4): the fine-tuned head applied, as is, to each hidden
  state — L+1 head calls on top of one forward pass, instead of one pass per layer.
- Skipping every contiguous span [i..j] (§4.1, Figure 4): the model without blocks i..j maps
  hidden state i-1 through blocks j+1..L, so the base pass supplies the input and only the
  blocks after the span run. Spans that end at the same j share those blocks: their inputs are
  stacked along the batch dimension so each block runs once per j on one large batch (large
  GEMMs). For L = 12: Σ (12 - j) = 286 block evaluations (+ 12 for the base pass) instead of 572
  for separate passes that each leave their span out; see ``span_block_evaluations``.

Both equal what :func:`layerscope.surgery.truncated` / :func:`~layerscope.surgery.skipped` give
when the model is called inside them (tests/test_surgery.py), up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn

from .adapters import EncoderAdapter
from .errors import ConfigError, MissingHeadError

BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids")  # what the encoder reads
# what a head may read besides the states (passed through unflattened): a token-pair model's
# pair positions [B, P, 2]; the labels ([B] / [B, T] / [B, P]) say which tokens or pairs are
# scored (studies.common.task_heads); a parser's word positions [B, W] (-1 = padding word)
HEAD_KEYS = ("labels", "pair_index", "word_index")


class HeadInputs(NamedTuple):
    """What a head reads besides a hidden-state sequence: the rows' attention mask [N, T]
    (N = B, or B*C for multiple choice), the number of choices (None unless multiple choice)
    and the batch's ``labels``, ``pair_index`` and ``word_index`` as given (or None)."""

    attention_mask: torch.Tensor | None
    n_choices: int | None
    labels: torch.Tensor | None
    pair_index: torch.Tensor | None
    word_index: torch.Tensor | None = None


# head(adapter, hidden [N, T, H], inputs) -> logits for one batch: what the kernels apply to
# every layer (truncation) or span (skipping); ``model_head`` by default
Head = Callable[[EncoderAdapter, torch.Tensor, HeadInputs], torch.Tensor]


class SpanCost(NamedTuple):
    """Block evaluations (one block applied to one batch of B examples) for all spans."""

    base: int  # the base pass: L
    reused: int  # reused prefixes: Σ over spans of (L - j)
    separate: int  # one pass per span, each leaving its span out: Σ (L - (j - i + 1))


def spans(n_layers: int) -> list[tuple[int, int]]:
    """Every contiguous span (i, j), 1 <= i <= j <= L, first and last skipped block inclusive,
    ordered by j then i — except (1, L): skipping every block leaves no model (the embedding
    output through the head is ``untuned_truncation_logits(...)[0]``). L(L+1)/2 - 1 spans."""
    return [(i, j) for j in range(1, n_layers + 1) for i in range(1, j + 1)
            if (i, j) != (1, n_layers)]


def span_block_evaluations(n_layers: int) -> SpanCost:
    """What ``all_span_skipping_logits`` costs vs separate passes. L = 12: (12, 286, 572)."""
    s = spans(n_layers)
    return SpanCost(base=n_layers, reused=sum(n_layers - j for _, j in s),
                    separate=sum(n_layers - (j - i + 1) for i, j in s))


# --- shared pieces --------------------------------------------------------------------------

@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the kernel, each module's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _prepare(model: nn.Module, batch: Mapping, *, need_head: bool = True
             ) -> tuple[EncoderAdapter, dict, HeadInputs]:
    """Adapter, flat encoder inputs [N, T] and what the head reads besides the states."""
    ad = EncoderAdapter(model)
    if need_head and not ad.has_head:
        raise MissingHeadError(
            f"{type(model).__name__} has no task head, so truncation/skipping logits are "
            f"undefined; load a task model (models.load_for_task or a fine-tuned checkpoint)")
    unknown = sorted(set(batch) - set(BATCH_KEYS) - set(HEAD_KEYS))
    if unknown or "input_ids" not in batch:
        raise ConfigError(f"batch keys {sorted(batch)}: need 'input_ids', may have "
                          f"{BATCH_KEYS[1:]} and {HEAD_KEYS}; unsupported: {unknown}")
    ids = batch["input_ids"]
    n_choices = ids.shape[1] if ids.dim() == 3 else None  # [B, C, T] -> rows [B*C, T]
    flat = {k: (batch[k].reshape(-1, batch[k].shape[-1]) if batch.get(k) is not None else None)
            for k in BATCH_KEYS}
    return ad, flat, HeadInputs(flat["attention_mask"], n_choices, batch.get("labels"),
                                batch.get("pair_index"), batch.get("word_index"))


def model_head(ad: EncoderAdapter, hidden: torch.Tensor, inputs: HeadInputs) -> torch.Tensor:
    """The task model's own head (``EncoderAdapter.head``) on rows of hidden states [N, T, H]
    with their attention mask (mean-pooling heads such as ModernBERT's read it): [N, C]
    (tokens: [N, T, C]; multiple choice: [N / n_choices, n_choices]; token pairs: [N, P, C])."""
    logits = ad.head(hidden, attention_mask=inputs.attention_mask, pair_index=inputs.pair_index)
    return logits if inputs.n_choices is None else logits.reshape(-1, inputs.n_choices)


def _base_states(ad: EncoderAdapter, inputs: dict) -> list[torch.Tensor]:
    """Hidden states 0..L, each [N, T, H], from one pass."""
    return ad.hidden_states(inputs["input_ids"], inputs["attention_mask"],
                            inputs["token_type_ids"])


# --- kernels --------------------------------------------------------------------------------

@torch.inference_mode()
def untuned_truncation_logits(model: nn.Module, batch: Mapping, *, head: Head | None = None,
                              features: Head | None = None):
    """UNTUNED truncation at every depth from one forward pass (Phang et al. 2021 §4).

    batch: ``input_ids`` [B, T] (multiple choice [B, C, T]), optional ``attention_mask`` and
    ``token_type_ids`` (and ``labels``, ``pair_index``: see ``HEAD_KEYS``). Returns
    [L+1, B, num_labels] (token tasks [L+1, B, T, num_labels]): row k is the fine-tuned head
    applied to hidden state k, through the family's own head path (``EncoderAdapter.head``:
    BERT/ALBERT pooler + classifier, RoBERTa dense+tanh+out_proj on ``<s>``, DistilBERT
    pre_classifier+ReLU, ...); row L is the full model. Row 0 (the embedding output) is
    included so rows index layers, but it is only meaningful where the first-token vector
    varies across examples (not in BERT-style models, where layer-0 [CLS] is constant). Runs
    in eval mode.

    ``head``: another function of (adapter, hidden state, ``HeadInputs``) to apply to each
    layer (``studies.common.task_heads``: one per task kind, giving logits per scored unit);
    default ``model_head``. ``features``: a second function, e.g. the head's input features,
    applied to the same states of the same pass; then the result is (logits, features), both
    stacked over layers.
    """
    ad, inputs, extra = _prepare(model, batch)
    head = head or model_head
    with _evaluating(model):
        states = _base_states(ad, inputs)
        logits = torch.stack([head(ad, h, extra) for h in states])
        if features is None:
            return logits
        return logits, torch.stack([features(ad, h, extra) for h in states])


@torch.inference_mode()
def layer_features(model: nn.Module, batch: Mapping, features: Head) -> torch.Tensor:
    """``features`` (a function of adapter, hidden state, ``HeadInputs``) on every hidden
    state 0..L of one pass: [L+1, ...]. Any model with an adapter, task head or not (the
    untuned encoder's features train TUNEDORIG heads). Runs in eval mode."""
    ad, inputs, extra = _prepare(model, batch, need_head=False)
    with _evaluating(model):
        return torch.stack([features(ad, h, extra) for h in _base_states(ad, inputs)])


@torch.inference_mode()
def all_span_skipping_logits(model: nn.Module, batch: Mapping, *, max_rows: int | None = None,
                             head: Head | None = None) -> dict[tuple[int, int], torch.Tensor]:
    """Logits with each contiguous span of blocks skipped, every span of ``spans(L)``.

    Returns {(i, j): [B, num_labels]} (token tasks [B, T, num_labels]): the model with blocks
    i..j (inclusive) replaced by the identity, no further tuning (Phang et al. 2021 §4.1) —
    blocks j+1..L applied to hidden state i-1 of one base pass, the spans ending at the same j
    stacked into one batch; the head (``head``, as in ``untuned_truncation_logits``; default
    ``model_head``) then reads each span's final states with the batch's own mask.
    ``max_rows`` caps the rows (sequences) per block call to bound memory; it does not change
    the block-evaluation count. Runs in eval mode.
    """
    if max_rows is not None and (isinstance(max_rows, bool) or int(max_rows) != max_rows
                                 or max_rows < 1):
        raise ConfigError(f"max_rows={max_rows!r}: use a positive number of sequences or None")
    ad, inputs, extra = _prepare(model, batch)
    head = head or model_head
    L, mask_rows = ad.n_layers, inputs["attention_mask"]
    out: dict[tuple[int, int], torch.Tensor] = {}
    with _evaluating(model):
        states = _base_states(ad, inputs)
        n = states[0].shape[0]  # rows of one copy of the batch (B, or B*C for multiple choice)
        by_end: dict[int, list[int]] = {}
        for i, j in spans(L):
            by_end.setdefault(j, []).append(i)
        for j, starts in by_end.items():
            if j == L:  # nothing after the span: the head reads hidden state i-1 as is
                for i in starts:
                    out[(i, j)] = head(ad, states[i - 1], extra)
                continue
            stacked = torch.cat([states[i - 1] for i in starts])  # [len(starts) * n, T, H]
            rows = None if mask_rows is None else mask_rows.repeat(len(starts), 1)
            step = len(stacked) if max_rows is None else int(max_rows)
            finals = []
            for r in range(0, len(stacked), step):
                h = stacked[r:r + step]
                m = None if rows is None else rows[r:r + step]
                finals.append(ad.run_blocks(h, ad.block_context(m, h), range(j + 1, L + 1)))
            per_span = torch.cat(finals).split(n)  # one [n, T, H] chunk per span, start order
            for i, h in zip(starts, per_span, strict=True):
                out[(i, j)] = head(ad, h, extra)
    return out
