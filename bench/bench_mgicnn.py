"""Throughput of the MGI-CNN stage on this machine: patches/s for preprocessing and for inference.

1. Patch cutting (`lungnodule.mgicnn.patches.candidate_scales`: window, pad with air, 28x42x42 patches,
   the three 6x20x20 scales) for CANDIDATES random candidates of a LUNA16-sized 300 x 512 x 512 int16
   volume, in memory (the per-scan work of `3DCNN/preprocess.py`, without the disk read).
2. End-to-end `lungnodule.mgicnn.preprocess.preprocess` (scan reads, memory-mapped writes) on a generated
   tiny LUNA16-layout dataset (`lungnodule synth --preset tiny`, 6 scans).
3. Inference (`model.predict`, batch BATCH) of the demo-preset and paper-preset networks (random weights:
   timing only), and demo-preset training samples/s.
Backend: KERAS_BACKEND (tensorflow by default).

    OMP_NUM_THREADS=2 python bench/bench_mgicnn.py
    python bench/bench_mgicnn.py --skip-paper           # the paper network is slow on a CPU
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from lungnodule.mgicnn.config import PRESETS
from lungnodule.mgicnn.dataset import as_inputs
from lungnodule.mgicnn.model import build_mgicnn, compile_mgicnn
from lungnodule.mgicnn.patches import candidate_scales, windowed_volume
from lungnodule.volume import Volume


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_cutting(n: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    vol = Volume(rng.integers(-1000, 400, (300, 512, 512)).astype(np.int16), spacing=(0.7, 0.7, 1.25))
    idx = np.column_stack([rng.integers(0, s, n) for s in vol.shape])
    pts = vol.voxel_to_world(idx)
    padded = windowed_volume(vol)
    t_window = _best(lambda: windowed_volume(vol), 1)
    t = _best(lambda: candidate_scales(vol, pts, padded=padded), repeats)
    print(f"  windowing + padding the 300x512x512 scan: {t_window:.2f} s (once per scan)")
    return n / t


def bench_preprocess() -> float:
    from lungnodule.mgicnn.preprocess import preprocess
    from lungnodule.synth import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(f"{tmp}/data", n_scans=6, seed=0, preset="tiny", n_subsets=3, progress=False)
        out = preprocess(PRESETS["tiny"], f"{tmp}/data", f"{tmp}/work", progress=False)
        return out["patches_per_second"]


def bench_model(name: str, n: int, batch: int, train_steps: int) -> tuple[float, float | None]:
    config = PRESETS[name]
    model = compile_mgicnn(build_mgicnn(config), config)
    x = as_inputs(np.random.default_rng(0).random((n, 3, 20, 20, 6), dtype=np.float32))
    model.predict({k: v[:batch] for k, v in x.items()}, batch_size=batch, verbose=0)  # warm-up / trace
    infer = n / _best(lambda: model.predict(x, batch_size=batch, verbose=0), 2)
    train = None
    if train_steps:
        xb = {k: v[:config.batch_size] for k, v in x.items()}
        yb = (np.arange(config.batch_size) % 2).astype(np.float32)[:, None]
        model.train_on_batch(xb, yb)
        t = time.perf_counter()
        for _ in range(train_steps):
            model.train_on_batch(xb, yb)
        train = train_steps * config.batch_size / (time.perf_counter() - t)
    print(f"  {name}: {model.count_params():,} parameters")
    return infer, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    print(f"MGI-CNN throughput: {platform.machine()}, {os.cpu_count()} CPUs, Keras {keras.__version__} "
          f"({keras.backend.backend()})")
    cut = bench_cutting(args.candidates, args.repeats)
    print(f"patch cutting (in memory, 3 scales):   {cut:8.0f} patches/s")
    print(f"preprocess end to end (tiny dataset):  {bench_preprocess():8.0f} patches/s")
    infer, train = bench_model("demo", 4096, args.batch, 10)
    print(f"inference, demo network:               {infer:8.0f} patches/s")
    print(f"training, demo network (batch 64):     {train:8.0f} samples/s")
    if not args.skip_paper:
        infer, train = bench_model("paper", 512, args.batch, 3)
        print(f"inference, paper network:              {infer:8.0f} patches/s")
        print(f"training, paper network (batch 64):    {train:8.0f} samples/s")


if __name__ == "__main__":
    main()
