"""The project's error types, and one wording for "unknown X".

Every error a user can cause names the offending value and the fix. The types subclass the
built-in ones code already catches (``ValueError``, ``RuntimeError``), so ``except ValueError``
keeps working; the command line prints any ``LayerscopeError`` as one clean line.
"""

from __future__ import annotations

from collections.abc import Iterable


class LayerscopeError(Exception):
    """Base of every error layerscope raises on purpose (bad input, missing asset, ...)."""


class ConfigError(LayerscopeError, ValueError):
    """A value given by the user is invalid: the message names it and the valid choices."""


class UndefinedError(ConfigError):
    """A measure is undefined for these inputs (e.g. a layer constant across examples)."""


class CacheError(LayerscopeError, RuntimeError):
    """A cache entry a result refers to is missing or damaged (the message says how to redo it)."""


class MissingHeadError(ConfigError, TypeError):
    """The model has no task head (a bare ``AutoModel``): there are no logits to compute."""


class UnsupportedModelError(ConfigError):
    """The model's family has no layer adapter (``layerscope.adapters``), which surgery needs;
    the message names the supported families and how to add one."""


class HubUnavailableError(LayerscopeError, RuntimeError):
    """A task or model needs the Hugging Face hub, which could not be reached."""


class AssetError(LayerscopeError, RuntimeError):
    """An offline asset could not be fetched or failed its sha256 check."""


def unknown(what: str, value, valid: Iterable, hint: str = "") -> ConfigError:
    """``ConfigError("unknown <what> '<value>'; valid values: 'a', 'b'. <hint>")``."""
    listed = ", ".join(repr(v) for v in valid)
    return ConfigError(f"unknown {what} {value!r}; valid values: {listed}"
                       + (f". {hint}" if hint else ""))


def check_choice(value, valid: Iterable, what: str, hint: str = ""):
    """``value`` if it is one of ``valid``, else the ``unknown`` error."""
    valid = tuple(valid)
    if value not in valid:
        raise unknown(what, value, valid, hint)
    return value
