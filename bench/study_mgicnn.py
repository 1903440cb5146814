"""Stage-2 settings compared on the validation subset: train the MGI-CNN with each variant, report validation.

Each `--variant NAME key=value ...` is a set of MgiConfig overrides on top of `--preset` (with the run's
pooled fold: `--test-subsets` held out, `--val-subset` validating, stage 1's candidates from `--unet-dir`).
For every variant the script preprocesses (patch files are shared between variants with the same patch
settings), trains from scratch and prints the chosen epoch's validation AUC, leaderboard and stable CPM of
stage 1's validation candidates, the fusion weight and the fused validation stable CPM, and the wall time.
The test subsets are never scored: this is for choosing settings.

    python bench/study_mgicnn.py --data-root data/synthetic_bench --unet-dir data/work_bench/unet \\
        --work-dir /tmp/mgi_study --test-subsets 7 8 9 --val-subset 6 \\
        --variant native --variant mm patch_spacing_mm=2.0,1.0,1.0
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path


def _value(text: str):
    if "," in text:
        return tuple(_value(t) for t in text.split(",") if t)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None) -> list[dict]:
    from lungnodule.quiet import silence_native_logs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--unet-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--preset", default="bench")
    parser.add_argument("--test-subsets", nargs="+", type=int, required=True)
    parser.add_argument("--val-subset", type=int, required=True)
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME [key=value ...]")
    args = parser.parse_args(argv)
    silence_native_logs()

    from lungnodule.luna import LunaDataset
    from lungnodule.mgicnn.config import PRESETS
    from lungnodule.mgicnn.fusion import DEFAULT_WEIGHTS
    from lungnodule.mgicnn.preprocess import preprocess
    from lungnodule.mgicnn.training import train_fold

    base = PRESETS[args.preset].replace(test_subsets=tuple(args.test_subsets), val_subset=args.val_subset,
                                        pooled=True, train_sources=("candidates", "unet"), eval_source="unet")
    base = base.replace(fusion_weights=base.fusion_weights or DEFAULT_WEIGHTS)
    fold = base.folds(LunaDataset(args.data_root).subsets)[0]
    rows = []
    for name, *pairs in args.variant:
        overrides = {k: _value(v) for k, v in (p.split("=", 1) for p in pairs)}
        config = base.replace(**overrides)
        key = "native" if not config.patch_spacing_mm else "mm" + "-".join(f"{v:g}" for v in config.patch_spacing_mm)
        work = Path(args.work_dir) / key  # patches shared by variants with the same patch settings
        t0 = time.perf_counter()
        preprocess(config, args.data_root, work, unet_dir=args.unet_dir, subsets=fold["train"] + fold["val"])
        (work / f"fold{fold['test'][0]}").mkdir(parents=True, exist_ok=True)
        meta = train_fold(config, args.data_root, work, fold, resume=False, verbose=0)
        v = meta["validation"]
        fusion = meta.get("fusion", {})
        rows.append({"variant": name, **overrides, "best_epoch": meta["best_epoch"], "val_auc": v["val_auc"],
                     "val_cpm": v["val_cpm"], "val_cpm_stable": v["val_cpm_stable"],
                     "val_cpm_stable_candidates": v.get("val_cpm_stable_candidates"),
                     "fusion_weight": meta.get("fusion_weight"), "fused_val_cpm_stable": fusion.get("cpm_stable"),
                     "operating_point": meta.get("operating_point", {}).get("cpm_stable"),
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1], default=str), flush=True)
    return rows


if __name__ == "__main__":
    main()
