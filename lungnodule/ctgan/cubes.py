"""Cut a cube around a point of a CT scan at 1 mm isotropic, and paste an edited cube back.

Only the cube is resampled (SimpleITK linear interpolation on a small sub-volume), never the whole scan.
The cube's axes follow the scan's index axes (its direction matrix), so a cube array is indexed
(z, y, x) like the scan and is exactly `size`^3 for any spacing. Its sample points are centred on the
requested point: sample k lies at centre + (k - (size - 1) / 2) * spacing_mm along each index axis.
Pasting resamples the cube onto the scan's own voxels that lie inside the cube's sampled extent and
replaces only those voxels; every other voxel of the scan keeps its value bit for bit.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..volume import Volume

AIR_HU = -1000.0


def centre_voxel(volume: Volume, point, coords: str = "world") -> np.ndarray:
    """The continuous voxel index (z, y, x) of `point`, given as world (x, y, z) mm or voxel (z, y, x).

    `coords` is ``"world"`` or ``"vox"`` (the original CLI's names). World points go through the
    volume's direction matrix.
    """
    p = np.asarray(point, dtype=np.float64).reshape(3)
    if coords == "world":
        return volume.world_to_voxel(p)
    if coords in ("vox", "voxel"):
        return p
    raise ValueError(f"coords must be 'world' or 'vox', got {coords!r}")


def _half_extent_vox(volume: Volume, size: int, spacing_mm: float) -> np.ndarray:
    """Half the distance between the first and last cube samples, in scan voxels per axis (z, y, x)."""
    return (size - 1) / 2.0 * spacing_mm / volume.spacing_zyx


def _image(array: np.ndarray, volume: Volume, start_zyx) -> sitk.Image:
    """A SimpleITK image of `array` placed at voxel `start_zyx` of `volume` (same spacing and direction)."""
    image = sitk.GetImageFromArray(array)
    image.SetOrigin(tuple(volume.voxel_to_world(np.asarray(start_zyx, dtype=np.float64))))
    image.SetSpacing(tuple(volume.spacing))
    image.SetDirection(tuple(volume.direction.ravel()))
    return image


def cube_origin(volume: Volume, centre_zyx, size: int, spacing_mm: float = 1.0) -> np.ndarray:
    """World position (x, y, z) mm of the cube's first sample (index 0, 0, 0)."""
    c = np.asarray(centre_zyx, dtype=np.float64)
    return volume.voxel_to_world(c - _half_extent_vox(volume, size, spacing_mm))


def extract_cube(volume: Volume, point, size: int = 32, spacing_mm: float = 1.0, coords: str = "world",
                 fill: float = AIR_HU) -> np.ndarray:
    """Resample a `size`^3 cube at `spacing_mm` isotropic centred on `point`; float32, (z, y, x).

    `point` is world (x, y, z) mm or voxel (z, y, x) (see :func:`centre_voxel`). Samples outside the
    scan are `fill` (air, -1000 HU). Only a sub-volume one voxel larger than the cube is handed to
    SimpleITK, so the cost does not depend on the scan's size. A 40 mm cut is ``size=40``.
    """
    c = centre_voxel(volume, point, coords)
    half = _half_extent_vox(volume, size, spacing_mm)
    shape = np.asarray(volume.shape)
    lo = np.maximum(np.floor(c - half).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(c + half).astype(int) + 1, shape - 1)
    if np.any(hi < lo):
        # The cube misses the scan entirely.
        return np.full((size,) * 3, fill, dtype=np.float32)
    sub = np.ascontiguousarray(volume.array[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1], dtype=np.float32)
    out = sitk.Resample(
        _image(sub, volume, lo), [size] * 3, sitk.Transform(), sitk.sitkLinear,
        tuple(cube_origin(volume, c, size, spacing_mm)), (spacing_mm,) * 3,
        tuple(volume.direction.ravel()), float(fill), sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(out)


def paste_region(volume: Volume, centre_zyx, size: int = 32, spacing_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The scan voxels a pasted cube replaces: inclusive index bounds `lo`, `hi` (z, y, x).

    These are the voxels whose centres lie within the cube's sampled extent, clipped to the scan; the
    region is empty (some hi < lo) when the cube misses the scan.
    """
    c = np.asarray(centre_zyx, dtype=np.float64)
    half = _half_extent_vox(volume, size, spacing_mm)
    eps = 1e-6  # voxels exactly on the extent's faces belong to it despite rounding
    lo = np.maximum(np.ceil(c - half - eps).astype(int), 0)
    hi = np.minimum(np.floor(c + half + eps).astype(int), np.asarray(volume.shape) - 1)
    return lo, hi


def resample_back(volume: Volume, cube: np.ndarray, point, spacing_mm: float = 1.0,
                  coords: str = "vox") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a cube (cut at `point`) onto the scan voxels it covers: (lo, hi, float32 values).

    `lo`, `hi` are the inclusive bounds of :func:`paste_region`; `values` has shape hi - lo + 1 (empty
    when the cube misses the scan). Linear interpolation; the scan is not modified.
    """
    cube = np.asarray(cube, dtype=np.float32)
    size = cube.shape[0]
    if cube.shape != (size,) * 3:
        raise ValueError(f"cube must be cubic, got shape {cube.shape}")
    c = centre_voxel(volume, point, coords)
    lo, hi = paste_region(volume, c, size, spacing_mm)
    if np.any(hi < lo):
        return lo, hi, np.zeros((0, 0, 0), dtype=np.float32)
    image = sitk.GetImageFromArray(cube)
    image.SetOrigin(tuple(cube_origin(volume, c, size, spacing_mm)))
    image.SetSpacing((spacing_mm,) * 3)
    image.SetDirection(tuple(volume.direction.ravel()))
    reference = _image(np.zeros(tuple(hi - lo + 1), dtype=np.float32), volume, lo)
    back = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, AIR_HU, sitk.sitkFloat32)
    return lo, hi, sitk.GetArrayFromImage(back)


def paste_cube(volume: Volume, cube: np.ndarray, point, spacing_mm: float = 1.0, coords: str = "world") -> Volume:
    """A new Volume with `cube` (cut by :func:`extract_cube` at the same point) resampled back and pasted.

    The cube is linearly resampled onto the scan voxels inside its extent (:func:`paste_region`), which
    are replaced; all other voxels are copied unchanged. Integer scans get rounded, clipped values.
    The input volume is not modified.
    """
    lo, hi, back = resample_back(volume, cube, point, spacing_mm, coords)
    array = volume.array.copy()
    if back.size:
        array[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = cast_like(back, array.dtype)
    return volume.with_array(array)


def cast_like(values: np.ndarray, dtype) -> np.ndarray:
    """`values` as `dtype`: rounded and clipped to the type's range for integer types."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def centre_crop(cube: np.ndarray, size: int, offset=(0, 0, 0)) -> np.ndarray:
    """The central `size`^3 of a cube (last three axes), shifted by `offset` voxels (z, y, x)."""
    start = [(n - size) // 2 + int(o) for n, o in zip(cube.shape[-3:], offset)]
    if any(s < 0 or s + size > n for s, n in zip(start, cube.shape[-3:])):
        raise ValueError(f"a {size}^3 crop at offset {tuple(offset)} does not fit in {cube.shape[-3:]}")
    return cube[..., start[0]:start[0] + size, start[1]:start[1] + size, start[2]:start[2] + size]


def centre_mask(size: int = 32, mask_size: int = 20) -> np.ndarray:
    """Boolean `size`^3 array, True on the central `mask_size`^3 (indices 6..25 for 32 and 20)."""
    m = np.zeros((size,) * 3, dtype=bool)
    a = (size - mask_size) // 2
    m[a:a + mask_size, a:a + mask_size, a:a + mask_size] = True
    return m
