"""CT-GAN stage, step 2: train the injector and/or the remover (3-D pix2pix).

Reads WORK_DIR/<mode>/train.npy, val.npy and normalization.npz (from CT-GAN/preprocess.py). Generator
and discriminator with BASE_FILTERS filters (40 as the original repository; 100 as the CT-GAN paper, about
189.5 M parameters together); least squares with real = 0 / fake = 1; G loss = adversarial + L1_WEIGHT x
L1; Adam LR_D for D, LR_G for G, beta1 BETA_1; INJECT_EPOCHS x INJECT_BATCH_SIZE for the injector,
REMOVE_EPOCHS x REMOVE_BATCH_SIZE for the remover, data reshuffled every epoch. Writes
WORK_DIR/<mode>/checkpoint/ (every epoch, the last included), history.csv, generator.keras,
progress/epoch_NNN.png (condition / generated / original on PROGRESS_CUBES validation cubes), train.json,
RESULTS_DIR/GAN_loss_curve.png and RESULTS_DIR/GAN_progress_<mode>.png. Run it again after an
interruption: it resumes from the checkpoint (--no-resume starts over).

    python CT-GAN/train.py --preset demo

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.ctgan.config import MODES, PRESETS
from lungnodule.scripting import run, stage_main

WORK_DIR = "data/work/ctgan"
RESULTS_DIR = "Results"
MODE = "both"  # inject, remove or both
RESUME = True
SEED = 0
BASE_FILTERS = 40
LR_D = 1e-6
LR_G = 2e-4
BETA_1 = 0.5
L1_WEIGHT = 100.0
INJECT_EPOCHS = 70
INJECT_BATCH_SIZE = 16
REMOVE_EPOCHS = 200
REMOVE_BATCH_SIZE = 32
DEVICES = 0  # data-parallel over this many devices (0: every visible one); batch sizes are global
PROGRESS_CUBES = 3


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.ctgan.training import train  # after parsing: --help stays fast

    results = {}
    for mode in (MODES if args.mode == "both" else (args.mode,)):
        results[mode] = r = train(config, args.work_dir, args.results_dir, mode, resume=args.resume)
        final = r["final"]
        print(f"{mode}: {r['epochs']} epochs in {r['seconds']:.0f} s; last epoch D loss {final.get('d_loss', float('nan')):.4f}, "
              f"G loss {final.get('g_loss', float('nan')):.3f}, validation mask L1 {final.get('val_mask_l1', float('nan')):.4f}; "
              f"model {r['generator']}")
    return results


if __name__ == "__main__":
    run(main)
