"""Model surgery by block index: keep the first k blocks, skip any set of blocks, save or drop.

Layer convention (package docstring): hidden state 0 is the embedding output, hidden state i the
output of block i (blocks 1..L). Truncation at k (Phang et al. 2021 §4) runs blocks 1..k and
feeds hidden state k to the task head as is; skipping a set S (§4.1) replaces the blocks in S
by the identity. No further tuning in either case.

Mechanism (the same for every family with an adapter, exact, no forward hooks): the encoder's
block list is swapped for an ``nn.ModuleList`` of the *kept* blocks, looked up by index through
the family's :class:`~layerscope.adapters.EncoderAdapter` (``kept_layout``: the module that holds
the list and the config fields the encoder's forward reads), and those fields are set to match;
everything is put back in ``finally`` (the tuned-lens ``model_surgery`` pattern).

- BERT, RoBERTa, ELECTRA: ``encoder.layer`` = kept blocks; ``forward`` loops over that list.
  ``config.num_hidden_layers`` follows (only bookkeeping there: the loop ignores it). Other
  families hold the list elsewhere (DistilBERT: ``transformer.layer``; ``block_list()``).
- ALBERT: ``AlbertTransformer.forward`` applies ``albert_layer_groups[int(i / (L / G))]`` for
  i < ``config.num_hidden_layers`` = L, with ``config.num_hidden_groups`` = G. One shared module
  is applied L times, so module identity or a hook cannot tell block 2 from block 3. Setting
  ``albert_layer_groups`` = [group applied by each kept block] and L = G = n makes the rule
  ``int(i / 1.0) = i``: the forward runs exactly the kept blocks, in order, for any G
  (``adapters.bert.AlbertAdapter``).

Before the first swap the output-capturing hooks of transformers 5 are installed on the full
model: they are installed lazily, once, on the modules present at the first
``output_hidden_states`` call, so a first call inside a context would leave the removed blocks
hook-less for good (``hidden_states`` silently shorter after restoring).

The efficient study kernels (one pass for all truncations, reused prefixes for all spans) are in
:mod:`layerscope.surgery_kernels`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path

from torch import nn

from .adapters import EncoderAdapter, Layout
from .errors import ConfigError

# --- validation -----------------------------------------------------------------------------

def check_depth(k, n_layers: int, what: str = "truncation depth k") -> int:
    """``k`` if it is a block count 1..n_layers, else a ConfigError naming it and the range."""
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= n_layers:
        raise ConfigError(f"{what}={k!r} is out of range for this {n_layers}-block model: use "
                          f"1..{n_layers} ({n_layers} keeps every block; hidden state 0, the "
                          f"embedding output, is read with untuned_truncation_logits(...)[0])")
    return int(k)


def check_skip(blocks: Iterable[int], n_layers: int) -> frozenset[int]:
    """The set of blocks to skip, checked: each in 1..n_layers, at least one block kept."""
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Iterable):
        raise ConfigError(f"blocks to skip must be an iterable of block indices (e.g. {{2, 3}} "
                          f"or range(2, 4)), got {blocks!r}")
    skip = set()
    for b in blocks:
        if isinstance(b, bool) or not isinstance(b, Integral) or not 1 <= b <= n_layers:
            raise ConfigError(f"block {b!r} cannot be skipped: this model has blocks "
                              f"1..{n_layers} (hidden state 0 is the embedding output, no block)")
        skip.add(int(b))
    if len(skip) == n_layers:
        raise ConfigError(f"skipping blocks {sorted(skip)} would skip every block of this "
                          f"{n_layers}-block model; keep at least one (the embedding output "
                          f"through the head is untuned_truncation_logits(model, batch)[0])")
    return frozenset(skip)


def _install_output_hooks(ad: EncoderAdapter) -> None:
    """Install transformers' lazy output-capturing hooks now, on the full model (see above)."""
    try:
        from transformers.utils.output_capturing import maybe_install_capturing_hooks
    except ImportError:  # transformers 4.x: hidden_states are collected without hooks
        return
    if hasattr(ad.base, "_can_record_outputs"):
        maybe_install_capturing_hooks(ad.base)


def _apply(model: nn.Module, layout: Layout) -> Callable[[], None]:
    """Put ``layout`` in place; returns the function that restores the previous state."""
    ad = EncoderAdapter(model)
    _install_output_hooks(ad)
    owner, attr, modules, fields = layout
    configs = ad.configs()
    old_modules = getattr(owner, attr)
    old_fields = [(c, name, getattr(c, name)) for c in configs for name in fields]

    def restore() -> None:
        setattr(owner, attr, old_modules)
        for c, name, value in old_fields:
            setattr(c, name, value)

    try:
        setattr(owner, attr, modules)
        for c in configs:
            for name, value in fields.items():
                setattr(c, name, value)
    except BaseException:
        restore()
        raise
    return restore


@contextmanager
def _patched(model: nn.Module, layout: Layout | None) -> Iterator[nn.Module]:
    if layout is None:  # nothing to change: the model itself, exactly
        yield model
        return
    restore = _apply(model, layout)
    try:
        yield model
    finally:
        restore()


# --- public surgery -------------------------------------------------------------------------

def truncated(model: nn.Module, k: int):
    """Context manager: inside it, ``model`` runs blocks 1..k only and its head reads hidden
    state k (UNTUNED truncation, Phang et al. 2021 §4). ``k`` in 1..L; k == L changes nothing.

    ``with truncated(model, 6): logits = model(**batch).logits  # [B, num_labels]``

    Indices refer to the model as it is on entry (contexts nest). Restored on exit, also after
    an exception. The model object itself changes meanwhile: not for concurrent use from other
    threads. For all k at once use ``surgery_kernels.untuned_truncation_logits``.
    """
    ad = EncoderAdapter(model)
    k = check_depth(k, ad.n_layers)
    layout = None if k == ad.n_layers else ad.kept_layout(list(range(1, k + 1)))
    return _patched(model, layout)


def skipped(model: nn.Module, blocks: Iterable[int]):
    """Context manager: inside it, the listed blocks (any subset of 1..L: a span such as
    ``range(i, j + 1)`` or e.g. ``{1, 3}``) are the identity (Phang et al. 2021 §4.1); the rest
    run in order, no further tuning. The empty set changes nothing; skipping every block is a
    ConfigError. Restored on exit, also after an exception.
    """
    ad = EncoderAdapter(model)
    skip = check_skip(blocks, ad.n_layers)
    kept = [i for i in range(1, ad.n_layers + 1) if i not in skip]
    return _patched(model, ad.kept_layout(kept) if skip else None)


def drop_top_blocks(model: nn.Module, n: int) -> nn.Module:
    """Remove the top ``n`` blocks for good, in place (Merchant et al. 2020's ablation: fine-tune
    a shallower model); updates the config. ``n`` in 0..L-1. Returns ``model``.

    Afterwards the model is an ordinary (L-n)-block model: it predicts what
    ``truncated(model, L - n)`` predicted, and ``save_pretrained`` writes a valid checkpoint.
    """
    ad = EncoderAdapter(model)
    L = ad.n_layers
    if isinstance(n, bool) or not isinstance(n, Integral) or not 0 <= n < L:
        raise ConfigError(f"drop_top={n!r} is out of range for this {L}-block model: use "
                          f"0..{L - 1} (dropping {L} would remove every block)")
    if n:
        _apply(model, ad.prefix_layout(L - int(n)))  # permanent: the restore is discarded
    return model


def save_truncated(model: nn.Module, k: int, directory: str | os.PathLike,
                   tokenizer=None) -> Path:
    """Write a real k-block Hugging Face checkpoint of ``model`` (top L-k blocks removed,
    ``num_hidden_layers = k``) to ``directory``, with ``tokenizer`` if given. Returns the path.

    ``AutoModelForSequenceClassification.from_pretrained(directory)`` (or the model's own class)
    then predicts exactly what ``truncated(model, k)`` predicts: the smaller model a user can
    keep when the top layers turn out to be dispensable (§4). ``model`` itself is not changed.
    ALBERT: see ``AlbertAdapter.prefix_layout`` (always valid with one layer group). The folder
    is written next to ``directory`` and renamed into place; an existing non-empty
    ``directory`` is an error.
    """
    ad = EncoderAdapter(model)
    k = check_depth(k, ad.n_layers)
    target = Path(directory).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"save_truncated: {str(target)!r} already exists and is not an empty "
                          f"folder; choose a new folder or remove it first")
    layout = None if k == ad.n_layers else ad.prefix_layout(k)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    architectures = getattr(model.config, "architectures", None)
    try:
        with _patched(model, layout):
            try:
                model.save_pretrained(tmp)
            finally:  # save_pretrained records the class in the live config: keep ours as is
                model.config.architectures = architectures
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
