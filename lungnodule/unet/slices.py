"""Slice preparation shared by preprocessing and inference: HU window, optional lung blanking, resize, context."""

from __future__ import annotations

import cv2
import numpy as np

from ..intensity import window_hu
from .config import UnetConfig

_INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
                  "area": cv2.INTER_AREA}


def prepare_slices(hu: np.ndarray, config: UnetConfig, lung_mask: np.ndarray | None = None) -> np.ndarray:
    """Network inputs (N, S, S) float32 in [0, 1] from HU slices (N, H, W); S = `config.image_size`.

    Windows HU to [hu_min, hu_max] -> [0, 1], zeroes pixels outside `lung_mask` (N, H, W) when
    `config.mask_lungs` is set, and resizes with `config.image_interpolation` (then clips, since cubic
    interpolation overshoots).
    """
    try:
        flag = _INTERPOLATION[config.image_interpolation]
    except KeyError:
        raise ValueError(f"image_interpolation must be one of {sorted(_INTERPOLATION)}, got {config.image_interpolation!r}") from None
    x = window_hu(hu, config.hu_min, config.hu_max)
    if config.mask_lungs and lung_mask is not None:
        x = np.where(lung_mask, x, np.float32(0.0))
    s = config.image_size
    n, h, w = x.shape
    if (h, w) == (s, s):
        return np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((n, s, s), dtype=np.float32)
    for i in range(n):  # OpenCV resizes one 2-D image at a time
        out[i] = cv2.resize(x[i], (s, s), interpolation=flag)
    return np.clip(out, 0.0, 1.0, out=out)


def prepare_stacks(array: np.ndarray, zs: np.ndarray, config: UnetConfig, lung_mask: np.ndarray | None = None) -> np.ndarray:
    """Network inputs (N, S, S, C) float32 for slices `zs` of a HU volume `array` (z, y, x).

    Channel j holds slice z + j - k, k = `config.context_slices` (C = 2k + 1; the slice itself when k = 0,
    the original's input), clamped to the volume: neighbouring slices let the network tell a nodule,
    which fades within a few slices, from a vessel's cross-section, which persists. `lung_mask` (z, y, x)
    is the whole volume's lung field, used when `config.mask_lungs` is set.
    """
    k = int(config.context_slices)
    idx = np.clip(np.asarray(zs, dtype=int)[:, None] + np.arange(-k, k + 1), 0, array.shape[0] - 1)
    # Neighbouring stacks share slices: prepare each distinct slice once.
    uniq, inverse = np.unique(idx, return_inverse=True)
    prepared = prepare_slices(array[uniq], config, None if lung_mask is None else lung_mask[uniq])
    return np.moveaxis(prepared[inverse.reshape(idx.shape)], 1, -1)
