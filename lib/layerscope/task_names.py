"""Names of user tasks that resolve again in any process: the data's place plus the options
given, as a query.

``/data/reviews.csv?kind=regression&columns=text:review,label:stars`` is
``TaskSpec.from_file("/data/reviews.csv", kind="regression", columns={"text": "review",
"label": "stars"})``; ``hub:org/name@rev?config=x`` a hub dataset. Options come in the order
of ``QUERY_KEYS``; lists are comma-separated, a mapping ``ours:theirs`` pairs (several choice
columns joined by ``+``), and every name or value percent-quoted (``urllib.parse.quote``), so
a column called ``stars:+&?`` survives. Configs, results and sweeps keep the name; a notebook
or the command line may write one too.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from .errors import ConfigError

# the options a name's query holds, in this order
QUERY_KEYS = ("config", "format", "kind", "column", "columns", "label_names", "splits",
              "split_seed", "split_fractions", "metrics")
FILE_KEYS = tuple(k for k in QUERY_KEYS if k != "config")  # from_file's
DATASET_KEYS = tuple(k for k in QUERY_KEYS if k not in ("format", "column"))  # from_dataset's


def check_keys(text: str, options: dict, valid: tuple[str, ...]) -> None:
    wrong = [k for k in options if k not in valid]
    if wrong:
        raise ConfigError(f"task {text!r}: option {wrong[0]!r} does not apply to this data; "
                          f"its options: {', '.join(valid)}")


def _q(value) -> str:
    return urllib.parse.quote(str(value), safe="")


def task_name(base: str, options: dict) -> str:
    """``base`` with the given options as a query (``?kind=regression&columns=text:review``);
    ``base`` alone when none are given. ``parse_name`` reads it back."""
    parts = []
    for k in QUERY_KEYS:
        v = options.get(k)
        if v is None:
            continue
        if k == "columns":
            v = ",".join(f"{ours}:" + "+".join(_q(c) for c in ((t,) if isinstance(t, str) else t))
                         for ours, t in v)
        elif k == "splits":
            v = ",".join(f"{ours}:{_q(t)}" for ours, t in v)
        elif k in ("label_names", "metrics"):
            v = ",".join(_q(x) for x in ((v,) if isinstance(v, str) else v))
        elif k == "split_fractions":
            v = ",".join(repr(float(f)) for f in v)
        else:
            v = _q(v)
        parts.append(f"{k}={v}")
    return base + ("?" + "&".join(parts) if parts else "")


def parse_name(text: str) -> tuple[str, dict]:
    """(base, keyword options) of a name ``task_name`` wrote; a path that exists as given
    (even with a '?') is all base."""
    if "?" not in text or Path(text).expanduser().exists():
        return text, {}
    base, _, query = text.rpartition("?")
    out: dict = {}
    u = urllib.parse.unquote
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if not sep or key not in QUERY_KEYS:
            raise ConfigError(f"task {text!r}: {part!r} after '?' is not an option; options: "
                              f"{', '.join(f'{k}=...' for k in QUERY_KEYS)}")
        try:
            if key == "columns":
                out[key] = {}
                for item in value.split(","):
                    ours, _, theirs = item.partition(":")
                    cols = [u(c) for c in theirs.split("+")]
                    out[key][ours] = cols[0] if len(cols) == 1 else cols
            elif key == "splits":
                out[key] = dict((o, u(t)) for o, _, t in (i.partition(":")
                                                          for i in value.split(",")))
            elif key in ("label_names", "metrics"):
                out[key] = [u(x) for x in value.split(",")]
            elif key == "split_seed":
                out[key] = int(value)
            elif key == "split_fractions":
                out[key] = [float(f) for f in value.split(",")]
            else:
                out[key] = u(value)
        except ValueError as e:
            raise ConfigError(f"task {text!r}: cannot read {part!r} ({e})") from e
    return base, out
