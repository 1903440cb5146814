"""U-Net stage, step 3: nodule candidates on held-out scans, candidate sensitivity, FROC / CPM, figure.

Reads WORK_DIR/best.keras (or MODEL) and the scans of DATA_ROOT. Chooses the detection threshold from
THRESHOLD_GRID on the validation subset (VAL_SUBSET), then predicts every lung-bearing slice of each scan,
joins the thresholded slices into 3-D components and writes their centroids in world mm (at most
MAX_CANDIDATES per scan) to WORK_DIR/candidates_unet_{val,test,train}.csv and, in the LUNA16 results
format, WORK_DIR/candidates_unet.csv (test subsets TEST_SUBSETS). Reports candidate sensitivity,
candidates per scan and the LUNA16 FROC / CPM with its bootstrap 95% CI (WORK_DIR/froc_test/); writes
WORK_DIR/detection.json, WORK_DIR/test_metrics.json and RESULTS_DIR/Unet_results.png.

    python Unet/test.py --preset demo

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.scripting import run, stage_main
from lungnodule.unet.config import PRESETS

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/unet"
RESULTS_DIR = "Results"
MODEL = ""
TEST_SUBSETS = (9,)
VAL_SUBSET = 8
THRESHOLD = 0.5
THRESHOLD_GRID = (2 / 255, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
TUNE_THRESHOLD = True
MAX_CANDIDATES = 100
MIN_COMPONENT_VOXELS = 1
SCORE = "max"
CANDIDATE_MODE = "components"
PEAK_RADIUS_MM = 5.0
TTA_FLIPS = False  # average the U-Net over the four in-plane flips (4x the prediction time)
PREDICT_BATCH_SIZE = 8
N_BOOTSTRAP = 1000
SEED = 0
WORKERS = 1  # processes running the scans, each with its own copy of the model


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.unet.evaluate import test  # after parsing: --help stays fast

    m = test(config, args.data_root, args.work_dir, args.results_dir, model_path=args.model or None,
             n_bootstrap=args.n_bootstrap, workers=args.workers)
    lo, hi = m["cpm_ci95"] or (float("nan"), float("nan"))
    print(f"threshold {m['threshold']:g} (chosen on validation)")
    for split, s in m["splits"].items():
        print(f"{split}: {s['scans']} scans, {s['nodules']} nodules, candidate sensitivity "
              f"{s['candidate_sensitivity']:.3f}, {s['candidates_per_scan']:.1f} candidates/scan -> {s['path']}")
    print(f"test CPM {m['cpm']:.3f} (95% CI {lo:.3f}-{hi:.3f}); figure {m.get('figure')}")
    return m


if __name__ == "__main__":
    run(main)
