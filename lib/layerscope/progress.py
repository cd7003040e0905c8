"""One live progress line for long runs: what runs now, step k of N.

Library code says what it does (``phase``, ``report``, ``counted``); nothing happens unless a
caller installed a reporter with ``reporting(fn)``, as the widget explorers do (``ui.explorer``
writes each line into its status widget, with the elapsed time). A sweep run's kernel has
``LAYERSCOPE_PROGRESS_FILE`` set instead: the latest line is written to that file, which the
main job's heartbeat prints. Notebooks' static cells and tests install neither, so the calls
cost one context-variable lookup.

Two levels, because a study's phase ("similarity: representations: ft (2 of 4)") lasts long
and the work inside it counts its own steps: ``phase(what)`` names the current phase until the
next one; ``report(what, k, n)`` shows under it as ``"<phase> · <what> k of n"``.
``measures/`` stays free of this (arrays in, arrays out): callers report around it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TypeVar

import transformers as tr

T = TypeVar("T")


class _Line:
    def __init__(self, fn: Callable[[str, int | None, int | None], None]):
        self.fn, self.phase = fn, ""


# A context variable, not a global: two explorers (or a test) never write each other's line.
_current: ContextVar[_Line | None] = ContextVar("layerscope_progress", default=None)

# Sweep runs (batch/runner.py) name a file here: with no reporter installed, the latest line
# goes there, and the main job's heartbeat reads it ("fine-tuning ...: step 37 of 150").
FILE_ENV = "LAYERSCOPE_PROGRESS_FILE"


class _FileLine(_Line):
    def __init__(self, path: str):
        super().__init__(self._write)
        self.path, self.last = path, 0.0

    def _write(self, text: str, k: int | None, n: int | None) -> None:
        now = time.monotonic()
        if k is not None and k != n and now - self.last < 1.0:
            return  # counts move fast: at most one write a second (phases always)
        self.last = now
        try:
            with open(self.path, "w") as f:
                f.write(text)
        except OSError:
            pass  # progress is a courtesy: never fail a run over it


_file_line: _FileLine | None = None


def _line() -> _Line | None:
    """The installed reporter, else the sweep's progress file (if the run names one)."""
    global _file_line
    line = _current.get()
    if line is None and os.environ.get(FILE_ENV):
        if _file_line is None or _file_line.path != os.environ[FILE_ENV]:
            _file_line = _FileLine(os.environ[FILE_ENV])
        line = _file_line
    return line


@contextlib.contextmanager
def reporting(fn: Callable[[str, int | None, int | None], None]) -> Iterator[None]:
    """Inside the block, progress goes to ``fn(line, k, n)``: ``line`` is the whole text (k of
    n included), ``k``/``n`` the step counts when the report has them (else None)."""
    token = _current.set(_Line(fn))
    try:
        yield
    finally:
        _current.reset(token)


def phase(what: str) -> None:
    """Name the phase now running (reports below show under it until the next phase)."""
    line = _line()
    if line is not None:
        line.phase = what
        line.fn(what, None, None)


def report(what: str, k: int | None = None, n: int | None = None) -> None:
    """Say what runs now, e.g. ``report("fine-tuning x on y, seed 0: step", 37, 150)``."""
    line = _line()
    if line is None:
        return
    text = what if k is None else f"{what} {k} of {n}" if n else f"{what} {k}"
    line.fn(f"{line.phase} · {text}" if line.phase else text, k, n)


def counted(items: Iterable[T], what: str, n: int | None = None) -> Iterator[T]:
    """``items`` unchanged, reporting ``what k of n`` before each (like a progress bar)."""
    if n is None:
        n = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    for k, item in enumerate(items, 1):
        report(what, k, n)
        yield item


def logger(verbose: bool) -> Callable[[str], None]:
    """A study's ``log``: prints its ``"[study] what"`` lines when verbose (as before) and
    always makes them the phase, as ``"study: what"``, so the phases reuse the log's words."""

    def log(msg: str) -> None:
        if verbose:
            print(msg)
        phase(re.sub(r"^\[(\w+)\] ", r"\1: ", msg))

    return log


class TrainerSteps(tr.TrainerCallback):
    """Trainer steps as reports: ``"<what>: step k of N"`` (N = the run's max_steps), which
    replaces the Trainer's progress bar inside the explorers (its notebook bar freezes in an
    Output widget: its redraws are display updates that the widget does not follow)."""

    def __init__(self, what: str):
        self.what = what

    def on_train_begin(self, args, state, control, **kw):
        report(f"{self.what}: step", state.global_step, state.max_steps)

    def on_step_end(self, args, state, control, **kw):
        report(f"{self.what}: step", state.global_step, state.max_steps)

    def on_train_end(self, args, state, control, **kw):
        report(f"{self.what}: evaluating and saving")
