"""Silence the expected noise of transformers, datasets and huggingface_hub for a block.

Inside ``quiet_libraries()``: no progress bars of the libraries ("Map", "Loading weights",
"Writing model shards", hub downloads), no load report of a model whose only new weights are
its task head (transformers 5's "LOAD REPORT" table, transformers 4's "newly initialized"
message), no Trainer note on checkpoint ordering, no pyarrow FutureWarning from ``datasets``'
``sort()``, no torch note that pinned memory needs a GPU. Everything else still shows: other
warnings (Python's and the libraries' logs) and a load report that lists anything beyond a new
head (missing encoder weights, size mismatches). The previous settings come back after.

The widget explorers use it around each run (their output area is for the figure); the command
line can use it too.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

import datasets
import huggingface_hub.utils as hub_utils
import transformers as tr

# Loggers that emit the load report (transformers passes its modeling_utils logger; the
# report module's own is the fallback) and the Trainer's checkpoint-rotation note.
_LOGGERS = ("transformers.modeling_utils", "transformers.utils.loading_report",
            "transformers.trainer_utils")
# The Trainer orders checkpoints by step number when they were saved within a second of each
# other (short runs): what it should do anyway, said as a warning.
_HARMLESS = ("mtime may not be reliable on this filesystem",)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A freshly initialised task head (and BERT's pooler, absent from some checkpoints), by key.
_HEAD_KEY = re.compile(r"^(\w+\.)?(classifier|pooler|qa_outputs|score)\b")


def expected_load_report(message: str) -> bool:
    """True for a load report that says only "new task head" (missing head weights) and
    "left out" (checkpoint weights the model does not use, e.g. a pretraining head)."""
    text = _ANSI.sub("", message)
    old = re.search(r"are newly initialized: \[(.*?)\]", text)  # transformers 4's wording
    if old:
        return all(_HEAD_KEY.match(k.strip(" '\"")) for k in old.group(1).split(","))
    if "LOAD REPORT" not in text:
        return False
    rows = [[c.strip() for c in ln.split("|")] for ln in text.splitlines() if "|" in ln]
    rows = [r for r in rows if len(r) >= 2 and r[1] != "Status"]  # the header row
    return bool(rows) and all(status == "UNEXPECTED" or (status == "MISSING"
                                                         and _HEAD_KEY.match(key))
                              for key, status, *_ in rows)


class _DropExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith(_HARMLESS) or expected_load_report(msg))


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Within the block: the libraries' expected noise is off (see the module docstring)."""
    bars = (tr.logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
            datasets.utils.are_progress_bars_disabled())
    drop = _DropExpected()
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    with warnings.catch_warnings():  # restores the filters on exit
        # datasets' sort() builds pyarrow SortOptions the deprecated way (pyarrow >= 25)
        warnings.filterwarnings("ignore", message="Specifying null_placement",
                                category=FutureWarning, module="pyarrow")
        # the Trainer asks for pinned memory by default (prediction runs); without a GPU
        # torch says it does without, on every run
        warnings.filterwarnings("ignore", message="'pin_memory' argument is set as true but "
                                "no accelerator is found", category=UserWarning)
        _set_bars(transformers_on=False, hub_off=True, datasets_off=True)
        for lg in loggers:
            lg.addFilter(drop)
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeFilter(drop)
            _set_bars(*bars)


def _set_bars(transformers_on: bool, hub_off: bool, datasets_off: bool) -> None:
    # The HF_*_DISABLE_PROGRESS_BARS variables win over these calls, which then warn that they
    # do; that warning is no news to whoever set the variable.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (tr.logging.enable_progress_bar if transformers_on else tr.logging.disable_progress_bar)()
        # after transformers: its enable/disable sets the hub's bars too
        (hub_utils.disable_progress_bars if hub_off else hub_utils.enable_progress_bars)()
        (datasets.disable_progress_bars if datasets_off else datasets.enable_progress_bars)()
