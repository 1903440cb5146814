"""Held-out evaluation of the U-Net stage: candidates for every scan of a split, sensitivity, FROC / CPM, figure.

The detection threshold is chosen on the validation subset (highest candidate sensitivity, then fewest
candidates per scan) from `config.threshold_grid`, recorded in `work_dir/detection.json`, and applied
unchanged to the test subset (and the training subsets, whose candidates train the MGI-CNN stage).
Candidate files are LUNA16 results CSVs (`seriesuid,coordX,coordY,coordZ,probability`, world mm).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import save_csv, save_figure, write_text
from ..evaluation import nodule_hits, split_metrics
from ..handoff import UNET_RESULTS, unet_candidates_path
from ..intensity import window_hu
from ..luna import LunaDataset, fold_split, write_results
from ..parallel import Loaded, ordered_map
from ..progress import track
from .config import UnetConfig
from .inference import candidates_from_probability, predict_volume
from .training import load_unet, trained_input_config

XYZ = ["coordX", "coordY", "coordZ"]


def _choose_threshold(table: pd.DataFrame) -> float | None:
    """The validation grid's threshold with the best candidate sensitivity (fewest candidates among ties);
    None when validation holds no nodule (every sensitivity NaN), so the caller keeps the configured one."""
    best = table["candidate_sensitivity"].max()
    if not np.isfinite(best):
        return None
    ok = table[table["candidate_sensitivity"] >= best - 1e-12]
    return float(ok.sort_values(["candidates_per_scan", "threshold"], ascending=[True, False])["threshold"].iloc[0])


def _figure_panel(volume, uid: str, ann: pd.DataFrame, cands: pd.DataFrame, focus: int, hit: np.ndarray) -> dict:
    """The slice through nodule `focus` of `ann`, with the nodules (each flagged found or missed by `hit`) and
    the candidates near that slice, in voxel units."""
    a_vox = volume.world_to_voxel(ann[XYZ].to_numpy(dtype=np.float64).reshape(-1, 3))
    z = int(np.clip(np.rint(a_vox[focus, 0]), 0, volume.shape[0] - 1))
    sz, sy, sx = volume.spacing_zyx
    r_mm = ann["diameter_mm"].to_numpy() / 2
    on = np.abs(a_vox[:, 0] - z) * sz < np.maximum(r_mm, sz / 2)
    c_near = cands[np.abs(cands["voxel_z"] - z) * sz <= np.maximum(cands["diameter_mm"] / 2, sz)]
    return {"uid": uid, "z": z, "image": window_hu(volume.array[z]), "spacing": (sy, sx),
            "missed": not bool(hit[focus]), "diameter": float(ann["diameter_mm"].iloc[focus]),
            "nodules": [(y, x, r / sy, r / sx, bool(h)) for (_, y, x), r, h in zip(a_vox[on], r_mm[on], hit[on])],
            "candidates": [(r.voxel_y, r.voxel_x, max(r.diameter_mm / 2 / sy, 4.0), max(r.diameter_mm / 2 / sx, 4.0),
                            r.probability) for r in c_near.itertuples()]}


def plot_results(panels: list[dict], path: str | os.PathLike, title: str) -> None:
    """Draw held-out slices: nodules the candidates found ringed green, missed ones ringed magenta (dashed),
    U-Net candidates boxed red with their probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse, Rectangle

    n = max(len(panels), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.8), squeeze=False)
    for ax, p in zip(axes[0], panels):
        ax.imshow(p["image"], cmap="gray", vmin=0, vmax=1)
        for y, x, ry, rx, found in p["nodules"]:
            ax.add_patch(Ellipse((x, y), 2 * rx + 6, 2 * ry + 6, fill=False, lw=1.5,
                                 ec="lime" if found else "magenta", ls="-" if found else "--"))
        for y, x, ry, rx, prob in p["candidates"]:
            ax.add_patch(Rectangle((x - rx - 2, y - ry - 2), 2 * rx + 4, 2 * ry + 4, fill=False, ec="red", lw=1.2))
            ax.text(x + rx + 3, y - ry - 3, f"{prob:.2f}", color="red", fontsize=7)
        what = "MISSED" if p["missed"] else "found"
        ax.set_title(f"{p['uid'][-12:]}  slice {p['z']}: {p['diameter']:.1f} mm nodule {what}", fontsize=9,
                     color="magenta" if p["missed"] else "black")
        ax.axis("off")
    for ax in axes[0][len(panels):]:
        ax.axis("off")
    fig.suptitle(title + "\ngreen ring: nodule found by a candidate; magenta dashed ring: nodule missed; red box: "
                         "U-Net candidate (probability)", fontsize=10)
    save_figure(path, fig)
    plt.close(fig)


def _candidates_frame(uid: str, cands: pd.DataFrame) -> pd.DataFrame:
    return cands.assign(seriesuid=uid)[["seriesuid", *cands.columns]]


def _candidates_job(shared: tuple, uid: str) -> list[pd.DataFrame]:
    """One scan's candidates at each threshold (a worker of :func:`test`; `shared` is (dataset, model, config,
    thresholds)): the network runs once, the extraction once per threshold."""
    dataset, model, config, thresholds = shared
    volume = dataset.get().load(uid)
    prob = predict_volume(model.get(), volume, config)
    return [_candidates_frame(uid, candidates_from_probability(prob, volume, config, t, config.max_candidates))
            for t in thresholds]


def test(config: UnetConfig, data_root: str | os.PathLike, work_dir: str | os.PathLike,
         results_dir: str | os.PathLike | None = "Results", model_path: str | os.PathLike | None = None,
         splits: tuple[str, ...] = ("val", "test", "train"), n_bootstrap: int = 1000, n_panels: int = 4,
         progress: bool = True, workers: int = 1) -> dict:
    """Detect candidates on the validation, test and training subsets' scans and evaluate them.

    Reads `work_dir/best.keras` (or `model_path`) and prepares slices as its `train.json` records; writes
    `work_dir/candidates_unet_<split>.csv` for each split in `splits` (LUNA16 results format plus diameter and voxel columns), `candidates_unet.csv` (test),
    `detection.json` (the threshold chosen on validation), the LUNA16 evaluation of the test subset in
    `work_dir/froc_test/` and `test_metrics.json`; draws `results_dir/Unet_results.png`. Returns the
    test subset's metrics (candidate sensitivity, candidates per scan, CPM and its 95% CI) with the
    per-split metrics under "splits". `workers` processes run the scans, each with its own copy of the
    model (the files written are the same for any number).
    """
    from ..evaluation import evaluate_cad, write_evaluation

    work_dir = Path(work_dir)
    dataset = LunaDataset(data_root)
    folds = fold_split(dataset.subsets, test=config.test_subsets, val=config.val_subset)
    model_path = Path(model_path) if model_path else work_dir / "best.keras"
    model = load_unet(model_path)
    config = trained_input_config(config, model_path)
    annotations = dataset.annotations
    excluded = dataset.excluded
    out: dict = {"model": str(model_path), "config": config.to_dict(), "seed": config.seed, "folds": folds,
                 "splits": {}}

    # 1. Threshold on the validation subset: predict once, extract at every threshold of the grid.
    grid = sorted(set(config.threshold_grid) | {config.threshold}) if config.tune_threshold else [config.threshold]
    val_uids = dataset.uids_in(folds["val"])
    data = Loaded(LunaDataset, str(data_root), value=dataset)
    net = Loaded(load_unet, str(model_path), value=model)
    by_threshold: dict[float, list[pd.DataFrame]] = {t: [] for t in grid}
    for frames in track(ordered_map(_candidates_job, val_uids, workers, (data, net, config, grid)),
                        "U-Net candidates val", total=len(val_uids), enabled=progress):
        for t, frame in zip(grid, frames):
            by_threshold[t].append(frame)
    table = pd.DataFrame([{"threshold": t, **split_metrics(pd.concat(by_threshold[t], ignore_index=True),
                                                             annotations, val_uids)} for t in grid])
    chosen = _choose_threshold(table) if config.tune_threshold and len(val_uids) else None
    threshold = config.threshold if chosen is None else chosen
    if config.tune_threshold and chosen is None:
        print(f"U-Net: validation subset {folds['val']} holds no nodule; keeping the configured threshold "
              f"{threshold}", flush=True)
    chosen_on = f"validation subset {folds['val']}" if chosen is not None else "configured (not tuned)"
    detection = {"threshold": threshold, "max_candidates": config.max_candidates, "score": config.score,
                 "min_component_voxels": config.min_component_voxels, "candidate_mode": config.candidate_mode,
                 "peak_radius_mm": config.peak_radius_mm, "tta_flips": config.tta_flips,
                 "chosen_on": chosen_on, "model": str(model_path),
                 "validation_grid": table.to_dict(orient="records")}
    write_text(work_dir / "detection.json", json.dumps(detection, indent=2))
    out["threshold"] = threshold
    out["validation_grid"] = detection["validation_grid"]

    # 2. Every requested split at the chosen threshold.
    panels: list[dict] = []
    for split in splits:
        uids = dataset.uids_in(folds[split])
        if split == "val":
            frames = by_threshold[threshold]
        else:
            frames = []
            done = ordered_map(_candidates_job, uids, workers, (data, net, config, [threshold]))
            for uid, (cands,) in zip(uids, track(done, f"U-Net candidates {split}", total=len(uids),
                                                 enabled=progress)):
                frames.append(cands)
                ann = annotations[annotations["seriesuid"] == uid]
                if split == "test" and len(ann):  # half the panels show misses, when there are any
                    hit = nodule_hits(cands, ann)
                    misses = sum(p["missed"] for p in panels)
                    if not hit.all() and misses < n_panels // 2 and len(panels) < n_panels:
                        panels.append(_figure_panel(dataset.load(uid), uid, ann, cands, int(np.argmin(hit)), hit))
                    elif hit.any() and len(panels) - misses < n_panels - n_panels // 2:
                        panels.append(_figure_panel(dataset.load(uid), uid, ann, cands, int(np.argmax(hit)), hit))
        cands = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["seriesuid", *XYZ, "probability"])
        path = unet_candidates_path(work_dir, split)
        save_csv(path, cands)  # results columns first, then diameter and voxel centroid
        metrics = split_metrics(cands, annotations, uids)
        metrics["path"] = str(path)
        if split == "test":
            write_results(work_dir / UNET_RESULTS, cands)
            result = evaluate_cad(annotations, excluded, uids, cands, n_bootstrap=n_bootstrap, seed=config.seed)
            write_evaluation(result, work_dir / "froc_test", "unet")
            metrics.update({**result.metrics(), "froc_dir": str(work_dir / "froc_test")})
        out["splits"][split] = metrics
    if results_dir is not None and "test" in splits:
        figure = Path(results_dir) / "Unet_results.png"
        plot_results(sorted(panels, key=lambda p: p["missed"]), figure,
                     f"U-Net candidates on held-out subset(s) {folds['test']} (threshold {threshold:g}, at most "
                     f"{config.max_candidates} per scan, chosen on validation)")
        out["figure"] = str(figure)
    if "test" in out["splits"]:
        out.update({k: out["splits"]["test"][k] for k in
                    ("candidate_sensitivity", "candidates_per_scan", "cpm", "cpm_ci95", "cpm_stable",
                     "cpm_stable_ci95", "scans", "nodules", "warnings")})
    write_text(work_dir / "test_metrics.json", json.dumps(out, indent=2, default=float))
    return out
