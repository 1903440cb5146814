"""Score fusion of the two stages: the MGI-CNN probability and the U-Net probability of a stage-1 candidate.

The fused score is a weighted mean of the two logits, sigmoid((1 - w) logit(p_mgi) + w logit(p_unet)):
w = 0 is the MGI-CNN alone (the original system), w = 1 the U-Net alone. The weight is chosen on the
validation subset by its CPM (ties: the higher candidate AUC, then the smaller w), never on the test subset.
The original never combined the stages' scores; with a small demo-sized MGI-CNN the U-Net's probability
carries information the second stage has not learned, and fusion lets validation decide how much.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, logit

_EPS = 1e-7  # probability clip: keeps logits finite for scores of exactly 0 or 1


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


def choose_weight(candidates: pd.DataFrame, mgi_probability: np.ndarray, weights: Sequence[float],
                  annotations: pd.DataFrame, excluded: pd.DataFrame | None, uids: Sequence[str]) -> dict:
    """The U-Net weight of `weights` with the best validation CPM of the fused scores.

    `candidates`: validation stage-1 candidates (seriesuid, world coordX/Y/Z mm, class, unet_probability);
    `mgi_probability` (N,) their MGI-CNN probabilities; `uids` every validation scan. Returns {"weight",
    "cpm", "auc", "froc" (the chosen weight's FrocResult), "table": [{"weight", "cpm", "auc"}, ...]}; ties on
    CPM go to the higher AUC, then the smaller weight (more of the second stage).
    """
    from ..evaluation import candidate_auc, evaluate_cad

    labels = candidates["class"].to_numpy()
    table, frocs = [], {}
    for w in sorted(float(w) for w in weights):
        score = fuse(mgi_probability, candidates["unet_probability"].to_numpy(), w)
        frocs[w] = evaluate_cad(annotations, excluded, uids, candidates.assign(probability=score), n_bootstrap=0)
        table.append({"weight": w, "cpm": float(frocs[w].cpm), "auc": candidate_auc(labels, score)})
    best = max(table, key=lambda r: (r["cpm"], np.nan_to_num(r["auc"], nan=-1.0), -r["weight"]))
    return {**best, "froc": frocs[best["weight"]], "table": table}
