"""Batches of (slice, mask) pairs for Keras from the preprocessed, memory-mapped `.npy` files.

A split folder written by :func:`lungnodule.unet.preprocess.preprocess` holds `images.npy` (N, H, W, C)
float16 in [0, 1] (C input channels), `masks.npy` (N, H, W) uint8 {0, 1} and `manifest.csv`. Batches
are (B, H, W, C) inputs and (B, H, W, 1) targets, float32.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import keras
import numpy as np

from ..errors import DataError
from .augment import augment_pair
from .config import UnetConfig


def load_split(folder: str | Path, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Open a split's `images.npy` (N, H, W, C) and `masks.npy` (N, H, W), memory-mapped by default.

    DataError if either is missing or their shapes disagree.
    """
    folder = Path(folder)
    paths = [folder / "images.npy", folder / "masks.npy"]
    for p in paths:
        if not p.exists():
            raise DataError(p, "missing; `python Unet/preprocess.py` makes it")
    try:
        images, masks = (np.load(p, mmap_mode="r" if mmap else None) for p in paths)
    except (ValueError, OSError) as exc:
        raise DataError(folder, f"cannot read the preprocessed arrays: {exc}") from None
    if images.ndim != 4 or masks.ndim != 3 or images.shape[:3] != masks.shape:
        raise DataError(folder, f"images {images.shape} must be (N, H, W, C) and masks {masks.shape} (N, H, W) "
                                "with equal N, H, W; preprocess again with `python Unet/preprocess.py`")
    return images, masks


def _uniform_start(rng: np.random.Generator, lo: int, hi: int, limit: int) -> int:
    lo, hi = min(max(lo, 0), limit), min(max(hi, 0), limit)
    return int(rng.integers(lo, max(lo, hi) + 1))


def random_crop(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator):
    """A `size` x `size` crop of an (H, W[, C]) image and its (H, W) mask, placed at random.

    When the mask has nodule pixels, the crop holds one of them (drawn at random) at least `size` / 8
    pixels from its border where the slice allows, so a crop of a nodule slice is a positive example;
    otherwise the crop is anywhere in the slice.
    """
    h, w = mask.shape
    if size >= min(h, w):
        return image, mask
    ys, xs = np.nonzero(mask)
    if len(ys):
        k = rng.integers(len(ys))
        margin = size // 8
        # Windows holding pixel (ys[k], xs[k]) `margin` from their border, clipped to the slice.
        y0 = _uniform_start(rng, ys[k] - size + 1 + margin, ys[k] - margin, h - size)
        x0 = _uniform_start(rng, xs[k] - size + 1 + margin, xs[k] - margin, w - size)
    else:
        y0, x0 = rng.integers(h - size + 1), rng.integers(w - size + 1)
    return image[y0:y0 + size, x0:x0 + size], mask[y0:y0 + size, x0:x0 + size]


def nodule_weights(masks: np.ndarray, power: float) -> np.ndarray:
    """Per-pixel weights (B, H, W) of binary masks (B, H, W): each 8-connected nodule region's pixels get
    (its area in pixels)^-`power`, scaled so the nodule pixels of the batch average 1; background 1."""
    weights = np.ones(masks.shape, np.float32)
    for i, m in enumerate(masks):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
        if n > 1:
            area = stats[:, cv2.CC_STAT_AREA].astype(np.float32)
            weights[i] = np.where(labels > 0, area[labels] ** -power, 1.0)
    nodule = masks > 0
    if nodule.any():
        weights[nodule] /= weights[nodule].mean()
    return weights


def _passes(rng: np.random.Generator, items: np.ndarray, need: int) -> np.ndarray:
    """`need` entries of `items`: enough shuffled passes over them, cut to length."""
    reps = math.ceil(need / len(items))
    return np.concatenate([rng.permutation(items) for _ in range(reps)])[:need]


class SliceBatches(keras.utils.PyDataset):
    """Keras dataset of (image, mask) batches drawn from in-memory or memory-mapped arrays.

    Training (`augment=True`): each epoch is `steps` batches of slices drawn without replacement from a
    seeded permutation (the original drew 200 batches of 8 per epoch), each augmented with
    :func:`augment_pair` from a Generator seeded by (seed, epoch, batch), so a run is reproducible and a
    resumed run continues the same stream; with `config.positive_slice_fraction` > 0 that share of the
    slices comes from the nodule-bearing ones (each a seeded permutation, repeated as needed); with
    `config.train_crop_size` each augmented slice is then cut to a :func:`random_crop`; with
    `config.nodule_balance` the targets get a second channel, the :func:`nodule_weights` of their masks
    (see `losses.split_target`). Validation (`augment=False`): fixed order, whole slices, no augmentation.
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, config: UnetConfig, augment: bool,
                 steps: int | None = None, seed: int = 0, epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        if len(images) == 0:
            raise ValueError("no slices to train on")
        self.images, self.masks, self.config = images, masks, config
        self.augment, self.seed, self.epoch = augment, seed, epoch
        self.batch_size = config.batch_size
        full = math.ceil(len(images) / self.batch_size)
        self.steps = full if steps is None else (max(1, min(steps, full)) if not augment else max(1, steps))
        self.positive = None
        if augment and config.positive_slice_fraction > 0:
            # In chunks: `masks` may be a memory map larger than RAM.
            self.positive = np.concatenate([np.asarray(masks[i:i + 256]).any(axis=(1, 2))
                                            for i in range(0, len(masks), 256)])
            if self.positive.all() or not self.positive.any():
                self.positive = None  # one kind of slice only: nothing to rebalance
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.augment:
            return np.arange(len(self.images))
        rng = np.random.default_rng([self.seed, self.epoch])
        need = self.steps * self.batch_size
        if self.positive is None:
            return _passes(rng, np.arange(len(self.images)), need)
        n_pos = int(round(need * self.config.positive_slice_fraction))
        items = np.concatenate([_passes(rng, np.flatnonzero(self.positive), n_pos),
                                _passes(rng, np.flatnonzero(~self.positive), need - n_pos)])
        return rng.permutation(items)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        # Sorted reads are faster on a memory map; the batch order within a batch does not matter.
        idx = np.sort(idx)
        x = np.asarray(self.images[idx], dtype=np.float32)
        y = np.asarray(self.masks[idx], dtype=np.float32)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            pairs = [augment_pair(x[i], y[i], rng, self.config) for i in range(len(idx))]
            if self.config.train_crop_size:
                pairs = [random_crop(a, b, self.config.train_crop_size, rng) for a, b in pairs]
            x = np.stack([a for a, _ in pairs])
            y = np.stack([b for _, b in pairs])
            if self.config.nodule_balance > 0:
                return x, np.stack([y, nodule_weights(y, self.config.nodule_balance)], axis=-1)
        return x, y[..., None]

    def on_epoch_end(self) -> None:
        if self.augment:
            self.epoch += 1
            self._order = self._permutation()
