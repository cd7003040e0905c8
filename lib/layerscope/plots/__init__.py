"""Generic figure builders: layer x layer panels (grey undefined cells), curves, PNG twins;
figure HTML files that share one local copy of plotly.js (``html``).

Every plotly builder returns a ``go.Figure`` and never calls ``.show()``; every ``*_png`` twin
draws the same thing with matplotlib (no browser needed, unlike plotly's kaleido export) and
never touches pyplot's global state, so it is safe inside a Jupyter kernel. Studies build their
figures from these; nothing here knows about a study.

Layer axes follow the package convention: "emb" is hidden state 0 (the embedding output), "i"
the output of block i; matrix rows run top to bottom.
"""

from .curves import Line, learning_curves, lines_figure, lines_png, metric_bars, per_layer_lines
from .html import figure_html, write_figure_html, write_plotlyjs
from .layers import (
           COLORSCALE,
           UNDEFINED_GREY,
           Panel,
           grid_figure,
           layer_labels,
           panels_figure,
           panels_png,
)

__all__ = ["Line", "learning_curves", "lines_figure", "lines_png", "metric_bars",
           "per_layer_lines", "COLORSCALE", "UNDEFINED_GREY", "Panel", "grid_figure",
           "layer_labels", "panels_figure", "panels_png", "figure_html", "write_figure_html",
           "write_plotlyjs"]
