"""layerscope: how fine-tuning changes transformer encoders, layer by layer.

Layer convention used everywhere: index 0 is the embedding output; index i (1..L) is the
output of encoder block i, the same as Hugging Face ``hidden_states[i]``.

The public API, all at the top level (``import layerscope as ls``)::

    a = ls.sentence_states("minilm-l6", sentences)  # [L+1, N, d], your own sentences
    m = ls.cka_matrix(a, b)                          # [La, Lb] CKA between every layer pair
    ls.layer_heatmap(m, y="minilm-l6", x="other").write_html("cka.html")

* Models and tasks: ``MODEL_NAMES``, ``load_encoder``, ``load_tokenizer``, ``load_for_task``,
  ``load_config``; ``TASK_NAMES``, ``get_task``, ``load_split`` (names: ``layerscope models``,
  ``layerscope tasks``; any hub id or local folder works as a model).
* Per-layer states: ``sentence_states`` and ``layer_heatmap`` (quick path, no cache);
  ``ActivationSpec`` + ``load_or_extract`` (a task split, cached), ``extract``,
  ``encoder_and_tokenizer``, ``load_activations`` (a cached entry by key).
* Fine-tuning: ``FinetuneConfig``, ``load_or_train`` (cached by settings), ``FinetuneResult``.
* Measures (arrays in, arrays out): ``cka_matrix``, ``linear_cka``, ``bootstrap_cka``,
  ``constant_layers``, ``UndefinedCellsWarning``; ``rsa_matrix``, ``rsa``; probes
  ``select_and_restart`` (Zhou & Srikumar's MLP protocol), ``probe_grid``, ``linear_probe``;
  ``directprobe``, ``DirectProbeResult``; ``find_block_boundary``.
* Surgery (reversible context managers, by block index): ``truncated``, ``skipped``;
  ``drop_top_blocks``, ``save_truncated``.
* Studies (the notebooks' one call each; results have ``figure()``, ``findings()``,
  ``verdict()``, ``save()``): ``run_similarity`` / ``SimilarityConfig``, ``run_truncation`` /
  ``TruncationConfig``, ``run_skipping`` / ``SkippingConfig``, ``run_geometry`` /
  ``GeometryConfig``, ``run_tasks`` / ``TasksConfig`` (several tasks side by side, Merchant
  et al. 2020).
* Errors: ``LayerscopeError`` (every error raised on purpose), ``ConfigError``,
  ``UndefinedError``.

Importing the package is instant: each name is imported from its module on first use
(PEP 562), so ``import layerscope`` does not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute in it)
_LAZY: dict[str, tuple[str, str]] = {}


def _export(module: str, *names: str, **renamed: str) -> None:
    for name in names:
        _LAZY[name] = (module, name)
    for name, attr in renamed.items():
        _LAZY[name] = (module, attr)


_export(".models", "MODEL_NAMES", "OFFLINE_MODEL_NAMES", "load_encoder", "load_tokenizer",
        "load_for_task", "load_config")
_export(".tasks", "TASK_NAMES", "OFFLINE_TASK_NAMES", "get_task", "load_split")
_export(".activations", "ActivationSpec", "Activations", "extract", "load_or_extract",
        "encoder_and_tokenizer", load_activations="load")
_export(".quick", "sentence_states", "layer_heatmap")
_export(".finetune", "FinetuneConfig", "FinetuneResult", "load_or_train")
_export(".measures.cka", "cka_matrix", "linear_cka", "constant_layers", "UndefinedCellsWarning")
_export(".measures.cka_stats", "bootstrap_cka")
_export(".measures.rsa", "rsa_matrix", "rsa")
_export(".measures.probes", "select_and_restart", "probe_grid", "linear_probe")
_export(".measures.directprobe", "directprobe", "DirectProbeResult")
_export(".measures.blocks", "find_block_boundary")
_export(".surgery", "truncated", "skipped", "drop_top_blocks", "save_truncated")
_export(".studies.similarity", "SimilarityConfig", "run_similarity")
_export(".studies.truncation", "TruncationConfig", "run_truncation")
_export(".studies.skipping", "SkippingConfig", "run_skipping")
_export(".studies.geometry", "GeometryConfig", "run_geometry")
_export(".studies.tasks", "TasksConfig", "run_tasks")
_export(".errors", "LayerscopeError", "ConfigError", "UndefinedError")

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'layerscope' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

