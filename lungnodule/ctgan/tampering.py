"""Inject or remove a nodule at a point of a CT scan (reference section 4.5), and tamper scan files.

Per point: cut a 32 mm cube at 1 mm (only the cube is resampled), equalise and normalise it, zero its
centre, in-paint it with the injector's or remover's generator, map the result back to HU, replace
impossible values (> 2000 HU by their 5^3 mean, < -1000 by -1000), resample it back onto the scan's
voxels inside the cube and paste it, then apply the original's touch-ups on a region `touchup_scale`
times the cube, isotropic in mm (the original's was isotropic in voxels):

- copied noise: lung texture from a block of the *clean* scan (the most lung-like of a few fixed
  locations away from the site; the original took one fixed location of the already tampered scan),
  voxels above -800 HU replaced by the mean below, mean removed, added to the tampered region;
- inject: factors sigmoid((tampered + 700) / 70) times an in-plane Gaussian (3 sigma at the region's
  edge, rescaled to [0, 1], no fall-off in z, as the original); result max(blend, clean), so injection
  only brightens;
- remove: an in-plane paraboloid weight (the original's 0.1-sigma Gaussian rescaled to [0, 1]) blends
  tampered and clean.

The input volume and files are never modified; outputs are new `.mhd` files (marked by `CTGAN_*` header
fields) or DICOM series with new UIDs marked DERIVED.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage
from scipy.special import expit
from scipy.stats import norm as normal

from ..errors import DataError
from ..scripting import parse_points, protect_negative_points  # noqa: F401  (the CLI's point parsing)
from ..volume import Volume, planned_volume_files, read_volume, write_volume
from .config import CTGANConfig, _mode
from .cubes import AIR_HU, cast_like, centre_mask, centre_voxel, extract_cube, resample_back
from .normalization import CubeNormalizer

# Where the copied noise may come from: fractions (z, y, x) of the scan, the original's fixed location
# first, then its mirror in x and a few neighbours; the block with the most voxels below -800 HU wins.
NOISE_LOCATIONS = np.array([[0.5, 0.43, 0.27], [0.5, 0.43, 0.73], [0.6, 0.43, 0.27], [0.6, 0.43, 0.73],
                            [0.4, 0.43, 0.27], [0.4, 0.43, 0.73], [0.5, 0.55, 0.3], [0.5, 0.55, 0.7]])
DESCRIPTIONS = {"inject": "CT-GAN: synthetic nodule inserted", "remove": "CT-GAN: nodule removed synthetically",
                "both": "CT-GAN: synthetic nodules inserted and removed"}


@dataclass
class TamperModel:
    """A trained generator with the normaliser it was trained with."""

    generator: keras.Model
    normalizer: CubeNormalizer

    @property
    def cube_size(self) -> int:
        """Edge of the generator's cubes in voxels (32)."""
        return int(self.generator.input_shape[1])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Generator output (inference mode) for conditions `x` (B, n, n, n, 1), as a NumPy array."""
        return keras.ops.convert_to_numpy(self.generator(x, training=False))


def kern01(shape_yx: tuple[int, int], nsig: float) -> np.ndarray:
    """The original's in-plane weight: a 2-D Gaussian from normal-CDF differences, rescaled to [0, 1].

    `nsig` is the number of standard deviations from the centre to the region's edge along each axis.
    """
    def axis(n: int) -> np.ndarray:
        return np.diff(normal.cdf(np.linspace(-nsig, nsig, n + 1)))

    k = np.sqrt(np.outer(axis(shape_yx[0]), axis(shape_yx[1])))
    span = k.max() - k.min()
    return (k - k.min()) / span if span > 0 else np.ones_like(k)


def inpaint(cube_hu: np.ndarray, model: TamperModel, mask_size: int = 20) -> np.ndarray:
    """In-paint the centre `mask_size`^3 of a cube (HU, (n, n, n)) with the generator; returns HU float32.

    The whole cube comes back from the generator (as in the original), with > 2000 HU replaced by the
    mean of the 5^3 neighbourhood (air outside) and < -1000 HU clipped.
    """
    x = model.normalizer.normalize(cube_hu)
    x[centre_mask(x.shape[0], mask_size)] = 0.0
    y = model.predict(x[None, ..., None])[0, ..., 0]
    hu = model.normalizer.denormalize(y)
    high = hu > 2000
    if high.any():
        hu[high] = ndimage.uniform_filter(hu, 5, mode="constant", cval=AIR_HU)[high]
    return np.maximum(hu, AIR_HU)


def _region(volume: Volume, c: np.ndarray, half_mm: float, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, ...]:
    """Index slices of the box of half-size `half_mm` (mm, each axis) around voxel `c`, clipped to the
    scan and enlarged if needed to hold the pasted voxels `lo`..`hi` (inclusive)."""
    half = half_mm / volume.spacing_zyx
    lo = np.minimum(np.maximum(np.rint(c - half).astype(int), 0), lo)
    hi = np.maximum(np.minimum(np.rint(c + half).astype(int) + 1, np.asarray(volume.shape)), hi + 1)
    return tuple(slice(a, max(a, b)) for a, b in zip(lo, hi))


def lung_noise(clean: np.ndarray, shape: tuple[int, int, int], avoid: tuple[slice, ...]) -> np.ndarray:
    """Zero-mean lung texture of `shape` copied from `clean` (HU), from a block not overlapping `avoid`."""
    best, best_frac = None, -1.0
    dims = np.asarray(clean.shape)
    for frac in NOISE_LOCATIONS:
        start = np.clip(np.rint(frac * dims - np.asarray(shape) / 2).astype(int), 0, np.maximum(dims - shape, 0))
        block = tuple(slice(s, s + n) for s, n in zip(start, shape))
        if all(b.start < a.stop and a.start < b.stop for a, b in zip(avoid, block)):
            continue
        data = clean[block]
        if data.shape != tuple(shape):
            continue
        f = float(np.mean(data < -800))
        if f > best_frac:
            best, best_frac = data, f
    if best is None or best_frac == 0.0:
        return np.zeros(shape, dtype=np.float32)
    noise = best.astype(np.float32)
    noise[noise > -800] = noise[noise <= -800].mean()
    return noise - noise.mean()


def tamper(volume: Volume, points, mode: str, model: TamperModel, coords: str = "world",
           config: CTGANConfig | None = None, touchups: bool = True) -> Volume:
    """A new Volume with a nodule injected (`mode="inject"`) or removed (`"remove"`) at each point.

    `points` is one point or a list: world (x, y, z) mm, or voxel (z, y, x) with `coords="vox"`. Points are
    processed in order, each on the result of the previous one. `config` supplies cut spacing, mask size,
    touchup_scale and copynoise (defaults: the paper preset). `volume` is not modified; the result keeps
    its dtype and geometry.
    """
    mode = _mode(mode)
    config = config or CTGANConfig()
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    clean = volume.array
    out = volume.array.copy()
    current = volume.with_array(out)  # shares `out`: each site sees the previous sites' changes
    n = model.cube_size
    for point in pts:
        c = centre_voxel(volume, point, coords)
        if not volume.contains(c):
            raise DataError(None, f"point {tuple(point)} ({coords}) lies outside the scan of shape {volume.shape}")
        cube = extract_cube(current, c, size=n, spacing_mm=config.spacing_mm, coords="vox")
        hu = inpaint(cube, model, config.mask_size)
        lo, hi, back = resample_back(current, hu, c, config.spacing_mm)
        if not touchups:
            out[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = cast_like(back, out.dtype)
            continue
        region = _region(volume, c, config.touchup_scale * n * config.spacing_mm / 2, lo, hi)
        ben = out[region].astype(np.float32)
        mal = ben.copy()
        inner = tuple(slice(a - r.start, b + 1 - r.start) for a, b, r in zip(lo, hi, region))
        mal[inner] = back
        if config.copynoise:
            mal += lung_noise(clean, ben.shape, region)
        if mode == "inject":
            f = expit((mal + 700.0) / 70.0) * kern01(ben.shape[1:], 3.0)[None]
            final = np.maximum(mal * f + ben * (1.0 - f), ben)
        else:
            k = kern01(ben.shape[1:], 0.1)[None]
            final = mal * k + ben * (1.0 - k)
        out[region] = cast_like(final, out.dtype)
    return current


MARK_PREFIX = "CTGAN_"  # MetaImage header fields that mark a tampered .mhd


def tampered_destination(destination: str | os.PathLike, fmt: str) -> Path:
    """The path a tampered scan is really written to. DICOM: the folder `destination`. mhd: `destination`
    when it ends in `.mhd`, `destination/tampered.mhd` when it is an existing folder, else `destination` with
    `.mhd` appended (not a suffix swap: series UIDs contain dots)."""
    destination = Path(destination)
    if fmt == "dicom":
        return destination
    if fmt != "mhd":
        raise ValueError(f"fmt must be 'dicom' or 'mhd', got {fmt!r}")
    if destination.suffix.lower() == ".mhd":
        return destination
    if destination.is_dir():
        return destination / "tampered.mhd"
    return destination.with_name(destination.name + ".mhd")


def check_destination(source: str | os.PathLike, destination: str | os.PathLike, fmt: str = "dicom") -> Path:
    """The resolved destination (:func:`tampered_destination`); DataError naming both paths when writing it
    could overwrite any file of the input `source` (an `.mhd` and the data file it names, or a DICOM folder)."""
    from ..outputs import check_outputs

    final = tampered_destination(destination, fmt)
    check_outputs(planned_volume_files(final) if fmt == "mhd" else [final], [source])
    return final


def tamper_marks(mode: str, sites_xyz, source: str | os.PathLike | None = None) -> dict[str, str]:
    """Header fields saying a scan is CT-GAN-derived: what was done, where (world x, y, z mm) and to what."""
    pts = np.asarray(sites_xyz, dtype=np.float64).reshape(-1, 3)
    marks = {f"{MARK_PREFIX}Derived": "True", f"{MARK_PREFIX}Description": DESCRIPTIONS[mode],
             f"{MARK_PREFIX}Sites": "; ".join(f"{mode} at {x:.2f},{y:.2f},{z:.2f} mm" for x, y, z in pts) or "none",
             f"{MARK_PREFIX}Warning": "synthetically altered; never for clinical use"}
    if source is not None:
        marks[f"{MARK_PREFIX}Source"] = str(source)
    return marks


def write_tampered(volume: Volume, destination: str | os.PathLike, mode: str, fmt: str = "dicom",
                   source: str | os.PathLike | None = None, uid_entropy=None, sites_xyz=None) -> Path:
    """Write a tampered volume as a DICOM series folder (`fmt="dicom"`) or an `.mhd` (`fmt="mhd"`).

    DICOM: new Study/Series/SOP UIDs (copying patient and study tags from `source` when it is a DICOM
    folder), ImageType DERIVED\\SECONDARY and a SeriesDescription saying what was done. mhd: header fields
    `CTGAN_Derived`, `CTGAN_Description`, `CTGAN_Sites` (world mm of `sites_xyz`) and `CTGAN_Source`
    (:func:`tamper_marks`). The destination is resolved by :func:`tampered_destination`; `mode` ("inject",
    "remove" or "both") picks the description. Refuses (DataError) to write over any file of `source`.
    """
    if mode not in DESCRIPTIONS:
        raise ValueError(f"mode must be one of {sorted(DESCRIPTIONS)}, got {mode!r}")
    destination = check_destination(source, destination, fmt) if source is not None else \
        tampered_destination(destination, fmt)
    if fmt == "mhd":
        marks = tamper_marks(mode, np.zeros((0, 3)) if sites_xyz is None else sites_xyz, source)
        return write_volume(volume, destination, metadata=marks)
    from ..dicom import write_dicom_series

    reference = source if source is not None and Path(source).is_dir() else None
    write_dicom_series(volume, destination, series_description=DESCRIPTIONS[mode], derived=True,
                       reference_folder=reference, uid_entropy=uid_entropy)
    return destination


def tamper_file(source: str | os.PathLike, destination: str | os.PathLike, mode: str, points,
                model: TamperModel, coords: str = "vox", fmt: str = "dicom",
                config: CTGANConfig | None = None) -> tuple[Path, float]:
    """Read a scan (`.mhd` or a DICOM folder), tamper it at `points` and write it; the input is not touched.

    `points` are voxel indices (z, y, x) of the file as stored (`coords="vox"`) or world (x, y, z) mm. The
    destination is resolved and checked against the input's files before anything is read. The scan is
    tampered in the canonical orientation the GANs were trained in and written back in its own storage
    orientation. Returns (the path written, seconds spent tampering).
    """
    import time

    check_destination(source, destination, fmt)
    stored = read_volume(source, canonical=False)
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if coords in ("vox", "voxel"):
        outside = ~np.atleast_1d(stored.contains(pts))
        if outside.any():
            raise DataError(source, f"voxel {tuple(pts[outside][0])} lies outside the scan of shape {stored.shape}")
    world = pts if coords == "world" else stored.voxel_to_world(pts)
    started = time.perf_counter()
    tampered = tamper(stored.canonical(), world, mode, model, coords="world", config=config)
    seconds = time.perf_counter() - started
    written = write_tampered(tampered.reoriented(stored.direction), destination, mode, fmt=fmt, source=source,
                             sites_xyz=world)
    return written, seconds


def load_tamper_model(work_dir: str | os.PathLike, mode: str) -> TamperModel:
    """The trained `mode` generator and normaliser under `<work_dir>/<mode>/` (ModelMissingError if absent)."""
    from .training import load_generator

    return TamperModel(*load_generator(work_dir, mode))
