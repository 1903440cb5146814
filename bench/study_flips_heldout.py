"""Stage-1 flip averaging on the held-out subsets: the same trained U-Net with and without it, the whole chain.

Takes a finished run of a preset (`--base-dir`: its `unet/` with `best.keras` and candidates, its `mgicnn/` with
`results_mgicnn.csv`, e.g. `data/work_bench` after `lungnodule demo --preset bench`) and, under `--work-dir`,
redoes what the run would have done with `tta_flips` switched on: U-Net candidates on every split (threshold
chosen on validation, as the run does) from a copy of the same U-Net (its training does not depend on the flag),
then the MGI-CNN from scratch on those candidates and the fusion weight chosen on validation. Prints and writes
`<work-dir>/flips_heldout.json`: both systems (U-Net alone, fused) with and without flips on the same test scans,
each difference with its paired scan-level bootstrap CI; draws `<work-dir>/flips_heldout.png` (the fused FROCs).
A step whose outputs are already under `--work-dir` is not redone (a rerun resumes).

    python bench/study_flips_heldout.py --data-root data/synthetic_bench --base-dir data/work_bench \\
        --work-dir data/work_bench/flips
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

# What the copied U-Net needs: its weights and the records of how it was trained and fed.
MODEL_FILES = ("best.keras", "last.keras", "train.json", "preprocess.json", "history.csv")


def main(argv=None) -> dict:
    from lungnodule.quiet import silence_native_logs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--base-dir", required=True, help="work dir of the finished run without flips")
    parser.add_argument("--work-dir", required=True, help="where the run with flips is written")
    parser.add_argument("--preset", default="bench", choices=["demo", "bench", "tiny"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-subsets", type=int, nargs="+")
    parser.add_argument("--val-subset", type=int)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    silence_native_logs()

    from lungnodule.atomic import write_text
    from lungnodule.errors import DataError
    from lungnodule.evaluation import evaluate_cad, paired_cpm_bootstrap
    from lungnodule.froc_plot import plot_froc
    from lungnodule.learning_curve import _run_setup
    from lungnodule.luna import read_results
    from lungnodule.pipeline import Layout, mgicnn_step, stage_configs
    from lungnodule.provenance import run_info
    from lungnodule.unet.evaluate import test as unet_test

    base, work = Path(args.base_dir).resolve(), Path(args.work_dir).resolve()
    if work == base:  # the run with flips writes <work>/unet and <work>/mgicnn: never the compared run's
        raise DataError(work, f"the work dir would overwrite the run it compares with ({base})")
    preset, data_root, _, _, dataset, folds = _run_setup(args.preset, args.data_root, base, work,
                                                        args.test_subsets, args.val_subset)
    unet_cfg, mgi_cfg, _ = stage_configs(preset, folds, args.seed)
    layout = Layout(work)
    timings = {}

    if not (layout.unet / "test_metrics.json").is_file():
        layout.unet.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            if (base / "unet" / name).is_file():
                shutil.copy2(base / "unet" / name, layout.unet / name)
        t0 = time.perf_counter()
        unet_test(unet_cfg.replace(tta_flips=True), data_root, layout.unet, work / "figures", workers=args.workers)
        timings["unet_test"] = time.perf_counter() - t0
    else:
        print(f"U-Net candidates with flips already in {layout.unet}", flush=True)
    if not (layout.mgicnn / "test_metrics.json").is_file():
        t0 = time.perf_counter()
        mgicnn_step(mgi_cfg, data_root, layout, work / "figures", args.workers)
        timings["mgicnn"] = time.perf_counter() - t0
    else:
        print(f"MGI-CNN on the candidates with flips already in {layout.mgicnn}", flush=True)

    uids = dataset.uids_in(folds["test"])
    files = {"unet": ("unet", "candidates_unet.csv"), "fused": ("mgicnn", "results_mgicnn.csv")}
    runs = {"plain": base, "flips": work}
    results = {(run, system): evaluate_cad(dataset.annotations, dataset.excluded, uids,
                                           read_results(d / files[system][0] / files[system][1]),
                                           n_bootstrap=args.n_bootstrap, seed=args.seed)
               for run, d in runs.items() for system in files}
    read = lambda path: json.loads(path.read_text())  # noqa: E731
    out: dict = {"preset": args.preset, "folds": folds, "test_scans": len(uids), "run": run_info(args.seed),
                 "base_dir": str(base), "work_dir": str(work), "timings": timings,
                 "threshold": {run: read(d / "unet" / "detection.json")["threshold"] for run, d in runs.items()},
                 "fusion": {run: read(d / "mgicnn" / "test_metrics.json").get("fusion") for run, d in runs.items()},
                 "systems": {}, "difference": {}}
    for system in files:
        for run in ("plain", "flips"):
            out["systems"][f"{system}_{run}"] = results[run, system].metrics()
        out["difference"][system] = paired_cpm_bootstrap(results["plain", system], results["flips", system],
                                                         args.n_bootstrap, args.seed)
    out["difference"]["fused_minus_unet_flips"] = paired_cpm_bootstrap(
        results["flips", "unet"], results["flips", "fused"], args.n_bootstrap, args.seed)
    write_text(work / "flips_heldout.json", json.dumps(out, indent=2, default=float))

    d = out["difference"]["fused"]["stable"]
    # Labels that name no single system, so the two curves get two colours (froc_plot colours by system).
    plot_froc({"two-stage detector, stage 1 plain": results["plain", "fused"],
               "two-stage detector, stage 1 flip-averaged": results["flips", "fused"]},
              work / "flips_heldout.png",
              title=f"Stage-1 flip averaging, held-out subsets {folds['test']} ({len(uids)} scans): fused stable "
                    f"CPM change {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] (paired)")
    print(f"{'system':<8} {'run':<6} {'found':>7} {'cand/scan':>9} {'CPM':>6} {'stable CPM [95% CI]':>22}")
    for system in files:
        for run in ("plain", "flips"):
            m = out["systems"][f"{system}_{run}"]
            lo, hi = m["cpm_stable_ci95"]
            found = f"{m['detected']}/{m['nodules']}"
            print(f"{system:<8} {run:<6} {found:>7} {m['candidates'] / max(m['scans'], 1):>9.1f} {m['cpm']:>6.3f} "
                  f"{m['cpm_stable']:>8.3f} [{lo:.3f}, {hi:.3f}]")
    for name, p in out["difference"].items():
        s = p["stable"]
        print(f"{name}: CPM {p['difference']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}], stable "
              f"{s['difference']:+.3f} [{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}] (paired, {len(uids)} scans)")
    return out


if __name__ == "__main__":
    main()
