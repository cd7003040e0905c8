"""Per-family layer adapters, found by ``config.model_type``.

``EncoderAdapter(model)`` returns the adapter of the model's family (a subclass of
:class:`~layerscope.adapters.base.EncoderAdapter`); the interface and how to add a family are in
``adapters/base.py``, with ``adapters/distilbert.py`` as a short worked example. A model_type
that is not in ``FAMILIES`` raises ``UnsupportedModelError``: surgery (truncation, skipping,
the drop_top/freeze_bottom ablations) needs an adapter, while every study that only reads
hidden states works for any model that returns ``hidden_states``.

Family modules are imported on first use (``FAMILIES`` holds "module:Class" strings).
"""

from __future__ import annotations

import importlib

from ..errors import UnsupportedModelError
from .base import HEAD_KINDS, TASK_HEAD_KINDS, EncoderAdapter, Layout, head_kind_of

# model_type -> "module:Class" (module relative to this package)
FAMILIES: dict[str, str] = {
    "bert": "bert:BertAdapter",
    "roberta": "bert:RobertaAdapter",
    "xlm-roberta": "bert:RobertaAdapter",
    "camembert": "bert:RobertaAdapter",
    "albert": "bert:AlbertAdapter",
    "electra": "bert:ElectraAdapter",
    "distilbert": "distilbert:DistilBertAdapter",
    "mpnet": "mpnet:MPNetAdapter",
    "deberta": "deberta:DebertaAdapter",
    "deberta-v2": "deberta:DebertaV2Adapter",
    "modernbert": "modernbert:ModernBertAdapter",
}
SUPPORTED: tuple[str, ...] = tuple(FAMILIES)  # model types with an adapter

__all__ = ["FAMILIES", "HEAD_KINDS", "SUPPORTED", "TASK_HEAD_KINDS", "EncoderAdapter", "Layout",
           "adapter_class", "family_table", "head_kind_of", "require_surgery",
           "supports_surgery", "unsupported_error"]


def _model_type(model_or_config) -> str | None:
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "model_type", None)


def supports_surgery(model_or_config) -> bool:
    """Whether the model (or config) has a layer adapter: truncation, skipping, ablations."""
    return _model_type(model_or_config) in FAMILIES


def unsupported_error(model_or_config, needed_for: str = "surgery (truncation, skipping, "
                      "drop_top/freeze_bottom)") -> UnsupportedModelError:
    """The error for a model without an adapter: what is supported and how to add one."""
    kind = _model_type(model_or_config)
    what = type(model_or_config).__name__
    listed = "; ".join(f"{row['family']} ({', '.join(row['model_types'])})"
                       for row in family_table() if row["surgery"])
    return UnsupportedModelError(
        f"no layer adapter for model_type {kind!r} ({what}): {needed_for} needs one. "
        f"Supported families: {listed}. Studies that only read hidden states (fine-tuning, "
        f"similarity, probes, DirectProbe, geometry, out-of-domain) work without an adapter. "
        f"To add one: subclass EncoderAdapter from lib/layerscope/adapters/base.py (its "
        f"docstring lists the methods; lib/layerscope/adapters/distilbert.py is a short "
        f"example) and register the model_type in layerscope.adapters.FAMILIES")


def _load(target: str) -> type[EncoderAdapter]:
    module, name = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def adapter_class(model_or_config) -> type[EncoderAdapter]:
    """The adapter class for a model (or its config); UnsupportedModelError if none."""
    kind = _model_type(model_or_config)
    if kind not in FAMILIES:
        raise unsupported_error(model_or_config)
    return _load(FAMILIES[kind])


def require_surgery(model_or_config, needed_for: str, *, tuned_heads: bool = False,
                    head_kind: str = "sequence") -> type[EncoderAdapter]:
    """The adapter class, checked before any work: UnsupportedModelError saying that
    ``needed_for`` needs an adapter whose family evaluates ``head_kind`` heads (``HEAD_KINDS``;
    ``head_kind_of(task.kind)``), and, with ``tuned_heads``, one whose head of that kind has
    the form TUNED/TUNEDORIG retrain. The message names the family, the model type and the
    kind."""
    if not supports_surgery(model_or_config):
        raise unsupported_error(model_or_config, needed_for)
    cls = adapter_class(model_or_config)
    if head_kind not in HEAD_KINDS:
        raise UnsupportedModelError(f"head kind {head_kind!r}: use one of {HEAD_KINDS}")
    where = f"the {cls.family} adapter (model_type {_model_type(model_or_config)!r})"
    if head_kind not in cls.head_kinds:
        raise UnsupportedModelError(
            f"{needed_for} evaluates a {head_kind} head on every layer, and {where} has no "
            f"{head_kind} head (transformers has no such task model for the family); it "
            f"evaluates {', '.join(cls.head_kinds)} heads. Use another family for this task "
            f"(`layerscope models` lists them)")
    if tuned_heads and not cls.has_tuned_head(head_kind):
        form = ("trains TUNED/TUNEDORIG heads of the form act(x W1 + b1) W2 + b2 on the first "
                "token" if head_kind in ("sequence", "multiple_choice") else
                f"trains TUNED/TUNEDORIG {head_kind} heads as one linear layer")
        raise UnsupportedModelError(f"{needed_for} {form}, and the {head_kind} head of {where} "
                                    f"is not of that form")
    return cls


def _family_rows() -> list[dict]:
    """Families in registry order, model types grouped by adapter class (no imports)."""
    rows: dict[str, dict] = {}
    for kind, target in FAMILIES.items():
        rows.setdefault(target, {"target": target, "model_types": []})["model_types"].append(kind)
    for row in rows.values():
        module, name = row["target"].split(":")
        row["family"] = name.removesuffix("Adapter")
    return list(rows.values())


def family_table() -> list[dict]:
    """One row per adapter family, for a listing (``layerscope models``): ``family``,
    ``model_types``, ``module`` (file under lib/layerscope/adapters), ``hidden_states`` (True:
    studies that read states), ``surgery`` (truncation, skipping, drop_top), ``freeze_bottom``,
    ``heads`` (task heads the adapter evaluates on any layer), ``tuned_heads`` (TUNED/
    TUNEDORIG: the sequence head is dense+activation+linear on the first token),
    ``tuned_head_kinds`` (the head kinds whose TUNED/TUNEDORIG heads can be trained,
    ``EncoderAdapter.has_tuned_head``). A family whose module cannot be imported is listed
    with ``surgery`` False and the ``error``. The last row is every other model: hidden-state
    studies only."""
    out = []
    for row in _family_rows():
        module = row["target"].split(":")[0]
        entry = {"family": row["family"], "model_types": tuple(row["model_types"]),
                 "module": f"adapters/{module}.py", "hidden_states": True}
        try:
            cls = _load(row["target"])
        except (ImportError, AttributeError) as e:
            entry.update(surgery=False, freeze_bottom=False, heads=(), tuned_heads=False,
                         tuned_head_kinds=(), error=f"{type(e).__name__}: {e}")
        else:
            entry.update(family=cls.family, surgery=True, freeze_bottom=not cls.shared_blocks,
                         heads=tuple(cls.head_kinds),
                         tuned_heads=cls.has_first_token_head(),
                         tuned_head_kinds=tuple(k for k in cls.head_kinds
                                                if cls.has_tuned_head(k)))
        out.append(entry)
    out.append({"family": "any other", "model_types": ("*",), "module": "",
                "hidden_states": True, "surgery": False, "freeze_bottom": False, "heads": (),
                "tuned_heads": False, "tuned_head_kinds": ()})
    return out
