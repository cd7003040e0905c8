from collections import Counter

import pytest

from layerscope import offline_data
from layerscope.brown_tags import UNIVERSAL_TAGS, base_table, to_universal


@pytest.mark.parametrize("tag,expected", [
    ("nn", "NOUN"), ("nn-tl", "NOUN"), ("np$", "NOUN"), ("nns-hl", "NOUN"), ("vbd", "VERB"),
    ("md*", "VERB"), ("do*", "VERB"), ("ppss+md", "PRON"), ("pps+bez", "PRON"), ("at", "DET"),
    ("in-tl", "ADP"), ("cs", "ADP"), ("jjr", "ADJ"), ("od", "ADJ"), ("rb", "ADV"), ("*", "ADV"),
    ("cd", "NUM"), ("cc", "CONJ"), ("to", "PRT"), ("rp", "PRT"), (".", "."), ("``", "."),
    ("fw-nn", "X"), ("fw-in+at-tl", "X"), ("uh", "X"), ("pp$", "PRON"), ("wdt+bez", "DET"),
])
def test_known_mappings(tag, expected):
    assert to_universal(tag) == expected


def test_table_values_are_universal_and_unknown_tags_fail():
    assert set(base_table().values()) == set(UNIVERSAL_TAGS)
    with pytest.raises(KeyError, match="zzz"):
        to_universal("zzz")


def test_whole_corpus_maps_to_twelve_tags():
    """Every tag in the shipped Brown corpus maps, and the tag distribution is plausible."""
    counts = Counter()
    for row in offline_data.brown_rows():
        counts.update(to_universal(t) for t in row["brown_tags"])
    assert set(counts) == set(UNIVERSAL_TAGS)
    assert sum(counts.values()) == 1_161_192
    assert counts.most_common(1)[0][0] == "NOUN"
    assert counts["X"] < 0.005 * sum(counts.values())
