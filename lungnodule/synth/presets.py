"""Scan-size presets of the synthetic dataset and the sampling of each scan's geometry.

`luna` follows LUNA16: 512 x 512 slices, in-plane spacing 0.5-1.0 mm, slice spacing 0.6-2.5 mm
(peaks at the common 0.625 / 1.25 / 2.5 mm reconstructions), 100-500 slices covering 300-350 mm.

`demo` is sized for the 2-core CPU demo (about 40 scans, three stages trained in about 20 min). It
deviates from LUNA16 geometry on purpose: 256 x 256 slices at 1.05-1.6 mm in-plane (a 270-410 mm
field of view, so the body still fits; what a 512-px LUNA16 slice at 0.5-0.8 mm is once resized to 256 px),
1.25-2.5 mm slices (a quarter of them 1.25 or 1.5 mm, as LUNA16's thin reconstructions) covering only
180-280 mm (the lungs are compressed in z to fit), and 1/4 of LUNA16's class-0 candidates per scan. Nodules
of 3 mm remain visible (2-3 voxels across).

`tiny` is for tests: 128 x 128 slices at 1.5-1.7 mm over a smaller body, 48-64 slices of 3-3.5 mm,
1/10 of the class-0 candidates, and fewer scans without nodules (1 in 6 instead of 1 in 3) so most
scans exercise the nodule code. Everything else (anatomy, flips, padding) is as in the other presets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Preset:
    """Size ranges of one preset; spacings in mm, counts in voxels / slices."""

    name: str
    size_xy: int                       # slices are size_xy x size_xy
    spacing_xy: tuple[float, float]    # in-plane spacing range (mm)
    spacing_z: tuple[float, ...]       # slice spacings to pick from (mm)
    spacing_z_weights: tuple[float, ...]
    extent_z: tuple[float, float]      # z coverage range (mm)
    slices: tuple[int, int]            # allowed slice-count range
    candidate_scale: float             # fraction of LUNA16's class-0 candidates per scan
    p_no_nodule: float                 # probability that a scan has no annotated nodule
    body_max_fraction: float = 0.46    # largest body half-width as a fraction of the field of view


PRESETS: dict[str, Preset] = {
    "luna": Preset("luna", 512, (0.5, 1.0), (0.625, 0.7, 1.0, 1.25, 1.5, 2.0, 2.5),
                   (0.2, 0.05, 0.1, 0.25, 0.05, 0.1, 0.25), (300.0, 350.0), (100, 500), 1.0, 1 / 3),
    "demo": Preset("demo", 256, (1.05, 1.6), (1.25, 1.5, 2.0, 2.25, 2.5), (0.15, 0.1, 0.25, 0.2, 0.3),
                   (180.0, 280.0), (80, 230), 0.25, 1 / 3),
    "tiny": Preset("tiny", 128, (1.5, 1.7), (3.0, 3.25, 3.5), (0.3, 0.3, 0.4), (160.0, 210.0), (48, 64),
                   0.1, 1 / 6, body_max_fraction=0.44),
}


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called `name` (`luna`, `demo` or `tiny`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


@dataclass
class Geometry:
    """One scan's grid: `shape` (z, y, x), `spacing` (x, y, z) mm, and how it is stored."""

    shape: tuple[int, int, int]
    spacing: np.ndarray       # (x, y, z) mm
    origin: np.ndarray        # (x, y, z) mm of voxel (0, 0, 0) before any flip
    flipped: bool             # stored with direction diag(-1, -1, 1), as 14 LUNA16 scans are
    padding: int | None       # HU outside the circular field of view, or None for no padding

    @property
    def spacing_zyx(self) -> np.ndarray:
        return self.spacing[::-1].copy()


def sample_geometry(rng: np.random.Generator, preset: Preset, flipped: bool | None = None) -> Geometry:
    """Draw a scan grid for `preset`: spacings, slice count, origin, flip and outside-FOV padding.

    Origins are LUNA16-like: x, y about minus half the field of view (-250..-120 mm), z in -400..-100
    mm. About 1 scan in 6 is flipped (pass `flipped` to force it); about 1 in 2 has its outside of the
    circular field of view padded with -2000 or -3024 HU.
    """
    sxy = float(rng.uniform(*preset.spacing_xy))
    sz = float(rng.choice(preset.spacing_z, p=np.asarray(preset.spacing_z_weights) / sum(preset.spacing_z_weights)))
    extent = float(rng.uniform(*preset.extent_z))
    nz = int(np.clip(round(extent / sz), *preset.slices))
    n = preset.size_xy
    fov = n * sxy
    origin = np.array([-fov / 2 + rng.uniform(-20, 15), -fov / 2 + rng.uniform(-20, 15), rng.uniform(-400, -100)])
    if flipped is None:
        flipped = bool(rng.random() < 1 / 6)
    r = rng.random()
    padding = -2000 if r < 0.3 else (-3024 if r < 0.5 else None)
    return Geometry((nz, n, n), np.array([sxy, sxy, sz]), origin, flipped, padding)
