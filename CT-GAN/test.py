"""CT-GAN stage, step 3: inject and remove nodules on the held-out test subset.

Reads DATA_ROOT (LUNA16 layout) and the trained generators in WORK_DIR (from CT-GAN/train.py). For each
scan of TEST_SUBSETS (the first TEST_SCANS, 0 = all): INJECT_PER_SCAN nodules are injected at healthy
lung sites and, separately, every annotated nodule is removed, with the original's touch-ups
(TOUCHUP_SCALE region, COPYNOISE). Writes WORK_DIR/tampered/{inject,remove}/ (LUNA16-layout folders the
detector can be run on, with annotations.csv and tampered_sites.csv), WORK_DIR/test_sites.csv,
WORK_DIR/test.json and RESULTS_DIR/GAN_results.png (the same slices before and after).

    python CT-GAN/test.py --preset demo

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.ctgan.config import PRESETS
from lungnodule.scripting import run, stage_main

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/ctgan"
RESULTS_DIR = "Results"
TEST_SUBSETS = (9,)
VAL_SUBSET = 8
TEST_SCANS = 0
INJECT_PER_SCAN = 1
TOUCHUP_SCALE = 1.3
COPYNOISE = True
SEED = 0


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.ctgan.heldout import test  # after parsing: --help stays fast

    r = test(config, args.data_root, args.work_dir, args.results_dir)
    for mode in ("inject", "remove"):
        m = r[mode]
        if m["sites"]:
            print(f"{mode}: {m['sites']} sites, mean HU within 5 mm {m['mean_hu_before']:.0f} -> {m['mean_hu_after']:.0f}, "
                  f"{m['seconds_per_site']:.3f} s per site")
    print(f"tampered scans in {r['tampered_root']}; figure {r['figure']}")
    return r


if __name__ == "__main__":
    run(main)
