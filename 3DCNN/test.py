"""MGI-CNN stage, step 3: score each fold's held-out subset with that fold's model; ROC, FROC / CPM.

Reads WORK_DIR/fold<t>/best.keras and train.json (from 3DCNN/train.py), WORK_DIR/patches and DATA_ROOT's
annotations. Scores the EVAL_SOURCE candidates of every test subset in TEST_SUBSETS and writes
WORK_DIR/results_mgicnn.csv (LUNA16 results: seriesuid,coordX,coordY,coordZ,probability, world mm),
WORK_DIR/scored_test.csv, the evaluator's outputs (WORK_DIR/froc_mgicnn/, froc_unet/), test_metrics.json,
detection.json (model and threshold for `lungnodule detect`), RESULTS_DIR/Roc.png (candidate ROC with AUC)
and RESULTS_DIR/FROC.png (U-Net alone beside U-Net + MGI-CNN, CPM with N_BOOTSTRAP-resample 95% CIs;
the U-Net curve comes from stage 1's candidates in UNET_DIR). A fold trained with fusion weights is scored
by the fused score, with the MGI-CNN's own score reported beside it.

    python 3DCNN/test.py --preset demo

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.mgicnn.config import PRESETS
from lungnodule.scripting import run, stage_main

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/mgicnn"
RESULTS_DIR = "Results"
UNET_DIR = "data/work/unet"
TEST_SUBSETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
VAL_SUBSET = -1
POOLED = False
EVAL_SOURCE = "candidates"
PREDICT_BATCH_SIZE = 256
TTA_FLIPS = False
N_BOOTSTRAP = 1000
SEED = 0


def _fmt(m: dict) -> str:
    lo, hi = m["cpm_ci95"] or (float("nan"), float("nan"))
    return (f"CPM {m['cpm']:.3f} (95% CI {lo:.3f}-{hi:.3f}), {m['candidates_per_scan']:.1f} candidates/scan, "
            f"candidate sensitivity {m['candidate_sensitivity']:.3f}")


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.mgicnn.evaluate import test  # after parsing: --help stays fast

    m = test(config, args.data_root, args.work_dir, args.results_dir, unet_dir=args.unet_dir or None,
             n_bootstrap=args.n_bootstrap)
    if "unet" in m:
        print(f"U-Net alone:      {_fmt(m['unet'])}")
    g = m["mgicnn"]
    c = g["confusion"]
    if "mgicnn_alone" in m:
        a = m["mgicnn_alone"]
        lo, hi = a["cpm_ci95"] or (float("nan"), float("nan"))
        print(f"MGI-CNN score alone: CPM {a['cpm']:.3f} (95% CI {lo:.3f}-{hi:.3f}); AUC {a['auc']:.3f}")
        weights = sorted({f["fusion_weight"] for f in m["folds"].values()})
        print(f"fused with the U-Net (weight {', '.join(f'{w:g}' for w in weights)}, chosen on validation):")
    print(f"U-Net + MGI-CNN:  {_fmt(g)}; AUC {g['auc']:.3f}")
    print(f"at the validation threshold: TP {c['TP']} FP {c['FP']} TN {c['TN']} FN {c['FN']}, "
          f"accuracy {c['accuracy']:.3f}; {g['findings_per_scan']:.2f} findings/scan")
    print(f"figures: {m.get('roc_figure')}, {m.get('froc_figure')}")
    return m


if __name__ == "__main__":
    run(main)
