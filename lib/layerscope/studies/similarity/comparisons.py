"""The one table of comparisons of study 02 (Phang et al. 2021 §3, Fig. 1 and Fig. 7).

Each comparison names the representation set of its rows and of its columns (see ``run``:
"orig" untuned, "ft" first fine-tuning seed, "ft2" second seed, "self"/"cross" the two models
of a cross-model comparison), its title, and the axis names of its heatmap. Everything that
differs by comparison reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    name: str
    rows: str  # representation set along the rows
    cols: str  # representation set along the columns
    title: str
    row_axis: str  # format string over the config's fields (+ seed1, seed2, STATE)
    col_axis: str
    phang_panel: bool  # one of the four panels of Phang et al.'s Fig. 1

    @property
    def symmetric(self) -> bool:
        return self.rows == self.cols

    def axes(self, config) -> tuple[str, str]:
        fields = {"model": config.model, "cross_model": config.cross_model,
                  "STATE": config.cross_state.upper(), "seed1": config.seeds[0],
                  "seed2": config.seeds[-1]}
        return self.row_axis.format(**fields), self.col_axis.format(**fields)


COMPARISONS: dict[str, Comparison] = {c.name: c for c in (
    Comparison("orig_orig", "orig", "orig", "ORIG–ORIG", "ORIG", "ORIG", True),
    Comparison("ft_orig", "ft", "orig", "FT–ORIG", "FT", "ORIG", True),
    Comparison("ft_ft", "ft", "ft", "FT–FT", "FT", "FT", True),
    Comparison("ft1_ft2", "ft", "ft2", "FT[1]–FT[2]", "FT[1] seed {seed1}", "FT[2] seed {seed2}",
               True),
    Comparison("cross", "self", "cross", "cross-model", "{model} {STATE}",
               "{cross_model} {STATE}", False),
)}
COMPARISON_NAMES: tuple[str, ...] = tuple(COMPARISONS)
PHANG_PANELS: tuple[str, ...] = tuple(k for k, c in COMPARISONS.items() if c.phang_panel)
