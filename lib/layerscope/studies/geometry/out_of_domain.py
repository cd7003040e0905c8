"""Out-of-domain change (Merchant et al. 2020, abstract and §4): fine-tuning changes the
representations of out-of-domain sentences less than those of in-domain ones.

Per layer, how similar the fine-tuned layer is to the same untuned layer on one set of
sentences (the FT–ORIG diagonal of study 02), by linear CKA and by RSA; lower similarity =
more change. Arrays in, numbers out.

Effect of the claim: mean over the out-of-domain sets of (similarity out-of-domain minus
similarity in-domain), averaged over the top third of the blocks (where fine-tuning acts);
> 0 means out-of-domain sentences changed less. Interval: percentile bootstrap, resampling the
rows of every set independently (the sets hold different sentences), recentred on the estimate
(resampled duplicate rows inflate CKA alike on every set; ``percentile_interval``).

Shapes: stacks [T, n, d] = the T layers compared, n sentences of one set (same n for every set,
so that the biased CKA estimator's dependence on n is the same).
"""

from __future__ import annotations

import numpy as np

from ...measures import cka, rsa
from ...measures.intervals import bootstrap_indices, percentile_interval

MEASURES = ("cka", "rsa")


def diagonal(ft: np.ndarray, orig: np.ndarray, measure: str, seed: int = 0) -> np.ndarray:
    """[T] similarity of ft[t] with orig[t] (NaN where a layer is constant)."""
    out = np.full(ft.shape[0], np.nan)
    for t in range(ft.shape[0]):
        a, b = ft[t:t + 1], orig[t:t + 1]
        if measure == "rsa":
            m = rsa.rsa_matrix(a, b, seed=seed, undefined="nan")
        else:
            m = cka.cka_matrix(a, b, undefined="nan")
        out[t] = float(np.asarray(m, dtype=np.float64)[0, 0])
    return out


def _effect(diags: dict[str, np.ndarray], in_domain: str) -> float:
    others = [np.nanmean(v) for k, v in diags.items() if k != in_domain]
    return float(np.mean(others) - np.nanmean(diags[in_domain]))


def ood_effect(sets: dict[str, tuple[np.ndarray, np.ndarray]], in_domain: str, measure: str,
               *, n_boot: int, seed: int = 0, confidence: float = 0.95) -> dict:
    """Bootstrap interval of the effect over the top layers.

    sets: name -> (ft [T, n, d], orig [T, n, d]) for the top-third layers; ``in_domain`` names
    the fine-tuning task's set. Returns {estimate, low, high, n_boot, per_set: {name: mean
    similarity}}.
    """
    est_d = {k: diagonal(f, o, measure, seed) for k, (f, o) in sets.items()}
    estimate = _effect(est_d, in_domain)
    draws = {k: bootstrap_indices(f.shape[1], n_boot, seed + i)
             for i, (k, (f, _)) in enumerate(sets.items())}
    reps = []
    for b in range(n_boot):
        d = {k: diagonal(f[:, draws[k][b]], o[:, draws[k][b]], measure, seed)
             for k, (f, o) in sets.items()}
        reps.append(_effect(d, in_domain))
    low, high = percentile_interval(reps, confidence, recentre_on=estimate)
    return {"estimate": estimate, "low": low, "high": high, "n_boot": n_boot,
            "confidence": confidence,
            "per_set": {k: float(np.nanmean(v)) for k, v in est_d.items()}}
