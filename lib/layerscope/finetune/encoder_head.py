"""What the project's own task models share: an encoder (``AutoModel``) with a head of ours on
its states, saved and loaded like a Hugging Face model.

``TokenPairClassifier`` (Zhou & Srikumar 2022's DEP) and ``BiaffineParserModel`` (Merchant et
al. 2020's parsing) subclass ``EncoderHeadModel``: it holds ``config`` and ``base_model`` (what
the layer adapters read), runs the encoder on the inputs its family takes, and writes and
reads ``config.json`` + ``model.safetensors``. A folder that holds only an encoder (or another
task model) loads with a fresh head, whose weights are then reported missing, so that
``finetune.load_checkpoint`` refuses it as a checkpoint of this task.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tr
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ConfigError

WEIGHTS = "model.safetensors"


class EncoderHeadModel(nn.Module):
    """An encoder and a head of ours. Subclasses set ``ARCHITECTURE`` (the saved config's
    ``architectures``), ``HEAD_PREFIX`` (the head's state-dict prefix) and ``HEAD_NAME`` (for
    messages), build their head in ``__init__`` after ``super().__init__(config, encoder)``."""

    ARCHITECTURE = ""
    HEAD_PREFIX = ""
    HEAD_NAME = "head"
    # the losses are means over the batch's labelled units: the Trainer must scale them for
    # gradient accumulation itself (it skips that for models whose forward takes **kwargs)
    accepts_loss_kwargs = False

    def __init__(self, config: tr.PretrainedConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.base_model = encoder if encoder is not None else tr.AutoModel.from_config(config)

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def encode(self, input_ids, attention_mask, token_type_ids, output_hidden_states: bool,
               **kw):
        """The encoder's output on the inputs its family takes."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:  # DistilBERT, MPNet, ModernBERT take none
            inputs["token_type_ids"] = token_type_ids
        for k in ("inputs_embeds", "output_attentions"):
            if kw.get(k) is not None:
                inputs[k] = kw[k]
        return self.base_model(**inputs, output_hidden_states=output_hidden_states)

    def save_pretrained(self, folder, state_dict: dict | None = None, **_) -> None:
        """``config.json`` (architectures = [``ARCHITECTURE``]) and ``model.safetensors``
        (this module's state dict) in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [self.ARCHITECTURE]
        self.config.save_pretrained(str(folder))
        state = state_dict if state_dict is not None else self.state_dict()
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()},
                  str(folder / WEIGHTS), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, folder, *, output_loading_info: bool = False, **config_kwargs):
        """The model saved in ``folder`` by ``save_pretrained``; a folder of another model
        loads its encoder with a fresh head (reported missing; an error unless
        ``output_loading_info=True``)."""
        folder = Path(folder)
        config = tr.AutoConfig.from_pretrained(str(folder), **config_kwargs)
        weights = folder / WEIGHTS
        state = load_file(str(weights)) if weights.is_file() else None
        with torch.random.fork_rng(devices=[]):  # a load never moves the global RNG
            if state is not None and any(k.startswith("base_model.") for k in state):
                model = cls(config)
                missing, unexpected = model.load_state_dict(state, strict=False)
            else:  # not saved by this class: the encoder's own loader, a fresh head
                encoder = tr.AutoModel.from_pretrained(str(folder), config=config)
                model = cls(encoder.config, encoder)
                missing = [k for k in model.state_dict() if k.startswith(cls.HEAD_PREFIX)]
                unexpected = []
        missing = list(missing)
        if not output_loading_info and missing:
            raise ConfigError(f"{folder}: no trained {cls.HEAD_NAME} ({', '.join(missing[:4])} "
                              f"missing; saved as {getattr(config, 'architectures', None)}); "
                              f"fine-tune it with layerscope, or save a {cls.ARCHITECTURE}")
        model.eval()
        if output_loading_info:
            return model, {"missing_keys": missing, "unexpected_keys": list(unexpected)}
        return model
