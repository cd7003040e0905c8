"""Keep the smaller model: the fine-tuned model cut to k blocks as a real checkpoint.

Phang et al. 2021 §4 find that the top blocks of a fine-tuned model can often be discarded with
no further tuning; ``save_truncated_model`` writes that shallower model with
``surgery.save_truncated`` and checks that the reloaded checkpoint predicts what UNTUNED
truncation at k predicted in the study (notebook 03's ``save_truncated_to``).
"""

from __future__ import annotations

import numpy as np

from ... import activations as acts
from ... import devices, finetune, metrics, models, surgery
from ...errors import ConfigError
from ..common import evaluation, structured
from .result import TruncationResult


def save_truncated_model(result: TruncationResult, directory: str, k: int = 0,
                         seed_index: int = 0) -> dict:
    """Write the fine-tuned model cut to k blocks (``surgery.save_truncated``) and check that
    the reloaded checkpoint predicts what UNTUNED truncation at k predicted.

    k: 1..L; 0 = the smallest depth that stays within tolerance (``top_layers_droppable``).
    Returns {path, k, n_parameters (before, after), max_abs_logit_diff, prediction_agreement}.
    """
    cfg = result.config
    L = result.n_layers
    k = k or L - int(result.effects["top_layers_droppable"]["estimate"])
    if not 0 <= seed_index < len(cfg.seeds):
        raise ConfigError(f"seed_index={seed_index}: the result has seeds {cfg.seeds}")
    res = finetune.load_or_train(cfg.finetune_configs()[seed_index], verbose=False)
    model, tok = acts.encoder_and_tokenizer(res, device=cfg.resolved_device())
    surgery.check_depth(k, L, "truncate_at")
    path = surgery.save_truncated(model, k, directory, tokenizer=tok)
    task = cfg.task_spec  # any kind with a head: TruncationConfig.check
    small = models.task_model_class(task).from_pretrained(str(path)).eval().to(
        devices.model_device(model))  # a token-pair model is a plain nn.Module: no .device
    sizes = (sum(p.numel() for p in model.parameters()),
             sum(p.numel() for p in small.parameters()))
    out = {"path": str(path), "k": k, "n_blocks": small.config.num_hidden_layers,
           "n_parameters": sizes}
    if structured.is_structured(task):  # its answers / trees, scored as UNTUNED at k was
        return {**out, **_structured_check(result, small, tok, seed_index, k)}
    es = evaluation.eval_set(cfg.task_spec, cfg.split, result.rows, tok, cfg.resolved_max_length())
    got = evaluation.full_logits(small, es)
    want = result.logits["untuned"][seed_index, k]
    same = np.isclose(metrics.predictions_from_logits(task, got),
                      metrics.predictions_from_logits(task, want), atol=1e-4)
    return {**out, "max_abs_logit_diff": float(np.abs(got - want).max()),
            "prediction_agreement": float(np.mean(same))}


def _structured_check(result: TruncationResult, small, tok, seed_index: int, k: int) -> dict:
    """QA / parsing: the reloaded k-block model's own per-unit statistics against UNTUNED's
    at k (the study keeps statistics, not logits: ``max_abs_logit_diff`` is the largest
    statistic difference, 0 when every question's answer or sentence's tree scores the
    same)."""
    cfg = result.config
    ss = structured.structured_set(cfg.task_spec, cfg.split, result.rows, tok,
                                   cfg.resolved_max_length())
    got = ss.stats(structured.full_outputs(small, ss))
    want = result.logits["untuned"][seed_index, k]
    same = np.isclose(got, want, atol=1e-6).all(-1)
    return {"max_abs_logit_diff": float(np.abs(got - want).max()),
            "prediction_agreement": float(np.mean(same))}
