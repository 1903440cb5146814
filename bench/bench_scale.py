"""Scale: scans per second of every per-scan step on 1 and 2 worker processes, training samples per second on 1
and 2 devices.

1. Workers (`--workers 1 2`). Generates SCANS `luna`-preset scans (512 x 512 slices, LUNA16's spacings) once, or
   uses --data-root, then times in a fresh work folder for each number of workers: U-Net preprocessing (paper
   preset: 320-px slices), MGI-CNN preprocessing of the dataset's candidate list (paper preset, native voxels),
   CT-GAN training cubes (paper preset, both GANs' sites), and `lungnodule detect` on every scan with untrained
   demo-preset networks (inference costs the same whatever the weights). Every step writes the same bytes for
   any number of workers (tests/test_parallel.py), so only the time differs.
2. Devices (`--devices 1 2`). One child interpreter per device count, with KERAS_BACKEND=jax and
   XLA_FLAGS=--xla_force_host_platform_device_count=N (virtual CPU devices; on a GPU machine the real ones are
   used instead, see --real-devices): training samples/s of the U-Net, the MGI-CNN and the CT-GAN injector
   (demo presets, random data, data-parallel through lungnodule.devices), median of REPEATS timed epochs after
   a warm-up epoch. `--preset paper` times the paper networks instead (bench/gpu.sh does, on a GPU).

Prints every figure and the ratio of 2 to 1; --out writes them as JSON.

    python bench/bench_scale.py                       # both parts, 4 scans
    python bench/bench_scale.py --skip-devices --scans 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child interpreter of part 2: prints one JSON line of samples/s per network.
DEVICES_CHILD = r"""
import json, statistics, sys, time
import numpy as np
import keras

from lungnodule.devices import data_parallel, visible

n, steps, repeats, preset = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
out = {"devices": visible()[:n], "preset": preset, "backend": keras.backend.backend()}


def timed(fit, samples):
    fit(1)  # warm-up: compilation
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit(1)
        runs.append(samples / (time.perf_counter() - t0))
    return statistics.median(runs)


from lungnodule.unet.config import PRESETS as UNET
from lungnodule.unet.model import build_unet, compile_unet

c = UNET[preset]
ch = 2 * c.context_slices + 1
x = rng.random((steps * c.batch_size, c.train_crop_size, c.train_crop_size, ch), dtype=np.float32)
y = (rng.random((len(x), c.train_crop_size, c.train_crop_size, 1)) > 0.99).astype(np.float32)
with data_parallel(n):
    m = build_unet((None, None, ch), c.base_filters, c.growth_step)
    compile_unet(m, c.learning_rate, c.momentum, c.optimizer, c.dice_smooth, c.bce_weight, c.positive_weight, 0)
    out["unet"] = timed(lambda e: m.fit(x, y, batch_size=c.batch_size, epochs=e, verbose=0), len(x))

from lungnodule.mgicnn.config import PRESETS as MGI
from lungnodule.mgicnn.model import build_mgicnn, compile_mgicnn
from lungnodule.mgicnn.patches import INPUT_SHAPE, N_SCALES

c = MGI[preset]
xs = [rng.random((steps * c.batch_size, *INPUT_SHAPE), dtype=np.float32) for _ in range(N_SCALES)]
ys = (rng.random((len(xs[0]), 1)) > 0.5).astype(np.float32)
with data_parallel(n):
    m = compile_mgicnn(build_mgicnn(c), c)
    out["mgicnn"] = timed(lambda e: m.fit(xs, ys, batch_size=c.batch_size, epochs=e, verbose=0), len(ys))

import tempfile
from pathlib import Path

from lungnodule.ctgan.config import PRESETS as GAN, trainset_dir
from lungnodule.ctgan.normalization import CubeNormalizer
from lungnodule.ctgan.training import train

c = GAN[preset]
work = Path(tempfile.mkdtemp())
folder = trainset_dir(work, "inject")
folder.mkdir(parents=True)
n_cubes = steps * c.inject_batch_size
cubes = rng.normal(-600, 300, (n_cubes, c.cube_size, c.cube_size, c.cube_size)).astype(np.float32)
norm = CubeNormalizer.fit(cubes, c.nbins)
np.save(folder / "train.npy", norm.normalize(cubes).astype(np.float32))
np.save(folder / "val.npy", norm.normalize(cubes[:c.inject_batch_size]).astype(np.float32))
norm.save(folder / "normalization.npz")
cfg = c.replace(devices=n)
# Epoch 1 compiles; each later epoch is timed by the difference of two runs of 1 and 1 + repeats epochs.
t0 = time.perf_counter()
train(cfg, work, str(work / "Results"), "inject", resume=False, epochs=1, verbose=0)
t1 = time.perf_counter()
train(cfg, work, str(work / "Results"), "inject", resume=False, epochs=1 + repeats, verbose=0)
t2 = time.perf_counter()
out["ctgan"] = repeats * n_cubes / max((t2 - t1) - (t1 - t0), 1e-9)
print("RESULT " + json.dumps(out))
"""


def _generate(n_scans: int, folder: Path) -> Path:
    from lungnodule.synth import generate_dataset

    return generate_dataset(folder, n_scans=n_scans, seed=0, preset="luna", n_subsets=min(3, n_scans),
                            workers=min(2, os.cpu_count() or 1), progress=False)


def workers_part(data_root: Path, counts: list[int], scratch: Path) -> dict:
    """Seconds and scans/s of each per-scan step for each number of workers."""
    from lungnodule.ctgan.config import PRESETS as GAN
    from lungnodule.ctgan.dataset import build_trainset
    from lungnodule.detect import detect
    from lungnodule.luna import LunaDataset
    from lungnodule.mgicnn.config import PRESETS as MGI
    from lungnodule.mgicnn.preprocess import preprocess as mgi_preprocess
    from lungnodule.unet.config import PRESETS as UNET
    from lungnodule.unet.preprocess import preprocess as unet_preprocess
    from lungnodule.untrained import save_untrained_detector

    ds = LunaDataset(data_root)
    n = len(ds.seriesuids)
    scans = [ds.scan_path(u) for u in ds.seriesuids]
    models = save_untrained_detector(scratch / "models", ds.load(ds.seriesuids[0]), preset="demo",
                                     max_candidates=100)
    # The last subset is the test fold: the U-Net preprocesses every subset, CT-GAN cuts cubes from the others.
    folds = {"test_subsets": (ds.subsets[-1],), "val_subset": ds.subsets[-2] if len(ds.subsets) > 2 else None}
    unet_cfg = UNET["paper"].replace(**folds)
    gan_cfg = GAN["paper"].replace(**folds)
    gan_scans = len(ds.uids_in([s for s in ds.subsets if s != ds.subsets[-1]]))
    steps = {
        "unet_preprocess": lambda w, d: unet_preprocess(unet_cfg, data_root, d, progress=False, workers=w),
        "mgicnn_preprocess": lambda w, d: mgi_preprocess(MGI["paper"], data_root, d, subsets=list(ds.subsets),
                                                         progress=False, workers=w),
        "ctgan_cubes": lambda w, d: [build_trainset(gan_cfg, data_root, d, mode, progress=False, workers=w)
                                     for mode in ("inject", "remove")],
        "detect": lambda w, d: detect(scans, d / "findings.csv", models / "unet", models / "mgicnn",
                                      all_candidates=True, progress=False, workers=w),
    }
    out: dict = {"scans": n, "scan_shape": list(ds.load(ds.seriesuids[0]).shape), "steps": {}}
    for name, step in steps.items():
        out["steps"][name] = {}
        for w in counts:
            work = scratch / f"{name}_{w}"
            t0 = time.perf_counter()
            step(w, work)
            seconds = time.perf_counter() - t0
            shutil.rmtree(work, ignore_errors=True)
            k = gan_scans if name == "ctgan_cubes" else n
            out["steps"][name][w] = {"seconds": round(seconds, 2), "scans": k,
                                     "scans_per_second": round(k / seconds, 4)}
            print(f"{name}: {w} worker(s): {seconds:.1f} s, {k / seconds:.3f} scans/s", flush=True)
    return out


def devices_part(counts: list[int], steps: int, repeats: int, real: bool, preset: str = "demo") -> dict:
    """Training samples/s of each network for each number of devices (a child interpreter each); with `real`
    the machine's own devices and KERAS_BACKEND as set (default jax), else virtual CPU devices under JAX."""
    out = {}
    for n in counts:
        env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax") if real else "jax"}
        if not real:
            env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
        proc = subprocess.run([sys.executable, "-c", DEVICES_CHILD, str(n), str(steps), str(repeats), preset],
                              env=env, capture_output=True, text=True, cwd=ROOT)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            raise RuntimeError(f"devices child ({n}) failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        out[n] = json.loads(line[0][len("RESULT "):])
        print(f"{n} device(s) {out[n]['devices']}: " + ", ".join(
            f"{k} {out[n][k]:.1f} samples/s" for k in ("unet", "mgicnn", "ctgan")), flush=True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=4, help="luna-preset scans to generate (default 4)")
    parser.add_argument("--data-root", default=None, help="use this LUNA16-layout root (>= 2 subsets) instead")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=12, help="training steps per timed epoch (default 12)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real-devices", action="store_true", help="use the machine's devices, not virtual CPUs")
    parser.add_argument("--preset", default="demo", choices=["demo", "paper"],
                        help="network presets of the devices part (default demo)")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--skip-devices", action="store_true")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    result: dict = {"machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
                    "date": time.strftime("%Y-%m-%d")}
    print(result["machine"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_workers:
            root = Path(args.data_root) if args.data_root else _generate(args.scans, tmp / "luna")
            result["workers"] = workers_part(root, args.workers, tmp)
            for name, by in result["workers"]["steps"].items():
                if 1 in by and 2 in by:
                    print(f"{name}: 2 workers / 1 = {by[1]['seconds'] / by[2]['seconds']:.2f}x")
    if not args.skip_devices:
        result["devices"] = devices_part(args.devices, args.steps, args.repeats, args.real_devices, args.preset)
        if 1 in result["devices"] and 2 in result["devices"]:
            one, two = result["devices"][1], result["devices"][2]
            print("2 devices / 1: " + ", ".join(f"{k} {two[k] / one[k]:.2f}x" for k in ("unet", "mgicnn", "ctgan")))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
