"""Scan-level bootstrap of the FROC (the official ``computeFROC_bootstrap``), seeded and vectorised, and the
paired bootstrap of a CPM difference between two systems on the same scans.

A resample draws `n_scans` scan indices with replacement (``numpy.random.default_rng(seed).integers``; the
official script used the unseeded global generator), recomputes the FROC with the same number of scans and
reads it. Each resample is a vector of scan counts used as sample weights on one global sort by probability
(cumulative sums), so 888 scans x 100 marks x 1000 resamples takes seconds. The band is the sorted-index
floor(0.025 n) / floor(0.975 n) values of the curves interpolated on 10,000 FP rates from 0.125 to 8; CIs of the
leaderboard and the stable CPM take the same sorted-index percentiles of the per-resample CPMs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..progress import track
from .froc import FROC_MAX_X, FROC_MIN_X, cpm_leaderboard, cpm_stable, drop_collinear

if TYPE_CHECKING:  # annotations only
    from .result import FrocResult

BOOTSTRAP_POINTS = 10000  # the official bootstrap grid


@dataclass
class Bootstrap:
    """Scan-level bootstrap of a FROC curve: `fps` (the 10,000-point grid, FPs per scan), the `mean`, `lo`, `hi`
    sensitivities on it, the leaderboard and stable CPM of every resample (`cpms`, `cpms_stable`) and their
    95% intervals (`cpm_ci95`, `cpm_stable_ci95`)."""

    fps: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    cpms: np.ndarray
    cpm_ci95: tuple[float, float]
    cpms_stable: np.ndarray
    cpm_stable_ci95: tuple[float, float]
    n_bootstrap: int
    seed: int


class WeightedFroc:
    """FROC curves of scan-resampled sample sets from one global sort by probability.

    A resample is a vector of scan counts; a sample weighs its scan's count. The curve of a resample equals the
    official one computed on the concatenated copies: same distinct thresholds (those with positive weight), the
    same cumulative integer TP/FP counts, the same ``drop_intermediate`` rule and the same float operations.
    """

    def __init__(self, gt, prob, exclude, sample_scan, n_scans: int):
        gt = np.asarray(gt, np.float64)
        keep = ~np.asarray(exclude, bool)
        order = np.argsort(np.asarray(prob, np.float64)[keep], kind="mergesort")[::-1]
        score = np.asarray(prob, np.float64)[keep][order]
        self.label = gt[keep][order].astype(np.int64)
        self.scan = np.asarray(sample_scan)[keep][order]
        self.ends = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1] if len(score) else np.zeros(0, np.int64)
        self.lesions_per_scan = np.bincount(np.asarray(sample_scan)[gt == 1], minlength=n_scans)
        self.n_scans = n_scans

    def curve(self, counts: np.ndarray, drop_intermediate: bool) -> tuple[np.ndarray, np.ndarray]:
        """(fps, sens) of the resample that takes scan s `counts[s]` times; `drop_intermediate` as roc_curve's."""
        total = float(self.lesions_per_scan @ counts)
        if len(self.ends) == 0:
            return np.zeros(1), np.zeros(1)
        w = counts[self.scan]
        cum_w = np.cumsum(w)[self.ends]
        cum_tp = np.cumsum(w * self.label)[self.ends]
        present = np.diff(cum_w, prepend=0) > 0
        tps = cum_tp[present].astype(np.float64)
        fps = (cum_w[present] - cum_tp[present]).astype(np.float64)
        if len(tps) == 0:
            return np.zeros(1), np.zeros(1)
        if drop_intermediate:
            keep = drop_collinear(fps, tps)
            fps, tps = fps[keep], tps[keep]
        tps = np.r_[0.0, tps]
        fps = np.r_[0.0, fps]
        detected, negatives = tps[-1], fps[-1]
        n_local = detected + negatives
        if negatives <= 0:
            fps_scan = np.zeros(len(fps))
        else:
            fps_scan = (fps / negatives) * (n_local - detected) / self.n_scans
        if detected > 0 and total > 0:
            sens = ((tps / detected) * detected) / total
        else:
            sens = np.zeros(len(tps))
        return fps_scan, sens

    def cpms(self, counts: np.ndarray, drop_intermediate: bool = True) -> tuple[float, float]:
        """(leaderboard CPM on the curve as the script draws it, stable CPM on the full curve) of one resample."""
        lead = cpm_leaderboard(*self.curve(counts, drop_intermediate))
        return lead, cpm_stable(*self.curve(counts, False))


def sorted_index_bounds(n: int, confidence: float) -> tuple[int, int]:
    """The official ``compute_mean_ci`` indices into a sorted vector of n values."""
    pz = (1.0 - confidence) / 2.0
    return min(math.floor(pz * n), n - 1), min(math.floor((1.0 - pz) * n), n - 1)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = sorted_index_bounds(len(values), confidence)
    ordered = np.sort(values)
    return float(ordered[lo]), float(ordered[hi])


def bootstrap_counts(n_scans: int, n_bootstrap: int, seed: int = 0) -> np.ndarray:
    """Scan counts of `n_bootstrap` scan-level bootstrap resamples: (n_bootstrap, n_scans) int64.

    Row b takes scan s `counts[b, s]` times; each row is `n_scans` draws with replacement from
    ``default_rng(seed).integers`` (rows sum to `n_scans`). Shared by :func:`bootstrap_froc` and
    :func:`paired_cpm_bootstrap`: equal seeds give equal resamples.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_scans, size=(n_bootstrap, n_scans))
    rows = np.repeat(np.arange(n_bootstrap), n_scans)
    counts = np.bincount(rows * n_scans + draws.ravel(), minlength=n_bootstrap * n_scans)
    return counts.reshape(n_bootstrap, n_scans)


def bootstrap_froc(
    gt: np.ndarray,
    prob: np.ndarray,
    exclude: np.ndarray,
    sample_scan: np.ndarray,
    n_scans: int,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    drop_intermediate: bool = True,
    progress: bool = False,
) -> Bootstrap:
    """Scan-level bootstrap of the FROC of matched samples (see the module docstring).

    Each resample's curve (as the script draws it, `drop_intermediate`) is interpolated on the 10,000-point grid
    and read by the leaderboard rule; its full curve gives the stable CPM. Returns the mean and the sorted-index
    (1-confidence)/2 and (1+confidence)/2 bounds on that grid, and both CPMs' intervals.
    """
    counts = bootstrap_counts(n_scans, n_bootstrap, seed)
    froc = WeightedFroc(gt, prob, exclude, sample_scan, n_scans)
    grid = np.linspace(FROC_MIN_X, FROC_MAX_X, num=BOOTSTRAP_POINTS)
    curves = np.empty((n_bootstrap, len(grid)), np.float32)  # float32 as the official script stores them
    cpms, stable = np.empty(n_bootstrap), np.empty(n_bootstrap)
    for b in track(range(n_bootstrap), "bootstrap", unit="resample", enabled=progress):
        fps, sens = froc.curve(counts[b], drop_intermediate)
        curves[b] = np.interp(grid, fps, sens)
        cpms[b] = cpm_leaderboard(fps, sens)
        stable[b] = cpm_stable(*froc.curve(counts[b], False))

    lo_i, hi_i = sorted_index_bounds(n_bootstrap, confidence)
    mean = curves.mean(axis=0, dtype=np.float64)
    part = np.partition(curves, [lo_i, hi_i], axis=0)
    return Bootstrap(
        fps=grid, mean=mean, lo=part[lo_i].astype(np.float64), hi=part[hi_i].astype(np.float64), cpms=cpms,
        cpm_ci95=_interval(cpms, confidence), cpms_stable=stable, cpm_stable_ci95=_interval(stable, confidence),
        n_bootstrap=n_bootstrap, seed=seed,
    )


def paired_cpm_bootstrap(baseline: "FrocResult", other: "FrocResult", n_bootstrap: int = 1000, seed: int = 0,
                         confidence: float = 0.95) -> dict:
    """The CPM difference `other` - `baseline` with a paired scan-level bootstrap CI, for both readings.

    Both results must cover the same scan list in the same order. Each resample (:func:`bootstrap_counts`, one
    seeded RNG) weights the scans of both systems alike, and each system's FROC is recomputed on it as
    :func:`bootstrap_froc` does, so with the same seed the per-system intervals equal `evaluate_cad`'s. Returns
    `difference`, `ci95`, `mean`, `share_improved` (fraction of resamples where `other` is higher),
    `baseline_ci95`, `other_ci95` for the leaderboard CPM, the same under `stable` for the stable CPM, and the
    settings. A difference is shown only when its CI excludes 0.
    """
    if list(baseline.matching.seriesuids) != list(other.matching.seriesuids):
        raise ValueError("a paired comparison needs both results on the same scan list, in the same order")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    n = len(baseline.matching.seriesuids)
    counts = bootstrap_counts(n, n_bootstrap, seed)
    cpms = np.empty((2, 2, n_bootstrap))  # system, reading (leaderboard, stable), resample
    for k, r in enumerate((baseline, other)):
        m = r.matching
        froc = WeightedFroc(m.gt, m.prob, m.exclude, m.sample_scan, n)
        for b, c in enumerate(counts):
            cpms[k, :, b] = froc.cpms(c, r.drop_intermediate)

    def summary(point_base: float, point_other: float, reading: int) -> dict:
        diff = cpms[1, reading] - cpms[0, reading]
        return {"difference": float(point_other - point_base), "ci95": list(_interval(diff, confidence)),
                "mean": float(diff.mean()), "share_improved": float(np.mean(diff > 0)),
                "baseline_ci95": list(_interval(cpms[0, reading], confidence)),
                "other_ci95": list(_interval(cpms[1, reading], confidence))}

    out = summary(baseline.cpm, other.cpm, 0)
    out["stable"] = summary(baseline.cpm_stable, other.cpm_stable, 1)
    out.update({"confidence": confidence, "n_bootstrap": int(n_bootstrap), "seed": int(seed)})
    return out
