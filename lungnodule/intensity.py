"""Intensity transforms shared by the stages."""

from __future__ import annotations

import numpy as np

HU_MIN = -1000.0
HU_MAX = 400.0


def window_hu(array, lo: float = HU_MIN, hi: float = HU_MAX, dtype=np.float32) -> np.ndarray:
    """Map HU linearly from [lo, hi] to [0, 1] and clip (the original's `normalize_hu`).

    Works on any shape; values below `lo` (air, outside-field-of-view padding) become 0.
    """
    out = (np.asarray(array, dtype=dtype) - dtype(lo)) / dtype(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)
