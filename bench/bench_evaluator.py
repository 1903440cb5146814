"""Benchmark the LUNA16 evaluator at full LUNA16 size: 888 scans x 100 marks, 1000 scan-level bootstraps.

Reads the real annotation files shipped in ``lungnodule/data/luna16``; the marks are synthetic (seeded): one or two
jittered marks on most included nodules, some on excluded findings, the rest scattered around each scan's
findings, 100 per scan with uniform probabilities. Prints the median wall time of matching, FROC + CPM, bootstrap
and the whole ``evaluate_cad`` over a few repeats, and the resulting CPM. Run: ``python bench/bench_evaluator.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from lungnodule import luna
from lungnodule.evaluation import (bootstrap_froc, compute_froc, cpm_interpolated, cpm_leaderboard, evaluate_cad,
                                   match_candidates)

MARKS_PER_SCAN = 100
N_BOOTSTRAP = 1000
REPEATS = 3
SEED = 0


def synthetic_results(annotations: pd.DataFrame, excluded: pd.DataFrame, uids: list[str], marks: int,
                      seed: int) -> pd.DataFrame:
    """`marks` CAD marks per scan (world x, y, z mm + probability), some on nodules and excluded findings."""
    rng = np.random.default_rng(seed)
    frames = []
    inc_groups = dict(tuple(annotations.groupby("seriesuid")))
    exc_groups = dict(tuple(excluded.groupby("seriesuid")))
    for uid in uids:  # per-scan set-up of the fake input only; the evaluator itself is what is timed
        inc = inc_groups.get(uid, annotations.iloc[:0])
        exc = exc_groups.get(uid, excluded.iloc[:0])
        pts, probs = [], []
        if len(inc):
            found = inc[rng.random(len(inc)) < 0.85]
            reps = found.loc[found.index.repeat(rng.integers(1, 3, len(found)))]
            r = np.clip(reps["diameter_mm"].to_numpy(), 0, None)[:, None] / 2
            pts.append(reps[["coordX", "coordY", "coordZ"]].to_numpy() + rng.uniform(-0.5, 0.5, (len(reps), 3)) * r)
            probs.append(rng.beta(5, 2, len(reps)))
        if len(exc):
            pick = exc.sample(min(len(exc), 5), random_state=int(rng.integers(1 << 31)))
            pts.append(pick[["coordX", "coordY", "coordZ"]].to_numpy())
            probs.append(rng.beta(2, 3, len(pick)))
        centre = np.concatenate([inc[["coordX", "coordY", "coordZ"]].to_numpy(),
                                 exc[["coordX", "coordY", "coordZ"]].to_numpy()]).mean(axis=0) if len(exc) or len(inc) \
            else np.zeros(3)
        n_rand = max(marks - sum(len(p) for p in probs), 0)
        pts.append(centre + rng.uniform(-150, 150, (n_rand, 3)))
        probs.append(rng.beta(1, 3, n_rand))
        xyz = np.concatenate(pts)[:marks]
        frames.append(pd.DataFrame({"seriesuid": uid, "coordX": xyz[:, 0], "coordY": xyz[:, 1], "coordZ": xyz[:, 2],
                                    "probability": np.concatenate(probs)[:marks]}))
    return pd.concat(frames, ignore_index=True)


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marks", type=int, default=MARKS_PER_SCAN)
    parser.add_argument("--bootstrap", type=int, default=N_BOOTSTRAP)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()

    folder = luna.package_annotation_dir()
    uids = luna.read_seriesuids(folder / "seriesuids.csv")
    annotations = luna.read_annotations(folder / "annotations.csv")
    excluded = luna.read_annotations(folder / "annotations_excluded.csv")
    results = synthetic_results(annotations, excluded, uids, args.marks, args.seed)
    print(f"{len(uids)} scans, {len(annotations)} nodules, {len(excluded)} excluded findings, {len(results)} marks, "
          f"{args.bootstrap} bootstraps, median of {args.repeats} runs")

    t_match, m = median_time(lambda: match_candidates(annotations, excluded, uids, results), args.repeats)

    def froc():
        fps, sens, _ = compute_froc(m.gt, m.prob, m.exclude, m.scans)
        return cpm_leaderboard(fps, sens), cpm_interpolated(fps, sens)

    t_froc, (cpm, cpm_i) = median_time(froc, args.repeats)
    t_boot, boot = median_time(lambda: bootstrap_froc(m.gt, m.prob, m.exclude, m.sample_scan, m.scans,
                                                      n_bootstrap=args.bootstrap, seed=args.seed), args.repeats)
    t_total, r = median_time(lambda: evaluate_cad(annotations, excluded, uids, results, n_bootstrap=args.bootstrap,
                                                  seed=args.seed), args.repeats)
    print(f"matching      {t_match:8.3f} s  (TP {m.true_positives}, FP {m.false_positives}, FN {m.false_negatives}, "
          f"double {m.double_detections}, ignored on excluded {m.ignored_on_excluded})")
    print(f"FROC + CPM    {t_froc:8.3f} s  (CPM {cpm:.4f}, interpolated {cpm_i:.4f})")
    print(f"bootstrap     {t_boot:8.3f} s  ({args.bootstrap} resamples, CPM 95% CI "
          f"{boot.cpm_ci95[0]:.4f}-{boot.cpm_ci95[1]:.4f})")
    print(f"evaluate_cad  {t_total:8.3f} s  total (CPM {r.cpm:.4f})")


if __name__ == "__main__":
    main()
