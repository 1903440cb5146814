"""Where the GANs learn: nodule sites for the injector, healthy lung sites for the remover.

The original read hand-made coordinate CSVs for the remover's healthy sites; here they are drawn at
random (seeded) inside the lungs, deep enough that the in-painted centre is lung, and far enough from
every annotated and excluded finding that no finding lies in the cut cube.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from ..lungs import lung_field_mask
from ..volume import Volume

COARSE_MM = 4.0  # the lung mask and its distance map are computed at about this voxel size


def lung_depth_map(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) of each voxel of a subsampled grid to the lung field's boundary (0 outside).

    Returns (depth, step) where `step` (z, y, x) is the subsampling: depth[i, j, k] belongs to voxel
    (i, j, k) * step of the scan.
    """
    sp = volume.spacing_zyx
    step = np.maximum(1, np.rint(COARSE_MM / sp)).astype(int)
    hu = volume.array[::step[0], ::step[1], ::step[2]]
    mask = lung_field_mask(hu)
    return ndimage.distance_transform_edt(mask, sampling=sp * step), step


def far_from(points_xyz: np.ndarray, findings: pd.DataFrame, clearance_mm: float) -> np.ndarray:
    """True for points (N, 3) world mm whose box distance to every finding exceeds clearance + radius.

    `findings` has columns coordX, coordY, coordZ and diameter_mm (missing diameters count as 0). The box
    (Chebyshev) distance matches the cube's shape: a finding passes the test when its sphere lies
    outside a cube of half-size `clearance_mm` around the point.
    """
    points_xyz = np.atleast_2d(np.asarray(points_xyz, dtype=np.float64))
    if len(findings) == 0:
        return np.ones(len(points_xyz), dtype=bool)
    centres = findings[["coordX", "coordY", "coordZ"]].to_numpy(np.float64)
    radii = findings["diameter_mm"].fillna(0.0).to_numpy(np.float64) / 2.0 if "diameter_mm" in findings \
        else np.zeros(len(findings))
    box = np.abs(points_xyz[:, None, :] - centres[None, :, :]).max(axis=2)
    return np.all(box > clearance_mm + radii[None, :], axis=1)


def healthy_sites(volume: Volume, findings: pd.DataFrame, n: int, rng: np.random.Generator,
                  clearance_mm: float = 20.0, lung_margin_mm: float = 8.0,
                  separation_mm: float | None = None) -> np.ndarray:
    """Up to `n` world points (x, y, z) mm inside the lungs, away from all `findings`.

    A point qualifies when it is at least `lung_margin_mm` inside the lung field and no finding is within
    `clearance_mm` (box distance, beyond its radius). Points are drawn without replacement, uniformly
    among the qualifying voxels of a ~4 mm grid, each at least `separation_mm` (box distance; default
    2 x clearance, so their cubes never overlap) from those already drawn; fewer than `n` come back when
    fewer qualify.
    """
    separation_mm = 2.0 * clearance_mm if separation_mm is None else separation_mm
    if n <= 0:
        return np.zeros((0, 3))
    depth, step = lung_depth_map(volume)
    idx = np.argwhere(depth >= lung_margin_mm)
    if len(idx) == 0:
        return np.zeros((0, 3))
    points = volume.voxel_to_world(idx * step)
    points = points[far_from(points, findings, clearance_mm)]
    if len(points) == 0:
        return np.zeros((0, 3))
    order = rng.permutation(len(points))
    if separation_mm <= 0:
        return points[np.sort(order[:n])]
    chosen: list[int] = []
    for i in order:  # greedy, in random order: each new site keeps its distance from those taken
        if not chosen or np.all(np.abs(points[chosen] - points[i]).max(axis=1) > separation_mm):
            chosen.append(int(i))
            if len(chosen) == n:
                break
    return points[np.sort(chosen)]
