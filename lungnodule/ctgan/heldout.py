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

from ..atomic import save_csv, save_figure, write_text
from ..errors import ModelMissingError
from ..evaluation import hit_pairs
from ..intensity import window_hu
from ..luna import ANNOTATION_COLUMNS, LunaDataset, fold_split
from ..progress import track
from ..volume import Volume, write_volume
from .config import CTGANConfig
from .sites import injection_diameter, injection_sites, scan_findings, site_annotations, site_mean_hu
from .tampering import TamperModel, tamper, tamper_marks
from .training import load_generator


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
         results_dir: str | os.PathLike = "Results", n_examples: int = 2, write_scans: bool = True,
         progress: bool = True) -> dict:
    """Tamper the test subset's scans with the trained injector and remover; returns a summary dict.

    Writes `<work_dir>/tampered/{inject,remove}/` (LUNA16 layout, see the module docstring),
    `<work_dir>/test_sites.csv` (every site with its HU before / after and tampering time),
    `<work_dir>/test.json` and `Results/GAN_results.png` (`n_examples` injections and removals).
    """
    dataset = LunaDataset(data_root)
    split = fold_split(dataset.subsets, test=config.test_subsets, val=config.val_subset)
    uids = dataset.uids_in(split["test"])
    if config.test_scans:
        uids = uids[:config.test_scans]
    models = {mode: TamperModel(*load_generator(work_dir, mode)) for mode in ("inject", "remove")}
    excluded = dataset.excluded
    tampered_root = Path(work_dir) / "tampered"
    if write_scans:
        shutil.rmtree(tampered_root, ignore_errors=True)
    rows, examples, annotations = [], {"inject": [], "remove": []}, {"inject": [], "remove": []}
    inject_diameter = injection_diameter(work_dir, dataset, split["train"])
    for i, uid in enumerate(track(uids, "CT-GAN tampering test scans", enabled=progress)):
        stored = dataset.load(uid, canonical=False)
        volume = stored.canonical()  # tampered as the GANs were trained; written back as the source is stored
        nodules = dataset.annotations[dataset.annotations["seriesuid"] == uid]
        findings = scan_findings(dataset.annotations, excluded, uid)
        rng = np.random.default_rng([config.seed, 7919, i])
        sites = {"inject": injection_sites(volume, findings, config, rng),
                 "remove": nodules[["coordX", "coordY", "coordZ"]].to_numpy(np.float64)}
        diameters = {"inject": np.full(len(sites["inject"]), inject_diameter),
                     "remove": nodules["diameter_mm"].to_numpy(np.float64)}
        for mode, points in sites.items():
            result = volume
            for p, diameter in zip(points, diameters[mode]):
                started = time.perf_counter()
                result = tamper(result, p, mode, models[mode], coords="world", config=config)
                seconds = time.perf_counter() - started
                rows.append({"seriesuid": uid, "mode": mode, "coordX": p[0], "coordY": p[1], "coordZ": p[2],
                             "diameter_mm": diameter, "hu_before": site_mean_hu(volume, p), "hu_after": site_mean_hu(result, p),
                             "seconds": seconds})
                if len(examples[mode]) < n_examples:
                    examples[mode].append({"uid": uid, "mode": mode, "point": p, "before": volume, "after": result})
            kept = nodules if mode == "inject" else nodules.iloc[:0]
            added = site_annotations(uid, points, inject_diameter) if mode == "inject" else None
            annotations[mode].append(pd.concat([kept, added]) if added is not None else kept)
            if write_scans:
                subset = dataset.subset_of(uid)
                write_volume(result.reoriented(stored.direction),
                             tampered_root / mode / f"subset{subset}" / f"{uid}.mhd",
                             metadata=tamper_marks(mode, points, dataset.scan_path(uid)))
    sites = pd.DataFrame(rows)
    save_csv(Path(work_dir) / "test_sites.csv", sites)
    if write_scans:
        for mode in ("inject", "remove"):
            folder = tampered_root / mode
            ann = pd.concat(annotations[mode], ignore_index=True) if annotations[mode] else \
                pd.DataFrame(columns=ANNOTATION_COLUMNS)
            save_csv(folder / "annotations.csv", ann[ANNOTATION_COLUMNS])
            save_csv(folder / "annotations_excluded.csv", excluded[excluded["seriesuid"].isin(uids)])
            write_text(folder / "seriesuids.csv", "".join(f"{u}\n" for u in uids))
            save_csv(folder / "tampered_sites.csv", sites[sites["mode"] == mode] if len(sites) else sites)
    shown = examples["inject"] + examples["remove"]
    figure = Path(results_dir) / "GAN_results.png"
    if shown:
        plot_results(shown, figure)
    summary = {"test_subsets": split["test"], "scans": len(uids), "seed": config.seed,
               "tampered_root": str(tampered_root) if write_scans else None, "figure": str(figure) if shown else None}
    for mode in ("inject", "remove"):
        s = sites[sites["mode"] == mode] if len(sites) else sites
        summary[mode] = {"sites": int(len(s)),
                         "mean_hu_before": float(s["hu_before"].mean()) if len(s) else None,
                         "mean_hu_after": float(s["hu_after"].mean()) if len(s) else None,
                         "seconds_per_site": float(s["seconds"].mean()) if len(s) else None}
    write_text(Path(work_dir) / "test.json", json.dumps({**summary, "config": config.to_dict()}, indent=2))
    return summary


def detection_rates(detect, work_dir: str | os.PathLike, threshold: float = 0.5,
                    data_root: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Evaluation (a): how the detector sees the tampering done by :func:`test`.

    `detect(volume) -> DataFrame(coordX, coordY, coordZ, probability)` (world mm) is run on every scan
    of `<work_dir>/tampered/{inject,remove}/`. A site counts as detected when a detection with
    probability >= `threshold` lies within the site's radius (diameter / 2, the LUNA16 hit criterion;
    injected sites have the median diameter of the injector's training nodules). Returns
    `injected_detected` (fraction of injected nodules detected), `removed_still_detected` (fraction of
    removed nodules still detected), the counts, and, when `data_root` (the untampered dataset) is given,
    the same fractions on the clean scans (`clean_inject_sites_detected`: false positives at the injection
    sites before injection; `clean_nodules_detected`: the detector's sensitivity on the nodules before
    removal). Per-site hits are written to `<work_dir>/tampered/detection_sites.csv`.
    """
    root = Path(work_dir) / "tampered"
    sites = {}
    for mode in ("inject", "remove"):
        path = root / mode / "tampered_sites.csv"
        if not path.exists():
            raise ModelMissingError(f"{path} not found: run `python CT-GAN/test.py` first")
        sites[mode] = pd.read_csv(path)
    clean = LunaDataset(data_root) if data_root is not None else None
    clean_found: dict[str, object] = {}  # a clean scan serves both modes: detect on it once
    rows = []
    for mode, table in sites.items():
        if not len(table):
            continue
        tampered = LunaDataset(root / mode)
        for uid, group in track(list(table.groupby("seriesuid", sort=False)), f"detector on tampered scans ({mode})",
                                enabled=progress):
            variants = {"tampered": tampered.load(uid)}
            if clean is not None:
                variants["clean"] = None
            hits = {}
            for name, volume in variants.items():
                if name == "clean":
                    if uid not in clean_found:
                        clean_found[uid] = detect(clean.load(uid))
                    found = clean_found[uid]
                else:
                    found = detect(volume)
                found = found[found["probability"] >= threshold].assign(seriesuid=uid) if len(found) else found
                hits[name] = np.zeros(len(group), dtype=bool)
                hits[name][hit_pairs(found, group)[1]] = True
            for k, (_, site) in enumerate(group.iterrows()):
                rows.append({"seriesuid": uid, "mode": mode, "coordX": site["coordX"], "coordY": site["coordY"],
                             "coordZ": site["coordZ"], "diameter_mm": site["diameter_mm"],
                             "detected_after": bool(hits["tampered"][k]),
                             "detected_before": bool(hits["clean"][k]) if "clean" in hits else None})
    table = pd.DataFrame(rows, columns=["seriesuid", "mode", "coordX", "coordY", "coordZ", "diameter_mm",
                                       "detected_after", "detected_before"])
    save_csv(root / "detection_sites.csv", table)
    inj, rem = table[table["mode"] == "inject"], table[table["mode"] == "remove"]

    def frac(values) -> float | None:
        return float(np.mean(values.astype(bool))) if len(values) else None

    out = {"threshold": threshold, "injected": int(len(inj)), "removed": int(len(rem)),
           "injected_detected": frac(inj["detected_after"]),
           "removed_still_detected": frac(rem["detected_after"])}
    if clean is not None:
        out["clean_inject_sites_detected"] = frac(inj["detected_before"])
        out["clean_nodules_detected"] = frac(rem["detected_before"])
    return out
