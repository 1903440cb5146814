"""Seconds per scan of U-Net candidate detection on a LUNA16-sized volume (512 x 512 x 300), paper model.

Times `lungnodule.unet.inference.detect_candidates` (lung mask, slice preparation, batched prediction of the
lung-bearing slices, resize back, 3-D components) on a synthetic 300-slice 512 x 512 chest-like volume with
the paper preset's U-Net (320 x 320 input, 1,619,461 parameters, random weights: timing only) and prints
the median of REPEATS runs and the breakdown. Backend: KERAS_BACKEND (tensorflow by default; jax on a GPU).

Then times the extraction alone at every threshold of the demo preset's validation grid (what `test` pays per
validation scan) on the worst map for it: an untrained network's near-uniform probability (0.3 +- 0.05 noise
over the lung field), above the lowest thresholds nearly everywhere. `--extraction-only` skips the network.

    OMP_NUM_THREADS=2 python bench/bench_unet_inference.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from lungnodule.unet.config import PRESETS
from lungnodule.unet.inference import extract_candidates, predict_volume
from lungnodule.unet.lungs import lung_field_mask, lung_slices
from lungnodule.unet.model import build_unet
from lungnodule.volume import Volume


def chest_volume(depth: int = 300, size: int = 512, seed: int = 0) -> Volume:
    """A crude chest: air outside a soft-tissue ellipse holding two air-filled lungs with noise, 0.7 x 0.7 x 1 mm."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[:depth, :size, :size]
    arr = np.full((depth, size, size), -1000, np.int16)
    body = ((yy - size / 2) / (0.38 * size)) ** 2 + ((xx - size / 2) / (0.45 * size)) ** 2 <= 1
    arr[np.broadcast_to(body, arr.shape)] = 40
    z_lung = (zz > 0.1 * depth) & (zz < 0.9 * depth)
    for cx in (0.32, 0.68):
        lung = ((yy - size / 2) / (0.28 * size)) ** 2 + ((xx - cx * size) / (0.15 * size)) ** 2 <= 1
        arr[z_lung & lung] = -850
    arr += rng.normal(0, 20, arr.shape).astype(np.int16)
    return Volume(arr, origin=(-180.0, -180.0, -350.0), spacing=(0.7, 0.7, 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depth", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--extraction-only", action="store_true", help="time only the threshold-grid extraction")
    args = parser.parse_args()
    config = PRESETS["paper"]
    if args.extraction_only:
        bench_extraction(chest_volume(args.depth), args.repeats)
        return
    keras.utils.set_random_seed(0)
    model = build_unet((config.image_size, config.image_size, 1), config.base_filters, config.growth_step)
    volume = chest_volume(args.depth)
    t0 = time.perf_counter()
    lungs = lung_field_mask(volume.array, volume.spacing_zyx)
    n_slices = len(lung_slices(lungs, config.min_lung_fraction))
    t_lung = time.perf_counter() - t0
    predict_volume(model, Volume(volume.array[100:116], volume.origin, volume.spacing), config, args.batch_size)  # warm-up / tracing
    totals, predicts = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        prob = predict_volume(model, volume, config, args.batch_size)
        t1 = time.perf_counter()
        extract_candidates(prob, volume, config.threshold, config.max_candidates)
        t2 = time.perf_counter()
        totals.append(t2 - t0)
        predicts.append(t1 - t0)
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, Keras backend {keras.backend.backend()}, "
          f"devices: {_devices()}")
    print(f"volume {volume.shape} (z, y, x), {n_slices} lung-bearing slices predicted at "
          f"{config.image_size}x{config.image_size}, batch {args.batch_size}, model {model.count_params():,} parameters")
    print(f"lung mask alone: {t_lung:.2f} s")
    print(f"seconds per scan (median of {args.repeats}): {np.median(totals):.2f} "
          f"(lung mask + prediction {np.median(predicts):.2f}, components {np.median(totals) - np.median(predicts):.2f}); "
          f"all runs {', '.join(f'{t:.2f}' for t in totals)}")
    print(f"per predicted slice: {1000 * np.median(predicts) / n_slices:.1f} ms")
    bench_extraction(volume, args.repeats)


def bench_extraction(volume: Volume, repeats: int) -> None:
    """Print the median seconds of `extract_candidates` over the demo threshold grid on a near-uniform map."""
    grid = PRESETS["demo"].threshold_grid
    lungs = lung_field_mask(volume.array, volume.spacing_zyx)
    rng = np.random.default_rng(1)
    prob = np.where(lungs, 0.3 + 0.05 * rng.standard_normal(volume.shape), 0.0).astype(np.float32)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in grid:
            extract_candidates(prob, volume, t, 100)
        times.append(time.perf_counter() - t0)
    print(f"extraction over the demo grid {grid} on a near-uniform map ({lungs.mean():.0%} of the volume lung): "
          f"median {np.median(times):.2f} s per scan; all runs {', '.join(f'{t:.2f}' for t in times)}")


def _devices() -> str:
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    except ImportError:
        return "n/a"


if __name__ == "__main__":
    main()
