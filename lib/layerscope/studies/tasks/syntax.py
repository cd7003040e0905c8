"""The structural probe on every layer of a model (Hewitt & Manning 2019), and the sentence
bootstrap of its best layer. Arrays in, arrays out (``measures.structural_probe`` does the
probe itself).

Per layer, a distance probe is fitted on the training sentences' word vectors (the last fifth
of them decide its early stop, as the authors' dev set does) and evaluated on the probe
sentences: UUAS (punctuation left out of both trees: the words whose relation is "punct") and
distance Spearman (DSpr., sentences of 5-50 words). Per-sentence UUAS counts are kept, so a
bootstrap over sentences can recompute corpus UUAS on any resample: correct edges over gold
edges, summed over the drawn sentences.

The linear baseline (Hewitt & Manning §4: each word attached to the next, "LINEAR") is the
reference every table of theirs carries: predicted distance |i - j|.

Shapes: a sentence's states [n_s, d]; heads [n_s] (CoNLL-U: 0 = root); S probe sentences,
L+1 layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import UndefinedError
from ...measures import structural_probe as sp
from ...progress import counted


@dataclass(frozen=True)
class ProbeSettings:
    rank: int | None = 64
    epochs: int = 40
    learning_rate: float = 1e-3
    batch_size: int = 20
    seed: int = 0


@dataclass(frozen=True)
class LayerSyntax:
    """One model's structural probe on every layer.

    uuas, dspr: [L+1] (NaN where undefined, with the reason in ``undefined``); correct: [L+1, S]
    edges right per probe sentence; total: [S] gold edges per sentence (the same for every
    model); best_epoch: [L+1] the epoch whose probe was kept."""

    uuas: np.ndarray
    dspr: np.ndarray
    correct: np.ndarray
    total: np.ndarray
    best_epoch: np.ndarray
    undefined: tuple[str, ...] = ()


def split_sentences(states: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """[n, d] word rows of consecutive sentences -> one [n_s, d] array per sentence
    (``starts`` [S+1]: where each sentence's rows begin, then n)."""
    return [states[starts[i]:starts[i + 1]] for i in range(len(starts) - 1)]


def probe_layers(train: Sequence[np.ndarray], train_starts: np.ndarray, train_heads: Sequence,
                 evaluate: Sequence[np.ndarray], eval_starts: np.ndarray, eval_heads: Sequence,
                 keep: Sequence[np.ndarray], settings: ProbeSettings,
                 what: str = "model") -> LayerSyntax:
    """Fit and evaluate the distance probe on every layer.

    train / evaluate: per layer [n_words, d] rows of the training / probe sentences in
    sentence order (``*_starts`` [S+1] cut them); *_heads: per sentence [n_s]; keep: per probe
    sentence [n_s] bool, the words in the trees (not punctuation).
    """
    n_fit = max(1, len(train_heads) - max(1, len(train_heads) // 5))
    uuas, dspr, correct, epochs, undefined = [], [], [], [], []
    total = None
    for layer in counted(range(len(train)), f"structural probe ({what}): layer", len(train)):
        xs = split_sentences(np.asarray(train[layer], dtype=np.float64), train_starts)
        fit_val = (xs[n_fit:], list(train_heads[n_fit:])) if n_fit < len(xs) else (None, None)
        probe = sp.fit_distance_probe(xs[:n_fit], list(train_heads[:n_fit]), *fit_val,
                                      rank=settings.rank, learning_rate=settings.learning_rate,
                                      batch_size=settings.batch_size,
                                      max_epochs=settings.epochs, seed=settings.seed)
        ev = split_sentences(np.asarray(evaluate[layer], dtype=np.float64), eval_starts)
        pred = [probe.distances(x) for x in ev]
        u = sp.uuas(pred, list(eval_heads), keep=list(keep))
        uuas.append(u.uuas)
        correct.append(u.correct)
        total = u.total
        try:
            dspr.append(sp.distance_spearman(pred, list(eval_heads)).mean)
        except UndefinedError as e:
            dspr.append(float("nan"))
            undefined.append(f"{what} layer {layer}: DSpr. undefined ({e})")
        epochs.append(probe.best_epoch)
    return LayerSyntax(np.asarray(uuas, dtype=np.float64), np.asarray(dspr, dtype=np.float64),
                       np.asarray(correct, dtype=np.int64), np.asarray(total, dtype=np.int64),
                       np.asarray(epochs, dtype=np.int64), tuple(dict.fromkeys(undefined)))


def linear_baseline(heads: Sequence, keep: Sequence[np.ndarray]) -> np.ndarray:
    """[S] edges right per sentence of the LINEAR baseline (each kept word joined to the next
    kept word: distances |i - j|; Hewitt & Manning 2019 §4)."""
    pred = [np.abs(np.arange(len(h))[:, None] - np.arange(len(h))[None, :]).astype(np.float64)
            for h in heads]
    return sp.uuas(pred, list(heads), keep=list(keep)).correct


def corpus_uuas(correct: np.ndarray, total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Corpus UUAS on sentence resamples: correct [..., S], total [S], counts [B, S] ->
    [B, ...] (sum of drawn correct edges over drawn gold edges); NaN when a resample has no
    gold edge."""
    c = np.asarray(correct, dtype=np.float64)
    m = np.asarray(counts, dtype=np.float64)
    num = np.einsum("bs,...s->b...", m, c)
    den = m @ np.asarray(total, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den.reshape((-1,) + (1,) * (num.ndim - 1))
    return np.where(den.reshape((-1,) + (1,) * (num.ndim - 1)) > 0, out, np.nan)


def best_layer_uuas(correct: np.ndarray, total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The best layer's corpus UUAS on each resample ([L+1, S] -> [B]): the layer is chosen
    on the resample itself, as on the full sample (``counts`` all ones)."""
    return np.nanmax(corpus_uuas(correct, total, counts), axis=-1)
