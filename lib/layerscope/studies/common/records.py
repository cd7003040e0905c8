"""What a result records of the fine-tuned models it used: the cache key (never a path, so the
result reads back on any machine sharing the cache), the seed and the validation metrics."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ... import finetune, models
from .task_heads import for_task


def finetune_runs(runs: list[finetune.FinetuneResult], *, baseline: bool) -> tuple[dict, ...]:
    """Per run {seed, key, metrics, model} (+ the majority-class ``baseline``'s metrics when
    asked: studies 02 and 03 keep them, 04 and 05 do not), in the order of ``runs``. ``model``
    is what identifies the starting weights (``models.model_identity``): for a hub model the
    revision asked for and the commit it resolved to, which the run's cache key holds too."""
    identity = {}
    for r in runs:  # one lookup per base model (a hub model's commit may cost a request)
        if r.config.model not in identity:
            identity[r.config.model] = json.loads(json.dumps(
                models.model_identity(r.config.model), default=str))
    return tuple({"seed": r.config.seed, "key": r.path.name, "metrics": r.metrics,
                  **({"baseline": r.baseline} if baseline else {}),
                  "model": identity[r.config.model]} for r in runs)


def unit_groups(result) -> np.ndarray:
    """[U] the example (position in ``result.rows``) each scored unit belongs to: ``groups``
    (token tasks: many words or pairs per sentence), else one unit per example."""
    g = getattr(result, "groups", None)
    return np.arange(len(result.rows)) if g is None else g


def reference_rows(result) -> np.ndarray:
    """[U] each unit's row in ``finetune.predictions``' arrays (sequence tasks: ``rows``)."""
    r = getattr(result, "reference_rows", None)
    return result.rows if r is None else r


class ScoredUnits:
    """Mixin of the head-on-states results (03, 04): the units they score, read off their
    ``rows``, ``groups`` and ``reference_rows`` fields."""

    @property
    def unit_groups(self) -> np.ndarray:
        """[U] the example (position in ``rows``) of each scored unit."""
        return unit_groups(self)

    @property
    def unit_reference_rows(self) -> np.ndarray:
        """[U] each unit's row in ``finetune.predictions`` (the notebook's parity check)."""
        return reference_rows(self)


def evaluated(result) -> str:
    """What the result was scored on, for titles: "64 validation examples", "40 validation
    sentences (219 words)", "40 validation questions"."""
    kh, c, n = for_task(result.config.task_spec), result.config, len(result.rows)
    if kh.group is None:
        return f"{n} {c.split} {kh.units}"
    return f"{n} {c.split} {kh.group} ({len(result.labels)} {kh.units})"


def unit_problems(result) -> list[str]:
    """The units of a head-on-states result against its rows: labels, groups and reference
    rows of the same length, groups in 0..n-1 in example order (the ``check`` of 03 and 04)."""
    n, U, out = len(result.rows), len(result.labels), []
    g, ref = unit_groups(result), reference_rows(result)
    if result.labels.ndim != 1:
        out.append(f"labels are {list(result.labels.shape)}, not [units]")
    if g.shape != (U,) or ref.shape != (U,):
        out.append(f"{U} labels, {len(g)} groups and {len(ref)} reference rows (one each per "
                   f"unit)")
    elif U and (g.min() < 0 or g.max() >= n or (np.diff(g) < 0).any()):
        out.append(f"groups are not example positions 0..{n - 1} in example order")
    if getattr(result, "groups", None) is None and U != n:
        out.append(f"labels are [{U}], not [{n}] like rows")
    return out


def head_result_dict(result, **fields) -> dict:
    """The JSON fields of a result that evaluates the fine-tuned head on a model's states
    (studies 03 truncation and 04 skipping), around the study's own ``fields``: the config, the
    depth, the metric, the evaluation rows, the units' labels, examples (``groups``) and rows
    in ``finetune.predictions`` (token tasks; with their dtypes, for ``read``), the parity of
    the full model with ``finetune.predictions``, the runs used and the timings."""
    return {"config": dataclasses.asdict(result.config), "n_layers": result.n_layers,
            "metric": result.metric, "higher_is_better": result.higher_is_better,
            "rows": result.rows.tolist(), "labels": result.labels.tolist(),
            **{k: getattr(result, k).tolist() for k in ("groups", "reference_rows")
               if getattr(result, k, None) is not None}, **fields,
            "parity": list(result.parity), "finetune_runs": list(result.finetune_runs),
            "timings": result.timings, "seconds": result.seconds, "device": result.device,
            "dtypes": {"rows": str(result.rows.dtype), "labels": str(result.labels.dtype)}}


def head_result_fields(saved, config_cls) -> dict:
    """The inverse of ``head_result_dict`` for the shared fields: the constructor arguments
    read back from ``saved`` (a ``studies.results.Saved``; ``config_cls``: the study's
    config class). Files written before token tasks had no ``groups``/``reference_rows``: one
    unit per example, as they were."""
    extra = {k: saved.array(saved.get(k), k, np.int64) for k in ("groups", "reference_rows")
             if saved.get(k) is not None}
    return dict(**extra,
        config=saved.config(config_cls), n_layers=saved.need("n_layers", int),
        metric=saved.need("metric", str), higher_is_better=saved.need("higher_is_better"),
        rows=saved.array(saved.need("rows", list), "rows", np.int64),
        labels=saved.array(saved.need("labels", list), "labels"),
        parity=tuple(saved.need("parity", list)),
        finetune_runs=tuple(saved.need("finetune_runs", list)),
        timings=saved.need("timings", dict), seconds=saved.need("seconds"),
        device=saved.get("device", {}))


def head_headline(result, parity_column: str) -> tuple[dict, float]:
    """The headline scalars every head-on-states result starts with (depth, rows, metric,
    seconds), and the largest logit difference of its parity check (``parity_column`` names
    it in the results table)."""
    return ({"n_layers": result.n_layers, "n_rows": len(result.rows), "metric": result.metric,
             "seconds": result.seconds},
            {parity_column: max(p["max_abs_logit_diff"] for p in result.parity)})
