"""LUNA16 evaluation: FROC, CPM and scan-level bootstrap, with the semantics of ``noduleCADEvaluationLUNA16.py``.

The challenge's script is reproduced rule for rule (world coordinates (x, y, z) in mm throughout):

- a CAD mark hits an annotation when its squared distance to the centre is strictly less than R^2, R = diameter/2,
  and a negative diameter means 10 mm (R = 5 mm);
- at most `max_marks` (100) marks per scan: when a scan has more, the threshold is its (max_marks+1)-th highest
  probability and only marks strictly above it are kept (ties can leave fewer);
- included nodules are matched first, in file order: a nodule scores the highest probability of its hits, its
  other hits are "double detections" (neither TP nor FP), and a mark inside two nodules counts for both;
  excluded findings then drop the still-unmatched marks that hit them ("ignored on excluded");
- every other mark is a false positive; a missed nodule stays in the sensitivity denominator (it is a positive
  with probability -1e9 flagged "exclude", so the curve tops out at detected/total);
- the FROC is ``sklearn.metrics.roc_curve`` over the non-excluded samples, FPs divided by the number of UIDs in
  the scan list (result rows for other UIDs are ignored, scans without results only add FNs), starting at (0, 0);
  a system without any FP gets fps = 0 everywhere;
- the bootstrap resamples scans with replacement, recomputes the FROC with the same number of scans, and reads
  each curve by linear interpolation on 10,000 FP rates from 0.125 to 8; mean and the sorted-index
  floor(0.025 n) / floor(0.975 n) values give the band.

Choices where the script leaves room, or where it fails:

- ``roc_curve`` is called with ``drop_intermediate=True``, its default since scikit-learn 0.17 (2015) and what
  the script and the organisers' 2025 leaderboard CPM calculator get by calling it without the argument. It
  removes collinear points, e.g. all inner points of a run of FPs between two TPs, so such a run keeps only its
  ends. Linear interpolation is unchanged, but the nearest-point (leaderboard) reading can change: a rate inside
  a run may now be nearest to the run's start, where the point just below it (same fps, lower sensitivity)
  comes first. On dense curves (888 scans x 100 marks) the leaderboard CPM moves by about 1e-3; on sparse
  hand-made curves it can move a lot. It stays a parameter (``drop_intermediate=False`` keeps every threshold).
- ``cpm`` is the leaderboard reading (the organisers' calculator): for each of 1/8, 1/4, 1/2, 1, 2, 4, 8 FPs per
  scan, the first curve point with the smallest |fps - rate|, taken only when that distance is strictly below the
  curve's largest fps (else 0; a system with no FP therefore scores 0). ``cpm_interpolated`` interpolates the
  curve linearly at the seven rates (flat beyond its end), as DeepLung-style scripts do.
- the bootstrap uses ``numpy.random.default_rng(seed)`` (the script used the unseeded global generator), and
  ``cpm_ci95`` takes the same sorted-index percentiles of the per-resample leaderboard CPMs.
- where the script produces NaN (no detected nodule, or no nodules at all) the sensitivities are 0, as in the
  leaderboard calculator's guard; an empty sample set gives the single point (0, 0).
- the scan list must not repeat a UID (the script would count such a scan's nodules twice).

Vectorised: matching is one distance matrix per scan; each bootstrap resample is a vector of scan counts used as
sample weights on one global sort by probability (cumulative sums), so 888 scans x 100 marks x 1000 resamples
takes seconds.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import auc, roc_curve
from tqdm.auto import tqdm

from .atomic import atomic_dir
from .froc_plot import plot_froc, plot_roc  # noqa: F401  (plot_roc re-exported beside roc_auc)

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FP_RATE_KEYS = ("0.125", "0.25", "0.5", "1", "2", "4", "8")
FROC_MIN_X = 0.125
FROC_MAX_X = 8.0
BOOTSTRAP_POINTS = 10000  # the official bootstrap grid
PLOT_POINTS = 10001  # the official plot grid
MISSED_PROBABILITY = -1e9  # the official minProbValue given to missed nodules
UNKNOWN_DIAMETER_MM = 10.0  # the official diameter for a negative diameter_mm

_ANNOTATION_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
_RESULT_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
_XYZ = ["coordX", "coordY", "coordZ"]


@dataclass
class Matching:
    """The outcome of matching CAD marks to annotations, before any curve is drawn.

    `gt`, `prob`, `exclude`, `sample_scan` are the official script's FROC sample vectors in its order (per scan of
    `seriesuids`: its included nodules in file order, then its false-positive marks in file order): label 1/0,
    probability (a nodule's best hit, -1e9 when missed), the "exclude" flag of missed nodules, and the scan's
    index in `seriesuids`. `nodule_table` has one row per included nodule of the listed scans (input index kept;
    columns of the annotations plus ``detected``, ``probability`` (NaN when missed), ``hits``). `mark_table` has one
    row per result row of a listed scan (input index kept) plus ``status`` (``nodule``: hits an included nodule,
    ``excluded``: ignored on an excluded finding, ``fp``, ``capped``: dropped by the per-scan cap) and
    ``nodules_hit``.
    """

    seriesuids: list[str]
    gt: np.ndarray
    prob: np.ndarray
    exclude: np.ndarray
    sample_scan: np.ndarray
    nodule_table: pd.DataFrame
    mark_table: pd.DataFrame
    true_positives: int
    false_positives: int
    false_negatives: int
    double_detections: int
    ignored_on_excluded: int
    total_candidates: int
    marks_on_two_nodules: int

    @property
    def nodules(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def scans(self) -> int:
        return len(self.seriesuids)


@dataclass
class Bootstrap:
    """Scan-level bootstrap of a FROC curve: `fps` (the 10,000-point grid, FPs per scan), the `mean`, `lo`, `hi`
    sensitivities on it, the leaderboard CPM of every resample (`cpms`) and its 95% interval `cpm_ci95`."""

    fps: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    cpms: np.ndarray
    cpm_ci95: tuple[float, float]
    n_bootstrap: int
    seed: int


@dataclass
class FrocResult:
    """A LUNA16 evaluation: the FROC curve, its CPMs, counts and bootstrap band.

    `fps` (false positives per scan), `sens`, `thresholds` are the curve as the official script writes it.
    `gt`, `prob`, `exclude`, `sample_scan` are the per-sample FROC vectors and `nodule_table` / `mark_table` the
    per-nodule / per-mark outcome (see :class:`Matching`); `marks_on_two_nodules` counts marks the script reports
    as "This is strange: CAD mark ... detected two nodules!". `sensitivities` maps "0.125" ... "8" to the leaderboard
    reading of the curve, `cpm` is their mean; `sensitivities_interpolated` / `cpm_interpolated` read it by linear
    interpolation. Bootstrap fields are None when `n_bootstrap` is 0.
    """

    fps: np.ndarray
    sens: np.ndarray
    thresholds: np.ndarray
    seriesuids: list[str]
    gt: np.ndarray
    prob: np.ndarray
    exclude: np.ndarray
    sample_scan: np.ndarray
    nodule_table: pd.DataFrame
    mark_table: pd.DataFrame
    true_positives: int
    false_positives: int
    false_negatives: int
    double_detections: int
    ignored_on_excluded: int
    total_candidates: int
    nodules: int
    detected: int
    scans: int
    cpm: float
    cpm_interpolated: float
    sensitivities: dict[str, float]
    sensitivities_interpolated: dict[str, float]
    marks_on_two_nodules: int
    max_marks: int | None
    drop_intermediate: bool
    n_bootstrap: int
    seed: int
    bootstrap_fps: np.ndarray | None = None
    bootstrap_mean: np.ndarray | None = None
    bootstrap_lo: np.ndarray | None = None
    bootstrap_hi: np.ndarray | None = None
    bootstrap_cpms: np.ndarray | None = None
    cpm_ci95: tuple[float, float] | None = None

    def summary(self, name: str = "") -> str:
        """A few lines for the terminal: CPMs, the CI, the seven sensitivities and the counts."""
        head = f"LUNA16 evaluation{' of ' + name if name else ''}: {self.scans} scans, {self.nodules} nodules, "
        head += f"{self.detected} detected, {self.false_positives} false positives"
        ci = ""
        if self.cpm_ci95 is not None:
            lo, hi = self.cpm_ci95
            ci = f" (95% CI {lo:.4f}-{hi:.4f}, {self.n_bootstrap} scan bootstraps, seed {self.seed})"
        rates = "  ".join(f"{k}: {v:.4f}" for k, v in self.sensitivities.items())
        return (f"{head}\nCPM {self.cpm:.4f}{ci}; interpolated CPM {self.cpm_interpolated:.4f}\n"
                f"sensitivity at FPs/scan  {rates}")

    def cpm_json(self) -> dict:
        """The content of ``cpm.json``."""
        return {
            "cpm": float(self.cpm),
            "cpm_interpolated": float(self.cpm_interpolated),
            "sensitivities": {k: float(v) for k, v in self.sensitivities.items()},
            "cpm_ci95": None if self.cpm_ci95 is None else [float(self.cpm_ci95[0]), float(self.cpm_ci95[1])],
            "nodules": int(self.nodules),
            "detected": int(self.detected),
            "scans": int(self.scans),
            "seed": int(self.seed),
            "n_bootstrap": int(self.n_bootstrap),
        }


# --- matching -----------------------------------------------------------------------------------------


def _check_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; has {list(frame.columns)}")
    values = frame[columns[1:]].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{what} has NaN or infinite values in {columns[1:]}")


def _by_scan(frame: pd.DataFrame, seriesuids: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Keep the rows of listed scans, ordered by scan (file order within a scan); return them and the
    row offsets of each scan (length n_scans + 1)."""
    codes = pd.Categorical(frame["seriesuid"].astype(str), categories=seriesuids).codes.astype(np.int64)
    listed = np.flatnonzero(codes >= 0)
    order = listed[np.argsort(codes[listed], kind="stable")]
    offsets = np.zeros(len(seriesuids) + 1, np.int64)
    np.cumsum(np.bincount(codes[listed], minlength=len(seriesuids)), out=offsets[1:])
    return frame.iloc[order], offsets


def _squared_distances(centres: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """(A, M) squared distances in mm^2, summed x, y, z in that order as the script does."""
    dx = centres[:, 0:1] - marks[None, :, 0]
    dy = centres[:, 1:2] - marks[None, :, 1]
    dz = centres[:, 2:3] - marks[None, :, 2]
    return dx * dx + dy * dy + dz * dz


def _radius_squared(diameter: np.ndarray) -> np.ndarray:
    diameter = np.where(diameter < 0.0, UNKNOWN_DIAMETER_MM, diameter)
    radius = diameter / 2.0
    return radius * radius


def hit_pairs(candidates: pd.DataFrame, annotations: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (candidate, annotation) of every pair that hits by the LUNA16 rule.

    Both frames hold `seriesuid` and world `coordX`, `coordY`, `coordZ` mm; `annotations` also
    `diameter_mm`. A pair hits when it shares the series and its squared distance is strictly less than
    the squared radius (a negative diameter means 10 mm). Positions index the frames' rows (0..N-1).
    """
    if candidates.empty or annotations.empty:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    c = candidates[["seriesuid", *_XYZ]].reset_index(drop=True).rename_axis("c").reset_index()
    a = annotations[["seriesuid", *_XYZ, "diameter_mm"]].reset_index(drop=True).rename_axis("a").reset_index()
    pairs = c.merge(a, on="seriesuid", suffixes=("", "_a"))
    d2 = sum((pairs[k] - pairs[k + "_a"]) ** 2 for k in _XYZ)
    hit = (d2 < _radius_squared(pairs["diameter_mm"].to_numpy(np.float64))).to_numpy()
    return pairs["c"].to_numpy()[hit], pairs["a"].to_numpy()[hit]


def cap_marks(prob: np.ndarray, max_marks: int | None) -> np.ndarray:
    """Boolean mask of one scan's marks kept by the official cap: with more than `max_marks` marks, only those
    strictly above the (max_marks+1)-th highest probability (so ties can leave fewer). None or <= 0: no cap."""
    keep = np.ones(len(prob), bool)
    if max_marks is not None and max_marks > 0 and len(prob) > max_marks:
        threshold = np.sort(prob)[::-1][max_marks]
        keep = prob > threshold
    return keep


def match_candidates(
    annotations: pd.DataFrame,
    excluded: pd.DataFrame | None,
    seriesuids: Sequence[str],
    results: pd.DataFrame,
    *,
    max_marks: int | None = 100,
) -> Matching:
    """Match CAD marks to nodules per scan as ``noduleCADEvaluationLUNA16.py`` does (rules in the module docstring).

    `annotations` / `excluded`: columns seriesuid, coordX, coordY, coordZ (world mm), diameter_mm; `results`:
    seriesuid, coordX, coordY, coordZ, probability. Rows of UIDs not in `seriesuids` are ignored. Each scan is one
    (annotations x marks) distance matrix.
    """
    seriesuids = [str(u) for u in seriesuids]
    if not seriesuids:
        raise ValueError("the scan list is empty: FPs per scan would divide by 0")
    if len(set(seriesuids)) != len(seriesuids):
        dup = pd.Series(seriesuids)[pd.Series(seriesuids).duplicated()].iloc[0]
        raise ValueError(f"series UID {dup} is listed twice")
    if excluded is None:
        excluded = pd.DataFrame({c: pd.Series(dtype=object if c == "seriesuid" else float)
                                 for c in _ANNOTATION_COLUMNS})
    _check_columns(annotations, _ANNOTATION_COLUMNS, "annotations")
    _check_columns(excluded, _ANNOTATION_COLUMNS, "excluded annotations")
    _check_columns(results, _RESULT_COLUMNS, "results")

    inc, inc_off = _by_scan(annotations, seriesuids)
    exc, exc_off = _by_scan(excluded, seriesuids)
    res, res_off = _by_scan(results, seriesuids)
    inc_xyz = inc[_XYZ].to_numpy(np.float64)
    inc_r2 = _radius_squared(inc["diameter_mm"].to_numpy(np.float64))
    exc_xyz = exc[_XYZ].to_numpy(np.float64)
    exc_r2 = _radius_squared(exc["diameter_mm"].to_numpy(np.float64))
    res_xyz = res[_XYZ].to_numpy(np.float64)
    res_p = res["probability"].to_numpy(np.float64)

    n_inc, n_res = len(inc), len(res)
    nod_score = np.full(n_inc, MISSED_PROBABILITY)
    nod_hits = np.zeros(n_inc, np.int64)
    # mark status codes: 0 fp, 1 nodule, 2 excluded, 3 capped
    mark_status = np.zeros(n_res, np.int8)
    mark_nodules = np.zeros(n_res, np.int64)
    samples_gt, samples_prob, samples_excl, samples_scan = [], [], [], []

    for s in range(len(seriesuids)):
        i0, i1 = inc_off[s], inc_off[s + 1]
        r0, r1 = res_off[s], res_off[s + 1]
        e0, e1 = exc_off[s], exc_off[s + 1]
        kept = np.flatnonzero(cap_marks(res_p[r0:r1], max_marks)) + r0
        mark_status[r0:r1] = 3
        mark_status[kept] = 0
        xyz, p = res_xyz[kept], res_p[kept]

        hits = _squared_distances(inc_xyz[i0:i1], xyz) < inc_r2[i0:i1, None]  # (I, M)
        nod_hits[i0:i1] = hits.sum(axis=1)
        if len(kept):
            best = np.where(hits, p[None, :], -np.inf).max(axis=1)
            nod_score[i0:i1] = np.where(nod_hits[i0:i1] > 0, best, MISSED_PROBABILITY)
        on_nodule = hits.sum(axis=0)
        matched = on_nodule > 0
        on_excluded = (_squared_distances(exc_xyz[e0:e1], xyz) < exc_r2[e0:e1, None]).any(axis=0) & ~matched
        mark_nodules[kept] = on_nodule
        mark_status[kept[matched]] = 1
        mark_status[kept[on_excluded]] = 2
        fp = ~matched & ~on_excluded

        found = nod_hits[i0:i1] > 0
        n_fp = int(fp.sum())
        samples_gt += [np.ones(i1 - i0), np.zeros(n_fp)]
        samples_prob += [nod_score[i0:i1], p[fp]]
        samples_excl += [~found, np.zeros(n_fp, bool)]
        samples_scan.append(np.full(i1 - i0 + n_fp, s, np.int64))

    gt = np.concatenate(samples_gt) if samples_gt else np.zeros(0)
    prob = np.concatenate(samples_prob) if samples_prob else np.zeros(0)
    exclude = np.concatenate(samples_excl) if samples_excl else np.zeros(0, bool)
    sample_scan = np.concatenate(samples_scan) if samples_scan else np.zeros(0, np.int64)

    detected = nod_hits > 0
    nodule_table = inc.copy()
    nodule_table["detected"] = detected
    nodule_table["probability"] = np.where(detected, nod_score, np.nan)
    nodule_table["hits"] = nod_hits
    mark_table = res.copy()
    mark_table["status"] = pd.Categorical.from_codes(mark_status, ["fp", "nodule", "excluded", "capped"])
    mark_table["nodules_hit"] = mark_nodules
    return Matching(
        seriesuids=seriesuids, gt=gt, prob=prob, exclude=exclude, sample_scan=sample_scan,
        nodule_table=nodule_table, mark_table=mark_table,
        true_positives=int(detected.sum()),
        false_positives=int((mark_status == 0).sum()),
        false_negatives=int((~detected).sum()),
        double_detections=int(np.maximum(nod_hits - 1, 0).sum()),
        ignored_on_excluded=int((mark_status == 2).sum()),
        total_candidates=int((mark_status != 3).sum()),
        marks_on_two_nodules=int((mark_nodules > 1).sum()),
    )


# --- FROC and CPM -------------------------------------------------------------------------------------


def compute_froc(
    gt: np.ndarray, prob: np.ndarray, exclude: np.ndarray, n_scans: int, *, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official ``computeFROC``: (fps, sens, thresholds) from the sample vectors of :class:`Matching`.

    fps = fpr * (number of non-excluded samples - detected nodules) / n_scans (false positives per scan; all 0
    when there is no FP sample), sens = tpr * detected / total nodules (0 where the script would give NaN).
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


def cpm_leaderboard(fps: np.ndarray, sens: np.ndarray) -> float:
    """CPM, leaderboard reading: mean of :func:`sensitivities_leaderboard` at 1/8 ... 8 FPs per scan."""
    return float(np.mean(sensitivities_leaderboard(fps, sens)))


def cpm_interpolated(fps: np.ndarray, sens: np.ndarray) -> float:
    """CPM, interpolated reading: mean of :func:`sensitivities_interpolated` at 1/8 ... 8 FPs per scan."""
    return float(np.mean(sensitivities_interpolated(fps, sens)))


# --- bootstrap ----------------------------------------------------------------------------------------


class _WeightedFroc:
    """FROC curves of scan-resampled sample sets from one global sort by probability.

    A resample is a vector of scan counts; a sample weighs its scan's count. The curve of a resample equals the
    official one computed on the concatenated copies: same distinct thresholds (those with positive weight), the
    same cumulative integer TP/FP counts, the same ``drop_intermediate`` rule and the same float operations.
    """

    def __init__(self, gt, prob, exclude, sample_scan, n_scans: int, drop_intermediate: bool = True):
        gt = np.asarray(gt, np.float64)
        keep = ~np.asarray(exclude, bool)
        order = np.argsort(np.asarray(prob, np.float64)[keep], kind="mergesort")[::-1]
        score = np.asarray(prob, np.float64)[keep][order]
        self.label = gt[keep][order].astype(np.int64)
        self.scan = np.asarray(sample_scan)[keep][order]
        self.ends = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1] if len(score) else np.zeros(0, np.int64)
        self.lesions_per_scan = np.bincount(np.asarray(sample_scan)[gt == 1], minlength=n_scans)
        self.n_scans = n_scans
        self.drop_intermediate = drop_intermediate

    def curve(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fps, sens) of the resample that takes scan s `counts[s]` times."""
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
        if self.drop_intermediate and len(fps) > 2:
            keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
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


def _sorted_index_bounds(n: int, confidence: float) -> tuple[int, int]:
    """The official ``compute_mean_ci`` indices into a sorted vector of n values."""
    pz = (1.0 - confidence) / 2.0
    return min(math.floor(pz * n), n - 1), min(math.floor((1.0 - pz) * n), n - 1)


def bootstrap_counts(n_scans: int, n_bootstrap: int, seed: int = 0) -> np.ndarray:
    """Scan counts of `n_bootstrap` scan-level bootstrap resamples: (n_bootstrap, n_scans) int64.

    Row b takes scan s `counts[b, s]` times; each row is `n_scans` draws with replacement from
    ``default_rng(seed).integers`` (rows sum to `n_scans`). Shared by :func:`bootstrap_froc` and paired
    comparisons of two systems: equal seeds give equal resamples.
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
    """Scan-level bootstrap of the FROC (official ``computeFROC_bootstrap``), seeded and vectorised.

    Each resample draws `n_scans` scan indices with replacement (``default_rng(seed).integers``), recomputes the
    FROC with the same `n_scans`, interpolates it on 10,000 FP rates from 0.125 to 8 and takes its leaderboard CPM.
    Returns the mean and the sorted-index (1-confidence)/2 and (1+confidence)/2 bounds on that grid.
    """
    counts = bootstrap_counts(n_scans, n_bootstrap, seed)
    froc = _WeightedFroc(gt, prob, exclude, sample_scan, n_scans, drop_intermediate)
    grid = np.linspace(FROC_MIN_X, FROC_MAX_X, num=BOOTSTRAP_POINTS)
    curves = np.empty((n_bootstrap, len(grid)), np.float32)  # float32 as the official script stores them
    cpms = np.empty(n_bootstrap)
    for b in tqdm(range(n_bootstrap), desc="bootstrap", disable=not progress, leave=False):
        fps, sens = froc.curve(counts[b])
        curves[b] = np.interp(grid, fps, sens)
        cpms[b] = np.mean(sensitivities_leaderboard(fps, sens))

    lo_i, hi_i = _sorted_index_bounds(n_bootstrap, confidence)
    mean = curves.mean(axis=0, dtype=np.float64)
    part = np.partition(curves, [lo_i, hi_i], axis=0)
    cpm_sorted = np.sort(cpms)
    return Bootstrap(
        fps=grid, mean=mean, lo=part[lo_i].astype(np.float64), hi=part[hi_i].astype(np.float64), cpms=cpms,
        cpm_ci95=(float(cpm_sorted[lo_i]), float(cpm_sorted[hi_i])), n_bootstrap=n_bootstrap, seed=seed,
    )


# --- top level ----------------------------------------------------------------------------------------


def evaluate_cad(
    annotations: pd.DataFrame,
    excluded: pd.DataFrame | None,
    seriesuids: Sequence[str],
    results: pd.DataFrame,
    *,
    max_marks: int | None = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
    drop_intermediate: bool = True,
    progress: bool = False,
) -> FrocResult:
    """Evaluate CAD marks against LUNA16 annotations: matching, FROC, CPMs and bootstrap band.

    Frames hold world (x, y, z) mm coordinates (columns as in the LUNA16 CSVs); `seriesuids` is the scan set FPs
    per scan are divided by. `n_bootstrap` = 0 skips the bootstrap. See the module docstring for the rules.
    """
    m = match_candidates(annotations, excluded, seriesuids, results, max_marks=max_marks)
    fps, sens, thresholds = compute_froc(m.gt, m.prob, m.exclude, m.scans, drop_intermediate=drop_intermediate)
    lead = sensitivities_leaderboard(fps, sens)
    interp = sensitivities_interpolated(fps, sens)
    result = FrocResult(
        fps=fps, sens=sens, thresholds=thresholds, seriesuids=m.seriesuids,
        gt=m.gt, prob=m.prob, exclude=m.exclude, sample_scan=m.sample_scan,
        nodule_table=m.nodule_table, mark_table=m.mark_table,
        true_positives=m.true_positives, false_positives=m.false_positives, false_negatives=m.false_negatives,
        double_detections=m.double_detections, ignored_on_excluded=m.ignored_on_excluded,
        total_candidates=m.total_candidates, nodules=m.nodules, detected=m.true_positives, scans=m.scans,
        cpm=float(np.mean(lead)), cpm_interpolated=float(np.mean(interp)),
        sensitivities=dict(zip(FP_RATE_KEYS, map(float, lead))),
        sensitivities_interpolated=dict(zip(FP_RATE_KEYS, map(float, interp))),
        marks_on_two_nodules=m.marks_on_two_nodules, max_marks=max_marks, drop_intermediate=drop_intermediate,
        n_bootstrap=n_bootstrap, seed=seed,
    )
    if n_bootstrap > 0 and m.scans > 0:
        boot = bootstrap_froc(m.gt, m.prob, m.exclude, m.sample_scan, m.scans, n_bootstrap=n_bootstrap, seed=seed,
                              drop_intermediate=drop_intermediate, progress=progress)
        result.bootstrap_fps, result.bootstrap_mean = boot.fps, boot.mean
        result.bootstrap_lo, result.bootstrap_hi = boot.lo, boot.hi
        result.bootstrap_cpms, result.cpm_ci95 = boot.cpms, boot.cpm_ci95
    else:
        result.n_bootstrap = 0
    return result


def _num(value: float) -> str:
    """A coordinate as the script echoes it from the CSV (Python's shortest repr of the float)."""
    return repr(float(value))


def _cad_analysis_text(r: FrocResult, name: str) -> str:
    star = 60 * "*"
    sensitivity = "0.0" if r.nodules == 0 else f"{r.true_positives / r.nodules:.9f}"
    return (
        f"\n{star}\nCAD Analysis: {name}\n{star}\n\n"
        "Candidate detection results:\n"
        f"    True positives: {r.true_positives}\n"
        f"    False positives: {r.false_positives}\n"
        f"    False negatives: {r.false_negatives}\n"
        "    True negatives: 0\n"
        f"    Total number of candidates: {r.total_candidates}\n"
        f"    Total number of nodules: {r.nodules}\n"
        f"    Ignored candidates on excluded nodules: {r.ignored_on_excluded}\n"
        f"    Ignored candidates which were double detections on a nodule: {r.double_detections}\n"
        f"    Sensitivity: {sensitivity}\n"
        f"    Average number of candidates per scan: {r.total_candidates / max(r.scans, 1):.9f}\n"
    )


def write_evaluation(result: FrocResult, outdir: str | os.PathLike, name: str) -> list[Path]:
    """Write the official script's outputs for `result` into `outdir`, plus ``cpm.json``; return the paths.

    Files: ``CADAnalysis.txt``, ``froc_<name>.txt`` (fps, sens, threshold), ``froc_gt_prob_vectors_<name>.csv``,
    ``nodulesWithoutCandidate_<name>.txt`` (its id column is the nodule's row in the annotations, where the script
    writes None), ``froc_<name>_bootstrapping.csv`` (when bootstrapped), ``froc_<name>.png`` and ``cpm.json``. All
    are written in a temporary folder first and moved in together.
    """
    outdir = Path(outdir)
    with atomic_dir(outdir) as tmp:
        (tmp / "CADAnalysis.txt").write_text(_cad_analysis_text(result, name))
        rows = np.column_stack([result.fps, result.sens, result.thresholds])
        (tmp / f"froc_{name}.txt").write_text("".join("%.9f,%.9f,%.9f\n" % tuple(r) for r in rows))
        (tmp / f"froc_gt_prob_vectors_{name}.csv").write_text(
            "".join("%d,%.9f\n" % (g, p) for g, p in zip(result.gt, result.prob)))
        missed = result.nodule_table[~result.nodule_table["detected"].to_numpy(bool)]
        (tmp / f"nodulesWithoutCandidate_{name}.txt").write_text("".join(
            f"{row.seriesuid},{idx},{_num(row.coordX)},{_num(row.coordY)},{_num(row.coordZ)},"
            f"{row.diameter_mm:.9f},-1\n"
            for idx, row in zip(missed.index, missed.itertuples(index=False))))
        if result.bootstrap_fps is not None:
            lines = ["FPrate,Sensivity[Mean],Sensivity[Lower bound],Sensivity[Upper bound]\n"]
            table = np.column_stack([result.bootstrap_fps, result.bootstrap_mean, result.bootstrap_lo,
                                     result.bootstrap_hi])
            lines += ["%.9f,%.9f,%.9f,%.9f\n" % tuple(r) for r in table]
            (tmp / f"froc_{name}_bootstrapping.csv").write_text("".join(lines))
        plot_froc({name: result}, tmp / f"froc_{name}.png", title=f"FROC performance - {name}")
        (tmp / "cpm.json").write_text(json.dumps(result.cpm_json(), indent=2) + "\n")
        names = sorted(os.listdir(tmp))
    return [outdir / n for n in names]


def evaluate_files(
    annotations_csv: str | os.PathLike,
    excluded_csv: str | os.PathLike,
    seriesuids_csv: str | os.PathLike,
    results_csv: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    name: str | None = None,
    max_marks: int | None = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
    drop_intermediate: bool = True,
    progress: bool = True,
) -> FrocResult:
    """``noduleCADEvaluationLUNA16.py ANNOTATIONS EXCLUDED SERIESUIDS RESULTS OUTDIR``: read, evaluate, write, print.

    Reads the CSVs with :mod:`lungnodule.luna` (bad input -> :class:`DataError` naming the file and line), runs
    :func:`evaluate_cad`, writes :func:`write_evaluation`'s files into `outdir` and prints the CPM summary. `name`
    (used in the file names) defaults to the results file's stem.
    """
    from . import luna  # the CSV readers live there; imported here so the core works without them

    uids = luna.read_seriesuids(seriesuids_csv)
    annotations = luna.read_annotations(annotations_csv)
    excluded = luna.read_annotations(excluded_csv)
    results = luna.read_results(results_csv)  # rows of unlisted UIDs are allowed and ignored, as in the script
    name = name or Path(results_csv).stem
    if len(results) and not results["seriesuid"].isin(set(uids)).any():
        # The official script ignores such rows too; a user who passed the wrong list should hear of it.
        print(f"warning: no row of {results_csv} belongs to a series UID listed in {seriesuids_csv}: every mark "
              "is ignored and every nodule counts as missed", file=sys.stderr)
    result = evaluate_cad(annotations, excluded, uids, results, max_marks=max_marks, n_bootstrap=n_bootstrap,
                          seed=seed, drop_intermediate=drop_intermediate, progress=progress)
    write_evaluation(result, outdir, name)
    print(result.summary(name))
    print(f"outputs in {Path(outdir)}")
    return result


# --- candidate-level ROC ------------------------------------------------------------------------------


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Candidate-level ROC: (fpr, tpr, thresholds, auc) from 0/1 `labels` and `scores` (higher = more nodule-like).

    Uses ``sklearn.metrics.roc_curve``; raises ValueError unless both classes are present.
    """
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    classes = set(np.unique(labels).tolist())
    if not classes <= {0, 1} or len(classes) < 2:
        raise ValueError(f"ROC needs labels of both classes 0 and 1; got {sorted(classes)}")
    fpr, tpr, thresholds = roc_curve(labels, scores)
    return fpr, tpr, thresholds, float(auc(fpr, tpr))


def candidate_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The ROC AUC of :func:`roc_auc`, or NaN when `labels` hold one class only (no ROC to draw)."""
    labels = np.asarray(labels).ravel()
    return roc_auc(labels, scores)[3] if 0 < labels.sum() < len(labels) else float("nan")


__all__ = [
    "FP_RATES", "FP_RATE_KEYS", "Matching", "Bootstrap", "FrocResult", "cap_marks", "match_candidates",
    "compute_froc", "sensitivities_leaderboard", "sensitivities_interpolated", "cpm_leaderboard",
    "cpm_interpolated", "hit_pairs", "bootstrap_counts", "bootstrap_froc", "evaluate_cad", "write_evaluation", "evaluate_files",
    "roc_auc", "candidate_auc", "plot_froc", "plot_roc",
]
