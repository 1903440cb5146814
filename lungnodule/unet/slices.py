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


def context_positions(zs: np.ndarray, config: UnetConfig, spacing_z: float, depth: int) -> np.ndarray:
    """Continuous slice positions (N, C) of the input channels of slices `zs`: channel j at z + (j - k) * d,
    k = `config.context_slices`, d = `config.context_mm` / `spacing_z` slices (one slice when context_mm is
    0, the original's neighbours), clamped to the volume."""
    k = int(config.context_slices)
    step = config.context_mm / float(spacing_z) if config.context_mm > 0 else 1.0
    pos = np.asarray(zs, dtype=np.float64)[:, None] + np.arange(-k, k + 1) * step
    return np.clip(pos, 0, depth - 1)


def prepare_stacks(array: np.ndarray, zs: np.ndarray, config: UnetConfig, lung_mask: np.ndarray | None = None,
                   spacing_z: float = 1.0) -> np.ndarray:
    """Network inputs (N, S, S, C) float32 for slices `zs` of a HU volume `array` (z, y, x).

    Channel j holds the volume at :func:`context_positions` (C = 2k + 1 channels, k = `config.context_slices`;
    the slice itself when k = 0, the original's input): neighbouring slices let the network tell a nodule,
    which fades within a few millimetres, from a vessel's cross-section, which persists. With
    `config.context_mm` the neighbours lie that many mm away (`spacing_z` is the slice spacing in mm), linearly
    interpolated between slices, so the input means the same on 0.6 mm and 2.5 mm slices. `lung_mask` (z, y, x)
    is the whole volume's lung field, used when `config.mask_lungs` is set.
    """
    pos = context_positions(zs, config, spacing_z, array.shape[0])
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    # A position on a slice needs only that slice: its upper neighbour is itself (lo + 1 may be a slice
    # nothing else needs, or lie past the last prepared one when every position is whole, e.g. 2.5 mm of
    # context on 1.25 mm slices).
    hi = np.where(frac > 0, np.minimum(lo + 1, array.shape[0] - 1), lo)
    # Neighbouring stacks share slices: prepare each distinct slice once, then blend where positions fall
    # between slices (the window is linear inside [hu_min, hu_max], so blending after it is exact there).
    needed = np.unique(np.concatenate([lo.ravel(), hi.ravel()]))
    prepared = prepare_slices(array[needed], config, None if lung_mask is None else lung_mask[needed])
    where = np.searchsorted(needed, lo)
    out = prepared[where]
    if (frac > 0).any():
        upper = prepared[np.searchsorted(needed, hi)]
        f = frac[..., None, None].astype(np.float32)
        out = out * (1 - f) + upper * f
    return np.moveaxis(out, 1, -1)
