"""Findings of study 02: the papers' claims tested on one ``SimilarityResult``, with numbers.

Claims (Phang et al. 2021 §3; Merchant et al. 2020 §4): FT–FT is more block-diagonal than
ORIG–ORIG; top fine-tuned layers move away from the untuned ones while bottom layers stay; two
seeds agree on the top layers more than either does with the untuned model; over training the
top layers drift furthest. ``supported`` is None when a needed cell is undefined (NaN).
"""

from __future__ import annotations

import numpy as np

from ..plots import layer_labels

TITLES = {"orig_orig": "ORIG–ORIG", "ft_orig": "FT–ORIG", "ft_ft": "FT–FT",
          "ft1_ft2": "FT[1]–FT[2]", "cross": "cross-model"}


def _less(a: float, b: float) -> bool | None:
    """a < b, or None when either side is undefined (NaN)."""
    return None if not (np.isfinite(a) and np.isfinite(b)) else bool(a < b)


def _mean(values) -> float:
    v = [float(x) for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _diag(m: np.ndarray, layers) -> float:
    """Mean of the defined diagonal cells m[i, i] over ``layers``."""
    return _mean(m[i, i] for i in layers)


def findings(result) -> dict:
    """The papers' claims tested on this run: {claim id: {claim, numbers, supported}}.

    Bottom/top = the first/last third of the blocks (layers 1..k and L-k+1..L, k = L//3,
    at least 1); embeddings are left out so that CLS and mean pooling read alike.
    """
    L = result.n_layers
    k = max(1, L // 3)
    bottom, top = range(1, k + 1), range(L - k + 1, L + 1)
    out: dict = {"layers": {"bottom": list(bottom), "top": list(top)}}
    bo, bf = result.blocks.get("orig_orig"), result.blocks.get("ft_ft")
    if bo and bf:
        out["block_structure"] = {
            "claim": "fine-tuning creates early/late clusters: FT–FT is more block-diagonal "
                     "than ORIG–ORIG (Phang et al. 2021 §3, Fig. 1c, 2)",
            "ft_ft": bf, "orig_orig": bo, "supported": _less(bo["score"], bf["score"])}
    fo = result.matrices.get("ft_orig")
    if fo is not None:
        d_top, d_bot = _diag(fo, top), _diag(fo, bottom)
        best_top = _mean(np.nanmax(fo[i]) if np.isfinite(fo[i]).any() else np.nan
                         for i in top)
        out["top_layers_change_most"] = {
            "claim": "top fine-tuned layers are dissimilar to the untuned ones, bottom layers "
                     "stay similar (FT–ORIG diagonal; Phang et al. 2021 §3, Fig. 5)",
            "diag_bottom": d_bot, "diag_top": d_top, "top_best_match_any_orig": best_top,
            "supported": _less(d_top, d_bot)}
    f12 = result.matrices.get("ft1_ft2")
    if f12 is not None and fo is not None:
        s_top, o_top = _diag(f12, top), _diag(fo, top)
        out["seeds_agree_on_top"] = {
            "claim": "top layers of two fine-tuning seeds are more alike than either is to "
                     "the untuned model (FT[1]–FT[2] vs FT–ORIG; Phang et al. 2021 Fig. 6)",
            "ft1_ft2_diag_top": s_top, "ft_orig_diag_top": o_top,
            "supported": _less(o_top, s_top)}
    if result.drift is not None:
        last = result.drift[-1]
        t, b = _mean(last[i] for i in top), _mean(last[i] for i in bottom)
        out["drift"] = {"claim": "over training, top layers move furthest from the untuned "
                                 "model (Merchant et al. 2020 §4)",
                        "step": result.drift_steps[-1], "bottom": b, "top": t,
                        "supported": _less(t, b)}
    if result.cell:
        out["cell"] = dict(result.cell)
    return out

def verdict(result) -> str:
    """``findings()`` as readable lines."""
    f, lab = result.findings(), layer_labels(result.n_layers)
    yes = {True: "SUPPORTED", False: "NOT supported", None: "UNDEFINED (NaN cells)"}
    lines = [f"{result._title()}; bottom = blocks {f['layers']['bottom']}, "
             f"top = blocks {f['layers']['top']}"]
    if "block_structure" in f:
        b = f["block_structure"]
        lines.append(
            f"- block structure: {yes[b['supported']]}. FT–FT splits before layer "
            f"{lab[b['ft_ft']['boundary']]} (score {b['ft_ft']['score']:.3f}, within "
            f"{b['ft_ft']['within']:.3f}, between {b['ft_ft']['between']:.3f}); ORIG–ORIG "
            f"before layer {lab[b['orig_orig']['boundary']]} (score "
            f"{b['orig_orig']['score']:.3f}).")
    if "top_layers_change_most" in f:
        c = f["top_layers_change_most"]
        lines.append(f"- top layers change most: {yes[c['supported']]}. FT–ORIG diagonal "
                     f"top {c['diag_top']:.3f} vs bottom {c['diag_bottom']:.3f}; best match "
                     f"of a top FT layer among all ORIG layers "
                     f"{c['top_best_match_any_orig']:.3f}.")
    if "seeds_agree_on_top" in f:
        c = f["seeds_agree_on_top"]
        lines.append(f"- seeds agree on top layers: {yes[c['supported']]}. FT[1]–FT[2] top "
                     f"diagonal {c['ft1_ft2_diag_top']:.3f} vs FT–ORIG "
                     f"{c['ft_orig_diag_top']:.3f}.")
    if "drift" in f:
        c = f["drift"]
        lines.append(f"- drift at step {c['step']}: {yes[c['supported']]}. similarity to "
                     f"untuned top {c['top']:.3f} vs bottom {c['bottom']:.3f}.")
    c = f.get("cell")
    if c and "error" not in c:
        lines.append(f"- {TITLES[c['comparison']]} cell ({lab[c['row']]}, {lab[c['col']]}): "
                     f"{c['estimate']:.3f}, {c['confidence']:.0%} bootstrap interval "
                     f"[{c['low']:.3f}, {c['high']:.3f}]; shuffled-examples baseline mean "
                     f"{c['perm_mean']:.3f} (99th pct {c['perm_q99']:.3f}); "
                     f"{c['n_reached']} of {c['n_perm']} shuffles reached the value, "
                     f"p = {c['p_value']:.3g}.")
    elif c:
        lines.append(f"- cell {c['comparison']} ({c['row']}, {c['col']}): {c['error']}")
    return "\n".join(lines)
