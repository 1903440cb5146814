"""Candidate coverage (how many nodules a candidate list reaches) and operating thresholds read off a FROC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from .matching import MISSED_PROBABILITY, hit_pairs

if TYPE_CHECKING:  # annotations only
    from .result import FrocResult


def nodule_hits(candidates: pd.DataFrame, annotations: pd.DataFrame) -> np.ndarray:
    """For each row of `annotations`, whether any candidate of the same series lies strictly within its radius.

    The LUNA16 hit criterion (distance < diameter / 2, world mm; a negative diameter means 10 mm).
    """
    hits = np.zeros(len(annotations), dtype=bool)
    hits[hit_pairs(candidates, annotations)[1]] = True
    return hits


def label_candidates(candidates: pd.DataFrame, annotations: pd.DataFrame) -> np.ndarray:
    """Class (N,) int64 of each candidate: 1 when it lies strictly within an annotated nodule's radius.

    World (x, y, z) mm; the LUNA16 hit rule (distance < diameter / 2, negative diameter = 10 mm).
    """
    labels = np.zeros(len(candidates), dtype=np.int64)
    labels[hit_pairs(candidates, annotations)[0]] = 1
    return labels


def split_metrics(candidates: pd.DataFrame, annotations: pd.DataFrame, uids: Sequence[str]) -> dict:
    """Candidate sensitivity (LUNA16 hit criterion), nodules, hits and candidates per scan over the scans `uids`."""
    ann = annotations[annotations["seriesuid"].isin(uids)]
    cands = candidates[candidates["seriesuid"].isin(uids)]
    hits = nodule_hits(cands, ann)
    return {"scans": len(uids), "nodules": int(len(ann)), "nodules_hit": int(hits.sum()),
            "candidate_sensitivity": float(hits.mean()) if len(ann) else float("nan"),
            "candidates_per_scan": len(cands) / max(len(uids), 1), "candidates": int(len(cands))}


def threshold_at_fps(result: "FrocResult", fps_per_scan: float) -> float:
    """The score threshold of a FROC at the last point of its full curve (every threshold kept) with at most
    `fps_per_scan` false positives per scan; the highest real threshold when none is (missed nodules' placeholder
    score and the curve's +inf start are never thresholds)."""
    fps, thr = result.full_curve.fps, np.asarray(result.full_curve.thresholds, np.float64)
    real = np.isfinite(thr) & (thr > MISSED_PROBABILITY)
    ok = np.flatnonzero((fps <= fps_per_scan) & real)
    if len(ok):
        return float(thr[ok[-1]])
    return float(thr[real].max()) if real.any() else 0.5
