"""Intervals the studies' findings share: the percentile range of bootstrap replicates, and an
effect's interval (as ``Interval.to_dict`` saved it, None for NaN) back into an ``Interval``.
"""

from __future__ import annotations

import numpy as np

from ..base import Interval


def quantile_range(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of bootstrap
    replicates [B] of one effect (paired resamples). Every replicate counts: a NaN among them
    makes the range NaN (unlike ``measures.intervals.percentile_interval``, which drops NaN
    replicates of degenerate resamples)."""
    a = (1 - confidence) / 2
    lo, hi = np.quantile(replicates, [a, 1 - a])
    return float(lo), float(hi)


def interval_of(effect: dict) -> Interval:
    """The ``Interval`` of a saved effect {estimate, low, high, of, method, ...}; None -> NaN
    (JSON has no NaN), so that the verdict rule reads an undefined end as undefined."""
    nan = float("nan")
    return Interval(*(nan if effect[k] is None else effect[k] for k in ("estimate", "low", "high")),
                    effect["of"], effect["method"])
