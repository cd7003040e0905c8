"""Findings of study 04 (skipping): Phang et al. 2021 §4.1's claims tested on one run.

Paired bootstrap over validation examples: every span and the full model are scored on the same
resamples (``common.scoring.Scorer``). Token tasks (tagging, token pairs) are scored per word
or pair but resampled per sentence: the words of one sentence are not independent draws, so a
resample takes whole sentences (``Scorer(groups=...)``), and the intervals are (usually) wider
than a bootstrap over words would make them. ``sign`` makes "better" positive (-1 for MSE).
m(i, j) is the metric with blocks i..j skipped; m(j) = m(j, j) skips block j alone.

* first_block_hurts_most: "skipping just the first layer can heavily impact task performance"
  while "skipping any single layer seems to make little to no impact": effect =
  min over j > 1 of sign (m(j) - m(1)) > 0 (every single later skip scores above skipping
  block 1), the minimum recomputed on every resample.
* later_single_skips_cheap: skipping any one later block stays within ``tolerance`` of the
  full model: effect = min over j > 1 of sign (m(j) - m_full), threshold -tolerance.
* longer_spans_hurt_more: "performance tends to drop as larger spans of layers are skipped":
  effect = sign (mean m over one-block spans - mean m over spans of two or more blocks) > 0.

"Skipping nothing equals the full model" is an invariant (notebook assert), not a finding.
"""

from __future__ import annotations

import numpy as np

from ..base import Interval, finding, undefined_finding
from ..common.intervals import interval_of, quantile_range

CLAIMS = {
    "first_block_hurts_most": "skipping block 1 hurts more than skipping any single later "
                              "block (Phang et al. 2021 §4.1, Fig. 4)",
    "later_single_skips_cheap": "skipping any single later block stays within {tol:g} of the "
                                "full model's {metric} (Phang et al. 2021 §4.1)",
    "longer_spans_hurt_more": "skipping longer spans hurts more: one-block spans score above "
                              "spans of two or more blocks on average (Phang et al. 2021 §4.1)",
}


def effect_intervals(spans, span_t: np.ndarray, full_t: np.ndarray, *, sign: float,
                     n_layers: int, tolerance: float, method: str, metric: str,
                     confidence: float = 0.95) -> dict[str, dict]:
    """Each claim's effect with its interval; spans: [(i, j)] rows of span_t [R, 1 + B]."""
    index = {s: r for r, s in enumerate(spans)}
    singles = [index[(j, j)] for j in range(2, n_layers + 1) if (j, j) in index]
    out = {}
    if (1, 1) in index and singles:
        e = (sign * (span_t[singles] - span_t[index[(1, 1)]])).min(0)
        worst = int(np.argmin(span_t[singles, 0] * sign)) + 2
        out["first_block_hurts_most"] = {
            **Interval(float(e[0]), *quantile_range(e[1:], confidence),
                       f"min over j > 1 of {metric} skipping block j minus skipping block 1",
                       method).to_dict(),
            "worst_later_block": worst}
        e = (sign * (span_t[singles] - full_t)).min(0)
        out["later_single_skips_cheap"] = Interval(
            float(e[0]), *quantile_range(e[1:], confidence),
            f"min over j > 1 of {metric} skipping block j minus the full model", method).to_dict()
    longer = [r for r, (i, j) in enumerate(spans) if j > i]
    ones = [r for r, (i, j) in enumerate(spans) if j == i]
    if ones and longer:
        e = sign * (span_t[ones].mean(0) - span_t[longer].mean(0))
        out["longer_spans_hurt_more"] = Interval(
            float(e[0]), *quantile_range(e[1:], confidence),
            f"mean {metric} of one-block spans minus spans of two or more", method).to_dict()
    return out


def findings(result) -> dict:
    """{claim id: {claim, numbers, interval, verdict}} for a ``SkippingResult``."""
    c, eff, L, metric = result.config, result.effects, result.n_layers, result.metric
    m, full, out = result.matrix(), result.full["value"], {}
    why = f"needs a model with at least 2 blocks (this one has {L})"
    if "first_block_hurts_most" in eff:
        e = eff["first_block_hurts_most"]
        singles = {j: float(m[j - 1, j - 1]) for j in range(1, L + 1)}
        out["first_block_hurts_most"] = finding(
            CLAIMS["first_block_hurts_most"], {"skip_1": singles[1], "single_skips": singles,
                                               "worst_later_block": e["worst_later_block"],
                                               "full": full, "metric": metric},
            interval_of(e), summary=f"skipping block 1: {metric} {singles[1]:.4f}; worst single "
                                  f"later block {e['worst_later_block']}: "
                                  f"{singles[e['worst_later_block']]:.4f}; full {full:.4f}")
        e = eff["later_single_skips_cheap"]
        out["later_single_skips_cheap"] = finding(
            CLAIMS["later_single_skips_cheap"].format(tol=c.tolerance, metric=metric),
            {"full": full, "tolerance": c.tolerance,
             "worst_later_single": min(v for j, v in singles.items() if j > 1)
             if result.higher_is_better else max(v for j, v in singles.items() if j > 1)},
            interval_of(e), threshold=-c.tolerance,
            summary=f"worst single later skip {e['estimate']:+.4f} against the full model")
    else:
        for claim in ("first_block_hurts_most", "later_single_skips_cheap"):
            out[claim] = undefined_finding(CLAIMS[claim].format(tol=c.tolerance, metric=metric),
                                           why)
    if "longer_spans_hurt_more" in eff:
        by = {d["length"]: d["mean_drop"] for d in result.by_length}
        out["longer_spans_hurt_more"] = finding(
            CLAIMS["longer_spans_hurt_more"], {"mean_drop_by_length": by, "metric": metric},
            interval_of(eff["longer_spans_hurt_more"]),
            summary="mean drop from the full model by span length: " + ", ".join(
                f"{k}: {v:+.3f}" for k, v in by.items()))
    else:
        out["longer_spans_hurt_more"] = undefined_finding(CLAIMS["longer_spans_hurt_more"], why)
    return out
