"""Map Brown corpus tags to the 12 universal tags (Petrov et al. 2012).

The base-tag table ships as ``resources/brown_to_universal.tsv`` (with the reduction rules and
our choices written at its top); this module applies the rules to full Brown tags such as
``nn-tl``, ``fw-in+at-tl``, ``ppss+md``, ``do*`` or ``np$``.
"""

from __future__ import annotations

from functools import lru_cache

from .paths import RESOURCES

UNIVERSAL_TAGS: tuple[str, ...] = (
    "NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X",
)


@lru_cache(maxsize=1)
def base_table() -> dict[str, str]:
    """Brown base tag -> universal tag, read from the shipped TSV."""
    table: dict[str, str] = {}
    for line in (RESOURCES / "brown_to_universal.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        base, universal = line.split("\t")
        if universal not in UNIVERSAL_TAGS:
            raise ValueError(f"brown_to_universal.tsv maps {base!r} to unknown tag {universal!r}")
        table[base] = universal
    return table


@lru_cache(maxsize=4096)
def to_universal(tag: str) -> str:
    """Universal tag for one full Brown tag; raises KeyError for a tag the table cannot reduce."""
    t = tag.lower()
    for suffix in ("-nc", "-hl", "-tl", "-t"):  # "-t" occurs as a truncated "-tl" in the corpus
        while t.endswith(suffix) and len(t) > len(suffix):
            t = t[: -len(suffix)]
    if t.startswith("fw-"):
        return "X"
    table = base_table()
    if t in table:
        return table[t]
    if "+" in t:  # contraction (e.g. ppss+md "I'll"): the first part decides, as in most maps
        return to_universal(t.split("+", 1)[0])
    if t.endswith("*") and t[:-1] in table:  # negated auxiliary: didn't -> dod*
        return table[t[:-1]]
    if t.endswith("$") and t[:-1] in table:  # possessive noun/numeral/adverb: nn$ -> nn
        return table[t[:-1]]
    raise KeyError(f"Brown tag {tag!r} has no universal mapping; add its base to "
                   f"resources/brown_to_universal.tsv")
