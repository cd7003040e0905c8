"""The result protocol every study follows (README: Layout), and the verdict rule.

``run_<study>(config)`` returns a frozen result with:

* ``figure()`` -> plotly figure (never shown here);
* ``findings()`` -> {claim id: {claim, numbers, interval, verdict}};
* ``verdict()`` -> the findings as readable lines;
* ``to_record()`` -> flat dict of scalars (config fields + headline numbers + one
  ``verdict.<claim>`` column per finding) for a sweep's results table;
* ``save(dir)`` -> HTML, PNG and JSON files.

A result holds cache keys, never absolute paths, so a result made on one machine (a Dask
worker) can be reloaded on another that shares the cache (``activations.load(key)``).

**The verdict rule.** A claim says an effect (a difference, usually) is above a threshold. It is
SUPPORTED only when the whole interval of the effect lies above it, NOT SUPPORTED when the
whole interval lies below, and INCONCLUSIVE when the interval straddles it. A claim whose
numbers are undefined (NaN cells, one seed where seeds are the unit) is UNDEFINED, with why.
"""

from __future__ import annotations

import dataclasses
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import cache, finetune
from ..errors import ConfigError

SUPPORTED = "SUPPORTED"
NOT_SUPPORTED = "NOT SUPPORTED"
INCONCLUSIVE = "INCONCLUSIVE"
UNDEFINED = "UNDEFINED"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, UNDEFINED)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def verdict_of(low: float, high: float, threshold: float = 0.0) -> str:
    """The verdict rule for "effect > threshold" given the effect's interval [low, high]."""
    if not (_finite(low) and _finite(high)):
        return UNDEFINED
    if low > threshold:
        return SUPPORTED
    if high < threshold:
        return NOT_SUPPORTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Interval:
    """An interval for the effect a claim is about.

    of: what the interval is for (e.g. "FT–FT minus ORIG–ORIG block score").
    method: how it was made (e.g. "95% percentile bootstrap over 1000 examples, 200 resamples").
    """

    estimate: float
    low: float
    high: float
    of: str
    method: str

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in dataclasses.asdict(self).items()}

    def text(self, digits: int = 3) -> str:
        f = f"{{:.{digits}f}}"
        if not (_finite(self.low) and _finite(self.high)):
            return f"{self.of} {f.format(self.estimate)} (no interval: {self.method})"
        return (f"{self.of} {f.format(self.estimate)}, [{f.format(self.low)}, "
                f"{f.format(self.high)}] ({self.method})")


def finding(claim: str, numbers: dict, interval: Interval | None, *, threshold: float = 0.0,
            verdict: str | None = None, why: str = "", summary: str = "") -> dict:
    """One entry of ``findings()``: the verdict follows from the interval unless given.

    ``summary``: the key numbers in words (printed by ``verdict_lines``), e.g. "FT–ORIG
    diagonal top 0.110 vs bottom 0.977"; all numbers are in ``numbers`` too.
    """
    if verdict is None:
        verdict = UNDEFINED if interval is None else verdict_of(interval.low, interval.high,
                                                                 threshold)
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r}; use one of {VERDICTS}")
    out = {"claim": claim, "numbers": {k: _clean(v) for k, v in numbers.items()},
           "interval": None if interval is None else interval.to_dict(),
           "threshold": threshold, "verdict": verdict}
    if why:
        out["why"] = why
    if summary:
        out["summary"] = summary
    return out


def undefined_finding(claim: str, why: str, numbers: dict | None = None,
                      summary: str = "") -> dict:
    return finding(claim, numbers or {}, None, verdict=UNDEFINED, why=why, summary=summary)


def _clean(v):
    """JSON-ready scalars: numpy numbers to Python, NaN/inf to None."""
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def verdict_lines(title: str, findings: dict) -> str:
    """Readable lines: "- <id>: VERDICT. <claim>. <interval>." (numbers in the JSON)."""
    lines = [title]
    for cid, f in findings.items():
        iv = f.get("interval")
        tail = ""
        if iv:
            tail = " " + Interval(**{k: (float("nan") if iv[k] is None and k in
                                         ("estimate", "low", "high") else iv[k])
                                     for k in ("estimate", "low", "high", "of", "method")}).text()
            tail += f"; threshold {f['threshold']:g}."
        if f.get("summary"):
            tail += f" {f['summary']}."
        if f.get("why"):
            tail += f" {f['why']}."
        lines.append(f"- {cid}: {f['verdict']}. {f['claim']}.{tail}")
    return "\n".join(lines)


def verdict_summary(findings: dict) -> str:
    """One line: the claim ids grouped by verdict, e.g. "SUPPORTED: a, b · INCONCLUSIVE: c"
    (what a widget shows above the figure; ``verdict_lines`` has the numbers)."""
    groups = {v: [cid for cid, f in findings.items() if f["verdict"] == v] for v in VERDICTS}
    return " · ".join(f"{v}: {', '.join(ids)}" for v, ids in groups.items() if ids)


def check_seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    """Every study config's seed check: one or more distinct fine-tuning seeds."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={seeds!r} must be one or more distinct seeds, e.g. (0,) or "
                          "(0, 1)")
    return seeds


def check_finetuned(finetuned, seeds: tuple[int, ...]) -> tuple[str, ...]:
    """Every study config's ``finetuned`` check: () (fine-tune one model per seed) or one
    already fine-tuned checkpoint (local folder or hub id) per seed, in the order of ``seeds``
    (a seed is then only the checkpoint's place: FT is the first, FT[2] the second)."""
    finetuned = tuple(str(f) for f in finetuned)  # papermill passes lists
    if finetuned and len(finetuned) != len(seeds):
        raise ConfigError(f"finetuned has {len(finetuned)} checkpoint(s) but seeds={seeds!r} "
                          f"has {len(seeds)}: give one checkpoint per seed, e.g. seeds="
                          f"{tuple(range(len(finetuned)))!r} for these")
    if len(set(finetuned)) != len(finetuned):
        raise ConfigError(f"finetuned={list(finetuned)!r} names a checkpoint twice: seeds would "
                          "compare a model with itself; give distinct checkpoints")
    return finetuned


def training_only(finetuned: tuple[str, ...], **settings) -> None:
    """Refuse study settings that need fine-tuning runs when the models come as checkpoints
    (``settings``: name -> value; falsy values are unset)."""
    given = [f"{k}={v!r}" for k, v in settings.items() if v]
    if finetuned and given:
        raise ConfigError(f"{', '.join(given)} need(s) fine-tuning runs, but finetuned= gives "
                          "already fine-tuned checkpoints and nothing is trained; leave "
                          f"{'it' if len(given) == 1 else 'them'} unset, or drop finetuned to "
                          "fine-tune here")


def seed_configs(config, *, model: str | None = None,
                 **extra) -> list[finetune.FinetuneConfig]:
    """One ``FinetuneConfig`` per seed of a study config (task, model, preset, seeds,
    max_steps, finetuned): each seed's checkpoint is its ``finetuned`` entry, or None (train
    it). ``model``: another model, always trained (``finetuned`` holds this config's);
    ``extra``: more FinetuneConfig fields for every seed (e.g. an ablation)."""
    ckpts = (None,) * len(config.seeds) if model else (config.finetuned
                                                        or (None,) * len(config.seeds))
    return [finetune.FinetuneConfig(task=config.task, model=model or config.model,
                                    preset=config.preset, seed=s, max_steps=config.max_steps,
                                    checkpoint=c, **extra)
            for s, c in zip(config.seeds, ckpts, strict=True)]


def flat_config(config) -> dict[str, Any]:
    """Config fields as scalars (tuples/lists joined with ',', None kept) for a results table."""
    out = {}
    for k, v in dataclasses.asdict(config).items():
        if isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        out[k] = v
    return out


class StudyResult(ABC):
    """Base of every study's result: implements ``verdict``, ``to_record`` and ``save``.

    A subclass is a frozen dataclass with a ``config`` field. It sets ``study`` (file stem and
    record column), and implements ``figure()``,
    ``findings()``, ``title()``, ``headline()`` (the scalars a results table shows),
    ``png(path)`` (the static twin of ``figure()``) and ``to_dict()`` (JSON-ready data); it
    may add more figures with ``extra_figures()``.
    """

    study: ClassVar[str] = "study"
    config: Any  # the study's frozen Config dataclass (a field of the subclass)

    @abstractmethod
    def figure(self): ...

    @abstractmethod
    def findings(self) -> dict: ...

    @abstractmethod
    def title(self) -> str: ...

    @abstractmethod
    def png(self, path: Path) -> Path: ...

    @abstractmethod
    def to_dict(self) -> dict: ...

    def headline(self) -> dict[str, float]:
        return {}

    def extra_figures(self) -> dict:
        """{file stem: (plotly figure, png writer or None)} saved beside the main figure."""
        return {}

    def verdict(self) -> str:
        return verdict_lines(self.title(), self.findings())

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"study": self.study, **flat_config(self.config)}
        rec.update({k: _clean(v) for k, v in self.headline().items()})
        for cid, f in self.findings().items():
            rec[f"verdict.{cid}"] = f["verdict"]
        return rec

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``<study>.html``, ``<study>.png``, ``<study>.json``, ``findings.txt`` (and
        extra figures) into ``out_dir``; returns {kind: path}.

        The HTML figures load plotly.js from one local copy by a relative path (``plotlyjs``
        in the returned dict): the sweep folder's inside a sweep, else one written into
        ``out_dir`` (``plots.html``). The folder opens from disk with no network.
        """
        from ..plots.html import plotlyjs_src  # plotly: only when figures are written

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"html": out / f"{self.study}.html", "json": out / f"{self.study}.json",
                 "txt": out / "findings.txt"}
        src = plotlyjs_src(out)
        files["plotlyjs"] = (out / src).resolve()
        cache.atomic_write_text(files["html"], self.figure().to_html(include_plotlyjs=src))
        files["png"] = self.png(out / f"{self.study}.png")
        for stem, (fig, png) in self.extra_figures().items():
            files[f"{stem}_html"] = out / f"{stem}.html"
            cache.atomic_write_text(files[f"{stem}_html"], fig.to_html(include_plotlyjs=src))
            if png is not None:
                files[f"{stem}_png"] = png(out / f"{stem}.png")
        data = {"study": self.study, "record": self.to_record(), "findings": self.findings(),
                **self.to_dict()}
        cache.atomic_write_text(files["json"], json.dumps(_clean(data), indent=1, default=str))
        cache.atomic_write_text(files["txt"], self.verdict() + "\n")
        return files
