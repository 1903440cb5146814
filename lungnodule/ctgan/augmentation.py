"""CT-GAN evaluation (b): does training the MGI-CNN on GAN-injected nodules change its CPM?

:func:`build_augmented_dataset` writes a LUNA16-layout folder holding every original scan (linked, never
copied or modified) plus, for each scan of the CT-GAN fold's *training* subsets only, tampered copies with
`inject_per_scan` nodules injected by the trained injector at healthy lung sites (the sites and touch-ups
of :func:`lungnodule.ctgan.heldout.test`). Each copy is a new series (new UID, same subset folder); the CSVs
list what the copies hold: `annotations.csv` gains the injected nodules (recorded with the median diameter of the
injector's training nodules), `candidates_V2.csv` gains each copy's candidates (the source scan's, plus 1-6
class-1 marks per injected nodule, as :mod:`lungnodule.synth.candidates` draws them for real nodules).

The experiment that trains the MGI-CNN on it (evaluation (b)) is :func:`lungnodule.pipeline.augmentation_experiment`:
it joins two stages, so it lives with the pipeline.
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
    from ..evaluation import label_candidates
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
