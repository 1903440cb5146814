"""The U-Net stage's lung field: :func:`lungnodule.lungs.lung_field_mask` dilated in-plane, and lung-bearing slices.

Used to pick lung-bearing slices (inference skips the others; negative training slices come from
them) and, optionally, to blank the image outside the lungs. The field is dilated by `dilate_mm` so
juxta-pleural nodules stay inside.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..lungs import LUNG_THRESHOLD_HU
from ..lungs import lung_field_mask as filled_lung_field


def lung_field_mask(hu: np.ndarray, spacing_zyx, threshold_hu: float = LUNG_THRESHOLD_HU, dilate_mm: float = 5.0,
                    min_fraction_of_largest: float = 0.1) -> np.ndarray:
    """Boolean lung-field mask (z, y, x) of a HU volume (z, y, x) with voxel size `spacing_zyx` mm.

    Returns an all-False mask when no air component is found inside the body.
    """
    lungs = filled_lung_field(hu, threshold_hu, min_fraction_of_largest)
    sy, sx = float(spacing_zyx[1]), float(spacing_zyx[2])
    ry, rx = max(1, round(dilate_mm / sy)), max(1, round(dilate_mm / sx))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rx + 1, 2 * ry + 1))
    out = np.empty(lungs.shape, dtype=bool)
    for z in range(lungs.shape[0]):  # per slice: OpenCV's dilation is much faster than a 3-D scipy one
        out[z] = cv2.dilate(lungs[z].view(np.uint8), kernel).astype(bool)
    return out


def lung_slices(lung_mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """Indices of the slices whose lung-field fraction is at least `min_fraction`.

    Falls back to every slice when none qualifies (the lung mask failed), so nothing is silently skipped.
    """
    frac = lung_mask.reshape(lung_mask.shape[0], -1).mean(axis=1)
    idx = np.flatnonzero(frac >= min_fraction)
    return idx if len(idx) else np.arange(lung_mask.shape[0])
