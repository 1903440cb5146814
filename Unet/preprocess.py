"""U-Net stage, step 1: LUNA16-format scans -> training slices, masks and manifest per split.

Reads DATA_ROOT (a LUNA16 layout: subset*/<uid>.mhd and annotations.csv, annotations_excluded.csv;
real LUNA16 or `lungnodule synth` output). For every scan it keeps each axial slice through an annotated
nodule and NEGATIVE_SLICES_PER_SCAN lung-bearing slices without nodules, windows HU to [HU_MIN, HU_MAX]
-> [0, 1], resizes to IMAGE_SIZE (with CONTEXT_SLICES neighbouring slices on each side as extra
channels) and draws each nodule's cross-section as the mask (at least MASK_MIN_RADIUS_PX pixels in
radius). Writes WORK_DIR/{train,val,test}/images.npy, masks.npy, manifest.csv (split by LUNA16 subset:
TEST_SUBSETS, VAL_SUBSET, the rest train) and WORK_DIR/preprocess.json. Resumes from WORK_DIR/cache/
when interrupted.

    python Unet/preprocess.py                      # paper preset, data/synthetic
    python Unet/preprocess.py --preset demo
    python Unet/preprocess.py --data-root /data/LUNA16

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.scripting import run, stage_main
from lungnodule.unet.config import PRESETS

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/unet"
TEST_SUBSETS = (9,)
VAL_SUBSET = 8
IMAGE_SIZE = 320
HU_MIN = -1000.0
HU_MAX = 400.0
IMAGE_INTERPOLATION = "cubic"
NEGATIVE_SLICES_PER_SCAN = 8
MASK_LUNGS = False
MIN_LUNG_FRACTION = 0.01
MASK_MIN_RADIUS_PX = 0.0
CONTEXT_SLICES = 0
CONTEXT_MM = 0.0
SEED = 0
WORKERS = 1  # processes preparing the scans (the outputs are the same for any number)


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.unet.preprocess import preprocess  # after parsing: --help stays fast

    summary = preprocess(config, args.data_root, args.work_dir, workers=args.workers)
    for split, s in summary["splits"].items():
        print(f"{split}: {s['scans']} scans (subsets {s['subsets']}), {s['slices']} slices "
              f"({s['nodule_slices']} through nodules, {s['negative_slices']} negative) -> {s['path']}")
    return summary


if __name__ == "__main__":
    run(main)
