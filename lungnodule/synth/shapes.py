"""Anti-aliased rasterisation of tubes (capsules) and blending into a HU volume.

Every tube-like structure of the synthetic scans (vessels, bronchi, ribs, spicules) is a set of
straight segments with a radius at each end. Positions are in the scan's local frame: millimetres
along (z, y, x) from the centre of voxel (0, 0, 0), i.e. `index * spacing_zyx`. Coverage is the
fraction of a voxel inside the tube, approximated from the signed distance to the tube surface
(a linear ramp one voxel wide), which gives partial-volume edges without supersampling.
"""

from __future__ import annotations

import numpy as np

# Window sizes (voxels per axis) used to group segment pieces, so each group is one vectorised pass.
_WINDOWS = np.array([3, 5, 7, 9, 11, 13, 17, 21, 27, 33, 41, 51, 65, 81, 101, 129])
# Upper bound on voxels evaluated per vectorised chunk (memory: about 60 bytes per voxel).
_CHUNK_VOXELS = 2_000_000


def _split_segments(a, b, ra, rb, max_len):
    """Cut segments longer than `max_len` (mm, per segment) into equal pieces; radii interpolated."""
    length = np.linalg.norm(b - a, axis=1)
    n = np.maximum(1, np.ceil(length / max_len).astype(int))
    seg = np.repeat(np.arange(len(a)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    t0 = (k / n[seg])[:, None]
    t1 = ((k + 1) / n[seg])[:, None]
    d = b - a
    return (a[seg] + t0 * d[seg], a[seg] + t1 * d[seg],
            ra[seg] + t0[:, 0] * (rb - ra)[seg], ra[seg] + t1[:, 0] * (rb - ra)[seg])


def rasterize_capsules(shape, spacing_zyx, a, b, ra, rb=None) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of the union of tapered tubes, as sparse (flat voxel indices, coverage in (0, 1]).

    `a`, `b` are (N, 3) segment end points in local mm (z, y, x); `ra`, `rb` (N,) radii in mm at each
    end (`rb` defaults to `ra`). Segments are cut into short pieces and evaluated in small windows,
    grouped by window size, so the cost grows with the tubes' volume, not the scan's. Where tubes
    overlap the largest coverage is kept. Flat indices are into a C-ordered array of `shape`.
    """
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    ra = np.broadcast_to(np.asarray(ra, dtype=np.float64), (len(a),)).copy()
    rb = ra.copy() if rb is None else np.broadcast_to(np.asarray(rb, dtype=np.float64), (len(a),)).copy()
    keep = np.maximum(ra, rb) > 0
    a, b, ra, rb = a[keep], b[keep], ra[keep], rb[keep]
    if len(a) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    # Pieces no longer than about two radii (at least two voxels) keep windows tight around the tube.
    rmax = np.maximum(ra, rb)
    max_len = np.maximum(2.0 * rmax, 2.0 * spacing.max())
    a, b, ra, rb = _split_segments(a, b, ra, rb, max_len)
    h = float(np.cbrt(np.prod(spacing)))  # ramp width: one voxel (geometric mean size)
    centre = (a + b) / 2.0
    half = np.abs(b - a) / 2.0 + np.maximum(ra, rb)[:, None] + h
    size = 2 * np.ceil(half / spacing).astype(int) + 1
    size = np.minimum(size, _WINDOWS[-1])
    level = np.searchsorted(_WINDOWS, size)              # (n, 3) window class per axis
    group_key = (level[:, 0] * 256 + level[:, 1]) * 256 + level[:, 2]
    shape = tuple(int(s) for s in shape)
    flats, covs = [], []
    for key in np.unique(group_key):
        sel = np.flatnonzero(group_key == key)
        w = _WINDOWS[level[sel[0]]]
        offs = np.stack(np.meshgrid(*[np.arange(n_) - n_ // 2 for n_ in w], indexing="ij"), -1).reshape(-1, 3)
        per_chunk = max(1, _CHUNK_VOXELS // len(offs))
        for c0 in range(0, len(sel), per_chunk):
            idx = sel[c0:c0 + per_chunk]
            start = np.rint(centre[idx] / spacing).astype(np.int64)
            vox = start[:, None, :] + offs[None, :, :]                      # (n, W, 3)
            inside = np.all((vox >= 0) & (vox < np.array(shape)), axis=2)
            p = vox * spacing                                             # mm
            d = (b[idx] - a[idx])[:, None, :]
            ap = p - a[idx][:, None, :]
            dd = np.maximum((d * d).sum(-1), 1e-12)
            t = np.clip((ap * d).sum(-1) / dd, 0.0, 1.0)
            dist = np.linalg.norm(ap - t[..., None] * d, axis=-1)
            rad = ra[idx][:, None] + t * (rb[idx] - ra[idx])[:, None]
            cov = np.clip((rad - dist) / h + 0.5, 0.0, 1.0)
            ok = inside & (cov > 0)
            if not ok.any():
                continue
            v = vox[ok]
            flats.append((v[:, 0] * shape[1] + v[:, 1]) * shape[2] + v[:, 2])
            covs.append(cov[ok].astype(np.float32))
    if not flats:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return max_reduce(np.concatenate(flats), np.concatenate(covs))


def max_reduce(flat: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge duplicate flat indices keeping the largest coverage; returns sorted unique indices."""
    if len(flat) == 0:
        return flat, cov
    order = np.argsort(flat, kind="stable")
    flat, cov = flat[order], cov[order]
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    return flat[starts], np.maximum.reduceat(cov, starts)


def blend(volume: np.ndarray, flat: np.ndarray, cov: np.ndarray, value, where: np.ndarray | None = None) -> None:
    """Mix `value` (HU, scalar or per-voxel) into `volume` in place: v <- v + cov * (value - v).

    `flat`/`cov` come from :func:`rasterize_capsules` (or any sparse coverage); `where` is an optional
    boolean volume of the same shape restricting the change (e.g. to the lungs).
    """
    if len(flat) == 0:
        return
    if where is not None:
        cov = cov * where.reshape(-1)[flat]
    v = volume.reshape(-1)
    cur = v[flat]
    v[flat] = cur + cov * (np.asarray(value, dtype=np.float32) - cur)
