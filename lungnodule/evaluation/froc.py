"""The FROC curve of matched samples and its three CPM readings: leaderboard, interpolated and stable.

A curve is false positives per scan (`fps`) against sensitivity (`sens`), one point per distinct score
threshold, from the official ``computeFROC`` (:func:`compute_froc`). The CPM is the mean sensitivity at 1/8,
1/4, 1/2, 1, 2, 4 and 8 false positives per scan, read off the curve in one of three ways:

- **leaderboard** (:func:`sensitivities_leaderboard`): the LUNA16 site's calculator, on the curve as the
  official script writes it (collinear points dropped): for each rate the first point with the smallest
  |fps - rate|, or 0 when no point is nearer than the curve's largest FP rate. Comparable with published
  numbers; on a few scans a curve is a handful of points and this reading jumps (one false positive on 8
  scans moves the curve by 1/8 FP per scan).
- **interpolated** (:func:`sensitivities_interpolated`): linear interpolation (DeepLung's reading).
- **stable** (:func:`sensitivities_stable`): on the *full* curve (every threshold kept, tied scores grouped),
  the sensitivity reached with at most `rate` false positives per scan, interpolated only across a group of
  tied scores; flat beyond the curve's end. It moves by at most one nodule's share when one mark moves, so
  every choice made on validation uses it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_curve

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FP_RATE_KEYS = ("0.125", "0.25", "0.5", "1", "2", "4", "8")
FROC_MIN_X = 0.125
FROC_MAX_X = 8.0
CPM_AGREEMENT = 0.05  # leaderboard and stable CPM further apart than this: the curve is too coarse


@dataclass
class Curve:
    """A FROC curve: `fps` (false positives per scan), `sens` and the score `thresholds`, in threshold order."""

    fps: np.ndarray
    sens: np.ndarray
    thresholds: np.ndarray


def compute_froc(
    gt: np.ndarray, prob: np.ndarray, exclude: np.ndarray, n_scans: int, *, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official ``computeFROC``: (fps, sens, thresholds) from the sample vectors of a matching.

    fps = fpr * (number of non-excluded samples - detected nodules) / n_scans (false positives per scan; all 0
    when there is no FP sample), sens = tpr * detected / total nodules (0 where the script would give NaN).
    `drop_intermediate` False keeps every threshold (scikit-learn's roc_curve still groups tied scores).
    """
    gt = np.asarray(gt, np.float64)
    prob = np.asarray(prob, np.float64)
    keep = ~np.asarray(exclude, bool)
    gt_local, prob_local = gt[keep], prob[keep]
    detected = gt_local.sum()
    total = gt.sum()
    if len(prob_local) == 0:
        return np.zeros(1), np.zeros(1), np.array([np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thresholds = roc_curve(gt_local, prob_local, drop_intermediate=drop_intermediate)
    if gt.sum() == len(gt):
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (len(prob_local) - detected) / n_scans
    if detected > 0 and total > 0:
        sens = (tpr * detected) / total
    else:
        sens = np.zeros(len(tpr))
    return fps, sens, thresholds


def sensitivities_leaderboard(fps: np.ndarray, sens: np.ndarray, rates: Sequence[float] = FP_RATES) -> np.ndarray:
    """Sensitivity at each FP rate as the LUNA16 leaderboard's CPM calculator reads it.

    For each rate: the first curve point with the smallest |fps - rate|, provided that distance is strictly
    below max(fps) (the calculator's initial "best distance"); otherwise 0.
    """
    fps = np.asarray(fps, np.float64)
    sens = np.asarray(sens, np.float64)
    rates = np.asarray(rates, np.float64)
    if len(fps) == 0:
        return np.zeros(len(rates))
    dist = np.abs(fps[None, :] - rates[:, None])
    j = dist.argmin(axis=1)
    taken = dist[np.arange(len(rates)), j] < fps.max()
    return np.where(taken, sens[j], 0.0)


def sensitivities_interpolated(fps: np.ndarray, sens: np.ndarray, rates: Sequence[float] = FP_RATES) -> np.ndarray:
    """Sensitivity at each FP rate by linear interpolation of the curve (``np.interp``: flat beyond its ends)."""
    if len(fps) == 0:
        return np.zeros(len(rates))
    return np.interp(np.asarray(rates, np.float64), fps, sens)


def sensitivities_stable(fps: np.ndarray, sens: np.ndarray, rates: Sequence[float] = FP_RATES) -> np.ndarray:
    """Sensitivity at each FP rate on a full curve (every threshold kept): the stable reading.

    At `rate`: the last point with fps <= rate (the top of a vertical run of true positives), interpolated
    towards the next point only when that point is a group of tied scores mixing both labels (a diagonal
    step); flat beyond the curve's end. Horizontal steps (false positives) and vertical ones (true positives)
    are read exactly, so the reading is a staircase that moves by one nodule's share when one mark moves.
    """
    fps = np.asarray(fps, np.float64)
    sens = np.asarray(sens, np.float64)
    rates = np.asarray(rates, np.float64)
    if len(fps) == 0:
        return np.zeros(len(rates))
    j = np.clip(np.searchsorted(fps, rates, side="right") - 1, 0, len(fps) - 1)
    k = np.minimum(j + 1, len(fps) - 1)
    span = fps[k] - fps[j]
    t = np.where(span > 0, np.clip((rates - fps[j]) / np.where(span > 0, span, 1.0), 0.0, 1.0), 0.0)
    return sens[j] + t * (sens[k] - sens[j])


def cpm_leaderboard(fps: np.ndarray, sens: np.ndarray) -> float:
    """CPM, leaderboard reading: mean of :func:`sensitivities_leaderboard` at 1/8 ... 8 FPs per scan."""
    return float(np.mean(sensitivities_leaderboard(fps, sens)))


def cpm_interpolated(fps: np.ndarray, sens: np.ndarray) -> float:
    """CPM, interpolated reading: mean of :func:`sensitivities_interpolated` at 1/8 ... 8 FPs per scan."""
    return float(np.mean(sensitivities_interpolated(fps, sens)))


def cpm_stable(fps: np.ndarray, sens: np.ndarray) -> float:
    """CPM, stable reading: mean of :func:`sensitivities_stable` at 1/8 ... 8 FPs per scan (full curve)."""
    return float(np.mean(sensitivities_stable(fps, sens)))


def drop_collinear(fps: np.ndarray, tps: np.ndarray) -> np.ndarray:
    """Mask of the points scikit-learn's ``roc_curve(drop_intermediate=True)`` keeps: the ends and every point
    where the curve bends (second differences of the FP or TP counts non-zero)."""
    if len(fps) <= 2:
        return np.ones(len(fps), bool)
    return np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]


def curve_warnings(full: Curve, cpm: float, stable: float, scans: int, candidates: int,
                   cpm_ci95: tuple[float, float] | None = None,
                   stable_ci95: tuple[float, float] | None = None,
                   official: tuple[np.ndarray, np.ndarray] | None = None) -> list[str]:
    """Why a CPM of this curve may mislead, one line each (empty when nothing does).

    The curve stops short of a target FP rate (the leaderboard reading counts 0 beyond it); it starts with a
    vertical run at 0 FP per scan that the leaderboard reading reads below its top (`official`: the curve as
    the script writes it); the two CPMs differ by more than :data:`CPM_AGREEMENT`; a CPM lies outside its own
    bootstrap CI. `full` is the curve with every threshold kept; `scans` and `candidates` say how much data the
    curve rests on.
    """
    out = []
    where = f"{scans} scans, {candidates} candidates"
    top = float(np.max(full.fps)) if len(full.fps) else 0.0
    short = [k for k, r in zip(FP_RATE_KEYS, FP_RATES) if top < r]
    if short:
        out.append(f"the FROC stops at {top:.3g} false positives per scan, short of {', '.join(short)}: the "
                   "leaderboard reading counts 0 at rates no curve point is nearer to than its end, the stable "
                   "reading holds the last sensitivity")
    at_zero = full.sens[full.fps == 0]
    if official is not None and len(at_zero) and at_zero.max() > 0:
        # Only where it costs something: the leaderboard reading takes a point at 0 FP per scan below the top
        # of that vertical run (the first one, (0, 0), when the next point is farther than the rate).
        fps, sens = official
        dist = np.abs(fps[None, :] - np.asarray(FP_RATES)[:, None])
        j = dist.argmin(axis=1)
        hit = [k for k, i in zip(FP_RATE_KEYS, j) if fps[i] == 0 and sens[i] < at_zero.max()]
        if hit:
            out.append(f"the FROC starts with a vertical run at 0 false positives per scan (sensitivity 0 to "
                       f"{at_zero.max():.3f}): the leaderboard reading takes a point of it below its top at "
                       f"{', '.join(hit)} FP per scan")
    if abs(cpm - stable) > CPM_AGREEMENT:
        out.append(f"leaderboard CPM {cpm:.3f} and stable CPM {stable:.3f} differ by {abs(cpm - stable):.3f} "
                   f"(> {CPM_AGREEMENT}): the curve is too coarse for the nearest-point reading ({where}); the "
                   "stable CPM is the one to compare")
    for name, value, ci in (("leaderboard", cpm, cpm_ci95), ("stable", stable, stable_ci95)):
        if ci is not None and not ci[0] - 1e-12 <= value <= ci[1] + 1e-12:
            out.append(f"the {name} CPM {value:.3f} lies outside its bootstrap 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]: "
                       f"the curve is too coarse for that reading ({where})")
    return out
