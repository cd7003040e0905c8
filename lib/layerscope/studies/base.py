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

from .. import cache, devices, finetune
from ..errors import ConfigError
from ..tasks import ResolvedTask, TaskSpec

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


def verdicts_of(findings: dict) -> dict[str, str | None]:
    """Claim id -> its verdict (None for an entry that is no finding)."""
    return {cid: f.get("verdict") if isinstance(f, dict) else None
            for cid, f in findings.items()}


def verdict_mismatches(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """(claim id, a's verdict, b's verdict) where two claim id -> verdict maps disagree, by
    claim id (a claim one side lacks counts as None there)."""
    return [(cid, a.get(cid), b.get(cid)) for cid in sorted(set(a) | set(b))
            if a.get(cid) != b.get(cid)]


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
    return [finetune.FinetuneConfig(task=config.task_spec, model=model or config.model,
                                    preset=config.preset, seed=s, max_steps=config.max_steps,
                                    checkpoint=c, device=config.device, **extra)
            for s, c in zip(config.seeds, ckpts, strict=True)]


CHECKPOINT_STEPS = """checkpoint_steps: fine-tuning steps of the first seed whose saved
    snapshots the study measures (02: each layer's drift from its untuned self; 05: the
    geometry traced over training), kept sorted and distinct; (): none; None: the main job's
    snapshots (``finetune.trace_steps``). They need a training run: refused with
    ``finetuned`` (None then means none)."""


@dataclass(frozen=True)
class StudyConfig(ResolvedTask):
    """The fields and checks every study config shares; each study adds only its own fields
    (and redeclares a shared one where its default differs). Every field is a literal, so a
    papermill parameters cell, a sweep grid or the command line can give it
    (``from_params``).

    Attributes:
        task, model, preset, max_steps: what is fine-tuned (``finetune.FinetuneConfig``;
            ``max_steps`` None: the preset's). ``task``: a name or a ``TaskSpec``, resolved
            once into ``task_spec`` (``tasks.ResolvedTask``).
        seeds: fine-tuning seeds, distinct; the first is "FT".
        finetuned: already fine-tuned checkpoints (local folders or hub ids), one per seed in
            the order of ``seeds``, used instead of training; ``model`` is the base they came
            from. (): fine-tune here. Settings that need training runs are refused with them.
        max_length: tokens per example (None: the preset's, which is what makes a study's
            full model reproduce ``finetune.predictions``).
        seed: seeds the example subsets, the bootstrap and whatever else the study draws.
        n_boot: bootstrap resamples behind every interval (at least 2).
        device: where the models run (``devices.resolve_device``): auto (CUDA, then MPS, then
            the CPU), cpu, cuda, cuda:<index>, mps. Checked when the config is built, resolved
            when it runs; the result records the resolved device (``devices.device_record``).
            Fine-tuning runs there too; the cache keys do not depend on it.
    """

    task: str | TaskSpec = "movies"
    model: str = "minilm-l6"
    preset: str = "demo"
    seeds: tuple[int, ...] = (0,)
    finetuned: tuple[str, ...] = ()
    max_steps: int | None = None
    max_length: int | None = None
    seed: int = 0
    n_boot: int = 200
    device: str = "auto"

    # fields given as lists by papermill/YAML, kept as tuples of int / str (besides seeds)
    INT_TUPLES: ClassVar[tuple[str, ...]] = ()
    STR_TUPLES: ClassVar[tuple[str, ...]] = ()
    # fields that need fine-tuning runs: refused (when set) with ``finetuned``
    NEEDS_TRAINING: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        self._resolve_task()
        for name in ("seeds", *self.INT_TUPLES):  # papermill passes lists
            object.__setattr__(self, name, tuple(int(s) for s in getattr(self, name)))
        for name in self.STR_TUPLES:  # None stays None where the study gives it a meaning
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(str(s) for s in getattr(self, name)))
        if getattr(self, "checkpoint_steps", None) is not None:
            object.__setattr__(self, "checkpoint_steps",
                               tuple(sorted({int(s) for s in self.checkpoint_steps})))
        check_seeds(self.seeds)
        object.__setattr__(self, "finetuned", check_finetuned(self.finetuned, self.seeds))
        training_only(self.finetuned, max_steps=self.max_steps,
                      **{name: getattr(self, name) for name in self.NEEDS_TRAINING})
        devices.check_device_name(self.device)
        if not isinstance(self.n_boot, int) or self.n_boot < 2:
            raise ConfigError(f"n_boot={self.n_boot!r} must be an int >= 2 (bootstrap "
                              "resamples)")
        self.check()

    def check(self) -> None:
        """The study's own checks (after the shared ones); raise ``ConfigError``."""

    def resolved_device(self):
        """The ``torch.device`` this run uses (``device``; a ConfigError if this machine lacks
        it)."""
        return devices.resolve_device(self.device)

    def total_steps(self) -> int:
        """Fine-tuning steps: ``max_steps`` or the preset's (<= 0: sized in epochs)."""
        return self.max_steps or finetune.PRESETS[self.preset].max_steps

    def resolved_max_length(self) -> int:
        return self.max_length or finetune.PRESETS[self.preset].max_length

    def check_checkpoint_steps(self) -> None:
        """``checkpoint_steps`` (``CHECKPOINT_STEPS``) within 0..the run's steps; call after
        the preset is validated."""
        top = self.total_steps()
        late = [s for s in self.checkpoint_steps or () if s < 0 or (top > 0 and s > top)]
        if late:
            raise ConfigError(f"checkpoint_steps {late} outside 0..{top} (the {self.preset!r} "
                              "preset's steps); pick steps in that range")

    def traced_steps(self) -> tuple[int, ...]:
        """The snapshot steps measured: ``checkpoint_steps``, or (None) the main job's
        (``finetune.trace_steps``); none for ``finetuned`` models (no training snapshots)."""
        if self.finetuned:
            return ()
        if self.checkpoint_steps is not None:
            return self.checkpoint_steps
        return finetune.trace_steps(seed_configs(self)[0])

    @classmethod
    def from_params(cls, params: dict):
        """The config of papermill/grid/command-line values (a parameters cell's literals):
        lists become tuples, "" becomes None where the field may be None, and so does a
        ``max_steps`` of 0 (the cells' "0: the preset's number"). An unknown name is a
        ``ConfigError`` that lists the valid ones (a notebook's own parameters, such as
        ``out_dir`` or ``interactive``, are not the config's: leave them out)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} parameter(s) {unknown}; valid: "
                              f"{', '.join(fields)}")
        out = {}
        for name, value in params.items():
            if (value == "" and "None" in str(fields[name].type)) or \
                    (name == "max_steps" and value == 0):
                value = None
            out[name] = tuple(value) if isinstance(value, list) else value
        return cls(**out)


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

    Reading back: ``read(path)`` rebuilds a result from what ``save`` wrote (the subclass's
    ``from_dict`` is the inverse of its ``to_dict``), and ``check()`` says what is inconsistent
    in one (the subclass adds its own ``problems()``); ``studies.results`` finds the class of
    any saved file, for the sweep tools.
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

    def finished(self, seconds: float, device, dtype: str = "float32"):
        """A copy with ``seconds`` (the run's wall time) and ``device`` (where it ran, as
        ``devices.device_record`` of the resolved device and the compute dtype) set: the last
        step of a ``run_*``."""
        return dataclasses.replace(self, seconds=seconds,
                                   device=devices.device_record(device, dtype))

    # ---- reading back (``studies.results``: every study's class, the batch tools' reader)
    @classmethod
    def read(cls, path: str | Path):
        """The result that ``save(dir)`` wrote, from its ``<study>.json`` or from ``dir``.

        The inverse of ``save``: equal to the saved result in everything ``save`` writes
        (arrays bit for bit, the config as the study's frozen Config dataclass, rebuilt from
        its saved fields without re-validating them against this machine's registries).
        Raises ``results.ResultFileError`` naming the file and what is missing or damaged;
        ``check()`` then says whether what was read is consistent.
        """
        from . import results

        return cls.from_dict(results.load_json(path, cls.study))

    @classmethod
    def from_dict(cls, saved):
        """The result from its saved JSON (``saved``: a ``results.Saved``, whose accessors'
        errors name the file and the key); each study implements it."""
        raise NotImplementedError(f"{cls.__name__} has no reader: implement from_dict")

    def problems(self) -> list[str]:
        """The study's own consistency checks (shapes against n_layers, NaN cells without a
        recorded reason, ...), one sentence each; ``check`` adds the protocol's."""
        return []

    def check(self) -> list[str]:
        """What is inconsistent in this result, one sentence each ([] when nothing): the
        study's ``problems()``, then findings that lack a key or whose verdict does not follow
        their interval (the verdict rule above), and a record whose verdict columns disagree
        with the findings. The gallery shows a result that fails it as damaged."""
        try:
            out = list(self.problems())
        except Exception as e:  # the checks met data they cannot even index
            out = [f"its checks fail: {type(e).__name__}: {e}"]
        try:
            found = self.findings()
        except Exception as e:
            return out + [f"findings() fails: {type(e).__name__}: {e}"]
        out += self.findings_problems(found)
        try:
            record = self.to_record()
        except Exception as e:
            return out + [f"to_record() fails: {type(e).__name__}: {e}"]
        return out + self.record_problems(record, found)

    @staticmethod
    def findings_problems(found) -> list[str]:
        """Findings that lack a key, have an unknown verdict, or whose verdict does not follow
        their interval: SUPPORTED / NOT SUPPORTED / INCONCLUSIVE as ``verdict_of`` gives it,
        UNDEFINED only with an undefined interval or a reason (``why``)."""
        if not isinstance(found, dict):
            return [f"findings are a {type(found).__name__}, not {{claim id: finding}}"]
        out = []
        for cid, f in found.items():
            keys = ("claim", "numbers", "interval", "threshold", "verdict")
            lacks = [k for k in keys if not isinstance(f, dict) or k not in f]
            if lacks:
                out.append(f"finding {cid!r} lacks {', '.join(lacks)}")
                continue
            v, iv, why = f["verdict"], f["interval"], f.get("why")
            if v not in VERDICTS:
                out.append(f"finding {cid!r} has verdict {v!r}, not one of {list(VERDICTS)}")
                continue
            if iv is None:
                if v != UNDEFINED:
                    out.append(f"finding {cid!r} is {v} with no interval")
                elif not why:
                    out.append(f"finding {cid!r} is UNDEFINED with no reason (why)")
                continue
            if not isinstance(iv, dict) or not {"low", "high"} <= set(iv):
                out.append(f"finding {cid!r} has an interval without low and high")
                continue
            low, high, thr = (math.nan if x is None else x
                              for x in (iv["low"], iv["high"], f["threshold"]))
            expected = verdict_of(low, high, thr) if _finite(thr) else UNDEFINED
            if v == UNDEFINED and (expected == UNDEFINED or why):
                continue
            if v != expected:
                out.append(f"finding {cid!r} is {v} but its interval [{iv['low']}, "
                           f"{iv['high']}] against threshold {f['threshold']} gives {expected}")
        return out

    @staticmethod
    def key_problems(*groups) -> list[str]:
        """Cache keys (groups of them) that are not keys: a result holds keys, never paths."""
        return [f"{k!r} is no cache key (a result holds keys, never paths)"
                for g in groups for k in g
                if not isinstance(k, str) or not k or "/" in k or "\\" in k]

    def runs_problems(self, runs, seeds, activation_keys=()) -> list[str]:
        """One fine-tuning run record per seed, and cache keys (never paths) in the records and
        in ``activation_keys``: what every study holding ``finetune_runs`` checks."""
        out = ([] if len(runs) == len(seeds) else
               [f"{len(runs)} fine-tuning runs for seeds {list(seeds)}"])
        return out + self.key_problems(activation_keys, (r.get("key") for r in runs))

    @staticmethod
    def record_problems(record, found: dict) -> list[str]:
        """A record that is not flat, or whose ``verdict.<claim>`` columns are not the
        findings' verdicts."""
        if not isinstance(record, dict):
            return [f"the record is a {type(record).__name__}, not a flat dict"]
        found = found if isinstance(found, dict) else {}
        out = [f"record column {k!r} is a {type(v).__name__}, not a scalar"
               for k, v in record.items()
               if v is not None and not isinstance(v, (str, int, float, bool))]
        columns = {k[len("verdict."):]: v for k, v in record.items() if k.startswith("verdict.")}
        return out + [f"record column verdict.{cid} is {column!r} but the finding's verdict is "
                      f"{want!r}" for cid, column, want in verdict_mismatches(
                          columns, verdicts_of(found))]

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
