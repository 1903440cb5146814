"""A simple lung-field mask: threshold, 3-D connected components, in-plane morphology.

Used to pick lung-bearing slices (inference skips the others; negative training slices come from
them) and, optionally, to blank the image outside the lungs. Not a segmentation model: air below
`threshold_hu` that does not touch the in-plane border of the scan (outside air, the table) is lung,
small pockets are dropped, each slice's holes (vessels, nodules) are filled and the field is dilated
by `dilate_mm` so juxta-pleural nodules stay inside.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

# In-plane 4-connectivity only: each slice's holes are filled separately.
_PLANE = np.zeros((3, 3, 3), dtype=bool)
_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def lung_field_mask(hu: np.ndarray, spacing_zyx, threshold_hu: float = -320.0, dilate_mm: float = 5.0,
                    min_fraction_of_largest: float = 0.1) -> np.ndarray:
    """Boolean lung-field mask (z, y, x) of a HU volume (z, y, x) with voxel size `spacing_zyx` mm.

    Returns an all-False mask when no air component is found inside the body.
    """
    air = np.asarray(hu) < threshold_hu
    labels, n = ndimage.label(air)
    if n == 0:
        return np.zeros(air.shape, dtype=bool)
    # Components touching the y or x border are outside air (LUNA16's -2000 padding included).
    border = np.unique(np.concatenate([labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
                                       labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    sizes[border] = 0
    if sizes.max() == 0:
        return np.zeros(air.shape, dtype=bool)
    keep = sizes >= max(1, min_fraction_of_largest * sizes.max())
    lungs = keep[labels]
    lungs = ndimage.binary_fill_holes(lungs, structure=_PLANE)
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
