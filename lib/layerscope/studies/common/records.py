"""What a result records of the fine-tuned models it used: the cache key (never a path, so the
result reads back on any machine sharing the cache), the seed and the validation metrics."""

from __future__ import annotations

from ... import finetune


def finetune_runs(runs: list[finetune.FinetuneResult], *, baseline: bool) -> tuple[dict, ...]:
    """Per run {seed, key, metrics} (+ the majority-class ``baseline``'s metrics when asked:
    studies 02 and 03 keep them, 04 and 05 do not), in the order of ``runs``."""
    return tuple({"seed": r.config.seed, "key": r.path.name, "metrics": r.metrics,
                  **({"baseline": r.baseline} if baseline else {})} for r in runs)
