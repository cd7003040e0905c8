"""Rendering of the gallery pages: Jinja2 templates (``resources/templates``), autoescaped.

The pages work opened from disk (``file://``) with no server and no network: plotly.js is one
local file beside the page (``plots.html.write_plotlyjs``, referenced by a relative ``src``),
every figure is inline JSON drawn when it scrolls into view (a sweep can hold hundreds of
figures), and the table sorts on a header click and filters on the words typed above it.

Every value that comes from a run (model and task names, parameters, errors, findings) reaches
the page through a template variable, so autoescaping makes ``<``, ``&`` and quotes text, never
markup. Figure JSON goes into ``<script type="application/json">``, where entities are not
decoded: there ``script_json`` writes ``<``, ``>`` and ``&`` as JSON escapes instead, so no
string in a figure can end the script element.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from urllib.parse import quote

from .. import paths

TEMPLATES = paths.RESOURCES / "templates"
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                  "\u2029": "\\u2029"}


def script_json(text: str) -> str:
    """JSON text made safe inside a ``<script>`` element (same JSON value once parsed: these
    characters only occur inside JSON strings, where the escapes mean the same). The template
    marks the result ``safe``: HTML escaping would corrupt it, as entities are not decoded
    inside a script element."""
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_UNSAFE[m.group()], str(text))


@cache
def environment():
    """The templates' Jinja2 environment: autoescape on for every template, undefined names
    are errors (a typo in a template fails the test suite, not silently the page)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["script_json"] = script_json
    return env


def _asset(name: str) -> str:
    """Our own CSS or JS beside the templates (trusted: the page shell marks it ``safe``)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(template: str, *, title: str, plotlyjs_src: str | None = None, **context) -> str:
    """A full page from ``template`` (``gallery.html.j2``, ``index.html.j2``)."""
    return environment().get_template(template).render(
        title=title, style=_asset("gallery.css"), script=_asset("gallery.js"),
        plotlyjs_src=plotlyjs_src, **context)


def href(*parts: str) -> str:
    """A relative link to ``parts`` joined by '/', each part percent-encoded (a notebook
    entry or key with a space, '#' or '?' still links to its file)."""
    return "/".join(quote(str(p), safe="@=,+") for p in parts)


def _id_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,=+@-]+", "_", str(text))


def run_anchors(runs) -> dict[tuple[str, str], str]:
    """(notebook, key) -> the id of the run's card, e.g. ``run-03_truncation/default-5cf52afb``.

    Runs are told apart by notebook *and* key: notebooks 03 and 04 run with the same
    parameters have the same key, and each row must link to its own card."""
    out: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for r in runs:
        base = f"run-{_id_part(r.notebook)}/{_id_part(r.key)}"
        anchor, n = base, 1
        while anchor in taken:  # two names that differ only in characters replaced above
            n += 1
            anchor = f"{base}~{n}"
        taken.add(anchor)
        out[(r.notebook, r.key)] = anchor
    return out


def cell_text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table_rows(rows: list[dict], columns: list[str],
               anchors: dict[tuple[str, str], str]) -> list[list[dict]]:
    """The results table's cells: {text, cls, v (full value of a float, for sorting), href};
    the notebook and key cells link to the run's own card (by notebook and key)."""
    out = []
    for r in rows:
        anchor = anchors.get((r.get("notebook"), r.get("key")))
        cells = []
        for c in columns:
            v = r.get(c)
            text = cell_text(v)
            cls = None
            if c == "status":
                cls = text
            elif c.startswith("verdict.") and text:
                cls = text.replace(" ", "_")
            cells.append({"text": text, "cls": cls,
                          "v": repr(v) if isinstance(v, float) else None,
                          "href": f"#{anchor}" if anchor and c in ("notebook", "key") else None})
        out.append(cells)
    return out


def param_items(params: dict) -> list[tuple[str, str]]:
    """A run's parameters as (name, text): strings as they are, other values as JSON."""
    return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in params.items()]


def plot_figure(fig_id: str, spec_json: str, caption: str) -> dict:
    """A figure drawn by the page script from its plotly JSON (``{"data", "layout"}``)."""
    return {"id": fig_id, "spec": spec_json, "caption": caption, "src": None}


def iframe_figure(src: str, caption: str) -> dict:
    """A saved figure file shown in an iframe (where its plotly JSON cannot be read)."""
    return {"id": None, "spec": None, "caption": caption, "src": src}
