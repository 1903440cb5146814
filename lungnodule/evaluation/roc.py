"""Candidate-level ROC: each candidate a sample with its 0/1 label (the LUNA16 hit rule) and its score."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, roc_curve


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
