"""U-Net training speed in the demo configuration: batch preparation and seconds per training step.

Builds a demo-shaped training split in memory (700 slices of 256 x 256 with 5 channels, a fifth of them
holding a nodule disc), then times with the demo preset (augmentation, 128-px crops, nodule weights, the
8/8-filter U-Net, batch 8):
- preparing one augmented batch (`SliceBatches.__getitem__`), median over BATCHES batches;
- one training step inside `model.fit`, for 1 and 2 data threads (`workers`), median of REPEATS epochs of
  STEPS steps after a warm-up epoch.

    python bench/bench_unet_training.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from lungnodule.unet.config import PRESETS
from lungnodule.unet.dataset import SliceBatches
from lungnodule.unet.model import build_unet
from lungnodule.unet.training import compile_unet


def demo_split(n: int = 700, size: int = 256, channels: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random float16 slices (n, size, size, channels) and uint8 masks with a 3-12 px disc in every fifth one."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size, channels), dtype=np.float32).astype(np.float16)
    masks = np.zeros((n, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(0, n, 5):
        cy, cx = rng.integers(20, size - 20, 2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(3, 12) ** 2
    return images, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = PRESETS["demo"]
    images, masks = demo_split(channels=2 * config.context_slices + 1)
    batches = SliceBatches(images, masks, config, augment=True, steps=args.batches)
    times = []
    for i in range(args.batches):
        t0 = time.perf_counter()
        batches[i]
        times.append(time.perf_counter() - t0)
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs")
    print(f"batch preparation (batch {config.batch_size}, {config.train_crop_size}-px crops of "
          f"{images.shape[1]}-px slices, {images.shape[-1]} channels): median {1000 * np.median(times):.1f} ms "
          f"over {args.batches} batches")
    for workers in (1, 2):
        model = build_unet((None, None, images.shape[-1]), config.base_filters, config.growth_step)
        compile_unet(model, config.learning_rate, config.momentum, config.optimizer, config.dice_smooth,
                     config.bce_weight, config.positive_weight, 0)
        data = SliceBatches(images, masks, config, augment=True, steps=args.steps, workers=workers)
        model.fit(data, epochs=1, verbose=0)  # warm-up: tracing
        per_step = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            per_step.append((time.perf_counter() - t0) / args.steps)
        print(f"training step, {workers} data thread(s): median {1000 * np.median(per_step):.0f} ms "
              f"(runs: {', '.join(f'{1000 * t:.0f}' for t in per_step)})")


if __name__ == "__main__":
    main()
