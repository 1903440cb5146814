"""CT-GAN evaluation (b): does training the MGI-CNN on GAN-injected nodules change its CPM?

:func:`build_augmented_dataset` writes a LUNA16-layout folder holding every original scan (linked, never
copied or modified) plus, for each scan of the CT-GAN fold's *training* subsets only, tampered copies with
`inject_per_scan` nodules injected by the trained injector at healthy lung sites (the sites and touch-ups
of :func:`lungnodule.ctgan.heldout.test`). Each copy is a new series (new UID, same subset folder); the CSVs
list what the copies hold: `annotations.csv` gains the injected nodules (recorded with the median diameter of the
injector's training nodules), `candidates_V2.csv` gains each copy's candidates (the source scan's, plus 1-6
class-1 marks per injected nodule, as :mod:`lungnodule.synth.candidates` draws them for real nodules).

:func:`augmentation_experiment` trains the MGI-CNN twice with one config and seed, on the original and on
the augmented folder, scores both on the same held-out test scans and reports both CPMs with their
scan-bootstrap 95% CIs and the CPM difference (augmented - baseline) with a *paired* scan-bootstrap 95% CI
(:func:`lungnodule.evaluation.paired_cpm_bootstrap`: both systems are evaluated on the same resamples), whatever
its sign.
Coordinates are world (x, y, z) mm throughout, as in the LUNA16 CSVs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import save_csv, write_text
from ..errors import DataError
from ..luna import ANNOTATION_COLUMNS, CANDIDATE_COLUMNS, LunaDataset, fold_split
from ..mgicnn.config import MgiConfig
from ..progress import track
from ..uids import new_uid
from ..volume import volume_files, write_volume
from .config import CTGANConfig
from .tampering import TamperModel, tamper, tamper_marks
from .sites import injection_diameter, injection_sites, scan_findings, site_annotations, site_mean_hu
from .training import load_generator

MANIFEST = "augmented_dataset.json"  # written last: the folder is complete
MARKER = ".lungnodule-augmented"  # written first: the folder is ours to clear on a rebuild
SITES_CSV = "injected_sites.csv"
# RNG stream tag of the augmentation sites (test() uses 7919): the seed alone does not tie them together.
AUGMENT_STREAM = 104729
XYZ = ["coordX", "coordY", "coordZ"]


# --- the augmented dataset ----------------------------------------------------------------------------


def _fresh_root(out_root: Path, data_root: Path) -> None:
    """Empty `out_root` for a rebuild; refuse a folder overlapping the source or not made by this module."""
    out, src = out_root.resolve(), data_root.resolve()
    if out == src or src in out.parents or out in src.parents:
        raise DataError(out_root, f"the augmented dataset must not overlap the source dataset {data_root}")
    if out_root.exists() and any(out_root.iterdir()):
        if not (out_root / MARKER).exists():
            raise DataError(out_root, "not empty and not an augmented dataset made by lungnodule; "
                                      "choose another folder (nothing was removed)")
        shutil.rmtree(out_root)  # links are removed, never followed: the originals stay
    out_root.mkdir(parents=True, exist_ok=True)
    write_text(out_root / MARKER, "made by lungnodule.ctgan.augmentation.build_augmented_dataset\n")


def _link(source: Path, destination: Path) -> None:
    """Symlink `destination` -> `source` (absolute), made under a temporary name and renamed: atomic."""
    tmp = destination.with_name(f".{destination.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(source.resolve(), tmp)
    os.replace(tmp, destination)


def link_scans(dataset: LunaDataset, out_root: Path) -> int:
    """Link every scan of `dataset` (`.mhd` and data file) into `out_root/subset<k>/`; returns the number of
    scans. Nested `subsetN/subsetN/` downloads are flattened."""
    for subset, path in dataset.scans[["subset", "path"]].itertuples(index=False):
        folder = out_root / f"subset{subset}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in volume_files(path):
            _link(f, folder / f.name)
    return len(dataset.scans)


def copy_candidates(candidates: pd.DataFrame, copy_uid: str, sites_xyz: np.ndarray, diameter_mm: float,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Candidates (:data:`~lungnodule.luna.CANDIDATE_COLUMNS`) of a tampered copy of one scan.

    `candidates` are the source scan's rows; they are kept under `copy_uid` (its real nodules are still
    there, still class 1), and any of them now inside an injected nodule (LUNA16 hit rule) becomes class 1.
    Each injected site (world mm, (N, 3)) adds 1-6 class-1 marks within 40% of its radius.
    """
    from ..mgicnn.preprocess import label_candidates
    from ..synth.candidates import nodule_marks

    own = candidates[CANDIDATE_COLUMNS].assign(seriesuid=copy_uid).reset_index(drop=True)
    injected = site_annotations(copy_uid, sites_xyz, diameter_mm)
    own["class"] = np.maximum(own["class"].to_numpy(), label_candidates(own, injected))
    marks = [nodule_marks(rng, p, diameter_mm) for p in np.asarray(sites_xyz).reshape(-1, 3)]
    marks = np.concatenate(marks) if marks else np.zeros((0, 3))
    added = pd.DataFrame({"seriesuid": copy_uid, "coordX": marks[:, 0], "coordY": marks[:, 1],
                          "coordZ": marks[:, 2], "class": 1}, columns=CANDIDATE_COLUMNS)
    return pd.concat([own, added], ignore_index=True)


def build_augmented_dataset(config: CTGANConfig, data_root: str | os.PathLike, ctgan_dir: str | os.PathLike,
                            out_root: str | os.PathLike, copies_per_scan: int = 1, progress: bool = True) -> dict:
    """Write a LUNA16-layout copy of `data_root` with GAN-injected copies of its training scans; returns a summary.

    Training scans are those of the subsets left by :func:`~lungnodule.luna.fold_split` with
    `config.test_subsets` / `config.val_subset` (validation and test scans are never tampered). Each gets
    `copies_per_scan` copies, each with up to `config.inject_per_scan` nodules injected at healthy lung
    sites (world (x, y, z) mm; clearance and lung margin in mm from `config`) by the injector in
    `ctgan_dir/inject/`, written as `out_root/subset<k>/<new uid>.mhd` (HU, int16 as the source, same
    geometry). `out_root` also links every original scan and holds `annotations.csv` (original + injected,
    diameter = the median diameter of the injector's training nodules, mm; a copy also lists its source's
    nodules, which it still holds), `annotations_excluded.csv` (original, likewise repeated for each copy),
    `seriesuids.csv`, `candidates_V2.csv` (see :func:`copy_candidates`), `injected_sites.csv` (per site:
    copy and source UIDs, position, mean HU within 5 mm before / after) and `augmented_dataset.json`
    (counts, `config.seed` and the config). Sites, marks and UIDs follow from `config.seed` alone; files
    appear atomically and `out_root` is rebuilt from scratch (a non-empty folder not made by this function is
    refused).
    """
    if copies_per_scan < 0:
        raise ValueError(f"copies_per_scan must be >= 0, got {copies_per_scan}")
    started = time.perf_counter()
    data_root, out_root = Path(data_root), Path(out_root)
    dataset = LunaDataset(data_root)
    split = fold_split(dataset.subsets, test=config.test_subsets, val=config.val_subset)
    train_uids = dataset.uids_in(split["train"])
    model = TamperModel(*load_generator(ctgan_dir, "inject"))
    _fresh_root(out_root, data_root)
    link_scans(dataset, out_root)
    annotations, candidates = dataset.annotations, dataset.candidates
    excluded = dataset.excluded
    diameter = injection_diameter(ctgan_dir, dataset, split["train"])
    new_annotations, new_excluded, new_candidates, site_rows, new_uids = [], [], [], [], []
    for i, uid in enumerate(track(train_uids, "CT-GAN injecting into training scans", enabled=progress)):
        stored = dataset.load(uid, canonical=False)
        volume = stored.canonical()  # tampered as the GANs were trained; written back as the source is stored
        findings = scan_findings(annotations, excluded, uid)
        subset = dataset.subset_of(uid)
        for copy in range(copies_per_scan):
            rng = np.random.default_rng([config.seed, AUGMENT_STREAM, i, copy])
            sites = injection_sites(volume, findings, config, rng)
            if not len(sites):  # no healthy lung deep enough: no copy rather than a copy without a nodule
                continue
            tampered = tamper(volume, sites, "inject", model, coords="world", config=config)
            copy_uid = new_uid("lungnodule-ctgan-augment", config.seed, uid, copy)
            write_volume(tampered.reoriented(stored.direction), out_root / f"subset{subset}" / f"{copy_uid}.mhd",
                         metadata=tamper_marks("inject", sites, dataset.scan_path(uid)))
            new_uids.append(copy_uid)
            # The copy still holds its source's findings: they are annotated (and excluded) for it too.
            new_annotations.append(pd.concat([annotations[annotations["seriesuid"] == uid].assign(seriesuid=copy_uid),
                                              site_annotations(copy_uid, sites, diameter)]))
            new_excluded.append(excluded[excluded["seriesuid"] == uid].assign(seriesuid=copy_uid))
            new_candidates.append(copy_candidates(candidates[candidates["seriesuid"] == uid], copy_uid, sites,
                                                  diameter, rng))
            site_rows += [{"seriesuid": copy_uid, "source_seriesuid": uid, "copy": copy, "subset": subset,
                           "coordX": p[0], "coordY": p[1], "coordZ": p[2], "diameter_mm": diameter,
                           "hu_before": site_mean_hu(volume, p), "hu_after": site_mean_hu(tampered, p)}
                          for p in sites]
    sites = pd.DataFrame(site_rows, columns=["seriesuid", "source_seriesuid", "copy", "subset", *XYZ, "diameter_mm",
                                             "hu_before", "hu_after"])
    save_csv(out_root / "annotations.csv", pd.concat([annotations, *new_annotations])[ANNOTATION_COLUMNS])
    save_csv(out_root / "annotations_excluded.csv", pd.concat([excluded, *new_excluded])[ANNOTATION_COLUMNS])
    save_csv(out_root / "candidates_V2.csv", pd.concat([candidates, *new_candidates])[CANDIDATE_COLUMNS])
    write_text(out_root / "seriesuids.csv", "".join(f"{u}\n" for u in [*dataset.seriesuids, *new_uids]))
    save_csv(out_root / SITES_CSV, sites)
    summary = {"out_root": str(out_root), "source_root": str(data_root), "ctgan_dir": str(ctgan_dir),
               "seed": config.seed, "split": split, "source_scans": len(train_uids),
               "copies_per_scan": copies_per_scan, "tampered_scans": len(new_uids),
               "skipped_copies": len(train_uids) * copies_per_scan - len(new_uids), "injected_sites": len(sites),
               "injected_diameter_mm": diameter,
               "mean_hu_before": float(sites["hu_before"].mean()) if len(sites) else None,
               "mean_hu_after": float(sites["hu_after"].mean()) if len(sites) else None,
               "seconds": round(time.perf_counter() - started, 2), "config": config.to_dict()}
    write_text(out_root / MANIFEST, json.dumps(summary, indent=2))
    return summary


# --- the experiment -------------------------------------------------------------------------------------


def _train_and_score(mgi_config: MgiConfig, data_root: Path, mgi_dir: Path, unet_dir: Path, progress: bool) -> dict:
    """Preprocess, train and score one MGI-CNN (no figures); returns the timings and the training summary."""
    from ..mgicnn.evaluate import test
    from ..mgicnn.preprocess import preprocess
    from ..mgicnn.training import train

    timings = {}
    t0 = time.perf_counter()
    preprocess(mgi_config, data_root, mgi_dir, unet_dir=unet_dir, progress=progress)
    timings["preprocess"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trained = train(mgi_config, data_root, mgi_dir, results_dir=None, resume=False, verbose=0)
    timings["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    test(mgi_config, data_root, mgi_dir, results_dir=None, unet_dir=unet_dir, n_bootstrap=0)
    timings["test"] = time.perf_counter() - t0
    fold = next(iter(trained["folds"].values()))
    return {"timings": {k: round(v, 2) for k, v in timings.items()},
            "train_candidates": fold["train_candidates"], "train_positives": fold["train_positives"],
            "best_epoch": fold["best_epoch"], "threshold": fold["threshold"],
            "fusion_weight": fold.get("fusion_weight", 0.0)}


def augmentation_experiment(data_root: str | os.PathLike, work_dir: str | os.PathLike,
                            results_dir: str | os.PathLike | None = "Results", seed: int = 0, preset: str = "demo", *,
                            ctgan_config: CTGANConfig | None = None,
                            mgi_config: MgiConfig | None = None,
                            ctgan_dir: str | os.PathLike | None = None, unet_dir: str | os.PathLike | None = None,
                            copies_per_scan: int = 1, n_bootstrap: int = 1000, progress: bool = True) -> dict:
    """Evaluation (b): the MGI-CNN trained without and with GAN-injected nodules, on one held-out test subset.

    Configs default to the `preset` of each stage with `seed`; the MGI-CNN is trained on the CT-GAN
    config's fold (its test and validation subsets), so no tampered copy is ever validated or tested on.
    Uses the injector in `ctgan_dir` (default `<work_dir>/../ctgan`) and stage 1's candidate files in
    `unet_dir` (default `<work_dir>/../unet`; needed when the MGI-CNN uses the U-Net's candidates; the
    tampered copies have none and contribute through their `candidates_V2.csv` rows). Writes under
    `work_dir`: `augmented/` (:func:`build_augmented_dataset`), `mgicnn_baseline/` and `mgicnn_augmented/`
    (each MGI-CNN's patches, model and scores), `augmentation.json`; and `results_dir/GAN_augmentation.png`
    (both FROC curves with their bootstrap bands). Both systems are evaluated against the original
    annotations of the same test scans. Returns the content of `augmentation.json`: per system the CPM,
    its 95% CI and sensitivities (both readings); `difference` (augmented - baseline,
    :func:`~lungnodule.evaluation.paired_cpm_bootstrap`);
    timings in seconds.
    """
    from ..evaluation import evaluate_cad, paired_cpm_bootstrap
    from ..froc_plot import plot_froc
    from ..luna import read_results
    from ..mgicnn.config import PRESETS as MGI_PRESETS
    from .config import PRESETS as CTGAN_PRESETS

    started = time.perf_counter()
    ctgan_config = ctgan_config or CTGAN_PRESETS[preset].replace(seed=int(seed))
    mgi_config = (mgi_config or MGI_PRESETS[preset].replace(seed=int(seed))).replace(
        test_subsets=tuple(ctgan_config.test_subsets), val_subset=ctgan_config.val_subset, pooled=True)
    work_dir = Path(work_dir)
    ctgan_dir = Path(ctgan_dir) if ctgan_dir else work_dir.parent / "ctgan"
    unet_dir = Path(unet_dir) if unet_dir else work_dir.parent / "unet"
    t0 = time.perf_counter()
    built = build_augmented_dataset(ctgan_config, data_root, ctgan_dir, work_dir / "augmented", copies_per_scan,
                                    progress)
    timings = {"build_augmented_dataset": round(time.perf_counter() - t0, 2)}
    dataset = LunaDataset(data_root)
    excluded = dataset.excluded
    uids = dataset.uids_in(ctgan_config.test_subsets)
    roots = {"baseline": Path(data_root), "augmented": work_dir / "augmented"}
    runs, results = {}, {}
    for name, root in roots.items():
        mgi_dir = work_dir / f"mgicnn_{name}"
        runs[name] = _train_and_score(mgi_config, root, mgi_dir, unet_dir, progress)
        timings.update({f"{name}_{k}": v for k, v in runs[name]["timings"].items()})
        scored = read_results(mgi_dir / "results_mgicnn.csv")
        results[name] = evaluate_cad(dataset.annotations, excluded, uids, scored, n_bootstrap=n_bootstrap,
                                     seed=mgi_config.seed)
    base, aug = results["baseline"], results["augmented"]
    paired = paired_cpm_bootstrap(base, aug, n_bootstrap, mgi_config.seed)
    out = {"seed": int(mgi_config.seed), "preset": preset, "split": built["split"], "test_scans": len(uids),
           "nodules": base.nodules}
    for name, r in results.items():
        out[name] = {**r.metrics(), "false_positives": r.matching.false_positives,
                     **{k: v for k, v in runs[name].items() if k != "timings"}}
    out["difference"] = {"cpm": paired["difference"], "ci95": paired["ci95"], "mean": paired["mean"],
                         "share_improved": paired["share_improved"], "n_bootstrap": paired["n_bootstrap"],
                         "cpm_stable": paired["stable"]["difference"], "stable_ci95": paired["stable"]["ci95"],
                         "stable_share_improved": paired["stable"]["share_improved"],
                         "method": "paired scan-level bootstrap: both systems on the same resampled test scans"}
    out["augmented_dataset"] = {k: v for k, v in built.items() if k != "config"}
    if results_dir is not None:
        lo, hi = paired["ci95"]
        figure = Path(results_dir) / "GAN_augmentation.png"
        plot_froc({"MGI-CNN, baseline": base, "MGI-CNN, + GAN-injected nodules": aug}, figure,
                  title=f"GAN augmentation, held-out subset(s) {list(ctgan_config.test_subsets)} ({len(uids)} scans): "
                        f"CPM change {paired['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}], stable "
                        f"{paired['stable']['difference']:+.3f} [{paired['stable']['ci95'][0]:+.3f}, "
                        f"{paired['stable']['ci95'][1]:+.3f}] (paired)")
        out["figure"] = str(figure)
    timings["total"] = round(time.perf_counter() - started, 2)
    out.update({"timings": timings, "config": {"ctgan": ctgan_config.to_dict(), "mgicnn": mgi_config.to_dict()}})
    write_text(work_dir / "augmentation.json", json.dumps(out, indent=2, default=float))
    return out
