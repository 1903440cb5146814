"""One synthetic LUNA16-like CT scan: anatomy, vessels, airways, nodules, findings, candidates, imaging.

Drawing happens in a local frame (array axes (z, y, x), millimetres `index * spacing`); the scan is
then stored with its LUNA16-like geometry (non-zero origin, sometimes the flipped direction
diag(-1, -1, 1) with the array mirrored in x and y and the origin at the opposite corner, as in real
LUNA16 scans), and every CSV coordinate is computed from the stored :class:`~lungnodule.volume.Volume`
with `voxel_to_world`, so it goes through the direction matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..volume import Volume
from .airways import build_airways, render_airways
from .anatomy import HU_BLOOD, build_anatomy
from .candidates import sample_candidates
from .imaging import apply_imaging
from .nodules import coarse_distance, place_nodules, render_nodule, sample_diameter, sample_nodule_count
from .presets import Geometry, get_preset, sample_geometry
from .shapes import blend, rasterize_capsules
from .vessels import Tree, grow_tree, lung_centre, sample_targets

# LUNA16 has about 850 class-0 candidates per scan in candidates_V2.csv.
LUNA_CLASS0_PER_SCAN = (600, 1100)


class SyntheticScan(NamedTuple):
    """A generated scan. Coordinates are world (x, y, z) mm; extra columns describe what was drawn.

    `nodules`: coordX, coordY, coordZ, diameter_mm, kind, shape, position, hu.
    `excluded`: coordX, coordY, coordZ, diameter_mm, kind.
    `candidates`: coordX, coordY, coordZ, class, source, in_v1.
    `info`: the drawn geometry and imaging parameters.
    """

    volume: Volume
    nodules: pd.DataFrame
    excluded: pd.DataFrame
    candidates: pd.DataFrame
    info: dict


def _stored_volume(array: np.ndarray, geom: Geometry) -> Volume:
    """The Volume as stored: identity direction, or mirrored in x and y with direction diag(-1, -1, 1)."""
    if not geom.flipped:
        return Volume(array, geom.origin.copy(), geom.spacing.copy(), np.eye(3))
    nz, ny, nx = array.shape
    origin = geom.origin + np.array([(nx - 1) * geom.spacing[0], (ny - 1) * geom.spacing[1], 0.0])
    return Volume(np.ascontiguousarray(array[:, ::-1, ::-1]), origin, geom.spacing.copy(), np.diag([-1.0, -1.0, 1.0]))


def _to_world(volume: Volume, geom: Geometry, pts_mm: np.ndarray) -> np.ndarray:
    """Local mm (z, y, x) -> world (x, y, z) through the stored volume's geometry."""
    pts_mm = np.asarray(pts_mm, float).reshape(-1, 3)
    idx = pts_mm / geom.spacing_zyx
    if geom.flipped:
        idx = idx.copy()
        idx[:, 1] = volume.shape[1] - 1 - idx[:, 1]
        idx[:, 2] = volume.shape[2] - 1 - idx[:, 2]
    return volume.voxel_to_world(idx) if len(idx) else np.zeros((0, 3))


def _vessel_trees(rng, anat, spacing_zyx, min_radius: float) -> Tree:
    """Pulmonary arteries (from the hilum) and veins (from lower and behind it) of both lungs."""
    trees = []
    s = anat.scale
    for lung in anat.lungs:
        roots = [lung.hilum + np.array([0.0, -6.0 * s, 0.0]),
                 lung.hilum + np.array([-0.18 * (lung.z_apex - lung.z_base), 8.0 * s, lung.side * 4.0 * s])]
        for root, r0 in zip(roots, (4.8 * s, 4.2 * s)):
            # Roots fan out from the hilum towards random points of the lung, so the tree fills it.
            k = 7
            targets = sample_targets(rng, anat.lung, spacing_zyx, k, lung.side, anat.body["bx"])
            if len(targets) == 0:
                continue
            dist = np.linalg.norm(targets - root, axis=1)
            trees.append(grow_tree(rng, anat.lung, spacing_zyx, np.repeat(root[None], k, 0), targets - root,
                                   np.full(k, r0 * 0.75) * rng.uniform(0.8, 1.1, k), min_radius, root,
                                   centre=lung_centre(lung), root_lengths=0.45 * dist))
    return Tree.concat(trees)


def _render_excluded(rng, anat, spacing_zyx, dist, step, vessels, nodule_taken, n: int, min_d: float):
    """Draw LUNA16-style irrelevant findings; returns a list of dicts (centre mm, diameter or -1, kind)."""
    out = []
    kinds = rng.choice(["small", "few-readers", "calcified", "non-nodule"], size=n, p=[0.4, 0.12, 0.15, 0.33])
    taken = list(nodule_taken)
    for kind in kinds:
        if kind == "non-nodule":
            # LUNA16 readers also marked non-nodules (often vessel junctions, scars): a point, diameter -1.
            if len(vessels.bifurcations) == 0:
                continue
            c = vessels.bifurcations[rng.integers(len(vessels.bifurcations))]
            if all(np.linalg.norm(c - t) > r + 5 for t, r in taken):
                out.append({"centre": c, "diameter": -1.0, "kind": kind})
            continue
        d0 = {"small": rng.uniform(max(1.6, min_d * 0.6), 3.0), "few-readers": rng.uniform(3.2, 6.0),
              "calcified": rng.uniform(2.0, 4.5)}[kind]
        placed = place_nodules(rng, 1, [float(d0)], anat.lung, dist, step, spacing_zyx, vessels, taken,
                               juxta_probs=(0.7, 0.15, 0.15))
        if not placed:
            continue
        c, _, _ = placed[0]
        hu = float(rng.uniform(250, 700)) if kind == "calcified" else float(rng.uniform(-30, 50))
        d = render_nodule(rng, anat.hu, anat.lung, c, float(d0), spacing_zyx, "solid", "round", hu, hu)
        taken.append((c, d / 2))
        keep_d = kind == "few-readers" and rng.random() < 0.6 or kind == "small" and rng.random() < 0.25
        out.append({"centre": c, "diameter": round(d, 2) if keep_d else -1.0, "kind": kind})
    return out


def generate_scan(seed: int | np.random.Generator, preset: str = "demo", flipped: bool | None = None) -> SyntheticScan:
    """Generate one synthetic scan (int16 HU, LUNA16-like geometry) with its annotations and candidates.

    `seed` is an int or a numpy Generator; the result is a deterministic function of it, `preset`
    (`luna`, `demo`, `tiny`; see :mod:`lungnodule.synth.presets`) and `flipped` (force the direction
    diag(-1, -1, 1) on or off; None draws it, 1 scan in 6). Returns a :class:`SyntheticScan`.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    p = get_preset(preset)
    geom = sample_geometry(rng, p, flipped)
    spz = geom.spacing_zyx
    sxy = float(geom.spacing[0])
    anat = build_anatomy(rng, geom)

    min_r = max(0.35, 0.3 * sxy)
    vessels = _vessel_trees(rng, anat, spz, min_r)
    flat, cov = rasterize_capsules(geom.shape, spz, vessels.a, vessels.b, vessels.ra, vessels.rb)
    blend(anat.hu, flat, cov, HU_BLOOD + float(rng.normal(0, 8)), where=anat.lung)
    airways = build_airways(rng, anat, spz, max(1.0, 0.7 * sxy))
    render_airways(anat, airways, spz)
    flat, cov = rasterize_capsules(geom.shape, spz, airways.a, airways.b, airways.ra, airways.rb)
    anat.lung.reshape(-1)[flat[cov > 0.5]] = False
    dist, step = coarse_distance(anat.lung, spz)

    # Nodules, largest first so they find room.
    n_nod = sample_nodule_count(rng, p.p_no_nodule)
    min_d = max(3.2, 2.2 * sxy)
    targets = sorted((sample_diameter(rng, min_d) for _ in range(n_nod)), reverse=True)
    placed = place_nodules(rng, len(targets), targets, anat.lung, dist, step, spz, vessels, [])
    nodules = []
    for centre, d0, position in placed:
        kind = str(rng.choice(["solid", "part-solid", "ground-glass"], p=[0.7, 0.15, 0.15])) if d0 >= 6 else "solid"
        shape = str(rng.choice(["round", "lobulated", "spiculated"], p=[0.45, 0.35, 0.2])) if d0 >= 5 else \
            str(rng.choice(["round", "lobulated"], p=[0.6, 0.4]))
        hu_solid, hu_ggo = float(rng.uniform(-10, 60)), float(rng.uniform(-680, -480))
        d = render_nodule(rng, anat.hu, anat.lung, centre, d0, spz, kind, shape, hu_solid, hu_ggo)
        nodules.append({"centre": centre, "diameter": d, "kind": kind, "shape": shape, "position": position,
                        "hu": hu_ggo if kind == "ground-glass" else hu_solid})
    n_ex = int(rng.poisson({"luna": 6.0, "demo": 4.0, "tiny": 3.0}.get(preset, 4.0)))
    excluded = _render_excluded(rng, anat, spz, dist, step, vessels,
                                [(n["centre"], n["diameter"] / 2) for n in nodules], n_ex, min_d)

    n0 = int(round(p.candidate_scale * rng.uniform(*LUNA_CLASS0_PER_SCAN)))
    cpts, ccls, csrc, cv1 = sample_candidates(
        rng, n0, [(n["centre"], n["diameter"]) for n in nodules],
        [(e["centre"], e["diameter"]) for e in excluded], vessels, airways, dist, step, spz, geom.shape)

    array, imaging = apply_imaging(rng, anat.hu, geom)
    del anat.hu
    volume = _stored_volume(array, geom)

    def world(items):
        return _to_world(volume, geom, np.array([i["centre"] for i in items]).reshape(-1, 3))

    w = world(nodules)
    nod_df = pd.DataFrame({"coordX": w[:, 0], "coordY": w[:, 1], "coordZ": w[:, 2],
                           "diameter_mm": [round(n["diameter"], 4) for n in nodules],
                           "kind": [n["kind"] for n in nodules], "shape": [n["shape"] for n in nodules],
                           "position": [n["position"] for n in nodules], "hu": [n["hu"] for n in nodules]})
    w = world(excluded)
    ex_df = pd.DataFrame({"coordX": w[:, 0], "coordY": w[:, 1], "coordZ": w[:, 2],
                          "diameter_mm": [e["diameter"] for e in excluded], "kind": [e["kind"] for e in excluded]})
    w = _to_world(volume, geom, cpts)
    cand_df = pd.DataFrame({"coordX": w[:, 0], "coordY": w[:, 1], "coordZ": w[:, 2], "class": ccls.astype(int),
                            "source": csrc.astype(str), "in_v1": cv1.astype(bool)})
    info = {"preset": preset, "shape_zyx": list(volume.shape), "spacing_xyz": volume.spacing.tolist(),
            "origin_xyz": volume.origin.tolist(), "flipped": geom.flipped, "padding": geom.padding,
            "vessel_segments": int(len(vessels.a)), **imaging}
    return SyntheticScan(volume, nod_df, ex_df, cand_df, info)
