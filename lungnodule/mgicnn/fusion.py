"""Score fusion of the two stages: the MGI-CNN probability and the U-Net probability of a stage-1 candidate.

The fused score is a weighted mean of the two logits, sigmoid((1 - w) logit(p_mgi) + w logit(p_unet)):
w = 0 is the MGI-CNN alone (the original system), w = 1 the U-Net alone. The weight is chosen on the
validation subset by its stable CPM (ties: the higher candidate AUC, then the smaller w), never on the test
subset.
The original never combined the stages' scores; with a small demo-sized MGI-CNN the U-Net's probability
carries information the second stage has not learned, and fusion lets validation decide how much.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, logit

_EPS = 1e-7  # probability clip: keeps logits finite for scores of exactly 0 or 1
# The U-Net weights a pipeline run tries on validation when its MGI-CNN preset names none: up to 0.9, so that a
# second stage better than the first cannot be thrown away by a few validation nodules (weight 1 drops it).
DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def fuse(mgi_probability: np.ndarray, unet_probability: np.ndarray, weight: float) -> np.ndarray:
    """Fused probability (N,) of per-candidate MGI-CNN and U-Net probabilities (N,), U-Net weight `weight` in
    [0, 1]; weight 0 returns the MGI-CNN probability unchanged. ValueError for a weight outside [0, 1] or a
    missing (NaN) U-Net probability where it is used."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must be in [0, 1], got {weight}")
    mgi = np.asarray(mgi_probability, np.float64)
    if weight == 0.0:
        return mgi.copy()
    unet = np.asarray(unet_probability, np.float64)
    if np.isnan(unet).any():
        raise ValueError("score fusion needs the U-Net probability of every candidate (stage-1 candidates only)")
    clip = lambda p: np.clip(p, _EPS, 1 - _EPS)
    return expit((1.0 - weight) * logit(clip(mgi)) + weight * logit(clip(unet)))


def _best(table: list[dict], key: str) -> dict:
    """The row with the highest `key` CPM; ties go to the higher AUC, then the smaller weight."""
    return max(table, key=lambda r: (r[key], np.nan_to_num(r["auc"], nan=-1.0), -r["weight"]))


def choose_weight(candidates: pd.DataFrame, mgi_probability: np.ndarray, weights: Sequence[float],
                  annotations: pd.DataFrame, excluded: pd.DataFrame | None, uids: Sequence[str],
                  leave_one_out: bool = True) -> dict:
    """The U-Net weight of `weights` with the best validation stable CPM of the fused scores.

    `candidates`: validation stage-1 candidates (seriesuid, world coordX/Y/Z mm, class, unet_probability);
    `mgi_probability` (N,) their MGI-CNN probabilities; `uids` every validation scan. The stable CPM is used,
    not the leaderboard reading, which jumps on a few scans (ties: the higher AUC, then the smaller weight,
    i.e. more of the second stage). With `leave_one_out`, the choice is repeated with each validation nodule
    left out in turn (moved to the excluded findings, so its marks count neither way), by both readings: how
    often it stays the same shows whether it rests on one nodule. Returns {"weight", "cpm_stable", "cpm",
    "auc", "froc" (the chosen weight's FrocResult), "table": [{"weight", "cpm_stable", "cpm", "auc"}, ...],
    "leave_one_out": {...}}.
    """
    from ..evaluation import candidate_auc, evaluate_cad

    labels = candidates["class"].to_numpy()
    unet = candidates["unet_probability"].to_numpy()
    scores = {float(w): fuse(mgi_probability, unet, float(w)) for w in sorted(float(w) for w in weights)}
    table, frocs = [], {}
    for w, score in scores.items():
        frocs[w] = evaluate_cad(annotations, excluded, uids, candidates.assign(probability=score), n_bootstrap=0)
        table.append({"weight": w, "cpm_stable": float(frocs[w].cpm_stable), "cpm": float(frocs[w].cpm),
                      "auc": candidate_auc(labels, score)})
    best = _best(table, "cpm_stable")
    out = {**best, "froc": frocs[best["weight"]], "table": table,
           "chosen_by": "validation stable CPM (ties: higher AUC, then smaller U-Net weight)"}
    if leave_one_out:
        out["leave_one_out"] = _leave_one_out(candidates, scores, table, annotations, excluded, uids)
    return out


def _leave_one_out(candidates: pd.DataFrame, scores: dict, table: list[dict], annotations: pd.DataFrame,
                   excluded: pd.DataFrame | None, uids: Sequence[str]) -> dict:
    """The weight each reading chooses with each validation nodule left out in turn (see :func:`choose_weight`)."""
    from ..evaluation import evaluate_cad

    val = annotations[annotations["seriesuid"].isin(set(uids))]
    auc = {r["weight"]: r["auc"] for r in table}
    full = {"stable": _best(table, "cpm_stable")["weight"], "leaderboard": _best(table, "cpm")["weight"]}
    chosen = {"stable": [], "leaderboard": []}
    base_excluded = excluded if excluded is not None else annotations.iloc[:0]
    for i in val.index:
        kept = annotations.drop(index=i)
        moved = pd.concat([base_excluded, annotations.loc[[i]]], ignore_index=True)
        rows = []
        for w, score in scores.items():
            r = evaluate_cad(kept, moved, uids, candidates.assign(probability=score), n_bootstrap=0)
            rows.append({"weight": w, "cpm_stable": r.cpm_stable, "cpm": r.cpm, "auc": auc[w]})
        chosen["stable"].append(_best(rows, "cpm_stable")["weight"])
        chosen["leaderboard"].append(_best(rows, "cpm")["weight"])
    out = {"nodules": int(len(val)), "same_choice": int(sum(w == full["stable"] for w in chosen["stable"]))}
    for reading, weights in chosen.items():
        out[reading] = {"full_choice": full[reading], "weights": weights, "distinct": sorted(set(weights)),
                        "same_choice": int(sum(w == full[reading] for w in weights))}
    return out
