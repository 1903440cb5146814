"""Airways of a synthetic scan: trachea, main bronchi and a few generations of bronchi in each lung.

Each airway is a tube of air (about -1000 HU) inside a soft-tissue wall (about 0.2 x the radius +
0.4 mm thick), so on single slices bronchi appear as dark rings beside their accompanying vessels.
Positions are local mm (z, y, x); see `shapes.py`.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .shapes import blend, rasterize_capsules
from .vessels import Tree, grow_tree, lobar_directions, lung_centre


def build_airways(rng: np.random.Generator, anat: Anatomy, spacing_zyx, min_radius: float) -> Tree:
    """Segments (lumen radii) of the trachea, the main bronchi and the bronchial trees of both lungs."""
    zmax = anat.hu.shape[0] * spacing_zyx[0]
    b = anat.body
    s = anat.scale
    rt = 8.5 * s * float(rng.uniform(0.9, 1.1))
    top = np.array([zmax + 10, b["by"] + 0.12 * b["B"], b["bx"] + rng.uniform(-3, 3)])
    carina = np.array([anat.z_carina, b["by"] + 0.15 * b["B"], b["bx"] + rng.uniform(-3, 3)])
    trees = [Tree(top[None], carina[None], np.array([rt]), np.array([rt * 0.9]), np.zeros((0, 3)), np.zeros(0))]
    for lung in anat.lungs:
        hilum = lung.hilum + np.array([8.0, -5.0, 0.0])
        main_r = rt * (0.72 if lung.side == -1 else 0.62)
        trees.append(Tree(carina[None], hilum[None], np.array([main_r]), np.array([main_r * 0.9]),
                          carina[None], np.array([rt])))
        dirs = lobar_directions(lung, hilum)
        trees.append(grow_tree(rng, anat.lung, spacing_zyx, np.repeat(hilum[None], 3, 0), dirs,
                               np.full(3, main_r * 0.7), max(min_radius, 1.0), hilum, max_generations=6,
                               length_factor=(3.5, 6.0), centre=lung_centre(lung)))
    return Tree.concat(trees)


def render_airways(anat: Anatomy, tree: Tree, spacing_zyx) -> None:
    """Draw walls then lumens of `tree` into `anat.hu` (in place); airway lumens leave the lung mask."""
    shape = anat.hu.shape
    wall = lambda r: r * 1.22 + 0.4  # noqa: E731
    flat, cov = rasterize_capsules(shape, spacing_zyx, tree.a, tree.b, wall(tree.ra), wall(tree.rb))
    blend(anat.hu, flat, cov, 20.0)
    flat, cov = rasterize_capsules(shape, spacing_zyx, tree.a, tree.b, tree.ra, tree.rb)
    blend(anat.hu, flat, cov, -1000.0)
