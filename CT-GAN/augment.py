"""CT-GAN evaluation (b): does training the MGI-CNN on GAN-injected nodules help?

Reads DATA_ROOT (LUNA16 layout), the trained injector in CTGAN_DIR (from CT-GAN/train.py) and stage 1's
candidates in UNET_DIR (from Unet/test.py; used when the MGI-CNN preset trains or scores the U-Net's
candidates, as the demo's does). Writes into WORK_DIR: augmented/ (LUNA16 layout: every original scan
linked, plus COPIES_PER_SCAN tampered copies of each scan of the training subsets, never of TEST_SUBSETS
or VAL_SUBSET, each a new series with INJECT_PER_SCAN nodules injected at healthy lung sites; CSVs with
the injected nodules and their candidates, augmented_dataset.json), mgicnn_baseline/ and
mgicnn_augmented/ (the MGI-CNN trained on DATA_ROOT and on augmented/ with the same settings and SEED,
both scored on TEST_SUBSETS) and augmentation.json (both CPMs with 95% CIs, and the CPM difference with a
paired scan-bootstrap 95% CI from N_BOOTSTRAP resamples); and RESULTS_DIR/GAN_augmentation.png (both
FROC curves). Nothing else in CTGAN_DIR, UNET_DIR or RESULTS_DIR is written.

    python CT-GAN/augment.py --preset demo

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.ctgan.config import PRESETS
from lungnodule.mgicnn.config import PRESETS as MGI_PRESETS
from lungnodule.scripting import run, stage_main

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/ctgan_aug"
CTGAN_DIR = "data/work/ctgan"
UNET_DIR = "data/work/unet"
RESULTS_DIR = "Results"
TEST_SUBSETS = (9,)
VAL_SUBSET = 8
INJECT_PER_SCAN = 1
COPIES_PER_SCAN = 1
N_BOOTSTRAP = 1000
SEED = 0


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.pipeline import augmentation_experiment  # after parsing: --help stays fast

    preset = args.preset or "paper"
    # The MGI-CNN's settings come from its own preset of the same name (the paper's where it has none).
    mgi_config = MGI_PRESETS.get(preset, MGI_PRESETS["paper"]).replace(seed=args.seed)
    r = augmentation_experiment(args.data_root, args.work_dir, args.results_dir, args.seed, preset,
                                ctgan_config=config, mgi_config=mgi_config, ctgan_dir=args.ctgan_dir,
                                unet_dir=args.unet_dir, copies_per_scan=args.copies_per_scan,
                                n_bootstrap=args.n_bootstrap)
    for name in ("baseline", "augmented"):
        m = r[name]
        print(f"{name}: CPM {m['cpm']:.3f} [{m['cpm_ci95'][0]:.3f}, {m['cpm_ci95'][1]:.3f}] "
              f"({m['train_positives']} training positives)")
    d = r["difference"]
    print(f"difference (augmented - baseline): {d['cpm']:+.3f}, paired 95% CI [{d['ci95'][0]:+.3f}, "
          f"{d['ci95'][1]:+.3f}] on {r['test_scans']} test scans; {r['timings']['total']:.0f} s; "
          f"details in {args.work_dir}/augmentation.json")
    return r


if __name__ == "__main__":
    run(main)
