"""A `candidates_V2.csv`-like candidate list for a synthetic scan, as LUNA16's CAD systems produce.

Class 1: one to six candidates per nodule, each within 40% of the nodule's radius of its centre
(LUNA16 V2 has 1,557 class-1 candidates for 1,186 nodules). Class 0: hundreds per scan (LUNA16 V2:
about 850 per scan; the preset's `candidate_scale` multiplies that) on the things CAD systems fire on:
vessel cross-sections and bifurcations (most), the pleura, airways, random lung, and the irrelevant
findings. Every class-0 candidate is kept outside every nodule (distance >= radius + 0.5 mm). V1
(`candidates.csv`) is a subset: 70% of class 0 and the first candidate of 94% of the nodules, as V1
covers fewer nodules. Positions are local mm (z, y, x); see `shapes.py`.
"""

from __future__ import annotations

import numpy as np

from .vessels import Tree

# Shares of class-0 candidates by source.
SOURCES = {"vessel": 0.38, "bifurcation": 0.2, "pleura": 0.15, "airway": 0.08, "lung": 0.14, "finding": 0.05}


def _ball(rng, n: int, radius: float) -> np.ndarray:
    d = rng.standard_normal((n, 3))
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    return d * radius * rng.random((n, 1)) ** (1 / 3)


def _points_on(rng, tree: Tree, n: int, min_radius: float) -> np.ndarray:
    r = (tree.ra + tree.rb) / 2
    ok = np.flatnonzero(r >= min_radius)
    if len(ok) == 0 or n == 0:
        return np.zeros((0, 3))
    w = np.linalg.norm(tree.b[ok] - tree.a[ok], axis=1) * r[ok]
    i = rng.choice(ok, size=n, p=w / w.sum())
    t = rng.random((n, 1))
    return tree.a[i] + t * (tree.b[i] - tree.a[i])


def nodule_marks(rng: np.random.Generator, centre, diameter: float) -> np.ndarray:
    """Class-1 candidates of one nodule: 1 to 6 points (1 + Poisson(0.8), capped) uniform in a ball of 40% of
    its radius around `centre`, in the centre's frame and units (mm; isotropic, so axis order does not matter)."""
    m = int(min(6, 1 + rng.poisson(0.8)))
    return np.asarray(centre, np.float64) + _ball(rng, m, 0.4 * diameter / 2)


def sample_candidates(rng: np.random.Generator, n_class0: int, nodules: list, findings: list, vessels: Tree,
                      airways: Tree, dist: np.ndarray, step, spacing_zyx, shape) -> tuple[np.ndarray, np.ndarray,
                                                                                              np.ndarray, np.ndarray]:
    """Candidates as (points (N, 3) local mm, class (N,), source names (N,), in_v1 (N,) bool).

    `nodules` and `findings` hold (centre mm, diameter mm) pairs; `dist`/`step` are the coarse lung
    distance map from :func:`nodules.coarse_distance`.
    """
    spacing_zyx = np.asarray(spacing_zyx, float)
    pts, cls, src, v1 = [], [], [], []
    for k, (c, d) in enumerate(nodules):
        marks = nodule_marks(rng, c, d)
        m = len(marks)
        pts.append(marks)
        cls.append(np.ones(m, int))
        src.append(np.full(m, "nodule"))
        keep = np.zeros(m, bool)
        keep[0] = rng.random() < 0.94
        v1.append(keep)
    n = rng.multinomial(n_class0, list(SOURCES.values()))
    counts = dict(zip(SOURCES, n))
    cell = spacing_zyx * np.asarray(step)
    coords = np.argwhere(dist > 0)
    dvals = dist[dist > 0]
    zero = {
        "vessel": _points_on(rng, vessels, counts["vessel"], 0.6),
        "bifurcation": vessels.bifurcations[rng.choice(len(vessels.bifurcations), counts["bifurcation"])]
        if len(vessels.bifurcations) else np.zeros((0, 3)),
        "airway": _points_on(rng, airways, counts["airway"], 0.0),
    }
    pleura = np.flatnonzero(dvals <= cell.max() * 1.01)
    zero["pleura"] = coords[rng.choice(pleura, counts["pleura"])] * cell if len(pleura) else np.zeros((0, 3))
    zero["lung"] = coords[rng.choice(len(coords), counts["lung"])] * cell if len(coords) else np.zeros((0, 3))
    if findings and counts["finding"]:
        fc = np.array([c for c, _ in findings])
        zero["finding"] = fc[rng.choice(len(fc), counts["finding"])]
    for name, p in zero.items():
        if len(p) == 0:
            continue
        p = p + rng.normal(0, 1.0, p.shape)   # CAD marks are a voxel or two off what they fire on
        pts.append(p)
        cls.append(np.zeros(len(p), int))
        src.append(np.full(len(p), name))
        v1.append(rng.random(len(p)) < 0.7)
    if not pts:
        return np.zeros((0, 3)), np.zeros(0, int), np.zeros(0, str), np.zeros(0, bool)
    pts, cls, src, v1 = np.concatenate(pts), np.concatenate(cls), np.concatenate(src), np.concatenate(v1)
    # Inside the scan, and class 0 outside every nodule.
    extent = (np.asarray(shape) - 1) * spacing_zyx
    keep = np.all((pts >= 0) & (pts <= extent), axis=1)
    for c, d in nodules:
        keep &= (cls == 1) | (np.linalg.norm(pts - c, axis=1) >= d / 2 + 0.5)
    order = rng.permutation(int(keep.sum()))
    return pts[keep][order], cls[keep][order], src[keep][order], v1[keep][order]
