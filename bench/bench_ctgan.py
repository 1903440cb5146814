"""Benchmark CT-GAN tampering: median seconds to inject (or remove) one site, per model preset.

Target: at most 1 s per site on this CPU with the demo preset's model; the paper preset (40 filters, the
original repository) and optionally the upstream one (100 filters) are reported. The networks are
untrained (timing does not depend on the weights); the normaliser is fitted on the scan's own values.
The scan is a LUNA16-sized synthetic one (512 x 512 in-plane, 0.7 mm, 2.5 mm slices, int16) unless
--scan names an .mhd. Each repeat tampers a different point of the lung with the full pipeline (cut,
resample, in-paint, resample back, paste, touch-ups); one warm-up call per model is not counted.
Run: ``python bench/bench_ctgan.py [--presets demo paper] [--repeats 7] [--mode inject] [--scan X.mhd]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def _scan(path: str | None):
    from lungnodule.volume import Volume, read_volume

    if path:
        return read_volume(path)
    rng = np.random.default_rng(0)
    shape = (130, 512, 512)
    a = np.full(shape, 40, np.int16)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    for cx in (160, 352):  # two lungs
        lung = ((yy - 256) / 150.0) ** 2 + ((xx - cx) / 90.0) ** 2 <= 1.0
        a[:, lung[0]] = -850
    a = (a + rng.normal(0, 25, shape)).astype(np.int16)
    return Volume(a, origin=(-180.0, -180.0, -320.0), spacing=(0.703125, 0.703125, 2.5))


def main() -> None:
    from lungnodule.ctgan.config import PRESETS
    from lungnodule.ctgan.model import build_generator, count_params
    from lungnodule.ctgan.normalization import CubeNormalizer
    from lungnodule.ctgan.tampering import TamperModel, tamper

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["demo", "paper"], choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mode", default="inject", choices=["inject", "remove"])
    parser.add_argument("--scan", default=None, help="an .mhd scan to tamper (default: a synthetic one)")
    args = parser.parse_args()
    volume = _scan(args.scan)
    rng = np.random.default_rng(0)
    lung = np.argwhere(volume.array[::4, ::8, ::8] < -700) * np.array([4, 8, 8])
    points = lung[rng.choice(len(lung), args.repeats + 1, replace=False)].astype(float)
    normalizer = CubeNormalizer.fit(volume.array[::2, ::4, ::4], 10000)
    print(f"scan {volume.shape} (z, y, x), spacing {tuple(np.round(volume.spacing, 3).tolist())} mm (x, y, z); "
          f"mode {args.mode}; {args.repeats} sites", flush=True)
    for name in args.presets:
        config = PRESETS[name]
        generator = build_generator(config.cube_size, config.base_filters)
        model = TamperModel(generator, normalizer)
        tamper(volume, points[0], args.mode, model, coords="vox", config=config)  # warm-up
        times, g_times = [], []
        for p in points[1:]:
            t0 = time.perf_counter()
            tamper(volume, p, args.mode, model, coords="vox", config=config)
            times.append(time.perf_counter() - t0)
            x = np.zeros((1, config.cube_size, config.cube_size, config.cube_size, 1), np.float32)
            t0 = time.perf_counter()
            model.predict(x)
            g_times.append(time.perf_counter() - t0)
        t = np.array(times)
        print(f"preset {name} (base filters {config.base_filters}, G {count_params(generator) / 1e6:.2f} M params): "
              f"median {np.median(t):.3f} s per site (min {t.min():.3f}, max {t.max():.3f}); generator alone "
              f"median {np.median(g_times):.3f} s", flush=True)


if __name__ == "__main__":
    main()
