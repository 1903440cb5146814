"""Imaging effects applied to an ideal HU volume: blur, slice thickness, noise, reconstruction kernel, FOV, int16.

The scanner's point-spread function is an in-plane Gaussian of 0.5-0.8 mm sigma; the slice profile a
Gaussian along z of FWHM = slice thickness (1.0-1.3 x the slice spacing). Noise is white Gaussian
noise added *before* the blur, scaled so that after the blur its standard deviation is the scan's
noise level (8-50 HU): the result is spatially correlated like reconstructed CT noise. The reconstruction
kernel, as LUNA16's scanners vary it, is "soft" (the blur alone), "standard" or "sharp": the last two boost
in-plane detail (and with it the noise) by an unsharp mask of gain 0.3-0.6 or 0.8-1.5 at 1.0-1.6 mm, as
lung and bone kernels do. Partial volume at edges comes from the anti-aliased drawing (`shapes.py`) plus
the blur.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .presets import Geometry

HU_MIN, HU_MAX = -1024, 3071
KERNELS = ("soft", "standard", "sharp")
KERNEL_SHARES = (0.35, 0.4, 0.25)


def _kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(2.5 * sigma + 0.5))
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    return k / k.sum()


def apply_imaging(rng: np.random.Generator, hu: np.ndarray, geom: Geometry) -> tuple[np.ndarray, dict]:
    """Blur, add correlated noise, apply the reconstruction kernel, clip, pad outside the circular field of
    view; returns int16 (z, y, x).

    `hu` (float32) is modified in place and used as scratch. Also returns the imaging parameters drawn
    (`noise_hu`, `psf_mm`, `thickness_mm`, `kernel`, `kernel_gain`) for the record.
    """
    sx, sy, sz = (float(v) for v in geom.spacing)
    noise_hu = float(rng.uniform(8, 50))
    psf_mm = float(rng.uniform(0.5, 0.8))
    thickness = sz * float(rng.uniform(1.0, 1.3))
    kernel = str(rng.choice(KERNELS, p=KERNEL_SHARES))
    sharpen = {"soft": 0.0, "standard": float(rng.uniform(0.3, 0.6)), "sharp": float(rng.uniform(0.8, 1.5))}[kernel]
    sharpen_mm = float(rng.uniform(1.0, 1.6))
    kernels = [_kernel(thickness / 2.355 / sz), _kernel(psf_mm / sy), _kernel(psf_mm / sx)]
    gain = float(np.prod([np.sqrt((k * k).sum()) for k in kernels]))  # noise std kept by the blur
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= noise_hu / gain
    hu += noise
    del noise
    for axis, k in enumerate(kernels):
        ndi.correlate1d(hu, k.astype(np.float32), axis=axis, output=hu, mode="nearest")
    if sharpen > 0:  # unsharp mask in-plane: hu + sharpen * (hu - blurred hu)
        smooth = ndi.gaussian_filter(hu, sigma=(0.0, sharpen_mm / sy, sharpen_mm / sx), mode="nearest")
        smooth -= hu
        hu -= sharpen * smooth
        del smooth
    np.rint(hu, out=hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    out = hu.astype(np.int16)
    if geom.padding is not None:
        ny, nx = out.shape[1:]
        yy = (np.arange(ny) - (ny - 1) / 2)[:, None]
        xx = (np.arange(nx) - (nx - 1) / 2)[None, :]
        outside = yy * yy + xx * xx > (min(nx, ny) / 2) ** 2
        out[:, outside] = geom.padding
    return out, {"noise_hu": noise_hu, "psf_mm": psf_mm, "thickness_mm": thickness, "kernel": kernel,
                 "kernel_gain": sharpen}
