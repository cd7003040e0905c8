"""What both routes of study 03 fill in (sequence tasks: cached CLS features; the other kinds:
features of the scored units, ``units``): the lines' logits, the retrained heads, the clock.

Layers whose features are the same for every unit are undefined (BERT-style layer 0: the [CLS]
embedding at position 0, segment 0, is the same for every sentence and every choice): no head
can tell the units apart there (README, "The library in six lines"; DESIGN §5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ...devices import to_numpy
from ...measures import cka
from ...measures.blocks import block_structure
from . import heads

LINES = ("untuned", "tuned", "tunedorig")


def defined_layers(features) -> list[int]:
    """Layers whose features [L+1, U, ..., D] vary across units (multiple-choice features
    [L+1, n, choices, D] count every choice)."""
    x = np.asarray(features)
    x = x.reshape(x.shape[0], -1, x.shape[-1])
    constant = set(cka.constant_layers(x))
    return [k for k in range(x.shape[0]) if k not in constant]


def retrain(line: str, init: heads.HeadParams, train_x, train_y, val_x, settings: heads.
            HeadTraining, seed: int, regression: bool, groups=None
            ) -> tuple[list[int], np.ndarray, dict]:
    """TUNED or TUNEDORIG for one seed: every layer defined in both feature sets gets its head
    trained at once on ``train_x`` [L+1, n, ...] (``groups``: the sentence of each training
    unit, token tasks) and applied to ``val_x`` -> (layers, logits [K, U, C], training
    record)."""
    train_x, val_x = np.asarray(train_x), np.asarray(val_x)
    both = set(defined_layers(val_x))
    layers = [k for k in defined_layers(train_x) if k in both]
    fit = heads.train_heads(init, train_x[layers], train_y, regression=regression,
                            settings=settings, seed=seed, groups=groups)
    record = {"line": line, "layers": layers, "best_epoch": fit.best_epoch.tolist(),
              "epochs": fit.epochs, "holdout_loss": fit.holdout_loss.tolist(),
              "initial_loss": fit.initial_loss.tolist(), "n_fit": fit.n_fit,
              "n_holdout": fit.n_holdout}
    return layers, to_numpy(heads.apply(fit.params, val_x[layers])), record


def ft_blocks(features) -> dict:
    """The block structure of the FT–FT linear CKA matrix of ``features`` [L+1, U, ..., D]
    (study 02's marking; ``measures.blocks.block_structure``)."""
    x = np.asarray(features)
    m = np.asarray(cka.cka_matrix(x.reshape(x.shape[0], -1, x.shape[-1]), undefined="nan"),
                   dtype=np.float64)
    return block_structure((m + m.T) / 2)


class Clock:
    """Seconds per phase, summed over seeds: ``lap(name)`` charges ``name`` with the time since
    the previous lap (or the start)."""

    def __init__(self, t0: float):
        self.times: dict[str, float] = {}
        self.last = t0

    def lap(self, name: str) -> None:
        self.times[name] = self.times.get(name, 0.0) + time.time() - self.last
        self.last = time.time()


@dataclass
class Lines:
    """What the per-seed steps fill in: ``logits[line]`` [S, L+1, U, C] (NaN rows where
    undefined), the head fits per line, the UNTUNED-vs-predictions parity per seed, the
    activation keys (sequence tasks), the FT–FT blocks (first seed, ``mark_blocks``), and the
    evaluation units: gold ``labels`` [U], ``groups`` [U] (example of each unit) and
    ``reference_rows`` [U] (rows of ``finetune.predictions``); ``unit_rows``: the units'
    split rows where they differ from the asked rows (parsing: sentences ``max_length``
    dropped). Extractive QA and parsing: ``logits[line]`` holds per-unit statistics
    [S, L+1, n, q] (``studies.common.structured.STATS``) and ``labels`` each unit's
    position in ``finetune.predictions`` (no class per unit)."""

    logits: dict[str, np.ndarray]
    fits: dict[str, list[dict]] = field(default_factory=lambda: {"tuned": [], "tunedorig": []})
    parity: list = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    blocks: object = None
    labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    reference_rows: np.ndarray | None = None
    unit_rows: np.ndarray | None = None
    baseline_stats: np.ndarray | None = None  # QA and parsing: the baseline's [n, q]


def empty_lines(n_seeds: int, n_layers: int, n_units: int, n_classes: int, *,
                dtype=np.float32, **kw) -> Lines:
    """All-NaN logits [S, L+1, U, C] for each line (``dtype`` float64 for the per-unit
    statistics of QA and parsing: an F1 of 1/3 kept exactly as the predictions hold it)."""
    return Lines(logits={k: np.full((n_seeds, n_layers + 1, n_units, n_classes), np.nan,
                                    dtype=dtype) for k in LINES}, **kw)
