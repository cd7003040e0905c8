"""The run record: a fine-tuned model's cache entry, its metrics, history and snapshots.

``FinetuneResult`` is what ``load_or_train`` returns; it is also an encoder source
(``activations.EncoderSource``: ``encoder_and_tokenizer(step=, for_words=)``), which is how the
studies get its layers' states without ``activations`` importing this package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers as tr

from .. import models
from ..errors import ConfigError
from .config import FINETUNE_VERSION, FinetuneConfig


@dataclass
class FinetuneResult:
    config: FinetuneConfig
    path: Path  # cache entry folder; a trained model is in path / "model"
    meta: dict = field(repr=False)
    cached: bool = False  # True when load_or_train found it in the cache (no training ran)
    checkpoint_dir: Path | None = None  # config.checkpoint's folder (hub id: its HF snapshot)

    @property
    def model_dir(self) -> Path:
        return self.checkpoint_dir or self.path / "model"

    @property
    def metrics(self) -> dict:
        return self.meta["metrics"]

    @property
    def baseline(self) -> dict:
        return self.meta["baseline"]

    def snapshot_dir(self, step: int) -> Path:
        if self.config.checkpoint is not None:
            raise ConfigError(f"no snapshot at step {step}: checkpoint "
                              f"{self.config.checkpoint!r} was fine-tuned elsewhere, so there "
                              "are no snapshots from its training")
        d = self.path / "steps" / f"step-{step}"
        if not d.exists():
            raise FileNotFoundError(f"no snapshot at step {step}; saved steps: "
                                    f"{self.meta.get('saved_steps')} (set save_steps=...)")
        return d

    def learning_curve(self) -> dict[str, list]:
        """Training loss and validation metric by step, from the Trainer's log history."""
        hist = self.meta.get("log_history", [])
        key = "eval_" + self.config.task_spec.primary_metric
        return {
            "train_step": [h["step"] for h in hist if "loss" in h],
            "train_loss": [h["loss"] for h in hist if "loss" in h],
            "eval_step": [h["step"] for h in hist if key in h],
            "eval_metric": [h[key] for h in hist if key in h],
        }

    def load_model(self) -> tr.PreTrainedModel:
        return load_finetuned(self)

    def encoder_and_tokenizer(self, *, step: int | None = None,
                              for_words: bool = False) -> tuple[tr.PreTrainedModel, object]:
        """(task model in eval mode, tokenizer): ``step`` picks a snapshot saved during
        fine-tuning (``FinetuneConfig.save_steps``); the tokenizer is the one saved with the
        model. ``for_words``: see ``models.load_tokenizer``."""
        tok = tr.AutoTokenizer.from_pretrained(str(self.model_dir))
        if for_words and getattr(tok, "add_prefix_space", None) is False:
            tok = tr.AutoTokenizer.from_pretrained(str(self.model_dir), add_prefix_space=True)
        return load_finetuned(self, step=step), tok


def load_finetuned(result: FinetuneResult, step: int | None = None) -> tr.PreTrainedModel:
    """The fine-tuned task model (eval mode); ``step`` picks a snapshot saved during training."""
    task = result.config.task_spec
    folder = result.model_dir if step is None else result.snapshot_dir(step)
    return models.task_model_class(task).from_pretrained(str(folder)).eval()


def versions() -> dict:
    import layerscope

    return {"layerscope": layerscope.__version__, "torch": torch.__version__,
            "transformers": tr.__version__, "finetune_code": FINETUNE_VERSION}


def summary_line(result: FinetuneResult) -> str:
    task = result.config.task_spec
    m, b = result.metrics, result.baseline
    main = task.primary_metric
    base = b.get(main, b.get("mse"))
    c = result.config
    who = (f"checkpoint {c.checkpoint} (from {c.model})" if c.checkpoint else c.model)
    tail = ("fine-tuned elsewhere, not trained here" if c.checkpoint else
            f"{result.meta['wall_seconds']}s, {result.meta['global_step']} steps")
    # QA and parsing have their own baselines (metrics.qa_baseline / parse_baseline)
    which = "baseline" if "rule" in b else "majority baseline"
    return (f"{who} on {task.name} (seed {c.seed}): {main} = "
            f"{m.get(main):.4f} vs {which} {base:.4f}; "
            f"{json.dumps({k: round(v, 4) for k, v in m.items() if isinstance(v, float)})}; "
            f"{tail}")
