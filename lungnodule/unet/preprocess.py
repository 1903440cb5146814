"""LUNA16-format scans -> U-Net training slices: images, masks drawn from the annotations, and a manifest.

For each scan: every axial slice touched by an annotated nodule (a sphere of its annotated diameter),
plus `negative_slices_per_scan` lung-bearing slices away from every nodule and excluded finding
(vessels, pleura, airways; drawn from a Generator seeded by the config seed and the series UID).
Outputs per split (LUNA16 subsets via `fold_split`) in `work_dir/<split>/`: `images.npy` (N, S, S, C)
float16 in [0, 1] (C = 2 * context_slices + 1 channels), `masks.npy` (N, S, S) uint8, `manifest.csv`
(one row per slice: series UID, subset, slice index, kind, native shape and geometry, so any prediction
maps back to world mm). Each scan's
slices are cached in `work_dir/cache/<fingerprint>/` first, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_dir, atomic_path, write_text
from ..evaluation import UNKNOWN_DIAMETER_MM
from ..luna import LunaDataset, fold_split
from ..parallel import Loaded, ordered_map
from ..progress import track
from ..volume import Volume
from .config import UnetConfig
from .lungs import lung_field_mask, lung_slices
from .masks import draw_slice_mask, nodule_slice_range
from .slices import prepare_stacks

SPLITS = ("train", "val", "test")
_PREP_FIELDS = ("image_size", "hu_min", "hu_max", "image_interpolation", "negative_slices_per_scan",
                "mask_lungs", "min_lung_fraction", "mask_min_radius_px", "context_slices", "context_mm", "seed")


def _fingerprint(config: UnetConfig) -> str:
    d = {k: getattr(config, k) for k in _PREP_FIELDS}
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _findings(frame: pd.DataFrame, uid: str, volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    rows = frame[frame["seriesuid"] == uid]
    if rows.empty:
        return np.zeros((0, 3)), np.zeros(0)
    centres = volume.world_to_voxel(rows[["coordX", "coordY", "coordZ"]].to_numpy(dtype=np.float64))
    diameter = rows["diameter_mm"].to_numpy(dtype=np.float64)
    # A negative diameter (excluded findings without a size) means 10 mm, as in the LUNA16 evaluation.
    return np.atleast_2d(centres), np.where(diameter < 0, UNKNOWN_DIAMETER_MM, diameter) / 2.0


def scan_slices(volume: Volume, uid: str, subset: int, annotations: pd.DataFrame, excluded: pd.DataFrame,
                config: UnetConfig) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Training slices of one scan: images (N, S, S, C) float16, masks (N, S, S) uint8 and manifest rows.

    Nodule slices are those :func:`nodule_slice_range` gives for each annotation of `uid`; negatives are
    lung-bearing slices more than one slice away from every nodule's and excluded finding's range.
    """
    depth, h, w = volume.shape
    s = config.image_size
    centres, radii = _findings(annotations, uid, volume)
    ex_centres, ex_radii = _findings(excluded, uid, volume)
    first, last = nodule_slice_range(centres, radii, volume.spacing_zyx, depth)
    positive = np.zeros(depth, dtype=bool)
    near = np.zeros(depth, dtype=bool)
    for a, b in zip(first, last):  # one range per nodule (a handful per scan)
        positive[a:b + 1] = True
        near[max(a - 1, 0):b + 2] = True
    ex_first, ex_last = nodule_slice_range(ex_centres, ex_radii, volume.spacing_zyx, depth)
    for a, b in zip(ex_first, ex_last):
        near[max(a - 1, 0):b + 2] = True
    lungs = lung_field_mask(volume.array, volume.spacing_zyx)
    pool = np.setdiff1d(lung_slices(lungs, config.min_lung_fraction), np.flatnonzero(near))
    rng = np.random.default_rng([config.seed, zlib.crc32(uid.encode())])
    n_neg = min(config.negative_slices_per_scan, len(pool))
    negative = np.sort(rng.choice(pool, size=n_neg, replace=False)) if n_neg else np.zeros(0, dtype=int)
    z_pos = np.flatnonzero(positive)
    z_all = np.concatenate([z_pos, negative]).astype(int)
    images = prepare_stacks(volume.array, z_all, config, lungs, volume.spacing_zyx[0]).astype(np.float16)
    masks = np.zeros((len(z_all), s, s), dtype=np.uint8)
    for i, z in enumerate(z_pos):
        masks[i] = draw_slice_mask(int(z), volume.shape, volume.spacing_zyx, centres, radii, (s, s),
                                   config.mask_min_radius_px)
    manifest = pd.DataFrame({
        "seriesuid": uid, "subset": int(subset), "slice_index": z_all,
        "kind": ["nodule"] * len(z_pos) + ["negative"] * len(negative),
        "mask_pixels": masks.reshape(len(z_all), -1).sum(axis=1).astype(np.int64),
        "depth": depth, "height": h, "width": w,
    })
    for i, axis in enumerate("xyz"):
        manifest[f"origin_{axis}"] = volume.origin[i]
    for i, axis in enumerate("xyz"):
        manifest[f"spacing_{axis}"] = volume.spacing[i]
    for i, value in enumerate(volume.direction.ravel()):
        manifest[f"direction_{i}"] = value
    return images, masks, manifest


def _cached_scan(cache: Path, dataset: LunaDataset, uid: str, subset: int, config: UnetConfig):
    """One scan's slices from the cache when it was made from this very scan and its annotations
    (:meth:`LunaDataset.scan_key`; the folder is keyed on the settings), else made and cached."""
    path = cache / f"{uid}.npz"
    key = dataset.scan_key(uid)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if "key" in z.files and str(z["key"]) == key:
                return z["images"], z["masks"], pd.read_csv(path.with_suffix(".csv"), dtype={"seriesuid": str})
    volume = dataset.load(uid)
    images, masks, manifest = scan_slices(volume, uid, subset, dataset.annotations, dataset.excluded, config)
    # CSV first, then the npz whose existence (and key) marks the scan as done.
    with atomic_path(path.with_suffix(".csv")) as tmp:
        manifest.to_csv(tmp, index=False)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, masks=masks, key=np.array(key))
    return images, masks, manifest


def _slices_job(shared: tuple, uid: str) -> tuple[int, pd.DataFrame]:
    """Cache one scan's slices (a worker of :func:`preprocess`; `shared` is (dataset, cache folder, config));
    returns the number of slices and their manifest rows, not the images, so memory holds one scan."""
    dataset, cache, config = shared
    dataset = dataset.get()
    images, _, manifest = _cached_scan(cache, dataset, uid, dataset.subset_of(uid), config)
    return len(images), manifest


def preprocess(config: UnetConfig, data_root: str | Path, work_dir: str | Path, progress: bool = True,
               workers: int = 1) -> dict:
    """Write the U-Net training slices of every scan of a LUNA16-format dataset, split by subset.

    `data_root` is a LUNA16 layout (real or synthetic); outputs go to `work_dir/{train,val,test}/`
    (see the module docstring) with `work_dir/preprocess.json` (config, seed, counts). Resumes from the
    per-scan cache. `workers` processes prepare the scans (the files written are the same for any number).
    Returns a dict of per-split counts and paths.
    """
    dataset = LunaDataset(data_root)
    work_dir = Path(work_dir)
    folds = fold_split(dataset.subsets, test=config.test_subsets, val=config.val_subset)
    cache = work_dir / "cache" / _fingerprint(config)
    cache.mkdir(parents=True, exist_ok=True)
    shared = (Loaded(LunaDataset, str(data_root), value=dataset), cache, config)
    summary = {"data_root": str(data_root), "folds": folds, "config": config.to_dict(), "seed": config.seed,
               "splits": {}}
    for split in SPLITS:
        uids = dataset.uids_in(folds[split])
        parts = list(track(ordered_map(_slices_job, uids, workers, shared), f"U-Net preprocess {split}",
                           total=len(uids), enabled=progress))
        s = config.image_size
        n = sum(p[0] for p in parts)
        manifest = pd.concat([p[1] for p in parts], ignore_index=True) if parts else pd.DataFrame()
        with atomic_dir(work_dir / split) as tmp:
            c = 2 * config.context_slices + 1
            images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.float16, shape=(n, s, s, c))
            masks = np.lib.format.open_memmap(tmp / "masks.npy", mode="w+", dtype=np.uint8, shape=(n, s, s))
            i = 0
            for uid in uids:  # from the cache, one scan at a time
                with np.load(cache / f"{uid}.npz", allow_pickle=False) as z:
                    im, mk = z["images"], z["masks"]
                images[i:i + len(im)] = im
                masks[i:i + len(im)] = mk
                i += len(im)
            images.flush()
            masks.flush()
            del images, masks
            manifest.to_csv(tmp / "manifest.csv", index=False)
        kinds = manifest["kind"].value_counts().to_dict() if n else {}
        summary["splits"][split] = {"scans": len(uids), "subsets": folds[split], "slices": int(n),
                                    "nodule_slices": int(kinds.get("nodule", 0)),
                                    "negative_slices": int(kinds.get("negative", 0)),
                                    "path": str(work_dir / split)}
    write_text(work_dir / "preprocess.json", json.dumps(summary, indent=2))
    return summary
