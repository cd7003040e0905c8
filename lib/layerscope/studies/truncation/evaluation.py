"""Moved to ``studies.common.evaluation`` (shared by studies 03 and 04). This module is kept
only because ``benchmarks/bench_skipping.py`` imports ``eval_set`` from here; library code and
tests import ``studies.common.evaluation``. Remove it once the benchmark does too."""

from ..common.evaluation import eval_set

__all__ = ["eval_set"]
