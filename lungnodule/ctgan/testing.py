"""Inject and remove nodules on held-out (test-subset) scans; before/after figure and tampered datasets.

For each test scan: `inject_per_scan` nodules are injected at healthy lung sites (away from every
finding) and, separately, every annotated nodule is removed. The tampered scans are written as two
LUNA16-layout folders under `<work_dir>/tampered/{inject,remove}/` (same series UIDs and subsets as the
source, `annotations.csv` of what the scan now holds, `tampered_sites.csv` of what was done), so the
detector (stages 1 + 2) can be run on them unchanged. Also measured: the time per tampered site and the
mean HU within 5 mm of each site before and after (an injected nodule should raise it, a removal lower
it). `Results/GAN_results.png` shows the same slices before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..atomic import save_csv, save_figure, write_text
from ..intensity import window_hu
from ..luna import ANNOTATION_COLUMNS, LunaDataset, fold_split
from ..volume import Volume, write_volume
from .config import CTGANConfig
from .sites import healthy_sites
from .tampering import TamperModel, tamper
from .training import load_generator


def site_mean_hu(volume: Volume, point_xyz, radius_mm: float = 5.0) -> float:
    """Mean HU of the voxels within `radius_mm` of a world point (x, y, z)."""
    c = volume.world_to_voxel(point_xyz)
    r = radius_mm / volume.spacing_zyx
    lo = np.maximum(np.floor(c - r).astype(int), 0)
    hi = np.minimum(np.ceil(c + r).astype(int) + 1, np.asarray(volume.shape))
    block = volume.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float64)
    zz, yy, xx = np.meshgrid(*[(np.arange(a, b) - cc) * s for a, b, cc, s in zip(lo, hi, c, volume.spacing_zyx)],
                             indexing="ij")
    inside = zz ** 2 + yy ** 2 + xx ** 2 <= radius_mm ** 2
    return float(block[inside].mean()) if inside.any() else float("nan")


def _panel(volume: Volume, point_xyz, half_mm: float = 32.0) -> tuple[np.ndarray, np.ndarray]:
    """The axial slice through a point (lung window) and its crop of +-half_mm around the point."""
    c = np.rint(volume.world_to_voxel(point_xyz)).astype(int)
    c = np.clip(c, 0, np.asarray(volume.shape) - 1)
    image = window_hu(volume.array[c[0]])
    ry, rx = (half_mm / volume.spacing_zyx[1:]).astype(int)
    crop = image[max(c[1] - ry, 0):c[1] + ry + 1, max(c[2] - rx, 0):c[2] + rx + 1]
    return image, crop


def plot_results(examples: list[dict], path: str | os.PathLike) -> None:
    """`Results/GAN_results.png`: per example, the same axial slice before / after, full and zoomed."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    fig, axes = plt.subplots(len(examples), 4, figsize=(13, 3.3 * len(examples)), squeeze=False)
    for row, ex in zip(axes, examples):
        before, before_crop = _panel(ex["before"], ex["point"])
        after, after_crop = _panel(ex["after"], ex["point"])
        c = ex["before"].world_to_voxel(ex["point"])
        for ax, img, title in zip(row, (before, after, before_crop, after_crop),
                                  ("before", f"after ({ex['mode']})", "before, zoom", "after, zoom")):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=9)
        for ax in row[:2]:
            ax.add_patch(Circle((c[2], c[1]), 12.0 / ex["before"].spacing[0], fill=False, color="red", lw=1))
        row[0].set_ylabel(f"{ex['uid'][-12:]}\nslice {int(round(c[0]))}", fontsize=8)
    fig.suptitle("CT-GAN on held-out scans: the same slices before and after tampering (lung window)")
    save_figure(path, fig)
    plt.close(fig)


def test(config: CTGANConfig, data_root: str | os.PathLike, work_dir: str | os.PathLike,
         results_dir: str | os.PathLike = "Results", n_examples: int = 2, write_scans: bool = True) -> dict:
    """Tamper the test subset's scans with the trained injector and remover; returns a summary dict.

    Writes `<work_dir>/tampered/{inject,remove}/` (LUNA16 layout, see the module docstring),
    `<work_dir>/test_sites.csv` (every site with its HU before / after and tampering time),
    `<work_dir>/test.json` and `Results/GAN_results.png` (`n_examples` injections and removals).
    """
    dataset = LunaDataset(data_root)
    split = fold_split(dataset.subsets, test=config.test_subset, val=config.val_subset)
    uids = dataset.uids_in(split["test"])
    if config.test_scans:
        uids = uids[:config.test_scans]
    models = {mode: TamperModel(*load_generator(work_dir, mode)) for mode in ("inject", "remove")}
    excluded = dataset.excluded if "excluded" in dataset.paths else dataset.annotations.iloc[:0]
    tampered_root = Path(work_dir) / "tampered"
    if write_scans:
        shutil.rmtree(tampered_root, ignore_errors=True)
    rows, examples, annotations = [], {"inject": [], "remove": []}, {"inject": [], "remove": []}
    for i, uid in enumerate(tqdm(uids, desc="tampering test scans")):
        volume = dataset.load(uid)
        nodules = dataset.annotations[dataset.annotations["seriesuid"] == uid]
        findings = pd.concat([nodules, excluded[excluded["seriesuid"] == uid]])
        rng = np.random.default_rng([config.seed, 7919, i])
        sites = {"inject": healthy_sites(volume, findings, config.inject_per_scan, rng, config.clearance_mm,
                                         config.lung_margin_mm),
                 "remove": nodules[["coordX", "coordY", "coordZ"]].to_numpy(np.float64)}
        for mode, points in sites.items():
            result = volume
            for p in points:
                started = time.perf_counter()
                result = tamper(result, p, mode, models[mode], coords="world", config=config)
                seconds = time.perf_counter() - started
                rows.append({"seriesuid": uid, "mode": mode, "coordX": p[0], "coordY": p[1], "coordZ": p[2],
                             "hu_before": site_mean_hu(volume, p), "hu_after": site_mean_hu(result, p),
                             "seconds": seconds})
                if len(examples[mode]) < n_examples:
                    examples[mode].append({"uid": uid, "mode": mode, "point": p, "before": volume, "after": result})
            kept = nodules if mode == "inject" else nodules.iloc[:0]
            added = pd.DataFrame({"seriesuid": uid, "coordX": points[:, 0], "coordY": points[:, 1],
                                  "coordZ": points[:, 2], "diameter_mm": np.nan}) if mode == "inject" else None
            annotations[mode].append(pd.concat([kept, added]) if added is not None else kept)
            if write_scans:
                subset = dataset.subset_of(uid)
                write_volume(result, tampered_root / mode / f"subset{subset}" / f"{uid}.mhd")
    sites = pd.DataFrame(rows)
    save_csv(Path(work_dir) / "test_sites.csv", sites)
    if write_scans:
        # Injected nodules get the median training-nodule diameter (the generator draws a typical nodule).
        diameter = float(dataset.annotations["diameter_mm"].median()) if len(dataset.annotations) else 6.0
        for mode in ("inject", "remove"):
            folder = tampered_root / mode
            ann = pd.concat(annotations[mode], ignore_index=True) if annotations[mode] else \
                pd.DataFrame(columns=ANNOTATION_COLUMNS)
            ann["diameter_mm"] = ann["diameter_mm"].fillna(diameter)
            save_csv(folder / "annotations.csv", ann[ANNOTATION_COLUMNS])
            save_csv(folder / "annotations_excluded.csv", excluded[excluded["seriesuid"].isin(uids)])
            write_text(folder / "seriesuids.csv", "".join(f"{u}\n" for u in uids))
            save_csv(folder / "tampered_sites.csv", sites[sites["mode"] == mode] if len(sites) else sites)
    shown = examples["inject"] + examples["remove"]
    figure = Path(results_dir) / "GAN_results.png"
    if shown:
        plot_results(shown, figure)
    summary = {"test_subset": split["test"], "scans": len(uids), "seed": config.seed,
               "tampered_root": str(tampered_root) if write_scans else None, "figure": str(figure) if shown else None}
    for mode in ("inject", "remove"):
        s = sites[sites["mode"] == mode] if len(sites) else sites
        summary[mode] = {"sites": int(len(s)),
                         "mean_hu_before": float(s["hu_before"].mean()) if len(s) else None,
                         "mean_hu_after": float(s["hu_after"].mean()) if len(s) else None,
                         "seconds_per_site": float(s["seconds"].mean()) if len(s) else None}
    write_text(Path(work_dir) / "test.json", json.dumps({**summary, "config": config.to_dict()}, indent=2))
    return summary
