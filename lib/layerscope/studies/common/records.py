"""What a result records of the fine-tuned models it used: the cache key (never a path, so the
result reads back on any machine sharing the cache), the seed and the validation metrics."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ... import finetune, models


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


def head_result_dict(result, **fields) -> dict:
    """The JSON fields of a result that evaluates the fine-tuned head on a model's states
    (studies 03 truncation and 04 skipping), around the study's own ``fields``: the config, the
    depth, the metric, the evaluation rows and labels (with their dtypes, for ``read``), the
    parity of the full model with ``finetune.predictions``, the runs used and the timings."""
    return {"config": dataclasses.asdict(result.config), "n_layers": result.n_layers,
            "metric": result.metric, "higher_is_better": result.higher_is_better,
            "rows": result.rows.tolist(), "labels": result.labels.tolist(), **fields,
            "parity": list(result.parity), "finetune_runs": list(result.finetune_runs),
            "timings": result.timings, "seconds": result.seconds, "device": result.device,
            "dtypes": {"rows": str(result.rows.dtype), "labels": str(result.labels.dtype)}}


def head_result_fields(saved, config_cls) -> dict:
    """The inverse of ``head_result_dict`` for the shared fields: the constructor arguments
    read back from ``saved`` (a ``studies.results.Saved``; ``config_cls``: the study's
    config class)."""
    return dict(
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
