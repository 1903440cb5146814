"""Training sets of the injector and the remover (reference section 4.2), and their batches.

Per site: a `cut_mm` cube (40 mm) resampled to 1 mm isotropic (only the cube), augmented, centre-cropped
to `cube_size`^3 (32^3). The injector learns from annotated nodules of the training subsets, the remover
from healthy lung sites (:mod:`.sites`). The equaliser and normaliser are fitted on the training cubes;
training cubes are stored normalised as float32 `.npy` beside the normalisation file, validation cubes
(validation subset, no augmentation) likewise for the progress grids and the validation loss.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pandas as pd
from scipy import ndimage

from ..atomic import atomic_path, save_csv, write_text
from ..errors import DataError, ModelMissingError
from ..luna import LunaDataset, fold_split
from ..parallel import Loaded, ordered_map
from ..progress import track
from .config import CTGANConfig, _mode, trainset_dir
from .cubes import AIR_HU, centre_crop, extract_cube
from .normalization import CubeNormalizer
from .sites import healthy_sites

SITE_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "split"]


def augment(cube: np.ndarray, config: CTGANConfig) -> np.ndarray:
    """The original's instances of one cut cube (z, y, x), each centre-cropped to cube_size^3.

    In order: the cube; flipped in y, in x, in both; shifted by (0, +-shift, +-shift) voxels (a crop off
    centre, so no fill value enters); rotated in the axial (y, x) plane by rotation_start + k *
    rotation_step degrees (cubic spline, `reflect` boundary, as the original). Returns
    (config.n_instances, n, n, n) float32.
    """
    n, s = config.cube_size, config.shift
    out = [centre_crop(cube, n), centre_crop(cube[:, ::-1], n), centre_crop(cube[:, :, ::-1], n),
           centre_crop(cube[:, ::-1, ::-1], n)]
    out += [centre_crop(cube, n, (0, dy, dx)) for dy in (-s, s) for dx in (-s, s)]
    for k in range(config.n_rotations):
        angle = config.rotation_start + k * config.rotation_step
        rotated = ndimage.rotate(cube, angle, axes=(1, 2), reshape=False, order=3, mode="reflect")
        out.append(centre_crop(rotated, n))
    return np.stack(out).astype(np.float32)


def _healthy_job(shared: tuple, item: tuple[str, int]) -> np.ndarray:
    """Healthy sites of one scan (a worker of :func:`training_sites`; `shared` is (dataset, config), `item`
    (uid, the scan's index, which seeds its draw)): (healthy_sites_per_scan, 3) world x, y, z mm."""
    dataset, config = shared
    dataset = dataset.get()
    uid, index = item
    findings = dataset.annotations[dataset.annotations["seriesuid"] == uid]
    if dataset.excluded is not None:
        findings = pd.concat([findings, dataset.excluded[dataset.excluded["seriesuid"] == uid]])
    return healthy_sites(dataset.load(uid), findings, config.healthy_sites_per_scan,
                         np.random.default_rng([config.seed, index]), config.clearance_mm, config.lung_margin_mm)


def training_sites(dataset: LunaDataset, config: CTGANConfig, mode: str, split: dict,
                   progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """The sites of one mode for the train and val subsets: columns :data:`SITE_COLUMNS`.

    inject: every annotated nodule of those scans (all rows, unlike the original's first 226) of at least
    `config.inject_min_diameter_mm`.
    remove: `healthy_sites_per_scan` healthy lung points per scan, away from every annotated and excluded
    finding; the scan's index in the sorted UID list seeds its draw.
    """
    rows = []
    for name in ("train", "val"):
        uids = dataset.uids_in(split[name])
        if mode == "inject":
            ann = dataset.annotations
            ann = ann[ann["seriesuid"].isin(uids) & (ann["diameter_mm"] >= config.inject_min_diameter_mm)]
            rows.append(ann.assign(split=name)[SITE_COLUMNS])
            continue
        items = [(uid, dataset.seriesuids.index(uid) if uid in dataset.seriesuids else i) for i, uid in enumerate(uids)]
        found = ordered_map(_healthy_job, items, workers, (Loaded(LunaDataset, str(dataset.root), value=dataset), config))
        for uid, pts in zip(uids, track(found, f"CT-GAN healthy sites ({name})", total=len(uids), enabled=progress)):
            rows.append(pd.DataFrame({"seriesuid": uid, "coordX": pts[:, 0], "coordY": pts[:, 1],
                                      "coordZ": pts[:, 2], "diameter_mm": 0.0, "split": name}))
    sites = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=SITE_COLUMNS)
    return sites.sort_values(["split", "seriesuid"], kind="stable").reset_index(drop=True)


def _cubes_job(shared: tuple, item: tuple) -> np.ndarray:
    """The (augmented) cubes of one scan's sites (a worker of :func:`_cut_all`; `shared` is (dataset, config,
    augmented), `item` (uid, world points (N, 3) x, y, z mm)): (N x instances, n, n, n) float32 HU."""
    dataset, config, augmented = shared
    uid, points = item
    volume = dataset.get().load(uid)
    cubes = []
    for point in points:
        cut = extract_cube(volume, point, size=int(round(config.cut_mm / config.spacing_mm)),
                           spacing_mm=config.spacing_mm, fill=AIR_HU)
        cubes.append(augment(cut, config) if augmented else centre_crop(cut, config.cube_size)[None])
    return np.concatenate(cubes)


def _cut_all(dataset: LunaDataset, sites: pd.DataFrame, config: CTGANConfig, out: np.ndarray, augmented: bool,
             desc: str, progress: bool = True, workers: int = 1) -> None:
    """Fill `out` with the (augmented) cubes of `sites`, loading each scan once, in `workers` processes."""
    groups = list(sites.groupby("seriesuid", sort=False))
    items = ((uid, group[["coordX", "coordY", "coordZ"]].to_numpy()) for uid, group in groups)
    shared = (Loaded(LunaDataset, str(dataset.root), value=dataset), config, augmented)
    k = 0
    for cubes in track(ordered_map(_cubes_job, items, workers, shared), f"CT-GAN {desc}", total=len(groups),
                       enabled=progress):
        out[k:k + len(cubes)] = cubes
        k += len(cubes)


def build_trainset(config: CTGANConfig, data_root: str | os.PathLike, work_dir: str | os.PathLike,
                   mode: str = "inject", progress: bool = True, workers: int = 1) -> dict:
    """Build the injector's (`inject`) or remover's (`remove`) training set; returns a summary dict.

    Writes to `<work_dir>/<mode>/`: `train.npy` (N x n_instances, n, n, n) and `val.npy` float32 cubes,
    normalised; `normalization.npz`; `sites.csv` (the sites used); `trainset.json` (config, seed,
    counts). Every file is written atomically; the big arrays are filled through a memory map. `workers`
    processes read the scans (the files written are the same for any number).
    """
    mode = _mode(mode)
    dataset = LunaDataset(data_root)
    split = fold_split(dataset.subsets, test=config.test_subsets, val=config.val_subset)
    sites = training_sites(dataset, config, mode, split, progress, workers)
    train_sites = sites[sites["split"] == "train"]
    val_sites = sites[sites["split"] == "val"]
    if len(train_sites) == 0:
        raise DataError(data_root, f"no {'annotated nodules' if mode == 'inject' else 'healthy sites'} in the "
                        f"training subsets {split['train']}")
    folder = trainset_dir(work_dir, mode)
    folder.mkdir(parents=True, exist_ok=True)
    n = config.cube_size
    files = {}
    for name, group, augmented in (("train", train_sites, True), ("val", val_sites, False)):
        count = len(group) * (config.n_instances if augmented else 1)
        path = folder / f"{name}.npy"
        with atomic_path(path) as tmp:
            cubes = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(count, n, n, n))
            _cut_all(dataset, group, config, cubes, augmented, f"{mode} {name} cubes", progress, workers)
            if name == "train":
                normalizer = CubeNormalizer.fit(cubes, config.nbins)
            for i in range(0, count, 256):  # normalise in place, in chunks
                cubes[i:i + 256] = normalizer.normalize(cubes[i:i + 256])
            cubes.flush()
            del cubes
        files[name] = count
        if name == "train":
            normalizer.save(folder / "normalization.npz")
    save_csv(folder / "sites.csv", sites)
    summary = {"mode": mode, "data_root": str(data_root), "split": split, "seed": config.seed,
               "train_sites": len(train_sites), "val_sites": len(val_sites), "train_cubes": files["train"],
               "val_cubes": files["val"], "folder": str(folder), "config": config.to_dict()}
    write_text(folder / "trainset.json", json.dumps(summary, indent=2))
    return summary


def load_cubes(work_dir: str | os.PathLike, mode: str, split: str = "train", mmap: bool = True) -> np.ndarray:
    """The normalised cubes (N, n, n, n) of a training set; ModelMissingError if it was not built."""
    path = trainset_dir(work_dir, mode) / f"{split}.npy"
    if not path.exists():
        raise ModelMissingError(f"{path} not found: build it with `python CT-GAN/preprocess.py --mode {mode}`")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise DataError(path, f"corrupt cube file: {exc}") from None


class CubeBatches(keras.utils.PyDataset):
    """Batches (B, n, n, n, 1) of cubes, reshuffled every epoch with a seeded generator.

    Only the remainder of N / B is dropped each epoch (different cubes each time); the original dropped
    one full batch more and never reshuffled.
    """

    def __init__(self, cubes: np.ndarray, batch_size: int, seed: int = 0, shuffle: bool = True, epoch: int = 0):
        super().__init__()
        if len(cubes) < batch_size:
            raise ValueError(f"{len(cubes)} cubes are fewer than one batch of {batch_size}")
        self.cubes, self.batch_size, self.seed, self.shuffle = cubes, int(batch_size), int(seed), shuffle
        self.epoch = epoch
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.cubes))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.cubes))

    def __len__(self) -> int:
        return len(self.cubes) // self.batch_size

    def __getitem__(self, index: int):
        idx = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        return np.asarray(self.cubes[idx], dtype=np.float32)[..., None]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._permutation()
