"""Training masks drawn from nodule annotations, and the slice <-> network-input pixel mapping.

A nodule annotated with centre (x, y, z) world mm and diameter d mm is a sphere of radius R = d / 2 mm.
On slice z its cross-section is a disc of radius sqrt(R^2 - dz^2) mm (dz in mm along z), an ellipse in
pixels when the in-plane spacing differs per axis. Masks are drawn directly at the network input size
(`out_hw`), which is the nearest-neighbour resize of the native-resolution disc without its aliasing
(a 3 mm nodule never vanishes). The pixel holding the centre is always set on the slices that touch
the nodule. Pixel mapping follows OpenCV's resize: u_out = (u + 0.5) * out / n - 0.5.
"""

from __future__ import annotations

import numpy as np


def to_output_pixels(coord, n: int, out: int):
    """Map a continuous pixel coordinate on an axis of `n` pixels to the resized axis of `out` pixels."""
    return (np.asarray(coord, dtype=np.float64) + 0.5) * (out / n) - 0.5


def from_output_pixels(coord, n: int, out: int):
    """Inverse of :func:`to_output_pixels`: resized-axis coordinate back to the native axis of `n` pixels."""
    return (np.asarray(coord, dtype=np.float64) + 0.5) * (n / out) - 0.5


def nodule_slice_range(centres_zyx: np.ndarray, radii_mm: np.ndarray, spacing_zyx, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last slice index (inclusive, clipped to [0, depth-1]) that each nodule touches.

    A slice is touched when its centre lies within R of the nodule centre along z, and the slice nearest
    to the centre always is. Nodules entirely outside the scan get an empty range (first > last).
    """
    zc = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)[:, 0]
    half = np.asarray(radii_mm, dtype=np.float64) / float(spacing_zyx[0])
    nearest = np.rint(zc)
    first = np.minimum(np.ceil(zc - half), nearest)
    last = np.maximum(np.floor(zc + half), nearest)
    return np.maximum(first, 0).astype(int), np.minimum(last, depth - 1).astype(int)


def draw_slice_mask(z: int, shape_zyx, spacing_zyx, centres_zyx, radii_mm, out_hw: tuple[int, int],
                    min_radius_px: float = 0.0) -> np.ndarray:
    """The (out_h, out_w) uint8 {0, 1} mask of the nodules' cross-sections on native slice `z`.

    `shape_zyx` and `spacing_zyx` describe the native volume, `centres_zyx` (K, 3) continuous voxel
    indices (from :meth:`Volume.world_to_voxel`), `radii_mm` (K,) radii in mm. Each disc is drawn with
    at least `min_radius_px` output pixels of radius on every slice the nodule touches (0: the true
    cross-section). Vectorised over nodules.
    """
    _, h, w = shape_zyx
    oh, ow = out_hw
    sz, sy, sx = (float(s) for s in spacing_zyx)
    c = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    r = np.asarray(radii_mm, dtype=np.float64).reshape(-1)
    first, last = nodule_slice_range(c, r, spacing_zyx, shape_zyx[0])
    on = (first <= z) & (z <= last)
    mask = np.zeros((oh, ow), dtype=np.uint8)
    if not on.any():
        return mask
    c, r = c[on], r[on]
    disc_mm = np.sqrt(np.maximum(r ** 2 - ((z - c[:, 0]) * sz) ** 2, 0.0))
    cy = to_output_pixels(c[:, 1], h, oh)
    cx = to_output_pixels(c[:, 2], w, ow)
    ry = np.maximum(disc_mm / sy * (oh / h), min_radius_px)
    rx = np.maximum(disc_mm / sx * (ow / w), min_radius_px)
    yy = np.arange(oh, dtype=np.float64)[None, :, None]
    xx = np.arange(ow, dtype=np.float64)[None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = ((yy - cy[:, None, None]) / ry[:, None, None]) ** 2 + ((xx - cx[:, None, None]) / rx[:, None, None]) ** 2 <= 1.0
    mask[inside.any(axis=0)] = 1
    # The centre pixel, so that a nodule thinner than a pixel or a slice is never lost.
    iy, ix = np.rint(cy).astype(int), np.rint(cx).astype(int)
    ok = (iy >= 0) & (iy < oh) & (ix >= 0) & (ix < ow)
    mask[iy[ok], ix[ok]] = 1
    return mask
