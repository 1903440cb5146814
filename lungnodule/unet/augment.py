"""Online augmentation of (slice, mask) pairs for U-Net training (reference section 2.3, defects fixed).

Order as in the original: elastic deformation, rotation, flips, brightness/contrast, shift. Image and
mask get the same geometric transform with the same (linear) interpolation; the mask is re-binarised
at 0.5 after every interpolation, so it stays {0, 1} and aligned with the image. Brightness and contrast
change the image only (the original also distorted the mask). The elastic field is drawn per sample from
the caller's `numpy.random.Generator` (the original reused one fixed field). Images are (H, W) or
(H, W, C) float32 (every channel gets the same transform), masks (H, W).
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import UnetConfig


def _binarise(mask: np.ndarray) -> np.ndarray:
    return (mask >= 0.5).astype(np.float32)


def elastic_deform(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float):
    """Elastic deformation (Simard et al.): displacement fields U(-1, 1) smoothed by a Gaussian of `sigma` px,
    scaled by `alpha` px, applied to image and mask with bilinear interpolation (zero outside)."""
    h, w = image.shape[:2]
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = gx + dx, gy + dy
    # OpenCV drops a trailing channel axis of length 1; the reshape restores it.
    warp = lambda a: cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0).reshape(a.shape)
    return warp(image), _binarise(warp(mask))


def _affine(image: np.ndarray, mask: np.ndarray, matrix: np.ndarray):
    h, w = image.shape[:2]
    warp = lambda a: cv2.warpAffine(a, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=0).reshape(a.shape)
    return warp(image), _binarise(warp(mask))


def rotate(image: np.ndarray, mask: np.ndarray, angle_deg: float):
    """Rotate both arrays by `angle_deg` degrees about the image centre (zero fill), as the original's OpenCV call."""
    h, w = image.shape[:2]
    return _affine(image, mask, cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, 1.0))


def shift(image: np.ndarray, mask: np.ndarray, dx: int, dy: int):
    """Translate both arrays by (dx, dy) pixels (zero fill)."""
    return _affine(image, mask, np.float32([[1, 0, dx], [0, 1, dy]]))


def distort_intensity(image: np.ndarray, rng: np.random.Generator, factor_range: float) -> np.ndarray:
    """Brightness and contrast changes (PIL `ImageEnhance` semantics, factors U(1-r, 1+r), random order) on the
    image only, clipped to [0, 1]. The original's third operation, colour, is a no-op on grey slices."""
    out = image
    ops = ["brightness", "contrast"]
    for op in rng.permutation(ops):
        f = rng.uniform(1 - factor_range, 1 + factor_range)
        out = out * f if op == "brightness" else out.mean() + f * (out - out.mean())
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: UnetConfig):
    """Apply the original's random augmentation chain to one (H, W) or (H, W, C) slice and its (H, W) binary mask.

    Returns new float32 arrays (inputs are not modified); the mask is exactly {0, 1}.
    """
    image = np.asarray(image, dtype=np.float32)
    mask = _binarise(np.asarray(mask, dtype=np.float32))
    c = config
    if c.elastic_p > 0 and rng.random() < c.elastic_p:
        image, mask = elastic_deform(image, mask, rng, c.elastic_alpha, c.elastic_sigma)
    if c.rotate_p > 0 and rng.random() < c.rotate_p:
        image, mask = rotate(image, mask, float(rng.integers(-int(c.rotate_deg), int(c.rotate_deg), endpoint=True)))
    if rng.random() < c.flip_p:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if rng.random() < c.flip_p:
        image, mask = image[::-1], mask[::-1]
    if c.distort_range > 0:
        image = distort_intensity(image, rng, c.distort_range)
    if c.shift_p > 0 and rng.random() < c.shift_p:
        dx, dy = rng.integers(-c.shift_px, c.shift_px, size=2, endpoint=True)
        image, mask = shift(image, mask, int(dx), int(dy))
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
