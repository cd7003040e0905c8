"""Study 02: how similar are layers before and after fine-tuning? (notebook 02_similarity)

``run_similarity(cfg)`` computes, in one call, the comparisons of Phang et al. (2021, §3 and
Fig. 1): ORIG–ORIG (the untuned encoder with itself), FT–ORIG (fine-tuned layers as rows,
untuned as columns), FT–FT, FT[1]–FT[2] (two fine-tuning seeds), optionally a cross-model
comparison (their Fig. 7) and the drift of every layer over fine-tuning checkpoints (similarity
of layer l at step s with layer l untuned). Similarity is CKA (Kornblith et al. 2019; linear as
in Phang et al., or RBF; biased or debiased) or RSA (Merchant et al. 2020, §4), over the pooled
representations of validation examples (``activations``; Phang et al. use the CLS token).

Beyond the papers: the block structure of FT–FT vs ORIG–ORIG (``blocks.find_block_boundary``),
a bootstrap interval and a permutation baseline for any cell, and ``findings()``, which tests
the papers' claims on this run, with numbers. Layer convention: 0 = embeddings, i = block i.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import activations as acts
from .. import cache, cka, finetune, models, paths
from .. import similarity_plots as splots
from ..plots import layer_labels
from . import similarity_findings
from .similarity_findings import TITLES

METRICS: tuple[str, ...] = ("cka", "rsa")
COMPARISONS: tuple[str, ...] = ("orig_orig", "ft_orig", "ft_ft", "ft1_ft2", "cross")
PHANG_PANELS: tuple[str, ...] = ("orig_orig", "ft_orig", "ft_ft", "ft1_ft2")
# (rows, columns) representation sets of each comparison; "ft" is the first seed, "ft2" the second
PAIRS = {"orig_orig": ("orig", "orig"), "ft_orig": ("ft", "orig"), "ft_ft": ("ft", "ft"),
         "ft1_ft2": ("ft", "ft2"), "cross": ("self", "cross")}


@dataclass(frozen=True)
class SimilarityConfig:
    """One similarity study; every field is a literal (papermill/widget friendly).

    Attributes:
        task, model, preset, max_steps: what is fine-tuned (``finetune.FinetuneConfig``;
            ``max_steps`` None: the preset's).
        seeds: fine-tuning seeds; the first is "FT", the second (if any) "FT[2]".
        pooling, n_examples, split, dtype, max_length, seed: see ``activations.ActivationSpec``
            (``max_length`` None: the preset's). Phang et al. use CLS on validation examples.
        metric: "cka" (Kornblith et al. 2019) or "rsa" (Merchant et al. 2020).
        kernel, debiased: CKA kernel ("linear" | "rbf") and unbiased HSIC estimator.
        rsa_metric: RSA dissimilarity (``rsa.rsa_matrix(metric=...)``).
        cross_model: another model to compare with (Phang et al. Fig. 7); None: none.
        cross_state: compare both models "orig" (untuned) or "ft" (fine-tuned, first seed).
        checkpoint_steps: fine-tuning steps at which to measure each layer's drift from the
            untuned layer (snapshots of the first seed; changes its fine-tuning cache entry).
        ci_cell: (comparison, row layer, column layer) that gets a bootstrap interval and a
            permutation baseline (negative layers count from the top); None: skip.
        n_boot, n_perm: bootstrap resamples and permutations for ``ci_cell``.
    """

    task: str = "movies"
    model: str = "minilm-l6"
    preset: str = "demo"
    seeds: tuple[int, ...] = (0, 1)
    max_steps: int | None = None
    pooling: str = "cls"
    metric: str = "cka"
    kernel: str = "linear"
    debiased: bool = False
    rsa_metric: str = "correlation"
    n_examples: int | None = 1000
    split: str = "validation"
    dtype: str = "float32"
    max_length: int | None = None
    seed: int = 0
    cross_model: str | None = None
    cross_state: str = "orig"
    checkpoint_steps: tuple[int, ...] = ()
    ci_cell: tuple[str, int, int] | None = ("ft_orig", -1, -1)
    n_boot: int = 200
    n_perm: int = 100

    def __post_init__(self):
        for name in ("seeds", "checkpoint_steps"):  # papermill passes lists
            object.__setattr__(self, name, tuple(int(s) for s in getattr(self, name)))
        if self.ci_cell is not None:
            object.__setattr__(self, "ci_cell", (str(self.ci_cell[0]), int(self.ci_cell[1]),
                                                 int(self.ci_cell[2])))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r} must be one or more distinct seeds, "
                             f"e.g. (0, 1)")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; use one of {METRICS}")
        from .. import rsa

        if self.rsa_metric not in rsa.METRICS:
            raise ValueError(f"unknown rsa_metric {self.rsa_metric!r}; use one of {rsa.METRICS}")
        if self.kernel not in cka.KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; use one of {cka.KERNELS}")
        if self.n_examples is not None and self.n_examples < 4:
            raise ValueError(f"n_examples={self.n_examples} is too small: similarity needs at "
                             f"least 4 examples (debiased HSIC needs n >= 4); use 100 or more")
        if self.cross_model is not None:
            models.check_model_name(self.cross_model)
        if self.cross_state not in ("orig", "ft"):
            raise ValueError(f"cross_state={self.cross_state!r}; use 'orig' or 'ft'")
        if self.ci_cell is not None and self.ci_cell[0] not in COMPARISONS:
            raise ValueError(f"ci_cell comparison {self.ci_cell[0]!r}; use one of {COMPARISONS}")
        self.finetune_configs()  # validates task, model, preset (and steps below)
        self.activation_spec()  # validates pooling, split, dtype, ...
        top = self.max_steps or finetune.PRESETS[self.preset].max_steps
        late = [s for s in self.checkpoint_steps if s < 0 or (top > 0 and s > top)]
        if late:
            raise ValueError(f"checkpoint_steps {late} outside 0..{top} (the {self.preset!r} "
                             f"preset's steps); pick steps in that range")

    def activation_spec(self) -> acts.ActivationSpec:
        max_length = self.max_length or finetune.PRESETS[self.preset].max_length
        return acts.ActivationSpec(task=self.task, split=self.split, n_examples=self.n_examples,
                                   pooling=self.pooling, dtype=self.dtype, max_length=max_length,
                                   seed=self.seed)

    def finetune_configs(self, model: str | None = None) -> list[finetune.FinetuneConfig]:
        """One config per seed (the first seed carries ``checkpoint_steps`` as save_steps)."""
        return [finetune.FinetuneConfig(task=self.task, model=model or self.model,
                                        preset=self.preset, seed=s, max_steps=self.max_steps,
                                        save_steps=self.checkpoint_steps if i == 0 and not model
                                        else ()) for i, s in enumerate(self.seeds)]

    def metric_label(self) -> str:
        if self.metric == "rsa":
            return f"RSA ({self.rsa_metric})"
        return f"{'debiased ' if self.debiased else ''}{self.kernel} CKA"


# --------------------------------------------------------------------------- computing
def _similarity(cfg: SimilarityConfig, a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """[La, Lb] similarity of two stacks [L, n, d]; constant layers give NaN rows/columns."""
    if cfg.metric == "rsa":
        from .. import rsa

        m = rsa.rsa_matrix(a, b, metric=cfg.rsa_metric, seed=cfg.seed, undefined="nan")
    else:
        m = cka.cka_matrix(a, b, kernel=cfg.kernel, debiased=cfg.debiased, undefined="nan")
    return np.asarray(m, dtype=np.float64)


def _aligned(x: acts.Activations, y: acts.Activations) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of x and y holding the same examples (words can be cut differently by two
    tokenizers at max_length; sentence rows always match)."""
    if x.ids.shape == y.ids.shape and (x.ids == y.ids).all():
        idx = np.arange(len(x.ids))
        return idx, idx
    kx = x.ids[:, 0] * 1_000_003 + x.ids[:, 1]
    ky = y.ids[:, 0] * 1_000_003 + y.ids[:, 1]
    _, ix, iy = np.intersect1d(kx, ky, return_indices=True)
    if len(ix) < 4:
        raise ValueError("the two models share fewer than 4 rows after truncation; "
                         "raise max_length")
    return ix, iy


def _reasons(name: str, states: np.ndarray, cfg: SimilarityConfig) -> dict[int, str]:
    """Layer -> why similarity with it is undefined (constant across examples)."""
    out = {}
    for layer in cka.constant_layers(states):
        why = (" (BERT-style models: the first token at layer 0 is its token embedding + "
               "position 0 + segment 0 only, before any attention)"
               if layer == 0 and cfg.pooling == "cls" else "")
        out[layer] = (f"{name} layer {layer_labels(states.shape[0] - 1)[layer]}: the "
                      f"{cfg.pooling} vector is the same for every example{why}, so "
                      f"{cfg.metric.upper()} with it is undefined")
    return out


def _block(m: np.ndarray) -> dict | None:
    """find_block_boundary on the defined part of a symmetric matrix (layer indices kept)."""
    from ..blocks import find_block_boundary

    keep = np.flatnonzero(np.isfinite(np.diag(m)))
    if len(keep) < 3:
        return None
    b = find_block_boundary(m[np.ix_(keep, keep)])
    return {"boundary": int(keep[b.boundary]), "score": float(b.score),
            "within": float(b.within), "between": float(b.between)}


def run_similarity(cfg: SimilarityConfig, *, verbose: bool = True) -> SimilarityResult:
    """All comparisons of ``cfg`` (fine-tuning and extraction come from the cache when there).

    Returns:
        A ``SimilarityResult``; each matrix is [L+1, L+1] (cross-model: [L+1, L'+1]), float64,
        rows = first-named model, NaN where undefined (reason in ``result.undefined``).
    """
    t0 = time.time()
    spec = cfg.activation_spec()
    words = spec.pooling in ("word", "pair")
    log = print if verbose else (lambda *a, **k: None)
    ft = [finetune.load_or_train(c, verbose=verbose) for c in cfg.finetune_configs()]
    sets: dict[str, acts.Activations] = {}

    def extract(name: str, source, step: int | None = None) -> acts.Activations:
        log(f"[similarity] representations: {name}")
        model, tok = acts.encoder_and_tokenizer(source, step=step, for_words=words)
        return acts.load_or_extract(spec, model, tok, progress=verbose)

    sets["orig"] = extract("orig", cfg.model)
    sets["ft"] = extract("ft", ft[0])
    if len(ft) > 1:
        sets["ft2"] = extract("ft2", ft[1])
    if cfg.cross_model is not None:
        sets["self"] = sets["orig"] if cfg.cross_state == "orig" else sets["ft"]
        src = (cfg.cross_model if cfg.cross_state == "orig" else
               finetune.load_or_train(cfg.finetune_configs(cfg.cross_model)[0], verbose=verbose))
        sets["cross"] = extract("cross", src)
    for s in cfg.checkpoint_steps:
        sets[f"step-{s}"] = extract(f"step {s}", ft[0], step=s)

    names = {"orig": f"ORIG {cfg.model}", "ft": "FT", "ft2": "FT[2]",
             "cross": f"{cfg.cross_state.upper()} {cfg.cross_model}",
             "self": f"{cfg.cross_state.upper()} {cfg.model}"}
    reasons = {k: _reasons(names.get(k, k), np.asarray(v.states), cfg) for k, v in sets.items()}
    matrices, undefined = {}, {}
    for comp, (ra, rb) in PAIRS.items():
        if ra not in sets or rb not in sets:
            continue
        ia, ib = _aligned(sets[ra], sets[rb])
        a = sets[ra].states if len(ia) == len(sets[ra].ids) else sets[ra].states[:, ia]
        b = None if ra == rb else (sets[rb].states if len(ib) == len(sets[rb].ids)
                                   else sets[rb].states[:, ib])
        m = _similarity(cfg, a, b)
        if b is None:  # symmetric by construction; float32 sums leave ~1e-7 between (i,j), (j,i)
            m = (m + m.T) / 2
        matrices[comp] = m
        why = sorted(set(reasons[ra].values()) | set(reasons[rb].values()))
        if np.isnan(m).sum() > 0 and not why:
            why = ["NaN from the similarity kernel on layers that are not constant (unexpected)"]
        undefined[comp] = tuple(why)
    drift = None
    if cfg.checkpoint_steps:  # per layer: similarity(layer l at step s, layer l untuned)
        orig = sets["orig"].states
        drift = np.array([[_similarity(cfg, sets[f"step-{s}"].states[i:i + 1], orig[i:i + 1])[0, 0]
                           for i in range(orig.shape[0])] for s in cfg.checkpoint_steps])
    result = SimilarityResult(
        config=cfg, matrices=matrices, undefined=undefined,
        blocks={k: _block(matrices[k]) for k in ("orig_orig", "ft_ft") if k in matrices},
        drift_steps=cfg.checkpoint_steps, drift=drift,
        sources={k: str(v.path) for k, v in sets.items()},
        meta={"n_rows": int(sets["orig"].states.shape[1]), "n_layers": sets["orig"].n_layers,
              "finetune": [{"seed": r.config.seed, "key": r.path.name, "metrics": r.metrics}
                           for r in ft],
              "activation_keys": {k: v.key for k, v in sets.items()}})
    if cfg.ci_cell is not None and cfg.metric == "cka" and cfg.kernel == "linear" \
            and cfg.ci_cell[0] in matrices:
        comp, i, j = cfg.ci_cell
        try:
            cell = {**result.cell_bootstrap(comp, i, j, n_boot=cfg.n_boot),
                    **result.cell_permutation(comp, i, j, n_perm=cfg.n_perm)}
        except ValueError as e:  # e.g. the chosen cell is undefined: say so, keep the rest
            cell = {"comparison": comp, "row": i, "col": j, "error": str(e)}
        result = dataclasses.replace(result, cell=cell)
    result.meta["seconds"] = round(time.time() - t0, 1)
    return result


# --------------------------------------------------------------------------- result
def _idx(i: int, n: int, what: str) -> int:
    if not -n <= i < n:
        raise ValueError(f"{what} layer index {i} out of range: use 0..{n - 1} (or -1 for the top)")
    return i % n


@dataclass(frozen=True)
class SimilarityResult:
    """Matrices and metadata of one ``run_similarity`` call.

    Attributes:
        matrices: comparison name (``COMPARISONS``) -> [La, Lb] float64, NaN where undefined.
        undefined: comparison -> reasons for its NaN cells (empty when none).
        blocks: "orig_orig"/"ft_ft" -> {boundary, score, within, between} or None.
        drift_steps, drift: [S] steps and [S, L+1] similarity of each layer with itself untuned.
        cell: bootstrap interval and permutation baseline of ``config.ci_cell``.
        sources: representation set -> activation cache folder (used by ``cell_*``).
    """

    config: SimilarityConfig
    matrices: dict[str, np.ndarray]
    undefined: dict[str, tuple[str, ...]]
    blocks: dict[str, dict | None] = field(default_factory=dict)
    drift_steps: tuple[int, ...] = ()
    drift: np.ndarray | None = None
    cell: dict = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_layers(self) -> int:
        """Blocks L of the model (matrices have L+1 rows: embeddings + blocks)."""
        return self.matrices["orig_orig"].shape[0] - 1

    def _axes(self, comp: str) -> tuple[str, str]:
        seeds, c = self.config.seeds, self.config
        return {"orig_orig": ("ORIG", "ORIG"), "ft_orig": ("FT", "ORIG"), "ft_ft": ("FT", "FT"),
                "ft1_ft2": (f"FT[1] seed {seeds[0]}", f"FT[2] seed {seeds[-1]}"),
                "cross": (f"{c.model} {c.cross_state.upper()}",
                          f"{c.cross_model} {c.cross_state.upper()}")}[comp]

    def _panels(self, comps) -> list[splots.Panel]:
        return [splots.Panel(self.matrices[k], TITLES[k], *self._axes(k)) for k in comps]

    def _title(self) -> str:
        c = self.config
        return (f"{c.metric_label()} of {c.pooling} representations: {c.model} on {c.task} "
                f"({self.meta.get('n_rows', '?')} {c.split} rows)")

    def undefined_notes(self, comps=PHANG_PANELS) -> list[str]:
        """Undefined-cell reasons of ``comps`` grouped by cause ("A layer emb: why" + "B layer
        emb: why" -> "A, B layer emb: why"), then the layer convention."""
        groups: dict[str, list[str]] = {}
        for r in sorted({x for k in comps for x in self.undefined.get(k, ())}):
            who, _, why = r.partition(": ")
            name, _, layer = who.rpartition(" layer ")
            groups.setdefault(f"layer {layer}: {why}" if name else r, []).append(name)
        notes = [f"Grey = undefined: {', '.join(n for n in names if n)} {why}."
                 for why, names in groups.items()]
        return notes + ["Layer 0 = embedding output; layer i = output of block i."]

    def figure(self, comparison: str | None = None):
        """Plotly figure: Phang et al.'s Fig. 1 panels (one 0–1 scale), or one comparison."""
        comps = [k for k in PHANG_PANELS if k in self.matrices] if comparison is None \
            else [comparison]
        for k in comps:
            if k not in self.matrices:
                raise ValueError(f"comparison {k!r} was not computed; available: "
                                 f"{list(self.matrices)} (cross needs cross_model=...)")
        return splots.panels_figure(self._panels(comps), title=self._title(),
                                    metric=self.config.metric.upper(),
                                    notes=self.undefined_notes(comps),
                                    cols=2 if len(comps) == 4 else None)

    def drift_figure(self):
        if self.drift is None:
            raise ValueError("no drift computed: set checkpoint_steps=(0, ...) in the config")
        return splots.drift_figure(self.drift_steps, self.drift, metric=self.config.metric.upper(),
                                   title=f"Drift from the untuned layer during fine-tuning "
                                         f"({self.config.model} on {self.config.task})")

    # ---- single cells
    def _cell_data(self, comp: str, i: int, j: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        if comp not in self.matrices:
            raise ValueError(f"comparison {comp!r} was not computed; "
                             f"available: {list(self.matrices)}")
        m = self.matrices[comp]
        i, j = _idx(i, m.shape[0], "row"), _idx(j, m.shape[1], "column")
        if not np.isfinite(m[i, j]):
            raise ValueError(f"{TITLES[comp]} cell ({i}, {j}) is undefined: "
                             f"{'; '.join(self.undefined.get(comp, ()))}")
        if self.config.metric != "cka" or self.config.kernel != "linear":
            raise ValueError("cell intervals and baselines exist for linear CKA only; "
                             "use metric='cka', kernel='linear'")
        ra, rb = PAIRS[comp]
        xa = acts._load(Path(self.sources[ra]), self.config.activation_spec(), "", {})
        xb = acts._load(Path(self.sources[rb]), self.config.activation_spec(), "", {})
        ia, ib = _aligned(xa, xb)
        return np.asarray(xa.states[i])[ia], np.asarray(xb.states[j])[ib], i, j

    def cell_bootstrap(self, comparison: str, row: int, col: int, *, n_boot: int = 200,
                       confidence: float = 0.95, seed: int = 0) -> dict:
        """Percentile bootstrap interval over examples of one cell (``cka.bootstrap_cka``)."""
        x, y, i, j = self._cell_data(comparison, row, col)
        est, lo, hi = cka.bootstrap_cka(x, y, n_boot=n_boot, confidence=confidence, seed=seed,
                                        debiased=self.config.debiased)
        return {"comparison": comparison, "row": i, "col": j, "estimate": est, "low": lo,
                "high": hi, "confidence": confidence, "n_boot": n_boot}

    def cell_permutation(self, comparison: str, row: int, col: int, *, n_perm: int = 100,
                         seed: int = 0) -> dict:
        """The cell's value against CKA with examples shuffled (no-similarity baseline at n)."""
        x, y, i, j = self._cell_data(comparison, row, col)
        null = cka.permutation_cka(x, y, n_perm=n_perm, seed=seed,
                                   debiased=self.config.debiased).numpy()
        value = float(self.matrices[comparison][i, j])
        return {"comparison": comparison, "row": i, "col": j, "value": value,
                "perm_mean": float(null.mean()), "perm_q99": float(np.quantile(null, 0.99)),
                "n_reached": int((null >= value).sum()),
                "p_value": float((1 + (null >= value).sum()) / (1 + len(null))),
                "n_perm": n_perm}

    # ---- findings
    def findings(self) -> dict:
        """The papers' claims tested on this run (see ``similarity_findings.findings``)."""
        return similarity_findings.findings(self)

    def verdict(self) -> str:
        """``findings()`` as readable lines."""
        return similarity_findings.verdict(self)

    # ---- files
    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write figures (HTML + PNG), matrices and findings (JSON) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        comps = [k for k in PHANG_PANELS if k in self.matrices]
        files = {"html": out / "similarity.html", "json": out / "similarity.json",
                 "txt": out / "findings.txt"}
        self.figure().write_html(files["html"], include_plotlyjs=True)
        files["png"] = splots.panels_png(self._panels(comps), out / "similarity.png",
                                         title=self._title(), metric=self.config.metric.upper(),
                                         notes=self.undefined_notes(comps),
                                         cols=2 if len(comps) == 4 else None)
        if "cross" in self.matrices:
            files["cross_html"] = out / "cross.html"
            self.figure("cross").write_html(files["cross_html"], include_plotlyjs=True)
            files["cross_png"] = splots.panels_png(self._panels(["cross"]), out / "cross.png",
                                                   title=self._title(),
                                                   notes=self.undefined_notes(["cross"]))
        if self.drift is not None:
            files["drift_html"] = out / "drift.html"
            self.drift_figure().write_html(files["drift_html"], include_plotlyjs=True)
            files["drift_png"] = splots.drift_png(self.drift_steps, self.drift, out / "drift.png",
                                                  title="Drift from the untuned layer")
        cache.atomic_write_text(files["json"], json.dumps(self.to_dict(), indent=1, default=str))
        cache.atomic_write_text(files["txt"], self.verdict() + "\n")
        return files

    def to_dict(self) -> dict:
        """JSON-ready: matrices as nested lists with NaN as null."""
        def clean(m):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in m]
        return {"config": dataclasses.asdict(self.config),
                "layer_labels": layer_labels(self.n_layers),
                "matrices": {k: clean(v) for k, v in self.matrices.items()},
                "undefined": {k: list(v) for k, v in self.undefined.items()},
                "blocks": self.blocks, "drift_steps": list(self.drift_steps),
                "drift": None if self.drift is None else clean(self.drift),
                "findings": self.findings(), "meta": self.meta}


def grid_figure(results, comparison: str = "ft_ft"):
    """Phang et al. (2021) Fig. 2-style grid: one ``comparison`` heatmap per result, models as
    rows and tasks as columns, one 0–1 colour scale."""
    rows = list(dict.fromkeys(r.config.model for r in results))
    cols = list(dict.fromkeys(r.config.task for r in results))
    cells = {(r.config.model, r.config.task): r.matrices[comparison] for r in results}
    metric = results[0].config.metric_label() if results else "CKA"
    return splots.grid_figure(cells, row_names=rows, col_names=cols,
                              title=f"{TITLES[comparison]} {metric} per model and task")


def main_job_similarity(task: str = "movies", model: str = "minilm-l6", seeds=(0, 1),
                        preset: str = "demo", n_examples: int = 1000,
                        out_dir: str | Path | None = None, verbose: bool = True,
                        max_steps: int | None = None) -> SimilarityResult:
    """The main job's similarity step on the offline default: Phang et al.'s four comparisons
    (linear CKA of CLS over ``n_examples`` validation sentences) from the cached fine-tuned
    models (trained if missing), written as HTML + PNG + JSON + findings into ``out_dir``
    (default ``<home>/runs/similarity/<task>-<model>-<preset>``). ``max_steps`` must match the
    fine-tuning run's (None: the preset's), or other models are trained."""
    cfg = SimilarityConfig(task=task, model=model, preset=preset, seeds=tuple(seeds),
                           n_examples=n_examples, max_steps=max_steps)
    result = run_similarity(cfg, verbose=verbose)
    out = Path(out_dir) if out_dir else (paths.runs_dir() / "similarity" /
                                         f"{task}-{model.replace('/', '_')}-{preset}")
    files = result.save(out)
    result.meta["files"] = {k: str(v) for k, v in files.items()}
    return result
