"""Sites: where the GANs learn (nodules for the injector, healthy lung for the remover), where nodules are
injected, and what a site holds before and after tampering.

The original read hand-made coordinate CSVs for the remover's healthy sites; here they are drawn at
random (seeded) inside the lungs, deep enough that the in-painted centre is lung, and far enough from
every annotated and excluded finding that no finding lies in the cut cube.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import ndimage

from ..luna import ANNOTATION_COLUMNS, LunaDataset
from ..lungs import lung_field_mask
from ..volume import Volume
from .config import CTGANConfig, trainset_dir

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


def site_mean_hu(volume: Volume, point_xyz, radius_mm: float = 5.0) -> float:
    """Mean HU of the voxels within `radius_mm` of a world point (x, y, z)."""
    c = volume.world_to_voxel(point_xyz)
    r = radius_mm / volume.spacing_zyx
    lo = np.maximum(np.floor(c - r).astype(int), 0)
    hi = np.minimum(np.ceil(c + r).astype(int) + 1, np.asarray(volume.shape))
    block = volume.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float64)
    zz, yy, xx = np.meshgrid(*[(np.arange(a, b) - cc) * s for a, b, cc, s in zip(lo, hi, c, volume.spacing_zyx)],
                             indexing="ij")
    inside = zz ** 2 + yy ** 2 + xx ** 2 <= radius_mm ** 2
    return float(block[inside].mean()) if inside.any() else float("nan")


def injection_diameter(ctgan_dir: str | os.PathLike, dataset: LunaDataset, train_subsets: list[int]) -> float:
    """Diameter (mm) recorded for an injected nodule: the median of the injector's training nodules (it draws a
    typical one of them), read from `<ctgan_dir>/inject/sites.csv`; the annotated nodules of `train_subsets`
    when the models came without it; 6 mm when there are none."""
    sites_csv = trainset_dir(ctgan_dir, "inject") / "sites.csv"
    if sites_csv.is_file():
        nodules = pd.read_csv(sites_csv, dtype={"seriesuid": str})
        nodules = nodules[nodules["split"] == "train"]
    else:
        nodules = dataset.annotations[dataset.annotations["seriesuid"].isin(dataset.uids_in(train_subsets))]
    return float(nodules["diameter_mm"].median()) if len(nodules) else 6.0


def scan_findings(annotations: pd.DataFrame, excluded: pd.DataFrame, uid: str) -> pd.DataFrame:
    """The annotated and excluded findings of scan `uid` (world mm): what injection sites keep clear of."""
    return pd.concat([annotations[annotations["seriesuid"] == uid], excluded[excluded["seriesuid"] == uid]])


def injection_sites(volume: Volume, findings: pd.DataFrame, config: CTGANConfig,
                    rng: np.random.Generator) -> np.ndarray:
    """Up to `config.inject_per_scan` healthy lung sites (N, 3) world (x, y, z) mm for injection; see
    :func:`~lungnodule.ctgan.sites.healthy_sites` (clearance and lung margin from `config`)."""
    return healthy_sites(volume, findings, config.inject_per_scan, rng, config.clearance_mm, config.lung_margin_mm)


def site_annotations(uid: str, points_xyz: np.ndarray, diameter_mm: float) -> pd.DataFrame:
    """Annotation rows (:data:`~lungnodule.luna.ANNOTATION_COLUMNS`) of injected nodules at world points (N, 3)."""
    points_xyz = np.asarray(points_xyz, np.float64).reshape(-1, 3)
    return pd.DataFrame({"seriesuid": uid, "coordX": points_xyz[:, 0], "coordY": points_xyz[:, 1],
                         "coordZ": points_xyz[:, 2], "diameter_mm": float(diameter_mm)}, columns=ANNOTATION_COLUMNS)
