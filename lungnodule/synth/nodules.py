"""Nodules and irrelevant findings of a synthetic scan: sampling, placement, rendering, measuring.

The number of nodules per scan and their diameters follow the real LUNA16 `annotations.csv` shipped
in `lungnodule/data/luna16/` (1186 nodules in 888 scans; 287 scans without any; 3.3-32.3 mm, median
6.4 mm). Each nodule is solid, part-solid or ground-glass; round, lobulated or spiculated; isolated,
juxta-pleural (touching the chest wall, clipped by it) or juxta-vascular (abutting a vessel). It is
drawn anti-aliased in a local box and its annotated diameter is measured from what was drawn: the
equivalent-sphere diameter of the coverage-weighted volume inside the lung. Irrelevant findings
(LUNA16's `annotations_excluded.csv`) are sub-3 mm nodules, nodules seen by too few readers, calcified
granulomas and scars, plus marks on non-nodules; most have diameter -1. Positions are local mm
(z, y, x); see `shapes.py`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .shapes import rasterize_capsules

LUNA_DIR = Path(__file__).resolve().parent.parent / "data" / "luna16"


@functools.lru_cache(maxsize=1)
def luna_statistics() -> tuple[np.ndarray, np.ndarray]:
    """(nodule counts of the LUNA16 scans that have nodules, all nodule diameters in mm)."""
    ann = pd.read_csv(LUNA_DIR / "annotations.csv")
    counts = ann.groupby("seriesuid").size().to_numpy()
    return counts, ann["diameter_mm"].to_numpy(dtype=np.float64)


@dataclass
class Finding:
    """One rendered (or marked) finding; `centre` local mm (z, y, x); `diameter` measured mm or -1."""

    centre: np.ndarray
    diameter: float
    kind: str          # solid / part-solid / ground-glass / calcified / scar / non-nodule
    position: str      # isolated / juxta-pleural / juxta-vascular
    hu: float


def sample_nodule_count(rng: np.random.Generator, p_no_nodule: float) -> int:
    """Nodules in one scan: 0 with probability `p_no_nodule`, else drawn from LUNA16's per-scan counts."""
    if rng.random() < p_no_nodule:
        return 0
    counts, _ = luna_statistics()
    return int(rng.choice(counts))


def sample_diameter(rng: np.random.Generator, min_diameter: float = 3.2) -> float:
    """A target diameter (mm) drawn from LUNA16's nodule diameters, jittered by ~5%."""
    _, diam = luna_statistics()
    d = float(rng.choice(diam)) * float(np.exp(rng.normal(0, 0.05)))
    return float(np.clip(d, max(3.2, min_diameter), 32.5))


def coarse_distance(lung: np.ndarray, spacing_zyx, step_mm: float = 2.5):
    """Distance (mm) from each lung voxel to the lung boundary on a coarse grid; returns (dist, step)."""
    step = np.maximum(1, np.round(step_mm / np.asarray(spacing_zyx)).astype(int))
    coarse = lung[:: step[0], :: step[1], :: step[2]]
    dist = ndi.distance_transform_edt(coarse, sampling=np.asarray(spacing_zyx) * step)
    return dist.astype(np.float32), step


def _box(centre, half_mm, spacing_zyx, shape):
    lo = np.maximum(0, np.floor((centre - half_mm) / spacing_zyx).astype(int))
    hi = np.minimum(np.array(shape), np.ceil((centre + half_mm) / spacing_zyx).astype(int) + 1)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def nodule_coverage(rng, centre, radius, spacing_zyx, shape, lobulation: float, n_spicules: int):
    """Anti-aliased coverage of one nodule shape: (box slices, coverage float32 array in that box).

    The surface is a randomly oriented ellipsoid-like radius function r(u) = radius * (1 + sum of
    Gaussian bumps around random directions) (`lobulation` sets their height); `n_spicules` thin tapered
    spikes radiate from the surface.
    """
    spacing_zyx = np.asarray(spacing_zyx, float)
    spike_len = radius * 2.4 if n_spicules else radius * (1.0 + 2 * lobulation)
    box = _box(centre, spike_len + 2 * spacing_zyx.max(), spacing_zyx, shape)
    grids = [(np.arange(s.start, s.stop) * sp - c) for s, sp, c in zip(box, spacing_zyx, centre)]
    p = np.stack(np.meshgrid(*grids, indexing="ij"), -1).astype(np.float32)
    rot = _random_rotation(rng)
    axes = np.exp(rng.normal(0, 0.08, 3))
    axes /= np.cbrt(np.prod(axes))
    q = (p @ rot.T.astype(np.float32)) / axes.astype(np.float32)
    rho = np.linalg.norm(q, axis=-1)
    u = q / np.maximum(rho, 1e-6)[..., None]
    n_bumps = int(rng.integers(3, 8))
    dirs = rng.standard_normal((n_bumps, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    heights = lobulation * rng.uniform(0.5, 1.0, n_bumps)
    bumps = np.exp(6.0 * (u @ dirs.T.astype(np.float32) - 1.0)) @ heights.astype(np.float32)
    r_u = radius * (1.0 + bumps - heights.mean() * 0.25)
    h = float(np.cbrt(np.prod(spacing_zyx)))
    cov = np.clip((r_u - rho) / h + 0.5, 0, 1).astype(np.float32)
    if n_spicules:
        d = rng.standard_normal((n_spicules, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        a = centre + d * radius * 0.8
        b = centre + d * radius * rng.uniform(1.6, 2.4, (n_spicules, 1))
        flat, c = rasterize_capsules(shape, spacing_zyx, a, b, max(0.55, 0.4 * h), 0.15)
        if len(flat):
            zyx = np.stack(np.unravel_index(flat, shape), 1) - np.array([s.start for s in box])
            ok = np.all((zyx >= 0) & (zyx < np.array(cov.shape)), axis=1)
            zyx, c = zyx[ok], c[ok]
            cur = cov[zyx[:, 0], zyx[:, 1], zyx[:, 2]]
            cov[zyx[:, 0], zyx[:, 1], zyx[:, 2]] = np.maximum(cur, c)
    return box, cov


def render_nodule(rng, hu: np.ndarray, lung: np.ndarray, centre: np.ndarray, target_d: float, spacing_zyx,
                  kind: str, shape_kind: str, hu_solid: float, hu_ggo: float) -> float:
    """Draw one nodule into `hu` (in place), clipped to `lung`; returns its measured diameter (mm).

    The radius is calibrated once so the measured equivalent-sphere diameter is close to `target_d`.
    Part-solid nodules are a ground-glass body with a solid core of 35-60% of the radius.
    """
    spacing_zyx = np.asarray(spacing_zyx, float)
    voxel_mm3 = float(np.prod(spacing_zyx))
    lobulation = {"round": 0.05, "lobulated": 0.22, "spiculated": 0.12}[shape_kind]
    n_spic = int(rng.integers(6, 14)) if shape_kind == "spiculated" else 0
    state = rng.bit_generator.state
    radius = target_d / 2
    for _ in range(2):
        rng.bit_generator.state = state  # same shape, rescaled
        box, cov = nodule_coverage(rng, centre, radius, spacing_zyx, hu.shape, lobulation, n_spic)
        cov *= lung[box]
        vol = float(cov.sum()) * voxel_mm3
        d = float(np.cbrt(6 * vol / np.pi)) if vol > 0 else 0.0
        if d <= 0 or abs(d / target_d - 1) < 0.04:
            break
        radius *= target_d / d
    sub = hu[box]
    value = hu_ggo if kind in ("ground-glass", "part-solid") else hu_solid
    sub += cov * (value - sub)
    if kind == "part-solid":
        core_r = radius * float(rng.uniform(0.35, 0.6))
        grids = [(np.arange(s.start, s.stop) * sp - c) for s, sp, c in zip(box, spacing_zyx, centre)]
        rho = np.sqrt(grids[0][:, None, None] ** 2 + grids[1][None, :, None] ** 2 + grids[2][None, None, :] ** 2)
        core = np.clip((core_r - rho) / np.cbrt(voxel_mm3) + 0.5, 0, 1).astype(np.float32) * lung[box]
        sub += core * (hu_solid - sub)
    return d


def place_nodules(rng, n: int, diameters, lung, dist, step, spacing_zyx, vessels, taken: list,
                  juxta_probs=(0.5, 0.25, 0.25)) -> list[tuple[np.ndarray, float, str]]:
    """Choose centres (local mm) for nodules of the given target diameters; returns (centre, d, position).

    Isolated nodules sit at least their radius + 3 mm from the pleura; juxta-pleural ones 40-80% of
    their radius from it (so they touch the wall); juxta-vascular ones just beside a vessel of 0.8-4 mm
    radius. Centres stay inside the lung and apart from each other and from `taken` (centre, radius).
    """
    spacing_zyx = np.asarray(spacing_zyx, float)
    cell = spacing_zyx * step
    coords = np.argwhere(dist > 0)
    dvals = dist[dist > 0]
    out = []
    for d in diameters:
        r = d / 2
        position = str(rng.choice(["isolated", "juxta-pleural", "juxta-vascular"], p=juxta_probs))
        centre = None
        for attempt in range(3):
            if position == "juxta-vascular" and len(vessels.a):
                rad = (vessels.ra + vessels.rb) / 2
                ok = np.flatnonzero((rad > 0.8) & (rad < 4.0))
                if len(ok):
                    i = rng.choice(ok, size=min(len(ok), 40), replace=False)
                    t = rng.uniform(0.2, 0.8, (len(i), 1))
                    p = vessels.a[i] + t * (vessels.b[i] - vessels.a[i])
                    axis = vessels.b[i] - vessels.a[i]
                    perp = np.cross(axis, rng.standard_normal(axis.shape))
                    perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
                    cand = p + perp * (rad[i] + 0.7 * r)[:, None]
                    good = _clear(cand, r, lung, dist, step, spacing_zyx, taken, out, min_wall=r + 1.0)
                    if good.any():
                        centre = cand[np.flatnonzero(good)[0]]
                        break
                position = "isolated"
            if position == "juxta-pleural":
                sel = np.flatnonzero((dvals >= max(cell.max() * 0.5, 0.4 * r)) & (dvals <= max(0.8 * r, cell.max())))
            else:
                sel = np.flatnonzero(dvals >= r + 3.0)
            if len(sel) == 0:
                position = "isolated" if position == "juxta-pleural" else position
                sel = np.flatnonzero(dvals >= min(r + 1.0, dvals.max() if len(dvals) else 0))
            if len(sel) == 0:
                break
            pick = rng.choice(sel, size=min(len(sel), 60), replace=False)
            cand = coords[pick] * cell + rng.uniform(-0.3, 0.3, (len(pick), 3)) * cell
            good = _clear(cand, r, lung, dist, step, spacing_zyx, taken, out, min_wall=0.0)
            if good.any():
                centre = cand[np.flatnonzero(good)[0]]
                break
        if centre is not None:
            out.append((centre, d, position))
    return out


def _clear(cand, r, lung, dist, step, spacing_zyx, taken, chosen, min_wall: float) -> np.ndarray:
    """Which candidate centres are in the lung, `min_wall` mm from its edge, and clear of other findings."""
    idx = np.rint(cand / spacing_zyx).astype(int)
    ok = np.all((idx >= 0) & (idx < np.array(lung.shape)), axis=1)
    ok[ok] = lung[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    if min_wall > 0:
        cidx = np.minimum(np.rint(cand / (spacing_zyx * step)).astype(int), np.array(dist.shape) - 1).clip(0)
        ok &= dist[cidx[:, 0], cidx[:, 1], cidx[:, 2]] >= min_wall
    others = [(c, rr) for c, rr in taken] + [(c, dd / 2) for c, dd, _ in chosen]
    for c, rr in others:
        ok &= np.linalg.norm(cand - c, axis=1) > r + rr + 4.0
    return ok
