"""Chest anatomy of a synthetic scan: body, fat, muscle, spine, ribs, sternum, lungs, heart, aorta.

Everything is built in the scan's local frame: array axes (z, y, x), millimetres `index * spacing`,
z = 0 the most inferior slice (as in LUNA16, whose z axis points to the head), y growing towards the
patient's back and x towards the patient's left. Structures are described by a few parameters in
millimetres (sampled per scan) and drawn with separable or 2-D fields broadcast along z, so the cost
is a handful of passes over the volume. Values are HU in float32; imaging effects (blur, noise,
field of view) come later (`imaging.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .presets import Geometry
from .shapes import blend, rasterize_capsules

# Typical attenuations (HU); each scan jitters them a little.
HU_AIR, HU_FAT, HU_MUSCLE, HU_SOFT, HU_BLOOD = -1000.0, -100.0, 45.0, 30.0, 40.0
HU_LUNG = -860.0
HU_CORTICAL, HU_CANCELLOUS, HU_DISC, HU_LIVER = 750.0, 230.0, 90.0, 58.0


@dataclass
class Lung:
    """Parameters of one lung (side -1: patient's right, small x; +1: left), in local mm."""

    side: int
    cx: float
    cy: float
    ax_lat: float
    ax_med: float
    ay_ant: float
    ay_post: float
    z_base: float
    z_dome: float
    z_apex: float
    hilum: np.ndarray  # (z, y, x) mm


@dataclass
class Anatomy:
    """The anatomy volume and what the later steps need to place vessels, nodules and candidates."""

    hu: np.ndarray                 # float32 (z, y, x)
    lung: np.ndarray               # bool (z, y, x), both lungs
    lungs: list[Lung]
    body: dict                     # bx, by, A, B (mm): body ellipse centre and half-axes
    scale: float                   # body size / 160 mm, scales vessel and airway sizes
    z_carina: float
    trachea: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # centreline points (z, y, x) mm


def _grids(geom: Geometry):
    nz, ny, nx = geom.shape
    sx, sy, sz = geom.spacing
    return (np.arange(nz) * sz).astype(np.float32), (np.arange(ny) * sy).astype(np.float32), \
        (np.arange(nx) * sx).astype(np.float32)


def _smooth_field_2d(rng, shape, cell_px: float, amplitude: float) -> np.ndarray:
    """A low-frequency random 2-D field (zero mean, about `amplitude` std), features ~`cell_px` pixels."""
    coarse = rng.standard_normal((max(2, int(shape[0] / cell_px) + 2), max(2, int(shape[1] / cell_px) + 2)))
    f = ndi.zoom(coarse, (shape[0] / coarse.shape[0], shape[1] / coarse.shape[1]), order=3, grid_mode=True,
                 mode="nearest")[: shape[0], : shape[1]]
    f = f - f.mean()
    return (amplitude * f / (f.std() + 1e-6)).astype(np.float32)


def smooth_field_3d(rng, shape, cell_vox, amplitude: float) -> np.ndarray:
    """Low-frequency 3-D texture (float32, ~`amplitude` std): coarse noise interpolated linearly.

    The coarse grid has one node per `cell_vox` (z, y, x) voxels; in-plane interpolation is a pair of
    small matrix products per coarse slice and z interpolation mixes two coarse slices, so the cost
    is a few passes over the output.
    """
    nz, ny, nx = shape
    cz, cy, cx = (max(2, int(np.ceil(n / c)) + 1) for n, c in zip(shape, cell_vox))
    coarse = rng.standard_normal((cz, cy, cx)).astype(np.float32)

    def interp_matrix(n, c):
        pos = np.arange(n) / max(n - 1, 1) * (c - 1)
        i0 = np.minimum(np.floor(pos).astype(int), c - 2)
        w = (pos - i0).astype(np.float32)
        m = np.zeros((n, c), np.float32)
        m[np.arange(n), i0] = 1 - w
        m[np.arange(n), i0 + 1] = w
        return m

    my, mx = interp_matrix(ny, cy), interp_matrix(nx, cx)
    planes = np.einsum("yc,kcd,xd->kyx", my, coarse, mx, optimize=True)  # (cz, ny, nx)
    pos = np.arange(nz) / max(nz - 1, 1) * (cz - 1)
    i0 = np.minimum(np.floor(pos).astype(int), cz - 2)
    w = (pos - i0).astype(np.float32)[:, None, None]
    out = planes[i0] * (1 - w)
    out += planes[i0 + 1] * w
    out *= amplitude / (np.sqrt(0.5) + 1e-6)  # linear interpolation of unit noise has std ~ 0.5-1
    return out


def build_anatomy(rng: np.random.Generator, geom: Geometry) -> Anatomy:
    """Draw body, chest wall, bones, mediastinum, heart, aorta, diaphragm/liver and both lungs.

    Returns an :class:`Anatomy` with the HU volume (float32, (z, y, x)) and the lung mask. The lungs
    are two D-shaped fields tapering to the apex, carved from below by the diaphragm domes (so the
    lowest slices show only the posterior recesses) and on the left by the heart; the parenchyma is
    about -860 HU, denser towards the back (gravity), with a low-frequency texture.
    """
    nz, ny, nx = geom.shape
    sx, sy, sz = (float(v) for v in geom.spacing)
    Z, Y, X = _grids(geom)
    zmax = float(Z[-1])
    fov = nx * sx
    # Body ellipse: half-width A (x), half-depth B (y), centred near the middle of the field of view.
    A = float(min(rng.uniform(150, 178), geom_body_limit(geom)))
    B = A * float(rng.uniform(0.62, 0.72))
    bx = (nx - 1) * sx / 2 + float(rng.uniform(-0.03, 0.03)) * fov
    by = (ny - 1) * sy / 2 + float(rng.uniform(-0.02, 0.05)) * fov
    scale = A / 160.0
    j = lambda v: v + float(rng.normal(0, 6))  # noqa: E731 (per-scan HU jitter)

    hu = np.full(geom.shape, HU_AIR, np.float32)
    # --- 2-D slice template: table, body, fat, muscle, paraspinal muscles, spine --------------------
    yy, xx = Y[:, None], X[None, :]
    u, v = (xx - bx) / A, (yy - by) / B
    rb = np.sqrt(u * u + v * v)
    grad = np.sqrt((u / A) ** 2 + (v / B) ** 2) / np.maximum(rb, 1e-3)
    depth = (1 - rb) / np.maximum(grad, 1e-6)          # approximate distance inside the body edge (mm)
    depth += _smooth_field_2d(rng, (ny, nx), 40 / sx, 2.0)
    fat0, mus0 = float(rng.uniform(8, 24)) * scale, float(rng.uniform(8, 14)) * scale
    fat_t = fat0 * (1 + 0.4 * np.clip(-v, 0, 1))   # more fat anteriorly
    mus_t = mus0 * (1 + 1.0 * np.clip(v, 0, 1))    # back muscles thicker
    t2 = np.full((ny, nx), HU_AIR, np.float32)
    table_y = by + B + float(rng.uniform(8, 25))
    table = (yy > table_y) & (yy < table_y + 8 * scale + 4) & (np.abs(xx - bx) < 0.9 * A)
    t2[np.broadcast_to(table, t2.shape)] = -300.0
    t2[depth > 0] = j(HU_FAT)
    t2[depth > fat_t] = j(HU_MUSCLE)
    t2[depth > fat_t + mus_t] = j(HU_SOFT)
    vb_c = (by + 0.50 * B, bx)                          # vertebral body centre (y, x)
    vb_r = (16.0 * scale, 18.0 * scale)
    para = (((np.abs(xx - bx) - 0.13 * A) / (0.1 * A)) ** 2 + ((yy - (by + 0.78 * B)) / (0.2 * B)) ** 2) < 1
    t2[para & (depth > 0)] = j(HU_MUSCLE)
    disc = t2.copy()
    ev = ((yy - vb_c[0]) / vb_r[0]) ** 2 + ((xx - vb_c[1]) / vb_r[1]) ** 2
    cortex = 2.5 / min(vb_r)
    canal_y = vb_c[0] + vb_r[0] + 9 * scale
    proc = (((xx - bx) / (26 * scale)) ** 2 + ((yy - (canal_y - 1 * scale)) / (5 * scale)) ** 2 < 1) | \
           (((xx - bx) / (5 * scale)) ** 2 + ((yy - (canal_y + 14 * scale)) / (13 * scale)) ** 2 < 1)
    t2[proc] = j(HU_CORTICAL) - 150
    t2[ev < 1] = j(HU_CORTICAL)
    t2[ev < (1 - cortex) ** 2] = j(HU_CANCELLOUS)
    canal = ((xx - bx) ** 2 + (yy - canal_y) ** 2) < (8 * scale) ** 2
    t2[canal] = 15.0
    disc[ev < 1] = j(HU_DISC)
    # Vertebrae ~22 mm with ~5 mm discs, in z.
    period = 27.0 * scale
    phase = float(rng.uniform(0, period))
    is_disc = ((Z + phase) % period) < 5.0 * scale
    hu[:] = t2
    hu[is_disc] = disc

    # --- lungs: separable D-shaped fields per side ------------------------------------------------
    z_base = float(rng.uniform(0.02, 0.09)) * zmax
    z_apex = float(rng.uniform(0.90, 0.97)) * zmax
    lungs = []
    lung = np.zeros(geom.shape, bool)
    bump = _smooth_field_2d(rng, (ny, nx), 30 / sx, 0.035)
    for side in (-1, 1):
        cx = bx + side * 0.45 * A
        cy = by - 0.02 * B
        z_dome = z_base + (0.30 + (0.0 if side == -1 else -0.03) + float(rng.uniform(-0.03, 0.03))) * (z_apex - z_base)
        lp = Lung(side, cx, cy, 0.37 * A * float(rng.uniform(0.95, 1.05)), 0.30 * A, 0.70 * B, 0.78 * B,
                  z_base, z_dome, z_apex, np.zeros(3))
        zs = slice(max(0, int(z_base / sz)), min(nz, int(np.ceil(z_apex / sz)) + 1))
        zz = Z[zs]
        taper = np.clip((z_apex - zz) / (0.33 * (z_apex - z_base)), 1e-3, 1.0) ** 0.6
        dx = X - cx
        axs = np.where(side * dx >= 0, lp.ax_lat, lp.ax_med).astype(np.float32)
        dy = Y - cy
        ays = np.where(dy >= 0, lp.ay_post, lp.ay_ant).astype(np.float32)
        U2 = (dx[None, None, :] / (axs[None, None, :] * taper[:, None, None])) ** 2
        V2 = (dy[None, :, None] / (ays[None, :, None] * taper[:, None, None])) ** 2
        F = U2 + V2 + bump[None]
        inside = F < 1
        # Diaphragm dome: an anteriorly centred cap growing downwards from z_dome.
        rd2 = (1.2 ** 2) * np.clip((z_dome - zz) / (z_dome - z_base), 0, None)
        low = rd2 > 0
        if low.any():
            dyd = (Y - (cy - 0.35 * lp.ay_ant)) / lp.ay_post
            D = U2[low] + (dyd[None, :, None] / taper[low][:, None, None]) ** 2
            under = D < rd2[low][:, None, None]
            organ = under & (F[low] < 1.08) & (hu[zs][low] > -200)
            sub = hu[zs]
            blk = sub[low]
            blk[organ] = j(HU_LIVER) if side == -1 else j(HU_SOFT + 5)
            sub[low] = blk
            hu[zs] = sub
            il = inside[low]
            il &= ~under
            inside[low] = il
        lung[zs] |= inside
        lp.hilum = np.array([z_base + 0.55 * (z_apex - z_base), cy + 0.10 * B, cx - side * 0.55 * lp.ax_med])
        lungs.append(lp)
    # Lungs lie inside the chest wall and off the spine and paraspinal muscles.
    bone2d = (ev < 1) | proc | para | canal
    lung &= ((depth > fat_t + mus_t + 2 * scale) & ~bone2d)[None]

    # --- mediastinum: fat, heart with pericardial fat, aorta ------------------------------------------
    z_heart = lungs[0].z_dome + 0.12 * (z_apex - z_base)
    hc = np.array([z_heart, by - 0.20 * B, bx + 0.12 * A])
    hr = np.array([0.22 * (z_apex - z_base), 0.40 * B, 0.33 * A]) * float(rng.uniform(0.92, 1.08))
    box = tuple(slice(max(0, int((c - r - 8) / s)), min(n, int((c + r + 8) / s) + 1))
                for c, r, s, n in zip(hc, hr, (sz, sy, sx), geom.shape))
    e = (((Z[box[0]] - hc[0]) / hr[0]) ** 2)[:, None, None] + (((Y[box[1]] - hc[1]) / hr[1]) ** 2)[None, :, None] \
        + (((X[box[2]] - hc[2]) / hr[2]) ** 2)[None, None, :]
    sub = hu[box]
    sub[e < 1.25] = j(HU_FAT)
    sub[e < 1.0] = j(HU_BLOOD)
    lung[box] &= ~(e < 1.3)
    # Upper mediastinal fat between the lungs.
    zs = slice(int(z_heart / sz), nz)
    med = (((xx - bx) / (0.15 * A)) ** 2 + ((yy - (by - 0.25 * B)) / (0.35 * B)) ** 2) < 1
    sub = hu[zs]
    sub[:, med & ~bone2d] = j(HU_FAT + 10)
    hu[zs] = sub
    # Aorta: ascending from the heart, arch, descending beside the spine to the bottom of the scan.
    z_arch = z_heart + 0.45 * (z_apex - z_heart)
    ra = 13.0 * scale * float(rng.uniform(0.9, 1.15))
    pts = np.array([[z_heart, by - 0.22 * B, bx - 0.02 * A], [z_arch - 10, by - 0.18 * B, bx - 0.03 * A],
                    [z_arch + 8, by + 0.05 * B, bx + 0.02 * A], [z_arch - 10, by + 0.30 * B, bx + 0.12 * A],
                    [0.0, by + 0.33 * B, bx + 0.10 * A]])
    flat, cov = rasterize_capsules(geom.shape, geom.spacing_zyx, pts[:-1], pts[1:], ra)
    blend(hu, flat, cov, j(HU_BLOOD))
    lung.reshape(-1)[flat[cov > 0.2]] = False
    # Sternum: anterior midline, above the heart's lower half.
    zs = slice(int(max(0, z_heart - 0.5 * hr[0]) / sz), int(z_apex / sz))
    st = (((xx - bx) / (14 * scale)) ** 2 + ((yy - (by - B + fat_t + 4 * scale)) / (6 * scale)) ** 2) < 1
    sub = hu[zs]
    sub[:, st] = j(HU_CANCELLOUS + 150)
    hu[zs] = sub
    lung[:, st] = False

    # --- ribs: sloping tubes in the chest wall, 12 per side ----------------------------------------
    wall_rx = A - fat0 - 0.6 * mus0
    wall_ry = B - fat0 - 1.6 * mus0
    n_rib = 12
    rib_gap = (z_apex - z_base + 20) / (n_rib - 1)
    phi = np.linspace(0.35, 2.5, 14)
    a_list, b_list = [], []
    for side in (-1, 1):
        for k in range(n_rib):
            z0 = z_apex + 15 - k * rib_gap + float(rng.normal(0, 2))
            zc = z0 - (phi / np.pi) * 70 * scale
            yc = by + wall_ry * np.cos(phi)
            xc = bx + side * wall_rx * np.sin(phi) * (0.9 + 0.1 * np.sin(phi))
            p = np.stack([zc, yc, xc], 1)
            a_list.append(p[:-1])
            b_list.append(p[1:])
    ra_ = np.concatenate(a_list)
    rb_ = np.concatenate(b_list)
    flat, cov = rasterize_capsules(geom.shape, geom.spacing_zyx, ra_, rb_, 4.5 * scale)
    blend(hu, flat, cov, j(HU_CORTICAL) - 100)
    lung.reshape(-1)[flat[cov > 0.3]] = False
    flat, cov = rasterize_capsules(geom.shape, geom.spacing_zyx, ra_, rb_, 2.6 * scale)
    blend(hu, flat, cov, j(HU_CANCELLOUS))

    # --- parenchyma: gravity gradient + low-frequency texture, inside the lung bounding box -----------
    zl, yl, xl = np.nonzero(lung.any(axis=(1, 2)))[0], np.nonzero(lung.any(axis=(0, 2)))[0], \
        np.nonzero(lung.any(axis=(0, 1)))[0]
    if len(zl):
        box = (slice(zl[0], zl[-1] + 1), slice(yl[0], yl[-1] + 1), slice(xl[0], xl[-1] + 1))
        bshape = tuple(s.stop - s.start for s in box)
        tex = smooth_field_3d(rng, bshape, (max(1.0, 7 / sz), 7 / sy, 7 / sx), 14.0)
        grav = (j(HU_LUNG) + 60.0 * np.clip((Y[box[1]] - (by - 0.6 * B)) / (1.4 * B), 0, 1) ** 2)
        tex += grav[None, :, None]
        np.copyto(hu[box], tex, where=lung[box])
    return Anatomy(hu, lung, lungs, {"bx": bx, "by": by, "A": A, "B": B}, scale,
                   z_carina=lungs[0].z_base + 0.62 * (z_apex - z_base))


def geom_body_limit(geom: Geometry) -> float:
    """Largest body half-width (mm) for this grid: the body stays inside the field of view."""
    return 0.46 * geom.shape[2] * float(geom.spacing[0])
