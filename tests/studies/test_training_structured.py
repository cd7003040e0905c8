"""Notebook 01's findings on the structured kinds: extractive QA is scored over questions
(F1), parsing over sentences' scored words (LAS); the baseline's score is held fixed."""

from __future__ import annotations

import pytest

from layerscope import finetune
from layerscope.finetune import FinetuneConfig
from layerscope.studies.training import finetune_findings


@pytest.mark.parametrize("task", ["tiny-squad", "tiny-parse"])
def test_beats_baseline_is_the_metric_gain_over_questions_or_sentences(task):
    # the configs of tests/test_finetune_qa.py and test_finetune_parsing.py: cached runs
    run = finetune.load_or_train(FinetuneConfig(task=task, model="tiny-bert", preset="smoke"),
                                 verbose=False)
    metric = run.config.task_spec.primary_metric
    found = finetune_findings(run, n_boot=50)["beats_baseline"]
    gain = run.metrics[metric] - run.baseline[metric]
    assert found["interval"]["estimate"] == pytest.approx(gain, abs=1e-6)
    assert found["interval"]["low"] <= gain <= found["interval"]["high"]
    unit = "questions" if task == "tiny-squad" else "sentences"
    assert unit in found["interval"]["method"] and found["verdict"] in (
        "SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE")
