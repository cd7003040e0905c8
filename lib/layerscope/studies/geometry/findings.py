"""Findings of study 05: the papers' claims tested on one run, each with an interval.

Claims, each an effect that should be > its threshold (verdict rule of ``studies.base``):

* distances_increase: fine-tuning pushes labels apart at the top layer (Zhou & Srikumar 2022
  §4.3, Fig. 2). Effect: mean over labels of (min distance FT - min distance ORIG).
* clusters_fall_or_stay: the top layer needs no more clusters after fine-tuning (§4.2, Tables
  3-4). Effect: clusters ORIG - clusters FT; threshold -0.5 (counts are integers, so "> -0.5"
  means "did not rise").
* top_similarity_high: the top layer keeps the relative positions of its labels (§4.5, Fig. 4:
  "more than 0.5"). Effect: spatial similarity FT vs ORIG; threshold 0.5.
* train_test_diverge: train and test sets diverge (§4.1, Table 2). Effect: train/test spatial
  similarity ORIG minus FT.
* probe_improves: a top-layer MLP probe is more accurate after fine-tuning (§2.1, §4.1).
  Effect: test accuracy FT - ORIG; Welch t interval over probe restarts (training noise only).
* ood_changes_less_{cka,rsa}: out-of-domain sentences change less (Merchant et al. 2020).
  Bootstrap interval over sentences (``out_of_domain``).
* cross_<task>: fine-tuning on the study's task widens <task>'s label gaps (§4.4, Table 5).

Intervals for DirectProbe effects: the top layer's points are split into disjoint random folds,
and each fold of each fine-tuning seed is clustered on its own; the replicates' t interval
(``intervals.seed_interval``) is the interval, stated as such. A bootstrap with repeated points
would not do: a hull distance is an extreme of the sample. A replicate is undefined when a fold
is not linearly separable (label distances need one cluster per label, §2.2).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ...measures.intervals import seed_interval
from ...measures.probes import ProbeScore
from ..base import Interval, finding, undefined_finding
from .dynamics import spatial

CLAIMS = {
    "distances_increase": "fine-tuning pushes the labels apart: each label's minimum distance "
                          "to the others grows at the top layer (Zhou & Srikumar 2022 §4.3, "
                          "Fig. 2)",
    "clusters_fall_or_stay": "fine-tuning does not add clusters: the top layer's DirectProbe "
                             "cluster count falls or stays (Zhou & Srikumar 2022 §4.2, Tables "
                             "3-4)",
    "top_similarity_high": "the top layer keeps the relative positions of its labels: spatial "
                           "similarity to the untuned layer above 0.5 (Zhou & Srikumar 2022 "
                           "§4.5, Fig. 4)",
    "train_test_diverge": "fine-tuning makes the train and test sets diverge: train/test "
                          "spatial similarity drops (Zhou & Srikumar 2022 §4.1, Table 2)",
    "probe_improves": "a top-layer MLP probe is more accurate after fine-tuning (Zhou & "
                      "Srikumar 2022 §4.1)",
    "ood_changes_less": "fine-tuning changes out-of-domain sentences less than in-domain ones "
                        "(top third of the blocks; Merchant et al. 2020)",
    "cross": "fine-tuning on {a} widens the gaps between {b}'s labels at the top layer (Zhou & "
             "Srikumar 2022 §4.4, Table 5)",
}


def _fold_interval(values, of: str, n_folds: int, n_seeds: int) -> Interval | None:
    v = np.asarray(values, dtype=float)
    if not len(v) or not np.isfinite(v).all():
        return None
    est, lo, hi = seed_interval(v)
    return Interval(est, lo, hi, of, f"95% t interval over {n_folds} disjoint folds x "
                                     f"{n_seeds} seed(s) of the points ({len(v)} DirectProbe "
                                     "runs)")


def _why(geoms) -> str:
    return next((g.why for g in geoms if g.why), "a replicate is undefined")


def _dp_findings(r) -> dict:
    fg, ft_keys = r.fold_geometry, [k for k in r.fold_geometry if k != "orig"]
    orig = fg["orig"]
    k, s = len(orig), len(ft_keys)
    top = r.layers[-1]
    g0, g1 = r.geometry["orig"][-1], r.geometry["ft"][-1]
    n_fold_points = r.n_points["train"] // k
    out = {}
    # distances
    reps = [float(np.mean(b.min_distances - a.min_distances)) for key in ft_keys
            for a, b in zip(orig, fg[key], strict=True)]
    nums = {"layer": top, "labels": list(r.label_names),
            "orig_min_distances": g0.min_distances.tolist(),
            "ft_min_distances": g1.min_distances.tolist(), "fold_effects": reps}
    iv = _fold_interval(reps, "mean over labels of min distance, FT minus ORIG", k, s)
    summary = (f"layer {top}: mean min distance ORIG {np.mean(g0.min_distances):.3f} -> FT "
               f"{np.mean(g1.min_distances):.3f} on all {r.n_points['train']} points")
    out["distances_increase"] = (
        finding(CLAIMS["distances_increase"], nums, iv, summary=summary) if iv else
        undefined_finding(CLAIMS["distances_increase"],
                          _why([*orig, *[g for key in ft_keys for g in fg[key]]]), nums))
    # cluster counts
    reps = [a.n_clusters - b.n_clusters for key in ft_keys for a, b in zip(orig, fg[key],
                                                                             strict=True)
            if a.n_clusters is not None and b.n_clusters is not None]
    nums = {"layer": top, "n_labels": g0.n_labels, "orig_clusters": g0.n_clusters,
            "ft_clusters": g1.n_clusters, "fold_effects": reps,
            "points_per_fold": n_fold_points, "dimensions": int(g0.label_means.shape[1])}
    dims = int(g0.label_means.shape[1])
    cover = ""  # why the counts cannot move: a fold small for its dimension is separable
    if n_fold_points <= 2 * dims:
        cover = (f"{n_fold_points} points a fold in {dims} dimensions: below 2d points any "
                 "labelling is linearly separable with high probability (Cover 1965), so every "
                 "fold gets one cluster per label before and after fine-tuning; raise n_train "
                 f"above {2 * dims * k} ({k} folds) or lower the dimension")
    iv = _fold_interval(reps, "clusters ORIG minus FT", k, s) if len(reps) == k * s else None
    summary = f"layer {top}: {g0.n_clusters} -> {g1.n_clusters} clusters for {g0.n_labels} labels"
    if iv is not None and len(set(reps)) == 1:
        # integer counts equal in every replicate: a t interval of zero width is no evidence
        why = (f"the cluster count changes by {reps[0]} in all {len(reps)} fold replicates, so "
               "the interval cannot vary on this data" + (f": {cover}" if cover else ""))
        out["clusters_fall_or_stay"] = finding(CLAIMS["clusters_fall_or_stay"], nums, iv,
                                               threshold=-0.5, verdict="UNDEFINED", why=why,
                                               summary=summary)
    else:
        out["clusters_fall_or_stay"] = (
            finding(CLAIMS["clusters_fall_or_stay"], nums, iv, threshold=-0.5, summary=summary)
            if iv else
            undefined_finding(CLAIMS["clusters_fall_or_stay"], _why([*orig, g0, g1]), nums))
    # spatial similarity to the untuned layer
    reps, whys = [], []
    for key in ft_keys:
        for a, b in zip(orig, fg[key], strict=True):
            v, w = spatial(b, a)
            reps.append(v)
            whys.append(w)
    full = spatial(g1, g0)[0]
    nums = {"layer": top, "full_points": full, "fold_effects": reps}
    iv = _fold_interval(reps, "spatial similarity FT vs ORIG", k, s)
    out["top_similarity_high"] = (
        finding(CLAIMS["top_similarity_high"], nums, iv, threshold=0.5,
                summary=f"layer {top}: {full:.3f} on all points") if iv else
        undefined_finding(CLAIMS["top_similarity_high"], next((w for w in whys if w), ""),
                          nums))
    # train/test
    reps, whys = [], []
    ft_test = r.fold_test_geometry
    for a, b, c, d in zip(orig, ft_test["orig"], fg["ft"], ft_test["ft"], strict=True):
        (x, wx), (y, wy) = spatial(a, b), spatial(c, d)
        reps.append(x - y)
        whys += [wx, wy]
    tt = {st: float(v[-1]) for st, v in r.train_test.items()}
    nums = {"layer": top, "orig_train_test": tt["orig"], "ft_train_test": tt["ft"],
            "fold_effects": reps}
    iv = _fold_interval(reps, "train/test spatial similarity ORIG minus FT", k, 1)
    out["train_test_diverge"] = (
        finding(CLAIMS["train_test_diverge"], nums, iv,
                summary=f"layer {top}: ORIG {tt['orig']:.3f}, FT {tt['ft']:.3f}") if iv else
        undefined_finding(CLAIMS["train_test_diverge"], next((w for w in whys if w), ""), nums))
    return out


def _probe_finding(r) -> dict | None:
    c = r.config
    if c.probe_grid == "none" or r.layers[-1] not in r.probe_layers:
        return None
    orig, ft = (ProbeScore.from_row(r.probe[st][-1]) for st in ("orig", "ft"))
    m0, s0, b0, m1, s1 = orig.mean, orig.std, orig.majority, ft.mean, ft.std
    nums = {"layer": r.layers[-1], "orig_mean": m0, "orig_std": s0, "ft_mean": m1, "ft_std": s1,
            "majority_baseline": b0, "restarts": c.probe_restarts, "grid": c.probe_grid}
    if not np.isfinite([m0, m1]).all():
        return undefined_finding(CLAIMS["probe_improves"], "; ".join(r.probe_why) or
                                 "probe accuracy undefined", nums)
    n = c.probe_restarts
    if n < 2 or not np.isfinite([s0, s1]).all():
        iv = Interval(m1 - m0, float("nan"), float("nan"), "test accuracy FT minus ORIG",
                      "one restart: no spread to measure")
    else:
        se = float(np.sqrt((s0 ** 2 + s1 ** 2) / n))
        half = float(stats.t.ppf(0.975, 2 * n - 2) * se) if se > 0 else 0.0
        iv = Interval(m1 - m0, m1 - m0 - half, m1 - m0 + half, "test accuracy FT minus ORIG",
                      f"95% t interval over {n}+{n} probe restarts (initialisation noise only)")
    return finding(CLAIMS["probe_improves"], nums, iv,
                   summary=f"ORIG {m0:.3f} ± {s0:.3f}, FT {m1:.3f} ± {s1:.3f}, majority "
                           f"{b0:.3f}")


# the claims read off the fine-tuning task's own labels: undefined without them
IN_DOMAIN = ("distances_increase", "clusters_fall_or_stay", "top_similarity_high",
             "train_test_diverge", "probe_improves")


def findings(r) -> dict:
    """{claim id: {claim, numbers, interval, verdict}} for a ``GeometryResult``; without class
    labels (``r.no_labels``) the in-domain claims are UNDEFINED with that reason."""
    if r.no_labels:
        out = {c: undefined_finding(CLAIMS[c], r.no_labels) for c in IN_DOMAIN}
    else:
        out = _dp_findings(r)
        p = _probe_finding(r)
        if p is not None:
            out["probe_improves"] = p
    o = r.out_of_domain
    for m, e in (o.get("effects") or {}).items():
        iv = Interval(e["estimate"], e["low"], e["high"],
                      f"{m.upper()} FT vs ORIG, out-of-domain minus in-domain",
                      f"{e['confidence']:.0%} bootstrap over {o['n']} sentences a set, "
                      f"{e['n_boot']} resamples, recentred")
        per = ", ".join(f"{k} {v:.3f}" for k, v in e["per_set"].items())
        out[f"ood_changes_less_{m}"] = finding(
            CLAIMS["ood_changes_less"] + f", by {m.upper()}",
            {"per_set": e["per_set"], "top_layers": o["top_layers"], "n": o["n"]}, iv,
            summary=f"FT–ORIG similarity, top blocks {o['top_layers']}: {per}")
    for b, x in r.cross_task.items():
        claim = CLAIMS["cross"].format(a=r.config.task, b=b)
        nums = {k: x[k] for k in ("layer", "n_up", "n_down", "mean_change", "n_clusters",
                                  "spatial_similarity")}
        nums["probe"] = x.get("probe", {})
        iv = _fold_interval(x["fold_changes"], f"mean change of {b}'s label min distances",
                            r.config.n_folds, 1)
        if iv is None or not np.isfinite(x["mean_change"]):
            out[f"cross_{b}"] = undefined_finding(claim, x["why"] or x.get("fold_why") or
                                                  "a fold is not linearly separable", nums)
        else:
            pr = x.get("probe", {})
            tail = (f"; probe ORIG {pr['orig']['mean']:.3f} vs FT {pr['ft']['mean']:.3f}"
                    if "orig" in pr and "ft" in pr else "")
            out[f"cross_{b}"] = finding(claim, nums, iv,
                                        summary=f"{x['n_up']} labels apart, {x['n_down']} "
                                                f"closer{tail}")
    return out
