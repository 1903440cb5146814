"""Candidate patches and the three MGI-CNN scales, vectorised over candidates.

A patch is PATCH_SHAPE = 28x42x42 voxels (z, y, x) at the scan's native spacing, centred on the
candidate's rounded voxel index (voxels c-14 ... c+13 along z, c-21 ... c+20 along y and x), windowed
[-1000, 400] HU -> [0, 1]; whatever lies outside the volume is air (0). Its 26x40x40 centre crop gives the
three 6x20x20 scales of the original (reference section 3.2): the 6x20x20 centre crop; the 10x30x30 centre
crop zoomed to 6x20x20; the whole 26x40x40 zoomed to 6x20x20. The zoom is scipy.ndimage.zoom's (cubic
spline, boundary mode 'nearest'), applied as three exact 1-D operators (the spline zoom is separable and
linear) so a batch of patches is one einsum. Scales are returned channels-last, (N, 3, 20, 20, 6): the six
z-slices are the channels of a 2-D network.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..intensity import window_hu

if TYPE_CHECKING:  # annotations only: the model (which needs the shapes below) must not pull in SimpleITK
    from ..volume import Volume

PATCH_SHAPE = (28, 42, 42)
CROP_SHAPE = (26, 40, 40)
SCALE_SHAPE = (6, 20, 20)
MID_SHAPE = (10, 30, 30)
N_SCALES = 3
INPUT_SHAPE = (SCALE_SHAPE[1], SCALE_SHAPE[2], SCALE_SHAPE[0])  # (y, x, z-slices as channels)
ROTATIONS = 4
SHIFTS = 27
AUGMENTATIONS = ROTATIONS * SHIFTS  # copies of each positive per epoch (the real one comes on top)


@functools.lru_cache(maxsize=None)
def zoom_matrix(n_in: int, n_out: int, order: int = 3) -> np.ndarray:
    """The (n_out, n_in) matrix of scipy.ndimage.zoom along one axis (factor n_out / n_in, mode 'nearest').

    Column i is the zoom of the i-th unit vector, so ``M @ v == zoom(v, n_out / n_in)`` for any vector v.
    """
    eye = np.eye(n_in, dtype=np.float64)
    cols = [ndimage.zoom(eye[i], n_out / n_in, order=order, mode="nearest") for i in range(n_in)]
    m = np.stack(cols, axis=1)
    if m.shape != (n_out, n_in):
        raise AssertionError(f"zoom {n_in}->{n_out} gave shape {m.shape}")
    return m


def _zoom_batch(x: np.ndarray, out_shape: tuple[int, int, int], order: int) -> np.ndarray:
    """Zoom a batch (N, z, y, x) to (N, *out_shape) with the separable spline operators."""
    mz, my, mx = (zoom_matrix(n, m, order).astype(np.float32) for n, m in zip(x.shape[1:], out_shape))
    return np.einsum("az,by,cx,nzyx->nabc", mz, my, mx, x, optimize=True)


def _centre(shape_in: tuple[int, ...], shape_out: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice((a - b) // 2, (a - b) // 2 + b) for a, b in zip(shape_in, shape_out))


def scales_from_crops(crops: np.ndarray, order: int = 3) -> np.ndarray:
    """Three scales (N, 3, 20, 20, 6) float32 from 26x40x40 crops (N, 26, 40, 40) in [0, 1].

    Scale 0: the 6x20x20 centre crop; scale 1: the 10x30x30 centre crop zoomed to 6x20x20; scale 2: the
    whole crop zoomed to 6x20x20 (cubic spline, mode 'nearest'). Axis order of each scale: (y, x, z).
    """
    crops = np.asarray(crops, dtype=np.float32)
    if crops.shape[1:] != CROP_SHAPE:
        raise ValueError(f"crops must be (N, {CROP_SHAPE}), got {crops.shape}")
    small = crops[(slice(None), *_centre(CROP_SHAPE, SCALE_SHAPE))]
    mid = _zoom_batch(crops[(slice(None), *_centre(CROP_SHAPE, MID_SHAPE))], SCALE_SHAPE, order)
    large = _zoom_batch(crops, SCALE_SHAPE, order)
    out = np.stack([small, mid, large], axis=1)  # (N, 3, 6, 20, 20)
    return np.ascontiguousarray(out.transpose(0, 1, 3, 4, 2))


def centre_crops(patches: np.ndarray) -> np.ndarray:
    """The 26x40x40 centre crops (N, 26, 40, 40) of 28x42x42 patches (N, 28, 42, 42)."""
    return patches[(slice(None), *_centre(PATCH_SHAPE, CROP_SHAPE))]


def augmented_crops(patches: np.ndarray, aug: np.ndarray) -> np.ndarray:
    """Augmented 26x40x40 crops of 28x42x42 patches: `aug` (N,) in [0, 108) picks rotation and shift.

    aug = rotation * 27 + shift; the patch is rotated by rotation x 90 degrees in the (y, x) plane
    (np.rot90, axes (y, x)), then cropped at offsets (dz, dy, dx) = the base-3 digits of shift (0..2 each).
    aug 13 (no rotation, offsets 1, 1, 1) is the real centre crop.
    """
    patches = np.asarray(patches)
    aug = np.asarray(aug, dtype=np.int64)
    out = np.empty((len(patches), *CROP_SHAPE), dtype=np.float32)
    rot, shift = np.divmod(aug, SHIFTS)
    dz, dy, dx = shift // 9, (shift // 3) % 3, shift % 3
    for k in range(ROTATIONS):  # vectorised over the patches of each rotation
        sel = np.flatnonzero(rot == k)
        if not len(sel):
            continue
        rotated = np.rot90(patches[sel], k, axes=(2, 3))
        # Gather each patch's window through a sliding-window view: one fancy index, no per-voxel loop.
        win = np.lib.stride_tricks.sliding_window_view(rotated, CROP_SHAPE, axis=(1, 2, 3))
        out[sel] = win[np.arange(len(sel)), dz[sel], dy[sel], dx[sel]]
    return out


def windowed_volume(volume: Volume, hu_min: float = -1000.0, hu_max: float = 400.0) -> np.ndarray:
    """The scan windowed to [0, 1] float32 and padded with air (0) by half a patch on each side, (z, y, x)."""
    pad = [(p // 2, p // 2) for p in PATCH_SHAPE]
    return np.pad(window_hu(volume.array, hu_min, hu_max), pad, mode="constant", constant_values=0.0)


def candidate_centres(volume: Volume, points_xyz: np.ndarray) -> np.ndarray:
    """Rounded voxel centres (N, 3) int64 (z, y, x) of world points (N, 3) (x, y, z) mm, through the direction matrix."""
    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    if not len(pts):
        return np.zeros((0, 3), dtype=np.int64)
    return np.rint(volume.world_to_voxel(pts)).astype(np.int64)


def extract_patches(padded: np.ndarray, centres_zyx: np.ndarray) -> np.ndarray:
    """28x42x42 patches (N, 28, 42, 42) float32 around voxel centres (N, 3) of a :func:`windowed_volume`.

    Centres are voxel indices (z, y, x) of the unpadded scan; a centre outside the scan is clipped to the
    nearest position whose patch still fits the padded array (so its patch is air and the scan's edge).
    """
    centres = np.asarray(centres_zyx, dtype=np.int64).reshape(-1, 3)
    shape = np.asarray(padded.shape) - (np.asarray(PATCH_SHAPE) // 2) * 2
    # In padded coordinates the patch of centre c starts at c (c - half + half).
    start = np.clip(centres, 0, shape - 1)
    win = np.lib.stride_tricks.sliding_window_view(padded, PATCH_SHAPE)
    return np.ascontiguousarray(win[start[:, 0], start[:, 1], start[:, 2]], dtype=np.float32)


def _axis_weights(centres: np.ndarray, n_out: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear-interpolation weights of `n_out` samples `step` native voxels apart, centred on each of the
    continuous `centres` (N,) along one axis: (first native index of each block (N,), weights (N, n_out, L))."""
    pos = centres[:, None] + (np.arange(n_out) - (n_out - 1) / 2.0) * step
    start = np.floor(pos[:, 0]).astype(np.int64)
    length = int(np.ceil((n_out - 1) * step)) + 2
    rel = pos - start[:, None]
    j0 = np.clip(np.floor(rel).astype(np.int64), 0, length - 2)
    frac = (rel - j0).astype(np.float32)
    w = np.zeros((len(centres), n_out, length), np.float32)
    n, k = np.meshgrid(np.arange(len(centres)), np.arange(n_out), indexing="ij")
    np.add.at(w, (n, k, j0), 1.0 - frac)
    np.add.at(w, (n, k, j0 + 1), frac)
    return start, w


def resampled_patches(windowed: np.ndarray, centres_zyx: np.ndarray, spacing_zyx, patch_spacing_mm) -> np.ndarray:
    """28x42x42 patches (N, 28, 42, 42) float32 sampled every `patch_spacing_mm` (z, y, x) mm around continuous
    voxel centres (N, 3) of a windowed scan (z, y, x) with voxel size `spacing_zyx` mm; trilinear, air (0)
    outside the scan. Each patch is a small block of the scan times one interpolation matrix per axis (the
    trilinear sampling of an axis-aligned grid is separable), so it costs about as much as a native cut."""
    centres = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    steps = np.asarray(patch_spacing_mm, np.float64) / np.asarray(spacing_zyx, np.float64)
    starts, weights, index, valid = [], [], [], []
    for axis in range(3):
        start, w = _axis_weights(centres[:, axis], PATCH_SHAPE[axis], steps[axis])
        idx = start[:, None] + np.arange(w.shape[2])
        starts.append(start)
        weights.append(w)
        valid.append((idx >= 0) & (idx < windowed.shape[axis]))
        index.append(np.clip(idx, 0, windowed.shape[axis] - 1))
    iz, iy, ix = index
    block = windowed[iz[:, :, None, None], iy[:, None, :, None], ix[:, None, None, :]]
    inside = valid[0][:, :, None, None] & valid[1][:, None, :, None] & valid[2][:, None, None, :]
    block = np.where(inside, block, np.float32(0.0))
    return np.einsum("naz,nby,ncx,nzyx->nabc", weights[0], weights[1], weights[2], block, optimize=True)


def cut_patches(volume: Volume, points_xyz: np.ndarray, windowed: np.ndarray, patch_spacing_mm=()) -> np.ndarray:
    """28x42x42 patches (N, 28, 42, 42) of candidates at world (x, y, z) mm points (N, 3) of `volume`.

    `windowed` is the scan windowed to [0, 1]: the padded copy of :func:`windowed_volume` for native patches
    (`patch_spacing_mm` empty, the original: voxels around the rounded centre), the unpadded one
    (:func:`~lungnodule.intensity.window_hu`) for patches resampled to `patch_spacing_mm` (z, y, x) mm around
    the exact centre (:func:`resampled_patches`), which look the same whatever the scan's voxel size.
    """
    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    if not len(patch_spacing_mm):
        return extract_patches(windowed, candidate_centres(volume, pts))
    return resampled_patches(windowed, volume.world_to_voxel(pts).reshape(-1, 3), volume.spacing_zyx,
                             patch_spacing_mm)


def windowed_for(volume: Volume, hu_min: float, hu_max: float, patch_spacing_mm=()) -> np.ndarray:
    """The windowed copy of the scan :func:`cut_patches` needs: padded with air for native patches, plain for
    resampled ones."""
    if len(patch_spacing_mm):
        return window_hu(volume.array, hu_min, hu_max)
    return windowed_volume(volume, hu_min, hu_max)


def candidate_scales(volume: Volume, points_xyz: np.ndarray, hu_min: float = -1000.0, hu_max: float = 400.0,
                     order: int = 3, chunk: int = 256, padded: np.ndarray | None = None,
                     patch_spacing_mm=()) -> np.ndarray:
    """The three scales (N, 3, 20, 20, 6) float32 of candidates at world (x, y, z) mm points (N, 3) of `volume`.

    Patches are cut by :func:`cut_patches` (native voxels around the rounded centre, or resampled to
    `patch_spacing_mm`), windowed to [0, 1] with air outside the volume, `chunk` candidates at a time to bound
    memory. Pass `padded` (from :func:`windowed_for`) to reuse one windowed copy of the scan.
    """
    windowed = windowed_for(volume, hu_min, hu_max, patch_spacing_mm) if padded is None else padded
    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    out = np.empty((len(pts), N_SCALES, *INPUT_SHAPE), dtype=np.float32)
    for s in range(0, len(pts), chunk):
        patches = cut_patches(volume, pts[s:s + chunk], windowed, patch_spacing_mm)
        out[s:s + chunk] = scales_from_crops(centre_crops(patches), order)
    return out
