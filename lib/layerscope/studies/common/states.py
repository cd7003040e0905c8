"""Model states: which weights of a model a representation set comes from.

A study compares one model's representations in several states: untuned (ORIG), fine-tuned
(FT, one run per seed) and the snapshots of a fine-tuning run at chosen steps. A ``State``
names one; its ``key`` is the string results save and index by ("orig", "ft", "step-38",
"ft-seed1"), so saved results read the same as before these objects existed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ...errors import ConfigError

ORIG, FT = "orig", "ft"
_STEP = re.compile(r"step-(\d+)")
_SEED = re.compile(r"ft-seed(-?\d+)")


@dataclass(frozen=True)
class State:
    """One state of ``model``.

    weights: "orig" (the pretrained weights) or "ft" (a fine-tuning run's).
    seed: "ft": the run's fine-tuning seed. step: "ft": a snapshot at this training step
    (None: the run's final weights). replicate: "ft": a run of a seed after the study's first
    (the first is the one traced and compared in every table; the others replicate it).
    """

    model: str
    weights: Literal["orig", "ft"] = ORIG
    seed: int | None = None
    step: int | None = None
    replicate: bool = False

    @classmethod
    def orig(cls, model: str) -> State:
        return cls(model)

    @classmethod
    def ft(cls, model: str, seed: int, step: int | None = None,
           replicate: bool = False) -> State:
        return cls(model, FT, int(seed), None if step is None else int(step), replicate)

    def __post_init__(self):
        if self.weights not in (ORIG, FT):
            raise ConfigError(f"unknown weights {self.weights!r}; valid: {ORIG!r}, {FT!r}")
        if self.weights == ORIG and (self.seed is not None or self.step is not None
                                     or self.replicate):
            raise ConfigError("the untuned state has no fine-tuning seed, step or replicate")
        if self.weights == FT and self.seed is None:
            raise ConfigError("a fine-tuned state needs its fine-tuning seed")
        if self.replicate and self.step is not None:
            raise ConfigError("replicate runs are not traced: a replicate state has no step")

    @property
    def key(self) -> str:
        """The saved name: "orig", "ft" (the first seed's final model), "step-S" (its
        snapshot at step S), "ft-seedS" (the final model of replicate seed S)."""
        if self.weights == ORIG:
            return ORIG
        if self.step is not None:
            return f"step-{self.step}"
        return f"ft-seed{self.seed}" if self.replicate else FT

    label = key

    @classmethod
    def from_key(cls, key: str, model: str, seed: int) -> State:
        """The inverse of ``key`` (``seed``: the first fine-tuning seed, which "ft" and
        "step-S" belong to)."""
        if key == ORIG:
            return cls.orig(model)
        if key == FT:
            return cls.ft(model, seed)
        if m := _STEP.fullmatch(key):
            return cls.ft(model, seed, step=int(m.group(1)))
        if m := _SEED.fullmatch(key):
            return cls.ft(model, int(m.group(1)), replicate=True)
        raise ConfigError(f"unknown model state {key!r}; valid: 'orig', 'ft', 'step-S', "
                          "'ft-seedS'")

    def training_step(self, total_steps: int) -> int:
        """Where this state sits in training: 0 (ORIG), its step, or ``total_steps`` (FT)."""
        if self.weights == ORIG:
            return 0
        return total_steps if self.step is None else self.step


def trace(model: str, seed: int, steps: Iterable[int]) -> tuple[State, ...]:
    """ORIG, the snapshots of the ``seed`` run at ``steps``, then its final model (FT)."""
    return (State.orig(model), *(State.ft(model, seed, step=s) for s in steps),
            State.ft(model, seed))


def trace_keys(steps: Iterable[int]) -> list[str]:
    """The keys of ``trace``: "orig", "step-S"..., "ft"."""
    return [st.key for st in trace("", 0, steps)]
