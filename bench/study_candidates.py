"""Stage-1 candidate extraction on a validation subset: components against peaks, thresholds, caps per scan.

Predicts each scan of the subset once with a trained U-Net (`<unet-dir>/best.keras`, its train.json input
settings; with `--tta 0 1` also averaged over the four in-plane flips) and extracts candidates with every
combination of `--modes`, `--thresholds` and `--caps`; prints candidate sensitivity (LUNA16 hit rule), nodules
hit and candidates per scan, per combination. A validation study: run it on the validation subset, never on a
test subset.

    python bench/study_candidates.py --data-root data/synthetic_bench --unet-dir data/work_bench/unet --subset 6
"""

from __future__ import annotations

import argparse
import time

import pandas as pd


def main(argv=None) -> pd.DataFrame:
    from lungnodule.quiet import silence_native_logs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--unet-dir", required=True)
    parser.add_argument("--subset", type=int, required=True, help="the validation subset")
    parser.add_argument("--modes", nargs="+", default=["components", "peaks"])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.001, 0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--caps", nargs="+", type=int, default=[20, 50, 100])
    parser.add_argument("--peak-radius-mm", nargs="+", type=float, default=[5.0])
    parser.add_argument("--tta", nargs="+", type=int, default=[0], choices=[0, 1],
                        help="1: average the U-Net over the 4 in-plane flips (0 1: compare both)")
    args = parser.parse_args(argv)
    silence_native_logs()

    from lungnodule.evaluation import split_metrics
    from lungnodule.luna import LunaDataset
    from lungnodule.unet.config import PRESETS
    from lungnodule.unet.inference import candidates_from_probability, predict_volume
    from lungnodule.unet.training import load_unet, trained_input_config

    ds = LunaDataset(args.data_root)
    model_path = f"{args.unet_dir}/best.keras"
    config = trained_input_config(PRESETS["paper"], model_path)
    model = load_unet(model_path)
    uids = ds.uids_in(args.subset)
    frames: dict[tuple, list[pd.DataFrame]] = {}
    t0 = time.perf_counter()
    for uid in uids:
        volume = ds.load(uid)
        for tta in args.tta:
            prob = predict_volume(model, volume, config.replace(tta_flips=bool(tta)))
            for mode in args.modes:
                for radius in (args.peak_radius_mm if mode == "peaks" else [0.0]):
                    cfg = config.replace(candidate_mode=mode, peak_radius_mm=radius or 5.0)
                    for t in args.thresholds:
                        cands = candidates_from_probability(prob, volume, cfg, t, max(args.caps))
                        for cap in args.caps:
                            frames.setdefault((tta, mode, radius, t, cap), []).append(
                                cands.head(cap).assign(seriesuid=uid))
    rows = []
    for (tta, mode, radius, t, cap), parts in frames.items():
        m = split_metrics(pd.concat(parts, ignore_index=True), ds.annotations, uids)
        rows.append({"tta": tta, "mode": mode, "peak_radius_mm": radius or None, "threshold": t, "cap": cap,
                     "sensitivity": m["candidate_sensitivity"], "hit": m["nodules_hit"], "nodules": m["nodules"],
                     "candidates_per_scan": m["candidates_per_scan"]})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 140, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{len(uids)} scans of subset {args.subset}, {time.perf_counter() - t0:.0f} s")
    return table


if __name__ == "__main__":
    main()
