"""Branching trees inside the lungs: pulmonary vessels and bronchi.

A tree grows generation by generation from a root near the hilum, all branches of a generation at
once (vectorised): each branch is a slightly bent tube whose length is a few times its radius; it
splits into two narrower children at 20-60 degrees (asymmetric, as in Murray-like vascular trees)
that are steered away from the hilum so the tree fills the lung. A branch whose end would leave the
lung is shortened, then dropped. Vessel cross-sections look like small round blobs on single
slices, which is what makes nodule detection hard; bifurcations are recorded for the candidate list.
Positions are local mm (z, y, x); see `shapes.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Tree:
    """Tube segments of one or more trees: ends `a`, `b` (N, 3) mm, radii `ra`, `rb` (N,) mm;
    `bifurcations` (M, 3) mm and their parent radius `bif_radius` (M,)."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    bifurcations: np.ndarray
    bif_radius: np.ndarray

    @staticmethod
    def concat(trees: list["Tree"]) -> "Tree":
        if not trees:
            z = np.zeros((0, 3))
            return Tree(z, z, np.zeros(0), np.zeros(0), z, np.zeros(0))
        return Tree(*(np.concatenate([getattr(t, f) for t in trees]) for f in
                      ("a", "b", "ra", "rb", "bifurcations", "bif_radius")))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _inside(mask: np.ndarray, spacing_zyx: np.ndarray, pts: np.ndarray) -> np.ndarray:
    idx = np.rint(pts / spacing_zyx).astype(np.int64)
    ok = np.all((idx >= 0) & (idx < np.array(mask.shape)), axis=1)
    out = np.zeros(len(pts), bool)
    out[ok] = mask[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    return out


def grow_tree(rng: np.random.Generator, mask: np.ndarray, spacing_zyx, roots: np.ndarray, directions: np.ndarray,
              radii: np.ndarray, min_radius: float, hilum: np.ndarray, max_generations: int = 14,
              length_factor: tuple[float, float] = (4.0, 8.0), free_generations: int = 1,
              centre: np.ndarray | None = None, root_lengths: np.ndarray | None = None) -> Tree:
    """Grow branching trees from `roots` (K, 3) mm along `directions` (K, 3) with root `radii` (K,) mm.

    Branches stop splitting once a child would be thinner than `min_radius`. The first
    `free_generations` may leave `mask` (roots start in the mediastinum); later branch ends must lie
    in it; a branch that would leave is turned towards `centre` (mm, e.g. the lung's centroid) or
    shortened, and dropped if that fails. `root_lengths` (K,) mm fixes the roots' lengths. Returns the segments as a :class:`Tree`.
    """
    spacing_zyx = np.asarray(spacing_zyx, dtype=np.float64)
    P = np.asarray(roots, np.float64).reshape(-1, 3)
    D = _unit(np.asarray(directions, np.float64).reshape(-1, 3))
    R = np.asarray(radii, np.float64).reshape(-1)
    A, Bs, RA, RB, BIF, BR = [], [], [], [], [], []
    for gen in range(max_generations):
        if len(P) == 0:
            break
        L = R * rng.uniform(*length_factor, size=len(R)) + 2.0
        if gen == 0 and root_lengths is not None:
            L = np.asarray(root_lengths, np.float64).reshape(-1)
        keep = np.ones(len(P), bool)
        if gen >= free_generations:
            # Try the planned branch, then turned towards the lung's centre, then shorter; else drop it.
            inward = _unit(centre - P) if centre is not None else D
            todo = np.ones(len(P), bool)
            keep[:] = False
            newD, newL = D.copy(), L.copy()
            for turn, shrink in ((0.0, 1.0), (0.6, 1.0), (1.5, 0.8), (0.0, 0.55), (1.5, 0.45), (4.0, 0.3)):
                d_try = _unit(D[todo] + turn * inward[todo])
                l_try = L[todo] * shrink
                end_try = P[todo] + d_try * l_try[:, None]
                ok = _inside(mask, spacing_zyx, end_try) & _inside(mask, spacing_zyx, P[todo] + d_try * (l_try / 2)[:, None])
                idx = np.flatnonzero(todo)[ok]
                newD[idx], newL[idx] = d_try[ok], l_try[ok]
                keep[idx] = True
                todo[idx] = False
                if not todo.any():
                    break
            D, L = newD, newL
        end = P + D * L[:, None]
        bend = _unit(np.cross(D, rng.standard_normal(D.shape))) * (0.1 * L)[:, None] * rng.uniform(-1, 1, (len(D), 1))
        P, D, R, L, end, bend = P[keep], D[keep], R[keep], L[keep], end[keep], bend[keep]
        mid = (P + end) / 2 + bend
        r_end = R * 0.93
        A += [P, mid]
        Bs += [mid, end]
        RA += [R, (R + r_end) / 2]
        RB += [(R + r_end) / 2, r_end]
        # Children: two, at asymmetric angles in a random plane, with asymmetric radii.
        n = len(P)
        r1 = r_end * rng.uniform(0.78, 0.92, n)
        r2 = r_end * rng.uniform(0.55, 0.80, n)
        split = r2 >= min_radius
        BIF.append(end[split])
        BR.append(r_end[split])
        dir_end = _unit(end - mid)
        perp = _unit(np.cross(dir_end, rng.standard_normal((n, 3))))
        t1 = np.radians(rng.uniform(15, 35, n))[:, None]
        t2 = np.radians(rng.uniform(35, 65, n))[:, None]
        away = _unit(end - hilum)  # steer away from the hilum so branches fan out into the lung
        c1 = _unit(np.cos(t1) * dir_end + np.sin(t1) * perp + 0.35 * away)
        c2 = _unit(np.cos(t2) * dir_end - np.sin(t2) * perp + 0.35 * away)
        # A branch too thin to split continues as a single, thinner tube while above min_radius.
        cont = ~split & (r1 >= min_radius)
        P = np.concatenate([end[split], end[split], end[cont]])
        D = np.concatenate([c1[split], c2[split], c1[cont]])
        R = np.concatenate([r1[split], r2[split], r1[cont]])
    if not A:
        return Tree.concat([])
    return Tree(np.concatenate(A), np.concatenate(Bs), np.concatenate(RA), np.concatenate(RB),
                np.concatenate(BIF) if BIF else np.zeros((0, 3)), np.concatenate(BR) if BR else np.zeros(0))


def lobar_directions(lung, hilum: np.ndarray) -> np.ndarray:
    """Initial directions (3, 3) from a hilum towards the upper, middle/lingula and lower lobe."""
    zr = lung.z_apex - lung.z_base
    targets = np.array([
        [lung.z_apex - 0.2 * zr, lung.cy - 0.1 * lung.ay_ant, lung.cx + lung.side * 0.2 * lung.ax_lat],
        [lung.z_base + 0.45 * zr, lung.cy - 0.45 * lung.ay_ant, lung.cx + lung.side * 0.35 * lung.ax_lat],
        [lung.z_base + 0.12 * zr, lung.cy + 0.35 * lung.ay_post, lung.cx + lung.side * 0.2 * lung.ax_lat],
    ])
    return _unit(targets - hilum)


def lung_centre(lung) -> np.ndarray:
    """A point (z, y, x) mm deep inside a lung, towards which branches leaving it are turned."""
    return np.array([lung.z_base + 0.45 * (lung.z_apex - lung.z_base), lung.cy + 0.1 * lung.ay_post,
                     lung.cx + lung.side * 0.1 * lung.ax_lat])


def sample_targets(rng: np.random.Generator, mask: np.ndarray, spacing_zyx, n: int, x_side: int, x_mid: float):
    """`n` random points (z, y, x) mm inside `mask` on one side of x = `x_mid` mm (side -1: below)."""
    spacing_zyx = np.asarray(spacing_zyx, float)
    sub = mask[::2, ::4, ::4]
    pts = np.argwhere(sub) * np.array([2, 4, 4]) * spacing_zyx
    pts = pts[(pts[:, 2] - x_mid) * x_side > 0]
    if len(pts) == 0:
        return np.zeros((0, 3))
    return pts[rng.choice(len(pts), size=n)]
