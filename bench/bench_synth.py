"""Benchmark the synthetic generator: seconds to generate one scan of each preset on one core.

The foundation target is one `luna`-preset scan (512 x 512 slices, LUNA-like slice counts) in at most 15 s on
one core. Generation only (no disk writes); each repeat is a different scan (seeds 0, 1, ...), so the figure
covers the spread of slice counts. Prints per-scan times, the median and the median time per slice.
Run: ``python bench/bench_synth.py [--preset luna] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import numpy as np

from lungnodule.synth import generate_scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="luna", choices=["luna", "demo", "tiny"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times, slices = [], []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        scan = generate_scan(np.random.default_rng(seed), args.preset)
        times.append(time.perf_counter() - t0)
        slices.append(scan.volume.shape[0])
        print(f"seed {seed}: shape {scan.volume.shape}, {len(scan.nodules)} nodules, "
              f"{len(scan.candidates)} candidates, {times[-1]:.2f} s", flush=True)
    t = np.array(times)
    print(f"preset {args.preset}: median {np.median(t):.2f} s per scan (min {t.min():.2f}, max {t.max():.2f}), "
          f"median {np.median(t / np.array(slices)) * 1000:.1f} ms per slice, over {args.repeats} scans")


if __name__ == "__main__":
    main()
