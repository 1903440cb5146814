"""MGI-CNN stage, step 2: train one MGI-CNN per LUNA16 fold on the preprocessed patches.

Reads WORK_DIR/patches (from 3DCNN/preprocess.py) and DATA_ROOT's annotations. For each test subset in
TEST_SUBSETS, trains on the other subsets except the validation subset (VAL_SUBSET, or -1 = the next one)
with sigmoid cross-entropy, Adam (LEARNING_RATE, BETA1, BETA2), BATCH_SIZE, EPOCHS (STEPS_PER_EPOCH > 0 caps
an epoch); every positive also enters each epoch as 4 rotations x 27 one-voxel shifts. The epoch (by
validation SELECT_BY) and the operating threshold (validation FROC at OPERATING_FPS_PER_SCAN) are chosen
on the validation subset only; the test subset is never read. With FUSION_WEIGHTS (EVAL_SOURCE "unet"),
the final score fuses the MGI-CNN and U-Net probabilities with the weight of best validation CPM. Writes WORK_DIR/fold<t>/{last.keras (every
epoch), best.keras, history.csv, train.json} and RESULTS_DIR/3DCNN_acc.png (loss and accuracy, train and
validation). Run it again after an interruption: it resumes from last.keras (--no-resume starts over).

    python 3DCNN/train.py --preset demo
    python 3DCNN/train.py --test-subsets 9 --merge concat     # one fold, an ablation

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.mgicnn.config import PRESETS
from lungnodule.scripting import run, stage_main

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/mgicnn"
RESULTS_DIR = "Results"
RESUME = True
TEST_SUBSETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
VAL_SUBSET = -1
POOLED = False  # one model for all TEST_SUBSETS together instead of one per subset
TRAIN_SOURCES = ("candidates",)
EVAL_SOURCE = "candidates"
MODE = "proposed"
MERGE = "sum"
FILTERS = (64, 128, 192, 256, 512)
DENSE_UNITS = 1024
DROPOUT = 0.5
LOGIT_BATCHNORM = True
LEARNING_RATE = 3e-3
BETA1 = 0.5
BETA2 = 0.999
BATCH_SIZE = 64
DEVICES = 0  # data-parallel over this many devices (0: every visible one); BATCH_SIZE is global
EPOCHS = 50
STEPS_PER_EPOCH = 0
AUGMENT_POSITIVES = True
NEGATIVE_FRACTION = 1.0
EVAL_SOURCE_REPEATS = 1  # copies of each EVAL_SOURCE training candidate per epoch (oversamples stage 1's FPs)
SELECT_BY = "cpm"
OPERATING_FPS_PER_SCAN = 1.0
FUSION_WEIGHTS = ()  # U-Net weights of the fused score tried on validation; () = MGI-CNN alone (the original)
OPERATING_THRESHOLDS = ()  # stage-1 operating point tried on validation (EVAL_SOURCE "unet"); () = every candidate
OPERATING_MAX_CANDIDATES = ()
TTA_FLIPS = False
SEED = 0


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.mgicnn.training import train  # after parsing: --help stays fast

    result = train(config, args.data_root, args.work_dir, args.results_dir, resume=args.resume)
    for test, m in result["folds"].items():
        v = m["validation"]
        print(f"fold {test}: best epoch {m['best_epoch']} of {m['epochs']} (validation CPM {v['val_cpm']:.3f}, "
              f"loss {v['val_loss']:.4f}, AUC {v['val_auc']:.3f}); threshold {m['threshold']:.4g}; U-Net fusion weight {m['fusion_weight']:g}; "
              f"{m['best_model']}")
    print(f"curves: {result.get('figure')}")
    return result


if __name__ == "__main__":
    run(main)
