"""Training and scoring batches from the per-subset patch files of :mod:`lungnodule.mgicnn.preprocess`.

:class:`PatchSet` opens the `scales.npy` / `positives.npy` memory maps of some subsets and their
`candidates.csv` rows as one table. :class:`TrainBatches` draws an epoch as the original did: every real
candidate once plus, for every positive, its 108 augmented copies (4 in-plane rotations x 27 one-voxel
shifts of the 26x40x40 crop), cut from the stored 28x42x42 patch on the fly, so no augmented copy is ever
stored. Batches are ({"scale_small", "scale_mid", "scale_large"}: (B, 20, 20, 6) float32, labels (B, 1)).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ..errors import DataError
from ..keras_io import predict_fixed
from ..progress import track
from .config import MgiConfig
from .model import INPUT_NAMES
from .patches import AUGMENTATIONS, augmented_crops, scales_from_crops


def as_inputs(scales: np.ndarray) -> dict[str, np.ndarray]:
    """Model inputs from scales (N, 3, 20, 20, 6): {input name: (N, 20, 20, 6) float32}."""
    scales = np.asarray(scales, dtype=np.float32)
    return {name: scales[:, i] for i, name in enumerate(INPUT_NAMES)}


class PatchSet:
    """The patches of some subsets: `rows` (candidates.csv rows with `subset`, `file` and `row` columns) and
    memory-mapped `scales` / `positives` per subset. DataError when a subset was not preprocessed."""

    def __init__(self, patch_dir: str | Path, subsets: list[int]):
        self.patch_dir = Path(patch_dir)
        self.subsets = [int(s) for s in subsets]
        self.scales, self.positives, frames = [], [], []
        for i, k in enumerate(self.subsets):
            folder = self.patch_dir / f"subset{k}"
            if not (folder / "meta.json").is_file():
                raise DataError(folder, "subset not preprocessed (no meta.json); `python 3DCNN/preprocess.py` makes it")
            meta = json.loads((folder / "meta.json").read_text())
            try:
                self.scales.append(np.load(folder / "scales.npy", mmap_mode="r"))
                self.positives.append(np.load(folder / "positives.npy", mmap_mode="r"))
            except (OSError, ValueError) as exc:
                raise DataError(folder, f"cannot read the patch files: {exc}") from None
            rows = pd.read_csv(folder / "candidates.csv", dtype={"seriesuid": str})
            if len(rows) != len(self.scales[-1]) or len(rows) != meta["candidates"]:
                raise DataError(folder, f"candidates.csv has {len(rows)} rows, scales.npy {len(self.scales[-1])}: "
                                        "re-run `python 3DCNN/preprocess.py`")
            frames.append(rows.assign(subset=k, file=i, row=np.arange(len(rows))))
        self.rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        # The scans FPs per scan are divided by: those with candidates, unless the caller sets every scan.
        self.uids: list[str] = sorted(self.rows["seriesuid"].unique()) if len(self.rows) else []

    def __len__(self) -> int:
        return len(self.rows)

    def gather_scales(self, index: np.ndarray) -> np.ndarray:
        """Scales (len(index), 3, 20, 20, 6) float32 of the rows `index` of `self.rows` (memory-map reads sorted)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), *self.scales[0].shape[1:]), dtype=np.float32) if self.scales else None
        files, rows = self.rows["file"].to_numpy()[index], self.rows["row"].to_numpy()[index]
        for f in np.unique(files):
            sel = np.flatnonzero(files == f)
            order = np.argsort(rows[sel])
            out[sel[order]] = self.scales[f][rows[sel][order]]
        return out

    def gather_positives(self, index: np.ndarray) -> np.ndarray:
        """Full 28x42x42 patches (len(index), 28, 42, 42) float32 of positive rows `index` of `self.rows`."""
        index = np.asarray(index, dtype=np.int64)
        files = self.rows["file"].to_numpy()[index]
        prow = self.rows["positive_row"].to_numpy()[index]
        if (prow < 0).any():
            raise ValueError("gather_positives got rows that are not positives")
        out = np.empty((len(index), *self.positives[0].shape[1:]), dtype=np.float32)
        for f in np.unique(files):
            sel = np.flatnonzero(files == f)
            order = np.argsort(prow[sel])
            out[sel[order]] = self.positives[f][prow[sel][order]]
        return out


class TrainBatches(keras.utils.PyDataset):
    """Shuffled training batches: real candidates (rows whose source is in `config.train_sources`) plus 108
    on-the-fly augmented copies of each positive per epoch (see the module docstring).

    Each epoch is a permutation seeded by (seed, epoch) of the pool: real rows (eval-source rows
    `config.eval_source_repeats` times; negatives subsampled to `config.negative_fraction`) and (positive,
    augmentation) pairs; `config.steps_per_epoch` > 0 caps the batches per epoch. A resumed run (`epoch` =
    first epoch to run) continues the same stream.
    """

    def __init__(self, patches: PatchSet, config: MgiConfig, epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        rows = patches.rows
        use = rows["source"].isin(config.train_sources).to_numpy()
        labels = rows["class"].to_numpy()
        repeats = np.where(rows["source"].to_numpy() == config.eval_source, config.eval_source_repeats, 1)
        self.positive_idx = np.flatnonzero(use & (labels == 1))
        self.negative_idx = np.flatnonzero(use & (labels == 0))
        # Real rows of the pool, eval-source rows repeated; augmented copies come from `positive_idx` alone.
        self.positive_pool = np.repeat(self.positive_idx, repeats[self.positive_idx])
        self.negative_pool = np.repeat(self.negative_idx, repeats[self.negative_idx])
        if not len(self.positive_idx) or not len(self.negative_idx):
            raise DataError(patches.patch_dir, f"training needs positives and negatives; subsets {patches.subsets} "
                                               f"have {len(self.positive_idx)} and {len(self.negative_idx)}")
        self.patches, self.config, self.epoch = patches, config, epoch
        self.n_aug = AUGMENTATIONS if config.augment_positives else 0
        self.n_neg = max(1, int(round(config.negative_fraction * len(self.negative_pool))))
        self.pool = self.n_neg + len(self.positive_pool) + len(self.positive_idx) * self.n_aug
        full = math.ceil(self.pool / config.batch_size)
        self.steps = min(full, config.steps_per_epoch) if config.steps_per_epoch > 0 else full
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        """Encoded pool items for this epoch: >= 0 real row index; < 0 -(1 + positive * 108 + aug)."""
        rng = np.random.default_rng([self.config.seed, self.epoch])
        neg = self.negative_pool
        if self.n_neg < len(neg):
            neg = rng.choice(neg, self.n_neg, replace=False)
        aug = (np.arange(len(self.positive_idx) * self.n_aug, dtype=np.int64))
        items = np.concatenate([neg, self.positive_pool, -1 - aug])
        return rng.permutation(items)[:self.steps * self.config.batch_size]

    def __len__(self) -> int:
        return self.steps

    def batch(self, items: np.ndarray) -> tuple[dict, np.ndarray]:
        """Inputs and labels of encoded pool `items` (see :meth:`_permutation`)."""
        real, aug = items[items >= 0], -1 - items[items < 0]
        x = np.empty((len(items), 3, 20, 20, 6), dtype=np.float32)
        y = np.ones((len(items), 1), dtype=np.float32)
        x[:len(real)] = self.patches.gather_scales(real)
        y[:len(real), 0] = self.patches.rows["class"].to_numpy()[real]
        if len(aug):
            which, kind = np.divmod(aug, self.n_aug)
            crops = augmented_crops(self.patches.gather_positives(self.positive_idx[which]), kind)
            x[len(real):] = scales_from_crops(crops, self.config.spline_order)
        return as_inputs(x), y

    def __getitem__(self, index: int):
        bs = self.config.batch_size
        return self.batch(self._order[index * bs:(index + 1) * bs])

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._permutation()


def predict_scales(model: keras.Model, scales: np.ndarray, batch_size: int = 256, tta_flips: bool = False) -> np.ndarray:
    """Nodule probability (N,) float64 of scales (N, 3, 20, 20, 6); with `tta_flips` the mean over the four
    in-plane flips (none, y, x, both). Batches are padded to `batch_size`, so the model is traced once."""
    scales = np.asarray(scales, dtype=np.float32)
    views = [scales] if not tta_flips else [scales, scales[:, :, ::-1], scales[:, :, :, ::-1],
                                            scales[:, :, ::-1, ::-1]]
    total = np.zeros(len(scales), np.float64)
    for view in views:
        total += predict_fixed(model, as_inputs(np.ascontiguousarray(view)), batch_size)[:, 0]
    return total / len(views)


def predict_rows(model: keras.Model, patches: PatchSet, index: np.ndarray, batch_size: int = 256,
                 chunk: int = 4096, progress: bool = True, tta_flips: bool = False) -> np.ndarray:
    """Nodule probability (len(index),) float64 of the rows `index` of `patches`, `chunk` rows read at a time
    (a progress line when there is more than one chunk); `tta_flips` as :func:`predict_scales`."""
    index = np.asarray(index, dtype=np.int64)
    out = np.empty(len(index), dtype=np.float64)
    starts = range(0, len(index), chunk)
    for s in track(starts, "MGI-CNN scoring", unit="chunk", enabled=progress and len(starts) > 1):
        out[s:s + chunk] = predict_scales(model, patches.gather_scales(index[s:s + chunk]), batch_size, tta_flips)
    return out
