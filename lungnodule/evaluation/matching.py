"""Matching CAD marks to LUNA16 annotations, rule for rule as ``noduleCADEvaluationLUNA16.py`` does.

World coordinates (x, y, z) in mm throughout. A mark hits an annotation when its squared distance to the
centre is strictly less than R^2, R = diameter / 2, a negative diameter meaning 10 mm; at most `max_marks`
(100) marks per scan (strict-threshold cap); included nodules are matched first, in file order (a nodule
scores its highest-probability hit, other hits are double detections), then excluded findings drop the
still-unmatched marks that hit them; every other mark is a false positive; a missed nodule stays in the
sensitivity denominator. See :mod:`lungnodule.evaluation` for the whole list of rules and choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

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
