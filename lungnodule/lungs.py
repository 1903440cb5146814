"""A simple lung-field mask shared by the stages: threshold, 3-D connected components, hole filling.

Not a segmentation model: air below a HU threshold that does not touch the in-plane border of the scan
(outside air, the table, LUNA16's -2000 padding) is lung, small pockets are dropped and each slice's
holes (vessels, nodules) are filled. The U-Net stage dilates it to keep juxta-pleural nodules inside;
CT-GAN draws healthy sites inside it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

LUNG_THRESHOLD_HU = -320.0
# In-plane 4-connectivity only: each slice's holes are filled separately.
_PLANE = np.zeros((3, 3, 3), dtype=bool)
_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def lung_field_mask(hu: np.ndarray, threshold_hu: float = LUNG_THRESHOLD_HU,
                    min_fraction_of_largest: float = 0.1) -> np.ndarray:
    """Boolean lung-field mask (z, y, x) of a HU volume (z, y, x): air inside the body, holes filled.

    Air below `threshold_hu` that does not touch the y or x border is lung; components smaller than
    `min_fraction_of_largest` of the largest are dropped; each slice's holes are filled. All False
    when no such air exists.
    """
    air = np.asarray(hu) < threshold_hu
    labels, n = ndimage.label(air)
    if n == 0:
        return np.zeros(air.shape, dtype=bool)
    border = np.unique(np.concatenate([labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
                                       labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    sizes[border] = 0
    if sizes.max() == 0:
        return np.zeros(air.shape, dtype=bool)
    keep = sizes >= max(1, min_fraction_of_largest * sizes.max())
    return ndimage.binary_fill_holes(keep[labels], structure=_PLANE)
