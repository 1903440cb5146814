"""Imaging effects applied to an ideal HU volume: blur, slice thickness, noise, field of view, int16.

The scanner's point-spread function is an in-plane Gaussian of 0.5-0.8 mm sigma; the slice profile a
Gaussian along z of FWHM = slice thickness (1.0-1.3 x the slice spacing). Noise is white Gaussian
noise added *before* the blur, scaled so that after the blur its standard deviation is the scan's
noise level (10-40 HU): the result is spatially correlated like reconstructed CT noise. Partial
volume at edges comes from the anti-aliased drawing (`shapes.py`) plus this blur.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .presets import Geometry

HU_MIN, HU_MAX = -1024, 3071


def _kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(2.5 * sigma + 0.5))
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    return k / k.sum()


def apply_imaging(rng: np.random.Generator, hu: np.ndarray, geom: Geometry) -> tuple[np.ndarray, dict]:
    """Blur, add correlated noise, clip, pad outside the circular field of view; returns int16 (z, y, x).

    `hu` (float32) is modified in place and used as scratch. Also returns the imaging parameters drawn
    (`noise_hu`, `psf_mm`, `thickness_mm`) for the record.
    """
    sx, sy, sz = (float(v) for v in geom.spacing)
    noise_hu = float(rng.uniform(10, 40))
    psf_mm = float(rng.uniform(0.5, 0.8))
    thickness = sz * float(rng.uniform(1.0, 1.3))
    kernels = [_kernel(thickness / 2.355 / sz), _kernel(psf_mm / sy), _kernel(psf_mm / sx)]
    gain = float(np.prod([np.sqrt((k * k).sum()) for k in kernels]))  # noise std kept by the blur
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= noise_hu / gain
    hu += noise
    del noise
    for axis, k in enumerate(kernels):
        ndi.correlate1d(hu, k.astype(np.float32), axis=axis, output=hu, mode="nearest")
    np.rint(hu, out=hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    out = hu.astype(np.int16)
    if geom.padding is not None:
        ny, nx = out.shape[1:]
        yy = (np.arange(ny) - (ny - 1) / 2)[:, None]
        xx = (np.arange(nx) - (nx - 1) / 2)[None, :]
        outside = yy * yy + xx * xx > (min(nx, ny) / 2) ** 2
        out[:, outside] = geom.padding
    return out, {"noise_hu": noise_hu, "psf_mm": psf_mm, "thickness_mm": thickness}
