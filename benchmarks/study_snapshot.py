"""Bit-identity check for performance work: snapshot a study's result, compare two snapshots.

A speed-up of the studies must not change a number they report. ``save`` runs one study with
the parameters of the main job's ``demo`` grid (fine-tuned models and activations from the
cache, as in the main job) and pickles the result (wall-clock fields dropped), its findings and
its ``to_record()``; ``compare`` walks two snapshots field by field and reports every float,
array or value that differs in any bit (NaN equals NaN; 0.0 and -0.0 differ).

    python benchmarks/study_snapshot.py save similarity /tmp/sim_before.pkl
    ... change the code ...
    python benchmarks/study_snapshot.py save similarity /tmp/sim_after.pkl
    python benchmarks/study_snapshot.py compare /tmp/sim_before.pkl /tmp/sim_after.pkl

Studies: similarity, truncation, skipping, geometry. Run both sides with the same thread count
(the main job gives a single run all cores: 2 here) and the same ``LAYERSCOPE_HOME``; a result
holds cache keys, so the two sides must also see the same cached fine-tuned models. To run
the "before" side from a copy of the old code, put its ``lib`` first on ``PYTHONPATH``.
``--profile FILE`` also writes a cProfile of the study call.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import math
import pickle
import sys
import time

import numpy as np

STUDIES = ("similarity", "truncation", "skipping", "geometry")


def demo_run(study: str):
    """The study's run function bound to the demo grid's parameters (resources/grids/demo.yaml;
    everything else is the notebooks' defaults)."""
    if study == "similarity":
        from layerscope.studies.similarity import SimilarityConfig, run_similarity
        cfg = SimilarityConfig(seeds=(0, 1), checkpoint_steps=(0, 38, 75, 112, 150))
        return lambda: run_similarity(cfg, verbose=False)
    if study == "truncation":
        from layerscope.studies.truncation.run import TruncationConfig, run_truncation
        cfg = TruncationConfig(seeds=(0,))
        return lambda: run_truncation(cfg, verbose=False)
    if study == "skipping":
        from layerscope.studies.skipping.run import SkippingConfig, run_skipping
        cfg = SkippingConfig(seeds=(0,))
        return lambda: run_skipping(cfg, verbose=False)
    from layerscope.studies.geometry import GeometryConfig, run_geometry
    cfg = GeometryConfig(seeds=(0, 1), cross_task=("brown-genre",),
                         out_of_domain=("tweets", "amazon", "nyt"))
    return lambda: run_geometry(cfg, verbose=False)


def save(study: str, out: str, profile: str | None) -> None:
    fn = demo_run(study)
    t0 = time.perf_counter()
    if profile:
        prof = cProfile.Profile()
        res = prof.runcall(fn)
        prof.dump_stats(profile)
    else:
        res = fn()
    wall = time.perf_counter() - t0
    record = {k: v for k, v in res.to_record().items() if "seconds" not in k}
    clean = dataclasses.replace(res, seconds=None)
    if hasattr(clean, "timings"):
        clean = dataclasses.replace(clean, timings={})
    with open(out, "wb") as f:
        pickle.dump({"study": study, "result": clean, "findings": res.findings(),
                     "record": record, "wall": wall}, f)
    print(f"{study}: {wall:.1f} s -> {out}")


def differences(a, b, path: str = "", out: list | None = None) -> list[str]:
    """Every place where a and b differ in any bit (dataclasses, dicts, sequences, arrays,
    floats, other values); at most 40 entries."""
    out = [] if out is None else out
    if len(out) >= 40:
        return out
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            out.append(f"{path}: {type(a).__name__} vs {type(b).__name__}")
            return out
        for f in dataclasses.fields(a):
            differences(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}", out)
    elif isinstance(a, dict):
        if not isinstance(b, dict) or list(a) != list(b):
            out.append(f"{path}: keys differ")
            return out
        for k in a:
            differences(a[k], b[k], f"{path}[{k!r}]", out)
    elif isinstance(a, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            out.append(f"{path}: {type(a).__name__} of {len(a)} vs {type(b).__name__}")
            return out
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            differences(x, y, f"{path}[{i}]", out)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        if x.dtype != y.dtype or x.shape != y.shape:
            out.append(f"{path}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
        elif x.dtype.kind in "fc":
            nx, ny = np.isnan(x), np.isnan(y)
            if not (nx == ny).all() or x[~nx].tobytes() != y[~ny].tobytes():
                d = np.nanmax(np.abs(x.astype(float) - y.astype(float))) if x.size else 0.0
                out.append(f"{path}: arrays differ (max |diff| {d:.3g})")
        elif not np.array_equal(x, y):
            out.append(f"{path}: arrays differ")
    elif isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            out.append(f"{path}: {a!r} vs {b!r}")
        elif not (math.isnan(a) and math.isnan(b)) and a.hex() != b.hex():
            out.append(f"{path}: {a!r} vs {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")
    return out


def compare(first: str, second: str) -> int:
    with open(first, "rb") as f:
        a = pickle.load(f)
    with open(second, "rb") as f:
        b = pickle.load(f)
    diff = []
    for k in ("result", "findings", "record"):
        differences(a[k], b[k], k, diff)
    print(f"{a.get('study', '?')}: {a['wall']:.1f} s vs {b['wall']:.1f} s")
    if diff:
        print(f"DIFFERENT ({len(diff)}{'+' if len(diff) >= 40 else ''}):")
        print("\n".join(diff))
        return 1
    print("IDENTICAL bit for bit (result fields, findings, record)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save", help="run a study with the demo parameters, pickle its result")
    s.add_argument("study", choices=STUDIES)
    s.add_argument("out")
    s.add_argument("--profile", help="also write a cProfile of the study call here")
    c = sub.add_parser("compare", help="bit-for-bit comparison of two snapshots")
    c.add_argument("first")
    c.add_argument("second")
    args = p.parse_args()
    if args.cmd == "save":
        save(args.study, args.out, args.profile)
        return 0
    return compare(args.first, args.second)


if __name__ == "__main__":
    sys.exit(main())
