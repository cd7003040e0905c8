"""Findings of study 03 (truncation): Phang et al. 2021 §4's claims tested on one run.

Every effect is a paired bootstrap over validation examples: all lines, layers and the baseline
are scored on the same resamples (``common.scoring.Scorer``), so a difference of two scores is
resampled as a whole. Token tasks (tagging, token pairs) are scored per word or pair but
resampled per sentence: the words of one sentence are not independent draws, so a resample
takes whole sentences (``Scorer(groups=...)``), and the intervals are (usually) wider than a
bootstrap over words would make them. ``sign`` makes "better" positive (-1 for MSE, lower is
better).

* top_layers_droppable: how many top blocks UNTUNED truncation drops while staying within
  ``tolerance`` of the full model (Phang et al.: "the top 4 layers of the RoBERTa for Yelp
  Polarity model can be discarded with no further tuning and minimal impact to performance
  (95.5 vs 96.1)"). With d_k = sign (metric_k - metric_L), the count is the largest m with
  d_k >= -tolerance for every k in L-m..L-1 (the blocks above k are the ones dropped). The
  number itself is bootstrapped (recomputed on every resample); claim: m >= 1, i.e. the
  interval's low end is above 0.5 (threshold). Also reported: the conservative count, where
  each d_k's own interval must lie above -tolerance.
* tunedorig_below_tuned: TUNEDORIG performs below TUNED (Phang et al.: "TUNEDORIG models
  perform very poorly compared to the TUNED models across all layers"): effect = mean over the
  layers defined for both of sign (TUNED_k - TUNEDORIG_k), threshold 0.
* full_beats_baseline: sign (full model - majority-class baseline) > 0 (regression: the mean
  predictor, compared by MSE).
"""

from __future__ import annotations

import numpy as np

from ..base import Interval, finding, undefined_finding
from ..common.intervals import interval_of, quantile_range

CLAIMS = {
    "top_layers_droppable": "UNTUNED truncation can drop the top block(s) and stay within "
                            "{tol:g} of the full model's {metric} (Phang et al. 2021 §4, Fig. 3)",
    "tunedorig_below_tuned": "TUNEDORIG is below TUNED on average over layers: task-tuned "
                             "intermediate representations matter even with a retrained head "
                             "(Phang et al. 2021 §4)",
    "full_beats_baseline": "the full fine-tuned model beats the majority-class baseline "
                           "(regression: the mean predictor)",
}


def droppable(d: np.ndarray, layers: list[int], n_layers: int, tolerance: float) -> int:
    """Top blocks that can go: the largest m with d[k] >= -tolerance for k = L-m..L-1.

    d: [L+1] sign (metric_k - metric_L) (NaN where undefined); layers: the defined k < L."""
    m = 0
    for k in range(n_layers - 1, -1, -1):
        if k not in layers or not d[k] >= -tolerance - 1e-12:  # float-safe >=
            break
        m += 1
    return m


def _integer_interval(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    a = (1 - confidence) / 2
    return (float(np.quantile(reps, a, method="lower")),
            float(np.quantile(reps, 1 - a, method="higher")))


def effect_intervals(tables: dict[str, np.ndarray], baseline: np.ndarray, *, sign: float,
                     n_layers: int, tolerance: float, method: str, metric: str,
                     confidence: float = 0.95) -> dict[str, dict]:
    """Each claim's effect with its bootstrap interval.

    Args:
        tables: line ("untuned", "tuned", "tunedorig") -> [L+1, 1 + B] metric per layer on all
            examples (column 0) and on each shared resample; NaN rows where undefined.
        baseline: [1 + B] the baseline's metric on the same columns.
    Returns:
        claim id -> ``Interval.to_dict()`` plus claim-specific numbers.
    """
    L, out = n_layers, {}
    u = tables["untuned"]
    defined = [k for k in range(L) if np.isfinite(u[k]).all()]
    d = sign * (u - u[L])  # [L+1, 1 + B]
    per = [droppable(d[:, c], defined, L, tolerance) for c in range(d.shape[1])]
    lo, hi = _integer_interval(np.asarray(per[1:]), confidence)
    a = (1 - confidence) / 2
    d_lo = np.quantile(d[:, 1:], a, axis=1)
    conservative = droppable(np.where(np.isfinite(d_lo), d_lo, np.nan), defined, L, tolerance)
    out["top_layers_droppable"] = {
        **Interval(float(per[0]), lo, hi, f"top blocks UNTUNED drops within {tolerance:g} of "
                   f"the full model", method).to_dict(),
        "conservative": conservative,
        "smallest_depth": L - per[0],
        "differences": {int(k): [float(d[k, 0]), float(d_lo[k]),
                                 float(np.quantile(d[k, 1:], 1 - a))] for k in defined}}
    t, o = tables.get("tuned"), tables.get("tunedorig")
    if t is not None and o is not None:
        both = [k for k in range(L + 1) if np.isfinite(t[k]).all() and np.isfinite(o[k]).all()]
        if both:
            e = sign * (t[both] - o[both]).mean(0)
            out["tunedorig_below_tuned"] = {
                **Interval(float(e[0]), *quantile_range(e[1:], confidence),
                           f"mean over layers of {metric} TUNED minus TUNEDORIG",
                           method).to_dict(), "layers": both}
    e = sign * (u[L] - baseline)
    out["full_beats_baseline"] = Interval(float(e[0]), *quantile_range(e[1:], confidence),
                                          f"{metric} of the full model minus the baseline's"
                                          if sign > 0 else f"baseline {metric} minus the full "
                                          f"model's", method).to_dict()
    return out


def findings(result) -> dict:
    """{claim id: {claim, numbers, interval, verdict}} for a ``TruncationResult``."""
    c, eff, L = result.config, result.effects, result.n_layers
    metric = result.metric
    out = {}
    e = eff["top_layers_droppable"]
    scores = result.scores["untuned"]
    m = int(e["estimate"])
    nums = {"n_droppable": m, "n_droppable_low": e["low"], "n_droppable_high": e["high"],
            "n_droppable_conservative": e["conservative"], "smallest_depth": e["smallest_depth"],
            "full": scores[L], "at_smallest_depth": scores[L - m], "tolerance": c.tolerance,
            "metric": metric}
    # what decides the claim: dropping the top block alone, d_{L-1} against -tolerance. When
    # its interval straddles -tolerance the count is 0 on some resamples and >= 1 on others,
    # so the verdict is INCONCLUSIVE however the estimate falls; more examples narrow it.
    top = e["differences"].get(L - 1, e["differences"].get(str(L - 1)))
    top_text = "" if top is None else (
        f"; dropping block {L} alone: {metric} difference {top[0]:+.4f} [{top[1]:+.4f}, "
        f"{top[2]:+.4f}] against -{c.tolerance:g}")
    if top is not None:
        nums["top_block_difference"] = top
    out["top_layers_droppable"] = finding(
        CLAIMS["top_layers_droppable"].format(tol=c.tolerance, metric=metric), nums,
        interval_of(e), threshold=0.5,
        summary=f"UNTUNED keeps {L - m} of {L} blocks: {metric} {scores[L - m]:.4f} vs full "
                f"{scores[L]:.4f}; conservative count (each layer's interval within "
                f"tolerance) {e['conservative']}{top_text}")
    claim = CLAIMS["tunedorig_below_tuned"]
    if "tunedorig_below_tuned" in eff:
        e = eff["tunedorig_below_tuned"]
        t, o = result.scores["tuned"], result.scores["tunedorig"]
        nums = {"tuned_mean": float(np.nanmean([t[k] for k in e["layers"]])),
                "tunedorig_mean": float(np.nanmean([o[k] for k in e["layers"]])),
                "layers": e["layers"]}
        out["tunedorig_below_tuned"] = finding(
            claim, nums, interval_of(e),
            summary=f"mean {metric} TUNED {nums['tuned_mean']:.4f} vs TUNEDORIG "
                    f"{nums['tunedorig_mean']:.4f} over layers {e['layers'][0]}..{e['layers'][-1]}")
    else:
        out["tunedorig_below_tuned"] = undefined_finding(claim, "no layer has both TUNED and "
                                                                "TUNEDORIG scores")
    e = eff["full_beats_baseline"]
    b = result.baseline
    out["full_beats_baseline"] = finding(
        CLAIMS["full_beats_baseline"], {"full": scores[L], "baseline": b["value"],
                                        "baseline_prediction": b["prediction"], "metric": metric},
        interval_of(e), summary=f"full {metric} {scores[L]:.4f} vs baseline {b['value']:.4f}")
    return out
