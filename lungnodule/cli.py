"""The `lungnodule` command: synthetic data, LUNA16 evaluation, the demo, its learning curve, comparing runs
and detection.

Run `lungnodule COMMAND --help` for each command's options.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Python-side TensorFlow warnings; C++ lines: quiet.py


def _synth(args: argparse.Namespace) -> int:
    from .synth import generate_dataset

    out = generate_dataset(args.out, n_scans=args.scans, seed=args.seed, preset=args.preset,
                           n_subsets=args.subsets, workers=args.workers, overwrite=args.overwrite)
    print(f"synthetic LUNA16-format dataset: {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_files

    evaluate_files(args.annotations, args.excluded, args.seriesuids, args.results, args.outdir,
                   name=args.name, max_marks=args.max_marks, n_bootstrap=args.bootstrap, seed=args.seed,
                   drop_intermediate=not args.keep_all_thresholds)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .pipeline import run

    run(data_root=args.data_root, work_dir=args.work_dir, results_dir=args.results_dir, preset=args.preset,
        seed=args.seed, stages=args.stages, n_scans=args.scans, test_subsets=args.test_subsets,
        val_subset=args.val_subset, workers=args.workers)
    return 0


def _learning_curve(args: argparse.Namespace) -> int:
    from .learning_curve import data_curve, learning_curve

    common = dict(data_root=args.data_root, work_dir=args.work_dir, results_dir=args.results_dir, preset=args.preset,
                  seed=args.seed, test_subsets=args.test_subsets, val_subset=args.val_subset, workers=args.workers)
    if args.train_subsets is not None:
        data_curve(train_counts=args.train_subsets or None, **common)
    else:
        learning_curve(fractions=args.fractions, **common)
    return 0


def _compare(args: argparse.Namespace) -> int:
    import json

    from .errors import DataError
    from .run_report import metric_differences

    runs = []
    for path in (args.first, args.second):
        try:
            runs.append(json.loads(open(path).read()))
        except (OSError, ValueError) as exc:
            raise DataError(path, f"cannot read a run's metrics.json: {exc}") from None
    diffs = metric_differences(*runs)
    for line in diffs[:args.show]:
        print(line)
    more = len(diffs) - args.show
    print(("" if more <= 0 else f"... and {more} more\n") +
          (f"{len(diffs)} metric(s) differ" if diffs else "the two runs' metrics are identical")
          + " (timings, paths and versions not compared)")
    return 1 if diffs else 0


def _detect(args: argparse.Namespace) -> int:
    from .detect import check_detect_inputs, default_report_dir, describe_score, detect, load_detector

    check_detect_inputs(args.scans, args.out, args.report_dir)  # before any model is loaded
    detector = load_detector(args.unet_dir, args.mgicnn_dir)
    print(f"final score: {describe_score(detector)}", flush=True)
    # More than one worker: each loads the models itself from the same folders.
    rows = detect(args.scans, args.out, args.unet_dir, args.mgicnn_dir, report_dir=args.report_dir,
                  threshold=args.threshold, all_candidates=args.all_candidates,
                  detector=detector if args.workers == 1 else None, workers=args.workers)
    report = args.report_dir or default_report_dir(args.out)
    print(f"{len(rows)} {'candidate(s)' if args.all_candidates else 'finding(s)'} in {len(args.scans)} scan(s) "
          f"-> {args.out}; reports in {report}/")
    return 0


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `lungnodule` command."""
    parser = argparse.ArgumentParser(prog="lungnodule", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines (filtered out by default: they read like failures)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a synthetic dataset in exact LUNA16 layout")
    p.add_argument("--out", required=True, help="output folder (LUNA16 layout: subset*/, CSVs)")
    p.add_argument("--scans", type=int, default=40, help="number of scans (default 40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--preset", choices=["demo", "luna", "tiny"], default="demo",
                   help="demo: sized for the CPU demo; luna: 512x512 LUNA16-like scans; tiny: for tests")
    p.add_argument("--subsets", type=int, default=10, help="number of subset folders (default 10, as LUNA16)")
    p.add_argument("--workers", type=_workers, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the subset folders and CSVs of a non-empty folder (refused without it when the "
                        "folder was not written by synth, or was written with other arguments)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("evaluate", help="LUNA16 FROC / CPM evaluation (noduleCADEvaluationLUNA16.py arguments)")
    p.add_argument("annotations", help="annotations.csv")
    p.add_argument("excluded", help="annotations_excluded.csv")
    p.add_argument("seriesuids", help="seriesuids.csv (no header): the scans FPs per scan are divided by")
    p.add_argument("results", help="CAD results CSV: seriesuid,coordX,coordY,coordZ,probability")
    p.add_argument("outdir", help="output folder")
    p.add_argument("--name", default=None, help="name used in output file names (default: results file stem)")
    p.add_argument("--bootstrap", type=int, default=1000, help="scan-level bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--max-marks", type=int, default=100, help="marks kept per scan, official rule (default 100)")
    p.add_argument("--keep-all-thresholds", action="store_true",
                   help="keep every ROC point (roc_curve drop_intermediate=False); the official script drops them")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("demo", help="run every stage on a LUNA16-layout dataset (generated when absent) and report",
                       description="Run the steps synth, baseline, unet, mgicnn, ctgan (all, or --stages) with the "
                                   "preset's data and stage settings; write summary.md, metrics.json and the figures. "
                                   "On a root that synth did not write (a real LUNA16 download) the synth step is "
                                   "skipped and the folds come from the subsets present.")
    p.add_argument("--preset", choices=["demo", "bench", "tiny"], default="demo",
                   help="demo: the README's demo (under 20 min on 2 cores); bench: held-out subsets with >= 80 "
                        "nodules (under 75 min); tiny: seconds, a smoke test (default: demo)")
    p.add_argument("--data-root", default=None,
                   help="LUNA16-layout dataset (generated if missing; default: data/synthetic, "
                        "data/synthetic_bench for bench)")
    p.add_argument("--work-dir", default=None, help="intermediate files and models (default: data/work, "
                                                    "data/work_bench for bench)")
    p.add_argument("--results-dir", default=None, help="figures, summary.md and metrics.json (default: Results, "
                                                       "Results/bench for bench)")
    p.add_argument("--scans", type=int, default=None, help="synthetic scans to generate (default: the preset's, "
                                                           "40 for demo, 230 for bench)")
    p.add_argument("--seed", type=int, default=0, help="seed for data generation and training (default 0)")
    p.add_argument("--stages", nargs="+", default=None, choices=["synth", "baseline", "unet", "mgicnn", "ctgan"],
                   help="run only these steps (default: all)")
    p.add_argument("--test-subsets", nargs="+", type=int, default=None,
                   help="held-out test subsets (default: the last subset, the last three on a 10-subset root with "
                        "the bench preset)")
    p.add_argument("--val-subset", type=int, default=None,
                   help="validation subset (default: the one before the test subsets)")
    p.add_argument("--workers", type=_workers, default=1,
                   help="processes for the per-scan steps: preprocessing, candidates (default 1; the results are "
                        "the same for any number)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("learning-curve", help="held-out CPM against training budget (after `demo` on the same preset)",
                       description="Train the demo's two-stage chain from scratch with both networks' epochs scaled "
                                   "by each --fractions value (or, with --train-subsets, on fewer training "
                                   "subsets), score each on the held-out subsets and draw "
                                   "learning_curve.png (stable CPM with 95%% CIs per system). Fraction 1 is the "
                                   "`demo` run itself when its models were trained with the same settings; finished "
                                   "points are kept and skipped on a rerun.")
    p.add_argument("--preset", choices=["demo", "bench", "tiny"], default="bench",
                   help="run preset whose data, folds and stage settings are used (default: bench)")
    p.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 1.0],
                   help="training budgets as fractions of the preset's epochs (default: 0.25 0.5 1)")
    p.add_argument("--train-subsets", nargs="*", type=int, default=None, metavar="K",
                   help="instead of budgets: the curve against training data, the preset's epochs trained on the "
                        "first K of the run's training subsets for each K (no value: 1 ... all); writes "
                        "learning_curve_data.png/json")
    p.add_argument("--data-root", default=None, help="the run's dataset (default: the preset's)")
    p.add_argument("--work-dir", default=None, help="the run's work folder; points go to <work-dir>/learning_curve/")
    p.add_argument("--results-dir", default=None, help="where learning_curve.png/json go (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed, as the run's (default 0)")
    p.add_argument("--test-subsets", nargs="+", type=int, default=None, help="as `demo --test-subsets`")
    p.add_argument("--val-subset", type=int, default=None, help="as `demo --val-subset`")
    p.add_argument("--workers", type=_workers, default=1, help="processes for the per-scan steps (default 1)")
    p.set_defaults(func=_learning_curve)

    p = sub.add_parser("compare", help="compare the metrics of two runs (metrics.json), e.g. a reproduction",
                       description="Print every metric that differs between two runs' metrics.json, at any depth "
                                   "(timings, paths, versions and model files are not compared). Exit status 0 "
                                   "when they are identical, 1 otherwise.")
    p.add_argument("first", help="a run's metrics.json, e.g. the committed Results/metrics.json")
    p.add_argument("second", help="another run's metrics.json")
    p.add_argument("--show", type=int, default=40, help="differences printed at most (default 40)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("detect", help="find nodules in CT scans with the trained U-Net + MGI-CNN")
    p.add_argument("scans", nargs="+", metavar="SCAN", help=".mhd, .nrrd, .nii(.gz) file or DICOM series folder")
    p.add_argument("--out", required=True, help="output CSV (LUNA16 results format, world mm, plus diameter_mm)")
    p.add_argument("--unet-dir", default="data/work/unet", help="trained U-Net (best.keras, detection.json)")
    p.add_argument("--mgicnn-dir", default="data/work/mgicnn", help="trained MGI-CNN (detection.json)")
    p.add_argument("--report-dir", default=None, help="PNG report per scan (default: <out stem>_report/)")
    p.add_argument("--threshold", type=float, default=None,
                   help="final score for a finding: the MGI-CNN probability, fused with the U-Net's when trained "
                        "so (default: the one chosen on validation)")
    p.add_argument("--all-candidates", action="store_true",
                   help="write every scored candidate (for a FROC evaluation), not only the findings")
    p.add_argument("--workers", type=_workers, default=1,
                   help="processes, each with its own copy of the models (default 1; the CSV is the same for any "
                        "number)")
    p.set_defaults(func=_detect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lungnodule` console script; returns the exit status."""
    from .errors import DataError, ModelMissingError
    from .quiet import silence_native_logs

    args = build_parser().parse_args(argv)
    silence_native_logs(args.verbose)
    try:
        return args.func(args)
    except (DataError, ModelMissingError) as exc:
        print(f"lungnodule {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
