"""Your own sentences in, per-layer states and a layer x layer figure out.

The short path of the README: no task, no cache, no fine-tuning; it composes the public
functions the studies use (``activations.encoder_and_tokenizer`` and ``activations.extract``,
``plots.panels_figure``)::

    import layerscope as ls
    a = ls.sentence_states("minilm-l6", sentences)   # [L+1, N, d]
    ls.layer_heatmap(ls.cka_matrix(a)).write_html("cka.html")

Layer convention (package docstring): index 0 is the embedding output, index i the output of
block i, the same as Hugging Face ``hidden_states[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import activations
from .errors import ConfigError, check_choice
from .plots import Panel, panels_figure
from .quiet import quiet_libraries

SENTENCE_POOLINGS = ("cls", "mean")

__all__ = ["SENTENCE_POOLINGS", "sentence_states", "layer_heatmap"]


def sentence_states(model, sentences: Sequence[str], *, pooling: str = "cls",
                    max_length: int = 128, batch_size: int = 32, dtype: str = "float32",
                    progress: bool = False) -> np.ndarray:
    """Pooled hidden states of every layer for a list of sentences.

    Args:
        model: a model name from ``layerscope models`` (e.g. ``"minilm-l6"``, the offline
            default), a hub id (``"org/name"``), a local folder saved with
            ``save_pretrained()``, a ``FinetuneResult`` (a fine-tuned run), or a
            ``(model, tokenizer)`` pair already loaded.
        sentences: N strings (or ``(text, text_pair)`` tuples for sentence pairs).
        pooling: ``"cls"``: the first token, as Phang et al. (2021) compare (at layer 0 it is
            the same vector for every sentence in BERT-style models, so similarity with it is
            undefined); ``"mean"``: the mean over all tokens.
        max_length: tokens per sentence after truncation (capped at what the model takes).
        batch_size, dtype, progress: see ``activations.extract``.

    Returns:
        [L+1, N, d] float32 array: layer 0 (embedding output) to layer L (last block).
    """
    if isinstance(sentences, str):
        raise ConfigError("sentences must be a list of sentences; got one string (wrap it in a"
                          " list: [text])")
    sentences = list(sentences)
    check_choice(pooling, SENTENCE_POOLINGS, "pooling",
                 "per-word poolings need a token task: see activations.extract")
    if isinstance(model, tuple):
        if len(model) != 2:
            raise ConfigError("model as a tuple must be (model, tokenizer)")
        encoder, tokenizer = model
    else:
        with quiet_libraries():  # no "Loading weights" bars; real warnings still show
            encoder, tokenizer = activations.encoder_and_tokenizer(model)
    states, _ = activations.extract(encoder, tokenizer, sentences, pooling=pooling,
                                    dtype=dtype, max_length=max_length,
                                    batch_size=batch_size, progress=progress)
    return states


def layer_heatmap(matrix, *, y: str = "a", x: str | None = None, metric: str = "CKA",
                  title: str | None = None, zmin: float = 0.0, zmax: float = 1.0):
    """A layer x layer heatmap (plotly ``go.Figure``) of e.g. ``cka_matrix(a, b)``.

    Args:
        matrix: [La, Lb] (tensor or array): rows are the layers of ``y``, columns of ``x``.
        y, x: names of the two models (``x`` defaults to ``y``: a self-comparison).
        metric: the colour bar's title.
        title: the figure's title (default: "<metric>: <y> vs <x>").
        zmin, zmax: the colour scale (CKA lies in [0, 1]; debiased CKA may dip below 0).

    Undefined (NaN) cells are drawn grey, with the reason in a note under the figure.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ConfigError(f"matrix must be [La, Lb]; got shape {m.shape}")
    x = y if x is None else x
    notes = []
    if np.isnan(m).any():
        notes.append("Grey: undefined, a layer whose representation is the same for every "
                     "sentence (e.g. the layer-0 CLS vector of BERT-style models).")
    panel = Panel(m, title="", y_title=y, x_title=x)
    return panels_figure([panel], title=title or f"{metric}: {y} vs {x}", metric=metric,
                         notes=notes, zmin=zmin, zmax=zmax)
