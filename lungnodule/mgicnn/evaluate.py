"""Held-out evaluation of the MGI-CNN stage, and the demo's stage-2 entry point.

Each fold's test subset is scored by that fold's own model (`<work_dir>/fold<t>/best.keras`, chosen on the
validation subset); the folds' scores are pooled into one LUNA16 results CSV (`seriesuid, coordX, coordY,
coordZ, probability`, world mm) and evaluated over every test scan: candidate-level ROC / AUC, confusion
counts at each fold's validation-chosen threshold (TP / FP / TN / FN as named; accuracy a ratio), and the
LUNA16 FROC / CPM with its scan-bootstrap 95% CI, beside the U-Net-alone curve on the same scans. A fold
trained with `fusion_weights` scores each candidate by the fused score (:mod:`lungnodule.mgicnn.fusion`,
its weight from the fold's validation), and the MGI-CNN's own score is evaluated beside it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import save_csv, write_text
from ..errors import DataError
from ..evaluation import split_metrics
from ..handoff import SPLITS, read_unet_candidates, unet_candidates_path
from ..luna import LunaDataset, write_results
from .config import MgiConfig
from .dataset import PatchSet, predict_rows
from .fusion import fuse
from .operating import keep
from .training import load_mgicnn

XYZ = ["coordX", "coordY", "coordZ"]


def _coverage(candidates: pd.DataFrame, annotations: pd.DataFrame, uids: list[str]) -> dict:
    """Candidates per scan and candidate sensitivity (LUNA16 hit rule) of `candidates` over the scans `uids`."""
    m = split_metrics(candidates, annotations, uids)
    return {k: m[k] for k in ("candidates_per_scan", "candidate_sensitivity", "nodules", "scans")}


def test(config: MgiConfig, data_root: str | os.PathLike, work_dir: str | os.PathLike,
         results_dir: str | os.PathLike | None = "Results", unet_dir: str | os.PathLike | None = None,
         n_bootstrap: int = 1000) -> dict:
    """Score every fold's test subset with its own model and evaluate; see the module docstring.

    Writes `work_dir/results_mgicnn.csv` (LUNA16 results), `work_dir/scored_test.csv` (with labels, stage-1
    probability, fold), `work_dir/froc_mgicnn/`, `work_dir/froc_unet/` (evaluator outputs),
    `work_dir/test_metrics.json`, `work_dir/detection.json` (model and threshold for `lungnodule detect`),
    and `results_dir/Roc.png`, `results_dir/FROC.png`. Returns {"unet": {...}, "mgicnn": {...}, ...}.
    """
    from ..evaluation import candidate_auc, evaluate_cad, paired_cpm_bootstrap, write_evaluation
    from ..froc_plot import plot_froc, plot_roc

    work_dir = Path(work_dir)
    dataset = LunaDataset(data_root)
    annotations = dataset.annotations
    excluded = dataset.excluded
    scored, track, stage1, uids, folds_meta = [], [], [], [], {}
    t0 = time.perf_counter()
    for fold in config.folds(dataset.subsets):
        t = int(fold["test"][0])
        fold_dir = work_dir / f"fold{t}"
        model = load_mgicnn(fold_dir / "best.keras")
        meta = json.loads((fold_dir / "train.json").read_text())
        if "threshold" not in meta:
            raise DataError(fold_dir / "train.json", "training of this fold did not finish; "
                                                     "`python 3DCNN/train.py` resumes it")
        patches = PatchSet(work_dir / "patches", fold["test"])
        rows = patches.rows
        sel = np.flatnonzero(rows["source"].to_numpy() == config.eval_source)
        mgi = predict_rows(model, patches, sel, config.predict_batch_size, tta_flips=config.tta_flips)
        weight = float(meta.get("fusion_weight", 0.0))
        part = rows.iloc[sel][["seriesuid", *XYZ, "class", "unet_probability", "diameter_mm"]]
        stage1.append(part)  # every stage-1 candidate: the U-Net-alone curve
        point = meta.get("operating_point")
        if point:  # the stage-1 operating point chosen on validation
            kept = keep(part, point["threshold"], point["max_candidates"])
            part, mgi = part[kept], mgi[kept]
        scored.append(part.assign(probability=fuse(mgi, part["unet_probability"], weight), mgicnn_probability=mgi,
                                  fold=t, threshold=meta["threshold"]))
        if config.eval_source != "candidates":  # the FP-reduction track: the dataset's own candidate list
            own = np.flatnonzero(rows["source"].to_numpy() == "candidates")
            if len(own):
                track.append(rows.iloc[own][["seriesuid", *XYZ, "class"]].assign(
                    probability=predict_rows(model, patches, own, config.predict_batch_size,
                                             tta_flips=config.tta_flips), fold=t))
        uids += dataset.uids_in(fold["test"])
        folds_meta[t] = {"fold": fold, "best_epoch": meta["best_epoch"], "threshold": meta["threshold"],
                         "fusion_weight": weight, "model": str(fold_dir / "best.keras"),
                         "operating_point": {k: point[k] for k in ("threshold", "max_candidates")} if point else None}
    seconds = time.perf_counter() - t0
    uids_subsets = sorted({s for m in folds_meta.values() for s in m["fold"]["test"]})
    scored = pd.concat(scored, ignore_index=True)
    write_results(work_dir / "results_mgicnn.csv", scored)
    save_csv(work_dir / "scored_test.csv", scored)
    labels = scored["class"].to_numpy()
    prob = scored["probability"].to_numpy()
    flagged = prob >= scored["threshold"].to_numpy()
    tp, fp = int((flagged & (labels == 1)).sum()), int((flagged & (labels == 0)).sum())
    fn, tn = int((~flagged & (labels == 1)).sum()), int((~flagged & (labels == 0)).sum())
    mg = evaluate_cad(annotations, excluded, uids, scored, n_bootstrap=n_bootstrap, seed=config.seed)
    write_evaluation(mg, work_dir / "froc_mgicnn", "mgicnn")
    out: dict = {"folds": folds_meta, "test_scans": len(uids), "eval_source": config.eval_source}
    auc = candidate_auc(labels, prob)
    out["mgicnn"] = {**mg.metrics(), **_coverage(scored, annotations, uids), "auc": auc,
                     "confusion": {"TP": tp, "FP": fp, "TN": tn, "FN": fn,
                                   "accuracy": (tp + tn) / max(len(labels), 1),
                                   "sensitivity": tp / max(tp + fn, 1), "specificity": tn / max(tn + fp, 1)},
                     "findings_per_scan": float(flagged.sum()) / max(len(uids), 1),
                     "finding_sensitivity": _coverage(scored[flagged], annotations, uids)["candidate_sensitivity"],
                     "patches_per_second": len(scored) / seconds if seconds > 0 else None}
    fused = any(m["fusion_weight"] > 0 for m in folds_meta.values())
    # The second stage's own score, for comparison with the fused one (the same when the weight is 0).
    alone = scored.assign(probability=scored["mgicnn_probability"])
    ar = evaluate_cad(annotations, excluded, uids, alone, n_bootstrap=n_bootstrap, seed=config.seed)
    out["mgicnn_alone"] = {**ar.metrics(), **_coverage(alone, annotations, uids),
                           "auc": candidate_auc(labels, alone["probability"])}
    if track:
        track = pd.concat(track, ignore_index=True)
        save_csv(work_dir / "scored_test_candidates.csv", track)
        tr = evaluate_cad(annotations, excluded, uids, track, n_bootstrap=n_bootstrap, seed=config.seed)
        write_evaluation(tr, work_dir / "froc_fp_reduction", "mgicnn_candidates")
        out["fp_reduction_track"] = {**tr.metrics(), **_coverage(track, annotations, uids),
                                     "auc": candidate_auc(track["class"].to_numpy(), track["probability"]),
                                     "candidates": "the dataset's candidates list (candidates_V2.csv) of the "
                                                   "test scans, scored by the MGI-CNN alone"}
    curves = {}
    if config.eval_source == "unet":
        unet = pd.concat(stage1, ignore_index=True)
        unet = unet.assign(probability=unet["unet_probability"])
    else:
        ran = unet_dir is not None and any(unet_candidates_path(unet_dir, s).is_file() for s in SPLITS)
        unet = read_unet_candidates(unet_dir, uids) if ran else None  # the U-Net curve only where stage 1 ran
    if unet is not None:
        ur = evaluate_cad(annotations, excluded, uids, unet, n_bootstrap=n_bootstrap, seed=config.seed)
        write_evaluation(ur, work_dir / "froc_unet", "unet")
        out["unet"] = {**ur.metrics(), **_coverage(unet, annotations, uids)}
        curves["U-Net alone"] = ur
        if config.eval_source == "unet":  # the same scans: a paired comparison
            paired = paired_cpm_bootstrap(ur, mg, n_bootstrap=max(n_bootstrap, 1), seed=config.seed)
            out["fused_minus_unet"] = {"delta": paired["difference"], "ci95": paired["ci95"],
                                       "delta_stable": paired["stable"]["difference"],
                                       "ci95_stable": paired["stable"]["ci95"],
                                       "share_improved_stable": paired["stable"]["share_improved"],
                                       "method": "paired scan-level bootstrap (the same resampled test scans)"}
    if fused:
        curves["MGI-CNN score alone"] = ar
        curves["U-Net + MGI-CNN (fused score)"] = mg
    else:
        curves["U-Net + MGI-CNN" if config.eval_source == "unet" else f"MGI-CNN ({config.eval_source})"] = mg
    if results_dir is not None:
        results_dir = Path(results_dir)
        if 0 < labels.sum() < len(labels):
            rocs = {"MGI-CNN": (labels, prob)}
            if fused:
                rocs = {"fused (MGI-CNN + U-Net)": (labels, prob),
                        "MGI-CNN alone": (labels, scored["mgicnn_probability"].to_numpy())}
            if config.eval_source == "unet":
                rocs["U-Net probability"] = (labels, scored["unet_probability"].to_numpy())
            plot_roc(rocs, results_dir / "Roc.png",
                     title=f"Candidate ROC of stage 1's candidates, held-out subset(s) {sorted(uids_subsets)} "
                           f"({len(uids)} scans; AUC of each score in the legend)")
            out["roc_figure"] = str(results_dir / "Roc.png")
        plot_froc(curves, results_dir / "FROC.png",
                  title=f"FROC on held-out subset(s) {sorted(uids_subsets)} ({len(uids)} scans, {mg.nodules} "
                        "nodules)")
        out["froc_figure"] = str(results_dir / "FROC.png")
    last = folds_meta[max(folds_meta)]
    write_text(work_dir / "detection.json", json.dumps(
        {"model": str(Path(last["model"]).relative_to(work_dir)), "threshold": last["threshold"],
         "fusion_weight": last["fusion_weight"], "fold": last["fold"], "operating_point": last["operating_point"],
         "config": config.to_dict(), "threshold_rule": f"validation FROC at {config.operating_fps_per_scan:g} "
                                                        "FPs per scan"}, indent=2))
    write_text(work_dir / "test_metrics.json", json.dumps(out, indent=2, default=float))
    return out
