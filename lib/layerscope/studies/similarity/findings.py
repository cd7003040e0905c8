"""Findings of study 02: the papers' claims tested on one run, each with a bootstrap interval.

Claims (Phang et al. 2021 §3; Merchant et al. 2020 §4), each an effect that should be > 0:

* block_structure: FT–FT is more block-diagonal than ORIG–ORIG (effect: FT–FT block score minus
  ORIG–ORIG block score; a block score is within- minus between-block mean similarity at the
  best two-block boundary, ``measures.blocks``);
* top_layers_change_most: the FT–ORIG diagonal is lower in the top third of the blocks than in
  the bottom third (effect: bottom minus top);
* seeds_agree_on_top: two seeds' top layers are more alike than either is to the untuned model
  (effect: FT[1]–FT[2] top diagonal minus FT–ORIG top diagonal);
* drift: the top layers keep moving away from the untuned model during fine-tuning (effect: the
  top third's similarity to its untuned self at the first snapshot after step 0 minus at the
  last snapshot). This reads the snapshots between the ends; the end point alone (FT against
  ORIG) is ``top_layers_change_most``, so the two claims never report the same statistic;
* cell: the chosen cell (default: the top FT–ORIG cell) is above the 99th percentile of the
  shuffled-examples baseline.

Intervals: percentile bootstrap over examples (the same resampled rows for every model), each
resample recomputing the matrices and the effect (``effect_intervals``). Verdicts follow the
rule of ``studies.base``. Bottom/top = the first/last third of the blocks (layers 1..k and
L-k+1..L, k = L//3, at least 1); embeddings are left out so that CLS and mean pooling read alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...measures.blocks import block_structure
from ...measures.intervals import bootstrap_indices, percentile_interval
from ...progress import counted
from ..base import Interval, finding, undefined_finding
from ..common.intervals import interval_of
from ..common.layers import thirds
from .comparisons import COMPARISONS

CLAIMS = {
    "block_structure": "fine-tuning creates early/late clusters: FT–FT is more block-diagonal "
                       "than ORIG–ORIG (Phang et al. 2021 §3, Fig. 1c, 2)",
    "top_layers_change_most": "top fine-tuned layers are dissimilar to the untuned ones, bottom "
                              "layers stay similar (FT–ORIG diagonal; Phang et al. 2021 Fig. 5)",
    "seeds_agree_on_top": "top layers of two fine-tuning seeds are more alike than either is to "
                          "the untuned model (FT[1]–FT[2] vs FT–ORIG; Phang et al. 2021 Fig. 6)",
    "drift": "over training, the top layers keep moving away from the untuned model: they are "
             "less similar to it at the last snapshot than at the first one after step 0 "
             "(Merchant et al. 2020 §4; Zhou & Srikumar 2022 §4.3)",
    "cell": "the chosen cell is above the shuffled-examples baseline (its 99th percentile)",
}
EFFECT_OF = {
    "block_structure": "FT–FT minus ORIG–ORIG block score",
    "top_layers_change_most": "FT–ORIG diagonal, bottom minus top third",
    "seeds_agree_on_top": "top-third diagonal, FT[1]–FT[2] minus FT–ORIG",
    "drift": "top-third similarity to the untuned layer, first snapshot after step 0 minus last",
}


def _mean(values) -> float:
    v = [float(x) for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def diagonal_mean(m: np.ndarray, layers) -> float:
    """Mean of the defined diagonal cells m[i, i] over ``layers``."""
    return _mean(m[i, i] for i in layers)


def _block_score(m: np.ndarray) -> float:
    b = block_structure(m)
    return float("nan") if b is None else b["score"]


def drift_snapshots(steps) -> dict[str, int]:
    """The snapshots the drift claim compares: {"first": earliest step > 0, "last": last step}.

    "first" is left out when fewer than two snapshots follow step 0 (the claim is then
    undefined: with one snapshot after step 0 there is no change over training to measure).
    """
    after = sorted(s for s in steps if s > 0)
    if not after:
        return {}
    return {"first": after[0], "last": after[-1]} if len(after) > 1 else {"last": after[-1]}


def effects(m: dict[str, np.ndarray], drift_rows: dict[str, np.ndarray], n_layers: int) -> dict:
    """Each claim's effect from the matrices of one (re)sample; NaN where not computable.

    ``drift_rows``: "first"/"last" -> [L+1] similarity of each layer at that snapshot with the
    same layer untuned (``drift_snapshots``).
    """
    bottom, top = thirds(n_layers)
    out = {}
    if "orig_orig" in m and "ft_ft" in m:
        out["block_structure"] = _block_score(m["ft_ft"]) - _block_score(m["orig_orig"])
    if "ft_orig" in m:
        fo = m["ft_orig"]
        out["top_layers_change_most"] = diagonal_mean(fo, bottom) - diagonal_mean(fo, top)
        if "ft1_ft2" in m:
            out["seeds_agree_on_top"] = diagonal_mean(m["ft1_ft2"], top) - diagonal_mean(fo, top)
    if "first" in drift_rows and "last" in drift_rows:
        out["drift"] = (_mean(drift_rows["first"][i] for i in top)
                        - _mean(drift_rows["last"][i] for i in top))
    return out


def _split(big: np.ndarray, sizes: dict[str, int]) -> tuple[dict, dict]:
    """Cut the self-similarity of the stacked sets into the comparisons (and the drift rows)."""
    offs, o = {}, 0
    for k, s in sizes.items():
        offs[k] = slice(o, o + s)
        o += s
    m = {}
    for c in COMPARISONS.values():
        if c.rows in offs and c.cols in offs:
            m[c.name] = big[offs[c.rows], offs[c.cols]]
    drift = {k: np.diag(big[offs[f"{k}_step"], offs["orig"]])
             for k in ("first", "last") if f"{k}_step" in offs}
    return m, drift


def effect_intervals(stacks: dict[str, np.ndarray], matrix: Callable[[np.ndarray], np.ndarray],
                     n_boot: int, *, seed: int = 0, measure: str = "CKA",
                     confidence: float = 0.95) -> dict[str, dict]:
    """Bootstrap interval over examples of every claim's effect.

    Args:
        stacks: "orig", "ft", optionally "ft2", "first_step" and "last_step" (the snapshots of
            ``drift_snapshots``) -> [L+1, n, d] over the same n
            examples in the same order (one model, one tokenizer: the rows always match).
        matrix: self-similarity of a stack [T, n, d] -> [T, T] (the study's measure).
        n_boot: resamples; each recomputes one [T, T] matrix over all sets stacked (for CKA a
            few GEMMs), so every comparison of a resample uses the same rows. Resampled rows
            repeat, which shifts biased CKA up a little on every model alike; the effects are
            differences, where that shift largely cancels; what is left is removed by
            recentring the interval on the estimate (``percentile_interval``).

    Returns:
        claim id -> ``Interval.to_dict()`` (estimate on all examples, percentile low/high).
    """
    sizes = {k: v.shape[0] for k, v in stacks.items()}
    allstack = np.concatenate(list(stacks.values()), axis=0)
    n, n_layers = allstack.shape[1], sizes["orig"] - 1
    estimate = effects(*_split(matrix(allstack), sizes), n_layers)
    reps = [effects(*_split(matrix(allstack[:, idx]), sizes), n_layers)
            for idx in counted(bootstrap_indices(n, n_boot, seed), "resample", n_boot)]
    method = (f"{confidence:.0%} bootstrap over {n} examples, {n_boot} resamples, recentred, "
              f"{measure}")
    out = {}
    for claim, est in estimate.items():
        lo, hi = percentile_interval([r[claim] for r in reps], confidence, recentre_on=est)
        out[claim] = Interval(est, lo, hi, EFFECT_OF[claim], method).to_dict()
    return out


def _summary(claim: str, x: dict) -> str:
    """The claim's key numbers in words (all of them are in ``numbers``)."""
    if claim == "block_structure":
        return (f"FT–FT splits before layer {x['ft_ft_boundary']} (score {x['ft_ft_score']:.3f});"
                f" ORIG–ORIG before layer {x['orig_orig_boundary']} (score "
                f"{x['orig_orig_score']:.3f})")
    if claim == "top_layers_change_most":
        return (f"FT–ORIG diagonal top {x['diag_top']:.3f} vs bottom {x['diag_bottom']:.3f}; "
                f"best match of a top FT layer among all ORIG layers "
                f"{x['top_best_match_any_orig']:.3f}")
    if claim == "seeds_agree_on_top":
        return (f"FT[1]–FT[2] top diagonal {x['ft1_ft2_diag_top']:.3f} vs FT–ORIG "
                f"{x['ft_orig_diag_top']:.3f}")
    return (f"top-third similarity to the untuned layers {x['top_first']:.3f} at step "
            f"{x['first_step']}, {x['top_last']:.3f} at step {x['last_step']}")


def findings(result) -> dict:
    """{claim id: {claim, numbers, interval, verdict}} for a ``SimilarityResult``."""
    bottom, top = thirds(result.n_layers)
    layers = {"bottom_blocks": list(bottom), "top_blocks": list(top)}
    m, out = result.matrices, {}
    numbers: dict[str, dict] = {}
    bo, bf = result.blocks.get("orig_orig"), result.blocks.get("ft_ft")
    if bo and bf:
        numbers["block_structure"] = {**{f"ft_ft_{k}": v for k, v in bf.items()},
                                      **{f"orig_orig_{k}": v for k, v in bo.items()}}
    if "ft_orig" in m:
        fo = m["ft_orig"]
        best = _mean(np.nanmax(fo[i]) if np.isfinite(fo[i]).any() else np.nan for i in top)
        numbers["top_layers_change_most"] = {"diag_bottom": diagonal_mean(fo, bottom),
                                             "diag_top": diagonal_mean(fo, top),
                                             "top_best_match_any_orig": best, **layers}
        if "ft1_ft2" in m:
            numbers["seeds_agree_on_top"] = {"ft1_ft2_diag_top":
                                             diagonal_mean(m["ft1_ft2"], top),
                                             "ft_orig_diag_top": diagonal_mean(fo, top), **layers}
    snaps = drift_snapshots(result.drift_steps) if result.drift is not None else {}
    if "first" in snaps:
        row = {s: result.drift[result.drift_steps.index(s)] for s in snaps.values()}
        numbers["drift"] = {"first_step": snaps["first"], "last_step": snaps["last"],
                            "top_first": _mean(row[snaps["first"]][i] for i in top),
                            "top_last": _mean(row[snaps["last"]][i] for i in top), **layers}
    elif result.drift is not None:
        out["drift"] = undefined_finding(
            CLAIMS["drift"], f"snapshots at steps {list(result.drift_steps)}: fewer than two "
            "after step 0, so there is no change over training to measure (set "
            "checkpoint_steps to at least two steps after 0)", {})
    for claim, nums in numbers.items():
        iv, summary = result.effects.get(claim), _summary(claim, nums)
        if iv is None or iv["estimate"] is None:
            out[claim] = undefined_finding(CLAIMS[claim], "; ".join(result.undefined_notes())
                                           or "a needed cell is undefined", nums, summary)
        else:
            out[claim] = finding(CLAIMS[claim], nums, interval_of(iv), summary=summary)
    c = result.cell
    if c and "error" not in c:
        title = COMPARISONS[c["comparison"]].title
        iv = Interval(c["estimate"], c["low"], c["high"],
                      f"{title} cell ({c['row']}, {c['col']})",
                      f"{c['confidence']:.0%} bootstrap over examples, {c['n_boot']} resamples")
        out["cell"] = finding(CLAIMS["cell"], {k: c[k] for k in (
            "comparison", "row", "col", "perm_mean", "perm_q99", "p_value", "n_perm")}, iv,
            threshold=c["perm_q99"],
            summary=f"shuffled-examples mean {c['perm_mean']:.3f}, {c['n_reached']} of "
                    f"{c['n_perm']} shuffles reached the value, p = {c['p_value']:.3g}")
    elif c:
        out["cell"] = undefined_finding(CLAIMS["cell"], c["error"])
    return out
