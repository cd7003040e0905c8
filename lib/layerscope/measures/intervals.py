"""Uncertainty of a statistic: percentile bootstrap over examples, and spread over seeds.

Findings are statistics: a claim's verdict rests on an interval computed here.
Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from ..errors import ConfigError

__all__ = ["bootstrap_indices", "percentile_interval", "bootstrap_interval", "seed_interval"]


def _check(n_boot: int, confidence: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ConfigError(f"n_boot must be an int >= 2; got {n_boot!r}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1); got {confidence!r}")


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n] example indices drawn with replacement (seeded)."""
    if n < 2:
        raise ConfigError(f"a bootstrap over examples needs n >= 2; got n={n}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_interval(replicates, confidence: float = 0.95, *,
                        recentre_on: float | None = None) -> tuple[float, float]:
    """(low, high) percentiles of bootstrap replicates; NaN replicates (degenerate resamples)
    are dropped, and more than half NaN makes the interval undefined (NaN, NaN).

    ``recentre_on``: shift the interval so that the replicates' median sits on this estimate.
    For CKA-like statistics resampled rows repeat, and repeats inflate similarity: the
    replicates move away from the estimate while their spread barely changes (the same
    correction as ``cka_stats.bootstrap_cka``). Without it the interval can miss its own
    estimate.
    """
    reps = np.asarray(replicates, dtype=float)
    ok = np.isfinite(reps)
    if ok.mean() < 0.5:
        return float("nan"), float("nan")
    a = (1 - confidence) / 2
    lo, mid, hi = np.quantile(reps[ok], [a, 0.5, 1 - a])
    if recentre_on is not None:
        lo, hi = recentre_on + lo - mid, recentre_on + hi - mid
    return float(lo), float(hi)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, *, n_boot: int = 200,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): percentile bootstrap of ``statistic(indices)`` over n examples.

    ``statistic`` receives an int array of example indices ([n], with repeats on resamples) and
    returns a float; the estimate is ``statistic(arange(n))``. Resamples where the statistic is
    NaN (e.g. a degenerate draw) are dropped; if more than half are NaN the interval is
    undefined and an error says so.
    """
    _check(n_boot, confidence)
    est = float(statistic(np.arange(n)))
    reps = np.array([float(statistic(idx)) for idx in bootstrap_indices(n, n_boot, seed)])
    ok = np.isfinite(reps)
    if ok.mean() < 0.5:
        raise ConfigError(f"the statistic is undefined on {int((~ok).sum())} of {n_boot}"
                          " bootstrap resamples; use more examples")
    a = (1 - confidence) / 2
    lo, hi = np.quantile(reps[ok], [a, 1 - a])
    return est, float(lo), float(hi)


def seed_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) over fine-tuning seeds (or restarts): mean ± t * std / sqrt(k).

    With one value the interval is undefined: (value, nan, nan), which the verdict rule reads as
    INCONCLUSIVE rather than as certainty.
    """
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half
