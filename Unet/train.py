"""U-Net stage, step 2: train the 2-D U-Net on the preprocessed slices.

Reads WORK_DIR/train and WORK_DIR/val (from Unet/preprocess.py). Trains with -Dice loss (smooth
DICE_SMOOTH), plus BCE_WEIGHT x cross-entropy with nodule pixels weighted POSITIVE_WEIGHT (and each
nodule's pixels by its area^-NODULE_BALANCE) when BCE_WEIGHT > 0; OPTIMIZER ("sgd": SGD-Nesterov with
momentum MOMENTUM, as the original; or "adam") at learning rate LEARNING_RATE (CONTINUE_LEARNING_RATE
when starting from INITIAL_WEIGHTS; LR_SCHEDULE "cosine" decays it to 0 over the run); BATCH_SIZE slices
per batch (random TRAIN_CROP_SIZE-pixel crops of them when > 0, a multiple of 32); EPOCHS epochs of
STEPS_PER_EPOCH augmented batches; VALIDATION_STEPS validation batches (0: all). Writes
WORK_DIR/last.keras (every epoch), WORK_DIR/best.keras (best validation Dice, or the last epoch with
SELECT_EPOCH "last"), WORK_DIR/history.csv,
WORK_DIR/train.json and RESULTS_DIR/Unet_loss.png. Run it again after an interruption: it resumes from
last.keras (pass --no-resume to start over).

    python Unet/train.py --preset demo

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.scripting import run, stage_main
from lungnodule.unet.config import PRESETS

WORK_DIR = "data/work/unet"
RESULTS_DIR = "Results"
INITIAL_WEIGHTS = ""
RESUME = True
IMAGE_SIZE = 320
BASE_FILTERS = 32
GROWTH_STEP = 32
BATCH_SIZE = 8
DEVICES = 0  # data-parallel over this many devices (0: every visible one); BATCH_SIZE is global
TRAIN_CROP_SIZE = 0
OPTIMIZER = "sgd"
DICE_SMOOTH = 100.0
BCE_WEIGHT = 0.0
POSITIVE_WEIGHT = 1.0
NODULE_BALANCE = 0.0
POSITIVE_SLICE_FRACTION = 0.0  # share of training slices with a nodule (0: uniform over slices, the original)
LEARNING_RATE = 1e-3
CONTINUE_LEARNING_RATE = 5e-4
MOMENTUM = 0.9
LR_SCHEDULE = "constant"
EPOCHS = 80
STEPS_PER_EPOCH = 200
VALIDATION_STEPS = 10
SELECT_EPOCH = "dice"
ELASTIC_P = 0.5
ELASTIC_ALPHA = 128.0
ELASTIC_SIGMA = 15.0
ROTATE_P = 0.8
ROTATE_DEG = 20.0
FLIP_P = 0.5
SHIFT_P = 0.8
SHIFT_PX = 30
DISTORT_RANGE = 0.5
SEED = 0


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.unet.training import train  # after parsing: --help stays fast

    result = train(config, args.work_dir, args.results_dir, resume=args.resume,
                   initial_weights=args.initial_weights or None)
    print(f"best validation Dice {result['best_val_dice']:.4f} at epoch {result['best_epoch']} of "
          f"{result['epochs']}; model {result['best_model']}; curves {result.get('figure')}")
    return result


if __name__ == "__main__":
    run(main)
