"""Cross-task fine-tuning (Zhou & Srikumar 2022 §4.4, Table 5): a model fine-tuned on task A,
read on task B's labels with no further tuning.

Per label of B: its minimum distance to the other labels before (untuned) and after fine-tuning
on A; how many labels move apart or closer, the mean change, and an MLP probe's accuracy on B
before and after. Zhou & Srikumar find that a related task widens B's gaps and an "opposing"
one (POS tagging for PS-fxn) narrows them, with probe accuracy following. Arrays in.

Shapes: x_* [n, d] one layer's points of B; y [n] label ids of B; k labels of B.
"""

from __future__ import annotations

from .dynamics import LayerGeometry


def distance_change(orig: LayerGeometry, ft: LayerGeometry) -> dict:
    """Table 5's columns: labels whose minimum distance rose / fell, mean change (NaN and a
    reason when either side is not linearly separable)."""
    if not (orig.separable and ft.separable):
        why = orig.why or ft.why
        return {"n_up": None, "n_down": None, "mean_change": float("nan"), "why": why}
    d = ft.min_distances - orig.min_distances
    return {"n_up": int((d > 0).sum()), "n_down": int((d < 0).sum()),
            "mean_change": float(d.mean()), "why": ""}


def fold_changes(orig_folds: list[LayerGeometry], ft_folds: list[LayerGeometry]) -> list[float]:
    """Per fold, the mean change of B's label minimum distances (replicates of the effect)."""
    return [distance_change(o, f)["mean_change"] for o, f in zip(orig_folds, ft_folds,
                                                                   strict=True)]
