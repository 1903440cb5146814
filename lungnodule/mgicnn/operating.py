"""The stage-1 operating point: which of the U-Net's candidates the final score ranks, chosen on validation.

Stage 1 writes every candidate down to its lowest threshold (at most its `max_candidates` per scan); the
operating point keeps those whose U-Net probability reaches `threshold`, at most `max_candidates` per scan
(highest U-Net probability first). A lower threshold and more candidates find more nodules but give the
second stage more false positives to rank; which is best depends on how well that stage ranks, so it is chosen
for the final (fused) score's stable CPM on the validation subset, among the points whose FROC reaches 8
false positives per scan (where the CPM's last rate lies); ties go to fewer candidates per scan.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

FULL_RATE = 8.0  # the CPM's highest false-positive rate


def keep(candidates: pd.DataFrame, threshold: float, max_candidates: int | None) -> np.ndarray:
    """Boolean mask of the candidates at an operating point: U-Net probability >= `threshold` and among the
    `max_candidates` highest of their scan (None or <= 0: no cap)."""
    unet = candidates["unet_probability"].to_numpy(np.float64)
    ok = unet >= threshold
    if max_candidates is not None and max_candidates > 0:
        rank = (pd.Series(np.where(ok, unet, -np.inf), index=candidates.index)
                .groupby(candidates["seriesuid"].to_numpy()).rank(ascending=False, method="first").to_numpy())
        ok &= rank <= max_candidates
    return ok


def choose_operating_point(candidates: pd.DataFrame, score: np.ndarray, thresholds: Sequence[float],
                           max_candidates: Sequence[int], annotations: pd.DataFrame, excluded: pd.DataFrame | None,
                           uids: Sequence[str]) -> dict:
    """The (threshold, max_candidates) of the grid with the best validation stable CPM of `score`.

    `candidates`: validation stage-1 candidates (seriesuid, world coordX/Y/Z mm, unet_probability); `score`
    (N,) their final score; `uids` every validation scan. Points whose FROC stops short of 8 FP per scan are
    taken only when no point reaches it. Returns {"threshold", "max_candidates", "cpm_stable", "cpm",
    "candidates_per_scan", "reaches_8_fps", "table": [...]}.
    """
    from ..evaluation import evaluate_cad

    table = []
    for t in sorted(float(v) for v in thresholds):
        for k in sorted(int(v) for v in max_candidates):
            mask = keep(candidates, t, k)
            r = evaluate_cad(annotations, excluded, uids, candidates[mask].assign(probability=score[mask]),
                             n_bootstrap=0)
            table.append({"threshold": t, "max_candidates": k, "cpm_stable": float(r.cpm_stable), "cpm": float(r.cpm),
                          "candidates_per_scan": float(mask.sum()) / max(len(uids), 1),
                          "reaches_8_fps": bool(r.full_curve.fps.max() >= FULL_RATE)})
    pool = [r for r in table if r["reaches_8_fps"]] or table
    best = max(pool, key=lambda r: (r["cpm_stable"], -r["candidates_per_scan"], r["threshold"]))
    return {**best, "table": table,
            "chosen_by": "validation stable CPM of the final score, among points reaching 8 FP/scan (ties: fewer "
                         "candidates per scan)"}
