"""CT-GAN stage, step 1: build the injector's and the remover's training sets.

Reads a LUNA16-layout DATA_ROOT (scans in subset*/, annotations.csv, annotations_excluded.csv). The
injector learns from the annotated nodules of the training subsets (all but TEST_SUBSETS and VAL_SUBSET)
of at least INJECT_MIN_DIAMETER_MM (0: all), the remover from HEALTHY_SITES_PER_SCAN random lung sites per scan, CLEARANCE_MM clear of every finding.
Per site a CUT_MM cube is resampled to SPACING_MM isotropic (only the cube), augmented (3 flips, 4 shifts
of SHIFT voxels, N_ROTATIONS axial rotations from ROTATION_START every ROTATION_STEP degrees) and
centre-cropped to CUBE_SIZE^3; histogram equalisation (NBINS bins) and (x - mean) / (max - min) are fitted
on the training cubes. Writes WORK_DIR/{inject,remove}/: train.npy, val.npy (float32, normalised),
normalization.npz, sites.csv, trainset.json.

    python CT-GAN/preprocess.py --preset demo

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.ctgan.config import MODES, PRESETS
from lungnodule.scripting import run, stage_main

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/ctgan"
MODE = "both"  # inject, remove or both
TEST_SUBSETS = (9,)
VAL_SUBSET = 8
SEED = 0
CUT_MM = 40.0
SPACING_MM = 1.0
CUBE_SIZE = 32
MASK_SIZE = 20
SHIFT = 4
N_ROTATIONS = 12
ROTATION_START = 6.0
ROTATION_STEP = 30.0
INJECT_MIN_DIAMETER_MM = 0.0
HEALTHY_SITES_PER_SCAN = 2
CLEARANCE_MM = 20.0
LUNG_MARGIN_MM = 8.0
NBINS = 10000
WORKERS = 1  # processes reading the scans (the outputs are the same for any number)


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.ctgan.dataset import build_trainset  # after parsing: --help stays fast

    results = {}
    for mode in (MODES if args.mode == "both" else (args.mode,)):
        results[mode] = build_trainset(config, args.data_root, args.work_dir, mode, workers=args.workers)
        r = results[mode]
        print(f"{mode}: {r['train_sites']} training sites -> {r['train_cubes']} cubes, {r['val_cubes']} validation "
              f"cubes in {r['folder']}")
    return results


if __name__ == "__main__":
    run(main)
