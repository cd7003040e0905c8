"""Geometry of one representation and how it moves (Zhou & Srikumar 2022 §2.2, §4.1-4.5).

Arrays in, summaries out (no disk): DirectProbe on one layer's points (``layer_geometry``),
spatial similarity of two such summaries, disjoint folds of the points (the replicates behind
the findings' intervals), and the 2-D PCA views of Figures 3 and 5.

Shapes: x [n, d] points of one layer; y [n] label ids; k labels; p = k (k - 1) / 2 label pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, UndefinedError
from ...measures.directprobe import directprobe, spatial_similarity


@dataclass(frozen=True)
class LayerGeometry:
    """DirectProbe summary of one representation at one layer.

    n_clusters: DirectProbe's cluster count (None: the clustering itself is undefined, e.g. a
        layer whose vector is the same for every example); k labels.
    min_distances [k]: each label's minimum hull distance to any other label (Figure 2); NaN
        when undefined, i.e. when the labels need more clusters than one each (§2.2: "this
        construction works only when the number of clusters equals the number of labels").
    distance_vector [p] or None: label-pair distances (same condition).
    label_means [k, d]: each label's centroid (= its cluster's centroid when separable).
    why: "" when everything is defined, else the reason.
    accuracy: nearest-cluster accuracy on held-out points (NaN when not computed).
    """

    n_clusters: int | None
    n_labels: int
    min_distances: np.ndarray
    distance_vector: np.ndarray | None
    label_means: np.ndarray
    why: str = ""
    accuracy: float = float("nan")

    @property
    def separable(self) -> bool:
        return self.n_clusters is not None and self.n_clusters == self.n_labels

    def to_dict(self) -> dict:
        return {"n_clusters": self.n_clusters, "n_labels": self.n_labels,
                "min_distances": self.min_distances.tolist(),
                "distance_vector": None if self.distance_vector is None
                else self.distance_vector.tolist(), "why": self.why, "accuracy": self.accuracy}


def label_means(x: np.ndarray, y: np.ndarray, n_labels: int) -> np.ndarray:
    """[k, d] mean of each label's points (NaN row for a label with no point)."""
    out = np.full((n_labels, x.shape[1]), np.nan)
    for c in range(n_labels):
        if (y == c).any():
            out[c] = x[y == c].mean(0)
    return out


def layer_geometry(x, y, n_labels: int, *, test: str = "wolfe", x_eval=None,
                   y_eval=None) -> LayerGeometry:
    """DirectProbe on (x [n, d], y [n] in 0..k-1); with (x_eval, y_eval) also the
    nearest-cluster accuracy on those held-out points (§2.2: a cluster predicts its label)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    means = label_means(x, y, n_labels)
    nan_k = np.full(n_labels, np.nan)
    try:
        r = directprobe(x, y, test=test)
    except ConfigError as e:  # e.g. layer-0 CLS: one vector under every label (Undefined-
        # Error), or a label with a single point in a small fold
        return LayerGeometry(None, n_labels, nan_k, None, means, why=str(e))
    if r.n_labels != n_labels:
        return LayerGeometry(r.n_clusters, n_labels, nan_k, None, means,
                             why=f"only {r.n_labels} of {n_labels} labels occur among the "
                                 f"{len(y)} points; use more points")
    acc = float("nan")
    if x_eval is not None and len(x_eval):
        acc = r.accuracy(np.asarray(x_eval, dtype=np.float64), y_eval)
    if not r.is_linearly_separable:
        return LayerGeometry(r.n_clusters, n_labels, nan_k, None, means, accuracy=acc,
                             why=f"{r.n_clusters} clusters for {n_labels} labels (not linearly "
                                 "separable): label distances are undefined (Zhou & Srikumar "
                                 "2022 §2.2)")
    return LayerGeometry(r.n_clusters, n_labels, r.min_distances(), r.distance_vector(), means,
                         accuracy=acc)


def spatial(a: LayerGeometry, b: LayerGeometry) -> tuple[float, str]:
    """(Pearson correlation of the two distance vectors, "") or (NaN, why undefined)."""
    for g in (a, b):
        if g.distance_vector is None:
            return float("nan"), g.why
    if a.n_labels < 3:
        return float("nan"), (f"{a.n_labels} labels give {a.n_labels * (a.n_labels - 1) // 2} "
                              "label pair(s); spatial similarity is a Pearson correlation over "
                              "pairs and needs at least 3 labels (use brown-genre or brown-pos)")
    try:
        return spatial_similarity(a.distance_vector, b.distance_vector), ""
    except UndefinedError as e:
        return float("nan"), str(e)


def folds(n: int, k: int, seed: int = 0, y=None) -> list[np.ndarray]:
    """k disjoint random subsets of range(n), sorted (rows of a split can be ordered by label,
    so a fold must never be a contiguous block). With labels y [n] the folds are stratified:
    each label's rows are shuffled and dealt out evenly, so every fold holds every label that
    has at least k rows (15 genres in folds of 150 points would otherwise miss some)."""
    rng = np.random.default_rng(seed)
    if y is None:
        return [np.sort(f) for f in np.array_split(rng.permutation(n), k)]
    y = np.asarray(y)
    parts: list[list[np.ndarray]] = [[] for _ in range(k)]
    start = 0
    for v in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == v))
        for j, chunk in enumerate(np.array_split(rows, k)):
            parts[(j + start) % k].append(chunk)
        start += len(rows) % k  # rotate remainders so fold sizes stay even
    return [np.sort(np.concatenate(p)) for p in parts]


def keep_labels(y: np.ndarray, min_points: int) -> np.ndarray:
    """[n] bool: rows whose label has at least ``min_points`` rows."""
    values, counts = np.unique(y, return_counts=True)
    return np.isin(y, values[counts >= min_points])


def pca_2d(points: np.ndarray, *, centre: bool = True) -> np.ndarray:
    """[m, d] -> [m, 2] projection on the top two principal directions (SVD; a rank-1 input
    gets a zero second coordinate). ``centre=False`` projects the raw vectors (Figure 5: the
    common motion of all labels stays visible, and lengths stay in the space's units)."""
    p = np.asarray(points, dtype=np.float64)
    base = p - p.mean(0) if centre else p
    _, _, vt = np.linalg.svd(base, full_matrices=False)
    out = np.zeros((len(p), 2))
    proj = base @ vt[:2].T
    out[:, :proj.shape[1]] = proj
    return out


def centroid_paths(means: np.ndarray) -> np.ndarray:
    """Figure 3: label centroids over checkpoints [S, k, d] -> [S, k, 2], one PCA fitted on all
    S k centroids, so the paths share axes."""
    s, k, d = means.shape
    return pca_2d(means.reshape(s * k, d)).reshape(s, k, 2)


def displacements(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Figure 5: each label's centroid displacement after - before [k, d] -> [k, 2] by
    uncentred PCA of the k displacement vectors of one layer."""
    return pca_2d(after - before, centre=False)
