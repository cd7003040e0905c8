"""Findings of study 06: Merchant et al.'s (2020) cross-task claims tested on one run.

Every interval is a percentile bootstrap over the probe sentences, the same resamples for every
model and task (paired), and every verdict follows the rule of ``studies.base``.

* ``reconfigured.<task>``: fine-tuning on the task changes its top layer beyond the threshold
  ("fine-tuning primarily affects the top layers"). Effect: the top layer's excess
  (``layer_change.excess``: change from ORIG minus the seeds' change, minus ``margin``),
  interval recentred on the estimate (repeated sentences inflate CKA alike in both terms; what
  is left is removed as in ``similarity.findings``). Its numbers say which layers are
  reconfigured (``layer_change.reconfigured``: the whole interval of the layer's excess above
  0), how many, the lowest one, and the plug-in count and lowest layer with their intervals.
* ``parsing_vs.<task>``: the (first) dependency_parsing task reconfigures more layers than
  ``task`` ("dependency parsing reconfigures most of the model, whereas SQuAD and MNLI appear to
  involve much shallower processing"). Effect: the difference of the plug-in counts (layers whose
  excess is above 0 on the (re)sample; ``layer_change.plugin_counts``). Counts are integers,
  so "more" is at least one layer more: the threshold is ``COUNT_THRESHOLD`` = 0.5, halfway
  (SUPPORTED: the parsing task has at least one layer more on nearly every resample; NOT
  SUPPORTED: at most as many, e.g. both at the ceiling of every layer), and the interval is
  the replicates' percentiles, not recentred.
* ``parsing_reconfigures_most``: the same against every other task at once (effect: the parsing
  task's count minus the largest other count, per resample).
* ``no_forgetting.<task>``: fine-tuning on the task keeps the syntax ORIG's states encode ("does
  not lead to catastrophic forgetting of linguistic phenomena"): the structural probe's best-
  layer UUAS of FT minus ORIG's, against -``forgetting_margin`` (the best layer chosen on each
  resample, ``syntax.best_layer_uuas``). Measured after every task, not only parsing. The
  probes are fitted once, on the training sentences: the interval covers the sampling of the
  probe sentences they are scored on, not the probes' training.

A claim without the tasks it compares (no parsing task, no other task, no structural probe) is
UNDEFINED with the reason.
"""

from __future__ import annotations

import numpy as np

from ...measures.intervals import percentile_interval
from ..base import Interval, finding, undefined_finding
from . import layer_change as lc
from . import syntax

PAPER = "Merchant et al. 2020"
COUNT_THRESHOLD = 0.5  # integer counts: "more" = at least one more layer (docstring)
CLAIMS = {
    "reconfigured": "fine-tuning on {task} reconfigures its top layer: the change from ORIG "
                    "exceeds {threshold} ({paper}: fine-tuning primarily affects the top "
                    "layers)",
    "parsing_vs": "fine-tuning on {parse} reconfigures more layers than on {task} ({paper}: "
                  "dependency parsing reconfigures most of the model, SQuAD and MNLI much "
                  "shallower processing)",
    "parsing_reconfigures_most": "fine-tuning on {parse} reconfigures more layers than on any "
                                 "other task here ({paper}: dependency parsing reconfigures "
                                 "most of the model)",
    "no_forgetting": "fine-tuning on {task} keeps the syntax of ORIG: the structural probe's "
                     "best-layer UUAS drops by less than {margin:g} ({paper}: no catastrophic "
                     "forgetting of linguistic phenomena; Hewitt & Manning 2019's probe)",
}


def _method(result, recentred: bool) -> str:
    c = result.config
    return (f"{c.confidence:.0%} bootstrap over {result.n_sentences} probe sentences "
            f"({c.probe}), {c.n_boot} resamples" + (", recentred" if recentred else ""))


def task_excess(result, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(estimate [L+1], replicates [B, L+1]) of the task's excess per layer."""
    c, cur = result.config, result.curves[task]
    est = lc.excess(cur.ft_orig, cur.ft_ft, c.threshold, c.margin)
    reps = lc.excess(cur.ft_orig_boot, cur.ft_ft_boot, c.threshold, c.margin)
    return est, reps


def layer_table(result, task: str) -> dict:
    """Per layer of ``task``: excess estimate, interval, the reconfigured flags; the count and
    lowest layer by the interval rule; the plug-in count and lowest layer with intervals."""
    conf = result.config.confidence
    est, reps = task_excess(result, task)
    bounds = [percentile_interval(reps[:, i], conf, recentre_on=float(est[i]))
              for i in range(len(est))]
    low = np.array([b[0] for b in bounds])
    high = np.array([b[1] for b in bounds])
    flags = lc.reconfigured(low)
    counts, firsts = lc.plugin_counts(reps), lc.plugin_lowest(reps)
    cur = result.curves[task]
    return {"excess": est, "low": low, "high": high, "flags": flags,
            "layers": [int(i) for i in np.flatnonzero(flags)],
            "n_reconfigured": int(flags.sum()), "lowest": lc.lowest(flags),
            "plugin_count": float(lc.plugin_counts(est[None])[0]),
            "plugin_count_interval": percentile_interval(counts, conf),
            "plugin_lowest": float(lc.plugin_lowest(est[None])[0]),
            "plugin_lowest_interval": percentile_interval(firsts, conf),
            "change": lc.change(cur.ft_orig),
            "seeds_change": None if cur.ft_ft is None else 1.0 - np.asarray(cur.ft_ft),
            "counts_replicates": counts}


def _layers_text(layers: list[int]) -> str:
    return ", ".join(str(i) for i in layers) if layers else "none"


def _reconfigured(result, task: str, table: dict) -> dict:
    c, top = result.config, result.n_layers
    lo, hi = table["plugin_count_interval"]
    flo, fhi = table["plugin_lowest_interval"]
    numbers = {"kind": c.kind_of(task), "layers_reconfigured": table["layers"],
               "n_reconfigured": table["n_reconfigured"],
               "lowest_reconfigured": table["lowest"], "n_layers": top + 1,
               "plugin_count": table["plugin_count"], "plugin_count_low": lo,
               "plugin_count_high": hi, "plugin_lowest": table["plugin_lowest"],
               "plugin_lowest_low": flo, "plugin_lowest_high": fhi,
               "excess": table["excess"].tolist(), "excess_low": table["low"].tolist(),
               "excess_high": table["high"].tolist(), "change": table["change"].tolist(),
               "seeds_change": (None if table["seeds_change"] is None
                                else table["seeds_change"].tolist())}
    iv = Interval(float(table["excess"][top]), float(table["low"][top]),
                  float(table["high"][top]), f"layer {top} change beyond the threshold",
                  _method(result, True))
    lowest = table["lowest"]
    summary = (f"reconfigured layers {_layers_text(table['layers'])} "
               f"({table['n_reconfigured']} of {top + 1}; lowest "
               f"{'none' if lowest is None else lowest}); plug-in count "
               f"{table['plugin_count']:.0f} [{lo:.1f}, {hi:.1f}], lowest layer with a "
               f"positive excess {table['plugin_lowest']:.0f} [{flo:.1f}, {fhi:.1f}]")
    claim = CLAIMS["reconfigured"].format(task=task, threshold=c.threshold_label(), paper=PAPER)
    return finding(claim, numbers, iv, summary=summary)


def _count_difference(result, parse: str, others: list[str], tables: dict, claim: str) -> dict:
    """Effect: parse's plug-in count minus the largest count of ``others``."""
    conf = result.config.confidence
    est = tables[parse]["plugin_count"] - max(tables[t]["plugin_count"] for t in others)
    reps = tables[parse]["counts_replicates"] - np.max(
        np.stack([tables[t]["counts_replicates"] for t in others]), axis=0)
    lo, hi = percentile_interval(reps, conf)
    name = others[0] if len(others) == 1 else "the most of " + ", ".join(others)
    iv = Interval(float(est), lo, hi, f"layers reconfigured, {parse} minus {name}",
                  _method(result, False))
    numbers = {"parsing_task": parse, "against": others,
               **{f"plugin_count.{t}": tables[t]["plugin_count"] for t in (parse, *others)},
               **{f"n_reconfigured.{t}": tables[t]["n_reconfigured"] for t in (parse, *others)},
               **{f"lowest_reconfigured.{t}": tables[t]["lowest"] for t in (parse, *others)},
               # how much, not only how many: the mean change from ORIG over the layers
               **{f"mean_change.{t}": float(np.mean(tables[t]["change"]))
                  for t in (parse, *others)}}
    summary = "; ".join(f"{t}: {tables[t]['plugin_count']:.0f} layers with a positive excess, "
                        f"{tables[t]['n_reconfigured']} by the interval rule (lowest "
                        f"{tables[t]['lowest']})" for t in (parse, *others))
    return finding(claim, numbers, iv, threshold=COUNT_THRESHOLD, summary=summary)


def _cross_task(result, tables: dict) -> dict:
    c = result.config
    parses = list(c.parsing_tasks())
    others = [t for t in c.tasks if c.kind_of(t) != "dependency_parsing"]
    most = CLAIMS["parsing_reconfigures_most"]
    if not parses:
        return {"parsing_reconfigures_most": undefined_finding(
            most.format(parse="a dependency parsing task", paper=PAPER),
            f"no dependency_parsing task among tasks {list(c.tasks)}: add one (brown-parse "
            "offline, ud-parse from the hub, tiny-parse in tests) to compare with")}
    parse = parses[0]
    if not others:
        return {"parsing_reconfigures_most": undefined_finding(
            most.format(parse=parse, paper=PAPER),
            f"tasks {list(c.tasks)} are all dependency parsing: add the tasks to compare "
            "with (e.g. mnli and squad from the hub, movies and brown-pos offline)")}
    out = {f"parsing_vs.{t}": _count_difference(
        result, parse, [t], tables,
        CLAIMS["parsing_vs"].format(parse=parse, task=t, paper=PAPER)) for t in others}
    if len(others) > 1:
        out["parsing_reconfigures_most"] = _count_difference(
            result, parse, others, tables, most.format(parse=parse, paper=PAPER))
    return out


def _no_forgetting(result) -> dict:
    c = result.config
    claim = CLAIMS["no_forgetting"]
    if result.orig_syntax is None:
        return {"no_forgetting": undefined_finding(
            claim.format(task="each task", margin=c.forgetting_margin, paper=PAPER),
            "structural_probe=False: no structural probe was fitted (set it True)")}
    orig = result.orig_syntax
    counts = np.asarray(result.counts, dtype=np.float64)
    ones = np.ones((1, counts.shape[1]))
    o_est = float(syntax.best_layer_uuas(orig.correct, orig.total, ones)[0])
    o_reps = syntax.best_layer_uuas(orig.correct, orig.total, counts)
    base = float(syntax.corpus_uuas(result.baseline_correct, orig.total, ones)[0])
    out = {}
    for t in c.tasks:
        s = result.curves[t].syntax
        f_est = float(syntax.best_layer_uuas(s.correct, s.total, ones)[0])
        f_reps = syntax.best_layer_uuas(s.correct, s.total, counts)
        lo, hi = percentile_interval(f_reps - o_reps, c.confidence)
        iv = Interval(f_est - o_est, lo, hi, "best-layer UUAS, FT minus ORIG",
                      _method(result, False))
        ob, fb = int(np.nanargmax(orig.uuas)), int(np.nanargmax(s.uuas))
        numbers = {"orig_best_layer": ob, "orig_uuas": o_est, "ft_best_layer": fb,
                   "ft_uuas": f_est, "linear_baseline_uuas": base,
                   "orig_dspr": float(orig.dspr[ob]), "ft_dspr": float(s.dspr[fb]),
                   "ft_seed": c.seeds[0]}
        summary = (f"UUAS ORIG {o_est:.3f} (layer {ob}), FT {f_est:.3f} (layer {fb}); "
                   f"linear baseline {base:.3f}")
        out[f"no_forgetting.{t}"] = finding(
            claim.format(task=t, margin=c.forgetting_margin, paper=PAPER), numbers, iv,
            threshold=-float(c.forgetting_margin), summary=summary)
    return out


def findings(result) -> dict:
    """{claim id: finding} for a ``TasksResult`` (module docstring)."""
    tables = {t: layer_table(result, t) for t in result.config.tasks}
    out = {f"reconfigured.{t}": _reconfigured(result, t, tables[t]) for t in tables}
    out.update(_cross_task(result, tables))
    out.update(_no_forgetting(result))
    return out
