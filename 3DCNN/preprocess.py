"""MGI-CNN stage, step 1: candidates CSV -> multi-scale patch files per LUNA16 subset (streamed, memory-mapped).

Reads DATA_ROOT (a LUNA16 layout: subset*/<uid>.mhd and the CSVs; real LUNA16 or `lungnodule synth`
output), the candidates of the sources in TRAIN_SOURCES and EVAL_SOURCE: "candidates" = CANDIDATES (default:
the dataset's candidates_V2.csv, labelled), "unet" = stage 1's candidates_unet_*.csv in UNET_DIR
(labelled by the LUNA16 hit rule). Each scan is read once; every candidate gets a 28x42x42
patch (native spacing, window [HU_MIN, HU_MAX] -> [0, 1], air outside the scan) and its three 6x20x20
scales. Writes WORK_DIR/patches/subset<k>/{scales.npy, positives.npy, candidates.csv, meta.json} and
WORK_DIR/preprocess.json, for the subsets in SUBSETS (-1 = every subset of DATA_ROOT). A subset already
done with the same candidates is skipped (resume).

    python 3DCNN/preprocess.py                      # paper preset: LUNA16 candidates_V2.csv, all subsets
    python 3DCNN/preprocess.py --preset demo        # synthetic demo: candidates_V2.csv + U-Net candidates

Precedence of every setting: a flag, then a constant edited below, then --preset, then the paper preset
(the constants' values); the resolved configuration is printed and written to WORK_DIR/<script>.config.json.
"""

from lungnodule.mgicnn.config import PRESETS
from lungnodule.scripting import run, stage_main

DATA_ROOT = "data/synthetic"
WORK_DIR = "data/work/mgicnn"
CANDIDATES = ""
UNET_DIR = "data/work/unet"
TRAIN_SOURCES = ("candidates",)
EVAL_SOURCE = "candidates"
HU_MIN = -1000.0
HU_MAX = 400.0
SPLINE_ORDER = 3
PATCH_SPACING_MM = ()  # (z, y, x) mm to resample patches to; () = native voxels (the original)
SUBSETS = (-1,)
WORKERS = 1  # processes cutting the scans' patches (the outputs are the same for any number)


def main(argv=None):
    config, args = stage_main(globals(), PRESETS, argv)
    from lungnodule.mgicnn.preprocess import preprocess  # after parsing: --help stays fast

    subsets = None if -1 in args.subsets else list(args.subsets)
    summary = preprocess(config, args.data_root, args.work_dir, candidates_csv=args.candidates or None,
                         unet_dir=args.unet_dir or None, subsets=subsets,
                         workers=args.workers)
    for k, s in summary["subsets"].items():
        print(f"subset {k}: {s['scans']} scans, {s['candidates']} candidates ({s['positives']} positive) "
              f"by source {s['by_source']}{' (reused)' if s.get('reused') else ''}")
    if summary["patches_per_second"]:
        print(f"{summary['patches_cut']} patches in {summary['seconds']:.1f} s: "
              f"{summary['patches_per_second']:.0f} patches/s")
    return summary


if __name__ == "__main__":
    run(main)
