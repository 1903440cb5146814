"""Online augmentation of (slice, mask) pairs for U-Net training (reference section 2.3, defects fixed).

The original's geometric chain, in its order: elastic deformation, rotation, flips, shift. Here the steps
are composed into one source-coordinate map per sample and applied with a single bilinear resampling, so
image and mask get exactly the same transform and a small nodule is interpolated once (the original
resampled after each step); the mask is binarised at 0.5 after it, so it stays {0, 1} and aligned with
the image. With a crop size, the transformed mask is computed whole, the crop is chosen on it
(:func:`crop_origin`) and the image is resampled only inside the crop. Brightness and contrast, applied
last, change the image only (the original also distorted the mask). The elastic field is drawn per
sample from the caller's `numpy.random.Generator` (the original reused one fixed field). Images are
(H, W) or (H, W, C) float32 (every channel gets the same transform), masks (H, W).
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import UnetConfig

_OUTSIDE = -2.0  # a source coordinate past the border: bilinear sampling gives the zero fill


def _binarise(mask: np.ndarray) -> np.ndarray:
    return (mask >= 0.5).astype(np.float32)


def elastic_field(rng: np.random.Generator, shape: tuple[int, int], alpha: float,
                  sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Elastic displacement fields (dx, dy) in pixels (Simard et al.): U(-1, 1) noise of `shape` (H, W)
    smoothed by a Gaussian of `sigma` px and scaled by `alpha` px."""
    noise = rng.uniform(-1, 1, (2, *shape)).astype(np.float32)
    return tuple(cv2.GaussianBlur(n, (0, 0), sigma) * np.float32(alpha) for n in noise)


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """The 3x3 inverse of a 2x3 affine matrix that maps source to destination pixels."""
    return np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))


def crop_origin(mask: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left (y0, x0) of a random `size` x `size` window of an (H, W) mask.

    When the mask has nodule pixels, the window holds one of them (drawn at random) at least `size` / 8
    pixels from its border where the slice allows, so a crop of a nodule slice is a positive example;
    otherwise the window is anywhere in the slice.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    k = rng.integers(len(ys))
    margin = size // 8

    def start(lo: int, hi: int, limit: int) -> int:  # windows holding the pixel, clipped to the slice
        lo, hi = min(max(lo, 0), limit), min(max(hi, 0), limit)
        return int(rng.integers(lo, max(lo, hi) + 1))

    return (start(ys[k] - size + 1 + margin, ys[k] - margin, h - size),
            start(xs[k] - size + 1 + margin, xs[k] - margin, w - size))


def distort_intensity(image: np.ndarray, rng: np.random.Generator, factor_range: float,
                      mean: float | None = None) -> np.ndarray:
    """Brightness and contrast changes (PIL `ImageEnhance` semantics, factors U(1-r, 1+r), random order) on the
    image only, clipped to [0, 1]; contrast scales about `mean` (default: the image's mean; a crop passes its
    slice's). The original's third operation, colour, is a no-op on grey slices."""
    out = image
    for op in rng.permutation(["brightness", "contrast"]):
        f = rng.uniform(1 - factor_range, 1 + factor_range)
        m = out.mean() if mean is None else mean
        out = out * f if op == "brightness" else m + f * (out - m)
        if mean is not None and op == "brightness":
            mean = mean * f
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def source_map(rng: np.random.Generator, shape: tuple[int, int], config: UnetConfig):
    """Draw one sample's geometric augmentation of an (H, W) slice; returns (map_x, map_y).

    The maps (H, W) float32 give, for every output pixel, the input pixel it samples (for `cv2.remap`):
    output p = shift(flip(rotate(elastic(input)))), so the source of p is q + d(q) with
    q = rotate^-1 flip shift^-1 p and d the elastic field. Sources that the original chain would have
    filled with zeros (rotated or shifted in from outside the slice) are marked outside.
    """
    h, w = shape
    c = config
    field = None
    if c.elastic_p > 0 and rng.random() < c.elastic_p:
        field = elastic_field(rng, shape, c.elastic_alpha, c.elastic_sigma)
    inverse = np.eye(3)
    if c.rotate_p > 0 and rng.random() < c.rotate_p:
        angle = float(rng.integers(-int(c.rotate_deg), int(c.rotate_deg), endpoint=True))
        inverse = _inverse(cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0))
    if rng.random() < c.flip_p:
        inverse = inverse @ np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]])
    if rng.random() < c.flip_p:
        inverse = inverse @ np.array([[1.0, 0, 0], [0, -1, h - 1], [0, 0, 1]])
    if c.shift_p > 0 and rng.random() < c.shift_p:
        dx, dy = rng.integers(-c.shift_px, c.shift_px, size=2, endpoint=True)
        inverse = inverse @ np.array([[1.0, 0, -dx], [0, 1, -dy], [0, 0, 1]])
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    qx = (inverse[0, 0] * gx + inverse[0, 1] * gy + inverse[0, 2]).astype(np.float32)
    qy = (inverse[1, 0] * gx + inverse[1, 1] * gy + inverse[1, 2]).astype(np.float32)
    outside = (qx <= -1) | (qx >= w) | (qy <= -1) | (qy >= h)
    if field is not None:
        sample = lambda f: cv2.remap(f, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        qx, qy = qx + sample(field[0]), qy + sample(field[1])
    qx[outside] = _OUTSIDE
    qy[outside] = _OUTSIDE
    return qx, qy


def _remap(a: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    out = cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # OpenCV drops a trailing channel axis of length 1; the reshape restores it.
    return out.reshape(map_x.shape + a.shape[2:])


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: UnetConfig,
                 crop_size: int = 0):
    """Apply the original's random augmentation chain to one (H, W) or (H, W, C) slice and its (H, W) binary
    mask; with `crop_size` > 0 (smaller than the slice), return a `crop_size` window of the result placed
    by :func:`crop_origin`.

    Returns new float32 arrays (inputs are not modified); the mask is exactly {0, 1}.
    """
    image = np.asarray(image, dtype=np.float32)
    mask = _binarise(np.asarray(mask, dtype=np.float32))
    slice_mean = float(image.mean())  # contrast scales about the whole slice's mean, also for a crop
    map_x, map_y = source_map(rng, mask.shape, config)
    mask = _binarise(_remap(mask, map_x, map_y))
    if 0 < crop_size < min(mask.shape):
        y0, x0 = crop_origin(mask, crop_size, rng)
        window = (slice(y0, y0 + crop_size), slice(x0, x0 + crop_size))
        map_x, map_y, mask = map_x[window], map_y[window], mask[window]
    image = _remap(image, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y))
    if config.distort_range > 0:
        image = distort_intensity(image, rng, config.distort_range, slice_mean)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
